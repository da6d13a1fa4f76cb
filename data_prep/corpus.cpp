#include "data_prep/corpus.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dense::data {

namespace fs = std::filesystem;

// ---- files ---------------------------------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

}  // namespace

CorpusFormat corpus_format_for(const std::string& path) {
  std::string name = lower(fs::path(path).filename().string());
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);
  if (ends_with(name, ".jsonl") || ends_with(name, ".json") || ends_with(name, ".ndjson"))
    return CorpusFormat::JsonLines;
  if (ends_with(name, ".tokens")) return CorpusFormat::WikiText;
  return CorpusFormat::Text;
}

std::vector<std::string> list_corpus_files(const std::vector<std::string>& inputs, bool recursive, bool skip_hidden) {
  DENSE_CHECK(!inputs.empty(), "no corpus inputs given");
  std::vector<std::string> out;
  for (const std::string& input : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(input, ec);
    if (ec || !fs::exists(st)) DENSE_FAIL("{}: no such file or folder", input);
    if (fs::is_regular_file(st)) {
      out.push_back(input);
      continue;
    }
    DENSE_CHECK(fs::is_directory(st), "{}: neither a file nor a folder", input);
    std::vector<std::string> found;
    auto visit = [&](const fs::directory_entry& e) {
      std::error_code e2;
      if (e.is_regular_file(e2)) found.push_back(e.path().string());
    };
    if (recursive) {
      fs::recursive_directory_iterator it(input, fs::directory_options::none, ec), end;
      if (ec) DENSE_FAIL("{}: cannot list the folder: {}", input, ec.message());
      for (; it != end; it.increment(ec)) {
        if (ec) DENSE_FAIL("{}: cannot list the folder: {}", input, ec.message());
        if (skip_hidden && hidden(it->path())) {
          if (it->is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        visit(*it);
      }
      if (ec) DENSE_FAIL("{}: cannot list the folder: {}", input, ec.message());
    } else {
      fs::directory_iterator it(input, ec), end;
      if (ec) DENSE_FAIL("{}: cannot list the folder: {}", input, ec.message());
      for (; it != end; it.increment(ec)) {
        if (ec) DENSE_FAIL("{}: cannot list the folder: {}", input, ec.message());
        if (skip_hidden && hidden(it->path())) continue;
        visit(*it);
      }
    }
    DENSE_CHECK(!found.empty(), "{}: the folder holds no files", input);
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

namespace {

// Reads a (possibly gzip-compressed) file line by line through a fixed buffer. Lines come without the
// newline and a trailing '\r'; a UTF-8 BOM at the start of the file is dropped.
class LineReader {
 public:
  LineReader(std::string path, int64_t max_line_bytes) : path_(std::move(path)), max_line_(max_line_bytes) {
    std::error_code ec;
    DENSE_CHECK(fs::exists(path_, ec), "{}: no such file", path_);
    gz_ = gzopen(path_.c_str(), "rb");
    if (gz_ == nullptr) DENSE_FAIL("{}: cannot open: {}", path_, errno ? std::strerror(errno) : "out of memory");
    gzbuffer(gz_, 1 << 17);
    is_gz_ = ends_with(lower(path_), ".gz");
    buf_.resize(size_t(1) << 18);
  }
  ~LineReader() {
    if (gz_) gzclose(gz_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  const std::string& path() const { return path_; }
  int64_t line_number() const { return line_no_; }
  int64_t bytes() const { return bytes_; }

  void push_back(std::string line) {
    pushed_.push_back(std::move(line));
    --line_no_;
  }

  bool next(std::string& line) {
    if (!pushed_.empty()) {
      line = std::move(pushed_.back());
      pushed_.pop_back();
      ++line_no_;
      return true;
    }
    line.clear();
    bool any = false;
    for (;;) {
      if (pos_ == end_ && !fill()) break;
      any = true;
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', end_ - pos_);
      const size_t take = nl ? size_t(static_cast<const char*>(nl) - start) : end_ - pos_;
      DENSE_CHECK(int64_t(line.size() + take) <= max_line_,
                  "{}:{}: line longer than {} bytes (a binary file, or raise max_line_bytes)", path_, line_no_ + 1,
                  max_line_);
      line.append(start, take);
      pos_ += take;
      if (nl) {
        ++pos_;
        break;
      }
    }
    if (!any) return false;
    ++line_no_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no_ == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    return true;
  }

 private:
  bool fill() {
    if (eof_) return false;
    const int got = gzread(gz_, buf_.data(), unsigned(buf_.size()));
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(gz_, &err);
      DENSE_FAIL("{}: read failed{}: {}", path_, is_gz_ ? " (corrupt gzip data?)" : "",
                 err == Z_ERRNO ? std::strerror(errno) : msg);
    }
    if (is_gz_ && !checked_gz_) {
      checked_gz_ = true;
      DENSE_CHECK(got == 0 || gzdirect(gz_) == 0, "{}: not in gzip format (corrupt .gz)", path_);
      DENSE_CHECK(got > 0 || bytes_ > 0 || gzdirect(gz_) == 0, "{}: empty file, not in gzip format (corrupt .gz)",
                  path_);
    }
    if (got == 0) {
      int err = 0;
      const char* msg = gzerror(gz_, &err);
      if (err != Z_OK) DENSE_FAIL("{}: {} (truncated or corrupt gzip data)", path_, msg);
      eof_ = true;
      return false;
    }
    pos_ = 0;
    end_ = size_t(got);
    bytes_ += got;
    return true;
  }

  std::string path_;
  int64_t max_line_;
  gzFile gz_ = nullptr;
  bool is_gz_ = false, checked_gz_ = false, eof_ = false;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  int64_t line_no_ = 0, bytes_ = 0;
  std::vector<std::string> pushed_;
};

bool is_blank(const std::string& s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
  return true;
}

std::string_view trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) --b;
  return s.substr(a, b - a);
}

// " = Title = " (one level; " = = Section = = " is not a document title).
bool wikitext_title(std::string_view t) {
  return t.size() >= 5 && t[0] == '=' && t[1] == ' ' && t[2] != '=' && t[t.size() - 1] == '=' &&
         t[t.size() - 2] == ' ' && t[t.size() - 3] != '=';
}

}  // namespace

// ---- the reader ----------------------------------------------------------------------------------------------

struct CorpusReader::Impl {
  CorpusOptions opt;
  std::vector<std::string> files;
  size_t next_file = 0;
  std::unique_ptr<LineReader> in;
  CorpusFormat fmt = CorpusFormat::Text;
  CorpusStats stats;
  int64_t counted_bytes = 0;  // of the current file, already added to stats.bytes

  // The document being built in the current file.
  std::string cur;
  int64_t cur_line = 0;
  int64_t pending_blank = 0;  // OnePerFile: blank lines seen since the last content line
  bool file_emitted = false;  // OnePerFile
  bool prev_blank = true;     // WikiText
  std::string line;

  void open_next() {
    const std::string& path = files[next_file++];
    in = std::make_unique<LineReader>(path, opt.max_line_bytes);
    fmt = opt.format == CorpusFormat::Auto ? corpus_format_for(path) : opt.format;
    ++stats.files;
    counted_bytes = 0;
    cur.clear();
    cur_line = 0;
    pending_blank = 0;
    file_emitted = false;
    prev_blank = true;
  }

  // Reads a line, sanitising UTF-8 and counting.
  bool read_line() {
    if (!in->next(line)) return false;
    ++stats.lines;
    stats.bytes += in->bytes() - counted_bytes;
    counted_bytes = in->bytes();
    const int64_t bad = repair_utf8_inplace(line);
    if (bad > 0) {
      stats.invalid_utf8 += bad;
      if (stats.invalid_utf8_at.size() < 10)
        stats.invalid_utf8_at.push_back(fmt::format("{}:{}", in->path(), in->line_number()));
    }
    return true;
  }

  void take(Document& doc) {
    doc.text.swap(cur);
    cur.clear();
    doc.source = in->path();
    doc.line = cur_line;
  }

  // Appends a content line to the current document; returns true when the document is full and was moved
  // into doc instead (the line is pushed back for the next one).
  bool append_line(std::string_view l, Document& doc) {
    if (cur.empty()) {
      cur_line = in->line_number();
    } else if (int64_t(cur.size() + 1 + l.size()) > opt.max_document_bytes) {
      in->push_back(std::string(l));
      --stats.lines;  // read again for the next document
      ++stats.split_documents;
      take(doc);
      return true;
    } else {
      cur.push_back('\n');
    }
    cur.append(l);
    return false;
  }

  // Produces the next document (possibly empty) of the current file; false at its end.
  bool produce(Document& doc) {
    switch (fmt) {
      case CorpusFormat::JsonLines:
        while (read_line()) {
          if (is_blank(line)) continue;
          nlohmann::json j;
          try {
            j = nlohmann::json::parse(line);
          } catch (const std::exception& e) {
            DENSE_FAIL("{}:{}: invalid JSON: {}", in->path(), in->line_number(), e.what());
          }
          DENSE_CHECK(j.is_object(), "{}:{}: a JSON {} where an object with a \"{}\" field was expected", in->path(),
                      in->line_number(), j.type_name(), opt.json_field);
          const auto it = j.find(opt.json_field);
          DENSE_CHECK(it != j.end(), "{}:{}: no \"{}\" field", in->path(), in->line_number(), opt.json_field);
          DENSE_CHECK(it->is_string(), "{}:{}: field \"{}\" is a {}, not a string", in->path(), in->line_number(),
                      opt.json_field, it->type_name());
          cur = std::move(it->get_ref<std::string&>());
          cur_line = in->line_number();
          take(doc);
          return true;
        }
        return false;

      case CorpusFormat::WikiText:
        while (read_line()) {
          const std::string_view t = trim(line);
          if (t.empty()) {
            prev_blank = true;
            continue;
          }
          if (prev_blank && wikitext_title(t)) {
            const std::string title(t);
            bool next_blank = true;
            if (read_line()) {
              next_blank = trim(line).empty();
              in->push_back(line);
              --stats.lines;  // read again later
            }
            if (next_blank && !cur.empty()) {
              in->push_back(title);
              take(doc);
              prev_blank = true;
              return true;
            }
            prev_blank = false;
            if (append_line(title, doc)) return true;
            continue;
          }
          prev_blank = false;
          if (append_line(t, doc)) return true;
        }
        if (!cur.empty()) {
          take(doc);
          return true;
        }
        return false;

      case CorpusFormat::Text:
      case CorpusFormat::Auto: break;
    }
    switch (opt.documents) {
      case TextDocuments::OnePerLine:
        if (!read_line()) return false;
        cur = line;
        cur_line = in->line_number();
        take(doc);
        return true;

      case TextDocuments::BlankLines:
        while (read_line()) {
          if (is_blank(line)) {
            if (!cur.empty()) {
              take(doc);
              return true;
            }
            continue;
          }
          if (append_line(line, doc)) return true;
        }
        if (!cur.empty()) {
          take(doc);
          return true;
        }
        return false;

      case TextDocuments::OnePerFile:
        while (read_line()) {
          if (is_blank(line)) {
            if (!cur.empty()) ++pending_blank;
            continue;
          }
          if (!cur.empty() && pending_blank > 0) {
            // Keep paragraph breaks, unless the document is cut here anyway.
            if (int64_t(cur.size() + size_t(pending_blank) + 1 + line.size()) <= opt.max_document_bytes)
              cur.append(size_t(pending_blank), '\n');
          }
          pending_blank = 0;
          if (append_line(line, doc)) return true;
        }
        if (file_emitted && cur.empty()) return false;
        file_emitted = true;
        cur_line = cur.empty() ? 1 : cur_line;
        take(doc);
        return true;
    }
    return false;
  }
};

CorpusReader::CorpusReader(const std::vector<std::string>& inputs, const CorpusOptions& options)
    : impl_(std::make_unique<Impl>()) {
  DENSE_CHECK(options.max_line_bytes > 0 && options.max_document_bytes > 0,
              "corpus limits must be positive (max_line_bytes {}, max_document_bytes {})", options.max_line_bytes,
              options.max_document_bytes);
  DENSE_CHECK(!options.json_field.empty(), "the JSON text field name is empty");
  impl_->opt = options;
  impl_->files = list_corpus_files(inputs, options.recursive, options.skip_hidden);
}

CorpusReader::CorpusReader(const std::string& input, const CorpusOptions& options)
    : CorpusReader(std::vector<std::string>{input}, options) {}

CorpusReader::~CorpusReader() = default;

bool CorpusReader::next(Document& doc) {
  Impl& s = *impl_;
  for (;;) {
    if (!s.in) {
      if (s.next_file >= s.files.size()) return false;
      s.open_next();
    }
    if (!s.produce(doc)) {
      s.in.reset();
      continue;
    }
    if (is_blank(doc.text)) {
      ++s.stats.empty_documents;
      continue;
    }
    ++s.stats.documents;
    return true;
  }
}

const CorpusStats& CorpusReader::stats() const { return impl_->stats; }
const std::vector<std::string>& CorpusReader::files() const { return impl_->files; }

}  // namespace dense::data
