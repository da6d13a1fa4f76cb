// dense-eval lra end to end on real `dense-prep lra` shards: a learnable image task (IDX files in the MNIST
// layout) trained over seeds with micro-batches, the median, the results files and saved weights; generated
// ListOps through the binary; text without a validation split; and bad inputs (another task's shards, a
// missing split, a vocabulary the model cannot embed, a model of the wrong kind, a wrong length).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/train_config_yaml.h"
#include "core/safetensors.h"
#include "data/shard.h"
#include "data_prep/lra_idx.h"
#include "data_prep/prep_lra.h"
#include "eval/lra_eval.h"
#include "models/model.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace dense;
using namespace dense::train;
using dense::testing::contains;
using dense::testing::error_of;
using dense::testing::read_bytes;
using dense::testing::run_binary;
using dense::testing::temp_dir;
using dense::testing::write_bytes;

namespace {

// A small DANet with the LRA models' parts (cosine RelPE, local layers, MaxNorm embeddings), written to
// <dir>/tiny_lra_<vocab>_<N>_<epochs>.yaml.
std::string tiny_lra_config(const std::string& dir, int64_t vocab, int64_t N, const std::string& pool, int64_t epochs) {
  const std::string path = fmt::format("{}/tiny_lra_{}_{}_{}.yaml", dir, vocab, N, epochs);
  write_bytes(path, fmt::format(R"(name: tiny-lra
model:
  model_type: danet
  vocab_size: {}
  hidden_size: 32
  num_hidden_layers: 2
  num_attention_heads: 2
  intermediate_size: 2
  max_position_embeddings: {}
  pos_emb_type: relpe
  relpe_type: cosine
  local_attention: true
  local_scheme: l_g
  window_size: 8
  embedding_ln_type: max_norm
  pooler_function: {}
  initializer_range: 0.2
training:
  epochs: {}
  global_batch: 16
  micro_batch: 8
  threads: 2
  seed: 3
  optimizer:
    learning_rate: 3.0e-3
    betas: [0.9, 0.9]
    eps: 1.0e-16
    weight_decay: 0.0
  schedule:
    type: constant
)",
                                vocab, N, pool, epochs));
  return path;
}

// 10 x 8 grey images of dark noise whose label k is the grey level (100 + 15 k, +-5) of eight pixels at random
// places: learnable in a few epochs by a model that sees only relative positions.
void write_grey_level_images(const std::string& dir, const std::string& prefix, int n, uint32_t seed) {
  data::lra::IdxArray images, labels;
  images.dims = {uint32_t(n), 10, 8};
  labels.dims = {uint32_t(n)};
  uint32_t state = seed;
  auto next = [&] { return state = state * 1664525u + 1013904223u, state >> 16; };
  for (int i = 0; i < n; ++i) {
    const int label = int(next() % 10);
    labels.data.push_back(uint8_t(label));
    std::vector<uint8_t> pixels(80);
    for (auto& p : pixels) p = uint8_t(next() % 60);
    for (int k = 0; k < 8; ++k) pixels[next() % 80] = uint8_t(95 + 15 * label + next() % 11);
    images.data.insert(images.data.end(), pixels.begin(), pixels.end());
  }
  fs::create_directories(dir);
  data::lra::write_idx(dir + "/" + prefix + "-images-idx3-ubyte", images, true);
  data::lra::write_idx(dir + "/" + prefix + "-labels-idx1-ubyte", labels, false);
}

std::string prep_images(const std::string& dir) {
  write_grey_level_images(dir + "/idx", "train", 400, 1);
  write_grey_level_images(dir + "/idx", "t10k", 100, 2);
  data::LraPrepConfig c;
  c.task = "image";
  c.source = dir + "/idx";
  c.out_dir = dir + "/image";
  c.progress.enabled = false;
  data::prepare_lra(c);
  return c.out_dir;
}

std::string prep_listops(const std::string& dir) {
  data::LraPrepConfig c;
  c.task = "listops";
  c.out_dir = dir + "/listops";
  c.num_train = 160;
  c.num_val = 40;
  c.num_test = 40;
  c.min_length = 4;
  c.max_length = 40;
  c.seed = 5;
  c.progress.enabled = false;
  data::prepare_lra(c);
  return c.out_dir;
}

// The accuracy of a test_predictions.tsv (index, prediction, label), checking its header, indices and row count.
double rescored_accuracy(const std::string& path, int64_t expected_rows) {
  std::istringstream tsv(read_bytes(path));
  std::string line;
  std::getline(tsv, line);
  EXPECT_EQ(line, "index\tprediction\tlabel");
  int64_t rows = 0, right = 0;
  while (std::getline(tsv, line)) {
    int64_t index = 0, pred = 0, label = 0;
    EXPECT_EQ(std::sscanf(line.c_str(), "%ld\t%ld\t%ld", &index, &pred, &label), 3) << line;
    EXPECT_EQ(index, rows);
    right += pred == label;
    ++rows;
  }
  EXPECT_EQ(rows, expected_rows);
  return rows > 0 ? double(right) / double(rows) : -1;
}

// --dump-logits: one float32 row of logits per test row whose argmax is test_predictions.tsv's prediction, and the
// rows' inputs as the shard holds them.
void expect_dumped_logits(const std::string& dump, const std::string& predictions_tsv, int64_t rows, int64_t seq_len,
                          int64_t labels) {
  const SafeTensors st = read_safetensors(dump);
  const Tensor& logits = st.at("logits");
  ASSERT_EQ(logits.dtype(), DType::F32);
  ASSERT_EQ(logits.shape(), (Shape{rows, labels}));
  EXPECT_EQ(st.at("input_ids").shape(), (Shape{rows, seq_len}));
  EXPECT_EQ(st.at("attention_mask").dtype(), DType::I64);
  std::istringstream tsv(read_bytes(predictions_tsv));
  std::string line;
  std::getline(tsv, line);  // header
  const float* p = logits.data<float>();
  for (int64_t i = 0; i < rows && std::getline(tsv, line); ++i) {
    long index = 0, pred = 0, label = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%ld\t%ld\t%ld", &index, &pred, &label), 3) << line;
    EXPECT_EQ(std::max_element(p + i * labels, p + (i + 1) * labels) - (p + i * labels), pred) << "row " << i;
  }
}

LraEvalRequest request(const std::string& task, const std::string& data, const std::string& config,
                       const std::string& out) {
  LraEvalRequest r;
  r.task = task;
  r.data_dir = data;
  r.config = config;
  r.out_dir = out;
  r.quiet = true;
  return r;
}

}  // namespace

TEST(LraEval, ImageTaskLearnsOverSeedsWithTheMedianResultsAndWeights) {
  const std::string dir = temp_dir();
  const std::string data = prep_images(dir);
  LraEvalRequest r = request("image", data, tiny_lra_config(dir, 256, 80, "mean", 6), dir + "/out");
  r.seeds = 3;
  r.save_weights = true;
  r.dump_logits = dir + "/out/test_logits.safetensors";
  const LraEvalReport rep = run_lra_evaluation(r);
  ASSERT_EQ(rep.runs.size(), 3u);
  EXPECT_EQ(rep.seq_len, 80);
  EXPECT_EQ(rep.train_rows, 360);  // 90 % of the official train set
  EXPECT_EQ(rep.val_rows, 40);
  EXPECT_EQ(rep.test_rows, 100);
  EXPECT_FALSE(rep.val_is_test);
  std::vector<double> tests;
  for (const LraSeedRun& run : rep.runs) {
    SCOPED_TRACE(run.seed);
    ASSERT_EQ(run.result.epochs.size(), 6u);
    // The best epoch is the one with the highest validation accuracy (the first of equals).
    double best = -1;
    int64_t best_epoch = 0;
    for (const auto& e : run.result.epochs)
      if (e.metrics.at("accuracy") > best) best = e.metrics.at("accuracy"), best_epoch = e.epoch;
    EXPECT_EQ(run.result.best_epoch, best_epoch);
    EXPECT_EQ(run.val_accuracy, best);
    EXPECT_GT(run.result.epochs.front().seconds, 0);
    // Chance is 10 %: the grey levels are learned.
    EXPECT_GT(run.test_accuracy, 0.75);
    tests.push_back(run.test_accuracy);
    // The saved weights are the model's, whole and readable.
    const SafeTensors st = read_safetensors(run.weights);
    EXPECT_GT(st.tensors.size(), 5u);
    int64_t numel = 0;
    for (const auto& [name, t] : st.tensors) numel += t.numel();
    EXPECT_EQ(numel, run.result.parameters);
  }
  EXPECT_EQ(rep.runs[0].seed, 3u);
  EXPECT_EQ(rep.runs[2].seed, 5u);
  std::vector<double> sorted = tests;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(rep.median_test, sorted[1]);
  EXPECT_EQ(rep.runs[rep.median_run].test_accuracy, sorted[1]);

  // results.json carries what the table shows; test_predictions.tsv re-scores to the median run's accuracy.
  const auto j = nlohmann::json::parse(read_bytes(dir + "/out/results.json"));
  EXPECT_EQ(j["task"], "image");
  EXPECT_EQ(j["median_test_accuracy"].get<double>(), rep.median_test);
  EXPECT_EQ(j["runs"].size(), 3u);
  EXPECT_EQ(j["runs"][0]["epochs"].size(), 6u);
  EXPECT_DOUBLE_EQ(rescored_accuracy(dir + "/out/test_predictions.tsv", 100), rep.median_test);
  expect_dumped_logits(r.dump_logits, dir + "/out/test_predictions.tsv", 100, 80, 10);
  const std::string md = read_bytes(dir + "/out/results.md");
  EXPECT_TRUE(contains(md, "| image | " + fmt::format("{:.2f}", 100 * rep.median_test))) << md;

  // Starting from saved weights: the first epoch begins where the run left off, so it scores at least well.
  LraEvalRequest again = request("image", data, tiny_lra_config(dir, 256, 80, "mean", 1), dir + "/again");
  again.init_from = rep.runs[0].weights;
  EXPECT_GT(run_lra_evaluation(again).median_test, 0.75);
}

TEST(LraEval, ListOpsThroughTheBinaryAndTextValidatesOnTheTestSet) {
  const std::string dir = temp_dir();
  const std::string listops = prep_listops(dir);
  const std::string config = tiny_lra_config(dir, 32, 40, "first", 2);
  std::string out;
  ASSERT_EQ(run_binary(std::string(DENSE_EVAL_BIN) + " lra --task listops --data " + listops + " --config " + config +
                           " -o " + dir + "/out --seeds 2 -q --dump-logits " + dir + "/out/test_logits.safetensors",
                       &out),
            0)
      << out;
  EXPECT_TRUE(contains(out, "| listops | ")) << out;
  EXPECT_TRUE(contains(out, "results: " + dir + "/out/results.md")) << out;
  EXPECT_TRUE(contains(out, "logits: " + dir + "/out/test_logits.safetensors")) << out;
  const auto j = nlohmann::json::parse(read_bytes(dir + "/out/results.json"));
  EXPECT_EQ(j["train_rows"], 160);
  EXPECT_EQ(j["seq_len"], 40);
  EXPECT_FALSE(j["val_is_test"].get<bool>());
  // Two seeds: the median is the mean of both; the predictions are the median run's (the lower one).
  double median_run_accuracy = -1;
  for (const auto& run : j["runs"])
    if (run["seed"] == j["median_seed"]) median_run_accuracy = run["test_accuracy"].get<double>();
  EXPECT_DOUBLE_EQ(rescored_accuracy(dir + "/out/test_predictions.tsv", 40), median_run_accuracy);
  expect_dumped_logits(dir + "/out/test_logits.safetensors", dir + "/out/test_predictions.tsv", 40, 40, 10);
  EXPECT_DOUBLE_EQ(j["median_test_accuracy"].get<double>(),
                   (j["runs"][0]["test_accuracy"].get<double>() + j["runs"][1]["test_accuracy"].get<double>()) / 2);

  // Text: train and test only, the test set doubles as validation (docs/model.md §3.5).
  for (const char* split : {"train", "test"})
    for (const char* label : {"pos", "neg"}) {
      fs::create_directories(fmt::format("{}/aclImdb/{}/{}", dir, split, label));
      for (int i = 0; i < 12; ++i)
        write_bytes(fmt::format("{}/aclImdb/{}/{}/{}_7.txt", dir, split, label, i),
                    std::string(label) == "pos" ? fmt::format("a good film {}, well made", i)
                                                : fmt::format("a bad film {}; dull", i));
    }
  data::LraPrepConfig t;
  t.task = "text";
  t.source = dir + "/aclImdb";
  t.out_dir = dir + "/text";
  t.min_frequency = 1;
  t.seq_len = 32;
  t.progress.enabled = false;
  data::prepare_lra(t);
  ASSERT_FALSE(fs::exists(dir + "/text/val.hdf5"));
  LraEvalRequest text = request("text", dir + "/text", tiny_lra_config(dir, 64, 32, "mean", 6), dir + "/text_out");
  text.dump_logits = dir + "/text_out/test_logits.safetensors";
  const LraEvalReport rep = run_lra_evaluation(text);
  EXPECT_TRUE(rep.val_is_test);
  expect_dumped_logits(text.dump_logits, dir + "/text_out/test_predictions.tsv", 24, 32, 2);
  EXPECT_EQ(rep.val_rows, 24);
  EXPECT_EQ(rep.test_rows, 24);
  // Validation is the test set: the best epoch's validation accuracy is its test accuracy.
  EXPECT_EQ(rep.median_val, rep.median_test);
  EXPECT_GT(rep.median_test, 0.9);  // "good" against "bad"
}

TEST(LraEval, BadInputNamesTheFileAndWhatWasExpected) {
  const std::string dir = temp_dir();
  const std::string listops = prep_listops(dir);
  const std::string config = tiny_lra_config(dir, 32, 40, "first", 1);
  auto error = [&](const std::string& task, const std::string& data, const std::string& cfg) {
    return error_of([&] { run_lra_evaluation(request(task, data, cfg, dir + "/out")); });
  };
  std::string e = error("image", listops, config);
  EXPECT_TRUE(contains(e, listops + "/train.hdf5") && contains(e, "'listops', not 'image'")) << e;
  e = error("retrieval", listops, config);
  EXPECT_TRUE(contains(e, "pair_matching")) << e;
  e = error("sudoku", listops, config);
  EXPECT_TRUE(contains(e, "unknown task 'sudoku'") && contains(e, "pathx")) << e;
  e = error("listops", dir + "/nowhere", config);
  EXPECT_TRUE(contains(e, dir + "/nowhere") && contains(e, "dense-prep lra listops")) << e;
  // ListOps ids reach 16 ([CLS]); a model of 8 tokens cannot embed them.
  e = error("listops", listops, tiny_lra_config(dir, 8, 40, "first", 1));
  EXPECT_TRUE(contains(e, "token id 16") && contains(e, "model.vocab_size 8") && contains(e, "train.hdf5")) << e;
  // A missing validation split, and one from another run.
  fs::create_directories(dir + "/partial");
  fs::copy_file(listops + "/train.hdf5", dir + "/partial/train.hdf5");
  fs::copy_file(listops + "/test.hdf5", dir + "/partial/test.hdf5");
  e = error("listops", dir + "/partial", config);
  EXPECT_TRUE(contains(e, dir + "/partial/val.hdf5") && contains(e, "validation split")) << e;
  // Path-X is pathfinder at N = 16384.
  data::LraPrepConfig pf;
  pf.task = "pathfinder";
  pf.out_dir = dir + "/pathfinder";
  pf.num_images = 10;
  pf.progress.enabled = false;
  data::prepare_lra(pf);
  e = error("pathx", pf.out_dir, tiny_lra_config(dir, 264, 1024, "first", 1));
  EXPECT_TRUE(contains(e, "rows of 1024 tokens") && contains(e, "N = 16384")) << e;
  // The binary: exit status 1 and the message on stderr.
  std::string out;
  EXPECT_EQ(run_binary(std::string(DENSE_EVAL_BIN) + " lra --task image --data " + listops + " --config " + config +
                           " -o " + dir + "/out",
                       &out),
            1);
  EXPECT_TRUE(contains(out, "dense-eval: error: ") && contains(out, "'listops', not 'image'")) << out;
}

TEST(LraEval, BatchesAreCutToTheirLongestRowWhereThatIsExact) {
  data::ClassificationRows r;
  r.rows = 3;
  r.seq_len = 40;
  r.attention_mask.assign(120, 0);
  for (int k = 0; k < 5; ++k) r.attention_mask[size_t(k)] = 1;        // row 0: 5 tokens
  for (int k = 0; k < 13; ++k) r.attention_mask[size_t(40 + k)] = 1;  // row 1: 13 tokens
  for (int k = 0; k < 40; ++k) r.attention_mask[size_t(80 + k)] = 1;  // row 2: full
  models::ModelConfig m;
  m.pooler_function = nn::PoolFunction::First;
  EXPECT_EQ(trimmed_batch_length(r, {0}, m), 8);
  EXPECT_EQ(trimmed_batch_length(r, {0, 1}, m), 16);
  EXPECT_EQ(trimmed_batch_length(r, {1, 2}, m), 40);
  m.local_attention = true;
  m.window_size = 8;
  EXPECT_EQ(trimmed_batch_length(r, {0, 1}, m), 16);
  EXPECT_EQ(trimmed_batch_length(r, {0}, m), 16);  // two windows at least
  m.window_size = 20;                              // lcm(8, 20) = 40
  EXPECT_EQ(trimmed_batch_length(r, {0}, m), 40);
  m.local_attention = false;
  m.pooler_function = nn::PoolFunction::MaskedMean;
  EXPECT_EQ(trimmed_batch_length(r, {0}, m), 8);
  for (const nn::PoolFunction pool : {nn::PoolFunction::Mean, nn::PoolFunction::Max}) {  // read the pads
    m.pooler_function = pool;
    EXPECT_EQ(trimmed_batch_length(r, {0}, m), 40);
  }
  m.model_type = models::ModelType::Bert;  // BERT pools the first token whatever pooler_function says
  EXPECT_EQ(trimmed_batch_length(r, {0}, m), 8);
  m.causal = true;
  EXPECT_EQ(trimmed_batch_length(r, {0}, m), 40);
  m.causal = false;
  m.attention_pattern = "bigbird:block=4";
  EXPECT_EQ(trimmed_batch_length(r, {0}, m), 40);
  // A second document counts too.
  m.attention_pattern.clear();
  r.attention_mask2 = r.attention_mask;
  std::swap_ranges(r.attention_mask2.begin(), r.attention_mask2.begin() + 40, r.attention_mask2.begin() + 40);
  EXPECT_EQ(trimmed_batch_length(r, {0}, m), 16);
}

TEST(LraEval, CuttingTrailingPaddingChangesNoResult) {
  // ListOps rows of 4..40 tokens padded to 40: micro-batches of 16 are cut to their longest row (a multiple of 8
  // and of the window). One step per epoch (the whole split in ten micro-batches), so the first epoch's loss is
  // the initial model's, exactly, and later ones differ only by rounding: they and the predictions must match the
  // uncut run for every model that allows the cut; the `mean` pooler (which reads pads) is not cut (bitwise).
  const std::string dir = temp_dir();
  const std::string listops = prep_listops(dir);
  const ClassificationSplit train = ClassificationSplit::load(listops + "/train.hdf5");
  const ClassificationSplit val = ClassificationSplit::load(listops + "/val.hdf5");
  const MetricFn metric = [](const std::vector<double>& pred, const ClassificationSplit& s) {
    TaskMetrics m;
    int64_t right = 0;
    for (size_t i = 0; i < pred.size(); ++i) right += int64_t(pred[i]) == s.rows.labels[i];
    m.values["accuracy"] = double(right) / double(pred.size());
    m.main = "accuracy";
    return m;
  };
  struct Case {
    std::string name, model;
    bool cut;
  };
  const std::vector<Case> cases = {
      {"danet local first",
       "model_type: danet\n  local_attention: true\n  local_scheme: l_sl_g\n  window_size: 8\n"
       "  pos_emb_type: relpe\n  relpe_type: cosine\n  pooler_function: first\n",
       true},
      {"danet masked_mean", "model_type: danet\n  pooler_function: masked_mean\n", true},
      {"bert", "model_type: bert\n  hidden_dropout_prob: 0\n  attention_probs_dropout_prob: 0\n", true},
      {"danet mean", "model_type: danet\n  pooler_function: mean\n", false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir + "/cut.yaml";
    write_bytes(path, "model:\n  " + c.model +
                          "  vocab_size: 32\n  hidden_size: 32\n  num_hidden_layers: 3\n  num_attention_heads: 2\n"
                          "  intermediate_size: " +
                          (c.model.starts_with("model_type: bert") ? "64" : "2") +
                          "\n  max_position_embeddings: 40\n"
                          "training:\n  epochs: 3\n  global_batch: 160\n  micro_batch: 16\n  threads: 2\n  optimizer:\n"
                          "    learning_rate: 2.0e-3\n  schedule:\n    type: constant\n");
    const TrainConfig cfg = load_train_config(path);
    int64_t shortest = train.rows.seq_len;  // over slices of 16 rows: the data leaves something to cut
    for (int64_t b = 0; b + 16 <= train.size(); b += 16) {
      std::vector<int64_t> idx(16);
      for (int64_t i = 0; i < 16; ++i) idx[size_t(i)] = b + i;
      shortest = std::min(shortest, trimmed_batch_length(train.rows, idx, cfg.model));
    }
    EXPECT_EQ(shortest < 40, c.cut);
    FinetuneOptions o;
    o.seed = 7;
    o.quiet = true;
    o.trim_padding = false;
    const FinetuneResult whole = finetune(cfg, train, val, {&train}, metric, o);
    o.trim_padding = true;
    const FinetuneResult cut = finetune(cfg, train, val, {&train}, metric, o);
    ASSERT_EQ(whole.epochs.size(), 3u);
    for (size_t e = 0; e < 3; ++e) {
      if (c.cut) {
        EXPECT_NEAR(cut.epochs[e].train_loss, whole.epochs[e].train_loss, 1e-6 * whole.epochs[e].train_loss);
      } else {
        EXPECT_EQ(cut.epochs[e].train_loss, whole.epochs[e].train_loss);
      }
    }
    // Predictions of every training row (the extra split) at the best epoch: the same classes.
    int64_t differ = 0;
    for (size_t i = 0; i < whole.extra_predictions[0].size(); ++i)
      differ += whole.extra_predictions[0][i] != cut.extra_predictions[0][i];
    EXPECT_LE(differ, c.cut ? 1 : 0);
  }
}
