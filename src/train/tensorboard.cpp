#include "train/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"

namespace dense::train {

namespace {

// Byte-at-a-time table: a few records per optimizer step make speed irrelevant, and one portable path is one
// path to test (an SSE4.2 variant would leave the table untested on the machines that build it).
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/), just the four kinds an Event of
// scalars (and a restart marker) needs.
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (uint64_t(field) << 3) | type); }

void put_little_endian(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed64);
  put_little_endian(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed32);
  put_little_endian(out, bits, 4);
}

void put_bytes(std::string& out, uint32_t field, std::string_view v) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, v.size());
  out.append(v);
}

// int64 is a plain (not zigzag) varint: a negative step takes ten bytes, as protobuf encodes it.
void put_int64(std::string& out, uint32_t field, int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(v));
}

// tensorflow/core/util/event.proto and summary.proto.
constexpr uint32_t kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5, kEventSessionLog = 7;
constexpr uint32_t kSessionLogStatus = 1, kSessionStart = 1;
constexpr uint32_t kSummaryValue = 1;
constexpr uint32_t kValueTag = 1, kValueSimpleValue = 2;

// Every event carries wall_time; step is left out when 0, as proto3 omits default values (readers default it).
std::string event_header(int64_t step) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const double wall_time = double(std::chrono::duration_cast<std::chrono::microseconds>(now).count()) * 1e-6;
  std::string e;
  put_double(e, kEventWallTime, wall_time);
  if (step != 0) put_int64(e, kEventStep, step);
  return e;
}

std::string os_error() { return std::strerror(errno); }

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  // A '/' would make the name a path.
  std::string h = buf;
  for (char& c : h)
    if (c == '/') c = '_';
  return h;
}

}  // namespace

uint32_t crc32c(std::string_view bytes, uint32_t crc) {
  crc = ~crc;
  for (unsigned char b : bytes) crc = kCrc32cTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  DENSE_CHECK(!ec, "cannot create the TensorBoard folder {}: {}", dir, ec.message());
  const std::string base =
      (std::filesystem::path(dir) /
       fmt::format("events.out.tfevents.{}.{}.{}", static_cast<long long>(std::time(nullptr)), hostname(), ::getpid()))
          .string();
  // O_EXCL: never append to (or truncate) another writer's file.
  int fd = -1;
  for (int n = 0; fd < 0; ++n) {
    path_ = n == 0 ? base : fmt::format("{}.{}", base, n);
    fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || n >= 1000)) DENSE_FAIL("cannot create {}: {}", path_, os_error());
  }
  file_ = ::fdopen(fd, "wb");
  if (!file_) {
    const std::string why = os_error();
    ::close(fd);
    DENSE_FAIL("cannot open {}: {}", path_, why);
  }
  try {
    std::string e = event_header(0);
    put_bytes(e, kEventFileVersion, "brain.Event:2");
    write_record(e);
    // The file is visible to TensorBoard as a valid (empty) run from the start.
    flush();
  } catch (...) {
    // No destructor runs for a constructor that throws.
    std::fclose(file_);
    file_ = nullptr;
    throw;
  }
}

TensorBoardWriter::~TensorBoardWriter() {
  if (!file_) return;
  try {
    flush();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: %s\n", e.what());
  }
  std::fclose(file_);
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  std::string v;
  put_bytes(v, kValueTag, tag);
  put_float(v, kValueSimpleValue, static_cast<float>(value));
  std::string summary;
  put_bytes(summary, kSummaryValue, v);
  std::string e = event_header(step);
  put_bytes(e, kEventSummary, summary);
  write_record(e);
}

void TensorBoardWriter::add_session_start(int64_t step) {
  std::string log;
  put_int64(log, kSessionLogStatus, kSessionStart);  // an enum is a varint
  std::string e = event_header(step);
  put_bytes(e, kEventSessionLog, log);
  write_record(e);
}

void TensorBoardWriter::flush() {
  if (std::fflush(file_) != 0) DENSE_FAIL("cannot write {}: {}", path_, os_error());
  if (::fsync(::fileno(file_)) != 0) DENSE_FAIL("cannot fsync {}: {}", path_, os_error());
}

void TensorBoardWriter::write_record(std::string_view data) {
  std::string rec;
  rec.reserve(data.size() + 16);
  put_little_endian(rec, data.size(), 8);
  const uint32_t length_crc = masked_crc32c(rec);
  put_little_endian(rec, length_crc, 4);
  rec.append(data);
  put_little_endian(rec, masked_crc32c(data), 4);
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size()) DENSE_FAIL("cannot write {}: {}", path_, os_error());
}

}  // namespace dense::train
