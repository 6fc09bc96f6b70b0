#!/usr/bin/env bash
# Registers one endpoint of a service in etcd for as long as this script runs, as a pod
# would: a lease of TTL seconds, the endpoint key put with it, and the lease kept alive in
# the foreground. When the script stops (Ctrl-C, SIGTERM, or the pod going away), nobody
# renews the lease and etcd deletes the key within TTL seconds; every balancerd following
# the prefix drains the endpoint.
#
#   scripts/etcd-register.sh SERVICE ID ADDRESS [TTL]
#   scripts/etcd-register.sh web pod-a 10.0.0.7:8080 10
#
# Environment: ETCDCTL_ENDPOINTS (default http://127.0.0.1:2379), BALANCERD_PREFIX
# (default /balancerd), and etcdctl's own ETCDCTL_CACERT / _CERT / _KEY for TLS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/lib/packages.sh"

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: $0 SERVICE ID ADDRESS [TTL]" >&2
    exit 2
fi
service="$1" id="$2" address="$3" ttl="${4:-10}"
prefix="${BALANCERD_PREFIX:-/balancerd}"
command -v etcdctl >/dev/null || ensure_packages etcd-client
export ETCDCTL_API=3
export ETCDCTL_ENDPOINTS="${ETCDCTL_ENDPOINTS:-http://127.0.0.1:2379}"

lease="$(etcdctl lease grant "$ttl" | awk '/granted/ {print $2}')"
[ -n "$lease" ] || { echo "$0: could not grant a lease" >&2; exit 1; }
key="$prefix/endpoints/$service/$id"
etcdctl put --lease="$lease" "$key" "\"$address\"" >/dev/null
echo "registered $key = $address (lease $lease, ttl ${ttl}s); Ctrl-C to deregister"
etcdctl lease keep-alive "$lease" >/dev/null &
keeper=$!
# A clean stop deregisters at once, rather than after the TTL.
trap 'kill "$keeper" 2>/dev/null || true; etcdctl lease revoke "$lease" >/dev/null 2>&1 || true; echo "deregistered $key"' EXIT
trap 'exit 0' TERM INT
wait "$keeper"
