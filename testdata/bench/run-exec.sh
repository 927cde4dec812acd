#!/bin/sh
# Executor benchmark: weir apply of N no-op steps (`true <i>`, a DAG of
# width W) against make -j2 running the same DAG from a generated Makefile,
# in the same rounds; plus a plain loop spawning the same processes, the
# fully cached re-apply, weir plan, and a re-apply whose executor reuses
# every step but two; and the fresh apply, the cached apply and the plan
# again with the local backend served as a plugin process (the protocol's
# cost, issue 5). Prints a table of medians, bests and ratios, and weir's
# overhead per step.
#
# Environment: WEIR (default: bin/weir, built by make build first),
# WEIR_BASE (a second weir binary, e.g. an earlier build, measured in the
# same rounds for comparison),
# BENCH_EXEC_STEPS (default 10000), BENCH_EXEC_WIDTH (default 100),
# BENCH_RUNS (default 3), BENCH_PARALLELISM (default 2), BENCH_EXEC_DIR
# (project folder; default a temporary one, removed afterwards),
# BENCH_EXEC_PLUGIN (default 1; 0 leaves the plugin rows out).
set -eu
cd "$(dirname "$0")/../.."

GO=${GO:-go}
if [ -z "${WEIR:-}" ]; then
	make -s build
	WEIR=bin/weir
fi

$GO build -o "${TMPDIR:-/tmp}/weir-exec-measure" ./testdata/bench/exec/measure
exec "${TMPDIR:-/tmp}/weir-exec-measure" -weir "$WEIR" \
	-n "${BENCH_EXEC_STEPS:-10000}" -w "${BENCH_EXEC_WIDTH:-100}" \
	-runs "${BENCH_RUNS:-3}" -parallelism "${BENCH_PARALLELISM:-2}" \
	-plugin="$([ "${BENCH_EXEC_PLUGIN:-1}" = 0 ] && echo false || echo true)" \
	${BENCH_EXEC_DIR:+-dir "$BENCH_EXEC_DIR"} ${WEIR_BASE:+-base "$WEIR_BASE"}
