#pragma once
// Collective communication between the ranks of a data-parallel run: one interface, three engines.
//   local  one process (world size 1): every collective is the identity; no MPI needed.
//   mpi    host tensors over MPI (OpenMPI): start-up, CPU training, and the NCCL id exchange.
//   nccl   device tensors over NCCL, one GPU per rank chosen by the node-local rank; MPI starts it up.
// Every call is collective: all ranks make the same calls in the same order with tensors of the same shape
// and dtype. Failures throw dense::Error naming the call, rank and engine's message; a rank that dies makes
// mpirun stop the others (docs/distributed.md).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dense::parallel {

enum class ReduceOp : uint8_t { Sum, Max, Min };

// An all-reduce in flight (all_reduce_async). wait() blocks until it completes; test() drives progress (MPI
// advances non-blocking collectives only inside MPI calls) and reports completion. Destroying an unfinished
// request waits for it.
class Request {
 public:
  virtual ~Request() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;      // rank among the processes of this node (GPU choice)
  virtual std::string engine() const = 0;  // "local" | "mpi" | "nccl"

  // In place, on contiguous tensors. mpi: f64, f32, i64, i32 (and u8 for broadcast); nccl: floating and
  // integer device tensors. Sum of f32 is reassociated by the engine: equal on every rank, not bitwise the
  // serial sum.
  //   In detail: mpi takes host tensors; reductions (all_reduce, reduce_scatter) accept f64, f32, i64, i32, i8
  //   and u8; data movement (broadcast, all_gather) accepts every dtype, bf16 and f16 included (bit copies).
  //   bf16/f16 reductions throw (reduce f32 master gradients instead). nccl takes tensors on its own device
  //   (cuda:local_rank % device count) in every dtype, and sends host tensors through its MPI communicator,
  //   so the host conveniences below work with every engine. Arguments are checked on each rank before any
  //   communication: when every rank passes the same wrong arguments, every rank throws the same error and the
  //   ranks stay in step. Tensor counts above 2^30 elements are split into several MPI calls (int counts).
  //   all_gather and reduce_scatter may run in place: the small side is exactly block rank() of the big side
  //   (the rest of a reduce_scatter's input is then clobbered); otherwise in and out must not overlap.
  //   Async requests must be started in the same order on every rank; the request keeps the tensor's storage
  //   alive, and the tensor must not be read or written until wait() or a true test().
  virtual void all_reduce(Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::unique_ptr<Request> all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  virtual void broadcast(Tensor& t, int root = 0) = 0;
  // out holds size() x in.numel() elements: rank r's `in` lands at [r * in.numel(), (r + 1) * in.numel()).
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // in holds size() x out.numel() elements; rank r receives the reduction of block r.
  virtual void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::Sum) = 0;
  virtual void barrier() = 0;

  // Conveniences built on the above (host values, any engine).
  void all_reduce(std::vector<double>& values, ReduceOp op = ReduceOp::Sum);
  void broadcast(std::string& bytes, int root = 0);
  bool is_root() const { return rank() == 0; }
};

// engine: "none" (local), "mpi", "nccl", or "auto" (mpi when started by mpirun/srun with more than one rank,
// else local). dense::Error when the engine is not in this build (naming what to rebuild with) or cannot start.
// "local" (what engine() reports for "none") is accepted too. mpi and nccl refuse to start when the launcher
// announced several ranks but MPI sees a world of one (an MPI that cannot talk to that launcher).
std::unique_ptr<Communicator> make_communicator(const std::string& engine);

// True when this process was started by an MPI launcher (mpirun, srun --mpi=pmix, ...) with world size > 1,
// judged from the launcher's environment before MPI is initialised.
bool launched_with_several_ranks();

// After an error in a multi-rank run: MPI_Abort, so that ranks blocked in a collective for this one stop too
// (mpirun then exits with `exit_code`). Returns without doing anything when MPI is not running or the world
// has one rank. (Returning from main instead would run MPI_Finalize at exit, which waits for every rank.) Call
// it from the thread that made the communicator, after flushing logs.
void abort_world(int exit_code);

}  // namespace dense::parallel
