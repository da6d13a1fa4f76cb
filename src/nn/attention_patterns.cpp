#include "nn/attention_patterns.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <numeric>
#include <utility>

#include "core/edit_distance.h"
#include "core/error.h"
#include "core/rng.h"

namespace dense::nn {

// ---------------------------------------------------------------------------------------------------------
// Names and keys

namespace {

struct KindInfo {
  PatternKind kind;
  const char* name;
  // The keys of the kind in describe() order, and those without a default.
  std::vector<std::string> keys;
  std::vector<std::string> required;
};

const std::vector<KindInfo>& kinds() {
  static const std::vector<KindInfo> table = {
      {PatternKind::Dense, "dense", {"causal", "block"}, {}},
      {PatternKind::SlidingWindow, "sliding_window", {"window", "causal", "block"}, {"window"}},
      {PatternKind::Dilated, "dilated", {"window", "dilation", "causal", "block"}, {"window", "dilation"}},
      {PatternKind::Dilated2D, "dilated_2d", {"block", "dilation", "causal"}, {"dilation"}},
      {PatternKind::Global, "global", {"global_tokens", "window", "causal", "block"}, {"global_tokens"}},
      {PatternKind::Longformer,
       "longformer",
       {"window", "global_tokens", "causal", "block"},
       {"window", "global_tokens"}},
      {PatternKind::BigBird,
       "bigbird",
       {"block", "window_blocks", "global_blocks", "random_blocks", "seed", "causal"},
       {}},
      {PatternKind::BlockLocal, "block_local", {"block", "causal"}, {}},
      {PatternKind::Strided, "strided", {"stride", "heads_mode", "causal", "block"}, {"stride"}},
      {PatternKind::Fixed,
       "fixed",
       {"stride", "summary", "num_patterns", "heads_mode", "causal", "block"},
       {"stride", "summary"}},
  };
  return table;
}

const KindInfo& kind_info(PatternKind kind) {
  for (const auto& k : kinds())
    if (k.kind == kind) return k;
  DENSE_FAIL("attention pattern: unknown PatternKind {}", static_cast<int>(kind));
}

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// " (did you mean 'x'?)" for the closest candidate within a third of the word's length (at least 2 edits),
// or else the first one the word abbreviates ("multi" -> "multihead").
std::string suggestion(std::string_view word, const std::vector<std::string>& candidates) {
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  std::string best;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  if (best.empty() && word.size() >= 3)
    for (const auto& c : candidates)
      if (c.starts_with(word)) return fmt::format(" (did you mean '{}'?)", c);
  return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
}

const std::vector<std::string>& all_keys() {
  static const std::vector<std::string> keys = {
      "kind",         "causal",        "block",         "window",        "dilation",      "stride", "summary",
      "num_patterns", "global_tokens", "window_blocks", "global_blocks", "random_blocks", "seed",   "heads_mode"};
  return keys;
}

bool uses_heads_mode(PatternKind k) { return k == PatternKind::Strided || k == PatternKind::Fixed; }

}  // namespace

const char* pattern_kind_name(PatternKind kind) { return kind_info(kind).name; }

const char* factorised_heads_name(FactorisedHeads mode) {
  switch (mode) {
    case FactorisedHeads::Merged: return "merged";
    case FactorisedHeads::Multihead: return "multihead";
    case FactorisedHeads::Interleaved: return "interleaved";
  }
  DENSE_FAIL("attention pattern: unknown FactorisedHeads {}", static_cast<int>(mode));
}

// ---------------------------------------------------------------------------------------------------------
// Validation

void validate_pattern_spec(const PatternSpec& s, const std::string& where) {
  const char* kind = pattern_kind_name(s.kind);
  // Sizes beyond any sequence length would only overflow the index arithmetic (window · dilation, ...).
  for (const auto& [name, value] : {std::pair{"block", s.block},
                                    {"window", s.window},
                                    {"dilation", s.dilation},
                                    {"stride", s.stride},
                                    {"summary", s.summary},
                                    {"num_patterns", s.num_patterns},
                                    {"window_blocks", s.window_blocks},
                                    {"global_blocks", s.global_blocks},
                                    {"random_blocks", s.random_blocks}})
    DENSE_CHECK(value <= INT32_MAX, "{}: {} must be <= 2^31 - 1 (got {})", where, name, value);
  DENSE_CHECK(s.block >= 1, "{}: block must be >= 1 (got {})", where, s.block);
  switch (s.kind) {
    case PatternKind::Dense:
    case PatternKind::BlockLocal: break;
    case PatternKind::SlidingWindow:
    case PatternKind::Longformer:
      DENSE_CHECK(s.window >= 0, "{}: kind={} needs window >= 0 (got {})", where, kind, s.window);
      break;
    case PatternKind::Dilated:
      DENSE_CHECK(s.window >= 0, "{}: kind={} needs window >= 0 (got {})", where, kind, s.window);
      DENSE_CHECK(s.dilation >= 1, "{}: kind={} needs dilation >= 1 (got {})", where, kind, s.dilation);
      break;
    case PatternKind::Dilated2D:
      DENSE_CHECK(s.dilation >= 1 && s.dilation <= s.block, "{}: kind={} needs dilation in [1, block = {}] (got {})",
                  where, kind, s.block, s.dilation);
      break;
    case PatternKind::Global:
      DENSE_CHECK(s.window >= -1, "{}: window must be >= 0, or -1 for none (got {})", where, s.window);
      break;
    case PatternKind::BigBird:
      DENSE_CHECK(s.window_blocks >= 0 && (s.window_blocks == 0 || s.window_blocks % 2 == 1),
                  "{}: window_blocks must be odd (the window is centred: window_blocks/2 blocks each side) or 0 "
                  "for none (got {})",
                  where, s.window_blocks);
      DENSE_CHECK(s.global_blocks >= 0, "{}: global_blocks must be >= 0 (got {})", where, s.global_blocks);
      DENSE_CHECK(s.random_blocks >= 0, "{}: random_blocks must be >= 0 (got {})", where, s.random_blocks);
      DENSE_CHECK(s.window_blocks + s.global_blocks + s.random_blocks > 0,
                  "{}: kind=bigbird with window_blocks, global_blocks and random_blocks all 0 sees nothing", where);
      break;
    case PatternKind::Strided:
      DENSE_CHECK(s.stride >= 1, "{}: kind={} needs stride >= 1 (got {})", where, kind, s.stride);
      break;
    case PatternKind::Fixed:
      DENSE_CHECK(s.stride >= 1, "{}: kind={} needs stride >= 1 (got {})", where, kind, s.stride);
      DENSE_CHECK(s.summary >= 1 && s.summary <= s.stride, "{}: summary must be in [1, stride = {}] (got {})", where,
                  s.stride, s.summary);
      DENSE_CHECK(s.num_patterns >= 1, "{}: num_patterns must be >= 1 (got {})", where, s.num_patterns);
      DENSE_CHECK(s.num_patterns <= s.stride / s.summary,
                  "{}: num_patterns = {} summary sub-blocks of {} do not fit in stride = {} (at most {})", where,
                  s.num_patterns, s.summary, s.stride, s.stride / s.summary);
      break;
  }
  if (s.kind == PatternKind::Global || s.kind == PatternKind::Longformer) {
    DENSE_CHECK(!s.global_tokens.empty(), "{}: kind={} needs at least one of global_tokens", where, kind);
    for (int64_t t : s.global_tokens)
      DENSE_CHECK(t >= 0 && t <= INT32_MAX, "{}: global_tokens has {}, outside [0, 2^31)", where, t);
  }
  if (uses_heads_mode(s.kind)) {
    const int m = static_cast<int>(s.heads_mode);
    DENSE_CHECK(m >= 0 && m <= 2, "{}: heads_mode {} is not merged, multihead or interleaved", where, m);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Parsing and describing

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  const char* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, out);
  return !text.empty() && r.ec == std::errc() && r.ptr == end;
}

int64_t parse_int(const std::string& where, const std::string& key, const std::string& value, int64_t min) {
  int64_t v = 0;
  DENSE_CHECK(parse_number(value, v) && v >= min, "{}: {}: expected an integer >= {}, got '{}'", where, key, min,
              value);
  return v;
}

bool parse_bool(const std::string& where, const std::string& key, const std::string& value) {
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  DENSE_FAIL("{}: {}: expected true or false, got '{}'", where, key, value);
}

FactorisedHeads parse_heads_mode(const std::string& where, const std::string& value) {
  for (auto m : {FactorisedHeads::Merged, FactorisedHeads::Multihead, FactorisedHeads::Interleaved})
    if (value == factorised_heads_name(m)) return m;
  DENSE_FAIL("{}: heads_mode: expected merged, multihead or interleaved, got '{}'{}", where, value,
             suggestion(value, {"merged", "multihead", "interleaved"}));
}

// A whole sequence can be global, so the cap is the largest N; it stops "0..2000000000" from allocating
// gigabytes before N is known.
constexpr int64_t kMaxGlobalTokens = int64_t(1) << 24;

std::vector<int64_t> parse_global_tokens(const std::string& where, const std::string& value) {
  std::vector<int64_t> tokens;
  std::string_view rest = value;
  for (;;) {
    const size_t plus = rest.find('+');
    const std::string item(trim(rest.substr(0, plus)));
    const size_t dots = item.find("..");
    int64_t a = 0, b = 0;
    const bool ok = dots == std::string::npos ? parse_number(std::string_view(item), a) && (b = a, true)
                                              : parse_number(std::string_view(item).substr(0, dots), a) &&
                                                    parse_number(std::string_view(item).substr(dots + 2), b);
    DENSE_CHECK(ok && a >= 0 && a <= b,
                "{}: global_tokens: expected token indices >= 0 or ranges a..b (a <= b) joined by '+', got '{}' in "
                "'{}'",
                where, item, value);
    DENSE_CHECK(b - a < kMaxGlobalTokens && int64_t(tokens.size()) + (b - a + 1) <= kMaxGlobalTokens,
                "{}: global_tokens: more than {} tokens in '{}'", where, kMaxGlobalTokens, value);
    for (int64_t t = a; t <= b; ++t) tokens.push_back(t);
    if (plus == std::string_view::npos) break;
    rest.remove_prefix(plus + 1);
  }
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  return tokens;
}

std::string format_global_tokens(std::vector<int64_t> tokens) {
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  std::string out;
  for (size_t a = 0; a < tokens.size();) {
    size_t b = a;
    while (b + 1 < tokens.size() && tokens[b + 1] == tokens[b] + 1) ++b;
    if (!out.empty()) out += '+';
    out += b == a ? fmt::format("{}", tokens[a]) : fmt::format("{}..{}", tokens[a], tokens[b]);
    a = b + 1;
  }
  return out;
}

std::vector<std::string> kind_names() {
  std::vector<std::string> names;
  for (const auto& k : kinds()) names.push_back(k.name);
  return names;
}

}  // namespace

PatternSpec parse_pattern_spec(const std::map<std::string, std::string>& kv, const std::string& where) {
  const auto kind_it = kv.find("kind");
  DENSE_CHECK(kind_it != kv.end(), "{}: key 'kind' is required (one of {})", where, join(kind_names()));
  const KindInfo* info = nullptr;
  for (const auto& k : kinds())
    if (kind_it->second == k.name) info = &k;
  DENSE_CHECK(info != nullptr, "{}: kind: unknown pattern '{}'{}; expected one of {}", where, kind_it->second,
              suggestion(kind_it->second, kind_names()), join(kind_names()));

  PatternSpec s;
  s.kind = info->kind;
  for (const auto& [key, value] : kv) {
    if (key == "kind") continue;
    if (std::find(info->keys.begin(), info->keys.end(), key) == info->keys.end()) {
      const bool known = std::find(all_keys().begin(), all_keys().end(), key) != all_keys().end();
      if (known)
        DENSE_FAIL("{}: key '{}' does not apply to kind={} (its keys: {})", where, key, info->name, join(info->keys));
      DENSE_FAIL("{}: unknown key '{}'{}; kind={} takes {}", where, key, suggestion(key, info->keys), info->name,
                 join(info->keys));
    }
    if (key == "causal")
      s.causal = parse_bool(where, key, value);
    else if (key == "block")
      s.block = parse_int(where, key, value, 1);
    else if (key == "window")
      s.window = parse_int(where, key, value, 0);
    else if (key == "dilation")
      s.dilation = parse_int(where, key, value, 1);
    else if (key == "stride")
      s.stride = parse_int(where, key, value, 1);
    else if (key == "summary")
      s.summary = parse_int(where, key, value, 1);
    else if (key == "num_patterns")
      s.num_patterns = parse_int(where, key, value, 1);
    else if (key == "global_tokens")
      s.global_tokens = parse_global_tokens(where, value);
    else if (key == "window_blocks")
      s.window_blocks = parse_int(where, key, value, 0);
    else if (key == "global_blocks")
      s.global_blocks = parse_int(where, key, value, 0);
    else if (key == "random_blocks")
      s.random_blocks = parse_int(where, key, value, 0);
    else if (key == "seed")
      DENSE_CHECK(parse_number(std::string_view(value), s.seed), "{}: seed: expected an integer in [0, 2^64), got '{}'",
                  where, value);
    else if (key == "heads_mode")
      s.heads_mode = parse_heads_mode(where, value);
  }
  for (const auto& key : info->required)
    DENSE_CHECK(kv.count(key), "{}: kind={} needs key '{}' (its keys: {})", where, info->name, key, join(info->keys));
  validate_pattern_spec(s, where);
  return s;
}

PatternSpec parse_pattern(std::string_view text, const std::string& where) {
  std::map<std::string, std::string> kv;
  text = trim(text);
  std::string_view items = text;
  const size_t colon = text.find(':'), eq = text.find('=');
  if (colon != std::string_view::npos && (eq == std::string_view::npos || colon < eq)) {
    kv["kind"] = std::string(trim(text.substr(0, colon)));
    items = trim(text.substr(colon + 1));
  } else if (eq == std::string_view::npos) {
    kv["kind"] = std::string(text);
    items = {};
  }
  while (!items.empty()) {
    const size_t comma = items.find(',');
    const std::string_view item = trim(items.substr(0, comma));
    const size_t e = item.find('=');
    DENSE_CHECK(!item.empty() && e != std::string_view::npos && e > 0,
                "{}: expected key=value items separated by ',', got '{}' in '{}'", where, item, text);
    const std::string key(trim(item.substr(0, e)));
    DENSE_CHECK(!kv.count(key), "{}: key '{}' given twice in '{}'", where, key, text);
    kv[key] = std::string(trim(item.substr(e + 1)));
    if (comma == std::string_view::npos) break;
    items.remove_prefix(comma + 1);
    DENSE_CHECK(!trim(items).empty(), "{}: '{}' ends with ','", where, text);
  }
  return parse_pattern_spec(kv, where);
}

namespace {
std::string value_of(const PatternSpec& s, const std::string& key) {
  if (key == "causal") return s.causal ? "true" : "false";
  if (key == "block") return fmt::format("{}", s.block);
  if (key == "window") return fmt::format("{}", s.window);
  if (key == "dilation") return fmt::format("{}", s.dilation);
  if (key == "stride") return fmt::format("{}", s.stride);
  if (key == "summary") return fmt::format("{}", s.summary);
  if (key == "num_patterns") return fmt::format("{}", s.num_patterns);
  if (key == "global_tokens") return format_global_tokens(s.global_tokens);
  if (key == "window_blocks") return fmt::format("{}", s.window_blocks);
  if (key == "global_blocks") return fmt::format("{}", s.global_blocks);
  if (key == "random_blocks") return fmt::format("{}", s.random_blocks);
  if (key == "seed") return fmt::format("{}", s.seed);
  if (key == "heads_mode") return factorised_heads_name(s.heads_mode);
  DENSE_FAIL("attention pattern: no value for key '{}'", key);
}

// Global's window is optional and has no value meaning "none" as a key, so it is written only when set.
bool written(const PatternSpec& s, const std::string& key) {
  return !(s.kind == PatternKind::Global && key == "window" && s.window < 0);
}
}  // namespace

std::map<std::string, std::string> pattern_key_values(const PatternSpec& s) {
  std::map<std::string, std::string> kv{{"kind", pattern_kind_name(s.kind)}};
  for (const auto& key : kind_info(s.kind).keys)
    if (written(s, key)) kv[key] = value_of(s, key);
  return kv;
}

std::string describe(const PatternSpec& s) {
  std::string out = fmt::format("kind={}", pattern_kind_name(s.kind));
  for (const auto& key : kind_info(s.kind).keys)
    if (written(s, key)) out += fmt::format(",{}={}", key, value_of(s, key));
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Building

namespace {

// Appends each row's columns in increasing order; columns outside [0, limit] (limit = i when causal, N - 1
// otherwise) are dropped, so every pattern writes its bidirectional form and gets the causal one for free.
class RowWriter {
 public:
  RowWriter(int64_t n, bool causal, int64_t reserve_per_row) : n_(n), causal_(causal) {
    g_.rows = g_.cols = n;
    g_.row_ptr.reserve(static_cast<size_t>(n) + 1);
    g_.row_ptr.push_back(0);
    if (reserve_per_row > 0) g_.col.reserve(static_cast<size_t>(std::min(reserve_per_row, n) * n));
  }
  void begin_row(int64_t i) { limit_ = causal_ ? i : n_ - 1; }
  void end_row() { g_.row_ptr.push_back(static_cast<int64_t>(g_.col.size())); }
  int64_t limit() const { return limit_; }
  // [lo, hi], inclusive.
  void range(int64_t lo, int64_t hi) {
    lo = std::max<int64_t>(lo, 0);
    hi = std::min(hi, limit_);
    if (lo > hi) return;
    const size_t at = g_.col.size();
    g_.col.resize(at + static_cast<size_t>(hi - lo + 1));
    std::iota(g_.col.begin() + static_cast<std::ptrdiff_t>(at), g_.col.end(), static_cast<int32_t>(lo));
  }
  // lo, lo + step, ... <= hi; lo >= 0.
  void progression(int64_t lo, int64_t hi, int64_t step) {
    hi = std::min(hi, limit_);
    for (int64_t j = lo; j <= hi; j += step) g_.col.push_back(static_cast<int32_t>(j));
  }
  CsrGraph take() { return std::move(g_); }

 private:
  int64_t n_;
  bool causal_;
  int64_t limit_ = 0;
  CsrGraph g_;
};

int64_t floor_mod(int64_t a, int64_t m) { return ((a % m) + m) % m; }

CsrGraph build_simple(const PatternSpec& s, int64_t n) {
  const int64_t b = s.block;
  switch (s.kind) {
    case PatternKind::Dense: {
      RowWriter w(n, s.causal, s.causal ? (n + 2) / 2 : n);  // fails at once, not halfway, when N² cannot fit
      for (int64_t i = 0; i < n; ++i) w.begin_row(i), w.range(0, n - 1), w.end_row();
      return w.take();
    }
    case PatternKind::SlidingWindow: {
      RowWriter w(n, s.causal, s.causal ? s.window + 1 : 2 * s.window + 1);
      for (int64_t i = 0; i < n; ++i) w.begin_row(i), w.range(i - s.window, i + s.window), w.end_row();
      return w.take();
    }
    case PatternKind::Dilated: {
      const int64_t d = s.dilation;
      RowWriter w(n, s.causal, s.causal ? s.window + 1 : 2 * s.window + 1);
      for (int64_t i = 0; i < n; ++i) {
        w.begin_row(i);
        w.progression(i - d * std::min(s.window, i / d), i + d * s.window, d);
        w.end_row();
      }
      return w.take();
    }
    case PatternKind::Dilated2D: {
      const int64_t d = s.dilation;
      RowWriter w(n, s.causal, (b + d - 1) / d);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t lo = i / b * b;
        w.begin_row(i);
        w.progression(lo + (i - lo) % d, std::min(lo + b, n) - 1, d);
        w.end_row();
      }
      return w.take();
    }
    case PatternKind::BlockLocal: {
      RowWriter w(n, s.causal, b);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t lo = i / b * b;
        w.begin_row(i), w.range(lo, std::min(lo + b, n) - 1), w.end_row();
      }
      return w.take();
    }
    case PatternKind::Global:
    case PatternKind::Longformer: {
      const std::vector<int64_t>& gt = s.global_tokens;  // sorted, distinct, < n
      std::vector<uint8_t> is_global(static_cast<size_t>(n), 0);
      for (int64_t t : gt) is_global[static_cast<size_t>(t)] = 1;
      RowWriter w(n, s.causal, 0);
      for (int64_t i = 0; i < n; ++i) {
        w.begin_row(i);
        if (is_global[static_cast<size_t>(i)]) {
          w.range(0, n - 1);
        } else if (s.window < 0) {
          for (size_t k = 0; k < gt.size() && gt[k] <= w.limit(); ++k) w.range(gt[k], gt[k]);
        } else {
          const int64_t lo = i - s.window, hi = i + s.window;
          size_t k = 0;
          for (; k < gt.size() && gt[k] < lo; ++k) w.range(gt[k], gt[k]);
          w.range(lo, hi);
          for (k = size_t(std::upper_bound(gt.begin(), gt.end(), hi) - gt.begin()); k < gt.size() && gt[k] <= w.limit();
               ++k)
            w.range(gt[k], gt[k]);
        }
        w.end_row();
      }
      return w.take();
    }
    default: DENSE_FAIL("attention pattern: build_simple called for kind={}", pattern_kind_name(s.kind));
  }
}

// --- BigBird ---

struct BigBirdGeometry {
  int64_t nb, hw, g, r;  // blocks, window half-width (-1: no window), global blocks, random blocks
  bool causal;
  uint64_t seed;
};

BigBirdGeometry bigbird_geometry(const PatternSpec& s, int64_t n) {
  const int64_t nb = (n + s.block - 1) / s.block;
  return {.nb = nb,
          .hw = s.window_blocks > 0 ? s.window_blocks / 2 : -1,
          .g = std::min(s.global_blocks, nb),
          .r = s.random_blocks,
          .causal = s.causal,
          .seed = s.seed};
}

std::vector<int64_t> random_blocks_of(const BigBirdGeometry& geo, int64_t head, int64_t row) {
  if (row < geo.g || geo.r == 0) return {};
  // The key blocks not covered by the global blocks [0, g) and the window, as two segments [lo, hi).
  const int64_t top = geo.causal ? row + 1 : geo.nb;
  int64_t lo1 = geo.g, hi1 = top, lo2 = top, hi2 = top;
  if (geo.hw >= 0) {
    hi1 = std::clamp(row - geo.hw, geo.g, top);
    lo2 = std::clamp(row + geo.hw + 1, geo.g, top);
  }
  const int64_t len1 = hi1 - lo1, m = len1 + (hi2 - lo2);
  const int64_t k = std::min(geo.r, m);
  // Floyd's sampling: k distinct indices in [0, m) from k draws, without touching all m candidates, so a
  // row costs O(k²) whatever nb is.
  PhiloxStream rng = PhiloxStream::with_stream(geo.seed, (static_cast<uint64_t>(head) << 32) | uint64_t(row));
  std::vector<int64_t> picked;
  picked.reserve(static_cast<size_t>(k));
  for (int64_t t = m - k; t < m; ++t) {
    int64_t x = static_cast<int64_t>(rng.below(static_cast<uint64_t>(t) + 1));
    if (std::find(picked.begin(), picked.end(), x) != picked.end()) x = t;
    picked.push_back(x);
  }
  for (int64_t& x : picked) x = x < len1 ? lo1 + x : lo2 + (x - len1);
  std::sort(picked.begin(), picked.end());
  return picked;
}

CsrGraph build_bigbird(const PatternSpec& s, int64_t n, int64_t head) {
  const BigBirdGeometry geo = bigbird_geometry(s, n);
  const int64_t b = s.block;
  RowWriter w(n, s.causal, 0);
  std::vector<int64_t> cols;
  for (int64_t bi = 0; bi < geo.nb; ++bi) {
    cols.clear();
    if (bi < geo.g) {
      cols.push_back(-1);  // global row: every key
    } else {
      for (int64_t bj = 0; bj < geo.g; ++bj) cols.push_back(bj);
      if (geo.hw >= 0)
        for (int64_t bj = std::max<int64_t>(0, bi - geo.hw); bj <= std::min(geo.nb - 1, bi + geo.hw); ++bj)
          cols.push_back(bj);
      for (int64_t bj : random_blocks_of(geo, head, bi)) cols.push_back(bj);
      std::sort(cols.begin(), cols.end());
      cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
    }
    for (int64_t i = bi * b; i < std::min(n, (bi + 1) * b); ++i) {
      w.begin_row(i);
      for (int64_t bj : cols) {
        if (bj < 0) {
          w.range(0, n - 1);
          break;
        }
        if (bj * b > w.limit()) break;
        w.range(bj * b, std::min(n, (bj + 1) * b) - 1);
      }
      w.end_row();
    }
  }
  return w.take();
}

// --- Sparse Transformer factorisations ---

enum class Component { Both, A1, A2 };

struct HeadVariant {
  Component component;
  int64_t summary_block;  // fixed: v; 0 otherwise
  auto operator<=>(const HeadVariant&) const = default;
};

HeadVariant variant_of(const PatternSpec& s, int64_t head, int64_t layer) {
  const bool fixed = s.kind == PatternKind::Fixed;
  switch (s.heads_mode) {
    case FactorisedHeads::Merged: return {Component::Both, fixed ? head % s.num_patterns : 0};
    case FactorisedHeads::Multihead:
      if (head % 2 == 0) return {Component::A1, 0};
      return {Component::A2, fixed ? (head / 2) % s.num_patterns : 0};
    case FactorisedHeads::Interleaved:
      if (layer % 2 == 0) return {Component::A1, 0};
      return {Component::A2, fixed ? head % s.num_patterns : 0};
  }
  DENSE_FAIL("attention pattern: unknown heads_mode {}", static_cast<int>(s.heads_mode));
}

CsrGraph build_strided(const PatternSpec& s, int64_t n, Component part) {
  const int64_t l = s.stride;
  RowWriter w(n, s.causal, 0);
  for (int64_t i = 0; i < n; ++i) {
    w.begin_row(i);
    // A1 = [lo, hi]; the paper's causal A1 reaches back l positions, the bidirectional one l - 1 each way.
    const int64_t lo = s.causal ? i - l : i - l + 1, hi = s.causal ? i : i + l - 1;
    const int64_t phase = i % l;
    if (part == Component::A1) {
      w.range(lo, hi);
    } else if (part == Component::A2) {
      w.progression(phase, n - 1, l);
    } else {
      w.progression(phase, lo - 1, l);
      w.range(lo, hi);
      w.progression(hi + 1 + floor_mod(phase - (hi + 1), l), n - 1, l);
    }
    w.end_row();
  }
  return w.take();
}

CsrGraph build_fixed(const PatternSpec& s, int64_t n, HeadVariant variant) {
  const int64_t l = s.stride, c = s.summary;
  const int64_t s_lo = l - (variant.summary_block + 1) * c;  // summary columns: offsets [s_lo, s_lo + c) of a block
  RowWriter w(n, s.causal, 0);
  const auto summaries = [&](int64_t first_block, int64_t end_block) {
    for (int64_t k = first_block; k < end_block && k * l + s_lo <= w.limit(); ++k)
      w.range(k * l + s_lo, k * l + s_lo + c - 1);
  };
  const int64_t blocks = (n + l - 1) / l;
  for (int64_t i = 0; i < n; ++i) {
    w.begin_row(i);
    const int64_t own = i / l;
    if (variant.component == Component::A2) {
      summaries(0, blocks);
    } else {
      if (variant.component == Component::Both) summaries(0, own);
      w.range(own * l, std::min(n, own * l + l) - 1);
      if (variant.component == Component::Both) summaries(own + 1, blocks);
    }
    w.end_row();
  }
  return w.take();
}

CsrGraph build_factorised(const PatternSpec& s, int64_t n, HeadVariant v) {
  return s.kind == PatternKind::Strided ? build_strided(s, n, v.component) : build_fixed(s, n, v);
}

int64_t block_extent(int64_t b, int64_t block, int64_t n) { return std::min(block, n - b * block); }

}  // namespace

std::span<const uint8_t> AttentionPattern::layout_of(int64_t head) const {
  const size_t per = static_cast<size_t>(blocks * blocks);
  const size_t index = shared_across_heads ? 0 : static_cast<size_t>(head);
  return std::span<const uint8_t>(layout).subspan(index * per, per);
}

std::vector<uint8_t> AttentionPattern::layout_all_heads() const {
  if (!shared_across_heads) return layout;
  std::vector<uint8_t> out;
  out.reserve(layout.size() * static_cast<size_t>(heads));
  for (int64_t h = 0; h < heads; ++h) out.insert(out.end(), layout.begin(), layout.end());
  return out;
}

AttentionPattern build_pattern(const PatternSpec& spec_in, int64_t seq_len, int64_t heads, int64_t layer_index) {
  const std::string where = fmt::format("attention pattern {}", pattern_kind_name(spec_in.kind));
  PatternSpec s = spec_in;
  std::sort(s.global_tokens.begin(), s.global_tokens.end());
  s.global_tokens.erase(std::unique(s.global_tokens.begin(), s.global_tokens.end()), s.global_tokens.end());
  validate_pattern_spec(s, where);
  DENSE_CHECK(seq_len >= 1 && seq_len <= INT32_MAX, "{}: seq_len must be in [1, 2^31 - 1] (got {})", where, seq_len);
  DENSE_CHECK(heads >= 1, "{}: heads must be >= 1 (got {})", where, heads);
  DENSE_CHECK(layer_index >= 0, "{}: layer index must be >= 0 (got {})", where, layer_index);
  if (s.kind == PatternKind::Global || s.kind == PatternKind::Longformer)
    DENSE_CHECK(s.global_tokens.back() < seq_len, "{}: global_tokens has {}, outside the sequence [0, seq_len = {})",
                where, s.global_tokens.back(), seq_len);

  AttentionPattern p;
  p.spec = s;
  p.seq_len = seq_len;
  p.heads = heads;
  p.layer_index = layer_index;
  p.block = s.block;
  p.blocks = (seq_len + s.block - 1) / s.block;

  if (s.kind == PatternKind::BigBird) {
    p.shared_across_heads = heads == 1 || s.random_blocks == 0;
    for (int64_t h = 0; h < (p.shared_across_heads ? 1 : heads); ++h) p.graphs.push_back(build_bigbird(s, seq_len, h));
  } else if (uses_heads_mode(s.kind)) {
    // Heads with the same variant share one build.
    std::map<HeadVariant, size_t> built;
    std::vector<CsrGraph> distinct;
    std::vector<size_t> of_head;
    for (int64_t h = 0; h < heads; ++h) {
      const HeadVariant v = variant_of(s, h, layer_index);
      auto it = built.find(v);
      if (it == built.end()) {
        it = built.emplace(v, distinct.size()).first;
        distinct.push_back(build_factorised(s, seq_len, v));
      }
      of_head.push_back(it->second);
    }
    p.shared_across_heads = distinct.size() == 1;
    if (p.shared_across_heads) {
      p.graphs = std::move(distinct);
    } else {
      for (size_t index : of_head) p.graphs.push_back(distinct[index]);
    }
  } else {
    p.shared_across_heads = true;
    p.graphs.push_back(build_simple(s, seq_len));
  }

  p.exact_blocks = true;
  p.layout.reserve(p.graphs.size() * static_cast<size_t>(p.blocks * p.blocks));
  for (const CsrGraph& g : p.graphs) {
    const std::vector<uint8_t> l = layout_from_graph(g, p.block);
    p.exact_blocks = p.exact_blocks && layout_is_exact(g, l, p.block);
    p.layout.insert(p.layout.end(), l.begin(), l.end());
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Layouts

std::vector<uint8_t> layout_from_graph(const CsrGraph& g, int64_t block) {
  DENSE_CHECK(block >= 1, "block layout: block must be >= 1 (got {})", block);
  DENSE_CHECK(g.rows == g.cols, "block layout: the graph is {} x {}, expected square", g.rows, g.cols);
  const int64_t nb = (g.rows + block - 1) / block;
  std::vector<uint8_t> layout(static_cast<size_t>(nb * nb), 0);
  for (int64_t i = 0; i < g.rows; ++i) {
    uint8_t* row = layout.data() + (i / block) * nb;
    // Rows are sorted: one division per block touched, then comparisons to the block's end.
    for (int64_t p = g.row_ptr[i], end = g.row_ptr[i + 1]; p < end;) {
      const int64_t bj = g.col[p] / block, next = (bj + 1) * block;
      row[bj] = 1;
      while (p < end && g.col[p] < next) ++p;
    }
  }
  return layout;
}

bool layout_is_exact(const CsrGraph& g, std::span<const uint8_t> layout, int64_t block) {
  const int64_t n = g.rows, nb = (n + block - 1) / block;
  DENSE_CHECK(int64_t(layout.size()) == nb * nb, "block layout: {} entries, expected {} x {} blocks", layout.size(), nb,
              nb);
  // graph ⊆ layout, so the set blocks are all full exactly when their areas add up to nnz.
  int64_t area = 0;
  for (int64_t bi = 0; bi < nb; ++bi)
    for (int64_t bj = 0; bj < nb; ++bj)
      if (layout[bi * nb + bj]) area += block_extent(bi, block, n) * block_extent(bj, block, n);
  return area == g.nnz();
}

CsrGraph graph_from_layout(std::span<const uint8_t> layout, int64_t n, int64_t block, const CsrGraph* mask) {
  DENSE_CHECK(block >= 1 && n >= 0 && n <= INT32_MAX, "block layout: bad block {} or length {}", block, n);
  const int64_t nb = (n + block - 1) / block;
  DENSE_CHECK(int64_t(layout.size()) == nb * nb, "block layout: {} entries, expected {} x {} blocks for N = {}",
              layout.size(), nb, nb, n);
  if (mask)
    DENSE_CHECK(mask->rows == n && mask->cols == n, "block layout: in-block mask is {} x {}, expected {} x {}",
                mask->rows, mask->cols, n, n);
  CsrGraph g;
  g.rows = g.cols = n;
  g.row_ptr.reserve(static_cast<size_t>(n) + 1);
  g.row_ptr.push_back(0);
  std::vector<int64_t> set;
  for (int64_t bi = 0; bi < nb; ++bi) {
    const uint8_t* row = layout.data() + bi * nb;
    set.clear();
    for (int64_t bj = 0; bj < nb; ++bj)
      if (row[bj]) set.push_back(bj);
    for (int64_t i = bi * block; i < std::min(n, (bi + 1) * block); ++i) {
      if (mask) {
        for (int64_t p = mask->row_ptr[i], end = mask->row_ptr[i + 1]; p < end;) {
          const int64_t bj = mask->col[p] / block, next = (bj + 1) * block;
          const int64_t first = p;
          while (p < end && mask->col[p] < next) ++p;
          if (row[bj]) g.col.insert(g.col.end(), mask->col.begin() + first, mask->col.begin() + p);
        }
      } else {
        for (int64_t bj : set)
          for (int64_t j = bj * block; j < std::min(n, (bj + 1) * block); ++j) g.col.push_back(static_cast<int32_t>(j));
      }
      g.row_ptr.push_back(static_cast<int64_t>(g.col.size()));
    }
  }
  return g;
}

CsrGraph expand_layout(const AttentionPattern& p, int64_t head) {
  DENSE_CHECK(head >= 0 && head < p.heads, "attention pattern: head {} outside [0, {})", head, p.heads);
  return graph_from_layout(p.layout_of(head), p.seq_len, p.block, p.exact_blocks ? nullptr : &p.graph(head));
}

std::vector<int64_t> bigbird_random_blocks(const PatternSpec& s, int64_t seq_len, int64_t head, int64_t block_row) {
  DENSE_CHECK(s.kind == PatternKind::BigBird, "bigbird_random_blocks: the spec is kind={}", pattern_kind_name(s.kind));
  validate_pattern_spec(s, "bigbird_random_blocks");
  DENSE_CHECK(seq_len >= 1 && seq_len <= INT32_MAX, "bigbird_random_blocks: seq_len {} outside [1, 2^31 - 1]", seq_len);
  const BigBirdGeometry geo = bigbird_geometry(s, seq_len);
  DENSE_CHECK(block_row >= 0 && block_row < geo.nb && head >= 0,
              "bigbird_random_blocks: block row {} (of {}) or head {} out of range", block_row, geo.nb, head);
  return random_blocks_of(geo, head, block_row);
}

// ---------------------------------------------------------------------------------------------------------
// Summaries

PatternSummary summarize_head(const AttentionPattern& p, int64_t head) {
  DENSE_CHECK(head >= 0 && head < p.heads, "attention pattern: head {} outside [0, {})", head, p.heads);
  const CsrGraph& g = p.graph(head);
  PatternSummary s;
  s.heads = 1;
  s.nnz = g.nnz();
  s.min_degree = std::numeric_limits<int64_t>::max();
  for (int64_t i = 0; i < g.rows; ++i) {
    const int64_t d = g.degree(i);
    s.min_degree = std::min(s.min_degree, d);
    s.max_degree = std::max(s.max_degree, d);
    s.empty_rows += d == 0;
  }
  if (g.rows == 0) s.min_degree = 0;
  s.mean_degree = g.rows ? double(s.nnz) / double(g.rows) : 0.0;
  s.density = g.rows ? double(s.nnz) / (double(g.rows) * double(g.rows)) : 0.0;
  for (uint8_t b : p.layout_of(head)) s.blocks_set += b != 0;
  s.blocks_total = p.blocks * p.blocks;
  return s;
}

PatternSummary summarize(const AttentionPattern& p) {
  PatternSummary total;
  total.min_degree = std::numeric_limits<int64_t>::max();
  const int64_t distinct = p.shared_across_heads ? 1 : p.heads;
  const int64_t weight = p.shared_across_heads ? p.heads : 1;
  for (int64_t h = 0; h < distinct; ++h) {
    const PatternSummary s = summarize_head(p, h);
    total.heads += weight;
    total.nnz += weight * s.nnz;
    total.min_degree = std::min(total.min_degree, s.min_degree);
    total.max_degree = std::max(total.max_degree, s.max_degree);
    total.empty_rows += weight * s.empty_rows;
    total.blocks_set += weight * s.blocks_set;
    total.blocks_total += weight * s.blocks_total;
  }
  const double cells = double(total.heads) * double(p.seq_len) * double(p.seq_len);
  total.density = cells > 0 ? double(total.nnz) / cells : 0.0;
  total.mean_degree = total.heads ? double(total.nnz) / (double(total.heads) * double(p.seq_len)) : 0.0;
  return total;
}

}  // namespace dense::nn
