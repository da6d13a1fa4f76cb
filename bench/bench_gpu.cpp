// GPU benchmarks of issue #5 on cuda:0, one table per section (bench/gpu_check.sh runs them beside the
// PyTorch baselines of bench/torch_gpu_baselines.py and joins the two into ratio tables):
//   gemm       measured cuBLAS peak: bf16 and f32 (no TF32) GEMMs of 8192^3, the denominator of every MFU here
//   train      DANet-BERT-Large (configs/models/danet_bert_large_seq512.json: d 1024, L 32, H 1, N 512) training
//              step as dense-train runs it under bf16: bf16 forward + backward, f32 gradient sum, fused AdamW
//              on the f32 master arena, bf16 copy back. Tokens/s and MFU.
//   infer      the same model, forward only in bf16 (attention `auto`: linear at long N), at N = 128 .. 128K
//   attention  softmax attention core (QKᵀ, softmax, PV and the backward) as the BERT baseline runs it:
//              materialised (N x N scores) and fused (the graph kernel over the full band, O(N) memory)
//   longest    the longest N of one DANet-BERT-Large training step at batch 1 with recomputation whose peak
//              device memory stays within 80 GB
//   dense_bench_gpu [--only SECTION[,SECTION]] [--csv FILE] [--train-batch 64] [--steps 5] (sizes: --help)
// FLOPs are counted from the shapes (the formulas are printed with each table). Times are the best of
// --steps runs after one warm-up, each ended by a device synchronisation.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/ops.h"
#include "core/error.h"
#include "models/model.h"
#include "nn/device_graph.h"
#include "train/optimizer.h"

using namespace dense;

namespace {

// The device measured (cuda:0; `--device cpu` runs the same code paths at small sizes, as the CI smoke test).
Device kGpu = Device::cuda(0);

// Sizes; the defaults are the issue's, the CI smoke test shrinks them.
struct Sizes {
  int64_t gemm_n = 8192;
  int64_t layers = 0;  // 0: the config's 32
  int64_t train_batch = 64;
  int64_t max_n = int64_t(1) << 22;
  int64_t tokens = 131072;  // per inference batch
  int64_t attention_tokens = 16384;
  int64_t longest_from = 32768;
  double longest_limit_gb = 80;
};
Sizes g_sizes;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Best wall time of `steps` runs of f after one warm-up run; each run ends with a device synchronisation.
double best_seconds(int steps, const std::function<void()>& f) {
  f();
  backend_for(kGpu).synchronize();
  double best = 1e30;
  for (int s = 0; s < steps; ++s) {
    const double t0 = now_s();
    f();
    backend_for(kGpu).synchronize();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

// Rows of "section,key,value" for bench/gpu_report.py.
struct Csv {
  std::ostringstream rows;
  void add(const std::string& section, const std::string& key, double value) {
    rows << section << "," << key << "," << value << "\n";
  }
};

Tensor random_device(const Shape& shape, DType dtype, uint64_t seed, double scale) {
  Tensor t = Tensor::empty(shape, dtype, kGpu);
  ops::fill_normal(t, 0.0, scale, seed, 0);
  return t;
}

models::ModelConfig danet_large(int64_t N, const std::string& complexity) {
  const std::string path = std::string(DENSE_SOURCE_DIR) + "/configs/models/danet_bert_large_seq512.json";
  std::ifstream in(path);
  DENSE_CHECK(in.good(), "{}: cannot open", path);
  models::ModelConfig c = models::ModelConfig::from_json(nlohmann::json::parse(in), path);
  c.max_position_embeddings = N;
  c.attention_complexity = nn::parse_complexity(complexity, "--complexity");
  if (g_sizes.layers > 0) c.num_hidden_layers = g_sizes.layers;
  return c;
}

// An MLM batch on the device: 15% of positions predicted.
models::Batch mlm_batch(int64_t B, int64_t N, int64_t vocab, bool labels) {
  std::vector<int64_t> ids(size_t(B * N)), lab(size_t(B * N), -1);
  for (int64_t i = 0; i < B * N; ++i) {
    ids[size_t(i)] = (i * 7919) % vocab;
    if ((uint64_t(i) * 2654435761u) % 100 < 15) lab[size_t(i)] = ids[size_t(i)];
  }
  models::Batch b;
  b.input_ids = Tensor::from_vector(ids, {B, N}, DType::I64, kGpu);
  if (labels) b.mlm_labels = Tensor::from_vector(lab, {B, N}, DType::I64, kGpu);
  return b;
}

// Forward FLOPs per token of the DANet encoder + MLM head (multiply-add = 2): per layer the query projection
// 2d², the attention mixing 4·d·k (linear path k = e: XᵀX and Q·(XᵀX); quadratic k = N: Q Xᵀ and A X), the
// FFN 4·d·(r·d); the head transform 2d² on every token and the tied decoder 2·d·V on the 15% predicted.
double danet_forward_flops_per_token(const models::ModelConfig& c, int64_t N, bool linear, bool head) {
  const double d = double(c.hidden_size), e = double(c.head_size()), L = double(c.num_hidden_layers);
  const double r = double(c.intermediate_size);
  const double layer = 2 * d * d + 4 * d * (linear ? e : double(N)) + 4 * d * r * d;
  return L * layer + (head ? 2 * d * d + 0.15 * 2 * d * double(c.padded_vocab_size()) : 0.0);
}

struct Peaks {
  double bf16 = 0, f32 = 0;
};

Peaks run_gemm(int steps, Csv& csv) {
  Peaks p;
  const int64_t n = g_sizes.gemm_n;
  std::printf("\n## GEMM peak (%lld^3, 2n^3 FLOPs)\n\n| dtype | ms | TFLOP/s |\n| --- | ---: | ---: |\n",
              static_cast<long long>(n));
  for (DType t : {DType::BF16, DType::F32}) {
    const Tensor a = random_device({n, n}, t, 1, 1.0), b = random_device({n, n}, t, 2, 1.0);
    Tensor c = Tensor::empty({n, n}, t, kGpu);
    const double s = best_seconds(steps, [&] { ops::matmul(a, false, b, false, c); });
    const double tflops = 2.0 * double(n) * double(n) * double(n) / s / 1e12;
    (t == DType::BF16 ? p.bf16 : p.f32) = tflops * 1e12;
    const std::string name(dtype_name(t));
    std::printf("| %s | %.2f | %.1f |\n", name.c_str(), s * 1e3, tflops);
    csv.add("gemm", name, tflops);
  }
  return p;
}

void run_train(int steps, const Peaks& peaks, Csv& csv) {
  const int64_t N = std::min<int64_t>(512, g_sizes.max_n), B = g_sizes.train_batch;
  const models::ModelConfig c = danet_large(N, "quadratic");
  auto master = models::build_model(c, DType::F32, kGpu, 1);
  auto half = models::build_model(c, DType::BF16, kGpu, 1);
  half->params().values().copy_(master->params().values());
  nn::ParameterSet& params = master->params();
  train::OptimizerConfig oc;
  oc.betas = {0.9, 0.9};
  oc.eps = 1e-16;
  auto opt = train::Optimizer::create(oc, train::parameter_groups(params, oc), params.values().numel(), kGpu);
  const models::Batch batch = mlm_batch(B, N, c.vocab_size, true);
  nn::Context ctx{true, Generator(1, 0)};
  auto step = [&] {
    params.zero_grad();
    half->forward(batch, ctx);
    half->backward(1.0);
    ops::accumulate(half->params().grads().to(DType::F32), 0.0, params.grads());
    half->params().zero_grad();
    Tensor values = params.values();
    opt->step(values, params.grads(), 1e-4);
    half->params().values().copy_(values);
  };
  const double s = best_seconds(steps, step);
  const double tokens = double(B * N);
  const double flops = 3.0 * danet_forward_flops_per_token(c, N, false, true) * tokens;
  const double mfu = flops / s / peaks.bf16;
  std::printf(
      "\n## DANet-BERT-Large training step (bf16, N %lld, batch %lld; FLOPs = 3 x forward)\n\n"
      "| tokens/step | ms/step | tokens/s | TFLOP/s | MFU (of measured bf16 peak) |\n"
      "| ---: | ---: | ---: | ---: | ---: |\n| %.0f | %.1f | %.0f | %.1f | %.1f%% |\n",
      static_cast<long long>(N), static_cast<long long>(B), tokens, s * 1e3, tokens / s, flops / s / 1e12, 100 * mfu);
  csv.add("train", "tokens_per_s", tokens / s);
  csv.add("train", "mfu", mfu);
}

void run_infer(int steps, const Peaks& peaks, Csv& csv) {
  std::printf(
      "\n## DANet-BERT-Large inference (bf16 forward, attention auto, %lld tokens per batch)\n\n"
      "| N | batch | ms | tokens/s | MFU |\n| ---: | ---: | ---: | ---: | ---: |\n",
      static_cast<long long>(g_sizes.tokens));
  for (int64_t N : {int64_t(128), int64_t(1024), int64_t(16384), int64_t(131072)}) {
    if (N > g_sizes.max_n) break;
    const int64_t B = std::max<int64_t>(1, g_sizes.tokens / N);
    const models::ModelConfig c = danet_large(N, "auto");
    auto model = models::build_model(c, DType::BF16, kGpu, 1);
    model->set_recompute(true);  // keeps only layer inputs: nothing of a forward-only pass is needed later
    const models::Batch batch = mlm_batch(B, N, c.vocab_size, false);
    nn::Context ctx{false, Generator(1, 0)};
    const double s = best_seconds(steps, [&] { model->forward(batch, ctx); });
    const double tokens = double(B * N);
    const bool linear = c.head_size() <= N;  // what `auto` picks (ties go to linear)
    const double mfu = danet_forward_flops_per_token(c, N, linear, false) * tokens / s / peaks.bf16;
    std::printf("| %lld | %lld | %.1f | %.0f | %.1f%% |\n", static_cast<long long>(N), static_cast<long long>(B),
                s * 1e3, tokens / s, 100 * mfu);
    csv.add("infer", std::to_string(N), tokens / s);
    model.reset();
    backend_for(kGpu).allocator().release_cached();
  }
}

// Both softmax attention paths of the BERT baseline: the materialised one (batched GEMMs around an N x N
// softmax) and the fused one (`attention: {type: sparse, pattern: dense}`: the graph kernel over the band that
// spans the sequence, online softmax, O(N) memory).
void run_attention(int steps, Csv& csv) {
  std::printf(
      "\n## Softmax attention core, forward + backward (bf16, d = 1024, %lld tokens; FLOPs 4·B·H·N²·e "
      "forward, 2.5x that backward)\n\n| N | head dim | materialised ms | TFLOP/s | fused ms | TFLOP/s |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: |\n",
      static_cast<long long>(g_sizes.attention_tokens));
  for (int64_t e : {int64_t(64), int64_t(128)}) {
    for (int64_t N : {int64_t(512), int64_t(1024), int64_t(2048), int64_t(4096), int64_t(8192), int64_t(16384)}) {
      if (N > g_sizes.max_n) break;
      const int64_t H = 1024 / e, B = std::max<int64_t>(1, g_sizes.attention_tokens / N), G = B * H;
      const double scale = 1.0 / std::sqrt(double(e));
      const double flops = 3.5 * 4.0 * double(G) * double(N) * double(N) * double(e);
      double materialised = 0;
      {
        const Tensor q = random_device({G, N, e}, DType::BF16, 3, 1.0),
                     k = random_device({G, N, e}, DType::BF16, 4, 1.0);
        const Tensor v = random_device({G, N, e}, DType::BF16, 5, 1.0),
                     dout = random_device({G, N, e}, DType::BF16, 6, 1.0);
        Tensor s_ = Tensor::empty({G, N, N}, DType::BF16, kGpu), p = Tensor::empty({G, N, N}, DType::BF16, kGpu);
        Tensor o = Tensor::empty({G, N, e}, DType::BF16, kGpu), dp = Tensor::empty({G, N, N}, DType::BF16, kGpu);
        Tensor dq = Tensor::empty({G, N, e}, DType::BF16, kGpu), dk = Tensor::empty({G, N, e}, DType::BF16, kGpu);
        Tensor dv = Tensor::empty({G, N, e}, DType::BF16, kGpu);
        materialised = best_seconds(steps, [&] {
          ops::matmul(q, false, k, true, s_);
          ops::softmax_forward(s_, scale, nullptr, H, p);
          ops::matmul(p, false, v, false, o);
          ops::matmul(p, true, dout, false, dv);
          ops::matmul(dout, false, v, true, dp);
          ops::softmax_backward(p, dp, scale, s_);  // dS in place of S
          ops::matmul(s_, false, k, false, dq);
          ops::matmul(s_, true, q, false, dk);
        });
      }
      backend_for(kGpu).allocator().release_cached();
      double fused = 0;
      {
        const Shape shape{B, N, H * e};
        const Tensor q = random_device(shape, DType::BF16, 3, 1.0), k = random_device(shape, DType::BF16, 4, 1.0);
        const Tensor v = random_device(shape, DType::BF16, 5, 1.0), dout = random_device(shape, DType::BF16, 6, 1.0);
        Tensor o = Tensor::empty(shape, DType::BF16, kGpu), lse = Tensor::empty({B, H, N}, DType::F32, kGpu);
        Tensor dq = Tensor::empty(shape, DType::BF16, kGpu), dk = Tensor::empty(shape, DType::BF16, kGpu);
        Tensor dv = Tensor::empty(shape, DType::BF16, kGpu);
        const nn::DeviceGraph band = nn::DeviceGraph::band(N, N, -N, N);
        const GraphRef fwd = band.forward_ref(), bwd = band.transposed_ref();
        fused = best_seconds(steps, [&] {
          ops::graph_attention_forward(GraphScore::Softmax, q, k, v, fwd, nullptr, H, scale, o, &lse);
          ops::graph_attention_backward(GraphScore::Softmax, q, k, v, fwd, bwd, nullptr, H, scale, o, dout, &lse, dq,
                                        dk, dv);
        });
      }
      backend_for(kGpu).allocator().release_cached();
      std::printf("| %lld | %lld | %.2f | %.1f | %.2f | %.1f |\n", static_cast<long long>(N), static_cast<long long>(e),
                  materialised * 1e3, flops / materialised / 1e12, fused * 1e3, flops / fused / 1e12);
      csv.add("attention", std::to_string(N) + "/" + std::to_string(e), flops / materialised / 1e12);
      csv.add("attention_fused", std::to_string(N) + "/" + std::to_string(e), flops / fused / 1e12);
    }
  }
}

void run_longest(Csv& csv) {
  const double limit = g_sizes.longest_limit_gb * 1e9;
  std::printf(
      "\n## Longest DANet-BERT-Large training step at batch 1 (bf16, recomputation, attention auto, peak "
      "device memory <= %g GB)\n\n| N | peak GB | s/step | fits |\n| ---: | ---: | ---: | --- |\n",
      g_sizes.longest_limit_gb);
  int64_t longest = 0;
  for (int64_t N = g_sizes.longest_from; N <= g_sizes.max_n; N *= 2) {
    bool fits = false;
    double peak = 0, seconds = 0;
    try {
      CachingAllocator& alloc = backend_for(kGpu).allocator();
      alloc.release_cached();
      alloc.reset_peak();
      const models::ModelConfig c = danet_large(N, "auto");
      auto model = models::build_model(c, DType::BF16, kGpu, 1);
      model->set_recompute(true);
      const models::Batch batch = mlm_batch(1, N, c.vocab_size, true);
      nn::Context ctx{true, Generator(1, 0)};
      const double t0 = now_s();
      model->forward(batch, ctx);
      model->backward(1.0);
      backend_for(kGpu).synchronize();
      seconds = now_s() - t0;
      peak = double(alloc.stats().peak_bytes_in_use);
      fits = peak <= limit;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "N %lld: %s\n", static_cast<long long>(N), e.what());
    }
    backend_for(kGpu).allocator().release_cached();
    std::printf("| %lld | %.3f | %.2f | %s |\n", static_cast<long long>(N), peak / 1e9, seconds, fits ? "yes" : "no");
    if (!fits) break;
    longest = N;
  }
  csv.add("longest", "N", double(longest));
}

}  // namespace

int main(int argc, char** argv) {
  const dense::BackendsReleaser release_backends_on_return;  // before the CUDA runtime unloads
  CLI::App app{"densetrain GPU benchmarks (issue #5); see docs/benchmarks.md"};
  std::string only = "gemm,train,infer,attention,longest", csv_path, device = "cuda:0";
  int steps = 5;
  Sizes& z = g_sizes;
  app.add_option("--only", only, "comma-separated sections: gemm, train, infer, attention, longest");
  app.add_option("--csv", csv_path, "also write section,key,value rows here (for bench/gpu_report.py)");
  app.add_option("--steps", steps, "timed runs per measurement (best kept)")->check(CLI::PositiveNumber);
  app.add_option("--device", device, "device to measure (cpu runs the same code, for the smoke test)");
  app.add_option("--train-batch", z.train_batch, "sequences per training step")->check(CLI::PositiveNumber);
  app.add_option("--gemm-n", z.gemm_n, "GEMM size for the peak")->check(CLI::PositiveNumber);
  app.add_option("--layers", z.layers, "encoder layers (default: the config's 32)")->check(CLI::PositiveNumber);
  app.add_option("--max-n", z.max_n, "longest sequence any section tries")->check(CLI::PositiveNumber);
  app.add_option("--tokens", z.tokens, "tokens per inference batch")->check(CLI::PositiveNumber);
  app.add_option("--attention-tokens", z.attention_tokens, "tokens per attention batch")->check(CLI::PositiveNumber);
  app.add_option("--longest-from", z.longest_from, "first N of the longest-step search")->check(CLI::PositiveNumber);
  app.add_option("--longest-limit-gb", z.longest_limit_gb, "device memory budget of the longest step")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  std::set<std::string> sections;
  for (std::stringstream ss(only); ss.good();) {
    std::string s;
    std::getline(ss, s, ',');
    if (s != "gemm" && s != "train" && s != "infer" && s != "attention" && s != "longest") {
      std::fprintf(stderr, "dense_bench_gpu: --only: unknown section '%s' (gemm, train, infer, attention, longest)\n",
                   s.c_str());
      return 2;
    }
    sections.insert(s);
  }
  try {
    kGpu = parse_device(device);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dense_bench_gpu: --device: %s\n", e.what());
    return 2;
  }
  if (kGpu.is_cuda() && !cuda_available()) {
    std::fprintf(stderr, "dense_bench_gpu: no CUDA device (this build or machine has none)\n");
    return 2;
  }
  try {
    Csv csv;
    Csv scratch;
    // Every MFU is against the measured bf16 peak, so the GEMM section always runs.
    const Peaks peaks = run_gemm(steps, sections.count("gemm") ? csv : scratch);
    if (sections.count("train")) run_train(steps, peaks, csv);
    if (sections.count("infer")) run_infer(steps, peaks, csv);
    if (sections.count("attention")) run_attention(steps, csv);
    if (sections.count("longest")) run_longest(csv);
    if (!csv_path.empty()) {
      std::ofstream out(csv_path);
      out << csv.rows.str();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dense_bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
