#pragma once
// Helpers shared by the CPU kernel files.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

namespace dense::cpu {

// Calls f(T{}) with T the C++ type of a floating dtype.
template <typename F>
void dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::F64: f(double{}); return;
    case DType::F32: f(float{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    default: DENSE_FAIL("CPU kernel: expected a floating dtype, got {}", dtype_name(t));
  }
}

// Calls f(T{}) for any dtype.
template <typename F>
void dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::I64: f(int64_t{}); return;
    case DType::I32: f(int32_t{}); return;
    case DType::I8: f(int8_t{}); return;
    case DType::U8: f(uint8_t{}); return;
    default: dispatch_float(t, std::forward<F>(f));
  }
}

template <typename T>
inline constexpr bool is_half_v = std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

// Conversion between any two element types (halves go through f32, integers round toward zero).
template <typename D, typename S>
inline D convert(S s) {
  if constexpr (std::is_same_v<D, S>) {
    return s;
  } else if constexpr (is_half_v<S>) {
    return convert<D>(float(s));
  } else if constexpr (is_half_v<D>) {
    return D(float(s));
  } else {
    return static_cast<D>(s);
  }
}

inline int64_t read_index(const Tensor& ids, int64_t i) {
  return ids.dtype() == DType::I64 ? static_cast<const int64_t*>(ids.raw_data())[i]
                                   : static_cast<const int32_t*>(ids.raw_data())[i];
}

// Below this many elements an OpenMP region costs more than it saves (element-wise, index and softmax kernels).
constexpr int64_t kParallelMin = 16384;

// Rows per block of the deterministic blocked reductions.
constexpr int64_t kReduceBlock = 64;

}  // namespace dense::cpu
