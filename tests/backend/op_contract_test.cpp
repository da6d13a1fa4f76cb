// The ops contract (backend/ops.h): every op checks dtypes, shapes and devices itself, once, and a wrong call is
// a dense::Error whose message starts with the op's name. For every op this feeds a valid call (which must
// pass, so that each wrong call below has exactly one thing wrong), then a wrong dtype, a wrong shape and,
// where the op takes several tensors, one tensor that does not match the others: of another dtype on the
// CPU-only build, on another device where a GPU is present. The backends do not re-check any of this, so a
// check missing here would reach a kernel that reads memory as the wrong type or size.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/ops.h"
#include "core/error.h"
#include "core/tensor.h"

using namespace dense;

namespace {

using Call = std::function<void()>;
// Makes the odd one out of a pair: the same values on another device, or in another dtype.
using Odd = std::function<Tensor(const Tensor&)>;

struct OpCase {
  std::string op;  // the name the error message must start with: the function's name in ops.h
  Call valid;
  std::vector<std::pair<std::string, Call>> wrong;  // what is wrong, and the call
};

void expect_rejected(const std::string& op, const std::string& what, const Call& call) {
  try {
    call();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(op + ": ", 0), 0u)
        << op << " with " << what << ": the message does not start with \"" << op << ": \": " << msg;
    return;
  }
  ADD_FAILURE() << op << " accepted " << what;
}

// Tensors of the cases: f32 (the valid floating dtype), i32 (a wrong one for floating inputs), i64 indices.
struct Make {
  Device device;
  Tensor f(const Shape& s) const { return Tensor::zeros(s, DType::F32, device); }
  Tensor i32(const Shape& s) const { return Tensor::zeros(s, DType::I32, device); }
  Tensor ids(const Shape& s) const { return Tensor::zeros(s, DType::I64, device); }
  // A non-contiguous [rows, cols] view (a transposed [cols, rows] tensor).
  Tensor strided(int64_t rows, int64_t cols) const { return f({cols, rows}).transpose(0, 1); }
};

GraphRef band_graph(int64_t n) {
  GraphRef g;
  g.rows = g.keys = n;
  g.band_lo = -1;
  g.band_hi = 1;
  return g;
}

Tensor optimizer_blocks(Device d) { return Tensor::from_vector<int64_t>({0, 8, 0, 1}, {1, 4}, DType::I64, d); }

// Every op of ops.h. `odd` makes a float tensor that does not match its partners; `odd_index`, when set, does the
// same for an index or statistics tensor (a device change: another dtype there is already a dtype case).
std::vector<OpCase> op_cases(const Make& m, const Odd& odd, const Odd& odd_index) {
  std::vector<OpCase> c;
  auto index_pair = [&](std::vector<std::pair<std::string, Call>>& wrong, const std::string& what, Call call) {
    if (odd_index) wrong.emplace_back(what, std::move(call));
  };

  // ---- GEMM ----
  c.push_back({"matmul",
               [=] {
                 Tensor out = m.f({2, 4});
                 ops::matmul(m.f({2, 3}), false, m.f({3, 4}), false, out);
               },
               {{"i32 operands",
                 [=] {
                   Tensor out = m.i32({2, 4});
                   ops::matmul(m.i32({2, 3}), false, m.i32({3, 4}), false, out);
                 }},
                {"inner dims 3 and 5",
                 [=] {
                   Tensor out = m.f({2, 4});
                   ops::matmul(m.f({2, 3}), false, m.f({5, 4}), false, out);
                 }},
                {"a 1-D operand",
                 [=] {
                   (void)ops::matmul(m.f({3}), false, m.f({3, 4}), false);
                 }},
                {"b unlike a",
                 [=] {
                   Tensor out = m.f({2, 4});
                   ops::matmul(m.f({2, 3}), false, odd(m.f({3, 4})), false, out);
                 }},
                {"out unlike a",
                 [=] {
                   Tensor out = odd(m.f({2, 4}));
                   ops::matmul(m.f({2, 3}), false, m.f({3, 4}), false, out);
                 }},
                {"i32 operands (allocating form)",
                 [=] {
                   (void)ops::matmul(m.i32({2, 3}), false, m.i32({3, 4}), false);
                 }},
                {"b unlike a (allocating form)", [=] {
                   (void)ops::matmul(m.f({2, 3}), false, odd(m.f({3, 4})), false);
                 }}}});
  c.push_back({"linear",
               [=] {
                 const Tensor b = m.f({4});
                 (void)ops::linear(m.f({2, 3}), m.f({4, 3}), &b);
               },
               {{"i32 input and weight",
                 [=] {
                   (void)ops::linear(m.i32({2, 3}), m.i32({4, 3}), nullptr);
                 }},
                {"weight [4, 5] for input width 3",
                 [=] {
                   (void)ops::linear(m.f({2, 3}), m.f({4, 5}), nullptr);
                 }},
                {"bias of 3 for 4 outputs",
                 [=] {
                   const Tensor b = m.f({3});
                   (void)ops::linear(m.f({2, 3}), m.f({4, 3}), &b);
                 }},
                {"weight unlike input",
                 [=] {
                   (void)ops::linear(m.f({2, 3}), odd(m.f({4, 3})), nullptr);
                 }},
                {"bias unlike input", [=] {
                   const Tensor b = odd(m.f({4}));
                   (void)ops::linear(m.f({2, 3}), m.f({4, 3}), &b);
                 }}}});
  c.push_back({"linear_backward",
               [=] {
                 Tensor dx = m.f({2, 3}), dw = m.f({4, 3}), db = m.f({4});
                 ops::linear_backward(m.f({2, 3}), m.f({4, 3}), m.f({2, 4}), &dx, 0.0, &dw, &db);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor dx = m.i32({2, 3}), dw = m.i32({4, 3});
                   ops::linear_backward(m.i32({2, 3}), m.i32({4, 3}), m.i32({2, 4}), &dx, 0.0, &dw, nullptr);
                 }},
                {"dy [2, 5] for 4 outputs",
                 [=] {
                   Tensor dw = m.f({4, 3});
                   ops::linear_backward(m.f({2, 3}), m.f({4, 3}), m.f({2, 5}), nullptr, 0.0, &dw, nullptr);
                 }},
                {"dw unlike dy",
                 [=] {
                   Tensor dw = odd(m.f({4, 3}));
                   ops::linear_backward(m.f({2, 3}), m.f({4, 3}), m.f({2, 4}), nullptr, 0.0, &dw, nullptr);
                 }},
                {"dx unlike dy", [=] {
                   Tensor dx = odd(m.f({2, 3}));
                   ops::linear_backward(m.f({2, 3}), m.f({4, 3}), m.f({2, 4}), &dx, 0.0, nullptr, nullptr);
                 }}}});

  // ---- element-wise ----
  c.push_back({"binary",
               [=] {
                 Tensor out = m.f({2, 3});
                 ops::binary(BinaryOp::Add, Broadcast::Row, 1.0, m.f({2, 3}), m.f({3}), 0.0, out);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor out = m.i32({2, 3});
                   ops::binary(BinaryOp::Add, Broadcast::Row, 1.0, m.i32({2, 3}), m.i32({3}), 0.0, out);
                 }},
                {"a row of 4 broadcast over 3 columns",
                 [=] {
                   Tensor out = m.f({2, 3});
                   ops::binary(BinaryOp::Add, Broadcast::Row, 1.0, m.f({2, 3}), m.f({4}), 0.0, out);
                 }},
                {"b unlike a",
                 [=] {
                   Tensor out = m.f({2, 3});
                   ops::binary(BinaryOp::Add, Broadcast::Row, 1.0, m.f({2, 3}), odd(m.f({3})), 0.0, out);
                 }},
                {"out unlike a", [=] {
                   Tensor out = odd(m.f({2, 3}));
                   ops::binary(BinaryOp::Add, Broadcast::Row, 1.0, m.f({2, 3}), m.f({3}), 0.0, out);
                 }}}});
  for (const std::string op : {"add", "mul"}) {
    auto fn = op == "add" ? &ops::add : &ops::mul;
    c.push_back({op,
                 [=] {
                   (void)fn(m.f({2, 3}), m.f({2, 3}));
                 },
                 {{"i32 tensors",
                   [=] {
                     (void)fn(m.i32({2, 3}), m.i32({2, 3}));
                   }},
                  {"b [2, 4] for a [2, 3]",
                   [=] {
                     (void)fn(m.f({2, 3}), m.f({2, 4}));
                   }},
                  {"b unlike a", [=] {
                     (void)fn(m.f({2, 3}), odd(m.f({2, 3})));
                   }}}});
  }
  c.push_back({"axpy",
               [=] {
                 Tensor y = m.f({6});
                 ops::axpy(2.0, m.f({2, 3}), y);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor y = m.i32({6});
                   ops::axpy(2.0, m.i32({2, 3}), y);
                 }},
                {"y of 7 for x of 6",
                 [=] {
                   Tensor y = m.f({7});
                   ops::axpy(2.0, m.f({2, 3}), y);
                 }},
                {"y unlike x", [=] {
                   Tensor y = odd(m.f({6}));
                   ops::axpy(2.0, m.f({2, 3}), y);
                 }}}});
  c.push_back({"accumulate",
               [=] {
                 Tensor dst = m.f({6});
                 ops::accumulate(m.f({2, 3}), 1.0, dst);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor dst = m.i32({6});
                   ops::accumulate(m.i32({2, 3}), 1.0, dst);
                 }},
                {"dst of 7 for src of 6",
                 [=] {
                   Tensor dst = m.f({7});
                   ops::accumulate(m.f({2, 3}), 1.0, dst);
                 }},
                {"dst unlike src",
                 [=] {
                   Tensor dst = odd(m.f({6}));
                   ops::accumulate(m.f({2, 3}), 1.0, dst);
                 }},
                {"dst unlike src, overwriting", [=] {
                   Tensor dst = odd(m.f({6}));
                   ops::accumulate(m.f({2, 3}), 0.0, dst);
                 }}}});
  c.push_back({"scale",
               [=] {
                 (void)ops::scale(m.f({2, 3}), 2.0);
               },
               {{"an i32 tensor",
                 [=] {
                   (void)ops::scale(m.i32({2, 3}), 2.0);
                 }},
                {"a strided tensor", [=] { (void)ops::scale(m.strided(2, 3), 2.0); }}}});
  c.push_back({"scale_rows",
               [=] {
                 (void)ops::scale_rows(m.f({2, 3}), m.f({2}));
               },
               {{"i32 tensors",
                 [=] {
                   (void)ops::scale_rows(m.i32({2, 3}), m.i32({2}));
                 }},
                {"3 factors for 2 rows",
                 [=] {
                   (void)ops::scale_rows(m.f({2, 3}), m.f({3}));
                 }},
                {"factors unlike x", [=] {
                   (void)ops::scale_rows(m.f({2, 3}), odd(m.f({2})));
                 }}}});
  c.push_back({"activation",
               [=] {
                 (void)ops::activation(Activation::Gelu, 0.0, m.f({2, 3}));
               },
               {{"an i32 tensor",
                 [=] {
                   (void)ops::activation(Activation::Gelu, 0.0, m.i32({2, 3}));
                 }},
                {"a strided tensor", [=] { (void)ops::activation(Activation::Gelu, 0.0, m.strided(2, 3)); }}}});
  c.push_back({"activation_backward",
               [=] {
                 Tensor dx = m.f({2, 3});
                 ops::activation_backward(Activation::Gelu, 0.0, m.f({2, 3}), m.f({2, 3}), 0.0, dx);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor dx = m.i32({2, 3});
                   ops::activation_backward(Activation::Gelu, 0.0, m.i32({2, 3}), m.i32({2, 3}), 0.0, dx);
                 }},
                {"dy of 5 for x of 6",
                 [=] {
                   Tensor dx = m.f({2, 3});
                   ops::activation_backward(Activation::Gelu, 0.0, m.f({2, 3}), m.f({5}), 0.0, dx);
                 }},
                {"dy unlike x", [=] {
                   Tensor dx = m.f({2, 3});
                   ops::activation_backward(Activation::Gelu, 0.0, m.f({2, 3}), odd(m.f({2, 3})), 0.0, dx);
                 }}}});
  c.push_back({"dropout",
               [=] {
                 (void)ops::dropout(m.f({2, 3}), 0.1, 1, 0);
               },
               {{"an i32 tensor",
                 [=] {
                   (void)ops::dropout(m.i32({2, 3}), 0.1, 1, 0);
                 }},
                {"a strided tensor", [=] { (void)ops::dropout(m.strided(2, 3), 0.1, 1, 0); }},
                {"p = 1", [=] {
                   (void)ops::dropout(m.f({2, 3}), 1.0, 1, 0);
                 }}}});
  c.push_back({"sum_rows",
               [=] {
                 Tensor out = m.f({2, 4});
                 ops::sum_rows(m.f({2, 3, 4}), 2, 3, 1.0, 0.0, out);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor out = m.i32({2, 4});
                   ops::sum_rows(m.i32({2, 3, 4}), 2, 3, 1.0, 0.0, out);
                 }},
                {"out of 10 for [2, 4]",
                 [=] {
                   Tensor out = m.f({10});
                   ops::sum_rows(m.f({2, 3, 4}), 2, 3, 1.0, 0.0, out);
                 }},
                {"out unlike x", [=] {
                   Tensor out = odd(m.f({2, 4}));
                   ops::sum_rows(m.f({2, 3, 4}), 2, 3, 1.0, 0.0, out);
                 }}}});
  c.push_back(
      {"sum_squares", [=] { (void)ops::sum_squares(m.strided(2, 3)); }, {{"an i32 tensor", [=] {
                                                                            (void)ops::sum_squares(m.i32({2, 3}));
                                                                          }}}});
  c.push_back({"scale_",
               [=] {
                 Tensor x = m.f({2, 3});
                 ops::scale_(x, 0.5);
               },
               {{"an i32 tensor",
                 [=] {
                   Tensor x = m.i32({2, 3});
                   ops::scale_(x, 0.5);
                 }},
                {"a strided tensor", [=] {
                   Tensor x = m.strided(2, 3);
                   ops::scale_(x, 0.5);
                 }}}});

  // ---- optimizers ----
  c.push_back({"optimizer_step",
               [=] {
                 OptimizerStep s;
                 const Tensor blocks = optimizer_blocks(m.device);
                 s.blocks = &blocks;
                 Tensor p = m.f({8}), mom = m.f({8}), var = m.f({8});
                 ops::optimizer_step(s, p, m.f({8}), mom, var);
               },
               {{"bf16 master values",
                 [=] {
                   OptimizerStep s;
                   const Tensor blocks = optimizer_blocks(m.device);
                   s.blocks = &blocks;
                   Tensor p = m.f({8}).to(DType::BF16), mom = p.clone(), var = p.clone();
                   ops::optimizer_step(s, p, p, mom, var);
                 }},
                {"f32 blocks",
                 [=] {
                   OptimizerStep s;
                   const Tensor blocks = optimizer_blocks(m.device).to(DType::F32);
                   s.blocks = &blocks;
                   Tensor p = m.f({8}), mom = m.f({8}), var = m.f({8});
                   ops::optimizer_step(s, p, m.f({8}), mom, var);
                 }},
                {"grads of 7 for 8 values",
                 [=] {
                   OptimizerStep s;
                   const Tensor blocks = optimizer_blocks(m.device);
                   s.blocks = &blocks;
                   Tensor p = m.f({8}), mom = m.f({8}), var = m.f({8});
                   ops::optimizer_step(s, p, m.f({7}), mom, var);
                 }},
                {"grads unlike values", [=] {
                   OptimizerStep s;
                   const Tensor blocks = optimizer_blocks(m.device);
                   s.blocks = &blocks;
                   Tensor p = m.f({8}), mom = m.f({8}), var = m.f({8});
                   ops::optimizer_step(s, p, odd(m.f({8})), mom, var);
                 }}}});
  index_pair(c.back().wrong, "blocks unlike values", [=] {
    OptimizerStep s;
    const Tensor blocks = odd_index(optimizer_blocks(m.device));
    s.blocks = &blocks;
    Tensor p = m.f({8}), mom = m.f({8}), var = m.f({8});
    ops::optimizer_step(s, p, m.f({8}), mom, var);
  });

  // ---- normalisations ----
  const Shape stats_shape{2, 2};
  c.push_back({"rownorm_forward",
               [=] {
                 Tensor y = m.f({2, 4}), stats = m.f(stats_shape);
                 const Tensor g = m.f({4});
                 ops::rownorm_forward(RowNorm::ScaledMaxNorm, m.f({2, 4}), &g, nullptr, 1e-3, y, stats);
               },
               {{"i32 input",
                 [=] {
                   Tensor y = m.i32({2, 4}), stats = m.f(stats_shape);
                   ops::rownorm_forward(RowNorm::MaxNorm, m.i32({2, 4}), nullptr, nullptr, 1e-3, y, stats);
                 }},
                {"f64 stats for f32 input",
                 [=] {
                   Tensor y = m.f({2, 4}), stats = m.f(stats_shape).to(DType::F64);
                   ops::rownorm_forward(RowNorm::MaxNorm, m.f({2, 4}), nullptr, nullptr, 1e-3, y, stats);
                 }},
                {"y [3, 4] for x [2, 4]",
                 [=] {
                   Tensor y = m.f({3, 4}), stats = m.f(stats_shape);
                   ops::rownorm_forward(RowNorm::MaxNorm, m.f({2, 4}), nullptr, nullptr, 1e-3, y, stats);
                 }},
                {"gain unlike x",
                 [=] {
                   Tensor y = m.f({2, 4}), stats = m.f(stats_shape);
                   const Tensor g = odd(m.f({4}));
                   ops::rownorm_forward(RowNorm::ScaledMaxNorm, m.f({2, 4}), &g, nullptr, 1e-3, y, stats);
                 }},
                {"y unlike x", [=] {
                   Tensor y = odd(m.f({2, 4})), stats = m.f(stats_shape);
                   ops::rownorm_forward(RowNorm::MaxNorm, m.f({2, 4}), nullptr, nullptr, 1e-3, y, stats);
                 }}}});
  index_pair(c.back().wrong, "stats unlike x", [=] {
    Tensor y = m.f({2, 4}), stats = odd_index(m.f(stats_shape));
    ops::rownorm_forward(RowNorm::MaxNorm, m.f({2, 4}), nullptr, nullptr, 1e-3, y, stats);
  });
  c.push_back({"rownorm_backward",
               [=] {
                 Tensor dx = m.f({2, 4}), dg = m.f({4});
                 const Tensor g = m.f({4});
                 ops::rownorm_backward(RowNorm::ScaledMaxNorm, m.f({2, 4}), &g, m.f(stats_shape), m.f({2, 4}), 0.0, dx,
                                       &dg, nullptr);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor dx = m.i32({2, 4});
                   ops::rownorm_backward(RowNorm::MaxNorm, m.i32({2, 4}), nullptr, m.f(stats_shape), m.i32({2, 4}), 0.0,
                                         dx, nullptr, nullptr);
                 }},
                {"dy [3, 4] for x [2, 4]",
                 [=] {
                   Tensor dx = m.f({2, 4});
                   ops::rownorm_backward(RowNorm::MaxNorm, m.f({2, 4}), nullptr, m.f(stats_shape), m.f({3, 4}), 0.0, dx,
                                         nullptr, nullptr);
                 }},
                {"dy unlike x",
                 [=] {
                   Tensor dx = m.f({2, 4});
                   ops::rownorm_backward(RowNorm::MaxNorm, m.f({2, 4}), nullptr, m.f(stats_shape), odd(m.f({2, 4})),
                                         0.0, dx, nullptr, nullptr);
                 }},
                {"dgain unlike x", [=] {
                   Tensor dx = m.f({2, 4}), dg = odd(m.f({4}));
                   const Tensor g = m.f({4});
                   ops::rownorm_backward(RowNorm::ScaledMaxNorm, m.f({2, 4}), &g, m.f(stats_shape), m.f({2, 4}), 0.0,
                                         dx, &dg, nullptr);
                 }}}});

  // ---- gathers and positions ----
  c.push_back({"gather_rows",
               [=] {
                 Tensor out = m.f({4, 3});
                 ops::gather_rows(m.f({5, 3}), m.ids({4}), 0.0, out);
               },
               {{"f32 ids",
                 [=] {
                   Tensor out = m.f({4, 3});
                   ops::gather_rows(m.f({5, 3}), m.f({4}), 0.0, out);
                 }},
                {"an i32 table",
                 [=] {
                   Tensor out = m.i32({4, 3});
                   ops::gather_rows(m.i32({5, 3}), m.ids({4}), 0.0, out);
                 }},
                {"out [4, 2] for a table of width 3",
                 [=] {
                   Tensor out = m.f({4, 2});
                   ops::gather_rows(m.f({5, 3}), m.ids({4}), 0.0, out);
                 }},
                {"out unlike the table",
                 [=] {
                   Tensor out = odd(m.f({4, 3}));
                   ops::gather_rows(m.f({5, 3}), m.ids({4}), 0.0, out);
                 }},
                {"f32 ids (allocating form)",
                 [=] {
                   (void)ops::gather_rows(m.f({5, 3}), m.f({4}));
                 }},
                {"a 1-D table (allocating form)", [=] { (void)ops::gather_rows(m.f({5}), m.ids({4})); }}}});
  index_pair(c.back().wrong, "ids unlike the table", [=] {
    (void)ops::gather_rows(m.f({5, 3}), odd_index(m.ids({4})));
  });
  c.push_back({"scatter_add_rows",
               [=] {
                 Tensor table = m.f({5, 3});
                 ops::scatter_add_rows(m.f({4, 3}), m.ids({4}), table);
               },
               {{"f32 ids",
                 [=] {
                   Tensor table = m.f({5, 3});
                   ops::scatter_add_rows(m.f({4, 3}), m.f({4}), table);
                 }},
                {"src [4, 2] for a table of width 3",
                 [=] {
                   Tensor table = m.f({5, 3});
                   ops::scatter_add_rows(m.f({4, 2}), m.ids({4}), table);
                 }},
                {"src unlike the table", [=] {
                   Tensor table = m.f({5, 3});
                   ops::scatter_add_rows(odd(m.f({4, 3})), m.ids({4}), table);
                 }}}});
  index_pair(c.back().wrong, "ids unlike the table", [=] {
    Tensor table = m.f({5, 3});
    ops::scatter_add_rows(m.f({4, 3}), odd_index(m.ids({4})), table);
  });
  c.push_back({"positional_scale",
               [=] {
                 (void)ops::positional_scale(m.f({4, 3}), m.f({5, 3}), m.ids({2}));
               },
               {{"f32 positions",
                 [=] {
                   (void)ops::positional_scale(m.f({4, 3}), m.f({5, 3}), m.f({2}));
                 }},
                {"an i32 input",
                 [=] {
                   (void)ops::positional_scale(m.i32({4, 3}), m.f({5, 3}), m.ids({2}));
                 }},
                {"a table of width 2 for x of width 3",
                 [=] {
                   (void)ops::positional_scale(m.f({4, 3}), m.f({5, 2}), m.ids({2}));
                 }},
                {"3 positions for 4 rows",
                 [=] {
                   (void)ops::positional_scale(m.f({4, 3}), m.f({5, 3}), m.ids({3}));
                 }},
                {"the table unlike x", [=] {
                   (void)ops::positional_scale(m.f({4, 3}), odd(m.f({5, 3})), m.ids({2}));
                 }}}});
  index_pair(c.back().wrong, "positions unlike x", [=] {
    (void)ops::positional_scale(m.f({4, 3}), m.f({5, 3}), odd_index(m.ids({2})));
  });
  c.push_back({"rope",
               [=] {
                 (void)ops::rope(m.f({4, 4}), m.f({5, 4}), m.f({5, 4}), m.ids({2}), false);
               },
               {{"f32 positions",
                 [=] {
                   (void)ops::rope(m.f({4, 4}), m.f({5, 4}), m.f({5, 4}), m.f({2}), false);
                 }},
                {"an i32 input",
                 [=] {
                   (void)ops::rope(m.i32({4, 4}), m.f({5, 4}), m.f({5, 4}), m.ids({2}), false);
                 }},
                {"an odd width",
                 [=] {
                   (void)ops::rope(m.f({4, 3}), m.f({5, 3}), m.f({5, 3}), m.ids({2}), false);
                 }},
                {"a cache of width 2 for x of width 4",
                 [=] {
                   (void)ops::rope(m.f({4, 4}), m.f({5, 2}), m.f({5, 2}), m.ids({2}), false);
                 }},
                {"sin unlike x", [=] {
                   (void)ops::rope(m.f({4, 4}), m.f({5, 4}), odd(m.f({5, 4})), m.ids({2}), false);
                 }}}});
  index_pair(c.back().wrong, "positions unlike x", [=] {
    (void)ops::rope(m.f({4, 4}), m.f({5, 4}), m.f({5, 4}), odd_index(m.ids({2})), false);
  });
  c.push_back({"band_mask",
               [=] {
                 Tensor s = m.f({2, 3, 3});
                 ops::band_mask(s, 0, 1);
               },
               {{"an i32 tensor",
                 [=] {
                   Tensor s = m.i32({2, 3, 3});
                   ops::band_mask(s, 0, 1);
                 }},
                {"a 1-D tensor", [=] {
                   Tensor s = m.f({3});
                   ops::band_mask(s, 0, 1);
                 }}}});

  // ---- softmax and losses ----
  c.push_back({"softmax_forward",
               [=] {
                 Tensor p = m.f({2, 3, 4});
                 const Tensor kv = m.f({1, 4});
                 ops::softmax_forward(m.f({2, 3, 4}), 1.0, &kv, 2, p);
               },
               {{"i32 scores",
                 [=] {
                   Tensor p = m.i32({2, 3, 4});
                   ops::softmax_forward(m.i32({2, 3, 4}), 1.0, nullptr, 1, p);
                 }},
                {"p [2, 3, 5] for s [2, 3, 4]",
                 [=] {
                   Tensor p = m.f({2, 3, 5});
                   ops::softmax_forward(m.f({2, 3, 4}), 1.0, nullptr, 1, p);
                 }},
                {"a key mask of 5 for 4 keys",
                 [=] {
                   Tensor p = m.f({2, 3, 4});
                   const Tensor kv = m.f({1, 5});
                   ops::softmax_forward(m.f({2, 3, 4}), 1.0, &kv, 2, p);
                 }},
                {"p unlike s",
                 [=] {
                   Tensor p = odd(m.f({2, 3, 4}));
                   ops::softmax_forward(m.f({2, 3, 4}), 1.0, nullptr, 1, p);
                 }},
                {"the key mask unlike s", [=] {
                   Tensor p = m.f({2, 3, 4});
                   const Tensor kv = odd(m.f({1, 4}));
                   ops::softmax_forward(m.f({2, 3, 4}), 1.0, &kv, 2, p);
                 }}}});
  c.push_back({"softmax_backward",
               [=] {
                 Tensor ds = m.f({2, 3, 4});
                 ops::softmax_backward(m.f({2, 3, 4}), m.f({2, 3, 4}), 1.0, ds);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor ds = m.i32({2, 3, 4});
                   ops::softmax_backward(m.i32({2, 3, 4}), m.i32({2, 3, 4}), 1.0, ds);
                 }},
                {"dp [2, 3, 5] for p [2, 3, 4]",
                 [=] {
                   Tensor ds = m.f({2, 3, 4});
                   ops::softmax_backward(m.f({2, 3, 4}), m.f({2, 3, 5}), 1.0, ds);
                 }},
                {"dp unlike p", [=] {
                   Tensor ds = m.f({2, 3, 4});
                   ops::softmax_backward(m.f({2, 3, 4}), odd(m.f({2, 3, 4})), 1.0, ds);
                 }}}});
  c.push_back({"cross_entropy_forward",
               [=] {
                 Tensor loss = m.f({3}), lse = m.f({3});
                 ops::cross_entropy_forward(m.f({3, 5}), m.ids({3}), loss, lse);
               },
               {{"i32 labels",
                 [=] {
                   Tensor loss = m.f({3}), lse = m.f({3});
                   ops::cross_entropy_forward(m.f({3, 5}), m.i32({3}), loss, lse);
                 }},
                {"i32 logits",
                 [=] {
                   Tensor loss = m.f({3}), lse = m.f({3});
                   ops::cross_entropy_forward(m.i32({3, 5}), m.ids({3}), loss, lse);
                 }},
                {"4 labels for 3 rows",
                 [=] {
                   Tensor loss = m.f({3}), lse = m.f({3});
                   ops::cross_entropy_forward(m.f({3, 5}), m.ids({4}), loss, lse);
                 }},
                {"loss unlike the logits' statistics dtype", [=] {
                   Tensor loss = odd(m.f({3})), lse = m.f({3});
                   ops::cross_entropy_forward(m.f({3, 5}), m.ids({3}), loss, lse);
                 }}}});
  index_pair(c.back().wrong, "labels unlike the logits", [=] {
    Tensor loss = m.f({3}), lse = m.f({3});
    ops::cross_entropy_forward(m.f({3, 5}), odd_index(m.ids({3})), loss, lse);
  });
  c.push_back({"cross_entropy_backward",
               [=] {
                 Tensor d = m.f({3, 5});
                 ops::cross_entropy_backward(m.f({3, 5}), m.ids({3}), m.f({3}), 1.0, d);
               },
               {{"i32 labels",
                 [=] {
                   Tensor d = m.f({3, 5});
                   ops::cross_entropy_backward(m.f({3, 5}), m.i32({3}), m.f({3}), 1.0, d);
                 }},
                {"dlogits [3, 4] for logits [3, 5]",
                 [=] {
                   Tensor d = m.f({3, 4});
                   ops::cross_entropy_backward(m.f({3, 5}), m.ids({3}), m.f({3}), 1.0, d);
                 }},
                {"dlogits unlike the logits", [=] {
                   Tensor d = odd(m.f({3, 5}));
                   ops::cross_entropy_backward(m.f({3, 5}), m.ids({3}), m.f({3}), 1.0, d);
                 }}}});
  index_pair(c.back().wrong, "lse unlike the logits", [=] {
    Tensor d = m.f({3, 5});
    ops::cross_entropy_backward(m.f({3, 5}), m.ids({3}), odd_index(m.f({3})), 1.0, d);
  });
  c.push_back({"max_pool_forward",
               [=] {
                 Tensor out = m.f({2, 4}), am = m.ids({2, 4});
                 ops::max_pool_forward(m.f({2, 3, 4}), out, am);
               },
               {{"an i32 argmax",
                 [=] {
                   Tensor out = m.f({2, 4}), am = m.i32({2, 4});
                   ops::max_pool_forward(m.f({2, 3, 4}), out, am);
                 }},
                {"an i32 input",
                 [=] {
                   Tensor out = m.i32({2, 4}), am = m.ids({2, 4});
                   ops::max_pool_forward(m.i32({2, 3, 4}), out, am);
                 }},
                {"out [2, 5] for x [2, 3, 4]",
                 [=] {
                   Tensor out = m.f({2, 5}), am = m.ids({2, 5});
                   ops::max_pool_forward(m.f({2, 3, 4}), out, am);
                 }},
                {"out unlike x", [=] {
                   Tensor out = odd(m.f({2, 4})), am = m.ids({2, 4});
                   ops::max_pool_forward(m.f({2, 3, 4}), out, am);
                 }}}});
  index_pair(c.back().wrong, "argmax unlike x", [=] {
    Tensor out = m.f({2, 4}), am = odd_index(m.ids({2, 4}));
    ops::max_pool_forward(m.f({2, 3, 4}), out, am);
  });
  c.push_back({"max_pool_backward",
               [=] {
                 Tensor dx = m.f({2, 3, 4});
                 ops::max_pool_backward(m.f({2, 4}), m.ids({2, 4}), dx);
               },
               {{"an i32 argmax",
                 [=] {
                   Tensor dx = m.f({2, 3, 4});
                   ops::max_pool_backward(m.f({2, 4}), m.i32({2, 4}), dx);
                 }},
                {"dout [2, 5] for dx [2, 3, 4]",
                 [=] {
                   Tensor dx = m.f({2, 3, 4});
                   ops::max_pool_backward(m.f({2, 5}), m.ids({2, 5}), dx);
                 }},
                {"dout unlike dx", [=] {
                   Tensor dx = m.f({2, 3, 4});
                   ops::max_pool_backward(odd(m.f({2, 4})), m.ids({2, 4}), dx);
                 }}}});
  index_pair(c.back().wrong, "argmax unlike dx", [=] {
    Tensor dx = m.f({2, 3, 4});
    ops::max_pool_backward(m.f({2, 4}), odd_index(m.ids({2, 4})), dx);
  });

  // ---- graph (sparse) attention: B 1, N 4, width 4 in 2 heads, a band graph ----
  const GraphRef g = band_graph(4);
  c.push_back({"graph_attention_forward",
               [=] {
                 Tensor o = m.f({1, 4, 4}), lse = m.f({1, 2, 4});
                 ops::graph_attention_forward(GraphScore::Softmax, m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), g,
                                              nullptr, 2, 0.5, o, &lse);
               },
               {{"i32 tensors",
                 [=] {
                   Tensor o = m.i32({1, 4, 4});
                   ops::graph_attention_forward(GraphScore::Linear, m.i32({1, 4, 4}), m.i32({1, 4, 4}),
                                                m.i32({1, 4, 4}), g, nullptr, 2, 0.5, o, nullptr);
                 }},
                {"v [1, 5, 4] for k [1, 4, 4]",
                 [=] {
                   Tensor o = m.f({1, 4, 4});
                   ops::graph_attention_forward(GraphScore::Linear, m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 5, 4}), g,
                                                nullptr, 2, 0.5, o, nullptr);
                 }},
                {"k unlike q",
                 [=] {
                   Tensor o = m.f({1, 4, 4});
                   ops::graph_attention_forward(GraphScore::Linear, m.f({1, 4, 4}), odd(m.f({1, 4, 4})), m.f({1, 4, 4}),
                                                g, nullptr, 2, 0.5, o, nullptr);
                 }},
                {"o unlike q", [=] {
                   Tensor o = odd(m.f({1, 4, 4}));
                   ops::graph_attention_forward(GraphScore::Linear, m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), g,
                                                nullptr, 2, 0.5, o, nullptr);
                 }}}});
  index_pair(c.back().wrong, "lse unlike q", [=] {
    Tensor o = m.f({1, 4, 4}), lse = odd_index(m.f({1, 2, 4}));
    ops::graph_attention_forward(GraphScore::Softmax, m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), g, nullptr, 2,
                                 0.5, o, &lse);
  });
  auto backward = [=](const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout, Tensor dk) {
    Tensor dq = Tensor::zeros(q.shape(), q.dtype(), q.device()), dv = Tensor::zeros(v.shape(), v.dtype(), v.device());
    ops::graph_attention_backward(GraphScore::Linear, q, k, v, g, g, nullptr, 2, 0.5, q, dout, nullptr, dq, dk, dv);
  };
  c.push_back({"graph_attention_backward",
               [=] {
                 backward(m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}));
               },
               {{"i32 tensors",
                 [=] {
                   backward(m.i32({1, 4, 4}), m.i32({1, 4, 4}), m.i32({1, 4, 4}), m.i32({1, 4, 4}), m.i32({1, 4, 4}));
                 }},
                {"dk [1, 5, 4] for k [1, 4, 4]",
                 [=] {
                   backward(m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 5, 4}));
                 }},
                {"dout unlike q",
                 [=] {
                   backward(m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), odd(m.f({1, 4, 4})), m.f({1, 4, 4}));
                 }},
                {"dk unlike k",
                 [=] {
                   backward(m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), m.f({1, 4, 4}), odd(m.f({1, 4, 4})));
                 }},
                {"the softmax backward without lse", [=] {
                   Tensor q = m.f({1, 4, 4}), dq = m.f({1, 4, 4}), dk = m.f({1, 4, 4}), dv = m.f({1, 4, 4});
                   ops::graph_attention_backward(GraphScore::Softmax, q, q, q, g, g, nullptr, 2, 0.5, q, q, nullptr, dq,
                                                 dk, dv);
                 }}}});

  // ---- random initialisation ----
  for (const std::string op : {"fill_uniform", "fill_normal"}) {
    auto fn = op == "fill_uniform" ? &ops::fill_uniform : &ops::fill_normal;
    c.push_back({op,
                 [=] {
                   Tensor t = m.f({2, 3});
                   fn(t, 0.0, 1.0, 1, 0);
                 },
                 {{"an i32 tensor",
                   [=] {
                     Tensor t = m.i32({2, 3});
                     fn(t, 0.0, 1.0, 1, 0);
                   }},
                  {"a strided tensor", [=] {
                     Tensor t = m.strided(2, 3);
                     fn(t, 0.0, 1.0, 1, 0);
                   }}}});
  }
  return c;
}

void run_cases(const std::vector<OpCase>& cases) {
  for (const OpCase& c : cases) {
    EXPECT_NO_THROW(c.valid()) << c.op << ": the valid call failed, so its wrong calls prove nothing";
    EXPECT_FALSE(c.wrong.empty()) << c.op;
    for (const auto& [what, call] : c.wrong) expect_rejected(c.op, what, call);
  }
}

// The ops declared in backend/ops.h: namespace-level function declarations (inline helpers such as
// rownorm_stats_dtype are not ops).
std::set<std::string> declared_ops() {
  const std::string path = DENSE_TEST_DATA_DIR + "/../../src/backend/ops.h";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::set<std::string> names;
  const std::regex decl(R"(^(?:void|Tensor|double|int64_t|DType)\s+(\w+)\()");
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, decl)) names.insert(m[1]);
  return names;
}

}  // namespace

TEST(OpContract, EveryOpRejectsWrongDtypesShapesAndPairsNamingItself) {
  const Make m{Device::cpu()};
  run_cases(op_cases(
      m, [](const Tensor& t) { return t.to(DType::F64); }, nullptr));
}

TEST(OpContract, EveryOpRejectsTensorsOnAnotherDevice) {
  if (!cuda_available()) GTEST_SKIP() << "needs a CUDA device: the CPU-only run pairs dtypes instead";
  const Device gpu = Device::cuda(0);
  const Odd elsewhere = [gpu](const Tensor& t) { return t.to(gpu); };
  // Main tensors on the CPU, the odd one on the GPU; then the other way round.
  run_cases(op_cases(Make{Device::cpu()}, elsewhere, elsewhere));
  const Odd on_cpu = [](const Tensor& t) { return t.to(Device::cpu()); };
  run_cases(op_cases(Make{gpu}, on_cpu, on_cpu));
}

TEST(OpContract, CoversEveryOpOfOpsH) {
  std::set<std::string> covered;
  const Odd same = [](const Tensor& t) { return t; };
  for (const OpCase& c : op_cases(Make{Device::cpu()}, same, nullptr)) covered.insert(c.op);
  // Whole-tensor reductions accept every dtype, shape and stride: there is nothing wrong to feed them, so they
  // are checked for that instead (ReductionsAcceptAnyTensor).
  for (const char* any : {"sum", "max_abs", "count_nonfinite"}) covered.insert(any);
  const std::set<std::string> declared = declared_ops();
  EXPECT_GE(declared.size(), 30u) << "ops.h was not parsed";
  for (const std::string& op : declared) EXPECT_TRUE(covered.count(op)) << op << " (ops.h) has no contract case";
  for (const std::string& op : covered) EXPECT_TRUE(declared.count(op)) << op << " is not an op of ops.h";
}

TEST(OpContract, ReductionsAcceptAnyTensor) {
  const Tensor ints = Tensor::from_vector<int32_t>({1, -2, 3, -4, 5, -6}, {2, 3}, DType::I32);
  EXPECT_EQ(ops::sum(ints), -3.0);
  EXPECT_EQ(ops::max_abs(ints), 6.0);
  EXPECT_EQ(ops::count_nonfinite(ints), 0);
  // A transposed (strided) view reduces like its contiguous copy.
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}, DType::F32).transpose(0, 1);
  EXPECT_EQ(ops::sum(x), 21.0);
  EXPECT_EQ(ops::sum_squares(x), 91.0);
}
