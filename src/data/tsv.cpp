#include "data/tsv.h"

#include <fstream>
#include <istream>
#include <sstream>

#include "core/error.h"
#include "data/text_normalize.h"

namespace dense::data {

namespace {

constexpr size_t kMaxRecordedSkips = 20;
constexpr size_t kReadBufferBytes = size_t(1) << 20;

}  // namespace

size_t tsv_fix_utf8(std::string& s) { return size_t(repair_utf8_inplace(s)); }

void tsv_split(std::string_view line, std::vector<std::string_view>& out) {
  out.clear();
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      out.push_back(line.substr(start));
      return;
    }
    out.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

TsvReader::TsvReader(std::string name, std::unique_ptr<std::istream> in, TsvOptions options)
    : name_(std::move(name)), in_(std::move(in)), options_(options), columns_(options.expected_columns) {}

TsvReader::TsvReader(const std::filesystem::path& path, TsvOptions options)
    : name_(path.string()), options_(options), columns_(options.expected_columns) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) DENSE_FAIL("{}: file not found", name_);
  if (std::filesystem::is_directory(path, ec)) DENSE_FAIL("{}: is a directory, expected a TSV file", name_);
  auto file = std::make_unique<std::ifstream>();
  buffer_ = std::make_unique<char[]>(kReadBufferBytes);
  file->rdbuf()->pubsetbuf(buffer_.get(), std::streamsize(kReadBufferBytes));
  file->open(path, std::ios::binary);
  if (!*file) DENSE_FAIL("{}: cannot open for reading", name_);
  in_ = std::move(file);
}

TsvReader TsvReader::from_string(std::string name, std::string data, TsvOptions options) {
  return TsvReader(std::move(name), std::make_unique<std::istringstream>(std::move(data)), options);
}

TsvReader::TsvReader(TsvReader&&) noexcept = default;
TsvReader& TsvReader::operator=(TsvReader&&) noexcept = default;
TsvReader::~TsvReader() = default;

void TsvReader::fail(size_t line_number, const std::string& message) const {
  throw Error(fmt::format("{}:{}: {}", name_, line_number, message));
}

bool TsvReader::next(TsvRow& row) {
  while (true) {
    if (!std::getline(*in_, row.line)) {
      if (in_->bad()) DENSE_FAIL("{}: read error after line {}", name_, line_number_);
      return false;
    }
    ++line_number_;
    row.line_number = line_number_;
    if (!row.line.empty() && row.line.back() == '\r') row.line.pop_back();
    if (line_number_ == 1 && row.line.starts_with("\xEF\xBB\xBF")) row.line.erase(0, 3);
    if (options_.fix_utf8 && tsv_fix_utf8(row.line) > 0) ++invalid_utf8_rows_;
    tsv_split(row.line, row.fields);
    if (columns_ == 0) columns_ = row.fields.size();
    if (row.fields.size() == columns_) return true;
    if (options_.skip_bad_rows) {
      ++skipped_rows_;
      if (skipped_lines_.size() < kMaxRecordedSkips) skipped_lines_.push_back(line_number_);
      continue;
    }
    if (row.line.empty()) fail(line_number_, fmt::format("empty line, expected {} tab-separated columns", columns_));
    fail(line_number_, fmt::format("expected {} tab-separated columns, found {}", columns_, row.fields.size()));
  }
}

}  // namespace dense::data
