#include "train/train_state.h"

#include <filesystem>
#include <regex>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "config/train_config_yaml.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "data/prep_common.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/hf_import.h"

namespace dense::train {

namespace fs = std::filesystem;

void join_ranks(TrainState& st, const TrainConfig& cfg) {
  // Device tensors travel over NCCL: with several ranks on CUDA, `auto` means nccl (mpi moves host tensors).
  const bool cuda = parse_device(cfg.training.device).is_cuda();
  const std::string engine =
      cfg.parallel.backend == "auto" && cuda && parallel::launched_with_several_ranks() ? "nccl" : cfg.parallel.backend;
  st.comm = parallel::make_communicator(engine);
  st.world = st.comm->size();
  st.rank = st.comm->rank();
  st.root = st.rank == 0;
}

void choose_device(TrainState& st, const TrainConfig& cfg) {
  const TrainingConfig& tc = cfg.training;
  const Device configured = parse_device(tc.device);
  DENSE_CHECK(configured.is_cpu() || cuda_available(),
              "training.device: '{}' asked for, but no CUDA device is available{}", tc.device,
              cuda_device_count() == 0 ? " (this build or machine has none)" : "");
  // `cuda` without an index gives each rank of a node its own GPU, as the NCCL engine does.
  st.device = configured.is_cuda() && tc.device == "cuda" && st.world > 1
                  ? Device::cuda(st.comm->local_rank() % cuda_device_count())
                  : configured;
  DENSE_CHECK(st.device.is_cpu() || st.world == 1 || st.comm->engine() == "nccl",
              "training.device: '{}' with {} ranks needs parallel.backend nccl (or auto); the {} engine moves host "
              "tensors",
              tc.device, st.world, st.comm->engine());
  if (tc.threads > 0) set_cpu_threads(tc.threads);
  st.compute_dtype = tc.precision == "bf16" ? DType::BF16 : tc.precision == "f16" ? DType::F16 : DType::F32;
  DENSE_CHECK(st.comm->engine() != "nccl" || !st.device.is_cpu(),
              "parallel.backend: nccl reduces GPU tensors; CPU training uses parallel.backend mpi (or auto)");
  st.micro = tc.micro_batch > 0 ? tc.micro_batch : tc.global_batch / st.world;
  DENSE_CHECK(st.micro >= 1 && tc.global_batch % (st.micro * st.world) == 0,
              "training.global_batch {} is not a multiple of micro_batch {} x {} rank(s)", tc.global_batch, st.micro,
              st.world);
  st.accum = tc.global_batch / (st.micro * st.world);
}

void build_model(TrainState& st, const TrainConfig& cfg) {
  const TrainingConfig& tc = cfg.training;
  st.model = models::build_model(cfg.model, DType::F32, st.device, tc.seed);
  if (st.compute_dtype != DType::F32) st.half = models::build_model(cfg.model, st.compute_dtype, st.device, tc.seed);
  st.compute = st.half ? st.half.get() : st.model.get();
  st.compute->set_recompute(tc.recompute);
  nn::ParameterSet& params = st.params();
  st.scaler = std::make_unique<LossScaler>(tc);
  const std::vector<ParamRange> groups = parameter_groups(params, tc.optimizer);
  if (cfg.parallel.zero1 && st.world > 1)
    st.zero = std::make_unique<ZeroOptimizer>(*st.comm, tc.optimizer, groups, params.values().numel(), st.device);
  else
    st.optimizer = Optimizer::create(tc.optimizer, groups, params.values().numel(), st.device);
  st.ctx.training = true;
  // Dropout draws differ between ranks (their rows differ too); rank 0's stream is the single-process one.
  const uint64_t drop = data::mix_seed(tc.seed, 0x44524F50ull);  // "DROP"
  st.dropout_seed = st.root ? drop : data::mix_seed(drop, uint64_t(st.rank));
  st.ctx.rng = Generator(st.dropout_seed, 0);
}

namespace {

// Rank 0: the checkpoint --resume asks for ("" for a new run), after checking that continuing from it is sound.
std::string checkpoint_to_resume(const RunFolder& folder, const TrainOptions& opts, spdlog::logger& log) {
  const std::string& ckpt_dir = folder.ckpt_dir;
  if (folder.fresh) return "";
  if (opts.resume == "auto") {
    const CheckpointScan scan = find_latest_checkpoint(ckpt_dir);
    // Checkpoints that all fail verification are a run to repair, not a run to start over: starting from step
    // 0 would prune them and rewrite metrics.jsonl.
    if (scan.latest.empty() && !scan.warnings.empty()) {
      std::string list;
      for (const auto& w : scan.warnings) list += "\n  " + w;
      DENSE_FAIL(
          "--resume auto: none of the {} checkpoint(s) in {} verifies, so there is nothing to continue "
          "from:{}\nRemove (or move away) the damaged checkpoints to start from step 0, start a new run "
          "keeping them with --resume none --overwrite (they are moved aside), or load a checkpoint you "
          "trust with --resume <folder>",
          scan.warnings.size(), ckpt_dir, list);
    }
    for (const auto& w : scan.warnings) log.warn("{}", w);
    return scan.latest;
  }
  const std::string& resume_from = opts.resume;
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
  return resume_from;
}

void load_weights(models::Model& model, const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const std::string& source, bool resize, spdlog::logger& log) {
  const auto extra =
      load_model_weights(model, tensors, source, resize, [&](const std::string& name, int64_t from, int64_t to) {
        log.info("{}: '{}' resized from {} to {} positions (tiled)", source, name, from, to);
      });
  for (const auto& n : extra) log.warn("{}: tensor '{}' is not a parameter of this model; ignored", source, n);
}

// Rank 0: the weights (and, resuming, the optimizer state) into the f32 model. Returns the checkpoint's
// trainer_state.json ("" when not resuming); under ZeRO-1 the full moments land in `moments` for scattering.
std::string load_on_root(TrainState& st, const TrainOptions& opts, spdlog::logger& log,
                         std::vector<std::pair<std::string, Tensor>>& moments) {
  const std::string& resume_from = st.resumed_from;
  if (!resume_from.empty()) {
    const CheckpointData ck = load_checkpoint(resume_from);
    load_weights(*st.model, ck.model, resume_from + "/model.safetensors", false, log);
    const nlohmann::json& s = ck.state;
    DENSE_CHECK(s.contains("step") && s.contains("cursor") && s.contains("rng") && s.contains("optimizer_steps"),
                "{}/trainer_state.json: missing step, cursor, rng or optimizer_steps", resume_from);
    if (st.optimizer)
      st.optimizer->load_state(ck.optimizer, s["optimizer_steps"].get<int64_t>());
    else
      moments = ck.optimizer;
    return s.dump();
  }
  if (!opts.init_from.empty() && is_hf_checkpoint(opts.init_from)) {  // a Hugging Face BERT folder
    const HfImport hf = import_hf_bert(opts.init_from, *st.model);
    for (const auto& n : hf.notes) log.info("{}", n);
    load_weights(*st.model, hf.tensors, hf.source, opts.resize_position_embeddings, log);
    log.info("initialised weights from the Hugging Face checkpoint {}", opts.init_from);
  } else if (!opts.init_from.empty()) {  // a model.safetensors, a checkpoint folder or a run folder
    const ResolvedCheckpoint from = resolve_checkpoint(opts.init_from, "--init-from");
    for (const auto& w : from.warnings) log.warn("{}", w);
    if (!from.chosen.empty()) log.info("--init-from: {}", from.chosen);
    load_weights(*st.model, read_safetensors(from.weights).tensors, from.weights, opts.resize_position_embeddings, log);
    log.info("initialised weights from {}", from.weights);
  }
  return "";
}

// Every rank: the optimizer state and counters of the checkpoint's trainer_state.json.
void restore_counters(TrainState& st, const nlohmann::json& s, std::vector<std::pair<std::string, Tensor>>& moments,
                      spdlog::logger& log) {
  const std::string& resume_from = st.resumed_from;
  if (st.zero) {
    st.zero->load_state(moments, s["optimizer_steps"].get<int64_t>());
    moments.clear();
  } else if (st.world > 1) {
    std::vector<std::pair<std::string, Tensor>> rank0_moments = st.optimizer->state();
    for (auto& [name, t] : rank0_moments) st.comm->broadcast(t);
    if (!st.root) {
      std::vector<std::pair<std::string, Tensor>> copies;
      for (const auto& [name, t] : rank0_moments) copies.emplace_back(name, t.clone());
      st.optimizer->load_state(copies, s["optimizer_steps"].get<int64_t>());
    }
  }
  st.step = s["step"].get<int64_t>();
  st.cursor = Cursor::from_json(s["cursor"]);
  st.ctx.rng.set_state(st.root ? s["rng"]["seed"].get<uint64_t>() : st.dropout_seed,
                       s["rng"]["offset"].get<uint64_t>());
  st.skipped = s.value("skipped_steps", int64_t(0));
  if (st.scaler->enabled()) {
    if (s.contains("loss_scaler"))
      st.scaler->load_json(s["loss_scaler"], resume_from + "/trainer_state.json");
    else
      log.warn("{}: no loss-scaler state (not an f16 run); starting at scale {}", resume_from, st.scaler->scale());
  }
  st.tokens_seen = s.value("tokens_seen", int64_t(0));
  const int64_t saved_world = s.value("world_size", int64_t(1));
  if (saved_world != st.world)
    log.info("{}: written by {} rank(s), continuing on {}: the data stream is re-split at the same position",
             resume_from, saved_world, st.world);
  if (s.value("config_hash", std::string()) != st.config_hash)
    log.warn("{}: written with a different configuration; continuing with the current one", resume_from);
  log.info("resumed from {} at step {}", resume_from, st.step);
}

}  // namespace

void resume_or_init(TrainState& st, const TrainConfig& cfg, const TrainOptions& opts, const RunFolder& folder,
                    spdlog::logger& log) {
  if (st.root) {
    remove_stale_checkpoint_temporaries(folder.ckpt_dir);
    st.resumed_from = checkpoint_to_resume(folder, opts, log);
  }
  st.comm->broadcast(st.resumed_from);
  DENSE_CHECK(st.resumed_from.empty() || opts.init_from.empty(),
              "--init-from {} and a checkpoint to resume ({}) were both given; resume continues a run, init-from "
              "starts a new one from weights (use --resume none)",
              opts.init_from, st.resumed_from);
  st.config_hash = train_config_hash(cfg);
  std::string load_error;                               // rank 0's, passed on so that every rank stops with it
  std::string state_text;                               // trainer_state.json of the checkpoint resumed from
  std::vector<std::pair<std::string, Tensor>> moments;  // rank 0, for ZeRO-1
  if (st.root) {
    try {
      state_text = load_on_root(st, opts, log, moments);
    } catch (const std::exception& e) {
      load_error = e.what();
    }
  }
  if (st.world > 1) st.comm->broadcast(load_error);
  if (!load_error.empty()) throw Error(load_error);
  // Identical weights everywhere, whether drawn from the seed, loaded or resumed.
  if (st.world > 1) st.comm->broadcast(st.params().values());
  if (st.world > 1) st.comm->broadcast(state_text);
  if (!state_text.empty()) restore_counters(st, nlohmann::json::parse(state_text), moments, log);
  if (st.half) st.half->params().values().copy_(st.params().values());
}

std::string save_run_checkpoint(TrainState& st, const TrainConfig& cfg, const RunFolder& folder, const Cursor& next,
                                spdlog::logger& log) {
  std::vector<std::pair<std::string, Tensor>> moments;
  if (st.zero) moments = st.zero->gather_state();  // collective
  if (!st.root) return "";  // every rank holds the same weights (and, but for ZeRO, optimizer state)
  CheckpointData ck;
  for (auto& p : st.params().all())
    ck.model.emplace_back(p.name, p.value.to(Device::cpu()).to(DType::F32).contiguous());
  ck.optimizer = st.zero ? moments : st.optimizer->state();
  for (auto& [name, t] : ck.optimizer) t = t.to(Device::cpu());  // a no-op on the CPU (a view, no copy)
  ck.state = {{"format_version", 1},
              {"step", st.step},
              {"cursor", next.to_json()},
              {"rng", {{"seed", st.ctx.rng.seed()}, {"offset", st.ctx.rng.offset()}}},
              {"optimizer_steps", st.zero ? st.zero->steps() : st.optimizer->steps()},
              {"skipped_steps", st.skipped},
              {"tokens_seen", st.tokens_seen},
              {"config_hash", st.config_hash},
              {"precision", cfg.training.precision},
              {"world_size", st.world},
              {"name", cfg.name}};
  if (st.scaler->enabled()) ck.state["loss_scaler"] = st.scaler->to_json();
  const std::string saved = save_checkpoint(folder.ckpt_dir, st.step, ck);
  for (const auto& removed : prune_checkpoints(folder.ckpt_dir, cfg.checkpoint.keep_last, cfg.checkpoint.keep_every,
                                               /*keep_step=*/st.step))
    log.info("removed old checkpoint {}", removed);
  log.info("saved {}", saved);
  return saved;
}

}  // namespace dense::train
