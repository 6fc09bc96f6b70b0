#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the unit tests and the end-to-end
# tests that run the real daemon against real backends on 127.0.0.1.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/lib/packages.sh

# libev: the event loop; http-parser: the admin port; prometheus: promtool and a real
# server scraping the admin port in the end-to-end tests.
# systemd: systemd-analyze and systemd-socket-activate (systemd need not be running).
ensure_packages libev-dev libhttp-parser-dev prometheus systemd
trap 'stop_strays "$root"' EXIT

swift build --build-tests
# Every test is written with Swift Testing; skipping the empty XCTest pass keeps its
# "0 tests" line out of the output.
swift test --skip-build --disable-xctest "$@"
