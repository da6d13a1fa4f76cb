#pragma once
// `dense-prep lra <task>`: Long Range Arena tasks into `classification` shards <out>/{train,val,test}.hdf5
// plus manifest.json (docs/model.md §3.5):
//   listops     generated (data-sources §4b; train/val/test counts, seed) or read from a release folder
//               (basic_{train,val,test}.tsv); 17-token vocabulary, CLS first, padded to 2000.
//   pathfinder  generated as PNG + metadata under <out>/images (resumable per batch) or read from an
//               existing generated/LRA folder; 80/10/10 in metadata order; pixels are tokens (32..256 px).
//   image       MNIST-layout IDX files (MNIST, Fashion-MNIST) or CIFAR-10 binary batches; train = first 90 %
//               of the official train set, val = the rest, test = the official test set; grey pixels as tokens.
//   text        byte/character-level IMDB from aclImdb/{train,test}/{pos,neg}; characters with train frequency
//               >= min_frequency (15) + [PAD]=0, [UNK]=1, or raw bytes; 4000 tokens, no CLS; no validation
//               split (the test set doubles as validation, as the reference does).
//   retrieval   AAN pairs (new_aan_pairs.{train,eval,test}.tsv): characters of train text1+text2
//               (min frequency 1) + [PAD] [UNK] [CLS]; each document 4000 tokens with CLS first.
// Each shard's vocab_hash names the token space ("lra-listops-17", "lra-pixels-256", "lra-bytes-256" or
// "lra-chars-<sha256 of the tokenizer JSON>"); the character tokenizer is stored in prep_config.
#include <cstdint>
#include <string>
#include <vector>

#include "data/progress.h"

namespace dense::data {

struct LraPrepConfig {
  std::string task;    // listops | pathfinder | image | text | retrieval
  std::string source;  // input folder; empty = generate (listops, pathfinder)
  std::string out_dir;
  uint64_t seed = 0;
  // listops
  int64_t num_train = 96000, num_val = 2000, num_test = 2000;
  // Generated tree lengths (exclusive bounds, listops.py's --min_length / --max_length): 500 < length < 2000
  // as in LRA; shorter trees make a CPU-sized task. The default seq_len is then max_length (length + CLS).
  int min_length = 500, max_length = 2000;
  // pathfinder
  int resolution = 32;      // 32, 64, 128 (Path-X), 256
  int contour_length = 14;  // 14 hard, 9 intermediate, 6 easy
  int64_t num_images = 200000;
  // image
  double val_fraction = 0.1;
  // text / retrieval
  std::string tokenizer = "chars";  // chars | bytes
  int64_t min_frequency = 0;        // 0: the task default (text 15, retrieval 1)
  int64_t seq_len = 0;              // 0: the task default (text/retrieval 4000, listops max_length)
  int gzip_level = 4;
  int threads = 0;
  bool overwrite = false;
  ProgressOptions progress;
};

struct LraPrepSplit {
  std::string split, path;
  int64_t rows = 0;
  bool kept = false;
};

struct LraPrepResult {
  std::vector<LraPrepSplit> splits;
  int64_t seq_len = 0, vocab_size = 0, num_labels = 0;
  std::string vocab_hash;
};

LraPrepResult prepare_lra(const LraPrepConfig& config);

}  // namespace dense::data
