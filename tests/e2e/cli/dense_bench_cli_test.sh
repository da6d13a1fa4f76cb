#!/usr/bin/env bash
# dense-bench pattern as a user runs it: the summary, the PNG (decoded here with Python's zlib, independently of
# the C++ codec: pixels must show the pattern's definition), and exit code 2 with a message naming the key for
# bad input. Usage: dense_bench_cli_test.sh DENSE_BENCH
set -uo pipefail
BENCH=$1
PY=/usr/bin/python3
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

expect "fixed pattern summary" 0 "11,264 visible pairs, density 0.34375" \
  "$BENCH" pattern fixed:stride=16,summary=4 --seq-len 128 --heads 2 --png "$WORK/fixed.png"
# Token (i, j) is the 4x4 square at pixel (4i, 4j): white iff j is in i's 16-block or j mod 16 >= 12.
if "$PY" - "$WORK/fixed.png" > "$WORK/out" 2>&1 <<'PYEOF'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w, h = 8, b'', 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR': w, h = struct.unpack('>II', body[:8])
    if kind == b'IDAT': idat += body
    pos += 12 + n
assert (w, h) == (512, 512), (w, h)
raw = zlib.decompress(idat)
rows = [raw[r * (w + 1) + 1:(r + 1) * (w + 1)] for r in range(h)]
assert all(raw[r * (w + 1)] == 0 for r in range(h)), 'filter type'
bad = [(i, j) for i in range(128) for j in range(128)
       if (rows[4 * i + 1][4 * j + 2] == 255) != (i // 16 == j // 16 or j % 16 >= 12)]
assert not bad, f'{len(bad)} tokens differ, first {bad[:3]}'
print('pixels match the definition')
PYEOF
then ok "png pixels follow the fixed pattern"; else bad "png pixels follow the fixed pattern"; fi
expect "bigbird with blocks drawn" 0 "blocks set" \
  "$BENCH" pattern bigbird:block=8,seed=2 --seq-len 200 --heads 3 --head 2 --blocks --png "$WORK/bb.png"
expect "a million-token window builds" 0 "N 1,000,000" "$BENCH" pattern sliding_window:window=8 --seq-len 1000000
expect "unknown key names the key" 2 "unknown key 'strde' \(did you mean 'stride'\?\)" \
  "$BENCH" pattern fixed:strde=16 --seq-len 128
expect "bad value names the field" 2 "stride" "$BENCH" pattern strided:stride=0 --seq-len 64
expect "global token past the end" 2 "global_tokens" "$BENCH" pattern global:global_tokens=70 --seq-len 64
expect "missing --seq-len" 2 "seq-len" "$BENCH" pattern dense
expect "unwritable png" 2 "." "$BENCH" pattern dense --seq-len 8 --png /nonexistent/dir/x.png

echo "dense-bench cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
