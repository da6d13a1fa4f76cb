#include "core/error.h"

#include <cstdlib>
#include <cstring>

namespace dense {

bool debug_messages() {
  // Read at each failure (rare), not cached, so a test or a long-lived process can switch it.
  const char* v = std::getenv("DENSE_DEBUG");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

void Error::add_context(std::string line) {
  context_.insert(context_.begin(), std::move(line));
  full_.clear();
  for (const auto& c : context_) full_ += c + ": ";
  full_ += message_;
}

void throw_check_failure(const char* file, int line, const char* cond, const std::string& msg) {
  // The condition text and source location help whoever debugs densetrain, not the user reading the message,
  // so they appear only under DENSE_DEBUG=1 (docs/config.md, "Types, values and errors").
  if (!debug_messages()) throw Error(msg);
  throw Error(fmt::format("{} [check '{}' failed at {}:{}]", msg, cond, file, line));
}

}  // namespace dense
