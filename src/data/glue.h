#pragma once
// GLUE: the nine tasks' official TSV layouts (as written by download_glue_data.py) read into raw text
// examples. Tokenization is a separate step; these loaders only know files, columns and labels.
//
// Layout table (columns by header name; CoLA train/dev have no header and use positions):
//   task   folder  splits (files)                                          text_a / text_b            label
//   CoLA   CoLA    train, dev (no header: source, label, annotation, sentence); test (index, sentence)
//                                                                           column 3 / -               column 1
//   SST-2  SST-2   train, dev (sentence, label); test (index, sentence)    sentence / -               label
//   MRPC   MRPC    train, dev (BOM + Quality, #1 ID, #2 ID, #1 String, #2 String); test (index, #1 ID, ...)
//                                                                           #1 String / #2 String      Quality
//   STS-B  STS-B   train, dev (index, genre, filename, year, old_index, source1, source2, sentence1,
//                  sentence2, score); test (the same without score)        sentence1 / sentence2      score (0..5)
//   QQP    QQP     train, dev (id, qid1, qid2, question1, question2, is_duplicate); test (id, question1, question2)
//                                                                           question1 / question2      is_duplicate
//   MNLI   MNLI    train, dev_matched, dev_mismatched, test_matched, test_mismatched (index, promptID, pairID,
//                  genre, 4 parse columns, sentence1, sentence2, [label1.., gold_label])
//                                                                           sentence1 / sentence2      gold_label
//   QNLI   QNLI    train, dev (index, question, sentence, label); test     question / sentence        label
//   RTE    RTE     train, dev (index, sentence1, sentence2, label); test   sentence1 / sentence2      label
//   WNLI   WNLI    train, dev (index, sentence1, sentence2, label); test   sentence1 / sentence2      label
// Label ids follow HuggingFace `datasets` glue/<task> (what the reference trains on, docs/model.md §3.4):
//   CoLA/SST-2/MRPC/QQP/WNLI "0"→0 "1"→1; MNLI entailment=0 neutral=1 contradiction=2;
//   QNLI/RTE entailment=0 not_entailment=1; STS-B float score in [0, 5].
// Test files are unlabeled (label -1). Text is kept byte for byte (SST-2's space before the tab included),
// except that invalid UTF-8 is replaced by U+FFFD and counted.
//
// Bad input: a row with the wrong column count, a label outside the task's set, a score that is not a number
// in [0, 5] -> dense::Error "<file>:<line>: ..."; a missing split file -> an error naming the folder and the
// expected file; a header without the expected columns -> an error listing them. QQP: SOURCES.md says
// nothing about malformed rows, so they are errors too unless GlueLoadOptions::skip_malformed_rows (counted).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dense::data {

enum class GlueTask { kCoLA, kSST2, kMRPC, kSTSB, kQQP, kMNLI, kQNLI, kRTE, kWNLI };
enum class GlueSplit { kTrain, kDev, kTest };

// Where one split lives and which columns it uses.
struct GlueFileLayout {
  std::string name;  // "train", "dev", "test", MNLI: "dev_matched", "dev_mismatched", "test_matched", ...
  GlueSplit split = GlueSplit::kTrain;
  std::string hf_name;  // HuggingFace split name: "train", "validation", "validation_matched", "test", ...
  std::string file;     // file name inside the task folder, e.g. "dev_matched.tsv"
  bool has_header = true;
  size_t num_columns = 0;  // header-less files only (CoLA train/dev: 4); otherwise the header's count
  // Header names of the columns used ("" = none); header-less files use the positions instead.
  std::string col_a, col_b, col_label, col_index;
  int pos_a = -1, pos_b = -1, pos_label = -1;
  bool labeled = true;
};

struct GlueTaskInfo {
  GlueTask task = GlueTask::kCoLA;
  std::string name;    // "CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"
  std::string folder;  // folder name in the official download (same as name)
  bool pair = false;
  bool regression = false;
  std::vector<std::string> label_values;  // the label as written in the file; position = label id
  std::vector<std::string> label_names;   // readable names (HF ClassLabel names)
  int max_length = 128;                   // docs/model.md §3.4 (512 for MRPC and RTE)
  std::vector<GlueFileLayout> files;      // every split file of the official layout
  size_t num_labels() const { return regression ? 1 : label_values.size(); }
  // The layout named `split` ("train", "dev", "test", "dev_matched", or the HF names "validation",
  // "validation_matched", ...; for MNLI "dev"/"validation"/"test" mean the matched files). Throws on an
  // unknown name, listing the known ones.
  const GlueFileLayout& layout(std::string_view split) const;
  // All layouts of a split kind (MNLI dev: matched and mismatched).
  std::vector<const GlueFileLayout*> layouts(GlueSplit split) const;
};

struct GlueExample {
  std::string guid;   // "<split>-<index>": the file's index/id column when it has one, else the row number
  int64_t index = 0;  // 0-based data row number in the file (HF `idx`)
  std::string id;     // the file's index/id column as written (GLUE submissions key on it); empty without one
  size_t line = 0;    // 1-based line in the file
  std::string text_a;
  std::optional<std::string> text_b;
  int label = -1;               // class id; -1 when unlabeled (test) or a regression task
  float score = std::nanf("");  // STS-B similarity; NaN otherwise
  bool has_label() const { return label >= 0 || !std::isnan(score); }
  float target() const { return std::isnan(score) ? float(label) : score; }
};

struct GlueSplitData {
  std::string task;   // "MNLI"
  std::string split;  // layout name, e.g. "dev_matched"
  std::filesystem::path path;
  bool labeled = true;
  std::vector<GlueExample> examples;
  size_t skipped_rows = 0;       // malformed rows skipped (only with skip_malformed_rows)
  size_t invalid_utf8_rows = 0;  // rows whose invalid UTF-8 was replaced by U+FFFD
  size_t size() const { return examples.size(); }
};

struct GlueLoadOptions {
  // Skip (and count) rows with the wrong column count instead of failing; off by default.
  bool skip_malformed_rows = false;
};

// The nine tasks in GLUE order (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI).
std::span<const GlueTaskInfo> glue_tasks();
const GlueTaskInfo& glue_task_info(GlueTask task);
// Accepts the folder name or a common alias, case-insensitively: "cola", "sst-2"/"sst2", "sts-b"/"stsb",
// "mnli", ... Throws listing the task names.
GlueTask glue_task_from_name(std::string_view name);

// Reads one split file from a task folder (e.g. ../shared/data/glue/CoLA).
GlueSplitData load_glue_split(const std::filesystem::path& task_dir, GlueTask task, std::string_view split,
                              const GlueLoadOptions& options = {});
// Reads one TSV of the given layout from any path (fuzzing, files named differently).
GlueSplitData load_glue_file(const std::filesystem::path& file, const GlueTaskInfo& info, const GlueFileLayout& layout,
                             const GlueLoadOptions& options = {});
// Parses TSV text held in memory (`name` is used in messages).
GlueSplitData parse_glue_tsv(std::string name, std::string data, const GlueTaskInfo& info, const GlueFileLayout& layout,
                             const GlueLoadOptions& options = {});

}  // namespace dense::data
