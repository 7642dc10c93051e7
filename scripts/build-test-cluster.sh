#!/usr/bin/env bash
# Builds the test cluster's binaries (kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, and for
# the real nodes kubelet and crictl) from Go modules into a cache outside the checkout; a no-op when they are there.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
# cri-tools publishes no v1.36.x module; v1.37.0 speaks the same CRI v1 API to Debian's containerd 1.6.
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
CACHE=${RUNNER_FLEET_CACHE:-$HOME/.cache/runner-fleet}
BIN=$CACHE/bin/k8s-$K8S_VERSION
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
export GOCACHE=${GOCACHE:-$CACHE/gobuild}
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
export GOTOOLCHAIN=local

# RUNNER_FLEET_CLUSTER_BINARIES names a subset (the testbed's `up` needs every one but kubectl, which only the tests
# use): a cold `npm run demo` builds no more than it runs. Default: all of them.
all=(kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok crictl)
read -r -a want <<< "${RUNNER_FLEET_CLUSTER_BINARIES:-${all[*]}}"
for b in "${want[@]}"; do
  case " ${all[*]} " in *" $b "*) ;; *) echo "RUNNER_FLEET_CLUSTER_BINARIES: unknown binary $b (one of: ${all[*]})" >&2; exit 2 ;; esac
done
wants() { case " ${want[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
# A stamp per Kubernetes binary records the version it was linked with: binaries built before the
# version ldflags existed report v0.0.0-master, which confuses version-skew checks, so they are relinked.
k8s_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$K8S_VERSION" ]; }
crictl_ok() { [ -x "$BIN/crictl" ] && [ "$(cat "$BIN/.crictl.version" 2>/dev/null)" = "$CRICTL_VERSION" ]; }
all_ok() {
  local b
  for b in "${want[@]}"; do
    case $b in kube*) k8s_ok "$b" ;; crictl) crictl_ok ;; *) [ -x "$BIN/$b" ] ;; esac || return 1
  done
}
if all_ok; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { echo "go is required to build the test cluster" >&2; exit 1; }
mkdir -p "$BIN" "$CACHE/src"
log() { echo "[build-test-cluster] $*" >&2; }
# Two runs at once (setup.sh and a testbed, two worktrees) would compile the same packages twice on few cores.
exec 9>"$CACHE/.build-test-cluster.lock"
flock 9

# crictl, etcd and kwok are modules of their own: built in the background while Kubernetes' modules download and
# compile, so their downloads overlap that work instead of preceding or following it (the CPU work is the same; a
# cold build waits less).
build_crictl() {
  GOBIN=$BIN.crictl go install -trimpath \
    -ldflags="-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  mv "$BIN.crictl/crictl" "$BIN/crictl"; rmdir "$BIN.crictl"
  echo "$CRICTL_VERSION" > "$BIN/.crictl.version"
}
build_etcd() {
  local etcd_mod=$CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$etcd_mod"; cd "$etcd_mod"
  [ -f go.mod ] || go mod init runnerfleet.test/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -trimpath -ldflags='-s -w' -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}
build_kwok() {
  GOBIN=$BIN.kwok go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$BIN.kwok/kwok" "$BIN/kwok"; rmdir "$BIN.kwok"
}
background=()
# A failed Kubernetes build ends the script: the background builds go with it.
trap 'for j in "${background[@]}"; do kill "${j%%:*}" 2>/dev/null || :; done' EXIT
# in_background NAME VERSION: build_NAME in the background, its output in $CACHE/.build-NAME.log (shown if it fails).
in_background() {
  log "building $1 $2 (in the background)"
  ("build_$1") >"$CACHE/.build-$1.log" 2>&1 &
  background+=("$!:$1")
}
if wants crictl && ! crictl_ok; then in_background crictl "$CRICTL_VERSION"; fi
if wants etcd && [ ! -x "$BIN/etcd" ]; then in_background etcd "$ETCD_VERSION"; fi
if wants kwok && [ ! -x "$BIN/kwok" ]; then in_background kwok "$KWOK_VERSION"; fi

# Kubernetes: a wrapper module whose replace list points every staging module (required at v0.0.0
# in k8s.io/kubernetes' go.mod) at its published v0.X.Y twin.
k8s_mod=$CACHE/src/k8s-$K8S_VERSION
k8s_cmds=()
for c in kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl; do wants "$c" && k8s_cmds+=("$c"); done
k8s_missing=0
for c in "${k8s_cmds[@]}"; do k8s_ok "$c" || k8s_missing=1; done
if [ "$k8s_missing" = 1 ]; then
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
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  log "resolving k8s.io/kubernetes $K8S_VERSION modules"
  go mod tidy -e >/dev/null 2>&1 || true
  # The same version stamps Kubernetes' own hack/lib/version.sh sets; without them every binary says v0.0.0.
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  vflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    vflags="$vflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  todo=()
  for c in "${k8s_cmds[@]}"; do k8s_ok "$c" || todo+=("$c"); done
  # One go build for all of them: the packages they share compile once, and the links run side by side.
  log "building ${todo[*]}"
  rm -rf "$BIN.k8s"; mkdir -p "$BIN.k8s"
  go build -trimpath -ldflags="-s -w$vflags" -o "$BIN.k8s/" "${todo[@]/#/k8s.io/kubernetes/cmd/}"
  for c in "${todo[@]}"; do
    mv "$BIN.k8s/$c" "$BIN/$c"
    echo "$K8S_VERSION" > "$BIN/.$c.version"
  done
  rmdir "$BIN.k8s"
fi

failed=0
for job in "${background[@]}"; do
  pid=${job%%:*} name=${job#*:}
  if ! wait "$pid"; then
    echo "[build-test-cluster] building $name failed:" >&2
    tail -n 30 "$CACHE/.build-$name.log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
echo "$BIN"
