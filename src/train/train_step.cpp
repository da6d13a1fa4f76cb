#include "train/train_step.h"

#include <cmath>

#include "backend/ops.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "train/evaluate.h"
#include "train/schedule.h"

namespace dense::train {

namespace {

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

// Forward and backward of every micro-batch into the f32 gradient arena; returns the global batch's mean loss
// on this rank's rows (the caller sums it over ranks).
double forward_backward(TrainState& st, const TrainConfig& cfg, std::vector<HostBatch>& micro_batches,
                        double global_masked, double loss_scale, StepFigures& fig) {
  nn::ParameterSet& params = st.params();
  double loss = 0;
  for (int64_t a = 0; a < st.accum; ++a) {
    const HostBatch h = std::move(micro_batches[size_t(a)]);
    const double weight = global_masked > 0 ? double(h.masked) / global_masked : 0.0;
    // The last micro-batch's backward starts the layer buckets itself; under bf16 / f16 each bucket first
    // folds its half gradients into the f32 arena.
    const bool sync_in_backward = st.gradient_sync && a == st.accum - 1;
    if (sync_in_backward) st.gradient_sync->arm(*st.compute, st.half ? &st.half->params().grads() : nullptr, a == 0);
    const models::Outputs out = st.compute->forward(to_model_batch(h, cfg.model, st.device), st.ctx);
    st.compute->backward(loss_scale * weight);
    if (st.half && !sync_in_backward) {
      // Summed in f32 (docs/model.md §4.3: f32 gradient accumulation), then the half gradients start again at zero.
      ops::accumulate(st.half->params().grads().to(DType::F32), a == 0 ? 0.0 : 1.0, params.grads());
      st.half->params().zero_grad();
    }
    if (h.masked > 0) loss += out.loss * weight;
    fig.tokens += h.batch * h.seq_len * st.world;
    fig.epoch = h.epoch;
  }
  return loss;
}

}  // namespace

int64_t next_micro_batches(ShardLoader& loader, std::vector<HostBatch>& micro_batches) {
  int64_t masked = 0;
  for (auto& mb : micro_batches) {
    DENSE_CHECK(loader.next(mb), "the training data ended (the loader loops over epochs; this is a bug)");
    masked += mb.masked;
  }
  return masked;
}

StepFigures run_step(TrainState& st, const TrainConfig& cfg, std::vector<HostBatch>& micro_batches,
                     int64_t local_masked, int64_t seq_len, const std::string& dump_gradients_dir,
                     spdlog::logger& log) {
  const TrainingConfig& tc = cfg.training;
  nn::ParameterSet& params = st.params();
  StepFigures fig;
  params.zero_grad();
  // The loss is the mean over every masked token of the global batch (all ranks, all micro-batches), so
  // any split of one global batch over ranks and micro-batches gives the same gradients: each micro-batch's
  // mean-loss gradient is weighted by its share of the global masked count.
  std::vector<double> global_counts = {double(local_masked)};
  st.comm->all_reduce(global_counts);
  const double loss_scale = st.scaler->scale();
  fig.loss = forward_backward(st, cfg, micro_batches, global_counts[0], loss_scale, fig);
  if (st.world > 1) {
    if (st.gradient_sync) st.gradient_sync->finish();
    std::vector<double> l = {fig.loss};
    st.comm->all_reduce(l);
    fig.loss = l[0];
  }
  st.tokens_seen += tc.global_batch * seq_len;
  fig.lr = learning_rate_at(tc.schedule, tc.optimizer, st.step, tc.max_steps);
  Tensor grads = params.grads();
  if (st.zero) st.zero->reduce_gradients(grads);
  // What the update reads: the whole arena, or under ZeRO-1 this rank's slice of the sums.
  Tensor& update_grads = st.zero ? st.zero->slice_gradients() : grads;
  if (loss_scale != 1.0) scale_gradients(update_grads, 1.0 / loss_scale);
  if (!dump_gradients_dir.empty()) {
    std::vector<std::pair<std::string, Tensor>> named;
    for (const auto& p : params.all()) named.emplace_back(p.name, p.grad.to(Device::cpu()).contiguous());
    write_safetensors(fmt::format("{}/grads-rank{}.safetensors", dump_gradients_dir, st.rank), named, {});
  }
  fig.grad_norm = st.zero ? st.zero->global_norm() : global_grad_norm(grads);
  const bool finite = std::isfinite(fig.loss) && std::isfinite(fig.grad_norm);
  // Under f16 a non-finite gradient first means the scale is too large: halve it and retry, without counting
  // towards divergence, until the scale reaches its minimum.
  const bool scale_overflow = !finite && st.scaler->enabled() && std::isfinite(fig.loss) && !st.scaler->at_minimum();
  st.scaler->update(!finite);
  if (scale_overflow) {
    ++st.skipped;
    log.info("step {}: gradient overflow at loss scale {}; update skipped, scale now {}", st.step, loss_scale,
             st.scaler->scale());
  } else if (!finite) {
    ++st.skipped;
    ++st.nonfinite_run;
    log.warn("step {}: non-finite loss {} or gradient norm {}; update skipped ({} in a row)", st.step, fig.loss,
             fig.grad_norm, st.nonfinite_run);
    DENSE_CHECK(st.nonfinite_run < tc.max_nonfinite_steps,
                "step {}: {} non-finite steps in a row (training.max_nonfinite_steps); first non-finite gradient: {}",
                st.step, st.nonfinite_run, first_nonfinite_gradient(*st.model));
  } else {
    st.nonfinite_run = 0;
    if (tc.clip_grad_norm > 0) {
      // torch.nn.utils.clip_grad_norm_'s coefficient, from the norm of all slices.
      const double coef = tc.clip_grad_norm / (fig.grad_norm + 1e-6);
      if (coef < 1.0) scale_gradients(update_grads, coef);
    }
    Tensor values = params.values();
    if (st.zero)
      st.zero->step(values, fig.lr);
    else
      st.optimizer->step(values, grads, fig.lr);
    if (st.half) st.half->params().values().copy_(values);
    fig.applied = true;
  }
  ++st.step;
  return fig;
}

}  // namespace dense::train
