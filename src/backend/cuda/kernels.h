#pragma once
// The launcher interface between the CUDA backend's host glue (.cpp, compiled by g++) and its kernels (.cu,
// compiled by nvcc). It must stay free of backend.h / tensor.h: those pull in fmt 9, whose headers do not
// compile under nvcc 13, so the glue unpacks tensors into pointers and sizes and the kernels see only these.
// The op enums (Activation, RowNorm, ...) are the ones of backend/op_types.h, shared with ops and the CPU.
//
// Every launcher enqueues work on ctx.stream and returns without synchronising. Kernels that index with
// caller-provided ids never touch memory outside the tensors: a bad id is skipped and reported through
// ctx.error, which the backend checks at its next synchronisation point.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "backend/op_types.h"
#include "core/allocator.h"
#include "core/dtype.h"

namespace dense::cuda {

[[noreturn]] void throw_cuda_error(const char* call, const char* file, int line, int error);
[[noreturn]] void throw_unsupported_dtype(const char* op, DType t);

#define DENSE_CUDA_CHECK(call)                                                                       \
  do {                                                                                               \
    const cudaError_t dense_cuda_err_ = (call);                                                      \
    if (dense_cuda_err_ != cudaSuccess) [[unlikely]]                                                 \
      ::dense::cuda::throw_cuda_error(#call, __FILE__, __LINE__, static_cast<int>(dense_cuda_err_)); \
  } while (0)

// A deferred kernel error, in device memory. The first failing thread claims it (code != 0) and records
// three numbers whose meaning depends on the code.
enum ErrorCode : int {
  kErrNone = 0,
  kErrGatherId = 1,   // a = id, b = position, c = table rows
  kErrScatterId = 2,  // a = id, b = position, c = table rows
  kErrPosition = 3,   // a = position, b = index in positions, c = table rows
  kErrRopePosition = 4,
  kErrLabel = 5,   // a = label, b = row, c = classes
  kErrArgmax = 6,  // a = argmax, b = flat index, c = pooled length
};
struct ErrorWord {
  int code;
  int pad;
  long long a, b, c;
};

struct Ctx {
  cudaStream_t stream;
  ErrorWord* error;         // device memory
  CachingAllocator* alloc;  // device memory for temporaries (safe to free after enqueueing: one stream)
};

// Called after a launcher enqueues its kernels: throws on a launch error. Kernels run asynchronously, so a fault
// inside one surfaces at some later synchronisation, named after whatever call happened to synchronise; with
// DENSE_CUDA_SYNC=1 in the environment every launcher also synchronises its stream and checks both the run and
// the deferred error word, so the message names the launcher (and its file and line) that faulted. For
// debugging only: it serialises the host with the device.
void check_launch(const Ctx& ctx, const char* launcher, const char* file, int line);
bool sync_after_launch();

// Device temporaries from the backend's caching allocator. Freeing right after enqueueing is safe because
// every kernel runs on the backend's one stream, so a later user of the block runs after ours.
class Scratch {
 public:
  Scratch(CachingAllocator* alloc, size_t bytes) : alloc_(alloc), ptr_(alloc->allocate(bytes)) {}
  ~Scratch() { alloc_->deallocate(ptr_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  CachingAllocator* alloc_;
  void* ptr_;
};

// Up to 8 dims after merging; strides in elements.
constexpr int kMaxDims = 8;
struct StridedLayout {
  int nd = 0;
  int64_t shape[kMaxDims] = {};
  int64_t dst[kMaxDims] = {};
  int64_t src[kMaxDims] = {};
};

// ---- memory (memory.cu) --------------------------------------------------------------------------
void copy_convert(const Ctx& ctx, DType dst_type, void* dst, DType src_type, const void* src,
                  const StridedLayout& layout, int64_t n);
// Writes the `elem_size`-byte pattern `bits` to every element of the (dst-)strided layout.
void fill_bits(const Ctx& ctx, size_t elem_size, void* dst, uint64_t bits, const StridedLayout& layout, int64_t n);
void fill_uniform(const Ctx& ctx, DType t, void* dst, int64_t n, double low, double high, uint64_t seed,
                  uint64_t offset);
void fill_normal(const Ctx& ctx, DType t, void* dst, int64_t n, double mean, double std, uint64_t seed,
                 uint64_t offset);

// ---- GEMM (gemm.cu; the products go through cuBLAS in gemm.cpp) ---------------------------------
// C_i = beta * C_i (0 when beta == 0) for the GEMM with k == 0.
void scale_matrices(const Ctx& ctx, DType t, void* c, int64_t m, int64_t n, int64_t ldc, int64_t stride, int64_t batch,
                    double beta);

// ---- element-wise and reductions (elementwise.cu) -------------------------------------------------
void binary(const Ctx& ctx, DType t, BinaryOp op, Broadcast bcast, double alpha, const void* a, const void* b,
            double beta, void* out, int64_t n, int64_t cols);
void activation_forward(const Ctx& ctx, DType t, Activation act, double slope, const void* x, void* y, int64_t n);
void activation_backward(const Ctx& ctx, DType t, Activation act, double slope, const void* x, const void* dy,
                         double beta, void* dx, int64_t n);
void dropout(const Ctx& ctx, DType t, const void* x, double p, uint64_t seed, uint64_t offset, void* y, int64_t n);
void sum_rows(const Ctx& ctx, DType t, const void* x, int64_t outer, int64_t rows, int64_t cols, double alpha,
              double beta, void* out);
// Whole-tensor reduction in two steps: reduce_partials writes reduce_blocks(n) doubles, one per fixed block of
// elements, which the caller combines in order on the host (the CPU backend's blocking and block order; inside
// a block the sum is a fixed tree, so Sum and SumSquares agree with the CPU to rounding, run-to-run identical).
int64_t reduce_blocks(int64_t n);
void reduce_partials(const Ctx& ctx, DType t, Reduction r, const void* x, int64_t n, double* partials);
// x *= factor, each element in f64, rounded once.
void scale_in_place(const Ctx& ctx, DType t, void* x, int64_t n, double factor);
void band_mask(const Ctx& ctx, DType t, void* s, int64_t mats, int64_t rows, int64_t cols, int64_t lo, int64_t hi);

// ---- gathers, scatters, positions, pooling (index.cu) -----------------------------------------------
void gather_rows(const Ctx& ctx, DType t, const void* table, int64_t rows, int64_t cols, const void* ids, bool ids64,
                 int64_t n, double beta, void* out);
// table_f32: the table is an f32 accumulator for src of dtype t (bf16/f16 sums round once, in the caller).
void scatter_add_rows(const Ctx& ctx, DType t, const void* src, const void* ids, bool ids64, int64_t n, void* table,
                      bool table_f32, int64_t rows, int64_t cols);
// table_f32: the table is f32 while x is not (values are rounded to x's dtype first, as the CPU does).
void positional_scale(const Ctx& ctx, DType t, const void* x, int64_t rows, int64_t cols, const void* table,
                      bool table_f32, int64_t table_rows, const void* positions, bool pos64, int64_t period, void* y);
void rope(const Ctx& ctx, DType t, const void* x, int64_t rows, int64_t cols, const void* cos, const void* sin,
          bool table_f32, int64_t table_rows, const void* positions, bool pos64, int64_t period, bool inverse, void* y);
void max_pool_forward(const Ctx& ctx, DType t, const void* x, int64_t B, int64_t N, int64_t D, void* out,
                      int64_t* argmax);
void max_pool_backward(const Ctx& ctx, DType t, const void* dout, const int64_t* argmax, int64_t B, int64_t N,
                       int64_t D, void* dx);

// ---- normalisations (norm.cu) ---------------------------------------------------------------------
void rownorm_forward(const Ctx& ctx, DType t, RowNorm kind, const void* x, const void* gain, const void* bias,
                     double eps, void* y, void* stats, int64_t rows, int64_t cols);
void rownorm_backward(const Ctx& ctx, DType t, RowNorm kind, const void* x, const void* gain, const void* stats,
                      const void* dy, double beta_dx, void* dx, void* dgain, void* dbias, int64_t rows, int64_t cols);

// ---- softmax and losses (softmax.cu) --------------------------------------------------------------
void softmax_forward(const Ctx& ctx, DType t, const void* s, int64_t groups, int64_t rows, int64_t cols, double scale,
                     const void* key_valid, int64_t heads, void* p);
void softmax_backward(const Ctx& ctx, DType t, const void* p, const void* dp, int64_t rows, int64_t cols, double scale,
                      void* ds);
void cross_entropy_forward(const Ctx& ctx, DType t, const void* logits, const int64_t* labels, int64_t rows,
                           int64_t vocab, void* loss, void* lse);
void cross_entropy_backward(const Ctx& ctx, DType t, const void* logits, const int64_t* labels, const void* lse,
                            int64_t rows, int64_t vocab, double scale, void* dlogits);

// ---- optimizers (optimizer.cu) ---------------------------------------------------------------------
// The backend.h OptimizerStep unpacked: blocks is device I64 [nblocks, 4] = {begin, end, range, decay}.
struct OptimizerArgs {
  bool lamb;
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;
  const int64_t* blocks;
  int64_t nblocks;
};
// t is F32 or F64 (values, grads and both moments).
void optimizer_step(const Ctx& ctx, DType t, const OptimizerArgs& a, void* values, const void* grads, void* exp_avg,
                    void* exp_avg_sq);

// ---- graph (sparse) attention (graph_attention.cu) -------------------------------------------------
// A CSR graph (row_ptr [groups, rows + 1] of absolute offsets into col) or, with row_ptr null, the band
// lo <= j - i <= hi. One warp per (batch, head, row); head size e <= kGraphMaxHead.
constexpr int64_t kGraphMaxHead = 256;
struct GraphArgs {
  const int64_t* row_ptr;
  const int32_t* col;
  int64_t groups, lo, hi;
};
void graph_attention_forward(const Ctx& ctx, DType t, bool softmax, const void* q, const void* k, const void* v,
                             GraphArgs graph, const void* key_valid, int64_t batch, int64_t nq, int64_t nk,
                             int64_t heads, int64_t e, double scale, void* o, void* lse);
void graph_attention_backward(const Ctx& ctx, DType t, bool softmax, const void* q, const void* k, const void* v,
                              GraphArgs graph, GraphArgs transposed, const void* key_valid, int64_t batch, int64_t nq,
                              int64_t nk, int64_t heads, int64_t e, double scale, const void* o, const void* dout,
                              const void* lse, void* dq, void* dk, void* dv);

}  // namespace dense::cuda
