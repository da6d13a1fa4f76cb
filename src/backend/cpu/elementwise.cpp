// Element-wise, reduction, gather, positional, softmax and loss kernels of the CPU backend.
#include <limits>
#include <type_traits>
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"
#include "core/philox.h"

namespace dense {
using namespace cpu;

namespace {
constexpr int64_t kParallelMin = 16384;  // below this, threads cost more than they save

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
#define DENSE_CASE(X) case Activation::X: f(std::integral_constant<Activation, Activation::X>{}); return;
    DENSE_CASE(Identity) DENSE_CASE(Relu) DENSE_CASE(Gelu) DENSE_CASE(GeluTanh) DENSE_CASE(Silu) DENSE_CASE(Tanh)
    DENSE_CASE(Hardtanh) DENSE_CASE(LeakyRelu) DENSE_CASE(Sigmoid)
#undef DENSE_CASE
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
  if constexpr (OP == BinaryOp::Add) return x + y;
  else if constexpr (OP == BinaryOp::Sub) return x - y;
  else return x * y;
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
            for (int64_t c = 0; c < cols; ++c) store(orow + c, al * apply_op<OP>(load(ar + c), y) + be * load(orow + c));
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

void CpuBackend::activation_forward(Activation act, double slope, const Tensor& x, Tensor& y) {
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.raw_data());
    T* py = static_cast<T*>(y.raw_data());
    const int64_t n = x.numel();
    const A sl = A(slope);
    with_activation(act, [&](auto act_tag) {
      constexpr Activation ACT = decltype(act_tag)::value;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) store(py + i, act_forward<A>(ACT, load(px + i), sl));
    });
  });
}

void CpuBackend::activation_backward(Activation act, double slope, const Tensor& x, const Tensor& dy, double beta,
                                     Tensor& dx) {
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pdy = static_cast<const T*>(dy.raw_data());
    T* pdx = static_cast<T*>(dx.raw_data());
    const int64_t n = x.numel();
    const A sl = A(slope), be = A(beta);
    const bool overwrite = beta == 0.0;
    with_activation(act, [&](auto act_tag) {
      constexpr Activation ACT = decltype(act_tag)::value;
      if (overwrite) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
        for (int64_t i = 0; i < n; ++i) store(pdx + i, act_derivative<A>(ACT, load(px + i), sl) * load(pdy + i));
      } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
        for (int64_t i = 0; i < n; ++i)
          store(pdx + i, act_derivative<A>(ACT, load(px + i), sl) * load(pdy + i) + be * load(pdx + i));
      }
    });
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
        if (r == Reduction::Sum) acc += v;
        else if (r == Reduction::SumSquares) acc += v * v;
        else if (r == Reduction::MaxAbs) acc = std::max(acc, std::fabs(v));
        else acc += std::isfinite(v) ? 0.0 : 1.0;
      }
      partial[size_t(blk)] = acc;
    }
    for (double v : partial) result = r == Reduction::MaxAbs ? std::max(result, v) : result + v;
  });
  return result;
}

void CpuBackend::gather_rows(const Tensor& table, const Tensor& ids, double beta, Tensor& out) {
  const int64_t rows = table.size(0), cols = table.size(1), n = ids.numel();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = read_index(ids, i);
    DENSE_CHECK(id >= 0 && id < rows, "id {} at position {} is outside the table of {} rows", id, i, rows);
  }
  dispatch_float(table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* pt = static_cast<const T*>(table.raw_data());
    T* po = static_cast<T*>(out.raw_data());
#pragma omp parallel for schedule(static) if (n * cols > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const T* src = pt + read_index(ids, i) * cols;
      T* dst = po + i * cols;
      for (int64_t c = 0; c < cols; ++c) store(dst + c, beta == 0.0 ? load(src + c) : load(src + c) + A(beta) * load(dst + c));
    }
  });
}

void CpuBackend::scatter_add_rows(const Tensor& src, const Tensor& ids, Tensor& table) {
  const int64_t rows = table.size(0), cols = table.size(1), n = ids.numel();
  // Each table row the ids touch gets one accumulator slot (in order of first appearance): a bf16 entry that
  // rounded after every addition would stop growing once it is ~256x its addends (a token seen thousands of
  // times in a batch, such as [MASK]), so entries accumulate in f32 (f64 for f64) and are rounded once.
  std::vector<int64_t> slot_of(size_t(rows), -1), touched;
  std::vector<int64_t> slot(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = read_index(ids, i);
    DENSE_CHECK(id >= 0 && id < rows, "id {} at position {} is outside the table of {} rows", id, i, rows);
    if (slot_of[size_t(id)] < 0) {
      slot_of[size_t(id)] = int64_t(touched.size());
      touched.push_back(id);
    }
    slot[size_t(i)] = slot_of[size_t(id)];
  }
  const int64_t uniq = int64_t(touched.size());
  dispatch_float(table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* ps = static_cast<const T*>(src.raw_data());
    T* pt = static_cast<T*>(table.raw_data());
    // Threads own column ranges and walk the ids in order: no races, and the sum order is fixed (the CUDA
    // kernel adds in the same order, so both backends round the same sums).
    constexpr int64_t kCols = 16;
    const int64_t nchunks = (cols + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (n * cols > kParallelMin)
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      const int64_t c0 = ch * kCols, c1 = std::min(cols, c0 + kCols), w = c1 - c0;
      std::vector<A> accum(size_t(uniq * w));
      for (int64_t u = 0; u < uniq; ++u)
        for (int64_t c = c0; c < c1; ++c) accum[size_t(u * w + c - c0)] = load(pt + touched[size_t(u)] * cols + c);
      for (int64_t i = 0; i < n; ++i) {
        A* a = accum.data() + slot[size_t(i)] * w;
        const T* s = ps + i * cols;
        for (int64_t c = c0; c < c1; ++c) a[c - c0] += load(s + c);
      }
      for (int64_t u = 0; u < uniq; ++u)
        for (int64_t c = c0; c < c1; ++c) store(pt + touched[size_t(u)] * cols + c, accum[size_t(u * w + c - c0)]);
    }
  });
}

void CpuBackend::positional_scale(const Tensor& x, const Tensor& table, const Tensor& positions, Tensor& y) {
  const int64_t cols = x.size(-1), rows = x.numel() / cols, period = positions.numel();
  for (int64_t i = 0; i < period; ++i) {
    const int64_t p = read_index(positions, i);
    DENSE_CHECK(p >= 0 && p < table.size(0), "position {} outside the RelPE table of {} rows", p, table.size(0));
  }
  const Tensor tab = table.dtype() == x.dtype() ? table : table.to(x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pt = static_cast<const T*>(tab.raw_data());
    T* py = static_cast<T*>(y.raw_data());
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const T* t = pt + read_index(positions, r % period) * cols;
      for (int64_t c = 0; c < cols; ++c) store(py + r * cols + c, load(px + r * cols + c) * load(t + c));
    }
  });
}

void CpuBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& positions, bool inverse,
                      Tensor& y) {
  const int64_t cols = x.size(-1), half = cols / 2, rows = x.numel() / cols, period = positions.numel();
  for (int64_t i = 0; i < period; ++i) {
    const int64_t p = read_index(positions, i);
    DENSE_CHECK(p >= 0 && p < cos.size(0), "position {} outside the RoPE cache of {} rows", p, cos.size(0));
  }
  const Tensor tc = cos.dtype() == x.dtype() ? cos : cos.to(x.dtype());
  const Tensor ts = sin.dtype() == x.dtype() ? sin : sin.to(x.dtype());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pc = static_cast<const T*>(tc.raw_data());
    const T* ps = static_cast<const T*>(ts.raw_data());
    T* py = static_cast<T*>(y.raw_data());
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t pos = read_index(positions, r % period);
      const T* c = pc + pos * cols;
      const T* s = ps + pos * cols;
      const T* xr = px + r * cols;
      T* yr = py + r * cols;
      for (int64_t j = 0; j < half; ++j) {
        const A x1 = load(xr + j), x2 = load(xr + j + half);
        if (!inverse) {
          // rot(x) = [-x2, x1]
          store(yr + j, x1 * load(c + j) - x2 * load(s + j));
          store(yr + j + half, x2 * load(c + j + half) + x1 * load(s + j + half));
        } else {
          // y = x*cos - rot(x*sin), rot(z) = [-z2, z1]  =>  y1 = x1 c1 + x2 s2, y2 = x2 c2 - x1 s1
          store(yr + j, x1 * load(c + j) + x2 * load(s + j + half));
          store(yr + j + half, x2 * load(c + j + half) - x1 * load(s + j));
        }
      }
    }
  });
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

void CpuBackend::softmax_forward(const Tensor& s, double scale, const Tensor* key_valid, int64_t heads, Tensor& p) {
  const int64_t groups = s.size(0), rows = s.size(1), cols = s.size(2);
  dispatch_float(s.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* ps = static_cast<const T*>(s.raw_data());
    const T* pk = key_valid ? static_cast<const T*>(key_valid->raw_data()) : nullptr;
    T* pp = static_cast<T*>(p.raw_data());
#pragma omp parallel for collapse(2) schedule(static) if (s.numel() > kParallelMin)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t i = 0; i < rows; ++i) {
        const T* in = ps + (g * rows + i) * cols;
        T* out = pp + (g * rows + i) * cols;
        const T* valid = pk ? pk + (g / heads) * cols : nullptr;
        A mx = -std::numeric_limits<A>::infinity();
        for (int64_t j = 0; j < cols; ++j)
          if (!valid || load(valid + j) != A(0)) mx = std::max(mx, A(scale) * load(in + j));
        if (mx == -std::numeric_limits<A>::infinity()) {
          for (int64_t j = 0; j < cols; ++j) store(out + j, A(0));
          continue;
        }
        A sum = A(0);
        for (int64_t j = 0; j < cols; ++j) {
          const A e = (!valid || load(valid + j) != A(0)) ? std::exp(A(scale) * load(in + j) - mx) : A(0);
          store(out + j, e);
          sum += e;
        }
        const A inv = A(1) / sum;
        for (int64_t j = 0; j < cols; ++j) store(out + j, load(out + j) * inv);
      }
  });
}

void CpuBackend::softmax_backward(const Tensor& p, const Tensor& dp, double scale, Tensor& ds) {
  const int64_t cols = p.size(-1), rows = p.numel() / cols;
  dispatch_float(p.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* pp = static_cast<const T*>(p.raw_data());
    const T* pd = static_cast<const T*>(dp.raw_data());
    T* po = static_cast<T*>(ds.raw_data());
#pragma omp parallel for schedule(static) if (p.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      A dot = A(0);
      for (int64_t j = 0; j < cols; ++j) dot += load(pp + r * cols + j) * load(pd + r * cols + j);
      for (int64_t j = 0; j < cols; ++j)
        store(po + r * cols + j, A(scale) * load(pp + r * cols + j) * (load(pd + r * cols + j) - dot));
    }
  });
}

void CpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& lse) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const int64_t* pl = static_cast<const int64_t*>(labels.raw_data());
  for (int64_t r = 0; r < rows; ++r)
    DENSE_CHECK(pl[r] < vocab, "label {} of row {} is outside the {} classes", pl[r], r, vocab);
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(logits.raw_data());
    A* ploss = static_cast<A*>(loss.raw_data());  // statistics in the accumulator's dtype (ops checks)
    A* plse = static_cast<A*>(lse.raw_data());
#pragma omp parallel for schedule(static) if (logits.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = px + r * vocab;
      A mx = load(row);
      for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, load(row + j));
      A sum = A(0);
      for (int64_t j = 0; j < vocab; ++j) sum += std::exp(load(row + j) - mx);
      const A l = mx + std::log(sum);
      plse[r] = l;
      ploss[r] = pl[r] < 0 ? A(0) : l - load(row + pl[r]);
    }
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, double scale,
                                        Tensor& dlogits) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const int64_t* pl = static_cast<const int64_t*>(labels.raw_data());
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(logits.raw_data());
    const A* plse = static_cast<const A*>(lse.raw_data());
    T* pd = static_cast<T*>(dlogits.raw_data());
#pragma omp parallel for schedule(static) if (logits.numel() > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      T* d = pd + r * vocab;
      if (pl[r] < 0) {
        for (int64_t j = 0; j < vocab; ++j) store(d + j, A(0));
        continue;
      }
      const A l = plse[r];
      for (int64_t j = 0; j < vocab; ++j) {
        const A prob = std::exp(load(px + r * vocab + j) - l);
        store(d + j, A(scale) * (prob - (j == pl[r] ? A(1) : A(0))));
      }
    }
  });
}

void CpuBackend::max_pool_forward(const Tensor& x, Tensor& out, Tensor& argmax) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    int64_t* pa = static_cast<int64_t*>(argmax.raw_data());
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < D; ++c) {
        int64_t best = 0;
        A bv = load(px + b * N * D + c);
        for (int64_t i = 1; i < N; ++i) {
          const A v = load(px + (b * N + i) * D + c);
          if (v > bv) {
            bv = v;
            best = i;
          }
        }
        store(po + b * D + c, bv);
        pa[b * D + c] = best;
      }
  });
}

void CpuBackend::max_pool_backward(const Tensor& dout, const Tensor& argmax, Tensor& dx) {
  const int64_t B = dx.size(0), N = dx.size(1), D = dx.size(2);
  dispatch_float(dx.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pd = static_cast<const T*>(dout.raw_data());
    const int64_t* pa = static_cast<const int64_t*>(argmax.raw_data());
    T* px = static_cast<T*>(dx.raw_data());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < D; ++c) {
        T* dst = px + (b * N + pa[b * D + c]) * D + c;
        store(dst, load(dst) + load(pd + b * D + c));
      }
  });
}

}  // namespace dense
