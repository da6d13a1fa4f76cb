#pragma once
// Data-parallel gradient sums. The f32 gradient arena is cut into buckets of whole encoder layers (about
// parallel.bucket_mb each, upper layers first, the order backward produces them) plus the rest (embeddings,
// heads, norms). Armed on a model, a bucket's all-reduce starts from the model's layer hook as soon as its
// lowest layer is done, and runs while the layers below compute; finish() starts the rest and waits for all.
// The sums are in place, so afterwards every rank holds the same gradients.
#include <cstdint>
#include <memory>
#include <vector>

#include "models/model.h"
#include "nn/parameter.h"
#include "parallel/communicator.h"

namespace dense::train {

class GradientSync {
 public:
  GradientSync(parallel::Communicator& comm, nn::ParameterSet& params, int64_t num_layers, double bucket_mb);
  ~GradientSync();

  // The next backward of `model` (whose gradients are `params`' arena) starts the layer buckets itself.
  void arm(models::Model& model);
  // Starts every bucket not yet started, waits for all, and disarms the model. Call after the last backward.
  void finish();
  int64_t bucket_count() const { return int64_t(buckets_.size()); }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;  // arena range
    int64_t fire_layer = -1;     // started when this layer's backward is done; -1: by finish()
  };
  void start(size_t bucket);

  parallel::Communicator& comm_;
  nn::ParameterSet& params_;
  std::vector<Bucket> buckets_;
  std::vector<std::unique_ptr<parallel::Request>> in_flight_;
  std::vector<bool> started_;
  models::Model* armed_ = nullptr;
};

}  // namespace dense::train
