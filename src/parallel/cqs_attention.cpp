#include "parallel/cqs_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/ops.h"
#include "core/error.h"

namespace dense::parallel {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Row ids of the material tokens in the [B·N, ·] view of a [B, N, ·] tensor.
Tensor row_ids(const std::vector<int64_t>& material, int64_t batch, int64_t seq_len, Device device) {
  std::vector<int64_t> ids;
  ids.reserve(material.size() * static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t m : material) ids.push_back(b * seq_len + m);
  return Tensor::from_vector<int64_t>(ids, {static_cast<int64_t>(ids.size())}, DType::I64, device);
}

Tensor gather_tokens(const Tensor& t, const Tensor& ids, int64_t batch, int64_t rows) {
  const int64_t width = t.numel() / (t.size(0) * t.size(1));
  return ops::gather_rows(t.contiguous().view({t.size(0) * t.size(1), width}), ids).view({batch, rows, width});
}

// [B, H, N] host values of the material rows -> [B, H, M].
std::vector<double> gather_lse(const std::vector<double>& lse, const std::vector<int64_t>& material, int64_t batch,
                               int64_t heads, int64_t seq_len) {
  const int64_t m = static_cast<int64_t>(material.size());
  std::vector<double> out(static_cast<size_t>(batch * heads * m));
  for (int64_t bh = 0; bh < batch * heads; ++bh)
    for (int64_t a = 0; a < m; ++a) out[size_t(bh * m + a)] = lse[size_t(bh * seq_len + material[size_t(a)])];
  return out;
}

}  // namespace

CqsAttention::CqsAttention(CqsSchedule schedule, const CqsAttentionConfig& config, const nn::CsrGraph* base,
                           Device device)
    : schedule_(std::move(schedule)), config_(config), device_(device) {
  DENSE_CHECK(config.heads > 0, "CQS attention: {} heads", config.heads);
  seq_len_ = schedule_.seq_len;
  if (base) {
    base->validate("CQS attention base pattern");
    DENSE_CHECK(base->rows == seq_len_ && base->cols == seq_len_,
                "CQS attention: the base pattern is {} x {} but the schedule is for {} tokens", base->rows, base->cols,
                seq_len_);
  }
  if (base) base_ = *base;
  plans_.resize(static_cast<size_t>(schedule_.workers));
  for (int64_t w = 0; w < schedule_.workers; ++w)
    plans_[static_cast<size_t>(w)].material = schedule_.worker(w).material_tokens();
}

nn::CsrGraph CqsAttention::worker_graph(int64_t w) const {
  DENSE_CHECK(w >= 0 && w < workers(), "CQS attention: worker {} of {}", w, workers());
  const CqsSchedule::Worker& worker = schedule_.worker(w);
  const std::vector<int64_t>& material = plans_[static_cast<size_t>(w)].material;
  // Key groups owned per query group, ascending, so that every row comes out sorted.
  std::vector<std::vector<int64_t>> key_groups(static_cast<size_t>(schedule_.workers));
  for (const auto& [qg, kg] : worker.tiles) key_groups[size_t(qg)].push_back(kg);
  for (auto& kgs : key_groups) std::sort(kgs.begin(), kgs.end());
  nn::CsrGraph g;
  g.rows = g.cols = static_cast<int64_t>(material.size());
  g.row_ptr.reserve(material.size() + 1);
  g.row_ptr.push_back(0);
  for (int64_t i : material) {
    for (int64_t kg : key_groups[size_t(schedule_.group_of(i))]) {
      const int64_t begin = schedule_.group_begin[size_t(kg)], end = schedule_.group_begin[size_t(kg) + 1];
      const int64_t local = worker.local_index(begin);  // groups are contiguous in the material
      if (!base_) {
        for (int64_t j = begin; j < end; ++j) g.col.push_back(static_cast<int32_t>(local + (j - begin)));
      } else {
        const auto first = base_->col.begin() + base_->row_ptr[i], last = base_->col.begin() + base_->row_ptr[i + 1];
        for (auto it = std::lower_bound(first, last, static_cast<int32_t>(begin)); it != last && *it < end; ++it)
          g.col.push_back(static_cast<int32_t>(local + (*it - begin)));
      }
    }
    g.row_ptr.push_back(static_cast<int64_t>(g.col.size()));
  }
  return g;
}

const nn::DeviceGraph& CqsAttention::device_graph(int64_t w) {
  if (cached_worker_ != w) {
    cached_graph_ = nn::DeviceGraph();  // free the previous worker's graph before building the next
    cached_graph_ = nn::DeviceGraph::upload({worker_graph(w)}, device_);
    cached_worker_ = w;
  }
  return cached_graph_;
}

void CqsAttention::check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid) const {
  DENSE_CHECK(q.dim() == 3 && q.size(1) == seq_len_ && k.shape() == q.shape() && v.shape() == q.shape(),
              "CQS attention: q {} k {} v {} must all be [B, {}, d] (the schedule's length)", q.str(), k.str(), v.str(),
              seq_len_);
  DENSE_CHECK(q.device() == device_, "CQS attention: inputs on {} but the worker graphs are on {}", q.device().str(),
              device_.str());
  DENSE_CHECK(!key_valid || key_valid->numel() == q.size(0) * seq_len_, "CQS attention: key mask {} for input {}",
              key_valid ? key_valid->str() : "", q.str());
}

CqsAttention::Partial CqsAttention::run_worker_forward(int64_t w, const Tensor& q, const Tensor& k, const Tensor& v,
                                                       const Tensor* key_valid) {
  const WorkerPlan& plan = plans_[static_cast<size_t>(w)];
  const nn::DeviceGraph& dg = device_graph(w);
  const int64_t B = q.size(0), M = static_cast<int64_t>(plan.material.size()), H = config_.heads;
  const Tensor ids = row_ids(plan.material, B, seq_len_, device_);
  const Tensor qw = gather_tokens(q, ids, B, M), kw = gather_tokens(k, ids, B, M), vw = gather_tokens(v, ids, B, M);
  Tensor valid;
  if (key_valid) valid = gather_tokens(key_valid->view({B, seq_len_, 1}), ids, B, M).view({B, M});
  Partial p;
  p.o = Tensor::empty(qw.shape(), q.dtype(), device_);
  if (config_.score == GraphScore::Softmax)
    p.lse = Tensor::empty({B, H, M}, ops::rownorm_stats_dtype(q.dtype()), device_);
  ops::graph_attention_forward(config_.score, qw, kw, vw, dg.forward_ref(), key_valid ? &valid : nullptr, H,
                               config_.scale, p.o, p.lse.defined() ? &p.lse : nullptr);
  return p;
}

void CqsAttention::run_worker_backward(int64_t w, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor* key_valid, const Tensor& o, const std::vector<double>& lse_host,
                                       DType lse_dtype, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) {
  const WorkerPlan& plan = plans_[static_cast<size_t>(w)];
  const nn::DeviceGraph& dg = device_graph(w);
  const int64_t B = q.size(0), M = static_cast<int64_t>(plan.material.size()), H = config_.heads, d = q.size(2);
  const Tensor ids = row_ids(plan.material, B, seq_len_, device_);
  const Tensor qw = gather_tokens(q, ids, B, M), kw = gather_tokens(k, ids, B, M), vw = gather_tokens(v, ids, B, M);
  const Tensor ow = gather_tokens(o, ids, B, M), dow = gather_tokens(dout, ids, B, M);
  Tensor valid, lsew;
  if (key_valid) valid = gather_tokens(key_valid->view({B, seq_len_, 1}), ids, B, M).view({B, M});
  if (!lse_host.empty())
    lsew =
        Tensor::from_vector<double>(gather_lse(lse_host, plan.material, B, H, seq_len_), {B, H, M}, lse_dtype, device_);
  Tensor dqw = Tensor::empty(qw.shape(), q.dtype(), device_), dkw = Tensor::empty(qw.shape(), q.dtype(), device_),
         dvw = Tensor::empty(qw.shape(), q.dtype(), device_);
  ops::graph_attention_backward(config_.score, qw, kw, vw, dg.forward_ref(), dg.transposed_ref(),
                                key_valid ? &valid : nullptr, H, config_.scale, ow, dow,
                                lsew.defined() ? &lsew : nullptr, dqw, dkw, dvw);
  // Partial gradients cover disjoint cells: their sum per token is the gradient.
  Tensor dq2 = dq.view({B * seq_len_, d}), dk2 = dk.view({B * seq_len_, d}), dv2 = dv.view({B * seq_len_, d});
  ops::scatter_add_rows(dqw.view({B * M, d}), ids, dq2);
  ops::scatter_add_rows(dkw.view({B * M, d}), ids, dk2);
  ops::scatter_add_rows(dvw.view({B * M, d}), ids, dv2);
}

namespace {

// The tiler's state on the host in f64: o [B, N, d] and the running log-sum-exp [B, H, N].
struct Merge {
  int64_t batch, seq_len, heads, width;
  std::vector<double> o, lse;
  Merge(int64_t b, int64_t n, int64_t h, int64_t d, bool softmax)
      : batch(b),
        seq_len(n),
        heads(h),
        width(d),
        o(size_t(b * n * d), 0.0),
        lse(softmax ? size_t(b * h * n) : 0, kNegInf) {}

  // Softmax: fold one worker's normalised partial in with the log-sum-exp rule.
  void add_softmax(const std::vector<int64_t>& material, const std::vector<double>& ow, const std::vector<double>& lw) {
    const int64_t M = static_cast<int64_t>(material.size()), e = width / heads;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t a = 0; a < M; ++a) {
          const double part = lw[size_t((b * heads + h) * M + a)];
          if (part == kNegInf) continue;  // the worker's cells of this row are all masked
          const int64_t n = material[size_t(a)];
          double& acc_lse = lse[size_t((b * heads + h) * seq_len + n)];
          const double next =
              acc_lse == kNegInf ? part : std::max(acc_lse, part) + std::log1p(std::exp(-std::abs(acc_lse - part)));
          const double keep = acc_lse == kNegInf ? 0.0 : std::exp(acc_lse - next), take = std::exp(part - next);
          double* dst = o.data() + (b * seq_len + n) * width + h * e;
          const double* src = ow.data() + (b * M + a) * width + h * e;
          for (int64_t c = 0; c < e; ++c) dst[c] = keep * dst[c] + take * src[c];
          acc_lse = next;
        }
  }
  void add_linear(const std::vector<int64_t>& material, const std::vector<double>& ow) {
    const int64_t M = static_cast<int64_t>(material.size());
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t a = 0; a < M; ++a) {
        double* dst = o.data() + (b * seq_len + material[size_t(a)]) * width;
        const double* src = ow.data() + (b * M + a) * width;
        for (int64_t c = 0; c < width; ++c) dst[c] += src[c];
      }
  }
  void write(Tensor& out, Tensor* lse_out) const {
    out.copy_(Tensor::from_vector<double>(o, out.shape(), DType::F64).to(out.dtype()).to(out.device()));
    if (lse_out)
      lse_out->copy_(
          Tensor::from_vector<double>(lse, lse_out->shape(), DType::F64).to(lse_out->dtype()).to(lse_out->device()));
  }
};

std::vector<double> host_values(const Tensor& t) { return t.to(DType::F64).to(Device::cpu()).to_vector<double>(); }

void check_outputs(const Tensor& q, const Tensor& o, const Tensor* lse, int64_t heads, bool softmax) {
  DENSE_CHECK(o.shape() == q.shape() && o.dtype() == q.dtype() && o.is_contiguous(),
              "CQS attention: output {} must be contiguous like q {}", o.str(), q.str());
  if (lse)
    DENSE_CHECK(softmax && lse->numel() == q.size(0) * heads * q.size(1) && lse->is_contiguous(),
                "CQS attention: lse {} must be [B, H, N] = [{}, {}, {}] (softmax only)", lse->str(), q.size(0), heads,
                q.size(1));
}

}  // namespace

void CqsAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid, Tensor& o,
                           Tensor* lse) {
  check_inputs(q, k, v, key_valid);
  const bool softmax = config_.score == GraphScore::Softmax;
  check_outputs(q, o, lse, config_.heads, softmax);
  Merge merge(q.size(0), seq_len_, config_.heads, q.size(2), softmax);
  for (int64_t w = 0; w < workers(); ++w) {
    const Partial p = run_worker_forward(w, q, k, v, key_valid);
    if (softmax)
      merge.add_softmax(material(w), host_values(p.o), host_values(p.lse));
    else
      merge.add_linear(material(w), host_values(p.o));
  }
  merge.write(o, lse);
}

void CqsAttention::backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* key_valid, const Tensor& o,
                            const Tensor* lse, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) {
  check_inputs(q, k, v, key_valid);
  DENSE_CHECK(config_.score != GraphScore::Softmax || lse, "CQS attention: the softmax backward needs lse");
  for (Tensor* t : {&dq, &dk, &dv}) t->zero_();
  // Last worker first: its graph is still the one the forward built.
  const std::vector<double> lse_host = lse ? host_values(*lse) : std::vector<double>();
  const DType lse_dtype = lse ? lse->dtype() : DType::F64;
  for (int64_t w = workers() - 1; w >= 0; --w)
    run_worker_backward(w, q, k, v, key_valid, o, lse_host, lse_dtype, dout, dq, dk, dv);
}

void CqsAttention::forward(Communicator& comm, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor* key_valid, Tensor& o, Tensor* lse) {
  DENSE_CHECK(comm.size() == workers(), "CQS attention: {} ranks for a schedule of {} workers (one rank per worker)",
              comm.size(), workers());
  check_inputs(q, k, v, key_valid);
  const bool softmax = config_.score == GraphScore::Softmax;
  check_outputs(q, o, lse, config_.heads, softmax);
  const int64_t w = comm.rank(), B = q.size(0), H = config_.heads, d = q.size(2), N = seq_len_, e = d / H;
  const std::vector<int64_t>& mat = material(w);
  const int64_t M = static_cast<int64_t>(mat.size());
  const Partial p = run_worker_forward(w, q, k, v, key_valid);
  const std::vector<double> ow = host_values(p.o);
  // Scattered into whole-sequence buffers, so the merge is three all-reduces of [B, ·, N] (the tiler's work
  // spread over the ranks): the row max of the partial lse, then Σ e^{lse_w - max} and Σ e^{lse_w - max} o_w.
  Tensor osum = Tensor::zeros({B, N, d}, DType::F64);
  double* os = osum.data<double>();
  if (!softmax) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t a = 0; a < M; ++a) std::copy_n(ow.data() + (b * M + a) * d, d, os + (b * N + mat[size_t(a)]) * d);
    comm.all_reduce(osum);
    o.copy_(osum.to(o.dtype()).to(o.device()));
    return;
  }
  const std::vector<double> lw = host_values(p.lse);
  Tensor mx = Tensor::full({B, H, N}, kNegInf, DType::F64);
  double* pm = mx.data<double>();
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t a = 0; a < M; ++a) pm[bh * N + mat[size_t(a)]] = lw[size_t(bh * M + a)];
  comm.all_reduce(mx, ReduceOp::Max);
  Tensor lsum = Tensor::zeros({B, H, N}, DType::F64);
  double* pl = lsum.data<double>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t a = 0; a < M; ++a) {
        const int64_t n = mat[size_t(a)], row = (b * H + h) * N + n;
        const double part = lw[size_t((b * H + h) * M + a)];
        if (part == kNegInf) continue;
        const double f = std::exp(part - pm[row]);
        pl[row] = f;
        for (int64_t c = 0; c < e; ++c) os[(b * N + n) * d + h * e + c] = f * ow[size_t((b * M + a) * d + h * e + c)];
      }
  comm.all_reduce(lsum);
  comm.all_reduce(osum);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t row = (b * H + h) * N + n;
        const double l = pl[row];
        for (int64_t c = 0; c < e; ++c)
          os[(b * N + n) * d + h * e + c] = l > 0 ? os[(b * N + n) * d + h * e + c] / l : 0.0;
        pm[row] = l > 0 ? pm[row] + std::log(l) : kNegInf;
      }
  o.copy_(osum.to(o.dtype()).to(o.device()));
  if (lse) lse->copy_(mx.to(lse->dtype()).to(lse->device()));
}

void CqsAttention::backward(Communicator& comm, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor* key_valid, const Tensor& o, const Tensor* lse, const Tensor& dout, Tensor& dq,
                            Tensor& dk, Tensor& dv) {
  DENSE_CHECK(comm.size() == workers(), "CQS attention: {} ranks for a schedule of {} workers (one rank per worker)",
              comm.size(), workers());
  check_inputs(q, k, v, key_valid);
  DENSE_CHECK(config_.score != GraphScore::Softmax || lse, "CQS attention: the softmax backward needs lse");
  const int64_t B = q.size(0), N = seq_len_, d = q.size(2);
  // One buffer for the three partial gradients: one all-reduce instead of three.
  Tensor grads = Tensor::zeros({3, B, N, d}, q.dtype(), q.device());
  Tensor gq = grads.select(0, 0), gk = grads.select(0, 1), gv = grads.select(0, 2);
  run_worker_backward(comm.rank(), q, k, v, key_valid, o, lse ? host_values(*lse) : std::vector<double>(),
                      lse ? lse->dtype() : DType::F64, dout, gq, gk, gv);
  Tensor host = grads.to(DType::F64).to(Device::cpu());
  comm.all_reduce(host);
  const Tensor back = host.to(q.dtype()).to(q.device());
  dq.copy_(back.select(0, 0));
  dk.copy_(back.select(0, 1));
  dv.copy_(back.select(0, 2));
}

}  // namespace dense::parallel
