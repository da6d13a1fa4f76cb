#pragma once
// Byte- and character-level tokenizers for the Long Range Arena text tasks (docs/model.md §3.5).
//   ByteTokenizer: id = byte value + offset (vocabulary 256 + offset).
//   CharTokenizer: a character (Unicode code point) vocabulary built from training text with a minimum
//     frequency, as the LRA Text conversion does: [PAD] = 0, [UNK] = 1, optional [CLS] = 2, then the kept
//     characters in code-point order. Invalid UTF-8 decodes to U+FFFD (counted) and is then an ordinary
//     character. Characters are never normalised.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dense::data {

class ByteTokenizer {
 public:
  explicit ByteTokenizer(int32_t offset = 0);
  int32_t offset() const { return offset_; }
  int32_t vocab_size() const { return 256 + offset_; }
  std::vector<int32_t> encode(std::string_view text) const;
  void encode_append(std::string_view text, std::vector<int32_t>& out) const;
  // Bytes of the ids in [offset, offset + 256); other ids (padding, specials) are skipped.
  std::string decode(std::span<const int32_t> ids) const;

 private:
  int32_t offset_;
};

struct CharVocabOptions {
  int64_t min_frequency = 1;  // keep characters seen at least this often (LRA Text: 15; AAN: 1)
  bool add_cls = false;       // reserve id 2 for [CLS] (AAN)
};

// Counts characters of training text; merge() counters filled by different threads.
class CharCounter {
 public:
  void add_text(std::string_view text);
  void merge(const CharCounter& other);
  // Every character seen, with its count.
  std::map<char32_t, int64_t> counts() const;
  uint64_t invalid_utf8() const { return invalid_; }

 private:
  int64_t ascii_[128] = {};
  std::map<char32_t, int64_t> other_;
  uint64_t invalid_ = 0;
};

class CharTokenizer {
 public:
  static constexpr int32_t kPadId = 0;
  static constexpr int32_t kUnkId = 1;

  CharTokenizer() = default;
  // The vocabulary of the counted characters.
  static CharTokenizer build(const CharCounter& counter, const CharVocabOptions& options);
  static CharTokenizer build(const std::vector<std::string>& texts, const CharVocabOptions& options);
  // Explicit characters (in this order after the reserved ids).
  static CharTokenizer from_chars(std::vector<char32_t> chars, bool add_cls);

  int32_t size() const { return static_cast<int32_t>(chars_.size()) + first_char_id(); }
  int32_t pad_id() const { return kPadId; }
  int32_t unk_id() const { return kUnkId; }
  int32_t cls_id() const { return has_cls_ ? 2 : -1; }
  bool has_cls() const { return has_cls_; }
  const std::vector<char32_t>& chars() const { return chars_; }
  int32_t id(char32_t cp) const;          // [UNK] when absent
  char32_t code_point(int32_t id) const;  // dense::Error unless id is a character id

  // Ids of the characters of `text` (no [CLS], no padding). Adds invalid UTF-8 subparts to *invalid_utf8.
  std::vector<int32_t> encode(std::string_view text, uint64_t* invalid_utf8 = nullptr) const;
  // [CLS] first when with_cls (requires add_cls), then the characters, cut to `length` and padded with
  // [PAD] to `length` (LRA: 4000).
  std::vector<int32_t> encode_fixed(std::string_view text, size_t length, bool with_cls,
                                    uint64_t* invalid_utf8 = nullptr) const;
  // Text of the character ids; [PAD] and [CLS] are skipped, [UNK] becomes U+FFFD.
  std::string decode(std::span<const int32_t> ids) const;

  // {"type": "char", "add_cls": bool, "chars": [code points...]}: stored with shards.
  nlohmann::json to_json() const;
  static CharTokenizer from_json(const nlohmann::json& j);

 private:
  int32_t first_char_id() const { return has_cls_ ? 3 : 2; }
  void index();

  std::vector<char32_t> chars_;
  bool has_cls_ = false;
  std::vector<int32_t> ascii_ids_;  // 128 entries
  std::map<char32_t, int32_t> other_ids_;
};

}  // namespace dense::data
