#include "data/vocab.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/text_normalize.h"

namespace dense::data {

// ---- sha256 (FIPS 180-4) ------------------------------------------------------------------------------

namespace {

constexpr std::array<uint32_t, 64> kSha256K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

void sha256_block(std::array<uint32_t, 8>& h, const unsigned char* p) {
  uint32_t w[64];
  for (int t = 0; t < 16; ++t)
    w[t] = (uint32_t(p[4 * t]) << 24) | (uint32_t(p[4 * t + 1]) << 16) | (uint32_t(p[4 * t + 2]) << 8) |
           uint32_t(p[4 * t + 3]);
  for (int t = 16; t < 64; ++t) {
    const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
    const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = w[t - 16] + s0 + w[t - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int t = 0; t < 64; ++t) {
    const uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    const uint32_t ch = (e & f) ^ (~e & g);
    const uint32_t t1 = hh + S1 + ch + kSha256K[size_t(t)] + w[t];
    const uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    const uint32_t t2 = S0 + maj;
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

// A fast 64-bit hash of short byte strings (wyhash-style multiply-fold).
inline uint64_t mix(uint64_t a, uint64_t b) {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
inline uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t hash_bytes(const char* p, size_t n) {
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
  uint64_t a, b, seed = k0 ^ n;
  if (n <= 16) {
    if (n >= 4) {
      a = (load32(p) << 32) | load32(p + ((n >> 3) << 2));
      b = (load32(p + n - 4) << 32) | load32(p + n - 4 - ((n >> 3) << 2));
    } else if (n > 0) {
      a = (uint64_t(static_cast<unsigned char>(p[0])) << 16) | (uint64_t(static_cast<unsigned char>(p[n >> 1])) << 8) |
          uint64_t(static_cast<unsigned char>(p[n - 1]));
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t i = n;
    while (i > 16) {
      seed = mix(load64(p) ^ k1, load64(p + 8) ^ seed);
      p += 16;
      i -= 16;
    }
    a = load64(p + i - 16);
    b = load64(p + i - 8);
  }
  return mix(k1 ^ n, mix(a ^ k1, b ^ seed) ^ k2);
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  std::array<uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) sha256_block(h, p + i);
  unsigned char tail[128] = {};
  const size_t rest = n - i;
  if (rest) std::memcpy(tail, p + i, rest);
  tail[rest] = 0x80;
  const size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  const uint64_t bits = static_cast<uint64_t>(n) * 8;
  for (int k = 0; k < 8; ++k) tail[tail_len - 1 - size_t(k)] = static_cast<unsigned char>(bits >> (8 * k));
  sha256_block(h, tail);
  if (tail_len == 128) sha256_block(h, tail + 64);
  static const char* hex = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t k = 0; k < 8; ++k)
    for (size_t b = 0; b < 8; ++b) out[k * 8 + b] = hex[(h[k] >> (28 - 4 * b)) & 0xF];
  return out;
}

// ---- lookup table -------------------------------------------------------------------------------------

// Open addressing, linear probing, load factor <= 1/2. Keys live in one arena.
struct Vocab::Table {
  struct Slot {
    uint32_t tag = 0;
    uint32_t len = 0;
    uint32_t off = 0;
    int32_t id = -1;
  };
  std::string arena;
  std::vector<Slot> slots;
  uint64_t mask = 0;

  void init(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    slots.assign(cap, Slot{});
    mask = cap - 1;
    arena.clear();
  }
  // Returns the existing id if the key is present (and does not insert), else inserts and returns -1.
  int32_t insert(std::string_view key, int32_t id) {
    const uint64_t h = hash_bytes(key.data(), key.size());
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (uint64_t s = h & mask;; s = (s + 1) & mask) {
      Slot& e = slots[s];
      if (e.id < 0) {
        e.tag = tag;
        e.len = static_cast<uint32_t>(key.size());
        e.off = static_cast<uint32_t>(arena.size());
        e.id = id;
        arena.append(key);
        return -1;
      }
      if (e.tag == tag && e.len == key.size() && std::memcmp(arena.data() + e.off, key.data(), key.size()) == 0)
        return e.id;
    }
  }
  int32_t find(const char* p, size_t n) const {
    const uint64_t h = hash_bytes(p, n);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (uint64_t s = h & mask;; s = (s + 1) & mask) {
      const Slot& e = slots[s];
      if (e.id < 0) return -1;
      if (e.tag == tag && e.len == n && std::memcmp(arena.data() + e.off, p, n) == 0) return e.id;
    }
  }
};

// ---- Vocab --------------------------------------------------------------------------------------------

Vocab::Vocab() : whole_(std::make_unique<Table>()), cont_(std::make_unique<Table>()) {
  whole_->init(0);
  cont_->init(0);
  std::fill(std::begin(ascii_ids_), std::end(ascii_ids_), -1);
}
Vocab::~Vocab() = default;
Vocab::Vocab(Vocab&&) noexcept = default;
Vocab& Vocab::operator=(Vocab&&) noexcept = default;
Vocab::Vocab(const Vocab& o)
    : tokens_(o.tokens_),
      whole_(std::make_unique<Table>(*o.whole_)),
      cont_(std::make_unique<Table>(*o.cont_)),
      special_(o.special_),
      sha256_(o.sha256_),
      source_(o.source_),
      max_bytes_(o.max_bytes_),
      max_cont_bytes_(o.max_cont_bytes_) {
  std::copy(std::begin(o.ascii_ids_), std::end(o.ascii_ids_), std::begin(ascii_ids_));
}
Vocab& Vocab::operator=(const Vocab& o) {
  if (this != &o) {
    Vocab copy(o);
    *this = std::move(copy);
  }
  return *this;
}

Vocab Vocab::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) DENSE_FAIL("cannot open vocabulary file {}: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) DENSE_FAIL("cannot read vocabulary file {}", path);
  return parse(ss.str(), path);
}

Vocab Vocab::parse(std::string_view content, const std::string& source) {
  Vocab v;
  size_t pos = 0;
  size_t line = 0;
  while (pos < content.size()) {
    ++line;
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    const std::string_view tok = content.substr(pos, end - pos);
    if (line == 1 && tok.substr(0, 3) == "\xEF\xBB\xBF")
      DENSE_FAIL("{}:1: vocabulary starts with a UTF-8 byte-order mark", source);
    if (tok.empty()) DENSE_FAIL("{}:{}: empty line in vocabulary (every line must hold one token)", source, line);
    if (tok.find('\r') != std::string_view::npos)
      DENSE_FAIL("{}:{}: carriage return in token (CRLF line endings? vocab.txt must use '\\n')", source, line);
    if (!is_valid_utf8(tok)) DENSE_FAIL("{}:{}: token is not valid UTF-8", source, line);
    v.tokens_.emplace_back(tok);
    pos = end + 1;
  }
  v.build(source);
  v.sha256_ = sha256_hex(content);
  return v;
}

Vocab Vocab::from_tokens(const std::vector<std::string>& tokens, const std::string& source) {
  Vocab v;
  for (size_t k = 0; k < tokens.size(); ++k) {
    const std::string& tok = tokens[k];
    if (tok.empty()) DENSE_FAIL("{}: token {} is empty", source, k);
    if (tok.find_first_of("\r\n") != std::string::npos) DENSE_FAIL("{}: token {} contains a line break", source, k);
    if (!is_valid_utf8(tok)) DENSE_FAIL("{}: token {} is not valid UTF-8", source, k);
  }
  v.tokens_ = tokens;
  v.build(source);
  v.sha256_ = sha256_hex(v.serialize());
  return v;
}

void Vocab::build(const std::string& source) {
  source_ = source;
  DENSE_CHECK(!tokens_.empty(), "{}: vocabulary is empty", source);
  DENSE_CHECK(tokens_.size() < (size_t(1) << 31), "{}: too many tokens", source);
  whole_->init(tokens_.size());
  size_t conts = 0;
  for (const auto& t : tokens_) conts += (t.size() > 2 && t.compare(0, 2, "##") == 0);
  cont_->init(conts);
  max_bytes_ = max_cont_bytes_ = 0;
  std::fill(std::begin(ascii_ids_), std::end(ascii_ids_), -1);
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const std::string& t = tokens_[k];
    const auto id = static_cast<int32_t>(k);
    const int32_t prev = whole_->insert(t, id);
    if (prev >= 0) DENSE_FAIL("{}:{}: duplicate token '{}' (first at line {})", source, k + 1, t, prev + 1);
    max_bytes_ = std::max(max_bytes_, t.size());
    if (t.size() > 2 && t.compare(0, 2, "##") == 0) {
      cont_->insert(std::string_view(t).substr(2), id);
      max_cont_bytes_ = std::max(max_cont_bytes_, t.size() - 2);
    }
    if (t.size() == 1 && static_cast<unsigned char>(t[0]) < 128) ascii_ids_[static_cast<unsigned char>(t[0])] = id;
  }
  special_.pad = find(kPadToken);
  special_.unk = find(kUnkToken);
  special_.cls = find(kClsToken);
  special_.sep = find(kSepToken);
  special_.mask = find(kMaskToken);
  if (special_.unk < 0) DENSE_FAIL("{}: vocabulary has no [UNK] token", source);
}

std::string Vocab::serialize() const {
  std::string out;
  size_t total = 0;
  for (const auto& t : tokens_) total += t.size() + 1;
  out.reserve(total);
  for (const auto& t : tokens_) {
    out += t;
    out += '\n';
  }
  return out;
}

void Vocab::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) DENSE_FAIL("cannot write vocabulary file {}: {}", tmp, std::strerror(errno));
    const std::string content = serialize();
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) DENSE_FAIL("cannot write vocabulary file {}", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) DENSE_FAIL("cannot rename {} to {}: {}", tmp, path, ec.message());
}

int32_t Vocab::find(std::string_view token) const { return whole_->find(token.data(), token.size()); }

int32_t Vocab::find_continuation(std::string_view piece) const { return cont_->find(piece.data(), piece.size()); }

int32_t Vocab::id_or_unk(std::string_view token) const {
  const int32_t id = find(token);
  return id >= 0 ? id : special_.unk;
}

const std::string& Vocab::token(int32_t id) const {
  if (id < 0 || id >= size()) DENSE_FAIL("token id {} out of range for vocabulary {} of size {}", id, source_, size());
  return tokens_[static_cast<size_t>(id)];
}

bool Vocab::is_special(int32_t id) const {
  return id >= 0 &&
         (id == special_.pad || id == special_.unk || id == special_.cls || id == special_.sep || id == special_.mask);
}

}  // namespace dense::data
