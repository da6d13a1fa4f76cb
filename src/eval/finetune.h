#pragma once
// Fine-tuning an encoder on `classification` shards (GLUE, LRA; docs/model.md §2.4, §2.5): epochs over the training
// split in an order shuffled from the seed, evaluation on the dev split after every epoch, the best epoch by
// the task's main metric, and its predictions on dev and (when given) test. One process, CPU.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/train_config.h"
#include "core/tensor.h"
#include "data/shard_classification.h"
#include "eval/metrics.h"
#include "models/model_config.h"

namespace dense::train {

// A whole classification shard in memory (GLUE splits are small; MNLI train is ~200 MB at N = 128).
struct ClassificationSplit {
  std::string path;
  data::ClassificationRows rows;
  int64_t num_labels = 2;  // 1: regression (float labels)
  bool labeled = true;
  static ClassificationSplit load(const std::string& path);
  int64_t size() const { return rows.rows; }
};

// Predictions: class ids (as doubles) or regression scores, one per row.
using MetricFn = std::function<TaskMetrics(const std::vector<double>& predictions, const ClassificationSplit& dev)>;

struct EpochScore {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0;
  double seconds = 0;  // wall time of the epoch's training and dev scoring
  std::map<std::string, double> metrics;
};

struct FinetuneResult {
  std::vector<EpochScore> epochs;
  int64_t best_epoch = 0;
  std::string main_metric;
  std::map<std::string, double> best;                  // the best epoch's dev metrics
  std::vector<double> dev_predictions;                 // every dev row, at the best epoch
  std::vector<std::vector<double>> extra_predictions;  // each of `extra` splits, at the best epoch
  // The logits behind those predictions, float32 row-major [rows, num_labels] (dense-eval --dump-logits).
  std::vector<float> dev_logits;
  std::vector<std::vector<float>> extra_logits;
  std::vector<std::pair<std::string, Tensor>> best_weights;  // with FinetuneOptions::keep_best_weights
  int64_t parameters = 0;                                    // of the model fine-tuned
};

struct FinetuneOptions {
  std::string init_from;       // weights (checkpoint folder or model.safetensors); empty: from the seed
  uint64_t seed = 0;           // data order, dropout and the heads' initialisation
  int64_t max_eval_rows = 0;   // dev rows scored per epoch (0: all; docs/model.md §2.4's max eval samples)
  int64_t max_train_rows = 0;  // train on the split's first rows only (0: all): CPU-sized runs
  // Cut each batch's trailing padding (to a multiple of 8 and of the local window) where that cannot change a
  // result (first or masked_mean pooling, no sparse pattern): less work on short rows (SST-2 sentences average
  // 13 tokens in rows of 128). Off only to compare.
  bool trim_padding = true;
  bool keep_best_weights = false;  // copy the weights at the best epoch into the result (to save them)
  bool quiet = false;              // no per-epoch and in-epoch progress lines on stderr
};

// The options of seed k of a multi-seed evaluation (dense-eval glue and lra: their requests name these fields
// alike), whose seeds run training.seed, training.seed + 1, ...
template <typename EvalRequest>
FinetuneOptions options_for_seed(const EvalRequest& req, uint64_t seed) {
  FinetuneOptions o;
  o.init_from = req.init_from;
  o.seed = seed;
  o.max_eval_rows = req.max_eval_rows;
  o.max_train_rows = req.max_train_rows;
  o.keep_best_weights = req.save_weights;
  o.quiet = req.quiet;
  return o;
}

// The length a batch of rows can be cut to without changing any real token's result: the longest row's
// last real token, rounded up to a multiple of 8 and of the local window (local layers tile windows) and to at
// least two windows (one window would take the global kernel), at most the shards' N. Exact because padding never reaches a real token: DANet zeroes padded rows (docs/model.md §1.4), which
// then add nothing to any XᵀX sum, and softmax attention masks padded keys. Kept at N: the `mean` and `max`
// poolers, which read the padded positions too (docs/model.md §1.11's quirk; `masked_mean` does not), and sparse
// patterns, which are built for one length (BigBird's random blocks depend on it), and causal models (their
// global layers work in chunks of chunk_size).
int64_t trimmed_batch_length(const data::ClassificationRows& rows, const std::vector<int64_t>& batch,
                             const models::ModelConfig& model);

// Writes result.best_weights (kept with FinetuneOptions::keep_best_weights) atomically to
// <out_dir>/seed-<seed>/model.safetensors, tagged with `task` and the best epoch, frees them, and returns the path.
std::string save_best_weights(FinetuneResult& result, const std::string& out_dir, uint64_t seed,
                              const std::string& task);

// The run whose value is the median of `values` (the lower middle for an even count), and the median itself
// (the mean of the two middle values for an even count). dense::Error for no value.
size_t median_index(const std::vector<double>& values);
double median_of(const std::vector<double>& values);

// Trains cfg.model (num_labels from the shards) with cfg.training's optimizer, batch (global_batch rows per
// step, in micro-batches of micro_batch rows when set) and schedule for
// cfg.training.epochs epochs (or max_steps steps). Weights from init_from must fit the encoder (an error names
// the tensor otherwise); the task heads (pooler, classifier) are taken only when their shapes fit, else they
// start from their initialisation (a pretraining checkpoint's classifier has another label count).
// `extra` (test splits, MNLI's mismatched dev) are predicted with the best epoch's weights.
FinetuneResult finetune(const TrainConfig& cfg, const ClassificationSplit& train, const ClassificationSplit& dev,
                        const std::vector<const ClassificationSplit*>& extra, const MetricFn& metric,
                        const FinetuneOptions& options);

}  // namespace dense::train
