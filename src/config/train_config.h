#pragma once
// The typed training configuration (docs/config.md): sections model, data, training (with optimizer and
// schedule), checkpoint, logging, parallel. Loaded from YAML (train_config_yaml.h); every field has a type,
// a default and a documented meaning; unknown keys and wrong types are errors naming the full key path.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "models/model_config.h"

namespace dense::train {

struct DataConfig {
  std::string train;            // shard folder (every *.hdf5 in it) or one shard file
  std::string validation;       // the same for validation; empty: no evaluation
  std::string format = "auto";  // auto (from the shards' attribute) | packed | bert
  std::string vocab;            // vocab.txt; when set, the shards' vocab_hash must be its sha256
  int64_t seq_len = 0;          // 0: the shards' length; otherwise they must have it
  // Load-time masking of packed rows (docs/model.md §3.2): rho, p_mask, p_random (<0: (1-p_mask)/2).
  double mlm_probability = 0.15;
  double mask_token_prob = 0.8;
  double random_token_prob = -1;
  bool mask_special_tokens = true;    // the reference masks [CLS]/[SEP] too
  bool shuffle = true;                // shard order and sample order per epoch from the seed
  int64_t prefetch_batches = 2;       // batches prepared ahead by the loader thread
  int64_t mix_shards = 8;             // shards read and drawn from together: batches mix corpora (a shuffle buffer)
  std::string on_bad_shard = "fail";  // a shard failing its checksum mid-run: fail (checkpoint, exit) | skip
};

struct OptimizerConfig {
  std::string type = "adamw";   // adamw | lamb
  double learning_rate = 1e-4;  // peak learning rate
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;                 // the paper's runs use 1e-16
  double weight_decay = 0.0;         // decoupled
  bool no_decay_embeddings = false;  // embeddings (the tied word table included) in the no-decay group
  bool no_decay_pooler = false;      // pooler parameters in the no-decay group
};

struct ScheduleConfig {
  // cyclic_poly: the reference's "cosine" (docs/model.md §4.2): x = (t mod C)/C; warmup (x/w)^warmup_degree, then
  //   (1 - (x-w)/(1-w))^degree; lr = learning_rate * f + lr_offset. constant: learning_rate + lr_offset.
  // linear: warmup then linear decay to lr_offset at max_steps. cosine: warmup then half-cosine to lr_offset.
  std::string type = "cyclic_poly";
  int64_t cycle_steps = 0;    // C; 0 = training.max_steps
  double warmup_ratio = 0.0;  // fraction of the cycle (cyclic_poly) or of max_steps (linear, cosine)
  double warmup_degree = 1.0;
  double degree = 1.0;
  double lr_offset = 0.0;
};

struct TrainingConfig {
  int64_t max_steps = 1000;  // optimizer steps
  int64_t epochs = 0;        // dense-eval fine-tuning: passes over the training split (0: max_steps decides)
  bool zero_init_pooler =
      false;  // dense-eval fine-tuning: zero the pooler's dense weight after loading (docs/model.md §1.11)
  int64_t global_batch = 32;      // sequences per optimizer step (all ranks, all accumulation steps)
  int64_t micro_batch = 0;        // sequences per forward/backward per rank; 0 = global_batch / world size
  std::string precision = "f32";  // f32 | bf16 (f32 master weights) | f16 (dynamic loss scaling)
  double loss_scale_init = 65536.0;
  int64_t loss_scale_window = 20;
  int64_t loss_scale_hysteresis = 2;
  double loss_scale_min = 1.0;
  int64_t max_nonfinite_steps = 10;  // abort after this many skipped (non-finite) steps in a row
  double clip_grad_norm = 0.0;       // global L2 norm clip; 0 = none (the reference does not clip)
  uint64_t seed = 42;
  std::string device = "cpu";  // cpu | cuda | cuda:N
  int threads = 0;             // CPU threads; 0 = DENSE_NUM_THREADS or all cores
  bool recompute = false;      // activation checkpointing per layer
  int64_t eval_every = 0;      // steps between validation runs; 0 = only at the end
  int64_t eval_batches = 0;    // validation batches per run; 0 = the whole validation set
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
};

struct CheckpointConfig {
  std::string dir;             // empty: <run_dir>/checkpoints
  int64_t every_steps = 1000;  // 0: only at the end
  int64_t keep_last = 3;       // newest checkpoints kept (0 = all)
  int64_t keep_every = 0;      // also keep every checkpoint whose step is a multiple of this (0 = none)
};

struct LoggingConfig {
  int64_t every_steps = 10;    // metrics.jsonl / progress line interval
  bool tensorboard = true;     // event files under <run_dir>/tensorboard
  bool progress = true;        // a live progress line on stderr
  std::string level = "info";  // trace | debug | info | warn | error
};

struct ParallelConfig {
  std::string backend = "auto";  // auto | none | mpi | nccl
  double bucket_mb = 25.0;       // gradient all-reduce bucket size
  bool zero1 = false;            // shard the optimizer moments over the ranks (ZeRO stage 1)
};

struct TrainConfig {
  std::string name = "run";
  std::string run_dir;  // empty: runs/<name>
  models::ModelConfig model;
  DataConfig data;
  TrainingConfig training;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
  ParallelConfig parallel;
};

}  // namespace dense::train
