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
#include "eval/finetune.h"
#include "models/model.h"
#include "train/data_loader.h"

namespace dense::train {

struct LogitsRequest {
  std::string checkpoint;              // a checkpoint / run folder, a .safetensors file, or a Hugging Face BERT folder
  std::string config;                  // empty: the run's config.yaml beside the checkpoint
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
  std::vector<std::string> warnings;   // newer checkpoints skipped as incomplete
  std::vector<std::string> notes;      // the checkpoint picked, what a Hugging Face import filled in
};

LogitsReport run_logits_dump(const LogitsRequest& request);

// Writes float32 `logits` atomically: `path` ending in .npy gets a NumPy array file of the logits alone; any other
// path a safetensors file of `logits` (F32) and the int64 `inputs` (input_ids, attention_mask, token_type_ids),
// with `metadata` in its header.
void write_logits_file(const std::string& path, const Tensor& logits,
                       const std::vector<std::pair<std::string, Tensor>>& inputs,
                       const std::map<std::string, std::string>& metadata);

// dense-eval glue / lra --dump-logits: a classification split's logits (float32 row-major [rows, width], as
// FinetuneResult keeps them) with the split's own inputs as the model saw them (int64 [rows, N]: input_ids,
// attention_mask, token_type_ids when the shard has them, input_ids2 / attention_mask2 for two-document tasks).
void write_split_logits(const std::string& path, const ClassificationSplit& split, const std::vector<float>& logits,
                        const std::map<std::string, std::string>& metadata);

// dense-eval mlm --dump-logits: every row the evaluation read (its inputs after masking, as the model saw them) and
// the logits of its masked positions, in the evaluation's order.
class MlmLogitsDump {
 public:
  // `width`: the logit columns kept (the vocabulary's tokens; the rest are vocabulary padding).
  explicit MlmLogitsDump(int64_t width) : width_(width) {}
  void add(const HostBatch& batch, const models::Outputs* outputs);
  // logits F32 [masked, width]; positions I64 [masked, 2] (row, column of each logits row); input_ids,
  // attention_mask, token_type_ids, mlm_labels I64 [rows, N] (labels -1 where not masked).
  void write(const std::string& path, const std::map<std::string, std::string>& metadata) const;

 private:
  int64_t width_, rows_ = 0, seq_len_ = 0;
  std::vector<float> logits_;
  std::vector<int64_t> positions_, input_ids_, attention_mask_, token_type_ids_, labels_;
};

}  // namespace dense::train
