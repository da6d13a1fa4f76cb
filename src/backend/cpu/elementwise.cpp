// Element-wise kernels of the CPU backend: binary ops with broadcasting, activations, dropout, column sums,
// whole-tensor reductions, in-place scaling and band masks.
#include <type_traits>
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"
#include "core/philox.h"

namespace dense {
using namespace cpu;

namespace {

// scale_in_place does one multiply per element: threads pay off only on larger tensors than the other kernels.
constexpr int64_t kScaleParallelMin = 32768;

template <typename A>
inline A act_forward(Activation act, A x, A slope) {
  switch (act) {
    case Activation::Identity: return x;
    case Activation::Relu: return x > A(0) ? x : A(0);
    case Activation::Gelu: return A(0.5) * x * (A(1) + std::erf(x * A(0.70710678118654752440)));
    case Activation::GeluTanh: {
      const A k = A(0.79788456080286535588);
      return A(0.5) * x * (A(1) + std::tanh(k * (x + A(0.044715) * x * x * x)));
    }
    case Activation::Silu: return x / (A(1) + std::exp(-x));
    case Activation::Tanh: return std::tanh(x);
    case Activation::Hardtanh: return x < A(-1) ? A(-1) : (x > A(1) ? A(1) : x);
    case Activation::LeakyRelu: return x > A(0) ? x : slope * x;
    case Activation::Sigmoid: return A(1) / (A(1) + std::exp(-x));
  }
  return x;
}

template <typename A>
inline A act_derivative(Activation act, A x, A slope) {
  switch (act) {
    case Activation::Identity: return A(1);
    case Activation::Relu: return x > A(0) ? A(1) : A(0);
    case Activation::Gelu: {
      const A cdf = A(0.5) * (A(1) + std::erf(x * A(0.70710678118654752440)));
      const A pdf = std::exp(A(-0.5) * x * x) * A(0.39894228040143267794);
      return cdf + x * pdf;
    }
    case Activation::GeluTanh: {
      const A k = A(0.79788456080286535588), c = A(0.044715);
      const A t = std::tanh(k * (x + c * x * x * x));
      return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * k * (A(1) + A(3) * c * x * x);
    }
    case Activation::Silu: {
      const A s = A(1) / (A(1) + std::exp(-x));
      return s * (A(1) + x * (A(1) - s));
    }
    case Activation::Tanh: {
      const A t = std::tanh(x);
      return A(1) - t * t;
    }
    case Activation::Hardtanh: return (x > A(-1) && x < A(1)) ? A(1) : A(0);
    case Activation::LeakyRelu: return x > A(0) ? A(1) : slope;
    case Activation::Sigmoid: {
      const A s = A(1) / (A(1) + std::exp(-x));
      return s * (A(1) - s);
    }
  }
  return A(1);
}

}  // namespace

namespace {

// Calls f(std::integral_constant<E, v>{}) for the runtime enum value v, so the loops inside f are compiled
// once per value with the choice hoisted out of the element loop (and vectorised).
template <typename F>
void with_activation(Activation act, F&& f) {
  switch (act) {
    // clang-format off: the macro's expansions end in `return;`, which clang-format cannot see, so it reflows them
#define DENSE_CASE(X) \
  case Activation::X: f(std::integral_constant<Activation, Activation::X>{}); return;
    DENSE_CASE(Identity)
    DENSE_CASE(Relu)
    DENSE_CASE(Gelu)
    DENSE_CASE(GeluTanh)
    DENSE_CASE(Silu)
    DENSE_CASE(Tanh)
    DENSE_CASE(Hardtanh)
    DENSE_CASE(LeakyRelu)
    DENSE_CASE(Sigmoid)
#undef DENSE_CASE
    // clang-format on
  }
}

template <typename F>
void with_binary_op(BinaryOp op, F&& f) {
  switch (op) {
    case BinaryOp::Add: f(std::integral_constant<BinaryOp, BinaryOp::Add>{}); return;
    case BinaryOp::Sub: f(std::integral_constant<BinaryOp, BinaryOp::Sub>{}); return;
    case BinaryOp::Mul: f(std::integral_constant<BinaryOp, BinaryOp::Mul>{}); return;
  }
}

template <BinaryOp OP, typename A>
inline A apply_op(A x, A y) {
  if constexpr (OP == BinaryOp::Add)
    return x + y;
  else if constexpr (OP == BinaryOp::Sub)
    return x - y;
  else
    return x * y;
}

}  // namespace

void CpuBackend::binary(BinaryOp op, Broadcast bcast, double alpha, const Tensor& a, const Tensor& b, double beta,
                        Tensor& out) {
  dispatch_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    const int64_t n = a.numel();
    const int64_t cols = a.dim() ? a.size(-1) : 1, rows = n / cols;
    const A al = A(alpha), be = A(beta);
    const bool overwrite = beta == 0.0;
    with_binary_op(op, [&](auto op_tag) {
      constexpr BinaryOp OP = decltype(op_tag)::value;
      // Rows are the unit of work so that the broadcast index is a plain offset inside the inner loop.
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t r = 0; r < rows; ++r) {
        const T* ar = pa + r * cols;
        T* orow = po + r * cols;
        const T* brow = bcast == Broadcast::Full ? pb + r * cols : pb;
        if (bcast == Broadcast::Col) {
          const A y = load(pb + r);
          if (overwrite)
            for (int64_t c = 0; c < cols; ++c) store(orow + c, al * apply_op<OP>(load(ar + c), y));
          else
            for (int64_t c = 0; c < cols; ++c)
              store(orow + c, al * apply_op<OP>(load(ar + c), y) + be * load(orow + c));
        } else if (overwrite) {
          for (int64_t c = 0; c < cols; ++c) store(orow + c, al * apply_op<OP>(load(ar + c), load(brow + c)));
        } else {
          for (int64_t c = 0; c < cols; ++c)
            store(orow + c, al * apply_op<OP>(load(ar + c), load(brow + c)) + be * load(orow + c));
        }
      }
    });
  });
}

// f(T{}, std::integral_constant<Activation, act>{}) for the dtype's storage type T: one instantiation per
// (dtype, activation), so the element loops below are branch-free.
template <typename F>
void with_float_activation(DType dtype, Activation act, F&& f) {
  dispatch_float(dtype, [&](auto tag) { with_activation(act, [&](auto act_tag) { f(tag, act_tag); }); });
}

void CpuBackend::activation_forward(Activation act, double slope, const Tensor& x, Tensor& y) {
  with_float_activation(x.dtype(), act, [&](auto tag, auto act_tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    constexpr Activation ACT = decltype(act_tag)::value;
    const T* px = static_cast<const T*>(x.raw_data());
    T* py = static_cast<T*>(y.raw_data());
    const int64_t n = x.numel();
    const A sl = A(slope);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) store(py + i, act_forward<A>(ACT, load(px + i), sl));
  });
}

void CpuBackend::activation_backward(Activation act, double slope, const Tensor& x, const Tensor& dy, double beta,
                                     Tensor& dx) {
  with_float_activation(x.dtype(), act, [&](auto tag, auto act_tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    constexpr Activation ACT = decltype(act_tag)::value;
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pdy = static_cast<const T*>(dy.raw_data());
    T* pdx = static_cast<T*>(dx.raw_data());
    const int64_t n = x.numel();
    const A sl = A(slope), be = A(beta);
    if (beta == 0.0) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) store(pdx + i, act_derivative<A>(ACT, load(px + i), sl) * load(pdy + i));
    } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i)
        store(pdx + i, act_derivative<A>(ACT, load(px + i), sl) * load(pdy + i) + be * load(pdx + i));
    }
  });
}

void CpuBackend::dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& y) {
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.raw_data());
    T* py = static_cast<T*>(y.raw_data());
    const int64_t n = x.numel();
    const A scale = A(1.0 / (1.0 - p));
    const float pf = float(p);
    // philox_keep(seed, offset, i, p) for every i, with each Philox call serving its four elements: a call per
    // element spent 3/4 of each call, and dropout on BERT's attention probabilities was most of a CPU training
    // step (bench_core: 3.9x faster than a call per element).
    const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > 4096)
    for (int64_t b = 0; b < blocks; ++b) {
      const Philox4 r = philox4x32_10(seed, offset + uint64_t(b));
      const int64_t i0 = 4 * b, lanes = std::min<int64_t>(4, n - i0);
      for (int64_t k = 0; k < lanes; ++k)
        store(py + i0 + k, uint_to_unit_float(r.v[k]) >= pf ? load(px + i0 + k) * scale : A(0));
    }
  });
}

void CpuBackend::sum_rows(const Tensor& x, int64_t outer, int64_t rows, double alpha, double beta, Tensor& out) {
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    const int64_t cols = x.numel() / (outer * rows);
    const int64_t nblocks = (rows + kReduceBlock - 1) / kReduceBlock;
    // Fixed row blocks summed in a fixed order: deterministic for any thread count.
    std::vector<A> partial(size_t(outer * nblocks * cols), A(0));
#pragma omp parallel for collapse(2) schedule(static) if (x.numel() > kParallelMin)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t blk = 0; blk < nblocks; ++blk) {
        A* acc = partial.data() + (o * nblocks + blk) * cols;
        const int64_t r1 = std::min(rows, (blk + 1) * kReduceBlock);
        for (int64_t r = blk * kReduceBlock; r < r1; ++r) {
          const T* row = px + (o * rows + r) * cols;
          for (int64_t c = 0; c < cols; ++c) acc[c] += load(row + c);
        }
      }
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < cols; ++c) {
        A s = A(0);
        for (int64_t blk = 0; blk < nblocks; ++blk) s += partial[size_t((o * nblocks + blk) * cols + c)];
        T* dst = po + o * cols + c;
        store(dst, beta == 0.0 ? A(alpha) * s : A(alpha) * s + A(beta) * load(dst));
      }
  });
}

double CpuBackend::reduce(Reduction r, const Tensor& x) {
  double result = 0.0;
  dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(x.raw_data());
    const int64_t n = x.numel();
    constexpr int64_t kBlock = 4096;
    const int64_t nblocks = (n + kBlock - 1) / kBlock;
    std::vector<double> partial(size_t(nblocks), 0.0);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      double acc = 0.0;
      const int64_t i1 = std::min(n, (blk + 1) * kBlock);
      for (int64_t i = blk * kBlock; i < i1; ++i) {
        const double v = convert<double>(p[i]);
        if (r == Reduction::Sum)
          acc += v;
        else if (r == Reduction::SumSquares)
          acc += v * v;
        else if (r == Reduction::MaxAbs)
          acc = std::max(acc, std::fabs(v));
        else
          acc += std::isfinite(v) ? 0.0 : 1.0;
      }
      partial[size_t(blk)] = acc;
    }
    for (double v : partial) result = r == Reduction::MaxAbs ? std::max(result, v) : result + v;
  });
  return result;
}

void CpuBackend::band_mask(Tensor& s, int64_t lo, int64_t hi) {
  const int64_t cols = s.size(-1), rows = s.size(-2), mats = s.numel() / (rows * cols);
  dispatch_float(s.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(s.raw_data());
#pragma omp parallel for schedule(static) if (s.numel() > kParallelMin)
    for (int64_t m = 0; m < mats; ++m)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
          if (j - i < lo || j - i > hi) p[(m * rows + i) * cols + j] = T(0.0f);
  });
}

void CpuBackend::scale_in_place(Tensor& x, double factor) {
  cpu::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* d = static_cast<T*>(x.raw_data());
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > kScaleParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = cpu::convert<T>(cpu::convert<double>(d[i]) * factor);
  });
}

}  // namespace dense
