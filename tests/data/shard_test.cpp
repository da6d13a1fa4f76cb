// HDF5 shard formats (bert / packed / classification): round trips, attribute checks, atomic writes,
// corrupt files; NSP pair construction and static / load-time masking (statistics and invariants); the h5py
// cross-check of the LDDL layout (tests/reference/check_shards.py).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "data/shard_bert.h"
#include "data/shard_classification.h"
#include "data/shard_packed.h"
#include "test_files.h"

using namespace dense;
using namespace dense::data;
namespace fs = std::filesystem;

namespace {

using namespace dense::testing;

// Documents whose tokens are unique: token = 1000 + 100000*doc + running index, so a test can tell where
// every token came from. Sentence lengths 1..max_len.
std::vector<TokenDocument> synthetic_documents(int n_docs, int max_sentences, int max_len, uint64_t seed) {
  PhiloxRng rng(seed);
  std::vector<TokenDocument> docs(static_cast<size_t>(n_docs));
  for (int d = 0; d < n_docs; ++d) {
    int32_t next = 1000 + 100000 * d;
    const int n_sent = int(rng.randint(1, max_sentences));
    for (int s = 0; s < n_sent; ++s) {
      Sentence sent;
      const int len = int(rng.randint(1, max_len));
      for (int k = 0; k < len; ++k) sent.push_back(next++);
      docs[size_t(d)].push_back(std::move(sent));
    }
  }
  return docs;
}

int doc_of(int32_t token) { return (token - 1000) / 100000; }

ShardMeta meta(const std::string& vocab = "sha256:abc") {
  ShardMeta m;
  m.vocab_hash = vocab;
  m.prep_config = R"({"tool":"dense-prep","seed":1})";
  return m;
}

// Writes n bert rows of the synthetic corpus; returns the instances written.
std::vector<BertInstance> write_bert_shard(const std::string& path, int64_t N, int64_t n_rows, uint64_t seed,
                                           const ShardWriteOptions& opt = {}) {
  const auto docs = synthetic_documents(1000, 12, 30, seed);
  NspConfig nsp;
  nsp.max_seq_length = N;
  StaticMaskingConfig masking;
  std::vector<BertInstance> all;
  for (size_t d = 0; d < docs.size() && int64_t(all.size()) < n_rows; ++d)
    for (auto& inst : create_bert_instances(docs, d, nsp, masking, seed)) all.push_back(std::move(inst));
  if (int64_t(all.size()) > n_rows) all.resize(size_t(n_rows));
  BertShardWriter w(path, N, max_predictions_for(N, 0.15), meta(), opt);
  for (const auto& inst : all) w.append(inst);
  w.close();
  return all;
}

}  // namespace

// ---- PhiloxRng -----------------------------------------------------------------------------------------------

TEST(ShardRng, PhiloxStreamsAreReproducibleAndUniform) {
  PhiloxRng a(7, 3), b(7, 3), c(7, 4);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint32_t x = a.next_u32();
    EXPECT_EQ(x, b.next_u32());
    differs |= x != c.next_u32();
  }
  EXPECT_TRUE(differs);
  PhiloxRng r(1);
  std::vector<int> counts(7, 0);
  double sum = 0;
  for (int i = 0; i < 70000; ++i) {
    ++counts[size_t(r.randint(0, 6))];
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  for (int c2 : counts) EXPECT_NEAR(c2, 10000, 400);
  EXPECT_NEAR(sum / 70000, 0.5, 0.005);
  EXPECT_EQ(r.randint(5, 5), 5);
  EXPECT_EQ(round_half_even(2.5), 2);
  EXPECT_EQ(round_half_even(3.5), 4);
  EXPECT_EQ(max_predictions_for(128, 0.15), 19);
  EXPECT_EQ(max_predictions_for(512, 0.15), 77);
  EXPECT_EQ(max_predictions_for(1024, 0.15), 154);
  EXPECT_EQ(max_predictions_for(128, 0.12), 15);
}

// ---- NSP pairs ----------------------------------------------------------------------------------------------

TEST(Nsp, PairsHaveTheBertLayoutAndTrueContinuations) {
  const auto docs = synthetic_documents(300, 15, 25, 11);
  NspConfig cfg;
  cfg.max_seq_length = 64;
  int64_t pairs = 0, random_next = 0, short_targets = 0, multi_chunk_docs = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    PhiloxRng rng(5, d);
    const auto out = create_nsp_pairs(docs, d, cfg, rng);
    multi_chunk_docs += out.size() > 1;
    for (const NspPair& p : out) {
      ++pairs;
      ASSERT_LE(int64_t(p.tokens.size()), cfg.max_seq_length);
      ASSERT_EQ(p.tokens.size(), p.segment_ids.size());
      ASSERT_GE(p.a_length, 1);
      ASSERT_GE(p.b_length, 1);
      ASSERT_EQ(size_t(p.a_length + p.b_length + 3), p.tokens.size());
      EXPECT_EQ(p.tokens[0], 101);
      EXPECT_EQ(p.tokens[size_t(p.a_length) + 1], 102);
      EXPECT_EQ(p.tokens.back(), 102);
      for (size_t i = 0; i < p.tokens.size(); ++i)
        ASSERT_EQ(p.segment_ids[i], i <= size_t(p.a_length) + 1 ? 0 : 1) << "position " << i;
      // A and B are each a contiguous run of one document (truncation only trims their ends).
      const std::vector<int32_t> a(p.tokens.begin() + 1, p.tokens.begin() + 1 + p.a_length);
      const std::vector<int32_t> b(p.tokens.begin() + 2 + p.a_length, p.tokens.end() - 1);
      for (size_t i = 1; i < a.size(); ++i) ASSERT_EQ(a[i], a[i - 1] + 1);
      for (size_t i = 1; i < b.size(); ++i) ASSERT_EQ(b[i], b[i - 1] + 1);
      ASSERT_EQ(doc_of(a[0]), int(d));
      if (p.is_random_next) {
        ++random_next;
        EXPECT_NE(doc_of(b[0]), int(d));
      } else {
        EXPECT_EQ(doc_of(b[0]), int(d));
        EXPECT_GT(b.front(), a.back());  // B follows A in the document
      }
      short_targets += int64_t(p.tokens.size()) < cfg.max_seq_length / 2;
    }
  }
  EXPECT_GT(pairs, 500);
  EXPECT_GT(multi_chunk_docs, 100);
  // Random next: 0.5 of the multi-sentence chunks plus every single-sentence chunk.
  const double frac = double(random_next) / double(pairs);
  EXPECT_GT(frac, 0.45);
  EXPECT_LT(frac, 0.7);
  EXPECT_GT(short_targets, 0);

  // Pure function of (documents, index, config, seed).
  PhiloxRng r1(9, 4), r2(9, 4), r3(10, 4);
  const auto x = create_nsp_pairs(docs, 4, cfg, r1), y = create_nsp_pairs(docs, 4, cfg, r2);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i].tokens, y[i].tokens);
  const auto z = create_nsp_pairs(docs, 4, cfg, r3);
  bool differs = z.size() != x.size();
  for (size_t i = 0; !differs && i < x.size(); ++i) differs = x[i].tokens != z[i].tokens;
  EXPECT_TRUE(differs);
}

TEST(Nsp, TargetLengthsFillSequencesAndShortSequencesAppear) {
  // Long documents: without short targets every pair is filled to N-3 tokens; with short_seq_prob = 1
  // the targets are uniform in [2, N-3].
  const auto docs = synthetic_documents(60, 40, 20, 3);
  NspConfig full;
  full.max_seq_length = 32;
  full.short_seq_prob = 0;
  int64_t filled = 0, total = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    PhiloxRng rng(1, d);
    for (const auto& p : create_nsp_pairs(docs, d, full, rng)) {
      ++total;
      filled += int64_t(p.tokens.size()) == full.max_seq_length;
    }
  }
  EXPECT_GT(double(filled) / double(total), 0.6);
  NspConfig shorter = full;
  shorter.short_seq_prob = 1.0;
  int64_t short_rows = 0;
  total = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    PhiloxRng rng(1, d);
    for (const auto& p : create_nsp_pairs(docs, d, shorter, rng)) {
      ++total;
      short_rows += int64_t(p.tokens.size()) < full.max_seq_length;
    }
  }
  EXPECT_GT(double(short_rows) / double(total), 0.6);
  // Degenerate inputs: empty documents give nothing; a single document pairs with itself; N < 5 is refused.
  std::vector<TokenDocument> lone = {{{1000, 1001, 1002}, {}, {1003, 1004}}};
  PhiloxRng rng(2);
  const auto pairs = create_nsp_pairs(lone, 0, full, rng);
  EXPECT_FALSE(pairs.empty());
  std::vector<TokenDocument> empty_docs = {{}, {{}}};
  EXPECT_TRUE(create_nsp_pairs(empty_docs, 1, full, rng).empty());
  NspConfig tiny = full;
  tiny.max_seq_length = 4;
  EXPECT_THROW(create_nsp_pairs(lone, 0, tiny, rng), Error);
  EXPECT_THROW(create_nsp_pairs(lone, 3, full, rng), Error);
}

// ---- static masking -------------------------------------------------------------------------------------------

TEST(Masking, StaticEightyTenTenWithExactCounts) {
  StaticMaskingConfig cfg;
  cfg.vocab_size = 30522;
  const int64_t N = 128;
  const int64_t P = max_predictions_for(N, cfg.masked_lm_ratio);
  int64_t chosen = 0, masked = 0, kept = 0, replaced = 0;
  PhiloxRng rng(42);
  for (int trial = 0; trial < 4000; ++trial) {
    const int64_t len = rng.randint(5, N);
    NspPair p;
    p.tokens.push_back(101);
    for (int64_t i = 1; i < len - 1; ++i) p.tokens.push_back(int32_t(2000 + i));
    p.tokens.push_back(102);
    p.tokens[size_t(len / 2)] = 102;  // a middle [SEP]
    p.segment_ids.assign(p.tokens.size(), 0);
    const BertInstance inst = mask_static(p, cfg, N, rng);
    const int64_t candidates = len - 3;
    const int64_t want = std::min({P, std::max<int64_t>(1, round_half_even(double(len) * 0.15)), candidates});
    ASSERT_EQ(int64_t(inst.masked_lm_positions.size()), want) << "len " << len;
    ASSERT_EQ(inst.masked_lm_ids.size(), inst.masked_lm_positions.size());
    std::set<int32_t> pos(inst.masked_lm_positions.begin(), inst.masked_lm_positions.end());
    ASSERT_EQ(pos.size(), inst.masked_lm_positions.size());
    for (size_t k = 0; k < inst.masked_lm_positions.size(); ++k) {
      const int32_t at = inst.masked_lm_positions[k];
      if (k) {
        ASSERT_GT(at, inst.masked_lm_positions[k - 1]);
      }
      ASSERT_NE(p.tokens[size_t(at)], 101);
      ASSERT_NE(p.tokens[size_t(at)], 102);
      ASSERT_EQ(inst.masked_lm_ids[k], p.tokens[size_t(at)]);
      const int32_t now = inst.input_ids[size_t(at)];
      ++chosen;
      if (now == 103)
        ++masked;
      else if (now == p.tokens[size_t(at)])
        ++kept;
      else {
        ++replaced;
        ASSERT_LT(now, cfg.vocab_size);
      }
    }
    for (size_t i = 0; i < p.tokens.size(); ++i)
      if (!pos.count(int32_t(i))) {
        ASSERT_EQ(inst.input_ids[i], p.tokens[i]);
      }
  }
  EXPECT_NEAR(double(masked) / double(chosen), 0.8, 0.01);
  EXPECT_NEAR(double(kept) / double(chosen), 0.1, 0.01);
  EXPECT_NEAR(double(replaced) / double(chosen), 0.1, 0.01);
  // Python's round: len 10 -> round(1.5) = 2, len 30 -> round(4.5) = 4, len 50 -> round(7.5) = 8.
  for (auto [len, want] : std::vector<std::pair<int, int>>{{10, 2}, {30, 4}, {50, 8}, {5, 1}}) {
    NspPair p;
    p.tokens.assign(size_t(len), 2000);
    p.tokens[0] = 101;
    p.segment_ids.assign(size_t(len), 0);
    EXPECT_EQ(int(mask_static(p, cfg, N, rng).masked_lm_positions.size()), want) << len;
  }
  // The test-set configuration (ratio 0.12, 100% [MASK]) and a bad configuration.
  StaticMaskingConfig test_cfg;
  test_cfg.masked_lm_ratio = 0.12;
  test_cfg.p_mask = 1.0;
  NspPair p;
  p.tokens.assign(100, 2000);
  p.segment_ids.assign(100, 0);
  const BertInstance t = mask_static(p, test_cfg, N, rng);
  EXPECT_EQ(t.masked_lm_positions.size(), 12u);
  for (int32_t at : t.masked_lm_positions) EXPECT_EQ(t.input_ids[size_t(at)], 103);
  StaticMaskingConfig bad;
  bad.p_mask = 0.9;
  bad.p_random = 0.2;
  EXPECT_THROW(mask_static(p, bad, N, rng), Error);
}

TEST(Masking, PackedLoadTimeThresholdsAreDeterministicPerEpochAndRow) {
  PackedMaskConfig cfg;
  const size_t N = 128;
  std::vector<int32_t> row(N);
  for (size_t i = 0; i < N; ++i) row[i] = int32_t(i == 0 ? 101 : (i % 50 == 0 ? 102 : 2000 + int32_t(i)));
  std::vector<int32_t> ids(N), labels(N), ids2(N), labels2(N);
  int64_t n = 0, masked = 0, random = 0, kept = 0, special_labelled = 0;
  for (uint64_t r = 0; r < 4000; ++r) {
    mask_packed_row(row, 17, r, cfg, ids, labels);
    for (size_t i = 0; i < N; ++i) {
      ++n;
      if (labels[i] == -1) {
        ASSERT_EQ(ids[i], row[i]);
        continue;
      }
      ASSERT_EQ(labels[i], row[i]);
      special_labelled += row[i] == 101 || row[i] == 102;
      if (ids[i] == 103)
        ++masked;
      else if (ids[i] == row[i])
        ++kept;
      else {
        ++random;
        ASSERT_GE(ids[i], 0);
        ASSERT_LT(ids[i], cfg.vocab_size);
      }
    }
  }
  EXPECT_NEAR(double(masked) / double(n), 0.12, 0.002);
  EXPECT_NEAR(double(random) / double(n), 0.015, 0.001);
  EXPECT_NEAR(double(kept) / double(n), 0.015, 0.001);
  EXPECT_GT(special_labelled, 0);  // [CLS]/[SEP] are masked too, as the reference does

  // Same (seed, row): same masks; another epoch seed or another row: different masks.
  mask_packed_row(row, 17, 5, cfg, ids, labels);
  mask_packed_row(row, 17, 5, cfg, ids2, labels2);
  EXPECT_EQ(labels, labels2);
  EXPECT_EQ(ids, ids2);
  mask_packed_row(row, 18, 5, cfg, ids2, labels2);
  EXPECT_NE(labels, labels2);
  mask_packed_row(row, 17, 6, cfg, ids2, labels2);
  EXPECT_NE(labels, labels2);

  // Configurable: rho 0.3, all [MASK], specials left alone.
  PackedMaskConfig all_mask;
  all_mask.rho = 0.3;
  all_mask.p_mask = 1.0;
  all_mask.mask_special_tokens = false;
  int64_t lab = 0, tot = 0;
  for (uint64_t r = 0; r < 1000; ++r) {
    mask_packed_row(row, 1, r, all_mask, ids, labels);
    for (size_t i = 0; i < N; ++i) {
      ++tot;
      if (row[i] == 101 || row[i] == 102) {
        ASSERT_EQ(labels[i], -1);
      }
      if (labels[i] != -1) {
        ++lab;
        ASSERT_EQ(ids[i], 103);
      }
    }
  }
  EXPECT_NEAR(double(lab) / double(tot), 0.3 * (N - 3) / double(N), 0.01);
  PackedMaskConfig bad;
  bad.p_mask = 0.95;
  bad.p_random = 0.1;
  EXPECT_THROW(mask_packed_row(row, 1, 0, bad, ids, labels), Error);
  std::vector<int32_t> short_out(3);
  EXPECT_THROW(mask_packed_row(row, 1, 0, cfg, short_out, labels), Error);
}

// ---- bert shards --------------------------------------------------------------------------------------------

TEST(ShardBert, RoundTripsRowsAndBuildsLabelsAsTheLoader) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/train_0.hdf5";
  const int64_t N = 128, P = 19;
  ShardWriteOptions opt;
  opt.chunk_bytes = 64 * N * 4;  // several chunks
  const auto written = write_bert_shard(path, N, 700, 1, opt);
  ASSERT_EQ(written.size(), 700u);
  EXPECT_FALSE(fs::exists(path + ".tmp-" + std::to_string(::getpid())));

  ShardExpect expect;
  expect.vocab_hash = "sha256:abc";
  expect.seq_len = N;
  BertShardReader r(path, expect);
  EXPECT_EQ(r.rows(), 700);
  EXPECT_EQ(r.seq_len(), N);
  EXPECT_EQ(r.max_predictions(), P);
  EXPECT_EQ(r.info().format, "bert");
  EXPECT_EQ(r.info().format_version, kShardFormatVersion);
  EXPECT_EQ(r.info().prep_config, R"({"tool":"dense-prep","seed":1})");
  EXPECT_FALSE(r.info().foreign);
  const BertRows all = r.read_all();
  ASSERT_EQ(all.rows, 700);
  for (size_t i = 0; i < written.size(); ++i) {
    const BertInstance& w = written[i];
    const size_t len = w.input_ids.size();
    ASSERT_EQ(all.filled_lengths[i], int32_t(len));
    ASSERT_EQ(all.next_sentence_labels[i], w.next_sentence_label);
    for (size_t j = 0; j < size_t(N); ++j) {
      ASSERT_EQ(all.input_ids[i * N + j], j < len ? w.input_ids[j] : 0);
      ASSERT_EQ(all.input_mask[i * N + j], j < len ? 1 : 0);
      ASSERT_EQ(all.segment_ids[i * N + j], j < len ? w.segment_ids[j] : 0);
    }
    std::vector<int32_t> labels(size_t(N), -1);
    for (size_t k = 0; k < size_t(P); ++k) {
      const bool real = k < w.masked_lm_positions.size();
      ASSERT_EQ(all.masked_lm_positions[i * P + k], real ? w.masked_lm_positions[k] : 0);
      ASSERT_EQ(all.masked_lm_ids[i * P + k], real ? w.masked_lm_ids[k] : 0);
      if (real) labels[size_t(w.masked_lm_positions[k])] = w.masked_lm_ids[k];
    }
    ASSERT_EQ(std::vector<int32_t>(all.masked_lm_labels.begin() + std::ptrdiff_t(i * N),
                                   all.masked_lm_labels.begin() + std::ptrdiff_t((i + 1) * N)),
              labels);
  }
  // Row ranges match the whole read, across chunk boundaries.
  const BertRows part = r.read(60, 200);
  ASSERT_EQ(part.rows, 140);
  EXPECT_TRUE(std::equal(part.input_ids.begin(), part.input_ids.end(), all.input_ids.begin() + 60 * N));
  EXPECT_TRUE(
      std::equal(part.masked_lm_labels.begin(), part.masked_lm_labels.end(), all.masked_lm_labels.begin() + 60 * N));
  EXPECT_EQ(r.read(700, 700).rows, 0);
  EXPECT_THROW(r.read(600, 701), Error);
  fs::remove_all(dir);
}

TEST(ShardBert, WriterValidatesRowsAndIsAtomic) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/s.hdf5";
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    BertShardWriter w(path, 16, 3, meta());
    BertInstance ok{{101, 5, 6, 102, 7, 102}, {0, 0, 0, 0, 1, 1}, {1, 4}, {5, 7}, 1};
    w.append(ok);
    EXPECT_TRUE(fs::exists(tmp));
    EXPECT_FALSE(fs::exists(path));
    BertInstance bad = ok;
    bad.masked_lm_positions = {4, 1};
    EXPECT_TRUE(contains(error_of([&] { w.append(bad); }), "not strictly ascending"));
    bad.masked_lm_positions = {0, 1};
    EXPECT_TRUE(contains(error_of([&] { w.append(bad); }), "outside [1, 6)"));
    bad = ok;
    bad.segment_ids.pop_back();
    EXPECT_THROW(w.append(bad), Error);
    bad = ok;
    bad.input_ids.assign(17, 5);
    EXPECT_THROW(w.append(bad), Error);
    bad = ok;
    bad.next_sentence_label = 2;
    EXPECT_THROW(w.append(bad), Error);
    // Destroyed without close(): nothing under either name.
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(tmp));
  // An unwritable destination names the file.
  const std::string missing = dir + "/no/such/folder/s.hdf5";
  EXPECT_TRUE(contains(error_of([&] { BertShardWriter w(missing, 16, 3, meta()); }), dir + "/no/such/folder"));
  ShardMeta bad_meta = meta();
  bad_meta.prep_config = "{not json";
  EXPECT_TRUE(contains(error_of([&] { BertShardWriter w(path, 16, 3, bad_meta); }), "prep_config"));
  EXPECT_THROW(BertShardWriter(path, 16, 17, meta()), Error);
  EXPECT_FALSE(fs::exists(tmp));
  // An empty shard is valid.
  {
    BertShardWriter w(path, 16, 3, meta());
    w.close();
    EXPECT_THROW(w.close(), Error);
  }
  EXPECT_EQ(BertShardReader(path).rows(), 0);
  fs::remove_all(dir);
}

TEST(ShardBert, ReaderRefusesAnotherVocabularyFormatOrVersionSayingWhich) {
  const std::string dir = temp_dir();
  const std::string bert = dir + "/b.hdf5", packed = dir + "/p.hdf5";
  write_bert_shard(bert, 32, 10, 2);
  {
    PackedShardWriter w(packed, 32, meta());
    w.append(std::vector<int32_t>(32, 7));
    w.close();
  }
  ShardExpect e;
  e.vocab_hash = "sha256:other";
  std::string msg = error_of([&] { BertShardReader r(bert, e); });
  EXPECT_TRUE(contains(msg, bert) && contains(msg, "vocab_hash") && contains(msg, "sha256:other") &&
              contains(msg, "sha256:abc"))
      << msg;
  ShardExpect len;
  len.seq_len = 128;
  msg = error_of([&] { BertShardReader r(bert, len); });
  EXPECT_TRUE(contains(msg, "seq_len") && contains(msg, "128") && contains(msg, "32")) << msg;
  msg = error_of([&] { BertShardReader r(packed); });
  EXPECT_TRUE(contains(msg, packed) && contains(msg, "'format': expected 'bert', found 'packed'")) << msg;
  msg = error_of([&] { PackedShardReader r(bert); });
  EXPECT_TRUE(contains(msg, "expected 'packed', found 'bert'")) << msg;

  // Another format version, written by hand.
  const std::string v2 = dir + "/v2.hdf5";
  {
    h5::Id f = h5::create_file(v2);
    h5::write_string_attribute(f.get(), "format", "packed", v2);
    h5::write_int_attribute(f.get(), "format_version", 2, v2);
    h5::write_string_attribute(f.get(), "vocab_hash", "sha256:abc", v2);
    h5::write_int_attribute(f.get(), "seq_len", 8, v2);
    h5::write_string_attribute(f.get(), "prep_config", "{}", v2);
  }
  msg = error_of([&] { PackedShardReader r(v2); });
  EXPECT_TRUE(contains(msg, v2) && contains(msg, "'format_version': expected 1, found 2")) << msg;
  fs::remove_all(dir);
}

TEST(ShardBert, ReaderValidatesTheLayout) {
  const std::string dir = temp_dir();
  // Builds an attribute-less (foreign, LDDL-like) file with the given datasets.
  struct Spec {
    std::string name;
    hid_t type;
    std::vector<hsize_t> dims;
  };
  auto make = [&](const std::string& path, const std::vector<Spec>& specs, int32_t position_value) {
    h5::Id f = h5::create_file(path);
    for (const Spec& s : specs) {
      h5::Id space(H5Screate_simple(int(s.dims.size()), s.dims.data(), nullptr));
      h5::Id d(H5Dcreate2(f.get(), s.name.c_str(), s.type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      size_t n = 1;
      for (hsize_t x : s.dims) n *= size_t(x);
      std::vector<int32_t> v(n, s.name == "masked_lm_positions" ? position_value : 1);
      ASSERT_GE(H5Dwrite(d.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
    }
  };
  const hsize_t n = 4, N = 8, P = 2;
  std::vector<Spec> good = {{"input_ids", H5T_STD_I32LE, {n, N}},     {"input_mask", H5T_STD_I8LE, {n, N}},
                            {"segment_ids", H5T_STD_I8LE, {n, N}},    {"masked_lm_positions", H5T_STD_I32LE, {n, P}},
                            {"masked_lm_ids", H5T_STD_I32LE, {n, P}}, {"next_sentence_labels", H5T_STD_I8LE, {n}}};
  ShardExpect foreign;
  foreign.allow_foreign = true;
  const std::string ok = dir + "/ok.hdf5";
  make(ok, good, 3);
  EXPECT_TRUE(contains(error_of([&] { BertShardReader r(ok); }), "not a densetrain shard"));
  BertShardReader r(ok, foreign);
  EXPECT_TRUE(r.info().foreign);
  const BertRows rows = r.read_all();
  EXPECT_EQ(rows.filled_lengths, std::vector<int32_t>(4, 8));  // from input_mask
  EXPECT_EQ(rows.masked_lm_labels[3], 1);                      // position 3 <- id 1

  auto expect_error = [&](const std::string& tag, std::vector<Spec> specs, const std::string& part, int32_t pos = 3) {
    const std::string path = dir + "/" + tag + ".hdf5";
    make(path, specs, pos);
    const std::string msg = error_of([&] {
      BertShardReader rr(path, foreign);
      rr.read_all();
    });
    EXPECT_TRUE(contains(msg, path) && contains(msg, part)) << tag << ": " << msg;
  };
  auto without = [&](const std::string& name) {
    std::vector<Spec> s;
    for (const auto& x : good)
      if (x.name != name) s.push_back(x);
    return s;
  };
  auto with = [&](const Spec& repl) {
    std::vector<Spec> s = without(repl.name);
    s.push_back(repl);
    return s;
  };
  expect_error("missing", without("segment_ids"), "dataset 'segment_ids' is missing");
  expect_error("dtype", with({"input_mask", H5T_STD_I32LE, {n, N}}),
               "dataset 'input_mask': dtype int32, expected int8");
  expect_error("float", with({"input_ids", H5T_IEEE_F32LE, {n, N}}), "dtype float32, expected int32");
  expect_error("rows", with({"next_sentence_labels", H5T_STD_I8LE, {n + 1}}), "has 5 rows but input_ids has 4");
  expect_error("cols", with({"segment_ids", H5T_STD_I8LE, {n, N + 1}}), "has 9 columns, expected 8");
  expect_error("rank", with({"masked_lm_ids", H5T_STD_I32LE, {n}}), "1 dimensions, expected 2");
  expect_error("width", with({"masked_lm_ids", H5T_STD_I32LE, {n, P + 1}}), "has 3 columns, expected 2");
  expect_error("position", good, "position 8 outside [0, 8)", 8);
  expect_error("negative", good, "position -2 outside", -2);
  fs::remove_all(dir);
}

TEST(ShardBert, TruncatedOrFlippedFilesGiveErrorsNamingTheFile) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/good.hdf5";
  ShardWriteOptions opt;
  opt.chunk_bytes = 32 * 64 * 4;
  write_bert_shard(path, 64, 300, 4, opt);
  const BertRows reference = BertShardReader(path).read_all();
  const std::string bytes = read_bytes(path);
  const std::string bad = dir + "/bad.hdf5";
  auto attempt = [&](const std::string& what) -> int {  // 1 rejected, 0 identical data
    try {
      const BertShardReader r(bad);
      const BertRows got = r.read_all();
      EXPECT_TRUE(got.input_ids == reference.input_ids && got.masked_lm_labels == reference.masked_lm_labels &&
                  got.segment_ids == reference.segment_ids &&
                  got.next_sentence_labels == reference.next_sentence_labels)
          << what << ": a corrupt file was read as different data";
      return 0;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), bad)) << what << ": " << e.what();
      return 1;
    }
  };
  int rejected = 0, tried = 0;
  for (size_t cut : {size_t(0), size_t(7), size_t(100), size_t(1000), bytes.size() / 3, bytes.size() / 2,
                     bytes.size() - 100, bytes.size() - 1}) {
    write_bytes(bad, bytes.substr(0, cut));
    EXPECT_EQ(attempt(fmt::format("cut at {}", cut)), 1) << "a file cut at " << cut << " bytes was accepted";
  }
  // Single flipped bytes all over the file (the integrity header included) are all caught.
  for (size_t off = 0; off < bytes.size(); off += (off < 600 ? 7 : std::max<size_t>(1, bytes.size() / 300))) {
    std::string f = bytes;
    f[off] = char(f[off] ^ 0x5A);
    write_bytes(bad, f);
    rejected += attempt(fmt::format("byte {} flipped", off));
    ++tried;
  }
  EXPECT_EQ(rejected, tried);
  // Extra bytes at the end; and the check can be skipped (then HDF5's own checks apply).
  write_bytes(bad, bytes + "xx");
  EXPECT_EQ(attempt("appended"), 1);
  EXPECT_TRUE(verify_shard_integrity(path));
  ShardExpect unchecked;
  unchecked.verify_checksum = false;
  EXPECT_FALSE(BertShardReader(path, unchecked).info().checksum_verified);
  EXPECT_TRUE(BertShardReader(path).info().checksum_verified);
  // Garbage and an empty file.
  write_bytes(bad, std::string(4096, '\x7f'));
  EXPECT_EQ(attempt("garbage"), 1);
  write_bytes(bad, "");
  EXPECT_EQ(attempt("empty"), 1);
  fs::remove(bad);
  EXPECT_TRUE(contains(error_of([&] { BertShardReader r(bad); }), "no such file"));
  EXPECT_TRUE(contains(error_of([&] { BertShardReader r(dir); }), "folder"));
  fs::remove_all(dir);
}

// ---- packed shards ------------------------------------------------------------------------------------------

TEST(ShardPacked, RowBuilderCutsTheStreamAndRoundTrips) {
  const int64_t N = 16;
  PackedRowBuilder b(N);
  std::vector<int32_t> stream;
  std::vector<std::vector<int32_t>> rows;
  std::vector<int32_t> row;
  PhiloxRng rng(3);
  int32_t next = 1000;
  for (int d = 0; d < 50; ++d) {
    std::vector<int32_t> doc;
    const int64_t len = rng.randint(0, 40);
    for (int64_t i = 0; i < len; ++i) doc.push_back(next++);
    b.add_document(doc);
    stream.insert(stream.end(), doc.begin(), doc.end());
    stream.push_back(102);
    while (b.next_row(row)) rows.push_back(row);
  }
  ASSERT_EQ(int64_t(rows.size()), int64_t(stream.size()) / (N - 1));
  EXPECT_EQ(b.pending_tokens(), int64_t(stream.size()) % (N - 1));
  for (size_t r = 0; r < rows.size(); ++r) {
    ASSERT_EQ(int64_t(rows[r].size()), N);
    EXPECT_EQ(rows[r][0], 101);
    EXPECT_TRUE(std::equal(rows[r].begin() + 1, rows[r].end(), stream.begin() + std::ptrdiff_t(r * (N - 1))));
  }
  PackedRowBuilder no_sep(N, 101, 102, false);
  no_sep.add_document(std::vector<int32_t>(20, 5));
  EXPECT_TRUE(no_sep.next_row(row));
  EXPECT_EQ(no_sep.pending_tokens(), 5);

  const std::string dir = temp_dir();
  const std::string path = dir + "/packed.hdf5";
  {
    ShardWriteOptions opt;
    opt.chunk_bytes = 7 * N * 4;
    PackedShardWriter w(path, N, meta(), opt);
    for (const auto& x : rows) w.append(x);
    EXPECT_THROW(w.append(std::vector<int32_t>(size_t(N - 1), 1)), Error);
    EXPECT_EQ(w.rows(), int64_t(rows.size()));
    w.close();
  }
  ShardExpect e;
  e.vocab_hash = "sha256:abc";
  PackedShardReader r(path, e);
  EXPECT_EQ(r.rows(), int64_t(rows.size()));
  EXPECT_EQ(r.seq_len(), N);
  EXPECT_EQ(r.info().format, "packed");
  const auto all = r.read_all();
  for (size_t i = 0; i < rows.size(); ++i)
    ASSERT_TRUE(std::equal(rows[i].begin(), rows[i].end(), all.begin() + std::ptrdiff_t(i * N)));
  const auto part = r.read(3, 9);
  EXPECT_TRUE(std::equal(part.begin(), part.end(), all.begin() + 3 * N));

  // Truncations and flips.
  const std::string bytes = read_bytes(path), bad = dir + "/bad.hdf5";
  for (size_t cut : {size_t(10), bytes.size() / 2, bytes.size() - 1}) {
    write_bytes(bad, bytes.substr(0, cut));
    const std::string msg = error_of([&] { PackedShardReader(bad).read_all(); });
    EXPECT_TRUE(contains(msg, bad)) << cut << ": " << msg;
  }
  for (size_t off = 0; off < bytes.size(); off += 13) {
    std::string f = bytes;
    f[off] = char(f[off] ^ 0xFF);
    write_bytes(bad, f);
    const std::string msg = error_of([&] { PackedShardReader(bad).read_all(); });
    EXPECT_TRUE(contains(msg, bad)) << "byte " << off << ": " << msg;
  }
  fs::remove_all(dir);
}

TEST(ShardPacked, WritersInSeveralThreadsProduceIdenticalShards) {
  // Compression runs outside HDF5's lock; shards written concurrently must equal ones written alone.
  const std::string dir = temp_dir();
  const int64_t N = 64, rows = 3000;
  auto rows_of = [&](int k) {
    std::vector<int32_t> v(size_t(rows * N));
    PhiloxRng rng{uint64_t(k)};
    for (auto& x : v) x = int32_t(rng.randint(0, 30521));
    return v;
  };
  auto write = [&](int k, const std::string& path) {
    const auto v = rows_of(k);
    PackedShardWriter w(path, N, meta());
    for (int64_t r = 0; r < rows; ++r) w.append(std::span<const int32_t>(v.data() + r * N, size_t(N)));
    w.close();
  };
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) threads.emplace_back(write, k, fmt::format("{}/t{}.hdf5", dir, k));
  for (auto& t : threads) t.join();
  write(2, dir + "/alone.hdf5");
  for (int k = 0; k < 4; ++k) EXPECT_EQ(PackedShardReader(fmt::format("{}/t{}.hdf5", dir, k)).read_all(), rows_of(k));
  EXPECT_EQ(read_bytes(dir + "/alone.hdf5"), read_bytes(dir + "/t2.hdf5"));  // byte-identical: deterministic
  fs::remove_all(dir);
}

// ---- classification shards ------------------------------------------------------------------------------------

TEST(ShardClassification, IntegerFloatAndPairLayoutsRoundTrip) {
  const std::string dir = temp_dir();
  const std::string ints = dir + "/cls.hdf5", floats = dir + "/stsb.hdf5";
  ClassificationLayout layout;
  layout.seq_len = 12;
  layout.second_document = true;
  layout.token_type_ids = true;
  layout.num_labels = 3;
  std::vector<ClassificationExample> ex;
  for (int i = 0; i < 100; ++i) {
    ClassificationExample e;
    for (int k = 0; k < 1 + i % 12; ++k) e.input_ids.push_back(1000 + i * 12 + k);
    e.token_type_ids.assign(e.input_ids.size(), 0);
    e.token_type_ids.back() = 1;
    for (int k = 0; k < 12 - i % 7; ++k) e.input_ids2.push_back(5000 + k);
    if (i % 2) {
      e.attention_mask2.assign(e.input_ids2.size(), 1);
      e.attention_mask2.back() = 0;
    }
    e.label = i % 3;
    ex.push_back(e);
  }
  {
    ShardWriteOptions opt;
    opt.chunk_bytes = 10 * 12 * 4;
    ClassificationShardWriter w(ints, layout, meta(), opt);
    for (const auto& e : ex) w.append(e);
    ClassificationExample bad = ex[0];
    bad.label = 3;
    EXPECT_TRUE(contains(error_of([&] { w.append(bad); }), "not a class in [0, 3)"));
    bad.label = 0.5;
    EXPECT_THROW(w.append(bad), Error);
    bad = ex[0];
    bad.input_ids.assign(13, 1);
    EXPECT_THROW(w.append(bad), Error);
    bad = ex[0];
    bad.attention_mask = {2};
    EXPECT_THROW(w.append(bad), Error);
    w.close();
  }
  ClassificationShardReader r(ints);
  EXPECT_EQ(r.rows(), 100);
  EXPECT_TRUE(r.layout().second_document);
  EXPECT_TRUE(r.layout().token_type_ids);
  EXPECT_EQ(r.layout().label_type, LabelType::Int64);
  EXPECT_EQ(r.layout().num_labels, 3);
  const ClassificationRows all = r.read_all();
  for (size_t i = 0; i < ex.size(); ++i) {
    const auto& e = ex[i];
    EXPECT_EQ(all.labels[i], int64_t(i % 3));
    for (size_t j = 0; j < 12; ++j) {
      ASSERT_EQ(all.input_ids[i * 12 + j], j < e.input_ids.size() ? e.input_ids[j] : 0);
      ASSERT_EQ(all.attention_mask[i * 12 + j], j < e.input_ids.size() ? 1 : 0);
      ASSERT_EQ(all.token_type_ids[i * 12 + j], j < e.token_type_ids.size() ? e.token_type_ids[j] : 0);
      ASSERT_EQ(all.input_ids2[i * 12 + j], j < e.input_ids2.size() ? e.input_ids2[j] : 0);
      const int8_t m2 = j < e.input_ids2.size() ? (e.attention_mask2.empty() ? 1 : e.attention_mask2[j]) : 0;
      ASSERT_EQ(all.attention_mask2[i * 12 + j], m2);
    }
  }
  EXPECT_TRUE(all.float_labels.empty());
  const auto part = r.read(95, 100);
  EXPECT_EQ(part.labels, std::vector<int64_t>(all.labels.begin() + 95, all.labels.end()));

  ClassificationLayout reg;
  reg.seq_len = 8;
  reg.label_type = LabelType::Float32;
  reg.num_labels = 1;
  {
    ClassificationShardWriter w(floats, reg, meta());
    for (int i = 0; i < 10; ++i) {
      ClassificationExample e;
      e.input_ids = {101, 7, 102};
      e.label = 0.5 * i;
      w.append(e);
    }
    ClassificationExample pair;
    pair.input_ids2 = {1};
    EXPECT_THROW(w.append(pair), Error);  // no second document in this layout
    ClassificationExample nan;
    nan.label = std::nan("");
    EXPECT_THROW(w.append(nan), Error);
    w.close();
  }
  ClassificationShardReader rf(floats);
  EXPECT_EQ(rf.layout().label_type, LabelType::Float32);
  EXPECT_FALSE(rf.layout().second_document);
  const auto fl = rf.read_all();
  EXPECT_FLOAT_EQ(fl.float_labels[9], 4.5f);
  EXPECT_TRUE(fl.labels.empty() && fl.input_ids2.empty() && fl.token_type_ids.empty());
  ShardExpect e;
  e.vocab_hash = "other";
  EXPECT_TRUE(contains(error_of([&] { ClassificationShardReader x(floats, e); }), "vocab_hash"));
  EXPECT_TRUE(contains(error_of([&] { BertShardReader x(floats); }), "found 'classification'"));
  fs::remove_all(dir);
}

// ---- h5py cross-check ---------------------------------------------------------------------------------------

namespace {

const char* kPython = "/usr/bin/python3";

bool h5py_available() {
  if (!fs::exists(kPython)) return false;
  return std::system((std::string(kPython) + " -c 'import h5py, numpy' > /dev/null 2>&1").c_str()) == 0;
}

std::string script() { return std::string(DENSE_TEST_DATA_DIR) + "/../reference/check_shards.py"; }

int run(const std::string& cmd, std::string* out = nullptr) {
  const std::string log = ::testing::TempDir() + fmt::format("/dense_check_shards_{}.log", ::getpid());
  const int rc = std::system((cmd + " > " + log + " 2>&1").c_str());
  const std::string text = read_bytes(log);
  std::remove(log.c_str());
  if (out) *out = text;
  if (rc != 0) ADD_FAILURE() << cmd << "\n" << text;
  return rc;
}

// A checksum of the labels as the LDDL loader builds them, matching check_shards.py's.
uint64_t label_checksum(const BertRows& r) {
  uint64_t h = 0;
  for (size_t i = 0; i < r.masked_lm_labels.size(); ++i)
    h = uint64_t((static_cast<unsigned __int128>(h) * 1000003u + uint64_t(int64_t(r.masked_lm_labels[i]) + 2)) %
                 2305843009213693951ull);
  return h;
}

}  // namespace

TEST(ShardReference, H5pyReadsOurShardsAndWeReadLddlFiles) {
  if (!h5py_available()) GTEST_SKIP() << "h5py (python3-h5py) is not installed for " << kPython;
  const std::string dir = temp_dir();
  // Ours, checked by h5py the way LDDL's loader reads them.
  const std::string ours = dir + "/ours_bert.hdf5";
  write_bert_shard(ours, 128, 300, 8);
  const BertRows mine = BertShardReader(ours).read_all();
  std::string out;
  ASSERT_EQ(run(fmt::format("{} {} check-bert {} --vocab-hash sha256:abc --seq-len 128 --max-pred 19", kPython,
                            script(), ours),
                &out),
            0);
  EXPECT_TRUE(contains(out, fmt::format("label_checksum {}", label_checksum(mine)))) << out;

  const std::string packed = dir + "/ours_packed.hdf5";
  {
    PackedShardWriter w(packed, 64, meta());
    for (int i = 0; i < 50; ++i) {
      std::vector<int32_t> row(64, 2000 + i);
      row[0] = 101;
      w.append(row);
    }
    w.close();
  }
  ASSERT_EQ(run(fmt::format("{} {} check-packed {} --vocab-hash sha256:abc --seq-len 64", kPython, script(), packed)),
            0);
  const std::string cls = dir + "/ours_cls.hdf5";
  {
    ClassificationLayout l;
    l.seq_len = 16;
    l.second_document = true;
    ClassificationShardWriter w(cls, l, meta());
    ClassificationExample e;
    e.input_ids = {101, 5, 102};
    e.input_ids2 = {101, 6, 102};
    e.label = 1;
    w.append(e);
    w.close();
  }
  ASSERT_EQ(
      run(fmt::format("{} {} check-classification {} --vocab-hash sha256:abc --seq-len 16", kPython, script(), cls)),
      0);

  // Theirs: an LDDL-layout file written by h5py (no densetrain attributes).
  const std::string theirs = dir + "/lddl.hdf5";
  ASSERT_EQ(
      run(fmt::format("{} {} write-lddl {} --rows 257 --seq-len 128 --max-pred 19", kPython, script(), theirs), &out),
      0);
  EXPECT_TRUE(contains(error_of([&] { BertShardReader r(theirs); }), "not a densetrain shard"));
  ShardExpect foreign;
  foreign.allow_foreign = true;
  foreign.seq_len = 128;
  BertShardReader r(theirs, foreign);
  EXPECT_TRUE(r.info().foreign);
  ASSERT_EQ(r.rows(), 257);
  EXPECT_EQ(r.max_predictions(), 19);
  const BertRows t = r.read_all();
  // The pattern check_shards.py writes (see write_lddl there).
  for (int64_t i = 0; i < 257; ++i) {
    const int64_t len = 10 + (i * 7) % 100, np = 1 + i % 19;
    ASSERT_EQ(t.filled_lengths[size_t(i)], len);
    ASSERT_EQ(t.next_sentence_labels[size_t(i)], i % 2);
    for (int64_t j = 0; j < 128; ++j) {
      const int32_t id = j == 0 ? 101 : (j < len ? int32_t(1000 + i * 3 + j) : 0);
      ASSERT_EQ(t.input_ids[size_t(i * 128 + j)], id);
      ASSERT_EQ(t.input_mask[size_t(i * 128 + j)], j < len ? 1 : 0);
      ASSERT_EQ(t.segment_ids[size_t(i * 128 + j)], j < len && j >= len / 2 ? 1 : 0);
      const bool masked = j >= 1 && j % 5 == 1 && (j - 1) / 5 < np && j < len;
      ASSERT_EQ(t.masked_lm_labels[size_t(i * 128 + j)], masked ? int32_t(7000 + j) : -1) << i << " " << j;
    }
  }
  EXPECT_TRUE(contains(out, fmt::format("label_checksum {}", label_checksum(t)))) << out;
  fs::remove_all(dir);
}
