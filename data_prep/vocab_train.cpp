#include "data_prep/vocab_train.h"

#include <algorithm>
#include <map>
#include <queue>
#include <set>

#include "core/error.h"

namespace dense::data {

// ---- WordCounter -------------------------------------------------------------------------------------

WordCounter::WordCounter(BasicTokenizerOptions options) : basic_(options) {}

void WordCounter::add_text(std::string_view text) {
  scratch_.clear();
  invalid_ += basic_.split(text, scratch_);
  for (size_t k = 0; k < scratch_.size(); ++k) add_word(scratch_[k], 1);
}

void WordCounter::add_word(std::string_view word, int64_t count) {
  if (word.empty() || count <= 0) return;
  auto it = counts_.find(word);
  if (it == counts_.end()) {
    counts_.emplace(std::string(word), count);
  } else {
    it->second += count;
  }
  total_ += count;
}

void WordCounter::merge(const WordCounter& other) {
  for (const auto& [w, c] : other.counts_) add_word(w, c);
  invalid_ += other.invalid_;
}

std::vector<std::pair<std::string, int64_t>> WordCounter::sorted() const {
  std::vector<std::pair<std::string, int64_t>> out(counts_.begin(), counts_.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

// ---- training ----------------------------------------------------------------------------------------

namespace {

constexpr std::string_view kPrefix = "##";

inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Candidate {
  int64_t count;
  uint64_t key;
  // Max-heap order: higher count first, then the smaller pair of ids.
  bool operator<(const Candidate& o) const { return count != o.count ? count < o.count : key > o.key; }
};

struct TrainWord {
  std::vector<int32_t> sym;
  int64_t count;
};

}  // namespace

std::vector<std::string> train_wordpiece_vocab(const WordCounter& counter, const VocabTrainOptions& opt) {
  // 1. Special tokens first.
  std::vector<std::string> vocab;
  std::unordered_map<std::string, int32_t> index;
  auto add_token = [&](const std::string& t) -> int32_t {
    auto it = index.find(t);
    if (it != index.end()) return it->second;
    const auto id = static_cast<int32_t>(vocab.size());
    vocab.push_back(t);
    index.emplace(t, id);
    return id;
  };
  for (const auto& s : opt.special_tokens) {
    DENSE_CHECK(!s.empty(), "vocab training: empty special token");
    add_token(s);
  }
  DENSE_CHECK(opt.vocab_size >= vocab.size(), "vocab training: vocab_size {} is smaller than the {} special tokens",
              opt.vocab_size, vocab.size());

  // 2. Words as code points, and the alphabet with its frequencies.
  const auto words_sorted = counter.sorted();
  std::vector<std::vector<char32_t>> word_cps;
  std::vector<int64_t> word_count;
  std::map<char32_t, int64_t> char_freq;
  for (const auto& [w, c] : words_sorted) {
    std::vector<char32_t> cps;
    size_t i = 0;
    bool bad = false;
    while (i < w.size()) cps.push_back(decode_utf8(w.data(), w.size(), i, bad));
    if (cps.empty() || cps.size() > opt.max_input_chars_per_word) continue;
    for (const char32_t cp : cps) char_freq[cp] += c;
    word_cps.push_back(std::move(cps));
    word_count.push_back(c);
  }

  // 3. Which characters are kept (all, unless the alphabet is too large).
  std::set<char32_t> cont_chars;
  for (const auto& cps : word_cps)
    for (size_t k = 1; k < cps.size(); ++k) cont_chars.insert(cps[k]);
  std::set<char32_t> kept;
  for (const auto& [cp, f] : char_freq) kept.insert(cp);
  auto base_size = [&]() {
    size_t n = vocab.size() + kept.size();
    for (const char32_t cp : cont_chars) n += kept.count(cp);
    return n;
  };
  if (base_size() > opt.vocab_size || (opt.limit_alphabet > 0 && kept.size() > opt.limit_alphabet)) {
    std::vector<std::pair<int64_t, char32_t>> by_freq;
    for (const auto& [cp, f] : char_freq) by_freq.push_back({f, cp});
    // Rarest first; among equals the larger code point goes first.
    std::sort(by_freq.begin(), by_freq.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second > b.second;
    });
    size_t k = 0;
    while (k < by_freq.size() &&
           (base_size() > opt.vocab_size || (opt.limit_alphabet > 0 && kept.size() > opt.limit_alphabet)))
      kept.erase(by_freq[k++].second);
  }

  // 4. Initial vocabulary: characters in code-point order, then their "##" forms.
  std::unordered_map<char32_t, int32_t> initial_id, cont_id;
  for (const char32_t cp : kept) {
    std::string s;
    append_utf8(s, cp);
    initial_id[cp] = add_token(s);
  }
  for (const char32_t cp : cont_chars) {
    if (!kept.count(cp)) continue;
    std::string s(kPrefix);
    append_utf8(s, cp);
    cont_id[cp] = add_token(s);
  }

  // 5. Words as symbol sequences; pair counts and where each pair occurs.
  std::vector<TrainWord> words;
  for (size_t w = 0; w < word_cps.size(); ++w) {
    const auto& cps = word_cps[w];
    if (!std::all_of(cps.begin(), cps.end(), [&](char32_t cp) { return kept.count(cp) > 0; })) continue;
    TrainWord tw;
    tw.count = word_count[w];
    tw.sym.reserve(cps.size());
    for (size_t k = 0; k < cps.size(); ++k) tw.sym.push_back(k == 0 ? initial_id[cps[k]] : cont_id[cps[k]]);
    words.push_back(std::move(tw));
  }
  word_cps.clear();
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].sym;
    for (size_t k = 0; k + 1 < s.size(); ++k) {
      const uint64_t key = pair_key(s[k], s[k + 1]);
      pair_count[key] += words[w].count;
      auto& where = pair_words[key];
      if (where.empty() || where.back() != static_cast<int32_t>(w)) where.push_back(static_cast<int32_t>(w));
    }
  }
  std::priority_queue<Candidate> queue;
  for (const auto& [key, c] : pair_count)
    if (c > 0) queue.push({c, key});

  // 6. Merge.
  const int64_t min_freq = std::max<int64_t>(opt.min_frequency, 1);
  std::vector<int32_t> merged;
  std::vector<uint64_t> grown;
  while (vocab.size() < opt.vocab_size && !queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    const auto it = pair_count.find(top.key);
    const int64_t current = it == pair_count.end() ? 0 : it->second;
    if (current != top.count) {
      if (current > 0) queue.push({current, top.key});
      continue;
    }
    if (top.count < min_freq) break;
    const auto a = static_cast<int32_t>(top.key >> 32);
    const auto b = static_cast<int32_t>(top.key & 0xffffffffu);
    std::string_view part_b = vocab[static_cast<size_t>(b)];
    if (part_b.substr(0, kPrefix.size()) == kPrefix) part_b.remove_prefix(kPrefix.size());
    const int32_t c = add_token(vocab[static_cast<size_t>(a)] + std::string(part_b));

    auto where = std::move(pair_words[top.key]);
    pair_words.erase(top.key);
    std::sort(where.begin(), where.end());
    where.erase(std::unique(where.begin(), where.end()), where.end());
    grown.clear();
    for (const int32_t w : where) {
      auto& word = words[static_cast<size_t>(w)];
      auto& s = word.sym;
      merged.clear();
      bool changed = false;
      for (size_t k = 0; k < s.size();) {
        if (k + 1 < s.size() && s[k] == a && s[k + 1] == b) {
          merged.push_back(c);
          k += 2;
          changed = true;
        } else {
          merged.push_back(s[k]);
          k += 1;
        }
      }
      if (!changed) continue;
      for (size_t k = 0; k + 1 < s.size(); ++k) pair_count[pair_key(s[k], s[k + 1])] -= word.count;
      for (size_t k = 0; k + 1 < merged.size(); ++k) {
        const uint64_t key = pair_key(merged[k], merged[k + 1]);
        pair_count[key] += word.count;
        if (merged[k] == c || merged[k + 1] == c) {
          pair_words[key].push_back(w);
          grown.push_back(key);
        }
      }
      s.swap(merged);
    }
    pair_count.erase(top.key);
    std::sort(grown.begin(), grown.end());
    grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    for (const uint64_t key : grown) {
      const int64_t cnt = pair_count[key];
      if (cnt > 0) queue.push({cnt, key});
    }
  }
  return vocab;
}

std::vector<std::string> train_wordpiece_vocab(const std::function<bool(std::string&)>& next_text,
                                               const VocabTrainOptions& options) {
  BasicTokenizerOptions b;
  b.lowercase = options.lowercase;
  b.strip_accents = options.strip_accents;
  b.tokenize_chinese_chars = options.tokenize_chinese_chars;
  WordCounter counter(b);
  std::string text;
  while (next_text(text)) counter.add_text(text);
  return train_wordpiece_vocab(counter, options);
}

std::vector<std::string> train_wordpiece_vocab(const std::function<bool(std::string&)>& next_text, size_t vocab_size,
                                               int64_t min_frequency, bool lowercase) {
  VocabTrainOptions o;
  o.vocab_size = vocab_size;
  o.min_frequency = min_frequency;
  o.lowercase = lowercase;
  return train_wordpiece_vocab(next_text, o);
}

}  // namespace dense::data
