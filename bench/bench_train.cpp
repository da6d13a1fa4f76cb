// CPU training throughput of DANet against the softmax BERT baseline of the same width, depth and FFN, as the
// sequence grows at a fixed number of tokens per step (issue #4 item 10; the shape of the paper's CPU table).
// DenseAttention costs O(N d^2) per sequence, so its tokens/s stays flat; softmax attention costs O(N^2 d) and
// falls. Prints one table (and a CSV with --csv FILE for bench/plot_train_bench.py); see docs/benchmarks.md.
//   dense_bench_train [--threads 2] [--max-n 4096] [--tokens 8192] [--steps 3] [--csv out.csv]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cpu/backend.h"
#include "backend/cpu_blas.h"
#include "models/model.h"

using namespace dense;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

models::ModelConfig config(bool danet, int64_t N) {
  models::ModelConfig c;
  c.model_type = danet ? models::ModelType::Danet : models::ModelType::Bert;
  c.vocab_size = 30522;
  c.hidden_size = 256;
  c.num_hidden_layers = 4;
  c.max_position_embeddings = N;
  if (danet) {
    c.num_attention_heads = 1;
    c.intermediate_size = 4;  // expansion factor: 1024
    c.attention_complexity = nn::AttentionComplexity::Auto;
    c.embedding_ln_type = models::NormType::MaxNorm;
    c.final_ln_type = models::NormType::MaxNorm;
    c.lm_head_ln_type = models::NormType::StandardLn;
  } else {
    c.num_attention_heads = 4;
    c.intermediate_size = 1024;  // absolute width for BERT
  }
  c.pooler_function = nn::PoolFunction::First;
  return c;
}

// Best seconds per training step (forward + backward, 15% of tokens predicted) over `steps` after a warm-up.
double step_seconds(bool danet, int64_t N, int64_t B, int steps) {
  auto model = models::build_model(config(danet, N), DType::F32, Device::cpu(), 1);
  std::vector<int64_t> ids(static_cast<size_t>(B * N)), labels(static_cast<size_t>(B * N), -1);
  for (int64_t i = 0; i < B * N; ++i) {
    ids[size_t(i)] = (i * 7919) % 30522;
    if ((uint64_t(i) * 2654435761u) % 100 < 15) labels[size_t(i)] = ids[size_t(i)];
  }
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, N}, DType::I64);
  batch.mlm_labels = Tensor::from_vector(labels, {B, N}, DType::I64);
  double best = 1e30;
  for (int s = 0; s <= steps; ++s) {
    const double t0 = now_s();
    model->params().zero_grad();
    nn::Context ctx{true, Generator(1, 0)};
    model->forward(batch, ctx);
    model->backward(1.0);
    if (s > 0) best = std::min(best, now_s() - t0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  dense::restart_with_fast_blas_kernels(argv);
  if (const std::string note = dense::blas_restart_note(); !note.empty())
    std::fprintf(stderr, "dense_bench_train: note: %s\n", note.c_str());
  int threads = 2, steps = 3;
  int64_t max_n = 4096, tokens = 8192;
  std::string csv;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--max-n")
      max_n = std::atoll(argv[i + 1]);
    else if (a == "--tokens")
      tokens = std::atoll(argv[i + 1]);
    else if (a == "--steps")
      steps = std::atoi(argv[i + 1]);
    else if (a == "--csv")
      csv = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: %s [--threads T] [--max-n N] [--tokens T] [--steps S] [--csv FILE]\n", argv[0]);
      return 2;
    }
  }
  set_cpu_threads(threads);
  std::printf("| N | batch | DANet tokens/s | BERT tokens/s | DANet / BERT |\n|---|---|---|---|---|\n");
  FILE* out = csv.empty() ? nullptr : std::fopen(csv.c_str(), "w");
  if (out) std::fprintf(out, "N,batch,danet_tokens_per_s,bert_tokens_per_s\n");
  for (int64_t N = 128; N <= max_n; N *= 2) {
    const int64_t B = std::max<int64_t>(1, tokens / N);
    const double d = double(B * N) / step_seconds(true, N, B, steps);
    const double b = double(B * N) / step_seconds(false, N, B, steps);
    std::printf("| %lld | %lld | %.0f | %.0f | %.2fx |\n", (long long)N, (long long)B, d, b, d / b);
    std::fflush(stdout);
    if (out) std::fprintf(out, "%lld,%lld,%.1f,%.1f\n", (long long)N, (long long)B, d, b);
  }
  if (out) std::fclose(out);
  std::printf("\nthreads: %d, OpenBLAS %s kernels\n", threads, openblas_core().c_str());
  return 0;
}
