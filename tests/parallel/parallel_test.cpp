// The communicator layer in one process: the local engine, make_communicator's choices and errors, and how the
// launcher's environment is read. (The MPI engine runs under mpirun in tests/parallel/mpi/communicator_test.cpp.)
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "parallel/communicator.h"
#include "parallel/engines.h"

using namespace dense;
using namespace dense::parallel;

namespace {

template <typename F>
void expect_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no dense::Error (expected one containing '" << part << "')";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// Clears the launcher variables for the scope (the tests may themselves run under a launcher) and restores them.
class LauncherEnv {
 public:
  LauncherEnv() {
    for (const char* name : kNames) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      unsetenv(name);
    }
  }
  ~LauncherEnv() {
    for (const char* name : kNames) {
      unsetenv(name);
      if (auto it = saved_.find(name); it != saved_.end()) setenv(name, it->second.c_str(), 1);
    }
  }
  void set(const char* name, const char* value) { setenv(name, value, 1); }

 private:
  static constexpr const char* kNames[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",     "MV2_COMM_WORLD_SIZE",
                                           "SLURM_STEP_ID",        "SLURM_PROCID", "SLURM_STEP_NUM_TASKS",
                                           "SLURM_NTASKS",         "SLURM_JOB_ID", "PMIX_RANK"};
  std::map<std::string, std::string> saved_;
};

}  // namespace

TEST(ParallelLocal, IsAWorldOfOne) {
  auto c = make_communicator("none");
  EXPECT_EQ(c->engine(), "local");
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->local_rank(), 0);
  EXPECT_TRUE(c->is_root());
  c->barrier();
}

TEST(ParallelLocal, CollectivesAreTheIdentity) {
  auto c = make_communicator("none");
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 7.0f, -0.5f, 9.0f};
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
    Tensor t = Tensor::from_vector(values, {2, 3}, DType::F32);
    c->all_reduce(t, op);
    EXPECT_EQ(t.to_vector<float>(), values);
    auto r = c->all_reduce_async(t, op);
    EXPECT_TRUE(r->test());
    r->wait();
    EXPECT_EQ(t.to_vector<float>(), values);
  }
  Tensor b = Tensor::from_vector(values, {6}, DType::BF16);  // any dtype: nothing is reduced
  c->all_reduce(b);
  c->broadcast(b, 0);
  EXPECT_EQ(b.to_vector<float>(), values);

  // all_gather and reduce_scatter copy (any shapes with the same number of elements), or do nothing in place.
  Tensor in = Tensor::from_vector(values, {2, 3}, DType::F64);
  Tensor out = Tensor::zeros({6}, DType::F64);
  c->all_gather(in, out);
  EXPECT_EQ(out.to_vector<float>(), values);
  Tensor out2 = Tensor::zeros({3, 2}, DType::F64);
  c->reduce_scatter(in, out2, ReduceOp::Max);
  EXPECT_EQ(out2.to_vector<float>(), values);
  EXPECT_EQ(out2.shape(), (Shape{3, 2}));
  c->all_gather(in, in);
  c->reduce_scatter(in, in);
  EXPECT_EQ(in.to_vector<float>(), values);
}

TEST(ParallelLocal, Conveniences) {
  auto c = make_communicator("none");
  std::vector<double> v = {1.0, -2.5, 1e300};
  c->all_reduce(v);
  EXPECT_EQ(v, (std::vector<double>{1.0, -2.5, 1e300}));
  c->all_reduce(v, ReduceOp::Min);
  EXPECT_EQ(v, (std::vector<double>{1.0, -2.5, 1e300}));
  std::vector<double> none;
  c->all_reduce(none);
  EXPECT_TRUE(none.empty());
  std::string s("with a \0 inside", 15);
  c->broadcast(s);
  EXPECT_EQ(s, std::string("with a \0 inside", 15));
  std::string e;
  c->broadcast(e);
  EXPECT_TRUE(e.empty());
}

TEST(ParallelLocal, ChecksArgumentsLikeTheOtherEngines) {
  auto c = make_communicator("none");
  Tensor grid = Tensor::zeros({4, 6}, DType::F32);
  Tensor strided = grid.transpose(0, 1);
  expect_error([&] { c->all_reduce(strided); }, "local all_reduce: the tensor f32[6, 4] cpu is not contiguous");
  expect_error([&] { c->all_reduce_async(strided); }, "not contiguous");
  expect_error([&] { c->broadcast(strided); }, "not contiguous");
  Tensor undefined;
  expect_error([&] { c->all_reduce(undefined); }, "undefined");
  expect_error([&] { c->broadcast(grid, 1); }, "root 1 is outside the world of 1 rank(s)");
  Tensor small = Tensor::zeros({5}, DType::F32);
  expect_error([&] { c->all_gather(grid, small); }, "must hold 1 rank(s) x 24 elements = 24 (it holds 5)");
  expect_error([&] { c->reduce_scatter(small, grid); }, "must hold 1 rank(s) x 24 elements = 24 (it holds 5)");
  Tensor f64 = Tensor::zeros({24}, DType::F64);
  expect_error([&] { c->all_gather(grid, f64); }, "differ in dtype");
  Tensor buffer = Tensor::zeros({30}, DType::F32);
  Tensor a = buffer.slice(0, 0, 24), shifted = buffer.slice(0, 3, 27);
  expect_error([&] { c->all_gather(a, shifted); }, "overlap");
  Tensor four = small.slice(0, 0, 4);
  expect_error([&] { c->all_gather(grid.select(1, 0), four); },
               "local all_gather: the input f32[4] cpu is not contiguous");
}

TEST(ParallelMakeCommunicator, EnginesAndErrors) {
  LauncherEnv env;
  EXPECT_EQ(make_communicator("none")->engine(), "local");
  EXPECT_EQ(make_communicator("local")->engine(), "local");
  EXPECT_EQ(make_communicator("auto")->engine(), "local");  // no launcher: no MPI
#ifndef DENSE_WITH_NCCL
  expect_error([] { make_communicator("nccl"); }, "this build has no NCCL (configure with CUDA and NCCL");
#endif
  expect_error([] { make_communicator("gloo"); },
               "unknown communication engine 'gloo': expected none, mpi, nccl or auto");
  expect_error([] { make_communicator(""); }, "expected none, mpi, nccl or auto");
}

TEST(ParallelLauncherEnv, ReadsTheLaunchersVariables) {
  LauncherEnv env;
  EXPECT_EQ(detail::launcher_world_size(), 0);
  EXPECT_FALSE(launched_with_several_ranks());
  {
    LauncherEnv inner;
    inner.set("OMPI_COMM_WORLD_SIZE", "4");  // OpenMPI's mpirun
    EXPECT_EQ(detail::launcher_world_size(), 4);
    EXPECT_TRUE(launched_with_several_ranks());
  }
  {
    LauncherEnv inner;
    inner.set("OMPI_COMM_WORLD_SIZE", "1");  // mpirun -np 1
    EXPECT_EQ(detail::launcher_world_size(), 1);
    EXPECT_FALSE(launched_with_several_ranks());
  }
  {
    LauncherEnv inner;
    inner.set("PMI_SIZE", "3");  // hydra, srun --mpi=pmi2
    EXPECT_EQ(detail::launcher_world_size(), 3);
  }
  {
    LauncherEnv inner;
    inner.set("MV2_COMM_WORLD_SIZE", "2");
    EXPECT_TRUE(launched_with_several_ranks());
  }
  {
    // Inside an sbatch script or salloc shell: an allocation of 8 tasks, but this process is one program.
    LauncherEnv inner;
    inner.set("SLURM_JOB_ID", "1234");
    inner.set("SLURM_NTASKS", "8");
    EXPECT_EQ(detail::launcher_world_size(), 0);
    EXPECT_FALSE(launched_with_several_ranks());
  }
  {
    // A task of `srun -n 8 --mpi=pmix`: a job step of 8 tasks.
    LauncherEnv inner;
    inner.set("SLURM_JOB_ID", "1234");
    inner.set("SLURM_NTASKS", "8");
    inner.set("SLURM_STEP_ID", "0");
    inner.set("SLURM_PROCID", "5");
    inner.set("SLURM_STEP_NUM_TASKS", "8");
    inner.set("PMIX_RANK", "5");
    EXPECT_EQ(detail::launcher_world_size(), 8);
    EXPECT_TRUE(launched_with_several_ranks());
  }
  {
    // `srun --pty bash` (a step of one task), then the program started by hand.
    LauncherEnv inner;
    inner.set("SLURM_NTASKS", "8");
    inner.set("SLURM_STEP_ID", "0");
    inner.set("SLURM_PROCID", "0");
    inner.set("SLURM_STEP_NUM_TASKS", "1");
    EXPECT_FALSE(launched_with_several_ranks());
  }
  {
    LauncherEnv inner;
    inner.set("OMPI_COMM_WORLD_SIZE", "not a number");
    EXPECT_EQ(detail::launcher_world_size(), 0);
    inner.set("OMPI_COMM_WORLD_SIZE", "-2");
    EXPECT_EQ(detail::launcher_world_size(), 0);
  }
  EXPECT_EQ(detail::launcher_world_size(), 0);  // the scopes restored the environment
}
