#pragma once
// Device-side helpers shared by the kernel files: element conversions that round exactly like the CPU's
// (core/dtype.h), dtype dispatch, launch geometry and deterministic warp/block reductions.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "backend/cuda/kernels.h"
#include "core/dtype.h"
#include "core/philox.h"

namespace dense::cuda {

// After each launcher's kernels: the launch error, and with DENSE_CUDA_SYNC=1 the run's (see check_launch).
#define DENSE_CUDA_LAUNCHED() ::dense::cuda::check_launch(ctx, __func__, __FILE__, __LINE__)

template <typename T>
inline constexpr bool is_half_v = std::is_same_v<T, bf16> || std::is_same_v<T, f16>;
// Statistics of the row norms are f64 for f64 inputs, f32 otherwise.
template <typename T>
using stat_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// ---- conversions (bit-identical to dense::bf16 / dense::f16 on the host) ----------------------------

__device__ __forceinline__ float to_float(bf16 v) { return __uint_as_float(uint32_t(v.bits) << 16); }
__device__ __forceinline__ float to_float(f16 v) { return __half2float(__ushort_as_half(v.bits)); }

template <typename H>
__device__ __forceinline__ H half_from_float(float f) {
  H h;
  const uint32_t u = __float_as_uint(f);
  if constexpr (std::is_same_v<H, bf16>) {
    // Same rounding as bf16::from_float: quiet NaN keeping the sign, else round to nearest even.
    h.bits = (u & 0x7fffffffu) > 0x7f800000u ? uint16_t((u >> 16) | 0x40u)
                                             : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  } else {
    // The hardware conversion is IEEE round-to-nearest-even like f16::from_float; only NaN payloads differ.
    h.bits = (u & 0x7fffffffu) > 0x7f800000u ? uint16_t(((u >> 16) & 0x8000u) | 0x7e00u)
                                             : __half_as_ushort(__float2half_rn(f));
  }
  return h;
}

template <typename T>
__device__ __forceinline__ acc_t<T> ld(const T* p) {
  if constexpr (is_half_v<T>)
    return to_float(*p);
  else
    return *p;
}
template <typename T>
__device__ __forceinline__ void st(T* p, acc_t<T> v) {
  if constexpr (is_half_v<T>)
    *p = half_from_float<T>(v);
  else
    *p = v;
}
// cpu::convert: halves go through f32, everything else is a static_cast.
template <typename D, typename S>
__device__ __forceinline__ D convert(S s) {
  if constexpr (std::is_same_v<D, S>) {
    return s;
  } else if constexpr (is_half_v<S>) {
    return convert<D>(to_float(s));
  } else if constexpr (is_half_v<D>) {
    return half_from_float<D>(static_cast<float>(s));
  } else {
    return static_cast<D>(s);
  }
}

// ---- math in the accumulator type -----------------------------------------------------------------
__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dlog(float x) { return logf(x); }
__device__ __forceinline__ double dlog(double x) { return log(x); }
__device__ __forceinline__ float derf(float x) { return erff(x); }
__device__ __forceinline__ double derf(double x) { return erf(x); }
__device__ __forceinline__ float dtanh(float x) { return tanhf(x); }
__device__ __forceinline__ double dtanh(double x) { return tanh(x); }
__device__ __forceinline__ float dsqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double dsqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float dabs(float x) { return fabsf(x); }
__device__ __forceinline__ double dabs(double x) { return fabs(x); }
template <typename A>
__device__ __forceinline__ A dsign(A v) {
  return v > A(0) ? A(1) : (v < A(0) ? A(-1) : A(0));
}
// std::max's exact semantics (returns a unless a < b), so NaN handling matches the CPU.
template <typename A>
__device__ __forceinline__ A smax(A a, A b) {
  return a < b ? b : a;
}

// ---- host-side dispatch and geometry ----------------------------------------------------------------

template <typename F>
void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F64: f(double{}); return;
    case DType::F32: f(float{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    default: throw_unsupported_dtype(op, t);
  }
}

template <typename F>
void dispatch_all(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::I64: f(int64_t{}); return;
    case DType::I32: f(int32_t{}); return;
    case DType::I8: f(int8_t{}); return;
    case DType::U8: f(uint8_t{}); return;
    default: dispatch_float(t, op, std::forward<F>(f));
  }
}

constexpr int kThreads = 256;
// Grid-stride kernels need no more blocks than keep every SM busy several times over.
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 65536 ? (b > 0 ? b : 1) : 65536);
}

// The launcher of a grid-stride kernel over `threads` work items of dtype t: nothing when there are none; else
// launch(T{}, grid) for t's storage type T, grid = blocks_for(threads), then the launch check (DENSE_CUDA_LAUNCHED).
// `op` names the launcher in the dtype and launch errors.
template <typename Launch>
void launch_grid_stride(const Ctx& ctx, DType t, const char* op, int64_t threads, Launch&& launch) {
  if (threads == 0) return;
  dispatch_float(t, op, [&](auto tag) { launch(tag, blocks_for(threads)); });
  check_launch(ctx, op, __FILE__, __LINE__);
}

#define DENSE_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// f(i, u) for every element i < n with its uniform draw u in [0, 1), as the CPU draws it (core/philox.h's mapping):
// one Philox call decides four consecutive elements, so a thread owns a group of four (launch (n + 3) / 4 threads).
template <typename F>
__device__ __forceinline__ void for_each_uniform(int64_t n, uint64_t seed, uint64_t offset, F&& f) {
  const int64_t groups = (n + 3) / 4;
  DENSE_GRID_STRIDE(g, groups) {
    const Philox4 r = philox4x32_10(seed, offset + uint64_t(g));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * g + k;
      if (i < n) f(i, uint_to_unit_float(r.v[k]));
    }
  }
}

// ---- deferred errors ------------------------------------------------------------------------------
__device__ __forceinline__ void report_error(ErrorWord* w, int code, long long a, long long b, long long c) {
  if (atomicCAS(&w->code, 0, -1) == 0) {
    w->a = a;
    w->b = b;
    w->c = c;
    __threadfence();
    atomicExch(&w->code, code);
  }
}

// ---- row teams --------------------------------------------------------------------------------------
// Row kernels give each row a team of TEAM threads (threadIdx.x), TEAM = 32 (a warp; several rows per block
// along threadIdx.y) or a multiple of 32 up to 1024 (one row per block). Reductions use a fixed butterfly
// within warps and combine warps in index order, so every thread gets the same, run-to-run identical value.
template <int TEAM>
struct Team {
  static_assert(TEAM % 32 == 0 && TEAM <= 1024);
  static constexpr int kRowsPerBlock = TEAM >= 128 ? 1 : 128 / TEAM;
  static dim3 block() { return dim3(TEAM, kRowsPerBlock); }
  static unsigned grid(int64_t rows) {
    const int64_t b = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
    return unsigned(b < (1 << 30) ? b : (1 << 30));
  }
  __device__ static int64_t first_row() { return int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.y; }
  __device__ static int64_t row_stride() { return int64_t(gridDim.x) * kRowsPerBlock; }
};

struct SumOp {
  template <typename V>
  __device__ V operator()(V a, V b) const {
    return a + b;
  }
};
struct MaxOp {
  template <typename V>
  __device__ V operator()(V a, V b) const {
    return smax(a, b);
  }
};

// All threads of a block must call this together when TEAM > 32 (it synchronises the block).
template <int TEAM, typename V, typename Op>
__device__ __forceinline__ V team_reduce(V v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if constexpr (TEAM > 32) {
    __shared__ V partial[TEAM / 32];
    __syncthreads();  // the previous reduction's readers are done with `partial`
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    v = partial[0];
#pragma unroll
    for (int w = 1; w < TEAM / 32; ++w) v = op(v, partial[w]);
  }
  return v;
}

// Largest value with the smallest index among equals: the CPU's first-index tie rule, for any combine order.
template <typename A>
__device__ __forceinline__ void argmax_combine(A& v, int64_t& i, A ov, int64_t oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

template <int TEAM, typename A>
__device__ __forceinline__ void team_argmax(A& v, int64_t& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const A ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
    argmax_combine(v, i, ov, oi);
  }
  if constexpr (TEAM > 32) {
    __shared__ A pv[TEAM / 32];
    __shared__ int64_t pi[TEAM / 32];
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
      pv[threadIdx.x >> 5] = v;
      pi[threadIdx.x >> 5] = i;
    }
    __syncthreads();
    v = pv[0];
    i = pi[0];
#pragma unroll
    for (int w = 1; w < TEAM / 32; ++w) argmax_combine(v, i, pv[w], pi[w]);
  }
}

// Row kernels use a warp per row up to this length (several rows per block) and 512 threads per row beyond:
// short rows would leave most of a big team idle, long rows would serialise a warp.
constexpr int64_t kWarpRowMax = 1024;
constexpr int kBigTeam = 512;

// Calls f(std::integral_constant<int, TEAM>) with the team size for rows of length `cols`.
template <typename F>
void with_team(int64_t cols, F&& f) {
  if (cols <= kWarpRowMax)
    f(std::integral_constant<int, 32>{});
  else
    f(std::integral_constant<int, kBigTeam>{});
}

}  // namespace dense::cuda
