#pragma once
// Strict reader for quote-free TSV files (the GLUE / LRA layout): a row is one line split on '\t' only, so
// '"' is ordinary text. CRLF line ends are accepted (one trailing '\r' is dropped), a UTF-8 byte-order mark
// on the first line is dropped, and every row must have the same number of columns. A bad row is an error
// naming the file and its 1-based line number (or, when asked, skipped and counted). Rows are streamed:
// memory stays at one line whatever the file size.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dense::data {

struct TsvOptions {
  // Columns every row must have; 0 takes the count from the first row (the header when there is one).
  size_t expected_columns = 0;
  // Skip rows with the wrong column count (counted in skipped_rows(), first few line numbers kept) instead
  // of failing. Off by default: a malformed row is an error naming file:line.
  bool skip_bad_rows = false;
  // Replace invalid UTF-8 in fields by U+FFFD (counted per row in invalid_utf8_rows()).
  bool fix_utf8 = true;
};

// One row. `fields` point into `line` and stay valid until the next call to TsvReader::next.
struct TsvRow {
  std::string line;
  std::vector<std::string_view> fields;
  size_t line_number = 0;  // 1-based
  size_t size() const { return fields.size(); }
  std::string_view operator[](size_t i) const { return fields[i]; }
};

class TsvReader {
 public:
  // Opens a file; throws dense::Error naming it when it is missing or unreadable.
  explicit TsvReader(const std::filesystem::path& path, TsvOptions options = {});
  // Reads from memory (tests, fuzzing); `name` is used in error messages.
  static TsvReader from_string(std::string name, std::string data, TsvOptions options = {});
  TsvReader(TsvReader&&) noexcept;
  TsvReader& operator=(TsvReader&&) noexcept;
  ~TsvReader();

  // Reads the next row into `row`; false at end of input. Throws dense::Error "<file>:<line>: ..." on a row
  // with the wrong number of columns (unless skip_bad_rows) or an I/O error.
  bool next(TsvRow& row);

  const std::string& name() const { return name_; }
  // Column count rows are checked against (0 until the first row is read when not given in the options).
  size_t columns() const { return columns_; }
  size_t skipped_rows() const { return skipped_rows_; }
  const std::vector<size_t>& skipped_lines() const { return skipped_lines_; }  // at most the first 20
  size_t invalid_utf8_rows() const { return invalid_utf8_rows_; }

  // Throws dense::Error "<file>:<line>: <message>" (for checks made by callers on a row's content).
  [[noreturn]] void fail(size_t line_number, const std::string& message) const;

 private:
  TsvReader(std::string name, std::unique_ptr<std::istream> in, TsvOptions options);
  std::string name_;
  std::unique_ptr<char[]> buffer_;  // declared before in_: the stream's buffer outlives the stream
  std::unique_ptr<std::istream> in_;
  TsvOptions options_;
  size_t columns_ = 0;
  size_t line_number_ = 0;
  size_t skipped_rows_ = 0;
  std::vector<size_t> skipped_lines_;
  size_t invalid_utf8_rows_ = 0;
};

// Replaces each invalid UTF-8 sequence in `s` by U+FFFD (the WHATWG "maximal subpart" rule, as Python's
// errors='replace'); returns the number of replacements. repair_utf8_inplace (data/text_normalize.h).
size_t tsv_fix_utf8(std::string& s);

// Splits a line on '\t' (quote-free), appending views into `line` to `out` after clearing it.
void tsv_split(std::string_view line, std::vector<std::string_view>& out);

}  // namespace dense::data
