// WordPiece tokenization (BERT-exact), vocab.txt loading and hashing, and the LRA byte/character tokenizers.
//   * tests/fixtures/wordpiece_expected.json: 57 multilingual / edge-case texts whose ids were produced once by an
//     independent implementation (the JavaScript BertTokenizer of @huggingface/transformers; generator and
//     instructions in tests/tokenizer/), for the small fixture vocabulary tests/fixtures/wordpiece_vocab_small.txt
//     (always checked) and for the real BERT uncased vocab.txt (checked when it is present: $DENSE_VOCAB_DIR or
//     data/vocab/, fetched by scripts/fetch_vocab.sh; skipped otherwise).
//   * the published vectors of data-sources §2 and the unit tests of google-research/bert tokenization_test.py.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "data/text_normalize.h"
#include "data/vocab.h"
#include "data/wordpiece.h"
#include "data_prep/char_tokenizer.h"

using namespace dense;
using namespace dense::data;
namespace fs = std::filesystem;

namespace {

const std::string kData = DENSE_TEST_DATA_DIR;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::path(::testing::TempDir()) / fmt::format("dense_{}_{}_{}", info->test_suite_name(), info->name(), ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// The real BERT uncased vocab.txt, or "" when it has not been fetched.
std::string full_vocab_path() {
  if (const char* dir = std::getenv("DENSE_VOCAB_DIR")) {
    const std::string p = std::string(dir) + "/vocab.txt";
    if (fs::exists(p)) return p;
  }
  const std::string p = kData + "/../../data/vocab/vocab.txt";
  return fs::exists(p) ? p : "";
}
constexpr const char* kNoVocab =
    "the BERT uncased vocab.txt is not present (run scripts/fetch_vocab.sh data/vocab or set DENSE_VOCAB_DIR)";

std::string unhex(const std::string& h) {
  std::string s;
  for (size_t i = 0; i + 1 < h.size(); i += 2) s.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The vocabulary of google-research/bert tokenization_test.py.
Vocab bert_test_vocab() {
  return Vocab::from_tokens({"[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","});
}

std::vector<std::string> pieces(const WordPieceTokenizer& t, std::string_view text) { return t.tokenize(text); }

using Strings = std::vector<std::string>;

}  // namespace

// ---- golden cross-check against HuggingFace's JavaScript BertTokenizer -----------------------------------

namespace {

void check_goldens(const std::string& vocab_path, const char* which) {
  const auto j = nlohmann::json::parse(read_bytes(kData + "/wordpiece_expected.json"));
  const Vocab vocab = Vocab::load(vocab_path);
  ASSERT_EQ(vocab.sha256(), j[std::string(which) + "_vocab_sha256"].get<std::string>())
      << vocab_path << " is not the vocabulary the goldens were made with";
  const std::string dec_key = std::string(which) + "_decoded";
  size_t checked = 0;
  for (const bool uncased : {true, false}) {
    const char* mode = uncased ? "uncased" : "cased";
    const WordPieceTokenizer tok(vocab, uncased ? WordPieceOptions::uncased() : WordPieceOptions::cased());
    for (const auto& c : j["cases"]) {
      const std::string name = c["name"];
      const std::string text = c.contains("text") ? c["text"].get<std::string>() : unhex(c["hex"]);
      const auto expected = c[mode][which].get<std::vector<int32_t>>();
      const auto ids = tok.encode(text);
      EXPECT_EQ(ids, expected) << mode << " case " << name;
      if (!ids.empty()) {
        EXPECT_EQ(tok.decode(ids), c[mode][dec_key].get<std::string>()) << mode << " case " << name;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 100u);
}

}  // namespace

TEST(WordPieceGolden, SmallVocabMatchesHuggingFaceJs) { check_goldens(kData + "/wordpiece_vocab_small.txt", "small"); }

TEST(WordPieceGolden, FullVocabMatchesHuggingFaceJs) {
  const std::string path = full_vocab_path();
  if (path.empty()) GTEST_SKIP() << kNoVocab;
  check_goldens(path, "full");
}

// ---- published vectors (data-sources §2) -------------------------------------------------------------

TEST(WordPiecePublished, FullVocabIdsAndSpecials) {
  const std::string path = full_vocab_path();
  if (path.empty()) GTEST_SKIP() << kNoVocab;
  const auto tok = WordPieceTokenizer::from_file(path);
  const Vocab& v = tok.vocab();
  EXPECT_EQ(v.size(), 30522);
  EXPECT_EQ(v.sha256(), "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3");
  EXPECT_EQ(v.pad_id(), 0);
  EXPECT_EQ(v.unk_id(), 100);
  EXPECT_EQ(v.cls_id(), 101);
  EXPECT_EQ(v.sep_id(), 102);
  EXPECT_EQ(v.mask_id(), 103);
  EXPECT_EQ(v.find("the"), 1996);
  EXPECT_EQ(v.find("##ing"), 2075);
  EXPECT_EQ(v.find("[unused0]"), 1);
  using Ids = std::vector<int32_t>;
  EXPECT_EQ(tok.encode("a new test"), (Ids{1037, 2047, 3231}));
  EXPECT_EQ(tok.encode("a new [test]"), (Ids{1037, 2047, 1031, 3231, 1033}));
  // The TF.js vector gives [UNK] for "new\b\v"; HuggingFace (and BERT's tokenization.py) drop the controls.
  EXPECT_EQ(tok.encode("a new\b\v [test]"), (Ids{1037, 2047, 1031, 3231, 1033}));
  EXPECT_EQ(tok.encode("i like strawberries"), (Ids{1045, 2066, 13137, 20968}));
  EXPECT_EQ(tok.encode("Héllo, Wörld! 東京 naïve café"), (Ids{7592, 1010, 2088, 999, 1879, 1755, 15743, 7668}));
  // The packed-MLM builder appends a literal "[SEP]" to each document (docs/model.md §3.2).
  EXPECT_EQ(tok.encode("the end.[SEP]"), (Ids{1996, 2203, 1012, 102}));
  const Encoding e = tok.encode_pair("i like strawberries", "a new test");
  EXPECT_EQ(e.input_ids, (Ids{101, 1045, 2066, 13137, 20968, 102, 1037, 2047, 3231, 102}));
}

TEST(WordPiecePublished, SmallVocabTokens) {
  const auto tok = WordPieceTokenizer::from_file(kData + "/wordpiece_vocab_small.txt");
  EXPECT_EQ(pieces(tok, "a new test"), (Strings{"a", "new", "test"}));
  EXPECT_EQ(pieces(tok, "a new [test]"), (Strings{"a", "new", "[", "test", "]"}));
  EXPECT_EQ(pieces(tok, "a new\b\v [test]"), (Strings{"a", "new", "[", "test", "]"}));
  EXPECT_EQ(pieces(tok, "i like strawberries"), (Strings{"i", "like", "straw", "##berries"}));
  EXPECT_EQ(pieces(tok, "Héllo, Wörld! 東京 naïve café"),
            (Strings{"hello", ",", "world", "!", "東", "京", "naive", "cafe"}));
}

// ---- google-research/bert tokenization_test.py (and HuggingFace's additions) ----------------------------

TEST(WordPiece, BertWordpieceTokenizerVectors) {
  const WordPieceTokenizer tok(bert_test_vocab());
  EXPECT_EQ(pieces(tok, ""), Strings{});
  EXPECT_EQ(pieces(tok, "unwanted running"), (Strings{"un", "##want", "##ed", "runn", "##ing"}));
  EXPECT_EQ(pieces(tok, "unwantedX running"), (Strings{"[UNK]", "runn", "##ing"}));
  EXPECT_EQ(pieces(tok, "UNwant\u00E9d,running"), (Strings{"un", "##want", "##ed", ",", "runn", "##ing"}));
  EXPECT_EQ(tok.encode("unwanted running"), (std::vector<int32_t>{7, 4, 5, 8, 9}));
}

TEST(WordPiece, BertBasicTokenizerVectors) {
  const BasicTokenizer lower;
  EXPECT_EQ(lower.tokenize(" \tHeLLo!how  \n Are yoU?  "), (Strings{"hello", "!", "how", "are", "you", "?"}));
  EXPECT_EQ(lower.tokenize("H\u00E9llo"), (Strings{"hello"}));
  EXPECT_EQ(lower.tokenize("ah\u535A\u63A8zz"), (Strings{"ah", "\u535A", "\u63A8", "zz"}));
  EXPECT_EQ(BasicTokenizer({.lowercase = false}).tokenize(" \tHeLLo!how  \n Are yoU?  "),
            (Strings{"HeLLo", "!", "how", "Are", "yoU", "?"}));
  const std::string ha = " \tHäLLo!how  \n Are yoU?  ";
  EXPECT_EQ(BasicTokenizer({.lowercase = true, .strip_accents = 0}).tokenize(ha),
            (Strings{"hällo", "!", "how", "are", "you", "?"}));
  EXPECT_EQ(BasicTokenizer({.lowercase = true, .strip_accents = 1}).tokenize(ha),
            (Strings{"hallo", "!", "how", "are", "you", "?"}));
  EXPECT_EQ(BasicTokenizer({.lowercase = true}).tokenize(ha), (Strings{"hallo", "!", "how", "are", "you", "?"}));
  EXPECT_EQ(BasicTokenizer({.lowercase = false, .strip_accents = 0}).tokenize(ha),
            (Strings{"HäLLo", "!", "how", "Are", "yoU", "?"}));
  EXPECT_EQ(BasicTokenizer({.lowercase = false, .strip_accents = 1}).tokenize(ha),
            (Strings{"HaLLo", "!", "how", "Are", "yoU", "?"}));
  EXPECT_EQ(BasicTokenizer({.tokenize_chinese_chars = false}).tokenize("ah\u535A\u63A8zz"),
            (Strings{"ah\u535A\u63A8zz"}));
}

TEST(WordPiece, CharacterClasses) {
  for (char32_t c : {U' ', U'\t', U'\r', U'\n', U'\u00A0', U'\u3000', U'\u2028'})
    EXPECT_TRUE(is_bert_whitespace(c)) << uint32_t(c);
  for (char32_t c : {U'A', U'-', U'\u200B'}) EXPECT_FALSE(is_bert_whitespace(c)) << uint32_t(c);
  for (char32_t c : {U'\u0005', U'\u0000', U'\u007F', U'\u0085', U'\u200B', U'\uE000', U'\u0378'})
    EXPECT_TRUE(is_bert_control(c)) << uint32_t(c);
  for (char32_t c : {U'A', U' ', U'\t', U'\r', U'\n', U'\U0001F4A9'}) EXPECT_FALSE(is_bert_control(c)) << uint32_t(c);
  for (char32_t c : {U'-', U'$', U'`', U'.', U'~', U'\u00BF', U'\u3001', U'\u2014'})
    EXPECT_TRUE(is_bert_punctuation(c)) << uint32_t(c);
  for (char32_t c : {U'A', U' ', U'\u20AC', U'\u00A9'}) EXPECT_FALSE(is_bert_punctuation(c)) << uint32_t(c);
  EXPECT_TRUE(is_cjk_char(U'\u4E00'));
  EXPECT_TRUE(is_cjk_char(U'\U00020000'));
  EXPECT_FALSE(is_cjk_char(U'\u3042'));  // hiragana is not split off
  EXPECT_FALSE(is_cjk_char(U'\uAC00'));  // nor is Hangul
}

// Where the JavaScript reference departs from BERT's Python tokenizer, we follow Python.
TEST(WordPiece, PythonBehaviourWhereJsDiffers) {
  const BasicTokenizer basic;
  // Unassigned code points (category Cn) are control characters to Python and are dropped.
  EXPECT_EQ(basic.tokenize("x\u0378y"), (Strings{"xy"}));
  // Astral CJK ideographs are split off (JS walks UTF-16 units and misses them).
  EXPECT_EQ(basic.tokenize("a\U00020000b"), (Strings{"a", "\U00020000", "b"}));
  // str.lower(): final sigma by context, U+0130 -> "i" + U+0307.
  const BasicTokenizer keep({.lowercase = true, .strip_accents = 0});
  EXPECT_EQ(keep.tokenize("ΟΔΟΣ ΣΑΣ. Σ ΑΣΑ"), (Strings{"οδος", "σας", ".", "σ", "ασα"}));
  EXPECT_EQ(keep.tokenize("İ"), (Strings{"i\u0307"}));
}

TEST(WordPiece, SpecialTokensInText) {
  const auto tok = WordPieceTokenizer::from_file(kData + "/wordpiece_vocab_small.txt");
  const Vocab& v = tok.vocab();
  EXPECT_EQ(pieces(tok, "hello[SEP]"), (Strings{"hello", "[SEP]"}));
  EXPECT_EQ(pieces(tok, "[CLS]hello [MASK][SEP]"), (Strings{"[CLS]", "hello", "[MASK]", "[SEP]"}));
  EXPECT_EQ(pieces(tok, "[sep]"), (Strings{"[", "sep", "]"}));
  EXPECT_EQ(pieces(tok, "[[SEP]]"), (Strings{"[", "[SEP]", "]"}));
  EXPECT_EQ(tok.encode("[SEP]").at(0), v.sep_id());
  WordPieceOptions none;
  none.never_split.clear();
  const WordPieceTokenizer plain(v, none);
  EXPECT_EQ(pieces(plain, "hello[SEP]"), (Strings{"hello", "[", "sep", "]"}));
}

TEST(WordPiece, MaxInputCharsPerWordCountsCodePoints) {
  const Vocab v = Vocab::from_tokens({"[UNK]", "a", "##a", "aa", "##aa", "é", "##é", "e", "##e"});
  const WordPieceTokenizer cased(v, WordPieceOptions::cased());
  const WordPieceTokenizer uncased(v, WordPieceOptions::uncased());
  const std::string a100(100, 'a'), a101(101, 'a');
  auto ntok = [&](const WordPieceTokenizer& t, const std::string& s) { return t.encode(s).size(); };
  EXPECT_EQ(ntok(cased, a100), 50u);  // "aa" then 49 x "##aa"
  EXPECT_EQ(cased.encode(a101), (std::vector<int32_t>{v.unk_id()}));
  std::string e100, e101;
  for (int i = 0; i < 100; ++i) e100 += "é";
  e101 = e100 + "é";
  EXPECT_EQ(ntok(cased, e100), 100u);  // 200 bytes, 100 characters: not over the limit
  EXPECT_EQ(cased.encode(e101), (std::vector<int32_t>{v.unk_id()}));
  EXPECT_EQ(ntok(uncased, e100), 100u);  // "e" x 100 after accent stripping
  // Dropped characters do not count; the limit applies per word after punctuation splitting.
  EXPECT_EQ(ntok(cased, std::string(50, 'a') + "\x01" + std::string(50, 'a')), 50u);
  WordPieceOptions small = WordPieceOptions::cased();
  small.max_input_chars_per_word = 3;
  const WordPieceTokenizer t3(v, small);
  EXPECT_EQ(t3.tokenize("aaa aaaa"), (Strings{"aa", "##a", "[UNK]"}));
}

TEST(WordPiece, InvalidUtf8IsReplacedDroppedAndCounted) {
  const WordPieceTokenizer tok(Vocab::from_tokens({"[UNK]", "ab", "##cd", "cd", "x"}));
  std::vector<int32_t> out;
  EXPECT_EQ(tok.encode_append("ab\xff"
                              "cd",
                              out),
            1u);
  EXPECT_EQ(tok.tokenize("ab\xff"
                         "cd"),
            (Strings{"ab", "##cd"}));                           // U+FFFD is removed, the word is joined
  EXPECT_EQ(tok.encode_append("\xf0\x9f\x98", out), 1u);        // one truncated sequence
  EXPECT_EQ(tok.encode_append("\xc0\xaf", out), 2u);            // overlong: two subparts
  EXPECT_EQ(tok.encode_append("\xed\xa0\x80", out), 3u);        // surrogate
  EXPECT_EQ(tok.encode_append("ab \xef\xbf\xbd cd", out), 0u);  // a real U+FFFD is dropped, not counted
  EXPECT_EQ(tok.invalid_utf8_count(), 1u + 1 + 1 + 2 + 3);      // tokenize() counted too
  tok.encode("x");
  EXPECT_EQ(tok.invalid_utf8_count(), 8u);
  uint64_t replaced = 0;
  EXPECT_EQ(sanitize_utf8("a\xff"
                          "b\xe2\x82",
                          &replaced),
            "a\uFFFDb\uFFFD");
  EXPECT_EQ(replaced, 2u);
  EXPECT_TRUE(is_valid_utf8("naïve 東京 😀"));
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));
}

TEST(WordPiece, LongTextEqualsLineByLine) {
  // Texts over 64 KiB are processed in blocks cut at whitespace; the ids must not depend on that.
  const auto tok = WordPieceTokenizer::from_file(kData + "/wordpiece_vocab_small.txt");
  const auto j = nlohmann::json::parse(read_bytes(kData + "/wordpiece_expected.json"));
  std::vector<std::string> lines;
  for (const auto& c : j["cases"])
    if (c.contains("text")) lines.push_back(c["text"]);
  std::string all;
  std::vector<int32_t> expected;
  for (int rep = 0; all.size() < 300000; ++rep) {
    for (const auto& l : lines) {
      all += l;
      all += '\n';
      const auto ids = tok.encode(l);
      expected.insert(expected.end(), ids.begin(), ids.end());
    }
  }
  EXPECT_EQ(tok.encode(all), expected);
  // One 200 KB word without whitespace (no cut point) is a single [UNK].
  EXPECT_EQ(tok.encode(std::string(200000, 'a')), (std::vector<int32_t>{tok.vocab().unk_id()}));
}

TEST(WordPiece, EncodePairLayoutTruncationAndPadding) {
  const Vocab v = Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"});
  const WordPieceTokenizer tok(v);
  using Ids = std::vector<int32_t>;
  using I8 = std::vector<int8_t>;
  Encoding e = tok.encode_pair("a a", "b", 0);
  EXPECT_EQ(e.input_ids, (Ids{2, 5, 5, 3, 6, 3}));
  EXPECT_EQ(e.token_type_ids, (I8{0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(e.attention_mask, (I8{1, 1, 1, 1, 1, 1}));
  e = tok.encode_pair("a a", "b", 8, /*pad=*/true);
  EXPECT_EQ(e.input_ids, (Ids{2, 5, 5, 3, 6, 3, 0, 0}));
  EXPECT_EQ(e.token_type_ids, (I8{0, 0, 0, 0, 1, 1, 0, 0}));
  EXPECT_EQ(e.attention_mask, (I8{1, 1, 1, 1, 1, 1, 0, 0}));
  e = tok.encode_pair("a a a a a a a", "b b b", 8);  // budget 5: a keeps 3 (the odd one, longer), b keeps 2
  EXPECT_EQ(e.input_ids, (Ids{2, 5, 5, 5, 3, 6, 6, 3}));
  EXPECT_EQ(e.truncated, 5u);
  e = tok.encode_single("a a a a", 4);
  EXPECT_EQ(e.input_ids, (Ids{2, 5, 5, 3}));
  EXPECT_EQ(e.truncated, 2u);
  EXPECT_TRUE(contains(error_of([&] { tok.encode_pair("a", "b", 2); }), "too small"));

  // tokenizers' LongestFirst: (n_a, n_b, budget) -> (kept a, kept b).
  struct Case {
    size_t a, b, budget, ka, kb;
  };
  for (const Case& c : {Case{10, 10, 9, 4, 5}, Case{2, 10, 9, 2, 7}, Case{10, 3, 9, 6, 3}, Case{7, 6, 9, 5, 4},
                        Case{3, 4, 7, 3, 4}, Case{30, 1, 5, 4, 1}, Case{0, 12, 5, 0, 5}, Case{9, 9, 0, 0, 0}}) {
    Ids a(c.a, 1), b(c.b, 2);
    const size_t removed = WordPieceTokenizer::truncate_longest_first(a, b, c.budget);
    EXPECT_EQ(a.size(), c.ka) << c.a << "," << c.b << " budget " << c.budget;
    EXPECT_EQ(b.size(), c.kb) << c.a << "," << c.b << " budget " << c.budget;
    EXPECT_EQ(removed, c.a + c.b - c.ka - c.kb);
  }
}

TEST(WordPiece, Decode) {
  const auto tok = WordPieceTokenizer::from_file(kData + "/wordpiece_vocab_small.txt");
  const std::string text = "[CLS] i like strawberries, don't you? [SEP]";
  const auto ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), "[CLS] i like strawberries , don ' t you ? [SEP]");
  EXPECT_EQ(tok.decode(ids, {.skip_special_tokens = true}), "i like strawberries , don ' t you ?");
  EXPECT_EQ(tok.decode(ids, {.skip_special_tokens = true, .clean_up_spaces = true}), "i like strawberries, don't you?");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{}), "");
  EXPECT_TRUE(contains(error_of([&] { tok.decode(std::vector<int32_t>{99999}); }), "out of range"));
}

TEST(WordPiece, ConcurrentEncodeIsConsistent) {
  auto tok = WordPieceTokenizer::from_file(kData + "/wordpiece_vocab_small.txt");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "Héllo, Wörld! 東京 naïve café \xff strawberries. ";
  const auto expected = tok.encode(text);
  tok.reset_invalid_utf8_count();
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) threads.emplace_back([&, t] { got[t] = tok.encode(text); });
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
  EXPECT_EQ(tok.invalid_utf8_count(), 4u * 2000u);
}

// ---- Vocab -------------------------------------------------------------------------------------------

TEST(Vocab, Sha256KnownAnswers) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  for (size_t n : {55u, 56u, 63u, 64u, 65u, 119u, 120u}) EXPECT_EQ(sha256_hex(std::string(n, 'x')).size(), 64u);
}

TEST(Vocab, LoadLookupHashAndRoundTrip) {
  const std::string path = kData + "/wordpiece_vocab_small.txt";
  const Vocab v = Vocab::load(path);
  EXPECT_EQ(v.sha256(), sha256_hex(read_bytes(path)));
  EXPECT_EQ(v.source(), path);
  EXPECT_EQ(v.pad_id(), 0);
  EXPECT_EQ(v.unk_id(), 1);
  EXPECT_EQ(v.cls_id(), 2);
  EXPECT_EQ(v.sep_id(), 3);
  EXPECT_EQ(v.mask_id(), 4);
  EXPECT_TRUE(v.is_special(3));
  EXPECT_FALSE(v.is_special(5));
  for (int32_t id = 0; id < v.size(); ++id) {
    EXPECT_EQ(v.find(v.token(id)), id);
    const std::string& t = v.token(id);
    if (t.size() > 2 && t.rfind("##", 0) == 0) {
      EXPECT_EQ(v.find_continuation(std::string_view(t).substr(2)), id);
    }
  }
  EXPECT_EQ(v.find("definitely-not-a-token"), -1);
  EXPECT_EQ(v.id_or_unk("definitely-not-a-token"), v.unk_id());
  EXPECT_TRUE(contains(error_of([&] { v.token(v.size()); }), "out of range"));

  const std::string dir = temp_dir();
  const Vocab t = Vocab::from_tokens(v.tokens(), "trained");
  EXPECT_EQ(t.sha256(), v.sha256());  // same bytes as the file
  t.save(dir + "/vocab.txt");
  EXPECT_EQ(read_bytes(dir + "/vocab.txt"), read_bytes(path));
  const Vocab copy = v;  // copies keep working lookups
  const Vocab moved = Vocab(copy);
  EXPECT_EQ(moved.find("hello"), v.find("hello"));
  EXPECT_EQ(moved.find_continuation("berries"), v.find("##berries"));
}

TEST(Vocab, LoadErrorsNameFileAndLine) {
  const std::string dir = temp_dir();
  auto load_error = [&](const std::string& name, const std::string& content) {
    const std::string p = dir + "/" + name;
    write_bytes(p, content);
    return error_of([&] { Vocab::load(p); });
  };
  std::string m = load_error("dup.txt", "[UNK]\na\nb\na\n");
  EXPECT_TRUE(contains(m, "dup.txt:4") && contains(m, "duplicate token 'a'") && contains(m, "line 2")) << m;
  m = load_error("empty_line.txt", "[UNK]\na\n\nb\n");
  EXPECT_TRUE(contains(m, "empty_line.txt:3") && contains(m, "empty line")) << m;
  m = load_error("crlf.txt", "[UNK]\r\na\r\n");
  EXPECT_TRUE(contains(m, "crlf.txt:1") && contains(m, "CRLF")) << m;
  m = load_error("utf8.txt", "[UNK]\nab\xff\n");
  EXPECT_TRUE(contains(m, "utf8.txt:2") && contains(m, "UTF-8")) << m;
  m = load_error("no_unk.txt", "[PAD]\na\n");
  EXPECT_TRUE(contains(m, "no_unk.txt") && contains(m, "[UNK]")) << m;
  m = load_error("bom.txt", "\xEF\xBB\xBF[UNK]\n");
  EXPECT_TRUE(contains(m, "bom.txt:1") && contains(m, "byte-order mark")) << m;
  m = load_error("empty.txt", "");
  EXPECT_TRUE(contains(m, "empty.txt") && contains(m, "empty")) << m;
  m = error_of([&] { Vocab::load(dir + "/missing.txt"); });
  EXPECT_TRUE(contains(m, "missing.txt") && contains(m, "cannot open")) << m;
  // No trailing newline is fine.
  EXPECT_EQ(Vocab::parse("[UNK]\na", "x").size(), 2);
  EXPECT_TRUE(contains(error_of([] { Vocab::from_tokens({"a", "a", "[UNK]"}); }), "duplicate"));
}

// ---- byte and character tokenizers (LRA) --------------------------------------------------------------

TEST(CharTokenizer, ByteLevel) {
  const ByteTokenizer b(3);
  EXPECT_EQ(b.vocab_size(), 259);
  EXPECT_EQ(b.encode("Az\xff\x00"), (std::vector<int32_t>{'A' + 3, 'z' + 3, 255 + 3}));  // "\x00" ends the literal
  const std::string text("h\xc3\xa9\0!", 5);
  const auto ids = b.encode(text);
  EXPECT_EQ(ids, (std::vector<int32_t>{'h' + 3, 0xc3 + 3, 0xa9 + 3, 3, '!' + 3}));
  std::vector<int32_t> padded = ids;
  padded.insert(padded.begin(), 0);  // below the offset: skipped by decode
  padded.push_back(1000);
  EXPECT_EQ(b.decode(padded), text);
  EXPECT_EQ(ByteTokenizer().encode("a"), (std::vector<int32_t>{97}));
}

TEST(CharTokenizer, MinFrequencyVocabulary) {
  // 'a' x5, 'b' x3, 'é' x3, '東' x1, ' ' x2
  const std::vector<std::string> texts = {"aab é", "aaé b", "ab東é"};
  const CharTokenizer t = CharTokenizer::build(texts, {.min_frequency = 3, .add_cls = false});
  EXPECT_EQ(t.chars(), (std::vector<char32_t>{U'a', U'b', U'é'}));  // code-point order
  EXPECT_EQ(t.size(), 5);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 1);
  EXPECT_EQ(t.cls_id(), -1);
  EXPECT_EQ(t.encode("ab é東"), (std::vector<int32_t>{2, 3, 1, 4, 1}));
  EXPECT_EQ(t.encode_fixed("abab", 6, false), (std::vector<int32_t>{2, 3, 2, 3, 0, 0}));
  EXPECT_EQ(t.encode_fixed("abab", 3, false), (std::vector<int32_t>{2, 3, 2}));
  EXPECT_EQ(t.decode(t.encode_fixed("ba?", 5, false)), "ba\uFFFD");

  const CharTokenizer c = CharTokenizer::build(texts, {.min_frequency = 1, .add_cls = true});
  EXPECT_EQ(c.cls_id(), 2);
  EXPECT_EQ(c.chars(), (std::vector<char32_t>{U' ', U'a', U'b', U'é', U'東'}));
  EXPECT_EQ(c.id(U' '), 3);
  EXPECT_EQ(c.encode_fixed("東a", 4, true), (std::vector<int32_t>{2, 7, 4, 0}));
  EXPECT_TRUE(contains(error_of([&] { t.encode_fixed("a", 4, true); }), "[CLS]"));

  uint64_t bad = 0;
  EXPECT_EQ(t.encode("a\xff"
                     "b",
                     &bad),
            (std::vector<int32_t>{2, 1, 3}));
  EXPECT_EQ(bad, 1u);
  CharCounter k1, k2;
  k1.add_text("aa\xff");
  k2.add_text("a\xff");
  k1.merge(k2);
  EXPECT_EQ(k1.counts().at(U'a'), 3);
  EXPECT_EQ(k1.counts().at(U'\uFFFD'), 2);
  EXPECT_EQ(k1.invalid_utf8(), 2u);

  const CharTokenizer r = CharTokenizer::from_json(c.to_json());
  EXPECT_EQ(r.chars(), c.chars());
  EXPECT_EQ(r.cls_id(), 2);
  EXPECT_EQ(r.encode("a東"), c.encode("a東"));
  EXPECT_TRUE(contains(error_of([] { CharTokenizer::from_chars({U'a', U'a'}, false); }), "twice"));
}
