#pragma once
// The CUDA backend class, shared by the host-side glue files (compiled by g++): backend.cpp (lifetime, memory,
// and the glue of every op but GEMM) and gemm.cpp (cuBLAS). The glue trusts what ops (backend/ops.h) checked,
// unpacks tensors into pointers and sizes and calls the launchers of kernels.h; it checks only what CUDA alone
// knows (launch errors, the deferred kernel error word, the graph kernels' head size, cuBLAS's int range).
// One stream per backend: every kernel, copy and cuBLAS call is ordered on it, which is what makes freeing
// temporaries right after enqueueing safe.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <atomic>

#include "backend/backend.h"
#include "backend/cuda/kernels.h"

namespace dense::cuda {

[[noreturn]] void throw_cublas_error(const char* call, const char* file, int line, int status);

#define DENSE_CUBLAS_CHECK(call)                                                                            \
  do {                                                                                                      \
    const cublasStatus_t dense_cublas_status_ = (call);                                                     \
    if (dense_cublas_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                         \
      ::dense::cuda::throw_cublas_error(#call, __FILE__, __LINE__, static_cast<int>(dense_cublas_status_)); \
  } while (0)

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::cuda(index_); }
  CachingAllocator& allocator() override { return allocator_; }
  void shutdown() noexcept override;
  cudaStream_t stream() const { return stream_; }

  void synchronize() override;

#include "backend/kernel_overrides.inc"

 private:
  // Makes this backend's device current for the calling thread (cheap when it already is).
  void activate() const;
  // The launch context; `may_report` marks the deferred error word for checking at the next sync point.
  Ctx ctx(bool may_report = false);
  // Waits for the stream, then raises any error a kernel deferred (bad ids, labels, positions).
  void sync_and_check();
  void release() noexcept;

  int index_;
  bool allow_tf32_ = false;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  ErrorWord* error_dev_ = nullptr;
  ErrorWord* error_host_ = nullptr;  // pinned
  std::atomic<bool> error_pending_{false};
  CachingAllocator allocator_;
};

}  // namespace dense::cuda
