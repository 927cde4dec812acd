#!/bin/sh
# make bench: compares `weir plan` with `cue export` of the same generated
# spec (100, 1,000 and 10,000 steps) and prints a table. It installs the cue
# CLI at the version of cuelang.org/go in go.mod into a cache folder outside
# the repository the first time.
#
# Environment: WEIR (default bin/weir), BENCH_SIZES (pipelines, default
# 10,100,1000), BENCH_RUNS (default 3), BENCH_LAYOUT (single or split),
# WEIR_BENCH_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/weir-bench).
set -eu
cd "$(dirname "$0")/../.."

GO=${GO:-go}
WEIR=${WEIR:-bin/weir}
if [ ! -x "$WEIR" ]; then
	echo "bench: $WEIR is missing: run make build (make bench does)" >&2
	exit 1
fi

version=$($GO list -m -f '{{.Version}}' cuelang.org/go)
cache=${WEIR_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir-bench}
cue="$cache/cue-$version/cue"
if [ ! -x "$cue" ]; then
	echo "bench: installing the cue CLI $version into $cache/cue-$version" >&2
	mkdir -p "$cache/cue-$version"
	GOBIN="$cache/cue-$version" GOFLAGS=-mod=mod $GO install "cuelang.org/go/cmd/cue@$version"
fi

exec $GO run ./testdata/bench/measure -weir "$WEIR" -cue "$cue" \
	-sizes "${BENCH_SIZES:-10,100,1000}" -runs "${BENCH_RUNS:-3}" -layout "${BENCH_LAYOUT:-single}"
