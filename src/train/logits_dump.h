#pragma once
// dense-eval logits: a checkpoint's float32 logits on given texts or token ids, written to a file that numpy and
// node read directly, so that any other runtime of the same weights (an ONNX export, Transformers.js) can be
// compared with densetrain's own forward pass (docs/export.md, "Logits from dense-eval").
//
// Texts are tokenized with the WordPiece of dense-prep ([CLS] A [SEP], [CLS] A [SEP] B [SEP] for a tab-separated
// pair, truncated to the model's positions); every row is padded with [PAD] to the longest row, as Transformers.js
// pads a batch, and the whole batch is scored at that one length.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dense::train {

struct LogitsRequest {
  std::string checkpoint;  // a checkpoint / run folder, a .safetensors file, or a Hugging Face BERT folder
  std::string config;      // empty: the run's config.yaml beside the checkpoint
  std::vector<std::string> overrides;  // --set key=value
  std::string head = "mlm";            // "mlm": [rows, N, V]; "classifier": [rows, num_labels]
  std::vector<std::string> texts;      // --text, in order (a tab separates a sentence pair)
  std::string texts_file;              // one text per line, after `texts`
  std::vector<std::string> ids;        // --ids "2 1045 3": token ids as given (no special tokens added)
  std::string vocab;                   // empty: the config's data.vocab
  bool cased = false;                  // WordPiece without lower-casing (dense-prep --cased)
  int64_t batch = 16;                  // rows per forward pass
  std::string out;                     // .safetensors (logits + inputs) or .npy (logits only)
};

struct LogitsReport {
  std::string weights, config, vocab;  // the files read (vocab empty when none was used)
  std::vector<int64_t> shape;          // of the logits written
  int64_t truncated_rows = 0;          // texts cut to the model's positions
  std::vector<std::string> notes;      // for the log
};

LogitsReport run_logits_dump(const LogitsRequest& request);

// Writes float32 `logits` atomically: `path` ending in .npy gets a NumPy array file of the logits alone; any other
// path a safetensors file of `logits` (F32) and the int64 `inputs` (input_ids, attention_mask, token_type_ids),
// with `metadata` in its header.
void write_logits_file(const std::string& path, const Tensor& logits,
                       const std::vector<std::pair<std::string, Tensor>>& inputs,
                       const std::map<std::string, std::string>& metadata);

}  // namespace dense::train
