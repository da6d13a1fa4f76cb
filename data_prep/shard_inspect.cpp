#include "data_prep/shard_inspect.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "core/error.h"
#include "data/hdf5_util.h"
#include "data/progress.h"
#include "data/shard.h"
#include "data/wordpiece.h"

namespace dense::data {

namespace {

herr_t collect_link(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

template <typename T>
std::vector<T> read_dataset_rows(hid_t file, const std::string& name, int64_t begin, int64_t end, int64_t cols,
                                 const std::string& path) {
  h5::Id d(h5::check_id(H5Dopen2(file, name.c_str(), H5P_DEFAULT), path + ": dataset '" + name + "'", "cannot open"));
  std::vector<T> out(size_t((end - begin) * std::max<int64_t>(cols, 1)));
  h5::read_rows<T>(d.get(), begin, end, out.data(), path + ": dataset '" + name + "'");
  return out;
}

}  // namespace

std::string inspect_shard(const std::string& path, const InspectOptions& opt) {
  h5::quiet_errors();
  std::string out;
  auto line = [&](const std::string& s) { out += s + "\n"; };
  line(fmt::format("file       {}", path));
  std::error_code ec;
  DENSE_CHECK(std::filesystem::exists(path, ec), "{}: no such file", path);
  DENSE_CHECK(!std::filesystem::is_directory(path, ec), "{}: is a folder, expected an HDF5 shard", path);
  const bool ours = verify_shard_integrity(path);
  line(fmt::format("integrity  {}", ours ? "verified (length and CRC-32 of the integrity header match)"
                                         : "no integrity header (not written by densetrain); not verified"));
  h5::Id file = h5::open_file(path);
  const hid_t f = file.get();

  std::vector<std::string> names;
  h5::check(H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_link, &names), path, "cannot list datasets");
  std::map<std::string, h5::DatasetInfo> datasets;
  line("datasets");
  for (const auto& n : names) {
    if (!h5::has_dataset(f, n)) {
      line(fmt::format("  {:<22} (not a dataset)", n));
      continue;
    }
    const h5::DatasetInfo info = h5::dataset_info(f, n, path);
    datasets[n] = info;
    std::string shape;
    for (size_t i = 0; i < info.dims.size(); ++i) shape += (i ? ", " : "") + std::to_string(info.dims[i]);
    line(fmt::format("  {:<22} {:<8} [{}]", n, info.dtype_name(), shape));
  }

  std::vector<std::string> attrs;
  h5::check(H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attr, &attrs), path, "cannot list attributes");
  line("attributes");
  std::map<std::string, std::string> sattr;
  for (const auto& a : attrs) {
    std::string value;
    try {
      if (auto s = h5::read_string_attribute(f, a, path)) {
        value = *s;
        sattr[a] = *s;
      }
    } catch (const Error&) {
      try {
        if (auto i = h5::read_int_attribute(f, a, path)) {
          value = std::to_string(*i);
          sattr[a] = value;
        }
      } catch (const Error&) {
        value = "(a value of another type)";
      }
    }
    if (a == "prep_config") {
      try {
        const auto j = nlohmann::json::parse(value);
        std::string pretty = j.dump(2);
        std::string indented;
        for (char c : pretty) indented += c == '\n' ? std::string("\n    ") : std::string(1, c);
        line(fmt::format("  {:<22}\n    {}", a, indented));
        continue;
      } catch (const std::exception&) {
      }
    }
    line(fmt::format("  {:<22} {}", a, value.size() > 200 ? value.substr(0, 200) + "..." : value));
  }

  // The format: from the attribute, else from the layout.
  std::string format = sattr.count("format") ? sattr["format"] : "";
  if (format.empty()) {
    if (datasets.count("masked_lm_positions"))
      format = "bert";
    else if (datasets.count("labels"))
      format = "classification";
    else if (datasets.count("input_ids"))
      format = "packed";
  }
  line(fmt::format("format     {}", format.empty() ? "unknown (no input_ids)" : format));
  if (!datasets.count("input_ids")) return out;
  const h5::DatasetInfo ids_info = datasets["input_ids"];
  DENSE_CHECK(ids_info.dims.size() == 2 && ids_info.kind == h5::ElemKind::Int,
              "{}: dataset 'input_ids' should be a 2-D integer dataset, found {} with {} dimensions", path,
              ids_info.dtype_name(), ids_info.dims.size());
  const int64_t rows = ids_info.dims[0], N = ids_info.dims[1];
  line(fmt::format("rows       {}   sequence length {}", with_thousands(rows), N));
  if (rows == 0) return out;

  std::unique_ptr<WordPieceTokenizer> tok;
  if (!opt.vocab_path.empty()) {
    tok = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(opt.vocab_path));
    if (sattr.count("vocab_hash") && sattr["vocab_hash"] != tok->vocab().sha256())
      line(fmt::format("warning    the shard's vocab_hash {} is not the sha256 of {} ({}): decoding may be wrong",
                       sattr["vocab_hash"], opt.vocab_path, tok->vocab().sha256()));
  }
  const std::string mask_name = datasets.count("input_mask")       ? "input_mask"
                                : datasets.count("attention_mask") ? "attention_mask"
                                                                   : "";

  // ---- one sample ----
  DENSE_CHECK(opt.row >= 0 && opt.row < rows, "inspect: --row {} is outside the shard's {} rows", opt.row, rows);
  const auto ids = read_dataset_rows<int32_t>(f, "input_ids", opt.row, opt.row + 1, N, path);
  int64_t len = N;
  if (!mask_name.empty()) {
    const auto m = read_dataset_rows<int8_t>(f, mask_name, opt.row, opt.row + 1, N, path);
    len = int64_t(std::count(m.begin(), m.end(), int8_t(1)));
  }
  const int64_t shown = std::min(len, opt.max_sample_tokens);
  const std::span<const int32_t> sample(ids.data(), size_t(shown));
  line(fmt::format("sample     row {} ({} real tokens{})", opt.row, len,
                   shown < len ? fmt::format(", first {} shown", shown) : ""));
  std::vector<int32_t> positions, originals;
  if (format == "bert" && datasets.count("masked_lm_positions") && datasets.count("masked_lm_ids")) {
    const int64_t P = datasets["masked_lm_positions"].dims.size() == 2 ? datasets["masked_lm_positions"].dims[1] : 0;
    positions = read_dataset_rows<int32_t>(f, "masked_lm_positions", opt.row, opt.row + 1, P, path);
    originals = read_dataset_rows<int32_t>(f, "masked_lm_ids", opt.row, opt.row + 1, P, path);
  }
  if (tok) {
    std::string text;
    const int32_t vocab_size = tok->vocab().size();
    for (int64_t i = 0; i < shown; ++i) {
      const int32_t id = ids[size_t(i)];
      std::string t = id >= 0 && id < vocab_size ? tok->vocab().token(id) : fmt::format("<{}>", id);
      for (size_t k = 0; k < positions.size(); ++k)
        if (positions[k] == i && (k == 0 || positions[k] != 0)) {
          const int32_t o = originals[k];
          t += "{" + (o >= 0 && o < vocab_size ? tok->vocab().token(o) : fmt::format("<{}>", o)) + "}";
        }
      text += (i ? " " : "") + t;
    }
    line("  tokens   " + text);
    if (!positions.empty()) line("           (masked positions show the original token in {braces})");
    line("  text     " + tok->decode(sample, DecodeOptions{true, true}));
  } else {
    std::string s;
    for (int64_t i = 0; i < shown; ++i) s += (i ? " " : "") + std::to_string(ids[size_t(i)]);
    line("  ids      " + s);
  }
  if (datasets.count("labels")) {
    const h5::DatasetInfo li = datasets["labels"];
    if (li.kind == h5::ElemKind::Float)
      line(fmt::format("  label    {}", read_dataset_rows<float>(f, "labels", opt.row, opt.row + 1, 0, path)[0]));
    else
      line(fmt::format("  label    {}", read_dataset_rows<int64_t>(f, "labels", opt.row, opt.row + 1, 0, path)[0]));
  }
  if (datasets.count("next_sentence_labels"))
    line(fmt::format("  next sentence label {}",
                     int(read_dataset_rows<int8_t>(f, "next_sentence_labels", opt.row, opt.row + 1, 0, path)[0])));

  // ---- statistics over the first stats_rows rows, read in blocks ----
  const int64_t n = opt.stats_rows > 0 ? std::min(rows, opt.stats_rows) : rows;
  int64_t real = 0, unk = 0, mask_tokens = 0, min_len = N, max_len = 0;
  int32_t min_id = INT32_MAX, max_id = INT32_MIN;
  const int32_t unk_id = tok ? tok->vocab().unk_id() : -1, mask_id = tok ? tok->vocab().mask_id() : -1;
  const int64_t block = std::max<int64_t>(1, (int64_t(1) << 22) / N);
  for (int64_t b = 0; b < n; b += block) {
    const int64_t e = std::min(n, b + block);
    const auto bi = read_dataset_rows<int32_t>(f, "input_ids", b, e, N, path);
    std::vector<int8_t> bm;
    if (!mask_name.empty()) bm = read_dataset_rows<int8_t>(f, mask_name, b, e, N, path);
    for (int64_t r = 0; r < e - b; ++r) {
      int64_t l = 0;
      for (int64_t k = 0; k < N; ++k) {
        const size_t at = size_t(r * N + k);
        if (!bm.empty() && bm[at] != 1) continue;
        ++l;
        const int32_t id = bi[at];
        min_id = std::min(min_id, id);
        max_id = std::max(max_id, id);
        unk += id == unk_id;
        mask_tokens += id == mask_id;
      }
      real += l;
      min_len = std::min(min_len, l);
      max_len = std::max(max_len, l);
    }
  }
  line(fmt::format("statistics over {} of {} rows", with_thousands(n), with_thousands(rows)));
  line(fmt::format("  tokens   {} real ({:.1f}% of {} slots), length mean {:.1f} min {} max {}", with_thousands(real),
                   100.0 * double(real) / double(n * N), with_thousands(n * N), double(real) / double(n), min_len,
                   max_len));
  line(fmt::format("  ids      min {} max {}", min_id, max_id));
  if (tok)
    line(fmt::format("  [UNK]    {:.3f}%   [MASK] {:.2f}%", 100.0 * double(unk) / double(std::max<int64_t>(real, 1)),
                     100.0 * double(mask_tokens) / double(std::max<int64_t>(real, 1))));
  if (datasets.count("labels")) {
    if (datasets["labels"].kind == h5::ElemKind::Float) {
      const auto l = read_dataset_rows<float>(f, "labels", 0, n, 0, path);
      double sum = 0;
      float lo = l[0], hi = l[0];
      for (float v : l) {
        sum += v;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      line(fmt::format("  labels   mean {:.3f} min {} max {}", sum / double(n), lo, hi));
    } else {
      std::map<int64_t, int64_t> hist;
      for (int64_t v : read_dataset_rows<int64_t>(f, "labels", 0, n, 0, path)) ++hist[v];
      std::string s;
      for (const auto& [k, c] : hist)
        s += fmt::format("{}{}: {} ({:.1f}%)", s.empty() ? "" : ", ", k, c, 100.0 * double(c) / double(n));
      line("  labels   " + s);
    }
  }
  if (datasets.count("next_sentence_labels")) {
    int64_t pos = 0;
    for (int8_t v : read_dataset_rows<int8_t>(f, "next_sentence_labels", 0, n, 0, path)) pos += v == 1;
    line(fmt::format("  NSP      {:.1f}% random next", 100.0 * double(pos) / double(n)));
  }
  if (format == "bert" && datasets.count("masked_lm_positions") && datasets["masked_lm_positions"].dims.size() == 2) {
    const int64_t P = datasets["masked_lm_positions"].dims[1];
    int64_t masked = 0;
    const auto p = read_dataset_rows<int32_t>(f, "masked_lm_positions", 0, n, P, path);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t k = 0; k < P; ++k) masked += p[size_t(r * P + k)] != 0;
    line(fmt::format("  masked   {:.2f} positions per row (P = {}), {:.1f}% of real tokens", double(masked) / double(n),
                     P, 100.0 * double(masked) / double(std::max<int64_t>(real, 1))));
  }
  return out;
}

}  // namespace dense::data
