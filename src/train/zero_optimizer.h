#pragma once
// ZeRO stage 1 (Rajbhandari et al., 2020): the optimizer moments are split over the ranks. Rank r owns one
// contiguous 1/world of the (padded) parameter arena: gradients are summed with a reduce-scatter so that each
// rank receives only its slice, each rank updates its slice of the master weights, and an all-gather gives
// every rank the whole updated arena. The moments take 1/world of the memory; the arithmetic per element is
// AdamW's, so the weights are those of plain data parallelism. AdamW only: LAMB's trust ratio needs whole
// parameters.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "parallel/communicator.h"
#include "train/optimizer.h"

namespace dense::train {

class ZeroOptimizer {
 public:
  // The slices and moments live on `device`, the arena's (device tensors need the nccl engine).
  ZeroOptimizer(parallel::Communicator& comm, const OptimizerConfig& config, const std::vector<ParamRange>& ranges,
                int64_t numel, Device device = Device::cpu());

  // Collective. Sums every rank's full gradient arena (f32, [numel]) into this rank's slice.
  void reduce_gradients(const Tensor& grads);
  Tensor& slice_gradients() { return shard_grads_; }
  // Collective. L2 norm of the summed gradients (all slices).
  double global_norm();
  // Collective. Updates this rank's slice of `values` (the full f32 arena, the same on every rank) from the
  // slice gradients, then gathers every slice into `values`.
  void step(Tensor& values, double lr);
  int64_t steps() const { return optimizer_->steps(); }

  // Collective. The full moments ({"exp_avg", [numel]}, ...) in host memory, valid on every rank, for a
  // checkpoint.
  std::vector<std::pair<std::string, Tensor>> gather_state();
  // Collective. `full` holds the full moments on rank 0 (ignored elsewhere); each rank keeps its slice.
  void load_state(const std::vector<std::pair<std::string, Tensor>>& full, int64_t steps);

  int64_t slice_begin() const { return begin_; }
  int64_t slice_size() const { return slice_; }

 private:
  parallel::Communicator& comm_;
  int64_t numel_ = 0, padded_ = 0, slice_ = 0, begin_ = 0;
  Device device_;
  std::unique_ptr<Optimizer> optimizer_;  // over [begin_, begin_ + slice_) of the padded arena
  Tensor padded_grads_;                   // [padded_] staging for the reduce-scatter
  Tensor padded_values_;                  // [padded_] staging for the all-gather
  Tensor shard_grads_;                    // [slice_]
};

}  // namespace dense::train
