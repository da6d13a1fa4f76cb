#include "data/text_normalize.h"

#include <utf8proc.h>

#include <array>
#include <cstring>

namespace dense::data {

namespace {

// ---- ASCII tables --------------------------------------------------------------------------------

enum : uint8_t { kWord = 0, kSpace = 1, kControl = 2, kPunct = 3, kHigh = 4 };

constexpr std::array<uint8_t, 256> make_class_table() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t k = kWord;
    if (c >= 0x80) {
      k = kHigh;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      k = kSpace;
    } else if (c < 0x20 || c == 0x7f) {
      k = kControl;
    } else if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) {
      k = kPunct;
    }
    t[static_cast<size_t>(c)] = k;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClass = make_class_table();

// Bytes that end the pre-scan of an ASCII word: whitespace and any non-ASCII byte.
constexpr std::array<uint8_t, 256> make_stop_table() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) t[static_cast<size_t>(c)] = (kClass[static_cast<size_t>(c)] == kSpace || c >= 0x80);
  return t;
}
constexpr std::array<uint8_t, 256> kStop = make_stop_table();

constexpr std::array<char, 256> make_lower_table(bool lower) {
  std::array<char, 256> t{};
  for (int c = 0; c < 256; ++c) {
    int v = c;
    if (lower && c >= 'A' && c <= 'Z') v = c + ('a' - 'A');
    t[static_cast<size_t>(c)] = static_cast<char>(static_cast<unsigned char>(v));
  }
  return t;
}
constexpr std::array<char, 256> kLower = make_lower_table(true);
constexpr std::array<char, 256> kIdentity = make_lower_table(false);

inline utf8proc_category_t category(char32_t cp) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(cp)));
}

// Unicode "Cased" (Lowercase or Uppercase or Lt): the general categories plus the larger Other_Lowercase /
// Other_Uppercase ranges. Only used for the final-sigma rule.
bool is_cased(char32_t cp) {
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT: return true;
    default: break;
  }
  return cp == 0xAA || cp == 0xBA || (cp >= 0x2B0 && cp <= 0x2B8) || (cp >= 0x2C0 && cp <= 0x2C1) ||
         (cp >= 0x2E0 && cp <= 0x2E4) || cp == 0x345 || cp == 0x37A || (cp >= 0x1D2C && cp <= 0x1D6A) || cp == 0x1D78 ||
         (cp >= 0x1D9B && cp <= 0x1DBF) || cp == 0x2071 || cp == 0x207F || (cp >= 0x2090 && cp <= 0x209C) ||
         (cp >= 0x2160 && cp <= 0x217F) || (cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) ||
         (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189);
}

// Unicode "Case_Ignorable": Mn, Me, Cf, Lm, Sk and the MidLetter / MidNumLet / Single_Quote characters.
bool is_case_ignorable(char32_t cp) {
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK: return true;
    default: break;
  }
  switch (cp) {
    case 0x27:
    case 0x2E:
    case 0x3A:
    case 0xB7:
    case 0x387:
    case 0x55F:
    case 0x5F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A: return true;
    default: return false;
  }
}

// Python's str.lower() for U+03A3 at position k of `w`: final sigma when preceded by a cased letter and not
// followed by one (case-ignorable characters skipped both ways).
char32_t lower_sigma(const std::vector<char32_t>& w, size_t k) {
  size_t j = k;
  char32_t c = 0;
  bool found = false;
  while (j > 0) {
    c = w[--j];
    if (!is_case_ignorable(c)) {
      found = true;
      break;
    }
  }
  bool final_sigma = found && is_cased(c);
  if (final_sigma) {
    for (j = k + 1; j < w.size(); ++j) {
      if (!is_case_ignorable(w[j])) {
        final_sigma = !is_cased(w[j]);
        break;
      }
    }
  }
  return final_sigma ? 0x3C2 : 0x3C3;
}

int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class;
}

struct SlowScratch {
  std::vector<char32_t> cps;
  std::vector<char32_t> tmp;
};

}  // namespace

// ---- UTF-8 -----------------------------------------------------------------------------------------

char32_t decode_utf8(const char* str, size_t n, size_t& i, bool& invalid) {
  const auto* s = reinterpret_cast<const unsigned char*>(str);
  const unsigned b0 = s[i];
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int need = 0;
  char32_t cp = 0;
  unsigned lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    ++i;
    invalid = true;
    return 0xFFFD;
  }
  size_t j = i + 1;
  for (int k = 0; k < need; ++k) {
    if (j >= n || s[j] < lo || s[j] > hi) {
      i = j;
      invalid = true;
      return 0xFFFD;
    }
    cp = (cp << 6) | (s[j] & 0x3F);
    ++j;
    lo = 0x80;
    hi = 0xBF;
  }
  i = j;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    bool bad = false;
    decode_utf8(text.data(), text.size(), i, bad);
    if (bad) return false;
  }
  return true;
}

namespace {

// Length of the well-formed sequence at s[i] (1-4), or 0 with `bad` = the length of the maximal ill-formed
// subpart to replace (>= 1).
inline int utf8_sequence(const unsigned char* s, size_t n, size_t i, size_t& bad) {
  const unsigned char b = s[i];
  if (b < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    bad = 1;  // 80..C1, F5..FF: never a lead byte
    return 0;
  }
  size_t k = 1;
  for (; k < size_t(need); ++k) {
    if (i + k >= n) break;
    const unsigned char c = s[i + k];
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) break;
  }
  if (k == size_t(need)) return need;
  bad = k;  // the lead byte and the valid continuation bytes that followed it
  return 0;
}

}  // namespace

int64_t repair_utf8_inplace(std::string& str) {
  const auto* s = reinterpret_cast<const unsigned char*>(str.data());
  const size_t n = str.size();
  size_t i = 0;
  // Fast path: ASCII runs 8 bytes at a time, then validation without copying.
  for (;;) {
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) return 0;
    size_t bad = 0;
    const int len = utf8_sequence(s, n, i, bad);
    if (len == 0) break;
    i += size_t(len);
  }
  // Rewrite from the first ill-formed byte on.
  std::string out;
  out.reserve(n + 16);
  out.append(str, 0, i);
  int64_t replaced = 0;
  while (i < n) {
    size_t bad = 0;
    const int len = utf8_sequence(s, n, i, bad);
    if (len > 0) {
      out.append(reinterpret_cast<const char*>(s + i), size_t(len));
      i += size_t(len);
    } else {
      out.append("\xEF\xBF\xBD");
      ++replaced;
      i += bad;
    }
  }
  str.swap(out);
  return replaced;
}

std::string sanitize_utf8(std::string_view text, uint64_t* replaced) {
  std::string out(text);
  const int64_t count = repair_utf8_inplace(out);
  if (replaced) *replaced += uint64_t(count);
  return out;
}

// ---- classes ---------------------------------------------------------------------------------------

bool is_bert_whitespace(char32_t cp) {
  if (cp < 0x80) return kClass[cp] == kSpace;
  return cp == 0x2028 || cp == 0x2029 || category(cp) == UTF8PROC_CATEGORY_ZS;
}

bool is_bert_control(char32_t cp) {
  if (cp < 0x80) return kClass[cp] == kControl;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: return true;
    default: return false;
  }
}

bool is_bert_punctuation(char32_t cp) {
  if (cp < 0x80) return kClass[cp] == kPunct;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return true;
    default: return false;
  }
}

bool is_cjk_char(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// ---- basic tokenizer -------------------------------------------------------------------------------

BasicTokenizer::BasicTokenizer(BasicTokenizerOptions options) : opt_(options) {
  strip_ = opt_.strip_accents < 0 ? opt_.lowercase : opt_.strip_accents > 0;
}

uint64_t BasicTokenizer::split(std::string_view text, WordList& out) const {
  const char* s = text.data();
  const size_t n = text.size();
  const char* lower = opt_.lowercase ? kLower.data() : kIdentity.data();
  uint64_t invalid = 0;
  out.bytes.reserve(out.bytes.size() + n + 16);
  size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (kClass[c] == kSpace) {
      ++i;
      continue;
    }
    const size_t start = i;
    while (i < n && !kStop[static_cast<unsigned char>(s[i])]) ++i;
    if (i < n && static_cast<unsigned char>(s[i]) >= 0x80) {
      // The whitespace-delimited word holds non-ASCII text: the general path takes it from its start.
      i = slow_token(s, n, start, out, invalid);
      continue;
    }
    // [start, i) is ASCII without whitespace: lower-case, drop controls, split off punctuation.
    size_t word = out.bytes.size();
    for (size_t j = start; j < i; ++j) {
      const auto b = static_cast<unsigned char>(s[j]);
      const uint8_t k = kClass[b];
      if (k == kWord) {
        out.bytes.push_back(lower[b]);
      } else if (k == kPunct) {
        if (out.bytes.size() > word) {
          const auto len = static_cast<uint32_t>(out.bytes.size() - word);
          out.words.push_back({word, len, len});
        }
        out.words.push_back({out.bytes.size(), 1, 1});
        out.bytes.push_back(static_cast<char>(b));
        word = out.bytes.size();
      }  // controls are dropped
    }
    if (out.bytes.size() > word) {
      const auto len = static_cast<uint32_t>(out.bytes.size() - word);
      out.words.push_back({word, len, len});
    }
  }
  return invalid;
}

size_t BasicTokenizer::slow_token(const char* s, size_t n, size_t i, WordList& out, uint64_t& invalid) const {
  thread_local SlowScratch scratch;
  auto& cps = scratch.cps;
  cps.clear();
  // 1. Clean and collect the code points of one whitespace-delimited word (a CJK ideograph is a word).
  while (i < n) {
    const size_t at = i;
    char32_t cp;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      cp = static_cast<unsigned char>(s[i++]);
    } else {
      bool bad = false;
      cp = decode_utf8(s, n, i, bad);
      if (bad) ++invalid;
    }
    if (cp == 0 || cp == 0xFFFD || is_bert_control(cp)) continue;
    if (is_bert_whitespace(cp)) break;
    if (opt_.tokenize_chinese_chars && is_cjk_char(cp)) {
      if (cps.empty()) {
        cps.push_back(cp);
      } else {
        i = at;  // the ideograph starts the next word
      }
      break;
    }
    cps.push_back(cp);
  }
  if (cps.empty()) return i;

  // 2. Lower-case as Python's str.lower() does (U+0130 -> "i" U+0307, final sigma by context).
  if (opt_.lowercase) {
    auto& tmp = scratch.tmp;
    tmp.clear();
    for (size_t k = 0; k < cps.size(); ++k) {
      const char32_t cp = cps[k];
      if (cp < 0x80) {
        tmp.push_back(static_cast<unsigned char>(kLower[cp]));
      } else if (cp == 0x3A3) {
        tmp.push_back(lower_sigma(cps, k));
      } else if (cp == 0x130) {
        tmp.push_back('i');
        tmp.push_back(0x307);
      } else {
        tmp.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
      }
    }
    cps.swap(tmp);
  }

  // 3. Strip accents: NFD (canonical decomposition and ordering), then drop Mn.
  if (strip_) {
    auto& tmp = scratch.tmp;
    tmp.clear();
    bool marks = false;
    for (const char32_t cp : cps) {
      if (cp < 0x80) {
        tmp.push_back(cp);
        continue;
      }
      utf8proc_int32_t buf[32];
      const auto m = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 32, UTF8PROC_DECOMPOSE, nullptr);
      if (m < 0 || m > 32) {
        tmp.push_back(cp);
        continue;
      }
      for (utf8proc_ssize_t k = 0; k < m; ++k) {
        tmp.push_back(static_cast<char32_t>(buf[k]));
        marks = marks || buf[k] >= 0x300;
      }
    }
    if (marks) {
      // Canonical ordering: stable sort of each run of non-starters by combining class.
      for (size_t k = 1; k < tmp.size(); ++k) {
        const int cc = combining_class(tmp[k]);
        if (cc == 0) continue;
        size_t j = k;
        while (j > 0) {
          const int prev = combining_class(tmp[j - 1]);
          if (prev <= cc) break;
          std::swap(tmp[j - 1], tmp[j]);
          --j;
        }
      }
    }
    cps.clear();
    for (const char32_t cp : tmp) {
      if (cp >= 0x300 && category(cp) == UTF8PROC_CATEGORY_MN) continue;
      cps.push_back(cp);
    }
  }

  // 4. Split off punctuation.
  size_t word = out.bytes.size();
  uint32_t chars = 0;
  auto close = [&]() {
    if (out.bytes.size() > word) out.words.push_back({word, static_cast<uint32_t>(out.bytes.size() - word), chars});
    word = out.bytes.size();
    chars = 0;
  };
  for (const char32_t cp : cps) {
    if (is_bert_punctuation(cp)) {
      close();
      append_utf8(out.bytes, cp);
      chars = 1;
      close();
    } else {
      append_utf8(out.bytes, cp);
      ++chars;
    }
  }
  close();
  return i;
}

std::vector<std::string> BasicTokenizer::tokenize(std::string_view text, uint64_t* invalid_utf8) const {
  WordList words;
  const uint64_t bad = split(text, words);
  if (invalid_utf8) *invalid_utf8 += bad;
  std::vector<std::string> result;
  result.reserve(words.size());
  for (size_t k = 0; k < words.size(); ++k) result.emplace_back(words[k]);
  return result;
}

}  // namespace dense::data
