#pragma once
// CQS-Attention (Bian & Somani 2025; docs/sparse-attention.md): exact attention over a long sequence split
// among W workers by a cyclic difference set. Worker w receives Q, K, V rows of its material tokens only and
// computes the attention cells of the (query group, key group) tiles it owns — every tile is owned by exactly
// one worker — restricted to an optional base pattern. The tiler merges the partial outputs:
//   softmax  o = Σ_w e^{lse_w - lse} o_w with lse = log Σ_w e^{lse_w} (the log-sum-exp merge, exact and stable;
//            the reference demo sums unnormalised, unshifted exponentials instead);
//   linear   o = Σ_w o_w (DenseAttention's quadratic path has no normaliser).
// The backward pass is a second round: every worker gets the final o and lse of its material rows and computes
// partial dQ, dK, dV over its own tiles, which are summed per token (they are sums over disjoint cells).
//
// Two ways to run the W workers:
//   sequential   one after another in this process (Stream-CQSA's idea): the attention working set of a step
//                is one worker's, about |I|/W of the whole;
//   distributed  worker = rank of a communicator of W ranks (MPI on CPU; NCCL ranks on GPUs), inputs
//                replicated; partial results meet in all-reduces, so every rank ends with the whole result.
#include <cstdint>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "nn/attention_graph.h"
#include "nn/device_graph.h"
#include "parallel/communicator.h"
#include "parallel/cqs_schedule.h"

namespace dense::parallel {

struct CqsAttentionConfig {
  GraphScore score = GraphScore::Softmax;
  int64_t heads = 1;
  double scale = 1.0;  // softmax: usually 1/sqrt(e); ignored by linear
};

class CqsAttention {
 public:
  // base: the attention mask over the whole sequence (rows = cols = seq_len), or null for full attention.
  CqsAttention(CqsSchedule schedule, const CqsAttentionConfig& config, const nn::CsrGraph* base = nullptr,
               Device device = Device::cpu());

  // q, k, v [B, N, H·e] on `device`; key_valid [B, N] or null. o [B, N, H·e]; lse [B, H, N] (softmax only;
  // rownorm_stats_dtype of q), written when given.
  void forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid, Tensor& o, Tensor* lse);
  void backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid, const Tensor& o,
                const Tensor* lse, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv);
  // The same with this process as worker comm.rank(); comm.size() must be W. Every rank passes the same inputs.
  void forward(Communicator& comm, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid,
               Tensor& o, Tensor* lse);
  void backward(Communicator& comm, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid,
                const Tensor& o, const Tensor* lse, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv);

  const CqsSchedule& schedule() const { return schedule_; }
  int64_t workers() const { return static_cast<int64_t>(plans_.size()); }
  // Worker w's material tokens (ascending global indices) and its local graph over them (owned tiles ∩ base),
  // built on demand: only one worker's graph exists at a time, which is what bounds the memory.
  const std::vector<int64_t>& material(int64_t w) const { return plans_[static_cast<size_t>(w)].material; }
  nn::CsrGraph worker_graph(int64_t w) const;

 private:
  struct WorkerPlan {
    std::vector<int64_t> material;
  };
  const nn::DeviceGraph& device_graph(int64_t w);
  struct Partial {
    Tensor o, lse;  // [B, M, d], [B, H, M]
  };
  Partial run_worker_forward(int64_t w, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid);
  // lse_host: the final lse [B, H, N] on the host (softmax; empty for linear), read once per backward.
  void run_worker_backward(int64_t w, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid,
                           const Tensor& o, const std::vector<double>& lse_host, DType lse_dtype, const Tensor& dout,
                           Tensor& dq, Tensor& dk, Tensor& dv);
  void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid) const;

  CqsSchedule schedule_;
  CqsAttentionConfig config_;
  Device device_;
  int64_t seq_len_ = 0;
  std::optional<nn::CsrGraph> base_;
  std::vector<WorkerPlan> plans_;
  int64_t cached_worker_ = -1;  // whose graph device_graph_ holds
  nn::DeviceGraph cached_graph_;
};

}  // namespace dense::parallel
