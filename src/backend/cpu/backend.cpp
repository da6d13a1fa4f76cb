// The CPU backend object: its allocator (64-byte aligned host memory) and the thread count shared by the OpenMP
// kernels and OpenBLAS. The kernels live in one file per op family beside this one.
#include <omp.h>

#include <cstdlib>

#include "backend/cpu/backend.h"

extern "C" void openblas_set_num_threads(int);

namespace dense {

namespace {
int g_threads = 0;

void* aligned_host_alloc(size_t bytes) {
  // 64-byte alignment: whole cache lines, and AVX-512 loads if the machine has them.
  return std::aligned_alloc(64, (bytes + 63) & ~size_t(63));
}
}  // namespace

void set_cpu_threads(int threads) {
  if (threads <= 0) threads = omp_get_num_procs();
  g_threads = threads;
  omp_set_num_threads(threads);
  // One thread pool only: GEMMs are split across OpenMP threads, each calling single-threaded OpenBLAS.
  // OpenBLAS's own pool would spin (sched_yield) against the OpenMP pool between calls and steal the cores
  // the element-wise kernels need.
  openblas_set_num_threads(1);
}

int cpu_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

CpuBackend::CpuBackend() : allocator_(aligned_host_alloc, [](void* p) { std::free(p); }) {
  // The backend is built on its first use, which often comes after a program applied training.threads: that
  // count stays (resetting it to every core made two runs side by side with threads: 1 each run 2 threads on
  // 2 cores, contending for them). Otherwise DENSE_NUM_THREADS, or every core.
  if (g_threads > 0) {
    set_cpu_threads(g_threads);
    return;
  }
  const char* env = std::getenv("DENSE_NUM_THREADS");
  set_cpu_threads(env ? std::atoi(env) : 0);
}

}  // namespace dense
