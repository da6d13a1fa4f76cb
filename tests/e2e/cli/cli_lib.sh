# Shared by the CLI test scripts (sourced): a scratch folder $WORK removed on exit, pass/fail counters and
#   ok NAME / bad NAME             record a result (bad shows the tail of $WORK/out)
#   expect NAME RC PATTERN CMD...  the command exits with RC and its output matches PATTERN (grep -E)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$WORK/out" ] && sed 's/^/     | /' "$WORK/out" | tail -20; }
expect() {
  local name=$1 want=$2 pattern=$3
  shift 3
  "$@" > "$WORK/out" 2>&1
  local rc=$?
  if [ "$rc" -eq "$want" ] && grep -Eq -- "$pattern" "$WORK/out"; then ok "$name"; else echo "     rc=$rc want=$want pattern=$pattern"; bad "$name"; fi
}
