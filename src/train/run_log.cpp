#include "train/run_log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/progress.h"

namespace dense::train {

namespace fs = std::filesystem;

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

RunLog::RunLog(const std::string& run_dir, bool root, int64_t rank, int64_t world, const std::string& level)
    : run_dir_(run_dir) {
  auto err_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  err_sink->set_level(spdlog::level::warn);
  std::vector<spdlog::sink_ptr> sinks{err_sink};
  if (root) {
    file_ = std::make_shared<CheckedLogSink>(run_dir + "/train.log");
    sinks.push_back(file_);
  }
  log_ = std::make_shared<spdlog::logger>(world > 1 ? fmt::format("dense-train rank {}", rank) : "dense-train",
                                          sinks.begin(), sinks.end());
  log_->set_level(spdlog::level::from_str(level));
  log_->flush_on(spdlog::level::info);
}

void RunLog::check() const {
  if (!file_) return;
  if (const auto e = file_->error())
    DENSE_FAIL(
        "{}/train.log: cannot write the run log ({}); free space on its disk, then continue from the last "
        "checkpoint with --resume auto",
        run_dir_, *e);
}

Metrics::Metrics(const std::string& run_dir, bool tensorboard, int64_t resume_step, bool final_eval_again)
    : path_(run_dir + "/metrics.jsonl") {
  // A resumed run rewrites what the interrupted one logged after its checkpoint, so the file reads as one run.
  std::string kept;
  std::error_code ec;
  if (fs::exists(path_, ec)) {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      try {
        const auto j = nlohmann::json::parse(line);
        const int64_t row_step = j.value("step", int64_t(0));
        const bool final_eval = final_eval_again && row_step == resume_step && j.contains("eval_loss");
        if (row_step <= resume_step && !final_eval) kept += line + "\n";
      } catch (const std::exception&) {
      }
    }
  }
  write_file_atomic(path_, kept);
  out_ = std::fopen(path_.c_str(), "a");
  DENSE_CHECK(out_ != nullptr, "{}: cannot open for appending", path_);
  if (tensorboard) {
    tb_ = std::make_unique<TensorBoardWriter>(run_dir + "/tensorboard");
    // TensorBoard then hides what earlier event files hold past the checkpoint, as metrics.jsonl does.
    if (resume_step > 0) tb_->add_session_start(resume_step + 1);
  }
}

Metrics::~Metrics() {
  if (out_) std::fclose(out_);
}

void Metrics::write(const nlohmann::json& row) {
  const std::string line = row.dump() + "\n";
  errno = 0;
  if (std::fwrite(line.data(), 1, line.size(), out_) != line.size() || std::fflush(out_) != 0) fail("write");
  if (tb_) {
    const int64_t step = row.value("step", int64_t(0));
    for (auto it = row.begin(); it != row.end(); ++it)
      if (it.key() != "step" && it.value().is_number()) tb_->add_scalar(it.key(), it.value().get<double>(), step);
    tb_->flush();
  }
}

void Metrics::close() {
  if (!out_) return;
  FILE* f = out_;
  out_ = nullptr;
  errno = 0;
  if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) {
    const int err = errno;
    std::fclose(f);
    errno = err;
    fail("flush");
  }
  if (std::fclose(f) != 0) fail("close");
}

void Metrics::fail(const char* what) {
  DENSE_FAIL(
      "{}: cannot {} the metrics ({}); free space on its disk (or fix its permissions), then continue from "
      "the last checkpoint with --resume auto",
      path_, what, errno ? std::strerror(errno) : "a short write");
}

double peak_flops_for(Device device, DType compute_dtype, double configured) {
  // The CUDA backend's own switch (read where it creates its cuBLAS handle): TF32 changes what f32 GEMMs can reach.
  const char* tf32_env = std::getenv("DENSE_ALLOW_TF32");
  const bool tf32 = tf32_env && std::string(tf32_env) == "1";
  return configured > 0                ? configured
         : device.is_cpu()             ? 1e11 * double(cpu_threads())
         : compute_dtype != DType::F32 ? 989e12
         : tf32                        ? 494e12
                                       : 67e12;
}

int64_t dense_parameter_count(const nn::ParameterSet& params) {
  int64_t n = 0;
  for (const auto& p : params.all())
    if (p.kind != nn::ParamKind::Embedding) n += shape_numel(p.shape);
  return n;
}

StepLog::StepLog(const Setup& setup, spdlog::logger& log, Metrics* metrics)
    : setup_(setup), every_(std::max<int64_t>(1, setup.every_steps)), log_(log), metrics_(metrics) {
  t_interval_ = now_s();
  t_start_ = now_s();
}

void StepLog::add(const StepFigures& s) {
  tokens_ += s.tokens;
  if (!s.applied) return;
  loss_ += s.loss;
  ++steps_;
}

double StepLog::write(int64_t step, const StepFigures& last, int64_t tokens_seen, int64_t skipped,
                      std::optional<double> loss_scale) {
  const double dt = now_s() - t_interval_;
  const double tps = dt > 0 ? double(tokens_) / dt : 0;
  const double mean_loss = steps_ > 0 ? loss_ / double(steps_) : NAN;
  const double mfu = tps * 6.0 * double(setup_.dense_params) / setup_.peak_flops;
  nlohmann::json row = {{"step", step},
                        {"loss", mean_loss},
                        {"lr", last.lr},
                        {"grad_norm", last.grad_norm},
                        {"tokens_per_s", tps},
                        {"mfu", mfu},
                        {"epoch", last.epoch},
                        {"tokens", tokens_seen},
                        {"skipped_steps", skipped}};
  if (loss_scale) row["loss_scale"] = *loss_scale;
  if (metrics_) metrics_->write(row);
  const double elapsed = now_s() - t_start_;
  const double eta = double(setup_.max_steps - step) * elapsed / double(std::max<int64_t>(1, step - setup_.first_step));
  const std::string line =
      fmt::format("step {}/{}  loss {:.4f}  lr {:.3g}  {} tok/s  MFU {:.1f}%  ETA {}", step, setup_.max_steps,
                  mean_loss, last.lr, data::with_thousands(int64_t(tps)), 100 * mfu, data::format_duration(eta));
  log_.info("{}", line);
  if (setup_.echo) std::fprintf(stderr, "%s\n", line.c_str());
  loss_ = 0;
  steps_ = 0;
  tokens_ = 0;
  t_interval_ = now_s();
  return mean_loss;
}

}  // namespace dense::train
