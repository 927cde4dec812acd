#!/bin/sh
# The kubernetes backend's speed (issue 8): 500 short Jobs submitted and
# watched to completion on the kwok test cluster by weir's backend, and by
# a minimal client-go program that creates the same Jobs and waits for
# them through one watch, in the same run (plugins/kubernetes TestSpeed).
# Both clients run at QPS 50, burst 100. Needs the test cluster's binaries
# (hack/k8s/build.sh builds them once per machine, ~25 min); starts and
# stops a cluster of its own unless WEIR_K8S_DIR names a running one.
#
# Reported: "k8s speed: N jobs weir Xs reference Ys ratio R requests/step Q"
# (the targets: R <= 1.2, Q <= 4). Environment: WEIR_K8S_SPEED_JOBS (500).
set -eu
cd "$(dirname "$0")/../.."
GO=${GO:-go}
if [ -z "${WEIR_K8S_DIR:-}" ]; then
	# Again, inside a cluster of its own (with-cluster.sh sets WEIR_K8S_DIR).
	GO=$GO exec hack/k8s/with-cluster.sh "$0"
fi
# pipefail is not POSIX: the test's status is kept in a file.
status=$(mktemp)
{ WEIR_K8S_SPEED=1 $GO test -count=1 -timeout 30m -run '^TestSpeed$' -v ./plugins/kubernetes/; echo $? >"$status"; } |
	grep -E '^k8s speed:|bench_test.go|^(--- )?(FAIL|ok|PASS)' || true
rc=$(cat "$status")
rm -f "$status"
exit "$rc"
