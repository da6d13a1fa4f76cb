// Memory kernels of the CPU backend: host copies, strided copies with dtype conversion, fills and Philox random
// fills.
#include <cstring>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"
#include "core/philox.h"

namespace dense {
using namespace cpu;

void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

namespace {

template <typename D, typename S>
void copy_strided(Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  D* out = static_cast<D*>(dst.raw_data());
  const S* in = static_cast<const S*>(src.raw_data());
  if (dst.is_contiguous() && src.is_contiguous()) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) out[i] = convert<D>(in[i]);
    return;
  }
  const int64_t nd = dst.dim();
  const Shape& shape = dst.shape();
  const Shape& ds = dst.strides();
  const Shape& ss = src.strides();
  const int64_t inner = nd ? shape[size_t(nd - 1)] : 1;
  const int64_t outer = inner ? n / inner : 0;
  const int64_t dsi = nd ? ds[size_t(nd - 1)] : 1, ssi = nd ? ss[size_t(nd - 1)] : 1;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rem = o, doff = 0, soff = 0;
    for (int64_t d = nd - 2; d >= 0; --d) {
      const int64_t idx = rem % shape[size_t(d)];
      rem /= shape[size_t(d)];
      doff += idx * ds[size_t(d)];
      soff += idx * ss[size_t(d)];
    }
    for (int64_t i = 0; i < inner; ++i) out[doff + i * dsi] = convert<D>(in[soff + i * ssi]);
  }
}

}  // namespace

void CpuBackend::copy(Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  dispatch_all(dst.dtype(), [&](auto d) {
    dispatch_all(src.dtype(), [&](auto s) { copy_strided<decltype(d), decltype(s)>(dst, src); });
  });
}

void CpuBackend::fill(Tensor& t, double value) {
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = convert<T>(value);
    if (t.is_contiguous()) {
      T* p = static_cast<T*>(t.raw_data());
      const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) p[i] = v;
    } else {
      Tensor tmp = Tensor::full(t.shape(), value, t.dtype(), Device::cpu());
      copy(t, tmp);
    }
  });
}

void CpuBackend::fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset) {
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i)
      p[i] = convert<T>(low + (high - low) * double(philox_uniform(seed, offset, uint64_t(i))));
  });
}

void CpuBackend::fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) {
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) p[i] = convert<T>(mean + std * philox_normal(seed, offset, uint64_t(i)));
  });
}

}  // namespace dense
