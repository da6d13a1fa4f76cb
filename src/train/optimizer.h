#pragma once
// Optimizers over the flat parameter arena (nn/parameter.h): AdamW (docs/model.md §4.1) and LAMB, the spec's two
// weight-decay groups, and global gradient-norm clipping, on the arena's device (CPU or CUDA). Every update
// and reduction is computed over fixed blocks combined in a fixed order, in double, so results are bitwise
// identical for any thread count.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/train_config.h"
#include "core/tensor.h"
#include "nn/parameter.h"

namespace dense::train {

// One contiguous range of the flat arena: one parameter.
struct ParamRange {
  std::string name;
  int64_t offset = 0, numel = 0;
  bool decay = true;
};

// The docs/model.md §4.1 groups, one range per parameter in arena order. No decay: biases and norm gains (kinds Bias,
// Gain: the reference's "bias" / "LayerNorm.weight" / "activation.weight" substrings), embeddings (kind
// Embedding or names starting "embeddings.", the tied word table included) when no_decay_embeddings, and
// "pooler." parameters when no_decay_pooler. Everything else decays.
std::vector<ParamRange> parameter_groups(const nn::ParameterSet& params, const OptimizerConfig& config);

// Throw dense::Error naming the config key ("training.optimizer.eps: ...") for an invalid config.
void validate_optimizer_config(const OptimizerConfig& config);

class Optimizer {
 public:
  // Validates the config and the ranges (inside [0, numel), not overlapping). Elements of the arena outside
  // every range (the arena's alignment padding) are never touched. The moments start at zero in f32.
  // The moments live on `device`, the arena's: step() takes values and grads there.
  static std::unique_ptr<Optimizer> create(const OptimizerConfig& config, std::vector<ParamRange> ranges, int64_t numel,
                                           Device device = Device::cpu());
  virtual ~Optimizer();

  // One update of the master values from grads (both contiguous tensors of `numel` elements on the
  // optimizer's device, both f32 or both f64) at `lr`: one fused backend kernel. Arithmetic is in double
  // whatever the storage; the moments are kept in the values' dtype (converted on the first step with a
  // different dtype).
  virtual void step(Tensor& values, const Tensor& grads, double lr) = 0;
  int64_t steps() const { return steps_; }  // updates made (for bias correction)

  // Named state for checkpoints: {"exp_avg": [numel], "exp_avg_sq": [numel]} on the optimizer's device, step
  // count separate. These are views of the live moments (no copy of a multi-GB state); the next step() overwrites them, so copy
  // them first if a snapshot must outlive it.
  virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
  // Copies a saved state in (f32 or f64, converted to the moments' dtype). Every expected tensor must be
  // present with shape [numel] and nothing else: errors name the tensor.
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state, int64_t steps) = 0;

  // Re-set per run or stage (docs/model.md §4.1: the group decay is re-set every epoch). The weight decay applies to
  // the decay ranges only.
  void set_weight_decay(double wd);
  void set_betas(std::array<double, 2> betas);

  const std::string& type() const { return type_; }
  double weight_decay() const { return weight_decay_; }
  const std::array<double, 2>& betas() const { return betas_; }
  double eps() const { return eps_; }
  const std::vector<ParamRange>& ranges() const { return ranges_; }
  int64_t numel() const { return numel_; }

 protected:
  Optimizer(const OptimizerConfig& config, std::vector<ParamRange> ranges, int64_t numel);
  // Shared argument checks of step(); returns nothing, throws naming the offending tensor.
  void check_step_args(const Tensor& values, const Tensor& grads, double lr) const;

  std::string type_;
  std::array<double, 2> betas_;
  double eps_ = 0.0;
  double weight_decay_ = 0.0;
  std::vector<ParamRange> ranges_;
  int64_t numel_ = 0;
  int64_t steps_ = 0;
};

// L2 norm of a contiguous tensor (any floating dtype, any device), accumulated in double over fixed blocks in a
// fixed order: deterministic for any thread count.
double global_grad_norm(const Tensor& grads);
// Scales grads by max_norm / (norm + 1e-6) when that is below 1 (torch.nn.utils.clip_grad_norm_). Returns
// the norm before clipping. No-op when max_norm <= 0, and when the norm is not finite (the trainer skips
// such steps; scaling would turn inf into NaN).
double clip_grad_norm(Tensor& grads, double max_norm);
// grads *= factor, in place (the loss scaler's unscale). Deterministic: one multiply per element.
void scale_gradients(Tensor& grads, double factor);

}  // namespace dense::train
