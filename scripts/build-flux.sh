#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from the Go module proxy into the test binaries' cache
# (the GitOps e2e test runs them against the test cluster); a no-op when both are there. Prints the directory that
# holds them. Their CRDs stay in the module cache (config/crd/bases of each module), where the testbed reads them.
set -euo pipefail

# v1.9.6 is the newest release of each whose go.mod asks for no Go newer than this machine's (v1.10.x asks for 1.27).
FLUX_SOURCE_VERSION=${FLUX_SOURCE_VERSION:-v1.9.6}
FLUX_KUSTOMIZE_VERSION=${FLUX_KUSTOMIZE_VERSION:-v1.9.6}
CACHE=${RUNNER_FLEET_CACHE:-$HOME/.cache/runner-fleet}
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
export GOCACHE=${GOCACHE:-$CACHE/gobuild}
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
export GOTOOLCHAIN=local

source_bin=$CACHE/bin/flux-source-controller-$FLUX_SOURCE_VERSION
kustomize_bin=$CACHE/bin/flux-kustomize-controller-$FLUX_KUSTOMIZE_VERSION
done_already() { [ -x "$source_bin" ] && [ -x "$kustomize_bin" ]; }
if done_already; then echo "$CACHE/bin"; exit 0; fi
command -v go >/dev/null || { echo "go is required to build Flux's controllers" >&2; exit 1; }
mkdir -p "$CACHE/bin" "$CACHE/src"
# The same lock as build-test-cluster.sh: two Go builds at once on few cores only slow each other down.
exec 9>"$CACHE/.build-test-cluster.lock"
flock 9
if done_already; then echo "$CACHE/bin"; exit 0; fi
log() { echo "[build-flux] $*" >&2; }

# build NAME VERSION OUT [REPLACE…]: each controller's go.mod replaces its own api module with ./api, a nested module
# that the module zip leaves out; a writable copy of the module drops that replacement, so the api module comes from
# the proxy at the version go.mod requires, and the go.mod's other replacements still apply. REPLACE (old=new@v) pins
# a dependency whose required version the proxy refuses (403 "This module version is not available") to one it serves.
build() {
  local name=$1 version=$2 out=$3 dir copy=$CACHE/src/flux-$1-$2 r
  shift 3
  [ -x "$out" ] && return 0
  log "downloading github.com/fluxcd/$name $version"
  dir=$(cd /tmp && go mod download -json "github.com/fluxcd/$name@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "go mod download printed no Dir for github.com/fluxcd/$name@$version" >&2; exit 1; }
  if [ ! -f "$copy/go.mod" ]; then
    rm -rf "$copy.tmp"; cp -r "$dir" "$copy.tmp"; chmod -R u+w "$copy.tmp"
    (cd "$copy.tmp" && go mod edit -dropreplace="github.com/fluxcd/$name/api")
    for r in "$@"; do (cd "$copy.tmp" && go mod edit -replace="$r"); done
    mv "$copy.tmp" "$copy"
  fi
  log "building $name $version"
  (cd "$copy" && go build -trimpath -ldflags='-s -w' -o "$out.tmp" .)
  mv "$out.tmp" "$out"
}
# github.com/fluxcd/pkg/artifact v0.18.3 is refused; v0.18.0 is the same minor release.
build source-controller "$FLUX_SOURCE_VERSION" "$source_bin" \
  github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0
build kustomize-controller "$FLUX_KUSTOMIZE_VERSION" "$kustomize_bin"
echo "$CACHE/bin"
