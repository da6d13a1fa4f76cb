// main of dense_unit_tests: GoogleTest's, after the restart the programs make (backend/cpu_blas.h), so that
// results computed here and by the dense-train / dense-eval processes a test starts come from the same
// OpenBLAS kernels and can be compared to the last bits.
#include <gtest/gtest.h>

#include "backend/cpu_blas.h"

int main(int argc, char** argv) {
  dense::restart_with_fast_blas_kernels(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
