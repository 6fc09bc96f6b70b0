#!/usr/bin/env bash
# Installs balancerd: the release binaries (balancerd and balancerctl), the systemd units and
# a default configuration.
#
#   scripts/install.sh                       # into /usr/local and /etc
#   PREFIX=/usr DESTDIR=/tmp/pkg scripts/install.sh
#   BALANCERD_BIN=path/to/balancerd scripts/install.sh   # install that binary (and the balancerctl
#                                                        # beside it), build nothing
#
# An existing /etc/balancerd/balancerd.yaml is never overwritten.
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
