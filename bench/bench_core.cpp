// Core CPU benchmark: GEMM, dropout, DenseAttention forward+backward against N, and one DANet training step beside
// OpenBLAS sgemm and the PyTorch reference, all measured in this run. Prints one Markdown table.
//
//   dense_bench_core [--threads 2] [--max-n 65536] [--steps 5] [--no-torch]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <cblas.h>

#include "backend/cpu/backend.h"
#include "backend/cpu_blas.h"
#include "backend/ops.h"
#include "core/philox.h"
#include "models/model.h"
#include "nn/dense_attention.h"

extern "C" void openblas_set_num_threads(int);

using namespace dense;
using Clock = std::chrono::steady_clock;

namespace {

template <typename F>
double seconds_per_call(F&& f, int reps) {
  f();  // warm-up (allocator, caches)
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) f();
  return std::chrono::duration<double>(Clock::now() - t0).count() / reps;
}

struct Row {
  std::string what;
  std::string size;
  double ms;
  double gflops;  // 0: not applicable
  std::string note;
};

double torch_step_ms(int d, int L, int N, int B, int threads, int steps) {
  const std::string cmd = "/usr/bin/python3 " + std::string(DENSE_SOURCE_DIR) + "/bench/torch_danet_step.py " +
                          std::to_string(d) + " " + std::to_string(L) + " " + std::to_string(N) + " " +
                          std::to_string(B) + " " + std::to_string(threads) + " " + std::to_string(steps);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[256];
  double ms = -1;
  while (fgets(buf, sizeof buf, p))
    if (std::strncmp(buf, "ms_per_step ", 12) == 0) ms = std::atof(buf + 12);
  pclose(p);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  dense::restart_with_fast_blas_kernels(argv);
  if (const std::string note = dense::blas_restart_note(); !note.empty())
    std::fprintf(stderr, "dense_bench_core: note: %s\n", note.c_str());
  int threads = 2, steps = 5;
  int64_t max_n = 65536;
  bool with_torch = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--max-n" && i + 1 < argc)
      max_n = std::atoll(argv[++i]);
    else if (a == "--steps" && i + 1 < argc)
      steps = std::atoi(argv[++i]);
    else if (a == "--no-torch")
      with_torch = false;
    else {
      std::fprintf(stderr, "usage: %s [--threads T] [--max-n N] [--steps S] [--no-torch]\n", argv[0]);
      return 2;
    }
  }
  set_cpu_threads(threads);
  std::vector<Row> rows;

  // 1. sgemm: OpenBLAS with its own threads (the ceiling a training step can approach), and through
  // ops::matmul (densetrain splits a GEMM across its OpenMP threads, each running single-threaded OpenBLAS).
  double sgemm_gflops = 0;
  {
    const int64_t n = 1024;
    Tensor a = Tensor::empty({n, n}, DType::F32), b = Tensor::empty({n, n}, DType::F32),
           c = Tensor::empty({n, n}, DType::F32);
    ops::fill_normal(a, 0, 1, 1, 0);
    ops::fill_normal(b, 0, 1, 2, 0);
    openblas_set_num_threads(threads);
    const double native = seconds_per_call(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.0f, a.data<float>(), int(n),
                      b.data<float>(), int(n), 0.0f, c.data<float>(), int(n));
        },
        10);
    set_cpu_threads(threads);  // back to densetrain's threading (OpenBLAS single-threaded per call)
    sgemm_gflops = 2.0 * n * n * n / native / 1e9;
    rows.push_back({"sgemm (OpenBLAS, its own threads)", "1024³", native * 1e3, sgemm_gflops, "reference rate"});
    const double s = seconds_per_call([&] { ops::matmul(a, false, b, false, c); }, 10);
    char note[64];
    std::snprintf(note, sizeof note, "%.0f%% of sgemm", 100.0 * 2.0 * n * n * n / s / 1e9 / sgemm_gflops);
    rows.push_back({"ops::matmul f32", "1024³", s * 1e3, 2.0 * n * n * n / s / 1e9, note});
    // Training-step efficiency is reported against the better of the two GEMM rates.
    sgemm_gflops = std::max(sgemm_gflops, 2.0 * n * n * n / s / 1e9);
  }

  // 1b. Dropout on 8.4M elements (BERT's attention probabilities at B 32, H 4, N 256): the kernel (one Philox
  // call per four elements) beside the per-element definition it must equal.
  {
    const int64_t n = int64_t(32) * 4 * 256 * 256;
    Tensor x = Tensor::empty({n}, DType::F32), y = Tensor::empty({n}, DType::F32);
    ops::fill_normal(x, 0, 1, 4, 0);
    const float* px = x.data<float>();
    float* py = y.data<float>();
    const double per_element = seconds_per_call(
        [&] {
#pragma omp parallel for schedule(static)
          for (int64_t i = 0; i < n; ++i) py[i] = philox_keep(7, 0, uint64_t(i), 0.1f) ? px[i] / 0.9f : 0.0f;
        },
        3);
    const double kernel = seconds_per_call([&] { y = ops::dropout(x, 0.1, 7, 0); }, 3);
    rows.push_back({"dropout: a Philox call per element", "8.4M f32", per_element * 1e3, 0, "the definition"});
    char note[64];
    std::snprintf(note, sizeof note, "%.1fx faster", per_element / kernel);
    rows.push_back({"ops::dropout f32", "8.4M f32", kernel * 1e3, 0, note});
  }

  // 2. DenseAttention forward+backward, linear path, d = e = 256, one head: cost per token stays flat.
  {
    const int64_t d = 256;
    nn::ParameterSet params;
    nn::DenseAttentionConfig cfg;
    cfg.hidden = d;
    cfg.heads = 1;
    cfg.complexity = nn::AttentionComplexity::Linear;
    cfg.kind = nn::LayerKind::Global;
    nn::DenseAttention attn(params, "attn", cfg, nullptr, 0.02);
    params.materialize(DType::F32, Device::cpu());
    params.initialize(1);
    for (int64_t n = 1024; n <= max_n; n *= 2) {
      Tensor x = Tensor::empty({1, n, d}, DType::F32);
      ops::fill_normal(x, 0, 0.1, 3, 0);
      nn::Context ctx;
      const double s = seconds_per_call(
          [&] {
            Tensor y = attn.forward(x, ctx);
            attn.backward(y);
          },
          3);
      // forward: Q projection 2nd² + KᵀV 2nd² + QM 2nd²; backward twice that.
      const double flops = 3.0 * 6.0 * double(n) * d * d;
      char note[64];
      std::snprintf(note, sizeof note, "%.0f ns/token", s * 1e9 / double(n));
      rows.push_back(
          {"DenseAttention fwd+bwd (linear)", "N=" + std::to_string(n) + ", d=256", s * 1e3, flops / s / 1e9, note});
    }
  }

  // 3. One training step of a small DANet (d=256, L=4, N=512, batch 8, f32) beside sgemm and PyTorch.
  const int d = 256, L = 4, N = 512, B = 8;
  double step_ms = 0;
  {
    models::ModelConfig c;
    c.vocab_size = 30522;
    c.hidden_size = d;
    c.num_hidden_layers = L;
    c.num_attention_heads = 1;
    c.intermediate_size = 4;
    c.max_position_embeddings = N;
    c.embedding_ln_type = models::NormType::MaxNorm;
    c.final_ln_type = models::NormType::MaxNorm;
    c.lm_head_ln_type = models::NormType::StandardLn;
    c.attention_complexity = nn::AttentionComplexity::Linear;
    c.pooler_function = nn::PoolFunction::First;
    auto model = models::build_model(c, DType::F32, Device::cpu(), 1);
    std::vector<int64_t> ids(size_t(B * N)), labels(size_t(B * N), -1);
    int64_t masked = 0;
    for (int64_t i = 0; i < B * N; ++i) {
      ids[size_t(i)] = (i * 7919) % 30522;
      if ((i * 2654435761u) % 100 < 15) labels[size_t(i)] = ids[size_t(i)], ++masked;
    }
    models::Batch batch;
    batch.input_ids = Tensor::from_vector(ids, {B, N}, DType::I64);
    batch.mlm_labels = Tensor::from_vector(labels, {B, N}, DType::I64);
    const double s = seconds_per_call(
        [&] {
          model->params().zero_grad();
          nn::Context ctx{true, Generator(1, 0)};
          model->forward(batch, ctx);
          model->backward(1.0);
        },
        steps);
    step_ms = s * 1e3;
    // Model FLOPs: per token per layer 2d² (W_Q) + 16d² (FFN, r=4) + 4d² (linear attention, e = d);
    // MLM head on the masked rows: 2d² + 2dV; training = 3 × forward.
    const double V = double(c.padded_vocab_size());
    const double fwd = double(B) * N * L * (2.0 + 16.0 + 4.0) * d * d + double(masked) * (2.0 * d * d + 2.0 * d * V);
    const double gflops = 3.0 * fwd / s / 1e9;
    char note[96];
    std::snprintf(note, sizeof note, "%.0f%% of the best GEMM rate", 100.0 * gflops / sgemm_gflops);
    rows.push_back({"DANet train step (densetrain)", "d=256 L=4 N=512 B=8", step_ms, gflops, note});
    if (with_torch) {
      const double tms = torch_step_ms(d, L, N, B, threads, steps);
      if (tms > 0) {
        std::snprintf(note, sizeof note, "densetrain is %.2fx faster", tms / step_ms);
        rows.push_back(
            {"DANet train step (PyTorch reference)", "d=256 L=4 N=512 B=8", tms, 3.0 * fwd / (tms / 1e3) / 1e9, note});
      } else {
        rows.push_back({"DANet train step (PyTorch reference)", "d=256 L=4 N=512 B=8", 0, 0, "PyTorch not available"});
      }
    }
  }

  std::printf("| benchmark | size | ms | GFLOP/s | note |\n|---|---|---|---|---|\n");
  for (const auto& r : rows)
    std::printf("| %s | %s | %.3f | %.1f | %s |\n", r.what.c_str(), r.size.c_str(), r.ms, r.gflops, r.note.c_str());
  std::printf("\nthreads: %d, OpenBLAS %s kernels\n", threads, dense::openblas_core().c_str());
  return 0;
}
