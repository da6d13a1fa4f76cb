// The MPI engine: host tensors over a duplicate of MPI_COMM_WORLD (OpenMPI in CI). Every MPI call returns its
// error (MPI_ERRORS_RETURN) and a failure becomes a dense::Error naming the call, the rank and MPI's message.
// Arguments are checked before any communication so that ranks that all pass the same bad arguments all throw
// and stay in step. Counts above the int range MPI takes are split into several calls.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "parallel/engines.h"

namespace dense::parallel {

namespace detail {

namespace {
std::atomic<int64_t> g_max_count{int64_t(1) << 30};
}  // namespace

int64_t set_mpi_max_count(int64_t elements) {
  DENSE_CHECK(elements >= 1, "the MPI chunk size must be at least 1 element (got {})", elements);
  return g_max_count.exchange(elements);
}

int64_t mpi_max_count() { return std::min<int64_t>(g_max_count.load(), INT_MAX); }

std::string mpi_error_message(const char* call, int error_code, int rank, int size) {
  char text[MPI_MAX_ERROR_STRING + 1] = {};
  int length = 0;
  if (MPI_Error_string(error_code, text, &length) != MPI_SUCCESS) length = 0;
  const std::string what =
      length > 0 ? std::string(text, size_t(length)) : fmt::format("MPI error code {}", error_code);
  return fmt::format("{} on rank {} of {}: {}", call, rank, size, what);
}

}  // namespace detail

namespace {

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

// Initialises MPI once per process and finalises it at exit, unless someone else initialised it (then they
// finalise it). A function-local static: constructed by the first communicator, destroyed at exit.
class MpiRuntime {
 public:
  MpiRuntime() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) {
      DENSE_CHECK(!mpi_finalized(), "mpi: MPI was already finalised in this process; it cannot be started again");
      MPI_Query_thread(&provided_);
      return;
    }
    // FUNNELED: the thread that creates the communicator (the trainer's) makes every MPI call; the data
    // loader's threads never call MPI. OpenMPI provides it; an MPI that offers less still works in practice
    // for this use, so a lower level is accepted.
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided_);
    if (rc != MPI_SUCCESS) throw Error(detail::mpi_error_message("MPI_Init_thread", rc, 0, 1));
    owned_ = true;
  }
  ~MpiRuntime() {
    if (owned_ && !mpi_finalized()) MPI_Finalize();
  }
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

 private:
  bool owned_ = false;
  int provided_ = 0;
};

void ensure_mpi() { static MpiRuntime runtime; }

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  DENSE_FAIL("mpi: unknown reduction {}", int(op));
}

// Reductions need arithmetic on the element type; MPI has none for bf16 and f16.
MPI_Datatype reduce_type(DType t, const char* op) {
  switch (t) {
    case DType::F64: return MPI_DOUBLE;
    case DType::F32: return MPI_FLOAT;
    case DType::I64: return MPI_INT64_T;
    case DType::I32: return MPI_INT32_T;
    case DType::I8: return MPI_INT8_T;
    case DType::U8: return MPI_UINT8_T;
    case DType::BF16:
    case DType::F16: break;
  }
  DENSE_FAIL(
      "mpi {}: dtype {} cannot be reduced over MPI (it has no {} arithmetic): reduce an f32 copy "
      "(f64, f32, i64, i32, i8 and u8 are supported)",
      op, dtype_name(t), dtype_name(t));
}

// Moving data needs only the element size: bf16 and f16 travel as 16-bit words.
MPI_Datatype move_type(DType t) {
  switch (t) {
    case DType::BF16:
    case DType::F16: return MPI_UINT16_T;
    default: return reduce_type(t, "broadcast");
  }
}

void check_host(const Tensor& t, const char* op) {
  DENSE_CHECK(t.device().is_cpu(),
              "mpi {}: the tensor {} is on {}, and the mpi engine moves host tensors (copy it "
              "to the host, or use the nccl engine for device tensors)",
              op, t.str(), t.device().str());
}

char* bytes_of(const Tensor& t) { return static_cast<char*>(t.raw_data()); }

// Calls f(offset, count) over [0, n) in pieces of at most mpi_max_count() elements.
template <typename F>
void for_each_chunk(int64_t n, F&& f) {
  const int64_t limit = detail::mpi_max_count();
  for (int64_t off = 0; off < n; off += limit) f(off, int(std::min(limit, n - off)));
}

// An all-reduce in flight: one MPI request per chunk. Holds the tensor so that its storage outlives MPI's use.
class MpiRequest final : public Request {
 public:
  MpiRequest(Tensor t, int rank, int size) : tensor_(std::move(t)), rank_(rank), size_(size) {}
  ~MpiRequest() override {
    if (!done_ && !requests_.empty() && !mpi_finalized())
      MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }
  void add(MPI_Request r) { requests_.push_back(r); }

  void wait() override {
    if (done_) return;
    std::vector<MPI_Status> statuses(requests_.size());
    const int rc = MPI_Waitall(int(requests_.size()), requests_.data(), statuses.data());
    done_ = true;
    check(rc, statuses, "MPI_Waitall (all_reduce_async)");
  }
  bool test() override {
    if (done_) return true;
    std::vector<MPI_Status> statuses(requests_.size());
    int flag = 0;
    const int rc = MPI_Testall(int(requests_.size()), requests_.data(), &flag, statuses.data());
    if (rc != MPI_SUCCESS) done_ = true;  // the requests are in an undefined state: never wait on them again
    check(rc, statuses, "MPI_Testall (all_reduce_async)");
    done_ = flag != 0;
    return done_;
  }

 private:
  void check(int rc, const std::vector<MPI_Status>& statuses, const char* call) const {
    if (rc == MPI_SUCCESS) return;
    if (rc == MPI_ERR_IN_STATUS)
      for (const MPI_Status& s : statuses)
        if (s.MPI_ERROR != MPI_SUCCESS) throw Error(detail::mpi_error_message(call, s.MPI_ERROR, rank_, size_));
    throw Error(detail::mpi_error_message(call, rc, rank_, size_));
  }

  Tensor tensor_;
  std::vector<MPI_Request> requests_;
  int rank_, size_;
  bool done_ = false;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    ensure_mpi();
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const int announced = detail::launcher_world_size();
    DENSE_CHECK(!(announced > 1 && world == 1),
                "mpi: the launcher started {} ranks but MPI sees a world of 1 in this process: this MPI library "
                "cannot talk to the launcher (mpirun of a different MPI, or srun without --mpi=pmix or "
                "--mpi=pmi2)",
                announced);
    // Until the duplicate has MPI_ERRORS_RETURN, failures follow MPI_COMM_WORLD's handler (abort).
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    try {
      MPI_Comm node = MPI_COMM_NULL;
      check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
      const int rc = MPI_Comm_rank(node, &local_rank_);
      MPI_Comm_free(&node);
      check(rc, "MPI_Comm_rank (node)");
    } catch (...) {
      MPI_Comm_free(&comm_);
      throw;
    }
  }
  ~MpiCommunicator() override {
    // A communicator that outlives MPI_Finalize (a static destroyed at exit) has nothing left to free.
    if (comm_ != MPI_COMM_NULL && !mpi_finalized()) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string engine() const override { return "mpi"; }

  void all_reduce(Tensor& t, ReduceOp op) override {
    detail::check_tensor("mpi", "all_reduce", t);
    check_host(t, "all_reduce");
    const MPI_Datatype type = reduce_type(t.dtype(), "all_reduce");
    const MPI_Op mop = mpi_op(op);
    char* p = bytes_of(t);
    const size_t es = dtype_size(t.dtype());
    for_each_chunk(t.numel(), [&](int64_t off, int count) {
      check(MPI_Allreduce(MPI_IN_PLACE, p + size_t(off) * es, count, type, mop, comm_), "MPI_Allreduce");
    });
  }

  std::unique_ptr<Request> all_reduce_async(Tensor& t, ReduceOp op) override {
    detail::check_tensor("mpi", "all_reduce_async", t);
    check_host(t, "all_reduce_async");
    const MPI_Datatype type = reduce_type(t.dtype(), "all_reduce_async");
    const MPI_Op mop = mpi_op(op);
    auto request = std::make_unique<MpiRequest>(t, rank_, size_);
    char* p = bytes_of(t);
    const size_t es = dtype_size(t.dtype());
    for_each_chunk(t.numel(), [&](int64_t off, int count) {
      MPI_Request r = MPI_REQUEST_NULL;
      check(MPI_Iallreduce(MPI_IN_PLACE, p + size_t(off) * es, count, type, mop, comm_, &r), "MPI_Iallreduce");
      request->add(r);
    });
    return request;
  }

  void broadcast(Tensor& t, int root) override {
    detail::check_tensor("mpi", "broadcast", t);
    check_host(t, "broadcast");
    detail::check_root("mpi", "broadcast", root, size_);
    const MPI_Datatype type = move_type(t.dtype());
    char* p = bytes_of(t);
    const size_t es = dtype_size(t.dtype());
    for_each_chunk(t.numel(), [&](int64_t off, int count) {
      check(MPI_Bcast(p + size_t(off) * es, count, type, root, comm_), "MPI_Bcast");
    });
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    detail::check_gather("mpi", in, out, rank_, size_, /*allow_in_place=*/true);
    check_host(in, "all_gather");
    check_host(out, "all_gather");
    const MPI_Datatype type = move_type(in.dtype());
    const int64_t n = in.numel();
    if (n == 0) return;
    const bool in_place = detail::is_block_of(in, out, rank_);
    const size_t es = dtype_size(in.dtype());
    char* dst = bytes_of(out);
    if (int64_t(size_) * n <= detail::mpi_max_count()) {
      check(MPI_Allgather(in_place ? MPI_IN_PLACE : bytes_of(in), int(n), type, dst, int(n), type, comm_),
            "MPI_Allgather");
      return;
    }
    // Too many elements for int counts (or a test's small limit): each rank's block is broadcast from it,
    // in chunks, straight into its place in out.
    if (!in_place) std::memcpy(dst + size_t(rank_) * size_t(n) * es, bytes_of(in), size_t(n) * es);
    for (int r = 0; r < size_; ++r) {
      char* block = dst + size_t(r) * size_t(n) * es;
      for_each_chunk(n, [&](int64_t off, int count) {
        check(MPI_Bcast(block + size_t(off) * es, count, type, r, comm_), "MPI_Bcast (all_gather)");
      });
    }
  }

  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override {
    detail::check_scatter("mpi", in, out, rank_, size_, /*allow_in_place=*/true);
    check_host(in, "reduce_scatter");
    check_host(out, "reduce_scatter");
    const MPI_Datatype type = reduce_type(in.dtype(), "reduce_scatter");
    const MPI_Op mop = mpi_op(op);
    const int64_t m = out.numel();
    if (m == 0) return;
    const bool in_place = detail::is_block_of(out, in, rank_);
    const size_t es = dtype_size(in.dtype());
    char* src = bytes_of(in);
    char* dst = bytes_of(out);
    if (int64_t(size_) * m <= detail::mpi_max_count()) {
      if (in_place) {
        // MPI's in-place form reads the whole input from the receive buffer and leaves this rank's block at
        // its start; move it to block `rank`.
        check(MPI_Reduce_scatter_block(MPI_IN_PLACE, src, int(m), type, mop, comm_), "MPI_Reduce_scatter_block");
        if (rank_ != 0) std::memmove(dst, src, size_t(m) * es);
      } else {
        check(MPI_Reduce_scatter_block(src, dst, int(m), type, mop, comm_), "MPI_Reduce_scatter_block");
      }
      return;
    }
    // Too many elements for int counts (or a test's small limit): block r is reduced onto rank r, in chunks.
    for (int r = 0; r < size_; ++r) {
      char* block = src + size_t(r) * size_t(m) * es;
      for_each_chunk(m, [&](int64_t off, int count) {
        char* send = block + size_t(off) * es;
        if (r == rank_) {
          check(MPI_Reduce(in_place ? MPI_IN_PLACE : send, dst + size_t(off) * es, count, type, mop, r, comm_),
                "MPI_Reduce (reduce_scatter)");
        } else {
          check(MPI_Reduce(send, nullptr, count, type, mop, r, comm_), "MPI_Reduce (reduce_scatter)");
        }
      });
    }
  }

  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }

  using Communicator::all_reduce;
  using Communicator::broadcast;

 private:
  void check(int rc, const char* call) const {
    if (rc != MPI_SUCCESS) throw Error(detail::mpi_error_message(call, rc, rank_, size_));
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

void abort_world(int exit_code) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized || mpi_finalized()) return;
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world <= 1) return;
  std::fflush(nullptr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
}

}  // namespace dense::parallel
