// WordPiece tokenizer on arbitrary bytes, with the small test vocabulary (uncased and cased).
// Input: one control byte (options), then text A, optionally NUL, then text B for the pair encoding.
#include <algorithm>
#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "data/text_normalize.h"
#include "data/wordpiece.h"
#include "fuzz_common.h"

using dense::data::DecodeOptions;
using dense::data::Encoding;
using dense::data::Vocab;
using dense::data::WordPieceOptions;
using dense::data::WordPieceTokenizer;

namespace {

// Loaded once: reading and hashing the vocabulary per input would dominate the run time.
struct Tokenizers {
  std::shared_ptr<const Vocab> vocab;
  std::unique_ptr<WordPieceTokenizer> uncased, cased;
  Tokenizers() {
    const char* env = std::getenv("DENSE_FUZZ_VOCAB");
    vocab = std::make_shared<const Vocab>(Vocab::load(env ? env : DENSE_FUZZ_VOCAB));
    uncased = std::make_unique<WordPieceTokenizer>(vocab, WordPieceOptions::uncased());
    WordPieceOptions c = WordPieceOptions::cased();
    // A short word limit reaches the "too long, one [UNK]" path with fuzzer-sized inputs.
    c.max_input_chars_per_word = 7;
    cased = std::make_unique<WordPieceTokenizer>(vocab, c);
  }
};

const Tokenizers& tokenizers() {
  static const Tokenizers t;
  return t;
}

void check_ids(const Vocab& v, const std::vector<int32_t>& ids) {
  for (const int32_t id : ids) FUZZ_CHECK(id >= 0 && id < v.size());
}

std::vector<int32_t> encode_checked(const WordPieceTokenizer& tok, std::string_view text) {
  const Vocab& v = tok.vocab();
  std::vector<int32_t> ids;
  const uint64_t invalid = tok.encode_append(text, ids);
  check_ids(v, ids);
  // Every ill-formed subpart is counted once, as sanitize_utf8 counts them: the tokenizer's splits (at special
  // tokens and ASCII whitespace) never fall inside a UTF-8 sequence.
  uint64_t replaced = 0;
  (void)dense::data::sanitize_utf8(text, &replaced);
  FUZZ_CHECK(invalid == replaced);
  // encode keeps per-thread scratch state: a second call must not see the first one's leftovers.
  FUZZ_CHECK(tok.encode(text) == ids);
  const std::vector<std::string> tokens = tok.tokenize(text);
  FUZZ_CHECK(tokens.size() == ids.size());
  for (size_t i = 0; i < ids.size(); ++i) FUZZ_CHECK(tokens[i] == v.token(ids[i]));
  return ids;
}

void check_encoding(const WordPieceTokenizer& tok, const Encoding& e, const std::vector<int32_t>& a,
                    const std::vector<int32_t>* b, size_t max_length, bool pad) {
  const Vocab& v = tok.vocab();
  const size_t n = e.input_ids.size();
  FUZZ_CHECK(e.token_type_ids.size() == n && e.attention_mask.size() == n);
  check_ids(v, e.input_ids);
  const size_t added = b ? 3 : 2;
  const size_t wanted = a.size() + (b ? b->size() : 0) + added;
  const size_t real = size_t(std::count(e.attention_mask.begin(), e.attention_mask.end(), int8_t(1)));
  FUZZ_CHECK(real + e.truncated == wanted);
  FUZZ_CHECK(std::is_sorted(e.attention_mask.begin(), e.attention_mask.end(), std::greater<int8_t>()));
  if (max_length > 0) FUZZ_CHECK(n <= std::max(max_length, added));
  if (pad && max_length > 0) FUZZ_CHECK(n == max_length);
  if (max_length == 0) FUZZ_CHECK(e.truncated == 0 && n == wanted);
  FUZZ_CHECK(n >= added && e.input_ids[0] == v.cls_id());
  for (size_t i = real; i < n; ++i) FUZZ_CHECK(e.input_ids[i] == v.pad_id() && e.token_type_ids[i] == 0);
  // Segment ids are 0 for [CLS] a [SEP], then 1 for b [SEP]: that gives how much of a was kept.
  FUZZ_CHECK(std::is_sorted(e.token_type_ids.begin(), e.token_type_ids.begin() + ptrdiff_t(real)));
  const size_t type0 = size_t(std::count(e.token_type_ids.begin(), e.token_type_ids.begin() + ptrdiff_t(real), 0));
  FUZZ_CHECK(type0 >= 2);
  const size_t kept_a = type0 - 2;
  // Truncation cuts from the ends: the kept tokens are prefixes of a and b.
  FUZZ_CHECK(kept_a <= a.size());
  FUZZ_CHECK(std::equal(a.begin(), a.begin() + ptrdiff_t(kept_a), e.input_ids.begin() + 1));
  FUZZ_CHECK(e.input_ids[kept_a + 1] == v.sep_id());
  if (b) {
    const size_t kept_b = real - added - kept_a;
    FUZZ_CHECK(kept_b <= b->size());
    FUZZ_CHECK(std::equal(b->begin(), b->begin() + ptrdiff_t(kept_b), e.input_ids.begin() + ptrdiff_t(kept_a + 2)));
    FUZZ_CHECK(e.input_ids[real - 1] == v.sep_id());
  } else {
    FUZZ_CHECK(type0 == real);
  }
  // Longest-first truncation uses the whole budget.
  if (e.truncated > 0) FUZZ_CHECK(real == max_length);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizers& t = tokenizers();
  dense::fuzz::Input in(data, size);
  const uint8_t ctl = in.byte();
  const WordPieceTokenizer& tok = (ctl & 1) ? *t.cased : *t.uncased;
  const bool pad = ctl & 2;
  size_t max_length = ctl >> 2;                           // 0 = no limit
  if (max_length > 0 && max_length < 3) max_length += 3;  // fewer than the special tokens is a documented error
  const auto [a, b] = dense::fuzz::split_nul(in.rest());

  const std::vector<int32_t> ia = encode_checked(tok, a);
  const std::vector<int32_t> ib = encode_checked(tok, b);
  const std::vector<int32_t> whole = encode_checked(tok, in.rest());

  const Encoding pair = tok.encode_pair(a, b, max_length, pad);
  check_encoding(tok, pair, ia, &ib, max_length, pad);
  const Encoding single = tok.encode_single(a, max_length, pad);
  check_encoding(tok, single, ia, nullptr, max_length, pad);

  // Decoding ids the tokenizer produced never fails, whatever the options.
  for (int opt = 0; opt < 4; ++opt) {
    DecodeOptions d;
    d.skip_special_tokens = opt & 1;
    d.clean_up_spaces = opt & 2;
    const std::string text = tok.decode(whole, d);
    FUZZ_CHECK(dense::data::is_valid_utf8(text));
    (void)tok.decode(pair.input_ids, d);
  }
  // Arbitrary ids: in range they decode; out of range is a dense::Error, never a crash.
  std::vector<int32_t> raw;
  // Mostly in range, a few just outside it at either end.
  const int32_t span = t.vocab->size() + 8;
  for (size_t i = 0; i + 1 < a.size(); i += 2)
    raw.push_back(int32_t((uint32_t(uint8_t(a[i])) | uint32_t(uint8_t(a[i + 1])) << 8) % uint32_t(span)) - 4);
  try {
    (void)tok.decode(raw);
    (void)tok.ids_to_tokens(raw);
  } catch (const dense::Error&) {
  }
  return 0;
}
