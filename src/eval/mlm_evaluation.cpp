#include "eval/mlm_evaluation.h"

#include <filesystem>

#include "backend/backend.h"
#include "config/train_config_yaml.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "data/vocab.h"
#include "eval/logits_dump.h"
#include "train/checkpoint.h"

namespace dense::train {

namespace fs = std::filesystem;

std::string find_run_config(const std::string& checkpoint) {
  std::error_code ec;
  fs::path dir = fs::absolute(checkpoint, ec);
  if (!fs::is_directory(dir, ec)) dir = dir.parent_path();
  for (int up = 0; up < 4 && !dir.empty(); ++up, dir = dir.parent_path()) {
    const fs::path candidate = dir / "config.yaml";
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
    if (dir == dir.root_path()) break;
  }
  DENSE_FAIL("{}: no config.yaml beside the checkpoint or in the run folder above it; pass --config", checkpoint);
}

MlmEvalReport run_mlm_evaluation(const MlmEvalRequest& req) {
  MlmEvalReport report;
  DENSE_CHECK(req.batch >= 0, "--batch must be a positive number of rows (got {})", req.batch);
  DENSE_CHECK(req.max_batches >= 0, "--max-batches must not be negative (got {})", req.max_batches);
  const ResolvedCheckpoint ckpt = resolve_checkpoint(req.checkpoint, "--checkpoint");
  report.chosen_checkpoint = ckpt.chosen;
  report.warnings = ckpt.warnings;
  report.config = req.config.empty() ? find_run_config(ckpt.folder.empty() ? ckpt.weights : ckpt.folder) : req.config;
  TrainConfig cfg = load_train_config(report.config, req.overrides);
  const DataConfig& dc = cfg.data;
  std::unique_ptr<parallel::Communicator> comm = parallel::make_communicator(cfg.parallel.backend);
  report.rank = comm->rank();
  report.world = comm->size();
  if (cfg.training.threads > 0) set_cpu_threads(cfg.training.threads);

  LoaderOptions lo;
  lo.files = list_shards(req.data);
  lo.format = dc.format;
  lo.seed = cfg.training.seed;  // the masks training's evaluation drew
  lo.loop = false;
  lo.shuffle = false;
  lo.prefetch = dc.prefetch_batches;
  lo.rank = comm->rank();
  lo.world = comm->size();
  lo.batch_size = req.batch > 0 ? req.batch
                                : (cfg.training.micro_batch > 0 ? cfg.training.micro_batch
                                                                : cfg.training.global_batch / comm->size());
  set_mlm_masking(cfg, lo);
  // The shards decide the length: probe them before building the model.
  int64_t seq_len = 0;
  {
    LoaderOptions probe = lo;
    probe.prefetch = 1;
    ShardLoader loader(probe);
    seq_len = loader.seq_len();
  }
  report.seq_len = seq_len;
  report.trained_positions = cfg.model.max_position_embeddings;
  models::ModelConfig mc = cfg.model;
  if (seq_len > mc.max_position_embeddings) mc.max_position_embeddings = seq_len;
  std::unique_ptr<models::Model> model = models::build_model(mc, DType::F32, Device::cpu(), cfg.training.seed);

  report.weights = ckpt.weights;
  load_model_weights(*model, read_safetensors(report.weights).tensors, report.weights, /*resize_positions=*/true,
                     [&](const std::string& name, int64_t old_rows, int64_t new_rows) {
                       report.warnings.push_back(position_resize_note(report.weights, name, old_rows, new_rows));
                     });
  if (req.dump_logits.empty()) {
    report.result = evaluate_mlm(*model, lo, req.max_batches, Device::cpu(), *comm);
    return report;
  }
  DENSE_CHECK(comm->size() == 1, "--dump-logits: run dense-eval mlm as one process (this run has {} ranks)",
              comm->size());
  // The vocabulary's tokens when the config names it: the remaining rows of the padded vocabulary are no tokens.
  const int64_t width =
      dc.vocab.empty() ? mc.vocab_size : std::min<int64_t>(data::Vocab::load(dc.vocab).size(), mc.vocab_size);
  MlmLogitsDump dump(width);
  report.result = evaluate_mlm(*model, lo, req.max_batches, Device::cpu(), *comm,
                               [&](const HostBatch& h, const models::Outputs* out) { dump.add(h, out); });
  dump.write(req.dump_logits, {{"head", "mlm"},
                               {"weights", report.weights},
                               {"config", report.config},
                               {"data", req.data},
                               {"vocab", dc.vocab}});
  return report;
}

}  // namespace dense::train
