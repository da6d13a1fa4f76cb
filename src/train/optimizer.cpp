#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "backend/ops.h"
#include "core/error.h"

namespace dense::train {

namespace {

// Elements per block of the update (backend.h OptimizerStep). Blocks never straddle two ranges, so
// per-parameter reductions (LAMB's norms) are sums of whole blocks; the layout depends only on the ranges,
// never on the thread count or the device, which is what makes the results thread-count independent.
constexpr int64_t kBlock = 4096;

// {begin, end, range, decay} per block, on the CPU (moved to the arena's device by the optimizer).
Tensor make_block_table(const std::vector<ParamRange>& ranges) {
  std::vector<int64_t> rows;
  for (size_t r = 0; r < ranges.size(); ++r)
    for (int64_t b = ranges[r].offset; b < ranges[r].offset + ranges[r].numel; b += kBlock)
      rows.insert(rows.end(),
                  {b, std::min(b + kBlock, ranges[r].offset + ranges[r].numel), int64_t(r), ranges[r].decay ? 1 : 0});
  return Tensor::from_vector(rows, {int64_t(rows.size() / 4), 4}, DType::I64);
}

void check_betas(const std::array<double, 2>& betas) {
  for (double b : betas)
    if (!(b >= 0.0 && b < 1.0))
      DENSE_FAIL("training.optimizer.betas: [{}, {}]: each must be in [0, 1)", betas[0], betas[1]);
}

void check_weight_decay(double wd) {
  if (!(wd >= 0.0) || !std::isfinite(wd))
    DENSE_FAIL("training.optimizer.weight_decay: {} must be a finite number >= 0", wd);
}

// The moments (exp_avg, exp_avg_sq), the block table and the checkpoint plumbing of AdamW and LAMB: one
// class, the update itself is the backend's fused optimizer_step (backend/cpu/optimizer.cpp and
// backend/cuda/optimizer.cu hold the formulas):
//
// AdamW is torch.optim.AdamW (torch 1.13 _single_tensor_adamw), operation for operation:
//   p *= 1 - lr*wd;  m = m*b1 + (1-b1)*g;  v = v*b2 + ((1-b2)*g)*g;
//   p += ((-lr/bc1) * m) / (sqrt(v)/sqrt(bc2) + eps)
// The docs/model.md §4.1 form (the engine's fused AdamW mode), p -= lr*(mhat/(sqrt(vhat)+eps) + wd*p), is the same
// function of the old p, m, v and g; only the rounding differs (torch decays first, then adds the Adam
// step). We follow torch's order because parity is checked against torch.optim.AdamW. eps is used as given,
// no clamping: the paper's 1e-16 relies on Adam's scale invariance in the first steps.
//
// LAMB (You et al. 2019, Algorithm 2, as NVIDIA apex FusedLAMB with bias correction): the bias-corrected
// Adam direction plus decoupled decay, u = (m/bc1) / (sqrt(v/bc2) + eps) + wd*p, scaled per parameter by
// the trust ratio r = ||p|| / ||u|| (1 when either norm is 0): p -= lr*r*u. No clamping of ||p|| (the
// paper's phi is the identity here, as in apex), and the ratio applies to every parameter, no-decay ones
// included (apex's use_nvlamb; plain apex skips the ratio where wd = 0). apex's built-in global gradient
// clipping is not part of the step: that is clip_grad_norm, under training.clip_grad_norm.
class AdamFamily final : public Optimizer {
 public:
  AdamFamily(const OptimizerConfig& config, std::vector<ParamRange> ranges, int64_t numel, Device device)
      : Optimizer(config, std::move(ranges), numel) {
    blocks_ = make_block_table(ranges_).to(device);
    exp_avg_ = Tensor::zeros({numel_}, DType::F32, device);
    exp_avg_sq_ = Tensor::zeros({numel_}, DType::F32, device);
  }

  std::vector<std::pair<std::string, Tensor>> state() const override {
    return {{"exp_avg", exp_avg_}, {"exp_avg_sq", exp_avg_sq_}};
  }

  void load_state(const std::vector<std::pair<std::string, Tensor>>& state, int64_t steps) override {
    DENSE_CHECK(steps >= 0, "optimizer state: step count {} is negative", steps);
    const Tensor* found[2] = {nullptr, nullptr};
    const char* names[2] = {"exp_avg", "exp_avg_sq"};
    for (const auto& [name, t] : state) {
      int k = name == names[0] ? 0 : name == names[1] ? 1 : -1;
      if (k < 0) DENSE_FAIL("optimizer state: unexpected tensor '{}' ({} expects exp_avg, exp_avg_sq)", name, type_);
      if (found[k]) DENSE_FAIL("optimizer state: tensor '{}' given twice", name);
      if (!t.defined()) DENSE_FAIL("optimizer state: tensor '{}' is undefined", name);
      if (t.shape() != Shape{numel_})
        DENSE_FAIL("optimizer state: tensor '{}' has shape {}, expected [{}] (the parameter arena)", name,
                   shape_str(t.shape()), numel_);
      if (t.dtype() != DType::F32 && t.dtype() != DType::F64)
        DENSE_FAIL("optimizer state: tensor '{}' is {}, expected f32 or f64", name, dtype_name(t.dtype()));
      found[k] = &t;
    }
    for (int k = 0; k < 2; ++k)
      if (!found[k]) DENSE_FAIL("optimizer state: tensor '{}' is missing", names[k]);
    // All checks first, so that a failed load leaves the optimizer as it was.
    exp_avg_.copy_(*found[0]);
    exp_avg_sq_.copy_(*found[1]);
    steps_ = steps;
  }

  void step(Tensor& values, const Tensor& grads, double lr) override {
    check_step_args(values, grads, lr);
    DENSE_CHECK(values.device() == exp_avg_.device(), "optimizer: values are on {}, the optimizer state on {}",
                values.device().str(), exp_avg_.device().str());
    if (exp_avg_.dtype() != values.dtype()) {
      exp_avg_ = exp_avg_.to(values.dtype());
      exp_avg_sq_ = exp_avg_sq_.to(values.dtype());
    }
    ++steps_;
    OptimizerStep s;
    s.lamb = type_ == "lamb";
    s.lr = lr;
    s.beta1 = betas_[0];
    s.beta2 = betas_[1];
    s.eps = eps_;
    s.weight_decay = weight_decay_;
    s.step = steps_;
    s.blocks = &blocks_;
    ops::optimizer_step(s, values, grads, exp_avg_, exp_avg_sq_);
  }

 private:
  Tensor blocks_;
  Tensor exp_avg_, exp_avg_sq_;
};

void check_contiguous(const Tensor& t, const char* what) {
  DENSE_CHECK(t.defined(), "{}: undefined tensor", what);
  DENSE_CHECK(t.is_contiguous(), "{}: {} must be contiguous", what, t.str());
}

}  // namespace

// ---- parameter groups -------------------------------------------------------------------------------

std::vector<ParamRange> parameter_groups(const nn::ParameterSet& params, const OptimizerConfig& config) {
  std::vector<ParamRange> ranges;
  for (const auto& p : params.all()) {
    const bool norm_or_bias = p.kind == nn::ParamKind::Bias || p.kind == nn::ParamKind::Gain;
    const bool embedding = p.kind == nn::ParamKind::Embedding || p.name.rfind("embeddings.", 0) == 0;
    const bool pooler = p.name.rfind("pooler.", 0) == 0;
    const bool no_decay =
        norm_or_bias || (config.no_decay_embeddings && embedding) || (config.no_decay_pooler && pooler);
    ranges.push_back({p.name, p.arena_offset, shape_numel(p.shape), !no_decay});
  }
  return ranges;
}

void validate_optimizer_config(const OptimizerConfig& c) {
  if (c.type != "adamw" && c.type != "lamb")
    DENSE_FAIL("training.optimizer.type: '{}' is not one of adamw, lamb", c.type);
  if (!(c.learning_rate >= 0.0) || !std::isfinite(c.learning_rate))
    DENSE_FAIL("training.optimizer.learning_rate: {} must be a finite number >= 0", c.learning_rate);
  check_betas(c.betas);
  if (!(c.eps >= 0.0) || !std::isfinite(c.eps))
    DENSE_FAIL("training.optimizer.eps: {} must be a finite number >= 0", c.eps);
  check_weight_decay(c.weight_decay);
}

// ---- Optimizer ---------------------------------------------------------------------------------------

Optimizer::Optimizer(const OptimizerConfig& config, std::vector<ParamRange> ranges, int64_t numel)
    : type_(config.type),
      betas_(config.betas),
      eps_(config.eps),
      weight_decay_(config.weight_decay),
      ranges_(std::move(ranges)),
      numel_(numel) {}

Optimizer::~Optimizer() = default;

std::unique_ptr<Optimizer> Optimizer::create(const OptimizerConfig& config, std::vector<ParamRange> ranges,
                                             int64_t numel, Device device) {
  validate_optimizer_config(config);
  DENSE_CHECK(numel >= 0, "optimizer: arena size {} is negative", numel);
  std::vector<std::pair<int64_t, int64_t>> spans;  // (offset, index) sorted, for the overlap check
  for (size_t i = 0; i < ranges.size(); ++i) {
    const ParamRange& r = ranges[i];
    DENSE_CHECK(r.offset >= 0 && r.numel >= 0 && r.offset + r.numel <= numel,
                "optimizer: parameter '{}' [{}, {}) lies outside the arena of {} elements (the arena size is "
                "values().numel(), padding included)",
                r.name, r.offset, r.offset + r.numel, numel);
    spans.emplace_back(r.offset, int64_t(i));
  }
  std::sort(spans.begin(), spans.end());
  for (size_t k = 1; k < spans.size(); ++k) {
    const ParamRange& a = ranges[size_t(spans[k - 1].second)];
    const ParamRange& b = ranges[size_t(spans[k].second)];
    DENSE_CHECK(a.offset + a.numel <= b.offset || a.numel == 0 || b.numel == 0,
                "optimizer: parameters '{}' and '{}' overlap in the arena", a.name, b.name);
  }
  return std::make_unique<AdamFamily>(config, std::move(ranges), numel, device);
}

void Optimizer::set_weight_decay(double wd) {
  check_weight_decay(wd);
  weight_decay_ = wd;
}

void Optimizer::set_betas(std::array<double, 2> betas) {
  check_betas(betas);
  betas_ = betas;
}

void Optimizer::check_step_args(const Tensor& values, const Tensor& grads, double lr) const {
  check_contiguous(values, "optimizer values");
  check_contiguous(grads, "optimizer grads");
  DENSE_CHECK(values.numel() == numel_ && grads.numel() == numel_,
              "optimizer: values has {} and grads {} elements, the optimizer was made for {}", values.numel(),
              grads.numel(), numel_);
  DENSE_CHECK(values.dtype() == grads.dtype(), "optimizer: values are {} but grads are {}", dtype_name(values.dtype()),
              dtype_name(grads.dtype()));
  DENSE_CHECK(values.device() == grads.device(), "optimizer: values are on {} but grads on {}", values.device().str(),
              grads.device().str());
  DENSE_CHECK(values.dtype() == DType::F32 || values.dtype() == DType::F64,
              "optimizer: values are {}; master values and gradients must be f32 or f64", dtype_name(values.dtype()));
  DENSE_CHECK(lr >= 0.0 && std::isfinite(lr), "optimizer: learning rate {} must be a finite number >= 0", lr);
}

// ---- gradient norm -----------------------------------------------------------------------------------

double global_grad_norm(const Tensor& grads) {
  check_contiguous(grads, "global_grad_norm");
  DENSE_CHECK(is_floating(grads.dtype()), "global_grad_norm: gradients are {}, expected a floating dtype",
              dtype_name(grads.dtype()));
  return std::sqrt(ops::sum_squares(grads));
}

double clip_grad_norm(Tensor& grads, double max_norm) {
  const double norm = global_grad_norm(grads);
  if (!(max_norm > 0.0) || !std::isfinite(norm)) return norm;
  // The 1e-6 is torch.nn.utils.clip_grad_norm_'s, so clipped gradients match torch's.
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return norm;
  scale_gradients(grads, coef);
  return norm;
}

void scale_gradients(Tensor& grads, double factor) {
  check_contiguous(grads, "scale_gradients");
  DENSE_CHECK(is_floating(grads.dtype()), "scale_gradients: gradients are {}, expected a floating dtype",
              dtype_name(grads.dtype()));
  ops::scale_(grads, factor);
}

}  // namespace dense::train
