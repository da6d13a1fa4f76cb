#include "data_prep/prep_pipeline.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace dense::data {

BackgroundJobs::BackgroundJobs(int max_in_flight) : max_(std::max(1, max_in_flight)) {}

BackgroundJobs::~BackgroundJobs() {
  for (auto& f : running_) {
    try {
      f.get();
    } catch (...) {
    }
  }
}

void BackgroundJobs::submit(std::function<void()> job) {
  while (int(running_.size()) >= max_) {
    auto f = std::move(running_.front());
    running_.pop_front();
    f.get();
  }
  running_.push_back(std::async(std::launch::async, std::move(job)));
}

void BackgroundJobs::wait_all() {
  while (!running_.empty()) {
    auto f = std::move(running_.front());
    running_.pop_front();
    f.get();
  }
}

int64_t corpus_size(const std::vector<std::string>& files, bool* compressed) {
  int64_t total = 0;
  bool gz = false;
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0) total += int64_t(st.st_size);
    gz = gz || (f.size() > 3 && f.compare(f.size() - 3, 3, ".gz") == 0);
  }
  if (compressed) *compressed = gz;
  return total;
}

void check_output_outside_inputs(const std::vector<std::string>& inputs, const std::string& output,
                                 const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // weakly_canonical resolves symlinks and `..` of the existing part, so `-o corpus/../corpus/out` is caught
  // even before the output folder exists.
  const fs::path out = fs::weakly_canonical(fs::absolute(output, ec), ec);
  if (ec) return;
  for (const auto& input : inputs) {
    if (!fs::is_directory(input, ec)) continue;
    const fs::path in = fs::weakly_canonical(fs::absolute(input, ec), ec);
    if (ec) continue;
    const auto [in_end, out_it] = std::mismatch(in.begin(), in.end(), out.begin(), out.end());
    if (in_end != in.end()) continue;  // `in` is not a prefix of `out`
    DENSE_FAIL(
        "{} {} is {} the input folder {}: a later run would read its own output as corpus text; choose an "
        "output outside the inputs",
        what, output, out_it == out.end() ? "the same as" : "inside", input);
  }
}

}  // namespace dense::data
