#pragma once
// Internal to src/parallel (and its tests): the engines behind make_communicator, and knobs for testing them.
// Users call make_communicator (communicator.h).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "parallel/communicator.h"

namespace dense::parallel {

std::unique_ptr<Communicator> make_local_communicator();
// Initialises MPI on first use (MPI_THREAD_FUNNELED: only the thread that made the first communicator calls
// MPI) and finalises it at exit unless someone else initialised it. Each call duplicates MPI_COMM_WORLD.
std::unique_ptr<Communicator> make_mpi_communicator();
#ifdef DENSE_WITH_NCCL
std::unique_ptr<Communicator> make_nccl_communicator();
#endif

namespace detail {

// The world size the launcher announces in the environment (OpenMPI's mpirun, MPICH/Intel MPI hydra or
// srun --mpi=pmi2 via PMI_SIZE, MVAPICH2, Slurm's srun), or 0 when this process was not started by one.
// A plain sbatch/salloc allocation (SLURM_NTASKS without a job step) is not a launch.
int launcher_world_size();

// The most elements one MPI call moves: MPI counts are int, so larger tensors are split into several calls.
// 2^30 by default; tests lower it to exercise the split path on small tensors. Every rank must use the same
// value. Returns the previous value.
int64_t set_mpi_max_count(int64_t elements);
int64_t mpi_max_count();

// Argument checks shared by the engines, made on each rank before any communication; they throw dense::Error
// starting "<engine> <op>: ". A tensor must be defined and contiguous.
void check_tensor(std::string_view engine, std::string_view op, const Tensor& t, std::string_view what = "tensor");
void check_root(std::string_view engine, std::string_view op, int root, int size);
// all_gather (in -> out) and reduce_scatter (in -> out): same dtype, the big side holds size x the small side's
// elements, and the two do not overlap, except in place when allowed: the small side is block `rank` of the big
// side (all_gather: in is that block of out; reduce_scatter: out is that block of in).
void check_gather(std::string_view engine, const Tensor& in, const Tensor& out, int rank, int size,
                  bool allow_in_place);
void check_scatter(std::string_view engine, const Tensor& in, const Tensor& out, int rank, int size,
                   bool allow_in_place);
// True when `small` is exactly block `rank` (of small.numel() elements) of `big`.
bool is_block_of(const Tensor& small, const Tensor& big, int rank);

// "MPI_Allreduce on rank 1 of 2: MPI_ERR_COUNT: invalid count argument", from an MPI error code.
std::string mpi_error_message(const char* call, int error_code, int rank, int size);

}  // namespace detail
}  // namespace dense::parallel
