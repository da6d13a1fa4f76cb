// dense-eval glue end to end on the real WNLI and CoLA folders (../shared/data/glue): shards, seeds, the
// best epoch, the median, results files, GLUE submission files; and the bad inputs the issue names (a missing
// split, a wrong column count, a label outside the task's set, a checkpoint whose shapes do not fit).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend/backend.h"
#include "core/safetensors.h"
#include "eval/glue_eval.h"
#include "eval/metrics.h"
#include "models/model.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace dense::train;
using dense::testing::contains;
using dense::testing::error_of;
using dense::testing::read_bytes;
using dense::testing::temp_dir;
using dense::testing::write_bytes;

namespace {

const std::string kGlue = std::string(DENSE_SHARED_DIR) + "/data/glue";

std::string tiny_config(const std::string& dir, int64_t hidden = 32) {
  const std::string path = dir + "/tiny_glue.yaml";
  write_bytes(path, fmt::format(R"(name: tiny-glue
model:
  model_type: danet
  vocab_size: 560
  hidden_size: {}
  num_hidden_layers: 2
  intermediate_size: 2
  max_position_embeddings: 128
  pooler_function: mean
  pooler_act: tanh
  classifier_bias: true
data:
  vocab: {}/wordpiece_vocab_small.txt
training:
  epochs: 3
  global_batch: 32
  threads: 2
  seed: 4
  optimizer:
    learning_rate: 1.0e-3
    weight_decay: 0.0
  schedule:
    type: constant
)",
                                hidden, DENSE_TEST_DATA_DIR));
  return path;
}

std::vector<std::vector<std::string>> read_tsv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_bytes(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cols;
    std::istringstream l(line);
    std::string c;
    while (std::getline(l, c, '\t')) cols.push_back(c);
    rows.push_back(cols);
  }
  return rows;
}

}  // namespace

TEST(GlueEval, WnliSeedsMedianResultsAndSubmission) {
  const std::string dir = temp_dir();
  GlueEvalRequest r;
  r.task = "WNLI";
  r.glue_dir = kGlue;
  r.config = tiny_config(dir);
  r.out_dir = dir + "/out";
  r.seeds = 3;
  r.quiet = true;
  const GlueEvalReport rep = run_glue_evaluation(r);
  ASSERT_EQ(rep.runs.size(), 3u);
  EXPECT_EQ(rep.main_metric, "accuracy");
  std::vector<double> best;
  for (const auto& run : rep.runs) {
    EXPECT_EQ(run.result.epochs.size(), 3u);
    EXPECT_GE(run.result.best_epoch, 1);
    // The best epoch is the epoch with the highest dev accuracy (the first of equals).
    double top = -1;
    int64_t top_epoch = 0;
    for (const auto& e : run.result.epochs)
      if (e.metrics.at("accuracy") > top) top = e.metrics.at("accuracy"), top_epoch = e.epoch;
    EXPECT_EQ(run.result.best_epoch, top_epoch);
    best.push_back(run.result.best.at("accuracy"));
  }
  std::sort(best.begin(), best.end());
  EXPECT_EQ(rep.median, best[1]);
  // The dev predictions of the median run give the reported accuracy when scored independently of the trainer.
  const auto dev = read_tsv(r.out_dir + "/dev_predictions.tsv");
  ASSERT_EQ(dev.size(), 72u);  // header + 71 WNLI dev rows
  int right = 0;
  for (size_t i = 1; i < dev.size(); ++i) right += dev[i][1] == dev[i][2];
  EXPECT_DOUBLE_EQ(double(right) / 71.0, rep.runs[rep.median_run].result.best.at("accuracy"));
  // GLUE submission: one prediction per test row, labels as the files spell them.
  ASSERT_EQ(rep.submission_files.size(), 1u);
  EXPECT_EQ(fs::path(rep.submission_files[0]).filename(), "WNLI.tsv");
  const auto sub = read_tsv(rep.submission_files[0]);
  ASSERT_EQ(sub.size(), 147u);  // header + 146 test rows
  EXPECT_EQ(sub[0], (std::vector<std::string>{"index", "prediction"}));
  for (size_t i = 1; i < sub.size(); ++i) {
    EXPECT_EQ(sub[i][0], std::to_string(i - 1));
    EXPECT_TRUE(sub[i][1] == "0" || sub[i][1] == "1") << sub[i][1];
  }
  const auto j = nlohmann::json::parse(read_bytes(r.out_dir + "/results.json"));
  EXPECT_EQ(j["task"], "WNLI");
  EXPECT_EQ(j["runs"].size(), 3u);
  EXPECT_EQ(j["median"].get<double>(), rep.median);
  EXPECT_TRUE(contains(read_bytes(r.out_dir + "/results.md"), "| WNLI | accuracy |"));
}

// The GLUE server matches predictions by the test file's `index` column, not by position: the submission copies
// it as written, even when it is not 0..n-1.
TEST(GlueEval, SubmissionCopiesTheTestFilesIndexColumn) {
  const std::string dir = temp_dir();
  fs::create_directories(dir + "/glue/WNLI");
  for (const char* f : {"train.tsv", "dev.tsv"}) fs::copy_file(kGlue + "/WNLI/" + f, dir + "/glue/WNLI/" + f);
  // Renumber the test rows 1000, 1003, 1006, ... (the official files' indices are their own, not row numbers).
  const auto rows = read_tsv(kGlue + "/WNLI/test.tsv");
  ASSERT_EQ(rows[0][0], "index");
  std::string test = read_bytes(kGlue + "/WNLI/test.tsv");
  std::string renumbered = test.substr(0, test.find('\n') + 1);
  std::vector<std::string> ids;
  std::istringstream in(test.substr(test.find('\n') + 1));
  for (std::string line; std::getline(in, line);) {
    ids.push_back(std::to_string(1000 + 3 * ids.size()));
    renumbered += ids.back() + line.substr(line.find('\t')) + "\n";
  }
  write_bytes(dir + "/glue/WNLI/test.tsv", renumbered);
  std::string yaml = read_bytes(tiny_config(dir));
  yaml.replace(yaml.find("epochs: 3"), 9, "epochs: 1");
  write_bytes(dir + "/one_epoch.yaml", yaml);
  GlueEvalRequest r;
  r.task = "WNLI";
  r.glue_dir = dir + "/glue";
  r.config = dir + "/one_epoch.yaml";
  r.out_dir = dir + "/out";
  r.quiet = true;
  const GlueEvalReport rep = run_glue_evaluation(r);
  ASSERT_EQ(rep.submission_files.size(), 1u);
  const auto sub = read_tsv(rep.submission_files[0]);
  ASSERT_EQ(sub.size(), ids.size() + 1);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(sub[i + 1][0], ids[i]) << "row " << i;
  // The writer itself: labels as the task spells them, the ids as given, and a count mismatch is named.
  const auto& wnli = dense::data::glue_task_info(dense::data::GlueTask::kWNLI);
  EXPECT_EQ(glue_submission_tsv(wnli, {"7", "x-2"}, {1.0, 0.0}, "t.tsv"), "index\tprediction\n7\t1\nx-2\t0\n");
  const auto& stsb = dense::data::glue_task_info(dense::data::GlueTask::kSTSB);
  EXPECT_EQ(glue_submission_tsv(stsb, {"3"}, {5.7}, "t.tsv"), "index\tprediction\n3\t5.000\n");
  EXPECT_TRUE(contains(error_of([&] {
                         glue_submission_tsv(wnli, {"1"}, {1.0, 0.0}, "t.tsv");
                       }),
                       "t.tsv: 1 rows, but 2 predictions"));
}

// RTE rows are 512 tokens; a checkpoint trained at 128 positions gets its learned table tiled to 512. That changes
// what every position past 128 sees, so it must be said, with the sizes and how.
TEST(GlueEval, WideningThePositionTableIsLogged) {
  const std::string dir = temp_dir();
  dense::models::ModelConfig mc;
  mc.model_type = dense::models::ModelType::Danet;
  mc.vocab_size = 560;
  mc.hidden_size = 32;
  mc.num_hidden_layers = 2;
  mc.intermediate_size = 2;
  mc.max_position_embeddings = 128;
  mc.pooler_function = dense::nn::PoolFunction::Mean;
  mc.pooler_act = dense::models::ActivationType::Tanh;
  mc.classifier_bias = true;
  auto model = dense::models::build_model(mc, dense::DType::F32, dense::Device::cpu(), 1);
  std::vector<std::pair<std::string, dense::Tensor>> tensors;
  for (const auto& p : model->params().all()) tensors.emplace_back(p.name, p.value.clone());
  dense::write_safetensors(dir + "/n128.safetensors", tensors, {});
  std::string yaml = read_bytes(tiny_config(dir));
  yaml.replace(yaml.find("epochs: 3"), 9, "epochs: 1");
  write_bytes(dir + "/one_epoch.yaml", yaml);
  GlueEvalRequest r;
  r.task = "RTE";
  r.glue_dir = std::string(DENSE_TEST_DATA_DIR) + "/glue";
  r.config = dir + "/one_epoch.yaml";
  r.out_dir = dir + "/out";
  r.init_from = dir + "/n128.safetensors";
  r.quiet = true;
  ::testing::internal::CaptureStderr();
  run_glue_evaluation(r);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "warning: " + dir +
                                "/n128.safetensors: 'embeddings.position_embeddings.weight' has 128 "
                                "trained positions, the data needs 512: widened by tiling"))
      << log;
  // From scratch there is nothing to widen and nothing to say.
  r.init_from.clear();
  r.out_dir = dir + "/out2";
  ::testing::internal::CaptureStderr();
  run_glue_evaluation(r);
  const std::string quiet = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(contains(quiet, "widened")) << quiet;
}

TEST(GlueEval, ColaReportsMatthewsCorrelation) {
  const std::string dir = temp_dir();
  GlueEvalRequest r;
  r.task = "CoLA";
  r.glue_dir = kGlue;
  r.config = tiny_config(dir);
  r.out_dir = dir + "/out";
  r.max_train_rows = 2000;
  r.quiet = true;
  const GlueEvalReport rep = run_glue_evaluation(r);
  EXPECT_EQ(rep.main_metric, "mcc");
  const auto dev = read_tsv(r.out_dir + "/dev_predictions.tsv");
  std::vector<int64_t> p, y;
  for (size_t i = 1; i < dev.size(); ++i) {
    p.push_back(std::stoll(dev[i][1]));
    y.push_back(std::stoll(dev[i][2]));
  }
  ASSERT_EQ(p.size(), 1043u);
  EXPECT_DOUBLE_EQ(matthews_corrcoef(binary_counts(p, y)), rep.runs[0].result.best.at("mcc"));
  EXPECT_DOUBLE_EQ(accuracy(p, y), rep.runs[0].result.best.at("accuracy"));
}

TEST(GlueEval, BadInputIsNamed) {
  const std::string dir = temp_dir();
  const std::string config = tiny_config(dir);
  auto request = [&](const std::string& glue_dir, const std::string& out) {
    GlueEvalRequest r;
    r.task = "WNLI";
    r.glue_dir = glue_dir;
    r.config = config;
    r.out_dir = dir + "/" + out;
    r.quiet = true;
    return r;
  };
  auto copy_wnli = [&](const std::string& name) {
    const std::string d = dir + "/" + name;
    fs::create_directories(d + "/WNLI");
    for (const char* f : {"train.tsv", "dev.tsv", "test.tsv"}) fs::copy_file(kGlue + "/WNLI/" + f, d + "/WNLI/" + f);
    return d;
  };
  // No task folder.
  EXPECT_TRUE(contains(error_of([&] { run_glue_evaluation(request(dir + "/empty", "o1")); }), "no WNLI folder"));
  // A missing split.
  const std::string nodev = copy_wnli("nodev");
  fs::remove(nodev + "/WNLI/dev.tsv");
  const std::string e1 = error_of([&] { run_glue_evaluation(request(nodev, "o2")); });
  EXPECT_TRUE(contains(e1, "dev")) << e1;
  // A wrong column count, and a label outside {0, 1}: the file and line are named.
  const std::string cols = copy_wnli("cols");
  {
    std::string t = read_bytes(cols + "/WNLI/train.tsv");
    t += "999\tonly two columns\n";
    write_bytes(cols + "/WNLI/train.tsv", t);
  }
  const std::string e2 = error_of([&] { run_glue_evaluation(request(cols, "o3")); });
  EXPECT_TRUE(contains(e2, "train.tsv")) << e2;
  EXPECT_TRUE(contains(e2, "637")) << e2;  // the line
  const std::string labels = copy_wnli("labels");
  {
    std::string t = read_bytes(labels + "/WNLI/dev.tsv");
    t += "71\tA sentence.\tAnother one.\t7\n";
    write_bytes(labels + "/WNLI/dev.tsv", t);
  }
  const std::string e3 = error_of([&] { run_glue_evaluation(request(labels, "o4")); });
  EXPECT_TRUE(contains(e3, "dev.tsv")) << e3;
  EXPECT_TRUE(contains(e3, "'7'")) << e3;
  // A checkpoint whose encoder does not fit the config: the tensor is named.
  dense::models::ModelConfig wide;
  wide.model_type = dense::models::ModelType::Danet;
  wide.vocab_size = 560;
  wide.hidden_size = 48;
  wide.num_hidden_layers = 2;
  wide.intermediate_size = 2;
  wide.max_position_embeddings = 128;
  auto model = dense::models::build_model(wide, dense::DType::F32, dense::Device::cpu(), 1);
  std::vector<std::pair<std::string, dense::Tensor>> tensors;
  for (const auto& p : model->params().all()) tensors.emplace_back(p.name, p.value.clone());
  dense::write_safetensors(dir + "/wide.safetensors", tensors, {});
  GlueEvalRequest bad = request(kGlue, "o5");
  bad.init_from = dir + "/wide.safetensors";
  const std::string e4 = error_of([&] { run_glue_evaluation(bad); });
  EXPECT_TRUE(contains(e4, "wide.safetensors")) << e4;
  EXPECT_TRUE(contains(e4, "has shape")) << e4;
}

TEST(GlueEval, ZeroInitPoolerZeroesOnlyThePoolerDenseWeight) {
  // At learning rate 0 the saved best-epoch weights are the starting weights: a first run saves its seeded
  // initialisation (a random pooler), a second starts from it with training.zero_init_pooler.
  const std::string dir = temp_dir();
  std::string yaml = read_bytes(tiny_config(dir));
  auto replace = [&](const std::string& from, const std::string& to) {
    const size_t at = yaml.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    yaml.replace(at, from.size(), to);
  };
  replace("learning_rate: 1.0e-3", "learning_rate: 0.0");
  replace("epochs: 3", "epochs: 1");
  write_bytes(dir + "/lr0.yaml", yaml);
  replace("epochs: 1", "epochs: 1\n  zero_init_pooler: true");
  write_bytes(dir + "/lr0_zero_pooler.yaml", yaml);
  auto run = [&](const std::string& config, const std::string& init_from, const std::string& out) {
    GlueEvalRequest r;
    r.task = "WNLI";
    r.glue_dir = kGlue;
    r.config = config;
    r.init_from = init_from;
    r.out_dir = dir + "/" + out;
    r.save_weights = true;
    r.quiet = true;
    return run_glue_evaluation(r).runs.at(0).weights;
  };
  const std::string start_file = run(dir + "/lr0.yaml", "", "start");
  const auto start = dense::read_safetensors(start_file).tensors;
  const auto zeroed = dense::read_safetensors(run(dir + "/lr0_zero_pooler.yaml", start_file, "zeroed")).tensors;
  ASSERT_EQ(start.size(), zeroed.size());
  int pooler_weights = 0;
  for (size_t i = 0; i < start.size(); ++i) {
    ASSERT_EQ(start[i].first, zeroed[i].first);
    const std::vector<float> a = start[i].second.to_vector<float>(), b = zeroed[i].second.to_vector<float>();
    if (start[i].first == "pooler.dense.weight") {
      ++pooler_weights;
      EXPECT_GT(*std::max_element(a.begin(), a.end()), 0.0f);  // the seeded pooler was not zero
      EXPECT_EQ(b, std::vector<float>(a.size(), 0.0f));
    } else {
      EXPECT_EQ(a, b) << start[i].first;
    }
  }
  EXPECT_EQ(pooler_weights, 1);
  // A model without a pooler dense layer: the key is named.
  replace("pooler_act: tanh", "pooler_act: tanh\n  pooler_no_dense: true");
  write_bytes(dir + "/no_dense.yaml", yaml);
  const std::string e = error_of([&] { run(dir + "/no_dense.yaml", "", "no_dense"); });
  EXPECT_TRUE(contains(e, "training.zero_init_pooler")) << e;
}

TEST(GlueEval, MnliScoresMatchedAndMismatchedAndWritesBothSubmissions) {
  // The hand-made MNLI folder of tests/fixtures/glue (official column layout): the best epoch is chosen on
  // dev_matched; dev_mismatched is predicted at that epoch and scored; each test split gets its file.
  const std::string dir = temp_dir();
  GlueEvalRequest r;
  r.task = "MNLI";
  r.glue_dir = std::string(DENSE_TEST_DATA_DIR) + "/glue";
  r.config = tiny_config(dir);
  r.out_dir = dir + "/out";
  r.quiet = true;
  const GlueEvalReport rep = run_glue_evaluation(r);
  EXPECT_EQ(rep.main_metric, "accuracy");
  const auto score = [](const std::vector<std::vector<std::string>>& rows) {
    int right = 0;
    for (size_t i = 1; i < rows.size(); ++i) right += rows[i][1] == rows[i][2];
    return double(right) / double(rows.size() - 1);
  };
  const auto matched = read_tsv(r.out_dir + "/dev_predictions.tsv");
  const auto mismatched = read_tsv(r.out_dir + "/dev_mismatched_predictions.tsv");
  ASSERT_EQ(matched.size(), 3u);  // header + 2 rows
  ASSERT_EQ(mismatched.size(), 3u);
  EXPECT_EQ(mismatched[1][2], "0");  // entailment, the gold label of the first mismatched row
  const auto& run = rep.runs.at(0);
  EXPECT_DOUBLE_EQ(score(matched), run.result.best.at("accuracy"));
  EXPECT_DOUBLE_EQ(score(mismatched), run.extra_metrics.at("dev_mismatched_accuracy"));
  EXPECT_TRUE(contains(read_bytes(r.out_dir + "/results.md"), "dev_mismatched_accuracy"));
  ASSERT_EQ(rep.submission_files.size(), 2u);
  std::map<std::string, size_t> rows;
  for (const auto& f : rep.submission_files) {
    const auto sub = read_tsv(f);
    rows[fs::path(f).filename().string()] = sub.size() - 1;
    for (size_t i = 1; i < sub.size(); ++i)
      EXPECT_TRUE(sub[i][1] == "entailment" || sub[i][1] == "neutral" || sub[i][1] == "contradiction") << sub[i][1];
  }
  EXPECT_EQ(rows, (std::map<std::string, size_t>{{"MNLI-m.tsv", 1}, {"MNLI-mm.tsv", 2}}));
}

// Fine-tuning on the GPU (skipped without one): WNLI's three epochs on cuda:0 against the CPU. f32 on both, but
// summation orders differ; at a low learning rate (docs/distributed.md: at 1e-3 and above such differences grow
// about tenfold every two steps in tiny models) the epochs' train losses agree closely, and the dev predictions
// of the best epoch nearly all.
TEST(GlueEvalCuda, WnliOnTheGpuMatchesTheCpu) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const std::string dir = temp_dir();
  std::map<std::string, GlueEvalReport> rep;
  for (const char* device : {"cpu", "cuda"}) {
    GlueEvalRequest r;
    r.task = "WNLI";
    r.glue_dir = kGlue;
    r.config = tiny_config(dir);
    r.overrides = {std::string("training.device=") + device, "training.optimizer.learning_rate=3e-4"};
    r.out_dir = dir + "/" + device;
    r.quiet = true;
    rep[device] = run_glue_evaluation(r);
  }
  const FinetuneResult& c = rep["cpu"].runs[0].result;
  const FinetuneResult& g = rep["cuda"].runs[0].result;
  ASSERT_EQ(c.epochs.size(), g.epochs.size());
  for (size_t e = 0; e < c.epochs.size(); ++e)
    EXPECT_NEAR(g.epochs[e].train_loss, c.epochs[e].train_loss, 1e-3 * c.epochs[e].train_loss) << "epoch " << e + 1;
  ASSERT_EQ(c.dev_predictions.size(), g.dev_predictions.size());
  size_t same = 0;
  for (size_t i = 0; i < c.dev_predictions.size(); ++i) same += c.dev_predictions[i] == g.dev_predictions[i];
  EXPECT_GE(double(same), 0.9 * double(c.dev_predictions.size()));
}
