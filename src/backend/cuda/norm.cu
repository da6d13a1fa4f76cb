// Row normalisations (docs/model.md §1.2), forward and backward. A team of threads owns a row (a warp for rows up to
// kWarpRowMax, a 512-thread block beyond). Gain and bias gradients are column sums over rows: per-chunk
// partials of 64 rows (the CPU's blocking) written by one kernel and added in chunk order by a second, so the
// result is deterministic without atomics.
#include "backend/cuda/device.cuh"

namespace dense::cuda {
namespace {

constexpr int64_t kRowChunk = 64;

template <int TEAM, typename T>
__global__ void rownorm_forward_kernel(RowNorm kind, const T* x, const T* gain, const T* bias, double eps, T* y,
                                       stat_t<T>* stats, int64_t rows, int64_t cols) {
  using A = acc_t<T>;
  using S = stat_t<T>;
  const A e = A(eps);
  const int lane = threadIdx.x;
  for (int64_t r = Team<TEAM>::first_row(); r < rows; r += Team<TEAM>::row_stride()) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    A s, second;
    switch (kind) {
      case RowNorm::MaxNorm:
      case RowNorm::ScaledMaxNorm:
      case RowNorm::PreScaledMaxNorm: {
        // |x| (or |g x|) >= 0 > -1, so a thread without elements never wins; its index loses ties anyway.
        A bv = A(-1);
        int64_t bi = INT64_MAX;
        const bool pre = kind == RowNorm::PreScaledMaxNorm;
        for (int64_t c = lane; c < cols; c += TEAM) {
          const A v = dabs(pre ? ld(xr + c) * ld(gain + c) : ld(xr + c));
          if (v > bv) {
            bv = v;
            bi = c;
          }
        }
        team_argmax<TEAM>(bv, bi);
        // As the CPU: MaxNorm scans from |x[0]| with a strict >, so a NaN first element wins (s = NaN) and a NaN
        // elsewhere never does; PreScaledMaxNorm scans from -1, so an all-NaN row keeps s = eps - 1, index 0.
        if (!pre) {
          const A first = dabs(ld(xr));
          if (first != first || bi == INT64_MAX) {
            bv = first;
            bi = 0;
          }
        } else if (bi == INT64_MAX) {
          bi = 0;
        }
        s = bv + e;
        second = A(bi);
        const A inv = A(1) / s;
        const bool scaled = kind == RowNorm::ScaledMaxNorm && gain;
        for (int64_t c = lane; c < cols; c += TEAM) {
          if (pre) {
            st(yr + c, ld(xr + c) * ld(gain + c) * inv);
          } else {
            const A v = ld(xr + c) * inv;
            st(yr + c, scaled ? v * ld(gain + c) : v);
          }
        }
        break;
      }
      case RowNorm::UncenteredLN: {
        A m = A(0);
        for (int64_t c = lane; c < cols; c += TEAM) m += dabs(ld(xr + c));
        m = team_reduce<TEAM>(m, SumOp{});
        s = m / A(cols) + e;
        second = A(0);
        const A inv = A(1) / s;
        for (int64_t c = lane; c < cols; c += TEAM) st(yr + c, ld(xr + c) * inv * (gain ? ld(gain + c) : A(1)));
        break;
      }
      default: {  // StandardLN
        A mean = A(0);
        for (int64_t c = lane; c < cols; c += TEAM) mean += ld(xr + c);
        mean = team_reduce<TEAM>(mean, SumOp{}) / A(cols);
        A var = A(0);
        for (int64_t c = lane; c < cols; c += TEAM) {
          const A d = ld(xr + c) - mean;
          var += d * d;
        }
        var = team_reduce<TEAM>(var, SumOp{}) / A(cols);
        s = dsqrt(var + e);
        second = mean;
        const A inv = A(1) / s;
        for (int64_t c = lane; c < cols; c += TEAM) {
          A v = (ld(xr + c) - mean) * inv;
          if (gain) v *= ld(gain + c);
          if (bias) v += ld(bias + c);
          st(yr + c, v);
        }
        break;
      }
    }
    if (lane == 0) {
      stats[2 * r] = S(s);
      stats[2 * r + 1] = S(second);
    }
  }
}

template <int TEAM, typename T>
__global__ void rownorm_backward_kernel(RowNorm kind, const T* x, const T* gain, const stat_t<T>* stats, const T* dy,
                                        double beta_dx, T* dx, acc_t<T>* rowdot, bool dot_only, int64_t rows,
                                        int64_t cols) {
  using A = acc_t<T>;
  const int lane = threadIdx.x;
  const A beta = A(beta_dx);
  for (int64_t r = Team<TEAM>::first_row(); r < rows; r += Team<TEAM>::row_stride()) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    T* dxr = dx + r * cols;
    const A s = A(stats[2 * r]);
    auto write_dx = [&](int64_t c, A v) { st(dxr + c, beta_dx == 0.0 ? v : v + beta * ld(dxr + c)); };
    switch (kind) {
      case RowNorm::MaxNorm:
      case RowNorm::ScaledMaxNorm: {
        const int64_t j = int64_t(stats[2 * r + 1]);
        const bool scaled = kind == RowNorm::ScaledMaxNorm;
        A dot = A(0);
        for (int64_t c = lane; c < cols; c += TEAM) {
          A g = ld(dyr + c);
          if (scaled) g *= ld(gain + c);
          dot += g * ld(xr + c);
        }
        dot = team_reduce<TEAM>(dot, SumOp{});
        for (int64_t c = lane; c < cols; c += TEAM) {
          A g = ld(dyr + c);
          if (scaled) g *= ld(gain + c);
          A v = g / s;
          if (c == j) v -= dsign(ld(xr + c)) * dot / (s * s);
          write_dx(c, v);
        }
        break;
      }
      case RowNorm::PreScaledMaxNorm: {
        const int64_t j = int64_t(stats[2 * r + 1]);
        A dot = A(0);
        for (int64_t c = lane; c < cols; c += TEAM) dot += ld(dyr + c) * ld(xr + c) * ld(gain + c);
        dot = team_reduce<TEAM>(dot, SumOp{});
        if (rowdot && lane == 0) rowdot[r] = dot;
        if (dot_only) break;
        for (int64_t c = lane; c < cols; c += TEAM) {
          A du = ld(dyr + c) / s;
          if (c == j) du -= dsign(ld(xr + c) * ld(gain + c)) * dot / (s * s);
          write_dx(c, du * ld(gain + c));
        }
        break;
      }
      case RowNorm::UncenteredLN: {
        A dot = A(0);
        for (int64_t c = lane; c < cols; c += TEAM) dot += ld(dyr + c) * (gain ? ld(gain + c) : A(1)) * ld(xr + c);
        dot = team_reduce<TEAM>(dot, SumOp{});
        for (int64_t c = lane; c < cols; c += TEAM) {
          const A t = ld(dyr + c) * (gain ? ld(gain + c) : A(1));
          write_dx(c, t / s - dsign(ld(xr + c)) * dot / (A(cols) * s * s));
        }
        break;
      }
      default: {  // StandardLN
        const A mean = A(stats[2 * r + 1]);
        A mt = A(0), mtx = A(0);
        for (int64_t c = lane; c < cols; c += TEAM) {
          const A xh = (ld(xr + c) - mean) / s;
          const A t = ld(dyr + c) * (gain ? ld(gain + c) : A(1));
          mt += t;
          mtx += t * xh;
        }
        mt = team_reduce<TEAM>(mt, SumOp{}) / A(cols);
        mtx = team_reduce<TEAM>(mtx, SumOp{}) / A(cols);
        for (int64_t c = lane; c < cols; c += TEAM) {
          const A xh = (ld(xr + c) - mean) / s;
          const A t = ld(dyr + c) * (gain ? ld(gain + c) : A(1));
          write_dx(c, (t - mt - xh * mtx) / s);
        }
        break;
      }
    }
  }
}

// Per-chunk column sums of the gain and bias gradients; the same per-element expressions as the CPU.
template <typename T>
__global__ void rownorm_param_partial_kernel(RowNorm kind, const T* x, const T* gain, const stat_t<T>* stats,
                                             const T* dy, const acc_t<T>* rowdot, int64_t rows, int64_t cols,
                                             int64_t nchunks, acc_t<T>* pdg, acc_t<T>* pdb) {
  using A = acc_t<T>;
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  for (int64_t chunk = blockIdx.y; chunk < nchunks; chunk += gridDim.y) {
    A dg = A(0), db = A(0);
    const int64_t r1 = min(rows, (chunk + 1) * kRowChunk);
    for (int64_t r = chunk * kRowChunk; r < r1; ++r) {
      const A s = A(stats[2 * r]);
      const A xv = ld(x + r * cols + c), d = ld(dy + r * cols + c);
      switch (kind) {
        case RowNorm::MaxNorm: break;
        case RowNorm::ScaledMaxNorm:
        case RowNorm::UncenteredLN: dg += d * xv / s; break;
        case RowNorm::PreScaledMaxNorm: {
          const A g = ld(gain + c);
          A du = d / s;
          if (c == int64_t(stats[2 * r + 1])) du -= dsign(xv * g) * rowdot[r] / (s * s);
          dg += du * xv;
          break;
        }
        default: {  // StandardLN
          const A xh = (xv - A(stats[2 * r + 1])) / s;
          dg += d * xh;
          db += d;
          break;
        }
      }
    }
    if (pdg) pdg[chunk * cols + c] = dg;
    if (pdb) pdb[chunk * cols + c] = db;
  }
}

template <typename T>
__global__ void param_finish_kernel(const acc_t<T>* partial, int64_t nchunks, int64_t cols, T* grad) {
  using A = acc_t<T>;
  DENSE_GRID_STRIDE(c, cols) {
    A sum = A(0);
    for (int64_t k = 0; k < nchunks; ++k) sum += partial[k * cols + c];
    st(grad + c, ld(grad + c) + sum);
  }
}

}  // namespace

void rownorm_forward(const Ctx& ctx, DType t, RowNorm kind, const void* x, const void* gain, const void* bias,
                     double eps, void* y, void* stats, int64_t rows, int64_t cols) {
  if (rows * cols == 0) return;
  dispatch_float(t, "rownorm_forward", [&](auto tag) {
    using T = decltype(tag);
    auto launch = [&](auto team) {
      constexpr int TEAM = decltype(team)::value;
      rownorm_forward_kernel<TEAM, T><<<Team<TEAM>::grid(rows), Team<TEAM>::block(), 0, ctx.stream>>>(
          kind, static_cast<const T*>(x), static_cast<const T*>(gain), static_cast<const T*>(bias), eps,
          static_cast<T*>(y), static_cast<stat_t<T>*>(stats), rows, cols);
    };
    with_team(cols, launch);
  });
  DENSE_CUDA_LAUNCHED();
}

void rownorm_backward(const Ctx& ctx, DType t, RowNorm kind, const void* x, const void* gain, const void* stats,
                      const void* dy, double beta_dx, void* dx, void* dgain, void* dbias, int64_t rows, int64_t cols) {
  if (rows * cols == 0) return;
  // Only these kinds have gain / bias gradients (the CPU leaves the others' accumulators unchanged).
  const bool want_dg = dgain && kind != RowNorm::MaxNorm;
  const bool want_db = dbias && kind == RowNorm::StandardLN;
  dispatch_float(t, "rownorm_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    using S = stat_t<T>;
    auto row_pass = [&](bool dot_only, A* rowdot) {
      with_team(cols, [&](auto team) {
        constexpr int TEAM = decltype(team)::value;
        rownorm_backward_kernel<TEAM, T><<<Team<TEAM>::grid(rows), Team<TEAM>::block(), 0, ctx.stream>>>(
            kind, static_cast<const T*>(x), static_cast<const T*>(gain), static_cast<const S*>(stats),
            static_cast<const T*>(dy), beta_dx, static_cast<T*>(dx), rowdot, dot_only, rows, cols);
      });
      DENSE_CUDA_LAUNCHED();
    };
    if (!want_dg && !want_db) {
      row_pass(false, nullptr);
      return;
    }
    // The gain / bias partials read dy before the dx pass writes: dx may alias dy, as the CPU allows.
    // PreScaledMaxNorm's partials need each row's dot product, computed by a dot-only row pass first.
    const bool need_rowdot = want_dg && kind == RowNorm::PreScaledMaxNorm;
    Scratch rowdot(ctx.alloc, need_rowdot ? size_t(rows) * sizeof(A) : 1);
    if (need_rowdot) row_pass(true, rowdot.as<A>());

    const int64_t nchunks = (rows + kRowChunk - 1) / kRowChunk;
    const size_t bytes = size_t(nchunks * cols) * sizeof(A);
    Scratch pdg(ctx.alloc, want_dg ? bytes : 1), pdb(ctx.alloc, want_db ? bytes : 1);
    constexpr int kColThreads = 128;
    const dim3 grid(unsigned((cols + kColThreads - 1) / kColThreads), unsigned(std::min<int64_t>(nchunks, 65535)));
    rownorm_param_partial_kernel<T><<<grid, kColThreads, 0, ctx.stream>>>(
        kind, static_cast<const T*>(x), static_cast<const T*>(gain), static_cast<const S*>(stats),
        static_cast<const T*>(dy), need_rowdot ? rowdot.as<A>() : nullptr, rows, cols, nchunks,
        want_dg ? pdg.as<A>() : nullptr, want_db ? pdb.as<A>() : nullptr);
    DENSE_CUDA_LAUNCHED();

    row_pass(false, nullptr);

    if (want_dg) {
      param_finish_kernel<T>
          <<<blocks_for(cols), kThreads, 0, ctx.stream>>>(pdg.as<A>(), nchunks, cols, static_cast<T*>(dgain));
      DENSE_CUDA_LAUNCHED();
    }
    if (want_db) {
      param_finish_kernel<T>
          <<<blocks_for(cols), kThreads, 0, ctx.stream>>>(pdb.as<A>(), nchunks, cols, static_cast<T*>(dbias));
      DENSE_CUDA_LAUNCHED();
    }
  });
}

}  // namespace dense::cuda
