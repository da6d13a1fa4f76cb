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

  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(Tensor& dst, const Tensor& src) override;
  void fill(Tensor& t, double value) override;
  void fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset) override;
  void fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) override;
  void synchronize() override;

  void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, MatRef a, MatRef b,
            double beta, MutMatRef c, int64_t batch) override;

  void binary(BinaryOp op, Broadcast bcast, double alpha, const Tensor& a, const Tensor& b, double beta,
              Tensor& out) override;
  void activation_forward(Activation act, double slope, const Tensor& x, Tensor& y) override;
  void activation_backward(Activation act, double slope, const Tensor& x, const Tensor& dy, double beta,
                           Tensor& dx) override;
  void dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& y) override;
  void sum_rows(const Tensor& x, int64_t outer, int64_t rows, double alpha, double beta, Tensor& out) override;
  double reduce(Reduction r, const Tensor& x) override;
  void scale_in_place(Tensor& x, double factor) override;
  void optimizer_step(const OptimizerStep& s, Tensor& values, const Tensor& grads, Tensor& exp_avg,
                      Tensor& exp_avg_sq) override;

  void rownorm_forward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor* bias, double eps, Tensor& y,
                       Tensor& stats) override;
  void rownorm_backward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor& stats, const Tensor& dy,
                        double beta_dx, Tensor& dx, Tensor* dgain, Tensor* dbias) override;

  void gather_rows(const Tensor& table, const Tensor& ids, double beta, Tensor& out) override;
  void scatter_add_rows(const Tensor& src, const Tensor& ids, Tensor& table) override;
  void positional_scale(const Tensor& x, const Tensor& table, const Tensor& positions, Tensor& y) override;
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& positions, bool inverse,
            Tensor& y) override;
  void band_mask(Tensor& s, int64_t lo, int64_t hi) override;

  void softmax_forward(const Tensor& s, double scale, const Tensor* key_valid, int64_t heads, Tensor& p) override;
  void softmax_backward(const Tensor& p, const Tensor& dp, double scale, Tensor& ds) override;
  void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, double scale,
                              Tensor& dlogits) override;
  void max_pool_forward(const Tensor& x, Tensor& out, Tensor& argmax) override;
  void max_pool_backward(const Tensor& dout, const Tensor& argmax, Tensor& dx) override;
  void graph_attention_forward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                               const GraphRef& graph, const Tensor* key_valid, int64_t heads, double scale, Tensor& o,
                               Tensor* lse) override;
  void graph_attention_backward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                                const GraphRef& graph, const GraphRef& transposed, const Tensor* key_valid,
                                int64_t heads, double scale, const Tensor& o, const Tensor& dout, const Tensor* lse,
                                Tensor& dq, Tensor& dk, Tensor& dv) override;

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
