#!/bin/sh
# make bench: times `weir plan` on the same generated spec written in CUE,
# HCL and Jsonnet (1,000 and 10,000 steps), in the same run, cold and warm,
# and prints the ratios HCL / CUE and Jsonnet / CUE (target: within 1.5x at
# 10,000 steps) with CPU time and peak memory.
#
# Environment: WEIR (default bin/weir), BENCH_FRONTEND_SIZES (pipelines,
# default 100,1000), BENCH_RUNS (default 5), BENCH_FRONTEND_DIR (keep the
# projects there).
set -eu
cd "$(dirname "$0")/../.."

GO=${GO:-go}
WEIR=${WEIR:-bin/weir}
if [ ! -x "$WEIR" ]; then
	echo "bench: $WEIR is missing: run make build (make bench does)" >&2
	exit 1
fi

exec $GO run ./testdata/bench/frontends -weir "$WEIR" \
	-sizes "${BENCH_FRONTEND_SIZES:-100,1000}" -runs "${BENCH_RUNS:-5}" -dir "${BENCH_FRONTEND_DIR:-}"
