#include "data/prep_glue.h"

#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "data/glue.h"
#include "data/prep_common.h"
#include "data/shard_classification.h"
#include "data/wordpiece.h"

namespace dense::data {

namespace {

std::string split_prep_config(const GlueTaskInfo& info, const GlueFileLayout& layout, const std::string& file,
                              const std::string& vocab_hash, bool lowercase, int64_t max_length, bool skip_malformed) {
  struct stat st {};
  const int64_t bytes = ::stat(file.c_str(), &st) == 0 ? int64_t(st.st_size) : -1;
  nlohmann::json j;
  j["tool"] = "dense-prep glue";
  j["task"] = info.name;
  j["split"] = layout.name;
  j["hf_split"] = layout.hf_name;
  j["source"] = {{"file", layout.file}, {"bytes", bytes}};
  j["vocab_hash"] = vocab_hash;
  j["lowercase"] = lowercase;
  j["max_length"] = max_length;
  j["truncation"] = "longest_first";
  j["padding"] = "max_length";
  j["labels"] = info.regression ? nlohmann::json("score") : nlohmann::json(info.label_names);
  j["skip_malformed_rows"] = skip_malformed;
  return j.dump();
}

}  // namespace

GluePrepResult prepare_glue(const GluePrepConfig& cfg) {
  GluePrepResult result;
  std::error_code ec;
  DENSE_CHECK(std::filesystem::is_directory(cfg.glue_dir, ec),
              "glue: {}: no such folder (expected the GLUE "
              "download with one folder per task: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI)",
              cfg.glue_dir);
  std::vector<GlueTask> tasks;
  if (cfg.tasks.empty() || (cfg.tasks.size() == 1 && (cfg.tasks[0] == "all" || cfg.tasks[0] == "ALL"))) {
    for (const auto& t : glue_tasks()) {
      if (std::filesystem::is_directory(std::filesystem::path(cfg.glue_dir) / t.folder, ec))
        tasks.push_back(t.task);
      else
        result.tasks_without_folder.push_back(t.name);
    }
    DENSE_CHECK(!tasks.empty(),
                "glue: {} holds none of the GLUE task folders (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, "
                "QNLI, RTE, WNLI)",
                cfg.glue_dir);
  } else {
    for (const auto& name : cfg.tasks) {
      const GlueTask t = glue_task_from_name(name);
      const auto dir = std::filesystem::path(cfg.glue_dir) / glue_task_info(t).folder;
      DENSE_CHECK(std::filesystem::is_directory(dir, ec), "glue: task {}: no folder {}", glue_task_info(t).name,
                  dir.string());
      if (std::find(tasks.begin(), tasks.end(), t) == tasks.end()) tasks.push_back(t);
    }
  }
  DENSE_CHECK(cfg.max_length == 0 || cfg.max_length >= 3, "glue: --max-length must be at least 3 (got {})",
              cfg.max_length);

  const auto vocab = std::make_shared<const Vocab>(Vocab::load(cfg.vocab_path));
  const WordPieceTokenizer tok(vocab, cfg.lowercase ? WordPieceOptions::uncased() : WordPieceOptions::cased());
  DENSE_CHECK(vocab->cls_id() >= 0 && vocab->sep_id() >= 0 && vocab->pad_id() >= 0,
              "{}: the vocabulary needs [CLS], [SEP] and [PAD] for GLUE inputs", cfg.vocab_path);
  const int threads = resolve_threads(cfg.threads);
  ShardWriteOptions wopt;
  wopt.gzip_level = cfg.gzip_level;
  GlueLoadOptions load_opt;
  load_opt.skip_malformed_rows = cfg.skip_malformed_rows;

  int64_t total_files = 0;
  for (GlueTask t : tasks)
    for (const auto& l : glue_task_info(t).files)
      total_files +=
          std::filesystem::is_regular_file(std::filesystem::path(cfg.glue_dir) / glue_task_info(t).folder / l.file, ec);
  ProgressOptions popt = cfg.progress;
  popt.bytes = false;
  Progress progress("glue", total_files, popt);

  for (GlueTask t : tasks) {
    const GlueTaskInfo& info = glue_task_info(t);
    const auto task_dir = std::filesystem::path(cfg.glue_dir) / info.folder;
    const auto out_dir = std::filesystem::path(cfg.out_dir) / info.folder;
    ensure_writable_folder(out_dir.string());
    remove_stale_temporaries(out_dir);
    const int64_t max_length = cfg.max_length > 0 ? cfg.max_length : info.max_length;
    nlohmann::json manifest;
    manifest["task"] = info.name;
    manifest["num_labels"] = info.num_labels();
    manifest["regression"] = info.regression;
    manifest["label_names"] = info.label_names;
    manifest["max_length"] = max_length;
    manifest["vocab_hash"] = vocab->sha256();
    manifest["shards"] = nlohmann::json::array();
    size_t found = 0;
    for (const GlueFileLayout& layout : info.files) {
      const auto file = task_dir / layout.file;
      if (!std::filesystem::is_regular_file(file, ec)) continue;
      ++found;
      GluePrepSplit split;
      split.task = info.name;
      split.split = layout.name;
      split.labeled = layout.labeled;
      split.path = (out_dir / (layout.name + ".hdf5")).string();
      const std::string prep_config = split_prep_config(info, layout, file.string(), vocab->sha256(), cfg.lowercase,
                                                        max_length, cfg.skip_malformed_rows);
      if (keep_existing_shard(split.path, "classification", prep_config, -1, cfg.overwrite, &split.rows)) {
        split.kept = true;
      } else {
        const GlueSplitData data = with_context(fmt::format("while preparing GLUE {} {}", info.name, layout.name),
                                                [&] { return load_glue_split(task_dir, t, layout.name, load_opt); });
        split.skipped_rows = int64_t(data.skipped_rows);
        const size_t n = data.examples.size();
        std::vector<Encoding> enc(n);
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads)
        for (size_t i = 0; i < n; ++i) {
          const GlueExample& ex = data.examples[i];
          enc[i] = ex.text_b ? tok.encode_pair(ex.text_a, *ex.text_b, size_t(max_length), true)
                             : tok.encode_single(ex.text_a, size_t(max_length), true);
        }
        ClassificationLayout cl;
        cl.seq_len = max_length;
        cl.token_type_ids = true;
        cl.label_type = info.regression ? LabelType::Float32 : LabelType::Int64;
        cl.num_labels = int64_t(info.num_labels());
        cl.pad_id = vocab->pad_id();
        cl.labeled = layout.labeled;
        ShardMeta meta;
        meta.vocab_hash = vocab->sha256();
        meta.prep_config = prep_config;
        ClassificationShardWriter w(split.path, cl, meta, wopt);
        ClassificationExample row;
        for (size_t i = 0; i < n; ++i) {
          const GlueExample& ex = data.examples[i];
          row.input_ids = std::move(enc[i].input_ids);
          row.attention_mask = std::move(enc[i].attention_mask);
          row.token_type_ids = std::move(enc[i].token_type_ids);
          split.truncated_rows += enc[i].truncated > 0;
          if (!layout.labeled)
            row.label = info.regression ? std::nan("") : -1.0;
          else
            row.label = info.regression ? double(ex.score) : double(ex.label);
          w.append(row);
        }
        w.close();
        split.rows = int64_t(n);
      }
      manifest["shards"].push_back({{"file", layout.name + ".hdf5"},
                                    {"split", layout.name},
                                    {"hf_split", layout.hf_name},
                                    {"rows", split.rows},
                                    {"labeled", layout.labeled}});
      result.splits.push_back(split);
      progress.add(1);
      progress.set_counter("rows", [&] {
        int64_t r = 0;
        for (const auto& s : result.splits) r += s.rows;
        return r;
      }());
    }
    DENSE_CHECK(found > 0, "glue: {} holds none of the {} split files ({})", task_dir.string(), info.name, [&] {
      std::string names;
      for (const auto& l : info.files) names += (names.empty() ? "" : ", ") + l.file;
      return names;
    }());
    write_manifest(out_dir.string(), manifest);
  }
  progress.finish();
  return result;
}

}  // namespace dense::data
