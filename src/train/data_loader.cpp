#include "train/data_loader.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/hdf5_util.h"
#include "data/shard.h"
#include "data/shard_bert.h"

namespace dense::train {

namespace fs = std::filesystem;

nlohmann::json Cursor::to_json() const {
  return {{"epoch", epoch}, {"shard", shard}, {"offset", offset}, {"mix_shards", mix_shards}};
}

Cursor Cursor::from_json(const nlohmann::json& j) {
  Cursor c;
  for (const char* key : {"epoch", "shard", "offset"})
    DENSE_CHECK(j.is_object() && j.contains(key) && j[key].is_number_integer(),
                "data cursor: '{}' is missing or not an integer", key);
  c.epoch = j["epoch"].get<int64_t>();
  c.shard = j["shard"].get<int64_t>();
  c.offset = j["offset"].get<int64_t>();
  if (j.contains("mix_shards")) {
    DENSE_CHECK(j["mix_shards"].is_number_integer(), "data cursor: 'mix_shards' is not an integer");
    c.mix_shards = j["mix_shards"].get<int64_t>();
  }
  DENSE_CHECK(c.epoch >= 0 && c.shard >= 0 && c.offset >= 0, "data cursor: negative position {}", j.dump());
  DENSE_CHECK(c.mix_shards >= 1, "data cursor: mix_shards {} < 1", c.mix_shards);
  return c;
}

std::vector<std::string> list_shards(const std::string& path, const std::string& key) {
  std::error_code ec;
  const std::string from = key.empty() ? "" : fmt::format(" ({})", key);
  DENSE_CHECK(!path.empty(),
              "{}: no shard path given; set it to a folder of shards from dense-prep (in the config, "
              "or --set {}=FOLDER)",
              key.empty() ? "data" : key, key.empty() ? "data.train" : key);
  DENSE_CHECK(fs::exists(path, ec), "{}{}: no such shard file or folder", path, from);
  if (!fs::is_directory(path, ec)) return {path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file(ec) && (ext == ".hdf5" || ext == ".h5")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  DENSE_CHECK(!files.empty(), "{}{}: the folder holds no shard (*.hdf5)", path, from);
  return files;
}

namespace {

struct FileInfo {
  std::string format;
  int64_t rows = 0, seq_len = 0;
};

FileInfo probe(const std::string& path, const std::string& want_format, const std::string& vocab_hash) {
  data::h5::quiet_errors();
  // Before HDF5 parses anything: HDF5 can crash on a truncated file, the header check cannot.
  data::verify_shard_integrity(path, /*check_crc=*/false);
  std::string format;
  {
    data::h5::Id f = data::h5::open_file(path);
    format = data::h5::read_string_attribute(f.get(), "format", path).value_or("");
    if (format.empty()) format = data::h5::has_dataset(f.get(), "masked_lm_positions") ? "bert" : "packed";
  }
  DENSE_CHECK(format == "packed" || format == "bert",
              "{}: a '{}' shard cannot feed MLM pretraining (expected packed or bert)", path, format);
  DENSE_CHECK(want_format == "auto" || want_format == format, "{}: a '{}' shard, but data.format is '{}'", path, format,
              want_format);
  data::ShardExpect expect;
  expect.vocab_hash = vocab_hash;
  expect.allow_foreign = true;
  expect.verify_checksum = false;  // verified when the loader reads the whole shard
  FileInfo info;
  info.format = format;
  if (format == "packed") {
    data::PackedShardReader r(path, expect);
    info.rows = r.rows();
    info.seq_len = r.seq_len();
  } else {
    data::BertShardReader r(path, expect);
    info.rows = r.rows();
    info.seq_len = r.seq_len();
  }
  return info;
}

}  // namespace

// A whole shard in memory, as the batches need it.
struct ShardLoader::Shard {
  int64_t rows = 0, N = 0;
  std::vector<int32_t> ids;         // packed and bert
  std::vector<int32_t> labels;      // bert: masked_lm_labels
  std::vector<int8_t> mask, types;  // bert
};

ShardSetInfo check_shards(const LoaderOptions& o, const std::string& key) {
  DENSE_CHECK(!o.files.empty(), "data loader: no shard files");
  const std::string from = key.empty() ? "" : fmt::format(" ({})", key);
  ShardSetInfo set;
  set.rows.resize(o.files.size());
  for (size_t i = 0; i < o.files.size(); ++i) {
    const FileInfo info = with_context(fmt::format("checking the shards{}", from),
                                       [&] { return probe(o.files[i], o.format, o.vocab_hash); });
    if (set.format.empty()) set.format = info.format;
    DENSE_CHECK(info.format == set.format, "{}{}: a '{}' shard among '{}' shards ({})", o.files[i], from, info.format,
                set.format, o.files[0]);
    if (set.seq_len == 0) set.seq_len = info.seq_len;
    DENSE_CHECK(info.seq_len == set.seq_len, "{}{}: rows of {} tokens among shards of {} ({})", o.files[i], from,
                info.seq_len, set.seq_len, o.files[0]);
    set.rows[i] = info.rows;
    set.total_rows += info.rows;
  }
  if (o.seq_len > 0)
    DENSE_CHECK(set.seq_len == o.seq_len, "{}{}: rows of {} tokens, but data.seq_len is {}", o.files[0], from,
                set.seq_len, o.seq_len);
  DENSE_CHECK(set.total_rows > 0, "data loader: the shards hold no rows ({}{})", o.files[0], from);
  return set;
}

ShardLoader::ShardLoader(LoaderOptions options, Cursor start) : opt_(std::move(options)) {
  DENSE_CHECK(opt_.batch_size >= 1, "data loader: batch size {} < 1", opt_.batch_size);
  DENSE_CHECK(opt_.world >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world, "data loader: rank {} of {}", opt_.rank,
              opt_.world);
  DENSE_CHECK(opt_.mix_shards >= 1, "data loader: data.mix_shards {} < 1", opt_.mix_shards);
  // A cursor counts rows within groups of its own size: carried to another size it would point elsewhere.
  DENSE_CHECK(start.at_start() || start.mix_shards == group_size(),
              "the data position to resume from was saved with data.mix_shards {}, but the config has {}: resume "
              "with --set data.mix_shards={} (the group size cannot change within a run)",
              start.mix_shards, group_size(), start.mix_shards);
  DENSE_CHECK(start.shard % group_size() == 0, "data cursor: shard position {} is not the start of a group of {}",
              start.shard, group_size());
  start.mix_shards = group_size();
  ShardSetInfo set = check_shards(opt_);
  format_ = set.format;
  seq_len_ = set.seq_len;
  file_rows_ = std::move(set.rows);
  rows_per_epoch_ = set.total_rows;
  thread_ = std::thread([this, start] { run(start); });
}

void ShardLoader::warn(const std::string& message) const {
  if (opt_.on_warning)
    opt_.on_warning(message);
  else
    std::fprintf(stderr, "warning: %s\n", message.c_str());
}

ShardLoader::~ShardLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<int64_t> ShardLoader::shard_order(int64_t epoch) const {
  std::vector<int64_t> order(opt_.files.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
  if (opt_.shuffle && opt_.loop) {
    data::PhiloxRng rng(data::mix_seed(opt_.seed, uint64_t(epoch), 0x5348415244ull));  // "SHARD"
    rng.shuffle(order);
  }
  return order;
}

std::vector<int64_t> ShardLoader::row_order(int64_t epoch, int64_t file, int64_t rows) const {
  std::vector<int64_t> order(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) order[size_t(i)] = i;
  if (opt_.shuffle && opt_.loop) {
    data::PhiloxRng rng(data::mix_seed(opt_.seed, uint64_t(epoch), uint64_t(file) + 1));
    rng.shuffle(order);
  }
  return order;
}

ShardLoader::Shard ShardLoader::read_shard(const std::string& path, int64_t file) const {
  Shard s;
  data::ShardExpect expect;
  expect.vocab_hash = opt_.vocab_hash;
  expect.seq_len = seq_len_;
  expect.allow_foreign = true;
  if (format_ == "packed") {
    data::PackedShardReader r(path, expect);
    s.rows = r.rows();
    s.ids = r.read_all();
  } else {
    data::BertShardReader r(path, expect);
    data::BertRows rows = r.read_all();
    s.rows = rows.rows;
    s.ids = std::move(rows.input_ids);
    s.labels = std::move(rows.masked_lm_labels);
    s.mask = std::move(rows.input_mask);
    s.types = std::move(rows.segment_ids);
  }
  DENSE_CHECK(s.rows == file_rows_[size_t(file)], "{}: holds {} rows now, {} when the run started", path, s.rows,
              file_rows_[size_t(file)]);
  return s;
}

void ShardLoader::run(Cursor c) {
  auto at = [&](int64_t epoch, int64_t shard, int64_t offset) {
    Cursor next{epoch, shard, offset};
    next.mix_shards = group_size();
    return next;
  };
  try {
    const int64_t N = seq_len_;
    auto fresh = [&] {
      HostBatch b;
      b.seq_len = N;
      b.input_ids.reserve(size_t(opt_.batch_size * N));
      b.mlm_labels.reserve(size_t(opt_.batch_size * N));
      return b;
    };
    HostBatch batch = fresh();
    // Position in the current block of batch_size x world rows of the global stream; this rank keeps the
    // rows [rank x batch_size, (rank + 1) x batch_size) of every block. Blocks start at the cursor.
    const int64_t block = opt_.batch_size * opt_.world;
    const int64_t mine_begin = opt_.rank * opt_.batch_size, mine_end = mine_begin + opt_.batch_size;
    int64_t block_pos = 0;
    auto push = [&](HostBatch&& b) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || int64_t(queue_.size()) < std::max<int64_t>(1, opt_.prefetch); });
      if (stop_) return false;
      queue_.push_back(std::move(b));
      cv_.notify_all();
      return true;
    };
    std::vector<int32_t> masked(static_cast<size_t>(N)), labels(static_cast<size_t>(N));
    int64_t bad_in_a_row = 0;
    // Ids the model has no embedding row for: named here (shard, row, key), not by an index check in a kernel.
    // Labels below 0 mean "not predicted"; ids must be real rows.
    auto check_ids = [&](const int32_t* ids, const std::string& path, int64_t row, const char* what, int32_t lowest) {
      if (opt_.vocab_size <= 0) return;
      for (int64_t k = 0; k < N; ++k)
        DENSE_CHECK(ids[k] >= lowest && ids[k] < opt_.vocab_size,
                    "{}: row {}, position {}: {} {} is outside model.vocab_size {} (the shards were prepared with "
                    "another vocabulary: raise model.vocab_size to cover it, or re-prepare the shards)",
                    path, row, k, what, ids[k], opt_.vocab_size);
    };
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
      }
      const std::vector<int64_t> order = shard_order(c.epoch);
      if (c.shard >= int64_t(order.size())) {
        if (!opt_.loop) break;
        c = at(c.epoch + 1, 0, 0);
        continue;
      }
      // The group: positions [c.shard, c.shard + K) of the epoch's order, every shard of it in memory.
      const int64_t K = group_size();
      const int64_t group_end = std::min<int64_t>(c.shard + K, int64_t(order.size()));
      std::vector<int64_t> group_files;
      std::vector<Shard> group;
      for (int64_t at = c.shard; at < group_end; ++at) {
        const int64_t file = order[size_t(at)];
        const std::string& path = opt_.files[size_t(file)];
        try {
          group.push_back(read_shard(path, file));
          group_files.push_back(file);
          bad_in_a_row = 0;
        } catch (const Error& e) {
          if (!opt_.skip_bad_shards)
            throw BadShardError(path, fmt::format("damaged shard: {}; re-create it with dense-prep (or set "
                                                  "data.on_bad_shard: skip to train without it)",
                                                  e.what()));
          // Every shard bad would otherwise loop over the epochs for ever.
          DENSE_CHECK(++bad_in_a_row < int64_t(opt_.files.size()),
                      "every shard failed to read, the last {}: {}; data.on_bad_shard: skip has nothing left to train "
                      "on",
                      path, e.what());
          warn(fmt::format("skipping shard {} for the rest of epoch {} (data.on_bad_shard: skip): {}", path, c.epoch,
                           e.what()));
        }
      }
      // The group's rows as (slot in `group`, row): one shard alone keeps its own permutation (the order runs
      // had before groups existed); several are drawn in one permutation of all their rows.
      std::vector<int64_t> first_row(group.size() + 1, 0);
      for (size_t j = 0; j < group.size(); ++j) first_row[j + 1] = first_row[j] + group[j].rows;
      const int64_t group_rows = first_row.back();
      std::vector<int64_t> perm;
      if (group.size() == 1) {
        perm = row_order(c.epoch, group_files[0], group[0].rows);
      } else {
        perm.resize(size_t(group_rows));
        for (int64_t i = 0; i < group_rows; ++i) perm[size_t(i)] = i;
        if (opt_.shuffle) {
          data::PhiloxRng rng(
              data::mix_seed(opt_.seed, uint64_t(c.epoch), 0x4D4958000000ull + uint64_t(c.shard)));  // "MIX"
          rng.shuffle(perm);
        }
      }
      const uint64_t epoch_seed = data::mix_seed(opt_.seed, uint64_t(c.epoch), 0x4D41534Bull);  // "MASK"
      while (c.offset < group_rows) {
        const int64_t drawn = perm[size_t(c.offset)];
        const size_t slot = size_t(std::upper_bound(first_row.begin(), first_row.end(), drawn) - first_row.begin() - 1);
        const Shard& s = group[slot];
        const int64_t file = group_files[slot];
        const std::string& path = opt_.files[size_t(file)];
        const int64_t row = drawn - first_row[slot];
        const bool mine = block_pos >= mine_begin && block_pos < mine_end;
        ++c.offset;
        if (!mine) {
          if (++block_pos == block) {
            block_pos = 0;
            batch.next = c;
            if (!push(std::move(batch))) return;
            batch = fresh();
          }
          continue;
        }
        if (batch.batch == 0) batch.epoch = c.epoch;
        const int32_t* ids = s.ids.data() + row * N;
        check_ids(ids, path, row, "token id", 0);
        if (format_ != "packed")
          check_ids(s.labels.data() + row * N, path, row, "masked_lm_labels id", std::numeric_limits<int32_t>::min());
        if (format_ == "packed") {
          data::mask_packed_row(std::span<const int32_t>(ids, size_t(N)), epoch_seed,
                                (uint64_t(file) << 32) | uint64_t(row), opt_.masking, masked, labels);
          for (int64_t k = 0; k < N; ++k) {
            batch.input_ids.push_back(masked[size_t(k)]);
            batch.mlm_labels.push_back(labels[size_t(k)]);
            batch.masked += labels[size_t(k)] >= 0;
          }
        } else {
          const int32_t* lab = s.labels.data() + row * N;
          for (int64_t k = 0; k < N; ++k) {
            batch.input_ids.push_back(ids[k]);
            batch.mlm_labels.push_back(lab[k]);
            batch.masked += lab[k] >= 0;
            batch.attention_mask.push_back(float(s.mask[size_t(row * N + k)]));
            batch.token_type_ids.push_back(s.types[size_t(row * N + k)]);
          }
        }
        ++batch.batch;
        if (++block_pos == block) {
          block_pos = 0;
          batch.next = c;
          if (!push(std::move(batch))) return;
          batch = fresh();
        }
      }
      c = at(c.epoch, c.shard + K, 0);
    }
    if (batch.batch > 0) {  // the end of a one-pass read: this rank's part of a short last block
      batch.next = c;
      if (!push(std::move(batch))) return;
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::current_exception();
  }
  std::lock_guard<std::mutex> lock(mu_);
  done_ = true;
  cv_.notify_all();
}

bool ShardLoader::next(HostBatch& out) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || done_; });
  if (!queue_.empty()) {
    out = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return true;
  }
  if (error_) std::rethrow_exception(error_);
  return false;
}

}  // namespace dense::train
