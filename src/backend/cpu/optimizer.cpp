// Fused optimizer updates over the flat parameter arena, in f64 whatever the storage.
// Work is split by the caller's blocks (backend.h OptimizerStep), whose layout depends only on the parameters,
// never on the thread count: results are bitwise identical for any number of threads.
#include <cmath>
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"

namespace dense {

namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;

struct BlockView {
  const int64_t* row;  // {begin, end, range, decay} per block
  int64_t count;
  int64_t begin(int64_t b) const { return row[4 * b]; }
  int64_t end(int64_t b) const { return row[4 * b + 1]; }
  int64_t range(int64_t b) const { return row[4 * b + 2]; }
  bool decay(int64_t b) const { return row[4 * b + 3] != 0; }
};

// torch.optim.AdamW's operation order (see train/optimizer.h): decay, moments, then the Adam step.
template <typename T>
void adamw(const OptimizerStep& s, const BlockView& blocks, int64_t numel, T* p, const T* g, T* m, T* v) {
  const double b1 = s.beta1, b2 = s.beta2, eps = s.eps;
  const double bc1 = 1.0 - std::pow(b1, double(s.step));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, double(s.step)));
  const double step_size = s.lr / bc1;
  const double decay_factor = 1.0 - s.lr * s.weight_decay;
#pragma omp parallel for schedule(static) if (numel > kParallelMin)
  for (int64_t bi = 0; bi < blocks.count; ++bi) {
    const double factor = blocks.decay(bi) ? decay_factor : 1.0;
    for (int64_t i = blocks.begin(bi), e = blocks.end(bi); i < e; ++i) {
      const double gi = double(g[i]);
      const double pi = double(p[i]) * factor;
      const double mi = double(m[i]) * b1 + (1.0 - b1) * gi;
      const double vi = double(v[i]) * b2 + (1.0 - b2) * gi * gi;
      const double denom = std::sqrt(vi) / bc2_sqrt + eps;
      p[i] = T(pi + (-step_size) * mi / denom);
      m[i] = T(mi);
      v[i] = T(vi);
    }
  }
}

// LAMB: moments and per-block sums of p² and u² (u the decayed, bias-corrected Adam direction), the trust
// ratio per range from its blocks' sums in block order, then p -= lr * ratio * u. u is recomputed in the
// second pass from the stored (rounded) moments instead of kept in an arena-sized buffer; the first pass
// computes it from the same rounded values, so both agree bitwise.
template <typename T>
void lamb(const OptimizerStep& s, const BlockView& blocks, int64_t numel, T* p, const T* g, T* m, T* v) {
  const double b1 = s.beta1, b2 = s.beta2, eps = s.eps;
  const double bc1 = 1.0 - std::pow(b1, double(s.step));
  const double bc2 = 1.0 - std::pow(b2, double(s.step));
  const int64_t nb = blocks.count;
  std::vector<double> p_sq(size_t(nb), 0.0), u_sq(size_t(nb), 0.0), ratio(size_t(nb), 1.0);
  auto update = [&](int64_t i, double wd) {
    const double mhat = double(m[i]) / bc1, vhat = double(v[i]) / bc2;
    return mhat / (std::sqrt(vhat) + eps) + wd * double(p[i]);
  };
#pragma omp parallel for schedule(static) if (numel > kParallelMin)
  for (int64_t bi = 0; bi < nb; ++bi) {
    const double wd = blocks.decay(bi) ? s.weight_decay : 0.0;
    double ps = 0.0, us = 0.0;
    for (int64_t i = blocks.begin(bi), e = blocks.end(bi); i < e; ++i) {
      const double gi = double(g[i]);
      m[i] = T(double(m[i]) * b1 + (1.0 - b1) * gi);
      v[i] = T(double(v[i]) * b2 + (1.0 - b2) * gi * gi);
      const double pi = double(p[i]), ui = update(i, wd);
      ps += pi * pi;
      us += ui * ui;
    }
    p_sq[size_t(bi)] = ps;
    u_sq[size_t(bi)] = us;
  }
  for (int64_t bi = 0; bi < nb;) {
    const int64_t first = bi, r = blocks.range(bi);
    double ps = 0.0, us = 0.0;
    for (; bi < nb && blocks.range(bi) == r; ++bi) {
      ps += p_sq[size_t(bi)];
      us += u_sq[size_t(bi)];
    }
    const double pn = std::sqrt(ps), un = std::sqrt(us);
    const double rr = pn > 0.0 && un > 0.0 ? pn / un : 1.0;
    for (int64_t k = first; k < bi; ++k) ratio[size_t(k)] = rr;
  }
#pragma omp parallel for schedule(static) if (numel > kParallelMin)
  for (int64_t bi = 0; bi < nb; ++bi) {
    const double wd = blocks.decay(bi) ? s.weight_decay : 0.0;
    const double alpha = -(s.lr * ratio[size_t(bi)]);
    for (int64_t i = blocks.begin(bi), e = blocks.end(bi); i < e; ++i) p[i] = T(double(p[i]) + alpha * update(i, wd));
  }
}

}  // namespace

void CpuBackend::optimizer_step(const OptimizerStep& s, Tensor& values, const Tensor& grads, Tensor& exp_avg,
                                Tensor& exp_avg_sq) {
  const BlockView blocks{static_cast<const int64_t*>(s.blocks->raw_data()), s.blocks->size(0)};
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(values.raw_data());
    const T* g = static_cast<const T*>(grads.raw_data());
    T* m = static_cast<T*>(exp_avg.raw_data());
    T* v = static_cast<T*>(exp_avg_sq.raw_data());
    if (s.lamb)
      lamb(s, blocks, values.numel(), p, g, m, v);
    else
      adamw(s, blocks, values.numel(), p, g, m, v);
  };
  if (values.dtype() == DType::F64)
    run(double{});
  else
    run(float{});
}

}  // namespace dense
