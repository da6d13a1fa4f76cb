// Corpus readers: plain text (folders, sorted, recursive; blank-line / per-file / per-line documents), JSON
// lines, gzip, the WikiText layout (fixture and the real WikiText-2), UTF-8 repair, and bad input.
#include "data_prep/corpus.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/philox.h"
#include "data/text_normalize.h"
#include "test_files.h"

using namespace dense;
using namespace dense::data;
namespace fs = std::filesystem;

namespace {

using namespace dense::testing;

const std::string kFixtures = std::string(DENSE_TEST_DATA_DIR) + "/corpus";

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::vector<Document> read_all(CorpusReader& r) {
  std::vector<Document> docs;
  Document d;
  while (r.next(d)) docs.push_back(d);
  return docs;
}

std::vector<std::string> texts(const std::vector<Document>& docs) {
  std::vector<std::string> t;
  for (const auto& d : docs) t.push_back(d.text);
  return t;
}

}  // namespace

TEST(CorpusUtf8, ReplacesMaximalIllFormedSubparts) {
  auto fixed = [](std::string s, int64_t* n = nullptr) {
    const int64_t c = repair_utf8_inplace(s);
    if (n) *n = c;
    return s;
  };
  const std::string R = "\xEF\xBF\xBD";
  const std::string valid = "plain ascii, caf\xC3\xA9, \xE6\x97\xA5\xE6\x9C\xAC, \xF0\x9F\x98\x80, \xF4\x8F\xBF\xBF";
  int64_t n = -1;
  EXPECT_EQ(fixed(valid, &n), valid);
  EXPECT_EQ(n, 0);
  EXPECT_EQ(fixed("a\x80"
                  "b",
                  &n),
            "a" + R + "b");  // lone continuation
  EXPECT_EQ(n, 1);
  EXPECT_EQ(fixed("\xC0\xAF", &n), R + R);  // overlong: C0 is never a lead byte
  EXPECT_EQ(n, 2);
  EXPECT_EQ(fixed("\xED\xA0\x80", &n), R + R + R);  // a surrogate: ED only takes 80..9F
  EXPECT_EQ(n, 3);
  EXPECT_EQ(fixed("x\xF0\x9F\x98", &n), "x" + R);  // a truncated 4-byte sequence is one maximal subpart
  EXPECT_EQ(n, 1);
  EXPECT_EQ(fixed("\xE6\x97"
                  "A\xF5\xFF",
                  &n),
            R + "A" + R + R);
  EXPECT_EQ(n, 3);
  EXPECT_EQ(fixed("\xF4\x90\x80\x80", &n), R + R + R + R);  // above U+10FFFF
  // The Unicode standard's example (Table 3-8): 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(fixed("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", &n),
            "a" + R + R + R + "b" + R + "c" + R + R + "d");
  EXPECT_EQ(n, 6);
  // Agrees with the tokenizer's independent decoder on random byte strings (mostly high bytes).
  for (uint64_t t = 0; t < 3000; ++t) {
    std::string s;
    const size_t len = 1 + t % 23;
    for (size_t i = 0; i < len; ++i) {
      const uint32_t x = philox4x32_10(t, i).v[0];
      s.push_back(char(x % 3 == 0 ? 'a' + x % 26 : 0x80 + (x >> 8) % 128));
    }
    uint64_t theirs = 0;
    const std::string expect = sanitize_utf8(s, &theirs);
    EXPECT_EQ(fixed(s, &n), expect);
    EXPECT_EQ(uint64_t(n), theirs);
  }
}

TEST(CorpusReader, TextFolderIsRecursiveSortedAndSplitAtBlankLines) {
  CorpusReader r(kFixtures + "/text");
  ASSERT_EQ(r.files().size(), 3u);  // hidden files and folders are skipped
  EXPECT_EQ(fs::path(r.files()[0]).filename(), "a.txt");
  EXPECT_EQ(fs::path(r.files()[1]).filename(), "b.txt");
  EXPECT_EQ(fs::path(r.files()[2]).filename(), "c.txt");
  const auto docs = read_all(r);
  EXPECT_EQ(texts(docs), (std::vector<std::string>{"First document, line one.\nFirst document, line two.",
                                                   "Second document.", "Third document\nwith two lines.",
                                                   "Document in b.", "Nested document one.", "Nested document two."}));
  EXPECT_EQ(docs[0].line, 1);
  EXPECT_EQ(docs[1].line, 6);
  EXPECT_EQ(docs[2].line, 8);
  EXPECT_EQ(docs[5].line, 5);
  EXPECT_TRUE(contains(docs[5].source, "sub/c.txt"));
  EXPECT_EQ(r.stats().files, 3);
  EXPECT_EQ(r.stats().documents, 6);
  EXPECT_EQ(r.stats().empty_documents, 0);
  EXPECT_EQ(r.stats().invalid_utf8, 0);
  EXPECT_EQ(r.stats().bytes,
            int64_t(fs::file_size(kFixtures + "/text/a.txt") + fs::file_size(kFixtures + "/text/b.txt") +
                    fs::file_size(kFixtures + "/text/sub/c.txt")));
  // Non-recursive, hidden files included, several inputs in the given order.
  CorpusOptions flat;
  flat.recursive = false;
  flat.skip_hidden = false;
  EXPECT_EQ(list_corpus_files({kFixtures + "/text"}, false, false).size(), 3u);  // .hidden.txt, a.txt, b.txt
  CorpusReader two({kFixtures + "/text/b.txt", kFixtures + "/text/a.txt"}, flat);
  EXPECT_EQ(read_all(two).front().text, "Document in b.");
}

TEST(CorpusReader, OnePerFileAndOnePerLineModes) {
  CorpusOptions per_file;
  per_file.documents = TextDocuments::OnePerFile;
  CorpusReader r(kFixtures + "/text", per_file);
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text,
            "First document, line one.\nFirst document, line two.\n\n\n\nSecond document.\n\nThird document\nwith two "
            "lines.");
  EXPECT_EQ(docs[2].text, "Nested document one.\n\nNested document two.");
  EXPECT_EQ(docs[2].line, 3);

  CorpusOptions per_line;
  per_line.documents = TextDocuments::OnePerLine;
  CorpusReader l(kFixtures + "/text/a.txt", per_line);
  EXPECT_EQ(texts(read_all(l)), (std::vector<std::string>{"First document, line one.", "First document, line two.",
                                                          "Second document.", "Third document", "with two lines."}));
  EXPECT_EQ(l.stats().empty_documents, 4);  // the blank lines

  // Empty and whitespace-only files are counted, not returned.
  const std::string dir = temp_dir();
  write_bytes(dir + "/1.txt", "");
  write_bytes(dir + "/2.txt", " \n\t\n");
  write_bytes(dir + "/3.txt", "text");
  CorpusReader e(dir, per_file);
  EXPECT_EQ(texts(read_all(e)), std::vector<std::string>{"text"});
  EXPECT_EQ(e.stats().empty_documents, 2);
  fs::remove_all(dir);
}

TEST(CorpusReader, JsonLinesReadsTheTextFieldAndSkipsEmptyDocuments) {
  CorpusReader r(kFixtures + "/c4_sample.jsonl");
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text,
            "Beginners BBQ Class Taking Place in Missoula!\nDo you want to get better at making delicious BBQ?");
  EXPECT_EQ(docs[1].line, 2);
  EXPECT_EQ(docs[2].text, "Unicode: caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 and a tab\there.");
  EXPECT_EQ(docs[2].line, 5);
  EXPECT_EQ(r.stats().empty_documents, 1);
  // Another field name; a forced format for a file without the extension.
  const std::string dir = temp_dir();
  write_bytes(dir + "/pile.data", "{\"content\": \"pile doc\", \"meta\": {}}\n");
  CorpusOptions o;
  o.format = CorpusFormat::JsonLines;
  o.json_field = "content";
  CorpusReader p(dir + "/pile.data", o);
  EXPECT_EQ(texts(read_all(p)), std::vector<std::string>{"pile doc"});
  EXPECT_EQ(corpus_format_for("x/c4-train.00000-of-01024.json.gz"), CorpusFormat::JsonLines);
  EXPECT_EQ(corpus_format_for("wiki.train.tokens"), CorpusFormat::WikiText);
  EXPECT_EQ(corpus_format_for("book.TXT.gz"), CorpusFormat::Text);
  fs::remove_all(dir);
}

TEST(CorpusReader, GzipInputReadsLikeThePlainFile) {
  const std::string dir = temp_dir();
  const std::string a = read_bytes(kFixtures + "/text/a.txt");
  const std::string c4 = read_bytes(kFixtures + "/c4_sample.jsonl");
  write_gz(dir + "/a.txt.gz", a);
  write_gz(dir + "/c4.jsonl.gz", c4);
  // Two gzip members concatenated (as `cat x.gz y.gz` makes) read as one stream.
  write_gz(dir + "/m1.gz", "member one\n\n");
  write_gz(dir + "/m2.gz", "member two\n");
  write_bytes(dir + "/multi.txt.gz", read_bytes(dir + "/m1.gz") + read_bytes(dir + "/m2.gz"));
  CorpusReader plain(kFixtures + "/text/a.txt"), zipped(dir + "/a.txt.gz");
  EXPECT_EQ(texts(read_all(zipped)), texts(read_all(plain)));
  EXPECT_EQ(zipped.stats().bytes, int64_t(a.size()));
  CorpusReader jp(kFixtures + "/c4_sample.jsonl"), jz(dir + "/c4.jsonl.gz");
  EXPECT_EQ(texts(read_all(jz)), texts(read_all(jp)));
  CorpusReader m(dir + "/multi.txt.gz");
  EXPECT_EQ(texts(read_all(m)), (std::vector<std::string>{"member one", "member two"}));
  // A large compressed file streams through the fixed buffer: lines longer than the buffer, many documents.
  std::string big;
  for (int i = 0; i < 20000; ++i) big += fmt::format("document {} {}\n\n", i, std::string(size_t(i % 300), 'x'));
  big += std::string(600000, 'y') + "\n";
  write_gz(dir + "/big.txt.gz", big);
  CorpusReader b(dir + "/big.txt.gz");
  Document d;
  int64_t n = 0;
  size_t longest = 0;
  while (b.next(d)) ++n, longest = std::max(longest, d.text.size());
  EXPECT_EQ(n, 20001);
  EXPECT_EQ(longest, 600000u);
  fs::remove_all(dir);
}

TEST(CorpusReader, WikiTextTitlesStartDocuments) {
  CorpusReader r(kFixtures + "/wiki_sample.tokens");
  const auto docs = read_all(r);
  EXPECT_EQ(texts(docs),
            (std::vector<std::string>{
                "= Alpha Article =\nAlpha is the first article . It has a <unk> token .\n= = Section One = =\nAlpha "
                "section text .",
                "= Beta = Gamma =\nBeta text ; with an inline = sign = here .\n= not a title =",
                "= Delta Article =\nDelta text ."}));
  EXPECT_EQ(docs[0].line, 2);
  EXPECT_EQ(docs[2].line, 15);
}

TEST(CorpusReader, WikiText2HasItsArticleCounts) {
  const std::string dir = std::string(DENSE_SHARED_DIR) + "/data/wikitext-2";
  if (!fs::exists(dir + "/train.txt")) GTEST_SKIP() << "WikiText-2 not found under " << dir;
  CorpusOptions o;
  o.format = CorpusFormat::WikiText;
  const std::vector<std::pair<std::string, int64_t>> splits = {{"train", 600}, {"valid", 60}, {"test", 60}};
  for (const auto& [split, articles] : splits) {
    const auto t0 = std::chrono::steady_clock::now();
    CorpusReader r(dir + "/" + split + ".txt", o);
    Document d, first;
    int64_t n = 0, chars = 0;
    while (r.next(d)) {
      if (n++ == 0) first = d;
      chars += int64_t(d.text.size());
      ASSERT_TRUE(d.text.rfind("= ", 0) == 0 && d.text.find(" =\n") != std::string::npos) << d.text.substr(0, 80);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(n, articles) << split;
    EXPECT_EQ(r.stats().bytes, int64_t(fs::file_size(dir + "/" + split + ".txt")));
    EXPECT_EQ(r.stats().invalid_utf8, 0);
    EXPECT_EQ(r.stats().empty_documents, 0);
    if (split == "train") {
      EXPECT_EQ(first.text.substr(0, first.text.find('\n')), "= Valkyria Chronicles III =");
      EXPECT_GT(double(r.stats().bytes) / s, 50e6) << "reading WikiText-2 train took " << s << " s";
    }
  }
}

TEST(CorpusReader, InvalidUtf8IsReplacedCountedAndLocated) {
  const std::string dir = temp_dir();
  write_bytes(dir + "/bad.txt", "good line\nbad \xFF byte and \xC3 cut\n\nfine\xE2\x82\n");
  write_bytes(dir + "/bad.jsonl", "{\"text\": \"caf\xE9 latin-1\"}\n");
  CorpusReader r(dir + "/bad.txt");
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "good line\nbad \xEF\xBF\xBD byte and \xEF\xBF\xBD cut");
  EXPECT_EQ(docs[1].text, "fine\xEF\xBF\xBD");
  EXPECT_EQ(r.stats().invalid_utf8, 3);
  ASSERT_EQ(r.stats().invalid_utf8_at.size(), 2u);
  EXPECT_EQ(r.stats().invalid_utf8_at[0], dir + "/bad.txt:2");
  EXPECT_EQ(r.stats().invalid_utf8_at[1], dir + "/bad.txt:4");
  CorpusReader j(dir + "/bad.jsonl");  // repaired before JSON parsing, so the line still parses
  EXPECT_EQ(texts(read_all(j)), std::vector<std::string>{"caf\xEF\xBF\xBD latin-1"});
  EXPECT_EQ(j.stats().invalid_utf8, 1);
  // A UTF-8 byte-order mark is dropped, CRLF endings are handled.
  write_bytes(dir + "/bom.txt", "\xEF\xBB\xBFwith bom\r\nline two\r\n");
  CorpusReader b(dir + "/bom.txt");
  EXPECT_EQ(texts(read_all(b)), std::vector<std::string>{"with bom\nline two"});
  fs::remove_all(dir);
}

TEST(CorpusReader, BadInputGivesErrorsNamingTheFileAndLine) {
  const std::string dir = temp_dir();
  auto first_error = [](const std::string& path, CorpusOptions o = {}) {
    return error_of([&] {
      CorpusReader r(path, o);
      Document d;
      while (r.next(d)) {
      }
    });
  };
  EXPECT_TRUE(contains(first_error(dir + "/missing.txt"), dir + "/missing.txt: no such file"));
  fs::create_directories(dir + "/empty/.hidden_only");
  write_bytes(dir + "/empty/.hidden_only/x.txt", "x");
  EXPECT_TRUE(contains(first_error(dir + "/empty"), "holds no files"));
  EXPECT_THROW(CorpusReader(std::vector<std::string>{}), Error);

  const std::string j = dir + "/c4.jsonl";
  write_bytes(j, "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"text\": broken\n");
  std::string msg = first_error(j);
  EXPECT_TRUE(contains(msg, j + ":3: invalid JSON")) << msg;
  write_bytes(j, "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n");
  msg = first_error(j);
  EXPECT_TRUE(contains(msg, j + ":2: no \"text\" field")) << msg;
  write_bytes(j, "{\"text\": 42}\n");
  msg = first_error(j);
  EXPECT_TRUE(contains(msg, j + ":1: field \"text\" is a number, not a string")) << msg;
  write_bytes(j, "[\"text\"]\n");
  msg = first_error(j);
  EXPECT_TRUE(contains(msg, j + ":1: a JSON array")) << msg;

  // Corrupt gzip: not gzip at all, empty, truncated, a flipped byte (the CRC or the deflate stream fails).
  const std::string gz = dir + "/corpus.txt.gz";
  write_bytes(gz, "plain text pretending to be gzip\n");
  msg = first_error(gz);
  EXPECT_TRUE(contains(msg, gz) && contains(msg, "not in gzip format")) << msg;
  write_bytes(gz, "");
  msg = first_error(gz);
  EXPECT_TRUE(contains(msg, gz)) << msg;
  std::string text;
  for (int i = 0; i < 3000; ++i) text += fmt::format("line {} of a compressed corpus\n", i);
  write_gz(gz, text);
  const std::string good = read_bytes(gz);
  for (size_t cut : {size_t(5), size_t(30), good.size() / 2, good.size() - 4}) {
    write_bytes(gz, good.substr(0, cut));
    msg = first_error(gz);
    EXPECT_TRUE(contains(msg, gz)) << "cut at " << cut << ": " << msg;
  }
  for (size_t off : {size_t(12), good.size() / 3, good.size() / 2, good.size() - 6, good.size() - 2}) {
    std::string f = good;
    f[off] = char(f[off] ^ 0x21);
    write_bytes(gz, f);
    msg = first_error(gz);
    EXPECT_TRUE(contains(msg, gz)) << "byte " << off << ": " << msg;
  }

  // A line over the limit (e.g. a binary file) stops with the file and line.
  const std::string longf = dir + "/long.txt";
  write_bytes(longf, "short\n" + std::string(5000, 'z') + "\n");
  CorpusOptions small;
  small.max_line_bytes = 4096;
  msg = first_error(longf, small);
  EXPECT_TRUE(contains(msg, longf + ":2: line longer than 4096 bytes")) << msg;

  // Unreadable (only meaningful when not running as root).
  if (::geteuid() != 0) {
    const std::string locked = dir + "/locked.txt";
    write_bytes(locked, "secret\n");
    ::chmod(locked.c_str(), 0);
    msg = first_error(locked);
    EXPECT_TRUE(contains(msg, locked + ": cannot open")) << msg;
    ::chmod(locked.c_str(), 0644);
  }
  fs::remove_all(dir);
}

TEST(CorpusReader, LongDocumentsAreCutAtLineBoundaries) {
  const std::string dir = temp_dir();
  std::string text;
  std::vector<std::string> lines;
  for (int i = 0; i < 5000; ++i) {
    lines.push_back(fmt::format("sentence {} {}", i, std::string(size_t(i % 97), 'w')));
    text += lines.back() + "\n";
  }
  write_bytes(dir + "/one.txt", text);
  for (TextDocuments mode : {TextDocuments::BlankLines, TextDocuments::OnePerFile}) {
    CorpusOptions o;
    o.documents = mode;
    o.max_document_bytes = 10000;
    CorpusReader r(dir + "/one.txt", o);
    const auto docs = read_all(r);
    ASSERT_GT(docs.size(), 10u);
    std::string joined;
    for (const auto& d : docs) {
      EXPECT_LE(d.text.size(), 10000u);
      joined += d.text + "\n";
    }
    EXPECT_EQ(joined, text);
    EXPECT_EQ(r.stats().split_documents, int64_t(docs.size()) - 1);
    EXPECT_EQ(r.stats().lines, 5000);
    EXPECT_EQ(docs[1].line, int64_t(std::count(docs[0].text.begin(), docs[0].text.end(), '\n')) + 2);
  }
  fs::remove_all(dir);
}
