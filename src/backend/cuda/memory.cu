// Copies with dtype conversion, fills and Philox random fills.
#include "backend/cuda/device.cuh"
#include "core/philox.h"

namespace dense::cuda {
namespace {

template <typename D, typename S>
__global__ void copy_kernel(D* dst, const S* src, StridedLayout l, int64_t n) {
  DENSE_GRID_STRIDE(i, n) {
    if (l.nd == 1) {
      dst[i * l.dst[0]] = convert<D>(src[i * l.src[0]]);
      continue;
    }
    int64_t rem = i, doff = 0, soff = 0;
    for (int d = l.nd - 1; d >= 0; --d) {
      const int64_t idx = rem % l.shape[d];
      rem /= l.shape[d];
      doff += idx * l.dst[d];
      soff += idx * l.src[d];
    }
    dst[doff] = convert<D>(src[soff]);
  }
}

template <typename U>
__global__ void fill_kernel(U* dst, U value, StridedLayout l, int64_t n) {
  DENSE_GRID_STRIDE(i, n) {
    if (l.nd == 1) {
      dst[i * l.dst[0]] = value;
      continue;
    }
    int64_t rem = i, off = 0;
    for (int d = l.nd - 1; d >= 0; --d) {
      off += (rem % l.shape[d]) * l.dst[d];
      rem /= l.shape[d];
    }
    dst[off] = value;
  }
}

template <typename T>
__global__ void uniform_kernel(T* dst, int64_t n, double low, double high, uint64_t seed, uint64_t offset) {
  for_each_uniform(n, seed, offset, [&](int64_t i, float u) { dst[i] = convert<T>(low + (high - low) * double(u)); });
}

template <typename T>
__global__ void normal_kernel(T* dst, int64_t n, double mean, double std, uint64_t seed, uint64_t offset) {
  DENSE_GRID_STRIDE(i, n) dst[i] = convert<T>(mean + std * philox_normal(seed, offset, uint64_t(i)));
}

}  // namespace

void copy_convert(const Ctx& ctx, DType dst_type, void* dst, DType src_type, const void* src,
                  const StridedLayout& layout, int64_t n) {
  if (n == 0) return;
  dispatch_all(dst_type, "copy", [&](auto d) {
    dispatch_all(src_type, "copy", [&](auto s) {
      using D = decltype(d);
      using S = decltype(s);
      copy_kernel<D, S>
          <<<blocks_for(n), kThreads, 0, ctx.stream>>>(static_cast<D*>(dst), static_cast<const S*>(src), layout, n);
    });
  });
  DENSE_CUDA_LAUNCHED();
}

void fill_bits(const Ctx& ctx, size_t elem_size, void* dst, uint64_t bits, const StridedLayout& layout, int64_t n) {
  if (n == 0) return;
  const unsigned grid = blocks_for(n);
  switch (elem_size) {
    case 1: fill_kernel<<<grid, kThreads, 0, ctx.stream>>>(static_cast<uint8_t*>(dst), uint8_t(bits), layout, n); break;
    case 2:
      fill_kernel<<<grid, kThreads, 0, ctx.stream>>>(static_cast<uint16_t*>(dst), uint16_t(bits), layout, n);
      break;
    case 4:
      fill_kernel<<<grid, kThreads, 0, ctx.stream>>>(static_cast<uint32_t*>(dst), uint32_t(bits), layout, n);
      break;
    default: fill_kernel<<<grid, kThreads, 0, ctx.stream>>>(static_cast<uint64_t*>(dst), bits, layout, n); break;
  }
  DENSE_CUDA_LAUNCHED();
}

void fill_uniform(const Ctx& ctx, DType t, void* dst, int64_t n, double low, double high, uint64_t seed,
                  uint64_t offset) {
  launch_grid_stride(ctx, t, "fill_uniform", (n + 3) / 4, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    uniform_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(static_cast<T*>(dst), n, low, high, seed, offset);
  });
}

void fill_normal(const Ctx& ctx, DType t, void* dst, int64_t n, double mean, double std, uint64_t seed,
                 uint64_t offset) {
  launch_grid_stride(ctx, t, "fill_normal", n, [&](auto tag, unsigned grid) {
    using T = decltype(tag);
    normal_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(static_cast<T*>(dst), n, mean, std, seed, offset);
  });
}

}  // namespace dense::cuda
