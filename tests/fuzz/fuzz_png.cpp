// The grey 8-bit PNG decoder (Pathfinder / Path-X images) on arbitrary bytes.
#include "core/error.h"
#include "data_prep/lra_png.h"
#include "fuzz_common.h"

using namespace dense::data::lra;

namespace {

void fuzz_png(std::string_view bytes) {
  const GrayImage img = decode_png_gray(bytes, "fuzz.png");
  FUZZ_CHECK(img.height > 0 && img.width > 0);
  FUZZ_CHECK(img.pixels.size() == size_t(img.height) * size_t(img.width));
  // Small images round-trip through the encoder (large ones would only cost time).
  if (img.pixels.size() <= (size_t(1) << 16)) {
    const GrayImage back = decode_png_gray(encode_png_gray(img, 1), "roundtrip.png");
    FUZZ_CHECK(back.height == img.height && back.width == img.width && back.pixels == img.pixels);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    fuzz_png(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const dense::Error&) {
  }
  return 0;
}
