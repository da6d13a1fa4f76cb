#include "data_prep/prep_pretrain.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/file_io.h"
#include "data/prep_common.h"
#include "data/shard_packed.h"
#include "data/vocab.h"
#include "data/wordpiece.h"
#include "data_prep/prep_pipeline.h"

namespace dense::data {

namespace {

// Text per tokenization task: big enough to amortise scheduling, small enough that a window of
// 4 x threads chunks stays a few MB.
constexpr int64_t kChunkBytes = int64_t(1) << 20;

const char* format_name(PretrainFormat f) { return f == PretrainFormat::kBert ? "bert" : "packed"; }

const char* documents_name(TextDocuments d) {
  switch (d) {
    case TextDocuments::BlankLines: return "blank-lines";
    case TextDocuments::OnePerFile: return "one-per-file";
    case TextDocuments::OnePerLine: return "one-per-line";
  }
  return "?";
}

const char* corpus_format_name(CorpusFormat f) {
  switch (f) {
    case CorpusFormat::Auto: return "auto";
    case CorpusFormat::Text: return "text";
    case CorpusFormat::JsonLines: return "jsonl";
    case CorpusFormat::WikiText: return "wikitext";
  }
  return "?";
}

int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? int64_t(st.st_size) : 0;
}

// One unit of parallel tokenization: documents in, token ids out.
struct Chunk {
  std::vector<std::string> texts;
  // packed: every document's ids back to back, doc_end[i] = end of document i
  std::vector<int32_t> ids;
  std::vector<size_t> doc_end;
  // bert: every document as its sentences (lines)
  std::vector<TokenDocument> documents;
  int64_t tokens = 0, unk = 0;
};

void tokenize_chunk(const WordPieceTokenizer& tok, PretrainFormat format, SentenceSplit split, Chunk& c) {
  const int32_t unk = tok.vocab().unk_id();
  auto count = [&](const int32_t* p, size_t n) {
    c.tokens += int64_t(n);
    for (size_t i = 0; i < n; ++i) c.unk += p[i] == unk;
  };
  if (format == PretrainFormat::kPacked) {
    c.doc_end.reserve(c.texts.size());
    for (const std::string& t : c.texts) {
      const size_t before = c.ids.size();
      tok.encode_append(t, c.ids);
      count(c.ids.data() + before, c.ids.size() - before);
      c.doc_end.push_back(c.ids.size());
    }
  } else {
    c.documents.resize(c.texts.size());
    for (size_t d = 0; d < c.texts.size(); ++d) {
      std::string_view rest = c.texts[d];
      while (!rest.empty()) {
        const size_t nl = rest.find('\n');
        const std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        auto add = [&](std::string_view text) {
          Sentence s;
          tok.encode_append(text, s);
          if (s.empty()) return;
          count(s.data(), s.size());
          c.documents[d].push_back(std::move(s));
        };
        if (split == SentenceSplit::kLines)
          add(line);
        else
          for (std::string_view sentence : split_sentences(line)) add(sentence);
      }
    }
  }
  std::vector<std::string>().swap(c.texts);
}

std::string shard_name(const std::string& prefix, int64_t index) {
  return fmt::format("{}-{:05d}.hdf5", prefix, index);
}

// Names and sizes (not full paths), so the same corpus reached by another path still matches.
std::string files_digest(const std::vector<std::string>& files) {
  std::string list;
  for (const auto& f : files)
    list += std::filesystem::path(f).filename().string() + "\t" + std::to_string(file_size(f)) + "\n";
  return sha256_hex(list);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<std::string_view> split_sentences(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c != '.' && c != '!' && c != '?') continue;
    size_t end = i + 1;
    while (end < line.size() && (line[end] == '"' || line[end] == '\'' || line[end] == ')' || line[end] == ']')) ++end;
    size_t next = end;
    while (next < line.size() && is_space(line[next])) ++next;
    if (next == end || next >= line.size()) continue;  // no space after it, or the line ends: not a boundary here
    const unsigned char n = static_cast<unsigned char>(line[next]);
    // Non-ASCII starts (accented capitals, CJK) count as sentence starts too: a missed split costs more
    // than an extra one, since NSP pairs are built from whole sentences.
    const bool starts =
        (n >= 'A' && n <= 'Z') || (n >= '0' && n <= '9') || n == '"' || n == '\'' || n == '(' || n >= 0x80;
    if (!starts) continue;
    const std::string_view s = trim(line.substr(start, end - start));
    if (!s.empty()) out.push_back(s);
    start = next;
    i = next - 1;
  }
  const std::string_view s = trim(line.substr(start));
  if (!s.empty()) out.push_back(s);
  return out;
}

std::string pretraining_prep_config_json(const PretrainPrepConfig& c, const std::string& vocab_hash,
                                         const std::vector<std::string>& files) {
  const int64_t bytes = corpus_size(files, nullptr);
  nlohmann::json j;
  j["tool"] = "dense-prep pretrain";
  j["format"] = format_name(c.format);
  j["seq_len"] = c.seq_len;
  j["vocab_hash"] = vocab_hash;
  j["lowercase"] = c.lowercase;
  j["corpus"] = {{"format", corpus_format_name(c.corpus.format)},
                 {"documents", documents_name(c.corpus.documents)},
                 {"json_field", c.corpus.json_field},
                 {"files", int64_t(files.size())},
                 {"bytes", bytes},
                 {"files_sha256", files_digest(files)}};
  j["seed"] = c.seed;
  j["shard_rows"] = c.shard_rows;
  j["gzip_level"] = c.gzip_level;
  if (c.format == PretrainFormat::kPacked) {
    j["max_rows"] = c.max_rows;
    j["sep_after_document"] = true;
  } else {
    j["duplicate"] = c.duplicate;
    j["short_seq_prob"] = c.short_seq_prob;
    j["random_next_prob"] = c.random_next_prob;
    j["masked_lm_ratio"] = c.masked_lm_ratio;
    j["max_predictions_per_seq"] = max_predictions_for(c.seq_len, c.masked_lm_ratio);
    j["p_mask"] = c.p_mask;
    j["sentences"] = c.sentences == SentenceSplit::kLines ? "lines" : "punctuation";
  }
  return j.dump();
}

PretrainPrepResult prepare_pretraining(const PretrainPrepConfig& config_in) {
  PretrainPrepConfig cfg = config_in;
  PretrainPrepResult result;
  DENSE_CHECK(!cfg.inputs.empty(), "pretrain: no input files or folders given");
  DENSE_CHECK(cfg.seq_len >= (cfg.format == PretrainFormat::kBert ? 8 : 2),
              "pretrain: --seq-len {} is too short for the {} format", cfg.seq_len, format_name(cfg.format));
  DENSE_CHECK(cfg.duplicate >= 1, "pretrain: --duplicate must be at least 1 (got {})", cfg.duplicate);
  DENSE_CHECK(cfg.gzip_level >= 0 && cfg.gzip_level <= 9, "pretrain: --gzip-level must be 0..9 (got {})",
              cfg.gzip_level);
  DENSE_CHECK(cfg.max_rows >= 0, "pretrain: --max-rows must not be negative");
  DENSE_CHECK(cfg.format == PretrainFormat::kPacked || cfg.max_rows == 0,
              "pretrain: --max-rows applies to the packed format only");
  DENSE_CHECK(cfg.masked_lm_ratio > 0 && cfg.masked_lm_ratio < 1, "pretrain: --masked-lm-ratio must be in (0, 1)");
  DENSE_CHECK(cfg.p_mask >= 0 && cfg.p_mask <= 1, "pretrain: --p-mask must be in [0, 1]");
  DENSE_CHECK(cfg.shard_rows >= 0, "pretrain: --shard-rows must be a positive number of rows (got {})", cfg.shard_rows);
  DENSE_CHECK(cfg.short_seq_prob >= 0 && cfg.short_seq_prob <= 1,
              "pretrain: --short-seq-prob must be in [0, 1] (got {})", cfg.short_seq_prob);
  DENSE_CHECK(cfg.random_next_prob >= 0 && cfg.random_next_prob <= 1,
              "pretrain: --random-next-prob must be in [0, 1] (got {})", cfg.random_next_prob);
  DENSE_CHECK(!cfg.out_dir.empty(), "pretrain: no output folder given (-o)");
  check_output_outside_inputs(cfg.inputs, cfg.out_dir, "pretrain: -o");
  if (cfg.shard_rows == 0) cfg.shard_rows = std::max<int64_t>(1, (int64_t(1) << 19) / cfg.seq_len);
  if (cfg.prefix.empty()) cfg.prefix = format_name(cfg.format);
  const int threads = resolve_threads(cfg.threads);
  const auto t0 = std::chrono::steady_clock::now();

  const auto vocab = std::make_shared<const Vocab>(Vocab::load(cfg.vocab_path));
  const WordPieceTokenizer tok(vocab, cfg.lowercase ? WordPieceOptions::uncased() : WordPieceOptions::cased());
  const SpecialIds& sp = vocab->special();
  DENSE_CHECK(sp.cls >= 0 && sp.sep >= 0, "{}: the vocabulary has no [CLS] or [SEP] token (needed for {} rows)",
              cfg.vocab_path, format_name(cfg.format));
  if (cfg.format == PretrainFormat::kBert)
    DENSE_CHECK(sp.mask >= 0, "{}: the vocabulary has no [MASK] token (needed for static masking)", cfg.vocab_path);

  const std::vector<std::string> files = list_corpus_files(cfg.inputs, cfg.corpus.recursive, cfg.corpus.skip_hidden);
  const std::string prep_config = pretraining_prep_config_json(cfg, vocab->sha256(), files);
  const std::string format = format_name(cfg.format);
  ensure_writable_folder(cfg.out_dir);
  result.stale_temporaries_removed = remove_stale_temporaries(cfg.out_dir);
  // The default prefix (the format's name) keeps the plain manifest.json.
  const std::string manifest_name = cfg.prefix == format ? kManifestFile : cfg.prefix + "." + kManifestFile;
  result.manifest = (std::filesystem::path(cfg.out_dir) / manifest_name).string();

  if (!cfg.overwrite && manifest_complete(cfg.out_dir, format, prep_config, manifest_name)) {
    const nlohmann::json m = read_manifest(cfg.out_dir, manifest_name);
    for (const auto& s : m["shards"]) result.shards.push_back(s["file"].get<std::string>());
    result.shards_kept = int64_t(result.shards.size());
    result.rows = m.value("rows", int64_t(0));
    result.tokens = m.value("tokens", int64_t(0));
    result.dropped_tail_tokens = m.value("dropped_tail_tokens", int64_t(0));
    result.already_complete = true;
    return result;
  }

  bool compressed = false;
  const int64_t total_bytes = corpus_size(files, &compressed);
  Progress progress(fmt::format("pretrain[{}]", format), compressed ? -1 : total_bytes, cfg.progress);

  ShardMeta meta;
  meta.vocab_hash = vocab->sha256();
  meta.prep_config = prep_config;
  ShardWriteOptions wopt;
  wopt.gzip_level = cfg.gzip_level;

  // Each writer holds one shard's rows; `threads` in flight bounds memory to that many shards.
  BackgroundJobs writers(threads);
  std::vector<nlohmann::json> shard_list;
  auto shard_done = [&](const std::string& name, int64_t rows, bool kept) {
    result.shards.push_back(name);
    shard_list.push_back({{"file", name}, {"rows", rows}});
    result.rows += rows;
    (kept ? result.shards_kept : result.shards_written) += 1;
    progress.set_counter("shards", int64_t(result.shards.size()));
    progress.set_counter("rows", result.rows);
  };

  // ---- packed ----
  const int64_t N = cfg.seq_len;
  PackedRowBuilder builder(N, sp.cls, sp.sep, /*append_sep=*/true);
  std::vector<int32_t> shard_rows_buf, row;
  int64_t shard_fill = 0;
  bool stop = false;
  auto flush_packed = [&]() {
    if (shard_fill == 0) return;
    const int64_t index = int64_t(result.shards.size());
    const std::string name = shard_name(cfg.prefix, index);
    const std::string path = (std::filesystem::path(cfg.out_dir) / name).string();
    if (!keep_existing_shard(path, format, prep_config, shard_fill, cfg.overwrite)) {
      writers.submit([path, N, meta, wopt, rows = std::move(shard_rows_buf), fill = shard_fill]() {
        PackedShardWriter w(path, N, meta, wopt);
        for (int64_t r = 0; r < fill; ++r) w.append(std::span<const int32_t>(rows.data() + r * N, size_t(N)));
        w.close();
      });
      shard_done(name, shard_fill, false);
    } else {
      shard_done(name, shard_fill, true);
    }
    shard_rows_buf = {};
    shard_fill = 0;
  };
  auto consume_packed = [&](Chunk& c) {
    size_t begin = 0;
    for (size_t d = 0; d < c.doc_end.size() && !stop; ++d) {
      builder.add_document(std::span<const int32_t>(c.ids.data() + begin, c.doc_end[d] - begin));
      begin = c.doc_end[d];
      while (builder.next_row(row)) {
        if (shard_rows_buf.empty()) shard_rows_buf.reserve(size_t(cfg.shard_rows * N));
        shard_rows_buf.insert(shard_rows_buf.end(), row.begin(), row.end());
        ++shard_fill;
        const bool limit = cfg.max_rows > 0 && result.rows + shard_fill == cfg.max_rows;
        if (shard_fill == cfg.shard_rows || limit) flush_packed();
        if (limit) {
          stop = true;
          break;
        }
      }
    }
  };

  // ---- bert ----
  NspConfig nsp;
  nsp.max_seq_length = N;
  nsp.short_seq_prob = cfg.short_seq_prob;
  nsp.random_next_prob = cfg.random_next_prob;
  nsp.cls_id = sp.cls;
  nsp.sep_id = sp.sep;
  StaticMaskingConfig masking;
  masking.masked_lm_ratio = cfg.masked_lm_ratio;
  masking.max_predictions_per_seq = max_predictions_for(N, cfg.masked_lm_ratio);
  masking.p_mask = cfg.p_mask;
  masking.vocab_size = vocab->size();
  masking.mask_id = sp.mask;
  masking.never_mask = {sp.cls, sp.sep};
  if (sp.pad >= 0) masking.never_mask.push_back(sp.pad);
  const int64_t block_budget = std::max<int64_t>(1, cfg.shard_rows * (N - 3) / cfg.duplicate);
  std::vector<TokenDocument> block;
  int64_t block_tokens = 0;
  auto flush_bert = [&]() {
    if (block.empty()) return;
    const int64_t index = int64_t(result.shards.size());
    const std::string name = shard_name(cfg.prefix, index);
    const std::string path = (std::filesystem::path(cfg.out_dir) / name).string();
    int64_t kept_rows = 0;
    if (keep_existing_shard(path, format, prep_config, -1, cfg.overwrite, &kept_rows)) {
      shard_done(name, kept_rows, true);
    } else {
      const size_t docs = block.size();
      const size_t jobs = docs * size_t(cfg.duplicate);
      std::vector<std::vector<BertInstance>> per(jobs);
      std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
      for (size_t j = 0; j < jobs; ++j) {
        try {
          per[j] = create_bert_instances(block, j % docs, nsp, masking,
                                         mix_seed(cfg.seed, uint64_t(index), uint64_t(j / docs)));
        } catch (...) {
#pragma omp critical
          error = std::current_exception();
        }
      }
      if (error) std::rethrow_exception(error);
      std::vector<BertInstance> all;
      for (auto& p : per)
        for (auto& inst : p) all.push_back(std::move(inst));
      PhiloxRng shuffle_rng(mix_seed(cfg.seed, uint64_t(index), ~uint64_t(0)));
      shuffle_rng.shuffle(all);
      const int64_t rows = int64_t(all.size());
      const int64_t P = masking.max_predictions_per_seq;
      writers.submit([path, N, P, meta, wopt, all = std::move(all)]() {
        BertShardWriter w(path, N, P, meta, wopt);
        for (const auto& inst : all) w.append(inst);
        w.close();
      });
      shard_done(name, rows, false);
    }
    block.clear();
    block_tokens = 0;
  };
  auto consume_bert = [&](Chunk& c) {
    for (auto& d : c.documents) {
      if (d.empty()) continue;
      for (const auto& s : d) block_tokens += int64_t(s.size());
      block.push_back(std::move(d));
      if (block_tokens >= block_budget) flush_bert();
    }
  };

  // ---- the read / tokenize / consume loop ----
  CorpusReader reader(files, cfg.corpus);
  const size_t window = size_t(threads) * 4;
  Document doc;
  bool eof = false;
  while (!eof && !stop) {
    std::vector<Chunk> chunks;
    while (chunks.size() < window && !eof) {
      Chunk c;
      int64_t bytes = 0;
      while (bytes < kChunkBytes) {
        if (!reader.next(doc)) {
          eof = true;
          break;
        }
        bytes += int64_t(doc.text.size());
        c.texts.push_back(std::move(doc.text));
      }
      if (!c.texts.empty()) chunks.push_back(std::move(c));
    }
    std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (size_t i = 0; i < chunks.size(); ++i) {
      try {
        tokenize_chunk(tok, cfg.format, cfg.sentences, chunks[i]);
      } catch (...) {
#pragma omp critical
        error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    for (auto& c : chunks) {
      if (stop) break;
      result.tokens += c.tokens;
      result.unk_tokens += c.unk;
      if (cfg.format == PretrainFormat::kPacked)
        consume_packed(c);
      else
        consume_bert(c);
    }
    progress.set(reader.stats().bytes);
  }
  if (cfg.format == PretrainFormat::kPacked) {
    if (!stop) flush_packed();
    result.dropped_tail_tokens = stop ? 0 : builder.pending_tokens();
  } else {
    flush_bert();
  }
  writers.wait_all();
  result.corpus = reader.stats();

  if (cfg.max_rows > 0)
    DENSE_CHECK(result.rows == cfg.max_rows,
                "pretrain: the corpus gives only {} rows of {} tokens, but --max-rows asks for {} ({} files, {} "
                "documents)",
                result.rows, N, cfg.max_rows, files.size(), result.corpus.documents);
  DENSE_CHECK(result.rows > 0,
              "pretrain: the corpus gives no row of {} tokens ({} documents, {} tokens in {} files); use a shorter "
              "--seq-len or more text",
              N, result.corpus.documents, result.tokens, files.size());

  // Shards of the same prefix that this run did not make would be picked up by a loader listing the folder.
  const std::regex shard_re(std::regex_replace(cfg.prefix, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                            R"(-\d{5}\.hdf5)");
  std::vector<std::string> extra;
  for (const auto& e : std::filesystem::directory_iterator(cfg.out_dir)) {
    const std::string n = e.path().filename().string();
    if (std::regex_match(n, shard_re) &&
        std::find(result.shards.begin(), result.shards.end(), n) == result.shards.end())
      extra.push_back(n);
  }
  std::sort(extra.begin(), extra.end());
  if (!extra.empty()) {
    if (cfg.overwrite) {
      for (const auto& n : extra) std::filesystem::remove(std::filesystem::path(cfg.out_dir) / n);
    } else {
      std::fprintf(stderr,
                   "dense-prep: warning: %s holds %zu shard(s) this run did not make (first: %s); remove them or "
                   "re-run with --overwrite, or a loader reading the folder will use them\n",
                   cfg.out_dir.c_str(), extra.size(), extra.front().c_str());
    }
  }

  nlohmann::json m;
  m["format"] = format;
  m["seq_len"] = N;
  m["vocab_hash"] = vocab->sha256();
  m["prep_config"] = nlohmann::json::parse(prep_config);
  m["shards"] = shard_list;
  m["rows"] = result.rows;
  m["tokens"] = result.tokens;
  m["unk_tokens"] = result.unk_tokens;
  m["documents"] = result.corpus.documents;
  m["empty_documents"] = result.corpus.empty_documents;
  m["invalid_utf8"] = result.corpus.invalid_utf8;
  m["dropped_tail_tokens"] = result.dropped_tail_tokens;
  write_manifest(cfg.out_dir, m, manifest_name);
  progress.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace dense::data
