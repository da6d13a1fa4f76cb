#pragma once
// `dense-prep glue`: GLUE task folders (the official TSV layout) into `classification` shards, one per split
// file: <out>/<Task>/<split>.hdf5 (e.g. MNLI/dev_matched.hdf5) with input_ids, attention_mask, token_type_ids
// and labels (int64 class ids; float32 scores for STS-B; -1 / NaN in unlabeled test files, attribute
// labeled = 0). Tokenization as docs/model.md §3.4: [CLS] a [SEP] (b [SEP]), truncated longest-first to the task's
// max_length (128; 512 for MRPC and RTE) and padded to it. Rows keep the file's order (row i = HF idx i).
// Splits are tokenized in parallel; a re-run keeps shards whose prep_config matches (see prep_common.h).
#include <cstdint>
#include <string>
#include <vector>

#include "data/progress.h"

namespace dense::data {

struct GluePrepConfig {
  std::string glue_dir;            // holds CoLA/, SST-2/, ... (any subset)
  std::vector<std::string> tasks;  // names or aliases; empty = every task whose folder exists
  std::string vocab_path;
  bool lowercase = true;
  int64_t max_length = 0;  // 0: the task's default
  std::string out_dir;
  int gzip_level = 4;
  int threads = 0;
  bool overwrite = false;
  bool skip_malformed_rows = false;  // count and skip rows with a wrong column count instead of failing
  ProgressOptions progress;
};

struct GluePrepSplit {
  std::string task, split, path;
  int64_t rows = 0;
  int64_t truncated_rows = 0;  // examples cut to max_length
  int64_t skipped_rows = 0;    // malformed rows skipped (skip_malformed_rows)
  bool labeled = true;
  bool kept = false;  // already complete from an earlier run
};

struct GluePrepResult {
  std::vector<GluePrepSplit> splits;
  std::vector<std::string> tasks_without_folder;  // when all tasks were asked for
};

GluePrepResult prepare_glue(const GluePrepConfig& config);

}  // namespace dense::data
