#include "train/evaluate.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>

#include "core/error.h"
#include "data/vocab.h"
#include "train/checkpoint.h"

namespace dense::train {

void set_mlm_masking(const TrainConfig& cfg, LoaderOptions& lo) {
  lo.masking.rho = cfg.data.mlm_probability;
  lo.masking.p_mask = cfg.data.mask_token_prob;
  lo.masking.p_random = cfg.data.random_token_prob;
  lo.masking.mask_special_tokens = cfg.data.mask_special_tokens;
  lo.masking.vocab_size = int32_t(cfg.model.vocab_size);
  if (cfg.data.vocab.empty()) return;
  const data::Vocab vocab = data::Vocab::load(cfg.data.vocab);
  lo.vocab_hash = vocab.sha256();
  lo.masking.vocab_size = vocab.size();
  DENSE_CHECK(vocab.mask_id() >= 0, "{}: the vocabulary has no [MASK]", cfg.data.vocab);
  lo.masking.mask_id = vocab.mask_id();
  lo.masking.never_mask = {vocab.cls_id(), vocab.sep_id()};
  DENSE_CHECK(vocab.size() <= cfg.model.vocab_size, "{}: {} tokens do not fit model.vocab_size {}", cfg.data.vocab,
              vocab.size(), cfg.model.vocab_size);
}

// A HostBatch as model inputs on the model's device.
models::Batch to_model_batch(const HostBatch& h, const models::ModelConfig& mc, Device device) {
  models::Batch b;
  const Shape shape{h.batch, h.seq_len};
  b.input_ids = Tensor::from_vector(h.input_ids, shape, DType::I64).to(device);
  b.mlm_labels = Tensor::from_vector(h.mlm_labels, shape, DType::I64).to(device);
  if (!h.attention_mask.empty()) b.attention_mask = Tensor::from_vector(h.attention_mask, shape, DType::F32).to(device);
  if (mc.token_type_embeddings && !h.token_type_ids.empty())
    b.token_type_ids = Tensor::from_vector(h.token_type_ids, shape, DType::I64).to(device);
  return b;
}

namespace {

// Correct predictions among the masked positions (labels >= 0, row-major: the order of the MLM logits rows).
int64_t mlm_correct(const models::Outputs& out, const HostBatch& h) {
  if (!out.mlm_logits.defined() || out.mlm_count == 0) return 0;
  const Tensor logits = out.mlm_logits.to(Device::cpu()).to(DType::F32).contiguous();
  const int64_t rows = logits.size(0), V = logits.size(1);
  const float* p = logits.data<float>();
  int64_t correct = 0, r = 0;
  for (int64_t label : h.mlm_labels) {
    if (label < 0) continue;
    DENSE_CHECK(r < rows, "MLM logits have {} rows for more masked positions", rows);
    const float* row = p + r * V;
    correct += int64_t(std::max_element(row, row + V) - row) == label;
    ++r;
  }
  return correct;
}

}  // namespace

MlmEval evaluate_mlm(models::Model& model, const LoaderOptions& base, int64_t max_batches, Device device,
                     parallel::Communicator& comm,
                     const std::function<void(const HostBatch&, const models::Outputs*)>& on_batch) {
  LoaderOptions o = base;
  o.loop = false;
  o.shuffle = false;
  ShardLoader loader(o);
  nn::Context ctx;
  ctx.training = false;
  double loss_sum = 0;
  int64_t count = 0, correct = 0, batches = 0, rows = 0;
  HostBatch h;
  while ((max_batches <= 0 || batches < max_batches) && loader.next(h)) {
    ++batches;
    rows += h.batch;
    if (h.masked == 0) {
      if (on_batch) on_batch(h, nullptr);
      continue;
    }
    const models::Outputs out = model.forward(to_model_batch(h, model.config(), device), ctx);
    if (on_batch) on_batch(h, &out);
    loss_sum += out.mlm_loss * double(out.mlm_count);
    count += out.mlm_count;
    correct += mlm_correct(out, h);
  }
  std::vector<double> sums = {loss_sum, double(count), double(correct), double(rows)};
  comm.all_reduce(sums);
  loss_sum = sums[0];
  count = int64_t(sums[1]);
  correct = int64_t(sums[2]);
  MlmEval e;
  e.tokens = count;
  e.rows = int64_t(sums[3]);
  if (count > 0) {
    e.loss = loss_sum / double(count);
    e.accuracy = double(correct) / double(count);
  }
  return e;
}

std::vector<std::string> load_model_weights(
    models::Model& model, const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& source,
    bool resize_positions, const std::function<void(const std::string&, int64_t, int64_t)>& on_resize) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [n, t] : tensors) by_name[n] = &t;
  for (auto& p : model.params().all()) {
    const auto it = by_name.find(p.name);
    DENSE_CHECK(it != by_name.end(), "{}: no tensor '{}' (the model needs it, shape {})", source, p.name,
                shape_str(p.shape));
    const Tensor& t = *it->second;
    const bool other_length = models::is_position_table(p.name) && t.dim() == 2 && p.shape.size() == 2 &&
                              t.size(1) == p.shape[1] && t.size(0) != p.shape[0];
    if (other_length && resize_positions) {
      p.value.copy_(models::resize_position_table(t, p.shape[0]));
      if (on_resize) on_resize(p.name, t.size(0), p.shape[0]);
    } else {
      DENSE_CHECK(t.shape() == p.shape, "{}: tensor '{}' has shape {}, the model needs {}{}", source, p.name,
                  shape_str(t.shape()), shape_str(p.shape),
                  other_length ? " (to continue at another length, pass --resize-position-embeddings)" : "");
      p.value.copy_(t);
    }
    by_name.erase(it);
  }
  std::vector<std::string> extra;
  for (const auto& [n, t] : by_name) extra.push_back(n);
  return extra;
}

std::string position_resize_note(const std::string& source, const std::string& name, int64_t old_rows,
                                 int64_t new_rows) {
  if (new_rows > old_rows)
    return fmt::format(
        "{}: '{}' has {} trained positions, the data needs {}: widened by tiling (position p uses "
        "trained row p mod {}); results past position {} come from repeated rows",
        source, name, old_rows, new_rows, old_rows, old_rows);
  return fmt::format("{}: '{}' has {} trained positions, the model holds {}: cut to the first {} rows", source, name,
                     old_rows, new_rows, new_rows);
}

ResolvedCheckpoint resolve_checkpoint(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  const char* expected =
      "expected a model.safetensors file, a checkpoint folder (runs/<name>/checkpoints/step-N, holding "
      "model.safetensors and checksums.json) or a run folder (runs/<name>, holding checkpoints/step-N)";
  std::error_code ec;
  ResolvedCheckpoint r;
  DENSE_CHECK(fs::exists(path, ec), "{} {}: no such file or folder; {}", flag, path, expected);
  if (!fs::is_directory(path, ec)) {
    r.weights = path;
    return r;
  }
  const fs::path dir(path);
  if (fs::exists(dir / "checksums.json", ec) || fs::exists(dir / "model.safetensors", ec)) {
    verify_checkpoint(path);
    r.folder = path;
    r.weights = (dir / "model.safetensors").string();
    return r;
  }
  // A run folder (checkpoints/ inside) or the checkpoint directory itself (step-N inside).
  const fs::path scan_dir = fs::is_directory(dir / "checkpoints", ec) ? dir / "checkpoints" : dir;
  const bool any = !list_checkpoints(scan_dir.string()).empty();
  DENSE_CHECK(any, "{} {}: a folder without checkpoints (no step-N folder in it{}); {}", flag, path,
              scan_dir == dir ? "" : " or in its checkpoints/", expected);
  const CheckpointScan scan = find_latest_checkpoint(scan_dir.string());
  r.warnings = scan.warnings;
  if (scan.latest.empty()) {
    std::string why;
    for (const auto& w : scan.warnings) why += "\n  " + w;
    DENSE_FAIL("{} {}: no complete checkpoint in {}:{}", flag, path, scan_dir.string(), why);
  }
  r.folder = scan.latest;
  r.weights = (fs::path(scan.latest) / "model.safetensors").string();
  r.chosen = fmt::format("{} (the newest complete checkpoint in {}, step {})", scan.latest, path, scan.latest_step);
  return r;
}

}  // namespace dense::train
