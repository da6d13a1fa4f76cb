#pragma once
// Streaming corpus readers: plain text (files or folders, recursive, sorted), JSON lines with a `text` field
// (C4, the Pile), the WikiText layout, each optionally gzip-compressed. Documents come one at a time and
// only one document (plus a read buffer) is held in memory, whatever the corpus size.
//
// Bad input: invalid UTF-8 is replaced by U+FFFD and counted; empty documents are skipped and counted; a
// missing or unreadable file, a corrupt or truncated .gz, bad JSON or a missing/non-string text field is a
// dense::Error naming the file (and the line, for line-level problems).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/text_normalize.h"

namespace dense::data {

enum class CorpusFormat {
  Auto,       // by file name (a trailing .gz is ignored): *.jsonl, *.json, *.ndjson -> JsonLines;
              // *.tokens -> WikiText; anything else -> Text
  Text,       // documents as set by TextDocuments
  JsonLines,  // one JSON object per line; the document is its json_field string; blank lines are ignored
  WikiText,   // a line " = Title = " between blank lines starts a document (" = = Section = = " does not);
              // lines are trimmed and blank lines dropped
};

enum class TextDocuments {
  BlankLines,  // documents are separated by one or more blank (whitespace-only) lines (BERT's input format)
  OnePerFile,  // each file is one document
  OnePerLine,  // each non-blank line is one document (blank lines count as empty documents)
};

struct CorpusOptions {
  CorpusFormat format = CorpusFormat::Auto;
  TextDocuments documents = TextDocuments::BlankLines;
  std::string json_field = "text";
  bool recursive = true;    // descend into sub-folders
  bool skip_hidden = true;  // ignore files and folders whose name starts with '.'
  // A longer line is an error (file, line): memory stays bounded even for a file without newlines.
  int64_t max_line_bytes = int64_t(64) << 20;
  // Text and WikiText documents longer than this are cut at a line boundary (counted as split_documents).
  int64_t max_document_bytes = int64_t(64) << 20;
};

struct Document {
  std::string text;    // valid UTF-8; the document's lines joined by '\n' (no trailing newline)
  std::string source;  // the file it came from
  int64_t line = 0;    // 1-based line of the file where it starts
};

struct CorpusStats {
  int64_t files = 0;                         // files opened so far
  int64_t lines = 0;                         // lines read
  int64_t bytes = 0;                         // (decompressed) bytes read
  int64_t documents = 0;                     // documents returned
  int64_t empty_documents = 0;               // skipped because empty or whitespace-only
  int64_t split_documents = 0;               // extra documents made by cutting ones over max_document_bytes
  int64_t invalid_utf8 = 0;                  // ill-formed UTF-8 sequences replaced by U+FFFD
  std::vector<std::string> invalid_utf8_at;  // "file:line" of the first few, for the report
};

// Regular files under the inputs: a file is taken as is; a folder is walked (recursively when asked) and its
// files sorted by path. Inputs keep their order. Missing inputs and folders without files are errors.
std::vector<std::string> list_corpus_files(const std::vector<std::string>& inputs, bool recursive = true,
                                           bool skip_hidden = true);

// The format Auto picks for a file name.
CorpusFormat corpus_format_for(const std::string& path);

// repair_utf8_inplace(std::string&), the UTF-8 repair the readers apply to every line, is declared in
// data/text_normalize.h (included above).

class CorpusReader {
 public:
  explicit CorpusReader(const std::vector<std::string>& inputs, const CorpusOptions& options = {});
  explicit CorpusReader(const std::string& input, const CorpusOptions& options = {});
  ~CorpusReader();
  CorpusReader(const CorpusReader&) = delete;
  CorpusReader& operator=(const CorpusReader&) = delete;

  // The next non-empty document; false at the end of the corpus.
  bool next(Document& doc);
  const CorpusStats& stats() const;
  const std::vector<std::string>& files() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dense::data
