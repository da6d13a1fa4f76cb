#!/usr/bin/env bash
# Formats the C++/CUDA sources with .clang-format (clang-format 14: Debian 12's `clang-format`, installed by
# scripts/setup.sh). With --check it changes nothing, names every file that differs and fails: scripts/test.sh
# runs it first, so CI keeps the tree formatted.
#   scripts/format.sh           format every tracked *.cpp *.h *.cu *.cuh in place
#   scripts/format.sh --check   list the files that differ; exit 1 if any
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format: clang-format not found (scripts/setup.sh installs it)" >&2; exit 2; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
else
  mapfile -t files < <(find src apps data_prep tests bench -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | grep -v node_modules | sort)
fi
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --style=file "$f" | cmp -s - "$f" || bad+=("$f")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    printf 'format: %s differs from .clang-format\n' "${bad[@]}" >&2
    echo "format: ${#bad[@]} of ${#files[@]} files differ; run scripts/format.sh and commit the result" >&2
    exit 1
  fi
  echo "format: all ${#files[@]} C++/CUDA files match .clang-format ($(clang-format --version | grep -o 'version [0-9.]*'))"
else
  clang-format -i --style=file "${files[@]}"
  echo "format: formatted ${#files[@]} files"
fi
