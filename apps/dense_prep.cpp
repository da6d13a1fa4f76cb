// dense-prep: raw corpora and benchmark downloads into HDF5 shards. Each subcommand is a thin layer over a
// pipeline in data_prep/ (prep_*.h; GLUE's in src/data/prep_glue.h, since dense-eval glue runs it too); errors
// are dense::Errors naming the file, line or option at fault.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli_checks.h"
#include "core/error.h"
#include "data/prep_glue.h"
#include "data_prep/prep_lra.h"
#include "data_prep/prep_pretrain.h"
#include "data_prep/prep_vocab.h"
#include "data_prep/shard_inspect.h"

using namespace dense::data;
using dense::cli::integer_at_least;
using dense::cli::number_in;

namespace {

struct CorpusFlags {
  std::string format = "auto", documents = "blank-lines", json_field = "text";
  bool no_recursive = false;

  void add(CLI::App* app) {
    app->add_option("--corpus-format", format, "auto (by file name), text, jsonl, wikitext")
        ->check(CLI::IsMember({"auto", "text", "jsonl", "wikitext"}));
    app->add_option("--documents", documents, "text documents: blank-lines, one-per-file, one-per-line")
        ->check(CLI::IsMember({"blank-lines", "one-per-file", "one-per-line"}));
    app->add_option("--json-field", json_field, "JSON-lines field holding the text");
    app->add_flag("--no-recursive", no_recursive, "do not descend into sub-folders");
  }
  CorpusOptions options() const {
    CorpusOptions o;
    o.format = format == "text"       ? CorpusFormat::Text
               : format == "jsonl"    ? CorpusFormat::JsonLines
               : format == "wikitext" ? CorpusFormat::WikiText
                                      : CorpusFormat::Auto;
    o.documents = documents == "one-per-file"   ? TextDocuments::OnePerFile
                  : documents == "one-per-line" ? TextDocuments::OnePerLine
                                                : TextDocuments::BlankLines;
    o.json_field = json_field;
    o.recursive = !no_recursive;
    return o;
  }
};

void print_corpus(const CorpusStats& s) {
  std::printf("  corpus: %s files, %s documents, %.1f MB", with_thousands(s.files).c_str(),
              with_thousands(s.documents).c_str(), double(s.bytes) / 1e6);
  if (s.empty_documents) std::printf(", %s empty documents skipped", with_thousands(s.empty_documents).c_str());
  if (s.split_documents) std::printf(", %s long documents split", with_thousands(s.split_documents).c_str());
  std::printf("\n");
  if (s.invalid_utf8) {
    std::printf("  warning: %s invalid UTF-8 sequences replaced by U+FFFD", with_thousands(s.invalid_utf8).c_str());
    if (!s.invalid_utf8_at.empty()) std::printf(" (first at %s)", s.invalid_utf8_at.front().c_str());
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dense-prep: tokenize corpora and benchmark data into HDF5 shards (densetrain)"};
  app.require_subcommand(1);
  app.fallthrough();  // -j / -q also after the subcommand
  app.set_version_flag("--version", "dense-prep 0.1.0");
  int threads = 0;
  bool quiet = false;
  app.add_option("-j,--threads", threads, "worker threads (default: all cores)")->check(integer_at_least(0));
  app.add_flag("-q,--quiet", quiet, "no progress line");

  // ---- vocab ----
  VocabPrepConfig vc;
  CorpusFlags vflags;
  bool v_cased = false;
  auto* vocab = app.add_subcommand("vocab", "train a WordPiece vocabulary (vocab.txt) on a corpus");
  vocab->add_option("inputs", vc.inputs, "corpus files or folders")->required();
  vocab->add_option("-o,--out", vc.out_path, "vocab.txt to write")->required();
  vocab->add_option("--vocab-size", vc.train.vocab_size, "tokens in the vocabulary")->check(integer_at_least(1));
  vocab->add_option("--min-frequency", vc.train.min_frequency, "a pair must occur this often to merge")
      ->check(integer_at_least(1));
  vocab->add_option("--limit-alphabet", vc.train.limit_alphabet, "at most this many initial characters (0: any)")
      ->check(integer_at_least(0));
  vocab->add_flag("--cased", v_cased, "keep case and accents (default: uncased)");
  vflags.add(vocab);

  // ---- pretrain ----
  PretrainPrepConfig pc;
  CorpusFlags pflags;
  std::string p_format = "packed";
  bool p_cased = false;
  auto* pre = app.add_subcommand("pretrain",
                                 "corpus -> pretraining shards (bert: NSP + static masks, LDDL layout; "
                                 "packed: continuous rows, masks at load time)");
  pre->add_option("inputs", pc.inputs, "corpus files or folders (.txt, .jsonl, .tokens, optionally .gz)")->required();
  pre->add_option("--vocab", pc.vocab_path, "vocab.txt")->required();
  pre->add_option("-o,--out", pc.out_dir, "output folder")->required();
  pre->add_option("--format", p_format, "bert or packed")->check(CLI::IsMember({"bert", "packed"}));
  pre->add_option("-N,--seq-len", pc.seq_len, "tokens per row")->check(integer_at_least(1));
  // 0 inside the library means "the default size"; on the command line it is a mistake, like -5.
  pre->add_option(
         "--shard-rows", pc.shard_rows,
         "rows per shard (bert: about; default 2^19 / seq-len: 512K tokens, so that a corpus spans many shards)")
      ->check(integer_at_least(1));
  pre->add_option("--max-rows", pc.max_rows, "packed: stop after this many rows; fail if the corpus has fewer")
      ->check(integer_at_least(1));
  pre->add_option("--seed", pc.seed, "random seed (bert pairs and masks)");
  pre->add_option("--duplicate", pc.duplicate, "bert: passes per block with fresh pairs and masks")
      ->check(integer_at_least(1));
  pre->add_option("--short-seq-prob", pc.short_seq_prob, "bert: probability of a shorter target length (0: test sets)")
      ->check(number_in(0, 1));
  pre->add_option("--random-next-prob", pc.random_next_prob, "bert: probability that B is a random span")
      ->check(number_in(0, 1));
  pre->add_option("--masked-lm-ratio", pc.masked_lm_ratio, "bert: fraction of tokens masked (0.12: test sets)")
      ->check(number_in(0, 1, true, true));
  pre->add_option("--p-mask", pc.p_mask, "bert: chosen position -> [MASK] with this probability")
      ->check(number_in(0, 1));
  std::string p_sentences = "lines";
  pre->add_option("--sentences", p_sentences, "bert: a sentence is a line, or lines split at punctuation")
      ->check(CLI::IsMember({"lines", "punctuation"}));
  pre->add_option("--prefix", pc.prefix, "shard file prefix (default: the format name)");
  pre->add_option("--gzip-level", pc.gzip_level, "HDF5 gzip level 0-9")->check(CLI::Range(0, 9));
  pre->add_flag("--cased", p_cased, "cased WordPiece (default: uncased)");
  pre->add_flag("--overwrite", pc.overwrite, "replace shards of another configuration in the output folder");
  pflags.add(pre);

  // ---- glue ----
  GluePrepConfig gc;
  bool g_cased = false;
  auto* glue = app.add_subcommand("glue", "GLUE task folders (official TSV layout) -> classification shards");
  glue->add_option("glue_dir", gc.glue_dir, "folder holding CoLA/, SST-2/, MRPC/, ...")->required();
  glue->add_option("--vocab", gc.vocab_path, "vocab.txt")->required();
  glue->add_option("-o,--out", gc.out_dir, "output folder (one sub-folder per task)")->required();
  glue->add_option("-t,--task", gc.tasks, "tasks (default: every task folder present)");
  glue->add_option("--max-length", gc.max_length, "tokens per example (default: 128; 512 for MRPC and RTE)")
      ->check(integer_at_least(1));
  glue->add_option("--gzip-level", gc.gzip_level, "HDF5 gzip level 0-9")->check(CLI::Range(0, 9));
  glue->add_flag("--cased", g_cased, "cased WordPiece (default: uncased)");
  glue->add_flag("--skip-malformed-rows", gc.skip_malformed_rows, "skip and count rows with a wrong column count");
  glue->add_flag("--overwrite", gc.overwrite, "replace shards of another configuration");

  // ---- lra ----
  LraPrepConfig lc;
  auto* lra = app.add_subcommand("lra", "Long Range Arena tasks -> classification shards");
  lra->add_option("task", lc.task, "listops, pathfinder, image, text or retrieval")
      ->required()
      ->check(CLI::IsMember({"listops", "pathfinder", "image", "text", "retrieval"}));
  lra->add_option("-o,--out", lc.out_dir, "output folder")->required();
  lra->add_option("--source", lc.source,
                  "input folder (listops: basic_*.tsv; image: IDX or CIFAR-10 binary; text: aclImdb; retrieval: "
                  "new_aan_pairs.*.tsv; pathfinder: metadata/ + imgs/). Without it listops and pathfinder are "
                  "generated");
  lra->add_option("--seed", lc.seed, "generator seed");
  lra->add_option("--num-train", lc.num_train, "listops: generated training trees")->check(integer_at_least(1));
  lra->add_option("--num-val", lc.num_val, "listops: generated validation trees")->check(integer_at_least(1));
  lra->add_option("--num-test", lc.num_test, "listops: generated test trees")->check(integer_at_least(1));
  lra->add_option("--min-length", lc.min_length, "listops: generated trees are longer than this (LRA: 500)")
      ->check(integer_at_least(0));
  lra->add_option("--max-length", lc.max_length,
                  "listops: generated trees are shorter than this (LRA: 2000; also the default --seq-len)")
      ->check(integer_at_least(2));
  lra->add_option("--resolution", lc.resolution, "pathfinder: 32, 64, 128 (Path-X) or 256")
      ->check(CLI::IsMember({32, 64, 128, 256}));
  lra->add_option("--contour-length", lc.contour_length, "pathfinder: 14 hard, 9 intermediate, 6 easy")
      ->check(integer_at_least(1));
  lra->add_option("--num-images", lc.num_images, "pathfinder: images to generate")->check(integer_at_least(1));
  lra->add_option("--tokenizer", lc.tokenizer, "text/retrieval: chars or bytes")
      ->check(CLI::IsMember({"chars", "bytes"}));
  lra->add_option("--min-frequency", lc.min_frequency, "text/retrieval: minimum character count (default 15 / 1)")
      ->check(integer_at_least(1));
  lra->add_option("--seq-len", lc.seq_len, "tokens per row (default: the task's)")->check(integer_at_least(1));
  lra->add_option("--val-fraction", lc.val_fraction, "image: share of the train set held out for validation")
      ->check(number_in(0, 1, true, true));
  lra->add_option("--gzip-level", lc.gzip_level, "HDF5 gzip level 0-9")->check(CLI::Range(0, 9));
  lra->add_flag("--overwrite", lc.overwrite, "replace shards of another configuration");

  // ---- inspect ----
  std::string inspect_path;
  InspectOptions io;
  auto* insp = app.add_subcommand("inspect", "datasets, attributes, a decoded sample and token statistics of a shard");
  insp->add_option("shard", inspect_path, "HDF5 shard")->required();
  insp->add_option("--vocab", io.vocab_path, "vocab.txt to decode WordPiece ids");
  insp->add_option("--row", io.row, "the row shown")->check(integer_at_least(0));
  insp->add_option("--stats-rows", io.stats_rows, "rows read for statistics (0: all)")->check(integer_at_least(0));

  if (!dense::cli::check_subcommand(app, argc, argv, "dense-prep", {"-j", "--threads"})) return 109;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (app.get_subcommands().empty() && dynamic_cast<const CLI::RequiredError*>(&e)) {
      std::fprintf(stderr, "dense-prep: error: a subcommand is required: %s (dense-prep SUBCOMMAND --help)\n",
                   dense::cli::subcommand_list(app).c_str());
      return e.get_exit_code();
    }
    return app.exit(e);
  }

  ProgressOptions progress;
  progress.enabled = !quiet;
  try {
    if (*vocab) {
      vc.corpus = vflags.options();
      vc.train.lowercase = !v_cased;
      vc.threads = threads;
      vc.progress = progress;
      const VocabPrepResult r = prepare_vocab(vc);
      std::printf("vocab: wrote %s (%lld tokens, sha256 %s) in %.1f s\n", vc.out_path.c_str(), (long long)r.vocab_size,
                  r.sha256.c_str(), r.seconds);
      std::printf("  words: %s (%s distinct)\n", with_thousands(r.words).c_str(),
                  with_thousands(r.unique_words).c_str());
      print_corpus(r.corpus);
    } else if (*pre) {
      pc.corpus = pflags.options();
      pc.format = p_format == "bert" ? PretrainFormat::kBert : PretrainFormat::kPacked;
      pc.lowercase = !p_cased;
      pc.sentences = p_sentences == "punctuation" ? SentenceSplit::kPunctuation : SentenceSplit::kLines;
      pc.threads = threads;
      pc.progress = progress;
      const PretrainPrepResult r = prepare_pretraining(pc);
      if (r.already_complete) {
        std::printf(
            "pretrain: %s is already complete (%zu shards, %s rows; manifest and checksums match); nothing "
            "to do\n",
            pc.out_dir.c_str(), r.shards.size(), with_thousands(r.rows).c_str());
        return 0;
      }
      std::printf(
          "pretrain: %s rows of %lld tokens in %zu shards (%lld written, %lld already complete) in %s in %.1f "
          "s\n",
          with_thousands(r.rows).c_str(), (long long)pc.seq_len, r.shards.size(), (long long)r.shards_written,
          (long long)r.shards_kept, pc.out_dir.c_str(), r.seconds);
      std::printf("  tokens: %s (%.3f%% [UNK])", with_thousands(r.tokens).c_str(),
                  r.tokens ? 100.0 * double(r.unk_tokens) / double(r.tokens) : 0.0);
      if (r.dropped_tail_tokens)
        std::printf(", %s tail tokens dropped (less than a row)", with_thousands(r.dropped_tail_tokens).c_str());
      std::printf("\n");
      print_corpus(r.corpus);
      if (r.stale_temporaries_removed)
        std::printf("  removed %lld temporary files of an interrupted run\n", (long long)r.stale_temporaries_removed);
      std::printf("  manifest: %s\n", r.manifest.c_str());
    } else if (*glue) {
      gc.lowercase = !g_cased;
      gc.threads = threads;
      gc.progress = progress;
      const GluePrepResult r = prepare_glue(gc);
      for (const auto& s : r.splits) {
        std::printf("glue: %-6s %-16s %9s rows%s%s  %s%s\n", s.task.c_str(), s.split.c_str(),
                    with_thousands(s.rows).c_str(), s.labeled ? "" : " (unlabeled)",
                    s.truncated_rows ? fmt::format(", {} truncated", s.truncated_rows).c_str() : "", s.path.c_str(),
                    s.kept ? " (already complete)" : "");
        if (s.skipped_rows) std::printf("  warning: %lld malformed rows skipped\n", (long long)s.skipped_rows);
      }
      if (!r.tasks_without_folder.empty()) {
        std::string missing;
        for (const auto& t : r.tasks_without_folder) missing += (missing.empty() ? "" : ", ") + t;
        std::printf("  no folder for: %s\n", missing.c_str());
      }
    } else if (*lra) {
      lc.threads = threads;
      lc.progress = progress;
      const LraPrepResult r = prepare_lra(lc);
      for (const auto& s : r.splits)
        std::printf("lra %s: %-5s %9s rows  %s%s\n", lc.task.c_str(), s.split.c_str(), with_thousands(s.rows).c_str(),
                    s.path.c_str(), s.kept ? " (already complete)" : "");
      std::printf("  sequence length %lld, vocabulary %lld (%s), %lld classes\n", (long long)r.seq_len,
                  (long long)r.vocab_size, r.vocab_hash.c_str(), (long long)r.num_labels);
    } else if (*insp) {
      std::fputs(inspect_shard(inspect_path, io).c_str(), stdout);
    }
  } catch (const dense::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dense-prep: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dense-prep: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
