#!/usr/bin/env bash
# Installs what the test fleet and the tests need on a fresh Debian 12 machine (run as root); idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(openssh-server openssh-client sudo docker.io docker-registry busybox-static iproute2 openssl util-linux procps ca-certificates curl
  # the real test fleet: each node runs containerd + runc + a kubelet with the CNI bridge plugin; the runc wrapper
  # for privileged containers needs jq and capsh; xz unpacks the shared gitlab-runner binaries; git goes into the
  # runner and helper images (with iptables and openssl into the dind image, dumb-init into the runner image)
  containerd runc containernetworking-plugins jq libcap2-bin iptables xz-utils git dumb-init)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund

# Kubernetes test cluster binaries, built from Go modules and cached outside the checkout.
bash scripts/build-test-cluster.sh >/dev/null
# The real kubeseal and Sealed Secrets controller (one Go module): render --seal's round trip and the GitOps e2e test.
bash scripts/build-kubeseal.sh >/dev/null
# Flux's source-controller and kustomize-controller: the GitOps e2e test's controller, syncing from the stand-in's git.
bash scripts/build-flux.sh >/dev/null

# The real-runner test fleet's images (gitlab-runner, helper, docker cli/dind, base, pause), cached the same way.
rc=0
npx tsx scripts/testbed/images.ts build >/dev/null || rc=$?
if [ "$rc" = 3 ]; then
  echo "[setup] WARNING: test images not built (see above); the real-runner test fleet needs them" >&2
elif [ "$rc" != 0 ]; then
  exit "$rc"
fi
