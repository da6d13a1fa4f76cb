// Row-indexed kernels: embedding-style gathers, the deterministic scatter-add, position-indexed RelPE scaling and
// RoPE, and max pooling with its argmax scatter. Ids, positions and argmaxes outside their table are skipped and
// reported through the deferred error word (kernels.h).
#include "backend/cuda/device.cuh"

namespace dense::cuda {
namespace {

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
  if (is64)
    f(int64_t{});
  else
    f(int32_t{});
}

unsigned floor_pow2(int64_t v) {
  unsigned p = 1;
  while (int64_t(p) * 2 <= v) p *= 2;
  return p;
}

}  // namespace

void gather_rows(const Ctx& ctx, DType t, const void* table, int64_t rows, int64_t cols, const void* ids, bool ids64,
                 int64_t n, double beta, void* out) {
  if (n * cols == 0) return;
  dispatch_float(t, "gather_rows", [&](auto tag) {
    dispatch_index(ids64, [&](auto itag) {
      using T = decltype(tag);
      using I = decltype(itag);
      gather_kernel<T, I><<<blocks_for(n * cols), kThreads, 0, ctx.stream>>>(static_cast<const T*>(table), rows, cols,
                                                                             static_cast<const I*>(ids), n, beta,
                                                                             static_cast<T*>(out), ctx.error);
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
        scatter_add_kernel<T, TT, I>
            <<<grid, block, 0, ctx.stream>>>(static_cast<const T*>(src), static_cast<const I*>(ids), n,
                                             static_cast<TT*>(table), rows, cols, buckets - 1, ctx.error);
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
      if (table_f32)
        launch(float{});
      else
        launch(T{});
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
      if (table_f32)
        launch(float{});
      else
        launch(T{});
    });
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
    max_pool_backward_kernel<T><<<blocks_for(B * D), kThreads, 0, ctx.stream>>>(static_cast<const T*>(dout), argmax, B,
                                                                                N, D, static_cast<T*>(dx), ctx.error);
  });
  DENSE_CUDA_LAUNCHED();
}

}  // namespace dense::cuda
