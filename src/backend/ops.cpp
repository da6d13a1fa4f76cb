#include "backend/ops.h"

#include <initializer_list>
#include <utility>

namespace dense::ops {
namespace {

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  DENSE_CHECK(a.device() == b.device(), "{}: tensors on different devices ({} and {})", op, a.device().str(),
              b.device().str());
}
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  DENSE_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch ({} and {})", op, dtype_name(a.dtype()),
              dtype_name(b.dtype()));
}
// Each of `others` has ref's dtype and device (what a kernel reading them as one element type assumes).
void check_like(const Tensor& ref, std::initializer_list<const Tensor*> others, const char* op) {
  for (const Tensor* t : others) {
    check_same_dtype(ref, *t, op);
    check_same_device(ref, *t, op);
  }
}
void check_contiguous(const Tensor& t, const char* op, const char* name) {
  DENSE_CHECK(t.is_contiguous(), "{}: {} must be contiguous, got {} with strides {}", op, name, t.str(),
              shape_str(t.strides()));
}
void check_float(const Tensor& t, const char* op) {
  DENSE_CHECK(is_floating(t.dtype()), "{}: expected a floating tensor, got {}", op, t.str());
}
void check_ids(const Tensor& t, const char* op) {
  DENSE_CHECK(t.dtype() == DType::I64 || t.dtype() == DType::I32, "{}: ids must be i64 or i32, got {}", op, t.str());
  check_contiguous(t, op, "ids");
}

// A GEMM operand: matrix i of the batch is at data + i * batch_stride with row stride ld (unit column stride).
struct Operand {
  MatRef ref;
  bool trans;
  int64_t rows, cols;  // of op(X)
  int64_t batch;       // 1 for a broadcast 2-D operand
};

Operand make_operand(const Tensor& t, bool trans, const char* name) {
  DENSE_CHECK(t.dim() == 2 || t.dim() == 3, "matmul: {} must be 2-D or 3-D, got {}", name, t.str());
  const int64_t r = t.size(-2), c = t.size(-1);
  const int64_t sr = t.stride(-2), sc = t.stride(-1);
  Operand op{};
  op.batch = t.dim() == 3 ? t.size(0) : 1;
  const int64_t bs = t.dim() == 3 ? t.stride(0) : 0;
  if (sc == 1 || c == 1) {
    op.ref = MatRef{t.raw_data(), c == 1 && sc != 1 ? std::max<int64_t>(sr, 1) : std::max<int64_t>(sr, c), bs};
    op.trans = trans;
  } else if (sr == 1 || r == 1) {
    // A transposed view: the storage holds Xᵀ row-major with row stride sc.
    op.ref = MatRef{t.raw_data(), std::max<int64_t>(sc, r), bs};
    op.trans = !trans;
  } else {
    DENSE_FAIL("matmul: {} has no unit stride in its last two dims (strides {})", name, shape_str(t.strides()));
  }
  op.rows = trans ? c : r;
  op.cols = trans ? r : c;
  return op;
}

}  // namespace

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, double alpha, double beta) {
  check_same_device(a, b, "matmul");
  check_same_device(a, out, "matmul");
  check_same_dtype(a, b, "matmul");
  check_same_dtype(a, out, "matmul");
  check_float(a, "matmul");
  const Operand A = make_operand(a, trans_a, "a");
  const Operand B = make_operand(b, trans_b, "b");
  DENSE_CHECK(out.dim() == 2 || out.dim() == 3, "matmul: out must be 2-D or 3-D, got {}", out.str());
  DENSE_CHECK(out.stride(-1) == 1, "matmul: out needs a unit column stride, got {}", shape_str(out.strides()));
  const int64_t batch = out.dim() == 3 ? out.size(0) : 1;
  DENSE_CHECK((A.batch == 1 || A.batch == batch) && (B.batch == 1 || B.batch == batch),
              "matmul: batch sizes {} and {} do not match out {}", A.batch, B.batch, out.str());
  DENSE_CHECK(a.dim() <= out.dim() && b.dim() <= out.dim(), "matmul: a 3-D operand needs a 3-D out");
  const int64_t m = out.size(-2), n = out.size(-1);
  DENSE_CHECK(A.rows == m && B.cols == n && A.cols == B.rows, "matmul: op(a) is {}x{}, op(b) is {}x{}, out is {}x{}",
              A.rows, A.cols, B.rows, B.cols, m, n);
  if (m == 0 || n == 0 || batch == 0) return;
  const MutMatRef C{out.raw_data(), std::max<int64_t>(out.stride(-2), n), out.dim() == 3 ? out.stride(0) : 0};
  backend_for(out.device()).gemm(out.dtype(), A.trans, B.trans, m, n, A.cols, alpha, A.ref, B.ref, beta, C, batch);
}

Tensor matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b) {
  const int64_t m = trans_a ? a.size(-1) : a.size(-2);
  const int64_t n = trans_b ? b.size(-2) : b.size(-1);
  Shape shape{m, n};
  if (a.dim() == 3 || b.dim() == 3) shape.insert(shape.begin(), a.dim() == 3 ? a.size(0) : b.size(0));
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  matmul(a, trans_a, b, trans_b, out, 1.0, 0.0);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias) {
  DENSE_CHECK(w.dim() == 2 && x.size(-1) == w.size(1), "linear: input {} does not fit weight {}", x.str(), w.str());
  const Tensor x2 = x.reshape({-1, x.size(-1)});
  Shape out_shape = x.shape();
  out_shape.back() = w.size(0);
  Tensor y = Tensor::empty({x2.size(0), w.size(0)}, x.dtype(), x.device());
  matmul(x2, false, w, true, y);
  if (bias) binary(BinaryOp::Add, Broadcast::Row, 1.0, y, *bias, 0.0, y);
  return y.view(out_shape);
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, double beta_dx, Tensor* dw,
                     Tensor* dbias) {
  const Tensor x2 = x.reshape({-1, x.size(-1)});
  const Tensor dy2 = dy.reshape({-1, dy.size(-1)});
  if (dx) {
    Tensor dx2 = dx->view({-1, dx->size(-1)});
    matmul(dy2, false, w, false, dx2, 1.0, beta_dx);
  }
  if (dw) matmul(dy2, true, x2, false, *dw, 1.0, 1.0);
  if (dbias) sum_rows(dy2, 1, dy2.size(0), 1.0, 1.0, *dbias);
}

void binary(BinaryOp op, Broadcast bcast, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& out) {
  check_same_device(a, b, "binary");
  check_same_device(a, out, "binary");
  check_same_dtype(a, out, "binary");
  check_same_dtype(a, b, "binary");
  check_contiguous(a, "binary", "a");
  check_contiguous(b, "binary", "b");
  check_contiguous(out, "binary", "out");
  DENSE_CHECK(a.numel() == out.numel(), "binary: a {} and out {} differ in size", a.str(), out.str());
  const int64_t cols = a.dim() ? a.size(-1) : 1;
  const int64_t rows = cols ? a.numel() / cols : 0;
  const int64_t want = bcast == Broadcast::Full ? a.numel() : bcast == Broadcast::Row ? cols : rows;
  DENSE_CHECK(b.numel() == want, "binary: b {} does not broadcast against a {}", b.str(), a.str());
  if (a.numel() == 0) return;
  backend_for(a.device()).binary(op, bcast, alpha, a, b, beta, out);
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  binary(BinaryOp::Add, Broadcast::Full, 1.0, a, b, 0.0, out);
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  binary(BinaryOp::Mul, Broadcast::Full, 1.0, a, b, 0.0, out);
  return out;
}

void axpy(double alpha, const Tensor& x, Tensor& y) {
  DENSE_CHECK(x.numel() == y.numel(), "axpy: x {} and y {} differ in size", x.str(), y.str());
  // y = alpha * (x * 1) + 1 * y, x viewed as a column so that the unit factor broadcasts along rows.
  const Tensor one = Tensor::full({1}, 1.0, x.dtype(), x.device());
  Tensor y_col = y.view({-1, 1});
  binary(BinaryOp::Mul, Broadcast::Row, alpha, x.view({-1, 1}), one, 1.0, y_col);
}

void accumulate(const Tensor& src, double beta, Tensor& dst) {
  DENSE_CHECK(src.numel() == dst.numel(), "accumulate: src {} and dst {} differ in size", src.str(), dst.str());
  if (beta == 0.0) {
    dst.copy_(src.view(dst.shape()));
    return;
  }
  const Tensor one = Tensor::full({1}, 1.0, src.dtype(), src.device());
  Tensor d = dst.view({-1, 1});
  binary(BinaryOp::Mul, Broadcast::Row, 1.0, src.contiguous().view({-1, 1}), one, beta, d);
}

Tensor scale(const Tensor& x, double alpha) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor one = Tensor::full({1}, 1.0, x.dtype(), x.device());
  binary(BinaryOp::Mul, Broadcast::Row, alpha, x.view({-1, 1}), one, 0.0, out);
  return out;
}

Tensor scale_rows(const Tensor& x, const Tensor& v) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  binary(BinaryOp::Mul, Broadcast::Col, 1.0, x, v, 0.0, out);
  return out;
}

Tensor activation(Activation act, double slope, const Tensor& x) {
  check_contiguous(x, "activation", "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) backend_for(x.device()).activation_forward(act, slope, x, y);
  return y;
}

void activation_backward(Activation act, double slope, const Tensor& x, const Tensor& dy, double beta, Tensor& dx) {
  check_contiguous(x, "activation_backward", "x");
  check_contiguous(dy, "activation_backward", "dy");
  check_contiguous(dx, "activation_backward", "dx");
  DENSE_CHECK(x.numel() == dy.numel() && x.numel() == dx.numel(), "activation_backward: size mismatch");
  if (x.numel()) backend_for(x.device()).activation_backward(act, slope, x, dy, beta, dx);
}

Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  DENSE_CHECK(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got {}", p);
  check_contiguous(x, "dropout", "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) backend_for(x.device()).dropout(x, p, seed, offset, y);
  return y;
}

void sum_rows(const Tensor& x, int64_t outer, int64_t rows, double alpha, double beta, Tensor& out) {
  check_contiguous(x, "sum_rows", "x");
  check_contiguous(out, "sum_rows", "out");
  check_same_dtype(x, out, "sum_rows");
  DENSE_CHECK(outer * rows > 0 && x.numel() % (outer * rows) == 0, "sum_rows: {} is not [{}, {}, *]", x.str(), outer,
              rows);
  DENSE_CHECK(out.numel() == x.numel() / rows, "sum_rows: out {} should hold {} elements", out.str(),
              x.numel() / rows);
  backend_for(x.device()).sum_rows(x, outer, rows, alpha, beta, out);
}

double sum(const Tensor& x) { return backend_for(x.device()).reduce(Reduction::Sum, x.contiguous()); }
double max_abs(const Tensor& x) { return backend_for(x.device()).reduce(Reduction::MaxAbs, x.contiguous()); }
int64_t count_nonfinite(const Tensor& x) {
  return int64_t(backend_for(x.device()).reduce(Reduction::CountNonFinite, x.contiguous()));
}

double sum_squares(const Tensor& x) {
  check_float(x, "sum_squares");
  return backend_for(x.device()).reduce(Reduction::SumSquares, x.contiguous());
}

void scale_(Tensor& x, double factor) {
  check_float(x, "scale_");
  check_contiguous(x, "scale_", "x");
  backend_for(x.device()).scale_in_place(x, factor);
}

void optimizer_step(const OptimizerStep& s, Tensor& values, const Tensor& grads, Tensor& exp_avg,
                    Tensor& exp_avg_sq) {
  const char* op = "optimizer_step";
  DENSE_CHECK(values.dtype() == DType::F32 || values.dtype() == DType::F64,
              "{}: values are {}; master values must be f32 or f64", op, dtype_name(values.dtype()));
  const int64_t n = values.numel();
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{&values, "values"}, {&grads, "grads"},
                                {&exp_avg, "exp_avg"}, {&exp_avg_sq, "exp_avg_sq"}}) {
    check_contiguous(*t, op, name);
    check_like(values, {t}, op);
    DENSE_CHECK(t->numel() == n, "{}: {} has {} elements, values {}", op, name, t->numel(), n);
  }
  DENSE_CHECK(s.blocks && s.blocks->dtype() == DType::I64 && s.blocks->dim() == 2 && s.blocks->size(1) == 4,
              "{}: blocks must be i64 [nblocks, 4]", op);
  check_contiguous(*s.blocks, op, "blocks");
  check_same_device(*s.blocks, values, op);
  DENSE_CHECK(s.step >= 1, "{}: step {} must be >= 1", op, s.step);
  backend_for(values.device()).optimizer_step(s, values, grads, exp_avg, exp_avg_sq);
}

void rownorm_forward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor* bias, double eps, Tensor& y,
                     Tensor& stats) {
  check_contiguous(x, "rownorm_forward", "x");
  check_contiguous(y, "rownorm_forward", "y");
  const int64_t cols = x.size(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  DENSE_CHECK(y.numel() == x.numel(), "rownorm_forward: y {} does not match x {}", y.str(), x.str());
  check_same_dtype(x, y, "rownorm_forward");
  check_same_device(x, y, "rownorm_forward");
  check_same_device(x, stats, "rownorm_forward");
  DENSE_CHECK(stats.numel() == 2 * rows && stats.dtype() == rownorm_stats_dtype(x.dtype()),
              "rownorm_forward: stats must be {} [{}, 2]", dtype_name(rownorm_stats_dtype(x.dtype())), rows);
  if (gain) DENSE_CHECK(gain->numel() == cols, "rownorm_forward: gain {} for width {}", gain->str(), cols);
  if (bias) DENSE_CHECK(bias->numel() == cols, "rownorm_forward: bias {} for width {}", bias->str(), cols);
  const bool needs_gain = kind == RowNorm::ScaledMaxNorm || kind == RowNorm::PreScaledMaxNorm;
  DENSE_CHECK(!needs_gain || gain, "rownorm_forward: this norm needs a gain");
  if (x.numel()) backend_for(x.device()).rownorm_forward(kind, x, gain, bias, eps, y, stats);
}

void rownorm_backward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor& stats, const Tensor& dy,
                      double beta_dx, Tensor& dx, Tensor* dgain, Tensor* dbias) {
  const char* op = "rownorm_backward";
  check_contiguous(x, op, "x");
  check_contiguous(dy, op, "dy");
  check_contiguous(dx, op, "dx");
  DENSE_CHECK(dy.numel() == x.numel() && dx.numel() == x.numel(), "rownorm_backward: dy {} and dx {} must match x {}",
              dy.str(), dx.str(), x.str());
  check_like(x, {&dy, &dx}, op);
  const int64_t cols = x.size(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  DENSE_CHECK(stats.numel() == 2 * rows && stats.dtype() == rownorm_stats_dtype(x.dtype()),
              "rownorm_backward: stats must be {} [{}, 2] (from the forward), got {}",
              dtype_name(rownorm_stats_dtype(x.dtype())), rows, stats.str());
  check_contiguous(stats, op, "stats");
  check_same_device(x, stats, op);
  const bool needs_gain = kind == RowNorm::ScaledMaxNorm || kind == RowNorm::PreScaledMaxNorm;
  DENSE_CHECK(!needs_gain || gain, "rownorm_backward: this norm needs a gain");
  for (const Tensor* t : {gain, static_cast<const Tensor*>(dgain), static_cast<const Tensor*>(dbias)})
    if (t) DENSE_CHECK(t->numel() == cols, "rownorm_backward: {} for width {}", t->str(), cols);
  if (x.numel()) backend_for(x.device()).rownorm_backward(kind, x, gain, stats, dy, beta_dx, dx, dgain, dbias);
}

void gather_rows(const Tensor& table, const Tensor& ids, double beta, Tensor& out) {
  check_ids(ids, "gather_rows");
  check_contiguous(table, "gather_rows", "table");
  check_contiguous(out, "gather_rows", "out");
  DENSE_CHECK(table.dim() == 2 && out.numel() == ids.numel() * table.size(1),
              "gather_rows: table {} ids {} out {} do not fit", table.str(), ids.str(), out.str());
  if (ids.numel()) backend_for(table.device()).gather_rows(table, ids, beta, out);
}

Tensor gather_rows(const Tensor& table, const Tensor& ids) {
  Tensor out = Tensor::empty({ids.numel(), table.size(1)}, table.dtype(), table.device());
  gather_rows(table, ids, 0.0, out);
  return out;
}

void scatter_add_rows(const Tensor& src, const Tensor& ids, Tensor& table) {
  check_ids(ids, "scatter_add_rows");
  check_contiguous(src, "scatter_add_rows", "src");
  check_contiguous(table, "scatter_add_rows", "table");
  check_float(table, "scatter_add_rows");
  check_like(table, {&src}, "scatter_add_rows");
  check_same_device(table, ids, "scatter_add_rows");
  DENSE_CHECK(table.dim() == 2 && src.numel() == ids.numel() * table.size(1),
              "scatter_add_rows: src {} ids {} table {} do not fit", src.str(), ids.str(), table.str());
  if (ids.numel()) backend_for(table.device()).scatter_add_rows(src, ids, table);
}

Tensor positional_scale(const Tensor& x, const Tensor& table, const Tensor& positions) {
  check_contiguous(x, "positional_scale", "x");
  check_ids(positions, "positional_scale");
  DENSE_CHECK(table.dim() == 2 && table.size(1) == x.size(-1), "positional_scale: table {} for x {}", table.str(),
              x.str());
  const int64_t rows = x.numel() / x.size(-1);
  DENSE_CHECK(positions.numel() > 0 && rows % positions.numel() == 0,
              "positional_scale: {} rows are not a multiple of {} positions", rows, positions.numel());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) backend_for(x.device()).positional_scale(x, table, positions, y);
  return y;
}

Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& positions, bool inverse) {
  check_contiguous(x, "rope", "x");
  check_ids(positions, "rope");
  DENSE_CHECK(x.size(-1) % 2 == 0, "rope: last dim {} must be even", x.size(-1));
  DENSE_CHECK(cos.dim() == 2 && cos.size(1) == x.size(-1) && sin.shape() == cos.shape(),
              "rope: cos {} / sin {} for x {}", cos.str(), sin.str(), x.str());
  const int64_t rows = x.numel() / x.size(-1);
  DENSE_CHECK(positions.numel() > 0 && rows % positions.numel() == 0,
              "rope: {} rows are not a multiple of {} positions", rows, positions.numel());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel()) backend_for(x.device()).rope(x, cos, sin, positions, inverse, y);
  return y;
}

void band_mask(Tensor& s, int64_t lo, int64_t hi) {
  check_contiguous(s, "band_mask", "s");
  DENSE_CHECK(s.dim() >= 2, "band_mask: needs a matrix, got {}", s.str());
  if (s.numel()) backend_for(s.device()).band_mask(s, lo, hi);
}

void softmax_forward(const Tensor& s, double scale, const Tensor* key_valid, int64_t heads, Tensor& p) {
  check_contiguous(s, "softmax_forward", "s");
  check_contiguous(p, "softmax_forward", "p");
  DENSE_CHECK(s.dim() == 3 && p.shape() == s.shape(), "softmax_forward: s {} / p {} must be [groups, rows, cols]",
              s.str(), p.str());
  if (key_valid) {
    DENSE_CHECK(heads > 0 && s.size(0) % heads == 0 && key_valid->numel() == s.size(0) / heads * s.size(2),
                "softmax_forward: key mask {} does not fit scores {} with {} heads", key_valid->str(), s.str(), heads);
    check_same_dtype(s, *key_valid, "softmax_forward");
  }
  if (s.numel()) backend_for(s.device()).softmax_forward(s, scale, key_valid, heads, p);
}

void softmax_backward(const Tensor& p, const Tensor& dp, double scale, Tensor& ds) {
  const char* op = "softmax_backward";
  check_contiguous(p, op, "p");
  check_contiguous(dp, op, "dp");
  check_contiguous(ds, op, "ds");
  DENSE_CHECK(p.shape() == dp.shape() && ds.shape() == p.shape(), "softmax_backward: p {}, dp {} and ds {} must match",
              p.str(), dp.str(), ds.str());
  check_like(p, {&dp, &ds}, op);
  if (p.numel()) backend_for(p.device()).softmax_backward(p, dp, scale, ds);
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& lse) {
  const char* op = "cross_entropy";
  check_contiguous(logits, op, "logits");
  check_float(logits, op);
  DENSE_CHECK(labels.dtype() == DType::I64, "cross_entropy: labels must be i64, got {}", labels.str());
  DENSE_CHECK(logits.dim() == 2 && labels.numel() == logits.size(0) && loss.numel() == logits.size(0) &&
                  lse.numel() == logits.size(0),
              "cross_entropy: logits {} labels {} do not fit", logits.str(), labels.str());
  // A bf16 lse near 10 is off by up to 1/32, ~3% in exp(logit - lse): the statistics stay in the accumulator's
  // precision whatever the logits' dtype.
  const DType stat = accumulate_dtype(logits.dtype());
  DENSE_CHECK(loss.dtype() == stat && lse.dtype() == stat, "cross_entropy: loss {} and lse {} must be {} for {} logits",
              loss.str(), lse.str(), dtype_name(stat), dtype_name(logits.dtype()));
  check_contiguous(labels, op, "labels");
  check_contiguous(loss, op, "loss");
  check_contiguous(lse, op, "lse");
  check_same_device(logits, labels, op);
  check_same_device(logits, loss, op);
  check_same_device(logits, lse, op);
  if (logits.numel()) backend_for(logits.device()).cross_entropy_forward(logits, labels, loss, lse);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, double scale,
                            Tensor& dlogits) {
  const char* op = "cross_entropy_backward";
  check_contiguous(logits, op, "logits");
  check_contiguous(dlogits, op, "dlogits");
  DENSE_CHECK(dlogits.shape() == logits.shape(), "cross_entropy_backward: dlogits {} vs logits {}", dlogits.str(),
              logits.str());
  check_like(logits, {&dlogits}, op);
  DENSE_CHECK(labels.dtype() == DType::I64 && logits.dim() == 2 && labels.numel() == logits.size(0) &&
                  lse.numel() == logits.size(0),
              "cross_entropy_backward: logits {} labels {} lse {} do not fit", logits.str(), labels.str(), lse.str());
  DENSE_CHECK(lse.dtype() == accumulate_dtype(logits.dtype()), "cross_entropy_backward: lse {} must be {} for {} logits",
              lse.str(), dtype_name(accumulate_dtype(logits.dtype())), dtype_name(logits.dtype()));
  check_contiguous(labels, op, "labels");
  check_contiguous(lse, op, "lse");
  check_same_device(logits, labels, op);
  check_same_device(logits, lse, op);
  if (logits.numel()) backend_for(logits.device()).cross_entropy_backward(logits, labels, lse, scale, dlogits);
}

namespace {
void check_graph(const GraphRef& g, int64_t rows, int64_t keys, int64_t heads, const Tensor& like, const char* what) {
  if (g.implicit()) return;
  DENSE_CHECK(g.col != nullptr, "{}: CSR graph without column indices", what);
  DENSE_CHECK(g.groups == 1 || g.groups == heads, "{}: {} graphs for {} heads (expected 1 or one per head)", what,
              g.groups, heads);
  DENSE_CHECK(g.row_ptr->dtype() == DType::I64 && g.row_ptr->numel() == g.groups * (rows + 1),
              "{}: row_ptr {} must be i64 with groups x (rows + 1) = {} entries", what, g.row_ptr->str(),
              g.groups * (rows + 1));
  DENSE_CHECK(g.col->dtype() == DType::I32, "{}: col {} must be i32", what, g.col->str());
  DENSE_CHECK(g.rows == rows && g.keys == keys, "{}: the graph is {} x {} but there are {} queries and {} keys", what,
              g.rows, g.keys, rows, keys);
  DENSE_CHECK(keys <= INT32_MAX, "{}: {} keys do not fit i32 column indices", what, keys);
  check_contiguous(*g.row_ptr, what, "row_ptr");
  check_contiguous(*g.col, what, "col");
  check_same_device(*g.row_ptr, like, what);
  check_same_device(*g.col, like, what);
}

void check_graph_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const GraphRef& graph,
                           const Tensor* key_valid, int64_t heads, const Tensor* lse) {
  for (const Tensor* t : {&q, &k, &v}) {
    check_contiguous(*t, op, "q/k/v");
    check_same_dtype(*t, q, op);
    check_same_device(*t, q, op);
  }
  check_float(q, op);
  DENSE_CHECK(q.dim() == 3 && k.dim() == 3 && k.shape() == v.shape() && q.size(0) == k.size(0) &&
                  q.size(2) == k.size(2),
              "{}: q {} k {} v {} must be [B, Nq, d], [B, Nk, d], [B, Nk, d]", op, q.str(), k.str(), v.str());
  DENSE_CHECK(heads > 0 && q.size(2) % heads == 0, "{}: width {} is not divisible by {} heads", op, q.size(2), heads);
  check_graph(graph, q.size(1), k.size(1), heads, q, op);
  if (key_valid) {
    DENSE_CHECK(key_valid->numel() == k.size(0) * k.size(1), "{}: key mask {} does not fit keys {}", op,
                key_valid->str(), k.str());
    check_same_dtype(*key_valid, q, op);
    check_contiguous(*key_valid, op, "key_valid");
  }
  if (lse) {
    DENSE_CHECK(lse->dtype() == rownorm_stats_dtype(q.dtype()) && lse->numel() == q.size(0) * heads * q.size(1),
                "{}: lse {} must be {} [B, H, Nq] = [{}, {}, {}]", op, lse->str(),
                dtype_name(rownorm_stats_dtype(q.dtype())), q.size(0), heads, q.size(1));
    check_contiguous(*lse, op, "lse");
  }
}
}  // namespace

void graph_attention_forward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v, const GraphRef& graph,
                             const Tensor* key_valid, int64_t heads, double scale, Tensor& o, Tensor* lse) {
  check_graph_attention("graph_attention_forward", q, k, v, graph, key_valid, heads, lse);
  DENSE_CHECK(o.shape() == q.shape() && o.dtype() == q.dtype() && o.is_contiguous(),
              "graph_attention_forward: output {} must be a contiguous tensor like q {}", o.str(), q.str());
  if (q.numel()) backend_for(q.device()).graph_attention_forward(score, q, k, v, graph, key_valid, heads, scale, o, lse);
}

void graph_attention_backward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                              const GraphRef& graph, const GraphRef& transposed, const Tensor* key_valid,
                              int64_t heads, double scale, const Tensor& o, const Tensor& dout, const Tensor* lse,
                              Tensor& dq, Tensor& dk, Tensor& dv) {
  const char* op = "graph_attention_backward";
  check_graph_attention(op, q, k, v, graph, key_valid, heads, lse);
  DENSE_CHECK(graph.implicit() == transposed.implicit(), "{}: graph and its transpose must be of one kind", op);
  check_graph(transposed, k.size(1), q.size(1), heads, q, op);
  DENSE_CHECK(score != GraphScore::Softmax || lse != nullptr, "{}: the softmax backward needs lse", op);
  for (const Tensor* t : {&o, &dout, static_cast<const Tensor*>(&dq)}) DENSE_CHECK(t->shape() == q.shape() && t->dtype() == q.dtype() &&
                                                           t->is_contiguous(), "{}: {} must be contiguous like q {}",
                                                       op, t->str(), q.str());
  for (const Tensor* t : {static_cast<const Tensor*>(&dk), static_cast<const Tensor*>(&dv)}) DENSE_CHECK(t->shape() == k.shape() && t->dtype() == k.dtype() &&
                                                     t->is_contiguous(), "{}: {} must be contiguous like k {}", op,
                                                 t->str(), k.str());
  if (q.numel() == 0 && k.numel() == 0) return;
  backend_for(q.device()).graph_attention_backward(score, q, k, v, graph, transposed, key_valid, heads, scale, o,
                                                   dout, lse, dq, dk, dv);
}

void max_pool_forward(const Tensor& x, Tensor& out, Tensor& argmax) {
  check_contiguous(x, "max_pool", "x");
  DENSE_CHECK(x.dim() == 3 && out.numel() == x.size(0) * x.size(2) && argmax.dtype() == DType::I64 &&
                  argmax.numel() == out.numel(),
              "max_pool: x {} out {} argmax {}", x.str(), out.str(), argmax.str());
  backend_for(x.device()).max_pool_forward(x, out, argmax);
}

void max_pool_backward(const Tensor& dout, const Tensor& argmax, Tensor& dx) {
  DENSE_CHECK(dx.dim() == 3 && dout.numel() == dx.size(0) * dx.size(2), "max_pool_backward: dout {} dx {}",
              dout.str(), dx.str());
  DENSE_CHECK(argmax.dtype() == DType::I64 && argmax.numel() == dout.numel(),
              "max_pool_backward: argmax {} must be i64 with dout's {} elements", argmax.str(), dout.numel());
  check_contiguous(dout, "max_pool_backward", "dout");
  check_contiguous(dx, "max_pool_backward", "dx");
  check_like(dout, {&dx}, "max_pool_backward");
  check_same_device(argmax, dx, "max_pool_backward");
  backend_for(dx.device()).max_pool_backward(dout, argmax, dx);
}

void fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset) {
  check_contiguous(t, "fill_uniform", "t");
  if (t.numel()) backend_for(t.device()).fill_uniform(t, low, high, seed, offset);
}

void fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) {
  check_contiguous(t, "fill_normal", "t");
  if (t.numel()) backend_for(t.device()).fill_normal(t, mean, std, seed, offset);
}

}  // namespace dense::ops
