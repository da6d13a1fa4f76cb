#include "data_prep/lra_aan.h"

#include <charconv>

#include "core/error.h"
#include "data/tsv.h"

namespace dense::data::lra {

std::vector<AanPair> read_aan_tsv(const std::filesystem::path& path) {
  TsvOptions opt;
  opt.expected_columns = 5;
  opt.fix_utf8 = false;  // bytes are the tokens
  TsvReader reader(path, opt);
  TsvRow row;
  std::vector<AanPair> out;
  while (reader.next(row)) {
    if (row.line_number == 1 && row[0] == "label") continue;
    const std::string_view lv = row[0];
    double v = -1;
    const auto [end, ec] = std::from_chars(lv.data(), lv.data() + lv.size(), v);
    if (ec != std::errc() || end != lv.data() + lv.size() || (v != 0.0 && v != 1.0))
      reader.fail(row.line_number, fmt::format("label '{}' is not 0 or 1", lv));
    AanPair p;
    p.label = int32_t(v);
    p.id1 = row[1];
    p.id2 = row[2];
    p.text1 = row[3];
    p.text2 = row[4];
    p.line = row.line_number;
    out.push_back(std::move(p));
  }
  return out;
}

AanDataset read_aan_folder(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) DENSE_FAIL("AAN: folder '{}' does not exist", dir.string());
  auto one = [&](const char* file) {
    const auto p = dir / file;
    if (!std::filesystem::exists(p, ec)) DENSE_FAIL("AAN: folder '{}' has no '{}'", dir.string(), file);
    return read_aan_tsv(p);
  };
  AanDataset d;
  d.train = one("new_aan_pairs.train.tsv");
  d.val = one("new_aan_pairs.eval.tsv");
  d.test = one("new_aan_pairs.test.tsv");
  return d;
}

PairTokenSet encode_aan(std::span<const AanPair> pairs, const ByteTokenOptions& options) {
  PairTokenSet s;
  for (TokenSet* t : {&s.first, &s.second}) {
    t->seq_len = options.seq_len;
    t->ids.reserve(pairs.size() * size_t(options.seq_len));
    t->mask.reserve(pairs.size() * size_t(options.seq_len));
  }
  for (const auto& p : pairs) {
    encode_bytes(p.text1, options, s.first.ids, s.first.mask);
    encode_bytes(p.text2, options, s.second.ids, s.second.mask);
    s.first.labels.push_back(p.label);
    s.second.labels.push_back(p.label);
  }
  return s;
}

}  // namespace dense::data::lra
