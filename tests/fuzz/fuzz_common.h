#pragma once
// Shared by the libFuzzer targets. A violated invariant must stop the run with a message naming it: libFuzzer
// only saves the input as a crash artifact when the process dies, and a bare trap says nothing about why.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

#define FUZZ_CHECK(cond)                                                                         \
  do {                                                                                           \
    if (!(cond)) [[unlikely]] {                                                                  \
      std::fprintf(stderr, "fuzz invariant violated at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                                          \
    }                                                                                            \
  } while (0)

namespace dense::fuzz {

// Consumes control bytes from the front of the input, so that the rest stays the payload proper and seed files
// remain readable text after one or two leading bytes.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(reinterpret_cast<const char*>(data)), n_(size) {}
  uint8_t byte() {
    if (n_ == 0) return 0;
    --n_;
    return static_cast<uint8_t>(*p_++);
  }
  std::string_view rest() const { return {p_, n_}; }

 private:
  const char* p_;
  size_t n_;
};

// Splits at the first NUL: two texts from one input (NUL is dropped by the tokenizer's cleaning anyway, so it is
// a cheap separator that the mutator also finds easily).
inline std::pair<std::string_view, std::string_view> split_nul(std::string_view s) {
  const size_t at = s.find('\0');
  if (at == std::string_view::npos) return {s, {}};
  return {s.substr(0, at), s.substr(at + 1)};
}

}  // namespace dense::fuzz
