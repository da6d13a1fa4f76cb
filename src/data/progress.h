#pragma once
// A progress line for long data-preparation runs: done / total with percentage, rate and ETA, plus a few
// counters (rows, shards). On a terminal it redraws one line in place at most 10 times a second; into a log
// (not a terminal) it prints a new line every `log_interval_s` seconds, so CI logs stay short. Thread-safe:
// workers may call add() concurrently.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dense::data {

struct ProgressOptions {
  bool enabled = true;
  bool bytes = true;  // the quantity is bytes (printed as MB, rate MB/s); else items (rate /s)
  double log_interval_s = 10.0;
  FILE* out = stderr;
};

class Progress {
 public:
  // total <= 0: unknown (no percentage or ETA).
  Progress(std::string label, int64_t total, ProgressOptions options = {});
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(int64_t amount);  // adds to done, redraws when due
  void set(int64_t done);    // sets done, redraws when due
  void set_total(int64_t total);
  // A named counter shown after the rate ("rows 12,345").
  void set_counter(const std::string& name, int64_t value);
  // Final line (100% when the total is known), with the elapsed time.
  void finish();

  int64_t done() const { return done_.load(std::memory_order_relaxed); }
  double elapsed_s() const;
  // The line that would be printed now (tests).
  std::string render() const;

 private:
  void maybe_draw(bool force);
  std::string label_;
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> total_;
  ProgressOptions opt_;
  bool tty_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, int64_t>> counters_;
  size_t last_width_ = 0;
};

// "1,234,567"
std::string with_thousands(int64_t v);
// "0:07", "1:02:03"
std::string format_duration(double seconds);

}  // namespace dense::data
