#include "train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "train/checkpoint.h"

namespace dense::train {

namespace fs = std::filesystem;

CheckedLogSink::CheckedLogSink(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  DENSE_CHECK(fd_ >= 0, "{}: cannot open the run log: {}", path_, std::strerror(errno));
}

CheckedLogSink::~CheckedLogSink() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<std::string> CheckedLogSink::error() {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

void CheckedLogSink::sink_it_(const spdlog::details::log_msg& msg) {
  if (error_) return;
  spdlog::memory_buf_t buf;
  formatter_->format(msg, buf);
  const char* p = buf.data();
  size_t left = buf.size();
  while (left > 0) {
    const ssize_t w = ::write(fd_, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      error_ = w < 0 ? std::strerror(errno) : "a short write";
      return;
    }
    p += w;
    left -= size_t(w);
  }
}

void check_writable_folder(const std::string& dir, const std::string& key) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  DENSE_CHECK(!ec, "{} ({}): cannot create the folder: {}; set {} to a writable location", dir, key, ec.message(), key);
  const std::string probe = (fs::path(dir) / fmt::format(".dense-train-probe-{}", ::getpid())).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  DENSE_CHECK(fd >= 0, "{} ({}): cannot create a file in it: {}; set {} to a writable location", dir, key,
              std::strerror(errno), key);
  const char text[] = "dense-train write probe\n";
  const ssize_t w = ::write(fd, text, sizeof text - 1);
  const int err = errno;
  const bool synced = w == ssize_t(sizeof text - 1) && ::fsync(fd) == 0;
  const int sync_err = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  DENSE_CHECK(w == ssize_t(sizeof text - 1) && synced,
              "{} ({}): cannot write a file in it: {}; free space there or set "
              "{} to another location",
              dir, key, std::strerror(w < 0 ? err : sync_err), key);
}

void check_writable_file(const std::string& path, const std::string& key) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  DENSE_CHECK(!fs::is_directory(path, ec), "{} ({}): is a folder; the run writes a file there", path, key);
  DENSE_CHECK(::access(path.c_str(), W_OK) == 0, "{} ({}): not writable: {}", path, key, std::strerror(errno));
}

FolderLock::FolderLock(const std::string& dir, const std::string& key) {
  const std::string path = dir + "/.dense-train.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  DENSE_CHECK(fd_ >= 0, "{} ({}): cannot create the lock file: {}", path, key, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
    ::close(fd_);
    fd_ = -1;
    DENSE_FAIL(
        "{} ({}) is in use by another dense-train (pid {}): wait for it to finish or stop it, or give this "
        "run another folder",
        dir, key, n > 0 ? std::string(pid, size_t(n)) : "unknown");
  }
  const std::string pid = std::to_string(::getpid());
  // The pid is for the message only; a failed write loses nothing.
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::string> previous_run_in(const std::string& run_dir, const std::string& ckpt_dir) {
  std::vector<std::string> what;
  const std::vector<int64_t> steps = list_checkpoints(ckpt_dir);
  if (!steps.empty())
    what.push_back(
        fmt::format("{} checkpoint(s) in {}, steps {} to {}", steps.size(), ckpt_dir, steps.front(), steps.back()));
  std::error_code ec;
  const std::string metrics = run_dir + "/metrics.jsonl";
  if (fs::exists(metrics, ec) && fs::file_size(metrics, ec) > 0) what.push_back(metrics);
  return what;
}

std::vector<std::string> move_previous_run_aside(const std::string& run_dir, const std::string& ckpt_dir) {
  char stamp[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  std::string name = std::string("previous-") + stamp;
  std::error_code ec;
  if (fs::exists(fs::path(run_dir) / name, ec)) name += fmt::format("-{}", ::getpid());
  const fs::path aside = fs::path(run_dir) / name;
  const bool ckpt_inside =
      fs::weakly_canonical(ckpt_dir, ec) == fs::weakly_canonical(fs::path(run_dir) / "checkpoints", ec);
  const fs::path ckpt_aside = ckpt_inside ? aside / "checkpoints" : fs::path(ckpt_dir) / name;
  auto move = [&](const fs::path& from, const fs::path& to) {
    std::error_code e;
    fs::create_directories(to.parent_path(), e);
    DENSE_CHECK(!e, "{}: cannot create it to keep the previous run ({}); nothing of it was deleted",
                to.parent_path().string(), e.message());
    fs::rename(from, to, e);
    DENSE_CHECK(!e, "cannot move {} to {} ({}); nothing of the previous run was deleted", from.string(), to.string(),
                e.message());
  };
  for (const int64_t step : list_checkpoints(ckpt_dir))
    move(fs::path(ckpt_dir) / checkpoint_name(step), ckpt_aside / checkpoint_name(step));
  for (const char* f : {"metrics.jsonl", "train.log", "config.yaml", "tensorboard"})
    if (fs::exists(fs::path(run_dir) / f, ec)) move(fs::path(run_dir) / f, aside / f);
  std::vector<std::string> out = {aside.string()};
  if (!ckpt_inside && fs::exists(ckpt_aside, ec)) out.push_back(ckpt_aside.string());
  return out;
}

}  // namespace dense::train
