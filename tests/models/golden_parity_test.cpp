// Parity with the independent PyTorch reference (tests/reference/): the goldens hold inputs, weights,
// outputs and every parameter gradient computed by torch in float64; the C++ models load the same weights
// and must reproduce them (f64: 1e-10, f32: 1e-5, norm-wise relative per tensor).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/safetensors.h"
#include "golden_model.h"
#include "gradcheck.h"
#include "models/model.h"

using namespace dense;

namespace {

using dense::testing::golden_dir;

const std::vector<std::string> kCases = {"danet_global",    "danet_global_quadratic", "danet_local_l_sl_g",
                                         "danet_rope_qk",   "danet_cosine_qkv",       "danet_swiglu",
                                         "danet_causal_sw", "danet_matching",         "bert"};

struct Case {
  SafeTensors golden;
  models::ModelConfig config;
};

Case load_case(const std::string& name) {
  Case c;
  c.golden = read_safetensors(golden_dir() + "/" + name + ".safetensors");
  c.config = models::ModelConfig::from_json(nlohmann::json::parse(c.golden.metadata.at("config")));
  return c;
}

class GoldenParity : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(GoldenParity, OutputsAndGradientsMatchReference) {
  const auto& [name, dtype] = GetParam();
  const Case c = load_case(name);
  auto model = models::build_model(c.config, dtype, Device::cpu(), 7);
  dense::testing::check_model_against_golden(*model, c.golden, dtype);
}

std::string case_name(const ::testing::TestParamInfo<GoldenParity::ParamType>& info) {
  return std::get<0>(info.param) + "_" + std::string(dtype_name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Reference, GoldenParity,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(DType::F64, DType::F32)),
                         case_name);

TEST(GoldenParity, EveryReferenceCaseIsTested) {
  std::ifstream in(golden_dir() + "/cases.txt");
  ASSERT_TRUE(in.good()) << "missing " << golden_dir() << "/cases.txt (run tests/reference/make_goldens.py)";
  std::vector<std::string> listed;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) listed.push_back(line);
  EXPECT_EQ(listed, kCases);
}

}  // namespace
