#pragma once
// `dense-prep pretrain`: a raw corpus into HDF5 pretraining shards, streaming, on every core, resumable.
//
//   packed (docs/model.md §3.2): documents are tokenized (WordPiece, no special tokens), each followed by [SEP], and
//     concatenated into one stream in corpus order; rows are [CLS] + the next N-1 stream tokens. Shard k holds
//     rows [k*R, (k+1)*R) (R = shard_rows); the last shard may be shorter; a tail shorter than N-1 tokens is
//     dropped (as the reference does) and reported.
//   bert (docs/model.md §3.1): sentences are a document's lines (BERT's input format: one sentence per line), or with
//     sentences = kPunctuation its lines split after . ! ? (and closing quotes/brackets) before whitespace
//     and an upper-case letter, digit or opening quote (for corpora with a paragraph per line, e.g.
//     WikiText). Documents are gathered in corpus order into blocks of about R*(N-3)/duplicate tokens;
//     block b becomes shard b: NSP pairs and static 80/10/10 masks for each of its documents (random-next
//     spans come from the same block, as LDDL draws them from the same partition), `duplicate` times with
//     fresh randomness (spec: one run per duplicate), shuffled.
//
// Memory is bounded by the shard size and the thread count, never by the corpus: documents are read in a
// window of chunks, tokenized in parallel, and full shards are compressed and written by background writers
// (at most `threads` shards in flight).
//
// Deterministic: the shards depend only on the corpus, the vocabulary and the settings stored in each shard's
// prep_config, never on the thread count or timing.
//
// Resumable: every shard carries the run's prep_config; a re-run into the same folder keeps shards that are
// complete (integrity header verified) with the same prep_config and row count, and only writes the others;
// temporary files left by an interrupted run (`*.tmp-<pid>`) are removed first. When the run's manifest
// (manifest.json; <prefix>.manifest.json for a --prefix run) says the same configuration finished and every
// shard verifies, nothing is read at all. A folder holding shards of a different configuration is an error
// naming the file and the first setting that differs, unless `overwrite` is set (then they are replaced, and
// stale shards of the prefix removed).
#include <cstdint>
#include <string>
#include <vector>

#include "data/progress.h"
#include "data/shard_bert.h"
#include "data_prep/corpus.h"

namespace dense::data {

enum class PretrainFormat { kBert, kPacked };
enum class SentenceSplit { kLines, kPunctuation };

// The sentences of one line under kPunctuation (views into `line`, trimmed, none empty).
std::vector<std::string_view> split_sentences(std::string_view line);

struct PretrainPrepConfig {
  std::vector<std::string> inputs;  // files or folders
  CorpusOptions corpus;
  std::string vocab_path;  // vocab.txt
  bool lowercase = true;   // uncased WordPiece (lower-case + strip accents)
  PretrainFormat format = PretrainFormat::kPacked;
  int64_t seq_len = 128;
  std::string out_dir;
  std::string prefix;  // shard file prefix; empty: the format name ("packed-00000.hdf5")
  // Rows per shard (bert: about); 0 = 2^19 / seq_len: 512K tokens (2 MB of int32 ids), so that a corpus spans
  // many shards for the loader to mix (data.mix_shards) and ranks to share; WikiText-2 is about five.
  int64_t shard_rows = 0;
  int64_t max_rows = 0;  // packed: stop after this many rows (the reference's total_samples); 0 = all
  uint64_t seed = 12345;
  int64_t duplicate = 1;        // bert: passes over each block with fresh randomness
  double short_seq_prob = 0.1;  // bert (0 for test sets)
  double random_next_prob = 0.5;
  SentenceSplit sentences = SentenceSplit::kLines;  // bert
  double masked_lm_ratio = 0.15;                    // bert static masking (0.12 for test sets)
  double p_mask = 0.8;
  int gzip_level = 4;
  int threads = 0;  // 0: all cores
  bool overwrite = false;
  ProgressOptions progress;
};

struct PretrainPrepResult {
  std::vector<std::string> shards;  // every shard of the run, in order
  int64_t shards_written = 0;
  int64_t shards_kept = 0;        // already complete from an earlier run
  bool already_complete = false;  // the manifest matched: nothing was read
  int64_t rows = 0;
  int64_t tokens = 0;               // tokens in the stream (packed) or in the documents (bert)
  int64_t dropped_tail_tokens = 0;  // packed: the incomplete last row
  int64_t unk_tokens = 0;
  int64_t stale_temporaries_removed = 0;
  CorpusStats corpus;
  double seconds = 0;
  std::string manifest;  // path of the run's manifest (manifest.json, or <prefix>.manifest.json)
};

// Runs the preparation; throws dense::Error (naming the file, line or setting) on bad input.
PretrainPrepResult prepare_pretraining(const PretrainPrepConfig& config);

// The prep_config JSON a run stores in its shards (canonical text; thread count and output folder excluded).
std::string pretraining_prep_config_json(const PretrainPrepConfig& config, const std::string& vocab_hash,
                                         const std::vector<std::string>& files);

}  // namespace dense::data
