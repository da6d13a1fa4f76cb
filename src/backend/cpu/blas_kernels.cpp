// Choosing OpenBLAS's kernels for the CPU (backend/cpu_blas.h).
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/cpu_blas.h"

extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);

namespace dense {

namespace {
// Set for the restarted process to the kernels OpenBLAS chose on its own, so that it can report the restart. It
// reads and removes it first thing: programs it starts must not report a restart of their own.
constexpr const char* kReplacedVariable = "DENSE_OPENBLAS_REPLACED_CORE";
std::string g_replaced_core;

// OpenBLAS's names (openblas_get_corename) of the x86-64 kernel sets built for AVX2 and FMA or wider. A CPU
// that OpenBLAS mapped to one of these is left alone: it knew the model, or chose Haswell on purpose (an OS
// without AVX-512 state, for example).
constexpr std::array<std::string_view, 6> kAvx2OrWider = {"Haswell",        "Zen",      "SkylakeX", "Cooperlake",
                                                          "SapphireRapids", "Excavator"};
}  // namespace

CpuVectorUnits cpu_vector_units() {
  CpuVectorUnits units;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // GCC's checks include the OS's support (XCR0) for the AVX and AVX-512 register state.
  units.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  units.avx512 = units.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
  return units;
}

std::string better_openblas_core(std::string_view core, const CpuVectorUnits& cpu, bool dynamic_arch) {
  if (!dynamic_arch || !cpu.avx2_fma) return "";
  for (std::string_view fit : kAvx2OrWider)
    if (core == fit) return "";
  return cpu.avx512 ? "SkylakeX" : "Haswell";
}

void restart_with_fast_blas_kernels(char** argv) {
  if (const char* replaced = std::getenv(kReplacedVariable)) {
    g_replaced_core = replaced;
    unsetenv(kReplacedVariable);
    return;
  }
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const std::string core = openblas_core();
  const char* config = openblas_get_config();
  const bool dynamic_arch = config != nullptr && std::strstr(config, "DYNAMIC_ARCH") != nullptr;
  const std::string better = better_openblas_core(core, cpu_vector_units(), dynamic_arch);
  if (better.empty()) return;
  setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
  setenv(kReplacedVariable, core.c_str(), 1);
  std::fflush(nullptr);
  execv("/proc/self/exe", argv);
  const int error = errno;
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kReplacedVariable);
  std::fprintf(stderr,
               "warning: OpenBLAS runs its %s kernels, slower than the %s ones this CPU can run, and restarting "
               "with OPENBLAS_CORETYPE=%s failed (%s); set it yourself to get them\n",
               core.c_str(), better.c_str(), better.c_str(), std::strerror(error));
}

std::string blas_restart_note() {
  if (g_replaced_core.empty()) return "";
  const std::string now = openblas_core();
  return "OpenBLAS chose its " + g_replaced_core + " kernels for this CPU, which runs its " + now +
         " ones; restarted with OPENBLAS_CORETYPE=" + now + " (set OPENBLAS_CORETYPE to choose them yourself)";
}

std::string openblas_core() {
  const char* name = openblas_get_corename();
  return name != nullptr ? std::string(name) : std::string("unknown");
}

}  // namespace dense
