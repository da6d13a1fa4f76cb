#include "core/error.h"

namespace dense {

void Error::add_context(std::string line) {
  context_.insert(context_.begin(), std::move(line));
  full_.clear();
  for (const auto& c : context_) full_ += c + ": ";
  full_ += message_;
}

void throw_check_failure(const char* file, int line, const char* cond, const std::string& msg) {
  // The condition text and source location are for developers; the message is for users, so it comes first.
  throw Error(fmt::format("{} [check '{}' failed at {}:{}]", msg, cond, file, line));
}

}  // namespace dense
