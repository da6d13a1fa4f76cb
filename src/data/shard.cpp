#include "data/shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file_io.h"

namespace dense::data {

int64_t round_half_even(double x) { return int64_t(std::nearbyint(x)); }

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  auto mix = [](uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ a) ^ (b * 0xD1B54A32D192ED03ull));
}

// ---- integrity header -----------------------------------------------------------------------------------------

namespace {

constexpr char kMagic[] = "densetrain-shard-integrity\n";

// An open file descriptor that closes itself.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// CRC-32 of bytes [from, size) of fd, read in 1 MiB blocks.
uint32_t crc_from(int fd, uint64_t from, uint64_t size, const std::string& path) {
  std::vector<unsigned char> buf(size_t(1) << 20);
  uLong crc = crc32_z(0L, Z_NULL, 0);
  uint64_t off = from;
  while (off < size) {
    const size_t want = size_t(std::min<uint64_t>(buf.size(), size - off));
    const ssize_t got = ::pread(fd, buf.data(), want, off_t(off));
    DENSE_CHECK(got > 0, "{}: read failed at byte {}: {}", path, off, got < 0 ? std::strerror(errno) : "end of file");
    crc = crc32_z(crc, buf.data(), size_t(got));
    off += uint64_t(got);
  }
  return uint32_t(crc);
}

std::string header_text(uint64_t length, uint32_t crc) {
  std::string h = fmt::format("{}length {}\ncrc32 {:08x}\n", kMagic, length, crc);
  h.resize(kShardHeaderBytes, '\0');
  return h;
}

}  // namespace

bool verify_shard_integrity(const std::string& path, bool check_crc) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY);
  DENSE_CHECK(f.fd >= 0, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  DENSE_CHECK(::fstat(f.fd, &st) == 0, "{}: cannot stat: {}", path, std::strerror(errno));
  DENSE_CHECK(S_ISREG(st.st_mode), "{}: not a regular file", path);
  const uint64_t size = uint64_t(st.st_size);
  std::string head(kShardHeaderBytes, '\0');
  const ssize_t got = ::pread(f.fd, head.data(), head.size(), 0);
  DENSE_CHECK(got >= 0, "{}: read failed: {}", path, std::strerror(errno));
  head.resize(size_t(got));
  const size_t magic_len = sizeof(kMagic) - 1;
  if (head.compare(0, std::min(head.size(), magic_len), kMagic, std::min(head.size(), magic_len)) != 0 || head.empty())
    return false;
  DENSE_CHECK(head.size() == kShardHeaderBytes, "{}: truncated ({} bytes, shorter than its integrity header)", path,
              size);
  unsigned long long length = 0;
  unsigned crc = 0;
  int consumed = 0;
  const int n = std::sscanf(head.c_str() + magic_len, "length %llu\ncrc32 %8x\n%n", &length, &crc, &consumed);
  DENSE_CHECK(n == 2 && consumed > 0 && header_text(length, crc) == head,
              "{}: damaged integrity header (the file is corrupt)", path);
  DENSE_CHECK(length == size, "{}: {} ({} bytes, {} written)", path, size < length ? "truncated" : "has extra bytes",
              size, length);
  if (!check_crc) return true;
  const uint32_t actual = crc_from(f.fd, kShardHeaderBytes, size, path);
  DENSE_CHECK(actual == crc, "{}: corrupt: CRC-32 {:08x} differs from the {:08x} written", path, actual, crc);
  return true;
}

namespace detail {

namespace {
bool fs_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}
}  // namespace

void check_json(const std::string& text, const std::string& where) {
  try {
    const auto parsed = nlohmann::json::parse(text);
    (void)parsed;
  } catch (const std::exception& e) {
    DENSE_FAIL("{}: attribute 'prep_config' is not valid JSON: {}", where, e.what());
  }
}

int64_t chunk_rows_for(int64_t row_bytes, const ShardWriteOptions& opt) {
  DENSE_CHECK(opt.gzip_level >= 0 && opt.gzip_level <= 9, "gzip level {} outside 0-9", opt.gzip_level);
  DENSE_CHECK(opt.chunk_bytes > 0, "chunk_bytes must be positive ({})", opt.chunk_bytes);
  return std::max<int64_t>(1, opt.chunk_bytes / std::max<int64_t>(1, row_bytes));
}

AtomicShardFile::AtomicShardFile(std::string path, const std::string& format, int64_t seq_len, const ShardMeta& meta)
    : path_(std::move(path)) {
  DENSE_CHECK(!path_.empty(), "shard path is empty");
  DENSE_CHECK(seq_len > 0, "{}: sequence length must be positive ({})", path_, seq_len);
  check_json(meta.prep_config, path_);
  tmp_ = temporary_path_for(path_);
  try {
    // Inside the try: on a full disk H5Fcreate can fail after the file exists (the superblock does not fit),
    // and that file is ours to remove too.
    file_ = h5::create_file(tmp_, kShardHeaderBytes);
    h5::write_string_attribute(file_.get(), "format", format, tmp_);
    h5::write_int_attribute(file_.get(), "format_version", kShardFormatVersion, tmp_);
    h5::write_string_attribute(file_.get(), "vocab_hash", meta.vocab_hash, tmp_);
    h5::write_int_attribute(file_.get(), "seq_len", seq_len, tmp_);
    h5::write_string_attribute(file_.get(), "prep_config", meta.prep_config, tmp_);
  } catch (...) {
    discard();
    file_.reset();
    throw;
  }
}

AtomicShardFile::~AtomicShardFile() {
  if (committed_) return;
  discard();
  file_.reset();
}

void AtomicShardFile::discard() noexcept {
  if (committed_ || discarded_) return;
  discarded_ = true;
  // Freeing the data blocks leaves room for the few KB of metadata HDF5 writes when it closes; the open
  // descriptor keeps the unlinked inode until then.
  (void)::truncate(tmp_.c_str(), 0);
  std::remove(tmp_.c_str());
}

void AtomicShardFile::commit() {
  DENSE_CHECK(!committed_, "{}: committed twice", path_);
  try {
    h5::check(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), tmp_, "flush failed");
    file_.close(tmp_);
    // The integrity header goes into the user block once the HDF5 file is complete.
    Fd f;
    f.fd = ::open(tmp_.c_str(), O_RDWR);
    DENSE_CHECK(f.fd >= 0, "{}: cannot reopen: {}", tmp_, std::strerror(errno));
    struct stat st {};
    DENSE_CHECK(::fstat(f.fd, &st) == 0, "{}: cannot stat: {}", tmp_, std::strerror(errno));
    const uint64_t size = uint64_t(st.st_size);
    DENSE_CHECK(size > kShardHeaderBytes, "{}: only {} bytes written", tmp_, size);
    const std::string head = header_text(size, crc_from(f.fd, kShardHeaderBytes, size, tmp_));
    DENSE_CHECK(::pwrite(f.fd, head.data(), head.size(), 0) == ssize_t(head.size()),
                "{}: cannot write the integrity header: {}", tmp_, std::strerror(errno));
    DENSE_CHECK(::fsync(f.fd) == 0, "{}: fsync failed: {}", tmp_, std::strerror(errno));
    commit_temporary(tmp_, path_);  // rename, then fsync the folder so the rename is durable
  } catch (...) {
    discard();
    file_.reset();
    committed_ = true;  // nothing left to clean up
    throw;
  }
  committed_ = true;
}

void settle_row_shape(ShardInfo& info, int64_t rows, int64_t N, const ShardExpect& expect) {
  if (!info.foreign || info.seq_len > 0)
    DENSE_CHECK(info.seq_len == N, "{}: attribute 'seq_len' is {} but input_ids rows hold {} tokens", info.path,
                info.seq_len, N);
  if (expect.seq_len > 0)
    DENSE_CHECK(N == expect.seq_len, "{}: sequence length: expected {}, found {} (input_ids)", info.path,
                expect.seq_len, N);
  info.seq_len = N;
  info.rows = rows;
}

std::pair<h5::Id, ShardInfo> open_shard(const std::string& path, const std::string& format, const ShardExpect& expect) {
  ShardInfo info;
  info.path = path;
  DENSE_CHECK(fs_exists(path), "{}: no such file", path);
  DENSE_CHECK(!std::filesystem::is_directory(path), "{}: is a folder, not a shard", path);
  if (expect.verify_checksum) info.checksum_verified = verify_shard_integrity(path);
  h5::Id file = h5::open_file(path);
  const hid_t f = file.get();
  const auto fmt_attr = h5::read_string_attribute(f, "format", path);
  const auto version = h5::read_int_attribute(f, "format_version", path);
  const auto vocab = h5::read_string_attribute(f, "vocab_hash", path);
  const auto seq_len = h5::read_int_attribute(f, "seq_len", path);
  const auto config = h5::read_string_attribute(f, "prep_config", path);
  const bool any = fmt_attr || version || vocab || seq_len || config;
  if (!any) {
    DENSE_CHECK(expect.allow_foreign,
                "{}: not a densetrain shard (no 'format' attribute; expected a '{}' shard); files from other "
                "toolchains such as LDDL load only with ShardExpect::allow_foreign",
                path, format);
    info.foreign = true;
  } else {
    DENSE_CHECK(fmt_attr.has_value(), "{}: attribute 'format' is missing (expected '{}')", path, format);
    DENSE_CHECK(*fmt_attr == format, "{}: attribute 'format': expected '{}', found '{}'", path, format, *fmt_attr);
    DENSE_CHECK(version.has_value(), "{}: attribute 'format_version' is missing (expected {})", path,
                kShardFormatVersion);
    DENSE_CHECK(*version == kShardFormatVersion,
                "{}: attribute 'format_version': expected {}, found {} (written by a different densetrain version)",
                path, kShardFormatVersion, *version);
    DENSE_CHECK(vocab.has_value(), "{}: attribute 'vocab_hash' is missing", path);
    DENSE_CHECK(seq_len.has_value(), "{}: attribute 'seq_len' is missing", path);
    DENSE_CHECK(config.has_value(), "{}: attribute 'prep_config' is missing", path);
    check_json(*config, path);
    DENSE_CHECK(info.checksum_verified || !expect.verify_checksum,
                "{}: the integrity header is missing or damaged (every densetrain shard has one; the file was "
                "modified or corrupted)",
                path);
    info.format = *fmt_attr;
    info.format_version = *version;
  }
  if (vocab) info.vocab_hash = *vocab;
  if (config) info.prep_config = *config;
  if (seq_len) info.seq_len = *seq_len;
  if (!expect.vocab_hash.empty() && vocab)
    DENSE_CHECK(*vocab == expect.vocab_hash,
                "{}: attribute 'vocab_hash': expected '{}', found '{}' (the shard was prepared with a different "
                "vocabulary)",
                path, expect.vocab_hash, *vocab);
  if (expect.seq_len > 0 && seq_len)
    DENSE_CHECK(*seq_len == expect.seq_len, "{}: attribute 'seq_len': expected {}, found {}", path, expect.seq_len,
                *seq_len);
  return {std::move(file), std::move(info)};
}

std::vector<int64_t> require_dataset(hid_t file, const std::string& path, const std::string& name, h5::ElemKind kind,
                                     size_t size, int rank) {
  DENSE_CHECK(h5::has_dataset(file, name), "{}: dataset '{}' is missing", path, name);
  const h5::DatasetInfo info = h5::dataset_info(file, name, path);
  h5::DatasetInfo want;
  want.kind = kind;
  want.size = size;
  DENSE_CHECK(info.kind == kind && info.size == size, "{}: dataset '{}': dtype {}, expected {}", path, name,
              info.dtype_name(), want.dtype_name());
  DENSE_CHECK(int(info.dims.size()) == rank, "{}: dataset '{}': {} dimensions, expected {}", path, name,
              info.dims.size(), rank);
  return info.dims;
}

}  // namespace detail

}  // namespace dense::data
