#include "data/shard_packed.h"

#include <algorithm>

namespace dense::data {

// ---- row builder ------------------------------------------------------------------------------------------

PackedRowBuilder::PackedRowBuilder(int64_t seq_len, int32_t cls_id, int32_t sep_id, bool append_sep)
    : seq_len_(seq_len), cls_id_(cls_id), sep_id_(sep_id), append_sep_(append_sep) {
  DENSE_CHECK(seq_len >= 2, "packed rows need seq_len >= 2 (got {})", seq_len);
}

void PackedRowBuilder::add_document(std::span<const int32_t> ids) {
  // Compact before growing so the buffer stays O(document + row) long.
  if (head_ > 0 && head_ * 2 >= stream_.size()) {
    stream_.erase(stream_.begin(), stream_.begin() + std::ptrdiff_t(head_));
    head_ = 0;
  }
  stream_.insert(stream_.end(), ids.begin(), ids.end());
  if (append_sep_) stream_.push_back(sep_id_);
}

bool PackedRowBuilder::next_row(std::vector<int32_t>& row) {
  const size_t body = size_t(seq_len_ - 1);
  if (stream_.size() - head_ < body) return false;
  row.resize(size_t(seq_len_));
  row[0] = cls_id_;
  std::copy(stream_.begin() + std::ptrdiff_t(head_), stream_.begin() + std::ptrdiff_t(head_ + body), row.begin() + 1);
  head_ += body;
  return true;
}

// ---- writer ---------------------------------------------------------------------------------------------

struct PackedShardWriter::Impl {
  // Runs before the members are destroyed: the datasets then close against the truncated temporary.
  ~Impl() { file.discard(); }
  detail::AtomicShardFile file;
  int64_t N, chunk_rows;
  h5::AppendDataset input_ids;
  std::vector<int32_t> buf;
  int64_t buffered = 0, written = 0;
  bool closed = false;

  Impl(const std::string& path, int64_t seq_len, const ShardMeta& meta, const ShardWriteOptions& opt)
      : file(path, "packed", seq_len, meta), N(seq_len), chunk_rows(detail::chunk_rows_for(seq_len * 4, opt)) {
    input_ids =
        h5::AppendDataset(file.id(), "input_ids", H5T_STD_I32LE, seq_len, chunk_rows, opt.gzip_level, file.tmp_path());
    buf.reserve(size_t(chunk_rows * seq_len));
  }
  void flush() {
    input_ids.append(buf.data(), buffered);
    written += buffered;
    buffered = 0;
    buf.clear();
  }
};

PackedShardWriter::PackedShardWriter(const std::string& path, int64_t seq_len, const ShardMeta& meta,
                                     const ShardWriteOptions& options)
    : impl_(std::make_unique<Impl>(path, seq_len, meta, options)) {}
PackedShardWriter::~PackedShardWriter() = default;

int64_t PackedShardWriter::rows() const { return impl_->written + impl_->buffered; }

void PackedShardWriter::append(std::span<const int32_t> row) {
  Impl& s = *impl_;
  DENSE_CHECK(!s.closed, "{}: append after close", s.file.path());
  DENSE_CHECK(int64_t(row.size()) == s.N, "{}: row {}: {} ids, expected {}", s.file.path(), rows(), row.size(), s.N);
  s.buf.insert(s.buf.end(), row.begin(), row.end());
  if (++s.buffered == s.chunk_rows) s.flush();
}

void PackedShardWriter::close() {
  Impl& s = *impl_;
  DENSE_CHECK(!s.closed, "{}: closed twice", s.file.path());
  s.closed = true;
  s.flush();
  s.input_ids.close();
  s.file.commit();
}

// ---- reader ---------------------------------------------------------------------------------------------

struct PackedShardReader::Impl {
  h5::Id file, input_ids;
  ShardInfo info;
  int64_t n = 0, N = 0;
};

PackedShardReader::PackedShardReader(const std::string& path, const ShardExpect& expect)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  auto [file, info] = detail::open_shard(path, "packed", expect);
  s.file = std::move(file);
  s.info = std::move(info);
  const auto dims = detail::require_dataset(s.file.get(), path, "input_ids", h5::ElemKind::Int, 4, 2);
  s.n = dims[0];
  s.N = dims[1];
  detail::settle_row_shape(s.info, s.n, s.N, expect);
  s.input_ids = h5::Id(
      h5::check_id(H5Dopen2(s.file.get(), "input_ids", H5P_DEFAULT), path + ": dataset 'input_ids'", "cannot open"));
}

PackedShardReader::~PackedShardReader() = default;
PackedShardReader::PackedShardReader(PackedShardReader&&) noexcept = default;
PackedShardReader& PackedShardReader::operator=(PackedShardReader&&) noexcept = default;
const ShardInfo& PackedShardReader::info() const { return impl_->info; }

std::vector<int32_t> PackedShardReader::read(int64_t begin, int64_t end) const {
  const Impl& s = *impl_;
  DENSE_CHECK(begin >= 0 && begin <= end && end <= s.n, "{}: rows [{}, {}) outside the {} rows", s.info.path, begin,
              end, s.n);
  std::vector<int32_t> out(size_t((end - begin) * s.N));
  h5::read_rows(s.input_ids.get(), begin, end, out.data(), s.info.path + ": dataset 'input_ids'");
  return out;
}

// ---- load-time masking ------------------------------------------------------------------------------------

void mask_packed_row(std::span<const int32_t> row, uint64_t epoch_seed, uint64_t row_index,
                     const PackedMaskConfig& config, std::span<int32_t> input_ids_out, std::span<int32_t> labels_out) {
  const double p_random = config.p_random < 0 ? (1.0 - config.p_mask) / 2.0 : config.p_random;
  DENSE_CHECK(config.rho >= 0 && config.rho <= 1, "masking ratio rho {} outside [0, 1]", config.rho);
  DENSE_CHECK(config.p_mask >= 0 && p_random >= 0 && config.p_mask + p_random <= 1.0 + 1e-12,
              "masking probabilities p_mask {} + p_random {} must lie in [0, 1]", config.p_mask, p_random);
  DENSE_CHECK(config.vocab_size > 0, "vocab_size must be positive ({})", config.vocab_size);
  DENSE_CHECK(input_ids_out.size() == row.size() && labels_out.size() == row.size(),
              "mask_packed_row: outputs of {} and {} for a row of {}", input_ids_out.size(), labels_out.size(),
              row.size());
  const double t_mask = config.rho * config.p_mask;
  const double t_random = config.rho * (config.p_mask + p_random);
  const double t_keep = config.rho;
  const uint32_t k0 = uint32_t(epoch_seed), k1 = uint32_t(epoch_seed >> 32);
  const uint32_t c2 = uint32_t(row_index), c3 = uint32_t(row_index >> 32);
  Philox4 u{}, rnd{};
  for (size_t i = 0; i < row.size(); ++i) {
    const size_t lane = i % 4;
    if (lane == 0) u = philox4x32_10_raw(uint32_t(i / 4), 0, c2, c3, k0, k1);
    const int32_t id = row[i];
    input_ids_out[i] = id;
    labels_out[i] = -1;
    if (!config.mask_special_tokens &&
        std::find(config.never_mask.begin(), config.never_mask.end(), id) != config.never_mask.end())
      continue;
    const double x = double(uint_to_unit_float(u.v[lane]));
    if (x >= t_keep) continue;
    labels_out[i] = id;
    if (x < t_mask) {
      input_ids_out[i] = config.mask_id;
    } else if (x < t_random) {
      rnd = philox4x32_10_raw(uint32_t(i / 4), 1, c2, c3, k0, k1);
      // Multiply-shift: uniform up to a bias below vocab_size / 2^32 (< 1e-5 for BERT's vocabulary).
      input_ids_out[i] = int32_t((uint64_t(rnd.v[lane]) * uint64_t(config.vocab_size)) >> 32);
    }
  }
}

}  // namespace dense::data
