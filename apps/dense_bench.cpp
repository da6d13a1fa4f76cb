// dense-bench: tools for looking at the attention machinery. `pattern`: build an attention pattern
// (src/nn/attention_patterns.h), print its sparsity and write its mask as a grey PNG (white = visible).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "backend/cpu_blas.h"
#include "core/error.h"
#include "data/progress.h"
#include "data_prep/lra_png.h"
#include "nn/attention_patterns.h"

namespace {

using dense::data::with_thousands;
using dense::nn::AttentionPattern;
using dense::nn::PatternSummary;

struct PatternRequest {
  std::string spec;
  int64_t seq_len = 0, heads = 1, layer = 0, head = 0;
  std::string png;
  int64_t scale = 0;  // pixels per token; 0: as many as fit 512 px, or tokens per pixel beyond max_px
  int64_t max_px = 2048;
  bool blocks = false;
};

// Masked cells of set blocks (--blocks): what a block-sparse kernel computes and then throws away.
constexpr int kBlockGrey = 80;

// The mask of one head: each cell of `tokens` x `tokens` tokens (1 x 1 unless the sequence is longer than the
// image may be wide) becomes a `scale` x `scale` square: black when nothing in it is visible, else grey 128
// to white by the visible fraction; with `blocks`, dark grey when only masked cells of set blocks are in it.
dense::data::lra::GrayImage render(const AttentionPattern& p, int64_t head, int64_t scale, int64_t tokens,
                                   bool blocks) {
  const dense::nn::CsrGraph& g = p.graph(head);
  const int64_t n = p.seq_len, cells = (n + tokens - 1) / tokens, side = cells * scale;
  const auto extent = [&](int64_t c) { return std::min(n, (c + 1) * tokens) - c * tokens; };
  std::vector<uint32_t> visible(static_cast<size_t>(cells * cells), 0), in_blocks(visible.size(), 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t q = g.row_ptr[i]; q < g.row_ptr[i + 1]; ++q) ++visible[(i / tokens) * cells + g.col[q] / tokens];
  if (blocks) {
    // Each set block's token rectangle [r0, r1) x [c0, c1), spread over the cells it overlaps.
    const auto add = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
      for (int64_t cy = r0 / tokens; cy * tokens < r1; ++cy) {
        const int64_t h = std::min(r1, (cy + 1) * tokens) - std::max(r0, cy * tokens);
        for (int64_t cx = c0 / tokens; cx * tokens < c1; ++cx)
          in_blocks[cy * cells + cx] += uint32_t(h * (std::min(c1, (cx + 1) * tokens) - std::max(c0, cx * tokens)));
      }
    };
    const int64_t b = p.block;
    for (int64_t bi = 0; bi < p.blocks; ++bi)
      for (int64_t bj = 0; bj < p.blocks; ++bj)
        if (p.block_set(head, bi, bj)) add(bi * b, std::min(n, bi * b + b), bj * b, std::min(n, bj * b + b));
  }
  dense::data::lra::GrayImage img;
  img.height = img.width = side;
  img.pixels.assign(static_cast<size_t>(side * side), 0);
  for (int64_t cy = 0; cy < cells; ++cy)
    for (int64_t cx = 0; cx < cells; ++cx) {
      const size_t k = size_t(cy * cells + cx);
      // A plain average would fade a sparse pattern at large N to black, so any visible pair is at least
      // mid-grey and the visible fraction brightens it to white.
      uint8_t v = 0;
      if (visible[k] > 0)
        v = uint8_t(128.0 + 127.0 * double(visible[k]) / double(extent(cy) * extent(cx)) + 0.5);
      else if (in_blocks[k] > 0)
        v = kBlockGrey;
      if (v == 0) continue;
      for (int64_t y = 0; y < scale; ++y)
        std::fill_n(img.pixels.begin() + (cy * scale + y) * side + cx * scale, scale, v);
    }
  return img;
}

void print_summary(const char* label, const PatternSummary& s) {
  std::printf("  %s: %s visible pairs, density %.6g; keys per query min %s / mean %.1f / max %s", label,
              with_thousands(s.nnz).c_str(), s.density, with_thousands(s.min_degree).c_str(), s.mean_degree,
              with_thousands(s.max_degree).c_str());
  if (s.empty_rows) std::printf("; %s empty rows", with_thousands(s.empty_rows).c_str());
  std::printf("\n  %*s  blocks set %s / %s (%.2f%%)\n", int(std::string(label).size()), "",
              with_thousands(s.blocks_set).c_str(), with_thousands(s.blocks_total).c_str(),
              s.blocks_total ? 100.0 * double(s.blocks_set) / double(s.blocks_total) : 0.0);
}

int run_pattern(const PatternRequest& r) {
  const dense::nn::PatternSpec spec = dense::nn::parse_pattern(r.spec, "pattern");
  DENSE_CHECK(r.head >= 0 && r.head < r.heads, "--head {} is outside [0, --heads = {})", r.head, r.heads);
  DENSE_CHECK(r.scale >= 0, "--scale must be >= 1 (got {})", r.scale);
  DENSE_CHECK(r.max_px >= 1, "--max-px must be >= 1 (got {})", r.max_px);
  // The image size is checked before the build, which can take a while at large N.
  int64_t scale = r.scale, tokens = 1;
  if (scale == 0 && r.seq_len >= 1) {
    scale = std::max<int64_t>(1, 512 / r.seq_len);
    if (r.seq_len > r.max_px) tokens = (r.seq_len + r.max_px - 1) / r.max_px;
  }
  DENSE_CHECK(r.png.empty() || tokens > 1 || r.seq_len * scale <= r.max_px,
              "--png: {} tokens at --scale {} make {} px per side, above --max-px {} (leave --scale out to average "
              "several tokens per pixel)",
              r.seq_len, scale, r.seq_len * scale, r.max_px);
  const auto t0 = std::chrono::steady_clock::now();
  const AttentionPattern p = dense::nn::build_pattern(spec, r.seq_len, r.heads, r.layer);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::printf("dense-bench pattern: %s\n", dense::nn::describe(p.spec).c_str());
  std::printf("  N %s, %lld head%s (%s), layer %lld; built in %.3f s\n", with_thousands(p.seq_len).c_str(),
              static_cast<long long>(p.heads), p.heads == 1 ? "" : "s",
              p.shared_across_heads ? "all alike" : "each its own", static_cast<long long>(p.layer_index), seconds);
  std::printf("  block %lld: %lld x %lld blocks per head, %s\n", static_cast<long long>(p.block),
              static_cast<long long>(p.blocks), static_cast<long long>(p.blocks),
              p.exact_blocks ? "exact (every set block fully visible)" : "partial blocks (in-block mask needed)");
  print_summary("all heads", dense::nn::summarize(p));
  if (!p.shared_across_heads)
    print_summary(fmt::format("head {}", r.head).c_str(), dense::nn::summarize_head(p, r.head));

  if (r.png.empty()) return 0;
  const dense::data::lra::GrayImage img = render(p, r.head, scale, tokens, r.blocks);
  dense::data::lra::write_png_gray(r.png, img);
  if (tokens > 1)
    std::printf("  png: %s, head %lld, %lld x %lld px, %lld x %lld tokens per px (grey 128..255: visible fraction)\n",
                r.png.c_str(), static_cast<long long>(r.head), static_cast<long long>(img.width),
                static_cast<long long>(img.height), static_cast<long long>(tokens), static_cast<long long>(tokens));
  else
    std::printf("  png: %s, head %lld, %lld x %lld px, %lld px per token\n", r.png.c_str(),
                static_cast<long long>(r.head), static_cast<long long>(img.width), static_cast<long long>(img.height),
                static_cast<long long>(scale));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  dense::restart_with_fast_blas_kernels(argv);
  if (const std::string note = dense::blas_restart_note(); !note.empty())
    std::fprintf(stderr, "dense-bench: note: %s\n", note.c_str());
  CLI::App app{"dense-bench: inspect and time the attention machinery (densetrain)"};
  app.set_version_flag("--version", "dense-bench 0.1.0 (OpenBLAS " + dense::openblas_core() + " kernels)");
  app.require_subcommand(1);
  PatternRequest pr;
  CLI::App* pat =
      app.add_subcommand("pattern", "build an attention pattern; print its sparsity, write its mask as a PNG");
  pat->add_option("spec", pr.spec,
                  "the pattern, e.g. fixed:stride=128,summary=16 or sliding_window:window=64,causal=true "
                  "(kinds and keys: src/nn/attention_patterns.h)")
      ->required();
  pat->add_option("--seq-len", pr.seq_len, "sequence length N")->required();
  pat->add_option("--heads", pr.heads, "number of heads H (default 1)");
  pat->add_option("--layer", pr.layer, "layer index r (interleaved factorised heads use A^(r mod 2); default 0)");
  pat->add_option("--png", pr.png, "write the mask of --head as a grey PNG here (white = visible)");
  pat->add_option("--head", pr.head, "the head drawn and summarised on its own (default 0)");
  pat->add_option("--scale", pr.scale, "pixels per token (default: fill about 512 px; average tokens beyond --max-px)");
  pat->add_option("--max-px", pr.max_px, "largest image side in pixels (default 2048)");
  pat->add_flag("--blocks", pr.blocks, "draw masked cells of set layout blocks dark grey");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "dense-bench: error: %s (see dense-bench %s--help)\n", e.what(),
                 pat->parsed() ? "pattern " : "");
    return 2;
  }
  try {
    return run_pattern(pr);
  } catch (const dense::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dense-bench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dense-bench: internal error: %s\n", e.what());
    return 2;
  }
}
