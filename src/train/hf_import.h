#pragma once
// --init-from a Hugging Face BERT checkpoint folder (config.json + model.safetensors, the standard BertModel /
// BertForMaskedLM / BertForPreTraining / BertForSequenceClassification tensor names, with or without `bert.`)
// for densetrain's BERT baseline. docs/export.md has the name table and what the mapping cannot preserve
// (densetrain's BERT is pre-LN: the norms are placed by the sub-layer they feed, so a post-LN checkpoint is a
// starting point for training, not the same function).
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/model.h"

namespace dense::train {

// True when `path` is a folder holding config.json and no densetrain checkpoint files (checksums.json,
// trainer_state.json): what --init-from hands to import_hf_bert instead of the checkpoint reader.
bool is_hf_checkpoint(const std::string& path);

struct HfImport {
  std::vector<std::pair<std::string, Tensor>> tensors;  // densetrain names, f32, CPU; every parameter of the model
  std::vector<std::string> notes;                       // what was filled or changed (for the log)
  std::string source;                                   // the weights file read
};

// Reads folder/config.json and folder/model.safetensors and maps them onto `model` (a BERT; its config() is
// what config.json is checked against).
// config.json must describe the same model: every differing key is one line of the dense::Error, with the
// model-section value to use. pytorch_model.bin alone is an error naming the command that converts it.
// RoBERTa, DistilBERT and other layouts are errors naming the family. Heads the checkpoint lacks (pooler,
// classifier, MLM head) keep `model`'s current values, noted; encoder and embedding tensors are never invented,
// except layer 0's pre-attention LayerNorm (weight 1, bias 0) that a post-LN checkpoint does not have.
HfImport import_hf_bert(const std::string& folder, models::Model& model);

}  // namespace dense::train
