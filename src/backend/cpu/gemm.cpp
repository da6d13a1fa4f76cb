// GEMM of the CPU backend: OpenBLAS for f32/f64 (panels of C shared by the OpenMP threads), f32 sgemm on widened
// operands for bf16/f16, and a plain loop nest for batches of small matrices.
#include <cblas.h>

#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu/common.h"

namespace dense {
using namespace cpu;

namespace {

template <typename T>
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const T* a, int64_t lda, const T* b,
               int64_t ldb, double beta, T* c, int64_t ldc) {
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, double>) {
    cblas_dgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
  } else {
    cblas_sgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), float(alpha), a, int(lda), b, int(ldb), float(beta), c,
                int(ldc));
  }
}

// Small GEMMs (per-head, per-window) are many and tiny: a plain loop nest per matrix, parallel over the
// batch, beats one OpenBLAS call per matrix.
template <typename T>
void small_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, acc_t<T> alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, acc_t<T> beta, T* c, int64_t ldc, acc_t<T>* row) {
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

void CpuBackend::gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, MatRef a,
                      MatRef b, double beta, MutMatRef c, int64_t batch) {
  dispatch_float(dtype,
                 [&](auto tag) { gemm_typed<decltype(tag)>(trans_a, trans_b, m, n, k, alpha, a, b, beta, c, batch); });
}

}  // namespace dense
