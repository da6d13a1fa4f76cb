// Graph-processing sparse attention on the GPU: one warp per (batch, head, row) walks the row's neighbours,
// lanes split the head's channels (e <= 256, so at most 8 per lane). The forward is an online softmax in one
// pass (running max, sum and accumulator, rescaled when the max grows); the backward is two kernels, per query
// row (D_i and dq) and per key row over the transposed graph (dk, dv), so no atomics and run-to-run identical
// results. This is the work-optimal baseline (nnz·e multiply-adds) for irregular graphs; block layouts belong
// on tensor cores.
#include "backend/cuda/device.cuh"

namespace dense::cuda {
namespace {

constexpr int kLanes = 32;
constexpr int kPerLane = int(kGraphMaxHead / kLanes);

struct Rows {
  GraphArgs g;
  int64_t keys;
  __device__ int64_t begin(int64_t group, int64_t rows, int64_t i) const {
    return g.row_ptr ? g.row_ptr[group * (rows + 1) + i] : (i + g.lo > 0 ? i + g.lo : 0);
  }
  __device__ int64_t end(int64_t group, int64_t rows, int64_t i) const {
    if (g.row_ptr) return g.row_ptr[group * (rows + 1) + i + 1];
    const int64_t last = i + g.hi < keys - 1 ? i + g.hi : keys - 1;
    return last + 1;
  }
  __device__ int64_t key(int64_t p) const { return g.row_ptr ? int64_t(g.col[p]) : p; }
};

// Runs body(t, b, h, i, group) for each of this warp's tasks: row i (of n) of head h of batch b, numbered
// t = (b * heads + h) * n + i; group is the graph the head uses (one shared graph, or one per head).
template <typename Body>
__device__ __forceinline__ void for_each_row(const Rows& rows, int64_t batch, int64_t heads, int64_t n, Body&& body) {
  const int64_t tasks = batch * heads * n;
  for (int64_t t = Team<kLanes>::first_row(); t < tasks; t += Team<kLanes>::row_stride()) {
    const int64_t h = (t / n) % heads;
    body(t, t / (n * heads), h, t % n, rows.g.groups == 1 ? int64_t(0) : h);
  }
}

template <typename T, typename A>
__device__ __forceinline__ A warp_dot(const A (&x)[kPerLane], const T* y, int64_t e, int lane) {
  A s = A(0);
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t c = lane + t * kLanes;
    if (c < e) s += x[t] * ld(y + c);
  }
  return team_reduce<kLanes>(s, SumOp{});
}

template <typename T, typename A>
__device__ __forceinline__ void load_lane(const T* x, A (&y)[kPerLane], int64_t e, int lane) {
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t c = lane + t * kLanes;
    y[t] = c < e ? ld(x + c) : A(0);
  }
}

template <typename T>
__global__ void forward_kernel(bool softmax, const T* q, const T* k, const T* v, Rows rows, const T* key_valid,
                               int64_t batch, int64_t nq, int64_t nk, int64_t heads, int64_t e, double scale_d, T* o,
                               acc_t<T>* lse) {
  using A = acc_t<T>;
  const A scale = A(scale_d), neg_inf = A(-INFINITY);
  const int lane = threadIdx.x;
  const int64_t d = heads * e;
  for_each_row(rows, batch, heads, nq, [&](int64_t t, int64_t b, int64_t h, int64_t i, int64_t group) {
    const T* valid = key_valid ? key_valid + b * nk : nullptr;
    const T* krows = k + b * nk * d + h * e;
    const T* vrows = v + b * nk * d + h * e;
    A qr[kPerLane], acc[kPerLane];
    load_lane(q + (b * nq + i) * d + h * e, qr, e, lane);  // o may alias q: read the row before writing it
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) acc[c] = A(0);
    A mx = neg_inf, sum = A(0);
    const int64_t end = rows.end(group, nq, i);
    for (int64_t p = rows.begin(group, nq, i); p < end; ++p) {
      const int64_t j = rows.key(p);
      if (valid && ld(valid + j) == A(0)) continue;
      const A s = warp_dot(qr, krows + j * d, e, lane);
      A w = s;
      if (softmax) {
        const A z = scale * s;
        const A m_new = smax(mx, z);
        const A corr = dexp(mx - m_new);  // 0 on the first neighbour (mx = -inf)
        w = dexp(z - m_new);
        sum = sum * corr + w;
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) acc[c] *= corr;
        mx = m_new;
      }
#pragma unroll
      for (int c = 0; c < kPerLane; ++c) {
        const int64_t ch = lane + c * kLanes;
        if (ch < e) acc[c] += w * ld(vrows + j * d + ch);
      }
    }
    const A inv = softmax ? (mx == neg_inf ? A(0) : A(1) / sum) : A(1);
    T* orow = o + (b * nq + i) * d + h * e;
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int64_t ch = lane + c * kLanes;
      if (ch < e) st(orow + ch, acc[c] * inv);
    }
    if (softmax && lse && lane == 0) lse[t] = mx == neg_inf ? neg_inf : mx + dlog(sum);
  });
}

template <typename T>
__global__ void backward_rows_kernel(bool softmax, const T* q, const T* k, const T* v, Rows rows, const T* key_valid,
                                     int64_t batch, int64_t nq, int64_t nk, int64_t heads, int64_t e, double scale_d,
                                     const T* o, const T* dout, const acc_t<T>* lse, acc_t<T>* drow, T* dq) {
  using A = acc_t<T>;
  const A scale = A(scale_d), neg_inf = A(-INFINITY);
  const int lane = threadIdx.x;
  const int64_t d = heads * e;
  for_each_row(rows, batch, heads, nq, [&](int64_t t, int64_t b, int64_t h, int64_t i, int64_t group) {
    const int64_t off = (b * nq + i) * d + h * e;
    const T* valid = key_valid ? key_valid + b * nk : nullptr;
    const T* krows = k + b * nk * d + h * e;
    const T* vrows = v + b * nk * d + h * e;
    A qr[kPerLane], dor[kPerLane], acc[kPerLane];
    load_lane(q + off, qr, e, lane);
    load_lane(dout + off, dor, e, lane);
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) acc[c] = A(0);
    A dterm = A(0), row_lse = A(0);
    if (softmax) {
      dterm = warp_dot(dor, o + off, e, lane);
      row_lse = lse[t];
      if (lane == 0) drow[t] = dterm;
    }
    if (!softmax || row_lse != neg_inf) {
      const int64_t end = rows.end(group, nq, i);
      for (int64_t p = rows.begin(group, nq, i); p < end; ++p) {
        const int64_t j = rows.key(p);
        if (valid && ld(valid + j) == A(0)) continue;
        const A dp = warp_dot(dor, vrows + j * d, e, lane);
        A g = dp;
        if (softmax) g = scale * dexp(scale * warp_dot(qr, krows + j * d, e, lane) - row_lse) * (dp - dterm);
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
          const int64_t ch = lane + c * kLanes;
          if (ch < e) acc[c] += g * ld(krows + j * d + ch);
        }
      }
    }
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int64_t ch = lane + c * kLanes;
      if (ch < e) st(dq + off + ch, acc[c]);
    }
  });
}

template <typename T>
__global__ void backward_keys_kernel(bool softmax, const T* q, const T* k, const T* v, Rows cols, const T* key_valid,
                                     int64_t batch, int64_t nq, int64_t nk, int64_t heads, int64_t e, double scale_d,
                                     const T* dout, const acc_t<T>* lse, const acc_t<T>* drow, T* dk, T* dv) {
  using A = acc_t<T>;
  const A scale = A(scale_d);
  const int lane = threadIdx.x;
  const int64_t d = heads * e;
  for_each_row(cols, batch, heads, nk, [&](int64_t, int64_t b, int64_t h, int64_t j, int64_t group) {
    const int64_t off = (b * nk + j) * d + h * e;
    A kr[kPerLane], vr[kPerLane], acck[kPerLane], accv[kPerLane];
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) acck[c] = accv[c] = A(0);
    if (!key_valid || ld(key_valid + b * nk + j) != A(0)) {
      load_lane(k + off, kr, e, lane);
      load_lane(v + off, vr, e, lane);
      const int64_t end = cols.end(group, nk, j);
      for (int64_t p = cols.begin(group, nk, j); p < end; ++p) {
        const int64_t i = cols.key(p);
        const int64_t qoff = (b * nq + i) * d + h * e, row = (b * heads + h) * nq + i;
        const A s = warp_dot(kr, q + qoff, e, lane);
        const A dp = warp_dot(vr, dout + qoff, e, lane);
        A w = s, g = dp;
        if (softmax) {
          w = dexp(scale * s - lse[row]);
          g = scale * w * (dp - drow[row]);
        }
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
          const int64_t ch = lane + c * kLanes;
          if (ch < e) {
            acck[c] += g * ld(q + qoff + ch);
            accv[c] += w * ld(dout + qoff + ch);
          }
        }
      }
    }
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int64_t ch = lane + c * kLanes;
      if (ch < e) {
        st(dk + off + ch, acck[c]);
        st(dv + off + ch, accv[c]);
      }
    }
  });
}

}  // namespace

void graph_attention_forward(const Ctx& ctx, DType t, bool softmax, const void* q, const void* k, const void* v,
                             GraphArgs graph, const void* key_valid, int64_t batch, int64_t nq, int64_t nk,
                             int64_t heads, int64_t e, double scale, void* o, void* lse) {
  dispatch_float(t, "graph_attention_forward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t tasks = batch * heads * nq;
    forward_kernel<T><<<Team<kLanes>::grid(tasks), Team<kLanes>::block(), 0, ctx.stream>>>(
        softmax, static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), Rows{graph, nk},
        static_cast<const T*>(key_valid), batch, nq, nk, heads, e, scale, static_cast<T*>(o),
        static_cast<acc_t<T>*>(lse));
    DENSE_CUDA_LAUNCHED();
  });
}

void graph_attention_backward(const Ctx& ctx, DType t, bool softmax, const void* q, const void* k, const void* v,
                              GraphArgs graph, GraphArgs transposed, const void* key_valid, int64_t batch, int64_t nq,
                              int64_t nk, int64_t heads, int64_t e, double scale, const void* o, const void* dout,
                              const void* lse, void* dq, void* dk, void* dv) {
  dispatch_float(t, "graph_attention_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    Scratch drow(ctx.alloc, sizeof(A) * size_t(std::max<int64_t>(batch * heads * nq, 1)));
    const T* tq = static_cast<const T*>(q);
    const T* tk = static_cast<const T*>(k);
    const T* tv = static_cast<const T*>(v);
    const T* valid = static_cast<const T*>(key_valid);
    if (nq > 0) {
      backward_rows_kernel<T><<<Team<kLanes>::grid(batch * heads * nq), Team<kLanes>::block(), 0, ctx.stream>>>(
          softmax, tq, tk, tv, Rows{graph, nk}, valid, batch, nq, nk, heads, e, scale, static_cast<const T*>(o),
          static_cast<const T*>(dout), static_cast<const A*>(lse), drow.as<A>(), static_cast<T*>(dq));
      DENSE_CUDA_LAUNCHED();
    }
    if (nk > 0) {
      backward_keys_kernel<T><<<Team<kLanes>::grid(batch * heads * nk), Team<kLanes>::block(), 0, ctx.stream>>>(
          softmax, tq, tk, tv, Rows{transposed, nq}, valid, batch, nq, nk, heads, e, scale, static_cast<const T*>(dout),
          static_cast<const A*>(lse), drow.as<A>(), static_cast<T*>(dk), static_cast<T*>(dv));
      DENSE_CUDA_LAUNCHED();
    }
  });
}

}  // namespace dense::cuda
