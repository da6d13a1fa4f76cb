#include "train/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "backend/ops.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"

namespace dense::train {

namespace fs = std::filesystem;

namespace {

const std::regex kFinal(R"(step-(\d{8}))");
const std::regex kTemporary(R"((step-\d{8})\.(tmp|old)-(\d+))");
const char* kFiles[] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json"};

// Length and CRC-32 of a file, read in bounded memory.
std::pair<int64_t, uint32_t> file_crc(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  DENSE_CHECK(fd >= 0, "{}: cannot open: {}", path, std::strerror(errno));
  std::vector<unsigned char> buf(size_t(1) << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  int64_t total = 0;
  while (true) {
    const ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      ::close(fd);
      DENSE_FAIL("{}: read error: {}", path, std::strerror(err));
    }
    if (r == 0) break;
    crc = crc32(crc, buf.data(), uInt(r));
    total += r;
  }
  ::close(fd);
  return {total, uint32_t(crc)};
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

bool process_alive(long pid) { return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM); }

}  // namespace

std::string checkpoint_name(int64_t step) { return fmt::format("step-{:08d}", step); }

std::string save_checkpoint(const std::string& dir, int64_t step, const CheckpointData& data) {
  // The trainer skips non-finite steps; this keeps anything that slipped through off the disk, before a
  // single byte is written.
  for (const auto* part : {&data.model, &data.optimizer})
    for (const auto& [name, t] : *part) {
      const int64_t bad = ops::count_nonfinite(t);
      DENSE_CHECK(bad == 0, "step {}: not writing a checkpoint: '{}' holds {} non-finite values of {}", step, name, bad,
                  t.numel());
    }
  std::error_code ec;
  fs::create_directories(dir, ec);
  DENSE_CHECK(!ec, "{}: cannot create the checkpoint folder: {}", dir, ec.message());
  const std::string final_dir = (fs::path(dir) / checkpoint_name(step)).string();
  const std::string tmp = temporary_path_for(final_dir);
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  DENSE_CHECK(!ec, "{}: cannot create: {}", tmp, ec.message());
  try {
    write_safetensors(tmp + "/model.safetensors", data.model, {{"format", "pt"}, {"densetrain", "model"}});
    write_safetensors(tmp + "/optimizer.safetensors", data.optimizer, {{"densetrain", "optimizer"}});
    write_file_atomic(tmp + "/trainer_state.json", data.state.dump(2) + "\n");
    nlohmann::json sums = nlohmann::json::object();
    for (const char* f : kFiles) {
      const auto [bytes, crc] = file_crc(tmp + "/" + f);
      sums[f] = {{"bytes", bytes}, {"crc32", fmt::format("{:08x}", crc)}};
    }
    write_file_atomic(tmp + "/checksums.json", sums.dump(2) + "\n");
    fsync_path(tmp, true);
    // Replacing a checkpoint of the same step: the old one goes only once the new one is complete.
    if (fs::exists(final_dir, ec)) {
      const std::string old = final_dir + ".old-" + std::to_string(::getpid());
      fs::rename(final_dir, old, ec);
      DENSE_CHECK(!ec, "{}: cannot move the previous checkpoint aside: {}", final_dir, ec.message());
      fs::rename(tmp, final_dir, ec);
      DENSE_CHECK(!ec, "{}: cannot rename {} into place: {}", final_dir, tmp, ec.message());
      fs::remove_all(old, ec);
    } else {
      fs::rename(tmp, final_dir, ec);
      DENSE_CHECK(!ec, "{}: cannot rename {} into place: {}", final_dir, tmp, ec.message());
    }
    fsync_path(dir, true);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return final_dir;
}

void verify_checkpoint(const std::string& folder) {
  std::error_code ec;
  DENSE_CHECK(fs::is_directory(folder, ec), "{}: no such checkpoint folder", folder);
  const std::string sums_path = folder + "/checksums.json";
  nlohmann::json sums;
  try {
    sums = nlohmann::json::parse(read_file(sums_path));
  } catch (const nlohmann::json::exception& e) {
    DENSE_FAIL("{}: not valid JSON ({})", sums_path, e.what());
  }
  for (const char* f : kFiles) {
    const std::string path = folder + "/" + f;
    DENSE_CHECK(sums.contains(f) && sums[f].contains("bytes") && sums[f].contains("crc32"), "{}: no checksum for {}",
                sums_path, f);
    DENSE_CHECK(fs::exists(path, ec), "{}: missing (the checkpoint is incomplete)", path);
    const auto [bytes, crc] = file_crc(path);
    DENSE_CHECK(bytes == sums[f]["bytes"].get<int64_t>(), "{}: {} bytes, the checksum file says {} (truncated?)", path,
                bytes, sums[f]["bytes"].get<int64_t>());
    DENSE_CHECK(fmt::format("{:08x}", crc) == sums[f]["crc32"].get<std::string>(),
                "{}: CRC-32 {:08x} differs from the recorded {} (the file is corrupt)", path, crc,
                sums[f]["crc32"].get<std::string>());
  }
}

CheckpointData load_checkpoint(const std::string& folder) {
  verify_checkpoint(folder);
  CheckpointData d;
  d.model = read_safetensors(folder + "/model.safetensors").tensors;
  d.optimizer = read_safetensors(folder + "/optimizer.safetensors").tensors;
  try {
    d.state = nlohmann::json::parse(read_file(folder + "/trainer_state.json"));
  } catch (const nlohmann::json::exception& e) {
    DENSE_FAIL("{}/trainer_state.json: not valid JSON ({})", folder, e.what());
  }
  return d;
}

std::vector<int64_t> list_checkpoints(const std::string& dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return steps;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_directory(ec) && std::regex_match(name, m, kFinal)) steps.push_back(std::stoll(m[1].str()));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

CheckpointScan find_latest_checkpoint(const std::string& dir) {
  CheckpointScan scan;
  std::vector<int64_t> steps = list_checkpoints(dir);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const std::string folder = (fs::path(dir) / checkpoint_name(*it)).string();
    try {
      verify_checkpoint(folder);
      scan.latest = folder;
      scan.latest_step = *it;
      return scan;
    } catch (const Error& e) {
      scan.warnings.push_back(fmt::format("skipping checkpoint {}: {}", folder, e.what()));
    }
  }
  return scan;
}

std::vector<std::string> prune_checkpoints(const std::string& dir, int64_t keep_last, int64_t keep_every,
                                           int64_t keep_step) {
  std::vector<std::string> removed;
  if (keep_last <= 0) return removed;
  const std::vector<int64_t> steps = list_checkpoints(dir);
  const size_t n = steps.size();
  for (size_t i = 0; i + size_t(keep_last) < n; ++i) {
    if ((keep_every > 0 && steps[i] % keep_every == 0) || steps[i] == keep_step) continue;
    const std::string folder = (fs::path(dir) / checkpoint_name(steps[i])).string();
    std::error_code ec;
    fs::remove_all(folder, ec);
    if (!ec) removed.push_back(folder);
  }
  return removed;
}

int64_t remove_stale_checkpoint_temporaries(const std::string& dir) {
  int64_t removed = 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, kTemporary)) continue;
    if (process_alive(std::stol(m[3].str()))) continue;
    std::error_code rm;
    const fs::path final_dir = fs::path(dir) / m[1].str();
    // A previous checkpoint moved aside by a save that died before its replacement was in place goes back.
    if (m[2].str() == "old" && !fs::exists(final_dir, rm)) {
      fs::rename(e.path(), final_dir, rm);
      continue;
    }
    fs::remove_all(e.path(), rm);
    removed += !rm;
  }
  return removed;
}

}  // namespace dense::train
