// The strict TSV reader and the GLUE layouts built on it, on arbitrary bytes. Input: one control byte (which
// parser, which options), then the file content.
#include <cmath>

#include "core/error.h"
#include "data/glue.h"
#include "data/text_normalize.h"
#include "data/tsv.h"
#include "fuzz_common.h"

using namespace dense::data;

namespace {

void fuzz_tsv(uint8_t ctl, std::string_view content) {
  TsvOptions o;
  o.expected_columns = (ctl >> 4) & 7;  // 0: from the first row
  o.skip_bad_rows = ctl & 2;
  o.fix_utf8 = ctl & 4;
  TsvReader r = TsvReader::from_string("fuzz.tsv", std::string(content), o);
  TsvRow row;
  size_t rows = 0, last_line = 0;
  std::string joined;
  while (r.next(row)) {
    ++rows;
    FUZZ_CHECK(row.line_number > last_line);
    last_line = row.line_number;
    FUZZ_CHECK(r.columns() > 0 && row.size() == r.columns());
    if (o.expected_columns > 0) FUZZ_CHECK(r.columns() == o.expected_columns);
    // Fields are views into the line, split at every tab and at nothing else.
    joined.clear();
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) joined += '\t';
      FUZZ_CHECK(row[i].data() >= row.line.data() &&
                 row[i].data() + row[i].size() <= row.line.data() + row.line.size());
      FUZZ_CHECK(row[i].find('\t') == std::string_view::npos);
      joined += row[i];
    }
    FUZZ_CHECK(joined == row.line);
    FUZZ_CHECK(row.line.find('\n') == std::string::npos);
    if (o.fix_utf8) FUZZ_CHECK(is_valid_utf8(row.line));
  }
  FUZZ_CHECK(r.skipped_rows() >= r.skipped_lines().size() && r.skipped_lines().size() <= 20);
  if (!o.skip_bad_rows) FUZZ_CHECK(r.skipped_rows() == 0);
  FUZZ_CHECK(r.invalid_utf8_rows() <= rows + r.skipped_rows());
}

struct LayoutRef {
  GlueTask task;
  const char* split;
};
// Header-less (CoLA train), unlabeled (CoLA test), BOM headers (MRPC), a regression score (STS-B), the widest
// header (MNLI) and the id/label columns of QQP and QNLI.
constexpr LayoutRef kLayouts[] = {
    {GlueTask::kCoLA, "train"},       {GlueTask::kCoLA, "test"}, {GlueTask::kMRPC, "train"}, {GlueTask::kSTSB, "train"},
    {GlueTask::kMNLI, "dev_matched"}, {GlueTask::kQQP, "train"}, {GlueTask::kQNLI, "dev"},   {GlueTask::kSST2, "train"},
};

void fuzz_glue(uint8_t ctl, std::string_view content) {
  const LayoutRef& ref = kLayouts[(ctl >> 1) % std::size(kLayouts)];
  const GlueTaskInfo& info = glue_task_info(ref.task);
  const GlueFileLayout& layout = info.layout(ref.split);
  GlueLoadOptions o;
  o.skip_malformed_rows = ctl & 0x80;
  const GlueSplitData d = parse_glue_tsv("fuzz.tsv", std::string(content), info, layout, o);
  FUZZ_CHECK(d.labeled == layout.labeled);
  const bool has_b = layout.has_header ? !layout.col_b.empty() : layout.pos_b >= 0;
  for (size_t k = 0; k < d.examples.size(); ++k) {
    const GlueExample& ex = d.examples[k];
    FUZZ_CHECK(ex.index == int64_t(k) && ex.line >= 1);
    FUZZ_CHECK(is_valid_utf8(ex.text_a) && is_valid_utf8(ex.guid));
    FUZZ_CHECK(ex.text_b.has_value() == has_b);
    if (ex.text_b) FUZZ_CHECK(is_valid_utf8(*ex.text_b));
    FUZZ_CHECK(ex.has_label() == layout.labeled);
    if (info.regression) {
      FUZZ_CHECK(ex.label == -1);
      if (layout.labeled) FUZZ_CHECK(ex.score >= 0.0f && ex.score <= 5.0f);
    } else {
      FUZZ_CHECK(std::isnan(ex.score));
      FUZZ_CHECK(ex.label >= -1 && ex.label < int(info.num_labels()));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dense::fuzz::Input in(data, size);
  const uint8_t ctl = in.byte();
  try {
    if (ctl & 1)
      fuzz_glue(ctl, in.rest());
    else
      fuzz_tsv(ctl, in.rest());
  } catch (const dense::Error&) {
  }
  return 0;
}
