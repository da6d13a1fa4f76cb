// Row-indexed kernels of the CPU backend: embedding-style gathers and the deterministic scatter-add, the
// position-indexed RelPE scaling and RoPE, and max pooling with its argmax scatter.
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"

namespace dense {
using namespace cpu;

void CpuBackend::gather_rows(const Tensor& table, const Tensor& ids, double beta, Tensor& out) {
  const int64_t rows = table.size(0), cols = table.size(1), n = ids.numel();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = read_index(ids, i);
    DENSE_CHECK(id >= 0 && id < rows, "gather_rows: id {} at position {} is outside the table of {} rows", id, i, rows);
  }
  dispatch_float(table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* pt = static_cast<const T*>(table.raw_data());
    T* po = static_cast<T*>(out.raw_data());
#pragma omp parallel for schedule(static) if (n * cols > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const T* src = pt + read_index(ids, i) * cols;
      T* dst = po + i * cols;
      for (int64_t c = 0; c < cols; ++c)
        store(dst + c, beta == 0.0 ? load(src + c) : load(src + c) + A(beta) * load(dst + c));
    }
  });
}

void CpuBackend::scatter_add_rows(const Tensor& src, const Tensor& ids, Tensor& table) {
  const int64_t rows = table.size(0), cols = table.size(1), n = ids.numel();
  // Each table row the ids touch gets one accumulator slot (in order of first appearance): a bf16 entry that
  // rounded after every addition would stop growing once it is ~256x its addends (a token seen thousands of
  // times in a batch, such as [MASK]), so entries accumulate in f32 (f64 for f64) and are rounded once.
  std::vector<int64_t> slot_of(size_t(rows), -1), touched;
  std::vector<int64_t> slot(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = read_index(ids, i);
    DENSE_CHECK(id >= 0 && id < rows, "scatter_add_rows: id {} at position {} is outside the table of {} rows", id, i,
                rows);
    if (slot_of[size_t(id)] < 0) {
      slot_of[size_t(id)] = int64_t(touched.size());
      touched.push_back(id);
    }
    slot[size_t(i)] = slot_of[size_t(id)];
  }
  const int64_t uniq = int64_t(touched.size());
  dispatch_float(table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* ps = static_cast<const T*>(src.raw_data());
    T* pt = static_cast<T*>(table.raw_data());
    // Threads own column ranges and walk the ids in order: no races, and the sum order is fixed (the CUDA
    // kernel adds in the same order, so both backends round the same sums).
    constexpr int64_t kCols = 16;
    const int64_t nchunks = (cols + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (n * cols > kParallelMin)
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      const int64_t c0 = ch * kCols, c1 = std::min(cols, c0 + kCols), w = c1 - c0;
      std::vector<A> accum(size_t(uniq * w));
      for (int64_t u = 0; u < uniq; ++u)
        for (int64_t c = c0; c < c1; ++c) accum[size_t(u * w + c - c0)] = load(pt + touched[size_t(u)] * cols + c);
      for (int64_t i = 0; i < n; ++i) {
        A* a = accum.data() + slot[size_t(i)] * w;
        const T* s = ps + i * cols;
        for (int64_t c = c0; c < c1; ++c) a[c - c0] += load(s + c);
      }
      for (int64_t u = 0; u < uniq; ++u)
        for (int64_t c = c0; c < c1; ++c) store(pt + touched[size_t(u)] * cols + c, accum[size_t(u * w + c - c0)]);
    }
  });
}

void CpuBackend::positional_scale(const Tensor& x, const Tensor& table, const Tensor& positions, Tensor& y) {
  const int64_t cols = x.size(-1), rows = x.numel() / cols, period = positions.numel();
  for (int64_t i = 0; i < period; ++i) {
    const int64_t p = read_index(positions, i);
    DENSE_CHECK(p >= 0 && p < table.size(0), "positional_scale: position {} outside the RelPE table of {} rows", p,
                table.size(0));
  }
  const Tensor tab = table.dtype() == x.dtype() ? table : table.to(x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pt = static_cast<const T*>(tab.raw_data());
    T* py = static_cast<T*>(y.raw_data());
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const T* t = pt + read_index(positions, r % period) * cols;
      for (int64_t c = 0; c < cols; ++c) store(py + r * cols + c, load(px + r * cols + c) * load(t + c));
    }
  });
}

void CpuBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& positions, bool inverse,
                      Tensor& y) {
  const int64_t cols = x.size(-1), half = cols / 2, rows = x.numel() / cols, period = positions.numel();
  for (int64_t i = 0; i < period; ++i) {
    const int64_t p = read_index(positions, i);
    DENSE_CHECK(p >= 0 && p < cos.size(0), "rope: position {} outside the RoPE cache of {} rows", p, cos.size(0));
  }
  const Tensor tc = cos.dtype() == x.dtype() ? cos : cos.to(x.dtype());
  const Tensor ts = sin.dtype() == x.dtype() ? sin : sin.to(x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pc = static_cast<const T*>(tc.raw_data());
    const T* ps = static_cast<const T*>(ts.raw_data());
    T* py = static_cast<T*>(y.raw_data());
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t pos = read_index(positions, r % period);
      const T* c = pc + pos * cols;
      const T* s = ps + pos * cols;
      const T* xr = px + r * cols;
      T* yr = py + r * cols;
      for (int64_t j = 0; j < half; ++j) {
        const A x1 = load(xr + j), x2 = load(xr + j + half);
        if (!inverse) {
          // rot(x) = [-x2, x1]
          store(yr + j, x1 * load(c + j) - x2 * load(s + j));
          store(yr + j + half, x2 * load(c + j + half) + x1 * load(s + j + half));
        } else {
          // y = x*cos - rot(x*sin), rot(z) = [-z2, z1]  =>  y1 = x1 c1 + x2 s2, y2 = x2 c2 - x1 s1
          store(yr + j, x1 * load(c + j) + x2 * load(s + j + half));
          store(yr + j + half, x2 * load(c + j + half) - x1 * load(s + j));
        }
      }
    }
  });
}

void CpuBackend::max_pool_forward(const Tensor& x, Tensor& out, Tensor& argmax) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    int64_t* pa = static_cast<int64_t*>(argmax.raw_data());
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < D; ++c) {
        int64_t best = 0;
        A bv = load(px + b * N * D + c);
        for (int64_t i = 1; i < N; ++i) {
          const A v = load(px + (b * N + i) * D + c);
          if (v > bv) {
            bv = v;
            best = i;
          }
        }
        store(po + b * D + c, bv);
        pa[b * D + c] = best;
      }
  });
}

void CpuBackend::max_pool_backward(const Tensor& dout, const Tensor& argmax, Tensor& dx) {
  const int64_t B = dx.size(0), N = dx.size(1), D = dx.size(2);
  dispatch_float(dx.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pd = static_cast<const T*>(dout.raw_data());
    const int64_t* pa = static_cast<const int64_t*>(argmax.raw_data());
    T* px = static_cast<T*>(dx.raw_data());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < D; ++c) {
        T* dst = px + (b * N + pa[b * D + c]) * D + c;
        store(dst, load(dst) + load(pd + b * D + c));
      }
  });
}

}  // namespace dense
