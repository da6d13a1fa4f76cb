#pragma once
// A whole model against a PyTorch golden (tests/reference/make_goldens.py), shared by golden_parity_test and
// sparse_golden_test: the golden's weights loaded into the model (every parameter on both sides, same shapes),
// its batch run forward and backward, and outputs, loss and every gradient compared (1e-10 in f64, 1e-5 in f32).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "core/safetensors.h"
#include "gradcheck.h"
#include "models/model.h"

namespace dense::testing {

inline std::string golden_dir() {
  const char* env = std::getenv("DENSE_GOLDEN_DIR");
  return env ? env : DENSE_GOLDEN_DIR_DEFAULT;
}

inline void check_model_against_golden(models::Model& model, const SafeTensors& golden, DType dtype) {
  auto& params = model.params();
  int64_t golden_params = 0;
  for (const auto& [tname, t] : golden.tensors)
    if (tname.rfind("param.", 0) == 0) {
      ++golden_params;
      nn::Parameter* p = params.find(tname.substr(6));
      ASSERT_NE(p, nullptr) << "the reference has parameter " << tname.substr(6) << " which the model lacks";
      ASSERT_EQ(p->shape, t.shape()) << tname;
      p->value.copy_(t);
    }
  ASSERT_EQ(golden_params, int64_t(params.all().size())) << "the model has parameters the reference lacks";

  models::Batch batch;
  batch.input_ids = golden.at("input.input_ids");
  batch.attention_mask = golden.at("input.attention_mask");
  batch.class_labels = golden.at("input.class_labels");
  // Optional parts: MLM labels (absent for two-document cases), segments, the second document.
  if (const Tensor* t = golden.find("input.mlm_labels")) batch.mlm_labels = *t;
  if (const Tensor* t = golden.find("input.token_type_ids")) batch.token_type_ids = *t;
  if (const Tensor* t = golden.find("input.input_ids2")) batch.input_ids2 = *t;
  if (const Tensor* t = golden.find("input.attention_mask2")) batch.attention_mask2 = *t;
  nn::Context ctx;
  params.zero_grad();
  const models::Outputs out = model.forward(batch, ctx);
  model.backward(1.0);

  const double tol = dtype == DType::F64 ? 1e-10 : 1e-5;
  EXPECT_LT(relative_error(out.sequence_output, golden.at("out.sequence_output")), tol) << "sequence_output";
  if (const Tensor* t = golden.find("out.mlm_logits"))
    EXPECT_LT(relative_error(out.mlm_logits, *t), tol) << "mlm_logits";
  else
    EXPECT_FALSE(out.mlm_logits.defined());
  EXPECT_LT(relative_error(out.pooled, golden.at("out.pooled")), tol) << "pooled";
  EXPECT_LT(relative_error(out.class_logits, golden.at("out.class_logits")), tol) << "class_logits";
  EXPECT_NEAR(out.loss, golden.at("out.loss").item(), tol * std::abs(golden.at("out.loss").item())) << "loss";
  for (auto& p : params.all()) {
    const Tensor& g = golden.at("grad." + p.name);
    const std::string suffix = "attention.key.bias";
    if (p.name.size() > suffix.size() && p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      // The softmax cancels a shift shared by a whole row of scores (restricted to the row's keys as well), so
      // the key bias's true gradient is zero and both sides hold only roundoff: compare with the scale of the
      // key weight's gradient.
      const std::string weight = p.name.substr(0, p.name.size() - 4) + "weight";
      EXPECT_LT(std::sqrt(ops::sum(ops::mul(p.grad, p.grad))),
                tol * std::sqrt(ops::sum(ops::mul(params.at(weight).grad, params.at(weight).grad))))
          << "gradient of " << p.name << " should vanish";
      continue;
    }
    EXPECT_LT(relative_error(p.grad, g), tol) << "gradient of " << p.name;
  }
}

}  // namespace dense::testing
