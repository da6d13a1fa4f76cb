// Long-context attention on the CPU (docs/benchmarks.md, issue #7). Three tables, one run each:
//
//   dense_bench_sparse patterns [--threads 2] [--max-n 65536] [--d 64]
//       every pattern's graph attention forward and forward+backward against N (f32, one head), with nnz, the
//       index memory and the activation memory, beside dense softmax attention (GEMM + softmax, N x N scores)
//       while its scores fit;
//   dense_bench_sparse window --tokens 50000000 [--window 64] [--d 64] [--dtype bf16]
//       the longest sliding-window forward: implicit band (no index memory), output written over Q, so the
//       working set is Q/O, K, V: 3·N·d elements;
//   dense_bench_sparse cqs [--n 8192] [--d 64]
//       CQS sequential mode against W: the largest worker's working set (its gathered Q, K, V, O, dO and its
//       owned-cell graph) beside full attention's, and the time of a forward+backward.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu_blas.h"
#include "backend/ops.h"
#include "nn/attention_patterns.h"
#include "nn/device_graph.h"
#include "parallel/cqs_attention.h"

using namespace dense;
using Clock = std::chrono::steady_clock;

namespace {

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

template <typename F>
double best_of(int reps, F&& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    f();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

std::string arg(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 2; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

// Uniform draws: the Normal generator's Box-Muller costs more than the attention at 50M tokens.
Tensor random(const Shape& s, uint64_t seed, DType t = DType::F32) {
  Tensor x = Tensor::empty(s, t);
  ops::fill_uniform(x, -1.7, 1.7, seed, 0);
  return x;
}

int patterns(int argc, char** argv) {
  const int64_t max_n = std::stoll(arg(argc, argv, "--max-n", "65536"));
  const int64_t d = std::stoll(arg(argc, argv, "--d", "64"));
  const char* specs[] = {"sliding_window:window=64",
                         "dilated:window=32,dilation=4",
                         "block_local:block=128",
                         "longformer:window=64,global_tokens=0..7",
                         "bigbird:block=64,window_blocks=3,global_blocks=1,random_blocks=1",
                         "strided:stride=128",
                         "fixed:stride=128,summary=16",
                         "dense"};
  std::printf("| pattern | N | nnz/row | fwd ms | fwd+bwd ms | Gedge/s fwd | index MiB | activations MiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (int64_t n = 4096; n <= max_n; n *= 4) {
    const Tensor q = random({1, n, d}, 1), k = random({1, n, d}, 2), v = random({1, n, d}, 3),
                 dout = random({1, n, d}, 4);
    for (const char* text : specs) {
      const nn::PatternSpec spec = nn::parse_pattern(text, "bench");
      if (spec.kind == nn::PatternKind::Dense && n > 4096) continue;  // N² edges: the GEMM row below covers it
      nn::PatternGraphCache cache;
      const nn::DeviceGraph& g = cache.get(spec, n, 1, 0, Device::cpu());
      Tensor o = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({1, 1, n}, DType::F32);
      Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = dq.clone(), dv = dq.clone();
      const double scale = 1.0 / std::sqrt(double(d));
      const double fwd = best_of(3, [&] {
        ops::graph_attention_forward(GraphScore::Softmax, q, k, v, g.forward_ref(), nullptr, 1, scale, o, &lse);
      });
      const double bwd = best_of(2, [&] {
        ops::graph_attention_backward(GraphScore::Softmax, q, k, v, g.forward_ref(), g.transposed_ref(), nullptr, 1,
                                      scale, o, dout, &lse, dq, dk, dv);
      });
      // Index memory: the CSR and its transpose (int64 row pointers, int32 columns); the band needs none.
      const bool band = spec.kind == nn::PatternKind::SlidingWindow;
      const double index = band ? 0.0 : 2.0 * (8.0 * double(n + 1) + 4.0 * double(g.nnz()));
      const double acts = 4.0 * double(n * d) * 8 + 4.0 * double(n);  // q k v o dout dq dk dv, lse
      std::printf("| %s | %lld | %.1f | %.1f | %.1f | %.2f | %.1f | %.1f |\n", text, static_cast<long long>(n),
                  double(g.nnz()) / double(n), 1e3 * fwd, 1e3 * (fwd + bwd), double(g.nnz()) / fwd / 1e9, mib(index),
                  mib(acts));
      std::fflush(stdout);
    }
    // Dense softmax attention through GEMMs: materialises the N x N scores.
    if (n <= 16384) {
      Tensor s = Tensor::empty({1, n, n}, DType::F32), p = s.clone();
      Tensor o = Tensor::empty({1, n, d}, DType::F32);
      const double fwd = best_of(2, [&] {
        ops::matmul(q, false, k, true, s);
        ops::softmax_forward(s, 1.0 / std::sqrt(double(d)), nullptr, 1, p);
        ops::matmul(p, false, v, false, o);
      });
      std::printf("| dense softmax (GEMM, N x N scores) | %lld | %lld | %.1f | - | %.2f | 0 | %.1f |\n",
                  static_cast<long long>(n), static_cast<long long>(n), 1e3 * fwd, double(n) * double(n) / fwd / 1e9,
                  mib(4.0 * (2.0 * double(n) * double(n) + 4.0 * double(n * d))));
      std::fflush(stdout);
    }
  }
  return 0;
}

int window(int argc, char** argv) {
  const int64_t n = std::stoll(arg(argc, argv, "--tokens", "50000000"));
  const int64_t w = std::stoll(arg(argc, argv, "--window", "64"));
  const int64_t d = std::stoll(arg(argc, argv, "--d", "64"));
  const std::string dtype = arg(argc, argv, "--dtype", "bf16");
  const DType t = dtype == "f32" ? DType::F32 : (dtype == "f16" ? DType::F16 : DType::BF16);
  const double bytes = 3.0 * double(n) * double(d) * double(dtype_size(t));
  std::printf(
      "sliding window forward: N = %lld, w = %lld (%lld keys per query), d = %lld, one head, %s, %.2f GiB "
      "of Q/O, K, V\n",
      static_cast<long long>(n), static_cast<long long>(w), static_cast<long long>(2 * w + 1),
      static_cast<long long>(d), dtype.c_str(), bytes / (1024.0 * 1024.0 * 1024.0));
  std::fflush(stdout);
  const double t0 = now_s();
  Tensor q = random({1, n, d}, 1, t), k = random({1, n, d}, 2, t), v = random({1, n, d}, 3, t);
  const double t_init = now_s() - t0;
  const nn::DeviceGraph g = nn::DeviceGraph::band(n, n, -w, w);
  const double t1 = now_s();
  ops::graph_attention_forward(GraphScore::Softmax, q, k, v, g.forward_ref(), nullptr, 1, 1.0 / std::sqrt(double(d)), q,
                               nullptr);
  const double fwd = now_s() - t1;
  // A finite, nonzero output is the sanity check of a run this size (the kernel is checked in the tests).
  const Tensor head = q.slice(1, 0, 4).to(DType::F32).contiguous();
  const Tensor tail = q.slice(1, n - 4, n).to(DType::F32).contiguous();
  const double check = ops::sum(head) + ops::sum(tail);
  std::printf("| N | w | d | dtype | Q/O+K+V GiB | init s | forward s | tokens/s | edges/s | check |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::printf("| %lld | %lld | %lld | %s | %.2f | %.1f | %.1f | %.3g | %.3g | %.4g |\n", static_cast<long long>(n),
              static_cast<long long>(w), static_cast<long long>(d), dtype.c_str(), bytes / (1024.0 * 1024.0 * 1024.0),
              t_init, fwd, double(n) / fwd, double(g.nnz()) / fwd, check);
  return std::isfinite(check) ? 0 : 1;
}

int cqs(int argc, char** argv) {
  const int64_t n = std::stoll(arg(argc, argv, "--n", "8192"));
  const int64_t d = std::stoll(arg(argc, argv, "--d", "64"));
  const Tensor q = random({1, n, d}, 1), k = random({1, n, d}, 2), v = random({1, n, d}, 3),
               dout = random({1, n, d}, 4);
  const double scale = 1.0 / std::sqrt(double(d));
  std::printf(
      "| W | I | longest material / N | largest worker: cells | worker working set MiB | vs full | fwd+bwd s |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  // Full attention as graph attention over all N² edges: the W = 1 row.
  double full_bytes = 0;
  {
    const nn::CsrGraph all = nn::CsrGraph::from_predicate(n, n, [](int64_t, int64_t) { return true; });
    const nn::DeviceGraph g = nn::DeviceGraph::upload({all}, Device::cpu());
    Tensor o = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({1, 1, n}, DType::F32);
    Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = dq.clone(), dv = dq.clone();
    const double t = best_of(1, [&] {
      ops::graph_attention_forward(GraphScore::Softmax, q, k, v, g.forward_ref(), nullptr, 1, scale, o, &lse);
      ops::graph_attention_backward(GraphScore::Softmax, q, k, v, g.forward_ref(), g.transposed_ref(), nullptr, 1,
                                    scale, o, dout, &lse, dq, dk, dv);
    });
    full_bytes = 2.0 * (8.0 * double(n + 1) + 4.0 * double(n) * double(n)) + 4.0 * double(n * d) * 8;
    std::printf("| 1 (full) | - | 1.000 | %lld | %.1f | 1.000 | %.2f |\n", static_cast<long long>(n * n),
                mib(full_bytes), t);
    std::fflush(stdout);
  }
  for (int64_t W : {3, 7, 13, 31, 57}) {
    parallel::CqsAttention attn(parallel::make_cqs_schedule(n, W), {GraphScore::Softmax, 1, scale});
    int64_t cells = 0, material = 0;
    for (int64_t w = 0; w < W; ++w) {
      cells = std::max(cells, attn.worker_graph(w).nnz());
      material = std::max<int64_t>(material, static_cast<int64_t>(attn.material(w).size()));
    }
    // A worker holds its graph and transpose, and Q, K, V, O, dO, dQ, dK, dV of its material rows.
    const double bytes = 2.0 * (8.0 * double(material + 1) + 4.0 * double(cells)) + 4.0 * double(material * d) * 8;
    Tensor o = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({1, 1, n}, DType::F32);
    Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = dq.clone(), dv = dq.clone();
    const double t = best_of(1, [&] {
      attn.forward(q, k, v, nullptr, o, &lse);
      attn.backward(q, k, v, nullptr, o, &lse, dout, dq, dk, dv);
    });
    std::string set;
    for (int64_t x : attn.schedule().interest) set += (set.empty() ? "" : ",") + std::to_string(x);
    std::printf("| %lld | {%s} | %.3f | %lld | %.1f | %.3f | %.2f |\n", static_cast<long long>(W), set.c_str(),
                double(material) / double(n), static_cast<long long>(cells), mib(bytes), bytes / full_bytes, t);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  dense::restart_with_fast_blas_kernels(argv);
  if (const std::string note = dense::blas_restart_note(); !note.empty())
    std::fprintf(stderr, "dense_bench_sparse: note: %s\n", note.c_str());
  const std::string mode = argc > 1 ? argv[1] : "";
  set_cpu_threads(std::stoi(arg(argc, argv, "--threads", "2")));
  try {
    if (mode == "patterns") return patterns(argc, argv);
    if (mode == "window") return window(argc, argv);
    if (mode == "cqs") return cqs(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dense_bench_sparse: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: dense_bench_sparse patterns|window|cqs [options] (see the file's header)\n");
  return 2;
}
