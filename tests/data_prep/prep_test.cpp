// The dense-prep pipelines (src/data/prep_*.h) on real text and real files: packed and bert shards against a
// direct single-threaded recomputation, thread-count independence, resume (kept, rewritten, damaged and stale
// shards, interrupted-run temporaries), and clear errors; GLUE, LRA and vocabulary preparation; inspect.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <atomic>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "data/glue.h"
#include "data/prep_common.h"
#include "data/prep_glue.h"
#include "data/shard_classification.h"
#include "data/shard_packed.h"
#include "data/wordpiece.h"
#include "data_prep/corpus.h"
#include "data_prep/lra_idx.h"
#include "data_prep/lra_listops.h"
#include "data_prep/prep_lra.h"
#include "data_prep/prep_pipeline.h"
#include "data_prep/prep_pretrain.h"
#include "data_prep/prep_vocab.h"
#include "data_prep/shard_inspect.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace dense::data;
using dense::testing::contains;
using dense::testing::error_of;
using dense::testing::read_bytes;
using dense::testing::temp_dir;
using dense::testing::write_bytes;

namespace {

const std::string kVocab = std::string(DENSE_TEST_DATA_DIR) + "/wordpiece_vocab_small.txt";
const std::string kWikiValid = std::string(DENSE_SHARED_DIR) + "/data/wikitext-2/valid.txt";
const std::string kGlue = std::string(DENSE_SHARED_DIR) + "/data/glue";

PretrainPrepConfig packed_config(const std::string& out) {
  PretrainPrepConfig c;
  c.inputs = {kWikiValid};
  c.corpus.format = CorpusFormat::WikiText;
  c.vocab_path = kVocab;
  c.format = PretrainFormat::kPacked;
  c.seq_len = 64;
  c.shard_rows = 1000;
  c.out_dir = out;
  c.progress.enabled = false;
  return c;
}

// The rows of docs/model.md §3.2 computed directly: every document's ids + [SEP], one stream, [CLS] + N-1 per row.
std::vector<int32_t> reference_packed_rows(const PretrainPrepConfig& c, int64_t* tail = nullptr) {
  const WordPieceTokenizer tok = WordPieceTokenizer::from_file(c.vocab_path);
  CorpusReader reader(c.inputs, c.corpus);
  Document doc;
  std::vector<int32_t> stream;
  while (reader.next(doc)) {
    const auto ids = tok.encode(doc.text);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(tok.vocab().sep_id());
  }
  const size_t body = size_t(c.seq_len - 1), rows = stream.size() / body;
  std::vector<int32_t> out;
  for (size_t r = 0; r < rows; ++r) {
    out.push_back(tok.vocab().cls_id());
    out.insert(out.end(), stream.begin() + std::ptrdiff_t(r * body), stream.begin() + std::ptrdiff_t((r + 1) * body));
  }
  if (tail) *tail = int64_t(stream.size() - rows * body);
  return out;
}

std::vector<int32_t> read_packed_dir(const std::string& dir, const PretrainPrepResult& r) {
  std::vector<int32_t> all;
  for (const auto& name : r.shards) {
    PackedShardReader reader((fs::path(dir) / name).string());
    const auto rows = reader.read_all();
    all.insert(all.end(), rows.begin(), rows.end());
  }
  return all;
}

}  // namespace

TEST(PrepPretrain, PackedShardsAreTheContinuousStreamCutIntoRows) {
  const std::string dir = temp_dir();
  PretrainPrepConfig c = packed_config(dir + "/out");
  c.threads = 2;
  const PretrainPrepResult r = prepare_pretraining(c);
  int64_t tail = 0;
  const std::vector<int32_t> expected = reference_packed_rows(c, &tail);
  ASSERT_GT(expected.size(), size_t(3000 * 64));  // several shards of 1000 rows
  EXPECT_EQ(r.rows * 64, int64_t(expected.size()));
  EXPECT_EQ(r.dropped_tail_tokens, tail);
  EXPECT_EQ(int64_t(r.shards.size()), (r.rows + 999) / 1000);
  EXPECT_EQ(r.shards.front(), "packed-00000.hdf5");
  EXPECT_EQ(read_packed_dir(c.out_dir, r), expected);
  // Every shard but the last is full; each carries the run's configuration and the vocabulary hash.
  for (size_t k = 0; k < r.shards.size(); ++k) {
    PackedShardReader reader((fs::path(c.out_dir) / r.shards[k]).string());
    EXPECT_EQ(reader.rows(), k + 1 < r.shards.size() ? 1000 : r.rows - 1000 * int64_t(k));
    EXPECT_EQ(reader.info().vocab_hash, Vocab::load(kVocab).sha256());
    EXPECT_EQ(nlohmann::json::parse(reader.info().prep_config)["seq_len"], 64);
  }
  const auto manifest = nlohmann::json::parse(read_bytes(c.out_dir + "/manifest.json"));
  EXPECT_EQ(manifest["rows"], r.rows);
  EXPECT_EQ(manifest["shards"].size(), r.shards.size());
}

TEST(PrepPretrain, PrefixedRunsShareAFolderEachWithItsOwnManifest) {
  const std::string dir = temp_dir();
  PretrainPrepConfig first = packed_config(dir + "/out"), second = packed_config(dir + "/out");
  first.prefix = "books";
  second.prefix = "wiki";
  second.max_rows = 700;
  const auto a = prepare_pretraining(first), b = prepare_pretraining(second);
  EXPECT_EQ(a.shards.front(), "books-00000.hdf5");
  EXPECT_EQ(b.shards.front(), "wiki-00000.hdf5");
  EXPECT_EQ(a.manifest, dir + "/out/books.manifest.json");
  EXPECT_EQ(nlohmann::json::parse(read_bytes(a.manifest))["rows"], a.rows);
  EXPECT_EQ(nlohmann::json::parse(read_bytes(b.manifest))["rows"], 700);
  EXPECT_FALSE(fs::exists(dir + "/out/manifest.json"));
  // The second run did not overwrite the first one's record: re-running the first finds it complete.
  EXPECT_TRUE(prepare_pretraining(first).already_complete);
  EXPECT_TRUE(prepare_pretraining(second).already_complete);
}

TEST(PrepPretrain, PackedResultDoesNotDependOnThreadCount) {
  const std::string dir = temp_dir();
  PretrainPrepConfig one = packed_config(dir + "/one"), two = packed_config(dir + "/two");
  one.threads = 1;
  two.threads = 2;
  const auto a = prepare_pretraining(one), b = prepare_pretraining(two);
  EXPECT_EQ(a.shards, b.shards);
  EXPECT_EQ(read_packed_dir(one.out_dir, a), read_packed_dir(two.out_dir, b));
}

TEST(PrepPretrain, MaxRowsTakesTheFirstRowsAndFailsWhenTheCorpusIsShort) {
  const std::string dir = temp_dir();
  PretrainPrepConfig c = packed_config(dir + "/out");
  c.max_rows = 1500;
  const auto r = prepare_pretraining(c);
  EXPECT_EQ(r.rows, 1500);
  EXPECT_EQ(r.shards.size(), 2u);
  const auto expected = reference_packed_rows(c);
  EXPECT_EQ(read_packed_dir(c.out_dir, r), std::vector<int32_t>(expected.begin(), expected.begin() + 1500 * 64));
  PretrainPrepConfig big = packed_config(dir + "/big");
  big.max_rows = 10'000'000;
  const std::string e = error_of([&] { prepare_pretraining(big); });
  EXPECT_TRUE(contains(e, "--max-rows asks for 10000000")) << e;
}

TEST(PrepPretrain, ResumeKeepsCompleteShardsAndRewritesMissingOrDamagedOnes) {
  const std::string dir = temp_dir();
  PretrainPrepConfig c = packed_config(dir + "/out");
  const auto first = prepare_pretraining(c);
  ASSERT_GE(first.shards.size(), 3u);
  const auto expected = read_packed_dir(c.out_dir, first);

  const auto again = prepare_pretraining(c);
  EXPECT_TRUE(again.already_complete);
  EXPECT_EQ(again.rows, first.rows);

  // One shard deleted, one truncated, a temporary from a dead process: only those two are written again.
  fs::remove(fs::path(c.out_dir) / first.shards[0]);
  const std::string damaged = (fs::path(c.out_dir) / first.shards[1]).string();
  fs::resize_file(damaged, fs::file_size(damaged) / 2);
  const std::string stale_tmp = c.out_dir + "/packed-00002.hdf5.tmp-999999999";
  write_bytes(stale_tmp, "partial");
  const auto resumed = prepare_pretraining(c);
  EXPECT_FALSE(resumed.already_complete);
  EXPECT_EQ(resumed.shards_written, 2);
  EXPECT_EQ(resumed.shards_kept, int64_t(first.shards.size()) - 2);
  EXPECT_EQ(resumed.stale_temporaries_removed, 1);
  EXPECT_FALSE(fs::exists(stale_tmp));
  EXPECT_EQ(read_packed_dir(c.out_dir, resumed), expected);
}

TEST(PrepPretrain, OtherSettingsIntoTheSameFolderNeedOverwrite) {
  const std::string dir = temp_dir();
  PretrainPrepConfig c = packed_config(dir + "/out");
  const auto first = prepare_pretraining(c);
  PretrainPrepConfig other = c;
  other.seq_len = 128;
  other.shard_rows = 5000;  // fewer shards than the first run
  const std::string e = error_of([&] { prepare_pretraining(other); });
  EXPECT_TRUE(contains(e, "packed-00000.hdf5")) << e;
  EXPECT_TRUE(contains(e, "seq_len")) << e;
  EXPECT_TRUE(contains(e, "--overwrite")) << e;
  other.overwrite = true;
  const auto r = prepare_pretraining(other);
  EXPECT_LT(r.shards.size(), first.shards.size());
  // The first run's extra shards are gone: a loader listing the folder sees only this run.
  size_t shards = 0;
  for (const auto& e2 : fs::directory_iterator(c.out_dir)) shards += e2.path().extension() == ".hdf5";
  EXPECT_EQ(shards, r.shards.size());
  EXPECT_EQ(read_packed_dir(other.out_dir, r), reference_packed_rows(other));
}

TEST(PrepPretrain, BertShardsAreValidDeterministicAndUseEveryDocument) {
  const std::string dir = temp_dir();
  PretrainPrepConfig c = packed_config(dir + "/a");
  c.format = PretrainFormat::kBert;
  c.seq_len = 128;
  c.shard_rows = 300;
  c.sentences = SentenceSplit::kPunctuation;
  c.threads = 1;
  PretrainPrepConfig d = c;
  d.out_dir = dir + "/b";
  d.threads = 2;
  const auto ra = prepare_pretraining(c), rb = prepare_pretraining(d);
  ASSERT_GE(ra.shards.size(), 3u);
  ASSERT_EQ(ra.shards, rb.shards);
  int64_t rows = 0, random_next = 0, masked = 0, real = 0;
  for (const auto& name : ra.shards) {
    BertShardReader a((fs::path(c.out_dir) / name).string()), b((fs::path(d.out_dir) / name).string());
    const BertRows x = a.read_all(), y = b.read_all();
    EXPECT_EQ(x.input_ids, y.input_ids);
    EXPECT_EQ(x.masked_lm_positions, y.masked_lm_positions);
    EXPECT_EQ(x.next_sentence_labels, y.next_sentence_labels);
    EXPECT_EQ(a.max_predictions(), 19);
    rows += x.rows;
    for (int64_t i = 0; i < x.rows; ++i) {
      EXPECT_EQ(x.input_ids[size_t(i * 128)], 2);  // [CLS] of the small vocab
      random_next += x.next_sentence_labels[size_t(i)];
      real += x.filled_lengths[size_t(i)];
      for (int64_t k = 0; k < 19; ++k) masked += x.masked_lm_positions[size_t(i * 19 + k)] != 0;
    }
  }
  EXPECT_EQ(rows, ra.rows);
  // NSP: about half random next; about 15% of the real tokens chosen for prediction.
  // (A chunk of one sentence always takes a random B, so somewhat more than half.)
  EXPECT_GT(double(random_next) / double(rows), 0.45);
  EXPECT_LT(double(random_next) / double(rows), 0.7);
  EXPECT_NEAR(double(masked) / double(real), 0.15, 0.02);
  // A different seed gives different pairs.
  PretrainPrepConfig e = c;
  e.out_dir = dir + "/c";
  e.seed = 7;
  const auto rc = prepare_pretraining(e);
  BertShardReader a((fs::path(c.out_dir) / ra.shards[0]).string()), z((fs::path(e.out_dir) / rc.shards[0]).string());
  EXPECT_NE(a.read_all().input_ids, z.read_all().input_ids);
}

TEST(PrepPretrain, BertDuplicatePassesMultiplyTheRows) {
  const std::string dir = temp_dir();
  PretrainPrepConfig c = packed_config(dir + "/one");
  c.format = PretrainFormat::kBert;
  c.seq_len = 128;
  c.shard_rows = 1'000'000;  // one block: the whole corpus
  PretrainPrepConfig d = c;
  d.out_dir = dir + "/two";
  d.duplicate = 2;
  d.shard_rows = 2'000'000;
  const auto r1 = prepare_pretraining(c), r2 = prepare_pretraining(d);
  ASSERT_EQ(r1.shards.size(), 1u);
  ASSERT_EQ(r2.shards.size(), 1u);
  EXPECT_NEAR(double(r2.rows) / double(r1.rows), 2.0, 0.1);
}

TEST(PrepPretrain, SentenceSplitterBreaksAtSentenceEndsOnly) {
  const auto s = split_sentences("He left at 5 p.m. yesterday. \"Why?\" she asked! (Nobody knew.) 3 more. end");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0], "He left at 5 p.m. yesterday.");
  EXPECT_EQ(s[1], "\"Why?\" she asked!");
  EXPECT_EQ(s[2], "(Nobody knew.)");
  EXPECT_EQ(s[3], "3 more. end");  // a lower-case start is no sentence start
  EXPECT_TRUE(split_sentences("   ").empty());
  EXPECT_EQ(split_sentences("no end").size(), 1u);
}

TEST(PrepPretrain, BadInputGivesClearErrors) {
  const std::string dir = temp_dir();
  // A vocabulary without [MASK] cannot make bert shards.
  write_bytes(dir + "/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n");
  PretrainPrepConfig c = packed_config(dir + "/out");
  c.format = PretrainFormat::kBert;
  c.vocab_path = dir + "/vocab.txt";
  EXPECT_TRUE(contains(error_of([&] { prepare_pretraining(c); }), "vocab.txt: the vocabulary has no [MASK]"));
  // Too little text for one row.
  write_bytes(dir + "/tiny.txt", "a few words\n");
  PretrainPrepConfig t = packed_config(dir + "/out2");
  t.inputs = {dir + "/tiny.txt"};
  t.corpus.format = CorpusFormat::Auto;
  EXPECT_TRUE(contains(error_of([&] { prepare_pretraining(t); }), "gives no row of 64 tokens"));
  // Missing input; an output folder that cannot be created (its parent is a file).
  PretrainPrepConfig m = packed_config(dir + "/out3");
  m.inputs = {dir + "/missing"};
  EXPECT_TRUE(contains(error_of([&] { prepare_pretraining(m); }), "missing"));
  PretrainPrepConfig u = packed_config(dir + "/tiny.txt/sub");
  EXPECT_TRUE(contains(error_of([&] { prepare_pretraining(u); }), "cannot create the output folder"));
}

// Values the command line also refuses, checked again by the library (other callers), and an output folder that
// a re-run would read back as corpus text.
TEST(PrepPretrain, BadNumbersAndAnOutputInsideTheInputsAreRefused) {
  const std::string dir = temp_dir();
  PretrainPrepConfig c = packed_config(dir + "/out");
  c.shard_rows = -5;
  EXPECT_TRUE(
      contains(error_of([&] { prepare_pretraining(c); }), "--shard-rows must be a positive number of rows (got -5)"));
  c = packed_config(dir + "/out");
  c.short_seq_prob = 1.5;
  EXPECT_TRUE(contains(error_of([&] { prepare_pretraining(c); }), "--short-seq-prob must be in [0, 1] (got 1.5)"));
  c = packed_config(dir + "/out");
  c.random_next_prob = -0.5;
  EXPECT_TRUE(contains(error_of([&] { prepare_pretraining(c); }), "--random-next-prob must be in [0, 1]"));
  // The corpus folder itself, a folder inside it, and the same reached through "..": refused before anything is
  // written, so a second run cannot pick up manifest.json or the shards.
  const std::string corpus = dir + "/corpus";
  fs::create_directories(corpus);
  fs::copy_file(kWikiValid, corpus + "/valid.txt");
  for (const std::string& out : {corpus, corpus + "/shards", dir + "/corpus/../corpus/x"}) {
    PretrainPrepConfig in = packed_config(out);
    in.inputs = {corpus};
    const std::string e = error_of([&] { prepare_pretraining(in); });
    EXPECT_TRUE(contains(e, "pretrain: -o " + out + " is ")) << e;
    EXPECT_TRUE(contains(e, "the input folder " + corpus)) << e;
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(corpus), fs::directory_iterator{}), 1);  // valid.txt only
  // A sibling folder whose name starts like the input's is not inside it.
  PretrainPrepConfig sibling = packed_config(corpus + "_shards");
  sibling.inputs = {corpus};
  EXPECT_NO_THROW(prepare_pretraining(sibling));
}

// A shard writer that fails on a full disk must close every HDF5 handle when it is destroyed: a file left open
// after a failed close makes HDF5 crash at exit (issue #20: exit 139 in H5F__close_cb after the error message)
// and keeps the disk space of the removed temporary. A 256 KiB tmpfs is the full disk (root only).
TEST(ShardWriter, FullDiskFailureClosesEveryHandleAndFreesTheSpace) {
  const std::string disk = temp_dir() + "/disk";
  fs::create_directories(disk);
  if (::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=256k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(errno) << "); tests/e2e/faults/prep_faults_test.sh too";
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{disk};
  auto free_bytes = [&] {
    struct statvfs st {};
    EXPECT_EQ(::statvfs(disk.c_str(), &st), 0);
    return uint64_t(st.f_bavail) * st.f_frsize;
  };
  const uint64_t free_before = free_bytes();
  const ssize_t files_before = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE);
  ShardWriteOptions opt;
  opt.gzip_level = 0;  // incompressible enough to fill the disk
  std::string error;
  {
    PackedShardWriter w(disk + "/packed-00000.hdf5", 64, ShardMeta{"hash", "{}"}, opt);
    std::vector<int32_t> row(64);
    error = error_of([&] {
      for (int32_t r = 0; r < 100000; ++r) {
        for (int32_t i = 0; i < 64; ++i) row[size_t(i)] = r * 64 + i;
        w.append(row);
      }
      w.close();
    });
  }
  EXPECT_TRUE(contains(error, "packed-00000.hdf5.tmp-")) << error;
  EXPECT_TRUE(contains(error, "cannot write")) << error;
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE), files_before) << "an HDF5 file is still open";
  EXPECT_TRUE(fs::is_empty(disk)) << "a shard or temporary is left";
  EXPECT_EQ(free_bytes(), free_before) << "the removed temporary still holds its blocks (an open descriptor)";
}

TEST(PrepGlue, CoLaSplitsBecomeShardsOfTheTokenizedExamples) {
  const std::string dir = temp_dir();
  GluePrepConfig c;
  c.glue_dir = kGlue;
  c.tasks = {"cola"};
  c.vocab_path = kVocab;
  c.out_dir = dir;
  c.max_length = 32;
  c.progress.enabled = false;
  const GluePrepResult r = prepare_glue(c);
  ASSERT_EQ(r.splits.size(), 3u);  // train, dev, test
  const WordPieceTokenizer tok = WordPieceTokenizer::from_file(kVocab);
  for (const auto& s : r.splits) {
    const GlueSplitData data = load_glue_split(kGlue + "/CoLA", GlueTask::kCoLA, s.split);
    ClassificationShardReader reader(s.path, ShardExpect{tok.vocab().sha256(), 32});
    ASSERT_EQ(reader.rows(), int64_t(data.size())) << s.split;
    EXPECT_EQ(reader.layout().labeled, s.split != "test");
    const ClassificationRows rows = reader.read_all();
    for (size_t i = 0; i < data.size(); i += 97) {
      const Encoding e = tok.encode_single(data.examples[i].text_a, 32, true);
      EXPECT_EQ(std::vector<int32_t>(rows.input_ids.begin() + std::ptrdiff_t(i * 32),
                                     rows.input_ids.begin() + std::ptrdiff_t((i + 1) * 32)),
                e.input_ids);
      EXPECT_EQ(rows.labels[i], data.examples[i].label);  // -1 in the unlabeled test file
    }
  }
  // A second run keeps all three.
  const GluePrepResult again = prepare_glue(c);
  for (const auto& s : again.splits) EXPECT_TRUE(s.kept);
}

TEST(PrepGlue, PairTasksRegressionAndMnliFilesFromTheFixtures) {
  const std::string dir = temp_dir();
  GluePrepConfig c;
  c.glue_dir = std::string(DENSE_TEST_DATA_DIR) + "/glue";
  c.vocab_path = kVocab;
  c.out_dir = dir;
  c.progress.enabled = false;
  const GluePrepResult r = prepare_glue(c);  // every task folder present
  bool stsb = false, mnli_mm = false;
  for (const auto& s : r.splits) {
    ClassificationShardReader reader(s.path);
    if (s.task == "STS-B" && s.split == "train") {
      stsb = true;
      EXPECT_EQ(reader.layout().label_type, LabelType::Float32);
      const auto rows = reader.read_all();
      for (float v : rows.float_labels) EXPECT_TRUE(v >= 0 && v <= 5);
    }
    if (s.task == "MNLI" && s.split == "dev_mismatched") mnli_mm = true;
    if (s.task == "MRPC") {
      EXPECT_EQ(reader.layout().seq_len, 512);
    }
    // Pairs have both segments.
    if (s.task == "RTE" && s.rows > 0) {
      const auto rows = reader.read_all();
      EXPECT_NE(std::find(rows.token_type_ids.begin(), rows.token_type_ids.end(), 1), rows.token_type_ids.end());
    }
  }
  EXPECT_TRUE(stsb);
  EXPECT_TRUE(mnli_mm);
  EXPECT_FALSE(r.tasks_without_folder.empty());  // CoLA, SST-2, WNLI are not among the fixtures
  c.tasks = {"nosuchtask"};
  EXPECT_TRUE(contains(error_of([&] { prepare_glue(c); }), "nosuchtask"));
}

TEST(PrepLra, ListOpsGeneratedShardsCarryTheEvaluatedTargets) {
  const std::string dir = temp_dir();
  LraPrepConfig c;
  c.task = "listops";
  c.out_dir = dir;
  c.num_train = 30;
  c.num_val = 5;
  c.num_test = 5;
  c.seed = 3;
  c.progress.enabled = false;
  const LraPrepResult r = prepare_lra(c);
  ASSERT_EQ(r.splits.size(), 3u);
  EXPECT_EQ(r.seq_len, 2000);
  EXPECT_EQ(r.vocab_hash, "lra-listops-17");
  ClassificationShardReader train(r.splits[0].path);
  const auto rows = train.read_all();
  ASSERT_EQ(rows.rows, 30);
  for (int64_t i = 0; i < rows.rows; ++i) {
    std::vector<uint8_t> tokens;
    for (int64_t k = 1; k < 2000; ++k) {  // after [CLS]
      const int32_t t = rows.input_ids[size_t(i * 2000 + k)];
      if (rows.attention_mask[size_t(i * 2000 + k)] == 0) break;
      tokens.push_back(uint8_t(t));
    }
    EXPECT_EQ(rows.input_ids[size_t(i * 2000)], lra::kListOpsCls);
    EXPECT_EQ(lra::listops_evaluate(tokens), rows.labels[size_t(i)]);
  }
  // The release TSVs were written beside the shards and read back the same.
  EXPECT_EQ(lra::read_listops_tsv(dir + "/basic_val.tsv").size(), 5u);
  const LraPrepResult again = prepare_lra(c);
  for (const auto& s : again.splits) EXPECT_TRUE(s.kept);
  LraPrepConfig from = c;
  from.source = dir;
  from.out_dir = dir + "/from_tsv";
  const LraPrepResult rf = prepare_lra(from);
  EXPECT_EQ(ClassificationShardReader(rf.splits[0].path).read_all().input_ids, rows.input_ids);
}

TEST(PrepLra, ListOpsLengthBoundsMakeShorterTasks) {
  const std::string dir = temp_dir();
  LraPrepConfig c;
  c.task = "listops";
  c.out_dir = dir + "/short";
  c.num_train = 40;
  c.num_val = 5;
  c.num_test = 5;
  c.min_length = 20;
  c.max_length = 64;
  c.progress.enabled = false;
  const LraPrepResult r = prepare_lra(c);
  EXPECT_EQ(r.seq_len, 64);  // the longest tree (63 tokens) and CLS
  const auto rows = ClassificationShardReader(r.splits[0].path).read_all();
  ASSERT_EQ(rows.rows, 40);
  for (int64_t i = 0; i < rows.rows; ++i) {
    int64_t length = 0;  // tokens after CLS
    for (int64_t k = 1; k < 64; ++k) length += rows.attention_mask[size_t(i * 64 + k)];
    EXPECT_GT(length, 20);
    EXPECT_LT(length, 64);
  }
  // The bounds are part of the shards' settings: other bounds are another data set.
  LraPrepConfig other = c;
  other.max_length = 80;
  const std::string e = error_of([&] { prepare_lra(other); });
  EXPECT_TRUE(contains(e, "--overwrite")) << e;
  LraPrepConfig bad = c;
  bad.out_dir = dir + "/bad";
  bad.min_length = 30;
  bad.max_length = 31;
  EXPECT_TRUE(contains(error_of([&] { prepare_lra(bad); }), "--min-length 30 and --max-length 31"));
  bad.max_length = 64;
  bad.seq_len = 32;
  EXPECT_TRUE(contains(error_of([&] { prepare_lra(bad); }), "--seq-len 32 is shorter"));
}

TEST(PrepLra, ImagesTextAndRetrievalFromFiles) {
  const std::string dir = temp_dir();
  // MNIST layout: 20 train and 5 test images of 28x28.
  fs::create_directories(dir + "/mnist");
  auto write_set = [&](const std::string& prefix, int n) {
    lra::IdxArray images, labels;
    images.dims = {uint32_t(n), 28, 28};
    labels.dims = {uint32_t(n)};
    for (int i = 0; i < n * 784; ++i) images.data.push_back(uint8_t((i * 7 + i / 784) % 256));
    for (int i = 0; i < n; ++i) labels.data.push_back(uint8_t(i % 10));
    lra::write_idx(dir + "/mnist/" + prefix + "-images-idx3-ubyte", images, true);
    lra::write_idx(dir + "/mnist/" + prefix + "-labels-idx1-ubyte", labels, false);
  };
  write_set("train", 20);
  write_set("t10k", 5);
  LraPrepConfig img;
  img.task = "image";
  img.source = dir + "/mnist";
  img.out_dir = dir + "/image";
  img.progress.enabled = false;
  const LraPrepResult ri = prepare_lra(img);
  ASSERT_EQ(ri.splits.size(), 3u);
  EXPECT_EQ(ri.splits[0].rows, 18);
  EXPECT_EQ(ri.splits[1].rows, 2);
  EXPECT_EQ(ri.splits[2].rows, 5);
  const auto test_rows = ClassificationShardReader(ri.splits[2].path).read_all();
  EXPECT_EQ(test_rows.input_ids[784 + 5], int32_t((784 + 5) * 7 + 1) % 256);
  EXPECT_EQ(test_rows.labels[3], 3);

  // aclImdb layout with characters below the minimum frequency.
  for (const char* split : {"train", "test"})
    for (const char* label : {"pos", "neg"}) {
      fs::create_directories(fmt::format("{}/aclImdb/{}/{}", dir, split, label));
      for (int i = 0; i < 3; ++i)
        write_bytes(fmt::format("{}/aclImdb/{}/{}/{}_7.txt", dir, split, label, i),
                    std::string(label) == "pos" ? "a good film, well made" : "a bad film; zzz");
    }
  LraPrepConfig text;
  text.task = "text";
  text.source = dir + "/aclImdb";
  text.out_dir = dir + "/text";
  text.seq_len = 32;
  text.min_frequency = 4;
  text.progress.enabled = false;
  const LraPrepResult rt = prepare_lra(text);
  ASSERT_EQ(rt.splits.size(), 2u);  // the test set doubles as validation
  const auto tr = ClassificationShardReader(rt.splits[0].path).read_all();
  ASSERT_EQ(tr.rows, 6);
  EXPECT_EQ(tr.labels[0], 0);  // neg first
  // "a bad film; zzz": 'z' (3 per text, 9 in train) is kept; ';' (3 in train) is below 4 and becomes [UNK].
  EXPECT_EQ(tr.input_ids[10], 1);
  EXPECT_NE(tr.input_ids[12], 1);
  EXPECT_EQ(tr.attention_mask[15], 0);  // padding after 15 characters

  // AAN pairs.
  fs::create_directories(dir + "/aan");
  for (const char* part : {"train", "eval", "test"})
    write_bytes(fmt::format("{}/aan/new_aan_pairs.{}.tsv", dir, part),
                "1\tp1\tp2\tattention is all\tattention again\n0\tp3\tp4\tgraphs\tspeech\n");
  LraPrepConfig ret;
  ret.task = "retrieval";
  ret.source = dir + "/aan";
  ret.out_dir = dir + "/retrieval";
  ret.seq_len = 24;
  ret.progress.enabled = false;
  const LraPrepResult rr = prepare_lra(ret);
  ClassificationShardReader rd(rr.splits[0].path);
  EXPECT_TRUE(rd.layout().second_document);
  const auto pr = rd.read_all();
  EXPECT_EQ(pr.input_ids[0], 2);  // [CLS] of the character vocabulary
  EXPECT_EQ(pr.input_ids2[0], 2);
  EXPECT_EQ(pr.labels, (std::vector<int64_t>{1, 0}));
  EXPECT_TRUE(contains(error_of([&] {
                         LraPrepConfig bad = ret;
                         bad.source = dir + "/nothing";
                         prepare_lra(bad);
                       }),
                       "no such folder"));
}

TEST(PrepLra, PathfinderGeneratesImagesAndSplitsThem) {
  const std::string dir = temp_dir();
  LraPrepConfig c;
  c.task = "pathfinder";
  c.out_dir = dir;
  c.num_images = 20;
  c.seed = 1;
  c.progress.enabled = false;
  const LraPrepResult r = prepare_lra(c);
  ASSERT_EQ(r.splits.size(), 3u);
  EXPECT_EQ(r.splits[0].rows, 16);
  EXPECT_EQ(r.splits[1].rows, 2);
  EXPECT_EQ(r.splits[2].rows, 2);
  EXPECT_EQ(r.seq_len, 1024);
  EXPECT_TRUE(fs::exists(dir + "/images/curv_contour_length_14/metadata/0.npy"));
}

TEST(PrepVocab, TrainedVocabularyIsTheSameForAnyThreadCount) {
  const std::string dir = temp_dir();
  VocabPrepConfig c;
  c.inputs = {kWikiValid};
  c.corpus.format = CorpusFormat::WikiText;
  c.train.vocab_size = 800;
  c.progress.enabled = false;
  c.out_path = dir + "/one/vocab.txt";
  c.threads = 1;
  const auto a = prepare_vocab(c);
  c.out_path = dir + "/two/vocab.txt";
  c.threads = 2;
  const auto b = prepare_vocab(c);
  EXPECT_EQ(a.vocab_size, 800);
  EXPECT_EQ(a.sha256, b.sha256);
  EXPECT_EQ(read_bytes(dir + "/one/vocab.txt"), read_bytes(dir + "/two/vocab.txt"));
  const Vocab v = Vocab::load(dir + "/one/vocab.txt");
  EXPECT_EQ(v.token(0), "[PAD]");
  EXPECT_TRUE(v.contains("the"));
}

TEST(PrepInspect, ReportsLayoutSampleAndStatistics) {
  const std::string dir = temp_dir();
  PretrainPrepConfig c = packed_config(dir + "/out");
  c.max_rows = 100;
  prepare_pretraining(c);
  InspectOptions o;
  o.vocab_path = kVocab;
  o.row = 2;
  const std::string report = inspect_shard(c.out_dir + "/packed-00000.hdf5", o);
  for (const char* part : {"integrity  verified", "input_ids              int32    [100, 64]", "format     packed",
                           "\"seq_len\": 64", "sample     row 2", "[CLS]", "statistics over 100 of 100 rows", "[UNK]"})
    EXPECT_TRUE(contains(report, part)) << part << "\n" << report;
  o.row = 100;
  EXPECT_TRUE(contains(error_of([&] { inspect_shard(c.out_dir + "/packed-00000.hdf5", o); }), "outside"));
  write_bytes(dir + "/garbage.hdf5", std::string(4096, 'x'));
  EXPECT_FALSE(error_of([&] { inspect_shard(dir + "/garbage.hdf5"); }).empty());
  EXPECT_TRUE(contains(error_of([&] { inspect_shard(dir + "/none.hdf5"); }), "no such file"));
}

TEST(PrepProgress, LineShowsPercentRateAndEta) {
  ProgressOptions o;
  o.enabled = false;
  Progress p("work", 2'000'000, o);
  p.set(500'000);
  p.set_counter("rows", 12345);
  const std::string line = p.render();
  EXPECT_TRUE(contains(line, " 25.0%")) << line;
  EXPECT_TRUE(contains(line, "0.5 / 2.0 MB")) << line;
  EXPECT_TRUE(contains(line, "rows 12,345")) << line;
  EXPECT_TRUE(contains(line, "ETA")) << line;
  p.finish();
  EXPECT_TRUE(contains(p.render(), "100.0%"));
  EXPECT_EQ(with_thousands(-1234567), "-1,234,567");
  EXPECT_EQ(format_duration(3725), "1:02:05");
}

TEST(PrepCommon, BackgroundJobsPropagateErrors) {
  BackgroundJobs jobs(2);
  std::atomic<int> ran{0};
  for (int i = 0; i < 5; ++i) jobs.submit([&] { ++ran; });
  jobs.wait_all();
  EXPECT_EQ(ran.load(), 5);
  jobs.submit([] { DENSE_FAIL("job failed: {}", 42); });
  EXPECT_TRUE(contains(error_of([&] { jobs.wait_all(); }), "job failed: 42"));
}
