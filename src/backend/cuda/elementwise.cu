// Element-wise kernels, activations, dropout, column sums, whole-tensor reductions, in-place scaling and band
// masks. Reductions use fixed blocks combined in a fixed order (no float atomics), so every result is run-to-run
// identical.
#include "backend/cuda/device.cuh"
#include "core/philox.h"

namespace dense::cuda {
namespace {

// ---- element-wise -----------------------------------------------------------------------------------

template <typename T>
__global__ void binary_kernel(BinaryOp op, Broadcast bcast, double alpha, const T* a, const T* b, double beta, T* out,
                              int64_t n, int64_t cols) {
  using A = acc_t<T>;
  const A al = A(alpha), be = A(beta);
  DENSE_GRID_STRIDE(i, n) {
    const int64_t j = bcast == Broadcast::Full ? i : bcast == Broadcast::Row ? i % cols : i / cols;
    const A x = ld(a + i), y = ld(b + j);
    const A r = op == BinaryOp::Add ? x + y : op == BinaryOp::Sub ? x - y : x * y;
    st(out + i, beta == 0.0 ? al * r : al * r + be * ld(out + i));
  }
}

template <typename A>
__device__ __forceinline__ A act_forward(Activation act, A x, A slope) {
  switch (act) {
    case Activation::Identity: return x;
    case Activation::Relu: return x > A(0) ? x : A(0);
    case Activation::Gelu: return A(0.5) * x * (A(1) + derf(x * A(0.70710678118654752440)));
    case Activation::GeluTanh: {
      const A k = A(0.79788456080286535588);
      return A(0.5) * x * (A(1) + dtanh(k * (x + A(0.044715) * x * x * x)));
    }
    case Activation::Silu: return x / (A(1) + dexp(-x));
    case Activation::Tanh: return dtanh(x);
    case Activation::Hardtanh: return x < A(-1) ? A(-1) : (x > A(1) ? A(1) : x);
    case Activation::LeakyRelu: return x > A(0) ? x : slope * x;
    case Activation::Sigmoid: return A(1) / (A(1) + dexp(-x));
  }
  return x;
}

template <typename A>
__device__ __forceinline__ A act_derivative(Activation act, A x, A slope) {
  switch (act) {
    case Activation::Identity: return A(1);
    case Activation::Relu: return x > A(0) ? A(1) : A(0);
    case Activation::Gelu: {
      const A cdf = A(0.5) * (A(1) + derf(x * A(0.70710678118654752440)));
      const A pdf = dexp(A(-0.5) * x * x) * A(0.39894228040143267794);
      return cdf + x * pdf;
    }
    case Activation::GeluTanh: {
      const A k = A(0.79788456080286535588), c = A(0.044715);
      const A t = dtanh(k * (x + c * x * x * x));
      return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * k * (A(1) + A(3) * c * x * x);
    }
    case Activation::Silu: {
      const A s = A(1) / (A(1) + dexp(-x));
      return s * (A(1) + x * (A(1) - s));
    }
    case Activation::Tanh: {
      const A t = dtanh(x);
      return A(1) - t * t;
    }
    case Activation::Hardtanh: return (x > A(-1) && x < A(1)) ? A(1) : A(0);
    case Activation::LeakyRelu: return x > A(0) ? A(1) : slope;
    case Activation::Sigmoid: {
      const A s = A(1) / (A(1) + dexp(-x));
      return s * (A(1) - s);
    }
  }
  return A(1);
}

template <typename T>
__global__ void activation_forward_kernel(Activation act, double slope, const T* x, T* y, int64_t n) {
  using A = acc_t<T>;
  DENSE_GRID_STRIDE(i, n) st(y + i, act_forward<A>(act, ld(x + i), A(slope)));
}

template <typename T>
__global__ void activation_backward_kernel(Activation act, double slope, const T* x, const T* dy, double beta, T* dx,
                                           int64_t n) {
  using A = acc_t<T>;
  DENSE_GRID_STRIDE(i, n) {
    const A g = act_derivative<A>(act, ld(x + i), A(slope)) * ld(dy + i);
    st(dx + i, beta == 0.0 ? g : g + A(beta) * ld(dx + i));
  }
}

template <typename T>
__global__ void dropout_kernel(const T* x, float p, acc_t<T> scale, uint64_t seed, uint64_t offset, T* y, int64_t n) {
  using A = acc_t<T>;
  for_each_uniform(n, seed, offset, [&](int64_t i, float u) { st(y + i, u >= p ? ld(x + i) * scale : A(0)); });
}

// ---- column sums ------------------------------------------------------------------------------------
// The CPU's blocking: rows summed sequentially in blocks of 64, block sums added in block order. Matching it
// (with -fmad=false, src/CMakeLists.txt) makes the two backends agree to the last bit for the same inputs.
constexpr int64_t kRowBlock = 64;

template <typename T>
__global__ void sum_rows_partial_kernel(const T* x, int64_t outer, int64_t rows, int64_t cols, int64_t nblocks,
                                        acc_t<T>* partial) {
  using A = acc_t<T>;
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  for (int64_t ob = blockIdx.y; ob < outer * nblocks; ob += gridDim.y) {
    const int64_t o = ob / nblocks, blk = ob % nblocks;
    const int64_t r1 = min(rows, (blk + 1) * kRowBlock);
    A acc = A(0);
    for (int64_t r = blk * kRowBlock; r < r1; ++r) acc += ld(x + (o * rows + r) * cols + c);
    partial[ob * cols + c] = acc;
  }
}

template <typename T>
__global__ void sum_rows_finish_kernel(const acc_t<T>* partial, int64_t outer, int64_t cols, int64_t nblocks,
                                       double alpha, double beta, T* out) {
  using A = acc_t<T>;
  DENSE_GRID_STRIDE(idx, outer * cols) {
    const int64_t o = idx / cols, c = idx % cols;
    A s = A(0);
    for (int64_t blk = 0; blk < nblocks; ++blk) s += partial[(o * nblocks + blk) * cols + c];
    st(out + idx, beta == 0.0 ? A(alpha) * s : A(alpha) * s + A(beta) * ld(out + idx));
  }
}

// ---- whole-tensor reductions ----------------------------------------------------------------------------
constexpr int64_t kReduceChunk = 4096;  // the CPU backend's block size
constexpr int kReduceThreads = 256;

template <typename T>
__global__ void reduce_kernel(Reduction r, const T* x, int64_t n, double* partials) {
  __shared__ double sm[kReduceThreads];
  const int64_t nblocks = (n + kReduceChunk - 1) / kReduceChunk;
  const int tid = threadIdx.x;
  for (int64_t blk = blockIdx.x; blk < nblocks; blk += gridDim.x) {
    double acc = 0.0;
    const int64_t i1 = min(n, (blk + 1) * kReduceChunk);
    for (int64_t i = blk * kReduceChunk + tid; i < i1; i += kReduceThreads) {
      const double v = convert<double>(x[i]);
      if (r == Reduction::Sum)
        acc += v;
      else if (r == Reduction::SumSquares)
        acc += v * v;
      else if (r == Reduction::MaxAbs)
        acc = smax(acc, fabs(v));
      else
        acc += isfinite(v) ? 0.0 : 1.0;
    }
    sm[tid] = acc;
    __syncthreads();
    for (int s = kReduceThreads / 2; s > 0; s >>= 1) {
      if (tid < s) sm[tid] = r == Reduction::MaxAbs ? smax(sm[tid], sm[tid + s]) : sm[tid] + sm[tid + s];
      __syncthreads();
    }
    if (tid == 0) partials[blk] = sm[0];
    __syncthreads();
  }
}

template <typename T>
__global__ void scale_in_place_kernel(T* x, int64_t n, double factor) {
  DENSE_GRID_STRIDE(i, n) x[i] = convert<T>(convert<double>(x[i]) * factor);
}

template <typename T>
__global__ void band_mask_kernel(T* s, int64_t total, int64_t rows, int64_t cols, int64_t lo, int64_t hi) {
  DENSE_GRID_STRIDE(idx, total) {
    const int64_t j = idx % cols, i = (idx / cols) % rows;
    if (j - i < lo || j - i > hi) st(s + idx, acc_t<T>(0));
  }
}

}  // namespace

void binary(const Ctx& ctx, DType t, BinaryOp op, Broadcast bcast, double alpha, const void* a, const void* b,
            double beta, void* out, int64_t n, int64_t cols) {
  launch_grid_stride(ctx, t, "binary", n, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    binary_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(op, bcast, alpha, static_cast<const T*>(a),
                                                        static_cast<const T*>(b), beta, static_cast<T*>(out), n, cols);
  });
}

void activation_forward(const Ctx& ctx, DType t, Activation act, double slope, const void* x, void* y, int64_t n) {
  launch_grid_stride(ctx, t, "activation_forward", n, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    activation_forward_kernel<T>
        <<<grid, kThreads, 0, ctx.stream>>>(act, slope, static_cast<const T*>(x), static_cast<T*>(y), n);
  });
}

void activation_backward(const Ctx& ctx, DType t, Activation act, double slope, const void* x, const void* dy,
                         double beta, void* dx, int64_t n) {
  launch_grid_stride(ctx, t, "activation_backward", n, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    activation_backward_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(
        act, slope, static_cast<const T*>(x), static_cast<const T*>(dy), beta, static_cast<T*>(dx), n);
  });
}

void dropout(const Ctx& ctx, DType t, const void* x, double p, uint64_t seed, uint64_t offset, void* y, int64_t n) {
  launch_grid_stride(ctx, t, "dropout", (n + 3) / 4, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dropout_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(static_cast<const T*>(x), float(p), A(1.0 / (1.0 - p)), seed,
                                                         offset, static_cast<T*>(y), n);
  });
}

void sum_rows(const Ctx& ctx, DType t, const void* x, int64_t outer, int64_t rows, int64_t cols, double alpha,
              double beta, void* out) {
  if (outer * cols == 0) return;
  dispatch_float(t, "sum_rows", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const int64_t nblocks = (rows + kRowBlock - 1) / kRowBlock;
    Scratch partial(ctx.alloc, size_t(outer * nblocks * cols) * sizeof(A));
    if (nblocks > 0) {
      const dim3 grid(unsigned((cols + kThreads - 1) / kThreads), unsigned(std::min<int64_t>(outer * nblocks, 65535)));
      sum_rows_partial_kernel<T>
          <<<grid, kThreads, 0, ctx.stream>>>(static_cast<const T*>(x), outer, rows, cols, nblocks, partial.as<A>());
      DENSE_CUDA_LAUNCHED();
    }
    sum_rows_finish_kernel<T><<<blocks_for(outer * cols), kThreads, 0, ctx.stream>>>(
        partial.as<A>(), outer, cols, nblocks, alpha, beta, static_cast<T*>(out));
  });
  DENSE_CUDA_LAUNCHED();
}

int64_t reduce_blocks(int64_t n) { return (n + kReduceChunk - 1) / kReduceChunk; }

void reduce_partials(const Ctx& ctx, DType t, Reduction r, const void* x, int64_t n, double* partials) {
  const int64_t nblocks = reduce_blocks(n);
  if (nblocks == 0) return;
  dispatch_all(t, "reduce", [&](auto tag) {
    using T = decltype(tag);
    reduce_kernel<T><<<unsigned(std::min<int64_t>(nblocks, 65536)), kReduceThreads, 0, ctx.stream>>>(
        r, static_cast<const T*>(x), n, partials);
  });
  DENSE_CUDA_LAUNCHED();
}

void scale_in_place(const Ctx& ctx, DType t, void* x, int64_t n, double factor) {
  launch_grid_stride(ctx, t, "scale_in_place", n, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    scale_in_place_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(static_cast<T*>(x), n, factor);
  });
}

void band_mask(const Ctx& ctx, DType t, void* s, int64_t mats, int64_t rows, int64_t cols, int64_t lo, int64_t hi) {
  const int64_t total = mats * rows * cols;
  launch_grid_stride(ctx, t, "band_mask", total, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    band_mask_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(static_cast<T*>(s), total, rows, cols, lo, hi);
  });
}

}  // namespace dense::cuda
