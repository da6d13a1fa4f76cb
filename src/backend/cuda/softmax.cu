// Softmax over the last dim (with a key mask) and row-wise cross entropy, forward and backward. A team of
// threads owns a row, as in the norms.
#include "backend/cuda/device.cuh"

namespace dense::cuda {
namespace {

template <int TEAM, typename T>
__global__ void softmax_forward_kernel(const T* s, int64_t total_rows, int64_t rows_per_group, int64_t cols,
                                       double scale, const T* key_valid, int64_t heads, T* p) {
  using A = acc_t<T>;
  const A sc = A(scale);
  const A neg_inf = A(-INFINITY);
  const int lane = threadIdx.x;
  for (int64_t r = Team<TEAM>::first_row(); r < total_rows; r += Team<TEAM>::row_stride()) {
    const T* in = s + r * cols;
    T* out = p + r * cols;
    const T* valid = key_valid ? key_valid + (r / rows_per_group / heads) * cols : nullptr;
    A mx = neg_inf;
    for (int64_t c = lane; c < cols; c += TEAM)
      if (!valid || ld(valid + c) != A(0)) mx = smax(mx, sc * ld(in + c));
    mx = team_reduce<TEAM>(mx, MaxOp{});
    if (mx == neg_inf) {  // no valid key: the row attends to nothing
      for (int64_t c = lane; c < cols; c += TEAM) st(out + c, A(0));
      continue;
    }
    A sum = A(0);
    for (int64_t c = lane; c < cols; c += TEAM) {
      const A e = (!valid || ld(valid + c) != A(0)) ? dexp(sc * ld(in + c) - mx) : A(0);
      st(out + c, e);
      sum += e;
    }
    sum = team_reduce<TEAM>(sum, SumOp{});
    const A inv = A(1) / sum;
    // Re-reading the stored exponentials (rounded to T) is what the CPU does; each thread reads its own writes.
    for (int64_t c = lane; c < cols; c += TEAM) st(out + c, ld(out + c) * inv);
  }
}

template <int TEAM, typename T>
__global__ void softmax_backward_kernel(const T* p, const T* dp, int64_t rows, int64_t cols, double scale, T* ds) {
  using A = acc_t<T>;
  const int lane = threadIdx.x;
  for (int64_t r = Team<TEAM>::first_row(); r < rows; r += Team<TEAM>::row_stride()) {
    const T* pr = p + r * cols;
    const T* dr = dp + r * cols;
    T* out = ds + r * cols;
    A dot = A(0);
    for (int64_t c = lane; c < cols; c += TEAM) dot += ld(pr + c) * ld(dr + c);
    dot = team_reduce<TEAM>(dot, SumOp{});
    for (int64_t c = lane; c < cols; c += TEAM) st(out + c, A(scale) * ld(pr + c) * (ld(dr + c) - dot));
  }
}

template <int TEAM, typename T>
__global__ void cross_entropy_forward_kernel(const T* logits, const int64_t* labels, int64_t rows, int64_t vocab,
                                             acc_t<T>* loss, acc_t<T>* lse, ErrorWord* err) {
  using A = acc_t<T>;
  const int lane = threadIdx.x;
  for (int64_t r = Team<TEAM>::first_row(); r < rows; r += Team<TEAM>::row_stride()) {
    const T* row = logits + r * vocab;
    A mx = A(-INFINITY);
    for (int64_t c = lane; c < vocab; c += TEAM) mx = smax(mx, ld(row + c));
    mx = team_reduce<TEAM>(mx, MaxOp{});
    A sum = A(0);
    for (int64_t c = lane; c < vocab; c += TEAM) sum += dexp(ld(row + c) - mx);
    sum = team_reduce<TEAM>(sum, SumOp{});
    if (lane == 0) {
      const A l = mx + dlog(sum);
      const int64_t label = labels[r];
      lse[r] = l;
      if (label >= vocab) {
        report_error(err, kErrLabel, label, r, vocab);
        loss[r] = A(NAN);
      } else {
        loss[r] = label < 0 ? A(0) : l - ld(row + label);
      }
    }
  }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T* logits, const int64_t* labels, const acc_t<T>* lse, int64_t rows,
                                              int64_t vocab, double scale, T* dlogits) {
  using A = acc_t<T>;
  DENSE_GRID_STRIDE(idx, rows * vocab) {
    const int64_t r = idx / vocab, j = idx % vocab;
    const int64_t label = labels[r];
    if (label < 0) {
      st(dlogits + idx, A(0));
      continue;
    }
    const A prob = dexp(ld(logits + idx) - lse[r]);
    st(dlogits + idx, A(scale) * (prob - (j == label ? A(1) : A(0))));
  }
}

}  // namespace

void softmax_forward(const Ctx& ctx, DType t, const void* s, int64_t groups, int64_t rows, int64_t cols, double scale,
                     const void* key_valid, int64_t heads, void* p) {
  if (groups * rows * cols == 0) return;
  dispatch_float(t, "softmax_forward", [&](auto tag) {
    using T = decltype(tag);
    with_team(cols, [&](auto team) {
      constexpr int TEAM = decltype(team)::value;
      softmax_forward_kernel<TEAM, T><<<Team<TEAM>::grid(groups * rows), Team<TEAM>::block(), 0, ctx.stream>>>(
          static_cast<const T*>(s), groups * rows, rows, cols, scale, static_cast<const T*>(key_valid),
          heads > 0 ? heads : 1, static_cast<T*>(p));
    });
  });
  DENSE_CUDA_LAUNCHED();
}

void softmax_backward(const Ctx& ctx, DType t, const void* p, const void* dp, int64_t rows, int64_t cols, double scale,
                      void* ds) {
  if (rows * cols == 0) return;
  dispatch_float(t, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    with_team(cols, [&](auto team) {
      constexpr int TEAM = decltype(team)::value;
      softmax_backward_kernel<TEAM, T><<<Team<TEAM>::grid(rows), Team<TEAM>::block(), 0, ctx.stream>>>(
          static_cast<const T*>(p), static_cast<const T*>(dp), rows, cols, scale, static_cast<T*>(ds));
    });
  });
  DENSE_CUDA_LAUNCHED();
}

void cross_entropy_forward(const Ctx& ctx, DType t, const void* logits, const int64_t* labels, int64_t rows,
                           int64_t vocab, void* loss, void* lse) {
  if (rows * vocab == 0) return;
  dispatch_float(t, "cross_entropy_forward", [&](auto tag) {
    using T = decltype(tag);
    with_team(vocab, [&](auto team) {
      constexpr int TEAM = decltype(team)::value;
      cross_entropy_forward_kernel<TEAM, T><<<Team<TEAM>::grid(rows), Team<TEAM>::block(), 0, ctx.stream>>>(
          static_cast<const T*>(logits), labels, rows, vocab, static_cast<acc_t<T>*>(loss), static_cast<acc_t<T>*>(lse),
          ctx.error);
    });
  });
  DENSE_CUDA_LAUNCHED();
}

void cross_entropy_backward(const Ctx& ctx, DType t, const void* logits, const int64_t* labels, const void* lse,
                            int64_t rows, int64_t vocab, double scale, void* dlogits) {
  if (rows * vocab == 0) return;
  dispatch_float(t, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_backward_kernel<T><<<blocks_for(rows * vocab), kThreads, 0, ctx.stream>>>(
        static_cast<const T*>(logits), labels, static_cast<const acc_t<T>*>(lse), rows, vocab, scale,
        static_cast<T*>(dlogits));
  });
  DENSE_CUDA_LAUNCHED();
}

}  // namespace dense::cuda
