// dense-prep speed (issue #3): WordPiece throughput per core on real English text (exact ids), dense-prep
// packed end to end, and the peak memory of a large corpus. Prints one table; see docs/benchmarks.md.
//   dense_bench_prep --vocab data/vocab/vocab.txt --text ../shared/data/wikitext-2/train.txt [--threads 2]
//                    [--big-mb 1024] [--tmp /tmp]
#include <fmt/format.h>
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "data/wordpiece.h"
#include "data_prep/corpus.h"
#include "data_prep/prep_pretrain.h"

using namespace dense::data;
namespace fs = std::filesystem;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Row {
  std::string name, size;
  double seconds, rate;
  std::string note;
};

PretrainPrepConfig packed(const std::string& text, const std::string& vocab, const std::string& out, int threads) {
  PretrainPrepConfig c;
  c.inputs = {text};
  c.corpus.format = CorpusFormat::WikiText;
  c.vocab_path = vocab;
  c.seq_len = 128;
  c.out_dir = out;
  c.threads = threads;
  c.overwrite = true;
  c.progress.enabled = false;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  std::string vocab = "data/vocab/vocab.txt", text = "../shared/data/wikitext-2/train.txt", tmp = "/tmp";
  int threads = 2;
  int64_t big_mb = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--vocab")
      vocab = v;
    else if (a == "--text")
      text = v;
    else if (a == "--threads")
      threads = std::atoi(v.c_str());
    else if (a == "--big-mb")
      big_mb = std::atoll(v.c_str());
    else if (a == "--tmp")
      tmp = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  std::vector<Row> rows;
  const std::string work = fmt::format("{}/dense_bench_prep_{}", tmp, ::getpid());
  fs::create_directories(work);

  // 1. Peak memory of a large corpus, in a child process measured before this process starts any threads.
  if (big_mb > 0) {
    const std::string big = work + "/big.txt";
    {
      const std::string one = dense::read_file(text);
      std::ofstream out(big, std::ios::binary);
      for (int64_t written = 0; written < big_mb << 20; written += int64_t(one.size())) out << one << "\n\n";
    }
    const double t0 = now_s();
    const pid_t pid = ::fork();
    if (pid == 0) {
      try {
        PretrainPrepConfig c = packed(big, vocab, work + "/big_out", threads);
        c.corpus.format = CorpusFormat::Text;
        prepare_pretraining(c);
        ::_exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        ::_exit(1);
      }
    }
    int status = 0;
    struct rusage ru {};
    ::wait4(pid, &status, 0, &ru);
    const double t = now_s() - t0;
    const double mb = double(fs::file_size(big)) / 1e6;
    rows.push_back({"dense-prep packed N=128, peak RSS", fmt::format("{:.0f} MB text", mb), t, mb / t,
                    fmt::format("max RSS {:.0f} MB{}", double(ru.ru_maxrss) / 1024.0,
                                WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "" : " (FAILED)")});
    fs::remove_all(work + "/big_out");
    fs::remove(big);
  }

  // 2. WordPiece throughput, exact ids, on the documents held in memory.
  const WordPieceTokenizer tok = WordPieceTokenizer::from_file(vocab);
  std::vector<std::string> docs;
  int64_t bytes = 0;
  {
    CorpusOptions o;
    o.format = CorpusFormat::WikiText;
    CorpusReader reader(text, o);
    Document d;
    while (reader.next(d)) {
      bytes += int64_t(d.text.size());
      docs.push_back(std::move(d.text));
    }
  }
  const double mb = double(bytes) / 1e6;
  int64_t tokens = 0;
  for (int t : {1, threads}) {
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = now_s();
      int64_t n = 0;
#pragma omp parallel for schedule(dynamic, 4) num_threads(t) reduction(+ : n)
      for (size_t i = 0; i < docs.size(); ++i) n += int64_t(tok.encode(docs[i]).size());
      best = std::min(best, now_s() - t0);
      tokens = n;
    }
    rows.push_back({fmt::format("WordPiece uncased, {} thread{}", t, t > 1 ? "s" : ""), fmt::format("{:.1f} MB", mb),
                    best, mb / best,
                    fmt::format("{:.1f} MB/s per core, {:.1f}x the 10 MB/s target; {} tokens", mb / best / t,
                                mb / best / t / 10.0, tokens)});
  }

  // 3. The end-to-end target: WikiText-2 train -> packed N=128 shards on `threads` cores.
  {
    double best = 1e30;
    PretrainPrepResult r;
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = now_s();
      r = prepare_pretraining(packed(text, vocab, work + "/wt2", threads));
      best = std::min(best, now_s() - t0);
    }
    rows.push_back(
        {fmt::format("dense-prep packed N=128, {} threads", threads), fmt::format("{:.1f} MB", mb), best, mb / best,
         fmt::format("{} rows, {} shard(s); {:.1f}x under the 5 s target", r.rows, r.shards.size(), 5.0 / best)});
  }
  fs::remove_all(work);

  std::printf("| benchmark | input | seconds | MB/s | note |\n|---|---|---|---|---|\n");
  for (const auto& r : rows)
    std::printf("| %s | %s | %.3f | %.1f | %s |\n", r.name.c_str(), r.size.c_str(), r.seconds, r.rate, r.note.c_str());
  return 0;
}
