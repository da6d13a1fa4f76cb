#pragma once
// dense-eval mlm: the MLM loss and accuracy of a checkpoint on held-out shards, at the length of those
// shards whatever length the model was trained at (docs/model.md §5). The model comes from the run's config.yaml (or
// --config); shards longer than the model's positions extend it: learned position tables are tiled (docs/model.md §1.3),
// relative positions need no table.
#include <cstdint>
#include <string>
#include <vector>

#include "train/evaluate.h"

namespace dense::train {

struct MlmEvalRequest {
  std::string checkpoint;              // a checkpoint folder (step-XXXXXXXX), a run folder, or a model.safetensors
  std::string config;                  // empty: the config.yaml of the run the checkpoint belongs to
  std::vector<std::string> overrides;  // --set key=value, applied to that config
  std::string data;                    // a shard file or folder
  int64_t batch = 0;                   // rows per batch per rank; 0: the config's micro batch
  int64_t max_batches = 0;             // per rank; 0: every row
  std::string dump_logits;  // the masked positions' logits and the inputs (train/logits_dump.h); one process only
};

struct MlmEvalReport {
  MlmEval result;
  int64_t seq_len = 0;                // of the shards
  int64_t trained_positions = 0;      // the config's max_position_embeddings
  std::string weights, config;        // the files read
  std::string chosen_checkpoint;      // when --checkpoint named a run folder: the checkpoint picked, for the log
  std::vector<std::string> warnings;  // skipped incomplete checkpoints, resized position tables
  int64_t rank = 0, world = 1;
};

MlmEvalReport run_mlm_evaluation(const MlmEvalRequest& request);

// The config.yaml of the run a checkpoint belongs to: beside it, or up to three folders above
// (runs/x/checkpoints/step-N). dense::Error naming the checkpoint when there is none.
std::string find_run_config(const std::string& checkpoint);

}  // namespace dense::train
