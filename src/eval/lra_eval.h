#pragma once
// dense-eval lra: one Long Range Arena task trained and scored from `dense-prep lra` shards with the paper's
// recipe (configs/lra/<task>.yaml, docs/model.md §2.5, §5.2): several seeds, the best epoch by validation accuracy per
// seed, its test accuracy, the median over seeds (the paper reports the median of 5 runs, 3 for Path-X), a
// results table (Markdown and JSON) and the median run's test predictions.
//
// Tasks and the shards they take (<data>/{train,val,test}.hdf5 as dense-prep writes them):
//   listops     `dense-prep lra listops`      10 classes, CLS first
//   text        `dense-prep lra text`         2 classes; no val split: the test set doubles as validation, as
//                                             the reference does (docs/model.md §3.5)
//   retrieval   `dense-prep lra retrieval`    2 classes, two documents (the model needs pair_matching)
//   image       `dense-prep lra image`        10 classes, pixels as tokens
//   pathfinder  `dense-prep lra pathfinder`   2 classes, any resolution
//   pathx       `dense-prep lra pathfinder --resolution 128` (N = 16384); the paper's curriculum trains the
//               easy set first and passes its weights (--save-weights, then --init-from) to the hard set.
#include <cstdint>
#include <string>
#include <vector>

#include "eval/finetune.h"

namespace dense::train {

struct LraEvalRequest {
  std::string task;      // listops | text | retrieval | image | pathfinder | pathx
  std::string data_dir;  // a `dense-prep lra` output folder
  std::string config;    // model + training (configs/lra/*.yaml)
  std::vector<std::string> overrides;
  std::string init_from;  // weights to start from (a checkpoint folder or model.safetensors); empty: the seed
  std::string out_dir;    // results.md, results.json, test_predictions.tsv[, seed-<s>/model.safetensors]
  int64_t seeds = 1;
  int64_t max_eval_rows = 0;   // validation rows scored per epoch (0: all)
  int64_t max_train_rows = 0;  // train on the first rows only (0: all)
  bool save_weights = false;   // write each seed's best-epoch weights
  bool quiet = false;
  std::string dump_logits;  // the median run's best-epoch test logits and inputs (train/logits_dump.h)
};

struct LraSeedRun {
  uint64_t seed = 0;
  FinetuneResult result;
  double val_accuracy = 0;   // at the best epoch
  double test_accuracy = 0;  // with the best epoch's weights
  std::string weights;       // seed-<s>/model.safetensors when saved
};

struct LraEvalReport {
  std::string task;
  std::vector<LraSeedRun> runs;
  double median_test = 0, median_val = 0;
  size_t median_run = 0;  // the run whose test accuracy is the median (the lower middle for an even count)
  int64_t seq_len = 0, train_rows = 0, val_rows = 0, test_rows = 0;
  bool val_is_test = false;  // text: validation on the test set
  double seconds = 0;
  std::string results_markdown;
};

// The shards' facts an LRA task requires (`dense-prep lra <prep_task>`), for checks and messages.
struct LraTaskInfo {
  std::string name, prep_task;
  int64_t num_labels = 0;
  int64_t seq_len = 0;  // 0: any
  bool pairs = false;
  bool has_val_split = true;
};
// dense::Error listing the tasks for an unknown name.
const LraTaskInfo& lra_task_info(const std::string& task);

LraEvalReport run_lra_evaluation(const LraEvalRequest& request);

}  // namespace dense::train
