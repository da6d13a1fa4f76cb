// The one-process engine: a world of size 1, where every collective is the identity (all_gather and
// reduce_scatter copy their input to their output). It checks its arguments like the other engines, so a
// mistake shows up in a single-process run too.
#include <memory>

#include "parallel/engines.h"

namespace dense::parallel {

namespace {

class LocalRequest final : public Request {
 public:
  void wait() override {}
  bool test() override { return true; }
};

// out = in (same numel and dtype, checked), any shapes; nothing to do when they are the same memory.
void copy_flat(const Tensor& in, Tensor& out) {
  if (in.numel() == 0 || in.raw_data() == out.raw_data()) return;
  Tensor dst = out.view(in.shape());
  dst.copy_(in);
}

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string engine() const override { return "local"; }

  void all_reduce(Tensor& t, ReduceOp) override { detail::check_tensor("local", "all_reduce", t); }
  std::unique_ptr<Request> all_reduce_async(Tensor& t, ReduceOp) override {
    detail::check_tensor("local", "all_reduce_async", t);
    return std::make_unique<LocalRequest>();
  }
  void broadcast(Tensor& t, int root) override {
    detail::check_tensor("local", "broadcast", t);
    detail::check_root("local", "broadcast", root, 1);
  }
  void all_gather(const Tensor& in, Tensor& out) override {
    detail::check_gather("local", in, out, 0, 1, /*allow_in_place=*/true);
    copy_flat(in, out);
  }
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp) override {
    detail::check_scatter("local", in, out, 0, 1, /*allow_in_place=*/true);
    copy_flat(in, out);
  }
  void barrier() override {}

  using Communicator::all_reduce;
  using Communicator::broadcast;
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

}  // namespace dense::parallel
