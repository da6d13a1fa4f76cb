#include "train/trainer.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <regex>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/ops.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"
#include "data/prep_common.h"
#include "data/progress.h"
#include "models/model.h"
#include "train/checkpoint.h"
#include "parallel/communicator.h"
#include "train/data_loader.h"
#include "train/evaluate.h"
#include "train/gradient_sync.h"
#include "train/hf_import.h"
#include "train/loss_scaler.h"
#include "train/optimizer.h"
#include "train/run_folder.h"
#include "train/schedule.h"
#include "train/tensorboard.h"
#include "train/zero_optimizer.h"
#include "train/train_config_yaml.h"

namespace dense::train {

namespace fs = std::filesystem;

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

std::string run_dir_of(const TrainConfig& c) { return c.run_dir.empty() ? "runs/" + c.name : c.run_dir; }

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// metrics.jsonl (one JSON object per logged step or evaluation) and the TensorBoard scalars beside it.
class Metrics {
 public:
  // final_eval_again: the run resumes at its last step, so its closing evaluation runs again and its row (written
  // after that step's checkpoint) is dropped here rather than repeated.
  Metrics(const std::string& run_dir, bool tensorboard, int64_t resume_step, bool final_eval_again)
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
  ~Metrics() {
    if (out_) std::fclose(out_);
  }
  // A full disk must stop the run, not leave it training with an empty metrics file: every write is checked.
  void write(const nlohmann::json& row) {
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
  // The end of the run: what was written reaches the disk, or the run fails naming the file.
  void close() {
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

 private:
  [[noreturn]] void fail(const char* what) {
    DENSE_FAIL("{}: cannot {} the metrics ({}); free space on its disk (or fix its permissions), then continue from "
               "the last checkpoint with --resume auto",
               path_, what, errno ? std::strerror(errno) : "a short write");
  }
  std::string path_;
  FILE* out_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
};

// The first parameter whose gradient holds NaN or Inf (for the diagnostic when a run keeps diverging).
std::string first_nonfinite_gradient(models::Model& model) {
  for (auto& p : model.params().all()) {
    const Tensor g = p.grad.to(Device::cpu()).to(DType::F32).contiguous();
    const float* d = g.data<float>();
    for (int64_t i = 0; i < g.numel(); ++i)
      if (!std::isfinite(d[i])) return fmt::format("{} (element {} of {} is {})", p.name, i, g.numel(), d[i]);
  }
  return "none (the loss itself is non-finite)";
}

std::vector<std::pair<std::string, Tensor>> model_tensors(models::Model& model) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& p : model.params().all()) out.emplace_back(p.name, p.value.to(Device::cpu()).to(DType::F32).contiguous());
  return out;
}

}  // namespace

TrainResult train(const TrainConfig& cfg, const TrainOptions& opts) {
  TrainResult result;
  const TrainingConfig& tc = cfg.training;
  result.run_dir = run_dir_of(cfg);
  const std::string run_dir = result.run_dir;
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  DENSE_CHECK(!ec, "{} (run_dir, or --run-dir): cannot create the run folder: {}", run_dir, ec.message());
  const std::string ckpt_dir = cfg.checkpoint.dir.empty() ? run_dir + "/checkpoints" : cfg.checkpoint.dir;
  const std::string ckpt_key = cfg.checkpoint.dir.empty() ? "run_dir, or --run-dir" : "checkpoint.dir";
  // --overwrite starts a new run (over a used folder); a checkpoint to continue from contradicts it.
  const bool fresh = opts.resume == "none" || opts.resume.empty() || opts.overwrite;
  DENSE_CHECK(!opts.overwrite || opts.resume == "none" || opts.resume == "auto" || opts.resume.empty(),
              "--overwrite starts a new run, but --resume {} asks to continue one; drop one of them", opts.resume);

  // ---- ranks (world size 1 without mpirun) ----
  // Device tensors travel over NCCL: with several ranks on CUDA, `auto` means nccl (mpi moves host tensors).
  const Device configured_device = parse_device(tc.device);
  const std::string engine = cfg.parallel.backend == "auto" && configured_device.is_cuda() &&
                                     parallel::launched_with_several_ranks()
                                 ? "nccl"
                                 : cfg.parallel.backend;
  std::unique_ptr<parallel::Communicator> comm = parallel::make_communicator(engine);
  const int64_t world = comm->size(), rank = comm->rank();
  const bool root = rank == 0;
  result.rank = rank;
  result.world = world;

  // ---- every output location, before any work: rank 0 writes them all ----
  if (root) {
    check_writable_folder(run_dir, "run_dir, or --run-dir");
    check_writable_folder(ckpt_dir, ckpt_key);
    if (cfg.logging.tensorboard) check_writable_folder(run_dir + "/tensorboard", "logging.tensorboard");
    for (const char* f : {"train.log", "metrics.jsonl", "config.yaml"})
      check_writable_file(run_dir + "/" + f, "run_dir, or --run-dir");
    if (!opts.dump_gradients_dir.empty()) check_writable_folder(opts.dump_gradients_dir, "--dump-gradients");
  }
  std::vector<std::unique_ptr<FolderLock>> locks;  // held until train() returns
  if (root) {
    locks.push_back(std::make_unique<FolderLock>(run_dir, "run_dir, or --run-dir"));
    std::error_code same;
    if (!fs::equivalent(run_dir, ckpt_dir, same)) locks.push_back(std::make_unique<FolderLock>(ckpt_dir, ckpt_key));
  }

  // ---- the machine ----
  DENSE_CHECK(configured_device.is_cpu() || cuda_available(),
              "training.device: '{}' asked for, but no CUDA device is available{}", tc.device,
              cuda_device_count() == 0 ? " (this build or machine has none)" : "");
  // `cuda` without an index gives each rank of a node its own GPU, as the NCCL engine does.
  const Device device = configured_device.is_cuda() && tc.device == "cuda" && world > 1
                            ? Device::cuda(comm->local_rank() % cuda_device_count())
                            : configured_device;
  DENSE_CHECK(device.is_cpu() || world == 1 || comm->engine() == "nccl",
              "training.device: '{}' with {} ranks needs parallel.backend nccl (or auto); the {} engine moves host "
              "tensors", tc.device, world, comm->engine());
  if (tc.threads > 0) set_cpu_threads(tc.threads);
  const DType compute_dtype = tc.precision == "bf16" ? DType::BF16 : tc.precision == "f16" ? DType::F16 : DType::F32;
  DENSE_CHECK(comm->engine() != "nccl" || !device.is_cpu(),
              "parallel.backend: nccl reduces GPU tensors; CPU training uses parallel.backend mpi (or auto)");
  const int64_t micro = tc.micro_batch > 0 ? tc.micro_batch : tc.global_batch / world;
  DENSE_CHECK(micro >= 1 && tc.global_batch % (micro * world) == 0,
              "training.global_batch {} is not a multiple of micro_batch {} x {} rank(s)", tc.global_batch, micro, world);
  const int64_t accum = tc.global_batch / (micro * world);

  // ---- data: every shard is checked now, before a step is spent ----
  LoaderOptions lo;
  lo.files = list_shards(cfg.data.train, "data.train");
  lo.format = cfg.data.format;
  lo.batch_size = micro;
  lo.seed = tc.seed;
  lo.shuffle = cfg.data.shuffle;
  lo.seq_len = cfg.data.seq_len;
  lo.prefetch = cfg.data.prefetch_batches;
  lo.mix_shards = cfg.data.mix_shards;
  lo.rank = rank;
  lo.world = world;
  lo.vocab_size = cfg.model.vocab_size;
  lo.skip_bad_shards = cfg.data.on_bad_shard == "skip";
  set_mlm_masking(cfg, lo);
  check_shards(lo, "data.train");
  std::unique_ptr<LoaderOptions> eval_opts;
  if (!cfg.data.validation.empty()) {
    eval_opts = std::make_unique<LoaderOptions>(lo);
    eval_opts->files = list_shards(cfg.data.validation, "data.validation");
    eval_opts->batch_size = micro;
    check_shards(*eval_opts, "data.validation");
  }

  // ---- the run folder: a new run never goes over an old one's results unless asked to (--overwrite) ----
  std::vector<std::string> moved_aside;
  if (root && fresh) {
    const std::vector<std::string> previous = previous_run_in(run_dir, ckpt_dir);
    if (!previous.empty() && !opts.overwrite) {
      std::string list;
      for (const auto& p : previous) list += "\n  " + p;
      DENSE_FAIL("{} holds a previous run:{}\n--resume none would start a new run over it (pruning would delete "
                 "the new run's checkpoints in favour of the old run's later ones, and metrics.jsonl would be cut). "
                 "Continue it with --resume auto, pass --overwrite to move its checkpoints and metrics aside into "
                 "{}/previous-<time>/ (nothing is deleted), or give the new run another --run-dir",
                 run_dir, list, run_dir);
    }
    if (!previous.empty()) moved_aside = move_previous_run_aside(run_dir, ckpt_dir);
  }

  // ---- logging: rank 0 writes the run folder's files; the others report warnings on stderr ----
  auto err_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  err_sink->set_level(spdlog::level::warn);
  std::vector<spdlog::sink_ptr> sinks{err_sink};
  std::shared_ptr<CheckedLogSink> log_file;
  if (root) {
    log_file = std::make_shared<CheckedLogSink>(run_dir + "/train.log");
    sinks.push_back(log_file);
  }
  auto log = std::make_shared<spdlog::logger>(world > 1 ? fmt::format("dense-train rank {}", rank) : "dense-train",
                                              sinks.begin(), sinks.end());
  log->set_level(spdlog::level::from_str(cfg.logging.level));
  log->flush_on(spdlog::level::info);
  // A run that cannot log stops: the log is how a failure hours in gets explained.
  auto check_log = [&] {
    if (!log_file) return;
    if (const auto e = log_file->error())
      DENSE_FAIL("{}/train.log: cannot write the run log ({}); free space on its disk, then continue from the last "
                 "checkpoint with --resume auto",
                 run_dir, *e);
  };
  for (const auto& m : moved_aside) log->info("--overwrite: the previous run's files are kept in {}", m);
  lo.on_warning = [log](const std::string& m) { log->warn("{}", m); };
  if (eval_opts) eval_opts->on_warning = lo.on_warning;

  // ---- model and optimizer ----
  // The f32 model holds the master weights and gradients: the optimizer updates it and checkpoints save it.
  // Under bf16 / f16 (docs/model.md §4.3) a second model in that type runs forward and backward; its gradients are
  // summed into the f32 ones after every micro-batch, and its weights are the master's, rounded, after every
  // update.
  std::unique_ptr<models::Model> model = models::build_model(cfg.model, DType::F32, device, tc.seed);
  std::unique_ptr<models::Model> half;
  if (compute_dtype != DType::F32) half = models::build_model(cfg.model, compute_dtype, device, tc.seed);
  models::Model& compute = half ? *half : *model;
  compute.set_recompute(tc.recompute);
  nn::ParameterSet& params = model->params();
  LossScaler scaler(tc);
  const std::vector<ParamRange> groups = parameter_groups(params, tc.optimizer);
  // ZeRO-1 keeps 1/world of the moments per rank; otherwise every rank holds them all.
  std::unique_ptr<ZeroOptimizer> zero;
  std::unique_ptr<Optimizer> optimizer;
  if (cfg.parallel.zero1 && world > 1)
    zero = std::make_unique<ZeroOptimizer>(*comm, tc.optimizer, groups, params.values().numel(), device);
  else optimizer = Optimizer::create(tc.optimizer, groups, params.values().numel(), device);
  nn::Context ctx;
  ctx.training = true;
  // Dropout draws differ between ranks (their rows differ too); rank 0's stream is the single-process one.
  const uint64_t dropout_seed =
      root ? data::mix_seed(tc.seed, 0x44524F50ull) : data::mix_seed(data::mix_seed(tc.seed, 0x44524F50ull), uint64_t(rank));  // "DROP"
  ctx.rng = Generator(dropout_seed, 0);

  // ---- resume or initialise: rank 0 reads, every rank receives (no shared filesystem needed) ----
  Cursor cursor;
  int64_t step = 0, skipped = 0, nonfinite_run = 0, tokens_seen = 0;
  std::string resume_from;
  std::string state_text;  // trainer_state.json of the checkpoint resumed from
  if (root) {
    remove_stale_checkpoint_temporaries(ckpt_dir);
    if (!fresh && opts.resume == "auto") {
      const CheckpointScan scan = find_latest_checkpoint(ckpt_dir);
      // Checkpoints that all fail verification are a run to repair, not a run to start over: starting from step
      // 0 would prune them and rewrite metrics.jsonl.
      if (scan.latest.empty() && !scan.warnings.empty()) {
        std::string list;
        for (const auto& w : scan.warnings) list += "\n  " + w;
        DENSE_FAIL("--resume auto: none of the {} checkpoint(s) in {} verifies, so there is nothing to continue "
                   "from:{}\nRemove (or move away) the damaged checkpoints to start from step 0, start a new run "
                   "keeping them with --resume none --overwrite (they are moved aside), or load a checkpoint you "
                   "trust with --resume <folder>",
                   scan.warnings.size(), ckpt_dir, list);
      }
      for (const auto& w : scan.warnings) log->warn("{}", w);
      resume_from = scan.latest;
    } else if (!fresh) {
      resume_from = opts.resume;
      // Later checkpoints in the same folder belong to another continuation of this run: saving this one's
      // steps among them would mix the two, and --resume auto would later pick the other's newest.
      const int64_t from_step = [&]() -> int64_t {
        std::smatch m;
        const std::string name = fs::path(resume_from).lexically_normal().filename().string();
        static const std::regex re(R"(step-(\d{8}))");
        return std::regex_match(name, m, re) ? std::stoll(m[1].str()) : -1;
      }();
      std::error_code same;
      const bool in_ckpt_dir = fs::equivalent(fs::path(resume_from).lexically_normal().parent_path(), ckpt_dir, same);
      if (from_step >= 0 && in_ckpt_dir) {
        for (const int64_t later : list_checkpoints(ckpt_dir))
          DENSE_CHECK(later <= from_step,
                      "--resume {}: {} also holds the later checkpoint {} (another continuation of this run); "
                      "continue the newest with --resume auto, or move the later checkpoints away first",
                      resume_from, ckpt_dir, checkpoint_name(later));
      }
    }
  }
  comm->broadcast(resume_from);
  DENSE_CHECK(resume_from.empty() || opts.init_from.empty(),
              "--init-from {} and a checkpoint to resume ({}) were both given; resume continues a run, init-from "
              "starts a new one from weights (use --resume none)",
              opts.init_from, resume_from);
  const std::string config_hash = train_config_hash(cfg);
  auto load_weights = [&](const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& source,
                          bool resize) {
    const auto extra = load_model_weights(*model, tensors, source, resize, [&](const std::string& name, int64_t from, int64_t to) {
      log->info("{}: '{}' resized from {} to {} positions (tiled)", source, name, from, to);
    });
    for (const auto& n : extra) log->warn("{}: tensor '{}' is not a parameter of this model; ignored", source, n);
  };
  std::string load_error;  // rank 0's, passed on so that every rank stops with it
  std::vector<std::pair<std::string, Tensor>> loaded_moments;  // rank 0, for ZeRO-1
  if (root) {
    try {
      if (!resume_from.empty()) {
        const CheckpointData ck = load_checkpoint(resume_from);
        load_weights(ck.model, resume_from + "/model.safetensors", false);
        const nlohmann::json& s = ck.state;
        DENSE_CHECK(s.contains("step") && s.contains("cursor") && s.contains("rng") && s.contains("optimizer_steps"),
                    "{}/trainer_state.json: missing step, cursor, rng or optimizer_steps", resume_from);
        if (optimizer) optimizer->load_state(ck.optimizer, s["optimizer_steps"].get<int64_t>());
        else loaded_moments = ck.optimizer;
        state_text = s.dump();
      } else if (!opts.init_from.empty() && is_hf_checkpoint(opts.init_from)) {  // a Hugging Face BERT folder
        const HfImport hf = import_hf_bert(opts.init_from, *model);
        for (const auto& n : hf.notes) log->info("{}", n);
        load_weights(hf.tensors, hf.source, opts.resize_position_embeddings);
        log->info("initialised weights from the Hugging Face checkpoint {}", opts.init_from);
      } else if (!opts.init_from.empty()) {
        const std::string file =
            fs::is_directory(opts.init_from, ec) ? opts.init_from + "/model.safetensors" : opts.init_from;
        if (fs::is_directory(opts.init_from, ec)) verify_checkpoint(opts.init_from);
        load_weights(read_safetensors(file).tensors, file, opts.resize_position_embeddings);
        log->info("initialised weights from {}", file);
      }
    } catch (const std::exception& e) {
      load_error = e.what();
    }
  }
  if (world > 1) comm->broadcast(load_error);
  if (!load_error.empty()) throw Error(load_error);
  // Identical weights everywhere, whether drawn from the seed, loaded or resumed.
  if (world > 1) comm->broadcast(params.values());
  if (world > 1) comm->broadcast(state_text);
  if (!state_text.empty()) {
    const nlohmann::json s = nlohmann::json::parse(state_text);
    if (zero) {
      zero->load_state(loaded_moments, s["optimizer_steps"].get<int64_t>());
      loaded_moments.clear();
    } else if (world > 1) {
      std::vector<std::pair<std::string, Tensor>> moments = optimizer->state();
      for (auto& [name, t] : moments) comm->broadcast(t);
      if (!root) {
        std::vector<std::pair<std::string, Tensor>> copies;
        for (const auto& [name, t] : moments) copies.emplace_back(name, t.clone());
        optimizer->load_state(copies, s["optimizer_steps"].get<int64_t>());
      }
    }
    step = s["step"].get<int64_t>();
    cursor = Cursor::from_json(s["cursor"]);
    ctx.rng.set_state(root ? s["rng"]["seed"].get<uint64_t>() : dropout_seed, s["rng"]["offset"].get<uint64_t>());
    skipped = s.value("skipped_steps", int64_t(0));
    if (scaler.enabled()) {
      if (s.contains("loss_scaler")) scaler.load_json(s["loss_scaler"], resume_from + "/trainer_state.json");
      else log->warn("{}: no loss-scaler state (not an f16 run); starting at scale {}", resume_from, scaler.scale());
    }
    tokens_seen = s.value("tokens_seen", int64_t(0));
    const int64_t saved_world = s.value("world_size", int64_t(1));
    if (saved_world != world)
      log->info("{}: written by {} rank(s), continuing on {}: the data stream is re-split at the same position",
                resume_from, saved_world, world);
    if (s.value("config_hash", std::string()) != config_hash)
      log->warn("{}: written with a different configuration; continuing with the current one", resume_from);
    log->info("resumed from {} at step {}", resume_from, step);
  }
  result.start_step = step;
  if (half) half->params().values().copy_(params.values());
  if (root) write_file_atomic(run_dir + "/config.yaml", train_config_to_yaml(cfg));

  ShardLoader loader(lo, cursor);
  std::unique_ptr<Metrics> metrics;
  if (root) metrics = std::make_unique<Metrics>(run_dir, cfg.logging.tensorboard, step, step == tc.max_steps);
  std::unique_ptr<GradientSync> gradient_sync;
  if (world > 1 && !zero) gradient_sync = std::make_unique<GradientSync>(*comm, params, cfg.model.num_hidden_layers, cfg.parallel.bucket_mb);
  log->info("training {} ({} parameters) on {} for {} steps: global batch {} = {} rank(s) x {} x {} accumulation, {} "
            "tokens per row",
            cfg.name, params.numel(), device.str(), tc.max_steps, tc.global_batch, world, micro, accum, loader.seq_len());
  if (gradient_sync) log->info("gradients summed over {} ranks ({}) in {} buckets", world, comm->engine(),
                               gradient_sync->bucket_count());

  const int64_t first_step = step;
  int64_t saved_step = -1;
  Cursor last_cursor = cursor;
  auto save = [&](const Cursor& c) {
    std::vector<std::pair<std::string, Tensor>> moments;
    if (zero) moments = zero->gather_state();  // collective
    if (!root) return;  // every rank holds the same weights (and, but for ZeRO, optimizer state)
    CheckpointData ck;
    ck.model = model_tensors(*model);
    ck.optimizer = zero ? moments : optimizer->state();
    for (auto& [name, t] : ck.optimizer) t = t.to(Device::cpu());  // a no-op on the CPU (a view, no copy)
    ck.state = {{"format_version", 1},
                {"step", step},
                {"cursor", c.to_json()},
                {"rng", {{"seed", ctx.rng.seed()}, {"offset", ctx.rng.offset()}}},
                {"optimizer_steps", zero ? zero->steps() : optimizer->steps()},
                {"skipped_steps", skipped},
                {"tokens_seen", tokens_seen},
                {"config_hash", config_hash},
                {"precision", tc.precision},
                {"world_size", world},
                {"name", cfg.name}};
    if (scaler.enabled()) ck.state["loss_scaler"] = scaler.to_json();
    result.last_checkpoint = save_checkpoint(ckpt_dir, step, ck);
    saved_step = step;
    for (const auto& removed :
         prune_checkpoints(ckpt_dir, cfg.checkpoint.keep_last, cfg.checkpoint.keep_every, /*keep_step=*/step))
      log->info("removed old checkpoint {}", removed);
    log->info("saved {}", result.last_checkpoint);
    check_log();
  };
  // A shard that fails its checksum mid-run (data.on_bad_shard: fail): what was trained since the last
  // checkpoint is saved, then the run stops naming the shard.
  auto stop_for_bad_shard = [&](const BadShardError& e, const Cursor& c) {
    std::string saved;
    if (step > first_step && saved_step != step) save(c);
    if (saved_step == step) saved = fmt::format("step {}, the step reached, is saved ({}); ", step, result.last_checkpoint);
    else saved = fmt::format("no step was trained after step {}, where this run started; ", step);
    log->error("{}", e.what());
    DENSE_FAIL("{}\n{}replace or remove the shard, then continue with --resume auto", e.what(), saved);
  };
  auto run_eval = [&]() {
    if (!eval_opts) return;
    MlmEval e;
    try {
      e = evaluate_mlm(compute, *eval_opts, tc.eval_batches, device, *comm);
    } catch (const BadShardError& bad) {
      stop_for_bad_shard(bad, last_cursor);
    }
    result.eval_loss = e.loss;
    result.eval_accuracy = e.accuracy;
    if (metrics) metrics->write({{"step", step}, {"eval_loss", e.loss}, {"eval_accuracy", e.accuracy}, {"eval_tokens", e.tokens}});
    log->info("step {}: eval loss {:.4f}, accuracy {:.4f} over {} masked tokens", step, e.loss, e.accuracy, e.tokens);
  };

  // Model FLOPs per token for the MFU estimate: 6 x parameters outside the embedding tables (forward + backward).
  int64_t dense_params = 0;
  for (const auto& p : params.all())
    if (p.kind != nn::ParamKind::Embedding) dense_params += shape_numel(p.shape);
  // The MFU denominator: DENSE_PEAK_FLOPS when set (bench/bench_gpu.cpp measures it), else the H100 SXM's dense
  // datasheet peak for the compute type (bf16 / f16 989 TFLOP/s, TF32 494, f32 67), or 100 GFLOP/s a CPU thread.
  const char* peak_env = std::getenv("DENSE_PEAK_FLOPS");
  const char* tf32_env = std::getenv("DENSE_ALLOW_TF32");
  const bool tf32 = tf32_env && std::string(tf32_env) == "1";
  const double peak_flops = peak_env && std::atof(peak_env) > 0 ? std::atof(peak_env)
                            : device.is_cpu()                    ? 1e11 * double(cpu_threads())
                            : compute_dtype != DType::F32        ? 989e12
                            : tf32                               ? 494e12
                                                                 : 67e12;
  data::ProgressOptions popt;
  popt.enabled = cfg.logging.progress && !opts.quiet;
  popt.bytes = false;

  const char* kill_env = std::getenv("DENSE_TRAIN_KILL_AT_STEP");
  const int64_t kill_at_step = kill_env ? std::atoll(kill_env) : 0;
  const char* kill_rank_env = std::getenv("DENSE_TRAIN_KILL_RANK");  // default: every rank
  const int64_t kill_rank = kill_rank_env ? std::atoll(kill_rank_env) : -1;
  const std::string& dump_dir = opts.dump_gradients_dir;
  DENSE_CHECK(dump_dir.empty() || !zero, "--dump-gradients needs the whole gradient sum on every rank; it does not "
              "work with parallel.zero1: true");

  // ---- the loop ----
  double interval_loss = 0, t_interval = now_s();
  int64_t interval_steps = 0, interval_tokens = 0;
  HostBatch h;
  const double t_start = now_s();
  std::vector<HostBatch> micro_batches(static_cast<size_t>(accum));
  while (step < tc.max_steps) {
    params.zero_grad();
    // The loss is the mean over every masked token of the global batch (all ranks, all micro-batches), so
    // any split of one global batch over ranks and micro-batches gives the same gradients: each micro-batch's
    // mean-loss gradient is weighted by its share of the global masked count.
    int64_t local_masked = 0;
    try {
      for (auto& mb : micro_batches) {
        DENSE_CHECK(loader.next(mb), "the training data ended (the loader loops over epochs; this is a bug)");
        local_masked += mb.masked;
      }
    } catch (const BadShardError& e) {
      stop_for_bad_shard(e, last_cursor);
    }
    last_cursor = micro_batches.back().next;
    std::vector<double> global_counts = {double(local_masked)};
    comm->all_reduce(global_counts);
    const double global_masked = global_counts[0];
    double loss = 0;
    const double loss_scale = scaler.scale();
    for (int64_t a = 0; a < accum; ++a) {
      h = std::move(micro_batches[size_t(a)]);
      const double weight = global_masked > 0 ? double(h.masked) / global_masked : 0.0;
      // The last micro-batch's backward starts the layer buckets itself; under bf16 / f16 each bucket first
      // folds its half gradients into the f32 arena.
      const bool sync_in_backward = gradient_sync && a == accum - 1;
      if (sync_in_backward) gradient_sync->arm(compute, half ? &half->params().grads() : nullptr, a == 0);
      const models::Outputs out = compute.forward(to_model_batch(h, cfg.model, device), ctx);
      compute.backward(loss_scale * weight);
      if (half && !sync_in_backward) {
        // Summed in f32 (docs/model.md §4.3: f32 gradient accumulation), then the half gradients start again at zero.
        ops::accumulate(half->params().grads().to(DType::F32), a == 0 ? 0.0 : 1.0, params.grads());
        half->params().zero_grad();
      }
      if (h.masked > 0) loss += out.loss * weight;
      interval_tokens += h.batch * h.seq_len * world;
    }
    if (world > 1) {
      if (gradient_sync) gradient_sync->finish();
      std::vector<double> l = {loss};
      comm->all_reduce(l);
      loss = l[0];
    }
    tokens_seen += tc.global_batch * loader.seq_len();
    const double lr = learning_rate_at(tc.schedule, tc.optimizer, step, tc.max_steps);
    Tensor grads = params.grads();
    if (zero) zero->reduce_gradients(grads);
    // What the update reads: the whole arena, or under ZeRO-1 this rank's slice of the sums.
    Tensor& update_grads = zero ? zero->slice_gradients() : grads;
    if (loss_scale != 1.0) scale_gradients(update_grads, 1.0 / loss_scale);
    if (!dump_dir.empty() && step == first_step && !zero) {
      std::vector<std::pair<std::string, Tensor>> named;
      for (const auto& p : params.all()) named.emplace_back(p.name, p.grad.to(Device::cpu()).contiguous());
      write_safetensors(fmt::format("{}/grads-rank{}.safetensors", dump_dir, rank), named, {});
    }
    const double grad_norm = zero ? zero->global_norm() : global_grad_norm(grads);
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    // Under f16 a non-finite gradient first means the scale is too large: halve it and retry, without counting
    // towards divergence, until the scale reaches its minimum.
    const bool scale_overflow = !finite && scaler.enabled() && std::isfinite(loss) && !scaler.at_minimum();
    scaler.update(!finite);
    if (scale_overflow) {
      ++skipped;
      log->info("step {}: gradient overflow at loss scale {}; update skipped, scale now {}", step, loss_scale,
                scaler.scale());
    } else if (!finite) {
      ++skipped;
      ++nonfinite_run;
      log->warn("step {}: non-finite loss {} or gradient norm {}; update skipped ({} in a row)", step, loss, grad_norm,
                nonfinite_run);
      DENSE_CHECK(nonfinite_run < tc.max_nonfinite_steps,
                  "step {}: {} non-finite steps in a row (training.max_nonfinite_steps); first non-finite gradient: {}",
                  step, nonfinite_run, first_nonfinite_gradient(*model));
    } else {
      nonfinite_run = 0;
      if (tc.clip_grad_norm > 0) {
        // torch.nn.utils.clip_grad_norm_'s coefficient, from the norm of all slices.
        const double coef = tc.clip_grad_norm / (grad_norm + 1e-6);
        if (coef < 1.0) scale_gradients(update_grads, coef);
      }
      Tensor values = params.values();
      if (zero) zero->step(values, lr);
      else optimizer->step(values, grads, lr);
      if (half) half->params().values().copy_(values);
      interval_loss += loss;
      ++interval_steps;
    }
    ++step;
    // Fault injection for the crash tests: a real SIGKILL in the middle of a run.
    if (kill_at_step > 0 && step == kill_at_step && (kill_rank < 0 || kill_rank == rank)) ::kill(::getpid(), SIGKILL);

    const bool last = step == tc.max_steps;
    if (step % std::max<int64_t>(1, cfg.logging.every_steps) == 0 || last) {
      const double dt = now_s() - t_interval;
      const double tps = dt > 0 ? double(interval_tokens) / dt : 0;
      result.last_loss = interval_steps > 0 ? interval_loss / double(interval_steps) : NAN;
      const double mfu = tps * 6.0 * double(dense_params) / peak_flops;
      nlohmann::json row = {{"step", step},         {"loss", result.last_loss}, {"lr", lr},
                            {"grad_norm", grad_norm}, {"tokens_per_s", tps},      {"mfu", mfu},
                            {"epoch", h.epoch},       {"tokens", tokens_seen},    {"skipped_steps", skipped}};
      if (scaler.enabled()) row["loss_scale"] = scaler.scale();
      if (metrics) metrics->write(row);
      const double elapsed = now_s() - t_start;
      const double eta = double(tc.max_steps - step) * elapsed / double(std::max<int64_t>(1, step - first_step));
      const std::string line =
          fmt::format("step {}/{}  loss {:.4f}  lr {:.3g}  {} tok/s  MFU {:.1f}%  ETA {}", step, tc.max_steps,
                      result.last_loss, lr, data::with_thousands(int64_t(tps)), 100 * mfu, data::format_duration(eta));
      log->info("{}", line);
      if (popt.enabled && root) std::fprintf(stderr, "%s\n", line.c_str());
      interval_loss = 0;
      interval_steps = 0;
      interval_tokens = 0;
      t_interval = now_s();
    }
    check_log();
    if (tc.eval_every > 0 && step % tc.eval_every == 0 && !last) run_eval();
    bool stop = stop_requested().load() || (opts.stop_after_steps > 0 && step - first_step >= opts.stop_after_steps);
    if (world > 1) {
      // A signal reaches the ranks at different moments: they stop together, at the step the first one saw it.
      std::vector<double> any = {stop ? 1.0 : 0.0};
      comm->all_reduce(any, parallel::ReduceOp::Max);
      stop = any[0] > 0;
    }
    if ((cfg.checkpoint.every_steps > 0 && step % cfg.checkpoint.every_steps == 0) || last || stop) save(last_cursor);
    if (stop && !last) {
      result.interrupted = !(opts.stop_after_steps > 0 && step - first_step >= opts.stop_after_steps);
      log->info("stopping at step {} ({})", step, result.interrupted ? "signal" : "stop_after_steps");
      break;
    }
  }
  if (step == tc.max_steps) run_eval();
  if (metrics) metrics->close();
  result.steps = step;
  result.skipped_steps = skipped;
  result.loss_scale = scaler.scale();
  log->flush();
  check_log();
  return result;
}

}  // namespace dense::train
