#include "eval/lra_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "config/train_config_yaml.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/shard_classification.h"
#include "eval/logits_dump.h"
#include "eval/metrics.h"

namespace dense::train {

namespace fs = std::filesystem;

const LraTaskInfo& lra_task_info(const std::string& task) {
  static const std::vector<LraTaskInfo> kTasks = {
      {"listops", "listops", 10, 0, false, true},      {"text", "text", 2, 0, false, false},
      {"retrieval", "retrieval", 2, 0, true, true},    {"image", "image", 10, 0, false, true},
      {"pathfinder", "pathfinder", 2, 0, false, true}, {"pathx", "pathfinder", 2, 16384, false, true},
  };
  for (const auto& t : kTasks)
    if (t.name == task) return t;
  DENSE_FAIL("lra: unknown task '{}' (expected listops, text, retrieval, image, pathfinder or pathx)", task);
}

namespace {

// The `task` dense-prep recorded in a shard's prep_config (empty when it recorded none).
std::string prep_task_of(const data::ClassificationShardReader& reader) {
  const nlohmann::json pc = nlohmann::json::parse(reader.info().prep_config, nullptr, /*allow_exceptions=*/false);
  return pc.is_object() && pc.contains("task") && pc["task"].is_string() ? pc["task"].get<std::string>() : "";
}

// Opens one split and checks that it is the task's: written by `dense-prep lra <prep_task>`, the task's label
// count, one or two documents as the task has, the same token space and length as the training split.
// `info_out` receives the shard's header (the training split's is what the others are checked against).
ClassificationSplit load_split(const LraTaskInfo& info, const fs::path& path, const data::ShardInfo* train_info,
                               data::ShardInfo* info_out = nullptr) {
  std::error_code ec;
  DENSE_CHECK(fs::is_regular_file(path, ec),
              "{}: no such shard (expected the output folder of `dense-prep lra {}`: "
              "train.hdf5, {}test.hdf5)",
              path.string(), info.prep_task, info.has_val_split ? "val.hdf5, " : "");
  const data::ClassificationShardReader reader(path.string());
  const std::string prep_task = prep_task_of(reader);
  DENSE_CHECK(prep_task.empty() || prep_task == info.prep_task,
              "{}: a shard of the LRA task '{}', not '{}' (dense-eval lra --task {} takes `dense-prep lra {}` shards)",
              path.string(), prep_task, info.prep_task, info.name, info.prep_task);
  const data::ClassificationLayout& layout = reader.layout();
  DENSE_CHECK(layout.num_labels == info.num_labels, "{}: {} labels, but LRA {} has {}", path.string(),
              layout.num_labels, info.name, info.num_labels);
  DENSE_CHECK(layout.second_document == info.pairs, "{}: {} document per row, but LRA {} has {}", path.string(),
              layout.second_document ? "two" : "one", info.name, info.pairs ? "two" : "one");
  DENSE_CHECK(info.seq_len == 0 || layout.seq_len == info.seq_len,
              "{}: rows of {} tokens, but LRA {} is at N = {} (dense-prep lra pathfinder --resolution 128)",
              path.string(), layout.seq_len, info.name, info.seq_len);
  if (train_info != nullptr) {
    DENSE_CHECK(reader.info().vocab_hash == train_info->vocab_hash,
                "{}: token space '{}' differs from the training split's '{}' ({}): the splits come from different "
                "dense-prep runs",
                path.string(), reader.info().vocab_hash, train_info->vocab_hash, train_info->path);
    DENSE_CHECK(layout.seq_len == train_info->seq_len, "{}: rows of {} tokens, the training split's ({}) of {}",
                path.string(), layout.seq_len, train_info->path, train_info->seq_len);
  }
  if (info_out != nullptr) *info_out = reader.info();
  return ClassificationSplit::load(path.string());
}

// Every token id must have an embedding row: the model's vocabulary must cover the shards' token space.
void check_token_ids(const ClassificationSplit& s, int64_t vocab_size, const std::string& config) {
  const int64_t N = s.rows.seq_len;
  for (const auto* ids : {&s.rows.input_ids, &s.rows.input_ids2}) {
    for (size_t i = 0; i < ids->size(); ++i) {
      const int32_t id = (*ids)[i];
      DENSE_CHECK(id >= 0 && id < vocab_size,
                  "{}: token id {} (row {}, position {}{}) does not fit model.vocab_size {} of {}: the model was not "
                  "made for these shards",
                  s.path, id, int64_t(i) / N, int64_t(i) % N, ids == &s.rows.input_ids2 ? ", second document" : "",
                  vocab_size, config);
    }
  }
}

TaskMetrics lra_accuracy(const std::vector<double>& pred, const ClassificationSplit& split) {
  std::vector<int64_t> p(pred.size());
  for (size_t i = 0; i < pred.size(); ++i) p[i] = int64_t(pred[i]);
  const std::vector<int64_t> y(split.rows.labels.begin(), split.rows.labels.begin() + long(pred.size()));
  TaskMetrics m;
  m.values["accuracy"] = accuracy(p, y);
  m.main = "accuracy";
  return m;
}

std::string seconds_text(double s) {
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 7200) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.2f} h", s / 3600);
}

}  // namespace

LraEvalReport run_lra_evaluation(const LraEvalRequest& req) {
  const auto start = std::chrono::steady_clock::now();
  const LraTaskInfo& info = lra_task_info(req.task);
  DENSE_CHECK(req.seeds >= 1, "--seeds: {} must be at least 1", req.seeds);
  std::error_code ec;
  DENSE_CHECK(fs::is_directory(req.data_dir, ec),
              "--data {}: no such folder (expected the output of `dense-prep lra {}`)", req.data_dir, info.prep_task);
  const TrainConfig cfg = load_train_config(req.config, req.overrides);
  DENSE_CHECK(cfg.model.pair_matching == info.pairs,
              "{}: model.pair_matching is {}, but LRA {} {} (the model must match the task)", req.config,
              cfg.model.pair_matching ? "true" : "false", info.name,
              info.pairs ? "compares two documents" : "classifies one document");

  const fs::path dir = req.data_dir;
  data::ShardInfo train_info;
  const ClassificationSplit train = load_split(info, dir / "train.hdf5", nullptr, &train_info);
  const ClassificationSplit test = load_split(info, dir / "test.hdf5", &train_info);
  // Text has no validation split (the reference validates on the test set); a val.hdf5 made by hand is used.
  const bool has_val = fs::is_regular_file(dir / "val.hdf5", ec);
  DENSE_CHECK(has_val || !info.has_val_split,
              "{}: no such shard (LRA {} has a validation split: re-run `dense-prep "
              "lra {}`)",
              (dir / "val.hdf5").string(), info.name, info.prep_task);
  std::optional<ClassificationSplit> val_split;
  if (has_val) val_split = load_split(info, dir / "val.hdf5", &train_info);
  const ClassificationSplit& val = has_val ? *val_split : test;
  for (const ClassificationSplit* s : {&train, &val, &test}) {
    DENSE_CHECK(s->labeled, "{}: an unlabeled split (LRA splits all carry labels)", s->path);
    check_token_ids(*s, cfg.model.vocab_size, req.config);
  }

  LraEvalReport report;
  report.task = info.name;
  report.seq_len = train.rows.seq_len;
  report.train_rows = req.max_train_rows > 0 ? std::min(req.max_train_rows, train.size()) : train.size();
  report.val_rows = req.max_eval_rows > 0 ? std::min(req.max_eval_rows, val.size()) : val.size();
  report.test_rows = test.size();
  report.val_is_test = !has_val;
  for (int64_t k = 0; k < req.seeds; ++k) {
    LraSeedRun run;
    run.seed = cfg.training.seed + uint64_t(k);
    const FinetuneOptions o = options_for_seed(req, run.seed);
    if (!req.quiet)
      std::fprintf(stderr, "lra %s: seed %llu (%lld of %lld), %lld training rows of %lld tokens\n", info.name.c_str(),
                   static_cast<unsigned long long>(run.seed), static_cast<long long>(k + 1),
                   static_cast<long long>(req.seeds), static_cast<long long>(report.train_rows),
                   static_cast<long long>(report.seq_len));
    const std::vector<const ClassificationSplit*> extra = {&test};
    run.result =
        finetune(cfg, train, val, has_val ? extra : std::vector<const ClassificationSplit*>{}, lra_accuracy, o);
    run.val_accuracy = run.result.best.at("accuracy");
    run.test_accuracy = has_val ? lra_accuracy(run.result.extra_predictions.at(0), test).values.at("accuracy")
                                : lra_accuracy(run.result.dev_predictions, test).values.at("accuracy");
    if (req.save_weights) run.weights = save_best_weights(run.result, req.out_dir, run.seed, "lra-" + info.name);
    report.runs.push_back(std::move(run));
  }
  std::vector<double> tests, vals;
  for (const auto& r : report.runs) {
    tests.push_back(r.test_accuracy);
    vals.push_back(r.val_accuracy);
  }
  report.median_run = median_index(tests);
  report.median_test = median_of(tests);
  report.median_val = median_of(vals);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Results: Markdown and JSON.
  const LraSeedRun& med = report.runs[report.median_run];
  std::string per_seed;
  for (const auto& r : report.runs)
    per_seed +=
        fmt::format("{}{:.2f} (epoch {})", per_seed.empty() ? "" : ", ", 100 * r.test_accuracy, r.result.best_epoch);
  std::string md = fmt::format(
      "| task | test accuracy (median of {}) | val accuracy{} | per seed: test (best val epoch) | N | train rows | "
      "parameters | time |\n|---|---|---|---|---|---|---|---|\n",
      report.runs.size(), report.val_is_test ? " (= test set)" : "");
  md += fmt::format("| {} | {:.2f} | {:.2f} | {} | {} | {} | {} | {} |\n", info.name, 100 * report.median_test,
                    100 * report.median_val, per_seed, report.seq_len, report.train_rows, med.result.parameters,
                    seconds_text(report.seconds));
  report.results_markdown = md;
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& r : report.runs) {
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& e : r.result.epochs)
      epochs.push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"val", e.metrics}, {"seconds", e.seconds}});
    runs.push_back({{"seed", r.seed},
                    {"best_epoch", r.result.best_epoch},
                    {"val_accuracy", r.val_accuracy},
                    {"test_accuracy", r.test_accuracy},
                    {"weights", r.weights},
                    {"epochs", epochs}});
  }
  const nlohmann::json j = {{"task", info.name},
                            {"median_test_accuracy", report.median_test},
                            {"median_val_accuracy", report.median_val},
                            {"median_seed", med.seed},
                            {"val_is_test", report.val_is_test},
                            {"seq_len", report.seq_len},
                            {"train_rows", report.train_rows},
                            {"val_rows", report.val_rows},
                            {"test_rows", report.test_rows},
                            {"parameters", med.result.parameters},
                            {"seconds", report.seconds},
                            {"data", req.data_dir},
                            {"config", req.config},
                            {"overrides", req.overrides},
                            {"init_from", req.init_from},
                            {"runs", runs}};
  fs::create_directories(req.out_dir);
  write_file_atomic(req.out_dir + "/results.md", md);
  write_file_atomic(req.out_dir + "/results.json", j.dump(2) + "\n");
  // The median run's test predictions (index, prediction, label), for checking the accuracy by hand.
  const std::vector<double>& pred = has_val ? med.result.extra_predictions.at(0) : med.result.dev_predictions;
  std::string tsv = "index\tprediction\tlabel\n";
  for (size_t i = 0; i < pred.size(); ++i) tsv += fmt::format("{}\t{}\t{}\n", i, int64_t(pred[i]), test.rows.labels[i]);
  write_file_atomic(req.out_dir + "/test_predictions.tsv", tsv);
  if (!req.dump_logits.empty())
    write_split_logits(req.dump_logits, test, has_val ? med.result.extra_logits.at(0) : med.result.dev_logits,
                       {{"task", info.name},
                        {"seed", std::to_string(med.seed)},
                        {"best_epoch", std::to_string(med.result.best_epoch)},
                        {"weights", med.weights}});
  return report;
}

}  // namespace dense::train
