// The members of core's Tensor that dispatch to a device's backend (declared in core/tensor.h). They live in the
// backend layer so that core includes nothing above itself (docs/architecture.md); densetrain links dense_core and
// dense_backend as one group (src/CMakeLists.txt) for these and allocator_for.
#include "backend/backend.h"
#include "core/tensor.h"

namespace dense {

void Tensor::copy_(const Tensor& src) {
  DENSE_CHECK(shape_ == src.shape_, "copy_: shape {} into {}", shape_str(src.shape_), shape_str(shape_));
  if (numel() == 0) return;
  if (device_ == src.device_) {
    backend_for(device_).copy(*this, src);
    return;
  }
  // Across devices: move the bytes contiguously in the source dtype, then convert on the destination.
  const Tensor s = src.contiguous();
  Tensor staged = empty(shape_, src.dtype_, device_);
  if (src.device_.is_cpu()) {
    backend_for(device_).copy_from_host(staged.raw_data(), s.raw_data(), s.nbytes());
  } else {
    DENSE_CHECK(device_.is_cpu(), "copy between two accelerators ({} -> {}) goes through the host", src.device_.str(),
                device_.str());
    backend_for(src.device_).copy_to_host(staged.raw_data(), s.raw_data(), s.nbytes());
  }
  backend_for(device_).copy(*this, staged);
}

void Tensor::fill_(double value) {
  if (numel() == 0) return;
  backend_for(device_).fill(*this, value);
}

}  // namespace dense
