// Maps devices to backends. Backends are created on first use; accelerator backends are shut down by
// release_backends and never destroyed (see backend.h).
#include <cstdlib>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/backend.h"

#ifdef DENSE_WITH_CUDA
#include "backend/cuda/factory.h"
#endif

namespace dense {

#ifdef DENSE_WITH_CUDA
namespace {
std::mutex& cuda_mutex() {
  static std::mutex* m = new std::mutex;  // never destroyed: release_backends may run from atexit
  return *m;
}
// Live backends by device index, and the retired ones: both leak on purpose (no static destructor).
std::vector<std::unique_ptr<Backend>>& cuda_backends() {
  static auto* v = new std::vector<std::unique_ptr<Backend>>;
  return *v;
}
std::vector<Backend*>& retired_backends() {
  static auto* v = new std::vector<Backend*>;
  return *v;
}
}  // namespace
#endif

Backend& backend_for(Device device) {
  if (device.is_cpu()) {
    static CpuBackend cpu;
    return cpu;
  }
#ifdef DENSE_WITH_CUDA
  std::lock_guard<std::mutex> lock(cuda_mutex());
  auto& cuda = cuda_backends();
  const int count = cuda_device_count();
  DENSE_CHECK(device.index >= 0 && device.index < count, "device {} requested but {} CUDA device(s) are present",
              device.str(), count);
  if (cuda.empty()) cuda.resize(size_t(count));
  if (!cuda[size_t(device.index)]) {
    cuda[size_t(device.index)] = make_cuda_backend(device.index);
    // Registered after the backend initialised the runtime, so it runs before the runtime's exit handler.
    static const bool registered = std::atexit(release_backends) == 0;
    (void)registered;
  }
  return *cuda[size_t(device.index)];
#else
  DENSE_FAIL("device {} requested but densetrain was built without CUDA (configure with -DDENSE_CUDA=ON)",
             device.str());
#endif
}

void release_backends() noexcept {
#ifdef DENSE_WITH_CUDA
  std::lock_guard<std::mutex> lock(cuda_mutex());
  for (auto& b : cuda_backends()) {
    if (!b) continue;
    b->shutdown();
    retired_backends().push_back(b.release());
  }
#endif
}

CachingAllocator& allocator_for(Device device) { return backend_for(device).allocator(); }

bool cuda_available() { return cuda_device_count() > 0; }

#ifndef DENSE_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

}  // namespace dense
