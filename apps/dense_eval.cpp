// dense-eval: scores a trained encoder. `mlm`: MLM loss and accuracy on held-out shards at any length
// (src/train/mlm_evaluation.cpp). GLUE and LRA fine-tuning arrive with issue #8.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "data/progress.h"
#include "parallel/communicator.h"
#include "train/mlm_evaluation.h"

int main(int argc, char** argv) {
  CLI::App app{"dense-eval: evaluate DenseAttention (DANet) and BERT encoders (densetrain)"};
  app.set_version_flag("--version", "dense-eval 0.1.0");
  app.require_subcommand(1);
  dense::train::MlmEvalRequest mlm;
  std::string json_out;
  CLI::App* m = app.add_subcommand("mlm", "MLM loss and accuracy of a checkpoint on held-out shards, at their length");
  m->add_option("--checkpoint", mlm.checkpoint, "a checkpoint folder (runs/x/checkpoints/step-N) or model.safetensors")
      ->required();
  m->add_option("--data", mlm.data, "a shard file or folder (dense-prep pretrain --format packed|bert)")->required();
  m->add_option("--config", mlm.config, "the model's YAML config (default: the run's config.yaml)");
  m->add_option("--set", mlm.overrides, "override a config key (repeatable), e.g. --set training.threads=2");
  m->add_option("--batch", mlm.batch, "rows per batch (default: the config's micro batch)");
  m->add_option("--max-batches", mlm.max_batches, "stop after this many batches (default: every row)");
  m->add_option("--json", json_out, "also write the result as JSON to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    const dense::train::MlmEvalReport r = dense::train::run_mlm_evaluation(mlm);
    if (r.rank != 0) return 0;
    const auto& e = r.result;
    std::printf("dense-eval mlm: loss %.4f, accuracy %.4f over %s masked tokens in %s rows of %lld tokens\n", e.loss,
                e.accuracy, dense::data::with_thousands(e.tokens).c_str(), dense::data::with_thousands(e.rows).c_str(),
                static_cast<long long>(r.seq_len));
    std::printf("  weights: %s\n  config:  %s%s\n", r.weights.c_str(), r.config.c_str(),
                r.seq_len > r.trained_positions ? " (positions extended beyond the trained length)" : "");
    if (e.tokens == 0) std::fprintf(stderr, "dense-eval: warning: no masked token in %s\n", mlm.data.c_str());
    if (!json_out.empty()) {
      const nlohmann::json j = {{"loss", e.loss},       {"accuracy", e.accuracy},      {"masked_tokens", e.tokens},
                                {"rows", e.rows},       {"seq_len", r.seq_len},        {"trained_positions", r.trained_positions},
                                {"weights", r.weights}, {"config", r.config},          {"data", mlm.data}};
      dense::write_file_atomic(json_out, j.dump(2) + "\n");
    }
    return 0;
  } catch (const dense::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dense-eval: error: %s\n", e.what());
    dense::parallel::abort_world(1);
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dense-eval: internal error: %s\n", e.what());
    dense::parallel::abort_world(2);
    return 2;
  }
}
