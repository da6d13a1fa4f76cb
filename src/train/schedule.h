#pragma once
// Learning-rate schedules (docs/model.md §4.2): the LR is computed from the optimizer step t before step t's update.
#include <cstdint>

#include "config/train_config.h"

namespace dense::train {

// The LR before optimizer step `step` (0-based) with opt.learning_rate as the peak P and the schedule's
// lr_offset O added on top, as the reference does, for every type (so switching type keeps the top and the
// floor): lr = P * f(t) + O.
//   cyclic_poly: docs/model.md §4.2 exactly: x = (t mod C)/C, C = cycle_steps (0: max_steps); f = (x/w)^warmup_degree
//                for x < w, else (1 - (x-w)/(1-w))^degree. Restarts every C steps.
//   constant:    f = 1.
//   linear:      x = min(t/max_steps, 1); warmup as cyclic_poly, then f = 1 - (x-w)/(1-w) (degree unused).
//   cosine:      x as linear; warmup as cyclic_poly, then f = (1 + cos(pi (x-w)/(1-w))) / 2.
// Past max_steps, linear and cosine stay at O (they do not cycle). Errors name the config key.
double learning_rate_at(const ScheduleConfig& schedule, const OptimizerConfig& opt, int64_t step, int64_t max_steps);

// The checks learning_rate_at makes, for validating a config before training starts.
void validate_schedule_config(const ScheduleConfig& schedule, const OptimizerConfig& opt, int64_t max_steps);

}  // namespace dense::train
