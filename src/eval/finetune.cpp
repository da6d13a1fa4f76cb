#include "eval/finetune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "backend/backend.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "data/shard.h"
#include "models/model.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/hf_import.h"
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

// The rows `idx` of a split as model inputs on `device` (labels only for training), cut to trimmed_batch_length
// when `trim`.
models::Batch make_batch(const ClassificationSplit& s, const std::vector<int64_t>& idx, const models::ModelConfig& mc,
                         bool with_labels, bool trim, Device device) {
  const data::ClassificationRows& r = s.rows;
  const int64_t B = int64_t(idx.size()), S = r.seq_len;
  const int64_t N = trim ? trimmed_batch_length(r, idx, mc) : S;
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
      const size_t src = size_t(idx[size_t(b)] * S + k), dst = size_t(b * N + k);
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
  batch.input_ids = Tensor::from_vector(ids, shape, DType::I64, device);
  batch.attention_mask = Tensor::from_vector(mask, shape, DType::F32, device);
  if (use_types) batch.token_type_ids = Tensor::from_vector(types, shape, DType::I64, device);
  if (pairs) {
    batch.input_ids2 = Tensor::from_vector(ids2, shape, DType::I64, device);
    batch.attention_mask2 = Tensor::from_vector(mask2, shape, DType::F32, device);
  }
  if (with_labels) {
    if (s.num_labels == 1) {
      std::vector<float> y(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) y[size_t(b)] = r.float_labels[size_t(idx[size_t(b)])];
      batch.class_labels = Tensor::from_vector(y, {B}, DType::F32, device);
    } else {
      std::vector<int64_t> y(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) y[size_t(b)] = r.labels[size_t(idx[size_t(b)])];
      batch.class_labels = Tensor::from_vector(y, {B}, DType::I64, device);
    }
  } else {
    batch.want_pooled = true;
  }
  return batch;
}

// Class ids (argmax) or regression scores for the first `rows` rows of a split, and their float32 logits
// appended to `logits_out` row-major ([rows, num_labels], for --dump-logits).
std::vector<double> predict(models::Model& model, const ClassificationSplit& s, int64_t rows, int64_t batch_size,
                            bool trim, Device device, std::vector<float>* logits_out = nullptr) {
  nn::Context ctx;
  ctx.training = false;
  std::vector<double> out;
  out.reserve(size_t(rows));
  for (int64_t begin = 0; begin < rows; begin += batch_size) {
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < std::min(rows, begin + batch_size); ++i) idx.push_back(i);
    const models::Outputs o = model.forward(make_batch(s, idx, model.config(), false, trim, device), ctx);
    const Tensor logits = o.class_logits.to(Device::cpu()).to(DType::F32).contiguous();
    const int64_t L = logits.size(1);
    const float* p = logits.data<float>();
    if (logits_out) logits_out->insert(logits_out->end(), p, p + int64_t(idx.size()) * L);
    for (size_t b = 0; b < idx.size(); ++b) {
      const float* row = p + int64_t(b) * L;
      out.push_back(L == 1 ? double(row[0]) : double(std::max_element(row, row + L) - row));
    }
  }
  return out;
}

}  // namespace

int64_t trimmed_batch_length(const data::ClassificationRows& r, const std::vector<int64_t>& idx,
                             const models::ModelConfig& mc) {
  const int64_t N = r.seq_len;
  const bool pooler_reads_pads = mc.model_type == models::ModelType::Danet &&
                                 mc.pooler_function != nn::PoolFunction::First &&
                                 mc.pooler_function != nn::PoolFunction::MaskedMean;
  if (pooler_reads_pads || !mc.attention_pattern.empty() || mc.causal) return N;
  int64_t longest = 1;
  for (const int64_t i : idx)
    for (const auto* mask : {&r.attention_mask, &r.attention_mask2}) {
      if (mask->empty()) continue;
      const int8_t* row = mask->data() + i * N;
      int64_t last = N;
      while (last > longest && row[last - 1] == 0) --last;
      longest = std::max(longest, last);
    }
  const int64_t multiple = mc.local_attention ? std::lcm(int64_t(8), mc.window_size) : 8;
  int64_t cut = (longest + multiple - 1) / multiple * multiple;
  // Local layers of at most one window fall back to the global kernel and its mask scaling (docs/model.md §1.7), which
  // the full length would not: keep at least two windows.
  if (mc.local_attention) cut = std::max(cut, 2 * mc.window_size);
  return std::min(N, cut);
}

std::string save_best_weights(FinetuneResult& result, const std::string& out_dir, uint64_t seed,
                              const std::string& task) {
  DENSE_CHECK(!result.best_weights.empty(), "save_best_weights: the run kept no weights (keep_best_weights was off)");
  const std::string path = fmt::format("{}/seed-{}/model.safetensors", out_dir, seed);
  fs::create_directories(fs::path(path).parent_path());
  write_safetensors(path, result.best_weights, {{"task", task}, {"best_epoch", std::to_string(result.best_epoch)}});
  result.best_weights.clear();
  return path;
}

size_t median_index(const std::vector<double>& values) {
  DENSE_CHECK(!values.empty(), "median of no value");
  std::vector<size_t> order(values.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  return order[(order.size() - 1) / 2];
}

double median_of(const std::vector<double>& values) {
  DENSE_CHECK(!values.empty(), "median of no value");
  std::vector<double> v = values;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

FinetuneResult finetune(const TrainConfig& cfg, const ClassificationSplit& train, const ClassificationSplit& dev,
                        const std::vector<const ClassificationSplit*>& extra, const MetricFn& metric,
                        const FinetuneOptions& o) {
  const TrainingConfig& tc = cfg.training;
  DENSE_CHECK(train.labeled && train.size() > 0, "{}: the training split must be labeled and non-empty", train.path);
  DENSE_CHECK(dev.labeled && dev.size() > 0, "{}: the dev split must be labeled and non-empty", dev.path);
  DENSE_CHECK(train.num_labels == dev.num_labels, "{} has {} labels, {} has {}", train.path, train.num_labels, dev.path,
              dev.num_labels);
  if (tc.threads > 0) set_cpu_threads(tc.threads);
  const Device device = parse_device(tc.device);
  DENSE_CHECK(device.is_cpu() || cuda_available(), "training.device: '{}' asked for, but no CUDA device is available",
              tc.device);
  models::ModelConfig mc = cfg.model;
  mc.num_labels = train.num_labels;
  if (train.rows.seq_len > mc.max_position_embeddings) mc.max_position_embeddings = train.rows.seq_len;
  std::unique_ptr<models::Model> model = models::build_model(mc, DType::F32, device, o.seed);
  nn::ParameterSet& params = model->params();
  if (!o.init_from.empty()) {
    const bool hf = is_hf_checkpoint(o.init_from);  // a Hugging Face BERT folder: src/train/hf_import.h
    const ResolvedCheckpoint ckpt =
        hf ? ResolvedCheckpoint{o.init_from, {}, {}, {}} : resolve_checkpoint(o.init_from, "--init-from");
    for (const auto& w : ckpt.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (!ckpt.chosen.empty() && !o.quiet) std::fprintf(stderr, "init from %s\n", ckpt.chosen.c_str());
    const std::string& file = ckpt.weights;
    HfImport imported = hf ? import_hf_bert(o.init_from, *model) : HfImport{};
    for (const auto& n : imported.notes)
      if (!o.quiet) std::fprintf(stderr, "note: %s\n", n.c_str());
    std::vector<std::pair<std::string, Tensor>> tensors =
        hf ? std::move(imported.tensors) : read_safetensors(file).tensors;
    // Heads that do not fit (another label count, or none in a pretraining checkpoint) keep their init.
    for (const auto& p : params.all()) {
      if (!is_task_head(p.name)) continue;
      auto it = std::find_if(tensors.begin(), tensors.end(), [&](const auto& t) { return t.first == p.name; });
      if (it == tensors.end())
        tensors.emplace_back(p.name, p.value.clone());
      else if (it->second.shape() != p.shape)
        it->second = p.value.clone();
    }
    // Shards longer than the checkpoint's positions (RTE rows past 128) get a tiled table: say so, since it
    // changes what the model sees at every position beyond the trained length.
    load_model_weights(*model, tensors, file, /*resize_positions=*/true,
                       [&](const std::string& name, int64_t old_rows, int64_t new_rows) {
                         std::fprintf(stderr, "warning: %s\n",
                                      position_resize_note(file, name, old_rows, new_rows).c_str());
                       });
  }
  if (tc.zero_init_pooler) {
    // The pooled vector starts at act(0) for every row; the classifier's gradient then trains the pooler from
    // zero, instead of from a pretraining checkpoint's pooler (or a random one) made for another objective.
    nn::Parameter* pooler_weight = params.find("pooler.dense.weight");
    DENSE_CHECK(pooler_weight != nullptr,
                "training.zero_init_pooler: the model has no pooler dense layer to zero (model.pooler_no_dense is "
                "set); remove the key or the flag");
    pooler_weight->value.zero_();
  }
  const std::vector<ParamRange> groups = parameter_groups(params, tc.optimizer);
  std::unique_ptr<Optimizer> optimizer = Optimizer::create(tc.optimizer, groups, params.values().numel(), device);
  nn::Context ctx;
  ctx.training = true;
  ctx.rng = Generator(data::mix_seed(o.seed, 0x44524F50ull), 0);  // "DROP"

  const int64_t B = tc.global_batch;
  DENSE_CHECK(B >= 1, "training.global_batch: {} must be at least 1", B);
  DENSE_CHECK(tc.micro_batch >= 0, "training.micro_batch: {} must be >= 0 (0: the global batch)", tc.micro_batch);
  const int64_t micro = tc.micro_batch > 0 ? std::min(tc.micro_batch, B) : B;  // rows per forward/backward
  const int64_t n_train = o.max_train_rows > 0 ? std::min(o.max_train_rows, train.size()) : train.size();
  const int64_t steps_per_epoch = (n_train + B - 1) / B;  // the last partial batch is kept (docs/model.md §3.3)
  const int64_t epochs = tc.epochs > 0 ? tc.epochs : (tc.max_steps + steps_per_epoch - 1) / steps_per_epoch;
  const int64_t total_steps = tc.epochs > 0 ? epochs * steps_per_epoch : tc.max_steps;
  const int64_t eval_rows = o.max_eval_rows > 0 ? std::min(o.max_eval_rows, dev.size()) : dev.size();
  FinetuneResult result;
  result.parameters = params.values().numel();
  using Clock = std::chrono::steady_clock;
  // In-epoch progress for long epochs (LRA: hundreds of steps), about ten lines per epoch.
  const int64_t progress_every = steps_per_epoch >= 50 ? steps_per_epoch / 10 : 0;
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= epochs && step < total_steps; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    std::vector<int64_t> order(static_cast<size_t>(n_train));
    for (int64_t i = 0; i < n_train; ++i) order[size_t(i)] = i;
    data::PhiloxRng rng(data::mix_seed(o.seed, uint64_t(epoch), 0x46494E45ull));  // "FINE"
    rng.shuffle(order);
    double loss_sum = 0;
    int64_t loss_steps = 0;
    for (int64_t begin = 0; begin < n_train && step < total_steps; begin += B, ++step) {
      const int64_t end = std::min(n_train, begin + B);
      params.zero_grad();
      // Micro-batches of at most `micro` rows, each weighted by its share of the step's rows, so that the
      // gradient is the mean over the whole batch for any micro_batch.
      double loss = 0;
      for (int64_t mb = begin; mb < end; mb += micro) {
        const std::vector<int64_t> idx(order.begin() + mb, order.begin() + std::min(end, mb + micro));
        const double weight = double(idx.size()) / double(end - begin);
        loss += weight * model->forward(make_batch(train, idx, mc, true, o.trim_padding, device), ctx).loss;
        model->backward(weight);
      }
      Tensor grads = params.grads();
      const double norm = tc.clip_grad_norm > 0 ? clip_grad_norm(grads, tc.clip_grad_norm) : global_grad_norm(grads);
      if (!std::isfinite(loss) || !std::isfinite(norm)) continue;  // skipped, as in pretraining
      Tensor values = params.values();
      optimizer->step(values, grads, learning_rate_at(tc.schedule, tc.optimizer, step, total_steps));
      loss_sum += loss;
      ++loss_steps;
      const int64_t in_epoch = begin / B + 1;
      if (!o.quiet && progress_every > 0 && in_epoch % progress_every == 0 && in_epoch < steps_per_epoch) {
        const double s = std::chrono::duration<double>(Clock::now() - epoch_start).count();
        std::fprintf(stderr, "  epoch %lld step %lld/%lld: train loss %.4f, %.1f rows/s\n",
                     static_cast<long long>(epoch), static_cast<long long>(in_epoch),
                     static_cast<long long>(steps_per_epoch), loss_sum / double(loss_steps),
                     double(std::min(n_train, begin + B)) / s);
      }
    }
    EpochScore score;
    score.epoch = epoch;
    score.train_loss = loss_steps > 0 ? loss_sum / double(loss_steps) : NAN;
    std::vector<float> dev_logits;
    std::vector<double> dev_pred = predict(*model, dev, eval_rows, 2 * micro, o.trim_padding, device, &dev_logits);
    const TaskMetrics m = metric(dev_pred, dev);
    score.metrics = m.values;
    result.main_metric = m.main;
    const double value = m.values.at(m.main);
    const bool better = result.best_epoch == 0 || value > result.best.at(m.main) ||
                        (std::isnan(result.best.at(m.main)) && !std::isnan(value));
    if (better) {
      result.best_epoch = epoch;
      result.best = m.values;
      result.dev_logits.clear();
      if (eval_rows == dev.size()) {
        result.dev_predictions = dev_pred;
        result.dev_logits = std::move(dev_logits);
      } else {
        result.dev_predictions =
            predict(*model, dev, dev.size(), 2 * micro, o.trim_padding, device, &result.dev_logits);
      }
      result.extra_predictions.clear();
      result.extra_logits.assign(extra.size(), {});
      for (size_t i = 0; i < extra.size(); ++i)
        result.extra_predictions.push_back(
            predict(*model, *extra[i], extra[i]->size(), 2 * micro, o.trim_padding, device, &result.extra_logits[i]));
      if (o.keep_best_weights) {
        result.best_weights.clear();
        for (const auto& p : params.all())  // host copies: the next epoch updates the live weights
          result.best_weights.emplace_back(p.name,
                                           p.value.device().is_cpu() ? p.value.clone() : p.value.to(Device::cpu()));
      }
    }
    score.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    if (!o.quiet)
      std::fprintf(stderr, "epoch %lld/%lld: train loss %.4f, dev %s %.4f%s (%.0f s)\n", static_cast<long long>(epoch),
                   static_cast<long long>(epochs), score.train_loss, m.main.c_str(), value, better ? " (best)" : "",
                   score.seconds);
    result.epochs.push_back(std::move(score));
  }
  return result;
}

}  // namespace dense::train
