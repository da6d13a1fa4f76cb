// Graph-processing sparse attention on the CPU: one task per (batch, head, row), each walking only its row's
// neighbours, so the work is nnz·e multiply-adds (no N×N anywhere). Softmax rows take two passes over the
// neighbours (scores into a per-thread buffer, then exp/sum/accumulate), which is exact and as stable as a
// max-subtracted softmax. Every output element is written by one task in a fixed order: results do not depend
// on the thread count.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"

namespace dense {
using namespace cpu;

namespace {

// The neighbours of row i of group g, as a [begin, end) range of key indices (band) or of col entries (CSR).
struct Neighbours {
  const int64_t* row_ptr = nullptr;
  const int32_t* col = nullptr;
  int64_t rows = 0, keys = 0, lo = 0, hi = 0;

  Neighbours(const GraphRef& g, int64_t rows_, int64_t keys_) : rows(rows_), keys(keys_), lo(g.band_lo), hi(g.band_hi) {
    if (!g.implicit()) {
      row_ptr = static_cast<const int64_t*>(g.row_ptr->raw_data());
      col = static_cast<const int32_t*>(g.col->raw_data());
    }
  }
  template <class F>
  void for_each(int64_t group, int64_t i, F&& f) const {
    if (row_ptr) {
      const int64_t* rp = row_ptr + group * (rows + 1);
      for (int64_t p = rp[i]; p < rp[i + 1]; ++p) f(static_cast<int64_t>(col[p]));
    } else {
      const int64_t begin = std::max<int64_t>(0, i + lo), end = std::min<int64_t>(keys - 1, i + hi);
      for (int64_t j = begin; j <= end; ++j) f(j);
    }
  }
  int64_t max_degree(int64_t groups) const {
    if (!row_ptr) return std::max<int64_t>(0, std::min(hi - lo + 1, keys));
    int64_t m = 0;
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t* rp = row_ptr + g * (rows + 1);
        m = std::max(m, rp[i + 1] - rp[i]);
      }
    return m;
  }
};

// Eight independent partial sums in a fixed order: the compiler can vectorise them (a single running sum
// cannot be reordered without -ffast-math), and the result is still the same for every run and thread count.
template <typename T, typename A>
inline A dot(const A* x, const T* y, int64_t e) {
  A part[8] = {};
  int64_t c = 0;
  for (; c + 8 <= e; c += 8)
    for (int l = 0; l < 8; ++l) part[l] += x[c + l] * load(y + c + l);
  A s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  for (; c < e; ++c) s += x[c] * load(y + c);
  return s;
}
template <typename T, typename A>
inline void axpy_row(A alpha, const T* x, A* y, int64_t e) {
  for (int64_t c = 0; c < e; ++c) y[c] += alpha * load(x + c);
}
template <typename T, typename A>
inline void load_row(const T* x, A* y, int64_t e) {
  for (int64_t c = 0; c < e; ++c) y[c] = load(x + c);
}

struct Dims {
  int64_t batch, nq, nk, heads, e, d;
  Dims(const Tensor& q, const Tensor& k, int64_t h)
      : batch(q.size(0)), nq(q.size(1)), nk(k.size(1)), heads(h), e(q.size(2) / h), d(q.size(2)) {}
};

template <typename T>
void forward_impl(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v, const GraphRef& graph,
                  const Tensor* key_valid, int64_t heads, double scale_d, Tensor& o, Tensor* lse) {
  using A = acc_t<T>;
  const Dims dm(q, k, heads);
  const Neighbours nb(graph, dm.nq, dm.nk);
  const int64_t max_deg = nb.max_degree(graph.groups);
  const T* pq = static_cast<const T*>(q.raw_data());
  const T* pk = static_cast<const T*>(k.raw_data());
  const T* pv = static_cast<const T*>(v.raw_data());
  const T* pvalid = key_valid ? static_cast<const T*>(key_valid->raw_data()) : nullptr;
  T* po = static_cast<T*>(o.raw_data());
  A* plse = lse ? static_cast<A*>(lse->raw_data()) : nullptr;
  const A scale = A(scale_d);
  const int64_t tasks = dm.batch * dm.heads * dm.nq;
#pragma omp parallel if (tasks * std::max <int64_t>(max_deg, 1) * dm.e > 32768)
  {
    std::vector<A> qrow(dm.e), acc(dm.e), scores(static_cast<size_t>(max_deg));
    std::vector<int64_t> keys(static_cast<size_t>(max_deg));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t i = t % dm.nq, h = (t / dm.nq) % dm.heads, b = t / (dm.nq * dm.heads);
      const int64_t group = graph.groups == 1 ? 0 : h;
      const T* valid = pvalid ? pvalid + b * dm.nk : nullptr;
      const T* krows = pk + b * dm.nk * dm.d + h * dm.e;
      const T* vrows = pv + b * dm.nk * dm.d + h * dm.e;
      T* orow = po + (b * dm.nq + i) * dm.d + h * dm.e;
      load_row(pq + (b * dm.nq + i) * dm.d + h * dm.e, qrow.data(), dm.e);  // before o, which may alias q
      std::fill(acc.begin(), acc.end(), A(0));
      int64_t n = 0;
      nb.for_each(group, i, [&](int64_t j) {
        if (valid && load(valid + j) == A(0)) return;
        keys[n] = j;
        scores[n] = dot(qrow.data(), krows + j * dm.d, dm.e);
        ++n;
      });
      if (score == GraphScore::Linear) {
        for (int64_t p = 0; p < n; ++p) axpy_row(scores[p], vrows + keys[p] * dm.d, acc.data(), dm.e);
      } else if (n > 0) {
        A mx = -std::numeric_limits<A>::infinity();
        for (int64_t p = 0; p < n; ++p) mx = std::max(mx, scale * scores[p]);
        A sum = A(0);
        for (int64_t p = 0; p < n; ++p) {
          const A w = std::exp(scale * scores[p] - mx);
          sum += w;
          axpy_row(w, vrows + keys[p] * dm.d, acc.data(), dm.e);
        }
        const A inv = A(1) / sum;
        for (auto& a : acc) a *= inv;
        if (plse) plse[(b * dm.heads + h) * dm.nq + i] = mx + std::log(sum);
      } else if (plse) {
        plse[(b * dm.heads + h) * dm.nq + i] = -std::numeric_limits<A>::infinity();
      }
      for (int64_t c = 0; c < dm.e; ++c) store(orow + c, acc[c]);
    }
  }
}

template <typename T>
void backward_impl(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v, const GraphRef& graph,
                   const GraphRef& transposed, const Tensor* key_valid, int64_t heads, double scale_d, const Tensor& o,
                   const Tensor& dout, const Tensor* lse, Tensor& dq, Tensor& dk, Tensor& dv) {
  using A = acc_t<T>;
  const Dims dm(q, k, heads);
  const Neighbours rows_of(graph, dm.nq, dm.nk), cols_of(transposed, dm.nk, dm.nq);
  const T* pq = static_cast<const T*>(q.raw_data());
  const T* pk = static_cast<const T*>(k.raw_data());
  const T* pv = static_cast<const T*>(v.raw_data());
  const T* po = static_cast<const T*>(o.raw_data());
  const T* pdo = static_cast<const T*>(dout.raw_data());
  const T* pvalid = key_valid ? static_cast<const T*>(key_valid->raw_data()) : nullptr;
  const A* plse = lse ? static_cast<const A*>(lse->raw_data()) : nullptr;
  T* pdq = static_cast<T*>(dq.raw_data());
  T* pdk = static_cast<T*>(dk.raw_data());
  T* pdv = static_cast<T*>(dv.raw_data());
  const A scale = A(scale_d);
  const bool softmax = score == GraphScore::Softmax;
  const int64_t work = dm.batch * dm.heads * dm.nq * dm.e * 8;

  // D_i = do_i · o_i: the softmax Jacobian's row term, needed by both passes.
  std::vector<A> drow(softmax ? static_cast<size_t>(dm.batch * dm.heads * dm.nq) : 0);
  if (softmax) {
#pragma omp parallel for schedule(static) if (work > 32768)
    for (int64_t t = 0; t < dm.batch * dm.heads * dm.nq; ++t) {
      const int64_t i = t % dm.nq, h = (t / dm.nq) % dm.heads, b = t / (dm.nq * dm.heads);
      const int64_t off = (b * dm.nq + i) * dm.d + h * dm.e;
      A s = A(0);
      for (int64_t c = 0; c < dm.e; ++c) s += load(pdo + off + c) * load(po + off + c);
      drow[t] = s;
    }
  }

  // Pass 1, per query row: dq_i = Σ_j g_ij k_j, with g_ij = scale P_ij (dp_ij - D_i) (softmax) or dp_ij (linear).
#pragma omp parallel if (work > 32768)
  {
    std::vector<A> qrow(dm.e), dorow(dm.e), acc(dm.e);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < dm.batch * dm.heads * dm.nq; ++t) {
      const int64_t i = t % dm.nq, h = (t / dm.nq) % dm.heads, b = t / (dm.nq * dm.heads);
      const int64_t group = graph.groups == 1 ? 0 : h;
      const int64_t off = (b * dm.nq + i) * dm.d + h * dm.e;
      const T* valid = pvalid ? pvalid + b * dm.nk : nullptr;
      const T* krows = pk + b * dm.nk * dm.d + h * dm.e;
      const T* vrows = pv + b * dm.nk * dm.d + h * dm.e;
      load_row(pq + off, qrow.data(), dm.e);
      load_row(pdo + off, dorow.data(), dm.e);
      std::fill(acc.begin(), acc.end(), A(0));
      const A row_lse = softmax ? plse[t] : A(0);
      if (!softmax || row_lse != -std::numeric_limits<A>::infinity()) {
        rows_of.for_each(group, i, [&](int64_t j) {
          if (valid && load(valid + j) == A(0)) return;
          const A dp = dot(dorow.data(), vrows + j * dm.d, dm.e);
          A g = dp;
          if (softmax) {
            const A p = std::exp(scale * dot(qrow.data(), krows + j * dm.d, dm.e) - row_lse);
            g = scale * p * (dp - drow[t]);
          }
          axpy_row(g, krows + j * dm.d, acc.data(), dm.e);
        });
      }
      for (int64_t c = 0; c < dm.e; ++c) store(pdq + off + c, acc[c]);
    }
  }

  // Pass 2, per key row over the transposed graph: dk_j = Σ_i g_ij q_i, dv_j = Σ_i w_ij do_i with w_ij = P_ij
  // (softmax) or q_i·k_j (linear).
#pragma omp parallel if (work > 32768)
  {
    std::vector<A> krow(dm.e), vrow(dm.e), acck(dm.e), accv(dm.e);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < dm.batch * dm.heads * dm.nk; ++t) {
      const int64_t j = t % dm.nk, h = (t / dm.nk) % dm.heads, b = t / (dm.nk * dm.heads);
      const int64_t group = transposed.groups == 1 ? 0 : h;
      const int64_t off = (b * dm.nk + j) * dm.d + h * dm.e;
      std::fill(acck.begin(), acck.end(), A(0));
      std::fill(accv.begin(), accv.end(), A(0));
      if (!pvalid || load(pvalid + b * dm.nk + j) != A(0)) {
        load_row(pk + off, krow.data(), dm.e);
        load_row(pv + off, vrow.data(), dm.e);
        cols_of.for_each(group, j, [&](int64_t i) {
          const int64_t qoff = (b * dm.nq + i) * dm.d + h * dm.e;
          const int64_t row = (b * dm.heads + h) * dm.nq + i;
          const A s = dot(krow.data(), pq + qoff, dm.e);
          const A dp = dot(vrow.data(), pdo + qoff, dm.e);
          A w = s, g = dp;
          if (softmax) {
            w = std::exp(scale * s - plse[row]);
            g = scale * w * (dp - drow[row]);
          }
          axpy_row(g, pq + qoff, acck.data(), dm.e);
          axpy_row(w, pdo + qoff, accv.data(), dm.e);
        });
      }
      for (int64_t c = 0; c < dm.e; ++c) {
        store(pdk + off + c, acck[c]);
        store(pdv + off + c, accv[c]);
      }
    }
  }
}

}  // namespace

void CpuBackend::graph_attention_forward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                                         const GraphRef& graph, const Tensor* key_valid, int64_t heads, double scale,
                                         Tensor& o, Tensor* lse) {
  dispatch_float(q.dtype(), [&](auto tag) {
    forward_impl<decltype(tag)>(score, q, k, v, graph, key_valid, heads, scale, o, lse);
  });
}

void CpuBackend::graph_attention_backward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                                          const GraphRef& graph, const GraphRef& transposed, const Tensor* key_valid,
                                          int64_t heads, double scale, const Tensor& o, const Tensor& dout,
                                          const Tensor* lse, Tensor& dq, Tensor& dk, Tensor& dv) {
  dispatch_float(q.dtype(), [&](auto tag) {
    backward_impl<decltype(tag)>(score, q, k, v, graph, transposed, key_valid, heads, scale, o, dout, lse, dq, dk, dv);
  });
}

}  // namespace dense
