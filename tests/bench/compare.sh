#!/usr/bin/env bash
# compare.sh runs the go test benchmarks at two commits on this machine,
# interleaved so both see the same background load, and prints benchstat's
# comparison.
#
#   tests/bench/compare.sh OLD NEW [BENCH_REGEXP] [PACKAGES...]
#   tests/bench/compare.sh HEAD~1 HEAD 'Parse|PoolParse' ./parse/ ./pipeline/
#
# COUNT (default 6) sets the runs per commit. Defaults: every benchmark of
# the reader, parsers, pipeline, codecs and outputs.
set -euo pipefail
old=${1:?usage: compare.sh OLD NEW [BENCH_REGEXP] [PACKAGES...]}
new=${2:?usage: compare.sh OLD NEW [BENCH_REGEXP] [PACKAGES...]}
re=${3:-.}
shift $(( $# < 3 ? $# : 3 ))
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./inputs/file/ ./parse/ ./pipeline/... ./outputs/...)
count=${COUNT:-6}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/old" >/dev/null 2>&1 || true; git -C "$root" worktree remove --force "$work/new" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$root" worktree add --detach "$work/old" "$old" >/dev/null
git -C "$root" worktree add --detach "$work/new" "$new" >/dev/null
for i in $(seq 1 "$count"); do
	for side in old new; do
		echo "run $i/$count: $side" >&2
		(cd "$work/$side" && go test -run '^$' -bench "$re" -count 1 "${pkgs[@]}") >>"$work/$side.txt"
	done
done
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "old=$work/old.txt" "new=$work/new.txt"
