#pragma once
// Evaluation metrics of GLUE and LRA (docs/model.md §5): accuracy, binary F1 and Matthews correlation (positive class =
// 1, from confusion counts), Pearson and Spearman correlation (ties take their average rank). Sums are in
// double; empty or degenerate inputs give a clear error or the conventional 0 (documented per function).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dense::train {

// Fraction of predictions equal to their label. dense::Error for different lengths or no example.
double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);

struct BinaryCounts {
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
};
// dense::Error naming the first value outside {0, 1}.
BinaryCounts binary_counts(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);
// 2tp / (2tp + fp + fn); 0 when there is no positive in predictions or labels (as sklearn's zero_division=0).
double f1_score(const BinaryCounts& c);
// (tp·tn − fp·fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)); 0 when a factor is 0 (sklearn's convention).
double matthews_corrcoef(const BinaryCounts& c);

// Sample Pearson correlation; dense::Error for fewer than 2 points, NaN when either side is constant.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Pearson correlation of the ranks (ties: average rank).
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// 1-based ranks, ties sharing their average rank.
std::vector<double> average_ranks(const std::vector<double>& x);

// The metrics a GLUE task reports (docs/model.md §5.1) and the one its best epoch is chosen by:
//   cola: mcc; sst2, mnli (-m, -mm), qnli, rte, wnli: accuracy; mrpc, qqp: accuracy and f1 (main: accuracy);
//   stsb: pearson and spearman (main: spearman), from float predictions.
// Task names: cola, sst2, mrpc, qqp, stsb, mnli, mnli_mm, qnli, rte, wnli (the GLUE folder names CoLA, SST-2,
// ... are accepted, any case). dense::Error naming the task and the known ones otherwise.
struct TaskMetrics {
  std::map<std::string, double> values;
  std::string main;  // key of the metric that picks the best epoch
};
TaskMetrics glue_classification_metrics(const std::string& task, const std::vector<int64_t>& predictions,
                                        const std::vector<int64_t>& labels);
TaskMetrics glue_regression_metrics(const std::string& task, const std::vector<double>& predictions,
                                    const std::vector<double>& labels);
// Canonical task name ("SST-2" -> "sst2"); dense::Error listing the known tasks.
std::string glue_task_name(const std::string& name);
bool glue_task_is_regression(const std::string& task);

}  // namespace dense::train
