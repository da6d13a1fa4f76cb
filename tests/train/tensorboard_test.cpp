// TensorBoard event files: CRC-32C against published vectors, the TFRecord framing byte by byte, and every
// scalar read back by an independent reader (tests/reference/read_tfevents.py, and the protobuf runtime when
// python3-protobuf is installed); corruption must be caught. Also scripts/plot_metrics.py on a synthetic run.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <vector>

#include "test_files.h"
#include "train/tensorboard.h"

using namespace dense;
using namespace dense::train;
using namespace dense::testing;
namespace fs = std::filesystem;

namespace {

const char* kPython = "/usr/bin/python3";

std::string reader() { return std::string(DENSE_TEST_DATA_DIR) + "/../reference/read_tfevents.py"; }
std::string plotter() { return std::string(DENSE_TEST_DATA_DIR) + "/../../scripts/plot_metrics.py"; }

bool python_has(const std::string& modules) {
  if (!fs::exists(kPython)) return false;
  return std::system(fmt::format("{} -c 'import {}' > /dev/null 2>&1", kPython, modules).c_str()) == 0;
}

struct Result {
  int rc;           // exit status (-1 when the command did not exit normally)
  std::string out;  // stdout and stderr
};

Result run(const std::string& cmd) {
  const std::string log = ::testing::TempDir() + fmt::format("/dense_tensorboard_{}.log", ::getpid());
  const int status = std::system((cmd + " > " + log + " 2>&1").c_str());
  Result r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_bytes(log)};
  std::remove(log.c_str());
  return r;
}

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

struct Scalar {
  std::string tag;
  int64_t step;
  double value;
};

double now_seconds() {
  return double(
             std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
                 .count()) *
         1e-6;
}

// Compares the reader's `tag step value [wall_time]` lines with what was written: values exactly as float32.
void expect_lines(const std::string& out, const std::vector<Scalar>& want, double t0 = 0, double t1 = 0) {
  std::istringstream in(out);
  std::string line;
  size_t i = 0;
  while (std::getline(in, line)) {
    ASSERT_LT(i, want.size()) << "extra line: " << line;
    std::istringstream fields(line);
    std::string tag, step, value, wall;
    fields >> tag >> step >> value >> wall;
    EXPECT_EQ(tag, want[i].tag) << line;
    EXPECT_EQ(std::stoll(step), want[i].step) << line;
    EXPECT_EQ(std::stod(value), double(static_cast<float>(want[i].value))) << line;
    if (t1 > 0) {
      ASSERT_FALSE(wall.empty()) << line;
      EXPECT_GE(std::stod(wall), t0 - 1e-3) << line;
      EXPECT_LE(std::stod(wall), t1 + 1e-3) << line;
    }
    ++i;
  }
  EXPECT_EQ(i, want.size()) << out;
}

const std::vector<Scalar> kScalars = {
    {"train/loss", 1, 10.375},
    {"train/lr", 1, 1e-4},
    {"train/loss", 2, 3.14159265358979},
    {"train/tokens_per_s", 2, 123456.7},
    {"eval/loss", 0, -2.5},
    {"eval/accuracy", 1000000007, 0.1},
    {"train/grad_norm", int64_t(1) << 40, -1e-30},
    {"train/loss", -3, 0.0},
    {"train/é_utf8", 5, 6.02e23},
};

}  // namespace

TEST(Crc32c, PublishedVectors) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  // RFC 3720 (iSCSI) appendix B.4.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string up, down;
  for (int i = 0; i < 32; ++i) {
    up.push_back(static_cast<char>(i));
    down.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(up), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down), 0x113FDB5Cu);
  // Continuing a CRC equals one pass over the concatenation.
  EXPECT_EQ(crc32c("56789", crc32c("1234")), 0xE3069283u);
}

TEST(Crc32c, Mask) {
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(masked_crc32c("123456789"), uint32_t(((c >> 15) | (c << 17)) + 0xa282ead8u));
  EXPECT_EQ(masked_crc32c(""), 0xa282ead8u);
}

TEST(TensorBoard, FileNameAndFraming) {
  const std::string dir = temp_dir() + "/tb/nested";  // created by the writer
  const auto t0 = static_cast<long long>(std::time(nullptr));
  std::string path;
  {
    TensorBoardWriter w(dir);
    path = w.path();
    w.add_scalar("loss", 2.0, 7);
  }
  const std::string name = fs::path(path).filename().string();
  EXPECT_EQ(fs::path(path).parent_path(), fs::path(dir));
  const std::string prefix = "events.out.tfevents.";
  ASSERT_EQ(name.rfind(prefix, 0), 0u) << name;
  const long long secs = std::stoll(name.substr(prefix.size()));
  EXPECT_GE(secs, t0);
  EXPECT_LE(secs, t0 + 5);
  EXPECT_TRUE(name.ends_with(fmt::format(".{}", ::getpid()))) << name;

  // Two records, each length | masked crc(length) | data | masked crc(data), and nothing after.
  const std::string bytes = read_bytes(path);
  size_t at = 0;
  std::vector<std::string> data;
  while (at < bytes.size()) {
    ASSERT_LE(at + 12, bytes.size());
    const uint64_t n = le(bytes, at, 8);
    EXPECT_EQ(le(bytes, at + 8, 4), masked_crc32c(bytes.substr(at, 8)));
    ASSERT_LE(at + 16 + n, bytes.size());
    data.push_back(bytes.substr(at + 12, n));
    EXPECT_EQ(le(bytes, at + 12 + n, 4), masked_crc32c(data.back()));
    at += 16 + n;
  }
  ASSERT_EQ(data.size(), 2u);
  // file_version: wall_time (key 0x09, 8 bytes), then field 3 length-delimited (key 0x1a), no step (0).
  EXPECT_EQ(data[0][0], '\x09');
  EXPECT_EQ(data[0].substr(9), std::string("\x1a\x0d") + "brain.Event:2");
  // Scalar: wall_time, step 7 (key 0x10), summary (0x2a) { value (0x0a) { tag (0x0a), simple_value (0x15) 2.0f } }.
  EXPECT_EQ(data[1].substr(9), std::string("\x10\x07\x2a\x0d\x0a\x0b\x0a\x04loss\x15\x00\x00\x00\x40", 17));
}

TEST(TensorBoard, ReaderAgreesOnEveryScalar) {
  if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  const std::string dir = temp_dir();
  const double t0 = now_seconds();
  std::string path;
  {
    TensorBoardWriter w(dir);
    path = w.path();
    for (const auto& s : kScalars) w.add_scalar(s.tag, s.value, s.step);
  }
  const double t1 = now_seconds();
  const Result r = run(fmt::format("{} {} {} --wall-time", kPython, reader(), path));
  ASSERT_EQ(r.rc, 0) << r.out;
  expect_lines(r.out, kScalars, t0, t1);

  if (!python_has("google.protobuf")) {
    std::fprintf(stderr, "note: python3-protobuf not installed; the protobuf-runtime cross-check is skipped\n");
    return;
  }
  const Result pb = run(fmt::format("{} {} {} --wall-time --protobuf", kPython, reader(), path));
  ASSERT_EQ(pb.rc, 0) << pb.out;
  EXPECT_EQ(pb.out, r.out);
}

TEST(TensorBoard, NonFiniteValues) {
  if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  const std::string dir = temp_dir();
  std::string path;
  {
    TensorBoardWriter w(dir);
    path = w.path();
    w.add_scalar("loss", std::nan(""), 1);
    w.add_scalar("loss", HUGE_VAL, 2);
    w.add_scalar("loss", -HUGE_VAL, 3);
    w.add_scalar("loss", 1e300, 4);  // beyond float: inf, as TensorBoard would show it
  }
  const Result r = run(fmt::format("{} {} {}", kPython, reader(), path));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "loss 1 nan\nloss 2 inf\nloss 3 -inf\nloss 4 inf\n");
}

TEST(TensorBoard, FlushMakesEventsVisibleWhileOpen) {
  if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  const std::string dir = temp_dir();
  TensorBoardWriter w(dir);
  EXPECT_EQ(run(fmt::format("{} {} {}", kPython, reader(), w.path())).out, "");
  w.add_scalar("a", 1.5, 1);
  w.flush();
  const Result r = run(fmt::format("{} {} {}", kPython, reader(), w.path()));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "a 1 1.5\n");
}

TEST(TensorBoard, TwoWritersInOneFolderNeverShareAFile) {
  if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  const std::string dir = temp_dir();
  {
    // Same second, same host, same pid: the second gets a suffix instead of clobbering the first.
    TensorBoardWriter a(dir);
    TensorBoardWriter b(dir);
    EXPECT_NE(a.path(), b.path());
    a.add_scalar("x", 1, 1);
    b.add_scalar("y", 2, 2);
  }
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir))
    files += e.path().filename().string().find("tfevents") != std::string::npos;
  EXPECT_EQ(files, 2);
  const Result r = run(fmt::format("{} {} {}", kPython, reader(), dir));  // a folder: every event file in it
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "x 1 1.0\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "y 2 2.0\n")) << r.out;
}

TEST(TensorBoard, SessionStartPurgesTheStepsOfAnInterruptedRun) {
  if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  const std::string dir = temp_dir();
  {
    // The first run logged steps 1..5 and crashed; its checkpoint was at step 3.
    TensorBoardWriter first(dir);
    for (int s = 1; s <= 5; ++s) first.add_scalar("loss", 10.0 - s, s);
  }
  {
    // The resumed run marks the restart at step 4 and logs 4..6 again, with other values.
    TensorBoardWriter resumed(dir);
    resumed.add_session_start(4);
    for (int s = 4; s <= 6; ++s) resumed.add_scalar("loss", 20.0 + s, s);
  }
  const Result all = run(fmt::format("{} {} {}", kPython, reader(), dir));
  ASSERT_EQ(all.rc, 0) << all.out;
  EXPECT_EQ(all.out,
            "loss 1 9.0\nloss 2 8.0\nloss 3 7.0\nloss 4 6.0\nloss 5 5.0\nloss 4 24.0\nloss 5 25.0\n"
            "loss 6 26.0\n");
  const Result purged = run(fmt::format("{} {} {} --purge", kPython, reader(), dir));
  ASSERT_EQ(purged.rc, 0) << purged.out;
  EXPECT_EQ(purged.out, "loss 1 9.0\nloss 2 8.0\nloss 3 7.0\nloss 4 24.0\nloss 5 25.0\nloss 6 26.0\n");
  if (!python_has("google.protobuf")) return;
  const Result pb = run(fmt::format("{} {} {} --purge --protobuf", kPython, reader(), dir));
  ASSERT_EQ(pb.rc, 0) << pb.out;
  EXPECT_EQ(pb.out, purged.out);
}

TEST(TensorBoard, ReaderRejectsCorruption) {
  if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  const std::string dir = temp_dir();
  std::string path;
  {
    TensorBoardWriter w(dir);
    path = w.path();
    w.add_scalar("train/loss", 0.5, 3);
  }
  const std::string good = read_bytes(path);
  const size_t second = 16 + le(good, 0, 8);  // the scalar record
  const size_t n = le(good, second, 8);
  ASSERT_EQ(second + 16 + n, good.size());
  struct Case {
    size_t at;
    const char* want;
  };
  const std::vector<Case> cases = {
      {0, "length CRC mismatch"},                  // the first record's length
      {second + 2, "length CRC mismatch"},         // the scalar's length
      {second + 9, "length CRC mismatch"},         // its length CRC
      {second + 12, "data CRC mismatch"},          // the first data byte
      {second + 12 + n - 1, "data CRC mismatch"},  // the float's last byte
      {good.size() - 1, "data CRC mismatch"},      // the data CRC
  };
  const std::string bad = dir + "/bad.tfevents";
  for (const auto& c : cases) {
    std::string bytes = good;
    bytes[c.at] = static_cast<char>(bytes[c.at] ^ 0x10);
    write_bytes(bad, bytes);
    const Result r = run(fmt::format("{} {} {}", kPython, reader(), bad));
    EXPECT_EQ(r.rc, 1) << "byte " << c.at << ": " << r.out;
    EXPECT_TRUE(contains(r.out, c.want)) << "byte " << c.at << ": " << r.out;
  }
  write_bytes(bad, good.substr(0, good.size() - 3));
  const Result cut = run(fmt::format("{} {} {}", kPython, reader(), bad));
  EXPECT_EQ(cut.rc, 1) << cut.out;
  EXPECT_TRUE(contains(cut.out, "truncated record")) << cut.out;
  // Valid framing around data that is not an Event.
  {
    const std::string junk = "\xff\xff";  // a varint key that never ends
    std::string rec;
    for (int i = 0; i < 8; ++i) rec.push_back(static_cast<char>((junk.size() >> (8 * i)) & 0xFF));
    const uint32_t lc = masked_crc32c(rec), dc = masked_crc32c(junk);
    for (int i = 0; i < 4; ++i) rec.push_back(static_cast<char>((lc >> (8 * i)) & 0xFF));
    rec += junk;
    for (int i = 0; i < 4; ++i) rec.push_back(static_cast<char>((dc >> (8 * i)) & 0xFF));
    write_bytes(bad, good + rec);
    const Result r = run(fmt::format("{} {} {}", kPython, reader(), bad));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_TRUE(contains(r.out, "varint")) << r.out;
  }
}

TEST(TensorBoard, ErrorsNameTheFolder) {
  const std::string dir = temp_dir();
  write_bytes(dir + "/file", "x");
  expect_error([&] { TensorBoardWriter w(dir + "/file/tb"); }, {"TensorBoard folder", dir + "/file/tb"});
}

TEST(PlotMetrics, DrawsAPngFromMetricsJsonl) {
  if (!python_has("matplotlib")) GTEST_SKIP() << "matplotlib (python3-matplotlib) is not installed for " << kPython;
  const std::string dir = temp_dir();
  std::string jsonl;
  int line = 0;
  for (int step = 10; step <= 300; step += 10) {
    jsonl += fmt::format(R"({{"step": {}, "loss": {}, "lr": {}, "tokens_per_s": {}, "epoch": 0}})", step,
                         8.0 / std::sqrt(double(step)), 1e-3 * std::min(1.0, step / 100.0), 5000 + step) +
             "\n";
    ++line;
    if (step % 100 == 0) {
      jsonl += fmt::format(R"({{"step": {}, "eval_loss": {}, "eval_accuracy": {}}})", step, 9.0 / std::sqrt(step),
                           step / 400.0) +
               "\n";
      ++line;
    }
    if (step == 50) {
      jsonl += "{\"step\": 55, \"loss\": \n";  // a line cut short by a crash
      jsonl += "[1, 2]\n";
      jsonl += "{\"loss\": 1.0}\n";
      jsonl += "{\"step\": 56, \"loss\": null, \"lr\": \"high\", \"note\": true}\n";
      line += 4;
    }
  }
  // The first malformed line is line 6 (five steps before it).
  write_bytes(dir + "/metrics.jsonl", jsonl);
  const Result r = run(fmt::format("{} {} {}", kPython, plotter(), dir));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "metrics.jsonl:6: not JSON")) << r.out;
  EXPECT_TRUE(contains(r.out, "metrics.jsonl:7: not a JSON object")) << r.out;
  EXPECT_TRUE(contains(r.out, "metrics.jsonl:8: no numeric 'step'")) << r.out;
  const std::string png = read_bytes(dir + "/metrics.png");
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  const std::string out = dir + "/elsewhere.png";
  const Result r2 = run(fmt::format("{} {} {} --out {}", kPython, plotter(), dir, out));
  ASSERT_EQ(r2.rc, 0) << r2.out;
  EXPECT_EQ(read_bytes(out).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST(PlotMetrics, MissingOrEmptyMetricsAreClearErrors) {
  if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  const std::string dir = temp_dir();
  const Result missing = run(fmt::format("{} {} {}", kPython, plotter(), dir));
  EXPECT_EQ(missing.rc, 1) << missing.out;
  EXPECT_TRUE(contains(missing.out, "metrics.jsonl not found")) << missing.out;
  write_bytes(dir + "/metrics.jsonl", "");
  const Result empty = run(fmt::format("{} {} {}", kPython, plotter(), dir));
  EXPECT_EQ(empty.rc, 1) << empty.out;
  EXPECT_TRUE(contains(empty.out, "holds no metrics")) << empty.out;
  EXPECT_FALSE(fs::exists(dir + "/metrics.png"));
}
