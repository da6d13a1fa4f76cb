#include "models/model.h"

#include <algorithm>

#include "core/error.h"

namespace dense::models {

std::unique_ptr<Model> build_danet(const ModelConfig& config, DType dtype, Device device, bool allocate);
std::unique_ptr<Model> build_bert(const ModelConfig& config, DType dtype, Device device, bool allocate);

std::unique_ptr<Model> build_model(const ModelConfig& config, DType dtype, Device device, uint64_t seed) {
  config.validate();
  DENSE_CHECK(is_floating(dtype), "model dtype must be floating, got {}", dtype_name(dtype));
  std::unique_ptr<Model> model = config.model_type == ModelType::Danet ? build_danet(config, dtype, device, true)
                                                                       : build_bert(config, dtype, device, true);
  model->params().initialize(seed);
  return model;
}

int64_t count_parameters(const ModelConfig& config) {
  config.validate();
  auto model = config.model_type == ModelType::Danet ? build_danet(config, DType::F32, Device::cpu(), false)
                                                     : build_bert(config, DType::F32, Device::cpu(), false);
  return model->params().numel();
}

}  // namespace dense::models

namespace dense::models {

Tensor resize_position_table(const Tensor& table, int64_t rows) {
  DENSE_CHECK(table.dim() == 2 && table.size(0) >= 1, "resize_position_table: expected a [positions, d] table, got {}",
              table.str());
  DENSE_CHECK(rows >= 1, "resize_position_table: {} rows asked for", rows);
  const int64_t old_rows = table.size(0);
  Tensor out = Tensor::empty({rows, table.size(1)}, table.dtype(), table.device());
  for (int64_t start = 0; start < rows; start += old_rows) {
    const int64_t n = std::min(old_rows, rows - start);
    Tensor dst = out.slice(0, start, start + n);
    dst.copy_(table.slice(0, 0, n));
  }
  return out;
}

bool is_position_table(const std::string& name) { return name.ends_with("position_embeddings.weight"); }

}  // namespace dense::models
