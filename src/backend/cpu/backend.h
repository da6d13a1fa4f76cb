#pragma once
// The CPU backend: OpenBLAS for GEMM, OpenMP for everything else. Every reduction is computed over fixed
// blocks and combined in a fixed order, so results are bitwise identical for any thread count.
#include "backend/backend.h"

namespace dense {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  Device device() const override { return Device::cpu(); }
  CachingAllocator& allocator() override { return allocator_; }

  void synchronize() override {}

#include "backend/kernel_overrides.inc"

 private:
  CachingAllocator allocator_;
};

// set_cpu_threads and cpu_threads (defined in backend.cpp) are declared in backend/backend.h.

}  // namespace dense
