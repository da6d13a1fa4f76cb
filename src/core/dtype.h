#pragma once
// Element types and the conversions between them. bf16 and f16 are storage types: kernels load them into
// f32, compute, and round back (round-to-nearest-even), so results do not depend on the backend.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace dense {

enum class DType : uint8_t { F64, F32, BF16, F16, I64, I32, I8, U8 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);          // "f32", "bf16", ...
DType dtype_from_name(std::string_view name);  // throws dense::Error naming the allowed values
bool is_floating(DType t);
// The dtype kernels accumulate a floating dtype in (acc_t below): f64 for f64, f32 for f32, bf16 and f16.
DType accumulate_dtype(DType t);

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) : bits(from_float(f)) {}
  explicit operator float() const {
    uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN, keep sign
    u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
    return uint16_t(u >> 16);
  }
};

struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }
  static uint16_t from_float(float f);
  static float to_float(uint16_t h);
};

// The type a kernel accumulates in for a storage type: f64 stays f64, everything else computes in f32.
template <typename T>
struct acc {
  using type = float;
};
template <>
struct acc<double> {
  using type = double;
};
template <typename T>
using acc_t = typename acc<T>::type;

template <typename T>
inline acc_t<T> load(const T* p) {
  return acc_t<T>(*p);
}
template <>
inline float load<bf16>(const bf16* p) {
  return float(*p);
}
template <>
inline float load<f16>(const f16* p) {
  return float(*p);
}
template <typename T>
inline void store(T* p, acc_t<T> v) {
  *p = T(v);
}

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<double>() {
  return DType::F64;
}
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::BF16;
}
template <>
constexpr DType dtype_of<f16>() {
  return DType::F16;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::I64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}
template <>
constexpr DType dtype_of<int8_t>() {
  return DType::I8;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::U8;
}

}  // namespace dense
