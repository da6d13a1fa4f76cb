#pragma once
// The CPU backend: OpenBLAS for GEMM, OpenMP for everything else. Every reduction is computed over fixed
// blocks and combined in a fixed order, so results are bitwise identical for any thread count.
#include "backend/backend.h"

namespace dense {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  Device device() const override { return Device::cpu(); }
  CachingAllocator& allocator() override { return allocator_; }

  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(Tensor& dst, const Tensor& src) override;
  void fill(Tensor& t, double value) override;
  void fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset) override;
  void fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) override;
  void synchronize() override {}

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
  CachingAllocator allocator_;
};

// set_cpu_threads and cpu_threads (defined in backend.cpp) are declared in backend/backend.h.

}  // namespace dense
