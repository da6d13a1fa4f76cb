#pragma once
// BERT's "basic tokenizer" (google-research/bert tokenization.py, HuggingFace BasicTokenizer) and the UTF-8
// helpers it needs. It turns raw text into the words that WordPiece then splits:
//   1. clean: drop U+0000, U+FFFD and control characters (Unicode C*, except \t \n \r); whitespace (space,
//      \t \n \r, Zs, and U+2028/U+2029, which Python's str.split() splits on) becomes a separator;
//   2. CJK ideographs (BERT's ranges) become words of their own;
//   3. split on whitespace;
//   4. uncased: lower-case (Python's str.lower(), final sigma included), then NFD and drop Mn (accents);
//   5. split off punctuation (ASCII 33-47, 58-64, 91-96, 123-126 and Unicode P*) as one-character words.
// Invalid UTF-8 is replaced by U+FFFD (one per maximal ill-formed subpart, as WHATWG / Unicode §3.9 advise)
// and so dropped by step 1; each replacement is counted.
// Words made only of ASCII take a fast path that never calls utf8proc.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dense::data {

// ---- UTF-8 ------------------------------------------------------------------------------------------

// Decodes one code point at s[i] (i < n), advancing i. An ill-formed sequence yields U+FFFD, sets
// `invalid`, and advances past its maximal subpart (at least one byte).
char32_t decode_utf8(const char* s, size_t n, size_t& i, bool& invalid);
// Appends the UTF-8 encoding of cp (which must be a Unicode scalar value) to out.
void append_utf8(std::string& out, char32_t cp);
// True if `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);
// Replaces every maximal ill-formed subsequence (Unicode §3.9, "U+FFFD substitution of maximal subparts") by
// U+FFFD in place; returns how many were replaced. Surrogates and overlong forms are ill-formed. The one
// implementation of UTF-8 repair (sanitize_utf8 and tsv_fix_utf8 call it): valid input, the common case, is
// only scanned (ASCII eight bytes at a time), never copied.
int64_t repair_utf8_inplace(std::string& s);
// `text` with every ill-formed subpart replaced by U+FFFD; adds the number replaced to *replaced.
std::string sanitize_utf8(std::string_view text, uint64_t* replaced = nullptr);

// ---- BERT character classes (code points) ------------------------------------------------------------

bool is_bert_whitespace(char32_t cp);   // separators after cleaning (space, \t \n \r, Zs, U+2028, U+2029)
bool is_bert_control(char32_t cp);      // dropped by cleaning: C* except \t \n \r
bool is_bert_punctuation(char32_t cp);  // ASCII 33-47, 58-64, 91-96, 123-126, Unicode P*
bool is_cjk_char(char32_t cp);          // BERT's CJK Unified Ideograph ranges

// ---- basic tokenizer ---------------------------------------------------------------------------------

struct BasicTokenizerOptions {
  bool lowercase = true;   // uncased BERT: lower-case, and strip accents unless strip_accents is false
  int strip_accents = -1;  // -1: same as lowercase; 0: never; 1: always (also when cased)
  bool tokenize_chinese_chars = true;
};

// Words of one text, stored back to back: word k is bytes.substr(words[k].offset, words[k].size).
struct WordList {
  struct Ref {
    size_t offset;
    uint32_t size;   // bytes
    uint32_t chars;  // code points
  };
  std::string bytes;
  std::vector<Ref> words;
  void clear() {
    bytes.clear();
    words.clear();
  }
  size_t size() const { return words.size(); }
  std::string_view operator[](size_t k) const { return {bytes.data() + words[k].offset, words[k].size}; }
};

class BasicTokenizer {
 public:
  explicit BasicTokenizer(BasicTokenizerOptions options = {});
  const BasicTokenizerOptions& options() const { return opt_; }
  bool strips_accents() const { return strip_; }

  // Appends the words of `text` to `out`. Returns how many ill-formed UTF-8 subparts were replaced.
  uint64_t split(std::string_view text, WordList& out) const;
  // Convenience: the words as strings.
  std::vector<std::string> tokenize(std::string_view text, uint64_t* invalid_utf8 = nullptr) const;

 private:
  size_t slow_token(const char* s, size_t n, size_t i, WordList& out, uint64_t& invalid) const;

  BasicTokenizerOptions opt_;
  bool strip_ = true;
};

}  // namespace dense::data
