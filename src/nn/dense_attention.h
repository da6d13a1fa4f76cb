#pragma once
// DenseAttention (docs/model.md §1.5–§1.8): Y = concat_h Q_h K_hᵀ V_h with Q = A~ W_Qᵀ and K = V = A~ (one slice of the
// input per head), no softmax, no scale, no output projection. Global, local (`l`), shifted-local (`sl`),
// sliding-window (`sw`, causal) and chunked causal global layers share one block kernel: the (zero-padded)
// sequence is cut into blocks of C rows that are batched GEMMs over [B·blocks], plus the cross-block terms of
// the causal layers.
#include <cstdint>
#include <optional>
#include <string>

#include "nn/attention_patterns.h"
#include "nn/context.h"
#include "nn/device_graph.h"
#include "nn/linear.h"
#include "nn/parameter.h"
#include "nn/relpe.h"

namespace dense::nn {

enum class AttentionComplexity { Linear, Quadratic, Auto };
// linear, quadratic, auto; `field` names the config key in errors.
AttentionComplexity parse_complexity(const std::string& name, const std::string& field);

enum class LayerKind { Global, Local, ShiftedLocal, SlidingWindow };

struct DenseAttentionConfig {
  int64_t hidden = 0;                                          // d
  int64_t heads = 1;                                           // H; head size e = d / H
  AttentionComplexity complexity = AttentionComplexity::Auto;  // global non-causal layers only
  double dropout = 0.0;                                        // on the attention input, one mask for Q, K, V
  LayerKind kind = LayerKind::Global;
  int64_t window = 1024;      // w (local kinds)
  bool causal = false;        // decoder: tril₀ inside every block
  int64_t chunk_size = 1024;  // C of causal global layers
  bool local_relpe = true;    // l / sl: RelPE positions restart in every window
  RelPEScheme scheme;
  // Masked DenseAttention (docs/sparse-attention.md, graph attention): the quadratic path restricted to the pattern's
  // edges, o_i = Σ_{j ∈ A_i} (q_i·k_j) v_j, in nnz·e work. Replaces the layer kinds (global layers only).
  std::optional<PatternSpec> sparse;
  int64_t layer_index = 0;  // for interleaved factorised patterns
};

class DenseAttention {
 public:
  DenseAttention() = default;
  // Declares `<prefix>.queries` [d, d] (Q = A~ W_Qᵀ), initialised Normal(0, queries_init_std). relpe may be
  // null (no RelPE); it must outlive the layer.
  DenseAttention(ParameterSet& params, const std::string& prefix, const DenseAttentionConfig& cfg, const RelPE* relpe,
                 double queries_init_std);

  // a: [B, N, d], already normalised and scaled by m. Returns Y [B, N, d].
  Tensor forward(const Tensor& a, Context& ctx);
  // Returns dA; accumulates dW_Q into the parameter's grad (+=).
  Tensor backward(const Tensor& dy);
  void release();

  const DenseAttentionConfig& config() const { return cfg_; }
  Parameter* queries() const { return queries_; }

 private:
  enum class Kernel { Linear, Quadratic, Causal, Graph };
  // How a sequence of N rows is laid out for the block kernel.
  struct Plan {
    Kernel kernel = Kernel::Linear;
    int64_t length = 0;        // N
    int64_t lead = 0;          // zero rows before the sequence (shifted local)
    int64_t padded = 0;        // rows after zero padding, a multiple of `block`
    int64_t block = 0;         // rows per independent block (C)
    int64_t pos_window = 0;    // RelPE positions restart every pos_window rows (0: counted on the padded sequence)
    bool carry_state = false;  // causal global: add Q_c · Σ_{c'<c} K_{c'}ᵀ V_{c'}
    bool sliding = false;      // sliding window: add triu₁(Q_c K_{c−1}ᵀ) V_{c−1}
    int64_t blocks() const { return padded / block; }
  };

  Plan make_plan(int64_t n) const;
  Kernel bidirectional_kernel(AttentionComplexity complexity, int64_t n) const;
  bool relpe_on() const { return relpe_ != nullptr && relpe_->enabled(); }

  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v);
  void add_chunk_states(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o);
  void add_previous_window(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o);
  void attend_backward(const Tensor& g, Tensor& dq, Tensor& dk, Tensor& dv, bool shared_kv);
  void chunk_states_backward(const Tensor& g, Tensor& dq, Tensor& dk, Tensor& dv);
  void previous_window_backward(const Tensor& g, Tensor& dq, Tensor& dk, Tensor& dv);

  DenseAttentionConfig cfg_;
  int64_t head_size_ = 0;
  const RelPE* relpe_ = nullptr;
  Parameter* queries_ = nullptr;
  Dropout dropout_;

  // Saved by forward for backward.
  Plan plan_;
  int64_t batch_ = 0;
  Tensor positions_;
  Tensor x_;                 // projection input: after dropout, padding and the `qkv` RelPE [B, padded, d]
  Tensor q_, k_, v_;         // k_ and v_ alias x_ (or each other) when no separate RelPE applies
  Tensor mix_;               // per head: M = KᵀV [H, blocks, e, e] (linear) or S = (masked) QKᵀ [H, blocks, C, C]
  Tensor state_;             // causal global: exclusive prefix sum of the block states [H, B·nc, e, e]
  Tensor cross_;             // sliding window: triu₁(Q_c K_{c−1}ᵀ) [H, B, nc−1, C, C]
  PatternGraphCache graph_;  // sparse layers
};

}  // namespace dense::nn
