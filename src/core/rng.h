#pragma once
// Random streams built on Philox-4x32-10 (core/philox.h).
//   * Generator: (seed, offset). Each consumer reserves a counter range with `advance`, so two consumers
//     never share draws and the sequence of reservations alone fixes every random number.
//   * PhiloxStream: sequential draws from one Philox stream (data preparation, LRA generators): a pure
//     function of its seed and counter, so every example is reproducible on any thread count.
#include <cstdint>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/philox.h"

namespace dense {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  // Reserves enough counters for n elements (one Philox call covers at least two) and returns the start.
  uint64_t advance(uint64_t n) {
    const uint64_t start = offset_;
    offset_ += n / 2 + 1;
    return start;
  }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }

 private:
  uint64_t seed_;
  uint64_t offset_;
};

// Sequential 32-bit draws from one Philox-4x32-10 stream with key = seed. Each Philox call gives four draws,
// used in order v[0..3]. Two counter layouts, kept because existing data depend on both:
//   PhiloxStream(seed, offset)            counter = (offset + call, 0): the layout of philox4x32_10(seed, c)
//                                          (LRA generators; for_example(seed, i) = counters [i << 32, ...))
//   PhiloxStream::with_stream(seed, s)    counter = (call, s): an independent sequence per stream s (data
//                                          preparation's PhiloxRng, e.g. s = the document index)
// Two integer methods with the same distribution but different draws, also kept for existing data:
// randint/below (rejection of the short top range, then modulo) and randint_lemire (Lemire's
// multiply-shift; shuffle uses it).
class PhiloxStream {
 public:
  PhiloxStream(uint64_t seed, uint64_t offset) : seed_(seed), counter_(offset) {}
  // Takes its counter range from a Generator (reserving `max_draws` 32-bit draws).
  PhiloxStream(Generator& gen, uint64_t max_draws) : seed_(gen.seed()), counter_(gen.advance(max_draws / 2 + 2)) {}
  // The stream of example `index` of a generator seeded with `seed`: counters [index << 32, (index+1) << 32).
  static PhiloxStream for_example(uint64_t seed, uint64_t index) { return PhiloxStream(seed, index << 32); }
  // Counter (call, stream): stream selects an independent sequence.
  static PhiloxStream with_stream(uint64_t seed, uint64_t stream) {
    PhiloxStream s(seed, 0);
    s.stream_ = stream;
    return s;
  }

  uint32_t next_u32() {
    if (pos_ == 4) {
      block_ = philox4x32_10_raw(uint32_t(counter_), uint32_t(counter_ >> 32), uint32_t(stream_),
                                 uint32_t(stream_ >> 32), uint32_t(seed_), uint32_t(seed_ >> 32));
      ++counter_;
      pos_ = 0;
    }
    return block_.v[pos_++];
  }
  // Two draws, the first one high.
  uint64_t next_u64() {
    const uint64_t hi = next_u32();
    const uint64_t lo = next_u32();
    return (hi << 32) | lo;
  }
  // Uniform in [0, 1) with 53 random bits (27 + 26 bits of two draws, as NumPy's random_sample).
  double uniform() {
    const uint64_t hi = next_u32() >> 5;
    const uint64_t lo = next_u32() >> 6;
    return double(hi * 67108864ull + lo) * (1.0 / 9007199254740992.0);
  }
  // Uniform integer in [0, n), n >= 1 (n = 0 gives 0); unbiased: draws in the short top range are rejected,
  // then the draw is taken modulo n. One draw per try for n <= 2^32 - 1, two otherwise.
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    if (n <= 0xFFFFFFFFull) {
      const uint32_t m = uint32_t(n);
      const uint32_t limit = uint32_t(0xFFFFFFFFu - (0xFFFFFFFFu % m + 1) % m);  // largest multiple of m, minus 1
      uint32_t x;
      do x = next_u32();
      while (x > limit);
      return x % m;
    }
    const uint64_t limit = ~0ull - ((~0ull % n) + 1) % n;
    uint64_t x;
    do x = next_u64();
    while (x > limit);
    return x % n;
  }
  // Uniform integer in [lo, hi] (inclusive, like Python's random.randint), by below().
  int64_t randint(int64_t lo, int64_t hi) { return lo + int64_t(below(uint64_t(hi - lo) + 1)); }
  // Uniform integer in [lo, hi] (inclusive) by Lemire's multiply-shift with rejection (one draw per try for
  // ranges below 2^32 - 1; wider ones reject on two draws). lo > hi is an error.
  int64_t randint_lemire(int64_t lo, int64_t hi) {
    DENSE_CHECK(lo <= hi, "randint: empty range [{}, {}]", lo, hi);
    const uint64_t range = uint64_t(hi) - uint64_t(lo);
    if (range == 0) return lo;
    if (range < 0xFFFFFFFFull) {
      const uint32_t n = uint32_t(range + 1);
      uint64_t m = uint64_t(next_u32()) * n;
      if (uint32_t(m) < n) {
        const uint32_t threshold = uint32_t(-n) % n;
        while (uint32_t(m) < threshold) m = uint64_t(next_u32()) * n;
      }
      return lo + int64_t(m >> 32);
    }
    const uint64_t n = range + 1;  // 0 means the full 2^64 range
    for (;;) {
      const uint64_t x = next_u64();
      if (n == 0) return int64_t(uint64_t(lo) + x);
      const uint64_t limit = (~uint64_t(0)) - ((~uint64_t(0)) % n);
      if (x < limit) return int64_t(uint64_t(lo) + x % n);
    }
  }
  // Fisher-Yates, with randint_lemire.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(randint_lemire(0, int64_t(i) - 1))]);
  }

  uint64_t seed() const { return seed_; }

 private:
  uint64_t seed_;
  uint64_t counter_;
  uint64_t stream_ = 0;
  Philox4 block_{};
  int pos_ = 4;
};

}  // namespace dense
