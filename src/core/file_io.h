#pragma once
// Whole-file reads and atomic writes. A write goes to `<path>.tmp-<pid>` (so two processes writing the same
// target never share a temporary), is fsynced, renamed over `path`, and the folder is fsynced: a file under
// its final name is always complete, and an interrupted write leaves at most a stray temporary (which
// remove_stale_temporaries can clear). Errors are dense::Error naming the file and the OS reason.
//
// One process writes a given target from one thread at a time (the temporary name holds only the pid).
// New files get mode 0666 minus the umask, as std::ofstream and fopen give them.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace dense {

// How much a completed write survives. Fsync (the default): the data and the rename reach the disk before
// the call returns, so the file survives a power loss. RenameOnly: no fsync (about 15x cheaper per small
// file); the file is still never seen half-written by a reader or after the writing process dies, but a
// machine crash can lose it. For many small files whose completion is recorded (durably) elsewhere.
enum class Durability { Fsync, RenameOnly };

// The temporary name a write to `path` uses in this process: `<path>.tmp-<pid>`.
std::string temporary_path_for(const std::string& path);

// Writes `bytes` to `path` atomically (see above). On failure nothing is left behind and `path` is unchanged.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes,
                       Durability durability = Durability::Fsync);

// Renames a finished temporary file (the caller has flushed and fsynced it) into place and makes the rename
// durable (fsyncs the file's folder). On failure the temporary is removed and the error names both files.
void commit_temporary(const std::string& tmp, const std::string& path);

// Streams a file to temporary_path_for(path) and commits it as write_file_atomic does: for files too large
// to hold in memory. Destroyed without commit() (an exception), it removes the temporary.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::filesystem::path& path, Durability durability = Durability::Fsync);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(std::string_view bytes);
  void write(const void* data, size_t n) { write(std::string_view(static_cast<const char*>(data), n)); }
  // fsync, close, rename into place, fsync the folder (no fsync with Durability::RenameOnly). Once only.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }

 private:
  void abandon();  // closes and removes the temporary
  std::string path_, tmp_;
  Durability durability_;
  int fd_ = -1;
};

// The whole file; errors name it (missing, unreadable, a folder).
std::string read_file(const std::filesystem::path& path);

// Removes `<name>.tmp-<pid>` files in `dir` (not recursive; folders are left alone) whose process no longer
// runs, i.e. what an interrupted run left behind. Returns how many were removed.
int64_t remove_stale_temporaries(const std::filesystem::path& dir);

}  // namespace dense
