// GEMM's one kernel of our own: C = beta * C for an empty inner dimension (k == 0), which cuBLAS is not asked
// about. Every product goes through cuBLAS (gemm.cpp).
#include "backend/cuda/device.cuh"

namespace dense::cuda {
namespace {

template <typename T>
__global__ void scale_kernel(T* c, int64_t m, int64_t n, int64_t ldc, int64_t stride, int64_t batch, double beta) {
  using A = acc_t<T>;
  const int64_t total = batch * m * n;
  DENSE_GRID_STRIDE(idx, total) {
    const int64_t j = idx % n, i = (idx / n) % m, b = idx / (m * n);
    T* p = c + b * stride + i * ldc + j;
    st(p, beta == 0.0 ? A(0) : A(beta) * ld(p));
  }
}

}  // namespace

void scale_matrices(const Ctx& ctx, DType t, void* c, int64_t m, int64_t n, int64_t ldc, int64_t stride, int64_t batch,
                    double beta) {
  const int64_t total = batch * m * n;
  if (total == 0) return;
  dispatch_float(t, "gemm", [&](auto tag) {
    using T = decltype(tag);
    scale_kernel<T><<<blocks_for(total), kThreads, 0, ctx.stream>>>(static_cast<T*>(c), m, n, ldc, stride, batch, beta);
  });
  DENSE_CUDA_LAUNCHED();
}

}  // namespace dense::cuda
