#pragma once
// Checkpoints: one folder per step, <dir>/step-<8 digits>/, holding
//   model.safetensors      f32 master weights by parameter name (docs/model-config.md), readable by the
//                          `safetensors` package and PyTorch
//   optimizer.safetensors  optimizer state tensors (exp_avg, exp_avg_sq, ...) over the flat arena
//   trainer_state.json     step, data cursor, RNG, loss scale, config hash, optimizer step count
//   checksums.json         length and CRC-32 of each file above
// The folder is written as step-<n>.tmp-<pid>, every file fsynced, then renamed into place, so a folder under
// a final name is always complete; a crash (even SIGKILL) mid-write leaves only a temporary folder, which is
// never loaded and is removed by the next run. Loading verifies every checksum first.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace dense::train {

struct CheckpointData {
  std::vector<std::pair<std::string, Tensor>> model;
  std::vector<std::pair<std::string, Tensor>> optimizer;
  nlohmann::json state = nlohmann::json::object();
};

// "step-00000100"
std::string checkpoint_name(int64_t step);

// Writes the checkpoint of `step` under `dir` (created if needed); returns its folder. An existing checkpoint
// of the same step is replaced atomically.
std::string save_checkpoint(const std::string& dir, int64_t step, const CheckpointData& data);

// Verifies checksums.json and loads everything; dense::Error naming the folder and the file at fault.
CheckpointData load_checkpoint(const std::string& folder);
// Checksums only (cheap relative to a load of the tensors it does not parse).
void verify_checkpoint(const std::string& folder);

struct CheckpointScan {
  std::string latest;  // newest checkpoint that verifies; empty when none
  int64_t latest_step = -1;
  std::vector<std::string> warnings;  // skipped incomplete or corrupt checkpoints, one line each
};
// Looks through <dir>/step-* from the newest down.
CheckpointScan find_latest_checkpoint(const std::string& dir);

// The steps of the checkpoints under dir (final names only), ascending.
std::vector<int64_t> list_checkpoints(const std::string& dir);

// Keeps the newest `keep_last` (0: all), every step divisible by `keep_every` (0: none) and `keep_step` (the
// checkpoint just saved: never pruned, whatever newer folders lie beside it); removes the rest. Returns the
// removed folders.
std::vector<std::string> prune_checkpoints(const std::string& dir, int64_t keep_last, int64_t keep_every,
                                           int64_t keep_step = -1);

// Removes temporary checkpoint folders (step-*.tmp-<pid>) of processes that no longer run.
int64_t remove_stale_checkpoint_temporaries(const std::string& dir);

}  // namespace dense::train
