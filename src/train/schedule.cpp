#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace dense::train {

void validate_schedule_config(const ScheduleConfig& s, const OptimizerConfig& opt, int64_t max_steps) {
  const bool known = s.type == "cyclic_poly" || s.type == "constant" || s.type == "linear" || s.type == "cosine";
  if (!known) DENSE_FAIL("training.schedule.type: '{}' is not one of cyclic_poly, constant, linear, cosine", s.type);
  // Written as !(ok) so that NaN fails too.
  if (!(opt.learning_rate >= 0.0) || !std::isfinite(opt.learning_rate))
    DENSE_FAIL("training.optimizer.learning_rate: {} must be a finite number >= 0", opt.learning_rate);
  if (!(s.lr_offset >= 0.0) || !std::isfinite(s.lr_offset))
    DENSE_FAIL("training.schedule.lr_offset: {} must be a finite number >= 0", s.lr_offset);
  if (!(s.warmup_ratio >= 0.0 && s.warmup_ratio < 1.0))
    DENSE_FAIL("training.schedule.warmup_ratio: {} is outside [0, 1)", s.warmup_ratio);
  if (!(s.warmup_degree >= 0.0) || !std::isfinite(s.warmup_degree))
    DENSE_FAIL("training.schedule.warmup_degree: {} must be a finite number >= 0", s.warmup_degree);
  if (!(s.degree >= 0.0) || !std::isfinite(s.degree))
    DENSE_FAIL("training.schedule.degree: {} must be a finite number >= 0", s.degree);
  if (s.cycle_steps < 0)
    DENSE_FAIL("training.schedule.cycle_steps: {} must be >= 0 (0 = training.max_steps)", s.cycle_steps);
  if (s.type == "constant") return;
  if (s.type == "cyclic_poly" && s.cycle_steps > 0) return;
  if (max_steps <= 0)
    DENSE_FAIL("training.max_steps: {} must be > 0 for the {} schedule{}", max_steps, s.type,
               s.type == "cyclic_poly" ? " without training.schedule.cycle_steps" : "");
}

namespace {

// The warmup part shared by every decaying schedule: (x/w)^warmup_degree. std::pow(0, 0) = 1, as Python's
// 0.0 ** 0 in the reference.
double warmup(double x, const ScheduleConfig& s) { return std::pow(x / s.warmup_ratio, s.warmup_degree); }

}  // namespace

double learning_rate_at(const ScheduleConfig& s, const OptimizerConfig& opt, int64_t step, int64_t max_steps) {
  validate_schedule_config(s, opt, max_steps);
  DENSE_CHECK(step >= 0, "learning_rate_at: step {} is negative", step);
  const double w = s.warmup_ratio;
  double f = 1.0;
  if (s.type == "cyclic_poly") {
    const int64_t C = s.cycle_steps > 0 ? s.cycle_steps : max_steps;
    const double x = double(step % C) / double(C);
    f = x < w ? warmup(x, s) : std::pow(1.0 - (x - w) / (1.0 - w), s.degree);
  } else if (s.type == "linear" || s.type == "cosine") {
    const double x = std::min(double(step) / double(max_steps), 1.0);
    if (x < w) {
      f = warmup(x, s);
    } else {
      const double progress = (x - w) / (1.0 - w);
      f = s.type == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    }
  }
  return opt.learning_rate * f + s.lr_offset;
}

}  // namespace dense::train
