// dense-train: trains a DANet or BERT encoder from a YAML config (docs/config.md). Thin: parsing and signal
// handling here, the loop in src/train/trainer.cpp.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <exception>

#include "backend/backend.h"
#include "backend/cpu_blas.h"
#include "config/train_config_yaml.h"
#include "core/error.h"
#include "parallel/communicator.h"
#include "train/trainer.h"

namespace {
extern "C" void on_signal(int) { dense::train::stop_requested().store(true); }
}  // namespace

int main(int argc, char** argv) {
  dense::restart_with_fast_blas_kernels(argv);
  if (const std::string note = dense::blas_restart_note(); !note.empty())
    std::fprintf(stderr, "dense-train: note: %s\n", note.c_str());
  const dense::BackendsReleaser release_backends_on_return;  // before the CUDA runtime unloads
  CLI::App app{"dense-train: train DenseAttention (DANet) and BERT encoders from HDF5 shards (densetrain)"};
  app.set_version_flag("--version", "dense-train 0.1.0 (OpenBLAS " + dense::openblas_core() + " kernels)");
  std::string config_path, run_dir;
  std::vector<std::string> overrides;
  dense::train::TrainOptions opts;
  bool print_config = false, reference = false;
  app.add_option("-c,--config", config_path, "YAML config (configs/tiny.yaml, ...)");
  app.add_option("--set", overrides, "override a key: --set training.max_steps=100 (repeatable)");
  app.add_option("--resume", opts.resume, "auto (newest valid checkpoint of the run), none, or a checkpoint folder");
  app.add_option("--init-from", opts.init_from,
                 "start from these weights: a checkpoint folder, a run folder (its newest complete checkpoint), a "
                 "model.safetensors or a Hugging Face BERT folder");
  app.add_flag(
      "--resize-position-embeddings", opts.resize_position_embeddings,
      "with --init-from: tile or truncate a learned position table trained at another length (docs/model.md §1.3)");
  app.add_option("--run-dir", run_dir, "run folder (default: runs/<name>)");
  app.add_flag("--overwrite", opts.overwrite,
               "start a new run in a run folder that holds a previous run (implies --resume none): its checkpoints "
               "and metrics are moved into <run folder>/previous-<time>/, never deleted");
  app.add_option("--stop-after", opts.stop_after_steps, "stop with a checkpoint after this many steps of this run");
  app.add_option("--dump-gradients", opts.dump_gradients_dir,
                 "write each rank's gradients of the first step (summed over ranks, unscaled, before clipping) to "
                 "DIR/grads-rank<R>.safetensors, to compare runs or implementations");
  app.add_option("--peak-flops", opts.peak_flops,
                 "the MFU denominator of the step line and metrics.jsonl, in FLOP/s (default: the device's datasheet "
                 "peak; dense_bench_gpu --only gemm measures the real one)")
      ->envname("DENSE_PEAK_FLOPS");
  app.add_flag("-q,--quiet", opts.quiet, "no progress lines");
  int64_t kill_at_step = 0, kill_rank = -1;
  CLI::Option* kill_flag =
      app.add_option("--kill-at-step", kill_at_step,
                     "fault injection for testing crash safety: the process SIGKILLs itself right after step N's "
                     "update, before that step's log line and checkpoint")
          ->check(CLI::PositiveNumber)
          ->group("Testing");
  app.add_option("--kill-rank", kill_rank, "with --kill-at-step: only rank R kills itself (default: every rank)")
      ->check(CLI::NonNegativeNumber)
      ->needs(kill_flag)
      ->group("Testing");
  app.add_flag("--print-config", print_config, "print the resolved config (YAML) and exit");
  app.add_flag("--config-reference", reference, "print the reference of every config key (Markdown) and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (reference) {
      std::fputs(dense::train::train_config_reference_markdown().c_str(), stdout);
      return 0;
    }
    if (config_path.empty()) {
      std::fprintf(stderr, "dense-train: --config is required (see configs/*.yaml)\n");
      return 1;
    }
    dense::train::TrainConfig cfg = dense::train::load_train_config(config_path, overrides);
    if (!run_dir.empty()) cfg.run_dir = run_dir;
    if (print_config) {
      std::fputs(dense::train::train_config_to_yaml(cfg).c_str(), stdout);
      return 0;
    }
    if (kill_at_step > 0)
      opts.after_step = [kill_at_step, kill_rank](int64_t step, int64_t rank) {
        if (step == kill_at_step && (kill_rank < 0 || rank == kill_rank)) ::kill(::getpid(), SIGKILL);
      };
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    const dense::train::TrainResult r = dense::train::train(cfg, opts);
    if (r.rank != 0) return r.interrupted ? 130 : 0;  // rank 0 reports for the run
    std::printf("dense-train: %s at step %lld (from %lld): loss %.4f", r.run_dir.c_str(), (long long)r.steps,
                (long long)r.start_step, r.last_loss);
    if (r.eval_loss >= 0) std::printf(", eval loss %.4f, eval accuracy %.4f", r.eval_loss, r.eval_accuracy);
    if (r.skipped_steps) std::printf(", %lld non-finite steps skipped", (long long)r.skipped_steps);
    std::printf("\n  checkpoint: %s\n", r.last_checkpoint.c_str());
    return r.interrupted ? 130 : 0;
  } catch (const dense::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dense-train: error: %s\n", e.what());
    // The other ranks may be waiting in a collective for this one: stop them all now.
    dense::parallel::abort_world(1);
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dense-train: internal error: %s\n", e.what());
    dense::parallel::abort_world(2);
    return 2;
  }
}
