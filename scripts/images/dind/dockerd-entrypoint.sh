#!/bin/sh
# Entrypoint of the test fleet's docker:dind: behaves like docker:dind's dockerd-entrypoint.sh as far as a CI job sees.
#  - no arguments, or arguments that start with "-": they are dockerd flags (a service `command` such as
#    ["--insecure-registry=HOST:PORT"] lands here) and are appended to dockerd's own.
#  - DOCKER_TLS_CERTDIR set and not empty (the image's default is /certs): CA, server and client certificates are made
#    under it ({ca,server,client}/), the client ones readable through the shared /certs/client volume, and dockerd
#    listens on tcp://0.0.0.0:2376 with --tlsverify. Otherwise tcp://0.0.0.0:2375 with --tls=false (without it
#    dockerd 20.10 waits ~15 s before it listens on plain TCP).
#  - always unix:///var/run/docker.sock; --storage-driver=vfs unless one is given (no overlay on overlay here).
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- dockerd "$@"
fi
if [ "$1" != dockerd ]; then
  exec "$@"
fi
shift

san() {
  # The names and addresses a job may use for this service: its alias (docker), its hostname, every address.
  s="DNS:docker,DNS:localhost,DNS:$(hostname),IP:127.0.0.1,IP:::1"
  for ip in $(ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1); do
    case ",$s," in *",IP:$ip,"*) ;; *) s="$s,IP:$ip" ;; esac
  done
  echo "$s"
}

generate_certs() {
  dir=$1
  mkdir -p "$dir/ca" "$dir/server" "$dir/client"
  chmod 0700 "$dir/ca"
  ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  if [ ! -s "$dir/ca/cert.pem" ]; then
    # shellcheck disable=SC2086
    openssl req -x509 $ec -keyout "$dir/ca/key.pem" -out "$dir/ca/cert.pem" -days 825 -subj /CN=docker:dind-CA \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  fi
  for kind in server client; do
    # Kept only while it still verifies against this CA: /certs/client is a volume the runner keeps between jobs
    # (a cache volume), while the CA is new with every service container, as in docker:dind's own entrypoint.
    if [ -s "$dir/$kind/cert.pem" ] && openssl verify -CAfile "$dir/ca/cert.pem" "$dir/$kind/cert.pem" >/dev/null 2>&1; then
      continue
    fi
    if [ "$kind" = server ]; then
      ext="extendedKeyUsage=serverAuth
subjectAltName=$(san)"
      cn=docker:dind-server
    else
      ext="extendedKeyUsage=clientAuth"
      cn=docker:dind-client
    fi
    # shellcheck disable=SC2086
    openssl req -new $ec -keyout "$dir/$kind/key.pem" -out "$dir/$kind/csr.pem" -subj "/CN=$cn" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n' "$ext" > "$dir/$kind/ext.cnf"
    openssl x509 -req -in "$dir/$kind/csr.pem" -CA "$dir/ca/cert.pem" -CAkey "$dir/ca/key.pem" -CAcreateserial \
      -days 825 -extfile "$dir/$kind/ext.cnf" -out "$dir/$kind/cert.pem" 2>/dev/null
    cp "$dir/ca/cert.pem" "$dir/$kind/ca.pem"
    rm -f "$dir/$kind/csr.pem" "$dir/$kind/ext.cnf"
  done
  chmod 0600 "$dir/server/key.pem"
  # The job container reads these through the shared /certs/client volume, possibly as another user.
  chmod 0644 "$dir/client/key.pem" "$dir/client/cert.pem" "$dir/client/ca.pem"
}

storage=--storage-driver=vfs
for a in "$@"; do
  case $a in --storage-driver|--storage-driver=*|-s) storage= ;; esac
done

certs=${DOCKER_TLS_CERTDIR:-}
if [ -n "$certs" ]; then
  generate_certs "$certs"
  set -- --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2376 --tlsverify \
    --tlscacert "$certs/server/ca.pem" --tlscert "$certs/server/cert.pem" --tlskey "$certs/server/key.pem" $storage "$@"
else
  set -- --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 --tls=false $storage "$@"
fi
# A stale pid file from a previous start of the same container makes dockerd refuse to start.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
exec dockerd "$@"
