#include "data/shard_bert.h"

#include <algorithm>
#include <cmath>

namespace dense::data {

// ---- NSP pairs ---------------------------------------------------------------------------------------------

namespace {

// Indices of a document's non-empty sentences.
std::vector<size_t> non_empty(const TokenDocument& doc) {
  std::vector<size_t> idx;
  idx.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i)
    if (!doc[i].empty()) idx.push_back(i);
  return idx;
}

}  // namespace

std::vector<NspPair> create_nsp_pairs(std::span<const TokenDocument> documents, size_t document_index,
                                      const NspConfig& config, PhiloxRng& rng) {
  DENSE_CHECK(document_index < documents.size(), "document index {} outside the {} documents", document_index,
              documents.size());
  DENSE_CHECK(config.max_seq_length >= 5, "NSP pairs need max_seq_length >= 5 (got {})", config.max_seq_length);
  DENSE_CHECK(config.short_seq_prob >= 0 && config.short_seq_prob <= 1 && config.random_next_prob >= 0 &&
                  config.random_next_prob <= 1,
              "NSP probabilities must lie in [0, 1] (short_seq_prob {}, random_next_prob {})", config.short_seq_prob,
              config.random_next_prob);
  const TokenDocument& document = documents[document_index];
  const std::vector<size_t> sentences = non_empty(document);
  std::vector<NspPair> out;
  if (sentences.empty()) return out;

  const int64_t max_num_tokens = config.max_seq_length - 3;
  int64_t target_seq_length = max_num_tokens;
  if (rng.uniform() < config.short_seq_prob) target_seq_length = rng.randint(2, max_num_tokens);

  std::vector<size_t> chunk;  // sentence indices into `document`
  int64_t current_length = 0;
  std::vector<int32_t> a, b;
  for (int64_t i = 0; i < int64_t(sentences.size()); ++i) {
    chunk.push_back(sentences[size_t(i)]);
    current_length += int64_t(document[sentences[size_t(i)]].size());
    if (i != int64_t(sentences.size()) - 1 && current_length < target_seq_length) continue;

    int64_t a_end = 1;
    if (chunk.size() >= 2) a_end = rng.randint(1, int64_t(chunk.size()) - 1);
    a.clear();
    b.clear();
    for (int64_t j = 0; j < a_end; ++j)
      a.insert(a.end(), document[chunk[size_t(j)]].begin(), document[chunk[size_t(j)]].end());
    bool is_random_next = false;
    if (chunk.size() == 1 || rng.uniform() < config.random_next_prob) {
      is_random_next = true;
      const int64_t target_b_length = target_seq_length - int64_t(a.size());
      size_t random_index = document_index;
      for (int attempt = 0; attempt < 10; ++attempt) {
        random_index = size_t(rng.randint(0, int64_t(documents.size()) - 1));
        if (random_index != document_index) break;
      }
      const TokenDocument& random_doc = documents[random_index];
      const std::vector<size_t> random_sentences = non_empty(random_doc);
      if (!random_sentences.empty()) {
        const int64_t start = rng.randint(0, int64_t(random_sentences.size()) - 1);
        for (size_t j = size_t(start); j < random_sentences.size(); ++j) {
          const Sentence& s = random_doc[random_sentences[j]];
          b.insert(b.end(), s.begin(), s.end());
          if (int64_t(b.size()) >= target_b_length) break;
        }
      }
      // The sentences not used for A go back to the queue.
      i -= int64_t(chunk.size()) - a_end;
    } else {
      for (size_t j = size_t(a_end); j < chunk.size(); ++j)
        b.insert(b.end(), document[chunk[j]].begin(), document[chunk[j]].end());
    }
    chunk.clear();
    current_length = 0;

    // Truncate the longer side, from the front or the back at random, until the pair fits.
    size_t a0 = 0, a1 = a.size(), b0 = 0, b1 = b.size();
    while (int64_t((a1 - a0) + (b1 - b0)) > max_num_tokens) {
      const bool trunc_a = (a1 - a0) > (b1 - b0);
      size_t& lo = trunc_a ? a0 : b0;
      size_t& hi = trunc_a ? a1 : b1;
      if (rng.uniform() < 0.5)
        ++lo;
      else
        --hi;
    }
    if (a1 == a0 || b1 == b0) continue;  // a random document without tokens: no pair

    NspPair p;
    p.is_random_next = is_random_next;
    p.a_length = int32_t(a1 - a0);
    p.b_length = int32_t(b1 - b0);
    p.tokens.reserve(size_t(p.a_length + p.b_length + 3));
    p.tokens.push_back(config.cls_id);
    p.tokens.insert(p.tokens.end(), a.begin() + std::ptrdiff_t(a0), a.begin() + std::ptrdiff_t(a1));
    p.tokens.push_back(config.sep_id);
    p.segment_ids.assign(p.tokens.size(), 0);
    p.tokens.insert(p.tokens.end(), b.begin() + std::ptrdiff_t(b0), b.begin() + std::ptrdiff_t(b1));
    p.tokens.push_back(config.sep_id);
    p.segment_ids.resize(p.tokens.size(), 1);
    out.push_back(std::move(p));
  }
  return out;
}

// ---- static masking -------------------------------------------------------------------------------------

int64_t max_predictions_for(int64_t seq_len, double ratio) {
  DENSE_CHECK(seq_len > 0 && ratio > 0 && ratio <= 1, "max_predictions_for: bad seq_len {} or ratio {}", seq_len,
              ratio);
  return std::max<int64_t>(1, round_half_even(double(seq_len) * ratio));
}

BertInstance mask_static(const NspPair& pair, const StaticMaskingConfig& config, int64_t seq_len, PhiloxRng& rng) {
  const double p_random = config.p_random < 0 ? (1.0 - config.p_mask) / 2.0 : config.p_random;
  DENSE_CHECK(config.p_mask >= 0 && p_random >= 0 && config.p_mask + p_random <= 1.0 + 1e-12,
              "masking probabilities p_mask {} + p_random {} must lie in [0, 1]", config.p_mask, p_random);
  DENSE_CHECK(config.masked_lm_ratio > 0 && config.masked_lm_ratio <= 1, "masked_lm_ratio {} outside (0, 1]",
              config.masked_lm_ratio);
  DENSE_CHECK(config.vocab_size > 0, "vocab_size must be positive ({})", config.vocab_size);
  DENSE_CHECK(pair.tokens.size() == pair.segment_ids.size(), "NSP pair: {} tokens but {} segment ids",
              pair.tokens.size(), pair.segment_ids.size());
  const int64_t max_pred = config.max_predictions_per_seq > 0 ? config.max_predictions_per_seq
                                                              : max_predictions_for(seq_len, config.masked_lm_ratio);

  BertInstance inst;
  inst.input_ids = pair.tokens;
  inst.segment_ids = pair.segment_ids;
  inst.next_sentence_label = pair.is_random_next ? 1 : 0;

  std::vector<int32_t> candidates;
  candidates.reserve(pair.tokens.size());
  for (size_t i = 0; i < pair.tokens.size(); ++i)
    if (std::find(config.never_mask.begin(), config.never_mask.end(), pair.tokens[i]) == config.never_mask.end())
      candidates.push_back(int32_t(i));
  int64_t num_to_predict = std::max<int64_t>(1, round_half_even(double(pair.tokens.size()) * config.masked_lm_ratio));
  num_to_predict = std::min({num_to_predict, max_pred, int64_t(candidates.size())});

  // A partial Fisher-Yates shuffle: the first num_to_predict candidates are a uniform random subset, in a
  // uniform random order (the order the masking decisions are drawn in).
  struct Chosen {
    int32_t pos, id;
  };
  std::vector<Chosen> chosen;
  chosen.reserve(size_t(num_to_predict));
  const int64_t n = int64_t(candidates.size());
  for (int64_t k = 0; k < num_to_predict; ++k) {
    const int64_t j = rng.randint(k, n - 1);
    std::swap(candidates[size_t(k)], candidates[size_t(j)]);
    const int32_t pos = candidates[size_t(k)];
    const int32_t original = pair.tokens[size_t(pos)];
    const double r = rng.uniform();
    if (r < config.p_mask)
      inst.input_ids[size_t(pos)] = config.mask_id;
    else if (r < config.p_mask + p_random)
      inst.input_ids[size_t(pos)] = int32_t(rng.randint(0, config.vocab_size - 1));
    chosen.push_back({pos, original});
  }
  std::sort(chosen.begin(), chosen.end(), [](const Chosen& x, const Chosen& y) { return x.pos < y.pos; });
  for (const Chosen& c : chosen) {
    inst.masked_lm_positions.push_back(c.pos);
    inst.masked_lm_ids.push_back(c.id);
  }
  return inst;
}

std::vector<BertInstance> create_bert_instances(std::span<const TokenDocument> documents, size_t document_index,
                                                const NspConfig& nsp, const StaticMaskingConfig& masking,
                                                uint64_t seed) {
  PhiloxRng rng(seed, document_index);
  const std::vector<NspPair> pairs = create_nsp_pairs(documents, document_index, nsp, rng);
  std::vector<BertInstance> out;
  out.reserve(pairs.size());
  for (const NspPair& p : pairs) out.push_back(mask_static(p, masking, nsp.max_seq_length, rng));
  return out;
}

// ---- writer ---------------------------------------------------------------------------------------------

struct BertShardWriter::Impl {
  // Runs before the members are destroyed: the datasets then close against the truncated temporary.
  ~Impl() { file.discard(); }
  detail::AtomicShardFile file;
  int64_t n_tok, n_pred, chunk_rows;
  h5::AppendDataset input_ids, input_mask, segment_ids, positions, masked_ids, nsp, filled;
  std::vector<int32_t> b_ids, b_pos, b_mids, b_filled;
  std::vector<int8_t> b_mask, b_seg, b_nsp;
  int64_t buffered = 0, written = 0;
  bool closed = false;

  Impl(const std::string& path, int64_t seq_len, int64_t max_pred, const ShardMeta& meta, const ShardWriteOptions& opt)
      : file(path, "bert", seq_len, meta),
        n_tok(seq_len),
        n_pred(max_pred),
        chunk_rows(detail::chunk_rows_for(seq_len * 4, opt)) {
    const hid_t f = file.id();
    const std::string& w = file.tmp_path();
    DENSE_CHECK(max_pred >= 1 && max_pred <= seq_len, "{}: max_predictions_per_seq {} outside [1, {}]", path, max_pred,
                seq_len);
    h5::write_int_attribute(f, "max_predictions_per_seq", max_pred, w);
    const int lvl = opt.gzip_level;
    const int64_t rows_1d = std::max<int64_t>(chunk_rows, 16384);
    input_ids = h5::AppendDataset(f, "input_ids", H5T_STD_I32LE, seq_len, chunk_rows, lvl, w);
    input_mask = h5::AppendDataset(f, "input_mask", H5T_STD_I8LE, seq_len, chunk_rows, lvl, w);
    segment_ids = h5::AppendDataset(f, "segment_ids", H5T_STD_I8LE, seq_len, chunk_rows, lvl, w);
    positions = h5::AppendDataset(f, "masked_lm_positions", H5T_STD_I32LE, max_pred, chunk_rows, lvl, w);
    masked_ids = h5::AppendDataset(f, "masked_lm_ids", H5T_STD_I32LE, max_pred, chunk_rows, lvl, w);
    nsp = h5::AppendDataset(f, "next_sentence_labels", H5T_STD_I8LE, 0, rows_1d, lvl, w);
    filled = h5::AppendDataset(f, "filled_lengths", H5T_STD_I32LE, 0, rows_1d, lvl, w);
  }

  void flush() {
    if (buffered == 0) return;
    input_ids.append(b_ids.data(), buffered);
    input_mask.append(b_mask.data(), buffered);
    segment_ids.append(b_seg.data(), buffered);
    positions.append(b_pos.data(), buffered);
    masked_ids.append(b_mids.data(), buffered);
    nsp.append(b_nsp.data(), buffered);
    filled.append(b_filled.data(), buffered);
    for (auto* v : {&b_ids, &b_pos, &b_mids, &b_filled}) v->clear();
    for (auto* v : {&b_mask, &b_seg, &b_nsp}) v->clear();
    buffered = 0;
  }
};

BertShardWriter::BertShardWriter(const std::string& path, int64_t seq_len, int64_t max_predictions_per_seq,
                                 const ShardMeta& meta, const ShardWriteOptions& options)
    : impl_(std::make_unique<Impl>(path, seq_len, max_predictions_per_seq, meta, options)) {}

BertShardWriter::~BertShardWriter() = default;

int64_t BertShardWriter::rows() const { return impl_->written + impl_->buffered; }

void BertShardWriter::append(const BertInstance& x) {
  Impl& s = *impl_;
  const std::string& path = s.file.path();
  DENSE_CHECK(!s.closed, "{}: append after close", path);
  const int64_t row = rows();
  const size_t len = x.input_ids.size();
  DENSE_CHECK(len >= 1 && int64_t(len) <= s.n_tok, "{}: row {}: {} tokens, expected 1 to {}", path, row, len, s.n_tok);
  DENSE_CHECK(x.segment_ids.size() == len, "{}: row {}: {} segment ids for {} tokens", path, row, x.segment_ids.size(),
              len);
  DENSE_CHECK(x.masked_lm_positions.size() == x.masked_lm_ids.size(),
              "{}: row {}: {} masked positions but {} masked ids", path, row, x.masked_lm_positions.size(),
              x.masked_lm_ids.size());
  DENSE_CHECK(int64_t(x.masked_lm_positions.size()) <= s.n_pred, "{}: row {}: {} masked positions, at most {}", path,
              row, x.masked_lm_positions.size(), s.n_pred);
  for (size_t k = 0; k < x.masked_lm_positions.size(); ++k) {
    const int32_t p = x.masked_lm_positions[k];
    DENSE_CHECK(p >= 1 && size_t(p) < len, "{}: row {}: masked position {} outside [1, {})", path, row, p, len);
    DENSE_CHECK(k == 0 || p > x.masked_lm_positions[k - 1], "{}: row {}: masked positions not strictly ascending", path,
                row);
  }
  DENSE_CHECK(x.next_sentence_label == 0 || x.next_sentence_label == 1, "{}: row {}: next_sentence_label {}", path, row,
              int(x.next_sentence_label));
  const size_t N = size_t(s.n_tok), P = size_t(s.n_pred);
  s.b_ids.insert(s.b_ids.end(), x.input_ids.begin(), x.input_ids.end());
  s.b_ids.resize(s.b_ids.size() + (N - len), 0);
  s.b_mask.resize(s.b_mask.size() + len, 1);
  s.b_mask.resize(s.b_mask.size() + (N - len), 0);
  s.b_seg.insert(s.b_seg.end(), x.segment_ids.begin(), x.segment_ids.end());
  s.b_seg.resize(s.b_seg.size() + (N - len), 0);
  s.b_pos.insert(s.b_pos.end(), x.masked_lm_positions.begin(), x.masked_lm_positions.end());
  s.b_pos.resize(s.b_pos.size() + (P - x.masked_lm_positions.size()), 0);
  s.b_mids.insert(s.b_mids.end(), x.masked_lm_ids.begin(), x.masked_lm_ids.end());
  s.b_mids.resize(s.b_mids.size() + (P - x.masked_lm_ids.size()), 0);
  s.b_nsp.push_back(x.next_sentence_label);
  s.b_filled.push_back(int32_t(len));
  if (++s.buffered == s.chunk_rows) {
    s.written += s.buffered;
    s.flush();
  }
}

void BertShardWriter::close() {
  Impl& s = *impl_;
  DENSE_CHECK(!s.closed, "{}: closed twice", s.file.path());
  s.closed = true;
  s.written += s.buffered;
  s.flush();
  for (auto* d : {&s.input_ids, &s.input_mask, &s.segment_ids, &s.positions, &s.masked_ids, &s.nsp, &s.filled})
    d->close();
  s.file.commit();
}

// ---- reader ---------------------------------------------------------------------------------------------

struct BertShardReader::Impl {
  h5::Id file;
  ShardInfo info;
  int64_t n = 0, N = 0, P = 0;
  bool has_filled = true;
  h5::Id input_ids, input_mask, segment_ids, positions, masked_ids, nsp, filled;
};

BertShardReader::BertShardReader(const std::string& path, const ShardExpect& expect) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  auto [file, info] = detail::open_shard(path, "bert", expect);
  s.file = std::move(file);
  s.info = std::move(info);
  const hid_t f = s.file.get();
  using h5::ElemKind;
  const auto ids = detail::require_dataset(f, path, "input_ids", ElemKind::Int, 4, 2);
  s.n = ids[0];
  s.N = ids[1];
  auto same = [&](const char* name, size_t size, int64_t cols, const char* what) {
    const auto d = detail::require_dataset(f, path, name, ElemKind::Int, size, cols > 0 ? 2 : 1);
    DENSE_CHECK(d[0] == s.n, "{}: dataset '{}' has {} rows but input_ids has {}", path, name, d[0], s.n);
    if (cols > 0)
      DENSE_CHECK(d[1] == cols, "{}: dataset '{}' has {} columns, expected {} ({})", path, name, d[1], cols, what);
    return d;
  };
  same("input_mask", 1, s.N, "the sequence length of input_ids");
  same("segment_ids", 1, s.N, "the sequence length of input_ids");
  const auto pos = detail::require_dataset(f, path, "masked_lm_positions", ElemKind::Int, 4, 2);
  s.P = pos[1];
  DENSE_CHECK(pos[0] == s.n, "{}: dataset 'masked_lm_positions' has {} rows but input_ids has {}", path, pos[0], s.n);
  same("masked_lm_ids", 4, s.P, "the width of masked_lm_positions");
  same("next_sentence_labels", 1, 0, "");
  s.has_filled = h5::has_dataset(f, "filled_lengths");
  DENSE_CHECK(s.has_filled || s.info.foreign, "{}: dataset 'filled_lengths' is missing", path);
  if (s.has_filled) same("filled_lengths", 4, 0, "");

  detail::settle_row_shape(s.info, s.n, s.N, expect);
  const auto max_pred = h5::read_int_attribute(f, "max_predictions_per_seq", path);
  DENSE_CHECK(max_pred.has_value() || s.info.foreign, "{}: attribute 'max_predictions_per_seq' is missing", path);
  if (max_pred)
    DENSE_CHECK(*max_pred == s.P, "{}: attribute 'max_predictions_per_seq' is {} but masked_lm_positions holds {}",
                path, *max_pred, s.P);

  auto open = [&](const char* name) {
    return h5::Id(h5::check_id(H5Dopen2(f, name, H5P_DEFAULT), path + ": dataset '" + name + "'", "cannot open"));
  };
  s.input_ids = open("input_ids");
  s.input_mask = open("input_mask");
  s.segment_ids = open("segment_ids");
  s.positions = open("masked_lm_positions");
  s.masked_ids = open("masked_lm_ids");
  s.nsp = open("next_sentence_labels");
  if (s.has_filled) s.filled = open("filled_lengths");
}

BertShardReader::~BertShardReader() = default;
BertShardReader::BertShardReader(BertShardReader&&) noexcept = default;
BertShardReader& BertShardReader::operator=(BertShardReader&&) noexcept = default;

const ShardInfo& BertShardReader::info() const { return impl_->info; }
int64_t BertShardReader::max_predictions() const { return impl_->P; }

BertRows BertShardReader::read(int64_t begin, int64_t end) const {
  const Impl& s = *impl_;
  const std::string& path = s.info.path;
  DENSE_CHECK(begin >= 0 && begin <= end && end <= s.n, "{}: rows [{}, {}) outside the {} rows", path, begin, end, s.n);
  BertRows r;
  r.rows = end - begin;
  r.seq_len = s.N;
  r.max_predictions = s.P;
  const size_t rows = size_t(r.rows), N = size_t(s.N), P = size_t(s.P);
  r.input_ids.resize(rows * N);
  r.input_mask.resize(rows * N);
  r.segment_ids.resize(rows * N);
  r.masked_lm_positions.resize(rows * P);
  r.masked_lm_ids.resize(rows * P);
  r.next_sentence_labels.resize(rows);
  r.filled_lengths.resize(rows);
  auto w = [&](const char* name) { return path + ": dataset '" + name + "'"; };
  h5::read_rows(s.input_ids.get(), begin, end, r.input_ids.data(), w("input_ids"));
  h5::read_rows(s.input_mask.get(), begin, end, r.input_mask.data(), w("input_mask"));
  h5::read_rows(s.segment_ids.get(), begin, end, r.segment_ids.data(), w("segment_ids"));
  h5::read_rows(s.positions.get(), begin, end, r.masked_lm_positions.data(), w("masked_lm_positions"));
  h5::read_rows(s.masked_ids.get(), begin, end, r.masked_lm_ids.data(), w("masked_lm_ids"));
  h5::read_rows(s.nsp.get(), begin, end, r.next_sentence_labels.data(), w("next_sentence_labels"));
  if (s.has_filled) {
    h5::read_rows(s.filled.get(), begin, end, r.filled_lengths.data(), w("filled_lengths"));
  } else {
    for (size_t i = 0; i < rows; ++i) {
      int32_t c = 0;
      for (size_t j = 0; j < N; ++j) c += r.input_mask[i * N + j] != 0;
      r.filled_lengths[i] = c;
    }
  }
  r.masked_lm_labels.assign(rows * N, -1);
  for (size_t i = 0; i < rows; ++i) {
    for (size_t k = 0; k < P; ++k) {
      const int32_t p = r.masked_lm_positions[i * P + k];
      if (p == 0) break;
      DENSE_CHECK(p > 0 && size_t(p) < N, "{}: dataset 'masked_lm_positions': row {} holds position {} outside [0, {})",
                  path, begin + int64_t(i), p, N);
      r.masked_lm_labels[i * N + size_t(p)] = r.masked_lm_ids[i * P + k];
    }
  }
  return r;
}

}  // namespace dense::data
