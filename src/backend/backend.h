#pragma once
// The one interface every compute backend implements (ggml-style). Kernels take tensors that the ops layer
// (backend/ops.h) has already checked for shape, dtype and device, so a backend only computes. Unless a
// kernel says otherwise, tensors are contiguous and floating tensors share one dtype (f64, f32, bf16, f16);
// reduced precision is loaded into f32 and accumulated there.
//
// `beta` arguments follow BLAS: out = result + beta * out, with beta == 0 meaning "overwrite" (out may hold
// garbage or NaN). Gradient kernels take beta = 1 to accumulate with +=.
#include <cstdint>

#include "backend/op_types.h"
#include "core/allocator.h"
#include "core/device.h"
#include "core/tensor.h"

namespace dense {

// A (batched) matrix operand of a row-major GEMM. Matrix i starts at data + i * batch_stride (elements);
// ld is the row stride. batch_stride 0 broadcasts one matrix over the batch.
struct MatRef {
  const void* data;
  int64_t ld;
  int64_t batch_stride;
};
struct MutMatRef {
  void* data;
  int64_t ld;
  int64_t batch_stride;
};

// One fused optimizer update over a flat parameter arena (train/optimizer.h has the formulas). The arena is
// cut into blocks that never straddle two parameters: `blocks` is I64 [nblocks, 4] = {begin, end, range,
// decay} on the arena's device, a range's blocks consecutive, decay 1 where weight decay applies. Per-range
// sums (LAMB's norms) are sums of per-block partials in block order, so the result does not depend on how a
// backend schedules the blocks.
struct OptimizerStep {
  bool lamb = false;  // LAMB (trust ratio per range) instead of AdamW
  double lr = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;  // 1-based update count, for the bias corrections
  const Tensor* blocks = nullptr;
};

// A query -> keys graph for graph attention kernels: either explicit CSR (row_ptr I64 [groups, rows + 1] of
// absolute offsets into col, I32 [nnz]; groups is 1, shared by all heads, or one graph per head), or, when
// row_ptr is null, the implicit band of keys j with band_lo <= j - i <= band_hi (clipped to the sequence),
// which needs no index memory at all (the 50M-token sliding window).
struct GraphRef {
  const Tensor* row_ptr = nullptr;
  const Tensor* col = nullptr;
  int64_t groups = 1;
  int64_t rows = 0, keys = 0;  // the CSR's shape (queries x keys), checked against the tensors
  int64_t band_lo = 0, band_hi = 0;
  bool implicit() const { return row_ptr == nullptr; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual CachingAllocator& allocator() = 0;
  // Waits for queued work and gives back what the device runtime holds for this backend (streams, library
  // handles, cached memory) while the runtime is certainly alive. Nothing may run on it afterwards.
  virtual void shutdown() noexcept {}

  // ---- memory ----------------------------------------------------------------------------------
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  // dst = src element-wise with dtype conversion; both may be strided (up to 8 dims), same shape.
  virtual void copy(Tensor& dst, const Tensor& src) = 0;
  virtual void fill(Tensor& t, double value) = 0;
  // Philox draws identical on every backend: element i of a contiguous tensor uses counter offset + i/4
  // (uniform) or offset + i/2 (normal), see core/philox.h.
  virtual void fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset) = 0;
  virtual void fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) = 0;
  virtual void synchronize() = 0;

  // ---- dense linear algebra ---------------------------------------------------------------------
  // C_i = alpha * op(A_i) op(B_i) + beta * C_i for i < batch; op(A) is m x k, op(B) is k x n, row-major.
  virtual void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, MatRef a,
                    MatRef b, double beta, MutMatRef c, int64_t batch) = 0;

  // ---- element-wise -----------------------------------------------------------------------------
  // out = alpha * (a op b) + beta * out; b broadcast against a viewed as [rows, cols] (cols = a.size(-1)).
  virtual void binary(BinaryOp op, Broadcast bcast, double alpha, const Tensor& a, const Tensor& b, double beta,
                      Tensor& out) = 0;
  // y = act(x) (slope: LeakyRelu's negative slope).
  virtual void activation_forward(Activation act, double slope, const Tensor& x, Tensor& y) = 0;
  // dx = act'(x) * dy + beta * dx.
  virtual void activation_backward(Activation act, double slope, const Tensor& x, const Tensor& dy, double beta,
                                   Tensor& dx) = 0;
  // y = x * keep / (1 - p), keep from Philox (seed, offset); the same call with dy gives the backward.
  virtual void dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& y) = 0;
  // out[c] = sum over rows of x viewed [outer, rows, cols] -> out [outer, cols], times alpha, + beta * out.
  virtual void sum_rows(const Tensor& x, int64_t outer, int64_t rows, double alpha, double beta, Tensor& out) = 0;
  // Whole-tensor reductions, returned to the host: f64 sums over fixed blocks of 4096 elements, combined in
  // block order.
  virtual double reduce(Reduction r, const Tensor& x) = 0;
  // x *= factor in place, each element computed in f64 and rounded once (the loss scaler's unscale, clipping).
  virtual void scale_in_place(Tensor& x, double factor) = 0;

  // ---- optimizers -------------------------------------------------------------------------------
  // values, grads, exp_avg, exp_avg_sq: contiguous [numel], all f32 or all f64; arithmetic in f64.
  virtual void optimizer_step(const OptimizerStep& s, Tensor& values, const Tensor& grads, Tensor& exp_avg,
                              Tensor& exp_avg_sq) = 0;

  // ---- normalisations ---------------------------------------------------------------------------
  virtual void rownorm_forward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor* bias, double eps,
                               Tensor& y, Tensor& stats) = 0;
  // dx = ∂/∂x + beta_dx * dx; dgain += ...; dbias += ... (null when absent).
  virtual void rownorm_backward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor& stats,
                                const Tensor& dy, double beta_dx, Tensor& dx, Tensor* dgain, Tensor* dbias) = 0;

  // ---- gathers and positions --------------------------------------------------------------------
  // out[i, :] = table[ids[i], :] + beta * out[i, :]; ids i64 (or i32), every id in [0, rows of table).
  virtual void gather_rows(const Tensor& table, const Tensor& ids, double beta, Tensor& out) = 0;
  // table[ids[i], :] += src[i, :]; deterministic (no float atomics on the CPU).
  virtual void scatter_add_rows(const Tensor& src, const Tensor& ids, Tensor& table) = 0;
  // Diagonal RelPE: y[r, :] = x[r, :] * table[positions[r % P], :] (P = positions.numel()); table f32 or x's dtype.
  virtual void positional_scale(const Tensor& x, const Tensor& table, const Tensor& positions, Tensor& y) = 0;
  // RoPE over the whole last dim D (half split): y = x*cos + rot(x)*sin, rot(x) = [-x[D/2:], x[:D/2]].
  // inverse applies the transpose (the backward): y = x*cos - rot(x*sin).
  virtual void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& positions, bool inverse,
                    Tensor& y) = 0;
  // Keeps the entries of each [rows, cols] matrix with j - i >= lo and j - i <= hi (others set to 0).
  virtual void band_mask(Tensor& s, int64_t lo, int64_t hi) = 0;

  // ---- softmax attention and losses --------------------------------------------------------------
  // p = softmax(scale * s) over the last dim, for s [groups, rows, cols]; key_valid ([groups / heads, cols],
  // nonzero = attend; group g uses row g / heads) masks keys; a row with no valid key gives zeros.
  virtual void softmax_forward(const Tensor& s, double scale, const Tensor* key_valid, int64_t heads, Tensor& p) = 0;
  // ds = scale * p * (dp - sum(dp * p)) (overwrites ds).
  virtual void softmax_backward(const Tensor& p, const Tensor& dp, double scale, Tensor& ds) = 0;
  // Per-row cross entropy of logits [R, V] against labels [R] (i64; < 0 ignored): loss[r] (0 when
  // ignored) and lse[r] for the backward.
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& lse) = 0;
  // dlogits = scale * (softmax(logits) - onehot(label)) for rows with a label, 0 elsewhere (overwrites).
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, double scale,
                                      Tensor& dlogits) = 0;
  // ---- graph (sparse) attention (Tomczak & Kuppannagari 2025): only nnz·e multiply-adds --------------
  // q [B, Nq, H·e], k and v [B, Nk, H·e] (contiguous; head h is columns h·e .. h·e+e), key_valid [B, Nk] in
  // q's dtype or null. o [B, Nq, H·e] may alias q (each row reads only its own query). lse [B, H, Nq] (f64 for
  // f64, else f32; may be null) is written for Softmax: -inf on rows without a valid neighbour, whose o is 0.
  virtual void graph_attention_forward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const GraphRef& graph, const Tensor* key_valid, int64_t heads, double scale,
                                       Tensor& o, Tensor* lse) = 0;
  // Gradients (overwritten). `transposed` is the graph with queries and keys swapped (keys -> the queries that
  // see them), so dK and dV are accumulated per key row without atomics. For Softmax, o and lse are the
  // *final* outputs of the rows (for CQS workers: of the whole sequence, not of the worker's part), so that
  // partial gradients over disjoint edge sets add up to the full gradient.
  virtual void graph_attention_backward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const GraphRef& graph, const GraphRef& transposed, const Tensor* key_valid,
                                        int64_t heads, double scale, const Tensor& o, const Tensor& dout,
                                        const Tensor* lse, Tensor& dq, Tensor& dk, Tensor& dv) = 0;

  // Pooling over the middle dim of x [B, N, d]: max with argmax (i64 [B, d]) and its backward (accumulates).
  virtual void max_pool_forward(const Tensor& x, Tensor& out, Tensor& argmax) = 0;
  virtual void max_pool_backward(const Tensor& dout, const Tensor& argmax, Tensor& dx) = 0;
};

// The backend for a device (created on first use). Throws if the device is not compiled in or not present.
Backend& backend_for(Device device);
// Shuts down every accelerator backend made so far (idempotent; a later backend_for makes a fresh one). Static
// destructors run after the CUDA runtime may have unloaded, so no backend is ever destroyed by one: the programs
// call this before main returns, and it is registered with atexit once the first CUDA backend exists (after the
// runtime's own exit handler, so it runs before it). Tensors freed later go to the retired backend's cache.
void release_backends() noexcept;
// Declared first in a program's main: shuts the accelerator backends down when main returns or throws.
struct BackendsReleaser {
  BackendsReleaser() = default;
  BackendsReleaser(const BackendsReleaser&) = delete;
  BackendsReleaser& operator=(const BackendsReleaser&) = delete;
  ~BackendsReleaser() { release_backends(); }
};
bool cuda_available();  // compiled with CUDA and at least one device present
int cuda_device_count();
// The stream every kernel of cuda:`index` runs on (a cudaStream_t): engines that run on streams of their own
// (NCCL) order their work against it with events, never by synchronising the host. Defined only when built with
// CUDA (backend/cuda/backend.cpp).
void* cuda_compute_stream(int index);

// Threads used by the CPU backend's OpenMP kernels and OpenBLAS (both set together so they never oversubscribe;
// backend/cpu/backend.cpp). Declared here so that the layers above never include a concrete backend.
void set_cpu_threads(int threads);
int cpu_threads();

}  // namespace dense
