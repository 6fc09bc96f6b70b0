#!/usr/bin/env bash
# Runs a command as root in a throwaway copy of this machine's root filesystem, for the
# package tests: an overlay whose lower layer is / (never written) and whose upper layer is
# STATE/upper, in a mount namespace of its own, chrooted into. Everything the command
# changes lands in STATE/upper and stays there for the next call with the same STATE, so
# `dpkg -i`, a check and `dpkg --purge` can be separate calls, and what purge left behind is
# the list of files in STATE/upper.
#
#   scripts/lib/sandbox.sh STATE COMMAND [ARGUMENT...]
#
# In the sandbox: STATE/in is at /mnt/in (read-only), /proc and /dev are mounted, /tmp is
# empty, and /opt/swift (the toolchain) is hidden, so what runs there cannot use it. Needs
# root (or password-less sudo): unshare(2) and mount(2).
set -euo pipefail
state="${1:?usage: sandbox.sh STATE COMMAND...}"
shift
[ $# -gt 0 ] || { echo "usage: sandbox.sh STATE COMMAND..." >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
    exec sudo -n -- "$0" "$state" "$@"
fi
mkdir -p "$state/upper" "$state/work" "$state/merged" "$state/in"
state="$(cd "$state" && pwd)"

exec unshare --mount --pid --fork --kill-child -- /bin/sh -c '
    set -e
    state="$1"; shift
    root="$state/merged"
    mount --make-rprivate /
    mount -t overlay overlay -o "lowerdir=/,upperdir=$state/upper,workdir=$state/work" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/tmp"
    if [ -d "$root/opt/swift" ]; then mount -t tmpfs -o ro tmpfs "$root/opt/swift"; fi
    mkdir -p "$root/mnt/in"
    mount --bind -o ro "$state/in" "$root/mnt/in"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "$@"
' sandbox "$state" "$@"
