#!/usr/bin/env sh
# Make a private CA and a NATS server certificate for the compose files (development and tests only: real
# deployments bring their own). Writes ca.pem, server.pem and server-key.pem into DIR (default: this script's
# directory). The server certificate names every host the compose files use (nats, nats-1..3) plus localhost and
# 127.0.0.1, so the same files serve the single server, the cluster and a local test.
set -eu
dir="${1:-$(dirname "$0")}"
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=hsmsim development CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=nats" -keyout server-key.pem -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:nats,DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem server.pem
# The key must be readable by the container's user (nats runs as root in the official image; hsmsim as node).
chmod 640 server-key.pem
echo "wrote $(pwd)/ca.pem, server.pem, server-key.pem"
