#pragma once
// One exception type for every user-facing failure. It carries a chain of context lines ("while loading
// shard X", "in layer 3") added as it unwinds, so a message names the file, key or tensor at fault.
#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace dense {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message) : std::runtime_error(message), message_(std::move(message)) {}
  // Prepends a context line; what() lists the context outermost first, then the original message.
  void add_context(std::string line);
  const char* what() const noexcept override { return full_.empty() ? message_.c_str() : full_.c_str(); }
  const std::string& message() const { return message_; }
  const std::vector<std::string>& context() const { return context_; }

 private:
  std::string message_;
  std::vector<std::string> context_;
  std::string full_;
};

// Runs f; if it throws dense::Error, adds the context line and rethrows.
template <typename F>
auto with_context(const std::string& line, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (Error& e) {
    e.add_context(line);
    throw;
  }
}

// True when the environment has DENSE_DEBUG=1: DENSE_CHECK failures then also name the failed
// condition and its source location.
bool debug_messages();

[[noreturn]] void throw_check_failure(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace dense

// DENSE_CHECK(cond, "fmt {}", args...) throws dense::Error with the formatted message when cond is false.
#define DENSE_CHECK(cond, ...)                                                             \
  do {                                                                                     \
    if (!(cond)) [[unlikely]]                                                              \
      ::dense::throw_check_failure(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
  } while (0)

#define DENSE_FAIL(...) throw ::dense::Error(::fmt::format(__VA_ARGS__))
