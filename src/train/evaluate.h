#pragma once
// What training and dense-eval share: host batches as model inputs, the MLM evaluation over shards (reduced
// over the ranks of a data-parallel run), and loading named weights into a model.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "config/train_config.h"
#include "models/model.h"
#include "parallel/communicator.h"
#include "train/data_loader.h"

namespace dense::train {

// The loader's MLM masking and vocabulary check from cfg.data (and data.vocab when set: its hash must match
// the shards', [MASK] must exist, the vocabulary must fit model.vocab_size). The same for training and for
// evaluation, so that both draw the same masks.
void set_mlm_masking(const TrainConfig& cfg, LoaderOptions& lo);

// A HostBatch as model inputs on `device`.
models::Batch to_model_batch(const HostBatch& h, const models::ModelConfig& mc, Device device);

struct MlmEval {
  double loss = 0, accuracy = 0;  // mean cross entropy and top-1 accuracy over the masked tokens
  int64_t tokens = 0;             // masked tokens scored (all ranks)
  int64_t rows = 0;               // sequences read (all ranks)
};

// One pass over `base.files` in file order (no shuffling; packed shards masked from base.seed exactly as
// training masks them), at most max_batches batches per rank (0: all). Every rank of `comm` reads its slice;
// the result is the same on all.
// `on_batch` (dense-eval mlm --dump-logits) sees every batch read and its outputs (null for a batch with no masked
// token, which is not run).
MlmEval evaluate_mlm(models::Model& model, const LoaderOptions& base, int64_t max_batches, Device device,
                     parallel::Communicator& comm,
                     const std::function<void(const HostBatch&, const models::Outputs*)>& on_batch = {});

// Copies named weights into the model: every parameter must be present with its shape (dense::Error naming
// the tensor and `source` otherwise); tensors the model does not have are returned (the caller reports them).
// With resize_positions a learned position table of another length is tiled or truncated (docs/model.md §1.3).
// `on_resize(name, old_rows, new_rows)` is told of each resize.
std::vector<std::string> load_model_weights(
    models::Model& model, const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& source,
    bool resize_positions, const std::function<void(const std::string&, int64_t, int64_t)>& on_resize = {});

// One line for the log when load_model_weights resized a learned position table (its on_resize): what was
// widened or cut, from how many rows to how many, and how ("tiled": row i + k*old repeats trained row i).
std::string position_resize_note(const std::string& source, const std::string& name, int64_t old_rows,
                                 int64_t new_rows);

// A --checkpoint / --init-from argument resolved to the weights to read. Accepted: a model.safetensors (or any
// safetensors file), a checkpoint folder (step-N: its checksums are verified), a checkpoint directory holding
// step-N folders, or a run folder holding checkpoints/step-N; the last two use the newest checkpoint that
// verifies. Anything else is a dense::Error naming `flag`, the path and what is expected.
struct ResolvedCheckpoint {
  std::string weights;                // the safetensors file to read
  std::string folder;                 // the checkpoint folder; empty for a plain file
  std::string chosen;                 // for the log when a folder was picked: "step-N of <path> (newest ...)"
  std::vector<std::string> warnings;  // newer checkpoints skipped as incomplete or corrupt
};
ResolvedCheckpoint resolve_checkpoint(const std::string& path, const std::string& flag);

}  // namespace dense::train
