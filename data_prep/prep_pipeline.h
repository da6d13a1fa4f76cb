#pragma once
// What the dense-prep pipelines share beyond data/prep_common.h: a bounded pool of background shard writers,
// the corpus size for the progress line, and the check that an output does not land inside the inputs.
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <string>
#include <vector>

namespace dense::data {

// Runs jobs on background threads, at most `max_in_flight` at once; submit() waits for the oldest job when
// full. Exceptions propagate from submit()/wait_all(); the destructor waits for (and drops errors of) jobs
// still running, so nothing outlives the data it uses.
class BackgroundJobs {
 public:
  explicit BackgroundJobs(int max_in_flight);
  ~BackgroundJobs();
  BackgroundJobs(const BackgroundJobs&) = delete;
  BackgroundJobs& operator=(const BackgroundJobs&) = delete;
  void submit(std::function<void()> job);
  void wait_all();

 private:
  int max_;
  std::deque<std::future<void>> running_;
};

// Bytes on disk of the files and whether any is gzip-compressed (then the decompressed total is unknown, and
// progress shows no percentage).
int64_t corpus_size(const std::vector<std::string>& files, bool* compressed);

// dense::Error when `output` (a folder or file to be written) is one of the input folders or lies inside one:
// a second run would read the first run's outputs (manifest.json, vocab.txt) as corpus text. `what` names the
// subcommand and the output flag in the message ("pretrain: -o").
void check_output_outside_inputs(const std::vector<std::string>& inputs, const std::string& output,
                                 const std::string& what);

}  // namespace dense::data
