#include "train/zero_optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dense::train {

ZeroOptimizer::ZeroOptimizer(parallel::Communicator& comm, const OptimizerConfig& config,
                             const std::vector<ParamRange>& ranges, int64_t numel, Device device)
    : comm_(comm), numel_(numel), device_(device) {
  DENSE_CHECK(config.type == "adamw",
              "parallel.zero1: needs training.optimizer.type adamw (LAMB's trust ratio "
              "needs whole parameters on one rank), got '{}'",
              config.type);
  const int64_t world = comm.size();
  slice_ = (numel + world - 1) / world;
  padded_ = slice_ * world;
  begin_ = slice_ * comm.rank();
  // The parameter ranges cut to this rank's slice, in slice coordinates.
  std::vector<ParamRange> mine;
  for (const ParamRange& r : ranges) {
    const int64_t b = std::max(r.offset, begin_), e = std::min(r.offset + r.numel, begin_ + slice_);
    if (e > b) mine.push_back({r.name, b - begin_, e - b, r.decay});
  }
  optimizer_ = Optimizer::create(config, std::move(mine), slice_, device);
  padded_grads_ = Tensor::zeros({padded_}, DType::F32, device);
  padded_values_ = Tensor::zeros({padded_}, DType::F32, device);
  shard_grads_ = Tensor::zeros({slice_}, DType::F32, device);
}

void ZeroOptimizer::reduce_gradients(const Tensor& grads) {
  DENSE_CHECK(grads.numel() == numel_ && grads.dtype() == DType::F32,
              "zero1: gradients {} for an arena of {} f32 elements", grads.str(), numel_);
  Tensor head = padded_grads_.slice(0, 0, numel_);
  head.copy_(grads.view({numel_}));
  comm_.reduce_scatter(padded_grads_, shard_grads_, parallel::ReduceOp::Sum);
}

double ZeroOptimizer::global_norm() {
  const double local = global_grad_norm(shard_grads_);
  std::vector<double> ss = {local * local};
  comm_.all_reduce(ss);
  return std::sqrt(ss[0]);
}

void ZeroOptimizer::step(Tensor& values, double lr) {
  DENSE_CHECK(values.numel() == numel_ && values.dtype() == DType::F32,
              "zero1: values {} for an arena of {} f32 elements", values.str(), numel_);
  // Only this rank's slice is updated here; the all-gather brings every other slice.
  const int64_t own_end = std::min(begin_ + slice_, numel_);
  if (own_end > begin_) {
    Tensor own = padded_values_.slice(0, begin_, own_end);
    own.copy_(values.view({numel_}).slice(0, begin_, own_end));
  }
  Tensor mine = padded_values_.slice(0, begin_, begin_ + slice_);
  optimizer_->step(mine, shard_grads_, lr);
  comm_.all_gather(mine, padded_values_);
  values.view({numel_}).copy_(padded_values_.slice(0, 0, numel_));
}

std::vector<std::pair<std::string, Tensor>> ZeroOptimizer::gather_state() {
  std::vector<std::pair<std::string, Tensor>> full;
  for (auto& [name, part] : optimizer_->state()) {
    Tensor gathered = Tensor::empty({padded_}, DType::F32, device_);
    comm_.all_gather(part.to(DType::F32).contiguous(), gathered);
    full.emplace_back(name, gathered.slice(0, 0, numel_).contiguous().to(Device::cpu()));
  }
  return full;
}

void ZeroOptimizer::load_state(const std::vector<std::pair<std::string, Tensor>>& full, int64_t steps) {
  // Rank 0 checks what it read, and every rank stops with its message rather than wait in a broadcast.
  std::vector<std::pair<std::string, Tensor>> expected = optimizer_->state();
  std::vector<const Tensor*> sources(expected.size(), nullptr);
  std::string problem;
  if (comm_.rank() == 0) {
    for (size_t i = 0; i < expected.size() && problem.empty(); ++i) {
      for (const auto& [n, t] : full)
        if (n == expected[i].first) sources[i] = &t;
      if (!sources[i])
        problem = fmt::format("optimizer state: no tensor '{}'", expected[i].first);
      else if (sources[i]->numel() != numel_)
        problem = fmt::format("optimizer state: '{}' has {} elements, the arena {}", expected[i].first,
                              sources[i]->numel(), numel_);
    }
  }
  comm_.broadcast(problem);
  DENSE_CHECK(problem.empty(), "{}", problem);
  std::vector<std::pair<std::string, Tensor>> parts;
  for (size_t i = 0; i < expected.size(); ++i) {
    Tensor whole = Tensor::zeros({padded_}, DType::F32, device_);
    if (comm_.rank() == 0) whole.slice(0, 0, numel_).copy_(sources[i]->view({numel_}));
    comm_.broadcast(whole);
    parts.emplace_back(expected[i].first, whole.slice(0, begin_, begin_ + slice_).contiguous());
  }
  optimizer_->load_state(parts, steps);
}

}  // namespace dense::train
