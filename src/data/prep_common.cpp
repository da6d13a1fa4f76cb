#include "data/prep_common.h"

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/file_io.h"
#include "data/shard.h"

namespace dense::data {

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

std::string first_config_difference(const std::string& a_json, const std::string& b_json) {
  nlohmann::json a, b;
  try {
    a = nlohmann::json::parse(a_json);
    b = nlohmann::json::parse(b_json);
  } catch (const std::exception&) {
    return "<not JSON>";
  }
  if (!a.is_object() || !b.is_object()) return a == b ? "" : "<whole>";
  for (auto it = b.begin(); it != b.end(); ++it) {
    if (!a.contains(it.key())) return it.key() + " (missing)";
    if (a[it.key()] != it.value()) {
      if (a[it.key()].is_object() && it.value().is_object()) {
        const std::string inner = first_config_difference(a[it.key()].dump(), it.value().dump());
        if (!inner.empty()) return it.key() + "." + inner;
      }
      return fmt::format("{}: {} vs {}", it.key(), a[it.key()].dump(), it.value().dump());
    }
  }
  for (auto it = a.begin(); it != a.end(); ++it)
    if (!b.contains(it.key())) return it.key() + " (not in this run)";
  return "";
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
      return {ShardState::kStale,
              "prep_config differs in '" + first_config_difference(info.prep_config, prep_config) + "'"};
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
    case ShardState::kMissing: return false;
    case ShardState::kComplete: return true;
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

void ensure_writable_folder(const std::string& dir) {
  DENSE_CHECK(!dir.empty(), "no output folder given");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  DENSE_CHECK(!ec, "{}: cannot create the output folder: {}", dir, ec.message());
  DENSE_CHECK(std::filesystem::is_directory(dir, ec), "{}: exists and is not a folder", dir);
  DENSE_CHECK(::access(dir.c_str(), W_OK | X_OK) == 0, "{}: the output folder is not writable", dir);
}

}  // namespace dense::data
