// GLUE loaders and the strict TSV reader: the task table, the real CoLA / SST-2 / WNLI folders in ../shared
// (row counts, first and last examples, label balances from SOURCES.md), hand-made fixtures in the official
// layouts of the other six tasks (tests/fixtures/glue), and bad input (tests/fixtures/glue_bad): wrong column count,
// bad label, bad score, missing split, bad header, blank line, BOM, CRLF.
#include "data/glue.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "data/tsv.h"
#include "test_files.h"

using namespace dense;
using namespace dense::data;
namespace fs = std::filesystem;

namespace {

using namespace dense::testing;

const fs::path kFixtures = fs::path(DENSE_TEST_DATA_DIR) / "glue";
const fs::path kBad = fs::path(DENSE_TEST_DATA_DIR) / "glue_bad";
const fs::path kShared = fs::path(DENSE_SHARED_DIR) / "data" / "glue";

std::vector<std::string> read_all(TsvReader& r) {
  std::vector<std::string> rows;
  TsvRow row;
  while (r.next(row)) {
    std::string s;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) s += '|';
      s += row[i];
    }
    rows.push_back(s);
  }
  return rows;
}

#define SKIP_WITHOUT_SHARED() \
  if (!fs::exists(kShared / "CoLA" / "train.tsv")) GTEST_SKIP() << "no " << kShared

}  // namespace

TEST(Tsv, SplitsOnTabsOnlyAndKeepsQuotes) {
  auto r = TsvReader::from_string("t.tsv", "a\t\"b c\"\t\n\"x\"\t y \tz\n");
  EXPECT_EQ(read_all(r), (std::vector<std::string>{"a|\"b c\"|", "\"x\"| y |z"}));
  EXPECT_EQ(r.columns(), 3u);
}

TEST(Tsv, CrlfBomAndMissingFinalNewline) {
  auto r = TsvReader::from_string("t.tsv", "\xEF\xBB\xBFh1\th2\r\n1\t2\r\n3\t4");
  EXPECT_EQ(read_all(r), (std::vector<std::string>{"h1|h2", "1|2", "3|4"}));
  // A BOM is stripped only at the start of the file.
  auto r2 = TsvReader::from_string("t.tsv", "a\tb\n\xEF\xBB\xBFx\ty\n");
  EXPECT_EQ(read_all(r2)[1], "\xEF\xBB\xBFx|y");
  // A lone CR inside a field is text.
  auto r3 = TsvReader::from_string("t.tsv", "a\rb\tc\n");
  EXPECT_EQ(read_all(r3)[0], "a\rb|c");
}

TEST(Tsv, WrongColumnCountNamesFileAndLine) {
  auto r = TsvReader::from_string("bad.tsv", "a\tb\n1\t2\n3\n4\t5\n");
  TsvRow row;
  EXPECT_TRUE(r.next(row));
  EXPECT_TRUE(r.next(row));
  EXPECT_EQ(row.line_number, 2u);
  expect_error([&] { r.next(row); }, {"bad.tsv:3:", "expected 2 tab-separated columns, found 1"});

  TsvOptions opt;
  opt.expected_columns = 3;
  auto r2 = TsvReader::from_string("three.tsv", "a\tb\tc\nd\te\n", opt);
  EXPECT_TRUE(r2.next(row));
  expect_error([&] { r2.next(row); }, {"three.tsv:2:", "expected 3", "found 2"});

  auto r3 = TsvReader::from_string("blank.tsv", "a\tb\n\nc\td\n");
  EXPECT_TRUE(r3.next(row));
  expect_error([&] { r3.next(row); }, {"blank.tsv:2:", "empty line"});
}

TEST(Tsv, SkipBadRowsCountsThem) {
  TsvOptions opt;
  opt.skip_bad_rows = true;
  auto r = TsvReader::from_string("t.tsv", "a\tb\n1\n2\t3\n4\t5\t6\n7\t8\n", opt);
  EXPECT_EQ(read_all(r), (std::vector<std::string>{"a|b", "2|3", "7|8"}));
  EXPECT_EQ(r.skipped_rows(), 2u);
  EXPECT_EQ(r.skipped_lines(), (std::vector<size_t>{2, 4}));
}

TEST(Tsv, InvalidUtf8IsReplacedAndCounted) {
  auto r = TsvReader::from_string("t.tsv", "ok\tcaf\xC3\xA9\nbad\t\xFF\xC3x\n\xE2\x82\tend\n");
  const auto rows = read_all(r);
  EXPECT_EQ(rows[0], "ok|caf\xC3\xA9");
  EXPECT_EQ(rows[1], "bad|\xEF\xBF\xBD\xEF\xBF\xBDx");
  EXPECT_EQ(rows[2], "\xEF\xBF\xBD|end");  // a truncated 3-byte sequence is one replacement
  EXPECT_EQ(r.invalid_utf8_rows(), 2u);
  std::string s = "\xED\xA0\x80";  // a UTF-16 surrogate encoded in UTF-8 is invalid
  EXPECT_EQ(tsv_fix_utf8(s), 3u);
}

TEST(Tsv, MissingFileAndDirectoryAreErrors) {
  expect_error([] { TsvReader r(kBad / "no_such_file.tsv"); }, {"no_such_file.tsv", "not found"});
  expect_error([] { TsvReader r(kBad); }, {"glue_bad", "directory"});
}

TEST(GlueTable, NineTasksWithOfficialLayouts) {
  const auto tasks = glue_tasks();
  ASSERT_EQ(tasks.size(), 9u);
  std::vector<std::string> names;
  for (const auto& t : tasks) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"}));

  const auto& cola = glue_task_info(GlueTask::kCoLA);
  EXPECT_FALSE(cola.layout("train").has_header);
  EXPECT_EQ(cola.layout("train").num_columns, 4u);
  EXPECT_EQ(cola.layout("dev").pos_a, 3);
  EXPECT_EQ(cola.layout("dev").pos_label, 1);
  EXPECT_TRUE(cola.layout("test").has_header);
  EXPECT_FALSE(cola.layout("test").labeled);
  EXPECT_FALSE(cola.pair);

  const auto& mnli = glue_task_info(GlueTask::kMNLI);
  EXPECT_EQ(mnli.label_values, (std::vector<std::string>{"entailment", "neutral", "contradiction"}));
  EXPECT_EQ(mnli.layouts(GlueSplit::kDev).size(), 2u);
  EXPECT_EQ(mnli.layouts(GlueSplit::kTest).size(), 2u);
  EXPECT_EQ(mnli.layout("dev").file, "dev_matched.tsv");
  EXPECT_EQ(mnli.layout("validation_mismatched").file, "dev_mismatched.tsv");
  EXPECT_EQ(mnli.layout("test").file, "test_matched.tsv");
  EXPECT_EQ(mnli.layout("train").col_label, "gold_label");

  EXPECT_EQ(glue_task_info(GlueTask::kQNLI).label_values, (std::vector<std::string>{"entailment", "not_entailment"}));
  EXPECT_EQ(glue_task_info(GlueTask::kRTE).label_values, (std::vector<std::string>{"entailment", "not_entailment"}));
  EXPECT_TRUE(glue_task_info(GlueTask::kSTSB).regression);
  EXPECT_EQ(glue_task_info(GlueTask::kSTSB).num_labels(), 1u);
  EXPECT_EQ(glue_task_info(GlueTask::kMRPC).max_length, 512);
  EXPECT_EQ(glue_task_info(GlueTask::kRTE).max_length, 512);
  EXPECT_EQ(glue_task_info(GlueTask::kQQP).layout("test").col_a, "question1");
  EXPECT_EQ(glue_task_info(GlueTask::kMRPC).layout("dev").col_label, "Quality");
  for (const auto& t : tasks) {
    EXPECT_FALSE(t.layout("test").labeled) << t.name;
    EXPECT_EQ(t.layout("validation").split, GlueSplit::kDev) << t.name;
  }

  EXPECT_EQ(glue_task_from_name("sst2"), GlueTask::kSST2);
  EXPECT_EQ(glue_task_from_name("SST-2"), GlueTask::kSST2);
  EXPECT_EQ(glue_task_from_name("sts-b"), GlueTask::kSTSB);
  EXPECT_EQ(glue_task_from_name("stsb"), GlueTask::kSTSB);
  EXPECT_EQ(glue_task_from_name("MNLI"), GlueTask::kMNLI);
  expect_error([] { glue_task_from_name("squad"); }, {"squad", "CoLA", "WNLI"});
  expect_error([] { glue_task_info(GlueTask::kCoLA).layout("dev_matched"); },
               {"CoLA", "dev_matched", "train, dev, test"});
}

TEST(GlueReal, CoLACountsFirstLastAndBalance) {
  SKIP_WITHOUT_SHARED();
  const auto train = load_glue_split(kShared / "CoLA", GlueTask::kCoLA, "train");
  const auto dev = load_glue_split(kShared / "CoLA", GlueTask::kCoLA, "dev");
  const auto test = load_glue_split(kShared / "CoLA", GlueTask::kCoLA, "test");
  EXPECT_EQ(train.size(), 8551u);
  EXPECT_EQ(dev.size(), 1043u);
  EXPECT_EQ(test.size(), 1063u);
  EXPECT_EQ(train.examples.front().text_a, "Our friends won't buy this analysis, let alone the next one we propose.");
  EXPECT_EQ(train.examples.front().label, 1);
  EXPECT_FALSE(train.examples.front().text_b.has_value());
  EXPECT_EQ(train.examples.back().text_a, "What all did you get for Christmas?");
  EXPECT_EQ(train.examples.back().line, 8551u);
  EXPECT_EQ(dev.examples.front().text_a, "The sailors rode the breeze clear of the rocks.");
  // dev.tsv has no newline after its last row.
  EXPECT_EQ(dev.examples.back().text_a, "John talked to Bill about himself.");
  EXPECT_EQ(dev.examples.back().label, 1);
  EXPECT_EQ(test.examples.front().text_a, "Bill whistled past the house.");
  EXPECT_EQ(test.examples.front().guid, "test-0");
  EXPECT_EQ(test.examples.back().text_a, "A picture of himself frightened John.");
  EXPECT_EQ(test.examples.back().guid, "test-1062");
  EXPECT_FALSE(test.labeled);
  EXPECT_FALSE(test.examples.back().has_label());
  int pos = 0;
  for (const auto& e : train.examples) pos += e.label;
  EXPECT_EQ(pos, 6023);
  pos = 0;
  for (const auto& e : dev.examples) pos += e.label;
  EXPECT_EQ(pos, 721);
  EXPECT_EQ(train.invalid_utf8_rows + dev.invalid_utf8_rows + test.invalid_utf8_rows, 0u);
}

TEST(GlueReal, SST2CountsFirstLastAndBalance) {
  SKIP_WITHOUT_SHARED();
  const auto train = load_glue_split(kShared / "SST-2", GlueTask::kSST2, "train");
  const auto dev = load_glue_split(kShared / "SST-2", GlueTask::kSST2, "validation");
  const auto test = load_glue_split(kShared / "SST-2", GlueTask::kSST2, "test");
  EXPECT_EQ(train.size(), 67349u);
  EXPECT_EQ(dev.size(), 872u);
  EXPECT_EQ(test.size(), 1821u);
  // The space before the tab is part of the official text and is kept.
  EXPECT_EQ(train.examples.front().text_a, "hide new secretions from the parental units ");
  EXPECT_EQ(train.examples.front().label, 0);
  EXPECT_EQ(train.examples.front().line, 2u);
  EXPECT_EQ(train.examples.back().text_a,
            "this new jangle of noise , mayhem and stupidity must be a serious contender for the title . ");
  EXPECT_EQ(dev.examples.front().text_a, "it 's a charming and often affecting journey . ");
  EXPECT_EQ(dev.examples.front().label, 1);
  EXPECT_EQ(dev.examples.back().label, 1);
  EXPECT_EQ(test.examples.front().text_a, "uneasy mishmash of styles and genres .");
  EXPECT_EQ(test.examples.back().guid, "test-1820");
  int pos = 0;
  for (const auto& e : train.examples) pos += e.label;
  EXPECT_EQ(pos, 37569);
  pos = 0;
  for (const auto& e : dev.examples) pos += e.label;
  EXPECT_EQ(pos, 444);
}

TEST(GlueReal, WNLICountsFirstLastAndBalance) {
  SKIP_WITHOUT_SHARED();
  const auto train = load_glue_split(kShared / "WNLI", GlueTask::kWNLI, "train");
  const auto dev = load_glue_split(kShared / "WNLI", GlueTask::kWNLI, "dev");
  const auto test = load_glue_split(kShared / "WNLI", GlueTask::kWNLI, "test");
  EXPECT_EQ(train.size(), 635u);
  EXPECT_EQ(dev.size(), 71u);
  EXPECT_EQ(test.size(), 146u);
  EXPECT_EQ(train.examples.front().text_a, "I stuck a pin through a carrot. When I pulled the pin out, it had a hole.");
  EXPECT_EQ(*train.examples.front().text_b, "The carrot had a hole.");
  EXPECT_EQ(train.examples.front().label, 1);
  EXPECT_EQ(train.examples.back().guid, "train-634");
  EXPECT_EQ(*train.examples.back().text_b, "Sally had such a bad start.");
  EXPECT_EQ(dev.examples.front().text_a, "The drain is clogged with hair. It has to be cleaned.");
  EXPECT_EQ(*dev.examples.front().text_b, "The hair has to be cleaned.");
  EXPECT_EQ(dev.examples.front().label, 0);
  EXPECT_EQ(*dev.examples.back().text_b, "Eric was not particularly eager to see it.");
  EXPECT_EQ(test.examples.back().guid, "test-145");
  EXPECT_EQ(*test.examples.back().text_b, "Some of the glue was stuck on the window sill.");
  int pos = 0;
  for (const auto& e : dev.examples) pos += e.label;
  EXPECT_EQ(pos, 31);
}

TEST(GlueFixtures, MRPCHeaderWithBomAndPairs) {
  const auto train = load_glue_split(kFixtures / "MRPC", GlueTask::kMRPC, "train");
  ASSERT_EQ(train.size(), 3u);
  EXPECT_EQ(train.examples[0].text_a, "The committee approved the plan on Tuesday .");
  EXPECT_EQ(*train.examples[0].text_b, "On Tuesday , the committee approved the plan .");
  EXPECT_EQ(train.examples[0].label, 1);
  EXPECT_EQ(train.examples[1].label, 0);
  EXPECT_EQ(train.examples[2].text_a, "He said the \"new\" rules start in May .");
  EXPECT_EQ(train.examples[2].guid, "train-2");
  EXPECT_EQ(load_glue_split(kFixtures / "MRPC", GlueTask::kMRPC, "dev").size(), 2u);
  const auto test = load_glue_split(kFixtures / "MRPC", GlueTask::kMRPC, "test");
  ASSERT_EQ(test.size(), 2u);
  EXPECT_EQ(*test.examples[1].text_b, "The team won the final .");
  EXPECT_EQ(test.examples[1].label, -1);
}

TEST(GlueFixtures, STSBFloatScores) {
  const auto train = load_glue_split(kFixtures / "STS-B", GlueTask::kSTSB, "train");
  ASSERT_EQ(train.size(), 3u);
  EXPECT_FLOAT_EQ(train.examples[0].score, 5.0f);
  EXPECT_FLOAT_EQ(train.examples[1].score, 0.5f);
  EXPECT_FLOAT_EQ(train.examples[2].target(), 4.2f);
  EXPECT_EQ(train.examples[2].label, -1);
  EXPECT_TRUE(train.examples[2].has_label());
  EXPECT_EQ(*train.examples[0].text_b, "An air plane is taking off.");
  const auto dev = load_glue_split(kFixtures / "STS-B", GlueTask::kSTSB, "dev");
  EXPECT_FLOAT_EQ(dev.examples[0].score, 0.0f);
  const auto test = load_glue_split(kFixtures / "STS-B", GlueTask::kSTSB, "test");
  ASSERT_EQ(test.size(), 1u);
  EXPECT_FALSE(test.examples[0].has_label());
  EXPECT_EQ(test.examples[0].text_a, "A girl is singing.");
}

TEST(GlueFixtures, QQPQuestionsAndIds) {
  const auto train = load_glue_split(kFixtures / "QQP", GlueTask::kQQP, "train");
  ASSERT_EQ(train.size(), 3u);
  EXPECT_EQ(train.examples[0].guid, "train-133273");
  EXPECT_EQ(train.examples[0].text_a, "How do I learn to cook rice?");
  EXPECT_EQ(*train.examples[0].text_b, "What is the best way to cook rice?");
  EXPECT_EQ(train.examples[1].label, 0);
  EXPECT_EQ(train.examples[2].text_a, "What is \"machine learning\"?");
  EXPECT_EQ(load_glue_split(kFixtures / "QQP", GlueTask::kQQP, "dev").size(), 1u);
  const auto test = load_glue_split(kFixtures / "QQP", GlueTask::kQQP, "test");
  ASSERT_EQ(test.size(), 2u);
  EXPECT_EQ(*test.examples[1].text_b, "Which country is Paris in?");
}

TEST(GlueFixtures, MNLIMatchedAndMismatched) {
  const auto train = load_glue_split(kFixtures / "MNLI", GlueTask::kMNLI, "train");
  ASSERT_EQ(train.size(), 3u);
  EXPECT_EQ(train.examples[0].text_a, "The man is sleeping.");
  EXPECT_EQ(*train.examples[0].text_b, "The man is awake.");
  EXPECT_EQ(train.examples[0].label, 2);  // contradiction
  EXPECT_EQ(train.examples[1].label, 0);  // entailment
  EXPECT_EQ(train.examples[2].label, 1);  // neutral
  const auto dm = load_glue_split(kFixtures / "MNLI", GlueTask::kMNLI, "dev_matched");
  ASSERT_EQ(dm.size(), 2u);
  EXPECT_EQ(dm.examples[0].label, 2);  // gold_label, not label1..5
  EXPECT_EQ(load_glue_split(kFixtures / "MNLI", GlueTask::kMNLI, "dev").examples[1].text_a, "He bought two apples.");
  const auto dmm = load_glue_split(kFixtures / "MNLI", GlueTask::kMNLI, "validation_mismatched");
  ASSERT_EQ(dmm.size(), 2u);
  EXPECT_EQ(dmm.examples[0].label, 0);
  EXPECT_EQ(dmm.split, "dev_mismatched");
  EXPECT_EQ(load_glue_split(kFixtures / "MNLI", GlueTask::kMNLI, "test_matched").size(), 1u);
  const auto tmm = load_glue_split(kFixtures / "MNLI", GlueTask::kMNLI, "test_mismatched");
  ASSERT_EQ(tmm.size(), 2u);
  EXPECT_EQ(*tmm.examples[1].text_b, "It is hot.");
  EXPECT_FALSE(tmm.examples[1].has_label());
}

TEST(GlueFixtures, QNLIAndRTEEntailmentLabels) {
  const auto qnli = load_glue_split(kFixtures / "QNLI", GlueTask::kQNLI, "train");
  ASSERT_EQ(qnli.size(), 2u);
  EXPECT_EQ(qnli.examples[0].text_a, "When did the bridge open?");
  EXPECT_EQ(qnli.examples[0].label, 0);
  EXPECT_EQ(qnli.examples[1].label, 1);
  EXPECT_EQ(load_glue_split(kFixtures / "QNLI", GlueTask::kQNLI, "dev").examples[0].label, 1);
  EXPECT_EQ(load_glue_split(kFixtures / "QNLI", GlueTask::kQNLI, "test").examples[0].label, -1);
  const auto rte = load_glue_split(kFixtures / "RTE", GlueTask::kRTE, "train");
  ASSERT_EQ(rte.size(), 2u);
  EXPECT_EQ(*rte.examples[0].text_b, "The company was founded in 1990.");
  EXPECT_EQ(rte.examples[1].label, 1);
  EXPECT_EQ(load_glue_split(kFixtures / "RTE", GlueTask::kRTE, "dev").size(), 1u);
  EXPECT_EQ(load_glue_split(kFixtures / "RTE", GlueTask::kRTE, "test").size(), 1u);
}

TEST(GlueBad, WrongColumnCountNamesFileAndLine) {
  expect_error([] { load_glue_split(kBad / "CoLA_wrong_columns", GlueTask::kCoLA, "train"); },
               {"CoLA_wrong_columns/train.tsv:2:", "expected 4 tab-separated columns, found 3"});
}

TEST(GlueBad, LabelOutsideTheSetNamesFileLineAndAllowedLabels) {
  expect_error([] { load_glue_split(kBad / "SST-2_bad_label", GlueTask::kSST2, "train"); },
               {"SST-2_bad_label/train.tsv:3:", "label '2'", "SST-2", "allowed: 0, 1"});
  expect_error([] { load_glue_split(kBad / "MNLI_bad_label", GlueTask::kMNLI, "dev"); },
               {"MNLI_bad_label/dev_matched.tsv:3:", "'contradicton'", "entailment, neutral, contradiction"});
  expect_error([] { load_glue_split(kBad / "STS-B_bad_score", GlueTask::kSTSB, "train"); },
               {"STS-B_bad_score/train.tsv:3:", "'5.5'", "[0, 5]"});
}

TEST(GlueBad, MissingSplitNamesFolderAndFile) {
  expect_error([] { load_glue_split(kBad / "RTE_missing_dev", GlueTask::kRTE, "dev"); },
               {"RTE", "'dev.tsv'", "RTE_missing_dev", "missing"});
  EXPECT_EQ(load_glue_split(kBad / "RTE_missing_dev", GlueTask::kRTE, "train").size(), 1u);
  expect_error([] { load_glue_split(kBad / "no_such_task_folder", GlueTask::kQNLI, "train"); },
               {"no_such_task_folder", "does not exist"});
}

TEST(GlueBad, BomAndCrlfLoad) {
  const auto train = load_glue_split(kBad / "MRPC_crlf_bom", GlueTask::kMRPC, "train");
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(*train.examples[0].text_b, "Sales went up .");  // no '\r' left at the end of the row
  EXPECT_EQ(train.examples[1].label, 0);
  const auto dev = load_glue_split(kBad / "MRPC_crlf_bom", GlueTask::kMRPC, "dev");
  ASSERT_EQ(dev.size(), 1u);
  EXPECT_EQ(*dev.examples[0].text_b, "He went away .");
}

TEST(GlueBad, QQPMalformedRowIsAnErrorUnlessSkipped) {
  expect_error([] { load_glue_split(kBad / "QQP_malformed", GlueTask::kQQP, "train"); },
               {"QQP_malformed/train.tsv:3:", "expected 6", "found 5"});
  GlueLoadOptions opt;
  opt.skip_malformed_rows = true;
  const auto d = load_glue_split(kBad / "QQP_malformed", GlueTask::kQQP, "train", opt);
  EXPECT_EQ(d.size(), 2u);
  EXPECT_EQ(d.skipped_rows, 1u);
  EXPECT_EQ(d.examples[1].guid, "train-2");
}

TEST(GlueBad, HeaderWithoutExpectedColumnsAndBlankLine) {
  expect_error([] { load_glue_split(kBad / "WNLI_bad_header", GlueTask::kWNLI, "train"); },
               {"WNLI_bad_header/train.tsv:1:", "no column 'sentence1'", "'sent1'", "WNLI train"});
  expect_error([] { load_glue_split(kBad / "SST-2_blank_line", GlueTask::kSST2, "train"); },
               {"SST-2_blank_line/train.tsv:3:", "empty line"});
  const auto& sst = glue_task_info(GlueTask::kSST2);
  expect_error([&] { parse_glue_tsv("mem.tsv", "", sst, sst.layout("train")); }, {"mem.tsv", "empty file"});
  // In-memory parsing (fuzzing entry point) applies the same rules.
  const auto d = parse_glue_tsv("mem.tsv", "sentence\tlabel\r\nok \t1\r\n", sst, sst.layout("train"));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d.examples[0].text_a, "ok ");
  // Without the index column (not used for anything but the guid) the row number names the example.
  const auto t = parse_glue_tsv("t.tsv", "sentence\nfine\n", sst, sst.layout("test"));
  EXPECT_EQ(t.examples[0].guid, "test-0");
}
