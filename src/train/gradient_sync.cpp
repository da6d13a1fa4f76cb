#include "train/gradient_sync.h"

#include <algorithm>
#include <string>

#include "backend/ops.h"
#include "core/error.h"

namespace dense::train {

GradientSync::GradientSync(parallel::Communicator& comm, nn::ParameterSet& params, int64_t num_layers, double bucket_mb)
    : comm_(comm), params_(params) {
  const int64_t numel = params.grads().numel();
  DENSE_CHECK(params.grads().dtype() == DType::F32, "gradient sync: the gradient arena is {}, expected f32",
              dtype_name(params.grads().dtype()));
  // Each layer's span of the arena (its parameters are declared together, so the span holds only them and
  // alignment padding).
  std::vector<std::pair<int64_t, int64_t>> layer(size_t(num_layers), {numel, 0});
  for (const auto& p : params.all()) {
    for (int64_t l = 0; l < num_layers; ++l) {
      if (!p.name.starts_with("encoder.layer." + std::to_string(l) + ".")) continue;
      auto& [b, e] = layer[size_t(l)];
      b = std::min(b, p.arena_offset);
      e = std::max(e, p.arena_offset + shape_numel(p.shape));
    }
  }
  const int64_t bucket_elems = std::max<int64_t>(1, int64_t(bucket_mb * 1024 * 1024 / 4));
  std::vector<std::pair<int64_t, int64_t>> covered;
  Bucket current;
  for (int64_t l = num_layers - 1; l >= 0; --l) {
    const auto [b, e] = layer[size_t(l)];
    if (e <= b) continue;  // a layer without parameters
    // Layers are declared in order, so a run of them spans [lowest begin, highest end) with only their
    // parameters and padding inside (checked below).
    if (current.fire_layer < 0) current.end = e;
    current.begin = std::min(current.fire_layer < 0 ? b : current.begin, b);
    current.fire_layer = l;
    if (current.end - current.begin >= bucket_elems) {
      buckets_.push_back(current);
      current = {};
    }
  }
  if (current.fire_layer >= 0) buckets_.push_back(current);
  for (const auto& bucket : buckets_) covered.emplace_back(bucket.begin, bucket.end);
  for (const auto& p : params.all()) {
    if (p.name.starts_with("encoder.layer.")) continue;
    const int64_t b = p.arena_offset, e = b + shape_numel(p.shape);
    for (const auto& [cb, ce] : covered)
      DENSE_CHECK(e <= cb || b >= ce, "gradient sync: parameter '{}' lies inside the span of the encoder layers",
                  p.name);
  }
  // Everything else in one or more trailing buckets, started by finish().
  std::sort(covered.begin(), covered.end());
  int64_t at = 0;
  auto gap = [&](int64_t b, int64_t e) {
    for (int64_t s = b; s < e; s += bucket_elems) buckets_.push_back({s, std::min(e, s + bucket_elems), -1});
  };
  for (const auto& [b, e] : covered) {
    if (b > at) gap(at, b);
    at = std::max(at, e);
  }
  if (at < numel) gap(at, numel);
  started_.assign(buckets_.size(), false);
}

GradientSync::~GradientSync() {
  if (armed_) armed_->set_layer_backward_hook({});
  // Requests wait in their destructors: nothing is left reading the arena.
}

void GradientSync::arm(models::Model& model, Tensor* half_grads, bool first) {
  if (half_grads)
    DENSE_CHECK(half_grads->numel() == params_.grads().numel(),
                "gradient sync: the half gradient arena has {} elements, the f32 arena {}", half_grads->numel(),
                params_.grads().numel());
  armed_ = &model;
  half_grads_ = half_grads;
  first_ = first;
  model.set_layer_backward_hook([this](int64_t layer) {
    for (size_t i = 0; i < buckets_.size(); ++i)
      if (buckets_[i].fire_layer == layer && !started_[i]) start(i);
    // MPI moves non-blocking collectives forward only inside MPI calls.
    for (auto& r : in_flight_) r->test();
  });
}

void GradientSync::start(size_t i) {
  Tensor range = params_.grads().slice(0, buckets_[i].begin, buckets_[i].end);
  if (half_grads_) {
    Tensor half = half_grads_->slice(0, buckets_[i].begin, buckets_[i].end);
    ops::accumulate(half.to(DType::F32), first_ ? 0.0 : 1.0, range);
    half.zero_();
  }
  in_flight_.push_back(comm_.all_reduce_async(range, parallel::ReduceOp::Sum));
  started_[i] = true;
}

void GradientSync::finish() {
  if (armed_) {
    armed_->set_layer_backward_hook({});
    armed_ = nullptr;
  }
  for (size_t i = 0; i < buckets_.size(); ++i)
    if (!started_[i]) start(i);
  for (auto& r : in_flight_) r->wait();
  in_flight_.clear();
  half_grads_ = nullptr;
  started_.assign(buckets_.size(), false);
}

}  // namespace dense::train
