// The MPI engine under a real launcher (ctest runs it with mpirun -np 2 and -np 3, and alone as a world of 1).
// Every rank runs every test; rank 0 prints gtest's output, other ranks print only their failures. The exit
// status is non-zero on every rank when any rank failed (the failure counts are all-reduced), and rank 0 prints
// "dense_mpi_tests: all N ranks passed" only then, which is what ctest looks for.
//
// Inputs are pseudo-random, never zero, different on every rank and reproducible from (rank, salt), so each
// rank computes the expected result of a collective from every rank's inputs by itself. Tests call the
// collectives before checking anything, so a failed check on one rank cannot leave the ranks out of step.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "backend/cpu_blas.h"
#include "core/error.h"
#include "core/tensor.h"
#include "mpi_world.h"
#include "parallel/communicator.h"
#include "parallel/engines.h"

using namespace dense;
using namespace dense::parallel;

namespace {

Communicator* g_comm = nullptr;
Communicator& comm() { return *g_comm; }

// ---- inputs and references ------------------------------------------------------------------------------

uint64_t seed_of(int rank, uint64_t salt) { return salt * 1000003ull + uint64_t(rank) * 7919ull + 12345ull; }

// n values for `rank`: floats in ±[0.25, 4), i32 in ±[1, 2^20], i64 in ±[2^40, 2^60] (beyond a double's 2^53,
// so an integer path through doubles would show), i8 in ±[1, 40], u8 in [1, 80]. Never zero.
template <typename T>
std::vector<T> inputs(int rank, int64_t n, uint64_t salt) {
  std::mt19937_64 gen(seed_of(rank, salt));
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) {
    const bool negative = (gen() & 1) != 0;
    if constexpr (std::is_floating_point_v<T>) {
      const T m = T(0.25 + 3.75 * std::uniform_real_distribution<double>(0, 1)(gen));
      x = negative ? -m : m;
    } else if constexpr (std::is_same_v<T, int64_t>) {
      const int64_t m = std::uniform_int_distribution<int64_t>(int64_t(1) << 40, int64_t(1) << 60)(gen);
      x = negative ? -m : m;
    } else if constexpr (std::is_same_v<T, int32_t>) {
      const int32_t m = std::uniform_int_distribution<int32_t>(1, 1 << 20)(gen);
      x = negative ? -m : m;
    } else if constexpr (std::is_same_v<T, int8_t>) {
      const int m = std::uniform_int_distribution<int>(1, 40)(gen);
      x = int8_t(negative ? -m : m);
    } else {
      static_assert(std::is_same_v<T, uint8_t>);
      x = uint8_t(std::uniform_int_distribution<int>(1, 80)(gen));
    }
  }
  return v;
}

// Raw 16-bit patterns for bf16/f16 data movement: any non-zero bits will do.
std::vector<uint16_t> inputs16(int rank, int64_t n, uint64_t salt) {
  std::mt19937_64 gen(seed_of(rank, salt));
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = uint16_t(1 + gen() % 65535);
  return v;
}

template <typename T>
Tensor tensor_of(const std::vector<T>& v, DType dtype = dtype_of<T>()) {
  Tensor t = Tensor::empty({int64_t(v.size())}, dtype);
  if (!v.empty()) std::memcpy(t.raw_data(), v.data(), v.size() * sizeof(T));
  return t;
}

template <typename T>
std::vector<T> values_of(const Tensor& t) {
  std::vector<T> v(static_cast<size_t>(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.raw_data(), v.size() * sizeof(T));
  return v;
}

const char* op_name(ReduceOp op) { return op == ReduceOp::Sum ? "sum" : op == ReduceOp::Max ? "max" : "min"; }

// The reduction of every rank's inputs, in double for floats (exact for the integers used here) and in T for
// integers, plus the sum of magnitudes that bounds a float sum's rounding error.
template <typename T>
struct Expected {
  std::vector<T> exact;           // integers, max and min: what the collective must produce exactly
  std::vector<double> sum;        // floats: the exact-ish sum in double
  std::vector<double> magnitude;  // sum of |x| over ranks
};

template <typename T>
Expected<T> expected(ReduceOp op, int64_t n, uint64_t salt, int64_t begin = 0) {
  const int size = comm().size();
  Expected<T> e;
  e.exact.assign(size_t(n), T(0));
  e.sum.assign(size_t(n), 0.0);
  e.magnitude.assign(size_t(n), 0.0);
  for (int r = 0; r < size; ++r) {
    const std::vector<T> all = inputs<T>(r, begin + n, salt);
    for (int64_t i = 0; i < n; ++i) {
      const T x = all[size_t(begin + i)];
      T& acc = e.exact[size_t(i)];
      if (op == ReduceOp::Sum)
        acc = r == 0 ? x : T(acc + x);
      else if (op == ReduceOp::Max)
        acc = r == 0 ? x : std::max(acc, x);
      else
        acc = r == 0 ? x : std::min(acc, x);
      e.sum[size_t(i)] += double(x);
      e.magnitude[size_t(i)] += std::fabs(double(x));
    }
  }
  return e;
}

// Checks `got` against the reduction of elements [begin, begin + n) of every rank's inputs.
template <typename T>
void expect_reduced(const std::vector<T>& got, ReduceOp op, uint64_t salt, double rel, int64_t begin = 0) {
  const int64_t n = int64_t(got.size());
  const Expected<T> e = expected<T>(op, n, salt, begin);
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 5; ++i) {
    if (std::is_floating_point_v<T> && op == ReduceOp::Sum) {
      const double err = std::fabs(double(got[size_t(i)]) - e.sum[size_t(i)]);
      if (!(err <= rel * e.magnitude[size_t(i)])) {
        ++bad;
        ADD_FAILURE() << op_name(op) << " element " << i << ": got " << double(got[size_t(i)]) << ", expected "
                      << e.sum[size_t(i)] << " (|error| " << err << " > " << rel << " x " << e.magnitude[size_t(i)]
                      << ")";
      }
    } else if (got[size_t(i)] != e.exact[size_t(i)]) {
      ++bad;
      ADD_FAILURE() << op_name(op) << " element " << i << ": got " << +got[size_t(i)] << ", expected "
                    << +e.exact[size_t(i)];
    }
  }
}

template <typename T>
double tolerance() {
  return std::is_same_v<T, float> ? 1e-6 : 1e-13;
}

template <typename F>
void expect_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no dense::Error (expected one containing '" << part << "')";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// The ranks are still in step: a fresh all-reduce gives the known answer.
void expect_in_step() {
  std::vector<double> v = {double(comm().rank() + 1)};
  comm().all_reduce(v);
  const int s = comm().size();
  EXPECT_EQ(v[0], double(s) * double(s + 1) / 2);
}

// Sets the MPI chunk limit on every rank for the scope.
class ChunkLimit {
 public:
  explicit ChunkLimit(int64_t elements) : previous_(detail::set_mpi_max_count(elements)) {}
  ~ChunkLimit() { detail::set_mpi_max_count(previous_); }

 private:
  int64_t previous_;
};

// ---- identity ------------------------------------------------------------------------------------------

TEST(MpiComm, Identity) {
  Communicator& c = comm();
  EXPECT_EQ(c.engine(), "mpi");
  int world_rank = -1, world_size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  EXPECT_EQ(c.rank(), world_rank);
  EXPECT_EQ(c.size(), world_size);
  EXPECT_EQ(c.is_root(), c.rank() == 0);
  EXPECT_GE(c.local_rank(), 0);
  EXPECT_LT(c.local_rank(), c.size());
  if (const char* lr = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) {
    EXPECT_EQ(c.local_rank(), std::atoi(lr));
  } else if (c.size() == 1) {
    EXPECT_EQ(c.local_rank(), 0);
  }
  EXPECT_EQ(launched_with_several_ranks(), c.size() > 1);
}

TEST(MpiComm, SecondCommunicatorAndAuto) {
  // MPI is initialised once; each communicator is its own duplicate of MPI_COMM_WORLD.
  auto second = make_communicator("mpi");
  auto automatic = make_communicator("auto");
  std::vector<double> v = {1.0, double(comm().rank())};
  second->all_reduce(v);
  automatic->all_reduce(v, ReduceOp::Max);
  const int s = comm().size();
  EXPECT_EQ(second->rank(), comm().rank());
  EXPECT_EQ(automatic->engine(), s > 1 ? "mpi" : "local");
  EXPECT_EQ(v[0], double(s));
  EXPECT_EQ(v[1], double(s) * double(s - 1) / 2);
}

// ---- all_reduce --------------------------------------------------------------------------------------------

template <typename T>
void check_all_reduce(ReduceOp op, uint64_t salt) {
  const int64_t n = 1037;
  Tensor t = tensor_of(inputs<T>(comm().rank(), n, salt));
  comm().all_reduce(t, op);
  expect_reduced(values_of<T>(t), op, salt, tolerance<T>());
}

TEST(MpiComm, AllReduceF32) {
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) check_all_reduce<float>(op, 11);
}
TEST(MpiComm, AllReduceF64) {
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) check_all_reduce<double>(op, 12);
}
TEST(MpiComm, AllReduceI64) {
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) check_all_reduce<int64_t>(op, 13);
}
TEST(MpiComm, AllReduceI32) {
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) check_all_reduce<int32_t>(op, 14);
}
TEST(MpiComm, AllReduceI8AndU8) {
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
    check_all_reduce<int8_t>(op, 15);
    check_all_reduce<uint8_t>(op, 16);
  }
}

TEST(MpiComm, AllReduceOfAViewAnd2D) {
  // A contiguous slice of a larger tensor is reduced in place; the rest is untouched.
  const int64_t n = 300;
  const std::vector<double> mine = inputs<double>(comm().rank(), n, 17);
  Tensor whole = tensor_of(mine);
  Tensor middle = whole.slice(0, 100, 200);
  comm().all_reduce(middle, ReduceOp::Max);
  Tensor grid = tensor_of(inputs<float>(comm().rank(), 60, 18)).view({6, 10});
  comm().all_reduce(grid);
  const std::vector<double> got = values_of<double>(whole);
  for (int64_t i = 0; i < n; ++i) {
    if (i < 100 || i >= 200) {
      EXPECT_EQ(got[size_t(i)], mine[size_t(i)]) << i;
    }
  }
  expect_reduced(std::vector<double>(got.begin() + 100, got.begin() + 200), ReduceOp::Max, 17, 0, 100);
  EXPECT_EQ(grid.shape(), (Shape{6, 10}));
  expect_reduced(values_of<float>(grid), ReduceOp::Sum, 18, 1e-6);
}

TEST(MpiComm, F32SumIsBitwiseEqualOnEveryRank) {
  const int64_t n = 4099;
  Tensor t = tensor_of(inputs<float>(comm().rank(), n, 19));
  comm().all_reduce(t);
  Tensor all = Tensor::empty({comm().size(), n}, DType::F32);
  comm().all_gather(t, all);
  const std::vector<float> gathered = values_of<float>(all);
  const std::vector<float> mine = values_of<float>(t);
  for (int r = 0; r < comm().size(); ++r)
    EXPECT_EQ(std::memcmp(gathered.data() + size_t(r) * size_t(n), mine.data(), size_t(n) * sizeof(float)), 0)
        << "rank " << r << "'s sum differs from rank " << comm().rank() << "'s";
}

TEST(MpiComm, EmptyTensorIsANoOp) {
  Tensor t = Tensor::empty({0}, DType::F32);
  comm().all_reduce(t);
  comm().all_reduce_async(t)->wait();
  comm().broadcast(t, comm().size() - 1);
  Tensor out = Tensor::empty({0}, DType::F32);
  comm().all_gather(t, out);
  comm().reduce_scatter(t, out);
  expect_in_step();
}

// ---- all_reduce_async ------------------------------------------------------------------------------------

TEST(MpiComm, AsyncAllReduceSeveralInFlight) {
  // Four reductions on disjoint slices of one buffer, started together; completed by polling test(), by
  // wait(), and by destroying the request.
  const int64_t k = 2053;
  const std::vector<float> mine = inputs<float>(comm().rank(), 4 * k, 21);
  Tensor buffer = tensor_of(mine);
  const ReduceOp ops[4] = {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::Sum};
  std::vector<std::unique_ptr<Request>> requests;
  for (int i = 0; i < 4; ++i) {
    Tensor part = buffer.slice(0, i * k, (i + 1) * k);
    requests.push_back(comm().all_reduce_async(part, ops[i]));
  }
  // Polling drives progress; it must finish well within the deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool done0 = false;
  int64_t polls = 0;
  while (!(done0 = requests[0]->test()) && std::chrono::steady_clock::now() < deadline) ++polls;
  EXPECT_TRUE(done0) << "test() never reported completion after " << polls << " polls";
  EXPECT_TRUE(requests[0]->test());  // stays complete
  requests[1]->wait();
  requests[1]->wait();  // a second wait returns at once
  EXPECT_TRUE(requests[1]->test());
  requests[2]->wait();
  requests[3].reset();  // the destructor waits
  const std::vector<float> got = values_of<float>(buffer);
  for (int i = 0; i < 4; ++i)
    expect_reduced(std::vector<float>(got.begin() + i * k, got.begin() + (i + 1) * k), ops[i], 21, 1e-6, i * k);
}

TEST(MpiComm, AsyncAllReduceIntegers) {
  const int64_t n = 777;
  Tensor a = tensor_of(inputs<int64_t>(comm().rank(), n, 22));
  Tensor b = tensor_of(inputs<int32_t>(comm().rank(), n, 23));
  auto ra = comm().all_reduce_async(a, ReduceOp::Sum);
  auto rb = comm().all_reduce_async(b, ReduceOp::Min);
  rb->wait();
  ra->wait();
  expect_reduced(values_of<int64_t>(a), ReduceOp::Sum, 22, 0);
  expect_reduced(values_of<int32_t>(b), ReduceOp::Min, 23, 0);
}

// ---- broadcast ----------------------------------------------------------------------------------------------

TEST(MpiComm, BroadcastFromTheLastRank) {
  const int root = comm().size() - 1;  // not rank 0 whenever there are several ranks
  const int me = comm().rank();
  Tensor f64 = tensor_of(inputs<double>(me, 1001, 31));
  Tensor i32 = tensor_of(inputs<int32_t>(me, 513, 32));
  Tensor u8 = tensor_of(inputs<uint8_t>(me, 77, 33));
  Tensor f32 = tensor_of(inputs<float>(me, 63, 34)).view({7, 9});
  Tensor bf = tensor_of(inputs16(me, 129, 35), DType::BF16);
  Tensor hf = tensor_of(inputs16(me, 130, 36), DType::F16);
  comm().broadcast(f64, root);
  comm().broadcast(i32, root);
  comm().broadcast(u8, root);
  comm().broadcast(f32, root);
  comm().broadcast(bf, root);
  comm().broadcast(hf, root);
  EXPECT_EQ(values_of<double>(f64), inputs<double>(root, 1001, 31));
  EXPECT_EQ(values_of<int32_t>(i32), inputs<int32_t>(root, 513, 32));
  EXPECT_EQ(values_of<uint8_t>(u8), inputs<uint8_t>(root, 77, 33));
  EXPECT_EQ(values_of<float>(f32), inputs<float>(root, 63, 34));
  EXPECT_EQ(f32.shape(), (Shape{7, 9}));
  EXPECT_EQ(values_of<uint16_t>(bf), inputs16(root, 129, 35));
  EXPECT_EQ(values_of<uint16_t>(hf), inputs16(root, 130, 36));
}

TEST(MpiComm, BroadcastFromEveryRoot) {
  for (int root = 0; root < comm().size(); ++root) {
    Tensor t = tensor_of(inputs<int64_t>(comm().rank(), 50, 37));
    comm().broadcast(t, root);
    EXPECT_EQ(values_of<int64_t>(t), inputs<int64_t>(root, 50, 37)) << "root " << root;
  }
}

// ---- all_gather and reduce_scatter --------------------------------------------------------------------------

template <typename T>
void check_all_gather(int64_t n, uint64_t salt, bool in_place) {
  const int size = comm().size(), me = comm().rank();
  Tensor out = Tensor::full({size, n}, 0.0, dtype_of<T>());
  Tensor in;
  if (in_place) {
    in = out.select(0, me);
    in.copy_(tensor_of(inputs<T>(me, n, salt)));
  } else {
    in = tensor_of(inputs<T>(me, n, salt));
  }
  comm().all_gather(in, out);
  const std::vector<T> got = values_of<T>(out);
  for (int r = 0; r < size; ++r)
    EXPECT_EQ(std::vector<T>(got.begin() + r * n, got.begin() + (r + 1) * n), inputs<T>(r, n, salt))
        << "block " << r << (in_place ? " (in place)" : "");
}

TEST(MpiComm, AllGather) {
  check_all_gather<float>(211, 41, false);
  check_all_gather<int64_t>(97, 42, false);
  check_all_gather<double>(1, 43, false);
  check_all_gather<float>(211, 44, true);
  check_all_gather<int32_t>(33, 45, true);
}

TEST(MpiComm, AllGatherBf16) {
  const int size = comm().size(), me = comm().rank();
  const int64_t n = 71;
  Tensor in = tensor_of(inputs16(me, n, 46), DType::BF16);
  Tensor out = Tensor::empty({size * n}, DType::BF16);
  comm().all_gather(in, out);
  const std::vector<uint16_t> got = values_of<uint16_t>(out);
  for (int r = 0; r < size; ++r)
    EXPECT_EQ(std::vector<uint16_t>(got.begin() + r * n, got.begin() + (r + 1) * n), inputs16(r, n, 46));
}

template <typename T>
void check_reduce_scatter(int64_t m, ReduceOp op, uint64_t salt, bool in_place) {
  const int size = comm().size(), me = comm().rank();
  Tensor in = tensor_of(inputs<T>(me, size * m, salt));
  Tensor out = in_place ? in.slice(0, me * m, (me + 1) * m) : Tensor::full({m}, 0.0, dtype_of<T>());
  comm().reduce_scatter(in, out, op);
  // Rank r receives the reduction of block r: elements [r * m, (r + 1) * m) of every rank's inputs.
  SCOPED_TRACE(in_place ? "in place" : "separate output");
  expect_reduced(values_of<T>(out), op, salt, tolerance<T>(), me * m);
}

TEST(MpiComm, ReduceScatter) {
  check_reduce_scatter<double>(129, ReduceOp::Sum, 51, false);
  check_reduce_scatter<float>(257, ReduceOp::Sum, 52, false);
  check_reduce_scatter<int32_t>(64, ReduceOp::Sum, 53, false);
  check_reduce_scatter<int64_t>(65, ReduceOp::Max, 54, false);
  check_reduce_scatter<float>(31, ReduceOp::Min, 55, false);
  check_reduce_scatter<double>(129, ReduceOp::Sum, 56, true);
  check_reduce_scatter<int64_t>(17, ReduceOp::Min, 57, true);
}

// ---- barrier ------------------------------------------------------------------------------------------------

TEST(MpiComm, BarrierOrdersAFileWrite) {
  // Rank 0 writes a file just before the barrier; every other rank must see it right after. (ctest runs every
  // rank on one machine.)
  std::string path;
  if (comm().is_root())
    path = (std::filesystem::temp_directory_path() /
            ("dense_mpi_barrier_" + std::to_string(getpid()) + "_" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())))
               .string();
  comm().broadcast(path);
  if (comm().is_root()) {
    // Late on purpose: without a real barrier the other ranks would look before the file exists.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::ofstream(path) << "written before the barrier\n";
  }
  comm().barrier();
  const bool seen = std::filesystem::exists(path);
  comm().barrier();
  if (comm().is_root()) std::filesystem::remove(path);
  EXPECT_TRUE(seen) << path;
}

// ---- conveniences ---------------------------------------------------------------------------------------------

TEST(MpiComm, VectorOfDoubles) {
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
    std::vector<double> v = inputs<double>(comm().rank(), 9, 61);
    comm().all_reduce(v, op);
    expect_reduced(v, op, 61, 1e-13);
  }
  std::vector<double> none;
  comm().all_reduce(none);
  EXPECT_TRUE(none.empty());
}

TEST(MpiComm, Strings) {
  const int root = comm().size() - 1;
  auto text_of = [](int rank) {
    std::string s = "rank " + std::to_string(rank) + " says hello";
    s += std::string(size_t(rank) * 37 + 3, 'x');
    s.push_back('\0');  // binary-safe
    s += "\xff\x01 tail";
    return s;
  };
  std::string s = text_of(comm().rank());
  comm().broadcast(s, root);
  EXPECT_EQ(s, text_of(root));
  // An empty string from the root empties everyone's.
  std::string e = comm().rank() == root ? std::string() : text_of(comm().rank());
  comm().broadcast(e, root);
  EXPECT_TRUE(e.empty()) << e.size();
  // From rank 0 (the default root).
  std::string z = text_of(comm().rank());
  comm().broadcast(z);
  EXPECT_EQ(z, text_of(0));
}

// ---- the chunked paths (counts above MPI's int range, simulated with a small limit) ------------------------

TEST(MpiComm, ChunkedCollectives) {
  const int size = comm().size(), me = comm().rank();
  for (int64_t limit : {int64_t(1), int64_t(7), int64_t(64)}) {
    SCOPED_TRACE("chunk limit " + std::to_string(limit));
    ChunkLimit guard(limit);
    ASSERT_EQ(detail::mpi_max_count(), limit);
    // all_reduce: 50 elements in ceil(50 / limit) calls.
    Tensor a = tensor_of(inputs<double>(me, 50, 71));
    comm().all_reduce(a);
    Tensor b = tensor_of(inputs<int64_t>(me, 50, 72));
    comm().all_reduce(b, ReduceOp::Max);
    // all_reduce_async: one request per chunk, several in flight.
    Tensor c = tensor_of(inputs<int32_t>(me, 50, 73));
    auto rc = comm().all_reduce_async(c);
    Tensor d = tensor_of(inputs<float>(me, 45, 74));
    auto rd = comm().all_reduce_async(d, ReduceOp::Min);
    while (!rd->test()) {
    }
    rc->wait();
    // broadcast from the last rank.
    Tensor e = tensor_of(inputs<uint8_t>(me, 50, 75));
    comm().broadcast(e, size - 1);
    // all_gather: size x 13 elements exceed the limit, so each block is broadcast in chunks.
    Tensor in = tensor_of(inputs<float>(me, 13, 76));
    Tensor out = Tensor::full({size * 13}, 0.0, DType::F32);
    comm().all_gather(in, out);
    Tensor out2 = Tensor::full({size * 13}, 0.0, DType::F32);
    Tensor in2 = out2.slice(0, me * 13, (me + 1) * 13);
    in2.copy_(in);
    comm().all_gather(in2, out2);
    // reduce_scatter: block r reduced onto rank r in chunks, with a separate output and in place.
    Tensor rs_in = tensor_of(inputs<int64_t>(me, size * 11, 77));
    Tensor rs_out = Tensor::full({11}, 0.0, DType::I64);
    comm().reduce_scatter(rs_in, rs_out, ReduceOp::Sum);
    Tensor rs_in2 = tensor_of(inputs<double>(me, size * 11, 78));
    Tensor rs_out2 = rs_in2.slice(0, me * 11, (me + 1) * 11);
    comm().reduce_scatter(rs_in2, rs_out2, ReduceOp::Max);

    expect_reduced(values_of<double>(a), ReduceOp::Sum, 71, 1e-13);
    expect_reduced(values_of<int64_t>(b), ReduceOp::Max, 72, 0);
    expect_reduced(values_of<int32_t>(c), ReduceOp::Sum, 73, 0);
    expect_reduced(values_of<float>(d), ReduceOp::Min, 74, 0);
    EXPECT_EQ(values_of<uint8_t>(e), inputs<uint8_t>(size - 1, 50, 75));
    const std::vector<float> g = values_of<float>(out), g2 = values_of<float>(out2);
    for (int r = 0; r < size; ++r) {
      EXPECT_EQ(std::vector<float>(g.begin() + r * 13, g.begin() + (r + 1) * 13), inputs<float>(r, 13, 76)) << r;
      EXPECT_EQ(std::vector<float>(g2.begin() + r * 13, g2.begin() + (r + 1) * 13), inputs<float>(r, 13, 76)) << r;
    }
    expect_reduced(values_of<int64_t>(rs_out), ReduceOp::Sum, 77, 0, me * 11);
    expect_reduced(values_of<double>(rs_out2), ReduceOp::Max, 78, 0, me * 11);
  }
  EXPECT_EQ(detail::mpi_max_count(), int64_t(1) << 30);
  expect_in_step();
}

// ---- errors: every rank throws the same error before communicating, and stays in step ----------------------

TEST(MpiComm, ErrorsAreClearAndKeepRanksInStep) {
  const int size = comm().size(), me = comm().rank();
  Tensor bf = Tensor::full({8}, 1.0, DType::BF16);
  expect_error([&] { comm().all_reduce(bf); }, "dtype bf16 cannot be reduced over MPI");
  expect_error([&] { comm().all_reduce_async(bf); }, "mpi all_reduce_async: dtype bf16");
  Tensor hf_in = Tensor::full({size * 4}, 1.0, DType::F16), hf_out = Tensor::full({4}, 1.0, DType::F16);
  expect_error([&] { comm().reduce_scatter(hf_in, hf_out); }, "mpi reduce_scatter: dtype f16 cannot be reduced");

  Tensor grid = tensor_of(inputs<float>(me, 24, 81)).view({4, 6});
  Tensor strided = grid.transpose(0, 1);
  expect_error([&] { comm().all_reduce(strided); }, "is not contiguous");
  expect_error([&] { comm().broadcast(strided); }, "mpi broadcast: the tensor f32[6, 4] cpu is not contiguous");
  Tensor column = grid.select(1, 2);
  Tensor gathered = Tensor::empty({size * 4}, DType::F32);
  expect_error([&] { comm().all_gather(column, gathered); }, "mpi all_gather: the input");

  Tensor in = tensor_of(inputs<float>(me, 10, 82));
  Tensor wrong = Tensor::empty({size * 10 + 1}, DType::F32);
  expect_error([&] { comm().all_gather(in, wrong); }, "must hold");
  Tensor wrong_dtype = Tensor::empty({size * 10}, DType::F64);
  expect_error([&] { comm().all_gather(in, wrong_dtype); }, "differ in dtype");
  Tensor rs_out = Tensor::empty({3}, DType::F32);
  expect_error([&] { comm().reduce_scatter(in, rs_out); }, "mpi reduce_scatter: the input");
  Tensor undefined;
  expect_error([&] { comm().all_reduce(undefined); }, "undefined");

  // Overlap that is not the in-place layout.
  Tensor big = Tensor::empty({size * 10 + 1}, DType::F32);
  Tensor shifted = big.slice(0, 1, 11);
  Tensor big_view = big.slice(0, 0, size * 10);
  expect_error([&] { comm().all_gather(shifted, big_view); }, "overlap");

  expect_error([&] { comm().broadcast(in, size); }, "root " + std::to_string(size) + " is outside the world");
  expect_error([&] { comm().broadcast(in, -1); }, "is outside the world");
  expect_in_step();
}

TEST(MpiComm, ErrorMessagesNameCallRankAndMpiText) {
  const std::string m = detail::mpi_error_message("MPI_Allreduce", MPI_ERR_COUNT, 1, 2);
  EXPECT_EQ(m.rfind("MPI_Allreduce on rank 1 of 2: ", 0), 0u) << m;
  EXPECT_NE(m.find("MPI_ERR_COUNT"), std::string::npos) << m;
  EXPECT_NE(m.find("count"), std::string::npos) << m;
}

TEST(MpiComm, LauncherMismatchIsAnError) {
  // A launcher announcing several ranks while MPI sees a world of 1 (srun without PMI, mpirun of another MPI)
  // would make N independent one-rank runs; it must be an error. Only a world of 1 can simulate it.
  if (comm().size() != 1) GTEST_SKIP() << "needs a world of 1 (the singleton run)";
  ASSERT_EQ(std::getenv("OMPI_COMM_WORLD_SIZE"), nullptr);
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  expect_error([] { make_communicator("mpi"); }, "the launcher started 4 ranks but MPI sees a world of 1");
  expect_error([] { make_communicator("auto"); }, "the launcher started 4 ranks");
  unsetenv("OMPI_COMM_WORLD_SIZE");
}

// The harness itself: with DENSE_MPI_TESTS_FAIL_ON_RANK=R, rank R alone fails this test, and the run must fail
// on every rank with rank 0 reporting it (ctest's mpi_harness_detects_one_failing_rank). Skipped otherwise.
TEST(MpiHarness, FailsOnOneRankWhenAsked) {
  const char* fail_on = std::getenv("DENSE_MPI_TESTS_FAIL_ON_RANK");
  if (!fail_on) GTEST_SKIP() << "set DENSE_MPI_TESTS_FAIL_ON_RANK to check the harness";
  expect_in_step();
  EXPECT_NE(comm().rank(), std::atoi(fail_on)) << "failing on purpose on rank " << comm().rank();
}

// abort_world: with DENSE_MPI_TESTS_ABORT_ON_RANK=R (R > 0), rank R aborts while the others wait for it in an
// all-reduce; the launcher must then stop the whole job instead of hanging (ctest's
// mpi_abort_world_stops_every_rank). Without the variable: in a world of 1 it returns and does nothing.
TEST(MpiHarness, AbortWorld) {
  const char* abort_on = std::getenv("DENSE_MPI_TESTS_ABORT_ON_RANK");
  if (!abort_on) {
    if (comm().size() == 1) abort_world(3);  // returns: nothing to stop
    expect_in_step();
    return;
  }
  if (comm().rank() == std::atoi(abort_on)) {
    std::fprintf(stderr, "rank %d calls abort_world(3)\n", comm().rank());
    abort_world(3);
    ADD_FAILURE() << "abort_world returned in a world of " << comm().size();
    return;
  }
  std::vector<double> never = {1.0};
  comm().all_reduce(never);  // blocks until the launcher stops this rank
  ADD_FAILURE() << "the all-reduce returned although a rank aborted";
}

// ---- main: ranks agree on the outcome -------------------------------------------------------------------------

// Ranks other than 0 print only what failed, prefixed with their rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.message());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

}  // namespace

dense::parallel::Communicator& mpi_test_world() { return comm(); }

int main(int argc, char** argv) {
  dense::restart_with_fast_blas_kernels(argv);  // the kernels the programs run (backend/cpu_blas.h)
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<Communicator> communicator;
  try {
    communicator = make_communicator("mpi");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dense_mpi_tests: cannot start MPI: %s\n", e.what());
    return 1;
  }
  g_comm = communicator.get();
  const int rank = communicator->rank(), size = communicator->size();
  ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int rc = RUN_ALL_TESTS();
  const ::testing::UnitTest& ut = *::testing::UnitTest::GetInstance();
  const int failed = std::max(ut.failed_test_count(), rc != 0 ? 1 : 0);
  const int passed = ut.successful_test_count();
  std::fflush(stdout);
  std::fprintf(stderr, "rank %d of %d: %d tests passed, %d failed\n", rank, size, passed, failed);
  std::vector<double> totals = {double(failed), double(rank == 0 ? 0 : 1)};
  try {
    communicator->all_reduce(totals);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dense_mpi_tests: rank %d: the final all_reduce failed: %s\n", rank, e.what());
    return 1;
  }
  // totals[1] counts the ranks other than 0 that reached this point: all of them, or the all-reduce would not
  // have returned.
  const bool all_passed = totals[0] == 0 && totals[1] == double(size - 1);
  if (rank == 0) {
    if (all_passed)
      std::printf("dense_mpi_tests: all %d ranks passed (%d tests each)\n", size, passed);
    else
      std::printf("dense_mpi_tests: FAILED: %d test failure(s) over %d ranks\n", int(totals[0]), size);
    std::fflush(stdout);
  }
  return all_passed ? 0 : 1;
}
