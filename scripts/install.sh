#!/usr/bin/env bash
# Installs balancerd: the release binaries (balancerd and balancerctl), the systemd units and
# a default configuration.
#
#   scripts/install.sh                       # into /usr/local and /etc
#   PREFIX=/usr DESTDIR=/tmp/pkg scripts/install.sh
#   BALANCERD_BIN=path/to/balancerd scripts/install.sh   # install that binary (and the balancerctl
#                                                        # beside it), build nothing
#
# An existing /etc/balancerd/balancerd.yaml is never overwritten. When it replaces the binary of
# a balancerd.service that is running (no DESTDIR), it upgrades it in place: SIGUSR2 makes the
# running daemon start the new binary with --takeover, which takes over every listener and
# open connection (no client is refused or cut); the old one exits once it has handed over.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/lib/packages.sh

PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
if [ -n "${BALANCERD_BIN:-}" ]; then
    bin="$BALANCERD_BIN"
else
    ensure_packages libev-dev libhttp-parser-dev libc-ares-dev libcurl4-openssl-dev
    swift build -c release --product balancerd >/dev/null
    swift build -c release --product balancerctl >/dev/null
    bin="$(swift build -c release --show-bin-path)/balancerd"
fi
ctl="$(dirname "$bin")/balancerctl"

install -d "$DESTDIR$PREFIX/bin" "$DESTDIR/etc/balancerd" "$DESTDIR/etc/systemd/system"
install -m 0755 "$bin" "$DESTDIR$PREFIX/bin/balancerd"
install -m 0755 "$ctl" "$DESTDIR$PREFIX/bin/balancerctl"
sed "s|/usr/local/bin/balancerd|$PREFIX/bin/balancerd|g" config/balancerd.service > "$DESTDIR/etc/systemd/system/balancerd.service"
chmod 0644 "$DESTDIR/etc/systemd/system/balancerd.service"
install -m 0644 config/balancerd.socket "$DESTDIR/etc/systemd/system/balancerd.socket"
if [ -e "$DESTDIR/etc/balancerd/balancerd.yaml" ]; then
    echo "kept the existing $DESTDIR/etc/balancerd/balancerd.yaml"
else
    install -m 0644 config/balancerd.yaml "$DESTDIR/etc/balancerd/balancerd.yaml"
fi
echo "installed $DESTDIR$PREFIX/bin/balancerd, $DESTDIR$PREFIX/bin/balancerctl and balancerd.service, balancerd.socket in $DESTDIR/etc/systemd/system"
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && systemctl is-active --quiet balancerd 2>/dev/null; then
    systemctl daemon-reload
    before="$(systemctl show -p MainPID --value balancerd)"
    systemctl kill -s SIGUSR2 balancerd
    # The takeover has 10 s; the old daemon logs why if it fails and goes on serving.
    for _ in $(seq 1 120); do
        now="$(systemctl show -p MainPID --value balancerd)"
        if [ "$now" != "$before" ] && [ "$now" != 0 ]; then
            echo "upgraded the running balancerd in place: pid $before handed over to pid $now"
            exit 0
        fi
        sleep 0.1
    done
    echo "install.sh: the running balancerd (pid $before) did not hand over to the new binary; it goes on serving with the old one (see journalctl -u balancerd)" >&2
    exit 1
fi
