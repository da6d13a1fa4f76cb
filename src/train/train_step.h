#pragma once
// One optimizer step (docs/model.md §4.5): the micro-batches' forward and backward, the gradient sum over ranks,
// the loss-scale unscale, the non-finite check (skip, or stop after too many in a row), clipping and the update.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <vector>

#include "train/data_loader.h"
#include "train/run_log.h"
#include "train/train_state.h"

namespace dense::train {

// Fills every micro-batch of this rank's share of the next global batch; returns their masked-token count.
// Throws BadShardError (data.on_bad_shard: fail) with nothing of the step done.
int64_t next_micro_batches(ShardLoader& loader, std::vector<HostBatch>& micro_batches);

// Trains on `micro_batches` (moved from) and advances st.step. `local_masked`: their masked-token count.
// dump_gradients_dir: when set, every rank writes the step's gradients there (--dump-gradients).
StepFigures run_step(TrainState& st, const TrainConfig& cfg, std::vector<HostBatch>& micro_batches,
                     int64_t local_masked, int64_t seq_len, const std::string& dump_gradients_dir, spdlog::logger& log);

}  // namespace dense::train
