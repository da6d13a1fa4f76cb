#pragma once
// LRA ListOps (data-sources §4b, docs/model.md §3.5): the generator of lra_benchmarks/data/listops.py, an evaluator,
// the release TSV format (header "Source\tTarget", source in the nested binary-tuple rendering) and the
// conversion to token ids, keeping `]` and the `[OP` tokens (LRA issue #14).
//
// Generator rules (listops.py): generate_tree(depth=1): r = uniform() if depth < max_depth else 1; r > 0.25
// -> a leaf (uniform digit 0..9, length 1); else n = randint(2, max_args) children generated at depth+1, then
// the operator uniform from [MIN [MAX [MED [SM; length = 2 + sum of the children's lengths. A tree is kept when
// min_length < length < max_length (strict), duplicates are dropped, and trees are drawn until
// train + val + test are filled; the first num_train kept trees are train, then val, then test.
// Randomness: candidate tree k draws from PhiloxStream::for_example(seed, k) (so candidates can be drawn in
// parallel and the result is the same on any thread count); a candidate is abandoned as soon as its length
// reaches max_length (it would be rejected anyway).
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data_prep/lra_common.h"

namespace dense::data::lra {

// The fixed 17-token vocabulary of docs/model.md §3.5.
enum ListOpsToken : uint8_t {
  kListOpsPad = 0,
  kListOpsMax = 1,
  kListOpsMin = 2,
  kListOpsMed = 3,
  kListOpsSm = 4,
  kListOpsEnd = 5,     // "]"
  kListOpsDigit0 = 6,  // digits 0..9 are 6..15
  kListOpsCls = 16,
};
inline constexpr int kListOpsVocabSize = 17;
inline bool listops_is_op(uint8_t t) { return t >= kListOpsMax && t <= kListOpsSm; }
inline bool listops_is_digit(uint8_t t) { return t >= kListOpsDigit0 && t < kListOpsDigit0 + 10; }

// Token text ("[MAX", "]", "7", "[PAD]", "[CLS]") and back; unknown text throws.
std::string_view listops_token_text(uint8_t id);
uint8_t listops_token_id(std::string_view text);

struct ListOpsExample {
  std::vector<uint8_t> tokens;  // prefix order without parentheses: [MAX 2 9 ] ...
  int32_t target = 0;           // 0..9
};

struct ListOpsConfig {
  int max_depth = 10;
  int max_args = 10;
  int min_length = 500;   // exclusive
  int max_length = 2000;  // exclusive
  int64_t num_train = 96000;
  int64_t num_val = 2000;
  int64_t num_test = 2000;
  uint64_t seed = 0;
  int64_t max_candidates = 0;  // give up (error) after this many candidate trees; 0 = 10'000 per example
};

struct ListOpsDataset {
  std::vector<ListOpsExample> train, val, test;
  int64_t candidates = 0;  // trees drawn in all
  int64_t duplicates = 0;  // kept-length trees dropped as duplicates
};

// One candidate tree from `rng` (listops.py generate_tree from depth 1). Returns false (tokens partial) when
// the tree reaches `max_length` tokens; pass max_length <= 0 to draw the whole tree.
bool listops_generate_tree(PhiloxStream& rng, const ListOpsConfig& config, std::vector<uint8_t>& tokens);
ListOpsDataset generate_listops(const ListOpsConfig& config);

// Value of a prefix token sequence; throws dense::Error on a malformed sequence.
int32_t listops_evaluate(std::span<const uint8_t> tokens);
// The release "Source" rendering: [MAX 2 9 ] -> "( ( ( [MAX 2 ) 9 ) ] )".
std::string listops_render(std::span<const uint8_t> tokens);
// Release tokenization: whitespace split, "(" and ")" dropped; unknown tokens throw (naming `where`).
std::vector<uint8_t> listops_tokenize(std::string_view source, std::string_view where = "ListOps source");

// TSV with header "Source\tTarget" (written with '\n' line ends; the reader also takes the release's CRLF).
void write_listops_tsv(const std::filesystem::path& path, std::span<const ListOpsExample> examples);
// Reads a release TSV (e.g. basic_train.tsv). Errors name file:line (bad header, column count, token,
// target outside 0..9). With `check_targets`, a target that disagrees with the evaluator is an error too.
std::vector<ListOpsExample> read_listops_tsv(const std::filesystem::path& path, bool check_targets = true);

struct ListOpsEncodeOptions {
  int64_t seq_len = 2000;         // the model expects exactly 2000 (docs/model.md §7 item 7)
  bool add_cls = true;            // CLS first (docs/model.md §3.5)
  bool pad_to_split_max = false;  // reference behaviour: pad to the split's longest row + CLS instead
};
// Token rows (CLS, tokens..., PAD...) with mask; a row longer than seq_len is an error.
TokenSet encode_listops(std::span<const ListOpsExample> examples, const ListOpsEncodeOptions& options = {});

}  // namespace dense::data::lra
