#include "data_prep/char_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/error.h"
#include "data/text_normalize.h"

namespace dense::data {

// ---- ByteTokenizer -------------------------------------------------------------------------------------

ByteTokenizer::ByteTokenizer(int32_t offset) : offset_(offset) {
  DENSE_CHECK(offset >= 0, "ByteTokenizer: offset must be non-negative, got {}", offset);
}

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  encode_append(text, out);
  return out;
}

void ByteTokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  const size_t old = out.size();
  out.resize(old + text.size());
  for (size_t i = 0; i < text.size(); ++i)
    out[old + i] = static_cast<int32_t>(static_cast<unsigned char>(text[i])) + offset_;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (const int32_t id : ids)
    if (id >= offset_ && id < offset_ + 256) out.push_back(static_cast<char>(static_cast<unsigned char>(id - offset_)));
  return out;
}

// ---- CharCounter ---------------------------------------------------------------------------------------

void CharCounter::add_text(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      ++ascii_[b];
      ++i;
      continue;
    }
    bool bad = false;
    const char32_t cp = decode_utf8(text.data(), text.size(), i, bad);
    if (bad) ++invalid_;
    ++other_[cp];
  }
}

void CharCounter::merge(const CharCounter& other) {
  for (size_t c = 0; c < 128; ++c) ascii_[c] += other.ascii_[c];
  for (const auto& [cp, n] : other.other_) other_[cp] += n;
  invalid_ += other.invalid_;
}

std::map<char32_t, int64_t> CharCounter::counts() const {
  std::map<char32_t, int64_t> out = other_;
  for (size_t c = 0; c < 128; ++c)
    if (ascii_[c] > 0) out[static_cast<char32_t>(c)] = ascii_[c];
  return out;
}

// ---- CharTokenizer -------------------------------------------------------------------------------------

CharTokenizer CharTokenizer::build(const CharCounter& counter, const CharVocabOptions& options) {
  std::vector<char32_t> chars;
  for (const auto& [cp, n] : counter.counts())
    if (n >= options.min_frequency) chars.push_back(cp);
  return from_chars(std::move(chars), options.add_cls);
}

CharTokenizer CharTokenizer::build(const std::vector<std::string>& texts, const CharVocabOptions& options) {
  CharCounter counter;
  for (const auto& t : texts) counter.add_text(t);
  return build(counter, options);
}

CharTokenizer CharTokenizer::from_chars(std::vector<char32_t> chars, bool add_cls) {
  CharTokenizer t;
  t.chars_ = std::move(chars);
  t.has_cls_ = add_cls;
  t.index();
  return t;
}

void CharTokenizer::index() {
  ascii_ids_.assign(128, kUnkId);
  other_ids_.clear();
  for (size_t k = 0; k < chars_.size(); ++k) {
    const char32_t cp = chars_[k];
    DENSE_CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF),
                "character vocabulary: U+{:04X} is not a Unicode scalar value", static_cast<uint32_t>(cp));
    const int32_t id = first_char_id() + static_cast<int32_t>(k);
    const bool dup = cp < 128 ? ascii_ids_[cp] != kUnkId : other_ids_.count(cp) > 0;
    DENSE_CHECK(!dup, "character vocabulary: U+{:04X} appears twice", static_cast<uint32_t>(cp));
    if (cp < 128) {
      ascii_ids_[cp] = id;
    } else {
      other_ids_[cp] = id;
    }
  }
}

int32_t CharTokenizer::id(char32_t cp) const {
  if (cp < 128) return ascii_ids_.empty() ? kUnkId : ascii_ids_[cp];
  const auto it = other_ids_.find(cp);
  return it == other_ids_.end() ? kUnkId : it->second;
}

char32_t CharTokenizer::code_point(int32_t id) const {
  const int32_t k = id - first_char_id();
  DENSE_CHECK(k >= 0 && k < static_cast<int32_t>(chars_.size()),
              "character id {} is not a character (vocabulary size {})", id, size());
  return chars_[static_cast<size_t>(k)];
}

std::vector<int32_t> CharTokenizer::encode(std::string_view text, uint64_t* invalid_utf8) const {
  std::vector<int32_t> out;
  out.reserve(text.size());
  uint64_t bad_count = 0;
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      out.push_back(id(b));
      ++i;
      continue;
    }
    bool bad = false;
    const char32_t cp = decode_utf8(text.data(), text.size(), i, bad);
    bad_count += bad;
    out.push_back(id(cp));
  }
  if (invalid_utf8) *invalid_utf8 += bad_count;
  return out;
}

std::vector<int32_t> CharTokenizer::encode_fixed(std::string_view text, size_t length, bool with_cls,
                                                 uint64_t* invalid_utf8) const {
  DENSE_CHECK(!with_cls || has_cls_, "character vocabulary has no [CLS]");
  std::vector<int32_t> out;
  out.reserve(length);
  if (with_cls) out.push_back(cls_id());
  const std::vector<int32_t> ids = encode(text, invalid_utf8);
  for (size_t k = 0; k < ids.size() && out.size() < length; ++k) out.push_back(ids[k]);
  out.resize(length, kPadId);
  return out;
}

std::string CharTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (const int32_t id : ids) {
    if (id == kPadId || id == cls_id()) continue;
    if (id == kUnkId) {
      append_utf8(out, 0xFFFD);
    } else {
      append_utf8(out, code_point(id));
    }
  }
  return out;
}

nlohmann::json CharTokenizer::to_json() const {
  nlohmann::json chars = nlohmann::json::array();
  for (const char32_t cp : chars_) chars.push_back(static_cast<uint32_t>(cp));
  return {{"type", "char"}, {"pad_id", kPadId}, {"unk_id", kUnkId}, {"add_cls", has_cls_}, {"chars", chars}};
}

CharTokenizer CharTokenizer::from_json(const nlohmann::json& j) {
  DENSE_CHECK(j.is_object() && j.value("type", "") == "char", "not a character vocabulary: {}",
              j.dump().substr(0, 200));
  DENSE_CHECK(j.contains("chars") && j["chars"].is_array(), "character vocabulary without a 'chars' array");
  std::vector<char32_t> chars;
  for (const auto& c : j["chars"]) {
    DENSE_CHECK(c.is_number_unsigned(), "character vocabulary: code points must be non-negative integers");
    chars.push_back(static_cast<char32_t>(c.get<uint32_t>()));
  }
  return from_chars(std::move(chars), j.value("add_cls", false));
}

}  // namespace dense::data
