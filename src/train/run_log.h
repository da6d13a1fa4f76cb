#pragma once
// What a training run reports: train.log (rank 0; the other ranks print warnings on stderr), metrics.jsonl with
// its TensorBoard scalars, and the step line (loss, lr, tokens/s, MFU, ETA) every logging.every_steps.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/dtype.h"
#include "nn/parameter.h"
#include "train/run_folder.h"
#include "train/tensorboard.h"

namespace dense::train {

// The run's logger. A run that cannot log stops (check()): the log is how a failure hours in gets explained.
class RunLog {
 public:
  RunLog(const std::string& run_dir, bool root, int64_t rank, int64_t world, const std::string& level);
  spdlog::logger& operator*() const { return *log_; }
  spdlog::logger* operator->() const { return log_.get(); }
  const std::shared_ptr<spdlog::logger>& shared() const { return log_; }
  // dense::Error naming train.log when one of its writes failed (a full disk).
  void check() const;

 private:
  std::string run_dir_;
  std::shared_ptr<CheckedLogSink> file_;  // rank 0 only
  std::shared_ptr<spdlog::logger> log_;
};

// metrics.jsonl (one JSON object per logged step or evaluation) and the TensorBoard scalars beside it.
class Metrics {
 public:
  // final_eval_again: the run resumes at its last step, so its closing evaluation runs again and its row (written
  // after that step's checkpoint) is dropped here rather than repeated.
  Metrics(const std::string& run_dir, bool tensorboard, int64_t resume_step, bool final_eval_again);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  // A full disk must stop the run, not leave it training with an empty metrics file: every write is checked.
  void write(const nlohmann::json& row);
  // The end of the run: what was written reaches the disk, or the run fails naming the file.
  void close();

 private:
  [[noreturn]] void fail(const char* what);
  std::string path_;
  FILE* out_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
};

// The MFU denominator in FLOP/s: `configured` when positive (dense-train --peak-flops, or DENSE_PEAK_FLOPS;
// bench/bench_gpu.cpp measures it), else the H100 SXM's dense datasheet peak for the compute type (bf16 / f16
// 989 TFLOP/s, TF32 494 when DENSE_ALLOW_TF32=1 lets the CUDA backend use it, f32 67), or 100 GFLOP/s a CPU thread.
double peak_flops_for(Device device, DType compute_dtype, double configured);

// Parameters outside the embedding tables: the model FLOPs of a token are 6 x this (forward + backward).
int64_t dense_parameter_count(const nn::ParameterSet& params);

// One step's figures for the step line and metrics.jsonl.
struct StepFigures {
  double loss = 0;       // the global batch's mean loss
  double lr = 0;         // the learning rate of the update
  double grad_norm = 0;  // before clipping
  bool applied = false;  // false: a non-finite step, skipped
  int64_t tokens = 0;    // tokens of the global batch (padding included)
  int64_t epoch = 0;     // of the step's last micro-batch
};

// The logging interval: what the steps since the last step line add up to, written every logging.every_steps.
class StepLog {
 public:
  struct Setup {
    int64_t max_steps = 0, first_step = 0, every_steps = 1;
    int64_t dense_params = 0;  // dense_parameter_count
    double peak_flops = 1;     // peak_flops_for
    bool echo = false;         // the step line on stderr too (the progress display)
  };
  StepLog(const Setup& setup, spdlog::logger& log, Metrics* metrics);
  void add(const StepFigures& s);
  bool due(int64_t step) const { return step % every_ == 0 || step == setup_.max_steps; }
  // Writes the step line and the metrics row of `step`, and starts the next interval. Returns the interval's
  // mean loss (NaN when every step of it was skipped).
  double write(int64_t step, const StepFigures& last, int64_t tokens_seen, int64_t skipped,
               std::optional<double> loss_scale);

 private:
  Setup setup_;
  int64_t every_;
  spdlog::logger& log_;
  Metrics* metrics_;  // rank 0 only
  double loss_ = 0, t_interval_, t_start_;
  int64_t steps_ = 0, tokens_ = 0;
};

}  // namespace dense::train
