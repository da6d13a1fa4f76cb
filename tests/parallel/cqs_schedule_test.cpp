// CQS-Attention scheduler (src/parallel/cqs_schedule.h): the built-in interest-set table, exact single
// ownership of every score cell, agreement with the CQS_Attention repo's Scheduler, the paper's memory
// fractions, and the error messages for bad sets and bad tables.
#include "parallel/cqs_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace dense::parallel {
namespace {

using Tile = std::pair<int64_t, int64_t>;

// The first interest set per W of the CQS-Attention paper's table (data/cqs/interest_sets.txt marks them "paper").
const std::map<int64_t, std::vector<int64_t>>& doc_table() {
  static const std::map<int64_t, std::vector<int64_t>> t = {
      {3, {0, 1}},
      {4, {0, 1, 2}},
      {5, {0, 1, 2}},
      {6, {0, 1, 3}},
      {7, {0, 1, 3}},
      {8, {0, 1, 2, 4}},
      {9, {0, 1, 2, 4}},
      {10, {0, 1, 2, 5}},
      {11, {0, 1, 2, 5}},
      {12, {0, 1, 3, 7}},
      {13, {0, 1, 3, 9}},
      {14, {0, 1, 5, 8, 13}},
      {15, {0, 1, 3, 5, 9}},
      {16, {0, 1, 9, 11, 13}},
      {19, {0, 1, 2, 6, 9}},
      {21, {0, 1, 4, 14, 16}},
      {24, {0, 1, 11, 13, 17, 20}},
      {31, {0, 1, 3, 8, 12, 18}},
      {32, {0, 1, 7, 13, 23, 28, 31}},
      {48, {0, 1, 7, 11, 15, 24, 27, 29}},
      {57, {0, 1, 3, 13, 32, 36, 43, 52}},
      {64, {0, 1, 2, 5, 14, 16, 34, 42, 59}},
      {73, {0, 1, 3, 7, 15, 31, 36, 54, 63}},
      {91, {0, 1, 3, 9, 27, 49, 56, 61, 77, 81}},
      {100, {0, 1, 2, 3, 4, 5, 13, 20, 28, 34, 56, 63}},
      {111, {0, 1, 2, 5, 12, 27, 36, 38, 44, 52, 65, 93}},
  };
  return t;
}

int64_t counting_bound(int64_t w) {
  int64_t k = 2;
  while (k * (k - 1) < w - 1) ++k;
  return k;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A line-by-line transliteration of the repo's Scheduler (gen_CQS, all_pairs_strict_upper, self_disstillation,
// gen_Distilled_CQS), deliberately independent of the code under test.
struct RepoWorker {
  std::vector<Tile> distilled;
  std::set<int64_t> material;
};
std::vector<RepoWorker> repo_scheduler(int64_t W, const std::vector<int64_t>& interest) {
  std::vector<RepoWorker> out;
  for (int64_t i = 0; i < W; ++i) {
    std::vector<int64_t> cqs;
    for (int64_t e : interest) cqs.push_back((e + i) % W);
    std::vector<Tile> pairs;
    for (size_t p = 0; p < cqs.size(); ++p)
      for (size_t q = p + 1; q < cqs.size(); ++q)
        pairs.emplace_back(std::min(cqs[p], cqs[q]), std::max(cqs[p], cqs[q]));
    RepoWorker w;
    std::vector<int64_t> all_diff;
    for (const auto& [a, b] : pairs) {
      const int64_t diff1 = ((a - b) % W + W) % W;
      if (std::find(all_diff.begin(), all_diff.end(), diff1) != all_diff.end()) continue;
      all_diff.push_back(diff1);
      const int64_t diff2 = ((b - a) % W + W) % W;
      if (diff1 == diff2) {
        if (2 * i < W) w.distilled.emplace_back(a, b);
      } else {
        all_diff.push_back(diff2);
        w.distilled.emplace_back(a, b);
      }
    }
    for (const auto& [a, b] : w.distilled) {
      w.material.insert(a);
      w.material.insert(b);
    }
    out.push_back(std::move(w));
  }
  return out;
}

// Every (query token, key token) cell is owned by exactly one worker: walks each worker's local tiles through
// its material list, and checks owner_of_cell on the way.
void expect_cells_owned_once(const CqsSchedule& s) {
  const int64_t N = s.seq_len;
  std::vector<uint8_t> count(static_cast<size_t>(N * N), 0);
  for (const auto& w : s.workers_) {
    const auto tokens = w.material_tokens();
    ASSERT_EQ(static_cast<int64_t>(tokens.size()), w.material_size());
    for (const auto& t : w.local_tiles)
      for (int64_t r = t.query_begin; r < t.query_end; ++r)
        for (int64_t c = t.key_begin; c < t.key_end; ++c) {
          ++count[tokens[r] * N + tokens[c]];
          if (s.owner_of_cell(tokens[r], tokens[c]) != w.index) {
            ADD_FAILURE() << "W=" << s.workers << " N=" << N << ": cell (" << tokens[r] << ", " << tokens[c]
                          << ") walked by worker " << w.index << ", owner_of_cell says "
                          << s.owner_of_cell(tokens[r], tokens[c]);
            return;
          }
        }
  }
  for (int64_t i = 0; i < N * N; ++i)
    if (count[i] != 1) {
      ADD_FAILURE() << "W=" << s.workers << " N=" << N << ": cell (" << i / N << ", " << i % N << ") owned "
                    << int(count[i]) << " times";
      return;
    }
}

// Group granularity (any N): each of the W x W tiles in exactly one worker's list, owner() agrees, and the
// local tile ranges are the tiles' groups inside the material.
void expect_tiles_owned_once(const CqsSchedule& s) {
  const int64_t W = s.workers;
  std::vector<int> count(static_cast<size_t>(W * W), 0);
  for (const auto& w : s.workers_) {
    ASSERT_EQ(w.tiles.size(), w.local_tiles.size());
    ASSERT_TRUE(std::is_sorted(w.tiles.begin(), w.tiles.end()));
    ASSERT_TRUE(std::is_sorted(w.groups.begin(), w.groups.end()));
    int64_t cells = 0;
    for (size_t t = 0; t < w.tiles.size(); ++t) {
      const auto [qg, kg] = w.tiles[t];
      ++count[qg * W + kg];
      ASSERT_EQ(s.owner(qg, kg), w.index) << "W=" << W << " tile (" << qg << ", " << kg << ")";
      ASSERT_TRUE(w.owns(qg, kg));
      const auto& lt = w.local_tiles[t];
      ASSERT_EQ(lt.query_end - lt.query_begin, s.group_size(qg));
      ASSERT_EQ(lt.key_end - lt.key_begin, s.group_size(kg));
      ASSERT_EQ(w.local_index(s.group_begin[qg]), lt.query_begin);
      ASSERT_EQ(w.local_index(s.group_begin[kg]), lt.key_begin);
      cells += s.group_size(qg) * s.group_size(kg);
    }
    ASSERT_EQ(w.owned_cells(), cells);
    // Material = the groups of the owned tiles, nothing more.
    std::set<int64_t> touched;
    for (const auto& [qg, kg] : w.tiles) touched.insert({qg, kg});
    ASSERT_EQ(std::vector<int64_t>(touched.begin(), touched.end()), w.groups);
  }
  for (int64_t t = 0; t < W * W; ++t) ASSERT_EQ(count[t], 1) << "W=" << W << " tile (" << t / W << ", " << t % W << ")";
}

TEST(CqsInterestSets, BuiltinTableHasEveryWorkerCountAndThePaperRows) {
  const auto& table = builtin_interest_sets();
  EXPECT_EQ(builtin_interest_sets_text().substr(0, 1), "#");
  ASSERT_EQ(table.size(), 109u);
  for (int64_t w = 3; w <= 111; ++w) {
    const auto* e = table.find(w);
    ASSERT_NE(e, nullptr) << "W=" << w;
    EXPECT_NO_THROW(validate_interest_set(w, e->interest)) << "W=" << w;
    EXPECT_EQ(first_uncovered_difference(w, e->interest), 0) << "W=" << w;
    const auto doc = doc_table().find(w);
    if (doc != doc_table().end()) {
      EXPECT_EQ(e->provenance, "paper") << "W=" << w;
      EXPECT_EQ(e->interest, doc->second) << "W=" << w;
    } else {
      EXPECT_EQ(e->provenance, "search") << "W=" << w;
      // The search meets the counting bound or exceeds it by one element everywhere in 3..111.
      const auto k = static_cast<int64_t>(e->interest.size());
      EXPECT_GE(k, counting_bound(w)) << "W=" << w;
      EXPECT_LE(k, counting_bound(w) + 1) << "W=" << w;
    }
  }
  EXPECT_EQ(table.find(2), nullptr);
  EXPECT_EQ(table.find(112), nullptr);
}

TEST(CqsSchedule, MatchesTheRepoSchedulerForEveryBuiltinRow) {
  for (int64_t W = 3; W <= 111; ++W) {
    const auto s = make_cqs_schedule(W * 2, W);
    const auto repo = repo_scheduler(W, s.interest);
    for (int64_t i = 0; i < W; ++i) {
      const auto& w = s.worker(i);
      ASSERT_EQ(w.kept_pairs, repo[i].distilled) << "W=" << W << " worker " << i;
      // The repo's distilled quorum always holds the worker's own group through the pair (i, i+1).
      ASSERT_EQ(w.groups, std::vector<int64_t>(repo[i].material.begin(), repo[i].material.end()))
          << "W=" << W << " worker " << i;
      std::vector<Tile> tl = {{i, i}};
      for (const auto& [a, b] : repo[i].distilled) tl.insert(tl.end(), {{a, b}, {b, a}});
      std::sort(tl.begin(), tl.end());
      ASSERT_EQ(w.tiles, tl) << "W=" << W << " worker " << i;
      std::vector<int64_t> quorum;
      for (int64_t a : s.interest) quorum.push_back((a + i) % W);
      ASSERT_EQ(w.quorum, quorum);
    }
  }
}

TEST(CqsSchedule, EveryTileOwnedOnceAtGroupGranularityForLargeN) {
  for (int64_t W = 3; W <= 111; ++W)
    for (int64_t N : {W * 1000, W * 1000 + 17, W * 4096 + W - 1}) {
      const auto s = make_cqs_schedule(N, W);
      ASSERT_EQ(s.group_begin.front(), 0);
      ASSERT_EQ(s.group_begin.back(), N);
      expect_tiles_owned_once(s);
      int64_t owned = 0;
      for (const auto& w : s.workers_) owned += w.owned_cells();
      ASSERT_EQ(owned, N * N) << "W=" << W << " N=" << N;
    }
}

TEST(CqsSchedule, EveryCellOwnedOnceAtTokenGranularity) {
  for (int64_t W = 3; W <= 111; ++W) {
    std::vector<int64_t> lengths = {W, 5 * W + 3};
    if (W <= 40) lengths.insert(lengths.end(), {2 * W - 1, 3 * W, 7 * W + W - 1});
    for (int64_t N : lengths) {
      const auto s = make_cqs_schedule(N, W);
      expect_tiles_owned_once(s);
      expect_cells_owned_once(s);
      if (HasFailure()) return;
    }
  }
}

TEST(CqsSchedule, GroupsSplitLikeGenTgTkMap) {
  // q, r = divmod(10, 4) = 2, 2: the first W-r = 2 groups get 2 tokens, the last 2 get 3.
  const auto s = make_cqs_schedule(10, 4);
  EXPECT_EQ(s.group_begin, (std::vector<int64_t>{0, 2, 4, 7, 10}));
  for (int64_t W : {3, 7, 31, 111})
    for (int64_t N : {W, W + 1, 2 * W - 1, 5 * W + 3, 1000 * W + W / 2}) {
      const auto t = make_cqs_schedule(N, W);
      const int64_t q = N / W, r = N % W;
      for (int64_t g = 0; g < W; ++g) {
        ASSERT_EQ(t.group_size(g), g < W - r ? q : q + 1);
        for (int64_t tok : {t.group_begin[g], t.group_begin[g + 1] - 1}) ASSERT_EQ(t.group_of(tok), g);
      }
    }
}

TEST(CqsSchedule, LongestMaterialFractionMatchesThePaper) {
  const std::map<int64_t, double> expected = {{3, 0.667},  {4, 0.750},  {7, 0.429},  {8, 0.5},
                                              {13, 0.308}, {21, 0.238}, {31, 0.194}, {57, 0.140},
                                              {73, 0.123}, {91, 0.110}, {111, 0.108}};
  for (const auto& [W, f] : expected) {
    const auto s = make_cqs_schedule(W * 1000, W);
    EXPECT_NEAR(s.longest_material_fraction(), f, 5e-4) << "W=" << W;
    EXPECT_EQ(s.peak_material_tokens(), static_cast<int64_t>(s.interest.size()) * 1000) << "W=" << W;
  }
}

TEST(CqsSchedule, PerfectDifferenceSetsUseTheWholeQuorumAndOwnWTiles) {
  for (int64_t W : {7, 13, 21, 31, 57, 73, 91}) {
    const auto s = make_cqs_schedule(W * 10, W);
    const auto k = static_cast<int64_t>(s.interest.size());
    ASSERT_EQ(k * (k - 1) + 1, W);
    for (const auto& w : s.workers_) {
      EXPECT_EQ(static_cast<int64_t>(w.groups.size()), k);
      EXPECT_EQ(static_cast<int64_t>(w.kept_pairs.size()), k * (k - 1) / 2);
      EXPECT_EQ(static_cast<int64_t>(w.tiles.size()), W);
      EXPECT_EQ(w.owned_cells(), W * 100);
    }
    EXPECT_EQ(s.max_tiles_per_worker(), W);
    EXPECT_EQ(s.peak_owned_cells(), W * 100);
    EXPECT_EQ(s.total_material_tokens(), W * k * 10);
  }
}

TEST(CqsSchedule, MaterialLeavesOutQuorumGroupsWithNoOwnedTile) {
  // W=4, I={0,1,2}: pairs (0,1) d=1, (0,2) d=2=W/2, (1,2) d=1 (dropped). Workers 2 and 3 do not keep the
  // W/2 pair, so group i+2 of their quorum is in no owned tile.
  const auto s = make_cqs_schedule(40, 4);
  EXPECT_EQ(s.worker(0).groups, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(s.worker(2).quorum, (std::vector<int64_t>{2, 3, 0}));
  EXPECT_EQ(s.worker(2).groups, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(s.worker(3).groups, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(s.worker(2).material_size(), 20);
  EXPECT_EQ(s.worker(2).tiles, (std::vector<Tile>{{2, 2}, {2, 3}, {3, 2}}));
  EXPECT_EQ(s.owner(0, 2), 0);
  EXPECT_EQ(s.owner(2, 0), 0);
  EXPECT_EQ(s.owner(1, 3), 1);
  EXPECT_EQ(s.owner(3, 1), 1);
  EXPECT_EQ(s.peak_material_tokens(), 30);
}

TEST(CqsSchedule, LocalIndicesAndTokenRanges) {
  for (int64_t W : {4, 7, 8, 31})
    for (int64_t N : {W, 3 * W + 2, 5 * W + 3}) {
      const auto s = make_cqs_schedule(N, W);
      for (const auto& w : s.workers_) {
        const auto tokens = w.material_tokens();
        ASSERT_TRUE(std::is_sorted(tokens.begin(), tokens.end()));
        std::vector<int64_t> local(static_cast<size_t>(N), -1);
        for (size_t j = 0; j < tokens.size(); ++j) local[tokens[j]] = static_cast<int64_t>(j);
        for (int64_t t = 0; t < N; ++t) ASSERT_EQ(w.local_index(t), local[t]) << "W=" << W << " token " << t;
        EXPECT_EQ(w.local_index(-1), -1);
        EXPECT_EQ(w.local_index(N), -1);
        std::vector<int64_t> from_ranges;
        const auto ranges = w.token_ranges();
        for (size_t r = 0; r < ranges.size(); ++r) {
          if (r > 0) {
            ASSERT_LT(ranges[r - 1].second, ranges[r].first);  // maximal runs
          }
          for (int64_t t = ranges[r].first; t < ranges[r].second; ++t) from_ranges.push_back(t);
        }
        ASSERT_EQ(from_ranges, tokens);
        for (size_t j = 0; j < w.groups.size(); ++j) ASSERT_EQ(w.local_group(w.groups[j]), static_cast<int64_t>(j));
      }
    }
}

TEST(CqsSchedule, SequenceShorterThanWorkersIsAnError) {
  const auto msg = error_of([] { make_cqs_schedule(5, 7); });
  EXPECT_NE(msg.find("5 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("W=7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at most 5 workers"), std::string::npos) << msg;
  EXPECT_NO_THROW(make_cqs_schedule(7, 7));
  EXPECT_NE(error_of([] { make_cqs_schedule(2, 3, std::vector<int64_t>{0, 1}); }).find("2 tokens"), std::string::npos);
}

TEST(CqsSchedule, ExplicitInterestSetIsValidated) {
  const auto msg = error_of([] { make_cqs_schedule(70, 7, std::vector<int64_t>{0, 1, 2}); });
  EXPECT_NE(msg.find("first uncovered difference is 3"), std::string::npos) << msg;
  const auto ok = make_cqs_schedule(70, 7, std::vector<int64_t>{0, 1, 5});
  expect_tiles_owned_once(ok);
  expect_cells_owned_once(ok);
  // W=2 is outside the built-in table but works with {0, 1}: the one pair has d = W/2, kept by worker 0.
  const auto two = make_cqs_schedule(6, 2, std::vector<int64_t>{0, 1});
  EXPECT_EQ(two.worker(0).tiles, (std::vector<Tile>{{0, 0}, {0, 1}, {1, 0}}));
  EXPECT_EQ(two.worker(1).tiles, (std::vector<Tile>{{1, 1}}));
  EXPECT_EQ(two.worker(1).groups, (std::vector<int64_t>{1}));
  expect_cells_owned_once(two);
  EXPECT_NE(error_of([] { make_cqs_schedule(300, 112); }).find("no row for W=112"), std::string::npos);
}

TEST(CqsInterestSets, ValidationMessages) {
  EXPECT_EQ(first_uncovered_difference(7, {0, 1, 2}), 3);
  EXPECT_EQ(first_uncovered_difference(7, {0, 1, 3}), 0);
  const auto cover = error_of([] { validate_interest_set(7, {0, 1, 2}); });
  EXPECT_NE(cover.find("not a difference cover of Z_7"), std::string::npos) << cover;
  EXPECT_NE(cover.find("first uncovered difference is 3"), std::string::npos) << cover;
  EXPECT_NE(error_of([] { validate_interest_set(7, {1, 3}); }).find("must contain 0"), std::string::npos);
  EXPECT_NE(error_of([] { validate_interest_set(7, {0, 3, 5}); }).find("must contain 1"), std::string::npos);
  EXPECT_NE(error_of([] { validate_interest_set(7, {0, 1, 1, 3}); }).find("duplicate entry 1"), std::string::npos);
  EXPECT_NE(error_of([] {
              validate_interest_set(7, {0, 1, 5, 3});
            }).find("not ascending (3 after 5)"),
            std::string::npos);
  EXPECT_NE(error_of([] { validate_interest_set(7, {0, 1, 7}); }).find("outside [0, 7)"), std::string::npos);
  EXPECT_NE(error_of([] { validate_interest_set(1, {0}); }).find("at least 2 workers"), std::string::npos);
}

TEST(CqsInterestSets, TileCheckNamesTheTileAndItsOwners) {
  const auto s = make_cqs_schedule(70, 7);
  std::vector<std::vector<Tile>> tiles;
  for (const auto& w : s.workers_) tiles.push_back(w.tiles);
  EXPECT_NO_THROW(check_tiles_owned_once(7, tiles));

  auto twice = tiles;
  twice[3].push_back({0, 1});
  const int64_t first_owner = s.owner(0, 1);
  const auto msg = error_of([&] { check_tiles_owned_once(7, twice); });
  EXPECT_NE(msg.find("tile (query group 0, key group 1) is owned 2 times"), std::string::npos) << msg;
  EXPECT_NE(msg.find("workers " + std::to_string(std::min<int64_t>(first_owner, 3)) + ", " +
                     std::to_string(std::max<int64_t>(first_owner, 3))),
            std::string::npos)
      << msg;

  auto missing = tiles;
  auto& own = missing[static_cast<size_t>(s.owner(2, 5))];
  own.erase(std::find(own.begin(), own.end(), Tile{2, 5}));
  const auto msg2 = error_of([&] { check_tiles_owned_once(7, missing); });
  EXPECT_NE(msg2.find("tile (query group 2, key group 5) is owned by no worker"), std::string::npos) << msg2;
}

TEST(CqsInterestSets, MalformedTablesNameTheSourceAndLine) {
  struct Case {
    const char* text;
    const char* expect;
  };
  const Case cases[] = {
      {"# header\n3\t0,1\tpaper\n4\t0,x,2\tpaper\n", "mysrc:3: bad number 'x' in the interest set of W=4"},
      {"3\t0,1\nfive\t0,1,2\n", "mysrc:2: bad number 'five' in the W field"},
      {"7\t0,1,\n", "mysrc:1: bad number ''"},
      {"\n\n5\t1,2,4\n", "mysrc:3: interest set {1,2,4} for W=5: must contain 0"},
      {"5\t0,2,4\n", "mysrc:1: interest set {0,2,4} for W=5: must contain 1"},
      {"3\t0,1\n# comment\n3\t0,1\n", "mysrc:3: duplicate W=3 (first on line 1)"},
      {"4\t0,1,2\n3\t0,1\n", "mysrc:2: W=3 after W=4 (line 1): rows must be in increasing W"},
      {"7\t0,1,5,3\n", "mysrc:1: interest set {0,1,5,3} for W=7: entries not ascending"},
      {"7\t0,1,2\tpaper\n",
       "mysrc:1: interest set {0,1,2} is not a difference cover of Z_7: the first uncovered "
       "difference is 3"},
      {"7\n", "mysrc:1: expected 'W<TAB>I<TAB>source'"},
      {"7\t0,1,3\tpaper\textra\n", "got 4 field(s)"},
      {"# nothing but comments\n\n", "mysrc: no interest-set rows"},
  };
  for (const auto& c : cases) {
    const auto msg = error_of([&] { parse_interest_sets(c.text, "mysrc"); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "text: " << c.text << "\nmessage: " << msg;
  }
  // Aligned columns, spaces, CRLF and a missing source field are fine.
  const auto t = parse_interest_sets("# W I source\r\n7\t\t0, 1, 3 \tpaper\r\n  8\t0,1,2,4\r\n", "ok");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t.at(7).interest, (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(t.at(7).provenance, "paper");
  EXPECT_EQ(t.at(7).line, 2);
  EXPECT_EQ(t.at(8).provenance, "");
  const auto absent = error_of([&] { t.at(9); });
  EXPECT_NE(absent.find("'ok' has no row for W=9 (it has 2 rows, W=7..8)"), std::string::npos) << absent;
}

TEST(CqsInterestSets, LoadsAUserTableFile) {
  const auto path = std::filesystem::path(::testing::TempDir()) / "cqs_user_interest_sets.txt";
  {
    std::ofstream f(path);
    f << "# my sets\n7\t0,1,5\tmine\n9\t0,1,2,4\n";
  }
  const auto table = load_interest_sets(path);
  EXPECT_EQ(table.source_name(), path.string());
  EXPECT_EQ(table.at(7).interest, (std::vector<int64_t>{0, 1, 5}));
  EXPECT_EQ(table.at(7).provenance, "mine");
  const auto s = make_cqs_schedule(7 * 9, 7, table);
  EXPECT_EQ(s.interest, (std::vector<int64_t>{0, 1, 5}));
  expect_cells_owned_once(s);
  const auto msg = error_of([&] { make_cqs_schedule(80, 8, table); });
  EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("no row for W=8"), std::string::npos) << msg;

  {
    std::ofstream f(path);
    f << "7\t0,1,5\n7\t0,1,3\n";
  }
  EXPECT_NE(error_of([&] { load_interest_sets(path); }).find(path.string() + ":2: duplicate W=7"), std::string::npos);
  std::filesystem::remove(path);
  EXPECT_NE(error_of([&] { load_interest_sets(path); }).find(path.string()), std::string::npos);
}

}  // namespace
}  // namespace dense::parallel
