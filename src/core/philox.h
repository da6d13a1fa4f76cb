#pragma once
// Philox-4x32-10 (Salmon et al., SC'11), the counter-based generator cuRAND and PyTorch use. A random
// number is a pure function of (seed, counter), so initialisation and dropout masks are identical on every
// backend, every thread count and every rank, and can be recomputed in backward instead of stored.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DENSE_HD __host__ __device__ __forceinline__
#else
#define DENSE_HD inline
#endif

namespace dense {

struct Philox4 {
  uint32_t v[4];
};

// The full generator: a 128-bit counter and a 64-bit key (Random123's philox4x32 with 10 rounds).
DENSE_HD Philox4 philox4x32_10_raw(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = uint32_t(p1);
    c3 = uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// densetrain's use: key = seed, counter = (offset, 0).
DENSE_HD Philox4 philox4x32_10(uint64_t seed, uint64_t counter) {
  return philox4x32_10_raw(uint32_t(counter), uint32_t(counter >> 32), 0, 0, uint32_t(seed), uint32_t(seed >> 32));
}

// Uniform in [0, 1) with 24 random bits (exactly representable in f32).
DENSE_HD float uint_to_unit_float(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
// Uniform in (0, 1], safe for log().
DENSE_HD double uint_to_open_unit(uint32_t x) { return (double(x) + 1.0) * (1.0 / 4294967296.0); }

// Element i of a uniform stream: one Philox call serves four consecutive elements.
DENSE_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  const Philox4 r = philox4x32_10(seed, offset + i / 4);
  return uint_to_unit_float(r.v[i % 4]);
}

// Element i of a standard-normal stream (Box-Muller; one Philox call serves two elements).
DENSE_HD double philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
  const Philox4 r = philox4x32_10(seed, offset + i / 2);
  const int k = int(i % 2) * 2;
  const double u1 = uint_to_open_unit(r.v[k]);
  const double u2 = uint_to_open_unit(r.v[k + 1]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Dropout keeps element i when its uniform draw is >= p; the same test runs in forward and backward.
DENSE_HD bool philox_keep(uint64_t seed, uint64_t offset, uint64_t i, float p) {
  return philox_uniform(seed, offset, i) >= p;
}

}  // namespace dense
