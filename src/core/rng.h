#pragma once
// A stream of Philox draws: (seed, offset). Each consumer reserves a counter range with `advance`, so two
// consumers never share draws and the sequence of reservations alone fixes every random number.
#include <cstdint>

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

}  // namespace dense
