// Core pieces: Philox known answers, dtype conversions, the caching allocator, errors with context,
// safetensors I/O (including corrupt files), bf16 compute against f32, the CPU thread count.
#include <gtest/gtest.h>

#include <omp.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "backend/cpu/backend.h"
#include "backend/ops.h"
#include "core/allocator.h"
#include "core/philox.h"
#include "core/safetensors.h"
#include "gradcheck.h"

using namespace dense;

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Known-answer vectors of Random123 (kat_vectors: philox4x32 10 rounds).
  const Philox4 zero = philox4x32_10_raw(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  const Philox4 ones = philox4x32_10_raw(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
  const Philox4 pi = philox4x32_10_raw(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(Philox, NormalFillHasUnitMomentsAndIsThreadIndependent) {
  Tensor t = Tensor::empty({200000}, DType::F64);
  ops::fill_normal(t, 0.0, 1.0, 9, 0);
  const auto v = t.to_vector<double>();
  double s = 0, s2 = 0;
  for (double x : v) s += x, s2 += x * x;
  EXPECT_NEAR(s / double(v.size()), 0.0, 0.01);
  EXPECT_NEAR(s2 / double(v.size()), 1.0, 0.01);
  // Element i depends only on (seed, offset, i): a slice filled alone matches.
  Tensor part = Tensor::empty({4}, DType::F64);
  ops::fill_normal(part, 0.0, 1.0, 9, 0);
  EXPECT_EQ(part.to_vector<double>(), std::vector<double>(v.begin(), v.begin() + 4));
}

TEST(CpuThreads, AnExplicitCountSurvivesTheBackendsConstruction) {
  // dense-train and dense-eval apply training.threads before the CPU backend's first use builds it.
  const int saved = cpu_threads();
  const int wanted = omp_get_num_procs() + 1;  // never the default count
  set_cpu_threads(wanted);
  { CpuBackend built_after_the_config; }
  EXPECT_EQ(cpu_threads(), wanted);
  EXPECT_EQ(omp_get_max_threads(), wanted);
  set_cpu_threads(saved);
}

TEST(DType, HalfConversionsRoundToNearestEven) {
  EXPECT_EQ(float(bf16(1.0f)), 1.0f);
  EXPECT_EQ(bf16(1.00390625f).bits, bf16(1.0f).bits);                // exactly half an ulp: ties to even (down)
  EXPECT_EQ(bf16(1.01171875f).bits, uint16_t(bf16(1.0f).bits + 2));  // 1.5 ulp: ties to even (up)
  EXPECT_EQ(float(f16(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(float(f16(70000.0f))));
  EXPECT_EQ(float(f16(5.960464477539063e-08f)), 5.960464477539063e-08f);  // smallest subnormal
  EXPECT_TRUE(std::isnan(float(bf16(std::nanf("")))));
  EXPECT_THROW(dtype_from_name("f128"), Error);
}

TEST(CachingAllocator, ReusesFreedBlocksAndTracksPeak) {
  int raw = 0;
  CachingAllocator a(
      [&](size_t n) {
        ++raw;
        return std::malloc(n);
      },
      [](void* p) { std::free(p); });
  void* p = a.allocate(1000);
  a.deallocate(p);
  void* q = a.allocate(900);  // same 1024-byte class: reused
  EXPECT_EQ(p, q);
  EXPECT_EQ(raw, 1);
  void* big = a.allocate(10 << 20);
  EXPECT_EQ(raw, 2);
  EXPECT_GE(a.stats().peak_bytes_in_use, size_t(10 << 20));
  a.deallocate(big);
  a.deallocate(q);
  a.release_cached();
  EXPECT_EQ(a.stats().bytes_cached, 0u);
  EXPECT_THROW(a.deallocate(reinterpret_cast<void*>(0x1234)), Error);
}

TEST(Error, ContextIsPrependedOutermostFirst) {
  try {
    with_context("loading checkpoint a.safetensors",
                 [] { with_context("tensor 'w'", [] { DENSE_FAIL("shape {} expected", "[2]"); }); });
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "loading checkpoint a.safetensors: tensor 'w': shape [2] expected");
  }
}

// A failed DENSE_CHECK shows users only its message; the condition and source line are for DENSE_DEBUG=1.
TEST(Error, CheckLocationOnlyUnderDenseDebug) {
  const char* saved = std::getenv("DENSE_DEBUG");
  const std::string saved_value = saved ? saved : "";
  auto message = [] {
    try {
      const int rows = 3;
      DENSE_CHECK(rows == 4, "table.tsv: {} rows, expected 4", rows);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ::unsetenv("DENSE_DEBUG");
  EXPECT_EQ(message(), "table.tsv: 3 rows, expected 4");
  ::setenv("DENSE_DEBUG", "0", 1);
  EXPECT_EQ(message(), "table.tsv: 3 rows, expected 4");
  ::setenv("DENSE_DEBUG", "1", 1);
  const std::string debug = message();
  EXPECT_EQ(debug.rfind("table.tsv: 3 rows, expected 4 [check 'rows == 4' failed at ", 0), 0u) << debug;
  EXPECT_NE(debug.find("core_test.cpp:"), std::string::npos) << debug;
  if (saved)
    ::setenv("DENSE_DEBUG", saved_value.c_str(), 1);
  else
    ::unsetenv("DENSE_DEBUG");
}

TEST(SafeTensors, RoundTripsAndRejectsCorruptFiles) {
  const std::string path = ::testing::TempDir() + "/roundtrip.safetensors";
  Tensor a = dense::testing::random_tensor({3, 4}, 1, 1.0, DType::F32);
  Tensor b = Tensor::from_vector<int64_t>({1, -2, 3}, {3}, DType::I64);
  Tensor h = a.to(DType::BF16);
  write_safetensors(path, {{"a", a}, {"b", b}, {"h", h}}, {{"format", "densetrain"}});
  const SafeTensors st = read_safetensors(path);
  EXPECT_EQ(st.metadata.at("format"), "densetrain");
  EXPECT_EQ(st.at("a").to_vector<float>(), a.to_vector<float>());
  EXPECT_EQ(st.at("b").to_vector<int64_t>(), b.to_vector<int64_t>());
  EXPECT_EQ(st.at("h").dtype(), DType::BF16);
  EXPECT_THROW(st.at("missing"), Error);

  // Truncations and garbage never crash: each gives a dense::Error naming the file.
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string bad = ::testing::TempDir() + "/bad.safetensors";
  for (size_t cut : {size_t(0), size_t(4), size_t(8), size_t(20), bytes.size() / 2, bytes.size() - 1}) {
    std::ofstream(bad, std::ios::binary) << bytes.substr(0, cut);
    try {
      read_safetensors(bad);
      ADD_FAILURE() << "a file cut at " << cut << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
  std::string flipped = bytes;
  flipped[12] = '#';  // break the JSON header
  std::ofstream(bad, std::ios::binary) << flipped;
  EXPECT_THROW(read_safetensors(bad), Error);
  std::remove(path.c_str());
  std::remove(bad.c_str());
}

TEST(Bf16Compute, MatmulAndNormsTrackF32) {
  const Tensor a = dense::testing::random_tensor({4, 37, 29}, 3, 1.0, DType::F32);
  const Tensor b = dense::testing::random_tensor({29, 23}, 4, 1.0, DType::F32);
  const Tensor ref = ops::matmul(a, false, b, false);
  for (DType t : {DType::BF16, DType::F16}) {
    const Tensor c = ops::matmul(a.to(t), false, b.to(t), false);
    EXPECT_LT(dense::testing::relative_error(c, ref), 1e-2) << dtype_name(t);
    Tensor y = Tensor::empty(a.shape(), t), stats = Tensor::empty({4 * 37, 2}, DType::F32);
    Tensor yr = Tensor::empty(a.shape(), DType::F32), sr = Tensor::empty({4 * 37, 2}, DType::F32);
    ops::rownorm_forward(RowNorm::MaxNorm, a.to(t), nullptr, nullptr, 1e-3, y, stats);
    ops::rownorm_forward(RowNorm::MaxNorm, a, nullptr, nullptr, 1e-3, yr, sr);
    EXPECT_LT(dense::testing::relative_error(y, yr), 1e-2) << dtype_name(t);
  }
}
