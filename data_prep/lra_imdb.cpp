#include "data_prep/lra_imdb.h"

#include <algorithm>
#include <charconv>

#include "core/error.h"
#include "data_prep/lra_png.h"

namespace dense::data::lra {

namespace {

struct Entry {
  uint64_t id;
  bool numeric;
  std::string name;
  std::filesystem::path path;
};

// "<id>_<rating>.txt" -> id; files not named that way sort after, by name.
Entry make_entry(const std::filesystem::path& p) {
  Entry e{0, false, p.filename().string(), p};
  const std::string& n = e.name;
  const size_t us = n.find('_');
  const size_t stop = us == std::string::npos ? n.size() - 4 : us;
  const auto [end, ec] = std::from_chars(n.data(), n.data() + stop, e.id);
  e.numeric = ec == std::errc() && end == n.data() + stop && stop > 0;
  return e;
}

}  // namespace

TextSplit read_imdb_split(const std::filesystem::path& root_in, std::string_view split) {
  DENSE_CHECK(split == "train" || split == "test", "IMDB split '{}' (expected train or test)", split);
  std::error_code ec;
  std::filesystem::path root = root_in;
  if (!std::filesystem::is_directory(root / split, ec) && std::filesystem::is_directory(root / "aclImdb" / split, ec))
    root = root / "aclImdb";
  TextSplit out;
  for (const auto& [folder, label] : {std::pair{"neg", 0}, std::pair{"pos", 1}}) {
    const auto dir = root / split / folder;
    if (!std::filesystem::is_directory(dir, ec))
      DENSE_FAIL("IMDB: folder '{}' does not exist (expected the aclImdb/{{train,test}}/{{pos,neg}} layout)",
                 dir.string());
    std::vector<Entry> files;
    for (const auto& de : std::filesystem::directory_iterator(dir, ec)) {
      if (!de.is_regular_file(ec) || de.path().extension() != ".txt") continue;
      files.push_back(make_entry(de.path()));
    }
    if (ec) DENSE_FAIL("IMDB: cannot list '{}': {}", dir.string(), ec.message());
    if (files.empty()) DENSE_FAIL("IMDB: folder '{}' has no .txt reviews", dir.string());
    std::sort(files.begin(), files.end(), [](const Entry& a, const Entry& b) {
      if (a.numeric != b.numeric) return a.numeric;
      if (a.numeric && a.id != b.id) return a.id < b.id;
      return a.name < b.name;
    });
    for (const auto& f : files) {
      TextExample ex;
      ex.text = read_binary_file(f.path);
      ex.label = label;
      ex.source = f.path.string();
      if (ex.text.empty()) ++out.empty_documents;
      out.examples.push_back(std::move(ex));
    }
  }
  return out;
}

}  // namespace dense::data::lra
