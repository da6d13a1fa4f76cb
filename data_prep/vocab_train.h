#pragma once
// WordPiece vocabulary training, the HuggingFace `WordPieceTrainer` way: words come from BERT's basic
// tokenizer (so training and encoding see the same words), the initial vocabulary is the special tokens, every
// character (word-initial form) and every character seen inside a word ("##" form), and then the most frequent
// adjacent pair of pieces is merged (BPE) until the vocabulary is full or no pair occurs min_frequency times.
// A merge of "a" + "##b" gives "ab", of "##a" + "##b" gives "##ab".
// Reproducible: the result depends only on the multiset of words, never on thread count or input order.
//   * initial characters in code-point order, "##" characters in code-point order;
//   * pair-count ties go to the pair of smaller ids (first piece, then second), as in HuggingFace.
// Words longer than max_input_chars_per_word code points are skipped (WordPiece maps them to [UNK] anyway).
// If the alphabet does not fit in vocab_size (or exceeds limit_alphabet), the rarest characters are dropped
// (ties: larger code point first) and the words that contain them do not take part in merges.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/text_normalize.h"

namespace dense::data {

struct VocabTrainOptions {
  size_t vocab_size = 30522;
  int64_t min_frequency = 2;  // a pair must occur at least this often (counting word frequency) to merge
  bool lowercase = true;
  int strip_accents = -1;  // as BasicTokenizerOptions
  bool tokenize_chinese_chars = true;
  std::vector<std::string> special_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  size_t max_input_chars_per_word = 100;
  size_t limit_alphabet = 0;  // 0: no limit other than vocab_size
};

// Word frequencies of a corpus. Count shards of a corpus in separate counters (one per thread) and merge().
class WordCounter {
 public:
  explicit WordCounter(BasicTokenizerOptions options = {});
  // Splits `text` with the basic tokenizer and counts its words.
  void add_text(std::string_view text);
  // Counts an already normalised word.
  void add_word(std::string_view word, int64_t count = 1);
  void merge(const WordCounter& other);

  size_t unique_words() const { return counts_.size(); }
  int64_t total_words() const { return total_; }
  uint64_t invalid_utf8() const { return invalid_; }
  // (word, count) sorted by word bytes.
  std::vector<std::pair<std::string, int64_t>> sorted() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  BasicTokenizer basic_;
  WordList scratch_;
  std::unordered_map<std::string, int64_t, Hash, std::equal_to<>> counts_;
  int64_t total_ = 0;
  uint64_t invalid_ = 0;
};

// The vocabulary (id order) trained from counted words. The counter's basic-tokenizer options should match
// options.lowercase / strip_accents (they are what the words were normalised with).
std::vector<std::string> train_wordpiece_vocab(const WordCounter& words, const VocabTrainOptions& options);

// Streams the corpus: `next_text` fills its argument with the next text (a document or a line) and returns
// false at the end.
std::vector<std::string> train_wordpiece_vocab(const std::function<bool(std::string&)>& next_text,
                                               const VocabTrainOptions& options);
std::vector<std::string> train_wordpiece_vocab(const std::function<bool(std::string&)>& next_text, size_t vocab_size,
                                               int64_t min_frequency, bool lowercase);

}  // namespace dense::data
