// The corpus readers on arbitrary file content. CorpusReader only reads files, so each input is written to a
// per-process scratch folder under the temp dir (one folder per process: libFuzzer -jobs/-fork may run several)
// as .txt, .txt.gz (compressed, and the raw bytes under a .gz name), .jsonl or .tokens. Input: one control
// byte (which format), then the file content.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/text_normalize.h"
#include "data_prep/corpus.h"
#include "data_prep/lra_idx.h"
#include "fuzz_common.h"

namespace fs = std::filesystem;
using namespace dense::data;

namespace {

// The folder holding this input's files: made for each input and removed after it (not at exit: libFuzzer
// ends with _Exit, so atexit handlers never run and every process would leave its folder behind).
class Scratch {
 public:
  Scratch() : dir_(fs::temp_directory_path() / ("dense-fuzz-corpus-" + std::to_string(getpid()))) {
    fs::create_directories(dir_);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

const Scratch* g_scratch = nullptr;
const fs::path& scratch() { return g_scratch->dir(); }

std::string write(const std::string& name, std::string_view bytes) {
  const fs::path p = scratch() / name;
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  f.close();
  FUZZ_CHECK(f.good());  // the scratch disk must work, or nothing below means anything
  return p.string();
}

// All documents, or nullopt when the reader rejects the input with a dense::Error.
std::optional<std::vector<Document>> read_all(const std::string& path, const CorpusOptions& o) {
  try {
    CorpusReader r(path, o);
    std::vector<Document> docs;
    Document d;
    while (r.next(d)) {
      FUZZ_CHECK(is_valid_utf8(d.text));
      FUZZ_CHECK(d.line >= 1 && d.source == path);
      FUZZ_CHECK(d.text.find_first_not_of(" \t\r\n\f\v") != std::string::npos);  // empty ones are skipped
      docs.push_back(d);
    }
    FUZZ_CHECK(r.stats().documents == int64_t(docs.size()) && r.stats().files == 1);
    return docs;
  } catch (const dense::Error&) {
    return std::nullopt;
  }
}

std::vector<std::string_view> lines_of(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t nl = s.find('\n', start);
    out.push_back(s.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (nl == std::string_view::npos) return out;
    start = nl + 1;
  }
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos; }

std::string join(const std::vector<Document>& docs) {
  std::string s;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (i) s += '\n';
    s += docs[i].text;
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One control byte picks the format: every reader allocates about 640 KiB of buffers, which ASan maps and
  // unmaps afresh each time, so running all of them on every input made the target ten times slower.
  dense::fuzz::Input in(data, size);
  const uint8_t mode = in.byte() % 5;
  const std::string_view bytes = in.rest();
  const Scratch folder;
  g_scratch = &folder;

  if (mode == 0) {
    const std::string txt = write("doc.txt", bytes);
    const CorpusOptions o;
    const auto docs = read_all(txt, o);
    // zlib's gzread decompresses any file that starts with the gzip magic, whatever its name, so only other
    // inputs are plain text, which has no way to be malformed.
    if (lra::is_gzip(bytes)) return 0;
    FUZZ_CHECK(docs.has_value());
    for (const Document& d : *docs)
      for (const std::string_view l : lines_of(d.text)) FUZZ_CHECK(!blank(l));

    // The same text compressed reads back the same, document for document.
    const auto gz = read_all(write("doc.txt.gz", lra::gzip(bytes, 1)), o);
    FUZZ_CHECK(gz.has_value() && gz->size() == docs->size());
    for (size_t i = 0; i < gz->size(); ++i)
      FUZZ_CHECK((*gz)[i].text == (*docs)[i].text && (*gz)[i].line == (*docs)[i].line);

    // Cutting long documents only moves the boundaries: the lines, in order, are the same.
    CorpusOptions small = o;
    small.max_document_bytes = 64;
    const auto cut = read_all(txt, small);
    FUZZ_CHECK(cut.has_value() && join(*cut) == join(*docs));
    for (const Document& d : *cut) FUZZ_CHECK(d.text.size() <= 64 || d.text.find('\n') == std::string::npos);
  } else if (mode == 1) {
    const std::string txt = write("doc.txt", bytes);
    CorpusOptions o;
    o.documents = TextDocuments::OnePerLine;
    if (const auto per_line = read_all(txt, o))
      for (const Document& d : *per_line) FUZZ_CHECK(d.text.find('\n') == std::string::npos);
    o.documents = TextDocuments::OnePerFile;
    if (const auto per_file = read_all(txt, o)) FUZZ_CHECK(per_file->size() <= 1);
  } else if (mode == 2) {
    // Corrupt and truncated gzip streams must be errors, not crashes.
    (void)read_all(write("raw.txt.gz", bytes), CorpusOptions{});
  } else if (mode == 3) {
    (void)read_all(write("doc.jsonl", bytes), CorpusOptions{});
  } else {
    if (const auto wiki = read_all(write("doc.tokens", bytes), CorpusOptions{}))
      for (const Document& d : *wiki)
        for (const std::string_view l : lines_of(d.text))
          FUZZ_CHECK(!l.empty() && l.front() != ' ' && l.front() != '\t' && l.back() != ' ' && l.back() != '\t');
  }
  return 0;
}
