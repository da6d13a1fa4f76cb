// Vocab::parse on arbitrary bytes (a vocab.txt), then a WordPiece tokenizer over whatever vocabulary parsed,
// run on the file's own bytes: odd vocabularies ("##" alone, "###", multi-byte tokens, no [CLS]) reach
// longest-match paths that the fixed test vocabulary never does.
#include "core/error.h"
#include "data/text_normalize.h"
#include "data/vocab.h"
#include "data/wordpiece.h"
#include "fuzz_common.h"

using dense::data::Vocab;
using dense::data::WordPieceTokenizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  Vocab v;
  try {
    v = Vocab::parse(content, "fuzz-vocab.txt");
  } catch (const dense::Error&) {
    return 0;  // a rejected file is fine; only crashes, UB and leaks are bugs
  }
  FUZZ_CHECK(v.size() > 0);
  FUZZ_CHECK(v.unk_id() >= 0 && v.token(v.unk_id()) == "[UNK]");
  for (int32_t id = 0; id < v.size(); ++id) {
    const std::string& t = v.token(id);
    FUZZ_CHECK(!t.empty() && dense::data::is_valid_utf8(t));
    FUZZ_CHECK(v.find(t) == id);
    if (t.size() > 2 && t.starts_with("##")) FUZZ_CHECK(v.find_continuation(std::string_view(t).substr(2)) == id);
  }
  // The hash is of the file bytes, and the file is what serialize() writes (up to a missing final newline).
  FUZZ_CHECK(v.sha256() == dense::data::sha256_hex(content));
  const std::string ser = v.serialize();
  FUZZ_CHECK(ser == content || (content.back() != '\n' && ser == std::string(content) + '\n'));
  const Vocab again = Vocab::parse(ser, "again");
  FUZZ_CHECK(again.tokens() == v.tokens());

  const WordPieceTokenizer tok(v);
  const std::vector<int32_t> ids = tok.encode(content);
  for (const int32_t id : ids) FUZZ_CHECK(id >= 0 && id < v.size());
  (void)tok.decode(ids);
  try {
    // Needs [CLS] and [SEP], which a fuzzed vocabulary may lack: that is a dense::Error.
    (void)tok.encode_pair(content, content, 16, true);
  } catch (const dense::Error&) {
  }
  return 0;
}
