#include "parallel/cqs_schedule.h"

#include <algorithm>
#include <charconv>

#include "core/error.h"
#include "core/file_io.h"

namespace dense::parallel {

namespace {

std::string join(const std::vector<int64_t>& v, std::string_view sep = ",") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += std::to_string(v[i]);
  }
  return out;
}

int64_t mod(int64_t a, int64_t m) {
  const int64_t r = a % m;
  return r < 0 ? r + m : r;
}

void check_structure(int64_t workers, const std::vector<int64_t>& interest) {
  if (workers < 2) DENSE_FAIL("CQS-Attention needs at least 2 workers, got W={}", workers);
  if (workers > kMaxCqsWorkers)
    DENSE_FAIL("W={} workers is more than the {} a CQS schedule is built for", workers, kMaxCqsWorkers);
  for (size_t j = 0; j < interest.size(); ++j) {
    const int64_t x = interest[j];
    if (x < 0 || x >= workers)
      DENSE_FAIL("interest set {{{}}} for W={}: entry {} is outside [0, {})", join(interest), workers, x, workers);
    if (j > 0 && x == interest[j - 1])
      DENSE_FAIL("interest set {{{}}} for W={}: duplicate entry {}", join(interest), workers, x);
    if (j > 0 && x < interest[j - 1])
      DENSE_FAIL("interest set {{{}}} for W={}: entries not ascending ({} after {})", join(interest), workers, x,
                 interest[j - 1]);
  }
  // Ascending and in range, so 0 and 1, when present, are the first two entries.
  if (interest.empty() || interest[0] != 0)
    DENSE_FAIL("interest set {{{}}} for W={}: must contain 0", join(interest), workers);
  if (interest.size() < 2 || interest[1] != 1)
    DENSE_FAIL("interest set {{{}}} for W={}: must contain 1", join(interest), workers);
}

// The group-level schedule (quorums, kept pairs, owned tiles, material groups) for a structurally valid
// interest set. Pair classes depend only on the indices in I, not on the worker, so self-distillation picks
// the same index pairs for every worker; only the W/2 class differs (kept by workers i < W/2).
std::vector<CqsSchedule::Worker> group_schedule(int64_t workers, const std::vector<int64_t>& interest,
                                                std::vector<int64_t>& owner_shift) {
  const int64_t W = workers;
  const auto k = static_cast<int64_t>(interest.size());
  struct KeptPair {
    int64_t p, q;
    bool half;  // the class d = W/2
  };
  std::vector<KeptPair> kept;
  std::vector<char> class_seen(static_cast<size_t>(W / 2 + 1), 0);
  owner_shift.assign(static_cast<size_t>(W), 0);
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t q = p + 1; q < k; ++q) {
      const int64_t d = mod(interest[q] - interest[p], W);
      const int64_t cls = std::min(d, W - d);
      if (class_seen[cls]) continue;
      class_seen[cls] = 1;
      kept.push_back({p, q, 2 * d == W});
      // Worker i covers tiles (I[p]+i, I[q]+i), difference d, and (I[q]+i, I[p]+i), difference W-d.
      owner_shift[d] = interest[p];
      if (2 * d != W) owner_shift[W - d] = interest[q];
    }
  }

  std::vector<CqsSchedule::Worker> out(static_cast<size_t>(W));
  for (int64_t i = 0; i < W; ++i) {
    auto& w = out[i];
    w.index = i;
    for (int64_t a : interest) w.quorum.push_back(mod(a + i, W));
    w.tiles.emplace_back(i, i);
    w.groups.push_back(i);
    for (const auto& kp : kept) {
      if (kp.half && 2 * i >= W) continue;
      const int64_t ga = w.quorum[kp.p], gb = w.quorum[kp.q];
      w.kept_pairs.emplace_back(std::min(ga, gb), std::max(ga, gb));
      w.tiles.emplace_back(ga, gb);
      w.tiles.emplace_back(gb, ga);
      w.groups.push_back(ga);
      w.groups.push_back(gb);
    }
    std::sort(w.tiles.begin(), w.tiles.end());
    std::sort(w.groups.begin(), w.groups.end());
    w.groups.erase(std::unique(w.groups.begin(), w.groups.end()), w.groups.end());
  }
  return out;
}

std::vector<CqsSchedule::Worker> validated_group_schedule(int64_t workers, const std::vector<int64_t>& interest,
                                                          std::vector<int64_t>& owner_shift) {
  check_structure(workers, interest);
  if (const int64_t d = first_uncovered_difference(workers, interest))
    DENSE_FAIL(
        "interest set {{{}}} is not a difference cover of Z_{}: the first uncovered difference is {} "
        "(no a - b equals {} or {} mod {})",
        join(interest), workers, d, d, workers - d, workers);
  auto ws = group_schedule(workers, interest, owner_shift);
  std::vector<std::vector<std::pair<int64_t, int64_t>>> tiles;
  tiles.reserve(ws.size());
  for (const auto& w : ws) tiles.push_back(w.tiles);
  with_context(fmt::format("schedule for interest set {{{}}}, W={}", join(interest), workers),
               [&] { check_tiles_owned_once(workers, tiles); });
  return ws;
}

void check_seq_len(int64_t seq_len, int64_t workers) {
  if (seq_len < workers)
    DENSE_FAIL(
        "CQS-Attention: sequence of {} tokens is shorter than the W={} workers; each of the W token groups needs "
        "at least one token, so use at most {} workers",
        seq_len, workers, seq_len);
}

CqsSchedule build_schedule(int64_t seq_len, int64_t workers, std::vector<int64_t> interest) {
  check_seq_len(seq_len, workers);
  CqsSchedule s;
  s.seq_len = seq_len;
  s.workers = workers;
  s.workers_ = validated_group_schedule(workers, interest, s.owner_shift);
  s.interest = std::move(interest);

  // gen_TG_Tk_map: the first W-r groups get q tokens, the last r get q+1.
  const int64_t q = seq_len / workers, r = seq_len % workers, bound = workers - r;
  s.group_begin.resize(static_cast<size_t>(workers + 1));
  for (int64_t g = 0; g <= workers; ++g) s.group_begin[g] = g * q + std::max<int64_t>(0, g - bound);

  for (auto& w : s.workers_) {
    w.token_begin.clear();
    w.local_begin.assign(1, 0);
    for (int64_t g : w.groups) {
      w.token_begin.push_back(s.group_begin[g]);
      w.local_begin.push_back(w.local_begin.back() + s.group_size(g));
    }
    w.local_tiles.clear();
    for (const auto& [qg, kg] : w.tiles) {
      const int64_t jq = w.local_group(qg), jk = w.local_group(kg);
      w.local_tiles.push_back({w.local_begin[jq], w.local_begin[jq + 1], w.local_begin[jk], w.local_begin[jk + 1]});
    }
  }
  return s;
}

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

int64_t parse_int(std::string_view field, std::string_view what) {
  const std::string_view t = trim(field);
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size())
    DENSE_FAIL("bad number '{}' in {}", std::string(t), what);
  return v;
}

}  // namespace

// ---- table ------------------------------------------------------------------------------------------------

const InterestSetEntry* InterestSetTable::find(int64_t workers) const {
  const auto it = entries_.find(workers);
  return it == entries_.end() ? nullptr : &it->second;
}

const InterestSetEntry& InterestSetTable::at(int64_t workers) const {
  if (const auto* e = find(workers)) return *e;
  if (entries_.empty()) DENSE_FAIL("interest-set table '{}' is empty (asked for W={})", source_name_, workers);
  DENSE_FAIL(
      "interest-set table '{}' has no row for W={} (it has {} rows, W={}..{}); give an interest set "
      "for W={} explicitly or use a table that has one",
      source_name_, workers, entries_.size(), entries_.begin()->first, entries_.rbegin()->first, workers);
}

void InterestSetTable::add(int64_t workers, InterestSetEntry entry) {
  if (const auto* e = find(workers)) DENSE_FAIL("duplicate W={} (first on line {})", workers, e->line);
  std::vector<int64_t> owner_shift;
  validated_group_schedule(workers, entry.interest, owner_shift);
  entries_.emplace(workers, std::move(entry));
}

InterestSetTable parse_interest_sets(std::string_view text, const std::string& source_name) {
  InterestSetTable table(source_name);
  int64_t line_no = 0, prev_w = 0, prev_line = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    const std::string_view body = trim(line);
    if (body.empty() || body.front() == '#') continue;
    with_context(fmt::format("{}:{}", source_name, line_no), [&] {
      std::vector<std::string_view> fields;
      size_t f = 0;
      while (f <= body.size()) {
        size_t tab = body.find('\t', f);
        if (tab == std::string_view::npos) tab = body.size();
        // Runs of tabs count as one separator, so columns may be aligned.
        if (const auto field = trim(body.substr(f, tab - f)); !field.empty()) fields.push_back(field);
        f = tab + 1;
      }
      if (fields.size() < 2 || fields.size() > 3)
        DENSE_FAIL("expected 'W<TAB>I<TAB>source' (2 or 3 tab-separated fields), got {} field(s): '{}'", fields.size(),
                   std::string(body));
      const int64_t w = parse_int(fields[0], "the W field");
      InterestSetEntry entry;
      entry.line = line_no;
      if (fields.size() == 3) entry.provenance = std::string(fields[2]);
      std::string_view list = fields[1];
      size_t c = 0;
      while (true) {
        size_t comma = list.find(',', c);
        if (comma == std::string_view::npos) comma = list.size();
        entry.interest.push_back(parse_int(list.substr(c, comma - c), fmt::format("the interest set of W={}", w)));
        if (comma == list.size()) break;
        c = comma + 1;
      }
      if (prev_line != 0 && w < prev_w)
        DENSE_FAIL("W={} after W={} (line {}): rows must be in increasing W", w, prev_w, prev_line);
      table.add(w, std::move(entry));
      prev_w = w;
      prev_line = line_no;
    });
  }
  if (table.empty()) DENSE_FAIL("{}: no interest-set rows", source_name);
  return table;
}

InterestSetTable load_interest_sets(const std::filesystem::path& path) {
  return parse_interest_sets(read_file(path), path.string());
}

const InterestSetTable& builtin_interest_sets() {
  static const InterestSetTable table =
      parse_interest_sets(builtin_interest_sets_text(), "built-in data/cqs/interest_sets.txt");
  return table;
}

// ---- validation -------------------------------------------------------------------------------------------

int64_t first_uncovered_difference(int64_t workers, const std::vector<int64_t>& interest) {
  DENSE_CHECK(workers >= 1, "W must be positive, got {}", workers);
  std::vector<char> covered(static_cast<size_t>(workers), 0);
  for (int64_t a : interest)
    for (int64_t b : interest) covered[mod(a - b, workers)] = 1;
  for (int64_t d = 1; d < workers; ++d)
    if (!covered[d]) return d;
  return 0;
}

void validate_interest_set(int64_t workers, const std::vector<int64_t>& interest) {
  std::vector<int64_t> owner_shift;
  validated_group_schedule(workers, interest, owner_shift);
}

void check_tiles_owned_once(int64_t workers,
                            const std::vector<std::vector<std::pair<int64_t, int64_t>>>& tiles_per_worker) {
  const int64_t W = workers;
  DENSE_CHECK(W >= 1 && W <= kMaxCqsWorkers, "W={} outside [1, {}]", W, kMaxCqsWorkers);
  std::vector<int32_t> count(static_cast<size_t>(W * W), 0);
  for (size_t w = 0; w < tiles_per_worker.size(); ++w)
    for (const auto& [qg, kg] : tiles_per_worker[w]) {
      if (qg < 0 || qg >= W || kg < 0 || kg >= W)
        DENSE_FAIL("worker {} owns tile ({}, {}), outside the {} x {} group grid", w, qg, kg, W, W);
      ++count[qg * W + kg];
    }
  for (int64_t t = 0; t < W * W; ++t) {
    if (count[t] == 1) continue;
    const int64_t qg = t / W, kg = t % W;
    if (count[t] == 0) DENSE_FAIL("tile (query group {}, key group {}) is owned by no worker", qg, kg);
    std::vector<int64_t> owners;
    for (size_t w = 0; w < tiles_per_worker.size(); ++w)
      for (const auto& tile : tiles_per_worker[w])
        if (tile == std::pair<int64_t, int64_t>(qg, kg)) owners.push_back(static_cast<int64_t>(w));
    DENSE_FAIL("tile (query group {}, key group {}) is owned {} times, by workers {}", qg, kg, count[t],
               join(owners, ", "));
  }
}

// ---- schedule ---------------------------------------------------------------------------------------------

std::vector<int64_t> CqsSchedule::Worker::material_tokens() const {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(material_size()));
  for (size_t j = 0; j < groups.size(); ++j)
    for (int64_t t = 0; t < local_begin[j + 1] - local_begin[j]; ++t) out.push_back(token_begin[j] + t);
  return out;
}

std::vector<std::pair<int64_t, int64_t>> CqsSchedule::Worker::token_ranges() const {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (size_t j = 0; j < groups.size(); ++j) {
    const int64_t b = token_begin[j], e = b + (local_begin[j + 1] - local_begin[j]);
    if (!out.empty() && out.back().second == b)
      out.back().second = e;
    else
      out.emplace_back(b, e);
  }
  return out;
}

int64_t CqsSchedule::Worker::local_index(int64_t token) const {
  const auto it = std::upper_bound(token_begin.begin(), token_begin.end(), token);
  if (it == token_begin.begin()) return -1;
  const auto j = static_cast<size_t>(it - token_begin.begin() - 1);
  const int64_t offset = token - token_begin[j];
  return offset < local_begin[j + 1] - local_begin[j] ? local_begin[j] + offset : -1;
}

int64_t CqsSchedule::Worker::local_group(int64_t group) const {
  const auto it = std::lower_bound(groups.begin(), groups.end(), group);
  return it != groups.end() && *it == group ? static_cast<int64_t>(it - groups.begin()) : -1;
}

bool CqsSchedule::Worker::owns(int64_t query_group, int64_t key_group) const {
  return std::binary_search(tiles.begin(), tiles.end(), std::pair<int64_t, int64_t>(query_group, key_group));
}

int64_t CqsSchedule::Worker::owned_cells() const {
  int64_t n = 0;
  for (const auto& t : local_tiles) n += (t.query_end - t.query_begin) * (t.key_end - t.key_begin);
  return n;
}

const CqsSchedule::Worker& CqsSchedule::worker(int64_t w) const {
  DENSE_CHECK(w >= 0 && w < workers, "worker {} outside [0, {})", w, workers);
  return workers_[w];
}

int64_t CqsSchedule::group_size(int64_t group) const {
  DENSE_CHECK(group >= 0 && group < workers, "group {} outside [0, {})", group, workers);
  return group_begin[group + 1] - group_begin[group];
}

int64_t CqsSchedule::group_of(int64_t token) const {
  DENSE_CHECK(token >= 0 && token < seq_len, "token {} outside [0, {})", token, seq_len);
  const int64_t q = seq_len / workers, bound = workers - seq_len % workers;
  return token < bound * q ? token / q : bound + (token - bound * q) / (q + 1);
}

int64_t CqsSchedule::owner(int64_t query_group, int64_t key_group) const {
  DENSE_CHECK(query_group >= 0 && query_group < workers && key_group >= 0 && key_group < workers,
              "tile ({}, {}) outside the {} x {} group grid", query_group, key_group, workers, workers);
  const int64_t d = mod(key_group - query_group, workers);
  const int64_t w = mod(query_group - owner_shift[d], workers);
  return 2 * d == workers ? w % (workers / 2) : w;
}

int64_t CqsSchedule::owner_of_cell(int64_t query_token, int64_t key_token) const {
  return owner(group_of(query_token), group_of(key_token));
}

int64_t CqsSchedule::peak_material_tokens() const {
  int64_t m = 0;
  for (const auto& w : workers_) m = std::max(m, w.material_size());
  return m;
}

int64_t CqsSchedule::total_material_tokens() const {
  int64_t n = 0;
  for (const auto& w : workers_) n += w.material_size();
  return n;
}

double CqsSchedule::longest_material_fraction() const {
  return seq_len > 0 ? static_cast<double>(peak_material_tokens()) / static_cast<double>(seq_len) : 0.0;
}

int64_t CqsSchedule::max_tiles_per_worker() const {
  size_t m = 0;
  for (const auto& w : workers_) m = std::max(m, w.tiles.size());
  return static_cast<int64_t>(m);
}

int64_t CqsSchedule::peak_owned_cells() const {
  int64_t m = 0;
  for (const auto& w : workers_) m = std::max(m, w.owned_cells());
  return m;
}

CqsSchedule make_cqs_schedule(int64_t seq_len, int64_t workers, const InterestSetTable& table) {
  check_seq_len(seq_len, workers);
  return build_schedule(seq_len, workers, table.at(workers).interest);
}

CqsSchedule make_cqs_schedule(int64_t seq_len, int64_t workers, std::vector<int64_t> interest_set) {
  return build_schedule(seq_len, workers, std::move(interest_set));
}

}  // namespace dense::parallel
