#include "data/shard_classification.h"

#include <fmt/ranges.h>

#include <cmath>

namespace dense::data {

// ---- writer ---------------------------------------------------------------------------------------------

struct ClassificationShardWriter::Impl {
  // Runs before the members are destroyed: the datasets then close against the truncated temporary.
  ~Impl() { file.discard(); }
  detail::AtomicShardFile file;
  ClassificationLayout layout;
  int64_t chunk_rows;
  h5::AppendDataset ids, mask, types, ids2, mask2, labels;
  std::vector<int32_t> b_ids, b_ids2;
  std::vector<int8_t> b_mask, b_types, b_mask2;
  std::vector<int64_t> b_labels;
  std::vector<float> b_flabels;
  int64_t buffered = 0, written = 0;
  bool closed = false;

  Impl(const std::string& path, const ClassificationLayout& l, const ShardMeta& meta, const ShardWriteOptions& opt)
      : file(path, "classification", l.seq_len, meta),
        layout(l),
        chunk_rows(detail::chunk_rows_for(l.seq_len * 4, opt)) {
    DENSE_CHECK(l.num_labels >= 1, "{}: num_labels must be at least 1 ({})", path, l.num_labels);
    const hid_t f = file.id();
    const std::string& w = file.tmp_path();
    const int lvl = opt.gzip_level;
    const int64_t N = l.seq_len;
    h5::write_int_attribute(f, "num_labels", l.num_labels, w);
    h5::write_int_attribute(f, "labeled", l.labeled ? 1 : 0, w);
    ids = h5::AppendDataset(f, "input_ids", H5T_STD_I32LE, N, chunk_rows, lvl, w);
    mask = h5::AppendDataset(f, "attention_mask", H5T_STD_I8LE, N, chunk_rows, lvl, w);
    if (l.token_type_ids) types = h5::AppendDataset(f, "token_type_ids", H5T_STD_I8LE, N, chunk_rows, lvl, w);
    if (l.second_document) {
      ids2 = h5::AppendDataset(f, "input_ids2", H5T_STD_I32LE, N, chunk_rows, lvl, w);
      mask2 = h5::AppendDataset(f, "attention_mask2", H5T_STD_I8LE, N, chunk_rows, lvl, w);
    }
    labels = h5::AppendDataset(f, "labels", l.label_type == LabelType::Int64 ? H5T_STD_I64LE : H5T_IEEE_F32LE, 0,
                               std::max<int64_t>(chunk_rows, 16384), lvl, w);
  }

  void flush() {
    if (buffered > 0) {
      ids.append(b_ids.data(), buffered);
      mask.append(b_mask.data(), buffered);
      if (layout.token_type_ids) types.append(b_types.data(), buffered);
      if (layout.second_document) {
        ids2.append(b_ids2.data(), buffered);
        mask2.append(b_mask2.data(), buffered);
      }
      if (layout.label_type == LabelType::Int64)
        labels.append(b_labels.data(), buffered);
      else
        labels.append(b_flabels.data(), buffered);
    }
    written += buffered;
    buffered = 0;
    b_ids.clear();
    b_ids2.clear();
    b_mask.clear();
    b_types.clear();
    b_mask2.clear();
    b_labels.clear();
    b_flabels.clear();
  }

  // Appends one padded document (ids + mask) to the buffers.
  void add_doc(const std::vector<int32_t>& x, const std::vector<int8_t>& m, std::vector<int32_t>& out_ids,
               std::vector<int8_t>& out_mask, const char* name) {
    const std::string& path = file.path();
    const int64_t row = written + buffered;
    const size_t N = size_t(layout.seq_len);
    DENSE_CHECK(x.size() <= N, "{}: row {}: {} has {} ids, at most {}", path, row, name, x.size(), N);
    DENSE_CHECK(m.empty() || m.size() == x.size(), "{}: row {}: {} has {} ids but {} mask values", path, row, name,
                x.size(), m.size());
    out_ids.insert(out_ids.end(), x.begin(), x.end());
    out_ids.resize(out_ids.size() + (N - x.size()), layout.pad_id);
    if (m.empty()) {
      out_mask.resize(out_mask.size() + x.size(), 1);
    } else {
      for (int8_t v : m)
        DENSE_CHECK(v == 0 || v == 1, "{}: row {}: {} mask value {} (0 or 1)", path, row, name, int(v));
      out_mask.insert(out_mask.end(), m.begin(), m.end());
    }
    out_mask.resize(out_mask.size() + (N - x.size()), 0);
  }
};

ClassificationShardWriter::ClassificationShardWriter(const std::string& path, const ClassificationLayout& layout,
                                                     const ShardMeta& meta, const ShardWriteOptions& options)
    : impl_(std::make_unique<Impl>(path, layout, meta, options)) {}
ClassificationShardWriter::~ClassificationShardWriter() = default;
int64_t ClassificationShardWriter::rows() const { return impl_->written + impl_->buffered; }

void ClassificationShardWriter::append(const ClassificationExample& ex) {
  Impl& s = *impl_;
  const std::string& path = s.file.path();
  const int64_t row = rows();
  DENSE_CHECK(!s.closed, "{}: append after close", path);
  if (!s.layout.labeled) {
    DENSE_CHECK(s.layout.label_type == LabelType::Int64 ? ex.label == -1 : std::isnan(ex.label),
                "{}: row {}: label {} in an unlabeled shard (expected {})", path, row, ex.label,
                s.layout.label_type == LabelType::Int64 ? "-1" : "NaN");
  } else if (s.layout.label_type == LabelType::Int64) {
    DENSE_CHECK(std::isfinite(ex.label) && ex.label == std::floor(ex.label) && ex.label >= 0 &&
                    ex.label < double(s.layout.num_labels),
                "{}: row {}: label {} is not a class in [0, {})", path, row, ex.label, s.layout.num_labels);
  } else {
    DENSE_CHECK(std::isfinite(ex.label), "{}: row {}: label {} is not finite", path, row, ex.label);
  }
  DENSE_CHECK(s.layout.second_document || (ex.input_ids2.empty() && ex.attention_mask2.empty()),
              "{}: row {}: a second document was given but the layout has none", path, row);
  DENSE_CHECK(s.layout.token_type_ids || ex.token_type_ids.empty(),
              "{}: row {}: token_type_ids were given but the layout has none", path, row);
  DENSE_CHECK(ex.token_type_ids.empty() || ex.token_type_ids.size() == ex.input_ids.size(),
              "{}: row {}: {} token_type_ids for {} ids", path, row, ex.token_type_ids.size(), ex.input_ids.size());
  s.add_doc(ex.input_ids, ex.attention_mask, s.b_ids, s.b_mask, "input_ids");
  if (s.layout.second_document) s.add_doc(ex.input_ids2, ex.attention_mask2, s.b_ids2, s.b_mask2, "input_ids2");
  if (s.layout.token_type_ids) {
    s.b_types.insert(s.b_types.end(), ex.token_type_ids.begin(), ex.token_type_ids.end());
    s.b_types.resize(s.b_types.size() + size_t(s.layout.seq_len) - ex.token_type_ids.size(), 0);
  }
  if (s.layout.label_type == LabelType::Int64)
    s.b_labels.push_back(int64_t(ex.label));
  else
    s.b_flabels.push_back(float(ex.label));
  if (++s.buffered == s.chunk_rows) s.flush();
}

void ClassificationShardWriter::close() {
  Impl& s = *impl_;
  DENSE_CHECK(!s.closed, "{}: closed twice", s.file.path());
  s.closed = true;
  s.flush();
  for (auto* d : {&s.ids, &s.mask, &s.types, &s.ids2, &s.mask2, &s.labels}) d->close();
  s.file.commit();
}

// ---- reader ---------------------------------------------------------------------------------------------

struct ClassificationShardReader::Impl {
  h5::Id file, ids, mask, types, ids2, mask2, labels;
  ShardInfo info;
  ClassificationLayout layout;
  int64_t n = 0;
};

ClassificationShardReader::ClassificationShardReader(const std::string& path, const ShardExpect& expect)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  auto [file, info] = detail::open_shard(path, "classification", expect);
  s.file = std::move(file);
  s.info = std::move(info);
  const hid_t f = s.file.get();
  using h5::ElemKind;
  const auto dims = detail::require_dataset(f, path, "input_ids", ElemKind::Int, 4, 2);
  s.n = dims[0];
  const int64_t N = dims[1];
  auto check_2d = [&](const char* name, size_t size) {
    const auto d = detail::require_dataset(f, path, name, ElemKind::Int, size, 2);
    DENSE_CHECK(d[0] == s.n && d[1] == N, "{}: dataset '{}' has shape [{}, {}], expected [{}, {}] as input_ids", path,
                name, d[0], d[1], s.n, N);
  };
  check_2d("attention_mask", 1);
  s.layout.seq_len = N;
  s.layout.token_type_ids = h5::has_dataset(f, "token_type_ids");
  if (s.layout.token_type_ids) check_2d("token_type_ids", 1);
  const bool has2 = h5::has_dataset(f, "input_ids2"), hasm2 = h5::has_dataset(f, "attention_mask2");
  DENSE_CHECK(has2 == hasm2, "{}: dataset '{}' is missing (input_ids2 and attention_mask2 come together)", path,
              has2 ? "attention_mask2" : "input_ids2");
  s.layout.second_document = has2;
  if (has2) {
    check_2d("input_ids2", 4);
    check_2d("attention_mask2", 1);
  }
  DENSE_CHECK(h5::has_dataset(f, "labels"), "{}: dataset 'labels' is missing", path);
  const h5::DatasetInfo li = h5::dataset_info(f, "labels", path);
  if (li.kind == ElemKind::Int && li.size == 8)
    s.layout.label_type = LabelType::Int64;
  else if (li.kind == ElemKind::Float && li.size == 4)
    s.layout.label_type = LabelType::Float32;
  else
    DENSE_FAIL("{}: dataset 'labels': dtype {}, expected int64 or float32", path, li.dtype_name());
  DENSE_CHECK(li.dims.size() == 1 && li.dims[0] == s.n, "{}: dataset 'labels' has shape [{}], expected [{}]", path,
              fmt::join(li.dims, ", "), s.n);
  const auto num_labels = h5::read_int_attribute(f, "num_labels", path);
  DENSE_CHECK(num_labels.has_value() || s.info.foreign, "{}: attribute 'num_labels' is missing", path);
  s.layout.num_labels = num_labels.value_or(0);
  const auto labeled = h5::read_int_attribute(f, "labeled", path);
  DENSE_CHECK(!labeled || *labeled == 0 || *labeled == 1, "{}: attribute 'labeled' is {}, expected 0 or 1", path,
              *labeled);
  s.layout.labeled = labeled.value_or(1) == 1;
  DENSE_CHECK(!num_labels || *num_labels >= 1, "{}: attribute 'num_labels' is {}", path, *num_labels);
  if (!s.info.foreign || s.info.seq_len > 0)
    DENSE_CHECK(s.info.seq_len == N, "{}: attribute 'seq_len' is {} but input_ids rows hold {} tokens", path,
                s.info.seq_len, N);
  if (expect.seq_len > 0)
    DENSE_CHECK(N == expect.seq_len, "{}: sequence length: expected {}, found {} (input_ids)", path, expect.seq_len, N);
  s.info.seq_len = N;
  s.info.rows = s.n;
  auto open = [&](const char* name) {
    return h5::Id(h5::check_id(H5Dopen2(f, name, H5P_DEFAULT), path + ": dataset '" + name + "'", "cannot open"));
  };
  s.ids = open("input_ids");
  s.mask = open("attention_mask");
  if (s.layout.token_type_ids) s.types = open("token_type_ids");
  if (has2) {
    s.ids2 = open("input_ids2");
    s.mask2 = open("attention_mask2");
  }
  s.labels = open("labels");
}

ClassificationShardReader::~ClassificationShardReader() = default;
ClassificationShardReader::ClassificationShardReader(ClassificationShardReader&&) noexcept = default;
ClassificationShardReader& ClassificationShardReader::operator=(ClassificationShardReader&&) noexcept = default;
const ShardInfo& ClassificationShardReader::info() const { return impl_->info; }
const ClassificationLayout& ClassificationShardReader::layout() const { return impl_->layout; }
int64_t ClassificationShardReader::rows() const { return impl_->n; }

ClassificationRows ClassificationShardReader::read(int64_t begin, int64_t end) const {
  const Impl& s = *impl_;
  const std::string& path = s.info.path;
  DENSE_CHECK(begin >= 0 && begin <= end && end <= s.n, "{}: rows [{}, {}) outside the {} rows", path, begin, end, s.n);
  ClassificationRows r;
  r.rows = end - begin;
  r.seq_len = s.layout.seq_len;
  const size_t cells = size_t(r.rows * r.seq_len);
  auto w = [&](const char* name) { return path + ": dataset '" + name + "'"; };
  r.input_ids.resize(cells);
  r.attention_mask.resize(cells);
  h5::read_rows(s.ids.get(), begin, end, r.input_ids.data(), w("input_ids"));
  h5::read_rows(s.mask.get(), begin, end, r.attention_mask.data(), w("attention_mask"));
  if (s.layout.token_type_ids) {
    r.token_type_ids.resize(cells);
    h5::read_rows(s.types.get(), begin, end, r.token_type_ids.data(), w("token_type_ids"));
  }
  if (s.layout.second_document) {
    r.input_ids2.resize(cells);
    r.attention_mask2.resize(cells);
    h5::read_rows(s.ids2.get(), begin, end, r.input_ids2.data(), w("input_ids2"));
    h5::read_rows(s.mask2.get(), begin, end, r.attention_mask2.data(), w("attention_mask2"));
  }
  if (s.layout.label_type == LabelType::Int64) {
    r.labels.resize(size_t(r.rows));
    h5::read_rows(s.labels.get(), begin, end, r.labels.data(), w("labels"));
    if (!s.layout.labeled)
      for (size_t i = 0; i < r.labels.size(); ++i)
        DENSE_CHECK(r.labels[i] == -1, "{}: dataset 'labels': row {} holds {} in an unlabeled shard (expected -1)",
                    path, begin + int64_t(i), r.labels[i]);
    else if (s.layout.num_labels > 0)
      for (size_t i = 0; i < r.labels.size(); ++i)
        DENSE_CHECK(r.labels[i] >= 0 && r.labels[i] < s.layout.num_labels,
                    "{}: dataset 'labels': row {} holds {}, outside [0, {}) (num_labels)", path, begin + int64_t(i),
                    r.labels[i], s.layout.num_labels);
  } else {
    r.float_labels.resize(size_t(r.rows));
    h5::read_rows(s.labels.get(), begin, end, r.float_labels.data(), w("labels"));
    for (size_t i = 0; i < r.float_labels.size(); ++i)
      DENSE_CHECK(s.layout.labeled ? std::isfinite(r.float_labels[i]) : std::isnan(r.float_labels[i]),
                  "{}: dataset 'labels': row {} is {} ({})", path, begin + int64_t(i), r.float_labels[i],
                  s.layout.labeled ? "expected a finite score" : "expected NaN in an unlabeled shard");
  }
  return r;
}

}  // namespace dense::data
