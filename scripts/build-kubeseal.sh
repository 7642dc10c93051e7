#!/usr/bin/env bash
# Builds kubeseal (Bitnami Sealed Secrets' CLI) and the Sealed Secrets controller from the same Go module into the
# test binaries' cache, beside gitlab-runner and the cluster's binaries; a no-op when both are there. The unit tests
# seal with a generated certificate and unseal with its private key; the GitOps e2e test runs the real controller
# against the test cluster. Prints kubeseal's path (the controller is `sealed-secrets-controller-<version>` beside it).
set -euo pipefail

KUBESEAL_VERSION=${KUBESEAL_VERSION:-v0.40.0}
CACHE=${RUNNER_FLEET_CACHE:-$HOME/.cache/runner-fleet}
OUT=$CACHE/bin/kubeseal-$KUBESEAL_VERSION
CONTROLLER=$CACHE/bin/sealed-secrets-controller-$KUBESEAL_VERSION
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
export GOCACHE=${GOCACHE:-$CACHE/gobuild}
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
export GOTOOLCHAIN=local

if [ -x "$OUT" ] && [ -x "$CONTROLLER" ]; then echo "$OUT"; exit 0; fi
command -v go >/dev/null || { echo "go is required to build kubeseal" >&2; exit 1; }
mkdir -p "$CACHE/bin" "$CACHE/src"
# The same lock as build-test-cluster.sh: two Go builds at once on few cores only slow each other down.
exec 9>"$CACHE/.build-test-cluster.lock"
flock 9
if [ -x "$OUT" ] && [ -x "$CONTROLLER" ]; then echo "$OUT"; exit 0; fi
log() { echo "[build-kubeseal] $*" >&2; }

# The project renamed its module to github.com/bitnami/sealed-secrets, which the Go proxy does not serve; it serves
# the same release under the old github.com/bitnami-labs path. `go install old-path@version` refuses a go.mod that
# declares the new path, so a wrapper module requires the new path and replaces it with the old one (a replacement
# may declare the path it replaces).
mod=$CACHE/src/kubeseal-$KUBESEAL_VERSION
mkdir -p "$mod"; cd "$mod"
if [ ! -f go.mod ]; then
  go mod init runnerfleet.test/kubeseal >/dev/null 2>&1
  go mod edit -require="github.com/bitnami/sealed-secrets@$KUBESEAL_VERSION" \
    -replace="github.com/bitnami/sealed-secrets=github.com/bitnami-labs/sealed-secrets@$KUBESEAL_VERSION"
fi
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/bitnami/sealed-secrets/cmd/controller"
	_ "github.com/bitnami/sealed-secrets/cmd/kubeseal"
)
GO
log "resolving github.com/bitnami-labs/sealed-secrets $KUBESEAL_VERSION modules"
go mod tidy >/dev/null
# main.VERSION is what `kubeseal --version` and the controller print (the project's Makefile sets it the same way).
ldflags="-s -w -X main.VERSION=$KUBESEAL_VERSION"
if [ ! -x "$OUT" ]; then
  log "building kubeseal $KUBESEAL_VERSION"
  go build -trimpath -ldflags="$ldflags" -o "$OUT.tmp" github.com/bitnami/sealed-secrets/cmd/kubeseal
  mv "$OUT.tmp" "$OUT"
fi
if [ ! -x "$CONTROLLER" ]; then
  log "building the sealed-secrets controller $KUBESEAL_VERSION"
  go build -trimpath -ldflags="$ldflags" -o "$CONTROLLER.tmp" github.com/bitnami/sealed-secrets/cmd/controller
  mv "$CONTROLLER.tmp" "$CONTROLLER"
fi
echo "$OUT"
