// The f16 dynamic loss scaler (docs/model.md §4.3): the engine's schedule of halving and doubling, step by step.
#include <gtest/gtest.h>

#include "test_files.h"
#include "train/loss_scaler.h"

using namespace dense;
using namespace dense::train;

namespace {

TrainingConfig f16_config() {
  TrainingConfig c;
  c.precision = "f16";
  c.loss_scale_init = 65536.0;
  c.loss_scale_window = 3;
  c.loss_scale_hysteresis = 2;
  c.loss_scale_min = 1024.0;
  return c;
}

}  // namespace

TEST(LossScaler, DisabledOutsideF16) {
  for (const char* p : {"f32", "bf16"}) {
    TrainingConfig c = f16_config();
    c.precision = p;
    LossScaler s(c);
    EXPECT_FALSE(s.enabled());
    s.update(true);
    s.update(false);
    EXPECT_EQ(s.scale(), 1.0) << p;
  }
}

TEST(LossScaler, HysteresisHalvesWindowDoublesMinimumHolds) {
  LossScaler s(f16_config());
  ASSERT_TRUE(s.enabled());
  EXPECT_EQ(s.scale(), 65536.0);
  s.update(true);  // first overflow: tolerated (hysteresis 2)
  EXPECT_EQ(s.scale(), 65536.0);
  s.update(true);  // second: halves
  EXPECT_EQ(s.scale(), 32768.0);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.scale(), 32768.0);
  s.update(false);  // third clean step in a row: doubles
  EXPECT_EQ(s.scale(), 65536.0);
  // An overflow resets the clean-step count.
  s.update(false);
  s.update(false);
  s.update(true);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.scale(), 65536.0);
  s.update(false);
  EXPECT_EQ(s.scale(), 131072.0);
  // Down to the minimum and not below.
  for (int i = 0; i < 40; ++i) s.update(true);
  EXPECT_EQ(s.scale(), 1024.0);
  EXPECT_TRUE(s.at_minimum());
}

TEST(LossScaler, StateRoundTripsAndBadStateIsNamed) {
  LossScaler a(f16_config());
  a.update(true);
  a.update(false);
  LossScaler b(f16_config());
  b.load_json(a.to_json(), "ckpt/trainer_state.json");
  EXPECT_EQ(b.to_json(), a.to_json());
  // The next steps agree too (hysteresis and clean-step counters came along).
  for (bool o : {true, false, false, false, true}) {
    a.update(o);
    b.update(o);
    EXPECT_EQ(a.scale(), b.scale());
  }
  const std::string e = dense::testing::error_of([&] {
    b.load_json({{"scale", -1.0}, {"clean_steps", 0}, {"hysteresis_left", 1}}, "x.json");
  });
  EXPECT_TRUE(dense::testing::contains(e, "x.json")) << e;
  const std::string e2 = dense::testing::error_of([&] { b.load_json({{"scale", 8.0}}, "y.json"); });
  EXPECT_TRUE(dense::testing::contains(e2, "clean_steps")) << e2;
}

TEST(LossScaler, InvalidConfigNamesTheKey) {
  TrainingConfig c = f16_config();
  c.loss_scale_min = 1e9;  // above the initial scale
  EXPECT_TRUE(dense::testing::contains(dense::testing::error_of([&] { LossScaler s(c); }), "training.loss_scale_min"));
}
