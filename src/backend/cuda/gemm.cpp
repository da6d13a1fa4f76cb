// GEMM through cuBLAS. Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ, so the operands are
// swapped (B first, dims n and m exchanged) and each keeps its own transpose flag.
#include <algorithm>
#include <climits>

#include "backend/cuda/backend.h"

namespace dense::cuda {

void CudaBackend::gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, MatRef a,
                       MatRef b, double beta, MutMatRef c, int64_t batch) {
  activate();
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {
    // No products: C = beta * C, without asking cuBLAS about an empty inner dimension.
    scale_matrices(ctx(), dtype, c.data, m, n, c.ld, c.batch_stride, batch, beta);
    return;
  }
  DENSE_CHECK(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && a.ld <= INT_MAX && b.ld <= INT_MAX && c.ld <= INT_MAX,
              "CUDA gemm: dims {}x{}x{} (ld {}, {}, {}) exceed cuBLAS's int range", m, n, k, a.ld, b.ld, c.ld);

  cudaDataType_t type;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  switch (dtype) {
    case DType::F64:
      type = CUDA_R_64F;
      compute = CUBLAS_COMPUTE_64F;
      break;
    case DType::F32:
      type = CUDA_R_32F;
      // TF32 changes f32 results in the 4th digit: only on explicit request.
      compute = allow_tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case DType::BF16: type = CUDA_R_16BF; break;
    case DType::F16: type = CUDA_R_16F; break;
    default: throw_unsupported_dtype("gemm", dtype);
  }
  // Scalars follow the compute type: double for 64F, float otherwise.
  const double alpha64 = alpha, beta64 = beta;
  const float alpha32 = float(alpha), beta32 = float(beta);
  const void* alpha_p = dtype == DType::F64 ? static_cast<const void*>(&alpha64) : &alpha32;
  const void* beta_p = dtype == DType::F64 ? static_cast<const void*>(&beta64) : &beta32;
  const size_t esize = dtype_size(dtype);
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;

  // Very large batches go in slices: a launch grid's z extent is 65535.
  constexpr int64_t kMaxBatch = 65535;
  for (int64_t start = 0; start < batch; start += kMaxBatch) {
    const int64_t count = std::min(kMaxBatch, batch - start);
    const char* pa = static_cast<const char*>(a.data) + start * a.batch_stride * int64_t(esize);
    const char* pb = static_cast<const char*>(b.data) + start * b.batch_stride * int64_t(esize);
    char* pc = static_cast<char*>(c.data) + start * c.batch_stride * int64_t(esize);
    DENSE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        cublas_, op_b, op_a, int(n), int(m), int(k), alpha_p, pb, type, int(b.ld), b.batch_stride, pa, type, int(a.ld),
        a.batch_stride, beta_p, pc, type, int(c.ld), c.batch_stride, int(count), compute, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace dense::cuda
