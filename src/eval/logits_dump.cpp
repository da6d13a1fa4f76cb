#include "eval/logits_dump.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <memory>

#include "backend/backend.h"
#include "config/train_config_yaml.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"
#include "data/wordpiece.h"
#include "eval/mlm_evaluation.h"
#include "models/model.h"
#include "train/evaluate.h"
#include "train/hf_import.h"

namespace dense::train {

namespace fs = std::filesystem;

namespace {

// One input row before padding.
struct Row {
  std::vector<int64_t> ids;
  std::vector<int64_t> types;
};

std::vector<int64_t> parse_ids(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    while (p < end && (*p == ' ' || *p == ',' || *p == '\t')) ++p;
    if (p == end) break;
    int64_t v = 0;
    const auto [next, ec] = std::from_chars(p, end, v);
    DENSE_CHECK(ec == std::errc() && v >= 0,
                "{}: expected token ids (non-negative integers separated by spaces or "
                "commas), got '{}'",
                what, text);
    out.push_back(v);
    p = next;
  }
  DENSE_CHECK(!out.empty(), "{}: no token id in '{}'", what, text);
  return out;
}

std::vector<std::string> all_texts(const LogitsRequest& req) {
  std::vector<std::string> texts = req.texts;
  if (!req.texts_file.empty()) {
    std::ifstream f(req.texts_file, std::ios::binary);
    DENSE_CHECK(f.good(), "--texts {}: cannot be read", req.texts_file);
    std::string line;
    while (std::getline(f, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) texts.push_back(line);
    }
  }
  return texts;
}

// The model's position count and heads as the weights have them (a fine-tuned file knows its label count
// and whether its classifier has a bias; its config may say otherwise).
void fit_config_to_weights(models::ModelConfig& mc, const SafeTensors& st) {
  if (const Tensor* w = st.find("classifier.weight")) mc.num_labels = w->size(0);
  if (st.find("classifier.weight")) mc.classifier_bias = st.find("classifier.bias") != nullptr;
  for (const auto& [name, t] : st.tensors)
    if (name.ends_with("position_embeddings.weight")) mc.max_position_embeddings = t.size(0);
}

}  // namespace

void write_logits_file(const std::string& path, const Tensor& logits,
                       const std::vector<std::pair<std::string, Tensor>>& inputs,
                       const std::map<std::string, std::string>& metadata) {
  DENSE_CHECK(logits.dtype() == DType::F32 && logits.device().is_cpu() && logits.is_contiguous(),
              "write_logits_file: logits must be contiguous CPU float32, got {}", logits.str());
  if (fs::path(path).extension() == ".npy") {
    // NumPy's format 1.0: magic, header length, a Python dict literal padded so the data starts 64-byte aligned.
    std::string shape = "(";
    for (int64_t d = 0; d < logits.dim(); ++d) shape += (d ? ", " : "") + std::to_string(logits.size(d));
    shape += logits.dim() == 1 ? ",)" : ")";
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    const size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    std::string prefix = "\x93NUMPY";
    prefix += char(1);
    prefix += char(0);
    prefix += char(header.size() & 0xff);
    prefix += char((header.size() >> 8) & 0xff);
    AtomicFileWriter out(path);
    out.write(prefix);
    out.write(header);
    out.write(logits.raw_data(), logits.nbytes());
    out.commit();
    return;
  }
  std::vector<std::pair<std::string, Tensor>> tensors = {{"logits", logits}};
  for (const auto& t : inputs) tensors.push_back(t);
  write_safetensors(path, tensors, metadata);
}

void write_split_logits(const std::string& path, const ClassificationSplit& split, const std::vector<float>& logits,
                        const std::map<std::string, std::string>& metadata) {
  const data::ClassificationRows& r = split.rows;
  const int64_t rows = r.rows;
  DENSE_CHECK(rows > 0 && !logits.empty() && int64_t(logits.size()) % rows == 0,
              "{}: {} logits for {} rows (the best epoch's logits of every row are needed)", split.path, logits.size(),
              rows);
  const Shape inputs_shape{rows, r.seq_len};
  const auto as_i64 = [&](const auto& v) {
    return Tensor::from_vector(std::vector<int64_t>(v.begin(), v.end()), inputs_shape, DType::I64);
  };
  std::vector<std::pair<std::string, Tensor>> inputs = {{"input_ids", as_i64(r.input_ids)},
                                                        {"attention_mask", as_i64(r.attention_mask)}};
  if (!r.token_type_ids.empty()) inputs.emplace_back("token_type_ids", as_i64(r.token_type_ids));
  if (!r.input_ids2.empty()) {
    inputs.emplace_back("input_ids2", as_i64(r.input_ids2));
    inputs.emplace_back("attention_mask2", as_i64(r.attention_mask2));
  }
  std::map<std::string, std::string> meta = metadata;
  meta["split"] = split.path;
  write_logits_file(path, Tensor::from_vector(logits, {rows, int64_t(logits.size()) / rows}, DType::F32), inputs, meta);
}

void MlmLogitsDump::add(const HostBatch& h, const models::Outputs* out) {
  DENSE_CHECK(seq_len_ == 0 || h.seq_len == seq_len_, "--dump-logits: rows of {} and {} tokens in one evaluation",
              seq_len_, h.seq_len);
  seq_len_ = h.seq_len;
  const size_t n = size_t(h.batch * h.seq_len);
  input_ids_.insert(input_ids_.end(), h.input_ids.begin(), h.input_ids.end());
  labels_.insert(labels_.end(), h.mlm_labels.begin(), h.mlm_labels.end());
  for (size_t i = 0; i < n; ++i) {
    attention_mask_.push_back(h.attention_mask.empty() ? 1 : int64_t(h.attention_mask[i] != 0.0f));
    token_type_ids_.push_back(h.token_type_ids.empty() ? 0 : h.token_type_ids[i]);
  }
  if (out != nullptr && out->mlm_count > 0) {
    const Tensor logits = out->mlm_logits.to(Device::cpu()).to(DType::F32).contiguous();
    const int64_t V = logits.size(1);
    DENSE_CHECK(width_ <= V, "--dump-logits: {} logit columns asked for, the model has {}", width_, V);
    const float* p = logits.data<float>();
    int64_t r = 0;
    for (size_t i = 0; i < n; ++i) {
      if (h.mlm_labels[i] < 0) continue;
      DENSE_CHECK(r < logits.size(0), "--dump-logits: {} MLM logits rows for more masked positions", logits.size(0));
      logits_.insert(logits_.end(), p + r * V, p + r * V + width_);
      positions_.push_back(rows_ + int64_t(i) / h.seq_len);
      positions_.push_back(int64_t(i) % h.seq_len);
      ++r;
    }
  }
  rows_ += h.batch;
}

void MlmLogitsDump::write(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  const int64_t masked = int64_t(positions_.size()) / 2;
  const Shape rows_shape{rows_, seq_len_};
  write_logits_file(path, Tensor::from_vector(logits_, {masked, width_}, DType::F32),
                    {{"positions", Tensor::from_vector(positions_, {masked, 2}, DType::I64)},
                     {"input_ids", Tensor::from_vector(input_ids_, rows_shape, DType::I64)},
                     {"attention_mask", Tensor::from_vector(attention_mask_, rows_shape, DType::I64)},
                     {"token_type_ids", Tensor::from_vector(token_type_ids_, rows_shape, DType::I64)},
                     {"mlm_labels", Tensor::from_vector(labels_, rows_shape, DType::I64)}},
                    metadata);
}

LogitsReport run_logits_dump(const LogitsRequest& req) {
  LogitsReport report;
  DENSE_CHECK(req.head == "mlm" || req.head == "classifier", "--head: 'mlm' or 'classifier', got '{}'", req.head);
  DENSE_CHECK(req.batch >= 1, "--batch must be at least 1 (got {})", req.batch);
  const std::vector<std::string> texts = all_texts(req);
  DENSE_CHECK(texts.empty() || req.ids.empty(), "give texts (--text / --texts) or token ids (--ids), not both");
  DENSE_CHECK(!texts.empty() || !req.ids.empty(), "no input: give --text, --texts FILE or --ids");
  DENSE_CHECK(!req.out.empty(), "-o: the output file is required");

  const bool hf = is_hf_checkpoint(req.checkpoint);
  DENSE_CHECK(!hf || !req.config.empty(), "{}: a Hugging Face folder carries no densetrain config; pass --config",
              req.checkpoint);
  const ResolvedCheckpoint ckpt =
      hf ? ResolvedCheckpoint{req.checkpoint, {}, {}, {}} : resolve_checkpoint(req.checkpoint, "--checkpoint");
  report.warnings = ckpt.warnings;
  if (!ckpt.chosen.empty()) report.notes.push_back("checkpoint: " + ckpt.chosen);
  report.config = req.config.empty() ? find_run_config(ckpt.folder.empty() ? ckpt.weights : ckpt.folder) : req.config;
  TrainConfig cfg = load_train_config(report.config, req.overrides);
  if (cfg.training.threads > 0) set_cpu_threads(cfg.training.threads);
  models::ModelConfig mc = cfg.model;
  SafeTensors weights;
  if (!hf) {
    weights = read_safetensors(ckpt.weights);
    fit_config_to_weights(mc, weights);
  }
  report.weights = ckpt.weights;

  // Inputs: dense-prep's WordPiece for texts; ids as given.
  report.vocab = req.vocab.empty() ? cfg.data.vocab : req.vocab;
  DENSE_CHECK(texts.empty() || !report.vocab.empty(),
              "{}: texts need a WordPiece vocabulary: pass --vocab or set "
              "data.vocab",
              report.config);
  DENSE_CHECK(!mc.pair_matching,
              "{}: model.pair_matching takes two documents per example, which dense-eval logits "
              "does not pass; dense-eval lra --dump-logits writes such a model's logits",
              report.config);
  std::unique_ptr<data::WordPieceTokenizer> tok;
  int64_t pad_id = 0;
  if (!report.vocab.empty()) {
    tok = std::make_unique<data::WordPieceTokenizer>(data::WordPieceTokenizer::from_file(
        report.vocab, req.cased ? data::WordPieceOptions::cased() : data::WordPieceOptions::uncased()));
    DENSE_CHECK(tok->vocab().size() <= mc.vocab_size, "{}: {} tokens, more than the model's vocab_size {}",
                report.vocab, tok->vocab().size(), mc.vocab_size);
    pad_id = tok->vocab().pad_id();
  }
  const int64_t positions = mc.max_position_embeddings;
  std::vector<Row> rows;
  for (const std::string& text : texts) {
    const size_t tab = text.find('\t');
    const data::Encoding e = tab == std::string::npos
                                 ? tok->encode_single(text, size_t(positions))
                                 : tok->encode_pair(std::string_view(text).substr(0, tab),
                                                    std::string_view(text).substr(tab + 1), size_t(positions));
    report.truncated_rows += e.truncated > 0;
    rows.push_back({std::vector<int64_t>(e.input_ids.begin(), e.input_ids.end()),
                    std::vector<int64_t>(e.token_type_ids.begin(), e.token_type_ids.end())});
  }
  for (size_t i = 0; i < req.ids.size(); ++i) {
    Row r;
    r.ids = parse_ids(req.ids[i], fmt::format("--ids #{}", i + 1));
    DENSE_CHECK(int64_t(r.ids.size()) <= positions, "--ids #{}: {} tokens, but the model has {} positions", i + 1,
                r.ids.size(), positions);
    for (const int64_t id : r.ids)
      DENSE_CHECK(id < mc.vocab_size, "--ids #{}: token id {} is outside the model's vocabulary of {}", i + 1, id,
                  mc.vocab_size);
    r.types.assign(r.ids.size(), 0);
    rows.push_back(std::move(r));
  }

  const int64_t B = int64_t(rows.size());
  int64_t N = 1;
  for (const Row& r : rows) N = std::max(N, int64_t(r.ids.size()));
  std::vector<int64_t> ids(size_t(B * N), pad_id), mask(size_t(B * N), 0), types(size_t(B * N), 0);
  for (int64_t b = 0; b < B; ++b)
    for (size_t k = 0; k < rows[size_t(b)].ids.size(); ++k) {
      ids[size_t(b * N) + k] = rows[size_t(b)].ids[k];
      mask[size_t(b * N) + k] = 1;
      types[size_t(b * N) + k] = rows[size_t(b)].types[k];
    }

  std::unique_ptr<models::Model> model = models::build_model(mc, DType::F32, Device::cpu(), cfg.training.seed);
  if (hf) {
    HfImport imported = import_hf_bert(ckpt.weights, *model);
    for (auto& n : imported.notes) report.notes.push_back(std::move(n));
    load_model_weights(*model, imported.tensors, imported.source, /*resize_positions=*/false);
  } else {
    // Tensors the model does not have (another model's heads) take no part in this forward pass.
    load_model_weights(*model, weights.tensors, ckpt.weights, /*resize_positions=*/false);
  }

  // The MLM head is asked for every position (padding included, as an exported graph computes it); logits beyond
  // the vocabulary's tokens are the rows densetrain pads the vocabulary with and are dropped when it is known.
  const bool mlm = req.head == "mlm";
  const int64_t width = mlm ? (tok ? int64_t(tok->vocab().size()) : mc.vocab_size) : mc.num_labels;
  std::vector<float> logits;
  logits.reserve(size_t(B * (mlm ? N : 1) * width));
  nn::Context ctx;
  ctx.training = false;
  for (int64_t begin = 0; begin < B; begin += req.batch) {
    const int64_t n = std::min(req.batch, B - begin);
    const auto part = [&](const std::vector<int64_t>& v) {
      return std::vector<int64_t>(v.begin() + begin * N, v.begin() + (begin + n) * N);
    };
    models::Batch batch;
    batch.input_ids = Tensor::from_vector(part(ids), {n, N}, DType::I64);
    batch.attention_mask = Tensor::from_vector(part(mask), {n, N}, DType::F32);
    if (mc.token_type_embeddings) batch.token_type_ids = Tensor::from_vector(part(types), {n, N}, DType::I64);
    if (mlm)
      batch.mlm_labels = Tensor::zeros({n, N}, DType::I64);
    else
      batch.want_pooled = true;
    const models::Outputs o = model->forward(batch, ctx);
    const Tensor out = (mlm ? o.mlm_logits : o.class_logits).to(Device::cpu()).to(DType::F32).contiguous();
    const int64_t stride = out.size(1);
    const float* p = out.data<float>();
    for (int64_t r = 0; r < out.size(0); ++r) logits.insert(logits.end(), p + r * stride, p + r * stride + width);
  }
  report.shape = mlm ? std::vector<int64_t>{B, N, width} : std::vector<int64_t>{B, width};
  const Tensor logits_t = Tensor::from_vector(logits, Shape(report.shape.begin(), report.shape.end()), DType::F32);
  const std::map<std::string, std::string> metadata = {
      {"head", req.head},
      {"weights", report.weights},
      {"config", report.config},
      {"vocab", report.vocab},
      {"padding", "every row padded to the longest with the [PAD] id, attention_mask 0"}};
  write_logits_file(req.out, logits_t,
                    {{"input_ids", Tensor::from_vector(ids, {B, N}, DType::I64)},
                     {"attention_mask", Tensor::from_vector(mask, {B, N}, DType::I64)},
                     {"token_type_ids", Tensor::from_vector(types, {B, N}, DType::I64)}},
                    metadata);
  return report;
}

}  // namespace dense::train
