// dense-eval lra end to end on real `dense-prep lra` shards: a learnable image task (IDX files in the MNIST
// layout) trained over seeds with micro-batches, the median, the results files and saved weights; generated
// ListOps through the binary; text without a validation split; and bad inputs (another task's shards, a
// missing split, a vocabulary the model cannot embed, a model of the wrong kind, a wrong length).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/safetensors.h"
#include "data/lra_idx.h"
#include "data/prep_lra.h"
#include "data/shard.h"
#include "test_files.h"
#include "train/lra_eval.h"

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
std::string tiny_lra_config(const std::string& dir, int64_t vocab, int64_t N, const std::string& pool,
                            int64_t epochs) {
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
    EXPECT_EQ(int64_t(st.tensors.size()) > 5, true);
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
  std::istringstream tsv(read_bytes(dir + "/out/test_predictions.tsv"));
  std::string line;
  std::getline(tsv, line);
  EXPECT_EQ(line, "index\tprediction\tlabel");
  int64_t rows = 0, right = 0;
  while (std::getline(tsv, line)) {
    int64_t index = 0, pred = 0, label = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%ld\t%ld\t%ld", &index, &pred, &label), 3) << line;
    EXPECT_EQ(index, rows);
    right += pred == label;
    ++rows;
  }
  EXPECT_EQ(rows, 100);
  EXPECT_DOUBLE_EQ(double(right) / double(rows), rep.median_test);
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
                           " -o " + dir + "/out --seeds 2 -q",
                       &out),
            0)
      << out;
  EXPECT_TRUE(contains(out, "| listops | ")) << out;
  EXPECT_TRUE(contains(out, "results: " + dir + "/out/results.md")) << out;
  const auto j = nlohmann::json::parse(read_bytes(dir + "/out/results.json"));
  EXPECT_EQ(j["train_rows"], 160);
  EXPECT_EQ(j["seq_len"], 40);
  EXPECT_FALSE(j["val_is_test"].get<bool>());
  const double acc = j["median_test_accuracy"].get<double>();
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);

  // Text: train and test only, the test set doubles as validation (spec §3.5).
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
  const LraEvalReport rep = run_lra_evaluation(request("text", dir + "/text", tiny_lra_config(dir, 64, 32, "mean", 6),
                                                       dir + "/text_out"));
  EXPECT_TRUE(rep.val_is_test);
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
