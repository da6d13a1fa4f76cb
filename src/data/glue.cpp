#include "data/glue.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "core/error.h"
#include "data/tsv.h"

namespace dense::data {

namespace {

GlueFileLayout with_header(std::string name, GlueSplit split, std::string hf_name, std::string a, std::string b,
                           std::string label, std::string index) {
  GlueFileLayout l;
  l.file = name + ".tsv";
  l.name = std::move(name);
  l.split = split;
  l.hf_name = std::move(hf_name);
  l.has_header = true;
  l.col_a = std::move(a);
  l.col_b = std::move(b);
  l.col_label = std::move(label);
  l.col_index = std::move(index);
  l.labeled = !l.col_label.empty();
  return l;
}

// The usual train/dev/test trio; the test file has the same text columns and no label.
std::vector<GlueFileLayout> trio(const std::string& a, const std::string& b, const std::string& label,
                                 const std::string& train_index, const std::string& test_index) {
  return {with_header("train", GlueSplit::kTrain, "train", a, b, label, train_index),
          with_header("dev", GlueSplit::kDev, "validation", a, b, label, train_index),
          with_header("test", GlueSplit::kTest, "test", a, b, "", test_index)};
}

GlueTaskInfo make_task(GlueTask task, const char* name) {
  GlueTaskInfo i;
  i.task = task;
  i.name = name;
  i.folder = name;
  return i;
}

std::vector<GlueTaskInfo> build_tasks() {
  std::vector<GlueTaskInfo> t;
  {
    GlueTaskInfo i = make_task(GlueTask::kCoLA, "CoLA");
    i.label_values = {"0", "1"};
    i.label_names = {"unacceptable", "acceptable"};
    // train/dev: no header; columns source, label, original annotation (often empty), sentence.
    for (auto [name, hf, split] :
         {std::tuple{"train", "train", GlueSplit::kTrain}, std::tuple{"dev", "validation", GlueSplit::kDev}}) {
      GlueFileLayout l;
      l.name = name;
      l.split = split;
      l.hf_name = hf;
      l.file = std::string(name) + ".tsv";
      l.has_header = false;
      l.num_columns = 4;
      l.col_a = "sentence";
      l.col_label = "label";
      l.pos_a = 3;
      l.pos_label = 1;
      i.files.push_back(l);
    }
    i.files.push_back(with_header("test", GlueSplit::kTest, "test", "sentence", "", "", "index"));
    t.push_back(i);
  }
  {
    GlueTaskInfo i = make_task(GlueTask::kSST2, "SST-2");
    i.label_values = {"0", "1"};
    i.label_names = {"negative", "positive"};
    i.files = trio("sentence", "", "label", "", "index");
    t.push_back(i);
  }
  {
    GlueTaskInfo i = make_task(GlueTask::kMRPC, "MRPC");
    i.pair = true;
    i.label_values = {"0", "1"};
    i.label_names = {"not_equivalent", "equivalent"};
    i.max_length = 512;
    i.files = trio("#1 String", "#2 String", "Quality", "", "index");
    t.push_back(i);
  }
  {
    GlueTaskInfo i = make_task(GlueTask::kSTSB, "STS-B");
    i.pair = true;
    i.regression = true;
    i.files = trio("sentence1", "sentence2", "score", "index", "index");
    t.push_back(i);
  }
  {
    GlueTaskInfo i = make_task(GlueTask::kQQP, "QQP");
    i.pair = true;
    i.label_values = {"0", "1"};
    i.label_names = {"not_duplicate", "duplicate"};
    i.files = trio("question1", "question2", "is_duplicate", "id", "id");
    t.push_back(i);
  }
  {
    GlueTaskInfo i = make_task(GlueTask::kMNLI, "MNLI");
    i.pair = true;
    i.label_values = {"entailment", "neutral", "contradiction"};
    i.label_names = i.label_values;
    i.files = {
        with_header("train", GlueSplit::kTrain, "train", "sentence1", "sentence2", "gold_label", "index"),
        with_header("dev_matched", GlueSplit::kDev, "validation_matched", "sentence1", "sentence2", "gold_label",
                    "index"),
        with_header("dev_mismatched", GlueSplit::kDev, "validation_mismatched", "sentence1", "sentence2", "gold_label",
                    "index"),
        with_header("test_matched", GlueSplit::kTest, "test_matched", "sentence1", "sentence2", "", "index"),
        with_header("test_mismatched", GlueSplit::kTest, "test_mismatched", "sentence1", "sentence2", "", "index")};
    t.push_back(i);
  }
  {
    GlueTaskInfo i = make_task(GlueTask::kQNLI, "QNLI");
    i.pair = true;
    i.label_values = {"entailment", "not_entailment"};
    i.label_names = i.label_values;
    i.files = trio("question", "sentence", "label", "index", "index");
    t.push_back(i);
  }
  {
    GlueTaskInfo i = make_task(GlueTask::kRTE, "RTE");
    i.pair = true;
    i.label_values = {"entailment", "not_entailment"};
    i.label_names = i.label_values;
    i.max_length = 512;
    i.files = trio("sentence1", "sentence2", "label", "index", "index");
    t.push_back(i);
  }
  {
    GlueTaskInfo i = make_task(GlueTask::kWNLI, "WNLI");
    i.pair = true;
    i.label_values = {"0", "1"};
    i.label_names = {"not_entailment", "entailment"};
    i.files = trio("sentence1", "sentence2", "label", "index", "index");
    t.push_back(i);
  }
  return t;
}

const std::vector<GlueTaskInfo>& task_table() {
  static const std::vector<GlueTaskInfo> tasks = build_tasks();
  return tasks;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? std::string(sep) : std::string()) + v[i];
  return r;
}

std::string join(const std::vector<std::string_view>& v) {
  std::vector<std::string> s(v.begin(), v.end());
  for (auto& x : s) x = "'" + x + "'";
  return join(s);
}

int find_column(const TsvReader& reader, const TsvRow& header, const std::string& name, const GlueTaskInfo& info,
                const GlueFileLayout& layout) {
  if (name.empty()) return -1;
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return int(i);
  reader.fail(header.line_number, fmt::format("header has no column '{}' (found {}); expected the official GLUE "
                                              "{} {} layout",
                                              name, join(header.fields), info.name, layout.name));
}

GlueSplitData parse(TsvReader& reader, const std::filesystem::path& path, const GlueTaskInfo& info,
                    const GlueFileLayout& layout) {
  GlueSplitData out;
  out.task = info.name;
  out.split = layout.name;
  out.path = path;
  out.labeled = layout.labeled;
  TsvRow row;
  int pa = layout.pos_a, pb = layout.pos_b, pl = layout.pos_label, pi = -1;
  if (layout.has_header) {
    if (!reader.next(row))
      DENSE_FAIL("{}: empty file, expected a header and rows of the GLUE {} {} layout", reader.name(), info.name,
                 layout.name);
    pa = find_column(reader, row, layout.col_a, info, layout);
    pb = find_column(reader, row, layout.col_b, info, layout);
    pl = layout.labeled ? find_column(reader, row, layout.col_label, info, layout) : -1;
    // The index/id column only names the examples (guid); without it the row number is used.
    for (size_t i = 0; i < row.size(); ++i)
      if (!layout.col_index.empty() && row[i] == layout.col_index) pi = int(i);
  }
  while (reader.next(row)) {
    GlueExample ex;
    ex.index = int64_t(out.examples.size());
    ex.line = row.line_number;
    ex.text_a = std::string(row[size_t(pa)]);
    if (pb >= 0) ex.text_b = std::string(row[size_t(pb)]);
    if (pi >= 0) ex.id = std::string(row[size_t(pi)]);
    ex.guid = fmt::format("{}-{}", layout.name, pi >= 0 ? ex.id : std::to_string(ex.index));
    if (pl >= 0) {
      const std::string_view v = row[size_t(pl)];
      if (info.regression) {
        double x = 0;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(x) || x < 0.0 || x > 5.0)
          reader.fail(row.line_number, fmt::format("{} score '{}' is not a number in [0, 5]", info.name, v));
        ex.score = float(x);
      } else {
        const auto it = std::find(info.label_values.begin(), info.label_values.end(), v);
        if (it == info.label_values.end())
          reader.fail(row.line_number,
                      fmt::format("label '{}' is not a {} label (allowed: {})", v, info.name, join(info.label_values)));
        ex.label = int(it - info.label_values.begin());
      }
    }
    out.examples.push_back(std::move(ex));
  }
  out.skipped_rows = reader.skipped_rows();
  out.invalid_utf8_rows = reader.invalid_utf8_rows();
  return out;
}

TsvOptions tsv_options(const GlueFileLayout& layout, const GlueLoadOptions& options) {
  TsvOptions o;
  o.expected_columns = layout.has_header ? 0 : layout.num_columns;
  o.skip_bad_rows = options.skip_malformed_rows;
  return o;
}

}  // namespace

const GlueFileLayout& GlueTaskInfo::layout(std::string_view split) const {
  const std::string s = lower(split);
  for (const auto& f : files)
    if (f.name == s || f.hf_name == s) return f;
  if (task == GlueTask::kMNLI) {
    if (s == "dev" || s == "validation") return layout("dev_matched");
    if (s == "test") return layout("test_matched");
  }
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.name);
  DENSE_FAIL("GLUE {} has no split '{}' (known: {})", name, split, join(names));
}

std::vector<const GlueFileLayout*> GlueTaskInfo::layouts(GlueSplit split) const {
  std::vector<const GlueFileLayout*> r;
  for (const auto& f : files)
    if (f.split == split) r.push_back(&f);
  return r;
}

std::span<const GlueTaskInfo> glue_tasks() { return task_table(); }

const GlueTaskInfo& glue_task_info(GlueTask task) {
  for (const auto& t : task_table())
    if (t.task == task) return t;
  DENSE_FAIL("unknown GLUE task id {}", int(task));
}

GlueTask glue_task_from_name(std::string_view name) {
  std::string key = lower(name);
  std::erase(key, '-');
  std::erase(key, '_');
  for (const auto& t : task_table()) {
    std::string n = lower(t.name);
    std::erase(n, '-');
    if (n == key) return t.task;
  }
  if (key == "mnlim" || key == "mnlimm" || key == "mnlimatched" || key == "mnlimismatched") return GlueTask::kMNLI;
  std::vector<std::string> names;
  for (const auto& t : task_table()) names.push_back(t.name);
  DENSE_FAIL("unknown GLUE task '{}' (known: {})", name, join(names));
}

GlueSplitData load_glue_file(const std::filesystem::path& file, const GlueTaskInfo& info, const GlueFileLayout& layout,
                             const GlueLoadOptions& options) {
  TsvReader reader(file, tsv_options(layout, options));
  return parse(reader, file, info, layout);
}

GlueSplitData parse_glue_tsv(std::string name, std::string data, const GlueTaskInfo& info, const GlueFileLayout& layout,
                             const GlueLoadOptions& options) {
  std::filesystem::path path(name);
  TsvReader reader = TsvReader::from_string(std::move(name), std::move(data), tsv_options(layout, options));
  return parse(reader, path, info, layout);
}

GlueSplitData load_glue_split(const std::filesystem::path& task_dir, GlueTask task, std::string_view split,
                              const GlueLoadOptions& options) {
  const GlueTaskInfo& info = glue_task_info(task);
  const GlueFileLayout& layout = info.layout(split);
  std::error_code ec;
  if (!std::filesystem::is_directory(task_dir, ec))
    DENSE_FAIL("GLUE {}: folder '{}' does not exist (expected the official {} folder with {})", info.name,
               task_dir.string(), info.folder, layout.file);
  const auto file = task_dir / layout.file;
  if (!std::filesystem::exists(file, ec))
    DENSE_FAIL("GLUE {}: split '{}' expects the file '{}' in folder '{}', which is missing", info.name, layout.name,
               layout.file, task_dir.string());
  return load_glue_file(file, info, layout, options);
}

}  // namespace dense::data
