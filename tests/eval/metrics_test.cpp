// GLUE/LRA metrics: hand-checked values, conventions for degenerate inputs, and random cases against an
// independent implementation (tests/reference/metrics_reference.py: numpy and scipy.stats).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "eval/metrics.h"
#include "test_files.h"

using namespace dense::train;
using dense::testing::contains;
using dense::testing::error_of;

TEST(Metrics, HandCheckedValues) {
  const std::vector<int64_t> p = {1, 1, 0, 0, 1, 0, 1, 1}, y = {1, 0, 0, 1, 1, 0, 1, 0};
  EXPECT_DOUBLE_EQ(accuracy(p, y), 5.0 / 8.0);
  const BinaryCounts c = binary_counts(p, y);
  EXPECT_EQ(c.tp, 3);
  EXPECT_EQ(c.fp, 2);
  EXPECT_EQ(c.tn, 2);
  EXPECT_EQ(c.fn, 1);
  EXPECT_DOUBLE_EQ(f1_score(c), 6.0 / 9.0);
  EXPECT_DOUBLE_EQ(matthews_corrcoef(c), (3.0 * 2 - 2.0 * 1) / std::sqrt(5.0 * 4 * 4 * 3));
  EXPECT_DOUBLE_EQ(pearson({1, 2, 3}, {2, 4, 6}), 1.0);
  EXPECT_DOUBLE_EQ(pearson({1, 2, 3}, {3, 2, 1}), -1.0);
  EXPECT_EQ(average_ranks({10, 20, 20, 5}), (std::vector<double>{2, 3.5, 3.5, 1}));
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {1, 4, 9, 16}), 1.0);  // monotone, not linear
}

TEST(Metrics, DegenerateInputsAndErrors) {
  // All predictions negative: no positive predicted, F1 and MCC 0 (sklearn's zero_division convention).
  const BinaryCounts none = binary_counts({0, 0, 0}, {0, 1, 0});
  EXPECT_EQ(f1_score(none), 0.0);
  EXPECT_EQ(matthews_corrcoef(none), 0.0);
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(contains(error_of([] { accuracy({1}, {1, 0}); }), "1 predictions for 2 labels"));
  EXPECT_TRUE(contains(error_of([] { accuracy({}, {}); }), "no example"));
  EXPECT_TRUE(contains(error_of([] { binary_counts({0, 2}, {0, 1}); }), "example 1 has prediction 2"));
  EXPECT_TRUE(contains(error_of([] { pearson({1}, {1}); }), "at least 2"));
  EXPECT_TRUE(contains(error_of([] { glue_task_name("squad"); }), "unknown GLUE task 'squad'"));
}

TEST(Metrics, GlueTasksReportTheirMetrics) {
  EXPECT_EQ(glue_task_name("SST-2"), "sst2");
  EXPECT_EQ(glue_task_name("STS-B"), "stsb");
  EXPECT_EQ(glue_task_name("MNLI-mm"), "mnli_mm");
  EXPECT_TRUE(glue_task_is_regression("STS-B"));
  const std::vector<int64_t> p = {1, 0, 1, 1}, y = {1, 0, 0, 1};
  const TaskMetrics cola = glue_classification_metrics("CoLA", p, y);
  EXPECT_EQ(cola.main, "mcc");
  EXPECT_DOUBLE_EQ(cola.values.at("mcc"), matthews_corrcoef(binary_counts(p, y)));
  const TaskMetrics mrpc = glue_classification_metrics("MRPC", p, y);
  EXPECT_EQ(mrpc.main, "accuracy");
  EXPECT_DOUBLE_EQ(mrpc.values.at("f1"), 0.8);
  EXPECT_EQ(glue_classification_metrics("SST-2", p, y).values.count("f1"), 0u);
  // MNLI is 3-way: accuracy only, no binary metric to reject its labels.
  EXPECT_DOUBLE_EQ(glue_classification_metrics("MNLI", {0, 2, 1}, {0, 2, 2}).values.at("accuracy"), 2.0 / 3.0);
  const TaskMetrics stsb = glue_regression_metrics("STS-B", {0.1, 2.5, 4.9, 3.0}, {0.0, 2.0, 5.0, 3.5});
  EXPECT_EQ(stsb.main, "spearman");
  EXPECT_DOUBLE_EQ(stsb.values.at("spearman"), 1.0);
  EXPECT_TRUE(contains(error_of([] { glue_regression_metrics("CoLA", {1, 2}, {1, 2}); }), "classification task"));
}

TEST(Metrics, RandomCasesMatchNumpyAndScipy) {
  if (std::system("/usr/bin/python3 -c 'import numpy, scipy.stats' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-numpy / python3-scipy missing (scripts/setup.sh installs them)";
  std::mt19937_64 rng(7);
  nlohmann::json cases = nlohmann::json::array();
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> binaries;
  std::vector<std::pair<std::vector<double>, std::vector<double>>> regressions;
  for (int k = 0; k < 12; ++k) {
    const size_t n = 5 + rng() % 300;
    std::vector<int64_t> p(n), y(n);
    const double bias = double(k) / 12.0;  // from mostly-negative to mostly-positive predictions
    for (size_t i = 0; i < n; ++i) {
      y[i] = int64_t(rng() % 2);
      p[i] = std::uniform_real_distribution<double>(0, 1)(rng) < 0.6
                 ? y[i]
                 : int64_t(std::uniform_real_distribution<double>(0, 1)(rng) < bias);
    }
    binaries.emplace_back(p, y);
    cases.push_back({{"kind", "binary"}, {"pred", p}, {"label", y}});
    std::vector<double> a(n), b(n);
    for (size_t i = 0; i < n; ++i) {
      b[i] = double(rng() % 6);  // STS-B-like labels 0..5 with many ties
      a[i] = k % 2 ? std::round(b[i] + std::normal_distribution<double>(0, 1.5)(rng))
                   : b[i] * 0.7 + std::normal_distribution<double>(0, 1)(rng);
    }
    regressions.emplace_back(a, b);
    cases.push_back({{"kind", "regression"}, {"pred", a}, {"label", b}});
  }
  const std::string dir = dense::testing::temp_dir();
  std::ofstream(dir + "/in.json") << nlohmann::json{{"cases", cases}}.dump();
  const std::string ref = std::string(DENSE_TEST_DATA_DIR) + "/../reference/metrics_reference.py";
  ASSERT_EQ(std::system(("/usr/bin/python3 " + ref + " " + dir + "/in.json " + dir + "/out.json").c_str()), 0);
  std::ifstream in(dir + "/out.json");
  const auto out = nlohmann::json::parse(in);
  ASSERT_EQ(out.size(), cases.size());
  for (size_t k = 0; k < binaries.size(); ++k) {
    const auto& [p, y] = binaries[k];
    const auto& r = out[2 * k];
    const BinaryCounts c = binary_counts(p, y);
    EXPECT_NEAR(accuracy(p, y), r["accuracy"].get<double>(), 1e-12) << k;
    EXPECT_NEAR(f1_score(c), r["f1"].get<double>(), 1e-12) << k;
    EXPECT_NEAR(matthews_corrcoef(c), r["mcc"].get<double>(), 1e-12) << k;
    const auto& [a, b] = regressions[k];
    const auto& s = out[2 * k + 1];
    EXPECT_NEAR(pearson(a, b), s["pearson"].get<double>(), 1e-12) << k;
    EXPECT_NEAR(spearman(a, b), s["spearman"].get<double>(), 1e-12) << k;
  }
}
