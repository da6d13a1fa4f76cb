#include "config/train_config_yaml.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>
#include <variant>

#include "core/edit_distance.h"
#include "core/error.h"
#include "data/vocab.h"

namespace dense::train {

namespace {

namespace fs = std::filesystem;
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------------
// The schema: one row per key. Sections are the prefixes of the key paths.

using Field = std::variant<int64_t& (*)(TrainConfig&), uint64_t& (*)(TrainConfig&), int& (*)(TrainConfig&),
                           double& (*)(TrainConfig&), bool& (*)(TrainConfig&), std::string& (*)(TrainConfig&),
                           std::array<double, 2>& (*)(TrainConfig&), models::ModelConfig& (*)(TrainConfig&)>;

// A closed or open interval for numbers (each element of a list).
struct Limit {
  double lo = -kInf;
  double hi = kInf;
  bool lo_open = false;
  bool hi_open = false;
};
constexpr Limit at_least(double lo) { return {lo, kInf, false, false}; }
constexpr Limit positive() { return {0.0, kInf, true, false}; }
constexpr Limit unit() { return {0.0, 1.0, false, false}; }
constexpr Limit unit_open() { return {0.0, 1.0, false, true}; }
constexpr Limit at_most(double hi) { return {-kInf, hi, false, false}; }

struct Key {
  std::string path;
  Field field;
  std::string doc;
  Limit limit{};
  std::vector<std::string> choices{};
};

struct Section {
  std::string path;  // "" is the top level
  std::string doc;
};

// "training.optimizer.learning_rate", and a getter for that member.
#define DENSE_KEY(member) \
#member, +[](TrainConfig & c) -> auto& { return c.member; }

const std::vector<Section>& sections() {
  static const std::vector<Section> table = {
      {"", "The run's name and folder."},
      {"model",
       "The model (`docs/model-config.md`): `model_type` and the `ModelConfig` keys, e.g. "
       "`include: models/danet_bert_large_seq512.json`. Defaults shown are DANet's; `model_type: bert` changes "
       "some (heads 16, intermediate_size 4096, dropouts 0.1, classifier_bias true, 24 layers)."},
      {"data", "Pretraining shards (`dense-prep pretrain`) and load-time masking (docs/model.md §3)."},
      {"training", "Steps, batching, precision and devices (docs/model.md §4.3–4.5)."},
      {"training.optimizer", "AdamW (docs/model.md §4.1: decoupled weight decay, bias correction)."},
      {"training.schedule", "The learning rate, set before every optimizer step (docs/model.md §4.2)."},
      {"checkpoint", "Checkpoints and their pruning (docs/model.md §4.6)."},
      {"logging", "Metrics, TensorBoard and the console."},
      {"parallel", "Data-parallel training over MPI or NCCL (docs/distributed.md)."},
  };
  return table;
}

const std::vector<Key>& schema() {
  static const std::vector<Key> table = {
      {DENSE_KEY(name), "run name: the default run folder is `runs/<name>`"},
      {DENSE_KEY(run_dir), "run folder (resolved config, metrics, checkpoints); empty: `runs/<name>`"},
      {DENSE_KEY(model), "the model section"},

      {DENSE_KEY(data.train), "training shards: a folder (every `*.hdf5` in it) or one shard file"},
      {DENSE_KEY(data.validation), "validation shards, the same way; empty: no evaluation"},
      {DENSE_KEY(data.format),
       "shard format; `auto` reads the shards' `format` attribute",
       {},
       {"auto", "packed", "bert"}},
      {DENSE_KEY(data.vocab), "vocab.txt; when set, the shards' `vocab_hash` must be its sha256"},
      {DENSE_KEY(data.seq_len), "sequence length N; 0: the shards' length (otherwise they must have it)", at_least(0)},
      {DENSE_KEY(data.mlm_probability), "packed shards: fraction of tokens selected for MLM (rho)", unit()},
      {DENSE_KEY(data.mask_token_prob), "packed shards: selected tokens replaced by [MASK]", unit()},
      {DENSE_KEY(data.random_token_prob),
       "packed shards: selected tokens replaced by a random token; negative: (1 - mask_token_prob) / 2", at_most(1.0)},
      {DENSE_KEY(data.mask_special_tokens), "packed shards: [CLS]/[SEP] may be selected (the reference does)"},
      {DENSE_KEY(data.shuffle), "shuffle shard order and rows every epoch (from training.seed)"},
      {DENSE_KEY(data.prefetch_batches), "batches prepared ahead by the loader thread", at_least(1)},
      {DENSE_KEY(data.mix_shards),
       "shards read together and drawn from in one permutation (a shuffle buffer across shards, this many in "
       "memory), so that every batch mixes the corpora and documents of several shards; 1: one shard at a time "
       "(the order of runs from before this key); fixed for a run (a resume with another value is refused)",
       at_least(1)},
      {DENSE_KEY(data.on_bad_shard),
       "a shard that fails its checksum when read mid-run (every shard's header, length and attributes are "
       "checked before step 1): `fail` saves a checkpoint at the current step and exits naming the shard; "
       "`skip` leaves the shard out of that epoch with a warning",
       {},
       {"fail", "skip"}},

      {DENSE_KEY(training.max_steps), "optimizer steps", at_least(1)},
      {DENSE_KEY(training.epochs),
       "fine-tuning with dense-eval: passes over the training split, best epoch on dev (0: training.max_steps "
       "steps)",
       at_least(0)},
      {DENSE_KEY(training.zero_init_pooler),
       "fine-tuning with dense-eval: zero the pooler's dense weight after loading --init-from (the paper's "
       "--zero_init_pooler, used for all its GLUE runs)"},
      {DENSE_KEY(training.global_batch), "sequences per optimizer step (all ranks, all accumulation steps)",
       at_least(1)},
      {DENSE_KEY(training.micro_batch),
       "sequences per forward/backward per rank; must divide global_batch; 0: global_batch / world size", at_least(0)},
      {DENSE_KEY(training.precision),
       "`bf16`: f32 master weights, no loss scaling; `f16`: dynamic loss scaling",
       {},
       {"f32", "bf16", "f16"}},
      {DENSE_KEY(training.loss_scale_init), "f16: initial loss scale (2^16)", positive()},
      {DENSE_KEY(training.loss_scale_window), "f16: overflow-free steps before the scale doubles", at_least(1)},
      {DENSE_KEY(training.loss_scale_hysteresis), "f16: overflows tolerated before the scale halves", at_least(1)},
      {DENSE_KEY(training.loss_scale_min), "f16: the scale never drops below this", positive()},
      {DENSE_KEY(training.max_nonfinite_steps), "abort after this many skipped (non-finite) steps in a row",
       at_least(0)},
      {DENSE_KEY(training.clip_grad_norm), "clip the global gradient L2 norm; 0: no clipping (the reference)",
       at_least(0)},
      {DENSE_KEY(training.seed), "seeds initialisation, shuffling, masking and dropout", at_least(0)},
      {DENSE_KEY(training.device), "`cpu`, `cuda` or `cuda:N`"},
      {DENSE_KEY(training.threads), "CPU threads; 0: `DENSE_NUM_THREADS` or all cores", at_least(0)},
      {DENSE_KEY(training.recompute), "activation checkpointing per layer (less memory, one more forward)"},
      {DENSE_KEY(training.eval_every), "steps between validation runs; 0: only at the end", at_least(0)},
      {DENSE_KEY(training.eval_batches), "validation batches per run; 0: the whole validation set", at_least(0)},

      {DENSE_KEY(training.optimizer.type),
       "`lamb` is accepted for completeness; no paper config uses it",
       {},
       {"adamw", "lamb"}},
      {DENSE_KEY(training.optimizer.learning_rate), "peak learning rate", at_least(0)},
      {DENSE_KEY(training.optimizer.betas), "(beta1, beta2); the paper uses (0.9, 0.9)", unit_open()},
      {DENSE_KEY(training.optimizer.eps), "added to sqrt(v); the paper uses 1e-16", positive()},
      {DENSE_KEY(training.optimizer.weight_decay), "decoupled weight decay (biases and norm gains excluded)",
       at_least(0)},
      {DENSE_KEY(training.optimizer.no_decay_embeddings),
       "embeddings (the tied word table included) get no weight decay"},
      {DENSE_KEY(training.optimizer.no_decay_pooler), "pooler parameters get no weight decay"},

      {DENSE_KEY(training.schedule.type),
       "`cyclic_poly` (the reference's \"cosine\"): x = (t mod C)/C, warmup (x/w)^warmup_degree, then "
       "(1 - (x-w)/(1-w))^degree, times learning_rate, plus lr_offset; `constant`: learning_rate + lr_offset; "
       "`linear`: warmup, then linear decay to lr_offset at max_steps; `cosine`: warmup, then half-cosine "
       "to lr_offset",
       {},
       {"cyclic_poly", "constant", "linear", "cosine"}},
      {DENSE_KEY(training.schedule.cycle_steps), "C of `cyclic_poly` (it restarts every C steps); 0: max_steps",
       at_least(0)},
      {DENSE_KEY(training.schedule.warmup_ratio),
       "w: warmup as a fraction of the cycle (`cyclic_poly`) or of max_steps (`linear`, `cosine`)", unit()},
      {DENSE_KEY(training.schedule.warmup_degree), "`cyclic_poly`: warmup exponent", at_least(0)},
      {DENSE_KEY(training.schedule.degree), "`cyclic_poly`: decay exponent (1: linear, 0: constant)", at_least(0)},
      {DENSE_KEY(training.schedule.lr_offset), "added to the scheduled rate (the rate at t = 0)", at_least(0)},

      {DENSE_KEY(checkpoint.dir), "checkpoint folder; empty: `<run_dir>/checkpoints`"},
      {DENSE_KEY(checkpoint.every_steps), "steps between checkpoints; 0: only at the end", at_least(0)},
      {DENSE_KEY(checkpoint.keep_last), "newest checkpoints kept; 0: all", at_least(0)},
      {DENSE_KEY(checkpoint.keep_every), "also keep checkpoints whose step is a multiple of this; 0: none",
       at_least(0)},

      {DENSE_KEY(logging.every_steps), "steps between metrics.jsonl records and progress lines", at_least(1)},
      {DENSE_KEY(logging.tensorboard), "TensorBoard event files under `<run_dir>/tensorboard`"},
      {DENSE_KEY(logging.progress), "a live progress line on stderr"},
      {DENSE_KEY(logging.level), "console log level", {}, {"trace", "debug", "info", "warn", "error"}},

      {DENSE_KEY(parallel.backend),
       "`auto`: MPI when started by mpirun/srun with several ranks, else one process; `mpi` (host tensors); "
       "`nccl` (GPU tensors, needs training.device cuda); `none`: one process, even under mpirun",
       {},
       {"auto", "none", "mpi", "nccl"}},
      {DENSE_KEY(parallel.bucket_mb), "gradient all-reduce bucket size (MiB): buckets start while backward runs",
       positive()},
      {DENSE_KEY(parallel.zero1),
       "ZeRO stage 1: each rank keeps the AdamW moments of 1/world of the parameters (reduce-scatter + "
       "all-gather instead of all-reduce); same weights as without"},
  };
  return table;
}

#undef DENSE_KEY

bool is_model(const Key& key) { return std::holds_alternative<models::ModelConfig& (*)(TrainConfig&)>(key.field); }

const Key* find_key(const std::string& path) {
  for (const auto& k : schema())
    if (k.path == path) return &k;
  return nullptr;
}

bool is_section(const std::string& path) {
  for (const auto& s : sections())
    if (!s.path.empty() && s.path == path) return true;
  return false;
}

const nlohmann::json& model_defaults() {
  static const nlohmann::json j = models::ModelConfig{}.to_json();
  return j;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

std::string last_component(const std::string& path) {
  const size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

std::string parent_path(const std::string& path) {
  const size_t dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}

// "; did you mean 'x'?": the closest known path, or a known path with the same last component (a key put in
// the wrong section); otherwise the keys known at that level.
std::string suggestion(const std::string& path) {
  const auto& known = train_config_keys();
  const std::string leaf = last_component(path);
  std::string best;
  size_t best_d = std::max<size_t>(2, leaf.size() / 3) + 1;
  for (const auto& k : known) {
    const size_t d = edit_distance(path, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  if (best.empty() && leaf.size() >= 5) {
    size_t best_leaf = 2;  // same leaf name, or one edit away, in another section
    for (const auto& k : known) {
      const size_t d = edit_distance(leaf, last_component(k));
      if (d < best_leaf || (d == best_leaf && !best.empty() && k.size() < best.size())) {
        best_leaf = d;
        best = k;
      }
    }
  }
  if (!best.empty()) return fmt::format("; did you mean '{}'?", best);
  const std::string parent = parent_path(path);
  std::vector<std::string> here;
  for (const auto& k : known)
    if (parent_path(k) == parent) here.push_back(last_component(k));
  if (here.empty()) return "";
  return fmt::format("; known keys {}: {}", parent.empty() ? "at the top level" : "in " + parent, join(here, ", "));
}

// ---------------------------------------------------------------------------------------------------
// A YAML tree that remembers where each value was written (file and line), so errors can name them after
// includes and overrides have been merged.

struct Value {
  enum class Kind { Null, Scalar, Seq, Map };
  Kind kind = Kind::Null;
  std::string text;                                    // Scalar
  bool quoted = false;                                 // a quoted, block or !!str scalar: always a string
  std::vector<Value> items;                            // Seq
  std::vector<std::pair<std::string, Value>> entries;  // Map, in file order
  std::string source;                                  // file name, or "override '...'"
  int line = 0;                                        // 1-based; 0: unknown (overrides)

  Value* find(const std::string& key) {
    for (auto& [k, v] : entries)
      if (k == key) return &v;
    return nullptr;
  }
};

std::string where(const Value& v) { return v.line > 0 ? fmt::format("{}:{}", v.source, v.line) : v.source; }

[[noreturn]] void fail_at(const Value& v, const std::string& path, const std::string& message) {
  throw Error(fmt::format("{}: {}: {}", where(v), path, message));
}

std::string describe(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Null: return "nothing (null)";
    case Value::Kind::Scalar: return v.quoted ? fmt::format("the string '{}'", v.text) : fmt::format("'{}'", v.text);
    case Value::Kind::Seq: return "a list";
    case Value::Kind::Map: return "a mapping";
  }
  return "?";
}

[[noreturn]] void type_error(const Value& v, const std::string& path, const std::string& expected) {
  fail_at(v, path, fmt::format("expected {}, got {}", expected, describe(v)));
}

[[noreturn]] void unknown_key(const Value& v, const std::string& path) {
  fail_at(v, path, "unknown key" + suggestion(path));
}

constexpr int kMaxDepth = 64;

Value from_yaml(const YAML::Node& node, const std::string& source, int line, int depth) {
  Value v;
  v.source = source;
  v.line = line;
  if (depth > kMaxDepth) throw Error(fmt::format("{}: nested deeper than {} levels", where(v), kMaxDepth));
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: v.kind = Value::Kind::Null; break;
    case YAML::NodeType::Scalar:
      v.kind = Value::Kind::Scalar;
      v.text = node.Scalar();
      v.quoted = node.Tag() != "?";
      break;
    case YAML::NodeType::Sequence:
      v.kind = Value::Kind::Seq;
      for (const auto& item : node) {
        const int item_line = item.Mark().line >= 0 && line > 0 ? item.Mark().line + 1 : line;
        v.items.push_back(from_yaml(item, source, item_line, depth + 1));
      }
      break;
    case YAML::NodeType::Map:
      v.kind = Value::Kind::Map;
      for (auto it = node.begin(); it != node.end(); ++it) {
        const int key_line = it->first.Mark().line >= 0 && line > 0 ? it->first.Mark().line + 1 : line;
        Value at;
        at.source = source;
        at.line = key_line;
        if (!it->first.IsScalar() || it->first.Scalar().empty())
          throw Error(fmt::format("{}: keys must be plain names, got a {}", where(at),
                                  it->first.IsNull() ? "null key" : "list or mapping as a key"));
        const std::string key = it->first.Scalar();
        for (const auto& [k, prev] : v.entries)
          if (k == key)
            throw Error(fmt::format("{}: duplicate key '{}' (first at line {})", where(at), key, prev.line));
        v.entries.emplace_back(key, from_yaml(it->second, source, key_line, depth + 1));
      }
      break;
  }
  return v;
}

// Line (1-based) of the first tab in a line's indentation, or 0.
int first_indent_tab(const std::string& text) {
  int line = 1;
  bool in_indent = true;
  for (const char ch : text) {
    if (ch == '\n') {
      ++line;
      in_indent = true;
    } else if (in_indent && ch == '\t') {
      return line;
    } else if (ch != ' ') {
      in_indent = false;
    }
  }
  return 0;
}

// Parses one YAML document into a Value (a mapping, or null when empty). `line_numbers`: record lines
// (files) or not (override values).
Value parse_yaml(const std::string& text, const std::string& source, bool line_numbers) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
    if (docs.size() > 1) {
      const int line = docs[1].Mark().line;
      throw Error(fmt::format("{}{}: more than one YAML document ('---'); a config is one mapping", source,
                              line >= 0 && line_numbers ? fmt::format(":{}", line + 1) : std::string()));
    }
    if (docs.empty()) {
      Value v;
      v.source = source;
      v.line = line_numbers ? 1 : 0;
      return v;
    }
    return from_yaml(docs[0], source, line_numbers ? std::max(docs[0].Mark().line, 0) + 1 : 0, 0);
  } catch (const YAML::Exception& e) {
    std::string hint;
    if (const int tab = first_indent_tab(text); tab > 0)
      hint = fmt::format(" (line {} indents with a tab; YAML indents with spaces)", tab);
    const bool has_line = e.mark.line >= 0 && line_numbers;
    throw Error(fmt::format("{}{}: invalid YAML{}: {}{}", source,
                            has_line ? fmt::format(":{}", e.mark.line + 1) : std::string(),
                            has_line ? fmt::format(" at column {}", e.mark.column + 1) : std::string(), e.msg, hint));
  }
}

// Deep merge: mappings merge key by key (src wins), anything else is replaced.
void merge(Value& dst, const Value& src) {
  if (dst.kind == Value::Kind::Map && src.kind == Value::Kind::Map) {
    for (const auto& [k, sv] : src.entries) {
      if (Value* d = dst.find(k))
        merge(*d, sv);
      else
        dst.entries.emplace_back(k, sv);
    }
  } else {
    dst = src;
  }
}

std::string read_file(const std::string& path, const std::string& what) {
  // An ifstream opens a folder and reads it as empty text, which would load as an all-defaults config.
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw Error(
        fmt::format("{}: '{}' is a folder; expected a YAML config file (e.g. configs/tiny.yaml, or the "
                    "config.yaml of a run folder)",
                    what, path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read '{}' ({})", what, path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void resolve_includes(Value& v, const fs::path& base_dir, std::vector<std::string>& stack);

Value load_yaml_file(const std::string& display, const fs::path& path, const std::string& what,
                     std::vector<std::string>& stack) {
  std::error_code ec;
  const std::string id = fs::weakly_canonical(path, ec).string();
  const std::string key = ec ? path.lexically_normal().string() : id;
  if (std::find(stack.begin(), stack.end(), key) != stack.end()) {
    std::vector<std::string> chain = stack;
    chain.push_back(key);
    throw Error(fmt::format("{}: include cycle: {}", what, join(chain, " -> ")));
  }
  Value v = parse_yaml(read_file(display, what), display, true);
  if (v.kind != Value::Kind::Map && v.kind != Value::Kind::Null)
    throw Error(fmt::format("{}: expected a mapping at the top level, got {}", where(v), describe(v)));
  if (v.kind == Value::Kind::Null) v.kind = Value::Kind::Map;
  stack.push_back(key);
  resolve_includes(v, path.parent_path(), stack);
  stack.pop_back();
  return v;
}

void resolve_includes(Value& v, const fs::path& base_dir, std::vector<std::string>& stack) {
  if (v.kind == Value::Kind::Seq) {
    for (auto& item : v.items) resolve_includes(item, base_dir, stack);
    return;
  }
  if (v.kind != Value::Kind::Map) return;
  for (auto& [k, child] : v.entries)
    if (k != "include") resolve_includes(child, base_dir, stack);
  const Value* inc = v.find("include");
  if (inc == nullptr) return;
  std::vector<const Value*> files;
  if (inc->kind == Value::Kind::Scalar) {
    files.push_back(inc);
  } else if (inc->kind == Value::Kind::Seq) {
    for (const auto& item : inc->items) {
      if (item.kind != Value::Kind::Scalar) type_error(item, "include", "a file name");
      files.push_back(&item);
    }
  } else {
    type_error(*inc, "include", "a file name or a list of file names");
  }
  Value merged;
  merged.kind = Value::Kind::Map;
  merged.source = v.source;
  merged.line = v.line;
  for (const Value* f : files) {
    if (f->text.empty()) type_error(*f, "include", "a file name");
    const fs::path p = (base_dir / f->text).lexically_normal();
    merge(merged, load_yaml_file(p.string(), p, where(*f) + ": include", stack));
  }
  Value own = v;
  own.entries.erase(
      std::remove_if(own.entries.begin(), own.entries.end(), [](const auto& e) { return e.first == "include"; }),
      own.entries.end());
  merge(merged, own);
  v = std::move(merged);
}

bool is_known_path(const std::string& path) {
  const auto& keys = train_config_keys();
  return std::find(keys.begin(), keys.end(), path) != keys.end();
}

void apply_override(Value& root, const std::string& text) {
  const std::string source = fmt::format("override '{}'", text);
  const size_t eq = text.find('=');
  if (eq == std::string::npos) throw Error(fmt::format("{}: expected key.path=value", source));
  std::string path = text.substr(0, eq);
  path.erase(0, path.find_first_not_of(" \t"));
  path.erase(path.find_last_not_of(" \t") + 1);
  if (path.empty()) throw Error(fmt::format("{}: expected key.path=value", source));
  if (!is_known_path(path)) throw Error(fmt::format("{}: {}: unknown key{}", source, path, suggestion(path)));
  const Value value = parse_yaml(text.substr(eq + 1), source, false);
  Value* cur = &root;
  const auto parts = split(path, '.');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    Value* next = cur->find(parts[i]);
    if (next == nullptr) {
      Value section;
      section.source = source;
      cur->entries.emplace_back(parts[i], section);
      next = &cur->entries.back().second;
    }
    if (next->kind != Value::Kind::Map) {
      next->kind = Value::Kind::Map;
      next->source = source;
      next->line = 0;
      next->items.clear();
      next->text.clear();
    }
    cur = next;
  }
  if (Value* existing = cur->find(parts.back()))
    merge(*existing, value);
  else
    cur->entries.emplace_back(parts.back(), value);
}

// ---------------------------------------------------------------------------------------------------
// Scalars

// [-+]?[0-9]+
bool is_int_text(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// YAML 1.2 core schema floats (and ints): [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_number_text(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++n;
    return n;
  };
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t mantissa = digits();
  if (i < s.size() && s[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

bool is_special_float(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return lower == ".inf" || lower == ".nan" || lower == "inf" || lower == "nan" || lower == "infinity";
}

bool is_bool_or_null_word(std::string_view s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  for (const char* w : {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"})
    if (lower == w) return true;
  return false;
}

double to_double(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  double out = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec == std::errc::result_out_of_range) return s[0] == '-' ? -kInf : kInf;  // caught as not finite
  (void)ptr;
  return out;
}

double parse_double(const Value& v, const std::string& path) {
  if (v.kind == Value::Kind::Scalar && !v.quoted) {
    if (is_number_text(v.text)) {
      const double d = to_double(v.text);
      if (!std::isfinite(d)) fail_at(v, path, fmt::format("'{}' is out of range", v.text));
      return d;
    }
    if (is_special_float(v.text)) fail_at(v, path, fmt::format("expected a finite number, got '{}'", v.text));
  }
  type_error(v, path, "a number");
}

template <typename T>
T parse_integer(const Value& v, const std::string& path) {
  if (v.kind != Value::Kind::Scalar || v.quoted) type_error(v, path, "an integer");
  const std::string& s = v.text;
  constexpr bool is_unsigned = std::is_unsigned_v<T>;
  const auto range = fmt::format("[{}, {}]", std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  if (is_int_text(s)) {
    std::string_view t = s;
    if (t[0] == '+') t.remove_prefix(1);
    if (is_unsigned && t[0] == '-') {
      if (t.find_first_not_of("-0") == std::string_view::npos) return T(0);
      fail_at(v, path, fmt::format("must be >= 0, got {}", s));
    }
    T out{};
    const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
    if (ec != std::errc() || ptr != t.data() + t.size())
      fail_at(v, path, fmt::format("{} is out of range {}", s, range));
    return out;
  }
  if (is_number_text(s)) {
    const double d = to_double(s);
    constexpr double exact = 9007199254740992.0;  // 2^53: every integer up to here is exact in a double
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) <= exact) {
      if (is_unsigned && d < 0) fail_at(v, path, fmt::format("must be >= 0, got {}", s));
      if (d < double(std::numeric_limits<T>::min()) || d > double(std::numeric_limits<T>::max()))
        fail_at(v, path, fmt::format("{} is out of range {}", s, range));
      return T(d);
    }
    fail_at(v, path, fmt::format("expected an integer, got {}", s));
  }
  type_error(v, path, "an integer");
}

bool parse_bool(const Value& v, const std::string& path) {
  if (v.kind == Value::Kind::Scalar && !v.quoted) {
    if (v.text == "true" || v.text == "True" || v.text == "TRUE") return true;
    if (v.text == "false" || v.text == "False" || v.text == "FALSE") return false;
  }
  type_error(v, path, "true or false");
}

// Any scalar is a string; null is the empty string.
std::string parse_string(const Value& v, const std::string& path) {
  if (v.kind == Value::Kind::Null) return "";
  if (v.kind != Value::Kind::Scalar) type_error(v, path, "a string");
  return v.text;
}

std::string number_text(double x) {
  std::string s = fmt::format("{}", x);
  if (s.find_first_of(".eEni") == std::string::npos) s += ".0";
  return s;
}

std::string limit_text(const Limit& l) {
  auto num = [](double x) { return fmt::format("{}", x); };
  if (std::isinf(l.hi)) return fmt::format("{} {}", l.lo_open ? ">" : ">=", num(l.lo));
  if (std::isinf(l.lo)) return fmt::format("{} {}", l.hi_open ? "<" : "<=", num(l.hi));
  return fmt::format("in {}{}, {}{}", l.lo_open ? "(" : "[", num(l.lo), num(l.hi), l.hi_open ? ")" : "]");
}

bool has_limit(const Limit& l) { return !(std::isinf(l.lo) && std::isinf(l.hi)); }

void check_limit(const Key& key, double x, const Value& v, const std::string& text) {
  const Limit& l = key.limit;
  const bool ok = (l.lo_open ? x > l.lo : x >= l.lo) && (l.hi_open ? x < l.hi : x <= l.hi);
  if (!ok) fail_at(v, key.path, fmt::format("must be {}, got {}", limit_text(l), text));
}

// Strings that YAML would read as something else, or that need escaping, are written double-quoted.
std::string yaml_string(const std::string& s) {
  bool plain = !s.empty() && !is_number_text(s) && !is_bool_or_null_word(s) && !is_special_float(s) &&
               (std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_' || s[0] == '.' || s[0] == '/');
  for (const char ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '/' || ch == ',' ||
          ch == '-' || ch == '+'))
      plain = false;
  if (plain) return s;
  std::string out = "\"";
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string json_scalar_yaml(const nlohmann::json& j) {
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number_integer()) return std::to_string(j.get<int64_t>());
  if (j.is_number_float()) return number_text(j.get<double>());
  if (j.is_string()) return yaml_string(j.get<std::string>());
  if (j.is_object()) {  // model.attention: a flow mapping on one line
    std::string out;
    for (const auto& [k, v] : j.items()) out += (out.empty() ? "" : ", ") + k + ": " + json_scalar_yaml(v);
    return "{" + out + "}";
  }
  return "null";
}

const char* json_type_name(const nlohmann::json& j) {
  if (j.is_boolean()) return "bool";
  if (j.is_number_integer()) return "int";
  if (j.is_number_float()) return "float";
  if (j.is_object()) return "mapping";
  return "string";
}

// The default (or current) value of a key as YAML text.
std::string value_yaml(const Key& key, TrainConfig& c) {
  return std::visit(
      [&](auto get) -> std::string {
        auto& x = get(c);
        using T = std::remove_reference_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          return number_text(x);
        } else if constexpr (std::is_integral_v<T>) {
          return std::to_string(x);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return yaml_string(x);
        } else if constexpr (std::is_same_v<T, std::array<double, 2>>) {
          return fmt::format("[{}, {}]", number_text(x[0]), number_text(x[1]));
        } else {
          return "";  // the model: written key by key
        }
      },
      key.field);
}

std::string type_text(const Key& key) {
  std::string t = std::visit(
      [&](auto get) -> std::string {
        using T = std::remove_reference_t<decltype(get(std::declval<TrainConfig&>()))>;
        if constexpr (std::is_same_v<T, bool>)
          return "bool";
        else if constexpr (std::is_same_v<T, double>)
          return "float";
        else if constexpr (std::is_integral_v<T>)
          return "int";
        else if constexpr (std::is_same_v<T, std::string>)
          return "string";
        else if constexpr (std::is_same_v<T, std::array<double, 2>>)
          return "[float, float]";
        else
          return "mapping";
      },
      key.field);
  if (!key.choices.empty()) {
    std::vector<std::string> quoted;
    for (const auto& c : key.choices) quoted.push_back("`" + c + "`");
    return join(quoted, " \\| ");
  }
  if (has_limit(key.limit)) t += (t[0] == '[' ? ", each " : ", ") + limit_text(key.limit);
  return t;
}

// ---------------------------------------------------------------------------------------------------
// Typed parsing of the merged tree

class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  TrainConfig run(const Value& root) {
    section(root, "");
    cross_checks();
    return config_;
  }

 private:
  void section(const Value& v, const std::string& prefix) {
    if (v.kind == Value::Kind::Null) return;  // an empty section keeps its defaults
    if (v.kind != Value::Kind::Map) type_error(v, prefix, "a mapping of settings");
    for (const auto& [k, child] : v.entries) {
      const std::string full = prefix.empty() ? k : prefix + "." + k;
      if (const Key* key = find_key(full))
        leaf(*key, child);
      else if (is_section(full))
        section(child, full);
      else
        unknown_key(child, full);
    }
  }

  void leaf(const Key& key, const Value& v) {
    set_at_[key.path] = &v;
    std::visit(
        [&](auto get) {
          auto& x = get(config_);
          using T = std::remove_reference_t<decltype(x)>;
          if constexpr (std::is_same_v<T, bool>) {
            x = parse_bool(v, key.path);
          } else if constexpr (std::is_same_v<T, double>) {
            x = parse_double(v, key.path);
            check_limit(key, x, v, v.text);
          } else if constexpr (std::is_integral_v<T>) {
            x = parse_integer<T>(v, key.path);
            check_limit(key, double(x), v, v.text);
          } else if constexpr (std::is_same_v<T, std::string>) {
            x = parse_string(v, key.path);
            if (!key.choices.empty() && std::find(key.choices.begin(), key.choices.end(), x) == key.choices.end())
              fail_at(v, key.path, fmt::format("'{}' is not one of {}", x, join(key.choices, ", ")));
          } else if constexpr (std::is_same_v<T, std::array<double, 2>>) {
            if (v.kind != Value::Kind::Seq || v.items.size() != 2) type_error(v, key.path, "a list of two numbers");
            for (size_t i = 0; i < 2; ++i) {
              x[i] = parse_double(v.items[i], key.path);
              check_limit(key, x[i], v.items[i], v.items[i].text);
            }
          } else {
            model(v, x);
          }
        },
        key.field);
  }

  // model.attention: a mapping of scalars (kept as text; the model config parses them) and lists of token
  // indices (global_tokens).
  nlohmann::json attention_mapping(const Value& v, const std::string& path) {
    if (v.kind != Value::Kind::Map) type_error(v, path, "a mapping like {type: sparse, pattern: fixed, stride: 128}");
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, child] : v.entries) {
      const std::string full = path + "." + k;
      set_at_[full] = &child;
      if (child.kind == Value::Kind::Seq) {
        nlohmann::json items = nlohmann::json::array();
        for (const auto& item : child.items) items.push_back(parse_integer<int64_t>(item, full));
        j[k] = items;
      } else {
        j[k] = parse_string(child, full);
      }
    }
    return j;
  }

  void model(const Value& v, models::ModelConfig& out) {
    if (v.kind == Value::Kind::Null) return;
    if (v.kind != Value::Kind::Map) type_error(v, "model", "a mapping of model settings");
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, child] : v.entries) {
      const std::string full = "model." + k;
      const auto it = model_defaults().find(k);
      if (it == model_defaults().end()) unknown_key(child, full);
      set_at_[full] = &child;
      if (it->is_boolean()) {
        j[k] = parse_bool(child, full);
      } else if (it->is_number_integer()) {
        j[k] = parse_integer<int64_t>(child, full);
      } else if (it->is_number_float()) {
        j[k] = parse_double(child, full);
      } else if (it->is_object()) {
        j[k] = attention_mapping(child, full);
      } else if (child.kind == Value::Kind::Null) {
        j[k] = nullptr;  // "none" for the optional norms
      } else {
        j[k] = parse_string(child, full);
      }
    }
    try {
      out = models::ModelConfig::from_json(j, "model");
    } catch (const Error& e) {
      // The message starts with the field at fault ("window_size must be even ..."): point at its line.
      std::string message = e.message();
      if (message.rfind("model.", 0) == 0) message.erase(0, 6);
      const size_t end = message.find_first_not_of("abcdefghijklmnopqrstuvwxyz_0123456789");
      const std::string field = message.substr(0, end);
      const auto at = set_at_.find("model." + field);
      if (!field.empty() && model_defaults().contains(field))
        throw Error(fmt::format("{}: model.{}", where(at != set_at_.end() ? *at->second : v), message));
      throw Error(fmt::format("{}: model: {}", where(v), message));
    }
  }

  [[noreturn]] void fail(const std::string& path, const std::string& message) {
    const auto it = set_at_.find(path);
    if (it != set_at_.end()) fail_at(*it->second, path, message);
    throw Error(fmt::format("{}: {}: {}", source_, path, message));
  }

  void cross_checks() {
    const TrainingConfig& t = config_.training;
    if (config_.name.empty()) fail("name", "must not be empty");
    if (t.micro_batch > 0 && t.global_batch % t.micro_batch != 0)
      fail("training.micro_batch",
           fmt::format("{} does not divide training.global_batch {}", t.micro_batch, t.global_batch));
    const DataConfig& d = config_.data;
    if (d.random_token_prob >= 0 && d.mask_token_prob + d.random_token_prob > 1.0)
      fail("data.random_token_prob", fmt::format("data.mask_token_prob {} + data.random_token_prob {} exceeds 1",
                                                 d.mask_token_prob, d.random_token_prob));
    if (d.seq_len > config_.model.max_position_embeddings)
      fail("data.seq_len", fmt::format("{} exceeds model.max_position_embeddings {}", d.seq_len,
                                       config_.model.max_position_embeddings));
    bool device_ok = t.device == "cpu" || t.device == "cuda";
    if (t.device.rfind("cuda:", 0) == 0 && t.device.size() > 5)
      device_ok = t.device.find_first_not_of("0123456789", 5) == std::string::npos && t.device.size() <= 8;
    if (!device_ok) fail("training.device", fmt::format("'{}' is not one of cpu, cuda, cuda:N", t.device));
  }

  std::string source_;
  TrainConfig config_;
  std::map<std::string, const Value*> set_at_;
};

TrainConfig parse_tree(Value root, const std::string& source, const std::vector<std::string>& overrides) {
  if (root.kind == Value::Kind::Null) root.kind = Value::Kind::Map;
  for (const auto& o : overrides) apply_override(root, o);
  return Parser(source).run(root);
}

}  // namespace

const std::vector<std::string>& train_config_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (const auto& s : sections()) {
      if (!s.path.empty() && std::find(out.begin(), out.end(), s.path) == out.end()) out.push_back(s.path);
      for (const auto& k : schema()) {
        if (parent_path(k.path) != s.path) continue;
        if (is_model(k)) {
          if (std::find(out.begin(), out.end(), k.path) == out.end()) out.push_back(k.path);
          for (const auto& m : models::model_config_keys()) out.push_back("model." + m);
        } else {
          out.push_back(k.path);
        }
      }
    }
    return out;
  }();
  return keys;
}

TrainConfig parse_train_config(const std::string& yaml_text, const std::string& source_name,
                               const std::vector<std::string>& overrides) {
  Value root = parse_yaml(yaml_text, source_name, true);
  if (root.kind != Value::Kind::Map && root.kind != Value::Kind::Null)
    throw Error(
        fmt::format("{}: expected a mapping of config sections at the top level, got {}", where(root), describe(root)));
  if (root.kind == Value::Kind::Null) root.kind = Value::Kind::Map;
  std::vector<std::string> stack;
  std::error_code ec;
  const fs::path self = fs::weakly_canonical(fs::path(source_name), ec);
  if (!ec) stack.push_back(self.string());
  resolve_includes(root, fs::path(source_name).parent_path(), stack);
  return parse_tree(std::move(root), source_name, overrides);
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::vector<std::string> stack;
  Value root = load_yaml_file(path, fs::path(path), "config", stack);
  return parse_tree(std::move(root), path, overrides);
}

std::string train_config_to_yaml(const TrainConfig& config) {
  TrainConfig c = config;  // the getters take a mutable config
  std::string out =
      "# The resolved training configuration: every key, defaults included (docs/config.md).\n"
      "# dense-train loads it back unchanged.\n";
  std::vector<std::string> open;  // the sections whose header is written
  for (const auto& key : schema()) {
    const auto parts = split(key.path, '.');
    const std::vector<std::string> parents(parts.begin(), parts.end() - 1);
    size_t common = 0;
    while (common < open.size() && common < parents.size() && open[common] == parents[common]) ++common;
    for (size_t i = common; i < parents.size(); ++i) {
      if (i == 0) out += "\n";
      out += fmt::format("{:{}}{}:\n", "", 2 * i, parents[i]);
    }
    open = parents;
    const std::string indent(2 * parents.size(), ' ');
    if (is_model(key)) {
      out += fmt::format("\n{}{}:\n", indent, parts.back());
      const nlohmann::json j = c.model.to_json();
      for (const auto& m : models::model_config_keys())
        out += fmt::format("{}  {}: {}\n", indent, m, json_scalar_yaml(j.at(m)));
      open = parts;  // the model block is a section of its own
    } else {
      out += fmt::format("{}{}: {}\n", indent, parts.back(), value_yaml(key, c));
    }
  }
  return out;
}

std::string train_config_hash(const TrainConfig& config) { return data::sha256_hex(train_config_to_yaml(config)); }

std::string train_config_reference_markdown() {
  TrainConfig defaults;
  auto cell = [](std::string s) {
    std::string out;
    for (const char ch : s) out += ch == '|' ? std::string("\\|") : std::string(1, ch);
    return out;
  };
  std::string md;
  for (const auto& s : sections()) {
    md += fmt::format("### {}\n\n{}\n\n", s.path.empty() ? "Top level" : "`" + s.path + "`", s.doc);
    if (s.path == "model") {
      md += "| key | type | default |\n|---|---|---|\n";
      const nlohmann::json& j = model_defaults();
      for (const auto& m : models::model_config_keys()) {
        const std::string type = m == "model_type" ? "`danet` \\| `bert`" : json_type_name(j.at(m));
        md += fmt::format("| `model.{}` | {} | `{}` |\n", m, type, cell(json_scalar_yaml(j.at(m))));
      }
      md += "\n";
      continue;
    }
    md += "| key | type | default | meaning |\n|---|---|---|---|\n";
    for (const auto& k : schema()) {
      if (parent_path(k.path) != s.path || is_model(k)) continue;
      md +=
          fmt::format("| `{}` | {} | `{}` | {} |\n", k.path, type_text(k), cell(value_yaml(k, defaults)), cell(k.doc));
    }
    md += "\n";
  }
  return md;
}

}  // namespace dense::train
