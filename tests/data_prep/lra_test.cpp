// Long Range Arena data: ListOps (generator rules, evaluator checked against an independent evaluation of the
// release rendering, TSV format, encoding), Pathfinder / Path-X (determinism, labels, snake geometry, PNG +
// metadata layout, splits), PNG (round trip, all row filters, corrupt files), IDX (raw, gzip, corrupt),
// CIFAR-10 binary records (grey rules), the IMDB folder layout and the AAN TSV. Fixtures are written by the
// tests into temporary folders.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "core/error.h"
#include "data_prep/lra_aan.h"
#include "data_prep/lra_idx.h"
#include "data_prep/lra_imdb.h"
#include "data_prep/lra_listops.h"
#include "data_prep/lra_pathfinder.h"
#include "data_prep/lra_png.h"
#include "test_files.h"

using namespace dense;
using namespace dense::data::lra;
namespace fs = std::filesystem;

namespace {

using namespace dense::testing;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("dense_lra_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_file(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

// ---- an independent ListOps evaluation: listops.py to_value on the nested binary-tuple rendering ----------
struct Value {
  enum Kind { kInt, kOp, kEnd, kPartial } kind = kInt;
  int v = 0;
  std::string op;
  std::vector<int> args;
};

Value combine(const Value& l, const Value& r) {
  if (l.kind == Value::kOp) return {Value::kPartial, 0, l.op, {r.v}};  // (op, first argument)
  if (r.kind == Value::kEnd) {                                         // saturate the function
    std::vector<int> a = l.args;
    int out = 0;
    if (l.op == "[MIN") out = *std::min_element(a.begin(), a.end());
    if (l.op == "[MAX") out = *std::max_element(a.begin(), a.end());
    if (l.op == "[SM") {
      for (int x : a) out += x;
      out %= 10;
    }
    if (l.op == "[MED") {
      std::sort(a.begin(), a.end());
      const double med = a.size() % 2 ? a[a.size() / 2] : (a[a.size() / 2 - 1] + a[a.size() / 2]) / 2.0;
      out = int(med);
    }
    return {Value::kInt, out, "", {}};
  }
  Value p = l;  // (partial, next argument)
  p.args.push_back(r.v);
  return p;
}

Value parse_rendered(const std::vector<std::string>& toks, size_t& i) {
  const std::string t = toks.at(i++);
  if (t == "(") {
    const Value l = parse_rendered(toks, i);
    const Value r = parse_rendered(toks, i);
    EXPECT_EQ(toks.at(i), ")");
    ++i;
    return combine(l, r);
  }
  if (t == "]") return {Value::kEnd, 0, "", {}};
  if (t[0] == '[') return {Value::kOp, 0, t, {}};
  return {Value::kInt, std::stoi(t), "", {}};
}

int evaluate_rendered(const std::string& source) {
  std::vector<std::string> toks;
  size_t s = 0;
  while (s < source.size()) {
    const size_t e = std::min(source.find(' ', s), source.size());
    if (e > s) toks.push_back(source.substr(s, e - s));
    s = e + 1;
  }
  size_t i = 0;
  const Value v = parse_rendered(toks, i);
  EXPECT_EQ(i, toks.size());
  EXPECT_EQ(v.kind, Value::kInt);
  return v.v;
}

// Depth and argument counts of a prefix token sequence.
void tree_shape(const std::vector<uint8_t>& t, int& max_depth, int& min_args, int& max_args) {
  std::vector<int> counts;
  max_depth = 1;
  min_args = 1 << 30;
  max_args = 0;
  for (uint8_t tok : t) {
    if (listops_is_op(tok)) {
      if (!counts.empty()) ++counts.back();
      counts.push_back(0);
      max_depth = std::max(max_depth, int(counts.size()));
    } else if (tok == kListOpsEnd) {
      min_args = std::min(min_args, counts.back());
      max_args = std::max(max_args, counts.back());
      counts.pop_back();
    } else {
      if (!counts.empty()) {
        ++counts.back();
        max_depth = std::max(max_depth, int(counts.size()) + 1);
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
TEST(ListOps, VocabularyIsTheSpecs17Tokens) {
  EXPECT_EQ(kListOpsVocabSize, 17);
  const std::vector<std::string> expect = {"[PAD]", "[MAX", "[MIN", "[MED", "[SM", "]", "0", "1",    "2",
                                           "3",     "4",    "5",    "6",    "7",   "8", "9", "[CLS]"};
  for (uint8_t i = 0; i < 17; ++i) {
    EXPECT_EQ(listops_token_text(i), expect[i]);
    EXPECT_EQ(listops_token_id(expect[i]), i);
  }
  EXPECT_EQ(int(kListOpsPad), 0);
  EXPECT_EQ(int(kListOpsCls), 16);
  expect_error([] { listops_token_id("[FIRST"); }, {"[FIRST"});
}

TEST(ListOps, RenderingTokenizingAndEvaluation) {
  const std::vector<uint8_t> t = {kListOpsMax, kListOpsDigit0 + 2, kListOpsDigit0 + 9, kListOpsEnd};
  EXPECT_EQ(listops_render(t), "( ( ( [MAX 2 ) 9 ) ] )");
  EXPECT_EQ(listops_tokenize("( ( ( [MAX 2 ) 9 ) ] )"), t);
  EXPECT_EQ(listops_evaluate(t), 9);
  // [MED 1 2 3 4 ] = int(2.5) = 2; [SM 9 8 7 ] = 24 % 10 = 4; [MIN 5 [MAX 7 1 ] 6 ] = 5.
  EXPECT_EQ(listops_evaluate(listops_tokenize("[MED 1 2 3 4 ]")), 2);
  EXPECT_EQ(listops_evaluate(listops_tokenize("[MED 3 1 2 ]")), 2);
  EXPECT_EQ(listops_evaluate(listops_tokenize("[SM 9 8 7 ]")), 4);
  const auto nested = listops_tokenize("[MIN 5 [MAX 7 1 ] 6 ]");
  EXPECT_EQ(listops_evaluate(nested), 5);
  EXPECT_EQ(evaluate_rendered(listops_render(nested)), 5);
  EXPECT_EQ(listops_tokenize(listops_render(nested)), nested);
  EXPECT_EQ(listops_evaluate(listops_tokenize("7")), 7);
  expect_error([] { listops_evaluate(listops_tokenize("[MAX 1 2")); }, {"not closed"});
  expect_error([] { listops_evaluate(listops_tokenize("1 ]")); }, {"after the end"});
  expect_error([] { listops_evaluate(listops_tokenize("[MAX ]")); }, {"without arguments"});
  expect_error([] { listops_tokenize("( [MAX 1 [FOO ] )", "x.tsv:4"); }, {"x.tsv:4", "'[FOO'"});
}

TEST(ListOps, GeneratorFollowsTheRulesAndLabelsMatchAnIndependentEvaluation) {
  ListOpsConfig c;
  c.min_length = 20;
  c.max_length = 120;
  c.max_depth = 6;
  c.max_args = 5;
  c.num_train = 300;
  c.num_val = 20;
  c.num_test = 30;
  c.seed = 11;
  const auto ds = generate_listops(c);
  ASSERT_EQ(ds.train.size(), 300u);
  ASSERT_EQ(ds.val.size(), 20u);
  ASSERT_EQ(ds.test.size(), 30u);
  std::set<std::string> seen;
  std::map<int, int> label_counts;
  for (const auto* split : {&ds.train, &ds.val, &ds.test}) {
    for (const auto& e : *split) {
      EXPECT_GT(int(e.tokens.size()), c.min_length);
      EXPECT_LT(int(e.tokens.size()), c.max_length);
      EXPECT_TRUE(seen.insert(std::string(e.tokens.begin(), e.tokens.end())).second) << "duplicate tree";
      int depth, min_args, max_args;
      tree_shape(e.tokens, depth, min_args, max_args);
      EXPECT_LE(depth, c.max_depth);
      EXPECT_GE(min_args, 2);
      EXPECT_LE(max_args, c.max_args);
      EXPECT_EQ(e.target, evaluate_rendered(listops_render(e.tokens)));
      EXPECT_EQ(e.target, listops_evaluate(e.tokens));
      label_counts[e.target]++;
    }
  }
  EXPECT_EQ(label_counts.size(), 10u);  // every class occurs
  EXPECT_GE(ds.candidates, 350);
}

TEST(ListOps, DeterministicPerSeedWithTheDefaultLengthRules) {
  ListOpsConfig c;  // 500 < length < 2000, depth 10, 10 args
  c.num_train = 12;
  c.num_val = 2;
  c.num_test = 2;
  c.seed = 3;
  const auto a = generate_listops(c);
  const auto b = generate_listops(c);
  c.seed = 4;
  const auto d = generate_listops(c);
  ASSERT_EQ(a.train.size(), 12u);
  for (size_t i = 0; i < a.train.size(); ++i) {
    EXPECT_EQ(a.train[i].tokens, b.train[i].tokens);
    EXPECT_GT(a.train[i].tokens.size(), 500u);
    EXPECT_LT(a.train[i].tokens.size(), 2000u);
    EXPECT_EQ(a.train[i].target, evaluate_rendered(listops_render(a.train[i].tokens)));
  }
  EXPECT_NE(a.train[0].tokens, d.train[0].tokens);
  EXPECT_EQ(a.test[1].tokens, b.test[1].tokens);
}

TEST(ListOps, ReleaseTsvRoundTripAndErrors) {
  TempDir tmp("listops");
  ListOpsConfig c;
  c.min_length = 10;
  c.max_length = 60;
  c.num_train = 25;
  c.num_val = c.num_test = 0;
  const auto ds = generate_listops(c);
  write_listops_tsv(tmp.path / "basic_train.tsv", ds.train);
  const auto back = read_listops_tsv(tmp.path / "basic_train.tsv");
  ASSERT_EQ(back.size(), ds.train.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].tokens, ds.train[i].tokens);
    EXPECT_EQ(back[i].target, ds.train[i].target);
  }
  // The release files come from Python's csv.writer: CRLF line ends.
  write_file(tmp.path / "release.tsv", "Source\tTarget\r\n( ( ( [MAX 2 ) 9 ) ] )\t9\r\n( ( ( [SM 5 ) 7 ) ] )\t2\r\n");
  const auto rel = read_listops_tsv(tmp.path / "release.tsv");
  ASSERT_EQ(rel.size(), 2u);
  EXPECT_EQ(rel[1].target, 2);
  write_file(tmp.path / "hdr.tsv", "src\ttgt\n( 1 )\t1\n");
  expect_error([&] { read_listops_tsv(tmp.path / "hdr.tsv"); }, {"hdr.tsv:1:", "Source\\tTarget"});
  write_file(tmp.path / "tgt.tsv", "Source\tTarget\n( ( ( [MAX 2 ) 9 ) ] )\t12\n");
  expect_error([&] { read_listops_tsv(tmp.path / "tgt.tsv"); }, {"tgt.tsv:2:", "'12'"});
  write_file(tmp.path / "wrong.tsv", "Source\tTarget\n( ( ( [MAX 2 ) 9 ) ] )\t9\n( ( ( [MIN 2 ) 9 ) ] )\t9\n");
  expect_error([&] { read_listops_tsv(tmp.path / "wrong.tsv"); }, {"wrong.tsv:3:", "evaluates to 2"});
  EXPECT_EQ(read_listops_tsv(tmp.path / "wrong.tsv", false).size(), 2u);
  write_file(tmp.path / "tok.tsv", "Source\tTarget\n( ( ( [FIRST 2 ) 9 ) ] )\t2\n");
  expect_error([&] { read_listops_tsv(tmp.path / "tok.tsv"); }, {"tok.tsv:2", "'[FIRST'"});
  write_file(tmp.path / "cols.tsv", "Source\tTarget\n( 1 )\t1\textra\n");
  expect_error([&] { read_listops_tsv(tmp.path / "cols.tsv"); }, {"cols.tsv:2:", "expected 2"});
}

TEST(ListOps, EncodingWithClsToAFixedLengthOrTheSplitMaximum) {
  std::vector<ListOpsExample> ex(2);
  ex[0].tokens = listops_tokenize("[MAX 2 9 ]");
  ex[0].target = 9;
  ex[1].tokens = listops_tokenize("[MIN 4 [SM 1 2 ] 8 ]");
  ex[1].target = 3;
  const TokenSet t = encode_listops(ex);
  EXPECT_EQ(t.seq_len, 2000);
  ASSERT_EQ(t.size(), 2);
  const auto r0 = t.row(0);
  EXPECT_EQ(r0[0], kListOpsCls);
  EXPECT_EQ(r0[1], kListOpsMax);
  EXPECT_EQ(r0[2], kListOpsDigit0 + 2);
  EXPECT_EQ(r0[4], kListOpsEnd);
  EXPECT_EQ(r0[5], kListOpsPad);
  EXPECT_EQ(t.mask[4], 1);
  EXPECT_EQ(t.mask[5], 0);
  EXPECT_EQ(t.labels, (std::vector<int32_t>{9, 3}));
  ListOpsEncodeOptions o;
  o.pad_to_split_max = true;
  const TokenSet m = encode_listops(ex, o);
  EXPECT_EQ(m.seq_len, 9);  // 8 tokens + CLS
  EXPECT_EQ(m.row(0)[5], kListOpsPad);
  o = {};
  o.seq_len = 6;
  expect_error([&] { encode_listops(ex, o); }, {"example 1", "sequence length 6"});
}

// ---------------------------------------------------------------------------------------------------------
TEST(Png, RoundTripsGreyImages) {
  PhiloxStream rng(5, 0);
  for (auto [h, w] : {std::pair{1, 1}, std::pair{32, 32}, std::pair{7, 300}, std::pair{128, 128}}) {
    GrayImage img;
    img.height = h;
    img.width = w;
    for (int i = 0; i < h * w; ++i) img.pixels.push_back(uint8_t(rng.below(256)));
    const std::string png = encode_png_gray(img);
    EXPECT_EQ(png.substr(1, 3), "PNG");
    const GrayImage back = decode_png_gray(png);
    EXPECT_EQ(back.height, h);
    EXPECT_EQ(back.width, w);
    EXPECT_EQ(back.pixels, img.pixels);
  }
  TempDir tmp("png");
  GrayImage img{2, 3, {0, 50, 100, 150, 200, 255}};
  write_png_gray(tmp.path / "a.png", img, 9);
  EXPECT_EQ(read_png_gray(tmp.path / "a.png").pixels, img.pixels);
  EXPECT_FALSE(fs::exists(tmp.path / "a.png.tmp"));
}

namespace {
void put_u32(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s += char(v >> (8 * k));
}
void chunk(std::string& out, const std::string& type, const std::string& data) {
  put_u32(out, uint32_t(data.size()));
  const std::string td = type + data;
  out += td;
  put_u32(out, uint32_t(crc32(0, reinterpret_cast<const Bytef*>(td.data()), uInt(td.size()))));
}
int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}
// A PNG written like other encoders do: every row filter, two IDAT chunks, an ancillary chunk.
std::string foreign_png(const GrayImage& img) {
  std::string raw;
  for (int64_t y = 0; y < img.height; ++y) {
    const int f = int(y % 5);
    raw += char(f);
    for (int64_t x = 0; x < img.width; ++x) {
      const int v = img.at(y, x), a = x ? img.at(y, x - 1) : 0, b = y ? img.at(y - 1, x) : 0,
                c = x && y ? img.at(y - 1, x - 1) : 0;
      const int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : paeth(a, b, c);
      raw += char(uint8_t(v - pred));
    }
  }
  uLongf n = compressBound(uLong(raw.size()));
  std::string z(n, '\0');
  compress2(reinterpret_cast<Bytef*>(z.data()), &n, reinterpret_cast<const Bytef*>(raw.data()), uLong(raw.size()), 9);
  z.resize(n);
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_u32(ihdr, uint32_t(img.width));
  put_u32(ihdr, uint32_t(img.height));
  ihdr += std::string("\x08\x00\x00\x00\x00", 5);
  chunk(out, "IHDR", ihdr);
  chunk(out, "tEXt", std::string("Comment\0test", 12));
  chunk(out, "IDAT", z.substr(0, z.size() / 2));
  chunk(out, "IDAT", z.substr(z.size() / 2));
  chunk(out, "IEND", "");
  return out;
}
}  // namespace

TEST(Png, DecodesEveryRowFilterAndSplitIdat) {
  GrayImage img;
  img.height = 23;
  img.width = 17;
  for (int y = 0; y < 23; ++y)
    for (int x = 0; x < 17; ++x) img.pixels.push_back(uint8_t((x * 37 + y * y * 11 + (x ^ y) * 5) & 255));
  EXPECT_EQ(decode_png_gray(foreign_png(img)).pixels, img.pixels);
}

TEST(Png, RejectsCorruptFilesNamingThem) {
  TempDir tmp("pngbad");
  const GrayImage img{4, 4, std::vector<uint8_t>(16, 77)};
  const std::string good = encode_png_gray(img);
  auto check = [&](const std::string& name, const std::string& bytes, std::initializer_list<std::string> parts) {
    write_file(tmp.path / name, bytes);
    std::vector<std::string> p(parts);
    p.push_back(name);
    try {
      read_png_gray(tmp.path / name);
      ADD_FAILURE() << name << ": no error";
    } catch (const Error& e) {
      for (const auto& s : p) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
    }
  };
  check("sig.png", std::string("GIF89a").append(good, 6), {"not a PNG"});
  std::string crc = good;
  crc[30] ^= 0x01;  // IHDR data is bytes 16..28, its CRC bytes 29..32
  check("crc.png", crc, {"CRC mismatch"});
  check("short.png", good.substr(0, good.size() - 20), {"truncated"});
  check("noend.png", good.substr(0, good.size() - 12), {"no IEND"});
  // A valid-CRC file whose zlib stream is damaged.
  std::string z = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_u32(ihdr, 4);
  put_u32(ihdr, 4);
  ihdr += std::string("\x08\x00\x00\x00\x00", 5);
  chunk(z, "IHDR", ihdr);
  chunk(z, "IDAT", "\x78\x9c\xff\xff\xff\xff");
  chunk(z, "IEND", "");
  check("zlib.png", z, {"corrupt PNG image data"});
  std::string rgb = "\x89PNG\r\n\x1a\n";
  std::string ihdr2;
  put_u32(ihdr2, 4);
  put_u32(ihdr2, 4);
  ihdr2 += std::string("\x08\x02\x00\x00\x00", 5);
  chunk(rgb, "IHDR", ihdr2);
  chunk(rgb, "IEND", "");
  check("rgb.png", rgb, {"colour type 2", "greyscale"});
  expect_error([&] { read_png_gray(tmp.path / "missing.png"); }, {"missing.png", "not found"});
}

// ---------------------------------------------------------------------------------------------------------
namespace {
IdxArray make_images(uint32_t n, uint32_t h, uint32_t w, uint64_t seed) {
  IdxArray a;
  a.dims = {n, h, w};
  PhiloxStream rng(seed, 0);
  for (uint64_t i = 0; i < a.count(); ++i) a.data.push_back(uint8_t(rng.below(256)));
  return a;
}
IdxArray make_labels(uint32_t n) {
  IdxArray a;
  a.dims = {n};
  for (uint32_t i = 0; i < n; ++i) a.data.push_back(uint8_t((i * 7) % 10));
  return a;
}
}  // namespace

TEST(Idx, RawAndGzipRoundTripWithMnistHeader) {
  TempDir tmp("idx");
  const IdxArray im = make_images(3, 28, 28, 1);
  const std::string raw = encode_idx(im);
  EXPECT_EQ(raw.substr(0, 8), std::string("\x00\x00\x08\x03\x00\x00\x00\x03", 8));
  write_idx(tmp.path / "a-idx3-ubyte", im);
  write_idx(tmp.path / "a-idx3-ubyte.gz", im, true);
  EXPECT_TRUE(is_gzip(read_binary_file(tmp.path / "a-idx3-ubyte.gz")));
  for (const char* f : {"a-idx3-ubyte", "a-idx3-ubyte.gz"}) {
    const IdxArray back = read_idx(tmp.path / f);
    EXPECT_EQ(back.dims, im.dims);
    EXPECT_EQ(back.data, im.data);
  }
  // Two concatenated gzip members are one file.
  write_file(tmp.path / "two.gz", gzip(raw.substr(0, 100)) + gzip(raw.substr(100)));
  EXPECT_EQ(read_idx(tmp.path / "two.gz").data, im.data);
}

TEST(Idx, RejectsBadMagicDimsTruncationAndCorruptGzip) {
  TempDir tmp("idxbad");
  const std::string raw = encode_idx(make_images(2, 4, 4, 2));
  write_file(tmp.path / "magic", std::string(1, '\x01').append(raw, 1));
  expect_error([&] { read_idx(tmp.path / "magic"); }, {"magic", "bad IDX magic"});
  std::string f = raw;
  f[2] = 0x0D;
  write_file(tmp.path / "float", f);
  expect_error([&] { read_idx(tmp.path / "float"); }, {"float", "float", "not supported"});
  write_file(tmp.path / "short", raw.substr(0, raw.size() - 1));
  expect_error([&] { read_idx(tmp.path / "short"); }, {"short", "truncated IDX data (31 of 32 bytes)"});
  write_file(tmp.path / "long", raw + "x");
  expect_error([&] { read_idx(tmp.path / "long"); }, {"long", "trailing"});
  const std::string gz = gzip(raw);
  write_file(tmp.path / "cut.gz", gz.substr(0, gz.size() / 2));
  expect_error([&] { read_idx(tmp.path / "cut.gz"); }, {"cut.gz", "truncated gzip"});
  std::string bad = gz;
  for (size_t i = 12; i < bad.size() - 8; ++i) bad[i] = char(~bad[i]);
  write_file(tmp.path / "bad.gz", bad);
  expect_error([&] { read_idx(tmp.path / "bad.gz"); }, {"bad.gz"});
  expect_error([&] { read_idx(tmp.path / "nothing"); }, {"nothing", "not found"});
}

TEST(Idx, MnistFolderGivesTrainValTestSplits) {
  TempDir tmp("mnist");
  const IdxArray tr = make_images(20, 28, 28, 3), te = make_images(5, 28, 28, 4);
  write_idx(tmp.path / "train-images-idx3-ubyte.gz", tr, true);
  write_idx(tmp.path / "train-labels-idx1-ubyte.gz", make_labels(20), true);
  write_idx(tmp.path / "t10k-images-idx3-ubyte", te);
  write_idx(tmp.path / "t10k-labels-idx1-ubyte", make_labels(5));
  const ImageSplits s = load_idx_dataset(tmp.path);
  EXPECT_EQ(s.train.size(), 18);
  EXPECT_EQ(s.val.size(), 2);
  EXPECT_EQ(s.test.size(), 5);
  EXPECT_EQ(s.train.seq_len(), 784);
  // Pixels are the tokens, row-major; val is the last 10% of train, unshuffled.
  EXPECT_TRUE(std::equal(s.val.pixels.begin(), s.val.pixels.end(), tr.data.begin() + 18 * 784));
  EXPECT_EQ(s.val.labels[1], (19 * 7) % 10);
  EXPECT_EQ(s.test.image(4)[783], te.data[5 * 784 - 1]);
  // Count mismatch and a missing file are errors naming the files.
  write_idx(tmp.path / "t10k-labels-idx1-ubyte", make_labels(4));
  expect_error([&] { load_idx_dataset(tmp.path); }, {"t10k-images-idx3-ubyte", "5 images", "4 labels"});
  fs::remove(tmp.path / "t10k-labels-idx1-ubyte");
  expect_error([&] { load_idx_dataset(tmp.path); }, {"t10k-labels-idx1-ubyte"});
}

TEST(Cifar, GreyRulesAndRecordLayout) {
  EXPECT_EQ(rgb_to_gray(255, 0, 0), 76);
  EXPECT_EQ(rgb_to_gray(0, 255, 0), 150);
  EXPECT_EQ(rgb_to_gray(0, 0, 255), 29);
  EXPECT_EQ(rgb_to_gray(255, 255, 255), 255);
  EXPECT_EQ(rgb_to_gray(0, 0, 0), 0);
  EXPECT_EQ(rgb_to_gray(0, 255, 0, GrayRule::kTensorflow), 149);  // 0.587 * 255.5 = 149.98, truncated
  EXPECT_EQ(rgb_to_gray(255, 0, 0, GrayRule::kTensorflow), 76);
  EXPECT_EQ(rgb_to_gray(255, 255, 255, GrayRule::kTensorflow), 255);
  PhiloxStream rng(9, 0);
  for (int i = 0; i < 1000; ++i) {
    const int r = int(rng.below(256)), g = int(rng.below(256)), b = int(rng.below(256));
    const double luma = 0.299 * r + 0.587 * g + 0.114 * b;  // ITU-R 601-2
    EXPECT_NEAR(rgb_to_gray(uint8_t(r), uint8_t(g), uint8_t(b)), luma, 0.51);
    EXPECT_NEAR(rgb_to_gray(uint8_t(r), uint8_t(g), uint8_t(b), GrayRule::kTensorflow),
                (0.2989 * r + 0.5870 * g + 0.1140 * b) * 255.5 / 255.0, 1.0);
  }
  // Two records: label byte, then 1024 R, 1024 G, 1024 B.
  std::string bytes;
  for (int rec = 0; rec < 2; ++rec) {
    bytes += char(rec == 0 ? 3 : 9);
    for (int plane = 0; plane < 3; ++plane)
      for (int k = 0; k < 1024; ++k) bytes += char(k == 5 && plane == rec ? 255 : 0);
  }
  const ImageSet s = parse_cifar10_batch(bytes, "batch.bin");
  EXPECT_EQ(s.size(), 2);
  EXPECT_EQ(s.seq_len(), 1024);
  EXPECT_EQ(s.labels, (std::vector<int32_t>{3, 9}));
  EXPECT_EQ(s.image(0)[5], 76);   // red
  EXPECT_EQ(s.image(1)[5], 150);  // green
  EXPECT_EQ(s.image(1)[4], 0);
  expect_error([&] { parse_cifar10_batch(bytes.substr(1), "cut.bin"); }, {"cut.bin", "3073"});
  std::string bad = bytes;
  bad[0] = 10;
  expect_error([&] { parse_cifar10_batch(bad, "lab.bin"); }, {"lab.bin", "record 0", "label 10"});
}

TEST(Cifar, FolderSplitsFirst90PercentTrainLast10Val) {
  TempDir tmp("cifar");
  const fs::path dir = tmp.path / "cifar-10-batches-bin";
  auto batch = [](int n, int first_label) {
    std::string b;
    for (int i = 0; i < n; ++i) {
      b += char((first_label + i) % 10);
      b += std::string(3072, char(i));
    }
    return b;
  };
  for (int k = 1; k <= 5; ++k) write_file(dir / ("data_batch_" + std::to_string(k) + ".bin"), batch(4, k));
  expect_error([&] { load_cifar10_folder(tmp.path); }, {"test_batch.bin"});
  write_file(dir / "test_batch.bin", batch(3, 0));
  const ImageSplits s = load_cifar10_folder(tmp.path);  // finds cifar-10-batches-bin inside
  EXPECT_EQ(s.train.size(), 18);
  EXPECT_EQ(s.val.size(), 2);
  EXPECT_EQ(s.test.size(), 3);
  EXPECT_EQ(s.val.labels, (std::vector<int32_t>{(5 + 2) % 10, (5 + 3) % 10}));  // last two of data_batch_5
  EXPECT_EQ(s.val.image(1)[0], 3);                                              // grey of (3, 3, 3)
}

// ---------------------------------------------------------------------------------------------------------
TEST(Imdb, FolderLayoutByteTokensAndOrder) {
  TempDir tmp("imdb");
  const fs::path root = tmp.path / "aclImdb";
  write_file(root / "train/pos/10_7.txt", "Great film.<br />Loved it");
  write_file(root / "train/pos/2_9.txt", "Caf\xC3\xA9 scene!");
  write_file(root / "train/neg/0_3.txt", "Dull.");
  write_file(root / "train/neg/1_1.txt", "");
  write_file(root / "train/neg/notes.md", "not a review");
  write_file(root / "train/unsup/5_0.txt", "ignored");
  write_file(root / "test/pos/0_10.txt", "Yes");
  write_file(root / "test/neg/3_2.txt", "No");
  const TextSplit train = read_imdb_split(tmp.path, "train");  // finds aclImdb/ inside
  ASSERT_EQ(train.size(), 4u);
  EXPECT_EQ(train.examples[0].text, "Dull.");
  EXPECT_EQ(train.examples[0].label, 0);
  EXPECT_EQ(train.examples[1].text, "");
  EXPECT_EQ(train.examples[2].text, "Caf\xC3\xA9 scene!");  // 2_9 before 10_7: numeric order
  EXPECT_EQ(train.examples[2].label, 1);
  EXPECT_EQ(train.examples[3].text, "Great film.<br />Loved it");
  EXPECT_EQ(train.empty_documents, 1u);
  EXPECT_EQ(read_imdb_split(root, "test").size(), 2u);

  ByteTokenOptions o;
  o.seq_len = 6;
  const TokenSet t = encode_imdb(train, o);
  EXPECT_EQ(t.seq_len, 6);
  EXPECT_EQ(std::vector<int32_t>(t.row(0).begin(), t.row(0).end()), (std::vector<int32_t>{'D', 'u', 'l', 'l', '.', 0}));
  EXPECT_EQ(t.mask[4], 1);
  EXPECT_EQ(t.mask[5], 0);
  EXPECT_EQ(t.row(2)[3], 0xC3);  // bytes, not characters
  EXPECT_EQ(t.row(3)[5], ' ');   // truncated at 6
  EXPECT_EQ(t.labels, (std::vector<int32_t>{0, 0, 1, 1}));
  EXPECT_EQ(ByteTokenOptions{}.seq_len, 4000);

  fs::remove_all(root / "test/neg");
  expect_error([&] { read_imdb_split(root, "test"); }, {"test/neg", "does not exist"});
  fs::create_directories(root / "test/neg");
  expect_error([&] { read_imdb_split(root, "test"); }, {"test/neg", "no .txt"});
}

TEST(Aan, TsvColumnsLabelsAndEncoding) {
  TempDir tmp("aan");
  write_file(tmp.path / "new_aan_pairs.train.tsv",
             "1\tP00-1001\tP00-1002\tWe parse \"trees\".\tA parser.\n0.0\tA\tB\tx\ty\n1.0\tC\tD\t\tempty first\n");
  write_file(tmp.path / "new_aan_pairs.eval.tsv", "label\tid1\tid2\ttext1\ttext2\n0\tE\tF\tm\tn\n");
  write_file(tmp.path / "new_aan_pairs.test.tsv", "1\tG\tH\tp\tq\r\n");
  const AanDataset d = read_aan_folder(tmp.path);
  ASSERT_EQ(d.train.size(), 3u);
  EXPECT_EQ(d.train[0].label, 1);
  EXPECT_EQ(d.train[0].id1, "P00-1001");
  EXPECT_EQ(d.train[0].text1, "We parse \"trees\".");
  EXPECT_EQ(d.train[1].label, 0);
  EXPECT_EQ(d.train[2].text1, "");
  EXPECT_EQ(d.val.size(), 1u);  // header skipped
  EXPECT_EQ(d.test[0].text2, "q");
  const PairTokenSet p = encode_aan(d.train);
  EXPECT_EQ(p.first.seq_len, 4000);
  EXPECT_EQ(p.first.row(0)[0], 1);  // CLS
  EXPECT_EQ(p.first.row(0)[1], 'W');
  EXPECT_EQ(p.second.row(0)[1], 'A');
  EXPECT_EQ(p.second.labels, (std::vector<int32_t>{1, 0, 1}));
  EXPECT_EQ(p.first.mask[size_t(2 * 4000)], 1);  // CLS of an empty document is real
  EXPECT_EQ(p.first.mask[size_t(2 * 4000 + 1)], 0);

  write_file(tmp.path / "bad.tsv", "1\ta\tb\tc\td\n2\ta\tb\tc\td\n");
  expect_error([&] { read_aan_tsv(tmp.path / "bad.tsv"); }, {"bad.tsv:2:", "label '2'"});
  write_file(tmp.path / "cols.tsv", "1\ta\tb\tc\td\n0\ta\tb\tc\n");
  expect_error([&] { read_aan_tsv(tmp.path / "cols.tsv"); }, {"cols.tsv:2:", "expected 5", "found 4"});
  fs::remove(tmp.path / "new_aan_pairs.eval.tsv");
  expect_error([&] { read_aan_folder(tmp.path); }, {"new_aan_pairs.eval.tsv"});
}

// ---------------------------------------------------------------------------------------------------------
TEST(Pathfinder, DeterministicPerSeedAndIndex) {
  const auto c = PathfinderConfig::pathfinder32();
  const auto a = generate_pathfinder_sample(c, 7, 0);
  const auto b = generate_pathfinder_sample(c, 7, 0);
  EXPECT_EQ(a.image.pixels, b.image.pixels);
  EXPECT_EQ(a.label, b.label);
  EXPECT_EQ(a.image.height, 32);
  EXPECT_EQ(a.image.width, 32);
  EXPECT_NE(a.image.pixels, generate_pathfinder_sample(c, 8, 0).image.pixels);
  EXPECT_NE(a.image.pixels, generate_pathfinder_sample(c, 7, 1).image.pixels);
  EXPECT_EQ(*std::max_element(a.image.pixels.begin(), a.image.pixels.end()), 255);
}

TEST(Pathfinder, LabelMeansBothMarkersOnOneSnakeAndClassesBalance) {
  const auto c = PathfinderConfig::pathfinder32();
  EXPECT_EQ(c.distractor_length, 4);
  EXPECT_EQ(c.num_distractor_snakes, 5);
  const int n = 160;
  int positives = 0, distractors = 0;
  for (int i = 0; i < n; ++i) {
    const auto s = generate_pathfinder_sample(c, 1, uint64_t(i));
    positives += s.label;
    distractors += s.distractors;
    EXPECT_EQ(s.label == 1, s.origin_snake == s.terminal_snake);
    EXPECT_EQ(s.origin_marker.y, s.origin_tips[size_t(s.origin_snake)].y);
    EXPECT_EQ(s.origin_marker.x, s.origin_tips[size_t(s.origin_snake)].x);
    EXPECT_EQ(s.terminal_marker.y, s.terminal_tips[size_t(s.terminal_snake)].y);
    EXPECT_EQ(s.terminal_marker.x, s.terminal_tips[size_t(s.terminal_snake)].x);
    // Markers are drawn: their centre pixels are lit.
    EXPECT_GT(s.image.at(s.origin_marker.y, s.origin_marker.x), 60);
    EXPECT_GT(s.image.at(s.terminal_marker.y, s.terminal_marker.x), 60);
  }
  EXPECT_GE(positives, n / 2 - 25);  // 50/50 within about 4 standard deviations
  EXPECT_LE(positives, n / 2 + 25);
  EXPECT_GT(distractors, n);  // distractor snakes are drawn
}

TEST(Pathfinder, TargetSnakesAreChainsOfPaddlesFromSeedToTip) {
  for (const auto& c : {PathfinderConfig::pathfinder32(), PathfinderConfig::pathfinder32(6)}) {
    for (int i = 0; i < 20; ++i) {
      const auto s = generate_pathfinder_sample(c, 2, uint64_t(i));
      const double m = s.margin;
      // The seeds are seed_distance apart (rounded to pixels).
      const double sd = std::hypot(s.origin_tips[0].y - s.origin_tips[1].y, s.origin_tips[0].x - s.origin_tips[1].x);
      EXPECT_NEAR(sd, c.seed_distance, 1.0);
      for (int k = 0; k < 2; ++k) {
        const auto& p = s.targets[size_t(k)];
        ASSERT_EQ(int(p.size()), c.contour_length);
        EXPECT_EQ(p.front().y0, s.origin_tips[size_t(k)].y);
        EXPECT_EQ(p.front().x0, s.origin_tips[size_t(k)].x);
        EXPECT_EQ(p.back().y0, s.terminal_tips[size_t(k)].y);  // later paddles run from their head backwards
        EXPECT_EQ(p.back().x0, s.terminal_tips[size_t(k)].x);
        for (size_t j = 0; j < p.size(); ++j) {
          EXPECT_NEAR(std::hypot(p[j].y1 - p[j].y0, p[j].x1 - p[j].x0), c.paddle_length, 1e-9);
          if (j == 0) continue;
          // Consecutive paddles are separated by the 2m gap around the pivot (plus pixel rounding).
          const double gap =
              std::hypot(p[j].y1 - (j == 1 ? p[0].y1 : p[j - 1].y0), p[j].x1 - (j == 1 ? p[0].x1 : p[j - 1].x0));
          EXPECT_LE(gap, 2 * m + 4.5) << "snake " << k << " paddle " << j;
        }
      }
    }
  }
}

TEST(Pathfinder, WritesPngsAndMetadataInTheLraLayoutAndLoadsSplits) {
  TempDir tmp("pf");
  const auto c = PathfinderConfig::pathfinder32();
  EXPECT_EQ(c.difficulty_folder(), "curv_contour_length_14");
  EXPECT_EQ(PathfinderConfig::pathfinder32(6).difficulty_folder(), "curv_baseline");
  const fs::path dir = tmp.path / c.difficulty_folder();
  PathfinderWriteOptions o;
  o.images_per_batch = 8;
  EXPECT_EQ(write_pathfinder_dataset(dir, c, 5, 20, o), 20);
  EXPECT_TRUE(fs::exists(dir / "imgs/0/sample_7.png"));
  EXPECT_TRUE(fs::exists(dir / "imgs/2/sample_3.png"));
  EXPECT_TRUE(fs::exists(dir / "metadata/2.npy"));
  std::ifstream meta(dir / "metadata/1.npy");
  std::string line;
  std::getline(meta, line);
  const auto s8 = generate_pathfinder_sample(c, 5, 8);
  EXPECT_EQ(line.substr(0, 25), "imgs/1 sample_0.png 0 " + std::to_string(s8.label) + " 1");
  const auto recs = read_pathfinder_metadata(dir);
  ASSERT_EQ(recs.size(), 20u);
  EXPECT_EQ(recs[8].image, dir / "imgs/1/sample_0.png");
  const ImageSplits sp = load_pathfinder_dataset(dir);
  EXPECT_EQ(sp.train.size(), 16);
  EXPECT_EQ(sp.val.size(), 2);
  EXPECT_EQ(sp.test.size(), 2);
  EXPECT_EQ(sp.train.seq_len(), 1024);
  for (int i = 0; i < 20; ++i) {
    const auto s = generate_pathfinder_sample(c, 5, uint64_t(i));
    const ImageSet& set = i < 16 ? sp.train : i < 18 ? sp.val : sp.test;
    const int64_t j = i < 16 ? i : i < 18 ? i - 16 : i - 18;
    EXPECT_EQ(set.labels[size_t(j)], s.label);
    EXPECT_TRUE(std::equal(s.image.pixels.begin(), s.image.pixels.end(), set.image(j).begin())) << i;
  }
  // A re-run skips finished batches; a lost batch is regenerated.
  EXPECT_EQ(write_pathfinder_dataset(dir, c, 5, 20, o), 0);
  fs::remove(dir / "metadata/1.npy");
  EXPECT_EQ(write_pathfinder_dataset(dir, c, 5, 20, o), 8);
  // Bad files are named.
  write_file(dir / "imgs/2/sample_1.png", "not a png");
  expect_error([&] { load_pathfinder_dataset(dir); }, {"imgs/2/sample_1.png", "not a PNG"});
  write_file(dir / "metadata/3.npy", "imgs/3 sample_0.png 0 7 1.0\n");
  expect_error([&] { read_pathfinder_metadata(dir); }, {"metadata/3.npy:1:", "label '7'"});
}

TEST(Pathfinder, PathXPresetAndConfigChecks) {
  const auto c = PathfinderConfig::pathfinder128();
  EXPECT_EQ(c.num_distractor_snakes, 8);  // 35 / (14 / 3) = 7.5 -> the Python loop runs 8 times
  EXPECT_EQ(c.distractor_length, 4);
  const auto t0 = std::chrono::steady_clock::now();
  const auto s = generate_pathfinder_sample(c, 1, 0);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s.image.height, 128);
  EXPECT_EQ(s.image.pixels.size(), 16384u);
  EXPECT_EQ(s.targets[0].size(), 14u);
  EXPECT_TRUE(s.margin == 2 || s.margin == 3);
  EXPECT_GT(s.distractors, 0);
  EXPECT_LT(ms, 2000.0);
  auto bad = PathfinderConfig::pathfinder32();
  bad.seed_distance = 8;  // 4 * 8 >= 32: no room for the seed
  expect_error([&] { generate_pathfinder_sample(bad, 0, 0); }, {"seed distance 8"});
  bad = PathfinderConfig::pathfinder32();
  bad.paddle_margins.clear();
  expect_error([&] { generate_pathfinder_sample(bad, 0, 0); }, {"no paddle margins"});
}
