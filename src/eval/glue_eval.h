#pragma once
// dense-eval glue: one GLUE task from a folder laid out like the official download, fine-tuned from a
// checkpoint with the paper's recipe (configs/glue/<task>.yaml, docs/model.md §2.4): tokenised to shards (dense-prep's
// pipeline, kept for re-runs), several seeds, the best epoch on dev per seed, the median over seeds, a results
// table (Markdown and JSON) and GLUE-submission prediction files for the test splits.
#include <cstdint>
#include <string>
#include <vector>

#include "data/glue.h"
#include "eval/finetune.h"

namespace dense::train {

struct GlueEvalRequest {
  std::string task;      // CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI
  std::string glue_dir;  // holds <Task>/train.tsv, dev*.tsv, test*.tsv
  std::string config;    // model + training (configs/glue/*.yaml)
  std::vector<std::string> overrides;
  std::string init_from;  // checkpoint folder or model.safetensors; empty: from scratch
  std::string out_dir;    // shards/, results.md, results.json, dev*_predictions.tsv, submission/
  int64_t seeds = 1;
  int64_t max_eval_rows = 0;
  int64_t max_train_rows = 0;
  bool save_weights = false;  // each seed's best-epoch weights to <out_dir>/seed-<s>/model.safetensors
  bool quiet = false;
  std::string dump_logits;  // the median run's best-epoch dev logits and inputs (train/logits_dump.h)
};

struct GlueSeedRun {
  uint64_t seed = 0;
  FinetuneResult result;
  std::map<std::string, double> extra_metrics;  // MNLI: mismatched dev accuracy at the best epoch
  std::string weights;                          // seed-<s>/model.safetensors when saved
};

struct GlueEvalReport {
  std::string task, main_metric;
  std::vector<GlueSeedRun> runs;
  double median = 0;      // of the main metric over the seeds
  size_t median_run = 0;  // the run whose value is the median (the lower middle for an even count)
  std::string results_markdown;
  std::vector<std::string> submission_files;
};

GlueEvalReport run_glue_evaluation(const GlueEvalRequest& request);

// GLUE's submission layout: "index\tprediction", one row per test example keyed by the test file's own
// `index` (QQP: `id`) column, copied as written (the server matches rows by it, not by position); labels as
// the files spell them (STS-B: the score clipped to [0, 5], 3 decimals). dense::Error when the counts differ.
std::string glue_submission_tsv(const data::GlueTaskInfo& info, const std::vector<std::string>& ids,
                                const std::vector<double>& predictions, const std::string& source);

}  // namespace dense::train
