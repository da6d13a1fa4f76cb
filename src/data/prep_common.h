#pragma once
// What every `dense-prep` pipeline shares: thread counts, the resume check of one shard, the run manifest,
// and a bounded pool of background shard writers.
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dense::data {

// 0 -> all cores; otherwise the value (at least 1).
int resolve_threads(int threads);

// 64-bit mix of a seed with up to two stream indices (splitmix64 finaliser): independent seeds per block/run.
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0);

enum class ShardState {
  kMissing,  // no file: write it
  kComplete, // same prep_config and row count, integrity verified: keep it
  kDamaged,  // unreadable, truncated or failing its checksum: rewrite it
  kStale,    // a complete shard of another configuration or row count: rewrite only with overwrite
};

struct ShardCheck {
  ShardState state = ShardState::kMissing;
  std::string detail;  // why (for kDamaged / kStale)
  int64_t rows = 0;    // rows found (kComplete)
};

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

// Runs jobs on background threads, at most `max_in_flight` at once; submit() waits for the oldest job when
// full. Exceptions propagate from submit()/wait_all(); the destructor waits for (and drops errors of) jobs
// still running, so nothing outlives the data it uses.
class BackgroundJobs {
 public:
  explicit BackgroundJobs(int max_in_flight);
  ~BackgroundJobs();
  BackgroundJobs(const BackgroundJobs&) = delete;
  BackgroundJobs& operator=(const BackgroundJobs&) = delete;
  void submit(std::function<void()> job);
  void wait_all();

 private:
  int max_;
  std::deque<std::future<void>> running_;
};

// Bytes on disk of the files and whether any is gzip-compressed (then the decompressed total is unknown, and
// progress shows no percentage).
int64_t corpus_size(const std::vector<std::string>& files, bool* compressed);

// Creates a folder (and parents); a clear error when it cannot be created or written to.
void ensure_writable_folder(const std::string& dir);

// dense::Error when `output` (a folder or file to be written) is one of the input folders or lies inside one:
// a second run would read the first run's outputs (manifest.json, vocab.txt) as corpus text. `what` names the
// subcommand and the output flag in the message ("pretrain: -o").
void check_output_outside_inputs(const std::vector<std::string>& inputs, const std::string& output,
                                 const std::string& what);

}  // namespace dense::data
