#include "train/trainer.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu_blas.h"
#include "config/train_config_yaml.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"
#include "data/progress.h"
#include "data/shard.h"
#include "models/model.h"
#include "parallel/communicator.h"
#include "train/checkpoint.h"
#include "train/data_loader.h"
#include "train/evaluate.h"
#include "train/gradient_sync.h"
#include "train/run_folder.h"
#include "train/run_log.h"
#include "train/train_state.h"
#include "train/train_step.h"
#include "train/zero_optimizer.h"

namespace dense::train {

namespace fs = std::filesystem;

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

std::string run_dir_of(const TrainConfig& c) { return c.run_dir.empty() ? "runs/" + c.name : c.run_dir; }

namespace {

RunFolder open_run_folder(const TrainConfig& cfg, const TrainOptions& opts) {
  RunFolder f;
  f.run_dir = run_dir_of(cfg);
  std::error_code ec;
  fs::create_directories(f.run_dir, ec);
  DENSE_CHECK(!ec, "{} (run_dir, or --run-dir): cannot create the run folder: {}", f.run_dir, ec.message());
  f.ckpt_dir = cfg.checkpoint.dir.empty() ? f.run_dir + "/checkpoints" : cfg.checkpoint.dir;
  f.ckpt_key = cfg.checkpoint.dir.empty() ? "run_dir, or --run-dir" : "checkpoint.dir";
  // --overwrite starts a new run (over a used folder); a checkpoint to continue from contradicts it.
  f.fresh = opts.resume == "none" || opts.resume.empty() || opts.overwrite;
  DENSE_CHECK(!opts.overwrite || opts.resume == "none" || opts.resume == "auto" || opts.resume.empty(),
              "--overwrite starts a new run, but --resume {} asks to continue one; drop one of them", opts.resume);
  return f;
}

// Rank 0, before any work: every output location is writable, and no other dense-train uses these folders.
void claim_run_folder(RunFolder& f, const TrainConfig& cfg, const TrainOptions& opts) {
  check_writable_folder(f.run_dir, "run_dir, or --run-dir");
  check_writable_folder(f.ckpt_dir, f.ckpt_key);
  if (cfg.logging.tensorboard) check_writable_folder(f.run_dir + "/tensorboard", "logging.tensorboard");
  for (const char* name : {"train.log", "metrics.jsonl", "config.yaml"})
    check_writable_file(f.run_dir + "/" + name, "run_dir, or --run-dir");
  if (!opts.dump_gradients_dir.empty()) check_writable_folder(opts.dump_gradients_dir, "--dump-gradients");
  f.locks.push_back(std::make_unique<FolderLock>(f.run_dir, "run_dir, or --run-dir"));
  std::error_code same;
  if (!fs::equivalent(f.run_dir, f.ckpt_dir, same))
    f.locks.push_back(std::make_unique<FolderLock>(f.ckpt_dir, f.ckpt_key));
}

// Rank 0, a new run: it never goes over an old one's results unless asked to (--overwrite moves them aside).
void set_aside_previous_run(RunFolder& f, const TrainOptions& opts) {
  const std::vector<std::string> previous = previous_run_in(f.run_dir, f.ckpt_dir);
  if (!previous.empty() && !opts.overwrite) {
    std::string list;
    for (const auto& p : previous) list += "\n  " + p;
    DENSE_FAIL(
        "{} holds a previous run:{}\n--resume none would start a new run over it (pruning would delete "
        "the new run's checkpoints in favour of the old run's later ones, and metrics.jsonl would be cut). "
        "Continue it with --resume auto, pass --overwrite to move its checkpoints and metrics aside into "
        "{}/previous-<time>/ (nothing is deleted), or give the new run another --run-dir",
        f.run_dir, list, f.run_dir);
  }
  if (!previous.empty()) f.moved_aside = move_previous_run_aside(f.run_dir, f.ckpt_dir);
}

// The training stream (this rank's rows) and the validation stream, if any; every shard is checked now, before
// a step is spent.
struct DataStreams {
  LoaderOptions train;
  std::unique_ptr<LoaderOptions> validation;
};

DataStreams open_data(const TrainConfig& cfg, const TrainState& st) {
  DataStreams d;
  LoaderOptions& lo = d.train;
  lo.files = list_shards(cfg.data.train, "data.train");
  lo.format = cfg.data.format;
  lo.batch_size = st.micro;
  lo.seed = cfg.training.seed;
  lo.shuffle = cfg.data.shuffle;
  lo.seq_len = cfg.data.seq_len;
  lo.prefetch = cfg.data.prefetch_batches;
  lo.mix_shards = cfg.data.mix_shards;
  lo.rank = st.rank;
  lo.world = st.world;
  lo.vocab_size = cfg.model.vocab_size;
  lo.skip_bad_shards = cfg.data.on_bad_shard == "skip";
  set_mlm_masking(cfg, lo);
  check_shards(lo, "data.train");
  if (!cfg.data.validation.empty()) {
    d.validation = std::make_unique<LoaderOptions>(lo);
    d.validation->files = list_shards(cfg.data.validation, "data.validation");
    d.validation->batch_size = st.micro;
    check_shards(*d.validation, "data.validation");
  }
  return d;
}

// A signal reaches the ranks at different moments: they stop together, at the step the first one saw it.
bool stop_together(TrainState& st, bool stop) {
  if (st.world == 1) return stop;
  std::vector<double> any = {stop ? 1.0 : 0.0};
  st.comm->all_reduce(any, parallel::ReduceOp::Max);
  return any[0] > 0;
}

}  // namespace

TrainResult train(const TrainConfig& cfg, const TrainOptions& opts) {
  const TrainingConfig& tc = cfg.training;
  TrainState st;
  RunFolder folder = open_run_folder(cfg, opts);
  join_ranks(st, cfg);
  TrainResult result;
  result.run_dir = folder.run_dir;
  result.rank = st.rank;
  result.world = st.world;
  if (st.root) claim_run_folder(folder, cfg, opts);
  choose_device(st, cfg);
  DataStreams data = open_data(cfg, st);
  if (st.root && folder.fresh) set_aside_previous_run(folder, opts);
  RunLog log(folder.run_dir, st.root, st.rank, st.world, cfg.logging.level);
  for (const auto& m : folder.moved_aside) log->info("--overwrite: the previous run's files are kept in {}", m);
  data.train.on_warning = [l = log.shared()](const std::string& m) { l->warn("{}", m); };
  if (data.validation) data.validation->on_warning = data.train.on_warning;

  // ---- the model, from the seed, --init-from weights or the checkpoint resumed ----
  build_model(st, cfg);
  resume_or_init(st, cfg, opts, folder, *log);
  result.start_step = st.step;
  if (st.root) write_file_atomic(folder.run_dir + "/config.yaml", train_config_to_yaml(cfg));
  ShardLoader loader(data.train, st.cursor);
  std::unique_ptr<Metrics> metrics;
  if (st.root)
    metrics = std::make_unique<Metrics>(folder.run_dir, cfg.logging.tensorboard, st.step, st.step == tc.max_steps);
  if (st.world > 1 && !st.zero)
    st.gradient_sync =
        std::make_unique<GradientSync>(*st.comm, st.params(), cfg.model.num_hidden_layers, cfg.parallel.bucket_mb);
  log->info(
      "training {} ({} parameters) on {} for {} steps: global batch {} = {} rank(s) x {} x {} accumulation, {} "
      "tokens per row",
      cfg.name, st.params().numel(),
      // The CPU's thread count and GEMM kernels decide its speed (and the last bits of its results): on record.
      st.device.is_cpu() ? fmt::format("cpu ({} thread(s), OpenBLAS {} kernels)", cpu_threads(), openblas_core())
                         : st.device.str(),
      tc.max_steps, tc.global_batch, st.world, st.micro, st.accum, loader.seq_len());
  if (st.gradient_sync)
    log->info("gradients summed over {} ranks ({}) in {} buckets", st.world, st.comm->engine(),
              st.gradient_sync->bucket_count());
  DENSE_CHECK(opts.dump_gradients_dir.empty() || !st.zero,
              "--dump-gradients needs the whole gradient sum on every "
              "rank; it does not work with parallel.zero1: true");

  // ---- checkpoints and evaluation ----
  const int64_t first_step = st.step;
  int64_t saved_step = -1;
  Cursor last_cursor = st.cursor;  // where the data continues after the last step trained
  auto save = [&] {
    const std::string saved = save_run_checkpoint(st, cfg, folder, last_cursor, *log);
    if (!st.root) return;
    result.last_checkpoint = saved;
    saved_step = st.step;
    log.check();
  };
  // A shard that fails its checksum mid-run (data.on_bad_shard: fail): what was trained since the last
  // checkpoint is saved, then the run stops naming the shard.
  auto stop_for_bad_shard = [&](const BadShardError& e) {
    if (st.step > first_step && saved_step != st.step) save();
    const std::string saved =
        saved_step == st.step
            ? fmt::format("step {}, the step reached, is saved ({}); ", st.step, result.last_checkpoint)
            : fmt::format("no step was trained after step {}, where this run started; ", st.step);
    log->error("{}", e.what());
    DENSE_FAIL("{}\n{}replace or remove the shard, then continue with --resume auto", e.what(), saved);
  };
  auto evaluate = [&] {
    if (!data.validation) return;
    MlmEval e;
    try {
      e = evaluate_mlm(*st.compute, *data.validation, tc.eval_batches, st.device, *st.comm);
    } catch (const BadShardError& bad) {
      stop_for_bad_shard(bad);
    }
    result.eval_loss = e.loss;
    result.eval_accuracy = e.accuracy;
    if (metrics)
      metrics->write(
          {{"step", st.step}, {"eval_loss", e.loss}, {"eval_accuracy", e.accuracy}, {"eval_tokens", e.tokens}});
    log->info("step {}: eval loss {:.4f}, accuracy {:.4f} over {} masked tokens", st.step, e.loss, e.accuracy,
              e.tokens);
  };

  // ---- the loop ----
  StepLog::Setup ls;
  ls.max_steps = tc.max_steps;
  ls.first_step = first_step;
  ls.every_steps = cfg.logging.every_steps;
  ls.dense_params = dense_parameter_count(st.params());
  ls.peak_flops = peak_flops_for(st.device, st.compute_dtype, opts.peak_flops);
  ls.echo = cfg.logging.progress && !opts.quiet && st.root;
  StepLog step_log(ls, *log, metrics.get());
  std::vector<HostBatch> micro_batches(static_cast<size_t>(st.accum));
  while (st.step < tc.max_steps) {
    int64_t local_masked = 0;
    try {
      local_masked = next_micro_batches(loader, micro_batches);
    } catch (const BadShardError& e) {
      stop_for_bad_shard(e);
    }
    last_cursor = micro_batches.back().next;
    const std::string dump_dir = st.step == first_step ? opts.dump_gradients_dir : "";
    const StepFigures step = run_step(st, cfg, micro_batches, local_masked, loader.seq_len(), dump_dir, *log);
    step_log.add(step);
    if (opts.after_step) opts.after_step(st.step, st.rank);

    const bool last = st.step == tc.max_steps;
    if (step_log.due(st.step))
      result.last_loss = step_log.write(st.step, step, st.tokens_seen, st.skipped,
                                        st.scaler->enabled() ? std::optional(st.scaler->scale()) : std::nullopt);
    log.check();
    if (tc.eval_every > 0 && st.step % tc.eval_every == 0 && !last) evaluate();
    const bool stop_after = opts.stop_after_steps > 0 && st.step - first_step >= opts.stop_after_steps;
    const bool stop = stop_together(st, stop_requested().load() || stop_after);
    if ((cfg.checkpoint.every_steps > 0 && st.step % cfg.checkpoint.every_steps == 0) || last || stop) save();
    if (stop && !last) {
      result.interrupted = !stop_after;
      log->info("stopping at step {} ({})", st.step, result.interrupted ? "signal" : "stop_after_steps");
      break;
    }
  }

  // ---- the end ----
  if (st.step == tc.max_steps) evaluate();
  if (metrics) metrics->close();
  result.steps = st.step;
  result.skipped_steps = st.skipped;
  result.loss_scale = st.scaler->scale();
  log->flush();
  log.check();
  return result;
}

}  // namespace dense::train
