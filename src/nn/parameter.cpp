#include "nn/parameter.h"

#include "backend/ops.h"

namespace dense::nn {

uint64_t hash_name(const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

Parameter* ParameterSet::add(const std::string& name, const Shape& shape, ParamKind kind, Init init) {
  DENSE_CHECK(!materialized(), "parameter '{}' declared after the parameters were allocated", name);
  DENSE_CHECK(find(name) == nullptr, "parameter '{}' declared twice", name);
  params_.push_back(Parameter{name, shape, kind, init, {}, {}, 0});
  return &params_.back();
}

void ParameterSet::materialize(DType dtype, Device device) {
  DENSE_CHECK(!materialized(), "parameters allocated twice");
  int64_t total = 0;
  for (auto& p : params_) {
    p.arena_offset = total;
    // Keep every parameter 64-byte aligned inside the arena (16 f32 / 8 f64 elements).
    total += (shape_numel(p.shape) + 15) / 16 * 16;
  }
  values_ = Tensor::zeros({total}, dtype, device);
  grads_ = Tensor::zeros({total}, dtype, device);
  for (auto& p : params_) {
    const int64_t n = shape_numel(p.shape);
    p.value = values_.slice(0, p.arena_offset, p.arena_offset + n).view(p.shape);
    p.grad = grads_.slice(0, p.arena_offset, p.arena_offset + n).view(p.shape);
  }
}

void ParameterSet::initialize(uint64_t seed) {
  DENSE_CHECK(materialized(), "initialize() before materialize()");
  for (auto& p : params_) {
    const uint64_t key = seed ^ hash_name(p.name);
    switch (p.init.kind) {
      case Init::Normal: ops::fill_normal(p.value, 0.0, p.init.a, key, 0); break;
      case Init::Uniform: ops::fill_uniform(p.value, -p.init.a, p.init.a, key, 0); break;
      case Init::Constant: p.value.fill_(p.init.a); break;
    }
  }
}

void ParameterSet::zero_grad() {
  if (grads_.defined()) grads_.zero_();
}

Parameter* ParameterSet::find(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

const Parameter* ParameterSet::find(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

Parameter& ParameterSet::at(const std::string& name) {
  Parameter* p = find(name);
  DENSE_CHECK(p != nullptr, "no parameter named '{}'", name);
  return *p;
}

int64_t ParameterSet::numel() const {
  int64_t n = 0;
  for (const auto& p : params_) n += shape_numel(p.shape);
  return n;
}

}  // namespace dense::nn
