// The engine-independent part of the communicator layer: the host conveniences, the launcher's environment and
// make_communicator.
#include "parallel/communicator.h"

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "parallel/engines.h"

namespace dense::parallel {

void Communicator::all_reduce(std::vector<double>& values, ReduceOp op) {
  if (values.empty()) return;  // every rank passes the same size, so every rank skips
  Tensor t = Tensor::from_vector(values, {int64_t(values.size())}, DType::F64);
  all_reduce(t, op);
  const double* p = t.data<double>();
  std::memcpy(values.data(), p, values.size() * sizeof(double));
}

void Communicator::broadcast(std::string& bytes, int root) {
  // The length first (only the root's is meaningful), then the bytes.
  Tensor length = Tensor::full({1}, 0.0, DType::I64);
  if (rank() == root) length.data<int64_t>()[0] = int64_t(bytes.size());
  broadcast(length, root);
  const int64_t n = length.data<int64_t>()[0];
  DENSE_CHECK(n >= 0, "broadcast of a string: the root sent the length {}", n);
  if (n == 0) {
    bytes.clear();
    return;
  }
  Tensor data = Tensor::empty({n}, DType::U8);
  if (rank() == root) std::memcpy(data.raw_data(), bytes.data(), size_t(n));
  broadcast(data, root);
  if (rank() != root) bytes.assign(static_cast<const char*>(data.raw_data()), size_t(n));
}

namespace detail {

namespace {

// A positive integer from the environment, or 0 when unset or not a number.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n <= 0 || n > (1L << 30)) return 0;
  return int(n);
}

}  // namespace

int launcher_world_size() {
  // OpenMPI's mpirun/orterun (PMIx itself announces no size in the environment).
  if (const int n = env_int("OMPI_COMM_WORLD_SIZE")) return n;
  // MPICH and Intel MPI (hydra), and srun --mpi=pmi2.
  if (const int n = env_int("PMI_SIZE")) return n;
  // MVAPICH2's mpirun_rsh.
  if (const int n = env_int("MV2_COMM_WORLD_SIZE")) return n;
  // Slurm's srun (e.g. srun --mpi=pmix, where nothing above is set). Only a job step counts: inside an
  // sbatch script or salloc shell SLURM_NTASKS describes the allocation, not this process, so it is ignored.
  // The batch and extern steps have one task and never set a step size above 1.
  if (std::getenv("SLURM_STEP_ID") && std::getenv("SLURM_PROCID"))
    if (const int n = env_int("SLURM_STEP_NUM_TASKS")) return n;
  return 0;
}

}  // namespace detail

bool launched_with_several_ranks() { return detail::launcher_world_size() > 1; }

std::unique_ptr<Communicator> make_communicator(const std::string& engine) {
  if (engine == "none" || engine == "local") return make_local_communicator();
  if (engine == "mpi") return make_mpi_communicator();
  if (engine == "nccl") {
#ifdef DENSE_WITH_NCCL
    return make_nccl_communicator();
#else
    DENSE_FAIL(
        "communication engine 'nccl': this build has no NCCL (configure with CUDA and NCCL: -DDENSE_CUDA=ON, and "
        "-DNCCL_ROOT=DIR when nccl.h and libnccl.so.2 are not in the CUDA toolkit)");
#endif
  }
  if (engine == "auto") return launched_with_several_ranks() ? make_mpi_communicator() : make_local_communicator();
  DENSE_FAIL("unknown communication engine '{}': expected none, mpi, nccl or auto", engine);
}

}  // namespace dense::parallel

namespace dense::parallel::detail {

namespace {

// The byte range a contiguous tensor occupies.
struct Span {
  const char* begin;
  const char* end;
};
Span span_of(const Tensor& t) {
  const char* p = static_cast<const char*>(t.raw_data());
  return {p, p + t.nbytes()};
}
bool overlap(const Tensor& a, const Tensor& b) {
  if (!a.same_storage(b) || a.numel() == 0 || b.numel() == 0) return false;
  const Span x = span_of(a), y = span_of(b);
  return x.begin < y.end && y.begin < x.end;
}

}  // namespace

void check_tensor(std::string_view engine, std::string_view op, const Tensor& t, std::string_view what) {
  DENSE_CHECK(t.defined(), "{} {}: the {} is undefined", engine, op, what);
  DENSE_CHECK(t.is_contiguous(),
              "{} {}: the {} {} is not contiguous (pass a contiguous tensor, e.g. .contiguous(), "
              "and copy the result back)",
              engine, op, what, t.str());
}

void check_root(std::string_view engine, std::string_view op, int root, int size) {
  DENSE_CHECK(root >= 0 && root < size, "{} {}: root {} is outside the world of {} rank(s)", engine, op, root, size);
}

bool is_block_of(const Tensor& small, const Tensor& big, int rank) {
  return small.same_storage(big) && small.dtype() == big.dtype() &&
         static_cast<const char*>(small.raw_data()) ==
             static_cast<const char*>(big.raw_data()) + size_t(rank) * small.nbytes();
}

void check_gather(std::string_view engine, const Tensor& in, const Tensor& out, int rank, int size,
                  bool allow_in_place) {
  check_tensor(engine, "all_gather", in, "input");
  check_tensor(engine, "all_gather", out, "output");
  DENSE_CHECK(in.dtype() == out.dtype(), "{} all_gather: input {} and output {} differ in dtype", engine, in.str(),
              out.str());
  DENSE_CHECK(out.numel() == int64_t(size) * in.numel(),
              "{} all_gather: the output {} must hold {} rank(s) x {} elements = {} (it holds {})", engine, out.str(),
              size, in.numel(), int64_t(size) * in.numel(), out.numel());
  DENSE_CHECK(!overlap(in, out) || (allow_in_place && is_block_of(in, out, rank)),
              "{} all_gather: input and output overlap (in place, the input must be exactly block {} of the "
              "output)",
              engine, rank);
}

void check_scatter(std::string_view engine, const Tensor& in, const Tensor& out, int rank, int size,
                   bool allow_in_place) {
  check_tensor(engine, "reduce_scatter", in, "input");
  check_tensor(engine, "reduce_scatter", out, "output");
  DENSE_CHECK(in.dtype() == out.dtype(), "{} reduce_scatter: input {} and output {} differ in dtype", engine, in.str(),
              out.str());
  DENSE_CHECK(in.numel() == int64_t(size) * out.numel(),
              "{} reduce_scatter: the input {} must hold {} rank(s) x {} elements = {} (it holds {})", engine, in.str(),
              size, out.numel(), int64_t(size) * out.numel(), in.numel());
  DENSE_CHECK(!overlap(in, out) || (allow_in_place && is_block_of(out, in, rank)),
              "{} reduce_scatter: input and output overlap (in place, the output must be exactly block {} of the "
              "input)",
              engine, rank);
}

}  // namespace dense::parallel::detail
