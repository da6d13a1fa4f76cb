#include "data/prep_common.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "data/prep_pretrain.h"
#include "data/shard.h"

namespace dense::data {

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  auto mix = [](uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ a) ^ (b * 0xD1B54A32D192ED03ull));
}

ShardCheck check_existing_shard(const std::string& path, const std::string& format, const std::string& prep_config,
                                int64_t rows) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {ShardState::kMissing, ""};
  try {
    ShardExpect expect;
    expect.verify_checksum = true;
    auto [file, info] = detail::open_shard(path, format, expect);
    if (info.prep_config != prep_config)
      return {ShardState::kStale, "prep_config differs in '" + first_config_difference(info.prep_config, prep_config) +
                                      "'"};
    const h5::DatasetInfo ids = h5::dataset_info(file.get(), "input_ids", path);
    const int64_t found = ids.dims.empty() ? 0 : ids.dims[0];
    if (rows >= 0 && found != rows)
      return {ShardState::kStale, fmt::format("it holds {} rows, this run makes {}", found, rows)};
    return {ShardState::kComplete, "", found};
  } catch (const Error& e) {
    return {ShardState::kDamaged, e.what()};
  }
}

bool keep_existing_shard(const std::string& path, const std::string& format, const std::string& prep_config,
                         int64_t rows, bool overwrite, int64_t* rows_found) {
  const ShardCheck c = check_existing_shard(path, format, prep_config, rows);
  if (rows_found) *rows_found = c.rows;
  switch (c.state) {
    case ShardState::kMissing:
      return false;
    case ShardState::kComplete:
      return true;
    case ShardState::kDamaged:
      std::fprintf(stderr, "dense-prep: warning: rewriting %s: %s\n", path.c_str(), c.detail.c_str());
      return false;
    case ShardState::kStale:
      DENSE_CHECK(overwrite,
                  "{}: already exists from a run with other settings ({}); use --overwrite to replace it, or write "
                  "to another folder",
                  path, c.detail);
      return false;
  }
  return false;
}

void write_manifest(const std::string& dir, const nlohmann::json& manifest, const std::string& file_name) {
  write_file_atomic(std::filesystem::path(dir) / file_name, manifest.dump(2) + "\n");
}

nlohmann::json read_manifest(const std::string& dir, const std::string& file_name) {
  const auto path = std::filesystem::path(dir) / file_name;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return nullptr;
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const std::exception&) {
    return nullptr;
  }
}

bool manifest_complete(const std::string& dir, const std::string& format, const std::string& prep_config,
                       const std::string& file_name) {
  const nlohmann::json m = read_manifest(dir, file_name);
  if (!m.is_object() || !m.contains("prep_config") || !m.contains("shards") || !m["shards"].is_array()) return false;
  if (m["prep_config"].dump() != nlohmann::json::parse(prep_config).dump()) return false;
  for (const auto& s : m["shards"]) {
    if (!s.is_object() || !s.contains("file") || !s["file"].is_string() || !s.contains("rows") ||
        !s["rows"].is_number_integer())
      return false;
    const std::string path = (std::filesystem::path(dir) / s["file"].get<std::string>()).string();
    if (check_existing_shard(path, format, prep_config, s["rows"].get<int64_t>()).state != ShardState::kComplete)
      return false;
  }
  return true;
}

BackgroundJobs::BackgroundJobs(int max_in_flight) : max_(std::max(1, max_in_flight)) {}

BackgroundJobs::~BackgroundJobs() {
  for (auto& f : running_) {
    try {
      f.get();
    } catch (...) {
    }
  }
}

void BackgroundJobs::submit(std::function<void()> job) {
  while (int(running_.size()) >= max_) {
    auto f = std::move(running_.front());
    running_.pop_front();
    f.get();
  }
  running_.push_back(std::async(std::launch::async, std::move(job)));
}

void BackgroundJobs::wait_all() {
  while (!running_.empty()) {
    auto f = std::move(running_.front());
    running_.pop_front();
    f.get();
  }
}

int64_t corpus_size(const std::vector<std::string>& files, bool* compressed) {
  int64_t total = 0;
  bool gz = false;
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0) total += int64_t(st.st_size);
    gz = gz || (f.size() > 3 && f.compare(f.size() - 3, 3, ".gz") == 0);
  }
  if (compressed) *compressed = gz;
  return total;
}

void ensure_writable_folder(const std::string& dir) {
  DENSE_CHECK(!dir.empty(), "no output folder given");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  DENSE_CHECK(!ec, "{}: cannot create the output folder: {}", dir, ec.message());
  DENSE_CHECK(std::filesystem::is_directory(dir, ec), "{}: exists and is not a folder", dir);
  DENSE_CHECK(::access(dir.c_str(), W_OK | X_OK) == 0, "{}: the output folder is not writable", dir);
}

void check_output_outside_inputs(const std::vector<std::string>& inputs, const std::string& output,
                                 const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // weakly_canonical resolves symlinks and `..` of the existing part, so `-o corpus/../corpus/out` is caught
  // even before the output folder exists.
  const fs::path out = fs::weakly_canonical(fs::absolute(output, ec), ec);
  if (ec) return;
  for (const auto& input : inputs) {
    if (!fs::is_directory(input, ec)) continue;
    const fs::path in = fs::weakly_canonical(fs::absolute(input, ec), ec);
    if (ec) continue;
    const auto [in_end, out_it] = std::mismatch(in.begin(), in.end(), out.begin(), out.end());
    if (in_end != in.end()) continue;  // `in` is not a prefix of `out`
    DENSE_FAIL("{} {} is {} the input folder {}: a later run would read its own output as corpus text; choose an "
               "output outside the inputs",
               what, output, out_it == out.end() ? "the same as" : "inside", input);
  }
}

}  // namespace dense::data
