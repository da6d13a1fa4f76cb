#include "core/file_io.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace dense {

namespace {

void fsync_folder_of(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

// The pid in `<name>.tmp-<pid>`, or -1 when `name` is not such a temporary; 0 when the digits are no
// possible pid (too large), i.e. no process can own the file.
long long temporary_owner(const std::string& name) {
  const size_t at = name.rfind(".tmp-");
  if (at == std::string::npos) return -1;
  const char* first = name.data() + at + 5;
  const char* last = name.data() + name.size();
  if (first == last) return -1;
  for (const char* p = first; p != last; ++p)
    if (*p < '0' || *p > '9') return -1;
  long long pid = 0;
  const auto [end, ec] = std::from_chars(first, last, pid);
  if (ec != std::errc() || end != last || pid > INT_MAX) return 0;
  return pid;
}

}  // namespace

std::string temporary_path_for(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

namespace {

void rename_into_place(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    DENSE_FAIL("{}: cannot rename {} into place: {}", path, tmp, std::strerror(err));
  }
}

}  // namespace

void commit_temporary(const std::string& tmp, const std::string& path) {
  rename_into_place(tmp, path);
  fsync_folder_of(path);
}

// ---- AtomicFileWriter -------------------------------------------------------------------------------------

AtomicFileWriter::AtomicFileWriter(const std::filesystem::path& path, Durability durability)
    : path_(path.string()), tmp_(temporary_path_for(path_)), durability_(durability) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  DENSE_CHECK(fd_ >= 0, "{}: cannot create {}: {}", path_, tmp_, std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() { abandon(); }

void AtomicFileWriter::abandon() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  std::remove(tmp_.c_str());
}

void AtomicFileWriter::write(std::string_view bytes) {
  DENSE_CHECK(fd_ >= 0, "{}: write after commit", path_);
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t w = ::write(fd_, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      abandon();
      DENSE_FAIL("{}: write failed: {}", tmp_, std::strerror(err));
    }
    p += w;
    left -= size_t(w);
  }
}

void AtomicFileWriter::commit() {
  DENSE_CHECK(fd_ >= 0, "{}: committed twice", path_);
  if (durability_ == Durability::Fsync && ::fsync(fd_) != 0) {
    const int err = errno;
    abandon();
    DENSE_FAIL("{}: cannot flush to disk: {}", tmp_, std::strerror(err));
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    std::remove(tmp_.c_str());
    DENSE_FAIL("{}: cannot flush to disk: {}", tmp_, std::strerror(err));
  }
  if (durability_ == Durability::Fsync) {
    commit_temporary(tmp_, path_);
  } else {
    rename_into_place(tmp_, path_);
  }
}

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes, Durability durability) {
  AtomicFileWriter out(path, durability);
  out.write(bytes);
  out.commit();
}

// ---- reading ------------------------------------------------------------------------------------------------

std::string read_file(const std::filesystem::path& path) {
  const std::string name = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) DENSE_FAIL("{}: file not found", name);
    DENSE_FAIL("{}: cannot open for reading: {}", name, std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    const int err = errno;
    const bool dir = S_ISDIR(st.st_mode);
    ::close(fd);
    if (dir) DENSE_FAIL("{}: is a folder, expected a file", name);
    DENSE_FAIL("{}: cannot stat: {}", name, std::strerror(err));
  }
  std::string out;
  if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(size_t(st.st_size));
  char buf[1 << 16];
  while (true) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      ::close(fd);
      DENSE_FAIL("{}: read error: {}", name, std::strerror(err));
    }
    if (r == 0) break;
    out.append(buf, size_t(r));
  }
  ::close(fd);
  return out;
}

int64_t remove_stale_temporaries(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return 0;
  int64_t removed = 0;
  std::filesystem::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const long long pid = temporary_owner(it->path().filename().string());
    std::error_code e2;
    if (pid < 0 || !it->is_regular_file(e2)) continue;
    // A temporary of a process that still runs (another dense-prep on the same folder, or this one) stays.
    if (pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM)) continue;
    if (std::filesystem::remove(it->path(), e2)) ++removed;
  }
  return removed;
}

}  // namespace dense
