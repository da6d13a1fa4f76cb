#pragma once
// Dynamic loss scaling for f16 training (docs/model.md §4.3; the engine's defaults: start 2^16, window 20,
// hysteresis 2, minimum 1). The loss is multiplied by the scale before backward so that small gradients
// survive f16's narrow range; the gradients are divided by it before the update. An overflow (a non-finite
// gradient) skips the step; after `hysteresis` overflows the scale halves; after `window` clean steps in a
// row it doubles.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "config/train_config.h"

namespace dense::train {

class LossScaler {
 public:
  // Disabled (scale 1, update() a no-op that reports any overflow) unless training.precision is f16.
  explicit LossScaler(const TrainingConfig& config);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  // Records one step's outcome and adjusts the scale; call once per optimizer step.
  void update(bool overflow);
  // True when the scale cannot fall further: an overflow there is divergence, not a too-large scale.
  bool at_minimum() const { return scale_ <= min_scale_; }

  nlohmann::json to_json() const;
  // The state a checkpoint saved (the keys of to_json); dense::Error naming a missing or invalid key.
  void load_json(const nlohmann::json& state, const std::string& source);

 private:
  bool enabled_ = false;
  double scale_ = 1.0, min_scale_ = 1.0;
  int64_t window_ = 20, hysteresis_ = 2;
  int64_t clean_steps_ = 0;      // overflow-free steps since the last change of scale
  int64_t hysteresis_left_ = 2;  // overflows still tolerated before the scale halves
};

}  // namespace dense::train
