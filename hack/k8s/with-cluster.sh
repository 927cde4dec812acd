#!/usr/bin/env bash
# Runs a command against a fresh test cluster, then always stops it:
#
#   hack/k8s/with-cluster.sh go test ./plugins/kubernetes/...
#
# Builds the binaries when needed (hack/k8s/build.sh: ~25 min the first time
# on a machine, then nothing; K8S_BIN=DIR skips even that), starts a cluster
# in a fresh folder outside the repository (under $XDG_RUNTIME_DIR or /tmp),
# runs the command with WEIR_K8S_DIR naming that folder and KUBECONFIG its
# admin kubeconfig, stops the cluster and removes the folder (kept when the
# command failed, or with K8S_KEEP=1, for its logs). Exits with the
# command's status.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
[ $# -gt 0 ] || { echo "usage: hack/k8s/with-cluster.sh COMMAND [ARG...]" >&2; exit 2; }

bin=${K8S_BIN:-$(hack/k8s/build.sh)}
base=${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}
dir=$(mktemp -d "$base/weir-k8s.XXXXXX")
echo $$ >"$dir/owner.pid"
tool=$dir/cluster
finish() {
	status=$?
	wipe=-wipe
	if [ "${K8S_KEEP:-}" = 1 ] || [ $status -ne 0 ]; then
		wipe=
		echo "hack/k8s/with-cluster.sh: kept the cluster's folder (logs): $dir" >&2
	fi
	if [ -x "$tool" ]; then
		if "$tool" down -dir "$dir" $wipe; then
			rm -f "$dir/owner.pid"
		else
			status=1
		fi
	fi
	exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM

$GO build -o "$tool" ./hack/k8s/cluster
# A run killed before its trap ran (SIGKILL, a lost machine session) left its
# cluster running: stop the clusters of runs whose owner is gone (their
# folders stay, for their logs).
for old in "$base"/weir-k8s.*; do
	[ "$old" != "$dir" ] && [ -f "$old/owner.pid" ] || continue
	owner=$(cat "$old/owner.pid")
	if ! tr '\0' ' ' 2>/dev/null <"/proc/$owner/cmdline" | grep -q with-cluster.sh; then
		echo "hack/k8s/with-cluster.sh: stopping the cluster a killed run left in $old" >&2
		"$tool" down -dir "$old" && rm -f "$old/owner.pid"
	fi
done
"$tool" up -bin "$bin" -dir "$dir" >/dev/null
WEIR_K8S_DIR=$dir KUBECONFIG=$dir/admin.kubeconfig "$@"
