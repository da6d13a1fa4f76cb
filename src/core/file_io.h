#pragma once
// Whole-file reads and atomic writes. A write goes to `<path>.tmp-<pid>` (so two processes writing the same
// target never share a temporary), is fsynced, renamed over `path`, and the folder is fsynced: a file under
// its final name is always complete, and an interrupted write leaves at most a stray temporary (which
// remove_stale_temporaries can clear). Errors are dense::Error naming the file and the OS reason.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace dense {

// The temporary name a write to `path` uses in this process.
std::string temporary_path_for(const std::string& path);

// Writes `bytes` to `path` atomically (see above).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// Renames a finished temporary file into place and makes the rename durable (fsyncs the file's folder).
void commit_temporary(const std::string& tmp, const std::string& path);

// The whole file; errors name it (missing, unreadable, a folder).
std::string read_file(const std::filesystem::path& path);

// Removes `<name>.tmp-<pid>` files in `dir` (not recursive) whose process no longer runs, i.e. what an
// interrupted run left behind. Returns how many were removed.
int64_t remove_stale_temporaries(const std::filesystem::path& dir);

}  // namespace dense
