#include "eval/glue_eval.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "config/train_config_yaml.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/glue.h"
#include "data/prep_glue.h"
#include "eval/logits_dump.h"

namespace dense::train {

namespace fs = std::filesystem;

namespace {

MetricFn metric_for(const std::string& task) {
  return [task](const std::vector<double>& pred, const ClassificationSplit& dev) {
    const size_t n = pred.size();
    if (dev.num_labels == 1) {
      const std::vector<double> y(dev.rows.float_labels.begin(), dev.rows.float_labels.begin() + long(n));
      return glue_regression_metrics(task, pred, y);
    }
    std::vector<int64_t> p(n);
    for (size_t i = 0; i < n; ++i) p[i] = int64_t(pred[i]);
    const std::vector<int64_t> y(dev.rows.labels.begin(), dev.rows.labels.begin() + long(n));
    return glue_classification_metrics(task, p, y);
  };
}

}  // namespace

std::string glue_submission_tsv(const data::GlueTaskInfo& info, const std::vector<std::string>& ids,
                                const std::vector<double>& pred, const std::string& source) {
  DENSE_CHECK(ids.size() == pred.size(), "{}: {} rows, but {} predictions for them", source, ids.size(), pred.size());
  std::string out = "index\tprediction\n";
  for (size_t i = 0; i < pred.size(); ++i) {
    const std::string label =
        info.regression ? fmt::format("{:.3f}", std::clamp(pred[i], 0.0, 5.0)) : info.label_values.at(size_t(pred[i]));
    out += fmt::format("{}\t{}\n", ids[i], label);
  }
  return out;
}

GlueEvalReport run_glue_evaluation(const GlueEvalRequest& req) {
  DENSE_CHECK(req.seeds >= 1, "--seeds: {} must be at least 1", req.seeds);
  const data::GlueTaskInfo& info = data::glue_task_info(data::glue_task_from_name(req.task));
  const TrainConfig cfg = load_train_config(req.config, req.overrides);
  DENSE_CHECK(!cfg.data.vocab.empty(), "{}: data.vocab must name the WordPiece vocabulary the model was trained with",
              req.config);
  DENSE_CHECK(fs::is_directory(fs::path(req.glue_dir) / info.folder),
              "{}: no {} folder (expected the official GLUE "
              "layout: {}/{}/train.tsv, dev*.tsv, test*.tsv)",
              req.glue_dir, info.folder, req.glue_dir, info.folder);

  data::GluePrepConfig prep;
  prep.glue_dir = req.glue_dir;
  prep.tasks = {info.name};
  prep.vocab_path = cfg.data.vocab;
  prep.out_dir = req.out_dir + "/shards";
  prep.progress.enabled = false;
  const data::GluePrepResult shards = data::prepare_glue(prep);
  auto split_path = [&](const std::string& name) -> std::string {
    for (const auto& s : shards.splits)
      if (s.split == name) return s.path;
    return "";
  };
  const bool mnli = info.name == "MNLI";
  const std::string train_path = split_path("train");
  const std::string dev_path = split_path(mnli ? "dev_matched" : "dev");
  DENSE_CHECK(!train_path.empty(), "{}/{}: no train split (expected {})", req.glue_dir, info.folder,
              info.layout("train").file);
  DENSE_CHECK(!dev_path.empty(), "{}/{}: no dev split (expected {})", req.glue_dir, info.folder,
              info.layout(mnli ? "dev_matched" : "dev").file);
  const ClassificationSplit train = ClassificationSplit::load(train_path);
  const ClassificationSplit dev = ClassificationSplit::load(dev_path);
  // Predicted at the best epoch: MNLI's mismatched dev (scored), and every test split (submission files).
  std::vector<ClassificationSplit> extras;
  std::vector<std::string> extra_names;
  for (const auto& s : shards.splits) {
    const bool dev_or_test = s.split.rfind("dev", 0) == 0 || s.split.rfind("test", 0) == 0;
    if (s.split == "train" || s.path == dev_path || !dev_or_test) continue;
    extras.push_back(ClassificationSplit::load(s.path));
    extra_names.push_back(s.split);
  }
  std::vector<const ClassificationSplit*> extra_ptrs;
  for (const auto& e : extras) extra_ptrs.push_back(&e);

  GlueEvalReport report;
  report.task = info.name;
  const MetricFn metric = metric_for(info.name);
  for (int64_t k = 0; k < req.seeds; ++k) {
    GlueSeedRun run;
    run.seed = cfg.training.seed + uint64_t(k);
    const FinetuneOptions o = options_for_seed(req, run.seed);
    if (!req.quiet)
      std::fprintf(stderr, "%s: seed %llu (%lld of %lld)\n", info.name.c_str(),
                   static_cast<unsigned long long>(run.seed), static_cast<long long>(k + 1),
                   static_cast<long long>(req.seeds));
    run.result = finetune(cfg, train, dev, extra_ptrs, metric, o);
    for (size_t i = 0; i < extras.size(); ++i)
      if (extras[i].labeled)
        for (const auto& [name, value] : metric(run.result.extra_predictions[i], extras[i]).values)
          run.extra_metrics[extra_names[i] + "_" + name] = value;
    if (req.save_weights) run.weights = save_best_weights(run.result, req.out_dir, run.seed, "glue-" + info.name);
    report.main_metric = run.result.main_metric;
    report.runs.push_back(std::move(run));
  }
  std::vector<double> main_values;
  for (const auto& r : report.runs) main_values.push_back(r.result.best.at(report.main_metric));
  report.median_run = median_index(main_values);
  report.median = median_of(main_values);

  // Results: Markdown and JSON.
  const GlueSeedRun& med = report.runs[report.median_run];
  std::string md =
      fmt::format("| task | metric (dev) | median of {} seed(s) | per seed (best epoch) |\n|---|---|---|---|\n",
                  report.runs.size());
  std::string per_seed;
  for (const auto& r : report.runs)
    per_seed += fmt::format("{}{:.4f} (epoch {})", per_seed.empty() ? "" : ", ", r.result.best.at(report.main_metric),
                            r.result.best_epoch);
  md += fmt::format("| {} | {} | {:.4f} | {} |\n", info.name, report.main_metric, report.median, per_seed);
  for (const auto& [name, v] : med.result.best)
    if (name != report.main_metric) md += fmt::format("| {} | {} (median run) | {:.4f} | |\n", info.name, name, v);
  for (const auto& [name, v] : med.extra_metrics)
    md += fmt::format("| {} | {} (median run) | {:.4f} | |\n", info.name, name, v);
  report.results_markdown = md;
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& r : report.runs) {
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& e : r.result.epochs)
      epochs.push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"dev", e.metrics}, {"seconds", e.seconds}});
    runs.push_back({{"seed", r.seed},
                    {"best_epoch", r.result.best_epoch},
                    {"best", r.result.best},
                    {"extra", r.extra_metrics},
                    {"weights", r.weights},
                    {"epochs", epochs}});
  }
  const nlohmann::json j = {{"task", info.name},
                            {"main_metric", report.main_metric},
                            {"median", report.median},
                            {"median_seed", med.seed},
                            {"init_from", req.init_from},
                            {"config", req.config},
                            {"runs", runs}};
  fs::create_directories(req.out_dir + "/submission");
  write_file_atomic(req.out_dir + "/results.md", md);
  write_file_atomic(req.out_dir + "/results.json", j.dump(2) + "\n");
  // The median run's predictions on every labeled dev split (index, prediction, label), for checking the metrics
  // by hand: dev_predictions.tsv (MNLI: matched), and <split>_predictions.tsv (MNLI: dev_mismatched).
  auto write_predictions = [&](const ClassificationSplit& split, const std::vector<double>& predictions,
                               const std::string& file) {
    std::string tsv = "index\tprediction\tlabel\n";
    for (size_t i = 0; i < predictions.size(); ++i) {
      const double y = split.num_labels == 1 ? double(split.rows.float_labels[i]) : double(split.rows.labels[i]);
      tsv += info.regression ? fmt::format("{}\t{:.6f}\t{:.6f}\n", i, predictions[i], y)
                             : fmt::format("{}\t{}\t{}\n", i, int64_t(predictions[i]), int64_t(y));
    }
    write_file_atomic(req.out_dir + "/" + file, tsv);
  };
  write_predictions(dev, med.result.dev_predictions, "dev_predictions.tsv");
  if (!req.dump_logits.empty())
    write_split_logits(req.dump_logits, dev, med.result.dev_logits,
                       {{"task", info.name},
                        {"seed", std::to_string(med.seed)},
                        {"best_epoch", std::to_string(med.result.best_epoch)},
                        {"weights", med.weights}});
  for (size_t i = 0; i < extras.size(); ++i)
    if (extras[i].labeled)
      write_predictions(extras[i], med.result.extra_predictions[i], extra_names[i] + "_predictions.tsv");
  // GLUE submission files from the median run, named as the GLUE server expects.
  for (size_t i = 0; i < extras.size(); ++i) {
    if (extras[i].labeled) continue;
    const std::string name =
        !mnli ? info.name : (extra_names[i].find("mismatched") != std::string::npos ? "MNLI-mm" : "MNLI-m");
    const std::string path = req.out_dir + "/submission/" + name + ".tsv";
    // The shards keep no index column: read it from the test file the shard was made from (same rows, same
    // order; prepare_glue above does not skip rows). A file without one is numbered by row.
    const data::GlueSplitData test = data::load_glue_split(fs::path(req.glue_dir) / info.folder,
                                                           data::glue_task_from_name(info.name), extra_names[i]);
    std::vector<std::string> ids;
    for (const auto& ex : test.examples) ids.push_back(ex.id.empty() ? std::to_string(ex.index) : ex.id);
    write_file_atomic(path, glue_submission_tsv(info, ids, med.result.extra_predictions[i], test.path.string()));
    report.submission_files.push_back(path);
  }
  return report;
}

}  // namespace dense::train
