// Which OpenBLAS kernels the programs ask for (backend/cpu_blas.h); tests/e2e/cli/blas_kernels_test.sh checks
// the restart itself.
#include <gtest/gtest.h>

#include "backend/cpu_blas.h"

namespace dense {
namespace {

constexpr CpuVectorUnits kSse{false, false}, kAvx2{true, false}, kAvx512{true, true};

TEST(OpenBlasCore, FallbackKernelsAreReplacedByTheWidestThisCpuRuns) {
  // OpenBLAS 0.3.21 on an Emerald Rapids Xeon: Prescott; the AVX-512 kernels ran its sgemm 8x faster.
  EXPECT_EQ(better_openblas_core("Prescott", kAvx512, true), "SkylakeX");
  EXPECT_EQ(better_openblas_core("Prescott", kAvx2, true), "Haswell");
  for (const char* old : {"Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge", "Atom", "Unknown", ""}) {
    EXPECT_EQ(better_openblas_core(old, kAvx512, true), "SkylakeX") << old;
    EXPECT_EQ(better_openblas_core(old, kAvx2, true), "Haswell") << old;
  }
}

TEST(OpenBlasCore, KernelsOfAvx2OrWiderAreLeftAlone) {
  // OpenBLAS knew the model, or chose Haswell on an AVX-512 CPU on purpose.
  for (const char* fit : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator"}) {
    EXPECT_EQ(better_openblas_core(fit, kAvx512, true), "") << fit;
    EXPECT_EQ(better_openblas_core(fit, kAvx2, true), "") << fit;
  }
}

TEST(OpenBlasCore, NothingToChooseWithoutAvx2OrWithoutDynamicArch) {
  EXPECT_EQ(better_openblas_core("Prescott", kSse, true), "");
  EXPECT_EQ(better_openblas_core("Sandybridge", kSse, true), "");
  // A library built for one CPU ignores OPENBLAS_CORETYPE: a restart would change nothing.
  EXPECT_EQ(better_openblas_core("Prescott", kAvx512, false), "");
}

TEST(OpenBlasCore, CpuVectorUnitsAreConsistentAndTheCoreIsNamed) {
  const CpuVectorUnits here = cpu_vector_units();
  EXPECT_TRUE(here.avx2_fma || !here.avx512);  // AVX-512 is only counted with AVX2 and FMA
  EXPECT_FALSE(openblas_core().empty());
}

}  // namespace
}  // namespace dense
