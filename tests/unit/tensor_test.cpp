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
