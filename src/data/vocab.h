#pragma once
// A WordPiece vocabulary: `vocab.txt`, one token per line, id = 0-based line number (BERT's format).
// Loading is strict: an empty line, a duplicate token, a carriage return, invalid UTF-8 or a missing [UNK]
// is a dense::Error naming the file and line. The vocabulary is identified by the sha256 of its file bytes
// (what shards store as `vocab_hash`); the BERT uncased vocab.txt hashes to
// 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dense::data {

// Lower-case hex sha256 of `bytes`.
std::string sha256_hex(std::string_view bytes);

inline constexpr std::string_view kPadToken = "[PAD]";
inline constexpr std::string_view kUnkToken = "[UNK]";
inline constexpr std::string_view kClsToken = "[CLS]";
inline constexpr std::string_view kSepToken = "[SEP]";
inline constexpr std::string_view kMaskToken = "[MASK]";

// Special ids looked up by name; -1 where the vocabulary lacks the token ([UNK] is always present).
struct SpecialIds {
  int32_t pad = -1;
  int32_t unk = -1;
  int32_t cls = -1;
  int32_t sep = -1;
  int32_t mask = -1;
};

class Vocab {
 public:
  Vocab();
  ~Vocab();
  Vocab(Vocab&&) noexcept;
  Vocab& operator=(Vocab&&) noexcept;
  Vocab(const Vocab&);
  Vocab& operator=(const Vocab&);

  // Reads vocab.txt. `path` is named in every error.
  static Vocab load(const std::string& path);
  // Parses vocab.txt content; `source` names it in errors.
  static Vocab parse(std::string_view content, const std::string& source);
  // From a token list (e.g. a trained vocabulary); the same checks as load(). The hash is that of the file
  // save() writes (tokens joined by '\n', with a final '\n').
  static Vocab from_tokens(const std::vector<std::string>& tokens, const std::string& source = "<tokens>");

  // Writes vocab.txt (atomically: a temporary file renamed into place).
  void save(const std::string& path) const;
  // The file content save() writes.
  std::string serialize() const;

  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }
  // id of `token`, or -1.
  int32_t find(std::string_view token) const;
  // id of `token`, or the [UNK] id.
  int32_t id_or_unk(std::string_view token) const;
  bool contains(std::string_view token) const { return find(token) >= 0; }
  // The token of `id`; a dense::Error when out of range.
  const std::string& token(int32_t id) const;
  const std::vector<std::string>& tokens() const { return tokens_; }

  const SpecialIds& special() const { return special_; }
  int32_t pad_id() const { return special_.pad; }
  int32_t unk_id() const { return special_.unk; }
  int32_t cls_id() const { return special_.cls; }
  int32_t sep_id() const { return special_.sep; }
  int32_t mask_id() const { return special_.mask; }
  bool is_special(int32_t id) const;

  // sha256 (hex) of the vocab.txt bytes: the shard attribute `vocab_hash`.
  const std::string& sha256() const { return sha256_; }
  // Where it came from (file path or the name given).
  const std::string& source() const { return source_; }

  // ---- fast lookup used by WordPiece ----
  // id of a continuation piece: "##" + piece, or -1.
  int32_t find_continuation(std::string_view piece) const;
  // Longest token, in bytes (continuation tokens counted without "##").
  size_t max_token_bytes() const { return max_bytes_; }
  size_t max_continuation_bytes() const { return max_cont_bytes_; }
  // id of a single ASCII character as a word-initial token, or -1.
  int32_t ascii_id(unsigned char c) const { return c < 128 ? ascii_ids_[c] : -1; }

 private:
  struct Table;
  void build(const std::string& source);

  std::vector<std::string> tokens_;
  std::unique_ptr<Table> whole_;  // every token
  std::unique_ptr<Table> cont_;   // "##x" tokens, keyed by x
  SpecialIds special_;
  std::string sha256_;
  std::string source_;
  size_t max_bytes_ = 0;
  size_t max_cont_bytes_ = 0;
  int32_t ascii_ids_[128];
};

}  // namespace dense::data
