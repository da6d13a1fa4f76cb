#include "core/tensor.h"

#include <numeric>

#include "core/allocator.h"

namespace dense {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = allocator_for(device).allocate(bytes);
}

Storage::~Storage() { allocator_for(device_).deallocate(data_); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) DENSE_CHECK(d >= 0, "negative dimension in shape {}", shape_str(shape));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, DType dtype, Device device) {
  DENSE_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: {} values for shape {}", values.size(),
              shape_str(shape));
  Tensor host = empty(shape, dtype_of<T>(), Device::cpu());
  std::copy(values.begin(), values.end(), host.data<T>());
  if (dtype == dtype_of<T>() && device.is_cpu()) return host;
  Tensor out = empty(shape, dtype, device);
  out.copy_(host);
  return out;
}

int64_t Tensor::size(int64_t d) const {
  if (d < 0) d += dim();
  DENSE_CHECK(d >= 0 && d < dim(), "dimension {} out of range for shape {}", d, shape_str(shape_));
  return shape_[size_t(d)];
}

int64_t Tensor::stride(int64_t d) const {
  if (d < 0) d += dim();
  DENSE_CHECK(d >= 0 && d < dim(), "dimension {} out of range for shape {}", d, shape_str(shape_));
  return strides_[size_t(d)];
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  DENSE_CHECK(defined(), "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * int64_t(dtype_size(dtype_));
}

Tensor Tensor::view(const Shape& shape) const {
  DENSE_CHECK(is_contiguous(), "view of a non-contiguous tensor {}", str());
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DENSE_CHECK(infer < 0, "view: more than one -1 in {}", shape_str(shape));
      infer = int64_t(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    DENSE_CHECK(known > 0 && numel() % known == 0, "view: cannot infer -1 in {} from {}", shape_str(shape), str());
    s[size_t(infer)] = numel() / known;
  }
  DENSE_CHECK(shape_numel(s) == numel(), "view: shape {} does not match {} elements of {}", shape_str(s), numel(),
              str());
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end) const {
  if (d < 0) d += dim();
  DENSE_CHECK(d >= 0 && d < dim(), "slice: dimension {} out of range for {}", d, str());
  DENSE_CHECK(0 <= start && start <= end && end <= shape_[size_t(d)], "slice [{}, {}) out of range for dim {} of {}",
              start, end, d, str());
  Tensor t = *this;
  t.offset_ += start * strides_[size_t(d)];
  t.shape_[size_t(d)] = end - start;
  return t;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  if (d < 0) d += dim();
  Tensor t = slice(d, index, index + 1);
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  if (a < 0) a += dim();
  if (b < 0) b += dim();
  DENSE_CHECK(a >= 0 && a < dim() && b >= 0 && b < dim(), "transpose({}, {}) out of range for {}", a, b, str());
  Tensor t = *this;
  std::swap(t.shape_[size_t(a)], t.shape_[size_t(b)]);
  std::swap(t.strides_[size_t(a)], t.strides_[size_t(b)]);
  return t;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  if (d < 0) d += dim() + 1;
  Tensor t = *this;
  const int64_t st = d < dim() ? strides_[size_t(d)] * shape_[size_t(d)] : 1;
  t.shape_.insert(t.shape_.begin() + d, 1);
  t.strides_.insert(t.strides_.begin() + d, st);
  return t;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::reshape(const Shape& shape) const { return contiguous().view(shape); }

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == device_) return *this;
  Tensor t = empty(shape_, dtype_, device);
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device_);
  t.copy_(*this);
  return t;
}

// Tensor::copy_ and Tensor::fill_ dispatch to the device's backend: they are defined by the backend layer
// (backend/tensor_ops.cpp), as allocator_for is (backend/registry.cpp), so that core includes nothing above it.

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = empty(shape_, dtype_of<T>(), Device::cpu());
  host.copy_(*this);
  const T* p = host.data<T>();
  return std::vector<T>(p, p + numel());
}

double Tensor::item() const {
  DENSE_CHECK(numel() == 1, "item() of a tensor with {} elements", numel());
  return to_vector<double>()[0];
}

std::string Tensor::str() const { return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device_.str(); }

#define DENSE_TENSOR_INSTANTIATE(T)                                                           \
  template Tensor Tensor::from_vector<T>(const std::vector<T>&, const Shape&, DType, Device); \
  template std::vector<T> Tensor::to_vector<T>() const;
DENSE_TENSOR_INSTANTIATE(double)
DENSE_TENSOR_INSTANTIATE(float)
DENSE_TENSOR_INSTANTIATE(bf16)
DENSE_TENSOR_INSTANTIATE(f16)
DENSE_TENSOR_INSTANTIATE(int64_t)
DENSE_TENSOR_INSTANTIATE(int32_t)
DENSE_TENSOR_INSTANTIATE(int8_t)
DENSE_TENSOR_INSTANTIATE(uint8_t)
#undef DENSE_TENSOR_INSTANTIATE

}  // namespace dense
