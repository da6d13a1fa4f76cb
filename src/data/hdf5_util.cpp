#include "data/hdf5_util.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace dense::data::h5 {

namespace {
// HDF5 normally registers H5_term_library with atexit; it closes every file still open at exit, and on a
// file whose close already failed (a full disk) it crashes after the program has reported its error. Every
// file we write is closed explicitly (shard.h: AtomicShardFile commits or discards), so the library is left
// to the operating system at exit. Must run before HDF5 initialises, hence a static initialiser.
const bool kNoAtexitCleanup = [] {
  (void)H5dont_atexit();
  return true;
}();
}  // namespace

void Id::reset() noexcept {
  if (id_ < 0) return;
  quiet_errors();
  const H5I_type_t t = H5Iget_type(id_);
  switch (t) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: H5Idec_ref(id_); break;
  }
  H5Eclear2(H5E_DEFAULT);
  id_ = H5I_INVALID_HID;
}

void Id::close(const std::string& where) {
  if (id_ < 0) return;
  quiet_errors();
  const hid_t id = id_;
  id_ = H5I_INVALID_HID;
  herr_t r = 0;
  switch (H5Iget_type(id)) {
    case H5I_FILE: r = H5Fclose(id); break;
    case H5I_DATASET: r = H5Dclose(id); break;
    case H5I_ATTR: r = H5Aclose(id); break;
    default: r = H5Idec_ref(id); break;
  }
  check(r, where, "closing failed");
}

void quiet_errors() {
  thread_local bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

namespace {

herr_t walk_cb(unsigned n, const H5E_error2_t* e, void* data) {
  auto* lines = static_cast<std::vector<std::string>*>(data);
  std::string line;
  if (e->desc != nullptr && e->desc[0] != '\0') line = e->desc;
  char minor[256] = {0};
  if (H5Eget_msg(e->min_num, nullptr, minor, sizeof(minor)) > 0 && minor[0] != '\0') {
    if (line.empty())
      line = minor;
    else if (line.find(minor) == std::string::npos)
      line += std::string(" [") + minor + "]";
  }
  if (!line.empty() && (lines->empty() || lines->back() != line)) lines->push_back(line);
  return 0;
}

}  // namespace

std::string error_stack() {
  quiet_errors();
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &lines);
  H5Eclear2(H5E_DEFAULT);
  std::string out;
  const size_t shown = std::min<size_t>(lines.size(), 4);
  for (size_t i = 0; i < shown; ++i) {
    if (i) out += "; ";
    out += lines[i];
  }
  return out;
}

void fail(const std::string& where, const std::string& what) {
  const std::string stack = error_stack();
  if (stack.empty()) DENSE_FAIL("{}: {}", where, what);
  DENSE_FAIL("{}: {} (HDF5: {})", where, what, stack);
}

hid_t check_id(hid_t id, const std::string& where, const std::string& what) {
  if (id < 0) fail(where, what);
  return id;
}

void check(herr_t r, const std::string& where, const std::string& what) {
  if (r < 0) fail(where, what);
}

namespace {

Id file_access_plist(const std::string& path) {
  Id fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), path, "cannot create a property list"));
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18), path, "cannot set the format version");
  // Lock where the file system supports it; do not fail where it has locking switched off (NFS, Lustre).
  check(H5Pset_file_locking(fapl.get(), true, true), path, "cannot set file locking");
  check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), path, "cannot set the close degree");
  return fapl;
}

}  // namespace

Id create_file(const std::string& path, size_t userblock) {
  quiet_errors();
  Id fapl = file_access_plist(path);
  Id fcpl(check_id(H5Pcreate(H5P_FILE_CREATE), path, "cannot create a property list"));
  if (userblock > 0) check(H5Pset_userblock(fcpl.get(), hsize_t(userblock)), path, "cannot reserve the user block");
  // No modification times in object headers: the same data gives a byte-identical file.
  check(H5Pset_obj_track_times(fcpl.get(), false), path, "cannot switch off time tracking");
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  if (f < 0) {
    const int err = errno;
    const std::string stack = error_stack();
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
      DENSE_FAIL("{}: cannot create the file: the folder '{}' does not exist", path, parent.string());
    DENSE_FAIL("{}: cannot create the file: {} (HDF5: {})", path, err ? std::strerror(err) : "error", stack);
  }
  return Id(f);
}

Id open_file(const std::string& path) {
  quiet_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) DENSE_FAIL("{}: no such file", path);
  if (std::filesystem::is_directory(path, ec)) DENSE_FAIL("{}: is a folder, not an HDF5 file", path);
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe.good()) DENSE_FAIL("{}: cannot open: {}", path, std::strerror(errno));
  }
  Id fapl = file_access_plist(path);
  // Reading needs no upper bound on the format; the low bound only affects objects we create.
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST), path, "cannot set format bounds");
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (f < 0) fail(path, "not a readable HDF5 file (truncated or corrupt?)");
  return Id(f);
}

// ---- attributes -----------------------------------------------------------------------------------

bool has_attribute(hid_t obj, const std::string& name) {
  quiet_errors();
  const htri_t r = H5Aexists(obj, name.c_str());
  if (r < 0) fail("attribute '" + name + "'", "cannot query");
  return r > 0;
}

void write_string_attribute(hid_t obj, const std::string& name, const std::string& value, const std::string& where) {
  quiet_errors();
  const std::string w = where + ": attribute '" + name + "'";
  Id type(check_id(H5Tcopy(H5T_C_S1), w, "cannot create the string type"));
  check(H5Tset_size(type.get(), H5T_VARIABLE), w, "cannot set the string size");
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), w, "cannot set UTF-8");
  Id space(check_id(H5Screate(H5S_SCALAR), w, "cannot create a dataspace"));
  Id attr(
      check_id(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), w, "cannot create"));
  const char* p = value.c_str();
  check(H5Awrite(attr.get(), type.get(), &p), w, "cannot write");
  attr.close(w);
}

void write_int_attribute(hid_t obj, const std::string& name, int64_t value, const std::string& where) {
  quiet_errors();
  const std::string w = where + ": attribute '" + name + "'";
  Id space(check_id(H5Screate(H5S_SCALAR), w, "cannot create a dataspace"));
  Id attr(check_id(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), w,
                   "cannot create"));
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), w, "cannot write");
  attr.close(w);
}

namespace {

// Opens an attribute holding exactly one element; nullopt-style empty Id when absent.
Id open_single_attribute(hid_t obj, const std::string& name, const std::string& w) {
  const htri_t exists = H5Aexists(obj, name.c_str());
  if (exists < 0) fail(w, "cannot query");
  if (exists == 0) return Id();
  Id attr(check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), w, "cannot open"));
  Id space(check_id(H5Aget_space(attr.get()), w, "cannot read the dataspace"));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != 1) DENSE_FAIL("{}: holds {} values, one expected", w, n);
  return attr;
}

}  // namespace

std::optional<std::string> read_string_attribute(hid_t obj, const std::string& name, const std::string& where) {
  quiet_errors();
  const std::string w = where + ": attribute '" + name + "'";
  Id attr = open_single_attribute(obj, name, w);
  if (!attr.valid()) return std::nullopt;
  Id ftype(check_id(H5Aget_type(attr.get()), w, "cannot read the type"));
  if (H5Tget_class(ftype.get()) != H5T_STRING) DENSE_FAIL("{}: is not a string", w);
  const htri_t vlen = H5Tis_variable_str(ftype.get());
  if (vlen < 0) fail(w, "cannot read the string type");
  Id mtype(check_id(H5Tcopy(H5T_C_S1), w, "cannot create the string type"));
  if (vlen > 0) {
    check(H5Tset_size(mtype.get(), H5T_VARIABLE), w, "cannot set the string size");
    check(H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get())), w, "cannot set the character set");
    char* p = nullptr;
    check(H5Aread(attr.get(), mtype.get(), &p), w, "cannot read");
    std::string s = p ? std::string(p) : std::string();
    if (p) H5free_memory(p);
    return s;
  }
  const size_t size = H5Tget_size(ftype.get());
  if (size == 0 || size > (size_t(64) << 20)) DENSE_FAIL("{}: implausible string size {}", w, size);
  check(H5Tset_size(mtype.get(), size), w, "cannot set the string size");
  check(H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get())), w, "cannot set the character set");
  check(H5Tset_strpad(mtype.get(), H5T_STR_NULLPAD), w, "cannot set the padding");
  std::string s(size, '\0');
  check(H5Aread(attr.get(), mtype.get(), s.data()), w, "cannot read");
  const size_t end = s.find('\0');
  if (end != std::string::npos) s.resize(end);
  while (!s.empty() && s.back() == ' ' && H5Tget_strpad(ftype.get()) == H5T_STR_SPACEPAD) s.pop_back();
  return s;
}

std::optional<int64_t> read_int_attribute(hid_t obj, const std::string& name, const std::string& where) {
  quiet_errors();
  const std::string w = where + ": attribute '" + name + "'";
  Id attr = open_single_attribute(obj, name, w);
  if (!attr.valid()) return std::nullopt;
  Id ftype(check_id(H5Aget_type(attr.get()), w, "cannot read the type"));
  if (H5Tget_class(ftype.get()) != H5T_INTEGER) DENSE_FAIL("{}: is not an integer", w);
  int64_t v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), w, "cannot read");
  return v;
}

// ---- datasets -----------------------------------------------------------------------------------------

std::string DatasetInfo::dtype_name() const {
  switch (kind) {
    case ElemKind::Int: return "int" + std::to_string(size * 8);
    case ElemKind::UInt: return "uint" + std::to_string(size * 8);
    case ElemKind::Float: return "float" + std::to_string(size * 8);
    case ElemKind::Other: return "non-numeric";
  }
  return "?";
}

bool has_dataset(hid_t file, const std::string& name) {
  quiet_errors();
  const htri_t r = H5Lexists(file, name.c_str(), H5P_DEFAULT);
  if (r < 0) fail("dataset '" + name + "'", "cannot query");
  return r > 0;
}

DatasetInfo dataset_info(hid_t file, const std::string& name, const std::string& where) {
  quiet_errors();
  const std::string w = where + ": dataset '" + name + "'";
  Id d(check_id(H5Dopen2(file, name.c_str(), H5P_DEFAULT), w, "cannot open"));
  Id type(check_id(H5Dget_type(d.get()), w, "cannot read the type"));
  DatasetInfo info;
  const H5T_class_t cls = H5Tget_class(type.get());
  info.size = H5Tget_size(type.get());
  if (cls == H5T_INTEGER)
    info.kind = H5Tget_sign(type.get()) == H5T_SGN_NONE ? ElemKind::UInt : ElemKind::Int;
  else if (cls == H5T_FLOAT)
    info.kind = ElemKind::Float;
  Id space(check_id(H5Dget_space(d.get()), w, "cannot read the dataspace"));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 8) fail(w, "unreadable dataspace");
  hsize_t dims[8] = {0};
  if (rank > 0) check(H5Sget_simple_extent_dims(space.get(), dims, nullptr), w, "cannot read the shape");
  for (int i = 0; i < rank; ++i) info.dims.push_back(int64_t(dims[i]));
  return info;
}

template <>
hid_t native_type<int8_t>() {
  return H5T_NATIVE_INT8;
}
template <>
hid_t native_type<int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}

template <typename T>
void read_rows(hid_t dataset, int64_t begin, int64_t end, T* out, const std::string& where) {
  quiet_errors();
  if (end <= begin) return;
  Id space(check_id(H5Dget_space(dataset), where, "cannot read the dataspace"));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 1 || rank > 2) fail(where, "expected a 1-D or 2-D dataset");
  hsize_t dims[2] = {0, 1};
  check(H5Sget_simple_extent_dims(space.get(), dims, nullptr), where, "cannot read the shape");
  DENSE_CHECK(begin >= 0 && hsize_t(end) <= dims[0], "{}: rows [{}, {}) outside the {} stored", where, begin, end,
              dims[0]);
  const hsize_t cols = rank == 2 ? dims[1] : 1;
  hsize_t start[2] = {hsize_t(begin), 0};
  hsize_t count[2] = {hsize_t(end - begin), cols};
  check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), where, "cannot select rows");
  // The memory space has the selection's shape, so HDF5 copies whole rows (a 1-D memory space for a 2-D
  // selection makes it walk element by element).
  Id mem(check_id(H5Screate_simple(rank, count, nullptr), where, "cannot create a dataspace"));
  check(H5Dread(dataset, native_type<T>(), mem.get(), space.get(), H5P_DEFAULT, out), where,
        fmt::format("cannot read rows [{}, {}) (corrupt data?)", begin, end));
}

template void read_rows<int8_t>(hid_t, int64_t, int64_t, int8_t*, const std::string&);
template void read_rows<int32_t>(hid_t, int64_t, int64_t, int32_t*, const std::string&);
template void read_rows<int64_t>(hid_t, int64_t, int64_t, int64_t*, const std::string&);
template void read_rows<float>(hid_t, int64_t, int64_t, float*, const std::string&);

AppendDataset::AppendDataset(hid_t file, const std::string& name, hid_t file_type, int64_t cols, int64_t chunk_rows,
                             int gzip_level, std::string where)
    : cols_(cols),
      chunk_rows_(chunk_rows),
      gzip_level_(gzip_level),
      where_(std::move(where) + ": dataset '" + name + "'") {
  quiet_errors();
  DENSE_CHECK(cols >= 0 && chunk_rows >= 1, "{}: bad shape (cols {}, chunk rows {})", where_, cols, chunk_rows);
  DENSE_CHECK(gzip_level >= 0 && gzip_level <= 9, "{}: gzip level {} outside 0-9", where_, gzip_level);
  const H5T_class_t cls = H5Tget_class(file_type);
  DENSE_CHECK((cls == H5T_INTEGER || cls == H5T_FLOAT) && H5Tget_order(file_type) == H5T_ORDER_LE,
              "{}: only little-endian numbers are supported", where_);
  elem_size_ = H5Tget_size(file_type);
  is_float_ = cls == H5T_FLOAT;
  const int rank = cols > 0 ? 2 : 1;
  hsize_t dims[2] = {0, hsize_t(cols)};
  hsize_t maxdims[2] = {H5S_UNLIMITED, hsize_t(cols)};
  hsize_t chunk[2] = {hsize_t(chunk_rows), hsize_t(cols)};
  Id space(check_id(H5Screate_simple(rank, dims, maxdims), where_, "cannot create a dataspace"));
  Id dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), where_, "cannot create a property list"));
  check(H5Pset_chunk(dcpl.get(), rank, chunk), where_, "cannot set the chunk shape");
  check(H5Pset_obj_track_times(dcpl.get(), false), where_, "cannot switch off time tracking");
  check(H5Pset_shuffle(dcpl.get()), where_, "cannot set the shuffle filter");
  check(H5Pset_deflate(dcpl.get(), unsigned(gzip_level)), where_, "cannot set gzip");
  dset_ = Id(check_id(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                      where_, "cannot create"));
  chunk_.assign(size_t(chunk_rows) * size_t(std::max<int64_t>(cols, 1)) * elem_size_, 0);
}

void AppendDataset::check_type(size_t size, bool is_float) const {
  DENSE_CHECK(size == elem_size_ && is_float == is_float_, "{}: appending {}-byte {} values to {}-byte {} storage",
              where_, size, is_float ? "float" : "integer", elem_size_, is_float_ ? "float" : "integer");
}

void AppendDataset::append_raw(const void* data, int64_t rows) {
  DENSE_CHECK(dset_.valid(), "{}: append after close", where_);
  const size_t row_bytes = size_t(std::max<int64_t>(cols_, 1)) * elem_size_;
  const auto* p = static_cast<const unsigned char*>(data);
  while (rows > 0) {
    const int64_t take = std::min(rows, chunk_rows_ - fill_);
    std::memcpy(chunk_.data() + size_t(fill_) * row_bytes, p, size_t(take) * row_bytes);
    p += size_t(take) * row_bytes;
    fill_ += take;
    rows_ += take;
    rows -= take;
    if (fill_ == chunk_rows_) write_chunk();
  }
}

void AppendDataset::write_chunk() {
  if (fill_ == 0) return;
  // HDF5's shuffle filter: byte j of element i goes to j * n + i. Then zlib's compress2, as its deflate
  // filter does. The tail of a partial chunk is zero.
  const size_t bytes = chunk_.size(), n = bytes / elem_size_;
  if (fill_ < chunk_rows_) {
    const size_t row_bytes = size_t(std::max<int64_t>(cols_, 1)) * elem_size_;
    std::memset(chunk_.data() + size_t(fill_) * row_bytes, 0, bytes - size_t(fill_) * row_bytes);
  }
  const unsigned char* src = chunk_.data();
  if (elem_size_ > 1) {
    shuffled_.resize(bytes);
    for (size_t j = 0; j < elem_size_; ++j) {
      unsigned char* dst = shuffled_.data() + j * n;
      for (size_t i = 0; i < n; ++i) dst[i] = chunk_[i * elem_size_ + j];
    }
    src = shuffled_.data();
  }
  uLongf out_len = compressBound(uLong(bytes));
  compressed_.resize(out_len);
  const int zr = compress2(compressed_.data(), &out_len, src, uLong(bytes), gzip_level_);
  DENSE_CHECK(zr == Z_OK, "{}: gzip compression failed ({})", where_, zr);

  quiet_errors();
  const hsize_t first_row = hsize_t(chunks_written_ * chunk_rows_);
  hsize_t dims[2] = {first_row + hsize_t(fill_), hsize_t(cols_)};
  check(H5Dset_extent(dset_.get(), dims), where_, "cannot grow");
  hsize_t offset[2] = {first_row, 0};
  check(H5Dwrite_chunk(dset_.get(), H5P_DEFAULT, 0, offset, size_t(out_len), compressed_.data()), where_,
        "cannot write a chunk");
  ++chunks_written_;
  fill_ = 0;
}

void AppendDataset::close() {
  if (!dset_.valid()) return;
  write_chunk();
  dset_.close(where_);
}

}  // namespace dense::data::h5
