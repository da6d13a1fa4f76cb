// Element-wise kernels, activations, dropout, column sums, whole-tensor reductions, gathers/scatters,
// positional scaling, RoPE, band masks and max pooling. Reductions use fixed blocks combined in a fixed order
// (no float atomics), so every result is run-to-run identical.
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

// One Philox call decides four consecutive elements (core/philox.h), so a thread owns a group of four.
template <typename T>
__global__ void dropout_kernel(const T* x, float p, acc_t<T> scale, uint64_t seed, uint64_t offset, T* y,
                               int64_t n) {
  using A = acc_t<T>;
  const int64_t groups = (n + 3) / 4;
  DENSE_GRID_STRIDE(g, groups) {
    const Philox4 r = philox4x32_10(seed, offset + uint64_t(g));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * g + k;
      if (i < n) st(y + i, uint_to_unit_float(r.v[k]) >= p ? ld(x + i) * scale : A(0));
    }
  }
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
      if (r == Reduction::Sum) acc += v;
      else if (r == Reduction::SumSquares) acc += v * v;
      else if (r == Reduction::MaxAbs) acc = smax(acc, fabs(v));
      else acc += isfinite(v) ? 0.0 : 1.0;
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

// ---- gathers and positions ----------------------------------------------------------------------------

template <typename T, typename I>
__global__ void gather_kernel(const T* table, int64_t rows, int64_t cols, const I* ids, int64_t n, double beta, T* out,
                              ErrorWord* err) {
  using A = acc_t<T>;
  DENSE_GRID_STRIDE(idx, n * cols) {
    const int64_t i = idx / cols, c = idx % cols;
    const int64_t id = int64_t(ids[i]);
    if (id < 0 || id >= rows) {
      if (c == 0) report_error(err, kErrGatherId, id, i, rows);
      continue;
    }
    const A v = ld(table + id * cols + c);
    st(out + idx, beta == 0.0 ? v : v + A(beta) * ld(out + idx));
  }
}

// Deterministic scatter-add without atomics. Thread (column c, bucket b) owns the table entries [id, c] with
// id & mask == b and applies every occurrence of them in id order, so each entry sees the same additions in
// the same order as the CPU's loop. Buckets multiply the parallelism beyond the column count; the price is
// that every thread scans all ids (staged through shared memory). The table is read and written as TT: the
// caller passes an f32 copy of a bf16/f16 table, so sums round once (as the CPU's accumulator slots do).
constexpr int kScatterTile = 1024;
constexpr int kScatterRowsPerBlock = 8;

template <typename T, typename TT, typename I>
__global__ void scatter_add_kernel(const T* src, const I* ids, int64_t n, TT* table, int64_t rows, int64_t cols,
                                   unsigned mask, ErrorWord* err) {
  __shared__ int64_t tile[kScatterTile];
  const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  const unsigned bucket = blockIdx.y * blockDim.y + threadIdx.y;
  const int tid = threadIdx.y * 32 + threadIdx.x, nthreads = 32 * blockDim.y;
  for (int64_t base = 0; base < n; base += kScatterTile) {
    const int cnt = int(min(int64_t(kScatterTile), n - base));
    __syncthreads();
    for (int t = tid; t < cnt; t += nthreads) tile[t] = int64_t(ids[base + t]);
    __syncthreads();
    if (c >= cols) continue;
    for (int t = 0; t < cnt; ++t) {
      const int64_t id = tile[t];
      if ((unsigned(uint64_t(id)) & mask) != bucket) continue;
      if (id < 0 || id >= rows) {
        if (c == 0) report_error(err, kErrScatterId, id, base + t, rows);
        continue;
      }
      TT* dst = table + id * cols + c;
      st(dst, ld(dst) + acc_t<TT>(ld(src + (base + t) * cols + c)));
    }
  }
}

// The CPU converts an f32 table to x's dtype before use; TT -> T -> accumulator reproduces that rounding.
template <typename T, typename TT>
__device__ __forceinline__ acc_t<T> load_as(const TT* p) {
  if constexpr (std::is_same_v<T, TT>) {
    return ld(p);
  } else {
    const T v = convert<T>(*p);
    return ld(&v);
  }
}

template <typename T, typename TT, typename I>
__global__ void positional_scale_kernel(const T* x, int64_t rows, int64_t cols, const TT* table, int64_t table_rows,
                                        const I* positions, int64_t period, T* y, ErrorWord* err) {
  DENSE_GRID_STRIDE(idx, rows * cols) {
    const int64_t r = idx / cols, c = idx % cols;
    const int64_t pos = int64_t(positions[r % period]);
    if (pos < 0 || pos >= table_rows) {
      if (c == 0) report_error(err, kErrPosition, pos, r % period, table_rows);
      continue;
    }
    st(y + idx, ld(x + idx) * load_as<T>(table + pos * cols + c));
  }
}

template <typename T, typename TT, typename I>
__global__ void rope_kernel(const T* x, int64_t rows, int64_t cols, const TT* cos, const TT* sin, int64_t table_rows,
                            const I* positions, int64_t period, bool inverse, T* y, ErrorWord* err) {
  using A = acc_t<T>;
  const int64_t half = cols / 2;
  DENSE_GRID_STRIDE(idx, rows * half) {
    const int64_t r = idx / half, j = idx % half;
    const int64_t pos = int64_t(positions[r % period]);
    if (pos < 0 || pos >= table_rows) {
      if (j == 0) report_error(err, kErrRopePosition, pos, r % period, table_rows);
      continue;
    }
    const TT* c = cos + pos * cols;
    const TT* s = sin + pos * cols;
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const A x1 = ld(xr + j), x2 = ld(xr + j + half);
    if (!inverse) {
      // rot(x) = [-x2, x1]
      st(yr + j, x1 * load_as<T>(c + j) - x2 * load_as<T>(s + j));
      st(yr + j + half, x2 * load_as<T>(c + j + half) + x1 * load_as<T>(s + j + half));
    } else {
      // y = x*cos - rot(x*sin): y1 = x1 c1 + x2 s2, y2 = x2 c2 - x1 s1
      st(yr + j, x1 * load_as<T>(c + j) + x2 * load_as<T>(s + j + half));
      st(yr + j + half, x2 * load_as<T>(c + j + half) - x1 * load_as<T>(s + j));
    }
  }
}

template <typename T>
__global__ void band_mask_kernel(T* s, int64_t total, int64_t rows, int64_t cols, int64_t lo, int64_t hi) {
  DENSE_GRID_STRIDE(idx, total) {
    const int64_t j = idx % cols, i = (idx / cols) % rows;
    if (j - i < lo || j - i > hi) st(s + idx, acc_t<T>(0));
  }
}

// ---- max pooling ---------------------------------------------------------------------------------------

template <typename T>
__global__ void max_pool_forward_kernel(const T* x, int64_t B, int64_t N, int64_t D, T* out, int64_t* argmax) {
  using A = acc_t<T>;
  DENSE_GRID_STRIDE(idx, B * D) {
    const int64_t b = idx / D, c = idx % D;
    int64_t best = 0;
    A bv = ld(x + b * N * D + c);
    for (int64_t i = 1; i < N; ++i) {
      const A v = ld(x + (b * N + i) * D + c);
      if (v > bv) {  // strict: the first index wins ties, as on the CPU
        bv = v;
        best = i;
      }
    }
    st(out + idx, bv);
    argmax[idx] = best;
  }
}

template <typename T>
__global__ void max_pool_backward_kernel(const T* dout, const int64_t* argmax, int64_t B, int64_t N, int64_t D, T* dx,
                                         ErrorWord* err) {
  // Each (b, c) owns a distinct element of dx, so the accumulation needs no ordering.
  DENSE_GRID_STRIDE(idx, B * D) {
    const int64_t b = idx / D, c = idx % D, a = argmax[idx];
    if (a < 0 || a >= N) {
      report_error(err, kErrArgmax, a, idx, N);
      continue;
    }
    T* dst = dx + (b * N + a) * D + c;
    st(dst, ld(dst) + ld(dout + idx));
  }
}

template <typename F>
void dispatch_index(bool is64, F&& f) {
  if (is64) f(int64_t{});
  else f(int32_t{});
}

unsigned floor_pow2(int64_t v) {
  unsigned p = 1;
  while (int64_t(p) * 2 <= v) p *= 2;
  return p;
}

}  // namespace

void binary(const Ctx& ctx, DType t, BinaryOp op, Broadcast bcast, double alpha, const void* a, const void* b,
            double beta, void* out, int64_t n, int64_t cols) {
  if (n == 0) return;
  dispatch_float(t, "binary", [&](auto tag) {
    using T = decltype(tag);
    binary_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream>>>(op, bcast, alpha, static_cast<const T*>(a),
                                                                 static_cast<const T*>(b), beta, static_cast<T*>(out),
                                                                 n, cols);
  });
  DENSE_CUDA_LAUNCHED();
}

void activation_forward(const Ctx& ctx, DType t, Activation act, double slope, const void* x, void* y, int64_t n) {
  if (n == 0) return;
  dispatch_float(t, "activation", [&](auto tag) {
    using T = decltype(tag);
    activation_forward_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream>>>(act, slope, static_cast<const T*>(x),
                                                                             static_cast<T*>(y), n);
  });
  DENSE_CUDA_LAUNCHED();
}

void activation_backward(const Ctx& ctx, DType t, Activation act, double slope, const void* x, const void* dy,
                         double beta, void* dx, int64_t n) {
  if (n == 0) return;
  dispatch_float(t, "activation_backward", [&](auto tag) {
    using T = decltype(tag);
    activation_backward_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream>>>(
        act, slope, static_cast<const T*>(x), static_cast<const T*>(dy), beta, static_cast<T*>(dx), n);
  });
  DENSE_CUDA_LAUNCHED();
}

void dropout(const Ctx& ctx, DType t, const void* x, double p, uint64_t seed, uint64_t offset, void* y, int64_t n) {
  if (n == 0) return;
  dispatch_float(t, "dropout", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    dropout_kernel<T><<<blocks_for((n + 3) / 4), kThreads, 0, ctx.stream>>>(
        static_cast<const T*>(x), float(p), A(1.0 / (1.0 - p)), seed, offset, static_cast<T*>(y), n);
  });
  DENSE_CUDA_LAUNCHED();
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
      sum_rows_partial_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(static_cast<const T*>(x), outer, rows, cols,
                                                                    nblocks, partial.as<A>());
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
  if (n == 0) return;
  dispatch_float(t, "scale_in_place", [&](auto tag) {
    using T = decltype(tag);
    scale_in_place_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream>>>(static_cast<T*>(x), n, factor);
  });
  DENSE_CUDA_LAUNCHED();
}

void gather_rows(const Ctx& ctx, DType t, const void* table, int64_t rows, int64_t cols, const void* ids, bool ids64,
                 int64_t n, double beta, void* out) {
  if (n * cols == 0) return;
  dispatch_float(t, "gather_rows", [&](auto tag) {
    dispatch_index(ids64, [&](auto itag) {
      using T = decltype(tag);
      using I = decltype(itag);
      gather_kernel<T, I><<<blocks_for(n * cols), kThreads, 0, ctx.stream>>>(
          static_cast<const T*>(table), rows, cols, static_cast<const I*>(ids), n, beta, static_cast<T*>(out),
          ctx.error);
    });
  });
  DENSE_CUDA_LAUNCHED();
}

void scatter_add_rows(const Ctx& ctx, DType t, const void* src, const void* ids, bool ids64, int64_t n, void* table,
                      bool table_f32, int64_t rows, int64_t cols) {
  if (n * cols == 0) return;
  const int64_t col_tiles = (cols + 31) / 32;
  // About 2048 warps in flight, but no more buckets than ids could fill.
  const int64_t want = std::min<int64_t>(std::max<int64_t>(2048 / col_tiles, 1), std::max<int64_t>(n / 8, 1));
  const unsigned buckets = std::max(floor_pow2(std::min<int64_t>(want, 256)), unsigned(kScatterRowsPerBlock));
  const dim3 block(32, kScatterRowsPerBlock);
  const dim3 grid(unsigned(col_tiles), buckets / kScatterRowsPerBlock);
  dispatch_float(t, "scatter_add_rows", [&](auto tag) {
    dispatch_index(ids64, [&](auto itag) {
      using T = decltype(tag);
      using I = decltype(itag);
      auto launch = [&](auto ttag) {
        using TT = decltype(ttag);
        scatter_add_kernel<T, TT, I><<<grid, block, 0, ctx.stream>>>(
            static_cast<const T*>(src), static_cast<const I*>(ids), n, static_cast<TT*>(table), rows, cols,
            buckets - 1, ctx.error);
      };
      if (table_f32) {
        launch(float{});
      } else {
        launch(T{});
      }
    });
  });
  DENSE_CUDA_LAUNCHED();
}

void positional_scale(const Ctx& ctx, DType t, const void* x, int64_t rows, int64_t cols, const void* table,
                      bool table_f32, int64_t table_rows, const void* positions, bool pos64, int64_t period, void* y) {
  if (rows * cols == 0) return;
  dispatch_float(t, "positional_scale", [&](auto tag) {
    dispatch_index(pos64, [&](auto itag) {
      using T = decltype(tag);
      using I = decltype(itag);
      auto launch = [&](auto ttag) {
        using TT = decltype(ttag);
        positional_scale_kernel<T, TT, I><<<blocks_for(rows * cols), kThreads, 0, ctx.stream>>>(
            static_cast<const T*>(x), rows, cols, static_cast<const TT*>(table), table_rows,
            static_cast<const I*>(positions), period, static_cast<T*>(y), ctx.error);
      };
      if (table_f32) launch(float{});
      else launch(T{});
    });
  });
  DENSE_CUDA_LAUNCHED();
}

void rope(const Ctx& ctx, DType t, const void* x, int64_t rows, int64_t cols, const void* cos, const void* sin,
          bool table_f32, int64_t table_rows, const void* positions, bool pos64, int64_t period, bool inverse,
          void* y) {
  const int64_t work = rows * (cols / 2);
  if (work == 0) return;
  dispatch_float(t, "rope", [&](auto tag) {
    dispatch_index(pos64, [&](auto itag) {
      using T = decltype(tag);
      using I = decltype(itag);
      auto launch = [&](auto ttag) {
        using TT = decltype(ttag);
        rope_kernel<T, TT, I><<<blocks_for(work), kThreads, 0, ctx.stream>>>(
            static_cast<const T*>(x), rows, cols, static_cast<const TT*>(cos), static_cast<const TT*>(sin), table_rows,
            static_cast<const I*>(positions), period, inverse, static_cast<T*>(y), ctx.error);
      };
      if (table_f32) launch(float{});
      else launch(T{});
    });
  });
  DENSE_CUDA_LAUNCHED();
}

void band_mask(const Ctx& ctx, DType t, void* s, int64_t mats, int64_t rows, int64_t cols, int64_t lo, int64_t hi) {
  const int64_t total = mats * rows * cols;
  if (total == 0) return;
  dispatch_float(t, "band_mask", [&](auto tag) {
    using T = decltype(tag);
    band_mask_kernel<T><<<blocks_for(total), kThreads, 0, ctx.stream>>>(static_cast<T*>(s), total, rows, cols, lo, hi);
  });
  DENSE_CUDA_LAUNCHED();
}

void max_pool_forward(const Ctx& ctx, DType t, const void* x, int64_t B, int64_t N, int64_t D, void* out,
                      int64_t* argmax) {
  if (B * D == 0 || N == 0) return;
  dispatch_float(t, "max_pool", [&](auto tag) {
    using T = decltype(tag);
    max_pool_forward_kernel<T><<<blocks_for(B * D), kThreads, 0, ctx.stream>>>(static_cast<const T*>(x), B, N, D,
                                                                               static_cast<T*>(out), argmax);
  });
  DENSE_CUDA_LAUNCHED();
}

void max_pool_backward(const Ctx& ctx, DType t, const void* dout, const int64_t* argmax, int64_t B, int64_t N,
                       int64_t D, void* dx) {
  if (B * D == 0) return;
  dispatch_float(t, "max_pool_backward", [&](auto tag) {
    using T = decltype(tag);
    max_pool_backward_kernel<T><<<blocks_for(B * D), kThreads, 0, ctx.stream>>>(
        static_cast<const T*>(dout), argmax, B, N, D, static_cast<T*>(dx), ctx.error);
  });
  DENSE_CUDA_LAUNCHED();
}

}  // namespace dense::cuda
