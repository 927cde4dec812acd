#!/bin/sh
# The policy part of make bench: on the generated 10,000-step spec, weir
# policy check (the spec's evaluation cached) against opa eval of the same
# bundle over the same input (written by the hidden flag weir policy check
# --dump-input), and weir review of two 10,000-step revisions against one
# cold weir plan, all in one run; prints a table of wall and CPU times,
# peak memory and the ratios the targets are stated in. It installs the opa
# CLI at the version of github.com/open-policy-agent/opa in go.mod into the
# cache folder run.sh uses, the first time (a few minutes).
#
# Environment: WEIR (default bin/weir), BENCH_POLICY_PIPELINES (default
# 1000, 10 steps each), BENCH_RUNS (default 3), BENCH_POLICY_DIR (project
# folder, kept; default a temporary one, removed), WEIR_BENCH_CACHE
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/weir-bench).
set -eu
cd "$(dirname "$0")/../.."

GO=${GO:-go}
WEIR=${WEIR:-bin/weir}
if [ ! -x "$WEIR" ]; then
	echo "bench: $WEIR is missing: run make build (make bench does)" >&2
	exit 1
fi

version=$($GO list -m -f '{{.Version}}' github.com/open-policy-agent/opa)
cache=${WEIR_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir-bench}
opa="$cache/opa-$version/opa"
if [ ! -x "$opa" ]; then
	echo "bench: installing the opa CLI $version into $cache/opa-$version (a few minutes the first time)" >&2
	mkdir -p "$cache/opa-$version"
	GOBIN="$cache/opa-$version" GOFLAGS=-mod=mod $GO install "github.com/open-policy-agent/opa@$version"
fi

exec $GO run ./testdata/bench/policy -weir "$WEIR" -opa "$opa" \
	-pipelines "${BENCH_POLICY_PIPELINES:-1000}" -runs "${BENCH_RUNS:-3}" \
	${BENCH_POLICY_DIR:+-dir "$BENCH_POLICY_DIR"}
