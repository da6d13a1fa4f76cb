#pragma once
// `dense-prep vocab`: a WordPiece vocabulary trained on a corpus (vocab_train.h), words counted on every core
// (one counter per worker over chunks of documents, merged at the end; the result depends only on the word
// multiset, so it is the same for any thread count), written atomically as vocab.txt.
#include <cstdint>
#include <string>
#include <vector>

#include "data/progress.h"
#include "data_prep/corpus.h"
#include "data_prep/vocab_train.h"

namespace dense::data {

struct VocabPrepConfig {
  std::vector<std::string> inputs;
  CorpusOptions corpus;
  std::string out_path;  // vocab.txt
  VocabTrainOptions train;
  int threads = 0;
  ProgressOptions progress;
};

struct VocabPrepResult {
  int64_t vocab_size = 0;
  int64_t documents = 0;
  int64_t words = 0, unique_words = 0;
  std::string sha256;
  CorpusStats corpus;
  double seconds = 0;
};

VocabPrepResult prepare_vocab(const VocabPrepConfig& config);

}  // namespace dense::data
