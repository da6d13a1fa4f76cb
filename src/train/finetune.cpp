#include "train/finetune.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "data/prep_common.h"
#include "data/shard.h"
#include "models/model.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace dense::train {

namespace fs = std::filesystem;

ClassificationSplit ClassificationSplit::load(const std::string& path) {
  data::ClassificationShardReader reader(path);
  ClassificationSplit s;
  s.path = path;
  s.num_labels = reader.layout().num_labels;
  s.labeled = reader.layout().labeled;
  s.rows = reader.read_all();
  return s;
}

namespace {

bool is_task_head(const std::string& name) {
  return name.starts_with("classifier.") || name.starts_with("pooler.") || name.starts_with("matching.");
}

// The rows `idx` of a split as model inputs (labels only for training).
models::Batch make_batch(const ClassificationSplit& s, const std::vector<int64_t>& idx, const models::ModelConfig& mc,
                         bool with_labels) {
  const data::ClassificationRows& r = s.rows;
  const int64_t B = int64_t(idx.size()), N = r.seq_len;
  std::vector<int64_t> ids(size_t(B * N)), types, ids2;
  std::vector<float> mask(size_t(B * N)), mask2;
  const bool pairs = !r.input_ids2.empty();
  const bool use_types = mc.token_type_embeddings && !r.token_type_ids.empty();
  if (use_types) types.resize(size_t(B * N));
  if (pairs) {
    ids2.resize(size_t(B * N));
    mask2.resize(size_t(B * N));
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < N; ++k) {
      const size_t src = size_t(idx[size_t(b)] * N + k), dst = size_t(b * N + k);
      ids[dst] = r.input_ids[src];
      mask[dst] = float(r.attention_mask[src]);
      if (use_types) types[dst] = r.token_type_ids[src];
      if (pairs) {
        ids2[dst] = r.input_ids2[src];
        mask2[dst] = float(r.attention_mask2[src]);
      }
    }
  models::Batch batch;
  const Shape shape{B, N};
  batch.input_ids = Tensor::from_vector(ids, shape, DType::I64);
  batch.attention_mask = Tensor::from_vector(mask, shape, DType::F32);
  if (use_types) batch.token_type_ids = Tensor::from_vector(types, shape, DType::I64);
  if (pairs) {
    batch.input_ids2 = Tensor::from_vector(ids2, shape, DType::I64);
    batch.attention_mask2 = Tensor::from_vector(mask2, shape, DType::F32);
  }
  if (with_labels) {
    if (s.num_labels == 1) {
      std::vector<float> y(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) y[size_t(b)] = r.float_labels[size_t(idx[size_t(b)])];
      batch.class_labels = Tensor::from_vector(y, {B}, DType::F32);
    } else {
      std::vector<int64_t> y(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) y[size_t(b)] = r.labels[size_t(idx[size_t(b)])];
      batch.class_labels = Tensor::from_vector(y, {B}, DType::I64);
    }
  } else {
    batch.want_pooled = true;
  }
  return batch;
}

// Class ids (argmax) or regression scores for the first `rows` rows of a split.
std::vector<double> predict(models::Model& model, const ClassificationSplit& s, int64_t rows, int64_t batch_size) {
  nn::Context ctx;
  ctx.training = false;
  std::vector<double> out;
  out.reserve(size_t(rows));
  for (int64_t begin = 0; begin < rows; begin += batch_size) {
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < std::min(rows, begin + batch_size); ++i) idx.push_back(i);
    const models::Outputs o = model.forward(make_batch(s, idx, model.config(), false), ctx);
    const Tensor logits = o.class_logits.to(DType::F32).contiguous();
    const int64_t L = logits.size(1);
    const float* p = logits.data<float>();
    for (size_t b = 0; b < idx.size(); ++b) {
      const float* row = p + int64_t(b) * L;
      out.push_back(L == 1 ? double(row[0]) : double(std::max_element(row, row + L) - row));
    }
  }
  return out;
}

}  // namespace

FinetuneResult finetune(const TrainConfig& cfg, const ClassificationSplit& train, const ClassificationSplit& dev,
                        const std::vector<const ClassificationSplit*>& extra, const MetricFn& metric,
                        const FinetuneOptions& o) {
  const TrainingConfig& tc = cfg.training;
  DENSE_CHECK(train.labeled && train.size() > 0, "{}: the training split must be labeled and non-empty", train.path);
  DENSE_CHECK(dev.labeled && dev.size() > 0, "{}: the dev split must be labeled and non-empty", dev.path);
  DENSE_CHECK(train.num_labels == dev.num_labels, "{} has {} labels, {} has {}", train.path, train.num_labels,
              dev.path, dev.num_labels);
  if (tc.threads > 0) set_cpu_threads(tc.threads);
  models::ModelConfig mc = cfg.model;
  mc.num_labels = train.num_labels;
  if (train.rows.seq_len > mc.max_position_embeddings) mc.max_position_embeddings = train.rows.seq_len;
  std::unique_ptr<models::Model> model = models::build_model(mc, DType::F32, Device::cpu(), o.seed);
  nn::ParameterSet& params = model->params();
  if (!o.init_from.empty()) {
    std::error_code ec;
    const bool folder = fs::is_directory(o.init_from, ec);
    if (folder) verify_checkpoint(o.init_from);
    const std::string file = folder ? o.init_from + "/model.safetensors" : o.init_from;
    std::vector<std::pair<std::string, Tensor>> tensors = read_safetensors(file).tensors;
    // Heads that do not fit (another label count, or none in a pretraining checkpoint) keep their init.
    for (const auto& p : params.all()) {
      if (!is_task_head(p.name)) continue;
      auto it = std::find_if(tensors.begin(), tensors.end(), [&](const auto& t) { return t.first == p.name; });
      if (it == tensors.end()) tensors.emplace_back(p.name, p.value.clone());
      else if (it->second.shape() != p.shape) it->second = p.value.clone();
    }
    load_model_weights(*model, tensors, file, /*resize_positions=*/true);
  }
  const std::vector<ParamRange> groups = parameter_groups(params, tc.optimizer);
  std::unique_ptr<Optimizer> optimizer = Optimizer::create(tc.optimizer, groups, params.values().numel());
  nn::Context ctx;
  ctx.training = true;
  ctx.rng = Generator(data::mix_seed(o.seed, 0x44524F50ull), 0);  // "DROP"

  const int64_t B = tc.global_batch;
  const int64_t n_train = o.max_train_rows > 0 ? std::min(o.max_train_rows, train.size()) : train.size();
  const int64_t steps_per_epoch = (n_train + B - 1) / B;  // the last partial batch is kept (spec §3.3)
  const int64_t epochs = tc.epochs > 0 ? tc.epochs : (tc.max_steps + steps_per_epoch - 1) / steps_per_epoch;
  const int64_t total_steps = tc.epochs > 0 ? epochs * steps_per_epoch : tc.max_steps;
  const int64_t eval_rows = o.max_eval_rows > 0 ? std::min(o.max_eval_rows, dev.size()) : dev.size();
  FinetuneResult result;
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= epochs && step < total_steps; ++epoch) {
    std::vector<int64_t> order(static_cast<size_t>(n_train));
    for (int64_t i = 0; i < n_train; ++i) order[size_t(i)] = i;
    data::PhiloxRng rng(data::mix_seed(o.seed, uint64_t(epoch), 0x46494E45ull));  // "FINE"
    rng.shuffle(order);
    double loss_sum = 0;
    int64_t loss_steps = 0;
    for (int64_t begin = 0; begin < n_train && step < total_steps; begin += B, ++step) {
      const std::vector<int64_t> idx(order.begin() + begin, order.begin() + std::min(n_train, begin + B));
      params.zero_grad();
      const models::Outputs out = model->forward(make_batch(train, idx, mc, true), ctx);
      model->backward(1.0);
      Tensor grads = params.grads();
      const double norm = tc.clip_grad_norm > 0 ? clip_grad_norm(grads, tc.clip_grad_norm) : global_grad_norm(grads);
      if (!std::isfinite(out.loss) || !std::isfinite(norm)) continue;  // skipped, as in pretraining
      Tensor values = params.values();
      optimizer->step(values, grads, learning_rate_at(tc.schedule, tc.optimizer, step, total_steps));
      loss_sum += out.loss;
      ++loss_steps;
    }
    EpochScore score;
    score.epoch = epoch;
    score.train_loss = loss_steps > 0 ? loss_sum / double(loss_steps) : NAN;
    std::vector<double> dev_pred = predict(*model, dev, eval_rows, 2 * B);
    const TaskMetrics m = metric(dev_pred, dev);
    score.metrics = m.values;
    result.main_metric = m.main;
    const double value = m.values.at(m.main);
    const bool better = result.best_epoch == 0 || value > result.best.at(m.main) ||
                        (std::isnan(result.best.at(m.main)) && !std::isnan(value));
    if (better) {
      result.best_epoch = epoch;
      result.best = m.values;
      result.dev_predictions = eval_rows == dev.size() ? dev_pred : predict(*model, dev, dev.size(), 2 * B);
      result.extra_predictions.clear();
      for (const ClassificationSplit* x : extra) result.extra_predictions.push_back(predict(*model, *x, x->size(), 2 * B));
    }
    if (!o.quiet)
      std::fprintf(stderr, "epoch %lld/%lld: train loss %.4f, dev %s %.4f%s\n", static_cast<long long>(epoch),
                   static_cast<long long>(epochs), score.train_loss, m.main.c_str(), value, better ? " (best)" : "");
    result.epochs.push_back(std::move(score));
  }
  return result;
}

}  // namespace dense::train
