#include "data_prep/prep_vocab.h"

#include <chrono>
#include <exception>
#include <filesystem>

#include "core/error.h"
#include "data/prep_common.h"
#include "data/vocab.h"
#include "data_prep/prep_pipeline.h"

namespace dense::data {

VocabPrepResult prepare_vocab(const VocabPrepConfig& cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  DENSE_CHECK(!cfg.inputs.empty(), "vocab: no input files or folders given");
  DENSE_CHECK(!cfg.out_path.empty(), "vocab: no output file given");
  DENSE_CHECK(cfg.train.vocab_size > cfg.train.special_tokens.size(),
              "vocab: --vocab-size {} leaves no room after the {} special tokens", cfg.train.vocab_size,
              cfg.train.special_tokens.size());
  check_output_outside_inputs(cfg.inputs, cfg.out_path, "vocab: -o");
  const auto parent = std::filesystem::path(cfg.out_path).parent_path();
  if (!parent.empty()) ensure_writable_folder(parent.string());
  const int threads = resolve_threads(cfg.threads);
  const std::vector<std::string> files = list_corpus_files(cfg.inputs, cfg.corpus.recursive, cfg.corpus.skip_hidden);
  bool compressed = false;
  const int64_t total = corpus_size(files, &compressed);
  Progress progress("vocab", compressed ? -1 : total, cfg.progress);

  BasicTokenizerOptions bo;
  bo.lowercase = cfg.train.lowercase;
  bo.strip_accents = cfg.train.strip_accents;
  bo.tokenize_chinese_chars = cfg.train.tokenize_chinese_chars;
  std::vector<WordCounter> counters(static_cast<size_t>(threads), WordCounter(bo));
  CorpusReader reader(files, cfg.corpus);
  Document doc;
  bool eof = false;
  while (!eof) {
    // One slice of about 1 MB of text per worker, counted in parallel.
    std::vector<std::vector<std::string>> slices(static_cast<size_t>(threads));
    for (auto& slice : slices) {
      size_t bytes = 0;
      while (bytes < (size_t(1) << 20)) {
        if (!reader.next(doc)) {
          eof = true;
          break;
        }
        bytes += doc.text.size();
        slice.push_back(std::move(doc.text));
      }
      if (eof) break;
    }
    std::exception_ptr error;
#pragma omp parallel for schedule(static, 1) num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      try {
        for (const auto& text : slices[size_t(t)]) counters[size_t(t)].add_text(text);
      } catch (...) {
#pragma omp critical
        error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    progress.set(reader.stats().bytes);
  }
  for (size_t t = 1; t < counters.size(); ++t) counters[0].merge(counters[t]);
  DENSE_CHECK(counters[0].total_words() > 0, "vocab: the corpus has no words ({} files, {} documents)", files.size(),
              reader.stats().documents);
  const std::vector<std::string> tokens = train_wordpiece_vocab(counters[0], cfg.train);
  const Vocab vocab = Vocab::from_tokens(tokens, cfg.out_path);
  vocab.save(cfg.out_path);
  progress.finish();

  VocabPrepResult r;
  r.vocab_size = vocab.size();
  r.corpus = reader.stats();
  r.documents = r.corpus.documents;
  r.words = counters[0].total_words();
  r.unique_words = int64_t(counters[0].unique_words());
  r.sha256 = vocab.sha256();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace dense::data
