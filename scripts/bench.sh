#!/usr/bin/env bash
# Benchmarks balancerd against HAProxy (TCP mode, twice: plain and with forced splice),
# nginx's stream module and a direct connection, on the same backends, in one run.
#
#   scripts/bench.sh [--quick] [--runs N] [--pin] [--only SECTIONS] [--verbose]
#
# --runs N: each figure is the median of N runs (default 3; 1 with --quick), the proxies
# taken in turn within each run. --pin: load generators on CPU 0, proxies and backends on
# CPU 1. --only tcp,log,syscalls,reload,etcd,udp,tls: just those rows. --verbose: also the
# most frequent system calls of HAProxy and balancerd per connection and per request.
#
# Everything it starts it stops. Traffic stays on 127.0.0.1. Results are printed as one
# table; nothing here is a test and nothing fails on a figure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/lib/packages.sh

ensure_packages libev-dev libhttp-parser-dev libc-ares-dev libcurl4-openssl-dev haproxy nginx libnginx-mod-stream iperf3 wrk etcd-server gcc libssl-dev strace apache2-utils
swift build -c release --product balancerd >/dev/null
exec python3 scripts/bench.py --balancerd "$(swift build -c release --show-bin-path)/balancerd" "$@"
