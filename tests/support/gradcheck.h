#pragma once
// Finite-difference gradient checking in float64, shared by every module test.
//
// The scalar checked is L = Σ w ⊙ forward() with a fixed random w. The analytic gradient comes from
// backward(w); the numeric one from central differences (L(v+h) - L(v-h)) / 2h on every element (or a
// seeded sample of at most `max_elements` per variable). The error per variable is norm-wise relative:
// ||analytic - numeric||₂ / max(||numeric||₂, tiny).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/tensor.h"

namespace dense::testing {

struct GradVar {
  std::string name;
  Tensor value;  // perturbed in place (a view into a parameter arena or an input tensor), f64, contiguous
  Tensor grad;   // where backward writes or accumulates the analytic gradient, same shape
};

inline Tensor random_tensor(const Shape& shape, uint64_t seed, double std = 1.0, DType dtype = DType::F64) {
  Tensor t = Tensor::empty(shape, dtype);
  ops::fill_normal(t, 0.0, std, seed, 0);
  return t;
}

inline double weighted_sum(const Tensor& out, const Tensor& w) {
  const auto o = out.contiguous().to_vector<double>();
  const auto wv = w.to_vector<double>();
  double s = 0.0;
  for (size_t i = 0; i < o.size(); ++i) s += o[i] * wv[i];
  return s;
}

// Returns the worst relative error over the variables (and records one gtest failure per bad variable).
inline double check_gradients(const std::function<Tensor()>& forward,
                              const std::function<void(const Tensor& dout)>& backward, std::vector<GradVar> vars,
                              double tolerance = 1e-6, double h = 1e-6, int64_t max_elements = 400,
                              uint64_t seed = 1234) {
  const Tensor out0 = forward();
  const Tensor w = random_tensor(out0.shape(), seed + 17);
  for (auto& v : vars) v.grad.zero_();
  backward(w);
  double worst = 0.0;
  for (auto& v : vars) {
    EXPECT_EQ(v.value.dtype(), DType::F64) << v.name;
    const auto analytic = v.grad.contiguous().to_vector<double>();
    const int64_t n = v.value.numel();
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = i;
    if (n > max_elements) {
      // Deterministic sample: a stride walk with a seeded start keeps coverage spread over the tensor.
      std::vector<int64_t> pick;
      const int64_t step = n / max_elements;
      for (int64_t k = 0; k < max_elements; ++k) pick.push_back((int64_t(seed % uint64_t(step)) + k * step) % n);
      idx = pick;
    }
    Tensor flat = v.value.view({-1});
    double num2 = 0.0, diff2 = 0.0;
    for (int64_t i : idx) {
      Tensor e = flat.slice(0, i, i + 1);
      const double orig = e.item();
      e.fill_(orig + h);
      const double lp = weighted_sum(forward(), w);
      e.fill_(orig - h);
      const double lm = weighted_sum(forward(), w);
      e.fill_(orig);
      const double numeric = (lp - lm) / (2 * h);
      num2 += numeric * numeric;
      diff2 += (numeric - analytic[size_t(i)]) * (numeric - analytic[size_t(i)]);
    }
    const double rel = std::sqrt(diff2) / std::max(std::sqrt(num2), 1e-12);
    EXPECT_LT(rel, tolerance) << "gradient of '" << v.name << "' differs from finite differences (relative " << rel
                              << ", |numeric| " << std::sqrt(num2) << ")";
    EXPECT_GT(std::sqrt(num2) + std::sqrt(diff2), 0.0) << "gradient of '" << v.name << "' is identically zero";
    worst = std::max(worst, rel);
  }
  forward();  // leave saved activations consistent with the unperturbed values
  return worst;
}

// Norm-wise relative difference ||a - b|| / ||b|| of two tensors of the same size (any dtypes).
inline double relative_error(const Tensor& a, const Tensor& b) {
  const auto av = a.contiguous().to_vector<double>();
  const auto bv = b.contiguous().to_vector<double>();
  EXPECT_EQ(av.size(), bv.size());
  double d2 = 0.0, b2 = 0.0;
  for (size_t i = 0; i < std::min(av.size(), bv.size()); ++i) {
    d2 += (av[i] - bv[i]) * (av[i] - bv[i]);
    b2 += bv[i] * bv[i];
  }
  return std::sqrt(d2) / std::max(std::sqrt(b2), 1e-30);
}

}  // namespace dense::testing
