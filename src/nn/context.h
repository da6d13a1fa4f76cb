#pragma once
// What a forward pass needs besides its inputs: train/eval mode and the random stream for dropout.
#include "core/rng.h"

namespace dense::nn {

struct Context {
  bool training = false;
  Generator rng{0, 0};
};

// A dropout draw: the (seed, offset) a forward used, kept so backward (or a recomputation) sees the same mask.
struct DropoutDraw {
  double p = 0.0;
  uint64_t seed = 0;
  uint64_t offset = 0;
  bool active() const { return p > 0.0; }
};

inline DropoutDraw draw_dropout(Context& ctx, double p, int64_t numel) {
  if (!ctx.training || p <= 0.0) return {};
  return {p, ctx.rng.seed(), ctx.rng.advance(uint64_t(numel))};
}

}  // namespace dense::nn
