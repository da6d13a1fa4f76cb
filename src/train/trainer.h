#pragma once
// The training loop (docs/model.md §4.5), readable top to bottom in trainer.cpp: for each optimizer step, micro-batches
// forward + backward (gradients averaged over accumulation steps), the learning rate set before the update,
// non-finite steps skipped (and the run stopped after too many in a row, naming the first bad tensor), the
// update, then logging, evaluation and checkpoints when due.
// Its pieces: train_state.h (what a run holds; set-up, resume, checkpoint), train_step.h (one optimizer step),
// run_log.h (train.log, metrics.jsonl, the step line).
//
// A run folder holds config.yaml (the resolved configuration), train.log, metrics.jsonl, tensorboard/ and
// checkpoints/. Resuming from a checkpoint restores weights, optimizer state, step, data cursor and the
// dropout RNG, so a resumed run continues bit for bit as if it had never stopped (f32, CPU).
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "config/train_config.h"

namespace dense::train {

struct TrainOptions {
  std::string resume = "auto";  // auto: the newest valid checkpoint of the run, if any | none | a checkpoint folder
  std::string init_from;  // weights only (checkpoint or run folder, model.safetensors, HF folder); counters from 0
  bool resize_position_embeddings = false;  // init_from: tile/truncate a learned position table of another length
  int64_t stop_after_steps = 0;  // stop (with a checkpoint) after this many steps of this invocation; 0 = none
  bool quiet = false;            // no progress line
  // Start a new run in a run folder that holds a previous run's checkpoints or metrics (implies resume none):
  // they are moved into <run_dir>/previous-<time>/, never deleted. Without it such a start is an error.
  bool overwrite = false;
  // Writes every rank's gradients of the run's first step, after the data-parallel sum and the loss-scale
  // unscale and before clipping, as <dir>/grads-rank<R>.safetensors (f32, parameter names). For comparing a
  // run with another implementation or another world size; not with ZeRO-1 (no rank holds the whole sum).
  std::string dump_gradients_dir;
  // The MFU denominator of the step line and metrics.jsonl, in FLOP/s; 0: the device's datasheet peak
  // (peak_flops_for in run_log.h). dense-train sets it from --peak-flops or DENSE_PEAK_FLOPS.
  double peak_flops = 0;
  // Called on every rank right after a step's update (with the step just reached), before that step's log line,
  // evaluation and checkpoint. dense-train's --kill-at-step uses it to SIGKILL the process there, the crash
  // tests' fault injection.
  std::function<void(int64_t step, int64_t rank)> after_step;
};

struct TrainResult {
  std::string run_dir;
  int64_t start_step = 0;  // the step the run resumed from (0 for a fresh run)
  int64_t steps = 0;       // the step reached
  double last_loss = 0;    // mean training loss of the last logging interval
  double eval_loss = -1;   // the last evaluation (-1: none)
  double eval_accuracy = -1;
  int64_t skipped_steps = 0;    // non-finite steps skipped (f16 loss-scale overflows included)
  double loss_scale = 1.0;      // the f16 loss scale at the end (1 otherwise)
  int64_t rank = 0, world = 1;  // of this process in a data-parallel run
  std::string last_checkpoint;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM (after saving a checkpoint)
};

// Runs training; throws dense::Error on bad configs, data or checkpoints.
TrainResult train(const TrainConfig& config, const TrainOptions& options = {});

// Set by SIGINT/SIGTERM handlers (installed by dense-train): the loop finishes its step, saves and returns.
std::atomic<bool>& stop_requested();

// The run folder of a config (run_dir, or runs/<name>).
std::string run_dir_of(const TrainConfig& config);

}  // namespace dense::train
