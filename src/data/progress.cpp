#include "data/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace dense::data {

std::string with_thousands(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::string label, int64_t total, ProgressOptions options)
    : label_(std::move(label)), total_(total), opt_(options) {
  tty_ = opt_.out != nullptr && ::isatty(::fileno(opt_.out));
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  // A run that failed leaves its last line as it was; a terminal line still needs its newline.
  std::lock_guard<std::mutex> lock(mu_);
  if (opt_.enabled && tty_ && !finished_ && last_width_ > 0) std::fputc('\n', opt_.out);
}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::add(int64_t amount) {
  done_.fetch_add(amount, std::memory_order_relaxed);
  maybe_draw(false);
}

void Progress::set(int64_t done) {
  done_.store(done, std::memory_order_relaxed);
  maybe_draw(false);
}

void Progress::set_total(int64_t total) { total_.store(total, std::memory_order_relaxed); }

void Progress::set_counter(const std::string& name, int64_t value) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [n, v] : counters_)
      if (n == name) {
        v = value;
        return;
      }
    counters_.emplace_back(name, value);
  }
}

std::string Progress::render() const {
  const double t = elapsed_s();
  const int64_t done = done_.load(std::memory_order_relaxed);
  const int64_t total = total_.load(std::memory_order_relaxed);
  const double rate = t > 0 ? double(done) / t : 0.0;
  std::string line = label_;
  if (total > 0) line += fmt::format(" {:5.1f}%", 100.0 * std::min(1.0, double(done) / double(total)));
  if (opt_.bytes) {
    line += fmt::format("  {:.1f}", double(done) / 1e6);
    if (total > 0) line += fmt::format(" / {:.1f}", double(total) / 1e6);
    line += fmt::format(" MB  {:.1f} MB/s", rate / 1e6);
  } else {
    line += "  " + with_thousands(done);
    if (total > 0) line += " / " + with_thousands(total);
    line += fmt::format("  {:.0f}/s", rate);
  }
  for (const auto& [n, v] : counters_) line += "  " + n + " " + with_thousands(v);
  if (finished_)
    line += "  in " + format_duration(t);
  else if (total > 0 && rate > 0 && done < total)
    line += "  ETA " + format_duration(double(total - done) / rate);
  return line;
}

void Progress::maybe_draw(bool force) {
  if (!opt_.enabled || opt_.out == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!force && !lock.owns_lock()) return;  // another thread is drawing
  if (force && !lock.owns_lock()) lock.lock();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since < (tty_ ? 0.1 : opt_.log_interval_s)) return;
  last_draw_ = now;
  const std::string line = render();
  if (tty_) {
    // Pad over a longer previous line.
    const size_t pad = last_width_ > line.size() ? last_width_ - line.size() : 0;
    std::fprintf(opt_.out, "\r%s%*s", line.c_str(), int(pad), "");
    last_width_ = line.size();
    if (finished_) std::fputc('\n', opt_.out);
  } else {
    std::fprintf(opt_.out, "%s\n", line.c_str());
  }
  std::fflush(opt_.out);
}

void Progress::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    const int64_t total = total_.load(std::memory_order_relaxed);
    if (total > 0) done_.store(std::max(done_.load(), total), std::memory_order_relaxed);
  }
  maybe_draw(true);
}

}  // namespace dense::data
