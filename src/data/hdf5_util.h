#pragma once
// Thin RAII layer over the HDF5 C API (1.10, serial, thread-safe build). Every failure becomes a
// dense::Error naming the file and the object at fault, with HDF5's own error stack appended; the library's
// automatic printing to stderr is switched off. The shard formats (shard.h) are built on this.
#include <hdf5.h>

#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace dense::data::h5 {

// Owns one HDF5 identifier of any kind (file, group, dataset, dataspace, datatype, attribute, property list)
// and closes it on destruction. Move-only.
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) : id_(id) {}
  ~Id() { reset(); }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  Id(Id&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Id& operator=(Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes quietly (destructor semantics); close() below reports failures.
  void reset() noexcept;
  // Closes and throws dense::Error (naming `where`) when HDF5 reports a failure, e.g. a failed flush.
  void close(const std::string& where);

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Switches off HDF5's automatic error printing for the calling thread (the error stack is per thread in the
// thread-safe library). Cheap and idempotent; every helper here calls it.
void quiet_errors();

// The current HDF5 error stack as one line (most specific first, at most a few entries), then clears it.
std::string error_stack();

// Throws dense::Error "<where>: <what> (HDF5: <stack>)".
[[noreturn]] void fail(const std::string& where, const std::string& what);
// Returns id when valid, else fail(where, what).
hid_t check_id(hid_t id, const std::string& where, const std::string& what);
// Throws when r < 0.
void check(herr_t r, const std::string& where, const std::string& what);

// ---- files --------------------------------------------------------------------------------------
// Creates (truncating) a file in the HDF5 1.8 object format: superblock v2 and v2 object headers carry
// checksums; readable by HDF5 >= 1.8 (h5py). `userblock` bytes (0, or a power of two >= 512) are reserved at
// the start of the file for the caller (HDF5 and h5py skip them).
Id create_file(const std::string& path, size_t userblock = 0);
// Opens read-only; errors say whether the file is missing, unreadable or not HDF5 (truncated, garbage).
// Note: HDF5 1.10 is not hardened against crafted or corrupted files (e.g. a damaged global heap can crash
// it); shard.h verifies a whole-file checksum before a file of ours reaches HDF5.
Id open_file(const std::string& path);

// ---- attributes (on a file or any object) ------------------------------------------------------
bool has_attribute(hid_t obj, const std::string& name);
// Variable-length UTF-8 string (h5py reads it as str).
void write_string_attribute(hid_t obj, const std::string& name, const std::string& value, const std::string& where);
void write_int_attribute(hid_t obj, const std::string& name, int64_t value, const std::string& where);
// nullopt when absent; dense::Error when present with the wrong type (fixed- and variable-length strings,
// and any scalar or one-element integer, are accepted).
std::optional<std::string> read_string_attribute(hid_t obj, const std::string& name, const std::string& where);
std::optional<int64_t> read_int_attribute(hid_t obj, const std::string& name, const std::string& where);

// ---- datasets -----------------------------------------------------------------------------------
enum class ElemKind { Int, UInt, Float, Other };

struct DatasetInfo {
  ElemKind kind = ElemKind::Other;
  size_t size = 0;  // bytes per element
  std::vector<int64_t> dims;
  std::string dtype_name() const;  // "int32", "float32", "uint8", "string", ...
};

bool has_dataset(hid_t file, const std::string& name);
// Type and shape of a dataset; dense::Error when it cannot be opened.
DatasetInfo dataset_info(hid_t file, const std::string& name, const std::string& where);

// The HDF5 in-memory type of a C++ element type (int8_t, int32_t, int64_t, float).
template <typename T>
hid_t native_type();
template <>
hid_t native_type<int8_t>();
template <>
hid_t native_type<int32_t>();
template <>
hid_t native_type<int64_t>();
template <>
hid_t native_type<float>();

// Reads rows [begin, end) of a dataset of shape [n] or [n, k] into out (row-major, (end-begin)*k values),
// converting to T's native type.
template <typename T>
void read_rows(hid_t dataset, int64_t begin, int64_t end, T* out, const std::string& where);

// A dataset of shape [rows, cols] (cols = 0: shape [rows]) that grows by appended rows: chunked along the
// rows, byte-shuffled and gzip-compressed (HDF5's standard shuffle + deflate filters, readable by any HDF5 /
// h5py). Chunks are filtered here and stored with H5Dwrite_chunk, so compression runs outside HDF5's global
// lock and several writers in different threads compress in parallel. Stored little-endian.
class AppendDataset {
 public:
  AppendDataset() = default;
  // file_type: a little-endian integer or IEEE float type (H5T_STD_I32LE, H5T_IEEE_F32LE, ...).
  AppendDataset(hid_t file, const std::string& name, hid_t file_type, int64_t cols, int64_t chunk_rows, int gzip_level,
                std::string where);
  template <typename T>
  void append(const T* data, int64_t rows) {
    static_assert(std::endian::native == std::endian::little, "shards are written on little-endian hosts");
    check_type(sizeof(T), std::is_floating_point_v<T>);
    append_raw(data, rows);
  }
  int64_t rows() const { return rows_; }
  // Writes the last (partial) chunk and closes the dataset.
  void close();

 private:
  void check_type(size_t size, bool is_float) const;
  void append_raw(const void* data, int64_t rows);
  void write_chunk();
  Id dset_;
  int64_t cols_ = 0, chunk_rows_ = 0, rows_ = 0, chunks_written_ = 0, fill_ = 0;
  size_t elem_size_ = 0;
  bool is_float_ = false;
  int gzip_level_ = 4;
  std::vector<unsigned char> chunk_, shuffled_, compressed_;
  std::string where_;
};

}  // namespace dense::data::h5
