#pragma once
// Which OpenBLAS kernels the CPU backend's GEMMs run. OpenBLAS (a DYNAMIC_ARCH build, as Debian ships it) picks
// its kernels from the CPU model when the library loads; a model newer than the library, such as an Emerald
// Rapids Xeon under OpenBLAS 0.3.21, falls back to its SSE3 "Prescott" kernels, 8x slower than the AVX-512 ones
// on that machine (docs/benchmarks.md). The choice can only be changed before the library loads, through
// OPENBLAS_CORETYPE, so the programs restart themselves once with it set.
#include <string>
#include <string_view>

namespace dense {

struct CpuVectorUnits {
  bool avx2_fma = false;  // AVX2 and FMA3: OpenBLAS's Haswell kernels
  bool avx512 = false;    // AVX-512 F, BW, DQ and VL: its SkylakeX kernels
};

// What this CPU (and its OS) can run; all false off x86-64.
CpuVectorUnits cpu_vector_units();

// The OPENBLAS_CORETYPE this CPU should run instead of `core` (OpenBLAS's name for the kernels it chose), or ""
// when `core` is already one of the AVX2 or AVX-512 kernel sets, or nothing better runs here, or the library
// was built for one CPU (no DYNAMIC_ARCH: OPENBLAS_CORETYPE would change nothing).
std::string better_openblas_core(std::string_view core, const CpuVectorUnits& cpu, bool dynamic_arch);

// First thing in main: when OpenBLAS chose kernels below what this CPU runs and OPENBLAS_CORETYPE is unset,
// sets it and executes this program again with the same arguments (no return). A user's OPENBLAS_CORETYPE is
// never overridden: setting it (to any core, Prescott included) is also how to turn this off. If the restart
// fails the program goes on with the slow kernels and says so on stderr.
void restart_with_fast_blas_kernels(char** argv);

// After restart_with_fast_blas_kernels: "" when it did not restart, else one line saying what it replaced
// and how to choose otherwise, for the program to print as a note.
std::string blas_restart_note();

// OpenBLAS's name for the kernels running now, e.g. "SkylakeX".
std::string openblas_core();

}  // namespace dense
