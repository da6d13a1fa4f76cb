#include "data_prep/lra_idx.h"

#include <zlib.h>

#include <array>
#include <cmath>

#include "core/error.h"
#include "data_prep/lra_png.h"

namespace dense::data::lra {

namespace {

// Refuse to inflate beyond this (a gzip bomb or a corrupt length); MNIST train images are 47 MB.
constexpr size_t kMaxInflated = size_t(4) << 30;

std::string type_name(uint8_t t) {
  switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return fmt::format("unknown type 0x{:02X}", t);
  }
}

std::filesystem::path find_idx(const std::filesystem::path& dir, const std::string& base) {
  std::error_code ec;
  for (const auto& name : {base, base + ".gz"})
    if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  DENSE_FAIL("IDX folder '{}' has no '{}' (or '{}.gz')", dir.string(), base, base);
}

}  // namespace

uint64_t IdxArray::count() const {
  uint64_t n = 1;
  for (uint32_t d : dims) n *= d;
  return n;
}

bool is_gzip(std::string_view b) {
  return b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0x1F && static_cast<unsigned char>(b[1]) == 0x8B;
}

std::string gunzip(std::string_view bytes, const std::string& name) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) DENSE_FAIL("{}: zlib inflateInit failed", name);
  std::string out;
  std::array<char, 1 << 16> buf;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = uInt(bytes.size());
  int rc = Z_OK;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = uInt(buf.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf.data(), buf.size() - zs.avail_out);
    if (out.size() > kMaxInflated) {
      inflateEnd(&zs);
      DENSE_FAIL("{}: decompresses to more than {} bytes", name, kMaxInflated);
    }
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members are one file (gzip -c a b).
      if (zs.avail_in > 0 && is_gzip(std::string_view(reinterpret_cast<const char*>(zs.next_in), zs.avail_in))) {
        inflateReset(&zs);
        continue;
      }
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      inflateEnd(&zs);
      DENSE_FAIL("{}: truncated gzip data (ends after {} decompressed bytes)", name, out.size());
    }
    const std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
    inflateEnd(&zs);
    DENSE_FAIL("{}: corrupt gzip data ({})", name, msg);
  }
  inflateEnd(&zs);
  return out;
}

std::string gzip(std::string_view bytes, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    DENSE_FAIL("zlib deflateInit failed");
  std::string out(deflateBound(&zs, uLong(bytes.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = uInt(bytes.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  DENSE_CHECK(rc == Z_STREAM_END, "zlib deflate failed ({})", rc);
  return out;
}

IdxArray parse_idx(std::string_view bytes, const std::string& name) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4) DENSE_FAIL("{}: too short for an IDX header ({} bytes)", name, bytes.size());
  if (p[0] != 0 || p[1] != 0)
    DENSE_FAIL("{}: bad IDX magic {:02X} {:02X} {:02X} {:02X} (expected 00 00 08 0N)", name, p[0], p[1], p[2], p[3]);
  IdxArray a;
  a.type = p[2];
  const int ndims = p[3];
  if (a.type != 0x08)
    DENSE_FAIL("{}: IDX data type {} is not supported (only unsigned byte, 0x08)", name, type_name(a.type));
  if (ndims < 1 || ndims > 4) DENSE_FAIL("{}: IDX with {} dimensions (expected 1..4)", name, ndims);
  const size_t header = 4 + 4 * size_t(ndims);
  if (bytes.size() < header) DENSE_FAIL("{}: truncated IDX header", name);
  for (int d = 0; d < ndims; ++d) {
    const unsigned char* q = p + 4 + 4 * d;
    a.dims.push_back((uint32_t(q[0]) << 24) | (uint32_t(q[1]) << 16) | (uint32_t(q[2]) << 8) | uint32_t(q[3]));
  }
  uint64_t count = 1;
  for (uint32_t d : a.dims) {
    count *= d;
    if (count > kMaxInflated) DENSE_FAIL("{}: IDX dimensions too large", name);
  }
  const uint64_t have = bytes.size() - header;
  if (have < count) DENSE_FAIL("{}: truncated IDX data ({} of {} bytes)", name, have, count);
  if (have > count) DENSE_FAIL("{}: {} bytes of trailing data after the IDX array", name, have - count);
  a.data.assign(p + header, p + header + count);
  return a;
}

IdxArray read_idx(const std::filesystem::path& path) {
  std::string bytes = read_binary_file(path);
  if (is_gzip(bytes)) bytes = gunzip(bytes, path.string());
  return parse_idx(bytes, path.string());
}

std::string encode_idx(const IdxArray& a) {
  DENSE_CHECK(a.type == 0x08 && !a.dims.empty() && a.dims.size() <= 4, "IDX: only 1..4-d unsigned-byte arrays");
  DENSE_CHECK(a.count() == a.data.size(), "IDX: {} values for dims of {} elements", a.data.size(), a.count());
  std::string out;
  out += '\0';
  out += '\0';
  out += char(a.type);
  out += char(a.dims.size());
  for (uint32_t d : a.dims) {
    out += char(d >> 24);
    out += char(d >> 16);
    out += char(d >> 8);
    out += char(d);
  }
  out.append(reinterpret_cast<const char*>(a.data.data()), a.data.size());
  return out;
}

void write_idx(const std::filesystem::path& path, const IdxArray& array, bool gz) {
  const std::string raw = encode_idx(array);
  write_binary_file_atomic(path, gz ? gzip(raw) : raw);
}

ImageSet load_idx_images(const std::filesystem::path& images, const std::filesystem::path& labels, int num_classes) {
  const IdxArray im = read_idx(images);
  const IdxArray lb = read_idx(labels);
  if (im.dims.size() != 3)
    DENSE_FAIL("{}: expected a 3-d IDX image array [n, rows, cols], got {} dims", images.string(), im.dims.size());
  if (lb.dims.size() != 1)
    DENSE_FAIL("{}: expected a 1-d IDX label array, got {} dims", labels.string(), lb.dims.size());
  if (im.dims[0] != lb.dims[0])
    DENSE_FAIL("{} has {} images but {} has {} labels", images.string(), im.dims[0], labels.string(), lb.dims[0]);
  ImageSet s;
  s.height = im.dims[1];
  s.width = im.dims[2];
  s.pixels = im.data;
  s.labels.reserve(lb.data.size());
  for (size_t i = 0; i < lb.data.size(); ++i) {
    if (lb.data[i] >= num_classes)
      DENSE_FAIL("{}: label {} of item {} is outside 0..{}", labels.string(), int(lb.data[i]), i, num_classes - 1);
    s.labels.push_back(lb.data[i]);
  }
  return s;
}

ImageSplits load_idx_dataset(const std::filesystem::path& dir, double val_fraction) {
  DENSE_CHECK(val_fraction >= 0 && val_fraction < 1, "validation fraction {} outside [0, 1)", val_fraction);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) DENSE_FAIL("IDX folder '{}' does not exist", dir.string());
  ImageSet train = load_idx_images(find_idx(dir, "train-images-idx3-ubyte"), find_idx(dir, "train-labels-idx1-ubyte"));
  ImageSplits s;
  s.test = load_idx_images(find_idx(dir, "t10k-images-idx3-ubyte"), find_idx(dir, "t10k-labels-idx1-ubyte"));
  if (s.test.height != train.height || s.test.width != train.width)
    DENSE_FAIL("IDX folder '{}': train images are {}x{} but test images {}x{}", dir.string(), train.height, train.width,
               s.test.height, s.test.width);
  const double fractions[] = {1.0 - val_fraction, val_fraction};
  const auto sizes = split_sizes(train.size(), fractions);
  s.train = train.slice(0, sizes[0]);
  s.val = train.slice(sizes[0], train.size());
  return s;
}

uint8_t rgb_to_gray(uint8_t r, uint8_t g, uint8_t b, GrayRule rule) {
  if (rule == GrayRule::kPil)
    return uint8_t((uint32_t(r) * 19595u + uint32_t(g) * 38470u + uint32_t(b) * 7471u + 0x8000u) >> 16);
  // tf.image.rgb_to_grayscale on uint8: convert_image_dtype to float32 (x * (1/255)), dot with the weights,
  // convert back (x * 255.5, saturating cast = truncation after clamping).
  const float s = 1.0f / 255.0f;
  const float y = (float(r) * s) * 0.2989f + (float(g) * s) * 0.5870f + (float(b) * s) * 0.1140f;
  const float v = y * 255.5f;
  return v <= 0.0f ? 0 : v >= 255.0f ? 255 : uint8_t(v);
}

ImageSet parse_cifar10_batch(std::string_view bytes, const std::string& name, GrayRule rule) {
  if (bytes.empty() || bytes.size() % size_t(kCifarRecordBytes) != 0)
    DENSE_FAIL("{}: {} bytes is not a whole number of CIFAR-10 records ({} bytes each)", name, bytes.size(),
               kCifarRecordBytes);
  ImageSet s;
  s.height = 32;
  s.width = 32;
  const size_t n = bytes.size() / size_t(kCifarRecordBytes);
  s.pixels.resize(n * 1024);
  s.labels.resize(n);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* rec = p + i * size_t(kCifarRecordBytes);
    if (rec[0] > 9) DENSE_FAIL("{}: record {} has label {} (CIFAR-10 labels are 0..9)", name, i, int(rec[0]));
    s.labels[i] = rec[0];
    const uint8_t *r = rec + 1, *g = rec + 1 + 1024, *b = rec + 1 + 2048;
    for (size_t k = 0; k < 1024; ++k) s.pixels[i * 1024 + k] = rgb_to_gray(r[k], g[k], b[k], rule);
  }
  return s;
}

ImageSet read_cifar10_batch(const std::filesystem::path& path, GrayRule rule) {
  return parse_cifar10_batch(read_binary_file(path), path.string(), rule);
}

ImageSplits load_cifar10_folder(const std::filesystem::path& dir_in, double val_fraction, GrayRule rule) {
  DENSE_CHECK(val_fraction >= 0 && val_fraction < 1, "validation fraction {} outside [0, 1)", val_fraction);
  std::error_code ec;
  std::filesystem::path dir = dir_in;
  if (!std::filesystem::exists(dir / "data_batch_1.bin", ec) &&
      std::filesystem::exists(dir / "cifar-10-batches-bin" / "data_batch_1.bin", ec))
    dir = dir / "cifar-10-batches-bin";
  for (const char* f : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                        "data_batch_5.bin", "test_batch.bin"})
    if (!std::filesystem::exists(dir / f, ec))
      DENSE_FAIL("CIFAR-10 folder '{}' has no '{}' (expected data_batch_1..5.bin and test_batch.bin)", dir.string(), f);
  ImageSet train;
  train.height = train.width = 32;
  for (int b = 1; b <= 5; ++b) {
    const ImageSet part = read_cifar10_batch(dir / fmt::format("data_batch_{}.bin", b), rule);
    train.pixels.insert(train.pixels.end(), part.pixels.begin(), part.pixels.end());
    train.labels.insert(train.labels.end(), part.labels.begin(), part.labels.end());
  }
  ImageSplits s;
  s.test = read_cifar10_batch(dir / "test_batch.bin", rule);
  const double fractions[] = {1.0 - val_fraction, val_fraction};
  const auto sizes = split_sizes(train.size(), fractions);
  s.train = train.slice(0, sizes[0]);
  s.val = train.slice(sizes[0], train.size());
  return s;
}

}  // namespace dense::data::lra
