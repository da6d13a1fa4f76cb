#include "nn/dense_attention.h"

#include "backend/ops.h"

namespace dense::nn {

namespace {

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Head h of every block: the [blocks, rows, e] view of columns [h·e, (h+1)·e) of a contiguous [B, padded, d]
// tensor. Row stride d, so ops::matmul consumes it without a copy.
Tensor head(const Tensor& t, int64_t blocks, int64_t rows, int64_t h, int64_t e) {
  return t.view({blocks, rows, t.size(-1)}).slice(2, h * e, (h + 1) * e);
}

// Blocks [c0, c1) of sequence b, head h: [c1 - c0, rows, e].
Tensor head_blocks(const Tensor& t, int64_t rows, int64_t b, int64_t c0, int64_t c1, int64_t h, int64_t e) {
  const int64_t nc = t.size(1) / rows;
  return t.view({t.size(0) * nc, rows, t.size(-1)}).slice(0, b * nc + c0, b * nc + c1).slice(2, h * e, (h + 1) * e);
}

// [B, N, d] -> [B, padded, d]: `lead` zero rows, x, then zero rows.
Tensor pad_rows(const Tensor& x, int64_t lead, int64_t padded) {
  const int64_t n = x.size(1);
  if (lead == 0 && padded == n) return x;
  Tensor out = Tensor::empty({x.size(0), padded, x.size(2)}, x.dtype(), x.device());
  out.slice(1, lead, lead + n).copy_(x);
  // Strided copies are part of every backend's contract, strided fills are not: copy small zero blocks.
  const auto zero_rows = [&](int64_t begin, int64_t end) {
    if (begin < end)
      out.slice(1, begin, end).copy_(Tensor::zeros({x.size(0), end - begin, x.size(2)}, x.dtype(), x.device()));
  };
  zero_rows(0, lead);
  zero_rows(lead + n, padded);
  return out;
}

Tensor crop_rows(const Tensor& x, int64_t lead, int64_t n) {
  if (lead == 0 && x.size(1) == n) return x;
  return x.slice(1, lead, lead + n).contiguous();
}

// tril₀ (j <= i) and triu₁ (j > i) of every [rows, cols] matrix, in place.
void keep_lower(Tensor& s) { ops::band_mask(s, -s.size(-2), 0); }
void keep_strict_upper(Tensor& s) { ops::band_mask(s, 1, s.size(-1)); }

// L[c, c'] = 1 for c' < c: L·S is the exclusive prefix sum of the rows of S, Lᵀ·dS the reverse one.
Tensor strictly_lower_ones(int64_t n, DType dtype, Device device) {
  Tensor l = Tensor::full({n, n}, 1.0, dtype, device);
  ops::band_mask(l, -n, -1);
  return l;
}

}  // namespace

AttentionComplexity parse_complexity(const std::string& name, const std::string& field) {
  if (name == "linear") return AttentionComplexity::Linear;
  if (name == "quadratic") return AttentionComplexity::Quadratic;
  if (name == "auto") return AttentionComplexity::Auto;
  DENSE_FAIL("{}: unknown attention complexity '{}'; allowed: linear, quadratic, auto", field, name);
}

DenseAttention::DenseAttention(ParameterSet& params, const std::string& prefix, const DenseAttentionConfig& cfg,
                               const RelPE* relpe, double queries_init_std)
    : cfg_(cfg), relpe_(relpe), dropout_(cfg.dropout) {
  DENSE_CHECK(cfg.hidden > 0 && cfg.heads > 0 && cfg.hidden % cfg.heads == 0,
              "{}: hidden_size {} is not divisible by num_attention_heads {}", prefix, cfg.hidden, cfg.heads);
  DENSE_CHECK(cfg.dropout >= 0.0 && cfg.dropout < 1.0, "{}: attention_probs_dropout_prob {} is not in [0, 1)", prefix,
              cfg.dropout);
  head_size_ = cfg.hidden / cfg.heads;
  if (cfg.kind != LayerKind::Global)
    DENSE_CHECK(cfg.window > 0 && cfg.window % 2 == 0, "{}: window_size {} must be even and positive", prefix,
                cfg.window);
  DENSE_CHECK(cfg.kind != LayerKind::SlidingWindow || cfg.causal,
              "{}: sliding-window layers (local_scheme code 'sw') need causal: true", prefix);
  DENSE_CHECK(!cfg.causal || cfg.chunk_size > 0, "{}: chunk_size {} must be positive", prefix, cfg.chunk_size);
  if (cfg.sparse) {
    validate_pattern_spec(*cfg.sparse, prefix + ": attention pattern");
    DENSE_CHECK(cfg.kind == LayerKind::Global,
                "{}: sparse attention replaces the local layer kinds; turn "
                "local_attention off",
                prefix);
    DENSE_CHECK(cfg.sparse->causal == cfg.causal, "{}: the model is {} but its attention pattern is {}", prefix,
                cfg.causal ? "causal" : "bidirectional", cfg.sparse->causal ? "causal" : "bidirectional");
  }
  if (relpe_on())
    DENSE_CHECK(relpe->width() == cfg.hidden && relpe->heads() == cfg.heads,
                "{}: RelPE built for {} heads of size {} does not fit hidden_size {} with {} heads", prefix,
                relpe->heads(), relpe->head_size(), cfg.hidden, cfg.heads);
  queries_ =
      params.add(prefix + ".queries", {cfg.hidden, cfg.hidden}, ParamKind::Weight, Init::normal(queries_init_std));
}

DenseAttention::Kernel DenseAttention::bidirectional_kernel(AttentionComplexity complexity, int64_t n) const {
  // Ties go to linear: at e = n both cost the same and linear stores less.
  const bool linear =
      complexity == AttentionComplexity::Linear || (complexity == AttentionComplexity::Auto && head_size_ <= n);
  return linear ? Kernel::Linear : Kernel::Quadratic;
}

DenseAttention::Plan DenseAttention::make_plan(int64_t n) const {
  Plan p;
  p.length = n;
  p.padded = n;
  p.block = n;
  if (cfg_.sparse) {
    p.kernel = Kernel::Graph;
    return p;
  }
  const int64_t w = cfg_.window;
  // Local layers ignore the configured complexity (docs/model.md §1.5); causal models mask every block with tril₀.
  const auto local_kernel = [&](int64_t rows) {
    return cfg_.causal ? Kernel::Causal : bidirectional_kernel(AttentionComplexity::Auto, rows);
  };
  switch (cfg_.kind) {
    case LayerKind::Global:
      if (!cfg_.causal) {
        p.kernel = bidirectional_kernel(cfg_.complexity, n);
      } else {
        p.kernel = Kernel::Causal;
        if (n > cfg_.chunk_size) {
          p.block = cfg_.chunk_size;
          p.padded = round_up(n, p.block);
          p.carry_state = true;
        }
      }
      return p;
    case LayerKind::Local:
    case LayerKind::ShiftedLocal: {
      const bool shifted = cfg_.kind == LayerKind::ShiftedLocal;
      // Short sequences fit in one window: the global kernel with global positions.
      if (n <= (shifted ? w / 2 : w)) {
        p.kernel = local_kernel(n);
        return p;
      }
      p.kernel = local_kernel(w);
      p.lead = shifted ? w / 2 : 0;
      p.padded = round_up(n + (shifted ? w : 0), w);
      p.block = w;
      p.pos_window = cfg_.local_relpe ? w : 0;
      return p;
    }
    case LayerKind::SlidingWindow:
      p.kernel = Kernel::Causal;
      if (n > w) {
        p.block = w;
        p.padded = round_up(n, w);
        p.sliding = true;
      }
      return p;
  }
  return p;
}

Tensor DenseAttention::forward(const Tensor& a, Context& ctx) {
  DENSE_CHECK(queries_ != nullptr, "DenseAttention::forward on a default-constructed layer");
  DENSE_CHECK(a.dim() == 3 && a.size(2) == cfg_.hidden && a.size(1) > 0, "{}: input must be [B, N > 0, {}], got {}",
              queries_->name, cfg_.hidden, a.str());
  plan_ = make_plan(a.size(1));
  batch_ = a.size(0);
  const Plan& p = plan_;
  const RelPEScheme s = relpe_on() ? cfg_.scheme : RelPEScheme{};
  positions_ = s.any() ? relpe_->positions(p.padded, p.pos_window, p.lead, p.lead + p.length) : Tensor();

  // Padding comes before the `qkv` RelPE so that window-restarting positions line up with the windows.
  Tensor x = pad_rows(dropout_.forward(a.contiguous(), ctx), p.lead, p.padded);
  if (s.x) x = relpe_->apply(x, positions_);
  x_ = x;
  q_ = ops::linear(x_, queries_->value, nullptr);
  if (s.q) q_ = relpe_->apply(q_, positions_);
  k_ = s.k ? relpe_->apply(x_, positions_) : x_;
  v_ = s.v == s.k ? k_ : (s.v ? relpe_->apply(x_, positions_) : x_);
  return crop_rows(attend(q_, k_, v_), p.lead, p.length);
}

Tensor DenseAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v) {
  const Plan& p = plan_;
  const int64_t H = cfg_.heads, e = head_size_, C = p.block, nb = batch_ * p.blocks();
  const bool linear = p.kernel == Kernel::Linear;
  Tensor o = Tensor::empty(q.shape(), q.dtype(), q.device());
  state_ = Tensor();
  cross_ = Tensor();
  if (p.kernel == Kernel::Graph) {
    const DeviceGraph& g = graph_.get(*cfg_.sparse, p.length, H, cfg_.layer_index, q.device());
    ops::graph_attention_forward(GraphScore::Linear, q, k, v, g.forward_ref(), nullptr, H, 1.0, o, nullptr);
    return o;
  }
  mix_ = Tensor::empty(linear ? Shape{H, nb, e, e} : Shape{H, nb, C, C}, q.dtype(), q.device());
  for (int64_t h = 0; h < H; ++h) {
    const Tensor qh = head(q, nb, C, h, e), kh = head(k, nb, C, h, e), vh = head(v, nb, C, h, e);
    Tensor oh = head(o, nb, C, h, e);
    Tensor mh = mix_.select(0, h);
    if (linear) {
      ops::matmul(kh, true, vh, false, mh);   // M = Kᵀ V
      ops::matmul(qh, false, mh, false, oh);  // O = Q M
    } else {
      ops::matmul(qh, false, kh, true, mh);  // S = Q Kᵀ
      if (p.kernel == Kernel::Causal) keep_lower(mh);
      ops::matmul(mh, false, vh, false, oh);  // O = S V
    }
  }
  if (p.carry_state) add_chunk_states(q, k, v, o);
  if (p.sliding) add_previous_window(q, k, v, o);
  return o;
}

void DenseAttention::add_chunk_states(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o) {
  const int64_t H = cfg_.heads, e = head_size_, C = plan_.block, nc = plan_.blocks(), nb = batch_ * nc;
  Tensor states = Tensor::empty({H, nb, e, e}, q.dtype(), q.device());
  for (int64_t h = 0; h < H; ++h) {
    Tensor sh = states.select(0, h);
    ops::matmul(head(k, nb, C, h, e), true, head(v, nb, C, h, e), false, sh);  // S_c = K_cᵀ V_c
  }
  // Exclusive prefix sum over the chunks of every sequence and head, as one GEMM.
  state_ = Tensor::empty({H, nb, e, e}, q.dtype(), q.device());
  Tensor prefix = state_.view({H * batch_, nc, e * e});
  ops::matmul(strictly_lower_ones(nc, q.dtype(), q.device()), false, states.view({H * batch_, nc, e * e}), false,
              prefix);
  for (int64_t h = 0; h < H; ++h) {
    Tensor oh = head(o, nb, C, h, e);
    ops::matmul(head(q, nb, C, h, e), false, state_.select(0, h), false, oh, 1.0, 1.0);  // O_c += Q_c S_{<c}
  }
}

void DenseAttention::add_previous_window(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o) {
  const int64_t H = cfg_.heads, e = head_size_, C = plan_.block, nc = plan_.blocks();
  cross_ = Tensor::empty({H, batch_, nc - 1, C, C}, q.dtype(), q.device());
  // Per sequence: windows 1..nc-1 against 0..nc-2 (one batch stride cannot skip the sequence boundaries).
  for (int64_t h = 0; h < H; ++h)
    for (int64_t b = 0; b < batch_; ++b) {
      Tensor ph = cross_.select(0, h).select(0, b);
      Tensor on = head_blocks(o, C, b, 1, nc, h, e);
      ops::matmul(head_blocks(q, C, b, 1, nc, h, e), false, head_blocks(k, C, b, 0, nc - 1, h, e), true, ph);
      keep_strict_upper(ph);
      ops::matmul(ph, false, head_blocks(v, C, b, 0, nc - 1, h, e), false, on, 1.0, 1.0);
    }
}

Tensor DenseAttention::backward(const Tensor& dy) {
  DENSE_CHECK(q_.defined(), "{}: backward without a saved forward", queries_ ? queries_->name : "DenseAttention");
  const Plan& p = plan_;
  DENSE_CHECK(dy.shape() == (Shape{batch_, p.length, cfg_.hidden}),
              "{}: output gradient {} does not match [{}, {}, {}]", queries_->name, dy.str(), batch_, p.length,
              cfg_.hidden);
  const RelPEScheme s = relpe_on() ? cfg_.scheme : RelPEScheme{};
  const Tensor g = pad_rows(dy.contiguous(), p.lead, p.padded);

  // K and V are one tensor when the same transform made them: their gradients then share one buffer.
  const bool shared_kv = s.k == s.v;
  Tensor dq = Tensor::empty(q_.shape(), q_.dtype(), q_.device());
  Tensor dk = Tensor::empty(q_.shape(), q_.dtype(), q_.device());
  Tensor dv = shared_kv ? dk : Tensor::empty(q_.shape(), q_.dtype(), q_.device());
  attend_backward(g, dq, dk, dv, shared_kv);

  // K, V and the projection input are the same tensor x, so their gradients add.
  Tensor dx = s.k ? relpe_->apply_backward(dk, positions_) : dk;
  if (!shared_kv) ops::axpy(1.0, s.v ? relpe_->apply_backward(dv, positions_) : dv, dx);
  const Tensor dq_pre = s.q ? relpe_->apply_backward(dq, positions_) : dq;
  ops::linear_backward(x_, queries_->value, dq_pre, &dx, 1.0, &queries_->grad, nullptr);
  if (s.x) dx = relpe_->apply_backward(dx, positions_);
  return dropout_.backward(crop_rows(dx, p.lead, p.length));
}

void DenseAttention::attend_backward(const Tensor& g, Tensor& dq, Tensor& dk, Tensor& dv, bool shared_kv) {
  const Plan& p = plan_;
  const int64_t H = cfg_.heads, e = head_size_, C = p.block, nb = batch_ * p.blocks();
  const bool linear = p.kernel == Kernel::Linear;
  if (p.kernel == Kernel::Graph) {
    const DeviceGraph& graph = graph_.get(*cfg_.sparse, p.length, cfg_.heads, cfg_.layer_index, g.device());
    // The kernel overwrites dk and dv: with one shared buffer, dV goes to a temporary and is added.
    Tensor dv_own = shared_kv ? Tensor::empty(dv.shape(), dv.dtype(), dv.device()) : dv;
    ops::graph_attention_backward(GraphScore::Linear, q_, k_, v_, graph.forward_ref(), graph.transposed_ref(), nullptr,
                                  cfg_.heads, 1.0, q_, g, nullptr, dq, dk, dv_own);
    if (shared_kv) ops::axpy(1.0, dv_own, dk);
    return;
  }
  // With a shared buffer dK is written first and dV adds to it.
  const double beta_v = shared_kv ? 1.0 : 0.0;
  Tensor t = Tensor::empty(linear ? Shape{nb, e, e} : Shape{nb, C, C}, g.dtype(), g.device());
  for (int64_t h = 0; h < H; ++h) {
    const Tensor qh = head(q_, nb, C, h, e), kh = head(k_, nb, C, h, e), vh = head(v_, nb, C, h, e);
    const Tensor gh = head(g, nb, C, h, e), mh = mix_.select(0, h);
    Tensor dqh = head(dq, nb, C, h, e), dkh = head(dk, nb, C, h, e), dvh = head(dv, nb, C, h, e);
    if (linear) {
      ops::matmul(gh, false, mh, true, dqh);               // dQ = G Mᵀ
      ops::matmul(qh, true, gh, false, t);                 // dM = Qᵀ G
      ops::matmul(vh, false, t, true, dkh);                // dK = V dMᵀ
      ops::matmul(kh, false, t, false, dvh, 1.0, beta_v);  // dV = K dM
    } else {
      ops::matmul(gh, false, vh, true, t);  // dS = G Vᵀ (masked like S)
      if (p.kernel == Kernel::Causal) keep_lower(t);
      ops::matmul(t, false, kh, false, dqh);               // dQ = dS K
      ops::matmul(t, true, qh, false, dkh);                // dK = dSᵀ Q
      ops::matmul(mh, true, gh, false, dvh, 1.0, beta_v);  // dV = Sᵀ G
    }
  }
  if (p.carry_state) chunk_states_backward(g, dq, dk, dv);
  if (p.sliding) previous_window_backward(g, dq, dk, dv);
}

void DenseAttention::chunk_states_backward(const Tensor& g, Tensor& dq, Tensor& dk, Tensor& dv) {
  const int64_t H = cfg_.heads, e = head_size_, C = plan_.block, nc = plan_.blocks(), nb = batch_ * nc;
  Tensor dprefix = Tensor::empty({H, nb, e, e}, g.dtype(), g.device());
  for (int64_t h = 0; h < H; ++h) {
    const Tensor gh = head(g, nb, C, h, e);
    Tensor dqh = head(dq, nb, C, h, e), dph = dprefix.select(0, h);
    ops::matmul(gh, false, state_.select(0, h), true, dqh, 1.0, 1.0);  // dQ_c += G_c S_{<c}ᵀ
    ops::matmul(head(q_, nb, C, h, e), true, gh, false, dph);          // dS_{<c} = Q_cᵀ G_c
  }
  // dS_c = Σ_{c'' > c} dS_{<c''}: the reverse exclusive prefix sum.
  Tensor dstates = Tensor::empty({H, nb, e, e}, g.dtype(), g.device());
  Tensor dsv = dstates.view({H * batch_, nc, e * e});
  ops::matmul(strictly_lower_ones(nc, g.dtype(), g.device()), true, dprefix.view({H * batch_, nc, e * e}), false, dsv);
  for (int64_t h = 0; h < H; ++h) {
    const Tensor dsh = dstates.select(0, h);
    Tensor dkh = head(dk, nb, C, h, e), dvh = head(dv, nb, C, h, e);
    ops::matmul(head(v_, nb, C, h, e), false, dsh, true, dkh, 1.0, 1.0);   // dK_c += V_c dS_cᵀ
    ops::matmul(head(k_, nb, C, h, e), false, dsh, false, dvh, 1.0, 1.0);  // dV_c += K_c dS_c
  }
}

void DenseAttention::previous_window_backward(const Tensor& g, Tensor& dq, Tensor& dk, Tensor& dv) {
  const int64_t H = cfg_.heads, e = head_size_, C = plan_.block, nc = plan_.blocks();
  Tensor dp = Tensor::empty({nc - 1, C, C}, g.dtype(), g.device());
  for (int64_t h = 0; h < H; ++h)
    for (int64_t b = 0; b < batch_; ++b) {
      const Tensor qn = head_blocks(q_, C, b, 1, nc, h, e), kp = head_blocks(k_, C, b, 0, nc - 1, h, e);
      const Tensor vp = head_blocks(v_, C, b, 0, nc - 1, h, e), gn = head_blocks(g, C, b, 1, nc, h, e);
      const Tensor ph = cross_.select(0, h).select(0, b);
      Tensor dqn = head_blocks(dq, C, b, 1, nc, h, e), dkp = head_blocks(dk, C, b, 0, nc - 1, h, e);
      Tensor dvp = head_blocks(dv, C, b, 0, nc - 1, h, e);
      ops::matmul(gn, false, vp, true, dp);  // dP = triu₁(G_c V_{c−1}ᵀ)
      keep_strict_upper(dp);
      ops::matmul(ph, true, gn, false, dvp, 1.0, 1.0);   // dV_{c−1} += Pᵀ G_c
      ops::matmul(dp, false, kp, false, dqn, 1.0, 1.0);  // dQ_c += dP K_{c−1}
      ops::matmul(dp, true, qn, false, dkp, 1.0, 1.0);   // dK_{c−1} += dPᵀ Q_c
    }
}

void DenseAttention::release() {
  positions_ = Tensor();
  x_ = Tensor();
  q_ = Tensor();
  k_ = Tensor();
  v_ = Tensor();
  mix_ = Tensor();
  state_ = Tensor();
  cross_ = Tensor();  // the graph cache stays: it depends on the length only, not on the batch
}

}  // namespace dense::nn
