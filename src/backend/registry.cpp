// Maps devices to backends. Backends are created on first use and live for the whole process.
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"

#ifdef DENSE_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace dense {

Backend& backend_for(Device device) {
  if (device.is_cpu()) {
    static CpuBackend cpu;
    return cpu;
  }
#ifdef DENSE_WITH_CUDA
  static std::mutex mutex;
  static std::vector<std::unique_ptr<Backend>> cuda;
  std::lock_guard<std::mutex> lock(mutex);
  const int count = cuda_device_count();
  DENSE_CHECK(device.index >= 0 && device.index < count, "device {} requested but {} CUDA device(s) are present",
              device.str(), count);
  if (cuda.empty()) cuda.resize(size_t(count));
  if (!cuda[size_t(device.index)]) cuda[size_t(device.index)] = make_cuda_backend(device.index);
  return *cuda[size_t(device.index)];
#else
  DENSE_FAIL("device {} requested but densetrain was built without CUDA (configure with -DDENSE_CUDA=ON)",
             device.str());
#endif
}

CachingAllocator& allocator_for(Device device) { return backend_for(device).allocator(); }

bool cuda_available() { return cuda_device_count() > 0; }

#ifndef DENSE_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

}  // namespace dense
