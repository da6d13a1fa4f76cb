// Softmax over the last dim (with a key mask) and row-wise cross entropy of the CPU backend, forward and
// backward.
#include <limits>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"

namespace dense {
using namespace cpu;

void CpuBackend::softmax_forward(const Tensor& s, double scale, const Tensor* key_valid, int64_t heads, Tensor& p) {
  const int64_t groups = s.size(0), rows = s.size(1), cols = s.size(2);
  dispatch_float(s.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* ps = static_cast<const T*>(s.raw_data());
    const T* pk = key_valid ? static_cast<const T*>(key_valid->raw_data()) : nullptr;
    T* pp = static_cast<T*>(p.raw_data());
#pragma omp parallel for collapse(2) schedule(static) if (s.numel() > kParallelMin)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t i = 0; i < rows; ++i) {
        const T* in = ps + (g * rows + i) * cols;
        T* out = pp + (g * rows + i) * cols;
        const T* valid = pk ? pk + (g / heads) * cols : nullptr;
        A mx = -std::numeric_limits<A>::infinity();
        for (int64_t j = 0; j < cols; ++j)
          if (!valid || load(valid + j) != A(0)) mx = std::max(mx, A(scale) * load(in + j));
        if (mx == -std::numeric_limits<A>::infinity()) {
          for (int64_t j = 0; j < cols; ++j) store(out + j, A(0));
          continue;
        }
        A sum = A(0);
        for (int64_t j = 0; j < cols; ++j) {
          const A e = (!valid || load(valid + j) != A(0)) ? std::exp(A(scale) * load(in + j) - mx) : A(0);
          store(out + j, e);
          sum += e;
        }
        const A inv = A(1) / sum;
        for (int64_t j = 0; j < cols; ++j) store(out + j, load(out + j) * inv);
      }
  });
}

void CpuBackend::softmax_backward(const Tensor& p, const Tensor& dp, double scale, Tensor& ds) {
  const int64_t cols = p.size(-1), rows = p.numel() / cols;
  dispatch_float(p.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* pp = static_cast<const T*>(p.raw_data());
    const T* pd = static_cast<const T*>(dp.raw_data());
    T* po = static_cast<T*>(ds.raw_data());
#pragma omp parallel for schedule(static) if (p.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      A dot = A(0);
      for (int64_t j = 0; j < cols; ++j) dot += load(pp + r * cols + j) * load(pd + r * cols + j);
      for (int64_t j = 0; j < cols; ++j)
        store(po + r * cols + j, A(scale) * load(pp + r * cols + j) * (load(pd + r * cols + j) - dot));
    }
  });
}

void CpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& lse) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const int64_t* pl = static_cast<const int64_t*>(labels.raw_data());
  for (int64_t r = 0; r < rows; ++r)
    DENSE_CHECK(pl[r] < vocab, "cross_entropy_forward: label {} of row {} is outside the {} classes", pl[r], r, vocab);
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(logits.raw_data());
    A* ploss = static_cast<A*>(loss.raw_data());  // statistics in the accumulator's dtype (ops checks)
    A* plse = static_cast<A*>(lse.raw_data());
#pragma omp parallel for schedule(static) if (logits.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = px + r * vocab;
      A mx = load(row);
      for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, load(row + j));
      A sum = A(0);
      for (int64_t j = 0; j < vocab; ++j) sum += std::exp(load(row + j) - mx);
      const A l = mx + std::log(sum);
      plse[r] = l;
      ploss[r] = pl[r] < 0 ? A(0) : l - load(row + pl[r]);
    }
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, double scale,
                                        Tensor& dlogits) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const int64_t* pl = static_cast<const int64_t*>(labels.raw_data());
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(logits.raw_data());
    const A* plse = static_cast<const A*>(lse.raw_data());
    T* pd = static_cast<T*>(dlogits.raw_data());
#pragma omp parallel for schedule(static) if (logits.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      T* d = pd + r * vocab;
      if (pl[r] < 0) {
        for (int64_t j = 0; j < vocab; ++j) store(d + j, A(0));
        continue;
      }
      const A l = plse[r];
      for (int64_t j = 0; j < vocab; ++j) {
        const A prob = std::exp(load(px + r * vocab + j) - l);
        store(d + j, A(scale) * (prob - (j == pl[r] ? A(1) : A(0))));
      }
    }
  });
}

}  // namespace dense
