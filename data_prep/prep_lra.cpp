#include "data_prep/prep_lra.h"

#include <omp.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "data/prep_common.h"
#include "data/shard_classification.h"
#include "data/vocab.h"
#include "data_prep/char_tokenizer.h"
#include "data_prep/lra_aan.h"
#include "data_prep/lra_idx.h"
#include "data_prep/lra_imdb.h"
#include "data_prep/lra_listops.h"
#include "data_prep/lra_pathfinder.h"

namespace dense::data {

namespace {

using namespace lra;

// One split ready to write: rows of ids (and an optional second document).
struct SplitRows {
  std::string name;
  TokenSet first;
  TokenSet second;  // retrieval only
};

TokenSet from_images(const ImageSet& images) {
  TokenSet t;
  t.seq_len = images.seq_len();
  t.ids.assign(images.pixels.begin(), images.pixels.end());
  t.labels = images.labels;
  return t;
}

void add_row(const TokenSet& t, int64_t i, std::vector<int32_t>& ids, std::vector<int8_t>& mask) {
  const auto row = t.row(i);
  ids.assign(row.begin(), row.end());
  mask.resize(row.size());
  for (size_t k = 0; k < row.size(); ++k) mask[k] = t.mask.empty() ? 1 : int8_t(t.mask[size_t(i) * row.size() + k]);
}

bool has_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

}  // namespace

LraPrepResult prepare_lra(const LraPrepConfig& cfg) {
  LraPrepResult result;
  const std::string task = cfg.task;
  static const std::vector<std::string> kTasks = {"listops", "pathfinder", "image", "text", "retrieval"};
  DENSE_CHECK(std::find(kTasks.begin(), kTasks.end(), task) != kTasks.end(),
              "lra: unknown task '{}' (expected listops, pathfinder, image, text or retrieval)", task);
  DENSE_CHECK(cfg.tokenizer == "chars" || cfg.tokenizer == "bytes",
              "lra: --tokenizer must be chars or bytes (got '{}')", cfg.tokenizer);
  DENSE_CHECK(cfg.val_fraction > 0 && cfg.val_fraction < 1, "lra: --val-fraction must be in (0, 1)");
  const bool generate = cfg.source.empty();
  DENSE_CHECK(!generate || task == "listops" || task == "pathfinder",
              "lra {}: --source is required (the folder of the downloaded data)", task);
  std::error_code ec;
  if (!generate)
    DENSE_CHECK(std::filesystem::is_directory(cfg.source, ec), "lra {}: --source {}: no such folder", task, cfg.source);
  ensure_writable_folder(cfg.out_dir);
  remove_stale_temporaries(cfg.out_dir);
  const int threads = resolve_threads(cfg.threads);
  omp_set_num_threads(threads);

  // Everything the shards depend on, known before any data is read (so a complete re-run reads nothing).
  nlohmann::json pc;
  pc["tool"] = "dense-prep lra";
  pc["task"] = task;
  if (!generate) pc["source"] = std::filesystem::absolute(cfg.source).lexically_normal().filename().string();
  PathfinderConfig pf;
  if (task == "listops") {
    DENSE_CHECK(cfg.min_length >= 0 && cfg.max_length > cfg.min_length + 1,
                "lra listops: --min-length {} and --max-length {} leave no length (both bounds are exclusive)",
                cfg.min_length, cfg.max_length);
    DENSE_CHECK(!generate || cfg.seq_len == 0 || cfg.seq_len >= cfg.max_length,
                "lra listops: --seq-len {} is shorter than a tree of up to {} tokens plus CLS (--max-length {})",
                cfg.seq_len, cfg.max_length - 1, cfg.max_length);
    pc["seq_len"] = cfg.seq_len > 0 ? cfg.seq_len : int64_t(cfg.max_length);
    if (generate) {
      pc["generate"] = {{"seed", cfg.seed}, {"train", cfg.num_train}, {"val", cfg.num_val}, {"test", cfg.num_test}};
      // Recorded only when not LRA's, so shards made before these options existed stay valid.
      if (cfg.min_length != 500 || cfg.max_length != 2000) pc["generate"]["length"] = {cfg.min_length, cfg.max_length};
    }
  } else if (task == "pathfinder") {
    DENSE_CHECK(cfg.contour_length == 6 || cfg.contour_length == 9 || cfg.contour_length == 14,
                "lra pathfinder: --contour-length must be 6 (easy), 9 (intermediate) or 14 (hard), got {}",
                cfg.contour_length);
    switch (cfg.resolution) {
      case 32: pf = PathfinderConfig::pathfinder32(cfg.contour_length); break;
      case 64: pf = PathfinderConfig::pathfinder64(cfg.contour_length); break;
      case 128: pf = PathfinderConfig::pathfinder128(cfg.contour_length); break;
      case 256: pf = PathfinderConfig::pathfinder256(cfg.contour_length); break;
      default: DENSE_FAIL("lra pathfinder: --resolution must be 32, 64, 128 or 256 (got {})", cfg.resolution);
    }
    DENSE_CHECK(cfg.num_images >= 10, "lra pathfinder: --num-images must be at least 10 (got {})", cfg.num_images);
    if (generate)
      pc["generate"] = {{"seed", cfg.seed},
                        {"resolution", cfg.resolution},
                        {"contour_length", cfg.contour_length},
                        {"images", cfg.num_images}};
    pc["split"] = {0.8, 0.1, 0.1};
  } else if (task == "image") {
    pc["val_fraction"] = cfg.val_fraction;
  } else {
    pc["tokenizer"] = cfg.tokenizer;
    pc["seq_len"] = cfg.seq_len > 0 ? cfg.seq_len : 4000;
    if (cfg.tokenizer == "chars")
      pc["min_frequency"] = cfg.min_frequency > 0 ? cfg.min_frequency : (task == "text" ? 15 : 1);
  }
  const std::vector<std::string> split_names =
      task == "text" ? std::vector<std::string>{"train", "test"} : std::vector<std::string>{"train", "val", "test"};
  auto shard_path = [&](const std::string& split) {
    return (std::filesystem::path(cfg.out_dir) / (split + ".hdf5")).string();
  };
  // The prep_config of the shards is pc plus what the data determines (the character vocabulary); keep the
  // pre-data part in the manifest to recognise a finished run.
  if (!cfg.overwrite) {
    const nlohmann::json m = read_manifest(cfg.out_dir);
    if (m.is_object() && m.value("request", nlohmann::json()) == pc && m.contains("prep_config")) {
      const std::string full = m["prep_config"].dump();
      bool all = true;
      std::vector<LraPrepSplit> kept;
      for (const auto& s : split_names) {
        const ShardCheck c = check_existing_shard(shard_path(s), "classification", full, -1);
        all = all && c.state == ShardState::kComplete;
        kept.push_back({s, shard_path(s), c.rows, true});
      }
      if (all) {
        result.splits = kept;
        result.seq_len = m.value("seq_len", int64_t(0));
        result.vocab_size = m.value("vocab_size", int64_t(0));
        result.num_labels = m.value("num_labels", int64_t(0));
        result.vocab_hash = m.value("vocab_hash", std::string());
        return result;
      }
    }
  }

  ProgressOptions popt = cfg.progress;
  popt.bytes = false;
  Progress progress("lra " + task, int64_t(split_names.size()), popt);
  std::vector<SplitRows> splits;
  bool pair = false;
  std::string vocab_hash;
  int64_t vocab_size = 0, num_labels = 0;
  nlohmann::json prep = pc;

  if (task == "listops") {
    ListOpsDataset ds;
    if (generate) {
      ListOpsConfig lc;
      lc.seed = cfg.seed;
      lc.num_train = cfg.num_train;
      lc.num_val = cfg.num_val;
      lc.num_test = cfg.num_test;
      lc.min_length = cfg.min_length;
      lc.max_length = cfg.max_length;
      ds = generate_listops(lc);
      // The release TSVs too, so other toolchains can read the same data.
      write_listops_tsv(std::filesystem::path(cfg.out_dir) / "basic_train.tsv", ds.train);
      write_listops_tsv(std::filesystem::path(cfg.out_dir) / "basic_val.tsv", ds.val);
      write_listops_tsv(std::filesystem::path(cfg.out_dir) / "basic_test.tsv", ds.test);
    } else {
      const std::filesystem::path d = cfg.source;
      ds.train = read_listops_tsv(d / "basic_train.tsv");
      ds.val = read_listops_tsv(d / "basic_val.tsv");
      ds.test = read_listops_tsv(d / "basic_test.tsv");
    }
    ListOpsEncodeOptions eo;
    eo.seq_len = pc["seq_len"].get<int64_t>();
    splits.push_back({"train", encode_listops(ds.train, eo), {}});
    splits.push_back({"val", encode_listops(ds.val, eo), {}});
    splits.push_back({"test", encode_listops(ds.test, eo), {}});
    vocab_hash = "lra-listops-17";
    vocab_size = kListOpsVocabSize;
    num_labels = 10;
  } else if (task == "pathfinder") {
    std::filesystem::path dir = cfg.source;
    if (generate) {
      dir = std::filesystem::path(cfg.out_dir) / "images" / pf.difficulty_folder();
      write_pathfinder_dataset(dir, pf, cfg.seed, cfg.num_images);
    }
    const ImageSplits is = load_pathfinder_dataset(dir, {0.8, 0.1, 0.1});
    splits.push_back({"train", from_images(is.train), {}});
    splits.push_back({"val", from_images(is.val), {}});
    splits.push_back({"test", from_images(is.test), {}});
    vocab_hash = "lra-pixels-256";
    vocab_size = 256;
    num_labels = 2;
  } else if (task == "image") {
    const std::filesystem::path d = cfg.source;
    const bool cifar = has_file(d / "data_batch_1.bin") || has_file(d / "cifar-10-batches-bin" / "data_batch_1.bin");
    const ImageSplits is = cifar ? load_cifar10_folder(d, cfg.val_fraction) : load_idx_dataset(d, cfg.val_fraction);
    prep["source_format"] = cifar ? "cifar10" : "idx";
    splits.push_back({"train", from_images(is.train), {}});
    splits.push_back({"val", from_images(is.val), {}});
    splits.push_back({"test", from_images(is.test), {}});
    vocab_hash = "lra-pixels-256";
    vocab_size = 256;
    num_labels = 10;
  } else {
    const int64_t seq_len = pc["seq_len"].get<int64_t>();
    const bool retrieval = task == "retrieval";
    pair = retrieval;
    std::vector<std::vector<TextExample>> texts_a, texts_b;
    if (retrieval) {
      const AanDataset aan = read_aan_folder(cfg.source);
      for (const auto* part : {&aan.train, &aan.val, &aan.test}) {
        std::vector<TextExample> a, b;
        for (const auto& p : *part) {
          a.push_back({p.text1, p.label, ""});
          b.push_back({p.text2, p.label, ""});
        }
        texts_a.push_back(std::move(a));
        texts_b.push_back(std::move(b));
      }
    } else {
      texts_a.push_back(read_imdb_split(cfg.source, "train").examples);
      texts_a.push_back(read_imdb_split(cfg.source, "test").examples);
    }
    auto encode = [&](const std::vector<TextExample>& ex,
                      const std::function<std::vector<int32_t>(const std::string&)>& f) {
      TokenSet t;
      t.seq_len = seq_len;
      t.ids.resize(ex.size() * size_t(seq_len));
      t.mask.resize(ex.size() * size_t(seq_len));
#pragma omp parallel for schedule(dynamic, 64)
      for (size_t i = 0; i < ex.size(); ++i) {
        const std::vector<int32_t> ids = f(ex[i].text);
        for (size_t k = 0; k < size_t(seq_len); ++k) {
          t.ids[i * size_t(seq_len) + k] = ids[k];
          t.mask[i * size_t(seq_len) + k] = ids[k] != 0;
        }
      }
      for (const auto& e : ex) t.labels.push_back(e.label);
      return t;
    };
    std::function<std::vector<int32_t>(const std::string&)> f;
    CharTokenizer ct;
    if (cfg.tokenizer == "chars") {
      CharCounter counter;
      for (const auto& e : texts_a[0]) counter.add_text(e.text);
      if (retrieval)
        for (const auto& e : texts_b[0]) counter.add_text(e.text);
      CharVocabOptions vo;
      vo.min_frequency = pc["min_frequency"].get<int64_t>();
      vo.add_cls = retrieval;
      ct = CharTokenizer::build(counter, vo);
      prep["char_tokenizer"] = ct.to_json();
      vocab_hash = "lra-chars-" + sha256_hex(ct.to_json().dump());
      vocab_size = ct.size();
      f = [&ct, seq_len, retrieval](const std::string& s) { return ct.encode_fixed(s, size_t(seq_len), retrieval); };
    } else {
      // Bytes shifted by the reserved ids, so 0 stays padding: [PAD]=0, [CLS]=1 (retrieval), byte b = 2 + b.
      ByteTokenOptions bo;
      bo.seq_len = seq_len;
      bo.add_cls = retrieval;
      bo.pad_id = 0;
      bo.cls_id = 1;
      bo.byte_offset = 2;
      prep["bytes"] = {{"pad", 0}, {"cls", retrieval ? 1 : -1}, {"byte_offset", 2}};
      vocab_hash = "lra-bytes-256";
      vocab_size = 258;
      f = [bo](const std::string& s) {
        std::vector<int32_t> ids;
        std::vector<uint8_t> mask;
        encode_bytes(s, bo, ids, mask);
        return ids;
      };
    }
    for (size_t k = 0; k < texts_a.size(); ++k) {
      SplitRows s;
      s.name = split_names[k];
      s.first = encode(texts_a[k], f);
      if (retrieval) s.second = encode(texts_b[k], f);
      splits.push_back(std::move(s));
    }
    num_labels = 2;
  }

  prep["vocab_hash"] = vocab_hash;
  prep["vocab_size"] = vocab_size;
  const std::string prep_config = prep.dump();
  ShardMeta meta;
  meta.vocab_hash = vocab_hash;
  meta.prep_config = prep_config;
  ShardWriteOptions wopt;
  wopt.gzip_level = cfg.gzip_level;
  nlohmann::json manifest;
  manifest["task"] = task;
  manifest["request"] = pc;
  manifest["prep_config"] = prep;
  manifest["vocab_hash"] = vocab_hash;
  manifest["vocab_size"] = vocab_size;
  manifest["num_labels"] = num_labels;
  manifest["shards"] = nlohmann::json::array();
  if (task == "text") manifest["validation"] = "test";
  for (const SplitRows& s : splits) {
    LraPrepSplit out;
    out.split = s.name;
    out.path = shard_path(s.name);
    out.rows = s.first.size();
    ClassificationLayout cl;
    cl.seq_len = s.first.seq_len;
    cl.second_document = pair;
    cl.num_labels = num_labels;
    out.kept = keep_existing_shard(out.path, "classification", prep_config, out.rows, cfg.overwrite);
    manifest["shards"].push_back({{"file", s.name + ".hdf5"}, {"split", s.name}, {"rows", out.rows}});
    result.splits.push_back(out);
    result.seq_len = s.first.seq_len;
    progress.add(1);
    if (out.kept) continue;
    ClassificationShardWriter w(out.path, cl, meta, wopt);
    ClassificationExample ex;
    for (int64_t i = 0; i < s.first.size(); ++i) {
      add_row(s.first, i, ex.input_ids, ex.attention_mask);
      if (pair) add_row(s.second, i, ex.input_ids2, ex.attention_mask2);
      ex.label = s.first.labels[size_t(i)];
      w.append(ex);
    }
    w.close();
  }
  result.vocab_hash = vocab_hash;
  result.vocab_size = vocab_size;
  result.num_labels = num_labels;
  manifest["seq_len"] = result.seq_len;
  write_manifest(cfg.out_dir, manifest);
  progress.finish();
  return result;
}

}  // namespace dense::data
