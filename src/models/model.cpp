#include "models/model.h"

namespace dense::models {

std::unique_ptr<Model> build_danet(const ModelConfig& config, DType dtype, Device device, bool allocate);
std::unique_ptr<Model> build_bert(const ModelConfig& config, DType dtype, Device device, bool allocate);

std::unique_ptr<Model> build_model(const ModelConfig& config, DType dtype, Device device, uint64_t seed) {
  config.validate();
  DENSE_CHECK(is_floating(dtype), "model dtype must be floating, got {}", dtype_name(dtype));
  std::unique_ptr<Model> model =
      config.model_type == ModelType::Danet ? build_danet(config, dtype, device, true)
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
