// Row normalisations (docs/model.md §1.2): MaxNorm family and LayerNorm family, forward and backward.
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"

namespace dense {
using namespace cpu;

namespace {

template <typename A, typename T>
inline int64_t argmax_abs(const T* x, int64_t cols) {
  // First index of the largest |x|: the reference's max-with-index tie rule.
  int64_t best = 0;
  A bv = std::fabs(load(x));
  for (int64_t j = 1; j < cols; ++j) {
    const A v = std::fabs(load(x + j));
    if (v > bv) {
      bv = v;
      best = j;
    }
  }
  return best;
}

template <typename A>
inline A sign(A v) {
  return v > A(0) ? A(1) : (v < A(0) ? A(-1) : A(0));
}

template <typename T>
void norm_forward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor* bias, double eps, Tensor& y,
                  Tensor& stats) {
  using A = acc_t<T>;
  using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  const T* px = static_cast<const T*>(x.raw_data());
  const T* pg = gain ? static_cast<const T*>(gain->raw_data()) : nullptr;
  const T* pb = bias ? static_cast<const T*>(bias->raw_data()) : nullptr;
  T* py = static_cast<T*>(y.raw_data());
  S* ps = static_cast<S*>(stats.raw_data());
  const A e = A(eps);
#pragma omp parallel for schedule(static) if (x.numel() > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = px + r * cols;
    T* yr = py + r * cols;
    switch (kind) {
      case RowNorm::MaxNorm:
      case RowNorm::ScaledMaxNorm: {
        const int64_t j = argmax_abs<A>(xr, cols);
        const A s = std::fabs(load(xr + j)) + e;
        const A inv = A(1) / s;
        for (int64_t c = 0; c < cols; ++c) {
          const A v = load(xr + c) * inv;
          store(yr + c, pg && kind == RowNorm::ScaledMaxNorm ? v * load(pg + c) : v);
        }
        ps[2 * r] = S(s);
        ps[2 * r + 1] = S(j);
        break;
      }
      case RowNorm::PreScaledMaxNorm: {
        int64_t best = 0;
        A bv = A(-1);
        for (int64_t c = 0; c < cols; ++c) {
          const A u = std::fabs(load(xr + c) * load(pg + c));
          if (u > bv) {
            bv = u;
            best = c;
          }
        }
        const A s = bv + e;
        const A inv = A(1) / s;
        for (int64_t c = 0; c < cols; ++c) store(yr + c, load(xr + c) * load(pg + c) * inv);
        ps[2 * r] = S(s);
        ps[2 * r + 1] = S(best);
        break;
      }
      case RowNorm::UncenteredLN: {
        A m = A(0);
        for (int64_t c = 0; c < cols; ++c) m += std::fabs(load(xr + c));
        const A s = m / A(cols) + e;
        const A inv = A(1) / s;
        for (int64_t c = 0; c < cols; ++c) store(yr + c, load(xr + c) * inv * (pg ? load(pg + c) : A(1)));
        ps[2 * r] = S(s);
        ps[2 * r + 1] = S(0);
        break;
      }
      case RowNorm::StandardLN: {
        A mean = A(0);
        for (int64_t c = 0; c < cols; ++c) mean += load(xr + c);
        mean /= A(cols);
        A var = A(0);
        for (int64_t c = 0; c < cols; ++c) {
          const A d = load(xr + c) - mean;
          var += d * d;
        }
        var /= A(cols);
        const A sigma = std::sqrt(var + e);
        const A inv = A(1) / sigma;
        for (int64_t c = 0; c < cols; ++c) {
          A v = (load(xr + c) - mean) * inv;
          if (pg) v *= load(pg + c);
          if (pb) v += load(pb + c);
          store(yr + c, v);
        }
        ps[2 * r] = S(sigma);
        ps[2 * r + 1] = S(mean);
        break;
      }
    }
  }
}

template <typename T>
void norm_backward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor& stats, const Tensor& dy,
                   double beta_dx, Tensor& dx, Tensor* dgain, Tensor* dbias) {
  using A = acc_t<T>;
  using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  const T* px = static_cast<const T*>(x.raw_data());
  const T* pg = gain ? static_cast<const T*>(gain->raw_data()) : nullptr;
  const T* pdy = static_cast<const T*>(dy.raw_data());
  T* pdx = static_cast<T*>(dx.raw_data());
  const S* ps = static_cast<const S*>(stats.raw_data());
  const int64_t nblocks = (rows + kReduceBlock - 1) / kReduceBlock;
  // Per-block partial sums of the gain and bias gradients, combined in block order afterwards.
  std::vector<A> pdg(dgain ? size_t(nblocks * cols) : 0, A(0)), pdb(dbias ? size_t(nblocks * cols) : 0, A(0));
#pragma omp parallel if (x.numel() > 16384)
  {
    std::vector<A> t(static_cast<size_t>(cols));
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      A* dg = dgain ? pdg.data() + blk * cols : nullptr;
      A* db = dbias ? pdb.data() + blk * cols : nullptr;
      const int64_t r1 = std::min(rows, (blk + 1) * kReduceBlock);
      for (int64_t r = blk * kReduceBlock; r < r1; ++r) {
        const T* xr = px + r * cols;
        const T* dyr = pdy + r * cols;
        T* dxr = pdx + r * cols;
        const A s = A(ps[2 * r]);
        auto write_dx = [&](int64_t c, A v) { store(dxr + c, beta_dx == 0.0 ? v : v + A(beta_dx) * load(dxr + c)); };
        switch (kind) {
          case RowNorm::MaxNorm:
          case RowNorm::ScaledMaxNorm: {
            const int64_t j = int64_t(ps[2 * r + 1]);
            A dot = A(0);
            for (int64_t c = 0; c < cols; ++c) {
              A g = load(dyr + c);
              if (kind == RowNorm::ScaledMaxNorm) {
                if (dg) dg[c] += g * load(xr + c) / s;
                g *= load(pg + c);
              }
              t[size_t(c)] = g;
              dot += g * load(xr + c);
            }
            for (int64_t c = 0; c < cols; ++c) {
              A v = t[size_t(c)] / s;
              if (c == j) v -= sign(load(xr + c)) * dot / (s * s);
              write_dx(c, v);
            }
            break;
          }
          case RowNorm::PreScaledMaxNorm: {
            const int64_t j = int64_t(ps[2 * r + 1]);
            A dot = A(0);
            for (int64_t c = 0; c < cols; ++c) dot += load(dyr + c) * load(xr + c) * load(pg + c);
            for (int64_t c = 0; c < cols; ++c) {
              A du = load(dyr + c) / s;
              if (c == j) du -= sign(load(xr + c) * load(pg + c)) * dot / (s * s);
              if (dg) dg[c] += du * load(xr + c);
              write_dx(c, du * load(pg + c));
            }
            break;
          }
          case RowNorm::UncenteredLN: {
            A dot = A(0);
            for (int64_t c = 0; c < cols; ++c) {
              const A g = load(dyr + c) * (pg ? load(pg + c) : A(1));
              t[size_t(c)] = g;
              dot += g * load(xr + c);
              if (dg) dg[c] += load(dyr + c) * load(xr + c) / s;
            }
            for (int64_t c = 0; c < cols; ++c)
              write_dx(c, t[size_t(c)] / s - sign(load(xr + c)) * dot / (A(cols) * s * s));
            break;
          }
          case RowNorm::StandardLN: {
            const A mean = A(ps[2 * r + 1]);
            A mt = A(0), mtx = A(0);
            for (int64_t c = 0; c < cols; ++c) {
              const A xh = (load(xr + c) - mean) / s;
              const A g = load(dyr + c) * (pg ? load(pg + c) : A(1));
              t[size_t(c)] = g;
              mt += g;
              mtx += g * xh;
              if (dg) dg[c] += load(dyr + c) * xh;
              if (db) db[c] += load(dyr + c);
            }
            mt /= A(cols);
            mtx /= A(cols);
            for (int64_t c = 0; c < cols; ++c) {
              const A xh = (load(xr + c) - mean) / s;
              write_dx(c, (t[size_t(c)] - mt - xh * mtx) / s);
            }
            break;
          }
        }
      }
    }
  }
  auto finish = [&](std::vector<A>& partial, Tensor* grad) {
    if (!grad) return;
    T* pgrad = static_cast<T*>(grad->raw_data());
    for (int64_t c = 0; c < cols; ++c) {
      A sum = A(0);
      for (int64_t blk = 0; blk < nblocks; ++blk) sum += partial[size_t(blk * cols + c)];
      store(pgrad + c, load(pgrad + c) + sum);
    }
  };
  finish(pdg, dgain);
  finish(pdb, dbias);
}

}  // namespace

void CpuBackend::rownorm_forward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor* bias, double eps,
                                 Tensor& y, Tensor& stats) {
  dispatch_float(x.dtype(), [&](auto tag) { norm_forward<decltype(tag)>(kind, x, gain, bias, eps, y, stats); });
}

void CpuBackend::rownorm_backward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor& stats,
                                  const Tensor& dy, double beta_dx, Tensor& dx, Tensor* dgain, Tensor* dbias) {
  dispatch_float(x.dtype(),
                 [&](auto tag) { norm_backward<decltype(tag)>(kind, x, gain, stats, dy, beta_dx, dx, dgain, dbias); });
}

}  // namespace dense
