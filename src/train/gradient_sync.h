#pragma once
// Data-parallel gradient sums. The f32 gradient arena is cut into buckets of whole encoder layers (about
// parallel.bucket_mb each, upper layers first, the order backward produces them) plus the rest (embeddings,
// heads, norms). Armed on a model, a bucket's all-reduce starts from the model's layer hook as soon as its
// lowest layer is done, and runs while the layers below compute; finish() starts the rest and waits for all.
// The sums are in place, so afterwards every rank holds the same gradients. Under bf16 / f16 the compute model's
// half gradients are folded into the f32 arena bucket by bucket, just before each bucket starts, so mixed
// precision overlaps the backward as f32 does.
#include <cstdint>
#include <memory>
#include <vector>

#include "models/model.h"
#include "nn/parameter.h"
#include "parallel/communicator.h"

namespace dense::train {

class GradientSync {
 public:
  GradientSync(parallel::Communicator& comm, nn::ParameterSet& params, int64_t num_layers, double bucket_mb);
  ~GradientSync();

  // The next backward of `model` starts the layer buckets itself. `model`'s gradients are `params`' arena, or
  // with `half_grads` (the half model's arena, laid out as `params`) each bucket's range is first folded into
  // the f32 arena (dst = half + (first ? 0 : dst), in f32) and zeroed in the half arena.
  void arm(models::Model& model, Tensor* half_grads = nullptr, bool first = true);
  // Starts every bucket not yet started, waits for all, and disarms the model. Call after the last backward.
  void finish();
  int64_t bucket_count() const { return int64_t(buckets_.size()); }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;  // arena range
    int64_t fire_layer = -1;     // started when this layer's backward is done; -1: by finish()
  };
  void start(size_t bucket);

  parallel::Communicator& comm_;
  nn::ParameterSet& params_;
  std::vector<Bucket> buckets_;
  std::vector<std::unique_ptr<parallel::Request>> in_flight_;
  std::vector<bool> started_;
  models::Model* armed_ = nullptr;
  Tensor* half_grads_ = nullptr;
  bool first_ = true;
};

}  // namespace dense::train
