#pragma once
// What every pipeline that writes shards shares: thread counts, the resume check of one shard, the run manifest.
// The dense-prep pipelines (data_prep/) use it, and so does the GLUE tokenisation (data/prep_glue.h) that
// dense-eval glue runs itself; the parts only dense-prep needs are in data_prep/prep_pipeline.h.
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace dense::data {

// 0 -> all cores; otherwise the value (at least 1).
int resolve_threads(int threads);

enum class ShardState {
  kMissing,   // no file: write it
  kComplete,  // same prep_config and row count, integrity verified: keep it
  kDamaged,   // unreadable, truncated or failing its checksum: rewrite it
  kStale,     // a complete shard of another configuration or row count: rewrite only with overwrite
};

struct ShardCheck {
  ShardState state = ShardState::kMissing;
  std::string detail;  // why (for kDamaged / kStale)
  int64_t rows = 0;    // rows found (kComplete)
};

// The first key whose value differs between two prep_config JSON texts ("" when equal), for error messages.
std::string first_config_difference(const std::string& a_json, const std::string& b_json);

// Inspects `path` as a shard of `format` expected to hold `rows` rows (-1: any) written with `prep_config`.
ShardCheck check_existing_shard(const std::string& path, const std::string& format, const std::string& prep_config,
                                int64_t rows);

// Decides what to do with an existing shard: true = keep it. A stale shard without `overwrite` is a
// dense::Error naming the file and the first differing setting; a damaged one is rewritten (warned on stderr).
// `rows_found` (optional) receives the kept shard's row count.
bool keep_existing_shard(const std::string& path, const std::string& format, const std::string& prep_config,
                         int64_t rows, bool overwrite, int64_t* rows_found = nullptr);

// A folder may hold several runs' shards under different prefixes (one corpus per prefix, read together by the
// trainer); each run keeps its own manifest so that a later run does not overwrite an earlier one's record.
// `file_name` is the manifest's name in the folder: "manifest.json" or "<prefix>.manifest.json".
inline constexpr const char* kManifestFile = "manifest.json";
// Writes <dir>/<file_name> atomically.
void write_manifest(const std::string& dir, const nlohmann::json& manifest,
                    const std::string& file_name = kManifestFile);
// The manifest of a folder, or null when absent or unreadable.
nlohmann::json read_manifest(const std::string& dir, const std::string& file_name = kManifestFile);
// True when the folder's manifest has this prep_config, and every shard it lists exists, verifies, carries
// that prep_config and has the listed rows.
bool manifest_complete(const std::string& dir, const std::string& format, const std::string& prep_config,
                       const std::string& file_name = kManifestFile);

// Creates a folder (and parents); a clear error when it cannot be created or written to.
void ensure_writable_folder(const std::string& dir);

}  // namespace dense::data
