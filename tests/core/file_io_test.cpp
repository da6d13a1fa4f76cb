// core/file_io: atomic writes (round trip, overwrite, failures leave nothing behind), whole-file reads, the
// streaming writer, and the clean-up of temporaries left by dead processes.
#include "core/file_io.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "test_files.h"

namespace fs = std::filesystem;
using namespace dense;
using namespace dense::testing;

namespace {

// The names in `dir`, sorted.
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Every byte value, then a few MiB (more than one write and read block).
std::string binary_payload() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(char(i));
  s.push_back('\0');
  for (size_t i = 0; s.size() < (size_t(3) << 20) + 17; ++i) s.push_back(char((i * 2654435761u) >> 24));
  return s;
}

// The pid of a process that has exited (and been reaped).
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  EXPECT_GT(child, 0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

}  // namespace

TEST(FileIo, TemporaryNameHoldsThePid) {
  EXPECT_EQ(temporary_path_for("/a/b.bin"), "/a/b.bin.tmp-" + std::to_string(::getpid()));
}

TEST(FileIo, WriteReadRoundTrip) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/data.bin";
  const std::string bytes = binary_payload();
  write_file_atomic(path, bytes);
  EXPECT_EQ(read_file(path), bytes);
  EXPECT_EQ(read_bytes(path), bytes);
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"data.bin"});  // no temporary left

  write_file_atomic(dir + "/empty", "");
  EXPECT_TRUE(fs::exists(dir + "/empty"));
  EXPECT_EQ(read_file(dir + "/empty"), "");

  // New files get 0666 minus the umask, as std::ofstream gives them.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u & ~mask);
}

TEST(FileIo, RenameOnlyWritesTheSameFiles) {
  const std::string dir = temp_dir();
  const std::string bytes = binary_payload();
  write_file_atomic(dir + "/a.bin", bytes, Durability::RenameOnly);
  write_file_atomic(dir + "/a.bin", bytes.substr(5), Durability::RenameOnly);
  AtomicFileWriter out(dir + "/b.bin", Durability::RenameOnly);
  out.write(bytes);
  out.commit();
  EXPECT_EQ(read_file(dir + "/a.bin"), bytes.substr(5));
  EXPECT_EQ(read_file(dir + "/b.bin"), bytes);
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"a.bin", "b.bin"}));
  fs::create_directories(dir + "/c/d");
  expect_error([&] { write_file_atomic(dir + "/c", "x", Durability::RenameOnly); }, {dir + "/c", "cannot rename"});
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"a.bin", "b.bin", "c"}));
}

TEST(FileIo, OverwriteReplacesTheWholeFile) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/f.txt";
  write_file_atomic(path, "a much longer first version of the file\n");
  write_file_atomic(path, "short\n");
  EXPECT_EQ(read_file(path), "short\n");
  write_bytes(path + ".other", "x");
  write_file_atomic(fs::path(path), std::string(100000, 'z'));
  EXPECT_EQ(read_file(path), std::string(100000, 'z'));
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"f.txt", "f.txt.other"}));
}

TEST(FileIo, MissingFolderIsAnErrorNamingThePath) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/no/such/folder/out.bin";
  expect_error([&] { write_file_atomic(path, "data"); }, {path, "No such file or directory"});
  EXPECT_FALSE(fs::exists(dir + "/no"));
  EXPECT_TRUE(names_in(dir).empty());
}

TEST(FileIo, NoTemporaryLeftAfterAFailedWrite) {
  const std::string dir = temp_dir();
  // The rename fails (the target is a non-empty folder): the temporary goes, the folder stays.
  fs::create_directories(dir + "/target/inside");
  expect_error([&] { write_file_atomic(dir + "/target", "data"); }, {dir + "/target", "cannot rename"});
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(dir + "/target/inside"));

  // A streaming write abandoned by an exception: no temporary, the old file unchanged.
  write_file_atomic(dir + "/kept.txt", "old\n");
  try {
    AtomicFileWriter out(dir + "/kept.txt");
    out.write("new, but never committed");
    EXPECT_TRUE(fs::exists(out.tmp_path()));
    throw std::runtime_error("interrupted");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(read_file(dir + "/kept.txt"), "old\n");
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"kept.txt", "target"}));
}

TEST(FileIo, StreamingWriterCommitsOnce) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/stream.tsv";
  AtomicFileWriter out(path);
  EXPECT_EQ(out.path(), path);
  EXPECT_EQ(out.tmp_path(), temporary_path_for(path));
  out.write("Source\tTarget\n");
  const char raw[3] = {'1', '\t', '2'};
  out.write(raw, 3);
  out.write("\n");
  EXPECT_FALSE(fs::exists(path));  // nothing under the final name before commit()
  out.commit();
  EXPECT_EQ(read_file(path), "Source\tTarget\n1\t2\n");
  EXPECT_FALSE(fs::exists(out.tmp_path()));
  expect_error([&] { out.commit(); }, {path, "committed twice"});
  expect_error([&] { out.write("more"); }, {path, "after commit"});
}

TEST(FileIo, ReadErrorsNameTheFile) {
  const std::string dir = temp_dir();
  expect_error([&] { read_file(dir + "/missing.bin"); }, {dir + "/missing.bin", "file not found"});
  expect_error([&] { read_file(dir); }, {dir, "is a folder"});
}

TEST(FileIo, RemoveStaleTemporariesKeepsLiveOnesAndOrdinaryFiles) {
  const std::string dir = temp_dir();
  const std::string dead = std::to_string(dead_pid());
  const std::string self = std::to_string(::getpid());
  write_bytes(dir + "/x.tmp-" + dead, "partial");      // dead process: removed
  write_bytes(dir + "/y.bin.tmp-99999999999", "old");  // no such pid can exist: removed
  write_bytes(dir + "/x.tmp-" + self, "in progress");  // this process: kept
  write_bytes(dir + "/init.tmp-1", "pid 1 runs");      // a running process (EPERM counts as running): kept
  write_bytes(dir + "/x", "ordinary");                 // kept
  write_bytes(dir + "/notes.tmp-abc", "not a pid");    // kept
  write_bytes(dir + "/y.tmp-", "no pid");              // kept
  fs::create_directories(dir + "/d.tmp-" + dead);      // folders are never touched
  EXPECT_EQ(remove_stale_temporaries(dir), 2);
  EXPECT_EQ(names_in(dir),
            (std::vector<std::string>{"d.tmp-" + dead, "init.tmp-1", "notes.tmp-abc", "x", "x.tmp-" + self, "y.tmp-"}));
  EXPECT_EQ(remove_stale_temporaries(dir), 0);
  EXPECT_EQ(remove_stale_temporaries(dir + "/no-such-folder"), 0);
}
