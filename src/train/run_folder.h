#pragma once
// The run folder's safety: output locations checked writable before any work, one dense-train per folder, a
// previous run moved aside (never deleted) by --overwrite, and a run log whose writes are checked.
#include <spdlog/sinks/base_sink.h>

#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dense::train {

// train.log: spdlog's file sink reports a failed write to an error handler that by default prints and carries
// on, and does not check its flushes, so a full disk would silently end the log. This sink writes every line
// with write(2) and remembers the first failure; the trainer checks it after every step.
class CheckedLogSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CheckedLogSink(std::string path);
  ~CheckedLogSink() override;
  // The first failed write, if any.
  std::optional<std::string> error();

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

 private:
  std::string path_;
  int fd_ = -1;
  std::optional<std::string> error_;
};

// Creates `dir` and a file in it (then removes it): an output location that cannot be written fails at the
// start, not at the first checkpoint after hours of training. `key` is the config key or flag that set it.
void check_writable_folder(const std::string& dir, const std::string& key);
// An existing output file the run appends to must be writable too (a read-only metrics.jsonl, say).
void check_writable_file(const std::string& path, const std::string& key);

// One dense-train per run folder: two processes appending to one metrics.jsonl and pruning each other's
// checkpoints would lose both runs. An flock (released by the kernel when the process dies, even by SIGKILL,
// so a crash never leaves a stale lock) on <folder>/.dense-train.lock; the holder's pid is written for the message.
class FolderLock {
 public:
  FolderLock(const std::string& dir, const std::string& key);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

// What of a previous run a run folder holds (checkpoints, logged metrics), described for a message; empty: none.
std::vector<std::string> previous_run_in(const std::string& run_dir, const std::string& ckpt_dir);

// --overwrite: the previous run's checkpoints and logs move into <run_dir>/previous-<time>/ (checkpoints in a
// checkpoint.dir of their own into <checkpoint.dir>/previous-<time>/, the same filesystem, so that the moves
// are renames). Nothing is deleted. Returns the folders written.
std::vector<std::string> move_previous_run_aside(const std::string& run_dir, const std::string& ckpt_dir);

}  // namespace dense::train
