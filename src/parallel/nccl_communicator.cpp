// The NCCL engine: device tensors over NCCL, one GPU per rank (cuda:local_rank % device count), started over
// MPI (rank 0's ncclUniqueId is broadcast through an MPI communicator, which also carries every host tensor).
// Collectives run on a dedicated stream, ordered against the backend's compute stream by events both ways and
// never by synchronising the host first: the NCCL stream waits for an event recorded on the compute stream
// (the tensor's producers), and the compute stream waits for the collective's event before anything later
// touches the result. Blocking calls then also wait on the host for the NCCL stream alone, async ones return a
// request backed by the collective's event (its wait() orders the compute stream). While waiting, NCCL's
// asynchronous error state is polled, so a failing peer turns into an error instead of a hang. After any
// failure (or when destroyed during unwinding) the NCCL communicator is aborted rather than finalised.
//
// Compiled only with CUDA and NCCL (DENSE_WITH_NCCL); no GPU was available where it was written, so it is
// compiled in CI but exercised only on GPU machines.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "backend/backend.h"
#include "parallel/engines.h"

namespace dense::parallel {

namespace {

// State shared by the communicator and its requests (a request may outlive its communicator; then comm is null).
struct NcclState {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;   // NCCL's
  cudaStream_t compute = nullptr;  // the backend's, where every kernel of this rank's GPU runs
  cudaEvent_t inputs_ready = nullptr, collective_done = nullptr;
  int rank = 0, size = 1, device = 0;
  bool failed = false;

  [[noreturn]] void fail_cuda(const char* call, cudaError_t e) {
    failed = true;
    (void)cudaGetLastError();  // clear a sticky-free error so that later calls do not report it again
    throw Error(fmt::format("{} on rank {} of {} (cuda:{}): {} ({})", call, rank, size, device, cudaGetErrorName(e),
                            cudaGetErrorString(e)));
  }
  void check_cuda(cudaError_t e, const char* call) {
    if (e != cudaSuccess) fail_cuda(call, e);
  }
  [[noreturn]] void fail_nccl(const char* call, ncclResult_t r) {
    failed = true;
    const char* last = ncclGetLastError(comm);
    throw Error(fmt::format("{} on rank {} of {} (cuda:{}): {}{}{}", call, rank, size, device, ncclGetErrorString(r),
                            last && *last ? ": " : "", last ? last : ""));
  }
  void check_nccl(ncclResult_t r, const char* call) {
    if (r != ncclSuccess) fail_nccl(call, r);
  }
  // Throws when NCCL reports an asynchronous failure (a peer gone, a network error) on the communicator.
  void check_async(const char* call) {
    if (!comm) return;
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm, &async);
    if (r != ncclSuccess) fail_nccl("ncclCommGetAsyncError", r);
    if (async != ncclSuccess && async != ncclInProgress) fail_nccl(call, async);
  }
  void activate() {
    int current = -1;
    check_cuda(cudaGetDevice(&current), "cudaGetDevice");
    if (current != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  // The collective about to be enqueued on `stream` starts after everything enqueued on `compute` so far.
  void after_compute() {
    check_cuda(cudaEventRecord(inputs_ready, compute), "cudaEventRecord (compute stream)");
    check_cuda(cudaStreamWaitEvent(stream, inputs_ready, 0), "cudaStreamWaitEvent (NCCL stream)");
  }
  // Work enqueued on `compute` from now on starts after `event` (recorded on `stream` after a collective).
  void compute_waits_for(cudaEvent_t event) {
    check_cuda(cudaStreamWaitEvent(compute, event, 0), "cudaStreamWaitEvent (compute stream)");
  }
  // A blocking collective's end: order the compute stream after it, then wait for the NCCL stream on the host.
  void finish_blocking(const char* call) {
    check_cuda(cudaEventRecord(collective_done, stream), "cudaEventRecord (NCCL stream)");
    compute_waits_for(collective_done);
    wait_stream(call);
  }
  // Waits for everything enqueued on the stream, polling NCCL's error state meanwhile.
  void wait_stream(const char* call) {
    for (;;) {
      const cudaError_t e = cudaStreamQuery(stream);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) fail_cuda(call, e);
      check_async(call);
      std::this_thread::yield();
    }
  }
};

class DoneRequest final : public Request {
 public:
  void wait() override {}
  bool test() override { return true; }
};

// An all-reduce in flight: an event recorded on the NCCL stream after it. Holds the tensor so that its storage
// outlives NCCL's use.
class NcclRequest final : public Request {
 public:
  NcclRequest(std::shared_ptr<NcclState> state, Tensor t) : state_(std::move(state)), tensor_(std::move(t)) {
    state_->check_cuda(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  }
  ~NcclRequest() override {
    if (!done_) {
      try {
        wait();
      } catch (...) {
        // Destructors do not throw; the error stays on the communicator (state->failed) and NCCL's async state.
      }
    }
    if (event_) (void)cudaEventDestroy(event_);
  }
  NcclRequest(const NcclRequest&) = delete;
  NcclRequest& operator=(const NcclRequest&) = delete;

  void record() { state_->check_cuda(cudaEventRecord(event_, state_->stream), "cudaEventRecord"); }

  bool test() override {
    if (done_) return true;
    const cudaError_t e = cudaEventQuery(event_);
    if (e == cudaSuccess) return done_ = true;
    if (e != cudaErrorNotReady) {
      done_ = true;
      state_->fail_cuda("cudaEventQuery (all_reduce_async)", e);
    }
    try {
      state_->check_async("ncclAllReduce (all_reduce_async)");
    } catch (...) {
      done_ = true;
      throw;
    }
    return false;
  }
  // Orders the compute stream after the collective (what reads the result next runs there), then waits on the
  // host too, polling NCCL's error state so that a lost peer is an error rather than a hung stream.
  void wait() override {
    if (!done_ && state_->compute) state_->compute_waits_for(event_);
    while (!test()) std::this_thread::yield();
  }

 private:
  std::shared_ptr<NcclState> state_;
  Tensor tensor_;
  cudaEvent_t event_ = nullptr;
  bool done_ = false;
};

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F64: return ncclFloat64;
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::I64: return ncclInt64;
    case DType::I32: return ncclInt32;
    case DType::I8: return ncclInt8;
    case DType::U8: return ncclUint8;
  }
  DENSE_FAIL("nccl: unknown dtype {}", int(t));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Min: return ncclMin;
  }
  DENSE_FAIL("nccl: unknown reduction {}", int(op));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator() : mpi_(make_mpi_communicator()), state_(std::make_shared<NcclState>()) {
    NcclState& s = *state_;
    s.rank = mpi_->rank();
    s.size = mpi_->size();
    try {
      start();
    } catch (...) {
      release(/*abort=*/true);
      throw;
    }
  }
  ~NcclCommunicator() override { release(state_->failed || std::uncaught_exceptions() > 0); }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return state_->rank; }
  int size() const override { return state_->size; }
  int local_rank() const override { return mpi_->local_rank(); }
  std::string engine() const override { return "nccl"; }

  void all_reduce(Tensor& t, ReduceOp op) override {
    if (on_host(t, "all_reduce")) return mpi_->all_reduce(t, op);
    if (t.numel() == 0) return;
    NcclState& s = before(t);
    s.check_nccl(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()), nccl_op(op), s.comm,
                               s.stream),
                 "ncclAllReduce");
    s.finish_blocking("ncclAllReduce");
  }

  std::unique_ptr<Request> all_reduce_async(Tensor& t, ReduceOp op) override {
    if (on_host(t, "all_reduce_async")) return mpi_->all_reduce_async(t, op);
    if (t.numel() == 0) return std::make_unique<DoneRequest>();
    NcclState& s = before(t);
    auto request = std::make_unique<NcclRequest>(state_, t);
    s.check_nccl(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()), nccl_op(op), s.comm,
                               s.stream),
                 "ncclAllReduce (async)");
    request->record();
    return request;
  }

  void broadcast(Tensor& t, int root) override {
    if (on_host(t, "broadcast")) return mpi_->broadcast(t, root);
    detail::check_root("nccl", "broadcast", root, size());
    if (t.numel() == 0) return;
    NcclState& s = before(t);
    s.check_nccl(
        ncclBroadcast(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t.dtype()), root, s.comm, s.stream),
        "ncclBroadcast");
    s.finish_blocking("ncclBroadcast");
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    if (pair_on_host(in, out, "all_gather")) return mpi_->all_gather(in, out);
    detail::check_gather("nccl", in, out, rank(), size(), /*allow_in_place=*/true);
    if (in.numel() == 0) return;
    NcclState& s = before(in);
    s.check_nccl(
        ncclAllGather(in.raw_data(), out.raw_data(), size_t(in.numel()), nccl_type(in.dtype()), s.comm, s.stream),
        "ncclAllGather");
    s.finish_blocking("ncclAllGather");
  }

  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override {
    if (pair_on_host(in, out, "reduce_scatter")) return mpi_->reduce_scatter(in, out, op);
    detail::check_scatter("nccl", in, out, rank(), size(), /*allow_in_place=*/true);
    if (out.numel() == 0) return;
    NcclState& s = before(in);
    s.check_nccl(ncclReduceScatter(in.raw_data(), out.raw_data(), size_t(out.numel()), nccl_type(in.dtype()),
                                   nccl_op(op), s.comm, s.stream),
                 "ncclReduceScatter");
    s.finish_blocking("ncclReduceScatter");
  }

  void barrier() override {
    NcclState& s = *state_;
    s.activate();
    s.wait_stream("barrier");
    mpi_->barrier();
  }

  using Communicator::all_reduce;
  using Communicator::broadcast;

 private:
  void start() {
    NcclState& s = *state_;
    // Pick the GPU and create the stream on every rank, then agree: a rank without a GPU stops all of them here
    // rather than leaving the others in ncclCommInitRank.
    std::string problem;
    int count = 0;
    const cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      problem = fmt::format(
          "rank {} sees no CUDA device{}", s.rank,
          ce != cudaSuccess ? fmt::format(" (cudaGetDeviceCount: {})", cudaGetErrorString(ce)) : std::string());
    } else {
      s.device = mpi_->local_rank() % count;
      cudaError_t e = cudaSetDevice(s.device);
      if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking);
      if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s.inputs_ready, cudaEventDisableTiming);
      if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s.collective_done, cudaEventDisableTiming);
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        problem = fmt::format("rank {} cannot use cuda:{}: {}", s.rank, s.device, cudaGetErrorString(e));
      } else {
        try {
          s.compute = static_cast<cudaStream_t>(cuda_compute_stream(s.device));
        } catch (const std::exception& x) {
          problem = fmt::format("rank {} cannot start the CUDA backend on cuda:{}: {}", s.rank, s.device, x.what());
        }
      }
    }
    std::vector<double> any_problem = {problem.empty() ? 0.0 : 1.0};
    mpi_->all_reduce(any_problem, ReduceOp::Max);
    if (any_problem[0] != 0)
      DENSE_FAIL("nccl: cannot start: {}",
                 problem.empty() ? "another rank could not pick its GPU (see its error)" : problem);

    // Rank 0's unique id, sent over MPI; an empty string tells the others that rank 0 could not make one.
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    std::string id_bytes;
    std::string id_error;
    if (s.rank == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r == ncclSuccess)
        id_bytes.assign(reinterpret_cast<const char*>(&id), sizeof(id));
      else
        id_error = ncclGetErrorString(r);
    }
    mpi_->broadcast(id_bytes, 0);
    if (id_bytes.size() != sizeof(id))
      DENSE_FAIL("nccl: ncclGetUniqueId failed on rank 0{}", id_error.empty() ? "" : ": " + id_error);
    std::memcpy(&id, id_bytes.data(), sizeof(id));
    s.check_nccl(ncclCommInitRank(&s.comm, s.size, id, s.rank), "ncclCommInitRank");
  }

  void release(bool abort) noexcept {
    NcclState& s = *state_;
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current != s.device) (void)cudaSetDevice(s.device);
    if (s.comm) {
      if (abort) {
        (void)ncclCommAbort(s.comm);
      } else {
        if (s.stream) (void)cudaStreamSynchronize(s.stream);
        if (ncclCommFinalize(s.comm) == ncclSuccess)
          (void)ncclCommDestroy(s.comm);
        else
          (void)ncclCommAbort(s.comm);
      }
      s.comm = nullptr;
    }
    if (s.stream) {
      (void)cudaStreamSynchronize(s.stream);
      (void)cudaStreamDestroy(s.stream);
      s.stream = nullptr;
    }
    for (cudaEvent_t* e : {&s.inputs_ready, &s.collective_done})
      if (*e) {
        (void)cudaEventDestroy(*e);
        *e = nullptr;
      }
    s.compute = nullptr;  // the backend's: not ours to destroy
  }

  // Host tensors go through MPI (the host conveniences rely on it); device tensors must be on this rank's GPU.
  bool on_host(const Tensor& t, const char* op) {
    if (t.defined() && t.device().is_cpu()) return true;
    detail::check_tensor("nccl", op, t);
    check_device(t, op);
    return false;
  }
  bool pair_on_host(const Tensor& in, const Tensor& out, const char* op) {
    const bool host_in = in.defined() && in.device().is_cpu(), host_out = out.defined() && out.device().is_cpu();
    DENSE_CHECK(host_in == host_out, "nccl {}: input {} and output {} must both be on the host or both on cuda:{}", op,
                in.str(), out.str(), state_->device);
    if (host_in) return true;
    detail::check_tensor("nccl", op, in, "input");
    detail::check_tensor("nccl", op, out, "output");
    check_device(in, op);
    check_device(out, op);
    return false;
  }
  void check_device(const Tensor& t, const char* op) const {
    DENSE_CHECK(t.device().is_cuda() && t.device().index == state_->device,
                "nccl {}: the tensor {} is not on this rank's GPU cuda:{} (rank {}, local rank {})", op, t.str(),
                state_->device, state_->rank, mpi_->local_rank());
  }
  // The tensor's producers ran on the backend's stream: NCCL's stream waits for them there (an event, not the
  // host). Deferred kernel errors (bad ids...) surface at the backend's next synchronisation instead.
  NcclState& before(const Tensor& t) {
    NcclState& s = *state_;
    DENSE_CHECK(!s.failed, "nccl: the communicator failed earlier on rank {}; no further collectives", s.rank);
    s.activate();
    s.after_compute();
    return s;
  }

  std::unique_ptr<Communicator> mpi_;
  std::shared_ptr<NcclState> state_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator() { return std::make_unique<NcclCommunicator>(); }

}  // namespace dense::parallel
