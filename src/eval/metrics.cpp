#include "eval/metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace dense::train {

namespace {

void check_pairs(size_t a, size_t b, const char* what) {
  DENSE_CHECK(a == b, "{}: {} predictions for {} labels", what, a, b);
  DENSE_CHECK(a > 0, "{}: no example", what);
}

}  // namespace

double accuracy(const std::vector<int64_t>& p, const std::vector<int64_t>& y) {
  check_pairs(p.size(), y.size(), "accuracy");
  int64_t right = 0;
  for (size_t i = 0; i < p.size(); ++i) right += p[i] == y[i];
  return double(right) / double(p.size());
}

BinaryCounts binary_counts(const std::vector<int64_t>& p, const std::vector<int64_t>& y) {
  check_pairs(p.size(), y.size(), "binary metrics");
  BinaryCounts c;
  for (size_t i = 0; i < p.size(); ++i) {
    DENSE_CHECK((p[i] == 0 || p[i] == 1) && (y[i] == 0 || y[i] == 1),
                "binary metrics: example {} has prediction {} and label {}; both must be 0 or 1", i, p[i], y[i]);
    if (p[i] == 1)
      (y[i] == 1 ? c.tp : c.fp)++;
    else
      (y[i] == 1 ? c.fn : c.tn)++;
  }
  return c;
}

double f1_score(const BinaryCounts& c) {
  const int64_t denominator = 2 * c.tp + c.fp + c.fn;
  return denominator == 0 ? 0.0 : 2.0 * double(c.tp) / double(denominator);
}

double matthews_corrcoef(const BinaryCounts& c) {
  const double tp = double(c.tp), fp = double(c.fp), tn = double(c.tn), fn = double(c.fn);
  const double product = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn);
  return product == 0.0 ? 0.0 : (tp * tn - fp * fn) / std::sqrt(product);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  DENSE_CHECK(x.size() == y.size(), "pearson: {} predictions for {} labels", x.size(), y.size());
  DENSE_CHECK(x.size() >= 2, "pearson: {} point(s); at least 2 needed", x.size());
  const double n = double(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx == 0 || syy == 0 ? NAN : sxy / std::sqrt(sxx * syy);
}

std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> rank(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double r = (double(i) + double(j)) / 2.0 + 1.0;  // ranks i+1 .. j+1 share their mean
    for (size_t k = i; k <= j; ++k) rank[order[k]] = r;
    i = j + 1;
  }
  return rank;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  DENSE_CHECK(x.size() == y.size(), "spearman: {} predictions for {} labels", x.size(), y.size());
  return pearson(average_ranks(x), average_ranks(y));
}

std::string glue_task_name(const std::string& name) {
  std::string n;
  for (char ch : name)
    if (ch != '-' && ch != '_') n.push_back(char(std::tolower(static_cast<unsigned char>(ch))));
  static const std::map<std::string, std::string> known = {
      {"cola", "cola"},  {"sst2", "sst2"},      {"mrpc", "mrpc"}, {"qqp", "qqp"}, {"stsb", "stsb"}, {"mnli", "mnli"},
      {"mnlim", "mnli"}, {"mnlimm", "mnli_mm"}, {"qnli", "qnli"}, {"rte", "rte"}, {"wnli", "wnli"}};
  const auto it = known.find(n);
  DENSE_CHECK(it != known.end(),
              "unknown GLUE task '{}': expected one of CoLA, SST-2, MRPC, QQP, STS-B, MNLI, "
              "MNLI-mm, QNLI, RTE, WNLI",
              name);
  return it->second;
}

bool glue_task_is_regression(const std::string& task) { return glue_task_name(task) == "stsb"; }

TaskMetrics glue_classification_metrics(const std::string& task, const std::vector<int64_t>& p,
                                        const std::vector<int64_t>& y) {
  const std::string t = glue_task_name(task);
  DENSE_CHECK(t != "stsb", "stsb is a regression task: use glue_regression_metrics");
  TaskMetrics m;
  m.values["accuracy"] = accuracy(p, y);
  m.main = "accuracy";
  if (t == "cola") {
    m.values["mcc"] = matthews_corrcoef(binary_counts(p, y));
    m.main = "mcc";
  } else if (t == "mrpc" || t == "qqp") {
    m.values["f1"] = f1_score(binary_counts(p, y));
  }
  return m;
}

TaskMetrics glue_regression_metrics(const std::string& task, const std::vector<double>& p,
                                    const std::vector<double>& y) {
  const std::string t = glue_task_name(task);
  DENSE_CHECK(t == "stsb", "{} is a classification task: use glue_classification_metrics", t);
  TaskMetrics m;
  m.values["pearson"] = pearson(p, y);
  m.values["spearman"] = spearman(p, y);
  m.main = "spearman";
  return m;
}

}  // namespace dense::train
