#pragma once
// LRA Retrieval (AAN citation pairs): the release TSVs new_aan_pairs.{train,eval,test}.tsv, quote-free, five
// columns: label, id1, id2, text1, text2 (no header; a first row starting "label\t" is taken as a header and
// skipped). The label is 0 or 1 (written "0"/"1" or "0.0"/"1.0"). Errors name file:line. Spec §3.5: each
// document becomes 4000 tokens with CLS first.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "data_prep/lra_common.h"

namespace dense::data::lra {

struct AanPair {
  int32_t label = 0;
  std::string id1, id2, text1, text2;
  size_t line = 0;  // 1-based line in the file
};

std::vector<AanPair> read_aan_tsv(const std::filesystem::path& path);

struct AanDataset {
  std::vector<AanPair> train, val, test;
};
// Reads new_aan_pairs.train.tsv, .eval.tsv (validation) and .test.tsv from `dir`; a missing file is an
// error naming the folder and the file.
AanDataset read_aan_folder(const std::filesystem::path& dir);

inline ByteTokenOptions aan_default_byte_options() {
  ByteTokenOptions o;
  o.seq_len = 4000;
  o.add_cls = true;
  return o;
}
// Both documents of every pair as byte tokens (first = text1, second = text2; labels in both).
PairTokenSet encode_aan(std::span<const AanPair> pairs, const ByteTokenOptions& options = aan_default_byte_options());

}  // namespace dense::data::lra
