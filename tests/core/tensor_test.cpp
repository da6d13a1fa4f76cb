#include <gtest/gtest.h>

#include "backend/ops.h"
#include "core/philox.h"
#include "core/tensor.h"

using namespace dense;

TEST(Tensor, ViewsShareStorageAndCopyConverts) {
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}, DType::F32);
  Tensor col = t.select(1, 1);
  EXPECT_EQ(col.shape(), (Shape{2}));
  EXPECT_EQ(col.to_vector<float>(), (std::vector<float>{2, 5}));
  Tensor tt = t.transpose(0, 1).contiguous();
  EXPECT_EQ(tt.to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  Tensor h = t.to(DType::BF16).to(DType::F64);
  EXPECT_EQ(h.to_vector<double>(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_THROW(t.view({4, 2}), Error);
}

TEST(Tensor, MatmulMatchesNaive) {
  Tensor a = Tensor::empty({3, 5, 4}, DType::F64);
  Tensor b = Tensor::empty({4, 6}, DType::F64);
  ops::fill_normal(a, 0, 1, 1, 0);
  ops::fill_normal(b, 0, 1, 2, 0);
  Tensor c = ops::matmul(a, false, b, false);
  auto av = a.to_vector<double>(), bv = b.to_vector<double>(), cv = c.to_vector<double>();
  for (int bi = 0; bi < 3; ++bi)
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 6; ++j) {
        double s = 0;
        for (int k = 0; k < 4; ++k) s += av[bi * 20 + i * 4 + k] * bv[k * 6 + j];
        EXPECT_NEAR(cv[bi * 30 + i * 6 + j], s, 1e-12);
      }
}

TEST(Tensor, DropoutKeepsExactlyThePhiloxDraws) {
  // ops::dropout's definition: element i is kept, scaled by 1/(1-p), iff philox_keep(seed, offset, i, p); the
  // kernel serves four elements per Philox call, so lengths that are not a multiple of 4 and offsets matter.
  for (const int64_t n : {1, 3, 4, 5, 4099, 10007}) {
    for (const uint64_t offset : {0ull, 13ull}) {
      SCOPED_TRACE(n);
      std::vector<double> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[size_t(i)] = 0.5 + double(philox_uniform(3, 99, uint64_t(i)));
      const double p = 0.3;
      for (const DType dt : {DType::F32, DType::F64}) {
        const std::vector<double> y =
            ops::dropout(Tensor::from_vector(x, {n}, dt), p, 1234, offset).to_vector<double>();
        int64_t kept = 0;
        for (int64_t i = 0; i < n; ++i) {
          const bool keep = philox_keep(1234, offset, uint64_t(i), float(p));
          const double expect =
              keep ? (dt == DType::F32 ? double(float(x[size_t(i)]) * float(1.0 / 0.7)) : x[size_t(i)] / 0.7) : 0.0;
          ASSERT_NEAR(y[size_t(i)], expect, 1e-6 * expect) << i;
          ASSERT_EQ(y[size_t(i)] != 0.0, keep) << i;
          kept += keep;
        }
        if (n > 4000) EXPECT_NEAR(double(kept) / double(n), 0.7, 0.03);
      }
    }
  }
}
