#pragma once
// Minimal PNG for grey 8-bit images (Pathfinder / Path-X), on zlib alone. The encoder writes colour type 0,
// bit depth 8, no interlace, filter 0 on every row, one IDAT chunk, CRCs. The decoder reads grey 8-bit
// non-interlaced PNGs with any of the five row filters and any number of IDAT chunks (what Pillow and other
// encoders write for 'L' images); anything else, and every kind of corruption (bad signature, chunk CRC,
// truncated data, zlib error, wrong size), is a dense::Error naming the file.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dense::data::lra {

struct GrayImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;  // row-major, height * width
  uint8_t at(int64_t y, int64_t x) const { return pixels[size_t(y * width + x)]; }
};

// PNG file bytes; `level` is the zlib compression level (0..9, -1 = zlib's default).
std::string encode_png_gray(const GrayImage& image, int level = -1);
GrayImage decode_png_gray(std::string_view bytes, const std::string& name = "<memory>");
// Writes atomically (a temporary file renamed into place).
void write_png_gray(const std::filesystem::path& path, const GrayImage& image, int level = -1);
GrayImage read_png_gray(const std::filesystem::path& path);

// Reads a whole file; throws naming it when it is missing or unreadable.
std::string read_binary_file(const std::filesystem::path& path);
// Writes a whole file atomically (temporary + rename); throws naming it on failure.
void write_binary_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace dense::data::lra
