#include "data_prep/lra_listops.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <unordered_set>

#include "core/error.h"
#include "core/file_io.h"
#include "data/tsv.h"

namespace dense::data::lra {

namespace {

constexpr double kValueP = 0.25;
// listops.py OPERATORS order: MIN, MAX, MED, SUM_MOD.
constexpr std::array<uint8_t, 4> kOperators = {kListOpsMin, kListOpsMax, kListOpsMed, kListOpsSm};
constexpr std::array<std::string_view, kListOpsVocabSize> kTokenText = {
    "[PAD]", "[MAX", "[MIN", "[MED", "[SM", "]", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[CLS]"};
constexpr int kMaxRenderDepth = 2000;

struct TreeGenerator {
  PhiloxStream& rng;
  const ListOpsConfig& config;
  std::vector<uint8_t>& out;
  size_t limit;  // abandon at this many tokens (SIZE_MAX: never)

  bool run(int depth) {
    const double r = depth < config.max_depth ? rng.uniform() : 1.0;
    if (r > kValueP) {
      out.push_back(uint8_t(kListOpsDigit0 + rng.below(10)));
      return out.size() < limit;
    }
    const size_t op_at = out.size();
    out.push_back(kListOpsPad);  // the operator is drawn after the children (listops.py order)
    const int64_t n = rng.randint(2, config.max_args);
    for (int64_t k = 0; k < n; ++k)
      if (!run(depth + 1)) return false;
    out[op_at] = kOperators[rng.below(kOperators.size())];
    out.push_back(kListOpsEnd);
    return out.size() < limit;
  }
};

int32_t apply(uint8_t op, std::vector<int32_t>& args) {
  switch (op) {
    case kListOpsMin: return *std::min_element(args.begin(), args.end());
    case kListOpsMax: return *std::max_element(args.begin(), args.end());
    case kListOpsMed: {
      // int(np.median(args)): the mean of the two middle values for an even count, truncated.
      std::sort(args.begin(), args.end());
      const size_t n = args.size();
      return n % 2 ? args[n / 2] : (args[n / 2 - 1] + args[n / 2]) / 2;
    }
    case kListOpsSm: {
      int64_t s = 0;
      for (int32_t a : args) s += a;
      return int32_t(s % 10);
    }
    default: DENSE_FAIL("ListOps: token {} is not an operator", int(op));
  }
}

// Renders the node starting at tokens[pos]; returns the position after it.
size_t render_node(std::span<const uint8_t> t, size_t pos, int depth, std::string& out) {
  if (pos >= t.size()) DENSE_FAIL("ListOps: expression ends early (position {})", pos);
  if (depth > kMaxRenderDepth) DENSE_FAIL("ListOps: expression nested deeper than {}", kMaxRenderDepth);
  const uint8_t tok = t[pos];
  if (listops_is_digit(tok)) {
    out += kTokenText[tok];
    return pos + 1;
  }
  if (!listops_is_op(tok)) DENSE_FAIL("ListOps: unexpected token '{}' at position {}", kTokenText[tok], pos);
  // Count the children first: the rendering opens one parenthesis per child plus one.
  std::vector<std::string> children;
  size_t p = pos + 1;
  while (true) {
    if (p >= t.size()) DENSE_FAIL("ListOps: operator at position {} is not closed by ']'", pos);
    if (t[p] == kListOpsEnd) break;
    std::string child;
    p = render_node(t, p, depth + 1, child);
    children.push_back(std::move(child));
  }
  if (children.empty()) DENSE_FAIL("ListOps: operator at position {} has no arguments", pos);
  for (size_t i = 0; i <= children.size(); ++i) out += "( ";
  out += kTokenText[tok];
  for (const auto& c : children) {
    out += ' ';
    out += c;
    out += " )";
  }
  out += " ] )";
  return p + 1;
}

}  // namespace

std::string_view listops_token_text(uint8_t id) {
  DENSE_CHECK(id < kListOpsVocabSize, "ListOps token id {} outside the vocabulary of {}", int(id), kListOpsVocabSize);
  return kTokenText[id];
}

uint8_t listops_token_id(std::string_view text) {
  for (size_t i = 0; i < kTokenText.size(); ++i)
    if (kTokenText[i] == text) return uint8_t(i);
  DENSE_FAIL("unknown ListOps token '{}'", text);
}

bool listops_generate_tree(PhiloxStream& rng, const ListOpsConfig& config, std::vector<uint8_t>& tokens) {
  tokens.clear();
  TreeGenerator g{rng, config, tokens, config.max_length > 0 ? size_t(config.max_length) : SIZE_MAX};
  return g.run(1);
}

ListOpsDataset generate_listops(const ListOpsConfig& config) {
  DENSE_CHECK(config.max_args >= 2 && config.max_depth >= 1, "ListOps: max_args {} must be >= 2, max_depth {} >= 1",
              config.max_args, config.max_depth);
  DENSE_CHECK(config.min_length + 1 < config.max_length, "ListOps: no length strictly between {} and {}",
              config.min_length, config.max_length);
  DENSE_CHECK(config.num_train >= 0 && config.num_val >= 0 && config.num_test >= 0, "ListOps: negative split size");
  ListOpsDataset ds;
  const int64_t wanted = config.num_train + config.num_val + config.num_test;
  const int64_t max_candidates =
      config.max_candidates > 0 ? config.max_candidates : std::max<int64_t>(wanted, 1) * 10000;
  std::unordered_set<std::string> seen;
  seen.reserve(size_t(wanted) * 2);
  int64_t kept = 0;
  constexpr int64_t kBatch = 1024;
  std::vector<std::vector<uint8_t>> batch(kBatch);
  while (kept < wanted) {
    DENSE_CHECK(ds.candidates < max_candidates, "ListOps: only {} of {} trees after {} candidates (lengths {}..{})",
                kept, wanted, ds.candidates, config.min_length, config.max_length);
    const int64_t base = ds.candidates;
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t k = 0; k < kBatch; ++k) {
      PhiloxStream rng = PhiloxStream::for_example(config.seed, uint64_t(base + k));
      auto& t = batch[size_t(k)];
      if (!listops_generate_tree(rng, config, t) || int64_t(t.size()) <= config.min_length) t.clear();
    }
    for (int64_t k = 0; k < kBatch && kept < wanted; ++k) {
      ++ds.candidates;
      auto& t = batch[size_t(k)];
      if (t.empty()) continue;
      if (!seen.emplace(t.begin(), t.end()).second) {
        ++ds.duplicates;
        continue;
      }
      ListOpsExample ex;
      ex.target = listops_evaluate(t);
      ex.tokens = std::move(t);
      auto& split = kept < config.num_train ? ds.train : kept < config.num_train + config.num_val ? ds.val : ds.test;
      split.push_back(std::move(ex));
      ++kept;
    }
  }
  return ds;
}

int32_t listops_evaluate(std::span<const uint8_t> tokens) {
  struct Frame {
    uint8_t op;
    std::vector<int32_t> args;
  };
  std::vector<Frame> stack;
  bool have_result = false;
  int32_t result = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const uint8_t t = tokens[i];
    if (have_result) DENSE_FAIL("ListOps: tokens after the end of the expression (position {})", i);
    if (listops_is_op(t)) {
      stack.push_back({t, {}});
    } else if (listops_is_digit(t) || t == kListOpsEnd) {
      int32_t v;
      if (t == kListOpsEnd) {
        if (stack.empty()) DENSE_FAIL("ListOps: ']' without an operator at position {}", i);
        if (stack.back().args.empty()) DENSE_FAIL("ListOps: operator closed without arguments at position {}", i);
        v = apply(stack.back().op, stack.back().args);
        stack.pop_back();
      } else {
        v = int32_t(t - kListOpsDigit0);
      }
      if (stack.empty()) {
        have_result = true;
        result = v;
      } else {
        stack.back().args.push_back(v);
      }
    } else {
      DENSE_FAIL("ListOps: token '{}' at position {} cannot appear in an expression",
                 t < kListOpsVocabSize ? kTokenText[t] : std::string_view("?"), i);
    }
  }
  if (!stack.empty()) DENSE_FAIL("ListOps: {} operator(s) not closed by ']'", stack.size());
  if (!have_result) DENSE_FAIL("ListOps: empty expression");
  return result;
}

std::string listops_render(std::span<const uint8_t> tokens) {
  std::string out;
  const size_t end = render_node(tokens, 0, 0, out);
  if (end != tokens.size()) DENSE_FAIL("ListOps: tokens after the end of the expression (position {})", end);
  return out;
}

std::vector<uint8_t> listops_tokenize(std::string_view source, std::string_view where) {
  std::vector<uint8_t> out;
  size_t i = 0;
  while (i < source.size()) {
    while (i < source.size() && (source[i] == ' ' || source[i] == '\t' || source[i] == '\n' || source[i] == '\r')) ++i;
    size_t j = i;
    while (j < source.size() && !(source[j] == ' ' || source[j] == '\t' || source[j] == '\n' || source[j] == '\r')) ++j;
    if (j > i) {
      // Drop the "(" and ")" characters (as the LRA conversion does); what is left must be a token.
      std::string tok;
      for (size_t k = i; k < j; ++k)
        if (source[k] != '(' && source[k] != ')') tok += source[k];
      if (!tok.empty()) {
        bool ok = false;
        for (uint8_t id = kListOpsMax; id < kListOpsCls; ++id)
          if (kTokenText[id] == tok) {
            out.push_back(id);
            ok = true;
            break;
          }
        if (!ok) DENSE_FAIL("{}: unknown ListOps token '{}'", where, tok);
      }
    }
    i = j;
  }
  return out;
}

void write_listops_tsv(const std::filesystem::path& path, std::span<const ListOpsExample> examples) {
  // Streamed (the LRA training split is hundreds of MB) through a buffer of about 1 MiB.
  constexpr size_t kFlushBytes = size_t(1) << 20;
  AtomicFileWriter out(path);
  std::string buf = "Source\tTarget\n";
  for (const auto& e : examples) {
    buf += listops_render(e.tokens);
    buf += '\t';
    buf += std::to_string(e.target);
    buf += '\n';
    if (buf.size() >= kFlushBytes) {
      out.write(buf);
      buf.clear();
    }
  }
  out.write(buf);
  out.commit();
}

std::vector<ListOpsExample> read_listops_tsv(const std::filesystem::path& path, bool check_targets) {
  TsvOptions opt;
  opt.expected_columns = 2;
  TsvReader reader(path, opt);
  TsvRow row;
  if (!reader.next(row)) DENSE_FAIL("{}: empty file, expected the header 'Source\\tTarget'", reader.name());
  if (row[0] != "Source" || row[1] != "Target")
    reader.fail(row.line_number, fmt::format("header is '{}\\t{}', expected 'Source\\tTarget'", row[0], row[1]));
  std::vector<ListOpsExample> out;
  while (reader.next(row)) {
    ListOpsExample ex;
    const std::string where = fmt::format("{}:{}", reader.name(), row.line_number);
    ex.tokens = listops_tokenize(row[0], where);
    const std::string_view tv = row[1];
    int v = -1;
    const auto [end, ec] = std::from_chars(tv.data(), tv.data() + tv.size(), v);
    if (ec != std::errc() || end != tv.data() + tv.size() || v < 0 || v > 9)
      reader.fail(row.line_number, fmt::format("target '{}' is not a digit 0..9", tv));
    ex.target = v;
    if (check_targets) {
      int32_t value = 0;
      try {
        value = listops_evaluate(ex.tokens);
      } catch (const Error& e) {
        reader.fail(row.line_number, e.message());
      }
      if (value != v)
        reader.fail(row.line_number, fmt::format("target {} but the expression evaluates to {}", v, value));
    }
    out.push_back(std::move(ex));
  }
  return out;
}

TokenSet encode_listops(std::span<const ListOpsExample> examples, const ListOpsEncodeOptions& options) {
  const int64_t extra = options.add_cls ? 1 : 0;
  int64_t seq_len = options.seq_len;
  if (options.pad_to_split_max) {
    seq_len = extra;
    for (const auto& e : examples) seq_len = std::max(seq_len, int64_t(e.tokens.size()) + extra);
  }
  TokenSet t;
  t.seq_len = seq_len;
  t.ids.reserve(examples.size() * size_t(seq_len));
  t.mask.reserve(examples.size() * size_t(seq_len));
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    DENSE_CHECK(int64_t(e.tokens.size()) + extra <= seq_len,
                "ListOps example {} has {} tokens (+{} CLS), over the "
                "sequence length {}",
                i, e.tokens.size(), extra, seq_len);
    if (options.add_cls) {
      t.ids.push_back(kListOpsCls);
      t.mask.push_back(1);
    }
    for (uint8_t tok : e.tokens) {
      t.ids.push_back(tok);
      t.mask.push_back(1);
    }
    for (int64_t k = int64_t(e.tokens.size()) + extra; k < seq_len; ++k) {
      t.ids.push_back(kListOpsPad);
      t.mask.push_back(0);
    }
    t.labels.push_back(e.target);
  }
  return t;
}

}  // namespace dense::data::lra
