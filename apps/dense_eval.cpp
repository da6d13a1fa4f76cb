// dense-eval: scores a trained encoder. `mlm`: MLM loss and accuracy on held-out shards at any length
// (src/eval/mlm_evaluation.cpp); `glue`: fine-tune and score one GLUE task (src/eval/glue_eval.cpp); `lra`:
// train and score one Long Range Arena task (src/eval/lra_eval.cpp); `logits`: a checkpoint's float32 logits on
// given texts or token ids, to compare other runtimes with (src/eval/logits_dump.cpp).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cpu_blas.h"
#include "cli_checks.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/progress.h"
#include "eval/glue_eval.h"
#include "eval/logits_dump.h"
#include "eval/lra_eval.h"
#include "eval/mlm_evaluation.h"
#include "parallel/communicator.h"

using dense::cli::integer_at_least;

int main(int argc, char** argv) {
  dense::restart_with_fast_blas_kernels(argv);
  if (const std::string note = dense::blas_restart_note(); !note.empty())
    std::fprintf(stderr, "dense-eval: note: %s\n", note.c_str());
  const dense::BackendsReleaser release_backends_on_return;  // before the CUDA runtime unloads
  CLI::App app{"dense-eval: evaluate DenseAttention (DANet) and BERT encoders (densetrain)"};
  app.set_version_flag("--version", "dense-eval 0.1.0 (OpenBLAS " + dense::openblas_core() + " kernels)");
  app.require_subcommand(1);
  dense::train::MlmEvalRequest mlm;
  std::string json_out;
  CLI::App* m = app.add_subcommand("mlm", "MLM loss and accuracy of a checkpoint on held-out shards, at their length");
  m->add_option("--checkpoint", mlm.checkpoint,
                "a checkpoint folder (runs/x/checkpoints/step-N), a run folder (runs/x: its newest complete "
                "checkpoint) or a .safetensors file (then --config names the model)")
      ->required();
  m->add_option("--data", mlm.data, "a shard file or folder (dense-prep pretrain --format packed|bert)")->required();
  m->add_option("--config", mlm.config, "the model's YAML config (default: the run's config.yaml)");
  m->add_option("--set", mlm.overrides, "override a config key (repeatable), e.g. --set training.threads=2");
  m->add_option("--batch", mlm.batch, "rows per batch (default: the config's micro batch)")->check(integer_at_least(1));
  m->add_option("--max-batches", mlm.max_batches, "stop after this many batches (default: every row)")
      ->check(integer_at_least(1));
  m->add_option("--json", json_out, "also write the result as JSON to this file");
  m->add_option("--dump-logits", mlm.dump_logits,
                "write the masked positions' float32 logits with the rows as masked (.safetensors: logits, positions, "
                "input_ids, attention_mask, token_type_ids, mlm_labels; .npy: the logits alone); one process only; "
                "--max-batches bounds its size");
  dense::train::GlueEvalRequest glue;
  CLI::App* g = app.add_subcommand("glue", "fine-tune and score a GLUE task (best epoch on dev, median over seeds)");
  g->add_option("--task", glue.task, "CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE or WNLI")->required();
  g->add_option("--data", glue.glue_dir, "a folder laid out like the GLUE download (holds <Task>/train.tsv ...)")
      ->required();
  g->add_option("--config", glue.config, "model + fine-tuning config (configs/glue/<task>.yaml)")->required();
  g->add_option("--init-from", glue.init_from,
                "pretrained weights: a checkpoint folder, a run folder (its newest complete checkpoint) or a "
                ".safetensors file");
  g->add_option("--set", glue.overrides, "override a config key (repeatable)");
  g->add_option("-o,--out", glue.out_dir,
                "results folder (shards/, results.md, results.json, dev*_predictions.tsv, submission/)")
      ->required();
  g->add_option("--seeds", glue.seeds, "fine-tuning runs with seeds training.seed, +1, ...; the median is reported")
      ->check(integer_at_least(1));
  g->add_option("--max-eval-rows", glue.max_eval_rows, "dev rows scored per epoch (0: all)")
      ->check(integer_at_least(0));
  g->add_option("--max-train-rows", glue.max_train_rows,
                "train on the first rows of train.tsv only (CPU-sized runs; 0: all)")
      ->check(integer_at_least(0));
  g->add_flag("--save-weights", glue.save_weights, "write each seed's best-epoch weights to <out>/seed-<s>/");
  g->add_flag("-q,--quiet", glue.quiet, "no per-epoch lines");
  g->add_option("--dump-logits", glue.dump_logits,
                "write the median run's best-epoch float32 dev logits (dev_predictions.tsv's rows) with their inputs "
                "(.safetensors: logits, input_ids, attention_mask, ...; .npy: the logits alone)");
  dense::train::LraEvalRequest lra;
  CLI::App* l =
      app.add_subcommand("lra", "train and score a Long Range Arena task (best val epoch, median over seeds)");
  l->add_option("--task", lra.task, "listops, text, retrieval, image, pathfinder or pathx")
      ->required()
      ->check(CLI::IsMember({"listops", "text", "retrieval", "image", "pathfinder", "pathx"}));
  l->add_option("--data", lra.data_dir, "a `dense-prep lra` output folder (train.hdf5, val.hdf5, test.hdf5)")
      ->required();
  l->add_option("--config", lra.config, "model + training config (configs/lra/<task>.yaml, configs/lra/cpu/...)")
      ->required();
  l->add_option("--init-from", lra.init_from,
                "start from these weights (Path-X stage B: stage A's seed-<s>/model.safetensors)");
  l->add_option("--set", lra.overrides, "override a config key (repeatable)");
  l->add_option("-o,--out", lra.out_dir, "results folder (results.md, results.json, test_predictions.tsv)")->required();
  l->add_option("--seeds", lra.seeds, "runs with seeds training.seed, +1, ...; the median test accuracy is reported")
      ->check(integer_at_least(1));
  l->add_option("--max-eval-rows", lra.max_eval_rows, "validation rows scored per epoch (0: all)")
      ->check(integer_at_least(0));
  l->add_option("--max-train-rows", lra.max_train_rows, "train on the first rows of train.hdf5 only (0: all)")
      ->check(integer_at_least(0));
  l->add_flag("--save-weights", lra.save_weights, "write each seed's best-epoch weights to <out>/seed-<s>/");
  l->add_flag("-q,--quiet", lra.quiet, "no per-epoch lines");
  l->add_option("--dump-logits", lra.dump_logits,
                "write the median run's best-epoch float32 test logits (test_predictions.tsv's rows) with their "
                "inputs (.safetensors: logits, input_ids, attention_mask, ...; .npy: the logits alone)");
  dense::train::LogitsRequest lg;
  CLI::App* x = app.add_subcommand(
      "logits", "a checkpoint's float32 logits on texts or token ids, written for numpy / node (docs/export.md)");
  x->add_option("--checkpoint", lg.checkpoint,
                "a checkpoint folder, a run folder (its newest complete checkpoint), a .safetensors file (e.g. "
                "dense-eval glue --save-weights' seed-<s>/model.safetensors) or a Hugging Face BERT folder")
      ->required();
  x->add_option("--config", lg.config, "the model's YAML config (default: the run's config.yaml)");
  x->add_option("--set", lg.overrides, "override a config key (repeatable)");
  x->add_option("--head", lg.head, "mlm: [rows, N, V] logits at every position; classifier: [rows, num_labels]")
      ->check(CLI::IsMember({"mlm", "classifier"}));
  x->add_option("--text", lg.texts, "a text (repeatable); a tab separates a sentence pair");
  x->add_option("--texts", lg.texts_file, "a UTF-8 file of texts, one per line (after any --text)");
  x->add_option("--ids", lg.ids, "token ids of one row, e.g. \"2 1045 2066 4 3\" (repeatable; no special token added)");
  x->add_option("--vocab", lg.vocab,
                "the WordPiece vocab.txt for texts (default: the config's data.vocab); it also "
                "cuts MLM logits to its tokens");
  x->add_flag("--cased", lg.cased, "cased WordPiece (default: uncased, as dense-prep)");
  x->add_option("--batch", lg.batch, "rows per forward pass")->check(integer_at_least(1));
  x->add_option("-o,--out", lg.out,
                "FILE.safetensors: logits (F32) + input_ids, attention_mask, token_type_ids (I64), the rows padded "
                "to the longest with [PAD]; FILE.npy: the logits alone. Written atomically")
      ->required();
  if (!dense::cli::check_subcommand(app, argc, argv, "dense-eval")) return 109;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (app.get_subcommands().empty() && dynamic_cast<const CLI::RequiredError*>(&e)) {
      std::fprintf(stderr, "dense-eval: error: a subcommand is required: %s (dense-eval SUBCOMMAND --help)\n",
                   dense::cli::subcommand_list(app).c_str());
      return e.get_exit_code();
    }
    return app.exit(e);
  }
  try {
    if (g->parsed()) {
      const dense::train::GlueEvalReport r = dense::train::run_glue_evaluation(glue);
      std::printf("%s", r.results_markdown.c_str());
      std::printf("  results: %s/results.md, %s/results.json\n", glue.out_dir.c_str(), glue.out_dir.c_str());
      for (const auto& f : r.submission_files) std::printf("  submission: %s\n", f.c_str());
      if (!glue.dump_logits.empty()) std::printf("  logits: %s\n", glue.dump_logits.c_str());
      for (const auto& run : r.runs)
        if (!run.weights.empty()) std::printf("  weights: %s\n", run.weights.c_str());
      return 0;
    }
    if (x->parsed()) {
      const dense::train::LogitsReport r = dense::train::run_logits_dump(lg);
      for (const auto& w : r.warnings) std::fprintf(stderr, "dense-eval: warning: %s\n", w.c_str());
      for (const auto& n : r.notes) std::fprintf(stderr, "dense-eval: note: %s\n", n.c_str());
      if (r.truncated_rows > 0)
        std::fprintf(stderr, "dense-eval: warning: %lld text(s) cut to the model's positions\n",
                     static_cast<long long>(r.truncated_rows));
      std::string shape;
      for (const int64_t d : r.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      std::printf("dense-eval logits: %s [%s] float32 (%s head)\n  weights: %s\n  config:  %s\n", lg.out.c_str(),
                  shape.c_str(), lg.head.c_str(), r.weights.c_str(), r.config.c_str());
      if (!r.vocab.empty()) std::printf("  vocab:   %s\n", r.vocab.c_str());
      return 0;
    }
    if (l->parsed()) {
      const dense::train::LraEvalReport r = dense::train::run_lra_evaluation(lra);
      std::printf("%s", r.results_markdown.c_str());
      std::printf("  results: %s/results.md, %s/results.json, %s/test_predictions.tsv\n", lra.out_dir.c_str(),
                  lra.out_dir.c_str(), lra.out_dir.c_str());
      if (!lra.dump_logits.empty()) std::printf("  logits: %s\n", lra.dump_logits.c_str());
      for (const auto& run : r.runs)
        if (!run.weights.empty()) std::printf("  weights: %s\n", run.weights.c_str());
      return 0;
    }
    const dense::train::MlmEvalReport r = dense::train::run_mlm_evaluation(mlm);
    if (r.rank != 0) return 0;
    const auto& e = r.result;
    for (const auto& w : r.warnings) std::fprintf(stderr, "dense-eval: warning: %s\n", w.c_str());
    // Six significant digits tell runs apart on screen; --json keeps every digit (a round-trip double).
    std::printf("dense-eval mlm: loss %.6g, accuracy %.6g over %s masked tokens in %s rows of %lld tokens\n", e.loss,
                e.accuracy, dense::data::with_thousands(e.tokens).c_str(), dense::data::with_thousands(e.rows).c_str(),
                static_cast<long long>(r.seq_len));
    if (!r.chosen_checkpoint.empty()) std::printf("  checkpoint: %s\n", r.chosen_checkpoint.c_str());
    if (!mlm.dump_logits.empty()) std::printf("  logits:  %s\n", mlm.dump_logits.c_str());
    std::printf("  weights: %s\n  config:  %s%s\n", r.weights.c_str(), r.config.c_str(),
                r.seq_len > r.trained_positions ? " (positions extended beyond the trained length)" : "");
    if (e.tokens == 0) std::fprintf(stderr, "dense-eval: warning: no masked token in %s\n", mlm.data.c_str());
    if (!json_out.empty()) {
      const nlohmann::json j = {
          {"loss", e.loss},       {"accuracy", e.accuracy}, {"masked_tokens", e.tokens},
          {"rows", e.rows},       {"seq_len", r.seq_len},   {"trained_positions", r.trained_positions},
          {"weights", r.weights}, {"config", r.config},     {"data", mlm.data}};
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
