// The CUDA backend's host side: device discovery, the backend object (stream, cuBLAS handle, allocator,
// deferred-error word), memory and synchronisation, and the glue from Backend methods to the kernel launchers.
#include "backend/cuda/factory.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/backend.h"

namespace dense {

namespace cuda {

void throw_cuda_error(const char* call, const char* file, int line, int error) {
  const auto e = static_cast<cudaError_t>(error);
  throw Error(
      fmt::format("CUDA error {} ({}) from {} at {}:{}", cudaGetErrorName(e), cudaGetErrorString(e), call, file, line));
}

bool sync_after_launch() {
  static const bool on = [] {
    const char* v = std::getenv("DENSE_CUDA_SYNC");
    return v && std::string(v) == "1";
  }();
  return on;
}

void throw_cublas_error(const char* call, const char* file, int line, int status) {
  const auto s = static_cast<cublasStatus_t>(status);
  throw Error(fmt::format("cuBLAS error {} ({}) from {} at {}:{}", cublasGetStatusName(s), cublasGetStatusString(s),
                          call, file, line));
}

void throw_unsupported_dtype(const char* op, DType t) {
  throw Error(fmt::format("CUDA {}: dtype {} is not supported", op, dtype_name(t)));
}

namespace {

void set_device(int index) {
  int current = -1;
  DENSE_CUDA_CHECK(cudaGetDevice(&current));
  if (current != index) DENSE_CUDA_CHECK(cudaSetDevice(index));
}

void* device_alloc(int index, size_t bytes) {
  set_device(index);
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    // The allocator frees its cache and retries on nullptr; clear the error so it does not linger.
    (void)cudaGetLastError();
    return nullptr;
  }
  DENSE_CUDA_CHECK(e);
  return p;
}

void device_free(int index, void* p) noexcept {
  // Runs from destructors, possibly after the runtime has shut down at exit: failures are ignored.
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current != index) (void)cudaSetDevice(index);
  (void)cudaFree(p);
}

// Merges dims that are contiguous in both layouts (and drops size-1 dims) so that most copies run as one
// flat loop, and so that more than 8 logical dims still fit the kernel's fixed layout.
StridedLayout make_layout(const Shape& shape, const Shape& dst, const Shape& src) {
  std::vector<int64_t> sh, ds, ss;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sh.empty() && ds.back() == dst[d] * shape[d] && ss.back() == src[d] * shape[d]) {
      sh.back() *= shape[d];
      ds.back() = dst[d];
      ss.back() = src[d];
    } else {
      sh.push_back(shape[d]);
      ds.push_back(dst[d]);
      ss.push_back(src[d]);
    }
  }
  if (sh.empty()) {
    sh = {1};
    ds = {1};
    ss = {1};
  }
  DENSE_CHECK(sh.size() <= size_t(kMaxDims), "CUDA copy: {} non-mergeable dims (at most {} supported) in shape {}",
              sh.size(), kMaxDims, shape_str(shape));
  StridedLayout l;
  l.nd = int(sh.size());
  for (size_t d = 0; d < sh.size(); ++d) {
    l.shape[d] = sh[d];
    l.dst[d] = ds[d];
    l.src[d] = ss[d];
  }
  return l;
}

template <typename T>
uint64_t value_bits(double value) {
  // cpu::convert's rules: halves round through f32, everything else is a static_cast.
  T v;
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>)
    v = T(float(value));
  else
    v = static_cast<T>(value);
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}

uint64_t fill_pattern(DType t, double value) {
  switch (t) {
    case DType::F64: return value_bits<double>(value);
    case DType::F32: return value_bits<float>(value);
    case DType::BF16: return value_bits<bf16>(value);
    case DType::F16: return value_bits<f16>(value);
    case DType::I64: return value_bits<int64_t>(value);
    case DType::I32: return value_bits<int32_t>(value);
    case DType::I8: return value_bits<int8_t>(value);
    case DType::U8: return value_bits<uint8_t>(value);
  }
  return 0;
}

std::string deferred_error_message(const ErrorWord& w) {
  switch (w.code) {
    case kErrGatherId:
      return fmt::format("gather_rows: id {} at position {} is outside the table of {} rows", w.a, w.b, w.c);
    case kErrScatterId:
      return fmt::format("scatter_add_rows: id {} at position {} is outside the table of {} rows", w.a, w.b, w.c);
    case kErrPosition:
      return fmt::format("positional_scale: position {} (entry {}) outside the RelPE table of {} rows", w.a, w.b, w.c);
    case kErrRopePosition:
      return fmt::format("rope: position {} (entry {}) outside the RoPE cache of {} rows", w.a, w.b, w.c);
    case kErrLabel:
      return fmt::format("cross_entropy_forward: label {} of row {} is outside the {} classes", w.a, w.b, w.c);
    case kErrArgmax:
      return fmt::format("max_pool_backward: argmax {} at {} is outside the pooled length {}", w.a, w.b, w.c);
    default: return fmt::format("unknown deferred kernel error code {}", w.code);
  }
}

}  // namespace

void check_launch(const Ctx& ctx, const char* launcher, const char* file, int line) {
  const cudaError_t launch = cudaGetLastError();
  if (launch != cudaSuccess) [[unlikely]]
    throw_cuda_error(fmt::format("the launch of {}", launcher).c_str(), file, line, int(launch));
  if (!sync_after_launch()) return;
  const cudaError_t run = cudaStreamSynchronize(ctx.stream);
  if (run != cudaSuccess)
    throw_cuda_error(fmt::format("the kernels of {} (DENSE_CUDA_SYNC=1)", launcher).c_str(), file, line, int(run));
  if (!ctx.error) return;
  ErrorWord w{};
  DENSE_CUDA_CHECK(cudaMemcpy(&w, ctx.error, sizeof(ErrorWord), cudaMemcpyDeviceToHost));
  if (w.code == kErrNone) return;
  DENSE_CUDA_CHECK(cudaMemset(ctx.error, 0, sizeof(ErrorWord)));
  throw Error(fmt::format("{} (CUDA kernel error raised by {} at {}:{}, DENSE_CUDA_SYNC=1)", deferred_error_message(w),
                          launcher, file, line));
}

// ---- lifetime -------------------------------------------------------------------------------------------

CudaBackend::CudaBackend(int index)
    : index_(index),
      allocator_([index](size_t bytes) { return device_alloc(index, bytes); },
                 [index](void* p) { device_free(index, p); }) {
  const char* tf32 = std::getenv("DENSE_ALLOW_TF32");
  allow_tf32_ = tf32 && std::string(tf32) == "1";
  try {
    activate();
    DENSE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    DENSE_CUBLAS_CHECK(cublasCreate(&cublas_));
    DENSE_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // No reduced-precision split-K reductions for half outputs: accumulation stays f32 throughout.
    DENSE_CUBLAS_CHECK(cublasSetMathMode(
        cublas_, cublasMath_t(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    DENSE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&error_dev_), sizeof(ErrorWord)));
    DENSE_CUDA_CHECK(cudaMemsetAsync(error_dev_, 0, sizeof(ErrorWord), stream_));
    DENSE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&error_host_), sizeof(ErrorWord)));
    DENSE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  } catch (...) {
    release();
    throw;
  }
}

CudaBackend::~CudaBackend() { release(); }

void CudaBackend::release() noexcept {
  // At process exit the runtime may already be gone; nothing here may throw.
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current != index_) (void)cudaSetDevice(index_);
  if (stream_) (void)cudaStreamSynchronize(stream_);
  if (cublas_) (void)cublasDestroy(cublas_);
  if (error_dev_) (void)cudaFree(error_dev_);
  if (error_host_) (void)cudaFreeHost(error_host_);
  if (stream_) (void)cudaStreamDestroy(stream_);
  cublas_ = nullptr;
  error_dev_ = nullptr;
  error_host_ = nullptr;
  stream_ = nullptr;
}

void CudaBackend::shutdown() noexcept {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current != index_) (void)cudaSetDevice(index_);
  if (stream_) (void)cudaStreamSynchronize(stream_);
  allocator_.release_cached();
  release();
}

void CudaBackend::activate() const { set_device(index_); }

Ctx CudaBackend::ctx(bool may_report) {
  if (may_report) error_pending_.store(true, std::memory_order_relaxed);
  return Ctx{stream_, error_dev_, &allocator_};
}

void CudaBackend::sync_and_check() {
  const bool pending = error_pending_.exchange(false);
  if (pending)
    DENSE_CUDA_CHECK(cudaMemcpyAsync(error_host_, error_dev_, sizeof(ErrorWord), cudaMemcpyDeviceToHost, stream_));
  DENSE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (pending && error_host_->code != kErrNone) {
    const ErrorWord w = *error_host_;
    DENSE_CUDA_CHECK(cudaMemsetAsync(error_dev_, 0, sizeof(ErrorWord), stream_));
    DENSE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    throw Error(fmt::format("{} (CUDA kernel error on {}, raised at the next synchronisation)",
                            deferred_error_message(w), device().str()));
  }
}

void CudaBackend::synchronize() {
  activate();
  sync_and_check();
}

// ---- memory ----------------------------------------------------------------------------------------------

void CudaBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  activate();
  DENSE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  // The source is usually pageable memory that the caller frees right after: the copy must have read it.
  sync_and_check();
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  activate();
  DENSE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  sync_and_check();
}

void CudaBackend::copy(Tensor& dst, const Tensor& src) {
  activate();
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    DENSE_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  const StridedLayout layout = make_layout(dst.shape(), dst.strides(), src.strides());
  cuda::copy_convert(ctx(), dst.dtype(), dst.raw_data(), src.dtype(), src.raw_data(), layout, n);
}

void CudaBackend::fill(Tensor& t, double value) {
  activate();
  const int64_t n = t.numel();
  if (n == 0) return;
  const StridedLayout layout = make_layout(t.shape(), t.strides(), t.strides());
  fill_bits(ctx(), dtype_size(t.dtype()), t.raw_data(), fill_pattern(t.dtype(), value), layout, n);
}

void CudaBackend::fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset) {
  activate();
  cuda::fill_uniform(ctx(), t.dtype(), t.raw_data(), t.numel(), low, high, seed, offset);
}

void CudaBackend::fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) {
  activate();
  cuda::fill_normal(ctx(), t.dtype(), t.raw_data(), t.numel(), mean, std, seed, offset);
}

// ---- element-wise ------------------------------------------------------------------------------------------

void CudaBackend::binary(BinaryOp op, Broadcast bcast, double alpha, const Tensor& a, const Tensor& b, double beta,
                         Tensor& out) {
  activate();
  const int64_t cols = a.dim() ? a.size(-1) : 1;
  cuda::binary(ctx(), a.dtype(), op, bcast, alpha, a.raw_data(), b.raw_data(), beta, out.raw_data(), a.numel(), cols);
}

void CudaBackend::activation_forward(Activation act, double slope, const Tensor& x, Tensor& y) {
  activate();
  cuda::activation_forward(ctx(), x.dtype(), act, slope, x.raw_data(), y.raw_data(), x.numel());
}

void CudaBackend::activation_backward(Activation act, double slope, const Tensor& x, const Tensor& dy, double beta,
                                      Tensor& dx) {
  activate();
  cuda::activation_backward(ctx(), x.dtype(), act, slope, x.raw_data(), dy.raw_data(), beta, dx.raw_data(), x.numel());
}

void CudaBackend::dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& y) {
  activate();
  cuda::dropout(ctx(), x.dtype(), x.raw_data(), p, seed, offset, y.raw_data(), x.numel());
}

void CudaBackend::sum_rows(const Tensor& x, int64_t outer, int64_t rows, double alpha, double beta, Tensor& out) {
  activate();
  const int64_t cols = x.numel() / (outer * rows);
  cuda::sum_rows(ctx(), x.dtype(), x.raw_data(), outer, rows, cols, alpha, beta, out.raw_data());
}

double CudaBackend::reduce(Reduction r, const Tensor& x) {
  activate();
  const int64_t n = x.numel();
  const int64_t nblocks = reduce_blocks(n);
  if (nblocks == 0) return 0.0;
  std::vector<double> host(size_t(nblocks), 0.0);
  {
    Scratch partials(&allocator_, size_t(nblocks) * sizeof(double));
    reduce_partials(ctx(), x.dtype(), r, x.raw_data(), n, partials.as<double>());
    DENSE_CUDA_CHECK(cudaMemcpyAsync(host.data(), partials.as<double>(), host.size() * sizeof(double),
                                     cudaMemcpyDeviceToHost, stream_));
    sync_and_check();
  }
  // Block results combined in block order, as on the CPU.
  double result = 0.0;
  for (double v : host) result = r == Reduction::MaxAbs ? (result < v ? v : result) : result + v;
  return result;
}

void CudaBackend::scale_in_place(Tensor& x, double factor) {
  activate();
  cuda::scale_in_place(ctx(), x.dtype(), x.raw_data(), x.numel(), factor);
}

// ---- optimizers -----------------------------------------------------------------------------------------------

void CudaBackend::optimizer_step(const OptimizerStep& s, Tensor& values, const Tensor& grads, Tensor& exp_avg,
                                 Tensor& exp_avg_sq) {
  activate();
  const OptimizerArgs a{s.lamb,
                        s.lr,
                        s.beta1,
                        s.beta2,
                        s.eps,
                        s.weight_decay,
                        s.step,
                        static_cast<const int64_t*>(s.blocks->raw_data()),
                        s.blocks->size(0)};
  cuda::optimizer_step(ctx(), values.dtype(), a, values.raw_data(), grads.raw_data(), exp_avg.raw_data(),
                       exp_avg_sq.raw_data());
}

// ---- normalisations ------------------------------------------------------------------------------------------

void CudaBackend::rownorm_forward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor* bias, double eps,
                                  Tensor& y, Tensor& stats) {
  activate();
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  cuda::rownorm_forward(ctx(), x.dtype(), kind, x.raw_data(), gain ? gain->raw_data() : nullptr,
                        bias ? bias->raw_data() : nullptr, eps, y.raw_data(), stats.raw_data(), rows, cols);
}

void CudaBackend::rownorm_backward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor& stats,
                                   const Tensor& dy, double beta_dx, Tensor& dx, Tensor* dgain, Tensor* dbias) {
  activate();
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  cuda::rownorm_backward(ctx(), x.dtype(), kind, x.raw_data(), gain ? gain->raw_data() : nullptr, stats.raw_data(),
                         dy.raw_data(), beta_dx, dx.raw_data(), dgain ? dgain->raw_data() : nullptr,
                         dbias ? dbias->raw_data() : nullptr, rows, cols);
}

// ---- gathers and positions ------------------------------------------------------------------------------------

void CudaBackend::gather_rows(const Tensor& table, const Tensor& ids, double beta, Tensor& out) {
  activate();
  cuda::gather_rows(ctx(true), table.dtype(), table.raw_data(), table.size(0), table.size(1), ids.raw_data(),
                    ids.dtype() == DType::I64, ids.numel(), beta, out.raw_data());
}

void CudaBackend::scatter_add_rows(const Tensor& src, const Tensor& ids, Tensor& table) {
  activate();
  const bool half = table.dtype() == DType::BF16 || table.dtype() == DType::F16;
  if (!half) {
    cuda::scatter_add_rows(ctx(true), table.dtype(), src.raw_data(), ids.raw_data(), ids.dtype() == DType::I64,
                           ids.numel(), table.raw_data(), false, table.size(0), table.size(1));
    return;
  }
  // Accumulate in an f32 copy and round once: a half entry rounded after every addition stops growing once it
  // is ~256x its addends ([MASK] in a large batch). Untouched rows round-trip exactly through f32.
  Tensor accum = table.to(DType::F32);
  cuda::scatter_add_rows(ctx(true), table.dtype(), src.raw_data(), ids.raw_data(), ids.dtype() == DType::I64,
                         ids.numel(), accum.raw_data(), true, table.size(0), table.size(1));
  copy(table, accum);
}

void CudaBackend::positional_scale(const Tensor& x, const Tensor& table, const Tensor& positions, Tensor& y) {
  activate();
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  // f32 tables are read directly (rounded to x's dtype in the kernel); any other dtype is converted first.
  const bool table_f32 = table.dtype() == DType::F32 && x.dtype() != DType::F32;
  const Tensor tab = (table.dtype() == x.dtype() || table_f32) ? table.contiguous() : table.to(x.dtype()).contiguous();
  cuda::positional_scale(ctx(true), x.dtype(), x.raw_data(), rows, cols, tab.raw_data(), table_f32, tab.size(0),
                         positions.raw_data(), positions.dtype() == DType::I64, positions.numel(), y.raw_data());
}

void CudaBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& positions, bool inverse,
                       Tensor& y) {
  activate();
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  const bool table_f32 = cos.dtype() == DType::F32 && sin.dtype() == DType::F32 && x.dtype() != DType::F32;
  auto prepare = [&](const Tensor& t) {
    return (t.dtype() == x.dtype() || table_f32) ? t.contiguous() : t.to(x.dtype()).contiguous();
  };
  const Tensor tc = prepare(cos), ts = prepare(sin);
  cuda::rope(ctx(true), x.dtype(), x.raw_data(), rows, cols, tc.raw_data(), ts.raw_data(), table_f32, tc.size(0),
             positions.raw_data(), positions.dtype() == DType::I64, positions.numel(), inverse, y.raw_data());
}

void CudaBackend::band_mask(Tensor& s, int64_t lo, int64_t hi) {
  activate();
  const int64_t cols = s.size(-1), rows = s.size(-2);
  cuda::band_mask(ctx(), s.dtype(), s.raw_data(), s.numel() / (rows * cols), rows, cols, lo, hi);
}

// ---- softmax attention and losses ------------------------------------------------------------------------------

void CudaBackend::softmax_forward(const Tensor& s, double scale, const Tensor* key_valid, int64_t heads, Tensor& p) {
  activate();
  cuda::softmax_forward(ctx(), s.dtype(), s.raw_data(), s.size(0), s.size(1), s.size(2), scale,
                        key_valid ? key_valid->raw_data() : nullptr, heads, p.raw_data());
}

void CudaBackend::softmax_backward(const Tensor& p, const Tensor& dp, double scale, Tensor& ds) {
  activate();
  const int64_t cols = p.size(-1), rows = p.numel() / cols;
  cuda::softmax_backward(ctx(), p.dtype(), p.raw_data(), dp.raw_data(), rows, cols, scale, ds.raw_data());
}

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& lse) {
  activate();
  cuda::cross_entropy_forward(ctx(true), logits.dtype(), logits.raw_data(),
                              static_cast<const int64_t*>(labels.raw_data()), logits.size(0), logits.size(1),
                              loss.raw_data(), lse.raw_data());
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, double scale,
                                         Tensor& dlogits) {
  activate();
  cuda::cross_entropy_backward(ctx(), logits.dtype(), logits.raw_data(), static_cast<const int64_t*>(labels.raw_data()),
                               lse.raw_data(), logits.size(0), logits.size(1), scale, dlogits.raw_data());
}

void CudaBackend::max_pool_forward(const Tensor& x, Tensor& out, Tensor& argmax) {
  activate();
  cuda::max_pool_forward(ctx(), x.dtype(), x.raw_data(), x.size(0), x.size(1), x.size(2), out.raw_data(),
                         static_cast<int64_t*>(argmax.raw_data()));
}

void CudaBackend::max_pool_backward(const Tensor& dout, const Tensor& argmax, Tensor& dx) {
  activate();
  cuda::max_pool_backward(ctx(true), dx.dtype(), dout.raw_data(), static_cast<const int64_t*>(argmax.raw_data()),
                          dx.size(0), dx.size(1), dx.size(2), dx.raw_data());
}

namespace {
GraphArgs graph_args(const GraphRef& g) {
  if (g.implicit()) return GraphArgs{nullptr, nullptr, 1, g.band_lo, g.band_hi};
  return GraphArgs{static_cast<const int64_t*>(g.row_ptr->raw_data()), static_cast<const int32_t*>(g.col->raw_data()),
                   g.groups, 0, 0};
}
void check_head_size(const Tensor& q, int64_t heads, const char* op) {
  DENSE_CHECK(q.size(2) / heads <= kGraphMaxHead, "CUDA {}: head size {} is above the kernel's {}", op,
              q.size(2) / heads, kGraphMaxHead);
}
}  // namespace

void CudaBackend::graph_attention_forward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                                          const GraphRef& graph, const Tensor* key_valid, int64_t heads, double scale,
                                          Tensor& o, Tensor* lse) {
  activate();
  check_head_size(q, heads, "graph_attention_forward");
  cuda::graph_attention_forward(ctx(), q.dtype(), score == GraphScore::Softmax, q.raw_data(), k.raw_data(),
                                v.raw_data(), graph_args(graph), key_valid ? key_valid->raw_data() : nullptr, q.size(0),
                                q.size(1), k.size(1), heads, q.size(2) / heads, scale, o.raw_data(),
                                lse ? lse->raw_data() : nullptr);
}

void CudaBackend::graph_attention_backward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                                           const GraphRef& graph, const GraphRef& transposed, const Tensor* key_valid,
                                           int64_t heads, double scale, const Tensor& o, const Tensor& dout,
                                           const Tensor* lse, Tensor& dq, Tensor& dk, Tensor& dv) {
  activate();
  check_head_size(q, heads, "graph_attention_backward");
  cuda::graph_attention_backward(ctx(), q.dtype(), score == GraphScore::Softmax, q.raw_data(), k.raw_data(),
                                 v.raw_data(), graph_args(graph), graph_args(transposed),
                                 key_valid ? key_valid->raw_data() : nullptr, q.size(0), q.size(1), k.size(1), heads,
                                 q.size(2) / heads, scale, o.raw_data(), dout.raw_data(),
                                 lse ? lse->raw_data() : nullptr, dq.raw_data(), dk.raw_data(), dv.raw_data());
}

}  // namespace cuda

// ---- registry entry points -----------------------------------------------------------------------------------

std::unique_ptr<Backend> make_cuda_backend(int index) { return std::make_unique<cuda::CudaBackend>(index); }

void* cuda_compute_stream(int index) {
  return static_cast<cuda::CudaBackend&>(backend_for(Device::cuda(index))).stream();
}

int cuda_device_count() {
  // Fixed for the life of the process; asked once because the registry calls this on every CUDA dispatch.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no device: not an error for a CPU-only run
      return 0;
    }
    return n;
  }();
  return count;
}

}  // namespace dense
