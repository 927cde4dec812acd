#!/usr/bin/env bash
# Builds the test cluster's binaries from Go modules into a stamped cache
# folder outside the repository and prints that folder. A folder whose stamp
# matches is reused: the first build on a machine takes ~25 minutes on 2
# cores, later ones nothing.
#
#   hack/k8s/build.sh            build when needed, print the bin folder
#   WEIR_K8S_CACHE=DIR           where stamped folders live (default ~/.cache/weir/k8s)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KUBE_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
CACHE=${WEIR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir/k8s}

# The stamp covers everything the binaries are built from.
stamp=$(cat "$0" "$HERE"/kube/go.mod "$HERE"/kube/go.sum "$HERE"/etcd/go.mod "$HERE"/etcd/go.sum | sha256sum | cut -c1-12)
OUT=$CACHE/$KUBE_VERSION-$stamp
if [ -f "$OUT/.complete" ]; then
	echo "$OUT"
	exit 0
fi
mkdir -p "$CACHE"
TMP=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
log() { echo "hack/k8s/build.sh: $*" >&2; }
# Same -trimpath for every build so the Go build cache is shared.
export CGO_ENABLED=0 GOFLAGS=-trimpath
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
LD="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
	s=$SECONDS
	(cd "$HERE/kube" && go build -ldflags="$LD" -o "$TMP/$c" "k8s.io/kubernetes/cmd/$c")
	log "built $c in $((SECONDS - s))s"
done
s=$SECONDS
(cd "$HERE/etcd" && go build -ldflags='-s -w' -o "$TMP/etcd" go.etcd.io/etcd/server/v3)
log "built etcd in $((SECONDS - s))s"
s=$SECONDS
GOBIN=$TMP go install -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
log "built kwok in $((SECONDS - s))s"

# kwok exits "no stages found" without stage definitions: take the fast
# node and pod lifecycles its module ships.
kwokdir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
first=1
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
	pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
	[ -f "$kwokdir/kustomize/stage/$f" ] || { log "kwok $KWOK_VERSION has no kustomize/stage/$f"; exit 1; }
	[ $first = 1 ] || echo '---'
	first=0
	cat "$kwokdir/kustomize/stage/$f"
done >"$TMP/kwok-stages.yaml"
touch "$TMP/.complete"
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
echo "$OUT"
