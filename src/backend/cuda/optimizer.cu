// Fused multi-tensor optimizer updates over the flat parameter arena: one CUDA block per arena block
// (backend.h OptimizerStep), every element's arithmetic in f64 as on the CPU. LAMB's per-parameter norms are
// per-block partials combined in block order by a second kernel, so the whole update stays on the device
// with no host round trip.
#include "backend/cuda/device.cuh"

namespace dense::cuda {

namespace {

constexpr int kOptThreads = 256;

struct Coefficients {
  double lr, b1, b2, eps, wd;
  double bc1, bc2, bc2_sqrt;  // bias corrections 1 - beta^step (computed once on the host)
};

__device__ __forceinline__ int64_t blk_begin(const int64_t* b, int64_t i) { return b[4 * i]; }
__device__ __forceinline__ int64_t blk_end(const int64_t* b, int64_t i) { return b[4 * i + 1]; }
__device__ __forceinline__ int64_t blk_range(const int64_t* b, int64_t i) { return b[4 * i + 2]; }
__device__ __forceinline__ bool blk_decay(const int64_t* b, int64_t i) { return b[4 * i + 3] != 0; }

// torch.optim.AdamW's operation order (train/optimizer.h): decay, moments, then the Adam step.
template <typename T>
__global__ void adamw_kernel(Coefficients c, const int64_t* blocks, int64_t nblocks, T* p, const T* g, T* m, T* v) {
  const double step_size = c.lr / c.bc1, decay_factor = 1.0 - c.lr * c.wd;
  for (int64_t bi = blockIdx.x; bi < nblocks; bi += gridDim.x) {
    const double factor = blk_decay(blocks, bi) ? decay_factor : 1.0;
    for (int64_t i = blk_begin(blocks, bi) + threadIdx.x, e = blk_end(blocks, bi); i < e; i += blockDim.x) {
      const double gi = double(g[i]);
      const double pi = double(p[i]) * factor;
      const double mi = double(m[i]) * c.b1 + (1.0 - c.b1) * gi;
      const double vi = double(v[i]) * c.b2 + (1.0 - c.b2) * gi * gi;
      const double denom = sqrt(vi) / c.bc2_sqrt + c.eps;
      p[i] = T(pi + (-step_size) * mi / denom);
      m[i] = T(mi);
      v[i] = T(vi);
    }
  }
}

template <typename T>
__device__ __forceinline__ double lamb_update(const Coefficients& c, const T* p, const T* m, const T* v, int64_t i,
                                              double wd) {
  const double mhat = double(m[i]) / c.bc1, vhat = double(v[i]) / c.bc2;
  return mhat / (sqrt(vhat) + c.eps) + wd * double(p[i]);
}

// Pass 1: moments, and per arena block the sums of p² and u² (a fixed shared-memory tree).
template <typename T>
__global__ void lamb_moments_kernel(Coefficients c, const int64_t* blocks, int64_t nblocks, const T* p, const T* g,
                                    T* m, T* v, double* sums) {
  __shared__ double sp[kOptThreads], su[kOptThreads];
  const int tid = threadIdx.x;
  for (int64_t bi = blockIdx.x; bi < nblocks; bi += gridDim.x) {
    const double wd = blk_decay(blocks, bi) ? c.wd : 0.0;
    double ps = 0.0, us = 0.0;
    for (int64_t i = blk_begin(blocks, bi) + tid, e = blk_end(blocks, bi); i < e; i += kOptThreads) {
      const double gi = double(g[i]);
      m[i] = T(double(m[i]) * c.b1 + (1.0 - c.b1) * gi);
      v[i] = T(double(v[i]) * c.b2 + (1.0 - c.b2) * gi * gi);
      const double pi = double(p[i]), ui = lamb_update(c, p, m, v, i, wd);
      ps += pi * pi;
      us += ui * ui;
    }
    sp[tid] = ps;
    su[tid] = us;
    __syncthreads();
    for (int s = kOptThreads / 2; s > 0; s >>= 1) {
      if (tid < s) {
        sp[tid] += sp[tid + s];
        su[tid] += su[tid + s];
      }
      __syncthreads();
    }
    if (tid == 0) {
      sums[2 * bi] = sp[0];
      sums[2 * bi + 1] = su[0];
    }
    __syncthreads();
  }
}

// Pass 2: the thread of a range's first block sums the range's blocks in order and writes the trust ratio
// ||p|| / ||u|| (1 when either is 0) for each of them.
__global__ void lamb_ratio_kernel(const int64_t* blocks, int64_t nblocks, const double* sums, double* ratio) {
  DENSE_GRID_STRIDE(bi, nblocks) {
    const int64_t r = blk_range(blocks, bi);
    if (bi > 0 && blk_range(blocks, bi - 1) == r) continue;
    double ps = 0.0, us = 0.0;
    int64_t e = bi;
    for (; e < nblocks && blk_range(blocks, e) == r; ++e) {
      ps += sums[2 * e];
      us += sums[2 * e + 1];
    }
    const double pn = sqrt(ps), un = sqrt(us);
    const double rr = pn > 0.0 && un > 0.0 ? pn / un : 1.0;
    for (int64_t k = bi; k < e; ++k) ratio[k] = rr;
  }
}

// Pass 3: p -= lr * ratio * u, u recomputed from the stored moments exactly as pass 1 computed it.
template <typename T>
__global__ void lamb_apply_kernel(Coefficients c, const int64_t* blocks, int64_t nblocks, const double* ratio, T* p,
                                  const T* m, const T* v) {
  for (int64_t bi = blockIdx.x; bi < nblocks; bi += gridDim.x) {
    const double wd = blk_decay(blocks, bi) ? c.wd : 0.0;
    const double alpha = -(c.lr * ratio[bi]);
    for (int64_t i = blk_begin(blocks, bi) + threadIdx.x, e = blk_end(blocks, bi); i < e; i += blockDim.x)
      p[i] = T(double(p[i]) + alpha * lamb_update(c, p, m, v, i, wd));
  }
}

}  // namespace

void optimizer_step(const Ctx& ctx, DType t, const OptimizerArgs& a, void* values, const void* grads, void* exp_avg,
                    void* exp_avg_sq) {
  if (a.nblocks == 0) return;
  Coefficients c{a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, 0, 0, 0};
  c.bc1 = 1.0 - std::pow(a.beta1, double(a.step));
  c.bc2 = 1.0 - std::pow(a.beta2, double(a.step));
  c.bc2_sqrt = std::sqrt(c.bc2);
  const unsigned grid = unsigned(std::min<int64_t>(a.nblocks, 65535));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(values);
    const T* g = static_cast<const T*>(grads);
    T* m = static_cast<T*>(exp_avg);
    T* v = static_cast<T*>(exp_avg_sq);
    if (!a.lamb) {
      adamw_kernel<T><<<grid, kOptThreads, 0, ctx.stream>>>(c, a.blocks, a.nblocks, p, g, m, v);
      DENSE_CUDA_LAUNCHED();
      return;
    }
    Scratch work(ctx.alloc, size_t(3 * a.nblocks) * sizeof(double));
    double* sums = work.as<double>();
    double* ratio = sums + 2 * a.nblocks;
    lamb_moments_kernel<T><<<grid, kOptThreads, 0, ctx.stream>>>(c, a.blocks, a.nblocks, p, g, m, v, sums);
    DENSE_CUDA_LAUNCHED();
    lamb_ratio_kernel<<<blocks_for(a.nblocks), kThreads, 0, ctx.stream>>>(a.blocks, a.nblocks, sums, ratio);
    DENSE_CUDA_LAUNCHED();
    lamb_apply_kernel<T><<<grid, kOptThreads, 0, ctx.stream>>>(c, a.blocks, a.nblocks, ratio, p, m, v);
    DENSE_CUDA_LAUNCHED();
  };
  if (t == DType::F64)
    run(double{});
  else if (t == DType::F32)
    run(float{});
  else
    throw_unsupported_dtype("optimizer_step", t);
}

}  // namespace dense::cuda
