#include "train/loss_scaler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dense::train {

LossScaler::LossScaler(const TrainingConfig& c)
    : enabled_(c.precision == "f16"),
      scale_(enabled_ ? c.loss_scale_init : 1.0),
      min_scale_(c.loss_scale_min),
      window_(c.loss_scale_window),
      hysteresis_(c.loss_scale_hysteresis),
      hysteresis_left_(c.loss_scale_hysteresis) {
  if (!enabled_) return;
  DENSE_CHECK(std::isfinite(scale_) && scale_ > 0, "training.loss_scale_init: {} must be a finite number > 0", scale_);
  DENSE_CHECK(std::isfinite(min_scale_) && min_scale_ > 0 && min_scale_ <= scale_,
              "training.loss_scale_min: {} must be > 0 and at most loss_scale_init {}", min_scale_, scale_);
  DENSE_CHECK(window_ >= 1, "training.loss_scale_window: {} must be at least 1", window_);
  DENSE_CHECK(hysteresis_ >= 1, "training.loss_scale_hysteresis: {} must be at least 1", hysteresis_);
}

void LossScaler::update(bool overflow) {
  if (!enabled_) return;
  if (overflow) {
    clean_steps_ = 0;
    if (--hysteresis_left_ <= 0) {
      scale_ = std::max(scale_ * 0.5, min_scale_);
      hysteresis_left_ = hysteresis_;
    }
    return;
  }
  if (++clean_steps_ >= window_) {
    scale_ *= 2.0;
    clean_steps_ = 0;
    hysteresis_left_ = hysteresis_;
  }
}

nlohmann::json LossScaler::to_json() const {
  return {{"scale", scale_}, {"clean_steps", clean_steps_}, {"hysteresis_left", hysteresis_left_}};
}

void LossScaler::load_json(const nlohmann::json& s, const std::string& source) {
  if (!enabled_) return;
  DENSE_CHECK(s.is_object() && s.contains("scale") && s["scale"].is_number() && s.contains("clean_steps") &&
                  s["clean_steps"].is_number_integer() && s.contains("hysteresis_left") &&
                  s["hysteresis_left"].is_number_integer(),
              "{}: loss_scaler needs numbers scale, clean_steps and hysteresis_left (the checkpoint of an f16 run)",
              source);
  const double scale = s["scale"].get<double>();
  DENSE_CHECK(std::isfinite(scale) && scale > 0, "{}: loss_scaler.scale {} must be a finite number > 0", source, scale);
  scale_ = scale;
  clean_steps_ = s["clean_steps"].get<int64_t>();
  hysteresis_left_ = s["hysteresis_left"].get<int64_t>();
}

}  // namespace dense::train
