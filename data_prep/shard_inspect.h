#pragma once
// `dense-prep inspect`: a readable report of one HDF5 shard (ours, LDDL's or any h5py file with the same
// datasets): integrity, datasets (dtype, shape), attributes (prep_config pretty-printed), one decoded sample
// and token statistics (lengths, fill, [UNK]/[MASK] rates, id range, label distribution, NSP balance, masked
// positions per row).
#include <cstdint>
#include <string>

namespace dense::data {

struct InspectOptions {
  std::string vocab_path;      // decode WordPiece ids; empty: print ids
  int64_t row = 0;             // the sample shown
  int64_t stats_rows = 10000;  // rows the statistics read (from the start); 0 = all
  int64_t max_sample_tokens = 512;
};

std::string inspect_shard(const std::string& path, const InspectOptions& options = {});

}  // namespace dense::data
