#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the unit tests and the end-to-end
# tests that run the real daemon against real backends on 127.0.0.1.
#
#   scripts/test.sh                      # everything
#   scripts/test.sh --sanitize address   # everything, under AddressSanitizer (or thread)
#   scripts/test.sh --filter Reload      # extra arguments go to `swift test`
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/lib/packages.sh

# libev: the event loop; http-parser: the admin port; c-ares: endpoints that follow DNS
# names; libcurl: the etcd client. For the end-to-end tests: etcd-server, etcd-client and
# openssl (real etcd members, TLS certificates); prometheus (promtool, and a real server
# scraping the admin port); systemd (systemd-analyze and systemd-socket-activate; systemd
# need not be running); dnsmasq-base (the dnsmasq binary, without a system service) and
# PyPI's dnslib (DNS servers); bind9-dnsutils (dig); chromium, chromium-driver and PyPI's
# selenium (the status page in a real browser); iperf3 (UDP through balancerd); nginx and
# curl (TLS endpoints and a client for the routing by server name); dpkg-dev, lintian,
# groff-base and man-db (the Debian package and its man pages) and PyPI's
# kubernetes-validate (the manifests' schema); redis-server and postgresql (protocol health
# checks against real servers).
ensure_packages libev-dev libhttp-parser-dev libc-ares-dev libcurl4-openssl-dev \
    etcd-server etcd-client openssl prometheus systemd dnsmasq-base bind9-dnsutils chromium chromium-driver \
    iperf3 nginx curl dpkg-dev lintian groff-base man-db redis-server postgresql
ensure_python_modules dnslib selenium kubernetes_validate
trap 'stop_strays "$root"' EXIT

build=(--build-path .build)
if [ "${1:-}" = "--sanitize" ]; then
    kind="${2:?--sanitize needs address or thread}"
    shift 2
    # A build folder of its own, so that the plain build stays as it was.
    build=(--build-path ".build-$kind" --sanitize="$kind")
    export BALANCERD_BUILD_DIR="$root/.build-$kind/debug"
    # Tests that judge memory by RSS skip that judgement under a sanitizer.
    export BALANCERD_SANITIZER="$kind"
    # The daemon and backends run as separate processes; their reports must fail the run.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:suppressions=$root/scripts/asan.supp}"
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1}"
fi

# The Debian package, built once for PackageEndToEndTests, which check this .deb (its release
# build has a folder of its own, .build-package: minutes the first time, seconds after).
BALANCERD_DEB="$(scripts/package.sh --no-lintian --output .build-package/dist | tail -n 1)"
export BALANCERD_DEB

swift build "${build[@]}" --build-tests
# Every test is written with Swift Testing; skipping the empty XCTest pass keeps its
# "0 tests" line out of the output.
swift test "${build[@]}" --skip-build --disable-xctest "$@"
