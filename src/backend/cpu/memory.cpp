// Memory, copies, fills, random fills and GEMM of the CPU backend.
#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"
#include "core/philox.h"

extern "C" void openblas_set_num_threads(int);

namespace dense {
using namespace cpu;

namespace {
int g_threads = 0;

void* aligned_host_alloc(size_t bytes) {
  // 64-byte alignment: whole cache lines, and AVX-512 loads if the machine has them.
  return std::aligned_alloc(64, (bytes + 63) & ~size_t(63));
}
}  // namespace

void set_cpu_threads(int threads) {
  if (threads <= 0) threads = omp_get_num_procs();
  g_threads = threads;
  omp_set_num_threads(threads);
  // One thread pool only: GEMMs are split across OpenMP threads, each calling single-threaded OpenBLAS.
  // OpenBLAS's own pool would spin (sched_yield) against the OpenMP pool between calls and steal the cores
  // the element-wise kernels need.
  openblas_set_num_threads(1);
}

int cpu_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

CpuBackend::CpuBackend() : allocator_(aligned_host_alloc, [](void* p) { std::free(p); }) {
  // The backend is built on its first use, which often comes after a program applied training.threads: that
  // count stays (resetting it to every core made two runs side by side with threads: 1 each run 2 threads on
  // 2 cores, contending for them). Otherwise DENSE_NUM_THREADS, or every core.
  if (g_threads > 0) {
    set_cpu_threads(g_threads);
    return;
  }
  const char* env = std::getenv("DENSE_NUM_THREADS");
  set_cpu_threads(env ? std::atoi(env) : 0);
}

void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

namespace {

template <typename D, typename S>
void copy_strided(Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  D* out = static_cast<D*>(dst.raw_data());
  const S* in = static_cast<const S*>(src.raw_data());
  if (dst.is_contiguous() && src.is_contiguous()) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) out[i] = convert<D>(in[i]);
    return;
  }
  const int64_t nd = dst.dim();
  const Shape& shape = dst.shape();
  const Shape& ds = dst.strides();
  const Shape& ss = src.strides();
  const int64_t inner = nd ? shape[size_t(nd - 1)] : 1;
  const int64_t outer = inner ? n / inner : 0;
  const int64_t dsi = nd ? ds[size_t(nd - 1)] : 1, ssi = nd ? ss[size_t(nd - 1)] : 1;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rem = o, doff = 0, soff = 0;
    for (int64_t d = nd - 2; d >= 0; --d) {
      const int64_t idx = rem % shape[size_t(d)];
      rem /= shape[size_t(d)];
      doff += idx * ds[size_t(d)];
      soff += idx * ss[size_t(d)];
    }
    for (int64_t i = 0; i < inner; ++i) out[doff + i * dsi] = convert<D>(in[soff + i * ssi]);
  }
}

}  // namespace

void CpuBackend::copy(Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  dispatch_all(dst.dtype(), [&](auto d) {
    dispatch_all(src.dtype(), [&](auto s) { copy_strided<decltype(d), decltype(s)>(dst, src); });
  });
}

void CpuBackend::fill(Tensor& t, double value) {
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = convert<T>(value);
    if (t.is_contiguous()) {
      T* p = static_cast<T*>(t.raw_data());
      const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) p[i] = v;
    } else {
      Tensor tmp = Tensor::full(t.shape(), value, t.dtype(), Device::cpu());
      copy(t, tmp);
    }
  });
}

void CpuBackend::fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset) {
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i)
      p[i] = convert<T>(low + (high - low) * double(philox_uniform(seed, offset, uint64_t(i))));
  });
}

void CpuBackend::fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) {
  dispatch_float(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) p[i] = convert<T>(mean + std * philox_normal(seed, offset, uint64_t(i)));
  });
}

// ---- GEMM ----------------------------------------------------------------------------------------

namespace {

template <typename T>
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const T* a, int64_t lda, const T* b,
               int64_t ldb, double beta, T* c, int64_t ldc) {
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, double>) {
    cblas_dgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
  } else {
    cblas_sgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), float(alpha), a, int(lda), b, int(ldb), float(beta),
                c, int(ldc));
  }
}

// Small GEMMs (per-head, per-window) are many and tiny: a plain loop nest per matrix, parallel over the
// batch, beats one OpenBLAS call per matrix.
template <typename T>
void small_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, acc_t<T> alpha, const T* a, int64_t lda,
                const T* b, int64_t ldb, acc_t<T> beta, T* c, int64_t ldc, acc_t<T>* row) {
  using A = acc_t<T>;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) row[j] = A(0);
    for (int64_t p = 0; p < k; ++p) {
      const A av = load(ta ? a + p * lda + i : a + i * lda + p);
      if (tb) {
        for (int64_t j = 0; j < n; ++j) row[j] += av * load(b + j * ldb + p);
      } else {
        const T* brow = b + p * ldb;
        for (int64_t j = 0; j < n; ++j) row[j] += av * load(brow + j);
      }
    }
    T* crow = c + i * ldc;
    for (int64_t j = 0; j < n; ++j)
      store(crow + j, beta == A(0) ? alpha * row[j] : alpha * row[j] + beta * load(crow + j));
  }
}

template <typename T>
void gemm_typed(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, MatRef a, MatRef b, double beta,
                MutMatRef c, int64_t batch) {
  const T* A = static_cast<const T*>(a.data);
  const T* B = static_cast<const T*>(b.data);
  T* C = static_cast<T*>(c.data);
  if (k == 0) {
    // No products: C = beta * C.
    for (int64_t bi = 0; bi < batch; ++bi)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          T* p = C + bi * c.batch_stride + i * c.ld + j;
          store(p, beta == 0.0 ? acc_t<T>(0) : acc_t<T>(beta) * load(p));
        }
    return;
  }
  const bool small = double(m) * double(n) * double(k) <= 64.0 * 64.0 * 64.0;
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    if (!(small && batch > 1)) {
      // Split every matrix of the batch into panels of C (rows of op(A), or columns of op(B) when C is wide),
      // one single-threaded BLAS call per panel, all panels shared by the OpenMP threads.
      const int threads = cpu_threads();
      const bool split_rows = m >= n;
      const int64_t extent = split_rows ? m : n;
      const int64_t min_panel = 32;
      int64_t panels = std::min<int64_t>(threads, std::max<int64_t>(1, extent / min_panel));
      if (batch >= threads) panels = 1;
      const int64_t panel = (extent + panels - 1) / panels;
#pragma omp parallel for collapse(2) schedule(static) if (threads > 1 && batch * panels > 1)
      for (int64_t bi = 0; bi < batch; ++bi)
        for (int64_t pi = 0; pi < panels; ++pi) {
          const int64_t lo = pi * panel, hi = std::min(extent, lo + panel);
          if (lo >= hi) continue;
          const T* ab = A + bi * a.batch_stride;
          const T* bb = B + bi * b.batch_stride;
          T* cb = C + bi * c.batch_stride;
          if (split_rows) {
            blas_gemm<T>(ta, tb, hi - lo, n, k, alpha, ta ? ab + lo : ab + lo * a.ld, a.ld, bb, b.ld, beta,
                         cb + lo * c.ld, c.ld);
          } else {
            blas_gemm<T>(ta, tb, m, hi - lo, k, alpha, ab, a.ld, tb ? bb + lo * b.ld : bb + lo, b.ld, beta, cb + lo,
                         c.ld);
          }
        }
      return;
    }
  } else {
    if (!(small && batch > 1)) {
      // Half precision: widen the operands to f32, multiply with sgemm (f32 accumulation), round once.
      const int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
      std::vector<float> fa(size_t(ar * ac)), fb(size_t(br * bc)), fc(size_t(m * n));
      for (int64_t bi = 0; bi < batch; ++bi) {
        const T* ab = A + bi * a.batch_stride;
        const T* bb = B + bi * b.batch_stride;
        T* cb = C + bi * c.batch_stride;
        for (int64_t i = 0; i < ar; ++i)
          for (int64_t j = 0; j < ac; ++j) fa[size_t(i * ac + j)] = float(ab[i * a.ld + j]);
        for (int64_t i = 0; i < br; ++i)
          for (int64_t j = 0; j < bc; ++j) fb[size_t(i * bc + j)] = float(bb[i * b.ld + j]);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) fc[size_t(i * n + j)] = beta == 0.0 ? 0.f : float(cb[i * c.ld + j]);
        blas_gemm<float>(ta, tb, m, n, k, alpha, fa.data(), ac, fb.data(), bc, beta, fc.data(), n);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) cb[i * c.ld + j] = T(fc[size_t(i * n + j)]);
      }
      return;
    }
  }
#pragma omp parallel if (double(batch) * double(m) * double(n) * double(k) > 65536.0)
  {
    std::vector<acc_t<T>> row(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t bi = 0; bi < batch; ++bi)
      small_gemm<T>(ta, tb, m, n, k, acc_t<T>(alpha), A + bi * a.batch_stride, a.ld, B + bi * b.batch_stride, b.ld,
                    acc_t<T>(beta), C + bi * c.batch_stride, c.ld, row.data());
  }
}

}  // namespace

void CpuBackend::gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                      MatRef a, MatRef b, double beta, MutMatRef c, int64_t batch) {
  dispatch_float(dtype, [&](auto tag) {
    gemm_typed<decltype(tag)>(trans_a, trans_b, m, n, k, alpha, a, b, beta, c, batch);
  });
}

}  // namespace dense
