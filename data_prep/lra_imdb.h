#pragma once
// LRA Text: byte-level IMDB sentiment from the aclImdb folder layout (docs/model.md §3.5: train 25k, test 25k, the test
// set doubling as validation; sequences of 4000 tokens, no CLS). Reviews are read as raw bytes (no decoding:
// the bytes are the tokens); label 1 = pos, 0 = neg. Order: neg files then pos files, each sorted by the
// numeric review id of "<id>_<rating>.txt" (then by name), so the result does not depend on the file system.
#include <cstddef>
#include <filesystem>
#include <string_view>
#include <vector>

#include "data_prep/lra_common.h"

namespace dense::data::lra {

struct TextSplit {
  std::vector<TextExample> examples;
  size_t empty_documents = 0;  // empty review files (kept, counted)
  size_t size() const { return examples.size(); }
};

// `root` is the aclImdb folder (or a folder holding aclImdb/); `split` is "train" or "test". Missing folders
// and folders without any .txt file are errors naming them; unreadable files are errors naming the file.
TextSplit read_imdb_split(const std::filesystem::path& root, std::string_view split);

// Byte tokens with the spec's Text defaults (4000, no CLS): see ByteTokenOptions.
inline TokenSet encode_imdb(const TextSplit& split, const ByteTokenOptions& options = {}) {
  return encode_bytes(split.examples, options);
}

}  // namespace dense::data::lra
