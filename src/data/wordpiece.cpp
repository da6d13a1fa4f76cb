#include "data/wordpiece.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace dense::data {

namespace {

BasicTokenizerOptions basic_options(const WordPieceOptions& o) {
  BasicTokenizerOptions b;
  b.lowercase = o.lowercase;
  b.strip_accents = o.strip_accents;
  b.tokenize_chinese_chars = o.tokenize_chinese_chars;
  return b;
}

inline bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

inline bool is_ascii_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// Texts are split into blocks of about this size (at ASCII whitespace) so the word buffer stays in cache.
constexpr size_t kBlock = size_t(1) << 16;

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  std::string out;
  bool any = false;
  while (true) {
    const size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    any = true;
    out.append(s, pos, at - pos);
    out.append(to);
    pos = at + from.size();
  }
  if (!any) return;
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::shared_ptr<const Vocab> vocab, WordPieceOptions options)
    : vocab_(std::move(vocab)), opt_(std::move(options)), basic_(basic_options(opt_)) {
  init();
}

WordPieceTokenizer::WordPieceTokenizer(Vocab vocab, WordPieceOptions options)
    : WordPieceTokenizer(std::make_shared<const Vocab>(std::move(vocab)), std::move(options)) {}

WordPieceTokenizer WordPieceTokenizer::from_file(const std::string& vocab_txt, WordPieceOptions options) {
  return WordPieceTokenizer(Vocab::load(vocab_txt), std::move(options));
}

WordPieceTokenizer::WordPieceTokenizer(const WordPieceTokenizer& o)
    : vocab_(o.vocab_), opt_(o.opt_), basic_(o.basic_), specials_(o.specials_), invalid_(o.invalid_utf8_count()) {}

WordPieceTokenizer& WordPieceTokenizer::operator=(const WordPieceTokenizer& o) {
  if (this != &o) {
    vocab_ = o.vocab_;
    opt_ = o.opt_;
    basic_ = o.basic_;
    specials_ = o.specials_;
    invalid_.store(o.invalid_utf8_count(), std::memory_order_relaxed);
  }
  return *this;
}

void WordPieceTokenizer::init() {
  DENSE_CHECK(vocab_ != nullptr, "WordPieceTokenizer needs a vocabulary");
  DENSE_CHECK(opt_.max_input_chars_per_word > 0, "max_input_chars_per_word must be positive");
  specials_.clear();
  for (const auto& s : opt_.never_split) {
    if (s.empty()) continue;
    const int32_t id = vocab_->find(s);
    if (id < 0) continue;
    if (std::any_of(specials_.begin(), specials_.end(), [&](const Special& x) { return x.text == s; })) continue;
    specials_.push_back({s, id});
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const Special& a, const Special& b) { return a.text.size() > b.text.size(); });
}

void WordPieceTokenizer::wordpiece(std::string_view word, size_t chars, std::vector<int32_t>& out) const {
  const Vocab& v = *vocab_;
  if (chars > opt_.max_input_chars_per_word) {
    out.push_back(v.unk_id());
    return;
  }
  const char* p = word.data();
  const size_t n = word.size();
  if (n == 1) {
    const int32_t id = v.ascii_id(static_cast<unsigned char>(p[0]));
    out.push_back(id >= 0 ? id : v.unk_id());
    return;
  }
  const size_t mark = out.size();
  size_t start = 0;
  while (start < n) {
    const size_t limit = start == 0 ? v.max_token_bytes() : v.max_continuation_bytes();
    size_t end = std::min(n, start + limit);
    while (end > start && end < n && is_utf8_continuation(p[end])) --end;
    int32_t id = -1;
    while (end > start) {
      id =
          start == 0 ? v.find(std::string_view(p, end)) : v.find_continuation(std::string_view(p + start, end - start));
      if (id >= 0) break;
      --end;
      while (end > start && is_utf8_continuation(p[end])) --end;
    }
    if (id < 0) {
      out.resize(mark);
      out.push_back(v.unk_id());
      return;
    }
    out.push_back(id);
    start = end;
  }
}

void WordPieceTokenizer::encode_segment(std::string_view text, std::vector<int32_t>& out, uint64_t& invalid) const {
  thread_local WordList words;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.size();
    if (end - pos > kBlock) {
      // Cut at ASCII whitespace: no step of the basic tokenizer looks across it.
      end = pos + kBlock;
      size_t cut = end;
      while (cut > pos + kBlock / 2 && !is_ascii_space(text[cut])) --cut;
      if (!is_ascii_space(text[cut])) {
        cut = end;
        while (cut < text.size() && !is_ascii_space(text[cut])) ++cut;
      }
      end = cut;
    }
    words.clear();
    invalid += basic_.split(text.substr(pos, end - pos), words);
    for (const auto& w : words.words) wordpiece(std::string_view(words.bytes.data() + w.offset, w.size), w.chars, out);
    pos = end;
  }
}

uint64_t WordPieceTokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  uint64_t invalid = 0;
  size_t pos = 0;
  if (!specials_.empty()) {
    size_t scan = 0;
    while (true) {
      const void* hit = scan < text.size() ? std::memchr(text.data() + scan, '[', text.size() - scan) : nullptr;
      if (hit == nullptr) break;
      const size_t at = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
      const Special* match = nullptr;
      for (const auto& s : specials_) {
        if (text.size() - at >= s.text.size() && std::memcmp(text.data() + at, s.text.data(), s.text.size()) == 0) {
          match = &s;
          break;
        }
      }
      if (match == nullptr) {
        scan = at + 1;
        continue;
      }
      if (at > pos) encode_segment(text.substr(pos, at - pos), out, invalid);
      out.push_back(match->id);
      pos = scan = at + match->text.size();
    }
  }
  if (pos < text.size()) encode_segment(text.substr(pos), out, invalid);
  if (invalid) invalid_.fetch_add(invalid, std::memory_order_relaxed);
  return invalid;
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 4);
  encode_append(text, ids);
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  return ids_to_tokens(encode(text));
}

std::vector<std::string> WordPieceTokenizer::ids_to_tokens(std::span<const int32_t> ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const int32_t id : ids) out.push_back(vocab_->token(id));
  return out;
}

size_t WordPieceTokenizer::truncate_longest_first(std::vector<int32_t>& a, std::vector<int32_t>& b, size_t budget) {
  const size_t total = a.size() + b.size();
  if (total <= budget) return 0;
  // tokenizers' TruncationStrategy::LongestFirst.
  size_t n1 = a.size(), n2 = b.size();
  const bool swap = n1 > n2;
  if (swap) std::swap(n1, n2);
  if (n1 > budget) {
    n2 = n1;
  } else {
    n2 = std::max(n1, budget - n1);
  }
  if (n1 + n2 > budget) {
    n1 = budget / 2;
    n2 = n1 + budget % 2;
  }
  if (swap) std::swap(n1, n2);
  if (a.size() > n1) a.resize(n1);
  if (b.size() > n2) b.resize(n2);
  return total - a.size() - b.size();
}

Encoding WordPieceTokenizer::build_inputs(std::vector<int32_t> a, const std::vector<int32_t>* b, size_t max_length,
                                          bool pad) const {
  const Vocab& v = *vocab_;
  DENSE_CHECK(v.cls_id() >= 0 && v.sep_id() >= 0, "vocabulary {} lacks [CLS] or [SEP]", v.source());
  const size_t added = b ? 3 : 2;
  Encoding e;
  std::vector<int32_t> second = b ? *b : std::vector<int32_t>{};
  if (max_length > 0) {
    DENSE_CHECK(max_length >= added, "max_length {} is too small for {} special tokens", max_length, added);
    const size_t budget = max_length - added;
    if (b) {
      e.truncated = truncate_longest_first(a, second, budget);
    } else if (a.size() > budget) {
      e.truncated = a.size() - budget;
      a.resize(budget);
    }
  }
  const size_t len = a.size() + second.size() + added;
  const size_t total = pad && max_length > len ? max_length : len;
  e.input_ids.reserve(total);
  e.input_ids.push_back(v.cls_id());
  e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
  e.input_ids.push_back(v.sep_id());
  e.token_type_ids.assign(e.input_ids.size(), 0);
  if (b) {
    e.input_ids.insert(e.input_ids.end(), second.begin(), second.end());
    e.input_ids.push_back(v.sep_id());
    e.token_type_ids.resize(e.input_ids.size(), 1);
  }
  e.attention_mask.assign(e.input_ids.size(), 1);
  if (total > len) {
    DENSE_CHECK(v.pad_id() >= 0, "vocabulary {} lacks [PAD]", v.source());
    e.input_ids.resize(total, v.pad_id());
    e.token_type_ids.resize(total, 0);
    e.attention_mask.resize(total, 0);
  }
  return e;
}

Encoding WordPieceTokenizer::encode_single(std::string_view text, size_t max_length, bool pad) const {
  return build_inputs(encode(text), nullptr, max_length, pad);
}

Encoding WordPieceTokenizer::encode_pair(std::string_view a, std::string_view b, size_t max_length, bool pad) const {
  const std::vector<int32_t> ib = encode(b);
  return build_inputs(encode(a), &ib, max_length, pad);
}

std::string WordPieceTokenizer::decode(std::span<const int32_t> ids, DecodeOptions options) const {
  std::string text;
  bool first = true;
  for (const int32_t id : ids) {
    const std::string& tok = vocab_->token(id);
    if (options.skip_special_tokens && vocab_->is_special(id)) continue;
    if (!first) text += ' ';
    text += tok;
    first = false;
  }
  replace_all(text, " ##", "");
  const size_t b = text.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return {};
  text = text.substr(b, text.find_last_not_of(" \t\n\r") + 1 - b);
  if (options.clean_up_spaces) {
    for (const auto& [from, to] : std::initializer_list<std::pair<std::string_view, std::string_view>>{{" .", "."},
                                                                                                       {" ?", "?"},
                                                                                                       {" !", "!"},
                                                                                                       {" ,", ","},
                                                                                                       {" ' ", "'"},
                                                                                                       {" n't", "n't"},
                                                                                                       {" 'm", "'m"},
                                                                                                       {" 's", "'s"},
                                                                                                       {" 've", "'ve"},
                                                                                                       {" 're", "'re"}})
      replace_all(text, from, to);
  }
  return text;
}

}  // namespace dense::data
