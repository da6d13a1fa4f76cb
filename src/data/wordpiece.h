#pragma once
// BERT WordPiece tokenization, id for id the same as HuggingFace's BertTokenizer (uncased and cased):
//   * special tokens ([PAD] [UNK] [CLS] [SEP] [MASK] by default) written verbatim anywhere in the text are
//     recognised first, as HuggingFace's added tokens are (so a document ending in "[SEP]" yields id 102);
//   * the text between them goes through the basic tokenizer (text_normalize.h: cleaning, CJK spacing,
//     lower-casing and accent stripping for uncased, punctuation splitting);
//   * each word is split greedily, longest match first, continuation pieces prefixed "##"; a word with no
//     split, or longer than max_input_chars_per_word code points, becomes a single [UNK].
// Invalid UTF-8 is replaced by U+FFFD (then dropped by cleaning) and counted.
// All encode/decode functions are const and safe to call from several threads at once.
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/text_normalize.h"
#include "data/vocab.h"

namespace dense::data {

struct WordPieceOptions {
  bool lowercase = true;   // uncased BERT (lower-case + strip accents); false for cased models
  int strip_accents = -1;  // -1: same as lowercase; 0: never; 1: always
  bool tokenize_chinese_chars = true;
  size_t max_input_chars_per_word = 100;
  // Recognised verbatim in the input (case-sensitive) and mapped to their ids; entries missing from the
  // vocabulary are ignored.
  std::vector<std::string> never_split = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

  static WordPieceOptions uncased() { return {}; }
  static WordPieceOptions cased() {
    WordPieceOptions o;
    o.lowercase = false;
    return o;
  }
};

// Model inputs for one sequence or a pair: [CLS] A [SEP] (B [SEP]), optionally padded with [PAD].
struct Encoding {
  std::vector<int32_t> input_ids;
  std::vector<int8_t> token_type_ids;  // 0 for [CLS] A [SEP], 1 for B [SEP], 0 for padding
  std::vector<int8_t> attention_mask;  // 1 for real tokens, 0 for padding
  size_t truncated = 0;                // tokens removed by truncation
};

struct DecodeOptions {
  bool skip_special_tokens = false;  // drop [PAD] [UNK] [CLS] [SEP] [MASK]
  bool clean_up_spaces = false;      // HuggingFace's clean_up_tokenization (" ." -> ".", " n't" -> "n't", ...)
};

class WordPieceTokenizer {
 public:
  explicit WordPieceTokenizer(std::shared_ptr<const Vocab> vocab, WordPieceOptions options = {});
  explicit WordPieceTokenizer(Vocab vocab, WordPieceOptions options = {});
  static WordPieceTokenizer from_file(const std::string& vocab_txt, WordPieceOptions options = {});
  WordPieceTokenizer(const WordPieceTokenizer& other);
  WordPieceTokenizer& operator=(const WordPieceTokenizer& other);

  const Vocab& vocab() const { return *vocab_; }
  std::shared_ptr<const Vocab> vocab_ptr() const { return vocab_; }
  const WordPieceOptions& options() const { return opt_; }

  // Token ids of `text`, without [CLS]/[SEP] around it.
  std::vector<int32_t> encode(std::string_view text) const;
  // Appends the ids of `text` to `out`; returns the number of invalid UTF-8 subparts replaced in `text`.
  uint64_t encode_append(std::string_view text, std::vector<int32_t>& out) const;
  // Token strings of `text` (the vocabulary entries of encode()).
  std::vector<std::string> tokenize(std::string_view text) const;
  // WordPiece of one basic-tokenizer word (`chars` = its length in code points), appended to `out`.
  void wordpiece(std::string_view word, size_t chars, std::vector<int32_t>& out) const;

  // [CLS] text [SEP]; with max_length > 0 the text is cut to max_length - 2 tokens, and with pad the
  // result is padded with [PAD] to max_length.
  Encoding encode_single(std::string_view text, size_t max_length = 0, bool pad = false) const;
  // [CLS] a [SEP] b [SEP], truncated longest-first to max_length (when > 0), optionally padded.
  Encoding encode_pair(std::string_view a, std::string_view b, size_t max_length = 0, bool pad = false) const;
  // The same from ids (b == nullptr: single sequence).
  Encoding build_inputs(std::vector<int32_t> a, const std::vector<int32_t>* b, size_t max_length = 0,
                        bool pad = false) const;
  // HuggingFace (tokenizers) longest-first truncation of a pair to at most `budget` tokens in total: the
  // longer sequence loses tokens from its end first; when both must be cut, the budget is halved and the
  // odd token goes to the longer one (to b when they are equally long). Returns the number removed.
  static size_t truncate_longest_first(std::vector<int32_t>& a, std::vector<int32_t>& b, size_t budget);

  // Text of `ids`: tokens joined by spaces with " ##" removed (HuggingFace convert_tokens_to_string).
  std::string decode(std::span<const int32_t> ids, DecodeOptions options = {}) const;
  std::vector<std::string> ids_to_tokens(std::span<const int32_t> ids) const;

  // Invalid UTF-8 subparts replaced so far by this tokenizer (all threads).
  uint64_t invalid_utf8_count() const { return invalid_.load(std::memory_order_relaxed); }
  void reset_invalid_utf8_count() { invalid_.store(0, std::memory_order_relaxed); }

 private:
  void init();
  void encode_segment(std::string_view text, std::vector<int32_t>& out, uint64_t& invalid) const;

  struct Special {
    std::string text;
    int32_t id;
  };
  std::shared_ptr<const Vocab> vocab_;
  WordPieceOptions opt_;
  BasicTokenizer basic_;
  std::vector<Special> specials_;  // longest first
  mutable std::atomic<uint64_t> invalid_{0};
};

}  // namespace dense::data
