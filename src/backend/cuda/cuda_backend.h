#pragma once
// Entry points of the CUDA backend for the registry. Plain C++ (no CUDA headers): g++ compiles the registry.
#include <memory>

#include "backend/backend.h"

namespace dense {

// The backend of CUDA device `index`: one stream, one cuBLAS handle, a caching allocator over cudaMalloc.
std::unique_ptr<Backend> make_cuda_backend(int index);
// Number of visible CUDA devices; 0 (never an exception) when there is no driver or no device.
int cuda_device_count();
// The stream every kernel of cuda:`index` runs on (a cudaStream_t): engines that run on streams of their own
// (NCCL) order their work against it with events, never by synchronising the host.
void* cuda_compute_stream(int index);

}  // namespace dense
