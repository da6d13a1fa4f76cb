// WordPiece vocabulary training: a hand-checked merge sequence, determinism (input order, counter merging),
// special tokens first, the size limit (including a truncated alphabet), min_frequency, and that every training
// word tokenizes without [UNK] (fixture texts, and a slice of the real WikiText-2 when present).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "data/vocab.h"
#include "data/wordpiece.h"
#include "data_prep/vocab_train.h"

using namespace dense;
using namespace dense::data;
namespace fs = std::filesystem;

namespace {

const std::string kData = DENSE_TEST_DATA_DIR;
using Strings = std::vector<std::string>;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The readable texts of the WordPiece golden cases: a small multilingual corpus.
Strings fixture_texts() {
  const auto j = nlohmann::json::parse(read_bytes(kData + "/wordpiece_expected.json"));
  Strings out;
  for (const auto& c : j["cases"])
    if (c.contains("text")) out.push_back(c["text"]);
  return out;
}

std::function<bool(std::string&)> reader(const Strings& texts) {
  auto pos = std::make_shared<size_t>(0);
  return [&texts, pos](std::string& out) {
    if (*pos >= texts.size()) return false;
    out = texts[(*pos)++];
    return true;
  };
}

VocabTrainOptions opts(size_t size, int64_t min_freq = 1, bool lowercase = true) {
  VocabTrainOptions o;
  o.vocab_size = size;
  o.min_frequency = min_freq;
  o.lowercase = lowercase;
  return o;
}

// Every word of `texts` (as the tokenizer sees it) must tokenize without [UNK].
void expect_no_unk(const Strings& vocab, const Strings& texts, bool lowercase) {
  WordPieceOptions wo = lowercase ? WordPieceOptions::uncased() : WordPieceOptions::cased();
  wo.never_split.clear();
  const WordPieceTokenizer tok(Vocab::from_tokens(vocab), wo);
  const BasicTokenizer basic({.lowercase = lowercase});
  size_t words = 0;
  for (const auto& t : texts) {
    for (const auto& w : basic.tokenize(t)) {
      const auto ids = tok.encode(w);
      ++words;
      size_t chars = 0;
      for (const unsigned char c : w) chars += (c & 0xC0) != 0x80;
      if (chars > 100) continue;
      ASSERT_TRUE(std::find(ids.begin(), ids.end(), tok.vocab().unk_id()) == ids.end()) << "word '" << w << "'";
    }
  }
  EXPECT_GT(words, 0u);
}

}  // namespace

TEST(VocabTrain, HandCheckedMerges) {
  // Words: "ab" x3, "abc" x1, "bc" x2.  Pairs: (a,##b) 4, (b,##c) 2, (##b,##c) 1.
  const Strings corpus = {"ab ab ab abc bc bc"};
  const auto v = train_wordpiece_vocab(reader(corpus), opts(100, 1));
  // specials, initial characters, "##" characters, then merges: "ab" (4), "bc" (2), then "abc" (ab+##c, 1).
  EXPECT_EQ(v, (Strings{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "##b", "##c", "ab", "bc", "abc"}));
  // min_frequency 2 stops before the pairs seen once.
  const auto v2 = train_wordpiece_vocab(reader(corpus), opts(100, 2));
  EXPECT_EQ(v2, (Strings{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "##b", "##c", "ab", "bc"}));
  // The size limit stops merging.
  const auto v3 = train_wordpiece_vocab(reader(corpus), opts(11, 1));
  EXPECT_EQ(v3.size(), 11u);
  EXPECT_EQ(v3.back(), "ab");
}

TEST(VocabTrain, TiesGoToTheSmallerPairOfIds) {
  // "xy" and "xz" equally frequent: (x,##y) has the smaller ids and merges first.
  const auto v = train_wordpiece_vocab(reader({"xz xy"}), opts(100, 1));
  const auto xy = std::find(v.begin(), v.end(), "xy"), xz = std::find(v.begin(), v.end(), "xz");
  ASSERT_TRUE(xy != v.end() && xz != v.end());
  EXPECT_LT(xy - v.begin(), xz - v.begin());
}

TEST(VocabTrain, DeterministicAcrossOrderAndCounterMerging) {
  const Strings texts = fixture_texts();
  const auto a = train_wordpiece_vocab(reader(texts), opts(400, 1));
  Strings reversed(texts.rbegin(), texts.rend());
  const auto b = train_wordpiece_vocab(reader(reversed), opts(400, 1));
  EXPECT_EQ(a, b);
  // Counting in two halves (as two threads would) and merging gives the same vocabulary.
  WordCounter c1, c2;
  for (size_t k = 0; k < texts.size(); ++k) (k % 2 ? c1 : c2).add_text(texts[k]);
  c2.merge(c1);
  EXPECT_EQ(train_wordpiece_vocab(c2, opts(400, 1)), a);
  EXPECT_EQ(train_wordpiece_vocab(reader(texts), opts(400, 1)), a);
}

TEST(VocabTrain, SpecialsFirstSizeRespectedNoUnk) {
  const Strings texts = fixture_texts();
  for (const bool lowercase : {true, false}) {
    // Unbounded: merging runs until no pair is left (every word whole).
    const size_t all = train_wordpiece_vocab(reader(texts), opts(1000000, 1, lowercase)).size();
    ASSERT_GT(all, 900u);
    VocabTrainOptions o = opts(all - 200, 1, lowercase);
    o.special_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"};
    const auto v = train_wordpiece_vocab(reader(texts), o);
    ASSERT_GE(v.size(), o.special_tokens.size());
    EXPECT_EQ(Strings(v.begin(), v.begin() + 6), o.special_tokens);
    EXPECT_EQ(v.size(), all - 200);
    EXPECT_EQ(std::set<std::string>(v.begin(), v.end()).size(), v.size()) << "duplicate tokens";
    expect_no_unk(v, texts, lowercase);
    // The result loads as a vocab.txt.
    const Vocab vocab = Vocab::from_tokens(v);
    EXPECT_EQ(vocab.pad_id(), 0);
    EXPECT_EQ(vocab.unk_id(), 1);
  }
}

TEST(VocabTrain, AlphabetLargerThanVocabIsCut) {
  const Strings texts = fixture_texts();
  const auto v = train_wordpiece_vocab(reader(texts), opts(60, 1));
  EXPECT_EQ(v.size(), 60u);
  EXPECT_EQ(v[1], "[UNK]");
  // The most frequent characters survive.
  EXPECT_TRUE(std::find(v.begin(), v.end(), "e") != v.end());
  EXPECT_TRUE(std::find(v.begin(), v.end(), "a") != v.end());
  EXPECT_TRUE(std::find(v.begin(), v.end(), "##e") != v.end());
  // limit_alphabet caps the characters even when vocab_size is large.
  VocabTrainOptions o = opts(1000, 1);
  o.limit_alphabet = 20;
  const auto w = train_wordpiece_vocab(reader(texts), o);
  size_t initial_chars = 0;
  for (const auto& t : w)
    if (t.size() <= 4 && t.rfind("##", 0) != 0 && t[0] != '[') {
      size_t cps = 0;
      for (const unsigned char c : t) cps += (c & 0xC0) != 0x80;
      initial_chars += cps == 1;
    }
  EXPECT_LE(initial_chars, 20u);
  EXPECT_THROW(train_wordpiece_vocab(reader(texts), opts(3, 1)), Error);  // fewer slots than specials
}

TEST(VocabTrain, WikiText2SliceHasNoUnk) {
  const std::string path = std::string(DENSE_SHARED_DIR) + "/data/wikitext-2/train.txt";
  if (!fs::exists(path)) GTEST_SKIP() << "WikiText-2 not found at " << path;
  std::string all = read_bytes(path).substr(0, 400000);
  Strings lines;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find('\n', pos);
    if (end == std::string::npos) end = all.size();
    lines.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  const auto v = train_wordpiece_vocab(reader(lines), opts(3000, 2));
  EXPECT_EQ(v.size(), 3000u);
  expect_no_unk(v, lines, true);
  // Frequent words became whole tokens.
  for (const char* w : {"the", "of", "and", "game"}) EXPECT_TRUE(std::find(v.begin(), v.end(), w) != v.end()) << w;
}
