#pragma once
// The safetensors format (8-byte little-endian header length, JSON header, raw little-endian data):
// readable by the `safetensors` Python package and PyTorch. Used for checkpoints and test goldens.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dense {

struct SafeTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in file order
  std::map<std::string, std::string> metadata;

  const Tensor* find(const std::string& name) const;
  const Tensor& at(const std::string& name) const;  // throws naming the file's missing tensor
  std::string source;                               // the path it was read from (for messages)
};

// Validates everything (header size, JSON, dtypes, shapes, offsets inside the file, no overlaps); errors
// name the file and the tensor.
SafeTensors read_safetensors(const std::string& path);
// Writes atomically: a temporary file in the same folder, fsync, rename.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace dense
