// The trainer's data loader and checkpoints on real shards and real files: every row once per epoch, exact
// resume from a cursor, fresh masks per epoch, validation passes, rank splits, clear errors; checkpoints that
// round-trip, refuse corruption, survive SIGKILL mid-write, and prune as configured.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "data/vocab.h"
#include "data_prep/prep_pretrain.h"
#include "test_files.h"
#include "train/checkpoint.h"
#include "train/data_loader.h"

namespace fs = std::filesystem;
using namespace dense;
using namespace dense::train;
using dense::testing::contains;
using dense::testing::error_of;
using dense::testing::temp_dir;
using dense::testing::write_bytes;

namespace {

const std::string kVocab = std::string(DENSE_TEST_DATA_DIR) + "/wordpiece_vocab_small.txt";
const std::string kWikiValid = std::string(DENSE_SHARED_DIR) + "/data/wikitext-2/valid.txt";

// Packed shards of WikiText-2 valid: N = 32, 700 rows per shard (several shards, the last one shorter).
std::string make_shards(const std::string& dir, data::PretrainFormat format = data::PretrainFormat::kPacked) {
  data::PretrainPrepConfig c;
  c.inputs = {kWikiValid};
  c.corpus.format = data::CorpusFormat::WikiText;
  c.vocab_path = kVocab;
  c.format = format;
  c.seq_len = 32;
  c.shard_rows = 700;
  c.max_rows = format == data::PretrainFormat::kPacked ? 2500 : 0;
  c.out_dir = dir;
  c.progress.enabled = false;
  data::prepare_pretraining(c);
  return dir;
}

LoaderOptions options(const std::string& dir, int64_t batch) {
  LoaderOptions o;
  o.files = list_shards(dir);
  o.batch_size = batch;
  o.seed = 11;
  o.masking.vocab_size = data::Vocab::load(kVocab).size();
  o.masking.mask_id = 4;
  o.masking.never_mask = {2, 3};
  return o;
}

// The unmasked row behind a masked one: labels hold the original id where a position was chosen.
std::vector<int64_t> original_row(const HostBatch& b, int64_t r) {
  std::vector<int64_t> row(size_t(b.seq_len));
  for (int64_t k = 0; k < b.seq_len; ++k) {
    const size_t at = size_t(r * b.seq_len + k);
    row[size_t(k)] = b.mlm_labels[at] >= 0 ? b.mlm_labels[at] : b.input_ids[at];
  }
  return row;
}

}  // namespace

TEST(TrainData, OneEpochVisitsEveryRowOnceAndMasksAboutFifteenPercent) {
  const std::string dir = make_shards(temp_dir() + "/shards");
  ShardLoader loader(options(dir, 64));
  EXPECT_EQ(loader.rows_per_epoch(), 2500);
  EXPECT_EQ(loader.format(), "packed");
  std::multiset<std::vector<int64_t>> seen;
  int64_t masked = 0, tokens = 0;
  HostBatch b;
  while (int64_t(seen.size()) < 2500) {
    ASSERT_TRUE(loader.next(b));
    for (int64_t r = 0; r < b.batch && int64_t(seen.size()) < 2500; ++r) seen.insert(original_row(b, r));
    masked += b.masked;
    tokens += b.batch * b.seq_len;
  }
  // Every row of the shards exactly once.
  std::multiset<std::vector<int64_t>> expected;
  for (const auto& f : list_shards(dir)) {
    data::PackedShardReader r(f);
    const auto ids = r.read_all();
    for (int64_t i = 0; i < r.rows(); ++i)
      expected.insert(std::vector<int64_t>(ids.begin() + i * 32, ids.begin() + (i + 1) * 32));
  }
  EXPECT_EQ(seen, expected);
  EXPECT_NEAR(double(masked) / double(tokens), 0.15, 0.01);
}

TEST(TrainData, ResumingFromACursorGivesExactlyTheSameBatches) {
  const std::string dir = make_shards(temp_dir() + "/shards");
  ShardLoader a(options(dir, 48));
  std::vector<HostBatch> straight(90);  // crosses shard boundaries and the epoch boundary (2500 / 48 = 52)
  for (auto& b : straight) ASSERT_TRUE(a.next(b));
  for (int cut : {1, 14, 51, 52, 60}) {
    ShardLoader b(options(dir, 48), straight[size_t(cut - 1)].next);
    for (size_t i = size_t(cut); i < straight.size(); ++i) {
      HostBatch x;
      ASSERT_TRUE(b.next(x));
      ASSERT_EQ(x.input_ids, straight[i].input_ids) << "cut " << cut << " batch " << i;
      ASSERT_EQ(x.mlm_labels, straight[i].mlm_labels) << "cut " << cut << " batch " << i;
    }
  }
  // Epoch 1 has another order and other masks than epoch 0.
  EXPECT_GT(straight[60].epoch, 0);
  EXPECT_NE(straight[0].input_ids, straight[53].input_ids);
}

// Two corpora prepared separately (WikiText-2's validation and test articles, each its own dense-prep run and
// shard prefix in one folder): with a shuffle buffer of 8 shards nearly every batch holds rows of both, in
// proportion to their sizes; one shard at a time, batches come from one corpus each. Resuming mid-group is exact.
TEST(TrainData, BatchesMixCorporaPreparedSeparately) {
  const std::string dir = temp_dir() + "/two_corpora";
  std::map<std::vector<int32_t>, int> corpus_of_row;  // a row's tokens -> 0 (valid) or 1 (test)
  for (int corpus = 0; corpus < 2; ++corpus) {
    data::PretrainPrepConfig c;
    c.inputs = {std::string(DENSE_SHARED_DIR) +
                (corpus == 0 ? "/data/wikitext-2/valid.txt" : "/data/wikitext-2/test.txt")};
    c.corpus.format = data::CorpusFormat::WikiText;
    c.vocab_path = kVocab;
    c.format = data::PretrainFormat::kPacked;
    c.seq_len = 32;
    c.shard_rows = 40;
    c.max_rows = 640;  // 16 shards each
    c.prefix = corpus == 0 ? "valid" : "test";
    c.out_dir = dir;
    c.progress.enabled = false;
    for (const std::string& shard : data::prepare_pretraining(c).shards) {
      data::PackedShardReader r(dir + "/" + fs::path(shard).filename().string(), {});
      const std::vector<int32_t> ids = r.read_all();
      for (int64_t row = 0; row < r.rows(); ++row)
        corpus_of_row[std::vector<int32_t>(ids.begin() + row * 32, ids.begin() + (row + 1) * 32)] = corpus;
    }
  }
  ASSERT_EQ(list_shards(dir).size(), 32u);
  ASSERT_GT(corpus_of_row.size(), 1200u);  // rows are told apart by their tokens

  struct Mixing {
    int batches_with_both = 0;
    int64_t rows_of_valid = 0, rows = 0;
  };
  auto first_50_batches = [&](int64_t mix_shards) {
    LoaderOptions o = options(dir, 8);
    o.mix_shards = mix_shards;
    ShardLoader loader(o);
    Mixing m;
    for (int i = 0; i < 50; ++i) {
      HostBatch b;
      EXPECT_TRUE(loader.next(b));
      int in_batch[2] = {0, 0};
      for (int64_t r = 0; r < b.batch; ++r) {
        const std::vector<int64_t> row = original_row(b, r);
        const auto it = corpus_of_row.find(std::vector<int32_t>(row.begin(), row.end()));
        EXPECT_NE(it, corpus_of_row.end()) << "batch " << i << " row " << r << " is in neither corpus";
        if (it != corpus_of_row.end()) ++in_batch[it->second];
      }
      m.batches_with_both += in_batch[0] > 0 && in_batch[1] > 0;
      m.rows_of_valid += in_batch[0];
      m.rows += b.batch;
    }
    return m;
  };
  const Mixing mixed = first_50_batches(8), alone = first_50_batches(1);
  EXPECT_GE(mixed.batches_with_both, 40) << "a batch of 8 rows drawn from 8 shards of two equal corpora";
  EXPECT_NEAR(double(mixed.rows_of_valid) / double(mixed.rows), 0.5, 0.15);
  EXPECT_LE(alone.batches_with_both, 12) << "one shard at a time mixes only where a shard ends";

  // Exact resume inside and across groups (a group is 8 x 40 = 320 rows = 40 batches).
  LoaderOptions o = options(dir, 8);
  o.mix_shards = 8;
  ShardLoader a(o);
  std::vector<HostBatch> straight(100);
  for (auto& b : straight) ASSERT_TRUE(a.next(b));
  EXPECT_EQ(straight[39].next.shard, 0);  // a batch that ends a group leaves the cursor at its end
  EXPECT_EQ(straight[39].next.offset, 320);
  EXPECT_EQ(straight[40].next.shard, 8);
  EXPECT_EQ(straight[40].next.offset, 8);
  EXPECT_EQ(straight[40].next.mix_shards, 8);
  for (int cut : {7, 40, 83}) {
    ShardLoader b(o, straight[size_t(cut - 1)].next);
    for (size_t i = size_t(cut); i < straight.size(); ++i) {
      HostBatch x;
      ASSERT_TRUE(b.next(x));
      ASSERT_EQ(x.input_ids, straight[i].input_ids) << "cut " << cut << " batch " << i;
    }
  }
  // The cursor carries its group size through JSON; a cursor of another size is refused, naming the key.
  const Cursor saved = Cursor::from_json(straight[10].next.to_json());
  EXPECT_EQ(saved, straight[10].next);
  LoaderOptions other = o;
  other.mix_shards = 4;
  EXPECT_TRUE(contains(error_of([&] { ShardLoader l(other, saved); }), "data.mix_shards 8, but the config has 4"));
  nlohmann::json old_cursor = saved.to_json();
  old_cursor.erase("mix_shards");  // saved before groups existed: one shard at a time
  EXPECT_EQ(Cursor::from_json(old_cursor).mix_shards, 1);
}

TEST(TrainData, ValidationIsOnePassInFileOrder) {
  const std::string dir = make_shards(temp_dir() + "/shards");
  LoaderOptions o = options(dir, 100);
  o.loop = false;
  o.shuffle = false;
  ShardLoader loader(o);
  HostBatch b;
  int64_t rows = 0, batches = 0;
  std::vector<int64_t> first;
  while (loader.next(b)) {
    if (batches == 0) first = original_row(b, 0);
    rows += b.batch;
    ++batches;
  }
  EXPECT_EQ(rows, 2500);
  EXPECT_EQ(batches, 25);
  data::PackedShardReader r(list_shards(dir)[0]);
  const auto ids = r.read(0, 1);
  EXPECT_EQ(first, std::vector<int64_t>(ids.begin(), ids.end()));
  // Two validation passes draw the same masks.
  ShardLoader again(o);
  HostBatch c;
  ASSERT_TRUE(again.next(c));
  ShardLoader third(o);
  HostBatch d;
  ASSERT_TRUE(third.next(d));
  EXPECT_EQ(c.input_ids, d.input_ids);
}

TEST(TrainData, RanksStrideOneGlobalStream) {
  // W ranks with batch b see, batch for batch, the rows one process with batch W x b sees, split in W
  // disjoint slices; the cursors agree, so a run can resume with another world size.
  const std::string dir = make_shards(temp_dir() + "/shards");
  for (int64_t world : {2, 3}) {
    LoaderOptions one = options(dir, 10 * world);
    ShardLoader single(one);
    std::vector<std::unique_ptr<ShardLoader>> ranks;
    for (int64_t r = 0; r < world; ++r) {
      LoaderOptions o = options(dir, 10);
      o.world = world;
      o.rank = r;
      ranks.push_back(std::make_unique<ShardLoader>(o));
      EXPECT_EQ(ranks.back()->rows_per_epoch(), 2500);
    }
    for (int step = 0; step < 300; ++step) {  // 300 x 10 x world rows: across shards and epochs
      HostBatch whole;
      ASSERT_TRUE(single.next(whole));
      std::vector<int64_t> ids, labels;
      for (int64_t r = 0; r < world; ++r) {
        HostBatch part;
        ASSERT_TRUE(ranks[size_t(r)]->next(part));
        ASSERT_EQ(part.batch, 10);
        EXPECT_EQ(part.next, whole.next) << "world " << world << " step " << step << " rank " << r;
        ids.insert(ids.end(), part.input_ids.begin(), part.input_ids.end());
        labels.insert(labels.end(), part.mlm_labels.begin(), part.mlm_labels.end());
      }
      ASSERT_EQ(ids, whole.input_ids) << "world " << world << " step " << step;
      ASSERT_EQ(labels, whole.mlm_labels) << "world " << world << " step " << step;
    }
  }
  // A one-pass read (validation) covers every row once across the ranks, the last block split short.
  int64_t rows = 0;
  for (int64_t r = 0; r < 3; ++r) {
    LoaderOptions o = options(dir, 7);
    o.world = 3;
    o.rank = r;
    o.loop = false;
    ShardLoader l(o);
    HostBatch b;
    while (l.next(b)) {
      EXPECT_GT(b.batch, 0);
      rows += b.batch;
    }
  }
  EXPECT_EQ(rows, 2500);
}

TEST(TrainData, BertShardsBringTheirStaticMasksAndSegments) {
  const std::string dir = make_shards(temp_dir() + "/bert", data::PretrainFormat::kBert);
  ShardLoader loader(options(dir, 16));
  EXPECT_EQ(loader.format(), "bert");
  HostBatch b;
  ASSERT_TRUE(loader.next(b));
  ASSERT_EQ(b.attention_mask.size(), size_t(16 * 32));
  ASSERT_EQ(b.token_type_ids.size(), size_t(16 * 32));
  EXPECT_GT(b.masked, 0);
  for (int64_t r = 0; r < b.batch; ++r) EXPECT_EQ(b.input_ids[size_t(r * 32)], 2);  // [CLS]
  // Padding is never a prediction target.
  for (size_t i = 0; i < b.mlm_labels.size(); ++i)
    if (b.attention_mask[i] == 0) {
      EXPECT_EQ(b.mlm_labels[i], -1);
    }
}

TEST(TrainData, ClearErrors) {
  const std::string dir = make_shards(temp_dir() + "/shards");
  LoaderOptions o = options(dir, 8);
  o.format = "bert";
  EXPECT_TRUE(contains(error_of([&] { ShardLoader l(o); }), "data.format is 'bert'"));
  o = options(dir, 8);
  o.vocab_hash = std::string(64, 'a');
  EXPECT_TRUE(contains(error_of([&] { ShardLoader l(o); }), "vocab_hash"));
  o = options(dir, 8);
  o.seq_len = 64;
  EXPECT_TRUE(contains(error_of([&] { ShardLoader l(o); }), "data.seq_len is 64"));
  EXPECT_TRUE(contains(error_of([&] { list_shards(dir + "/nothing"); }), "no such shard"));
  fs::create_directories(dir + "/empty");
  EXPECT_TRUE(contains(error_of([&] { list_shards(dir + "/empty"); }), "holds no shard"));
  // A shard damaged after the run started is an error at the batch that needs it, naming the file.
  o = options(dir, 8);
  ShardLoader loader(o);
  for (const auto& f : list_shards(dir)) fs::resize_file(f, 4096);
  HostBatch b;
  const std::string e = error_of([&] {
    for (int i = 0; i < 1000; ++i) loader.next(b);
  });
  EXPECT_TRUE(contains(e, ".hdf5")) << e;
}

// Issue #20: every shard's header and length are checked before the first batch; a shard whose checksum fails
// later is a BadShardError naming it, or (skip_bad_shards) left out with a warning.
TEST(TrainData, ShardsAreCheckedUpFrontAndBadOnesFailOrAreSkipped) {
  const std::string dir = make_shards(temp_dir() + "/shards");
  const std::vector<std::string> files = list_shards(dir);
  ASSERT_GE(files.size(), 3u);
  const std::string victim = files[1];
  const std::string pristine = dense::testing::read_bytes(victim);
  fs::resize_file(victim, pristine.size() - 10);
  LoaderOptions o = options(dir, 1);
  o.shuffle = false;
  std::string e = error_of([&] { check_shards(o, "data.train"); });
  EXPECT_TRUE(contains(e, victim + ": truncated")) << e;
  EXPECT_TRUE(contains(e, "data.train")) << e;
  EXPECT_TRUE(contains(error_of([&] { ShardLoader l(o); }), "truncated"));
  // A flipped byte inside the data passes the start-up check (no full read) and fails the read's CRC.
  std::string flipped = pristine;
  flipped[flipped.size() / 2] ^= 0x5A;
  write_bytes(victim, flipped);
  const ShardSetInfo set = check_shards(o, "data.train");
  EXPECT_EQ(set.total_rows, 2500);
  HostBatch b;
  int64_t rows_before = 0;
  try {
    ShardLoader loader(o);
    while (loader.next(b)) ++rows_before;
    ADD_FAILURE() << "no error";
  } catch (const BadShardError& bad) {
    EXPECT_EQ(bad.shard(), victim);
    EXPECT_TRUE(contains(bad.what(), "CRC-32")) << bad.what();
    EXPECT_TRUE(contains(bad.what(), "data.on_bad_shard: skip")) << bad.what();
  }
  EXPECT_EQ(rows_before, set.rows[0]) << "every row before the damaged shard was delivered";
  // Skipped: epoch 0 is every other shard's rows, and the warning names the shard.
  std::vector<std::string> warnings;
  o.skip_bad_shards = true;
  o.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  {
    ShardLoader loader(o);
    int64_t rows = 0;
    while (loader.next(b) && b.epoch == 0) ++rows;
    EXPECT_EQ(rows, set.total_rows - set.rows[1]);
  }
  ASSERT_FALSE(warnings.empty());
  EXPECT_TRUE(contains(warnings[0], "skipping shard " + victim)) << warnings[0];
  // Every shard bad: skipping has nothing left, an error rather than a loop over empty epochs.
  for (const auto& f : files) {
    std::string bytes = dense::testing::read_bytes(f);
    bytes[bytes.size() / 3] ^= 0x5A;  // not size / 2, which would undo the victim's flip
    write_bytes(f, bytes);
  }
  ShardLoader loader(o);
  e = error_of([&] {
    while (loader.next(b)) {
    }
  });
  EXPECT_TRUE(contains(e, "every shard failed to read")) << e;
}

TEST(TrainData, TokenIdsBeyondTheModelVocabularyNameShardRowAndKey) {
  const std::string dir = make_shards(temp_dir() + "/shards");
  LoaderOptions o = options(dir, 8);
  o.vocab_size = 100;  // the test vocabulary has 560 tokens
  ShardLoader loader(o);
  HostBatch b;
  const std::string e = error_of([&] { loader.next(b); });
  EXPECT_TRUE(contains(e, ".hdf5: row ")) << e;
  EXPECT_TRUE(contains(e, "is outside model.vocab_size 100")) << e;
  o.vocab_size = 560;
  ShardLoader fits(o);
  EXPECT_TRUE(fits.next(b));
}

TEST(TrainData, AMissingDataPathNamesItsKey) {
  EXPECT_TRUE(contains(error_of([&] { list_shards("", "data.train"); }), "data.train: no shard path given"));
  const std::string e = error_of([&] { list_shards(temp_dir() + "/nothing", "data.validation"); });
  EXPECT_TRUE(contains(e, "(data.validation): no such shard")) << e;
}

namespace {

CheckpointData sample_checkpoint(int64_t step, int64_t numel = 1000) {
  CheckpointData d;
  std::vector<float> w(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) w[size_t(i)] = float(std::sin(double(i + step)));
  d.model.emplace_back("encoder.layer.0.attention.query.weight", Tensor::from_vector(w, {numel}, DType::F32));
  d.optimizer.emplace_back("exp_avg", Tensor::from_vector(w, {numel}, DType::F32));
  d.state = {{"step", step}, {"cursor", Cursor{1, 2, 3}.to_json()}};
  return d;
}

}  // namespace

TEST(Checkpoint, NeverWritesNonFiniteValues) {
  const std::string dir = temp_dir();
  save_checkpoint(dir, 3, sample_checkpoint(3));
  for (bool in_optimizer : {false, true}) {
    CheckpointData d = sample_checkpoint(5);
    auto& part = in_optimizer ? d.optimizer : d.model;
    part.back().second.data<float>()[2] = in_optimizer ? INFINITY : NAN;
    const std::string e = error_of([&] { save_checkpoint(dir, 5, d); });
    EXPECT_TRUE(contains(e, "not writing a checkpoint")) << e;
    EXPECT_TRUE(contains(e, "'" + part.back().first + "' holds 1 non-finite")) << e;
  }
  // Nothing of step 5 reached the disk, not even a temporary; step 3 is untouched.
  EXPECT_EQ(list_checkpoints(dir), (std::vector<int64_t>{3}));
  for (const auto& entry : fs::directory_iterator(dir)) EXPECT_EQ(entry.path().filename(), "step-00000003");
  load_checkpoint(dir + "/step-00000003");
}

TEST(Checkpoint, RoundTripAndCorruptionIsRefused) {
  const std::string dir = temp_dir();
  const std::string folder = save_checkpoint(dir, 7, sample_checkpoint(7));
  EXPECT_EQ(fs::path(folder).filename(), "step-00000007");
  const CheckpointData d = load_checkpoint(folder);
  EXPECT_EQ(d.state["step"], 7);
  EXPECT_EQ(Cursor::from_json(d.state["cursor"]), (Cursor{1, 2, 3}));
  const Tensor& w = d.model.at(0).second;
  EXPECT_EQ(w.data<float>()[5], float(std::sin(12.0)));
  // One flipped byte in the weights, then a truncated optimizer file.
  {
    std::string bytes = dense::testing::read_bytes(folder + "/model.safetensors");
    bytes[bytes.size() - 3] ^= 0x40;
    write_bytes(folder + "/model.safetensors", bytes);
  }
  EXPECT_TRUE(contains(error_of([&] { load_checkpoint(folder); }), "model.safetensors: CRC-32"));
  save_checkpoint(dir, 7, sample_checkpoint(7));  // replaced atomically
  load_checkpoint(folder);
  fs::resize_file(folder + "/optimizer.safetensors", 100);
  EXPECT_TRUE(contains(error_of([&] { load_checkpoint(folder); }), "truncated"));
}

TEST(Checkpoint, LatestSkipsBrokenOnesAndPruningKeepsWhatWasAsked) {
  const std::string dir = temp_dir();
  for (int64_t s : {100, 200, 300, 400, 500}) save_checkpoint(dir, s, sample_checkpoint(s, 10));
  fs::remove(dir + "/step-00000500/checksums.json");
  const CheckpointScan scan = find_latest_checkpoint(dir);
  EXPECT_EQ(scan.latest_step, 400);
  ASSERT_EQ(scan.warnings.size(), 1u);
  EXPECT_TRUE(contains(scan.warnings[0], "step-00000500"));
  const auto removed = prune_checkpoints(dir, 2, 200);
  EXPECT_EQ(list_checkpoints(dir), (std::vector<int64_t>{200, 400, 500}));
  EXPECT_EQ(removed.size(), 2u);
  // Temporaries of dead processes go; a checkpoint moved aside by a dead save comes back.
  fs::create_directories(dir + "/step-00000600.tmp-999999999");
  fs::rename(dir + "/step-00000400", dir + "/step-00000400.old-999999999");
  EXPECT_EQ(remove_stale_checkpoint_temporaries(dir), 1);
  EXPECT_EQ(list_checkpoints(dir), (std::vector<int64_t>{200, 400, 500}));
}

// A run resumed from an older checkpoint beside newer ones must not prune the one it has just saved.
TEST(Checkpoint, PruningNeverRemovesTheCheckpointJustSaved) {
  const std::string dir = temp_dir();
  for (int64_t s : {4, 6, 8, 2}) save_checkpoint(dir, s, sample_checkpoint(s, 10));
  const auto removed = prune_checkpoints(dir, 1, 0, /*keep_step=*/2);
  EXPECT_EQ(list_checkpoints(dir), (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(removed.size(), 2u);
}

TEST(Checkpoint, SigkillDuringAWriteNeverLeavesALoadableCorruptCheckpoint) {
  const std::string dir = temp_dir();
  save_checkpoint(dir, 1, sample_checkpoint(1, 1 << 20));
  for (int round = 0; round < 6; ++round) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      for (int64_t s = 2;; ++s) save_checkpoint(dir, s, sample_checkpoint(s, 1 << 20));
    }
    ::usleep(useconds_t(20000 + 37000 * round));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    remove_stale_checkpoint_temporaries(dir);
    const CheckpointScan scan = find_latest_checkpoint(dir);
    ASSERT_FALSE(scan.latest.empty());
    EXPECT_TRUE(scan.warnings.empty()) << scan.warnings[0];
    const CheckpointData d = load_checkpoint(scan.latest);
    EXPECT_EQ(d.state["step"], scan.latest_step);
    for (const auto& e : fs::directory_iterator(dir)) EXPECT_FALSE(contains(e.path().string(), ".tmp-")) << e.path();
  }
}
