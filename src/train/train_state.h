#pragma once
// What one training run holds between its steps (the ranks, the f32 master model and its bf16 / f16 compute
// copy, the optimizer, the counters a checkpoint saves), how it is set up, resumed and saved. The loop that
// uses it is train() in trainer.cpp.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "models/model.h"
#include "nn/context.h"
#include "parallel/communicator.h"
#include "train/data_loader.h"
#include "train/gradient_sync.h"
#include "train/loss_scaler.h"
#include "train/optimizer.h"
#include "train/run_folder.h"
#include "train/trainer.h"
#include "train/zero_optimizer.h"

namespace dense::train {

// Where the run writes, and whether it starts afresh (--resume none, or --overwrite) or may continue.
struct RunFolder {
  std::string run_dir, ckpt_dir;
  std::string ckpt_key;  // the config key or flag that set ckpt_dir, for messages
  bool fresh = false;
  std::vector<std::unique_ptr<FolderLock>> locks;  // rank 0's, held until train() returns
  std::vector<std::string> moved_aside;            // --overwrite: where the previous run's files went
};

// Members are destroyed in reverse order: the communicator outlives everything that talks over it.
struct TrainState {
  // ---- ranks and machine ----
  std::unique_ptr<parallel::Communicator> comm;
  int64_t rank = 0, world = 1;
  bool root = true;
  Device device;
  DType compute_dtype = DType::F32;
  int64_t micro = 1, accum = 1;  // rows per micro-batch; micro-batches per rank and step

  // ---- model and optimizer ----
  // The f32 model holds the master weights and gradients: the optimizer updates it and checkpoints save it.
  // Under bf16 / f16 (docs/model.md §4.3) `half` runs forward and backward; its gradients are summed into the
  // f32 ones after every micro-batch, and its weights are the master's, rounded, after every update.
  std::unique_ptr<models::Model> model, half;
  models::Model* compute = nullptr;  // half, or model
  std::unique_ptr<LossScaler> scaler;
  std::unique_ptr<Optimizer> optimizer;  // every rank holds all moments, or, under ZeRO-1, `zero` 1/world of them
  std::unique_ptr<ZeroOptimizer> zero;
  std::unique_ptr<GradientSync> gradient_sync;  // several ranks without ZeRO-1
  nn::Context ctx;
  uint64_t dropout_seed = 0;

  // ---- what a checkpoint saves ----
  int64_t step = 0, skipped = 0, tokens_seen = 0;
  int64_t nonfinite_run = 0;  // non-finite steps in a row (not saved: a resumed run starts counting afresh)
  Cursor cursor;              // where the data stream continues after `step`
  std::string config_hash;
  std::string resumed_from;  // the checkpoint folder, or "" for a new run

  nn::ParameterSet& params() { return model->params(); }
  bool zero1() const { return zero != nullptr; }
};

// The communicator (world size 1 without mpirun), the device each rank trains on, and the batch split.
void join_ranks(TrainState& st, const TrainConfig& cfg);
void choose_device(TrainState& st, const TrainConfig& cfg);

// The f32 master model, its compute copy, the loss scaler and the optimizer, drawn from training.seed.
void build_model(TrainState& st, const TrainConfig& cfg);

// Continues from a checkpoint (--resume: the newest valid one, or the one named) or starts at step 0, from the
// seed or from --init-from weights. Rank 0 reads; every rank receives (no shared filesystem needed), so that
// every rank holds the same weights, optimizer state and counters.
void resume_or_init(TrainState& st, const TrainConfig& cfg, const TrainOptions& opts, const RunFolder& folder,
                    spdlog::logger& log);

// Saves step st.step with the data cursor `next` (collective under ZeRO-1; rank 0 writes) and prunes old
// checkpoints. Returns the folder written, "" on the other ranks.
std::string save_run_checkpoint(TrainState& st, const TrainConfig& cfg, const RunFolder& folder, const Cursor& next,
                                spdlog::logger& log);

}  // namespace dense::train
