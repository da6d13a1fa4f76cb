#pragma once
// LRA image tasks from files (docs/model.md §3.5, data-sources §4a): grey pixels 0..255 are the tokens, row-major.
//   * IDX (MNIST, Fashion-MNIST; raw or gzip): magic 00 00 <type> <ndims>, big-endian u32 dims, then data.
//     Only unsigned-byte data (type 0x08) is accepted; the size must match the dims exactly.
//   * CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (1024 R, 1024 G, 1024 B, row-major),
//     converted to 8-bit grey (GrayRule).
// Splits: train = the first (1 - val_fraction) of the official train set, val = the rest (unshuffled),
// test = the official test set (CIFAR: 45,000 / 5,000 / 10,000).
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "data_prep/lra_common.h"

namespace dense::data::lra {

struct IdxArray {
  uint8_t type = 0x08;  // unsigned byte
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
  uint64_t count() const;
};

IdxArray parse_idx(std::string_view bytes, const std::string& name = "<memory>");
// Reads an IDX file, gunzipping it when it starts with the gzip magic. Errors name the file.
IdxArray read_idx(const std::filesystem::path& path);
std::string encode_idx(const IdxArray& array);
void write_idx(const std::filesystem::path& path, const IdxArray& array, bool gzip = false);

// gzip/zlib helpers (zlib only): inflate a gzip (or zlib) stream, all members; errors name `name`.
std::string gunzip(std::string_view bytes, const std::string& name);
std::string gzip(std::string_view bytes, int level = 6);
bool is_gzip(std::string_view bytes);

// An images file ([n, h, w]) and a labels file ([n]) into an ImageSet; labels must be < num_classes.
ImageSet load_idx_images(const std::filesystem::path& images, const std::filesystem::path& labels,
                         int num_classes = 10);
// A folder in the MNIST layout: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each raw or with .gz.
ImageSplits load_idx_dataset(const std::filesystem::path& dir, double val_fraction = 0.1);

// RGB -> grey. kPil: ITU-R 601-2 luma with Pillow's integer rounding, (19595 R + 38470 G + 7471 B + 2^15) >> 16,
// i.e. PIL convert("L") as applied to HF uoft-cs/cifar10 images (docs/model.md §3.5, default). kTensorflow: LRA's
// tf.image.rgb_to_grayscale on uint8 (float32 0.2989 R + 0.5870 G + 0.1140 B on [0,1], times 255.5, truncated).
enum class GrayRule { kPil, kTensorflow };
uint8_t rgb_to_gray(uint8_t r, uint8_t g, uint8_t b, GrayRule rule = GrayRule::kPil);

inline constexpr int64_t kCifarRecordBytes = 1 + 3 * 1024;
ImageSet parse_cifar10_batch(std::string_view bytes, const std::string& name, GrayRule rule = GrayRule::kPil);
ImageSet read_cifar10_batch(const std::filesystem::path& path, GrayRule rule = GrayRule::kPil);
// data_batch_1.bin .. data_batch_5.bin + test_batch.bin in `dir` (or in dir/cifar-10-batches-bin).
ImageSplits load_cifar10_folder(const std::filesystem::path& dir, double val_fraction = 0.1,
                                GrayRule rule = GrayRule::kPil);

}  // namespace dense::data::lra
