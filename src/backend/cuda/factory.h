#pragma once
// Entry points of the CUDA backend for the registry. Plain C++ (no CUDA headers): g++ compiles the registry.
#include <memory>

#include "backend/backend.h"

namespace dense {

// The backend of CUDA device `index`: one stream, one cuBLAS handle, a caching allocator over cudaMalloc.
std::unique_ptr<Backend> make_cuda_backend(int index);
// Number of visible CUDA devices; 0 (never an exception) when there is no driver or no device.
int cuda_device_count();
// cuda_compute_stream(index), defined in backend.cpp, is declared in backend/backend.h for the layers above.

}  // namespace dense
