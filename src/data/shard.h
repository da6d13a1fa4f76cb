#pragma once
// What every HDF5 shard format shares (docs/model.md §3.1-3.2): the attributes each shard carries, what a reader
// expects of them, atomic creation, and a reproducible random stream for data preparation.
//
// Every shard written here carries these root attributes:
//   format          string  "bert" | "packed" | "classification"
//   format_version  int64   kShardFormatVersion
//   vocab_hash      string  identifies the vocabulary the ids belong to
//   seq_len         int64   N, the row length of input_ids
//   prep_config     string  the preparation settings as JSON
// Datasets are chunked along the rows, byte-shuffled and gzip-compressed (compression runs outside HDF5's
// global lock, so writers in several threads scale); the file uses the HDF5 1.8 object format. h5py / LDDL
// loaders read them as usual.
//
// Integrity: HDF5 itself can crash on a damaged file, so the first 512 bytes of every shard (an HDF5 user
// block, skipped by HDF5 and h5py) hold a text header with the file length and the CRC-32 of everything
// after the header:
//   densetrain-shard-integrity\nlength <bytes>\ncrc32 <8 hex digits>\n   (then zeros up to 512 bytes)
// Readers check it before HDF5 parses the file, so a truncated or corrupted shard is a dense::Error naming
// the file, never a crash. Files from other toolchains (no header) go to HDF5 unverified.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "data/hdf5_util.h"

namespace dense::data {

inline constexpr int64_t kShardFormatVersion = 1;

// Attributes the writer stores besides format, version and seq_len.
struct ShardMeta {
  std::string vocab_hash;          // e.g. the sha256 of vocab.txt
  std::string prep_config = "{}";  // JSON text (validated on write and read)
};

// Storage knobs of a writer.
struct ShardWriteOptions {
  int gzip_level = 4;                      // 0-9
  int64_t chunk_bytes = int64_t(1) << 18;  // target bytes per chunk of the widest dataset
};

// What a reader checks besides the format it reads. A mismatch is a dense::Error naming the file, the
// attribute, what was expected and what was found.
struct ShardExpect {
  std::string vocab_hash;  // empty: accept any
  int64_t seq_len = 0;     // 0: accept any
  // Accept a file with none of our attributes (e.g. an LDDL shard); the layout is still validated and any
  // attribute that is present is still checked.
  bool allow_foreign = false;
  // Check the whole-file CRC before opening (reads the file once; about 0.1 s per 200 MB).
  bool verify_checksum = true;
};

// What a reader found.
struct ShardInfo {
  std::string path;
  std::string format;          // empty for a foreign file
  int64_t format_version = 0;  // 0 for a foreign file
  std::string vocab_hash;
  int64_t seq_len = 0;
  std::string prep_config;
  int64_t rows = 0;
  bool foreign = false;
  bool checksum_verified = false;
};

// Checks a shard's integrity header: true when present and matching, false when the file has none (not
// written by densetrain); dense::Error (naming the file) when the file is missing, truncated, or its CRC
// differs. Reads the whole file in bounded memory. A re-run can use it to tell complete shards.
// check_crc false checks only the header and the length (a few bytes read, no matter the file's size): what
// a trainer can afford on every shard before its first step.
bool verify_shard_integrity(const std::string& path, bool check_crc = true);

inline constexpr size_t kShardHeaderBytes = 512;

// A reproducible stream of random numbers: Philox-4x32-10 keyed by `seed`, with `stream` selecting an
// independent sequence (e.g. the document index), so work can be split across threads and still give the
// same result for the same seed. A thin adapter over dense::PhiloxStream (core/rng.h) in its (seed, stream)
// counter layout; randint is its randint_lemire.
class PhiloxRng {
 public:
  explicit PhiloxRng(uint64_t seed, uint64_t stream = 0) : s_(dense::PhiloxStream::with_stream(seed, stream)) {}
  uint32_t next_u32() { return s_.next_u32(); }
  double uniform() { return s_.uniform(); }  // [0, 1), 53 random bits
  // Uniform on [lo, hi], both inclusive, unbiased.
  int64_t randint(int64_t lo, int64_t hi) { return s_.randint_lemire(lo, hi); }
  template <typename T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates
    s_.shuffle(v);
  }

 private:
  dense::PhiloxStream s_;
};

// 64-bit mix of a seed with up to two stream indices (splitmix64 finaliser): independent seeds per block/run,
// epoch or file, for PhiloxRng and dense::Generator. Preparation and training both derive their streams with it.
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0);

// Python's round() (half to even) of x, as LDDL computes counts: round(0.15 * 128) = 19.
int64_t round_half_even(double x);

namespace detail {

// Creates `<path>.tmp-<pid>`, writes the common attributes, and on commit() closes, fsyncs and renames it
// to `path`. Destroyed without commit() (an exception, a crash), it removes the temporary file: a file
// under the final name is always complete.
class AtomicShardFile {
 public:
  AtomicShardFile(std::string path, const std::string& format, int64_t seq_len, const ShardMeta& meta);
  ~AtomicShardFile();
  AtomicShardFile(const AtomicShardFile&) = delete;
  AtomicShardFile& operator=(const AtomicShardFile&) = delete;
  hid_t id() const { return file_.get(); }
  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }
  bool committed() const { return committed_; }
  void commit();
  // Abandons an uncommitted file: truncates the temporary to zero bytes and removes its name, so that the
  // HDF5 handles still open on it (the writer's datasets, then the file) can flush their last metadata and
  // close even when the disk is full; otherwise a failed H5Fclose leaves the file in HDF5's table and the
  // library crashes on it at exit. Writers call it before their datasets are destroyed. No-op once committed.
  void discard() noexcept;

 private:
  std::string path_, tmp_;
  h5::Id file_;
  bool committed_ = false, discarded_ = false;
};

// Opens `path` and checks the common attributes against `format` and `expect`.
std::pair<h5::Id, ShardInfo> open_shard(const std::string& path, const std::string& format, const ShardExpect& expect);

// Checks that the rows' length N (read from input_ids) agrees with the file's seq_len attribute (a foreign file
// may lack it) and with what the caller expects, then records N and the row count in `info`.
void settle_row_shape(ShardInfo& info, int64_t rows, int64_t N, const ShardExpect& expect);
// Checks that dataset `name` exists with the element kind/size and rank given; returns its shape.
std::vector<int64_t> require_dataset(hid_t file, const std::string& path, const std::string& name, h5::ElemKind kind,
                                     size_t size, int rank);
// Chunk rows for a row of `row_bytes` bytes.
int64_t chunk_rows_for(int64_t row_bytes, const ShardWriteOptions& opt);
// Throws unless text is valid JSON.
void check_json(const std::string& text, const std::string& where);

}  // namespace detail

}  // namespace dense::data
