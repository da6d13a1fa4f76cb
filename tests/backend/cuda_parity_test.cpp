// CUDA backend parity: every Backend method runs on the CPU and on cuda:0 with the same inputs and the
// results are compared. Inputs are Philox-drawn and never zero; GPU outputs written with beta = 0 are
// pre-filled with NaN so an element the kernel forgot to write cannot pass. Tolerances (relative, with a
// floor at a tenth of the tensor's largest magnitude so that elements near zero by cancellation are judged
// against the tensor's scale): f64 1e-12, f32 1e-5, bf16 1e-2, f16 2e-3. Philox fills, dropout, copies,
// fills, pooling and index outputs must match exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/ops.h"
#include "core/philox.h"
#include "core/tensor.h"
#include "nn/device_graph.h"
#include "train/optimizer.h"

using namespace dense;

namespace {

const DType kFloatTypes[] = {DType::F64, DType::F32, DType::BF16, DType::F16};
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Backend& cpu() { return backend_for(Device::cpu()); }
Backend& gpu() { return backend_for(Device::cuda(0)); }
Tensor on_gpu(const Tensor& t) { return t.to(Device::cuda(0)); }

double tolerance(DType t) {
  switch (t) {
    case DType::F64: return 1e-12;
    case DType::F32: return 1e-5;
    case DType::BF16: return 1e-2;
    default: return 2e-3;
  }
}

// Values in ±[0.25, 1.25) * scale: never zero, signs mixed.
std::vector<double> random_values(int64_t n, uint64_t seed, double scale = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double mag = 0.25 + double(philox_uniform(seed, 0, uint64_t(2 * i)));
    const bool neg = philox_uniform(seed, 0, uint64_t(2 * i + 1)) < 0.5f;
    v[size_t(i)] = scale * (neg ? -mag : mag);
  }
  return v;
}

Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, double scale = 1.0) {
  return Tensor::from_vector<double>(random_values(shape_numel(shape), seed, scale), shape, dtype);
}

// Integers in [0, bound) drawn with Philox.
Tensor random_ids(int64_t n, int64_t bound, uint64_t seed, DType dtype = DType::I64) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = std::min<int64_t>(bound - 1, int64_t(double(philox_uniform(seed, 7, uint64_t(i))) * double(bound)));
  return Tensor::from_vector<int64_t>(v, {n}, dtype);
}

Tensor nan_gpu(const Shape& shape, DType dtype) { return Tensor::full(shape, kNaN, dtype, Device::cuda(0)); }

// GPU result against the CPU reference, element-wise relative with a floor (see the file comment).
void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double maxabs = 0.0;
  for (double v : w) maxabs = std::max(maxabs, std::fabs(v));
  const double floor = 0.1 * maxabs;
  int64_t bad = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double bound = tol * std::max(std::fabs(w[i]), floor);
    const bool ok = (std::isnan(w[i]) && std::isnan(g[i])) || std::fabs(g[i] - w[i]) <= bound;
    if (!ok && ++bad <= 5)
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU has " << w[i] << " (tolerance " << bound
                    << ")";
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << w.size() << " elements differ";
}

void expect_close(const Tensor& got, const Tensor& want, DType dtype, const std::string& what) {
  expect_close(got, want, tolerance(dtype), what);
}

// Bitwise equality of the values (NaN matches NaN).
void expect_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  int64_t bad = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const bool ok = (std::isnan(w[i]) && std::isnan(g[i])) || std::memcmp(&g[i], &w[i], sizeof(double)) == 0;
    if (!ok && ++bad <= 5)
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU has " << w[i] << " (exact expected)";
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << w.size() << " elements differ";
}

std::string name(DType t) { return std::string(dtype_name(t)); }

}  // namespace

// ---- memory ----------------------------------------------------------------------------------------------

TEST(CudaParity, HostCopiesRoundTripBytes) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (size_t bytes : {size_t(1), size_t(1001), size_t(1) << 20}) {
    std::vector<uint8_t> src(bytes), back(bytes, 0);
    for (size_t i = 0; i < bytes; ++i) src[i] = uint8_t(philox4x32_10(3, i).v[0]);
    Tensor dev = Tensor::empty({int64_t(bytes)}, DType::U8, Device::cuda(0));
    gpu().copy_from_host(dev.raw_data(), src.data(), bytes);
    gpu().copy_to_host(back.data(), dev.raw_data(), bytes);
    EXPECT_EQ(src, back) << bytes << " bytes";
  }
}

TEST(CudaParity, CopyConvertsAndFollowsStrides) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  struct Case {
    DType src, dst;
  };
  const Case cases[] = {{DType::F32, DType::BF16}, {DType::BF16, DType::F64}, {DType::F64, DType::F16},
                        {DType::F16, DType::F32},  {DType::F32, DType::I32},  {DType::I64, DType::F32},
                        {DType::F64, DType::F64},  {DType::I64, DType::U8},   {DType::BF16, DType::BF16}};
  for (const Case& c : cases) {
    SCOPED_TRACE(name(c.src) + " -> " + name(c.dst));
    // Values with fractions (integer targets truncate) within range of every type; integer -> u8 wraps
    // modulo 256, which is defined behaviour on both sides.
    const Tensor base = Tensor::from_vector<double>(random_values(5 * 37 * 3, 11, 100.0), {5, 37, 3}, DType::F64);
    const Tensor src_cpu = base.to(c.src);
    const Tensor src_gpu = on_gpu(src_cpu);

    // Contiguous -> contiguous.
    Tensor dst_cpu = Tensor::empty({5, 37, 3}, c.dst);
    Tensor dst_gpu = Tensor::full({5, 37, 3}, 7.0, c.dst, Device::cuda(0));
    cpu().copy(dst_cpu, src_cpu);
    gpu().copy(dst_gpu, src_gpu);
    expect_equal(dst_gpu, dst_cpu, "contiguous");

    // Permuted source into a strided slice of a larger destination.
    const Tensor sv_cpu = src_cpu.transpose(0, 2).slice(1, 3, 30);  // [3, 27, 5]
    const Tensor sv_gpu = src_gpu.transpose(0, 2).slice(1, 3, 30);
    Tensor big_cpu = Tensor::full({4, 27, 9}, 5.0, c.dst);
    Tensor big_gpu = Tensor::full({4, 27, 9}, 5.0, c.dst, Device::cuda(0));
    Tensor dv_cpu = big_cpu.slice(0, 1, 4).slice(2, 2, 7);
    Tensor dv_gpu = big_gpu.slice(0, 1, 4).slice(2, 2, 7);
    cpu().copy(dv_cpu, sv_cpu);
    gpu().copy(dv_gpu, sv_gpu);
    expect_equal(big_gpu, big_cpu, "strided");
  }
}

TEST(CudaParity, FillContiguousAndStrided) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : {DType::F64, DType::F32, DType::BF16, DType::F16, DType::I64, DType::I32, DType::I8, DType::U8}) {
    SCOPED_TRACE(name(t));
    Tensor c = Tensor::full({33, 7}, 1.0, t);
    Tensor g = Tensor::full({33, 7}, 1.0, t, Device::cuda(0));
    cpu().fill(c, 2.7);
    gpu().fill(g, 2.7);
    expect_equal(g, c, "contiguous");
    Tensor cv = c.slice(0, 3, 30).slice(1, 1, 6);
    Tensor gv = g.slice(0, 3, 30).slice(1, 1, 6);
    // Negative values into u8 would be an out-of-range float conversion (undefined): keep it positive there.
    const double v = t == DType::U8 ? 3.1 : -3.1;
    cpu().fill(cv, v);
    gpu().fill(gv, v);
    expect_equal(g, c, "strided");
  }
}

TEST(CudaParity, PhiloxFillsMatchExactly) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes) {
    for (int64_t n : {int64_t(1), int64_t(3), int64_t(1001), int64_t(65537)}) {
      SCOPED_TRACE(name(t) + " n=" + std::to_string(n));
      Tensor c = Tensor::empty({n}, t);
      Tensor g = nan_gpu({n}, t);
      // low + (high - low) * u and mean + std * z are exact or singly rounded in double for these parameters
      // (power-of-two scales), so whether a compiler contracts them into an FMA cannot change the result.
      cpu().fill_uniform(c, -1.5, 2.5, 42, 5);
      gpu().fill_uniform(g, -1.5, 2.5, 42, 5);
      expect_equal(g, c, "uniform");
      cpu().fill_normal(c, 0.5, 2.0, 43, 9);
      gpu().fill_normal(g, 0.5, 2.0, 43, 9);
      if (t == DType::F64) {
        // Box-Muller's log and cos in double may differ by an ulp between the device and glibc libm.
        expect_close(g, c, 1e-14, "normal");
      } else {
        expect_equal(g, c, "normal");
      }
    }
  }
}

TEST(CudaParity, Synchronize) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  Tensor g = nan_gpu({1000}, DType::F32);
  gpu().fill(g, 1.0);
  gpu().synchronize();
  EXPECT_EQ(g.to_vector<float>(), std::vector<float>(1000, 1.0f));
}

// ---- GEMM ----------------------------------------------------------------------------------------------------

TEST(CudaParity, GemmAllLayouts) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  struct Shape3 {
    int64_t m, n, k, batch;
    bool broadcast_b;
  };
  const Shape3 shapes[] = {
      {37, 19, 53, 1, false}, {5, 7, 3, 4, false}, {1, 33, 65, 3, true}, {64, 1, 17, 2, false}, {6, 5, 0, 2, false}};
  for (DType t : kFloatTypes)
    for (const Shape3& s : shapes)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (double beta : {0.0, 0.5}) {
            SCOPED_TRACE(name(t) + " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
                         " k=" + std::to_string(s.k) + " batch=" + std::to_string(s.batch) +
                         " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " beta=" + std::to_string(beta));
            // Stored operands with padded rows (ld > cols).
            const int64_t ar = ta ? s.k : s.m, ac = ta ? s.m : s.k, br = tb ? s.n : s.k, bc = tb ? s.k : s.n;
            const int64_t lda = ac + 3, ldb = bc + 2, ldc = s.n + 1;
            const int64_t bbatch = s.broadcast_b ? 1 : s.batch;
            const Tensor a = random_tensor({s.batch, std::max<int64_t>(ar, 1), lda}, t, 1);
            const Tensor b = random_tensor({bbatch, std::max<int64_t>(br, 1), ldb}, t, 2);
            Tensor c_cpu = random_tensor({s.batch, s.m, ldc}, t, 3);
            const Tensor a_gpu = on_gpu(a), b_gpu = on_gpu(b);
            Tensor c_gpu = beta == 0.0 ? nan_gpu(c_cpu.shape(), t) : on_gpu(c_cpu);
            const int64_t sa = std::max<int64_t>(ar, 1) * lda, sb = s.broadcast_b ? 0 : std::max<int64_t>(br, 1) * ldb;
            cpu().gemm(t, ta, tb, s.m, s.n, s.k, 1.25, MatRef{a.raw_data(), lda, sa}, MatRef{b.raw_data(), ldb, sb},
                       beta, MutMatRef{c_cpu.raw_data(), ldc, s.m * ldc}, s.batch);
            gpu().gemm(t, ta, tb, s.m, s.n, s.k, 1.25, MatRef{a_gpu.raw_data(), lda, sa},
                       MatRef{b_gpu.raw_data(), ldb, sb}, beta, MutMatRef{c_gpu.raw_data(), ldc, s.m * ldc}, s.batch);
            expect_close(c_gpu.slice(2, 0, s.n), c_cpu.slice(2, 0, s.n), t, "C");
          }
}

// ---- element-wise --------------------------------------------------------------------------------------------

TEST(CudaParity, BinaryAllBroadcasts) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const int64_t rows = 67, cols = 33;
  for (DType t : kFloatTypes)
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul})
      for (Broadcast bc : {Broadcast::Full, Broadcast::Row, Broadcast::Col})
        for (double beta : {0.0, -0.5}) {
          SCOPED_TRACE(name(t) + " op=" + std::to_string(int(op)) + " bcast=" + std::to_string(int(bc)) +
                       " beta=" + std::to_string(beta));
          const int64_t bn = bc == Broadcast::Full ? rows * cols : bc == Broadcast::Row ? cols : rows;
          const Tensor a = random_tensor({rows, cols}, t, 1), b = random_tensor({bn}, t, 2);
          Tensor out = random_tensor({rows, cols}, t, 3);
          Tensor out_gpu = beta == 0.0 ? nan_gpu(out.shape(), t) : on_gpu(out);
          cpu().binary(op, bc, 1.5, a, b, beta, out);
          gpu().binary(op, bc, 1.5, on_gpu(a), on_gpu(b), beta, out_gpu);
          expect_close(out_gpu, out, t, "out");
        }
}

TEST(CudaParity, ActivationsForwardAndBackward) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const Activation acts[] = {Activation::Identity, Activation::Relu,      Activation::Gelu,
                             Activation::GeluTanh, Activation::Silu,      Activation::Tanh,
                             Activation::Hardtanh, Activation::LeakyRelu, Activation::Sigmoid};
  for (DType t : kFloatTypes)
    for (Activation act : acts) {
      SCOPED_TRACE(name(t) + " act=" + std::to_string(int(act)));
      // Scale 1.5 puts inputs on both sides of Hardtanh's corners.
      const Tensor x = random_tensor({1001}, t, 4, 1.5), dy = random_tensor({1001}, t, 5);
      const Tensor x_gpu = on_gpu(x), dy_gpu = on_gpu(dy);
      Tensor y = Tensor::empty({1001}, t);
      Tensor y_gpu = nan_gpu({1001}, t);
      cpu().activation_forward(act, 0.1, x, y);
      gpu().activation_forward(act, 0.1, x_gpu, y_gpu);
      expect_close(y_gpu, y, t, "forward");
      for (double beta : {0.0, 1.0}) {
        Tensor dx = random_tensor({1001}, t, 6);
        Tensor dx_gpu = beta == 0.0 ? nan_gpu({1001}, t) : on_gpu(dx);
        cpu().activation_backward(act, 0.1, x, dy, beta, dx);
        gpu().activation_backward(act, 0.1, x_gpu, dy_gpu, beta, dx_gpu);
        expect_close(dx_gpu, dx, t, "backward beta=" + std::to_string(beta));
      }
    }
}

TEST(CudaParity, DropoutMatchesExactly) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes)
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(4099)}) {
      SCOPED_TRACE(name(t) + " n=" + std::to_string(n));
      const Tensor x = random_tensor({n}, t, 8);
      Tensor y = Tensor::empty({n}, t);
      Tensor y_gpu = nan_gpu({n}, t);
      cpu().dropout(x, 0.3, 77, 13, y);
      gpu().dropout(on_gpu(x), 0.3, 77, 13, y_gpu);
      expect_equal(y_gpu, y, "dropout");
    }
}

TEST(CudaParity, SumRows) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes)
    for (int64_t outer : {1, 3})
      for (int64_t rows : {1, 130})
        for (int64_t cols : {1, 77})
          for (double beta : {0.0, 1.0}) {
            SCOPED_TRACE(name(t) + " outer=" + std::to_string(outer) + " rows=" + std::to_string(rows) +
                         " cols=" + std::to_string(cols) + " beta=" + std::to_string(beta));
            const Tensor x = random_tensor({outer, rows, cols}, t, 9);
            Tensor out = random_tensor({outer, cols}, t, 10);
            Tensor out_gpu = beta == 0.0 ? nan_gpu(out.shape(), t) : on_gpu(out);
            cpu().sum_rows(x, outer, rows, 2.0, beta, out);
            gpu().sum_rows(on_gpu(x), outer, rows, 2.0, beta, out_gpu);
            expect_close(out_gpu, out, t, "sum_rows");
          }
}

TEST(CudaParity, WholeTensorReductions) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : {DType::F64, DType::F32, DType::BF16, DType::F16, DType::I64, DType::I32}) {
    for (int64_t n : {int64_t(1), int64_t(4095), int64_t(100003)}) {
      SCOPED_TRACE(name(t) + " n=" + std::to_string(n));
      const Tensor x = random_tensor({n}, DType::F64, 12, 50.0).to(t);
      const Tensor x_gpu = on_gpu(x);
      EXPECT_NEAR(gpu().reduce(Reduction::Sum, x_gpu), cpu().reduce(Reduction::Sum, x),
                  1e-12 * std::max(1.0, std::fabs(cpu().reduce(Reduction::Sum, x))) + 1e-9);
      EXPECT_EQ(gpu().reduce(Reduction::MaxAbs, x_gpu), cpu().reduce(Reduction::MaxAbs, x));
      EXPECT_EQ(gpu().reduce(Reduction::CountNonFinite, x_gpu), 0.0);
      const double ss = cpu().reduce(Reduction::SumSquares, x);
      EXPECT_NEAR(gpu().reduce(Reduction::SumSquares, x_gpu), ss, 1e-12 * ss);
    }
  }
  // Non-finite values: counted, and MaxAbs follows std::max (NaN ignored, infinity wins).
  std::vector<double> v = random_values(9000, 13);
  v[17] = kNaN;
  v[4500] = std::numeric_limits<double>::infinity();
  v[8999] = kNaN;
  for (DType t : kFloatTypes) {
    SCOPED_TRACE(name(t));
    const Tensor x = Tensor::from_vector<double>(v, {9000}, t);
    const Tensor x_gpu = on_gpu(x);
    EXPECT_EQ(gpu().reduce(Reduction::CountNonFinite, x_gpu), 3.0);
    EXPECT_EQ(gpu().reduce(Reduction::MaxAbs, x_gpu), cpu().reduce(Reduction::MaxAbs, x));
  }
}

// One rounding of an f64 product on both sides: exact.
TEST(CudaParity, ScaleInPlaceMatchesExactly) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes) {
    SCOPED_TRACE(name(t));
    Tensor x = random_tensor({70001}, t, 14, 3.0);
    Tensor x_gpu = on_gpu(x);
    for (double f : {0.37, 1.0 / 65536.0, 3.0}) {
      cpu().scale_in_place(x, f);
      gpu().scale_in_place(x_gpu, f);
    }
    expect_equal(x_gpu.to(Device::cpu()), x, "scaled");
  }
}

// ---- optimizers ------------------------------------------------------------------------------------------

// The fused AdamW and LAMB steps through train::Optimizer on each device: ranges over several 4096-element
// blocks and under one, decay and no-decay, arena padding that must stay untouched, five steps with fresh
// gradients. Element arithmetic is f64 on both sides (only FMA contraction and LAMB's in-block sum order
// differ), so f32 storage agrees to a few ulps.
TEST(CudaParity, OptimizerStepsAdamWAndLamb) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const std::vector<train::ParamRange> ranges = {
      {"w", 0, 9000, true}, {"b", 9008, 17, false}, {"e", 9032, 4096, false}, {"x", 13128, 300, true}};
  const int64_t n = 13440;
  for (const char* type : {"adamw", "lamb"}) {
    for (DType t : {DType::F32, DType::F64}) {
      SCOPED_TRACE(std::string(type) + " " + name(t));
      train::OptimizerConfig cfg;
      cfg.type = type;
      cfg.learning_rate = 1e-3;
      cfg.betas = {0.9, 0.98};
      cfg.eps = 1e-6;
      cfg.weight_decay = 0.05;
      auto on_cpu = train::Optimizer::create(cfg, ranges, n);
      auto on_dev = train::Optimizer::create(cfg, ranges, n, Device::cuda(0));
      Tensor values = random_tensor({n}, t, 30);
      Tensor values_gpu = on_gpu(values);
      for (int k = 0; k < 5; ++k) {
        const Tensor g = random_tensor({n}, t, 40 + uint64_t(k), 0.1);
        const double lr = 1e-3 * (k + 1);
        on_cpu->step(values, g, lr);
        on_dev->step(values_gpu, on_gpu(g), lr);
      }
      const double tol = t == DType::F64 ? 1e-12 : 2e-6;
      expect_close(values_gpu.to(Device::cpu()), values, tol, "values");
      for (size_t i = 0; i < 2; ++i)
        expect_close(on_dev->state()[i].second.to(Device::cpu()), on_cpu->state()[i].second, tol,
                     on_cpu->state()[i].first);
      // The padding between ranges is no parameter: neither side touched it.
      for (int64_t pad : {int64_t(9000), int64_t(9030), int64_t(13430)})
        EXPECT_EQ(values_gpu.to(Device::cpu()).to_vector<double>()[size_t(pad)],
                  random_tensor({n}, t, 30).to_vector<double>()[size_t(pad)]);
      // And the gradient norm and clipping that precede a step.
      const Tensor g = random_tensor({n}, DType::F32, 50);
      EXPECT_NEAR(train::global_grad_norm(on_gpu(g)), train::global_grad_norm(g), 1e-12 * train::global_grad_norm(g));
    }
  }
}

// ---- normalisations ------------------------------------------------------------------------------------------

namespace {

struct NormCase {
  RowNorm kind;
  bool gain, bias;
};

const NormCase kNormCases[] = {
    {RowNorm::MaxNorm, false, false},         {RowNorm::ScaledMaxNorm, true, false},
    {RowNorm::PreScaledMaxNorm, true, false}, {RowNorm::UncenteredLN, false, false},
    {RowNorm::UncenteredLN, true, false},     {RowNorm::StandardLN, true, true},
    {RowNorm::StandardLN, false, false},      {RowNorm::StandardLN, true, false},
};

bool max_family(RowNorm k) {
  return k == RowNorm::MaxNorm || k == RowNorm::ScaledMaxNorm || k == RowNorm::PreScaledMaxNorm;
}

}  // namespace

TEST(CudaParity, RowNormForwardAndBackward) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const std::pair<int64_t, int64_t> sizes[] = {{1, 5}, {67, 33}, {3, 1500}, {2000, 40}};
  for (DType t : kFloatTypes)
    for (const NormCase& nc : kNormCases)
      for (auto [rows, cols] : sizes) {
        SCOPED_TRACE(name(t) + " kind=" + std::to_string(int(nc.kind)) + " gain=" + std::to_string(nc.gain) + " bias=" +
                     std::to_string(nc.bias) + " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
        const DType st = t == DType::F64 ? DType::F64 : DType::F32;
        const Tensor x = random_tensor({rows, cols}, t, 20);
        const Tensor g = random_tensor({cols}, t, 21), b = random_tensor({cols}, t, 22);
        const Tensor x_gpu = on_gpu(x), g_gpu = on_gpu(g), b_gpu = on_gpu(b);
        Tensor y = Tensor::empty({rows, cols}, t), stats = Tensor::empty({rows, 2}, st);
        Tensor y_gpu = nan_gpu({rows, cols}, t), stats_gpu = nan_gpu({rows, 2}, st);
        cpu().rownorm_forward(nc.kind, x, nc.gain ? &g : nullptr, nc.bias ? &b : nullptr, 1e-5, y, stats);
        gpu().rownorm_forward(nc.kind, x_gpu, nc.gain ? &g_gpu : nullptr, nc.bias ? &b_gpu : nullptr, 1e-5, y_gpu,
                              stats_gpu);
        expect_close(y_gpu, y, t, "y");
        expect_close(stats_gpu.select(1, 0), stats.select(1, 0), t, "stats denominator");
        if (max_family(nc.kind))
          expect_equal(stats_gpu.select(1, 1), stats.select(1, 1), "stats argmax");
        else
          expect_close(stats_gpu.select(1, 1), stats.select(1, 1), t, "stats mean");

        // Backward from the CPU's statistics, so that it is tested on its own.
        const Tensor dy = random_tensor({rows, cols}, t, 23);
        const Tensor stats_in = on_gpu(stats), dy_gpu = on_gpu(dy);
        for (double beta : {0.0, 1.0}) {
          Tensor dx = random_tensor({rows, cols}, t, 24);
          Tensor dx_gpu = beta == 0.0 ? nan_gpu({rows, cols}, t) : on_gpu(dx);
          Tensor dg = random_tensor({cols}, t, 25), db = random_tensor({cols}, t, 26);
          Tensor dg_gpu = on_gpu(dg), db_gpu = on_gpu(db);
          const bool with_dg = nc.gain || nc.kind == RowNorm::UncenteredLN;
          cpu().rownorm_backward(nc.kind, x, nc.gain ? &g : nullptr, stats, dy, beta, dx, with_dg ? &dg : nullptr,
                                 nc.bias ? &db : nullptr);
          gpu().rownorm_backward(nc.kind, x_gpu, nc.gain ? &g_gpu : nullptr, stats_in, dy_gpu, beta, dx_gpu,
                                 with_dg ? &dg_gpu : nullptr, nc.bias ? &db_gpu : nullptr);
          expect_close(dx_gpu, dx, t, "dx beta=" + std::to_string(beta));
          expect_close(dg_gpu, dg, t, "dgain");
          expect_close(db_gpu, db, t, "dbias");
        }
      }
}

// NaN rows of the MaxNorm family follow the CPU's scan: a NaN first element wins (s = NaN), a NaN elsewhere
// is passed over, an all-NaN row keeps index 0 (row lengths on both team sizes).
TEST(CudaParity, MaxNormNaNRowsFollowTheCpu) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (int64_t cols : {int64_t(40), int64_t(1500)}) {
    for (RowNorm kind : {RowNorm::MaxNorm, RowNorm::ScaledMaxNorm, RowNorm::PreScaledMaxNorm}) {
      SCOPED_TRACE(std::to_string(int(kind)) + " cols=" + std::to_string(cols));
      std::vector<double> v = random_values(4 * cols, 90);
      v[0] = kNaN;                                                        // row 0: NaN first
      v[size_t(cols + cols / 2)] = kNaN;                                  // row 1: NaN in the middle
      for (int64_t c = 0; c < cols; ++c) v[size_t(2 * cols + c)] = kNaN;  // row 2: all NaN; row 3 clean
      const Tensor x = Tensor::from_vector<double>(v, {4, cols}, DType::F32);
      const Tensor g = random_tensor({cols}, DType::F32, 91);
      const Tensor* gain = kind == RowNorm::MaxNorm ? nullptr : &g;
      const Tensor g_gpu = on_gpu(g);
      Tensor y = Tensor::empty({4, cols}, DType::F32), st = Tensor::empty({4, 2}, DType::F32);
      cpu().rownorm_forward(kind, x, gain, nullptr, 1e-3, y, st);
      Tensor y_gpu = nan_gpu({4, cols}, DType::F32), st_gpu = nan_gpu({4, 2}, DType::F32);
      gpu().rownorm_forward(kind, on_gpu(x), gain ? &g_gpu : nullptr, nullptr, 1e-3, y_gpu, st_gpu);
      expect_close(y_gpu.to(Device::cpu()), y, DType::F32, "y");
      expect_close(st_gpu.to(Device::cpu()), st, DType::F32, "stats");
    }
  }
}

TEST(CudaParity, RowNormBackwardInPlace) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  // dx may alias dy (the CPU reads each dy before writing that dx); the gain and bias gradients must still
  // see the incoming dy.
  for (RowNorm kind : {RowNorm::StandardLN, RowNorm::PreScaledMaxNorm, RowNorm::ScaledMaxNorm}) {
    SCOPED_TRACE("kind=" + std::to_string(int(kind)));
    const DType t = DType::F32;
    const Tensor x = random_tensor({130, 45}, t, 27), g = random_tensor({45}, t, 28);
    Tensor y = Tensor::empty({130, 45}, t), stats = Tensor::empty({130, 2}, DType::F32);
    cpu().rownorm_forward(kind, x, &g, nullptr, 1e-5, y, stats);
    Tensor d = random_tensor({130, 45}, t, 29), dg = random_tensor({45}, t, 30), db = random_tensor({45}, t, 31);
    Tensor d_gpu = on_gpu(d), dg_gpu = on_gpu(dg), db_gpu = on_gpu(db);
    const Tensor g_gpu = on_gpu(g);
    const bool bias = kind == RowNorm::StandardLN;
    cpu().rownorm_backward(kind, x, &g, stats, d, 0.0, d, &dg, bias ? &db : nullptr);
    gpu().rownorm_backward(kind, on_gpu(x), &g_gpu, on_gpu(stats), d_gpu, 0.0, d_gpu, &dg_gpu,
                           bias ? &db_gpu : nullptr);
    expect_close(d_gpu, d, t, "dx");
    expect_close(dg_gpu, dg, t, "dgain");
    expect_close(db_gpu, db, t, "dbias");
  }
}

// ---- gathers and positions -------------------------------------------------------------------------------------

TEST(CudaParity, GatherRows) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes)
    for (DType it : {DType::I64, DType::I32})
      for (double beta : {0.0, 0.5}) {
        SCOPED_TRACE(name(t) + " ids " + name(it) + " beta=" + std::to_string(beta));
        const Tensor table = random_tensor({50, 33}, t, 30);
        const Tensor ids = random_ids(70, 50, 31, it);
        Tensor out = random_tensor({70, 33}, t, 32);
        Tensor out_gpu = beta == 0.0 ? nan_gpu(out.shape(), t) : on_gpu(out);
        cpu().gather_rows(table, ids, beta, out);
        gpu().gather_rows(on_gpu(table), on_gpu(ids), beta, out_gpu);
        expect_close(out_gpu, out, t, "out");
      }
}

TEST(CudaParity, ScatterAddRowsIsDeterministic) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const std::pair<int64_t, int64_t> sizes[] = {{1, 1}, {70, 33}, {3000, 100}};  // {ids, cols}; 3000 > one id tile
  for (DType t : kFloatTypes)
    for (DType it : {DType::I64, DType::I32})
      for (auto [n, cols] : sizes) {
        SCOPED_TRACE(name(t) + " ids " + name(it) + " n=" + std::to_string(n) + " cols=" + std::to_string(cols));
        const int64_t rows = 37;  // fewer rows than ids: many repeats
        const Tensor src = random_tensor({n, cols}, t, 33);
        const Tensor ids = random_ids(n, rows, 34, it);
        Tensor table = random_tensor({rows, cols}, t, 35);
        const Tensor src_gpu = on_gpu(src), ids_gpu = on_gpu(ids);
        Tensor table_gpu = on_gpu(table), again_gpu = on_gpu(table);
        cpu().scatter_add_rows(src, ids, table);
        gpu().scatter_add_rows(src_gpu, ids_gpu, table_gpu);
        gpu().scatter_add_rows(src_gpu, ids_gpu, again_gpu);
        expect_close(table_gpu, table, t, "table");
        expect_equal(again_gpu, table_gpu, "second run");
      }
}

TEST(CudaParity, BadIdsRaiseAtSynchronisation) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const Tensor table = on_gpu(random_tensor({10, 8}, DType::F32, 36));
  const Tensor ids = on_gpu(Tensor::from_vector<int64_t>({1, 10, 2}, {3}, DType::I64));
  Tensor out = nan_gpu({3, 8}, DType::F32);
  EXPECT_THROW(
      {
        gpu().gather_rows(table, ids, 0.0, out);
        gpu().synchronize();
      },
      Error);
  Tensor tab = table.clone();
  EXPECT_THROW(
      {
        gpu().scatter_add_rows(out, ids, tab);
        gpu().synchronize();
      },
      Error);
  // The error was consumed: the backend keeps working.
  EXPECT_NO_THROW(gpu().synchronize());
  const Tensor logits = on_gpu(random_tensor({2, 5}, DType::F32, 37));
  const Tensor labels = on_gpu(Tensor::from_vector<int64_t>({1, 5}, {2}, DType::I64));
  Tensor loss = nan_gpu({2}, DType::F32), lse = nan_gpu({2}, DType::F32);
  EXPECT_THROW(
      {
        gpu().cross_entropy_forward(logits, labels, loss, lse);
        gpu().synchronize();
      },
      Error);
}

TEST(CudaParity, PositionalScale) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes)
    for (DType tt : {t, DType::F32})
      for (DType it : {DType::I64, DType::I32}) {
        SCOPED_TRACE(name(t) + " table " + name(tt) + " positions " + name(it));
        const Tensor x = random_tensor({3, 7, 33}, t, 40);
        const Tensor table = random_tensor({10, 33}, tt, 41, 0.77);
        const Tensor pos = random_ids(7, 10, 42, it);
        Tensor y = Tensor::empty(x.shape(), t);
        Tensor y_gpu = nan_gpu(x.shape(), t);
        cpu().positional_scale(x, table, pos, y);
        gpu().positional_scale(on_gpu(x), on_gpu(table), on_gpu(pos), y_gpu);
        expect_close(y_gpu, y, t, "y");
      }
}

TEST(CudaParity, RopeForwardAndInverse) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes)
    for (DType tt : {t, DType::F32})
      for (int64_t cols : {2, 16, 66})
        for (bool inverse : {false, true}) {
          SCOPED_TRACE(name(t) + " table " + name(tt) + " cols=" + std::to_string(cols) +
                       " inverse=" + std::to_string(inverse));
          const Tensor x = random_tensor({3, 4, cols}, t, 43);
          const Tensor cos = random_tensor({9, cols}, tt, 44), sin = random_tensor({9, cols}, tt, 45);
          const Tensor pos = random_ids(4, 9, 46, inverse ? DType::I32 : DType::I64);
          Tensor y = Tensor::empty(x.shape(), t);
          Tensor y_gpu = nan_gpu(x.shape(), t);
          cpu().rope(x, cos, sin, pos, inverse, y);
          gpu().rope(on_gpu(x), on_gpu(cos), on_gpu(sin), on_gpu(pos), inverse, y_gpu);
          expect_close(y_gpu, y, t, "y");
        }
}

TEST(CudaParity, BandMask) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const std::pair<int64_t, int64_t> bands[] = {{-2, 3}, {0, 0}, {-100, 100}, {5, 2}};
  for (DType t : kFloatTypes)
    for (auto [lo, hi] : bands) {
      SCOPED_TRACE(name(t) + " lo=" + std::to_string(lo) + " hi=" + std::to_string(hi));
      Tensor s = random_tensor({3, 9, 13}, t, 47);
      Tensor s_gpu = on_gpu(s);
      cpu().band_mask(s, lo, hi);
      gpu().band_mask(s_gpu, lo, hi);
      expect_equal(s_gpu, s, "s");
    }
}

// ---- softmax attention and losses ------------------------------------------------------------------------------

TEST(CudaParity, SoftmaxWithKeyMask) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const int64_t heads = 2, groups = 6, rows = 5;
  for (DType t : kFloatTypes)
    for (int64_t cols : {7, 33, 1500})
      for (bool masked : {false, true}) {
        SCOPED_TRACE(name(t) + " cols=" + std::to_string(cols) + " masked=" + std::to_string(masked));
        const Tensor s = random_tensor({groups, rows, cols}, t, 50, 3.0);
        // Key mask per batch row (groups / heads of them); batch row 1 masks every key.
        std::vector<double> valid(static_cast<size_t>(groups / heads * cols));
        for (size_t i = 0; i < valid.size(); ++i) valid[i] = philox_uniform(51, 0, i) < 0.7f ? 1.0 : 0.0;
        for (int64_t j = 0; j < cols; ++j) valid[size_t(cols + j)] = 0.0;
        const Tensor kv = Tensor::from_vector<double>(valid, {groups / heads, cols}, t);
        const Tensor kv_gpu = on_gpu(kv);
        Tensor p = Tensor::empty(s.shape(), t);
        Tensor p_gpu = nan_gpu(s.shape(), t);
        cpu().softmax_forward(s, 0.7, masked ? &kv : nullptr, heads, p);
        gpu().softmax_forward(on_gpu(s), 0.7, masked ? &kv_gpu : nullptr, heads, p_gpu);
        expect_close(p_gpu, p, t, "p");

        const Tensor dp = random_tensor(s.shape(), t, 52);
        Tensor ds = Tensor::empty(s.shape(), t);
        Tensor ds_gpu = nan_gpu(s.shape(), t);
        cpu().softmax_backward(p, dp, 0.7, ds);
        gpu().softmax_backward(on_gpu(p), on_gpu(dp), 0.7, ds_gpu);
        expect_close(ds_gpu, ds, t, "ds");
      }
}

TEST(CudaParity, SoftmaxManyRows) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes) {
    SCOPED_TRACE(name(t));
    const Tensor s = random_tensor({1, 5000, 64}, t, 53, 4.0);
    Tensor p = Tensor::empty(s.shape(), t);
    Tensor p_gpu = nan_gpu(s.shape(), t);
    cpu().softmax_forward(s, 1.0, nullptr, 1, p);
    gpu().softmax_forward(on_gpu(s), 1.0, nullptr, 1, p_gpu);
    expect_close(p_gpu, p, t, "p");
  }
}

TEST(CudaParity, CrossEntropy) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes)
    for (int64_t vocab : {10, 3000}) {
      SCOPED_TRACE(name(t) + " vocab=" + std::to_string(vocab));
      const int64_t rows = 9;
      const Tensor logits = random_tensor({rows, vocab}, t, 60, 3.0);
      std::vector<int64_t> lab(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r)
        lab[size_t(r)] = r % 4 == 3 ? -100 : std::min<int64_t>(vocab - 1, int64_t(philox_uniform(61, 0, r) * vocab));
      const Tensor labels = Tensor::from_vector<int64_t>(lab, {rows}, DType::I64);
      const Tensor logits_gpu = on_gpu(logits), labels_gpu = on_gpu(labels);
      const DType stat = dense::accumulate_dtype(t);  // f32 statistics for half logits
      Tensor loss = Tensor::empty({rows}, stat), lse = Tensor::empty({rows}, stat);
      Tensor loss_gpu = nan_gpu({rows}, stat), lse_gpu = nan_gpu({rows}, stat);
      cpu().cross_entropy_forward(logits, labels, loss, lse);
      gpu().cross_entropy_forward(logits_gpu, labels_gpu, loss_gpu, lse_gpu);
      expect_close(loss_gpu, loss, t, "loss");
      expect_close(lse_gpu, lse, t, "lse");

      Tensor d = Tensor::empty({rows, vocab}, t);
      Tensor d_gpu = nan_gpu({rows, vocab}, t);
      cpu().cross_entropy_backward(logits, labels, lse, 1.0 / 9.0, d);
      gpu().cross_entropy_backward(logits_gpu, labels_gpu, on_gpu(lse), 1.0 / 9.0, d_gpu);
      expect_close(d_gpu, d, t, "dlogits");
    }
}

TEST(CudaParity, MaxPool) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (DType t : kFloatTypes)
    for (int64_t n : {1, 17}) {
      SCOPED_TRACE(name(t) + " N=" + std::to_string(n));
      // bf16/f16 rounding makes ties likely: the first index must win on both backends.
      const Tensor x = random_tensor({3, n, 40}, t, 70);
      Tensor out = Tensor::empty({3, 40}, t), arg = Tensor::empty({3, 40}, DType::I64);
      Tensor out_gpu = nan_gpu({3, 40}, t), arg_gpu = Tensor::full({3, 40}, -1.0, DType::I64, Device::cuda(0));
      cpu().max_pool_forward(x, out, arg);
      gpu().max_pool_forward(on_gpu(x), out_gpu, arg_gpu);
      expect_equal(out_gpu, out, "out");
      expect_equal(arg_gpu, arg, "argmax");

      const Tensor dout = random_tensor({3, 40}, t, 71);
      Tensor dx = random_tensor({3, n, 40}, t, 72);
      Tensor dx_gpu = on_gpu(dx);
      cpu().max_pool_backward(dout, arg, dx);
      gpu().max_pool_backward(on_gpu(dout), on_gpu(arg), dx_gpu);
      expect_equal(dx_gpu, dx, "dx");
    }
}

// ---- lifetime ---------------------------------------------------------------------------------------------------

// The programs shut the CUDA backends down before main returns; whatever runs after (a tensor freed late, a new
// request for the device) must neither crash nor reuse the retired stream.
TEST(CudaParity, ReleasedBackendsAreMadeAgainOnUse) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const Tensor x = random_tensor({64, 33}, DType::F32, 5);
  Tensor before = on_gpu(x);
  release_backends();
  before = Tensor();  // freed into the retired backend's cache
  const Tensor after = on_gpu(x);
  EXPECT_EQ(after.to(Device::cpu()).to_vector<float>(), x.to_vector<float>());
  release_backends();
  release_backends();  // idempotent
}

// ---- determinism ------------------------------------------------------------------------------------------------

TEST(CudaParity, RepeatedRunsAreBitIdentical) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const DType t = DType::F32;
  const Tensor x = on_gpu(random_tensor({4000, 300}, t, 80)), dy = on_gpu(random_tensor({4000, 300}, t, 81));
  const Tensor g = on_gpu(random_tensor({300}, t, 82)), b = on_gpu(random_tensor({300}, t, 83));
  auto run = [&] {
    std::vector<Tensor> outs;
    Tensor col = nan_gpu({300}, t);
    gpu().sum_rows(x, 1, 4000, 1.0, 0.0, col);
    outs.push_back(col);
    Tensor y = nan_gpu({4000, 300}, t), stats = nan_gpu({4000, 2}, DType::F32);
    gpu().rownorm_forward(RowNorm::StandardLN, x, &g, &b, 1e-5, y, stats);
    Tensor dx = nan_gpu({4000, 300}, t), dg = Tensor::zeros({300}, t, Device::cuda(0)),
           db = Tensor::zeros({300}, t, Device::cuda(0));
    gpu().rownorm_backward(RowNorm::StandardLN, x, &g, stats, dy, 0.0, dx, &dg, &db);
    outs.insert(outs.end(), {y, stats, dx, dg, db});
    Tensor p = nan_gpu({1, 4000, 300}, t);
    gpu().softmax_forward(x.view({1, 4000, 300}), 1.0, nullptr, 1, p);
    outs.push_back(p);
    outs.push_back(Tensor::full({1}, gpu().reduce(Reduction::Sum, x), DType::F64));
    return outs;
  };
  const std::vector<Tensor> first = run(), second = run();
  for (size_t i = 0; i < first.size(); ++i) expect_equal(second[i], first[i], "output " + std::to_string(i));
}

// ---- graph (sparse) attention ------------------------------------------------------------------------

TEST(CudaParity, GraphAttentionCsrAndBand) {
  if (!dense::cuda_available()) GTEST_SKIP() << "no CUDA device";
  const int64_t B = 2, N = 70, H = 2;
  for (DType t : kFloatTypes)
    for (int64_t e : {3, 64, 160})  // one, two and five channels per lane
      for (GraphScore score : {GraphScore::Softmax, GraphScore::Linear})
        for (bool band : {false, true}) {
          SCOPED_TRACE(name(t) + " e=" + std::to_string(e) + (score == GraphScore::Softmax ? " softmax" : " linear") +
                       (band ? " band" : " csr"));
          const int64_t d = H * e;
          // Per-head random graphs with empty and full rows; the band is a window of 5.
          std::vector<nn::CsrGraph> graphs;
          for (int64_t h = 0; h < H; ++h)
            graphs.push_back(nn::CsrGraph::from_predicate(N, N, [&](int64_t i, int64_t j) {
              return i % 9 != 4 && (i % 13 == 2 || philox_uniform(60 + uint64_t(h), uint64_t(i), uint64_t(j)) < 0.3f);
            }));
          const nn::DeviceGraph cg =
              band ? nn::DeviceGraph::band(N, N, -5, 5) : nn::DeviceGraph::upload(graphs, Device::cpu());
          const nn::DeviceGraph gg =
              band ? nn::DeviceGraph::band(N, N, -5, 5) : nn::DeviceGraph::upload(graphs, Device::cuda(0));
          const Tensor q = random_tensor({B, N, d}, t, 61), k = random_tensor({B, N, d}, t, 62),
                       v = random_tensor({B, N, d}, t, 63), dout = random_tensor({B, N, d}, t, 64);
          std::vector<double> valid(size_t(B * N), 1.0);
          for (int64_t j = 0; j < N; j += 7) valid[size_t(N + j)] = 0.0;
          const Tensor kv = Tensor::from_vector<double>(valid, {B, N}, t), kv_gpu = on_gpu(kv);
          const DType st = ops::rownorm_stats_dtype(t);
          Tensor o = Tensor::empty(q.shape(), t), lse = Tensor::empty({B, H, N}, st);
          Tensor o_gpu = nan_gpu(q.shape(), t), lse_gpu = nan_gpu({B, H, N}, st);
          ops::graph_attention_forward(score, q, k, v, cg.forward_ref(), &kv, H, 0.4, o, &lse);
          ops::graph_attention_forward(score, on_gpu(q), on_gpu(k), on_gpu(v), gg.forward_ref(), &kv_gpu, H, 0.4, o_gpu,
                                       &lse_gpu);
          expect_close(o_gpu, o, t, "o");
          if (score == GraphScore::Softmax) {
            // Rows without a valid neighbour hold -inf on both sides; compare those exactly, the rest closely.
            const std::vector<double> lg = lse_gpu.to(Device::cpu()).to_vector<double>(), lc = lse.to_vector<double>();
            std::vector<double> fg = lg, fc = lc;
            for (size_t i = 0; i < lc.size(); ++i) {
              EXPECT_EQ(std::isinf(lg[i]), std::isinf(lc[i])) << "lse row " << i;
              if (std::isinf(lc[i]) || std::isinf(lg[i])) fg[i] = fc[i] = 0.0;
            }
            const int64_t rows = static_cast<int64_t>(lc.size());
            expect_close(Tensor::from_vector<double>(fg, {rows}, DType::F64),
                         Tensor::from_vector<double>(fc, {rows}, DType::F64), t, "lse");
          }
          Tensor dq = Tensor::empty(q.shape(), t), dk = dq.clone(), dv = dq.clone();
          Tensor dq_gpu = nan_gpu(q.shape(), t), dk_gpu = nan_gpu(q.shape(), t), dv_gpu = nan_gpu(q.shape(), t);
          ops::graph_attention_backward(score, q, k, v, cg.forward_ref(), cg.transposed_ref(), &kv, H, 0.4, o, dout,
                                        &lse, dq, dk, dv);
          ops::graph_attention_backward(score, on_gpu(q), on_gpu(k), on_gpu(v), gg.forward_ref(), gg.transposed_ref(),
                                        &kv_gpu, H, 0.4, on_gpu(o), on_gpu(dout), &lse_gpu, dq_gpu, dk_gpu, dv_gpu);
          expect_close(dq_gpu, dq, t, "dq");
          expect_close(dk_gpu, dk, t, "dk");
          expect_close(dv_gpu, dv, t, "dv");
        }
}
