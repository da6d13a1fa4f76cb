// The three UTF-8 repair routines (corpus reader, TSV reader, tokenizer) implement one rule, Unicode's
// "U+FFFD substitution of maximal subparts": on any bytes they must agree exactly, in output and in count.
#include "data/text_normalize.h"
#include "data/tsv.h"
#include "data_prep/corpus.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  uint64_t n_sanitize = 0;
  const std::string sanitized = dense::data::sanitize_utf8(in, &n_sanitize);
  std::string repaired(in);
  const int64_t n_repair = dense::data::repair_utf8_inplace(repaired);
  std::string tsv(in);
  const size_t n_tsv = dense::data::tsv_fix_utf8(tsv);

  FUZZ_CHECK(repaired == sanitized);
  FUZZ_CHECK(tsv == sanitized);
  FUZZ_CHECK(uint64_t(n_repair) == n_sanitize && n_tsv == n_sanitize);
  FUZZ_CHECK(dense::data::is_valid_utf8(sanitized));
  FUZZ_CHECK(dense::data::is_valid_utf8(in) == (n_sanitize == 0));
  if (n_sanitize == 0) FUZZ_CHECK(sanitized == in);

  // Repair is idempotent.
  std::string twice = sanitized;
  FUZZ_CHECK(dense::data::repair_utf8_inplace(twice) == 0 && twice == sanitized);

  // Decoding code point by code point covers the whole input and re-encodes to the sanitized text.
  std::string re;
  size_t i = 0;
  while (i < in.size()) {
    const size_t before = i;
    bool bad = false;
    const char32_t cp = dense::data::decode_utf8(in.data(), in.size(), i, bad);
    FUZZ_CHECK(i > before && i <= in.size());
    FUZZ_CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
    FUZZ_CHECK(!bad || cp == 0xFFFD);
    dense::data::append_utf8(re, cp);
  }
  FUZZ_CHECK(re == sanitized);

  // The basic tokenizer counts replacements the same way, and its words are valid, non-empty UTF-8.
  const dense::data::BasicTokenizer basic;
  dense::data::WordList words;
  FUZZ_CHECK(basic.split(in, words) == n_sanitize);
  for (size_t k = 0; k < words.size(); ++k) {
    FUZZ_CHECK(!words[k].empty() && dense::data::is_valid_utf8(words[k]));
    // WordPiece's per-word length limit is in code points: the count must be exact.
    size_t cps = 0;
    for (const char c : words[k]) cps += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    FUZZ_CHECK(words.words[k].chars == cps);
  }
  return 0;
}
