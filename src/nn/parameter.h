#pragma once
// Parameters live in two flat arenas (values and gradients), llm.c style: one allocation each, so the
// optimizer, gradient clipping, all-reduce and checkpoints see one contiguous buffer. Modules declare their
// parameters (name, shape, kind, initialiser) at construction; `materialize` allocates the arenas and hands
// every Parameter its views.
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dense::nn {

enum class ParamKind : uint8_t { Weight, Bias, Gain, Embedding };

struct Init {
  enum Kind : uint8_t { Normal, Uniform, Constant } kind = Constant;
  double a = 0.0;  // std (Normal), half-width (Uniform), value (Constant)
  static Init normal(double std) { return {Normal, std}; }
  static Init uniform(double r) { return {Uniform, r}; }
  static Init constant(double v) { return {Constant, v}; }
};

struct Parameter {
  std::string name;
  Shape shape;
  ParamKind kind = ParamKind::Weight;
  Init init;
  Tensor value;  // view into the value arena
  Tensor grad;   // view into the gradient arena; backward accumulates with +=
  int64_t arena_offset = 0;
};

class ParameterSet {
 public:
  // Declares a parameter; returns a pointer that stays valid for the set's lifetime.
  Parameter* add(const std::string& name, const Shape& shape, ParamKind kind, Init init);
  void materialize(DType dtype, Device device);
  bool materialized() const { return values_.defined(); }
  // Draws every parameter from its initialiser. Each parameter's Philox key mixes the seed with a hash of
  // its name, so values do not depend on declaration order, backend or rank.
  void initialize(uint64_t seed);
  void zero_grad();

  Parameter* find(const std::string& name);
  const Parameter* find(const std::string& name) const;
  Parameter& at(const std::string& name);  // throws naming the missing parameter
  std::deque<Parameter>& all() { return params_; }
  const std::deque<Parameter>& all() const { return params_; }
  int64_t numel() const;
  Tensor& values() { return values_; }
  Tensor& grads() { return grads_; }
  DType dtype() const { return values_.dtype(); }
  Device device() const { return values_.device(); }

 private:
  std::deque<Parameter> params_;
  Tensor values_;
  Tensor grads_;
};

uint64_t hash_name(const std::string& name);

}  // namespace dense::nn
