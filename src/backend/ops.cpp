#include "backend/ops.h"

#include <algorithm>
#include <initializer_list>
#include <string>

namespace dense::ops {
namespace {

// Every check names the op first: errors read "<op>: <what> ...". Composite ops (linear, add, axpy, ...) pass
// their own name down to the primitive they are built on, so each tensor is checked once and the message names
// the op the caller called.

// A tensor with the name it has in the op's signature, for messages.
struct Arg {
  const Tensor* t;
  const char* name;
};

// Each present tensor of `others` has ref's dtype and device (what a kernel reading them as one element type
// assumes).
void check_like(const char* op, Arg ref, std::initializer_list<Arg> others) {
  for (const Arg& o : others) {
    if (!o.t) continue;
    DENSE_CHECK(o.t->dtype() == ref.t->dtype(), "{}: {} {} must have {}'s dtype {} (dtype mismatch)", op, o.name,
                o.t->str(), ref.name, dtype_name(ref.t->dtype()));
    DENSE_CHECK(o.t->device() == ref.t->device(), "{}: {} is on {} but {} is on {} (tensors on different devices)", op,
                o.name, o.t->device().str(), ref.name, ref.t->device().str());
  }
}
// Each present tensor of `others` is on ref's device (their dtypes differ by design: ids, stats, masks).
void check_same_device(const char* op, Arg ref, std::initializer_list<Arg> others) {
  for (const Arg& o : others)
    if (o.t)
      DENSE_CHECK(o.t->device() == ref.t->device(), "{}: {} is on {} but {} is on {} (tensors on different devices)",
                  op, o.name, o.t->device().str(), ref.name, ref.t->device().str());
}
void check_contiguous(const char* op, std::initializer_list<Arg> tensors) {
  for (const Arg& a : tensors)
    if (a.t)
      DENSE_CHECK(a.t->is_contiguous(), "{}: {} must be contiguous, got {} with strides {}", op, a.name, a.t->str(),
                  shape_str(a.t->strides()));
}
void check_float(const char* op, Arg a) {
  DENSE_CHECK(is_floating(a.t->dtype()), "{}: {} must be floating (f64, f32, bf16 or f16), got {}", op, a.name,
              a.t->str());
}
void check_index(const char* op, Arg a) {
  DENSE_CHECK(a.t->dtype() == DType::I64 || a.t->dtype() == DType::I32, "{}: {} must be i64 or i32, got {}", op, a.name,
              a.t->str());
  check_contiguous(op, {a});
}
// A table read by rows for x (RelPE, RoPE caches): 2-D, contiguous, x's width, f32 or x's dtype, on x's device.
void check_table(const char* op, Arg table, const Tensor& x) {
  DENSE_CHECK(table.t->dim() == 2 && table.t->size(1) == x.size(-1), "{}: {} {} must be [positions, {}] for x {}", op,
              table.name, table.t->str(), x.size(-1), x.str());
  DENSE_CHECK(table.t->dtype() == DType::F32 || table.t->dtype() == x.dtype(),
              "{}: {} {} must be f32 or {} (x's dtype)", op, table.name, table.t->str(), dtype_name(x.dtype()));
  check_contiguous(op, {table});
  check_same_device(op, {&x, "x"}, {table});
}

// A GEMM operand: matrix i of the batch is at data + i * batch_stride with row stride ld (unit column stride).
struct Operand {
  MatRef ref;
  bool trans;
  int64_t rows, cols;  // of op(X)
  int64_t batch;       // 1 for a broadcast 2-D operand
};

Operand make_operand(const char* op, const Tensor& t, bool trans, const char* name) {
  DENSE_CHECK(t.dim() == 2 || t.dim() == 3, "{}: {} must be 2-D or 3-D, got {}", op, name, t.str());
  const int64_t r = t.size(-2), c = t.size(-1);
  const int64_t sr = t.stride(-2), sc = t.stride(-1);
  Operand operand{};
  operand.batch = t.dim() == 3 ? t.size(0) : 1;
  const int64_t bs = t.dim() == 3 ? t.stride(0) : 0;
  if (sc == 1 || c == 1) {
    operand.ref = MatRef{t.raw_data(), c == 1 && sc != 1 ? std::max<int64_t>(sr, 1) : std::max<int64_t>(sr, c), bs};
    operand.trans = trans;
  } else if (sr == 1 || r == 1) {
    // A transposed view: the storage holds Xᵀ row-major with row stride sc.
    operand.ref = MatRef{t.raw_data(), std::max<int64_t>(sc, r), bs};
    operand.trans = !trans;
  } else {
    DENSE_FAIL("{}: {} has no unit stride in its last two dims (strides {})", op, name, shape_str(t.strides()));
  }
  operand.rows = trans ? c : r;
  operand.cols = trans ? r : c;
  return operand;
}

void gemm_into(const char* op, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, double alpha,
               double beta) {
  check_float(op, {&a, "a"});
  check_like(op, {&a, "a"}, {{&b, "b"}, {&out, "out"}});
  const Operand A = make_operand(op, a, trans_a, "a");
  const Operand B = make_operand(op, b, trans_b, "b");
  DENSE_CHECK(out.dim() == 2 || out.dim() == 3, "{}: out must be 2-D or 3-D, got {}", op, out.str());
  DENSE_CHECK(out.stride(-1) == 1, "{}: out needs a unit column stride, got {}", op, shape_str(out.strides()));
  const int64_t batch = out.dim() == 3 ? out.size(0) : 1;
  DENSE_CHECK((A.batch == 1 || A.batch == batch) && (B.batch == 1 || B.batch == batch),
              "{}: batch sizes {} and {} do not match out {}", op, A.batch, B.batch, out.str());
  DENSE_CHECK(a.dim() <= out.dim() && b.dim() <= out.dim(), "{}: a 3-D operand needs a 3-D out", op);
  const int64_t m = out.size(-2), n = out.size(-1);
  DENSE_CHECK(A.rows == m && B.cols == n && A.cols == B.rows, "{}: op(a) is {}x{}, op(b) is {}x{}, out is {}x{}", op,
              A.rows, A.cols, B.rows, B.cols, m, n);
  if (m == 0 || n == 0 || batch == 0) return;
  const MutMatRef C{out.raw_data(), std::max<int64_t>(out.stride(-2), n), out.dim() == 3 ? out.stride(0) : 0};
  backend_for(out.device()).gemm(out.dtype(), A.trans, B.trans, m, n, A.cols, alpha, A.ref, B.ref, beta, C, batch);
}

void binary_into(const char* op, BinaryOp bop, Broadcast bcast, double alpha, const Tensor& a, const Tensor& b,
                 double beta, Tensor& out) {
  check_float(op, {&a, "a"});
  check_like(op, {&a, "a"}, {{&b, "b"}, {&out, "out"}});
  check_contiguous(op, {{&a, "a"}, {&b, "b"}, {&out, "out"}});
  DENSE_CHECK(a.numel() == out.numel(), "{}: a {} and out {} differ in size", op, a.str(), out.str());
  const int64_t cols = a.dim() ? a.size(-1) : 1;
  const int64_t rows = cols ? a.numel() / cols : 0;
  const int64_t want = bcast == Broadcast::Full ? a.numel() : bcast == Broadcast::Row ? cols : rows;
  DENSE_CHECK(b.numel() == want, "{}: b {} does not broadcast against a {} (expected {} elements)", op, b.str(),
              a.str(), want);
  if (a.numel() == 0) return;
  backend_for(a.device()).binary(bop, bcast, alpha, a, b, beta, out);
}

void sum_rows_into(const char* op, const Tensor& x, int64_t outer, int64_t rows, double alpha, double beta,
                   Tensor& out) {
  check_float(op, {&x, "x"});
  check_like(op, {&x, "x"}, {{&out, "out"}});
  check_contiguous(op, {{&x, "x"}, {&out, "out"}});
  DENSE_CHECK(outer * rows > 0 && x.numel() % (outer * rows) == 0, "{}: x {} is not [{}, {}, *]", op, x.str(), outer,
              rows);
  DENSE_CHECK(out.numel() == x.numel() / rows, "{}: out {} should hold {} elements", op, out.str(), x.numel() / rows);
  backend_for(x.device()).sum_rows(x, outer, rows, alpha, beta, out);
}

}  // namespace

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, double alpha, double beta) {
  gemm_into("matmul", a, trans_a, b, trans_b, out, alpha, beta);
}

Tensor matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b) {
  for (const Arg& t : {Arg{&a, "a"}, Arg{&b, "b"}})
    DENSE_CHECK(t.t->dim() == 2 || t.t->dim() == 3, "matmul: {} must be 2-D or 3-D, got {}", t.name, t.t->str());
  const int64_t m = trans_a ? a.size(-1) : a.size(-2);
  const int64_t n = trans_b ? b.size(-2) : b.size(-1);
  Shape shape{m, n};
  if (a.dim() == 3 || b.dim() == 3) shape.insert(shape.begin(), a.dim() == 3 ? a.size(0) : b.size(0));
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  gemm_into("matmul", a, trans_a, b, trans_b, out, 1.0, 0.0);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias) {
  const char* op = "linear";
  DENSE_CHECK(x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(1),
              "linear: input {} does not fit weight {} ([out, in])", x.str(), w.str());
  if (bias) DENSE_CHECK(bias->numel() == w.size(0), "linear: bias {} for {} outputs", bias->str(), w.size(0));
  const Tensor x2 = x.reshape({-1, x.size(-1)});
  Shape out_shape = x.shape();
  out_shape.back() = w.size(0);
  Tensor y = Tensor::empty({x2.size(0), w.size(0)}, x.dtype(), x.device());
  gemm_into(op, x2, false, w, true, y, 1.0, 0.0);
  if (bias) binary_into(op, BinaryOp::Add, Broadcast::Row, 1.0, y, *bias, 0.0, y);
  return y.view(out_shape);
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, double beta_dx, Tensor* dw,
                     Tensor* dbias) {
  const char* op = "linear_backward";
  DENSE_CHECK(x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(1),
              "{}: input {} does not fit weight {} ([out, in])", op, x.str(), w.str());
  DENSE_CHECK(dy.dim() >= 1 && dy.size(-1) == w.size(0) && dy.numel() / w.size(0) == x.numel() / w.size(1),
              "{}: dy {} does not fit x {} and weight {}", op, dy.str(), x.str(), w.str());
  if (dx) DENSE_CHECK(dx->numel() == x.numel(), "{}: dx {} must match x {}", op, dx->str(), x.str());
  if (dx) check_contiguous(op, {{dx, "dx"}});
  if (dw) DENSE_CHECK(dw->shape() == w.shape(), "{}: dw {} must match w {}", op, dw->str(), w.str());
  if (dbias) DENSE_CHECK(dbias->numel() == w.size(0), "{}: dbias {} for {} outputs", op, dbias->str(), w.size(0));
  const Tensor x2 = x.reshape({-1, x.size(-1)});
  const Tensor dy2 = dy.reshape({-1, dy.size(-1)});
  if (dx) {
    Tensor dx2 = dx->view({-1, dx->size(-1)});
    gemm_into(op, dy2, false, w, false, dx2, 1.0, beta_dx);
  }
  if (dw) gemm_into(op, dy2, true, x2, false, *dw, 1.0, 1.0);
  if (dbias) sum_rows_into(op, dy2, 1, dy2.size(0), 1.0, 1.0, *dbias);
}

void binary(BinaryOp op, Broadcast bcast, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& out) {
  binary_into("binary", op, bcast, alpha, a, b, beta, out);
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  binary_into("add", BinaryOp::Add, Broadcast::Full, 1.0, a, b, 0.0, out);
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  binary_into("mul", BinaryOp::Mul, Broadcast::Full, 1.0, a, b, 0.0, out);
  return out;
}

void axpy(double alpha, const Tensor& x, Tensor& y) {
  const char* op = "axpy";
  DENSE_CHECK(x.numel() == y.numel(), "axpy: x {} and y {} differ in size", x.str(), y.str());
  check_like(op, {&x, "x"}, {{&y, "y"}});
  check_contiguous(op, {{&x, "x"}, {&y, "y"}});
  // y = alpha * (x * 1) + 1 * y, x viewed as a column so that the unit factor broadcasts along rows.
  const Tensor one = Tensor::full({1}, 1.0, x.dtype(), x.device());
  Tensor y_col = y.view({-1, 1});
  binary_into(op, BinaryOp::Mul, Broadcast::Row, alpha, x.view({-1, 1}), one, 1.0, y_col);
}

void accumulate(const Tensor& src, double beta, Tensor& dst) {
  const char* op = "accumulate";
  DENSE_CHECK(src.numel() == dst.numel(), "accumulate: src {} and dst {} differ in size", src.str(), dst.str());
  check_like(op, {&src, "src"}, {{&dst, "dst"}});
  if (beta == 0.0) {
    dst.copy_(src.view(dst.shape()));
    return;
  }
  check_contiguous(op, {{&dst, "dst"}});
  const Tensor one = Tensor::full({1}, 1.0, src.dtype(), src.device());
  Tensor d = dst.view({-1, 1});
  binary_into(op, BinaryOp::Mul, Broadcast::Row, 1.0, src.contiguous().view({-1, 1}), one, beta, d);
}

Tensor scale(const Tensor& x, double alpha) {
  check_contiguous("scale", {{&x, "x"}});
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor one = Tensor::full({1}, 1.0, x.dtype(), x.device());
  binary_into("scale", BinaryOp::Mul, Broadcast::Row, alpha, x.view({-1, 1}), one, 0.0, out);
  return out;
}

Tensor scale_rows(const Tensor& x, const Tensor& v) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  binary_into("scale_rows", BinaryOp::Mul, Broadcast::Col, 1.0, x, v, 0.0, out);
  return out;
}

Tensor activation(Activation act, double slope, const Tensor& x) {
  check_float("activation", {&x, "x"});
  check_contiguous("activation", {{&x, "x"}});
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) backend_for(x.device()).activation_forward(act, slope, x, y);
  return y;
}

void activation_backward(Activation act, double slope, const Tensor& x, const Tensor& dy, double beta, Tensor& dx) {
  const char* op = "activation_backward";
  check_float(op, {&x, "x"});
  check_like(op, {&x, "x"}, {{&dy, "dy"}, {&dx, "dx"}});
  check_contiguous(op, {{&x, "x"}, {&dy, "dy"}, {&dx, "dx"}});
  DENSE_CHECK(x.numel() == dy.numel() && x.numel() == dx.numel(),
              "activation_backward: x {}, dy {} and dx {} must have the same size", x.str(), dy.str(), dx.str());
  if (x.numel()) backend_for(x.device()).activation_backward(act, slope, x, dy, beta, dx);
}

Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  DENSE_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got {}", p);
  check_float("dropout", {&x, "x"});
  check_contiguous("dropout", {{&x, "x"}});
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) backend_for(x.device()).dropout(x, p, seed, offset, y);
  return y;
}

void sum_rows(const Tensor& x, int64_t outer, int64_t rows, double alpha, double beta, Tensor& out) {
  sum_rows_into("sum_rows", x, outer, rows, alpha, beta, out);
}

// Whole-tensor reductions read any dtype and any shape or strides (a strided x is made contiguous first).
double sum(const Tensor& x) { return backend_for(x.device()).reduce(Reduction::Sum, x.contiguous()); }
double max_abs(const Tensor& x) { return backend_for(x.device()).reduce(Reduction::MaxAbs, x.contiguous()); }
int64_t count_nonfinite(const Tensor& x) {
  return int64_t(backend_for(x.device()).reduce(Reduction::CountNonFinite, x.contiguous()));
}

double sum_squares(const Tensor& x) {
  check_float("sum_squares", {&x, "x"});
  return backend_for(x.device()).reduce(Reduction::SumSquares, x.contiguous());
}

void scale_(Tensor& x, double factor) {
  check_float("scale_", {&x, "x"});
  check_contiguous("scale_", {{&x, "x"}});
  backend_for(x.device()).scale_in_place(x, factor);
}

void optimizer_step(const OptimizerStep& s, Tensor& values, const Tensor& grads, Tensor& exp_avg, Tensor& exp_avg_sq) {
  const char* op = "optimizer_step";
  DENSE_CHECK(values.dtype() == DType::F32 || values.dtype() == DType::F64,
              "{}: values are {}; master values must be f32 or f64", op, dtype_name(values.dtype()));
  const int64_t n = values.numel();
  for (const Arg& a :
       {Arg{&values, "values"}, Arg{&grads, "grads"}, Arg{&exp_avg, "exp_avg"}, Arg{&exp_avg_sq, "exp_avg_sq"}}) {
    check_contiguous(op, {a});
    check_like(op, {&values, "values"}, {a});
    DENSE_CHECK(a.t->numel() == n, "{}: {} has {} elements, values {}", op, a.name, a.t->numel(), n);
  }
  DENSE_CHECK(s.blocks && s.blocks->dtype() == DType::I64 && s.blocks->dim() == 2 && s.blocks->size(1) == 4,
              "{}: blocks must be i64 [nblocks, 4], got {}", op, s.blocks ? s.blocks->str() : std::string("none"));
  check_contiguous(op, {{s.blocks, "blocks"}});
  check_same_device(op, {&values, "values"}, {{s.blocks, "blocks"}});
  DENSE_CHECK(s.step >= 1, "{}: step {} must be >= 1", op, s.step);
  backend_for(values.device()).optimizer_step(s, values, grads, exp_avg, exp_avg_sq);
}

namespace {
bool needs_gain(RowNorm kind) { return kind == RowNorm::ScaledMaxNorm || kind == RowNorm::PreScaledMaxNorm; }
}  // namespace

void rownorm_forward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor* bias, double eps, Tensor& y,
                     Tensor& stats) {
  const char* op = "rownorm_forward";
  check_float(op, {&x, "x"});
  DENSE_CHECK(x.dim() >= 1, "{}: x must have a last dimension, got {}", op, x.str());
  const int64_t cols = x.size(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  DENSE_CHECK(y.numel() == x.numel(), "rownorm_forward: y {} does not match x {}", y.str(), x.str());
  check_like(op, {&x, "x"}, {{&y, "y"}, {gain, "gain"}, {bias, "bias"}});
  check_contiguous(op, {{&x, "x"}, {&y, "y"}, {&stats, "stats"}, {gain, "gain"}, {bias, "bias"}});
  check_same_device(op, {&x, "x"}, {{&stats, "stats"}});
  DENSE_CHECK(stats.numel() == 2 * rows && stats.dtype() == rownorm_stats_dtype(x.dtype()),
              "rownorm_forward: stats must be {} [{}, 2], got {}", dtype_name(rownorm_stats_dtype(x.dtype())), rows,
              stats.str());
  if (gain) DENSE_CHECK(gain->numel() == cols, "rownorm_forward: gain {} for width {}", gain->str(), cols);
  if (bias) DENSE_CHECK(bias->numel() == cols, "rownorm_forward: bias {} for width {}", bias->str(), cols);
  DENSE_CHECK(!needs_gain(kind) || gain, "rownorm_forward: this norm needs a gain");
  if (x.numel()) backend_for(x.device()).rownorm_forward(kind, x, gain, bias, eps, y, stats);
}

void rownorm_backward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor& stats, const Tensor& dy,
                      double beta_dx, Tensor& dx, Tensor* dgain, Tensor* dbias) {
  const char* op = "rownorm_backward";
  check_float(op, {&x, "x"});
  DENSE_CHECK(x.dim() >= 1, "{}: x must have a last dimension, got {}", op, x.str());
  DENSE_CHECK(dy.numel() == x.numel() && dx.numel() == x.numel(), "rownorm_backward: dy {} and dx {} must match x {}",
              dy.str(), dx.str(), x.str());
  check_like(op, {&x, "x"}, {{&dy, "dy"}, {&dx, "dx"}, {gain, "gain"}, {dgain, "dgain"}, {dbias, "dbias"}});
  check_contiguous(
      op, {{&x, "x"}, {&dy, "dy"}, {&dx, "dx"}, {&stats, "stats"}, {gain, "gain"}, {dgain, "dgain"}, {dbias, "dbias"}});
  const int64_t cols = x.size(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  DENSE_CHECK(stats.numel() == 2 * rows && stats.dtype() == rownorm_stats_dtype(x.dtype()),
              "rownorm_backward: stats must be {} [{}, 2] (from the forward), got {}",
              dtype_name(rownorm_stats_dtype(x.dtype())), rows, stats.str());
  check_same_device(op, {&x, "x"}, {{&stats, "stats"}});
  DENSE_CHECK(!needs_gain(kind) || gain, "rownorm_backward: this norm needs a gain");
  for (const Tensor* t : {gain, static_cast<const Tensor*>(dgain), static_cast<const Tensor*>(dbias)})
    if (t) DENSE_CHECK(t->numel() == cols, "rownorm_backward: {} for width {}", t->str(), cols);
  if (x.numel()) backend_for(x.device()).rownorm_backward(kind, x, gain, stats, dy, beta_dx, dx, dgain, dbias);
}

void gather_rows(const Tensor& table, const Tensor& ids, double beta, Tensor& out) {
  const char* op = "gather_rows";
  check_index(op, {&ids, "ids"});
  check_float(op, {&table, "table"});
  check_like(op, {&table, "table"}, {{&out, "out"}});
  check_same_device(op, {&table, "table"}, {{&ids, "ids"}});
  check_contiguous(op, {{&table, "table"}, {&out, "out"}});
  DENSE_CHECK(table.dim() == 2 && out.numel() == ids.numel() * table.size(1),
              "gather_rows: table {} ids {} out {} do not fit (table [rows, cols], out [ids, cols])", table.str(),
              ids.str(), out.str());
  if (ids.numel()) backend_for(table.device()).gather_rows(table, ids, beta, out);
}

Tensor gather_rows(const Tensor& table, const Tensor& ids) {
  DENSE_CHECK(table.dim() == 2, "gather_rows: table must be 2-D [rows, cols], got {}", table.str());
  Tensor out = Tensor::empty({ids.numel(), table.size(1)}, table.dtype(), table.device());
  gather_rows(table, ids, 0.0, out);
  return out;
}

void scatter_add_rows(const Tensor& src, const Tensor& ids, Tensor& table) {
  const char* op = "scatter_add_rows";
  check_index(op, {&ids, "ids"});
  check_float(op, {&table, "table"});
  check_like(op, {&table, "table"}, {{&src, "src"}});
  check_same_device(op, {&table, "table"}, {{&ids, "ids"}});
  check_contiguous(op, {{&src, "src"}, {&table, "table"}});
  DENSE_CHECK(table.dim() == 2 && src.numel() == ids.numel() * table.size(1),
              "scatter_add_rows: src {} ids {} table {} do not fit (table [rows, cols], src [ids, cols])", src.str(),
              ids.str(), table.str());
  if (ids.numel()) backend_for(table.device()).scatter_add_rows(src, ids, table);
}

Tensor positional_scale(const Tensor& x, const Tensor& table, const Tensor& positions) {
  const char* op = "positional_scale";
  check_float(op, {&x, "x"});
  check_contiguous(op, {{&x, "x"}});
  DENSE_CHECK(x.dim() >= 1 && x.size(-1) > 0, "{}: x {} needs a non-empty last dimension", op, x.str());
  check_index(op, {&positions, "positions"});
  check_table(op, {&table, "table"}, x);
  check_same_device(op, {&x, "x"}, {{&positions, "positions"}});
  const int64_t rows = x.numel() / x.size(-1);
  DENSE_CHECK(positions.numel() > 0 && rows % positions.numel() == 0,
              "positional_scale: {} rows are not a multiple of {} positions", rows, positions.numel());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) backend_for(x.device()).positional_scale(x, table, positions, y);
  return y;
}

Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& positions, bool inverse) {
  const char* op = "rope";
  check_float(op, {&x, "x"});
  check_contiguous(op, {{&x, "x"}});
  DENSE_CHECK(x.dim() >= 1 && x.size(-1) > 0 && x.size(-1) % 2 == 0, "rope: last dim of x {} must be even", x.str());
  check_index(op, {&positions, "positions"});
  check_table(op, {&cos, "cos"}, x);
  check_table(op, {&sin, "sin"}, x);
  DENSE_CHECK(sin.shape() == cos.shape() && sin.dtype() == cos.dtype(), "rope: cos {} and sin {} must match", cos.str(),
              sin.str());
  check_same_device(op, {&x, "x"}, {{&positions, "positions"}});
  const int64_t rows = x.numel() / x.size(-1);
  DENSE_CHECK(positions.numel() > 0 && rows % positions.numel() == 0,
              "rope: {} rows are not a multiple of {} positions", rows, positions.numel());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) backend_for(x.device()).rope(x, cos, sin, positions, inverse, y);
  return y;
}

void band_mask(Tensor& s, int64_t lo, int64_t hi) {
  check_float("band_mask", {&s, "s"});
  check_contiguous("band_mask", {{&s, "s"}});
  DENSE_CHECK(s.dim() >= 2, "band_mask: needs a matrix, got {}", s.str());
  if (s.numel()) backend_for(s.device()).band_mask(s, lo, hi);
}

void softmax_forward(const Tensor& s, double scale, const Tensor* key_valid, int64_t heads, Tensor& p) {
  const char* op = "softmax_forward";
  check_float(op, {&s, "s"});
  check_like(op, {&s, "s"}, {{&p, "p"}, {key_valid, "key_valid"}});
  check_contiguous(op, {{&s, "s"}, {&p, "p"}, {key_valid, "key_valid"}});
  DENSE_CHECK(s.dim() == 3 && p.shape() == s.shape(), "softmax_forward: s {} / p {} must be [groups, rows, cols]",
              s.str(), p.str());
  if (key_valid)
    DENSE_CHECK(heads > 0 && s.size(0) % heads == 0 && key_valid->numel() == s.size(0) / heads * s.size(2),
                "softmax_forward: key mask {} does not fit scores {} with {} heads", key_valid->str(), s.str(), heads);
  if (s.numel()) backend_for(s.device()).softmax_forward(s, scale, key_valid, heads, p);
}

void softmax_backward(const Tensor& p, const Tensor& dp, double scale, Tensor& ds) {
  const char* op = "softmax_backward";
  check_float(op, {&p, "p"});
  check_like(op, {&p, "p"}, {{&dp, "dp"}, {&ds, "ds"}});
  check_contiguous(op, {{&p, "p"}, {&dp, "dp"}, {&ds, "ds"}});
  DENSE_CHECK(p.dim() >= 1 && p.shape() == dp.shape() && ds.shape() == p.shape(),
              "softmax_backward: p {}, dp {} and ds {} must match", p.str(), dp.str(), ds.str());
  if (p.numel()) backend_for(p.device()).softmax_backward(p, dp, scale, ds);
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& lse) {
  const char* op = "cross_entropy_forward";
  check_float(op, {&logits, "logits"});
  DENSE_CHECK(labels.dtype() == DType::I64, "cross_entropy_forward: labels must be i64, got {}", labels.str());
  DENSE_CHECK(logits.dim() == 2 && labels.numel() == logits.size(0) && loss.numel() == logits.size(0) &&
                  lse.numel() == logits.size(0),
              "cross_entropy_forward: logits {} labels {} loss {} lse {} do not fit (logits [rows, classes], the "
              "others [rows])",
              logits.str(), labels.str(), loss.str(), lse.str());
  // A bf16 lse near 10 is off by up to 1/32, ~3% in exp(logit - lse): the statistics stay in the accumulator's
  // precision whatever the logits' dtype.
  const DType stat = accumulate_dtype(logits.dtype());
  DENSE_CHECK(loss.dtype() == stat && lse.dtype() == stat,
              "cross_entropy_forward: loss {} and lse {} must be {} for {} logits", loss.str(), lse.str(),
              dtype_name(stat), dtype_name(logits.dtype()));
  check_contiguous(op, {{&logits, "logits"}, {&labels, "labels"}, {&loss, "loss"}, {&lse, "lse"}});
  check_same_device(op, {&logits, "logits"}, {{&labels, "labels"}, {&loss, "loss"}, {&lse, "lse"}});
  if (logits.numel()) backend_for(logits.device()).cross_entropy_forward(logits, labels, loss, lse);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, double scale,
                            Tensor& dlogits) {
  const char* op = "cross_entropy_backward";
  check_float(op, {&logits, "logits"});
  check_like(op, {&logits, "logits"}, {{&dlogits, "dlogits"}});
  DENSE_CHECK(dlogits.shape() == logits.shape(), "cross_entropy_backward: dlogits {} vs logits {}", dlogits.str(),
              logits.str());
  DENSE_CHECK(labels.dtype() == DType::I64 && logits.dim() == 2 && labels.numel() == logits.size(0) &&
                  lse.numel() == logits.size(0),
              "cross_entropy_backward: logits {} labels {} lse {} do not fit (i64 labels)", logits.str(), labels.str(),
              lse.str());
  DENSE_CHECK(lse.dtype() == accumulate_dtype(logits.dtype()),
              "cross_entropy_backward: lse {} must be {} for {} logits", lse.str(),
              dtype_name(accumulate_dtype(logits.dtype())), dtype_name(logits.dtype()));
  check_contiguous(op, {{&logits, "logits"}, {&dlogits, "dlogits"}, {&labels, "labels"}, {&lse, "lse"}});
  check_same_device(op, {&logits, "logits"}, {{&labels, "labels"}, {&lse, "lse"}});
  if (logits.numel()) backend_for(logits.device()).cross_entropy_backward(logits, labels, lse, scale, dlogits);
}

namespace {
void check_graph(const char* op, const GraphRef& g, int64_t rows, int64_t keys, int64_t heads, const Tensor& q,
                 const char* which) {
  if (g.implicit()) return;
  DENSE_CHECK(g.col != nullptr, "{}: CSR {} without column indices", op, which);
  DENSE_CHECK(g.groups == 1 || g.groups == heads, "{}: {} has {} graphs for {} heads (expected 1 or one per head)", op,
              which, g.groups, heads);
  DENSE_CHECK(g.row_ptr->dtype() == DType::I64 && g.row_ptr->numel() == g.groups * (rows + 1),
              "{}: {} row_ptr {} must be i64 with groups x (rows + 1) = {} entries", op, which, g.row_ptr->str(),
              g.groups * (rows + 1));
  DENSE_CHECK(g.col->dtype() == DType::I32, "{}: {} col {} must be i32", op, which, g.col->str());
  DENSE_CHECK(g.rows == rows && g.keys == keys, "{}: {} is {} x {} but there are {} queries and {} keys", op, which,
              g.rows, g.keys, rows, keys);
  DENSE_CHECK(keys <= INT32_MAX, "{}: {} keys do not fit i32 column indices", op, keys);
  check_contiguous(op, {{g.row_ptr, "row_ptr"}, {g.col, "col"}});
  check_same_device(op, {&q, "q"}, {{g.row_ptr, "row_ptr"}, {g.col, "col"}});
}

void check_graph_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const GraphRef& graph,
                           const Tensor* key_valid, int64_t heads, const Tensor* lse) {
  check_float(op, {&q, "q"});
  check_like(op, {&q, "q"}, {{&k, "k"}, {&v, "v"}, {key_valid, "key_valid"}});
  check_contiguous(op, {{&q, "q"}, {&k, "k"}, {&v, "v"}, {key_valid, "key_valid"}, {lse, "lse"}});
  DENSE_CHECK(
      q.dim() == 3 && k.dim() == 3 && k.shape() == v.shape() && q.size(0) == k.size(0) && q.size(2) == k.size(2),
      "{}: q {} k {} v {} must be [B, Nq, d], [B, Nk, d], [B, Nk, d]", op, q.str(), k.str(), v.str());
  DENSE_CHECK(heads > 0 && q.size(2) % heads == 0, "{}: width {} is not divisible by {} heads", op, q.size(2), heads);
  check_graph(op, graph, q.size(1), k.size(1), heads, q, "the graph");
  if (key_valid)
    DENSE_CHECK(key_valid->numel() == k.size(0) * k.size(1), "{}: key mask {} does not fit keys {}", op,
                key_valid->str(), k.str());
  if (lse) {
    DENSE_CHECK(lse->dtype() == rownorm_stats_dtype(q.dtype()) && lse->numel() == q.size(0) * heads * q.size(1),
                "{}: lse {} must be {} [B, H, Nq] = [{}, {}, {}]", op, lse->str(),
                dtype_name(rownorm_stats_dtype(q.dtype())), q.size(0), heads, q.size(1));
    check_same_device(op, {&q, "q"}, {{lse, "lse"}});
  }
}

// Outputs and gradients shaped like `ref` (q or k): same shape, dtype, device, contiguous.
void check_shaped_like(const char* op, Arg ref, std::initializer_list<Arg> tensors) {
  for (const Arg& a : tensors)
    DENSE_CHECK(a.t->shape() == ref.t->shape(), "{}: {} {} must have {}'s shape {}", op, a.name, a.t->str(), ref.name,
                ref.t->str());
  check_like(op, ref, tensors);
  check_contiguous(op, tensors);
}
}  // namespace

void graph_attention_forward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v, const GraphRef& graph,
                             const Tensor* key_valid, int64_t heads, double scale, Tensor& o, Tensor* lse) {
  const char* op = "graph_attention_forward";
  check_graph_attention(op, q, k, v, graph, key_valid, heads, lse);
  check_shaped_like(op, {&q, "q"}, {{&o, "o"}});
  if (q.numel())
    backend_for(q.device()).graph_attention_forward(score, q, k, v, graph, key_valid, heads, scale, o, lse);
}

void graph_attention_backward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                              const GraphRef& graph, const GraphRef& transposed, const Tensor* key_valid, int64_t heads,
                              double scale, const Tensor& o, const Tensor& dout, const Tensor* lse, Tensor& dq,
                              Tensor& dk, Tensor& dv) {
  const char* op = "graph_attention_backward";
  check_graph_attention(op, q, k, v, graph, key_valid, heads, lse);
  DENSE_CHECK(graph.implicit() == transposed.implicit(), "{}: graph and its transpose must be of one kind", op);
  check_graph(op, transposed, k.size(1), q.size(1), heads, q, "the transposed graph");
  DENSE_CHECK(score != GraphScore::Softmax || lse != nullptr, "{}: the softmax backward needs lse", op);
  check_shaped_like(op, {&q, "q"}, {{&o, "o"}, {&dout, "dout"}, {&dq, "dq"}});
  check_shaped_like(op, {&k, "k"}, {{&dk, "dk"}, {&dv, "dv"}});
  if (q.numel() == 0 && k.numel() == 0) return;
  backend_for(q.device())
      .graph_attention_backward(score, q, k, v, graph, transposed, key_valid, heads, scale, o, dout, lse, dq, dk, dv);
}

void max_pool_forward(const Tensor& x, Tensor& out, Tensor& argmax) {
  const char* op = "max_pool_forward";
  check_float(op, {&x, "x"});
  check_like(op, {&x, "x"}, {{&out, "out"}});
  check_contiguous(op, {{&x, "x"}, {&out, "out"}, {&argmax, "argmax"}});
  check_same_device(op, {&x, "x"}, {{&argmax, "argmax"}});
  DENSE_CHECK(x.dim() == 3 && out.numel() == x.size(0) * x.size(2) && argmax.dtype() == DType::I64 &&
                  argmax.numel() == out.numel(),
              "max_pool_forward: x {} out {} argmax {} do not fit (x [B, N, d], out [B, d], argmax i64 [B, d])",
              x.str(), out.str(), argmax.str());
  backend_for(x.device()).max_pool_forward(x, out, argmax);
}

void max_pool_backward(const Tensor& dout, const Tensor& argmax, Tensor& dx) {
  const char* op = "max_pool_backward";
  check_float(op, {&dx, "dx"});
  check_like(op, {&dx, "dx"}, {{&dout, "dout"}});
  check_contiguous(op, {{&dout, "dout"}, {&dx, "dx"}, {&argmax, "argmax"}});
  check_same_device(op, {&dx, "dx"}, {{&argmax, "argmax"}});
  DENSE_CHECK(dx.dim() == 3 && dout.numel() == dx.size(0) * dx.size(2),
              "max_pool_backward: dout {} dx {} do not fit "
              "(dx [B, N, d], dout [B, d])",
              dout.str(), dx.str());
  DENSE_CHECK(argmax.dtype() == DType::I64 && argmax.numel() == dout.numel(),
              "max_pool_backward: argmax {} must be i64 with dout's {} elements", argmax.str(), dout.numel());
  backend_for(dx.device()).max_pool_backward(dout, argmax, dx);
}

void fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset) {
  check_float("fill_uniform", {&t, "t"});
  check_contiguous("fill_uniform", {{&t, "t"}});
  if (t.numel()) backend_for(t.device()).fill_uniform(t, low, high, seed, offset);
}

void fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) {
  check_float("fill_normal", {&t, "t"});
  check_contiguous("fill_normal", {{&t, "t"}});
  if (t.numel()) backend_for(t.device()).fill_normal(t, mean, std, seed, offset);
}

}  // namespace dense::ops
