#pragma once
// The enums that ops (backend/ops.h), the backend interface (backend/backend.h) and the kernels of every backend
// share. One definition, included by the CUDA kernels too: it must stay plain C++ that nvcc compiles (no fmt,
// no tensor.h), so only <cstdint> here.
#include <cstdint>

namespace dense {

enum class Activation : uint8_t { Identity, Relu, Gelu, GeluTanh, Silu, Tanh, Hardtanh, LeakyRelu, Sigmoid };

// Row-wise normalisations over the last dimension (docs/model.md §1.2). stats holds two values per row, written by
// forward and read by backward: MaxNorm family {denominator s, argmax index}; LN family {denominator, mean};
// f64 for f64 inputs, f32 otherwise.
enum class RowNorm : uint8_t {
  MaxNorm,           // y = x / (max|x| + eps)
  ScaledMaxNorm,     // y = g * x / (max|x| + eps)
  PreScaledMaxNorm,  // u = g * x; y = u / (max|u| + eps)
  UncenteredLN,      // y = g * x / (mean|x| + eps)   (gain may be null: the "fixed" variant)
  StandardLN,        // y = g * (x - mean) / sqrt(var + eps) (+ bias when given)
};

enum class BinaryOp : uint8_t { Add, Sub, Mul };
// How b is broadcast against a [R, C] view of a: Full (same size), Row (b is [C], repeated over rows),
// Col (b is [R], repeated over columns).
enum class Broadcast : uint8_t { Full, Row, Col };

enum class Reduction : uint8_t { Sum, MaxAbs, CountNonFinite, SumSquares };

// How a graph attention row mixes its neighbours' values.
enum class GraphScore : uint8_t {
  Softmax,  // o_i = Σ_j softmax_j(scale q_i·k_j) v_j over the row's valid neighbours; lse_i = log Σ_j e^{s_ij}
  Linear,   // o_i = Σ_j (q_i·k_j) v_j: DenseAttention's quadratic path restricted to the edges (no scale)
};

}  // namespace dense
