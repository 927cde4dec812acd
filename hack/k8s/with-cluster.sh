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
dir=$(mktemp -d "${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/weir-k8s.XXXXXX")
tool=$dir/cluster
finish() {
	status=$?
	wipe=-wipe
	if [ "${K8S_KEEP:-}" = 1 ] || [ $status -ne 0 ]; then
		wipe=
		echo "hack/k8s/with-cluster.sh: kept the cluster's folder (logs): $dir" >&2
	fi
	if [ -x "$tool" ]; then
		"$tool" down -dir "$dir" $wipe || status=1
	fi
	exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM

$GO build -o "$tool" ./hack/k8s/cluster
"$tool" up -bin "$bin" -dir "$dir" >/dev/null
WEIR_K8S_DIR=$dir KUBECONFIG=$dir/admin.kubeconfig "$@"
