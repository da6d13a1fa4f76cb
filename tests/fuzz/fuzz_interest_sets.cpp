// The CQS interest-set table parser (parallel/cqs_schedule.h: the shipped table and user tables), on arbitrary
// text. Input: one control byte (extra tokens per schedule), then the table text. Every row that loads must
// give a schedule in which every tile has exactly one owner and every token lies in exactly one group.
#include "core/error.h"
#include "fuzz_common.h"
#include "parallel/cqs_schedule.h"

using namespace dense::parallel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dense::fuzz::Input in(data, size);
  const int64_t extra = in.byte();
  InterestSetTable table;
  try {
    table = parse_interest_sets(in.rest(), "fuzz.txt");
  } catch (const dense::Error&) {
    return 0;
  }
  for (const auto& [w, entry] : table.entries()) {
    FUZZ_CHECK(first_uncovered_difference(w, entry.interest) == 0);
    if (w > 48) continue;  // the owner check below is O(W³): kept to small W (the unit tests cover all rows)
    const CqsSchedule s = make_cqs_schedule(w + extra, w, entry.interest);
    FUZZ_CHECK(s.group_begin.front() == 0 && s.group_begin.back() == w + extra);
    for (int64_t qg = 0; qg < w; ++qg)
      for (int64_t kg = 0; kg < w; ++kg) {
        int64_t owners = 0;
        for (const auto& worker : s.workers_) owners += worker.owns(qg, kg) ? 1 : 0;
        FUZZ_CHECK(owners == 1);
        FUZZ_CHECK(s.worker(s.owner(qg, kg)).owns(qg, kg));
      }
  }
  return 0;
}
