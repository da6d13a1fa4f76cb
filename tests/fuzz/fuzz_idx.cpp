// LRA IDX arrays (MNIST layout), raw or gzip-compressed as read_idx takes them, on arbitrary bytes.
#include "core/error.h"
#include "data_prep/lra_idx.h"
#include "fuzz_common.h"

using namespace dense::data::lra;

namespace {

void fuzz_idx(std::string_view bytes) {
  std::string raw(bytes);
  if (is_gzip(raw)) raw = gunzip(raw, "fuzz.idx.gz");
  const IdxArray a = parse_idx(raw, "fuzz.idx");
  FUZZ_CHECK(a.type == 0x08 && !a.dims.empty() && a.dims.size() <= 4);
  FUZZ_CHECK(a.count() == a.data.size());
  // parse_idx accepts exactly the bytes encode_idx writes.
  FUZZ_CHECK(encode_idx(a) == raw);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    fuzz_idx(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const dense::Error&) {
  }
  return 0;
}
