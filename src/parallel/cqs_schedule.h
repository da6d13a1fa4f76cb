#pragma once
// CQS-Attention work assignment (Bian & Somani, "CQS-Attention", IEEE Access 2025; the CQS_Attention repo's
// Scheduler; docs/sparse-attention.md). Exact attention over N tokens is split
// among W workers so that each one holds only about |I|/W of the tokens:
//   - the N tokens form W contiguous groups G_0..G_{W-1} (the first W-r get q tokens, the last r get q+1,
//     q, r = divmod(N, W)), so the N x N score matrix is a W x W grid of group tiles;
//   - an interest set I (a difference cover of Z_W containing 0 and 1) gives worker i the quorum
//     Q_i = I + i mod W;
//   - worker i lists the unordered pairs of Q_i in the index order of I and keeps the first pair of each
//     difference class {d, W-d} (self-distillation); the class d = W/2 is kept only by workers i < W/2;
//   - worker i owns the diagonal tile (G_i, G_i) and both tiles (G_a, G_b), (G_b, G_a) of every kept pair.
// Every tile then has exactly one owner. Worker i computes attention over its material (the tokens of the
// groups its owned tiles touch) restricted to its owned tiles, and the partial results (O_i and the row
// log-sum-exp) are merged per token row; each row appears in about |I| workers.
//
// Material: the groups that appear in the worker's owned tiles, which is what the repo's gen_Distilled_CQS
// builds (the "distilled quorum"). For perfect difference sets that is the whole quorum. For relaxed covers a
// quorum group whose pairs were all dropped is left out: it would cost memory and transfer and contribute no
// owned cell (W=4, I={0,1,2}: worker 2's quorum is {2,3,0}, its material {2,3}). The doc's prose calls the
// material "every token of the groups in its distilled quorum"; the full quorum is kept in Worker::quorum.
//
// Tables: a built-in table for W = 3..111 (data/cqs/interest_sets.txt, embedded in the library; its header
// says where each row comes from and which sizes are proven minimal), or a user file in the same format.
// Every row is validated on load: structure, the difference-cover property, and exact ownership of every
// tile by the schedule built from it. Errors are dense::Error naming the source and line.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dense::parallel {

struct InterestSetEntry {
  std::vector<int64_t> interest;  // ascending, starts 0, 1
  std::string provenance;         // the row's third field: "paper" or "search" in the built-in table
  int64_t line = 0;               // 1-based line of the row in its source text
};

class InterestSetTable {
 public:
  InterestSetTable() = default;
  explicit InterestSetTable(std::string source_name) : source_name_(std::move(source_name)) {}

  const std::string& source_name() const { return source_name_; }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  const std::map<int64_t, InterestSetEntry>& entries() const { return entries_; }
  // nullptr when the table has no row for `workers`.
  const InterestSetEntry* find(int64_t workers) const;
  // Throws when absent, naming the table and the W it has.
  const InterestSetEntry& at(int64_t workers) const;

  // Adds a row after validate_interest_set; throws on a W that is already present.
  void add(int64_t workers, InterestSetEntry entry);

 private:
  std::string source_name_;
  std::map<int64_t, InterestSetEntry> entries_;
};

// Text format (data/cqs/interest_sets.txt): one row per line, `W <tab> I <tab> source` with I comma-separated
// (the source field may be omitted); rows in strictly increasing W; blank lines and lines starting with '#'
// are skipped; spaces around fields and numbers are ignored. Every row is validated (validate_interest_set).
// Errors read "<source_name>:<line>: ...".
InterestSetTable parse_interest_sets(std::string_view text, const std::string& source_name);
// A user table in the same format; errors name the file.
InterestSetTable load_interest_sets(const std::filesystem::path& path);
// The embedded W = 3..111 table, parsed and validated on first use.
const InterestSetTable& builtin_interest_sets();
// The embedded text of data/cqs/interest_sets.txt.
std::string_view builtin_interest_sets_text();

// The smallest d in 1..W-1 that is no difference a-b mod W of elements of `interest`; 0 for a cover.
int64_t first_uncovered_difference(int64_t workers, const std::vector<int64_t>& interest);
// Throws unless: W >= 2 (and at most kMaxCqsWorkers); the entries are ascending and distinct, in [0, W), and
// include 0 and 1; they form a difference cover (else the message names the first uncovered difference);
// and the schedule built from them owns every (group, group) tile exactly once (check_tiles_owned_once).
void validate_interest_set(int64_t workers, const std::vector<int64_t>& interest);
// tiles_per_worker[w] lists worker w's owned (query group, key group) tiles. Throws unless each of the
// W x W tiles appears exactly once; the message names the first tile in row-major order that has no owner
// or several, and the workers that own it.
void check_tiles_owned_once(int64_t workers,
                            const std::vector<std::vector<std::pair<int64_t, int64_t>>>& tiles_per_worker);

// Tile checks cost O(W^2) memory and time; schedules are meant for up to a few hundred workers.
inline constexpr int64_t kMaxCqsWorkers = 4096;

// Rows [query_begin, query_end) and columns [key_begin, key_end) of one owned tile, in the worker's local
// material indices.
struct CqsLocalTile {
  int64_t query_begin = 0, query_end = 0;
  int64_t key_begin = 0, key_end = 0;
};

struct CqsSchedule {
  int64_t seq_len = 0;               // N
  int64_t workers = 0;               // W
  std::vector<int64_t> interest;     // I
  std::vector<int64_t> group_begin;  // [W+1]: group g is tokens [group_begin[g], group_begin[g+1])
  // Ownership as a lookup table a kernel can use: tile (qg, kg) with d = (kg - qg) mod W belongs to worker
  // (qg - owner_shift[d]) mod W, except that in the class d = W/2 (W even) that worker index is reduced
  // mod W/2. owner_shift[0] = 0 (worker g owns the diagonal tile (g, g)).
  std::vector<int64_t> owner_shift;  // [W]

  struct Worker {
    int64_t index = 0;
    std::vector<int64_t> quorum;  // Q_i = I + i mod W, in the order of I
    // The distilled pair list: unordered group pairs (a, b), a < b, in the index order of I.
    std::vector<std::pair<int64_t, int64_t>> kept_pairs;
    std::vector<int64_t> groups;       // material groups, ascending
    std::vector<int64_t> token_begin;  // [groups.size()]: first global token of each material group
    std::vector<int64_t> local_begin;  // [groups.size()+1]: first local index of each material group
    // Owned (query group, key group) tiles sorted row-major, so one query group's tiles are adjacent: the
    // diagonal (index, index) and both orientations of every kept pair.
    std::vector<std::pair<int64_t, int64_t>> tiles;
    std::vector<CqsLocalTile> local_tiles;  // parallel to tiles

    // Tokens this worker receives (Q, K, V rows), = local_begin.back().
    int64_t material_size() const { return local_begin.empty() ? 0 : local_begin.back(); }
    // The material list MtrlL_i: global token indices, ascending; local index j is material_tokens()[j].
    std::vector<int64_t> material_tokens() const;
    // The material as maximal runs [begin, end) of consecutive global tokens (adjacent groups merged), for
    // gathering Q, K, V with one copy per run.
    std::vector<std::pair<int64_t, int64_t>> token_ranges() const;
    // Global token -> local material index, or -1 when the token is not in the material. O(log |groups|).
    int64_t local_index(int64_t token) const;
    // Position of a group in `groups`, or -1.
    int64_t local_group(int64_t group) const;
    // Whether this worker owns tile (query group, key group).
    bool owns(int64_t query_group, int64_t key_group) const;
    // Score-matrix cells in its owned tiles (the work of a block-sparse kernel).
    int64_t owned_cells() const;
  };
  std::vector<Worker> workers_;

  const Worker& worker(int64_t w) const;
  int64_t group_size(int64_t group) const;
  int64_t group_of(int64_t token) const;
  // The worker that owns tile (query group, key group), via owner_shift.
  int64_t owner(int64_t query_group, int64_t key_group) const;
  // The worker that owns score cell (query token, key token).
  int64_t owner_of_cell(int64_t query_token, int64_t key_token) const;

  // Statistics for memory planning and benchmarks.
  int64_t peak_material_tokens() const;      // the longest subsequence a worker holds
  int64_t total_material_tokens() const;     // summed over workers: the Q/K/V rows sent out, and the partial rows
                                             // merged back
  double longest_material_fraction() const;  // peak_material_tokens() / N
  int64_t max_tiles_per_worker() const;
  int64_t peak_owned_cells() const;
};

// The schedule for N tokens on W workers with the table's interest set for W. Throws when the table has no
// row for W, or when N < W: every token group must hold at least one token, so ask for at most N workers.
CqsSchedule make_cqs_schedule(int64_t seq_len, int64_t workers,
                              const InterestSetTable& table = builtin_interest_sets());
// The same with an explicit interest set, validated first (validate_interest_set).
CqsSchedule make_cqs_schedule(int64_t seq_len, int64_t workers, std::vector<int64_t> interest_set);

}  // namespace dense::parallel
