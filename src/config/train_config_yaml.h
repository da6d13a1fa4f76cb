#pragma once
// YAML training configs (docs/config.md). One schema table in train_config_yaml.cpp (key path, type,
// default, allowed values, meaning, member) drives loading, the resolved-YAML dump, "did you mean"
// suggestions and the Markdown reference, so the four cannot disagree.
//
// Loading rules:
// * `include: a.yaml` or `include: [a.yaml, b.yaml]` may appear in any mapping (the top level, or e.g.
//   `model:` to pull in configs/models/*.json, JSON being YAML). Paths are relative to the including
//   file's folder. The included files are applied first, in order, then the mapping's own keys; merging is
//   deep: mappings merge key by key, scalars and lists replace. Include cycles are errors.
// * Overrides ("training.optimizer.learning_rate=3e-4") are applied last; the value is parsed as YAML
//   (`x=[0.9, 0.95]`, `x=true`, `x='a string'`, `x=` is null: an empty string for string keys); the key
//   path must exist in the schema (a section path merges a mapping into that section).
// * Unknown keys anywhere, wrong types and bad values are dense::Errors naming the file, line and full key
//   path: "configs/x.yaml:12: training.optimzer: unknown key; did you mean 'training.optimizer'?",
//   "configs/x.yaml:3: training.precision: 'fp8' is not one of f32, bf16, f16". Malformed YAML is a
//   dense::Error naming the file and line (yaml-cpp exceptions never escape), and so is a duplicate key.
// * Types are strict: integers must be exact integers (1000, 1e3 and 1000.0 are accepted, 1.5 is not);
//   booleans are true/false (not yes/no/on/off); a quoted scalar is always a string ("5" is not an int).
// * Paths in data.*, run_dir and checkpoint.dir are kept as written: relative paths are relative to the
//   working directory of the run (as with any CLI tool), not to the config file.
#include <string>
#include <vector>

#include "config/train_config.h"

namespace dense::train {

// Reads a YAML config file, resolves its includes, applies the overrides, checks everything.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from text; `source_name` names it in errors, and includes resolve against its folder.
TrainConfig parse_train_config(const std::string& yaml_text, const std::string& source_name,
                               const std::vector<std::string>& overrides = {});

// The resolved config as YAML: every field, defaults included, the model as its to_json() keys. Saved in the
// run folder; parse_train_config of it gives an equal config (and the same YAML text).
std::string train_config_to_yaml(const TrainConfig& config);
// sha256 (lower-case hex) of train_config_to_yaml(config), for checkpoints.
std::string train_config_hash(const TrainConfig& config);

// Markdown reference of every key (one table per section: key, type, default, meaning), generated from the
// schema the loader uses; docs/config.md holds it between generated-section markers.
std::string train_config_reference_markdown();

// Every key path the loader accepts (leaves, sections and model.<key>), in schema order: for CLI help and
// suggestions.
const std::vector<std::string>& train_config_keys();

}  // namespace dense::train
