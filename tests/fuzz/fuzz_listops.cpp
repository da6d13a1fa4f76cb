// LRA ListOps: the release tokenization of a "Source" field, then the evaluator and the renderer on the
// tokens it gives, on arbitrary bytes.
#include "core/error.h"
#include "data_prep/lra_listops.h"
#include "fuzz_common.h"

using namespace dense::data::lra;

namespace {

void fuzz_listops(std::string_view source) {
  const std::vector<uint8_t> tokens = listops_tokenize(source);
  for (const uint8_t t : tokens) FUZZ_CHECK(t >= kListOpsMax && t < kListOpsCls);
  int32_t value = -1;
  bool evaluated = false;
  try {
    value = listops_evaluate(tokens);
    evaluated = true;
  } catch (const dense::Error&) {
  }
  if (evaluated) FUZZ_CHECK(value >= 0 && value <= 9);
  std::string rendered;
  bool rendered_ok = false;
  try {
    rendered = listops_render(tokens);
    rendered_ok = true;
  } catch (const dense::Error&) {
  }
  // The renderer refuses nesting deeper than 2000, which needs more than 4000 tokens; below that, the
  // evaluator and the renderer must agree on what a well-formed expression is.
  if (tokens.size() <= 4000) FUZZ_CHECK(evaluated == rendered_ok);
  if (rendered_ok) {
    FUZZ_CHECK(listops_tokenize(rendered) == tokens);
    FUZZ_CHECK(listops_evaluate(listops_tokenize(rendered)) == value);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    fuzz_listops(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const dense::Error&) {
  }
  return 0;
}
