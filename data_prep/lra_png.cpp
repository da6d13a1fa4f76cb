#include "data_prep/lra_png.h"

#include <zlib.h>

#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/file_io.h"

namespace dense::data::lra {

namespace {

constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
// Refuse absurd sizes before allocating (2^28 pixels = 256 MiB).
constexpr uint64_t kMaxPixels = uint64_t(1) << 28;

void put_u32(std::string& s, uint32_t v) {
  s += char(v >> 24);
  s += char(v >> 16);
  s += char(v >> 8);
  s += char(v);
}

uint32_t get_u32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void put_chunk(std::string& out, const char type[4], std::string_view data) {
  put_u32(out, uint32_t(data.size()));
  const size_t start = out.size();
  out.append(type, 4);
  out.append(data);
  const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(out.data() + start), uInt(out.size() - start));
  put_u32(out, uint32_t(crc));
}

uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return uint8_t(a);
  if (pb <= pc) return uint8_t(b);
  return uint8_t(c);
}

}  // namespace

std::string encode_png_gray(const GrayImage& image, int level) {
  DENSE_CHECK(image.height > 0 && image.width > 0 && image.height <= 0x7FFFFFFF && image.width <= 0x7FFFFFFF,
              "PNG: bad image size {}x{}", image.height, image.width);
  DENSE_CHECK(image.pixels.size() == size_t(image.height * image.width), "PNG: {} pixels for a {}x{} image",
              image.pixels.size(), image.height, image.width);
  // Scanlines: filter byte 0 then the row.
  std::string raw;
  raw.reserve(size_t(image.height * (image.width + 1)));
  for (int64_t y = 0; y < image.height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(image.pixels.data() + y * image.width), size_t(image.width));
  }
  uLongf zsize = compressBound(uLong(raw.size()));
  std::string z(zsize, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(z.data()), &zsize, reinterpret_cast<const Bytef*>(raw.data()),
                           uLong(raw.size()), level);
  DENSE_CHECK(rc == Z_OK, "PNG: zlib compress failed ({})", rc);
  z.resize(zsize);

  std::string out(reinterpret_cast<const char*>(kSignature), 8);
  std::string ihdr;
  put_u32(ihdr, uint32_t(image.width));
  put_u32(ihdr, uint32_t(image.height));
  ihdr += char(8);  // bit depth
  ihdr += char(0);  // colour type: grey
  ihdr += char(0);  // compression
  ihdr += char(0);  // filter method
  ihdr += char(0);  // no interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", z);
  put_chunk(out, "IEND", "");
  return out;
}

GrayImage decode_png_gray(std::string_view bytes, const std::string& name) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  if (n < 8 || std::memcmp(p, kSignature, 8) != 0) DENSE_FAIL("{}: not a PNG file (bad signature)", name);
  size_t pos = 8;
  GrayImage img;
  bool have_header = false, have_end = false;
  std::string idat;
  while (pos < n) {
    if (n - pos < 12) DENSE_FAIL("{}: truncated PNG chunk at byte {}", name, pos);
    const uint32_t len = get_u32(p + pos);
    const std::string_view type(bytes.data() + pos + 4, 4);
    if (len > 0x7FFFFFFFu || n - pos - 12 < len) DENSE_FAIL("{}: truncated PNG chunk '{}' at byte {}", name, type, pos);
    const uLong crc = crc32(0L, p + pos + 4, uInt(len + 4));
    if (uint32_t(crc) != get_u32(p + pos + 8 + len)) DENSE_FAIL("{}: CRC mismatch in PNG chunk '{}'", name, type);
    const unsigned char* data = p + pos + 8;
    if (type == "IHDR") {
      if (have_header || len != 13) DENSE_FAIL("{}: bad PNG IHDR chunk", name);
      img.width = get_u32(data);
      img.height = get_u32(data + 4);
      const int depth = data[8], colour = data[9], compression = data[10], filter = data[11], interlace = data[12];
      if (img.width == 0 || img.height == 0 || uint64_t(img.width) * uint64_t(img.height) > kMaxPixels)
        DENSE_FAIL("{}: unsupported PNG size {}x{}", name, img.width, img.height);
      if (depth != 8 || colour != 0)
        DENSE_FAIL("{}: PNG is colour type {} with bit depth {}; only 8-bit greyscale (type 0) is supported", name,
                   colour, depth);
      if (compression != 0 || filter != 0) DENSE_FAIL("{}: unknown PNG compression/filter method", name);
      if (interlace != 0) DENSE_FAIL("{}: interlaced PNG is not supported", name);
      have_header = true;
    } else if (type == "IDAT") {
      if (!have_header) DENSE_FAIL("{}: PNG IDAT before IHDR", name);
      idat.append(reinterpret_cast<const char*>(data), len);
    } else if (type == "IEND") {
      have_end = true;
      break;
    } else if ((type[0] & 0x20) == 0) {
      DENSE_FAIL("{}: unknown critical PNG chunk '{}'", name, type);
    }
    pos += 12 + len;
  }
  if (!have_header) DENSE_FAIL("{}: PNG has no IHDR chunk", name);
  if (!have_end) DENSE_FAIL("{}: truncated PNG (no IEND chunk)", name);
  if (idat.empty()) DENSE_FAIL("{}: PNG has no image data", name);

  const size_t stride = size_t(img.width);
  const size_t raw_size = size_t(img.height) * (stride + 1);
  std::string raw(raw_size, '\0');
  uLongf out_size = uLongf(raw_size);
  // One extra byte would reveal trailing data: inflate into exactly raw_size and require Z_OK (stream complete).
  const int rc = uncompress(reinterpret_cast<Bytef*>(raw.data()), &out_size,
                            reinterpret_cast<const Bytef*>(idat.data()), uLong(idat.size()));
  if (rc == Z_BUF_ERROR && out_size == raw_size)
    DENSE_FAIL("{}: corrupt PNG image data (more than {}x{} pixels, or no end of stream)", name, img.height, img.width);
  if (rc != Z_OK) DENSE_FAIL("{}: corrupt PNG image data (zlib error {})", name, rc);
  if (out_size != raw_size) DENSE_FAIL("{}: PNG image data is short ({} of {} bytes)", name, out_size, raw_size);

  img.pixels.resize(size_t(img.height) * stride);
  std::vector<uint8_t> zero(stride, 0);
  for (int64_t y = 0; y < img.height; ++y) {
    const auto* line = reinterpret_cast<const uint8_t*>(raw.data()) + size_t(y) * (stride + 1);
    const uint8_t filter = line[0];
    const uint8_t* src = line + 1;
    uint8_t* dst = img.pixels.data() + size_t(y) * stride;
    const uint8_t* up = y > 0 ? dst - stride : zero.data();
    for (size_t x = 0; x < stride; ++x) {
      const int a = x > 0 ? dst[x - 1] : 0, b = up[x], c = x > 0 ? up[x - 1] : 0;
      switch (filter) {
        case 0: dst[x] = src[x]; break;
        case 1: dst[x] = uint8_t(src[x] + a); break;
        case 2: dst[x] = uint8_t(src[x] + b); break;
        case 3: dst[x] = uint8_t(src[x] + (a + b) / 2); break;
        case 4: dst[x] = uint8_t(src[x] + paeth(a, b, c)); break;
        default: DENSE_FAIL("{}: bad PNG filter type {} on row {}", name, int(filter), y);
      }
    }
  }
  return img;
}

std::string read_binary_file(const std::filesystem::path& path) { return dense::read_file(path); }

void write_binary_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  dense::write_file_atomic(path, bytes);
}

void write_png_gray(const std::filesystem::path& path, const GrayImage& image, int level) {
  // Pathfinder writes hundreds of thousands of these: an fsync each (about 0.8 ms on ext4 here, 15x the write
  // itself) would add minutes to a data set. They stay atomic, as before, without the fsync.
  dense::write_file_atomic(path, encode_png_gray(image, level), Durability::RenameOnly);
}

GrayImage read_png_gray(const std::filesystem::path& path) {
  return decode_png_gray(read_binary_file(path), path.string());
}

}  // namespace dense::data::lra
