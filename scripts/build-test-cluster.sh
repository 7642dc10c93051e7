#!/usr/bin/env bash
# Builds the test cluster's binaries (kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok)
# from Go modules into a cache outside the checkout; a no-op when they are already there.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
CACHE=${RUNNER_FLEET_CACHE:-$HOME/.cache/runner-fleet}
BIN=$CACHE/bin/k8s-$K8S_VERSION
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
export GOCACHE=${GOCACHE:-$CACHE/gobuild}
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
export GOTOOLCHAIN=local

want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)
missing=0
for b in "${want[@]}"; do [ -x "$BIN/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { echo "go is required to build the test cluster" >&2; exit 1; }
mkdir -p "$BIN" "$CACHE/src"
log() { echo "[build-test-cluster] $*" >&2; }

# Kubernetes: a wrapper module whose replace list points every staging module (required at v0.0.0
# in k8s.io/kubernetes' go.mod) at its published v0.X.Y twin.
k8s_mod=$CACHE/src/k8s-$K8S_VERSION
if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ] || [ ! -x "$BIN/kube-scheduler" ] || [ ! -x "$BIN/kubectl" ]; then
  mkdir -p "$k8s_mod"; cd "$k8s_mod"
  [ -f go.mod ] || go mod init runnerfleet.test/k8s >/dev/null 2>&1
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging=v0${K8S_VERSION#v1}
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u); do
    go mod edit -replace="$m=$m@$staging"
  done
  go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "resolving k8s.io/kubernetes $K8S_VERSION modules"
  go mod tidy -e >/dev/null 2>&1 || true
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$BIN/$c" ] && continue
    log "building $c"
    go build -trimpath -ldflags='-s -w' -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$BIN/$c.tmp" "$BIN/$c"
  done
fi

if [ ! -x "$BIN/etcd" ]; then
  etcd_mod=$CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$etcd_mod"; cd "$etcd_mod"
  [ -f go.mod ] || go mod init runnerfleet.test/etcd >/dev/null 2>&1
  log "building etcd $ETCD_VERSION"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
  go build -trimpath -ldflags='-s -w' -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

if [ ! -x "$BIN/kwok" ]; then
  log "building kwok $KWOK_VERSION"
  GOBIN=$BIN.kwok go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$BIN.kwok/kwok" "$BIN/kwok"; rmdir "$BIN.kwok"
fi
echo "$BIN"
