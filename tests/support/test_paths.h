#pragma once
// Where the tests find files, force-included into every test source (tests/CMakeLists.txt). The build records
// absolute paths of this checkout; binaries built here and run elsewhere (the GPU machine, where the tree lies
// in another folder and ../shared does not travel) point each at its copy through the environment variable of
// the same name.
#include <cstdlib>
#include <string>

namespace dense::testing {
inline std::string path_from_env(const char* variable, const char* built_in) {
  const char* v = std::getenv(variable);
  return v && *v ? std::string(v) : std::string(built_in);
}
}  // namespace dense::testing

#define DENSE_TRAIN_BIN ::dense::testing::path_from_env("DENSE_TRAIN_BIN", DENSE_TRAIN_BIN_BUILT)
#define DENSE_EVAL_BIN ::dense::testing::path_from_env("DENSE_EVAL_BIN", DENSE_EVAL_BIN_BUILT)
#define DENSE_SHARED_DIR ::dense::testing::path_from_env("DENSE_SHARED_DIR", DENSE_SHARED_DIR_BUILT)
#define DENSE_TEST_DATA_DIR ::dense::testing::path_from_env("DENSE_TEST_DATA_DIR", DENSE_TEST_DATA_DIR_BUILT)
