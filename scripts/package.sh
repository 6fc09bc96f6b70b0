#!/usr/bin/env bash
# Builds the Debian package dist/balancerd_<version>_<arch>.deb with Debian's own tools
# (dpkg-shlibdeps, dpkg-deb; lintian to check it), from a release build with the Swift
# runtime linked statically, so that it installs on a Debian 12 host without a toolchain.
#
#   scripts/package.sh                    # builds, packages, runs lintian (errors fail)
#   scripts/package.sh --output DIR       # the .deb into DIR instead of dist/
#   scripts/package.sh --no-lintian       # skip lintian (the tests run it themselves)
#
# Prints the path of the .deb on its last line. The release build has a folder of its own,
# .build-package, so it neither waits on nor disturbs the debug build of the tests.
#
# What the package holds: /usr/bin/balancerd and /usr/bin/balancerctl; the systemd unit
# (config/balancerd.service, as the `balancerd` system user, which postinst creates) and the
# example socket unit; /etc/balancerd/balancerd.yaml, a conffile; the man pages balancerd(8),
# balancerctl(8) and balancerd.yaml(5), the last generated from config/balancerd.yaml by
# scripts/gen-man.py. On install the service is enabled, not started (the configuration is an
# example to edit first); on an upgrade it is restarted if it was running.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/lib/packages.sh

output="$root/dist"
lint=1
while [ $# -gt 0 ]; do
    case "$1" in
        --output) output="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
        --no-lintian) lint=0; shift ;;
        *) echo "usage: scripts/package.sh [--output DIR] [--no-lintian]" >&2; exit 2 ;;
    esac
done

ensure_packages libev-dev libhttp-parser-dev libc-ares-dev libcurl4-openssl-dev dpkg-dev python3
[ "$lint" -eq 0 ] || ensure_packages lintian

version="$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/BalancerCore/Daemon/Version.swift)"
[ -n "$version" ] || { echo "package.sh: no version in Sources/BalancerCore/Daemon/Version.swift" >&2; exit 1; }
arch="$(dpkg --print-architecture)"
# Reproducible timestamps in the archive: those of the last commit.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
maintainer="${DEBFULLNAME:+$DEBFULLNAME <${DEBEMAIL:-root@localhost}>}"
if [ -z "$maintainer" ]; then
    # The project's first author: the same on every machine that has the history.
    maintainer="$(git log --reverse --format='%an <%ae>' 2>/dev/null | head -n 1 || true)"
    maintainer="${maintainer:-balancerd maintainers <root@localhost>}"
fi
deb="$output/balancerd_${version}_${arch}.deb"

# The release build, with the Swift runtime (and Foundation) linked in, and a read-only GOT
# (bindnow, as Debian's hardening flags give).
build=(-c release --static-swift-stdlib -Xlinker -z -Xlinker now --build-path "$root/.build-package")
for product in balancerd balancerctl; do
    swift build "${build[@]}" --product "$product" >&2
done
bin="$(swift build "${build[@]}" --show-bin-path)"
for program in balancerd balancerctl; do
    if ldd "$bin/$program" | grep -E 'libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime|/opt/swift|/usr/lib/swift'; then
        echo "package.sh: $program links the Swift toolchain's libraries above" >&2
        exit 1
    fi
done

work="$root/.build-package/deb"
rm -rf "$work"
stage="$work/balancerd"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/balancerd" "$stage/lib/systemd/system" \
    "$stage/usr/share/man/man5" "$stage/usr/share/man/man8" "$stage/usr/share/doc/balancerd"

# Binaries, stripped as dh_strip does.
for program in balancerd balancerctl; do
    install -m 0755 "$bin/$program" "$stage/usr/bin/$program"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/$program"
done

# The configuration, a conffile.
install -m 0644 config/balancerd.yaml "$stage/etc/balancerd/balancerd.yaml"
echo /etc/balancerd/balancerd.yaml > "$stage/DEBIAN/conffiles"

# The units: the installed paths, the package's system user instead of a dynamic one, and
# the man pages (which scripts/install.sh does not install).
sed -e 's|/usr/local/bin/balancerd|/usr/bin/balancerd|g' \
    -e 's|^Description=.*|&\nDocumentation=man:balancerd(8) man:balancerd.yaml(5)|' \
    -e 's|^DynamicUser=yes$|User=balancerd\nGroup=balancerd|' -e 's|an unprivileged dynamic user|the unprivileged balancerd user|' \
    -e '1s|.*|# balancerd under systemd, from the balancerd package. Override with systemctl edit balancerd.|' \
    config/balancerd.service > "$stage/lib/systemd/system/balancerd.service"
for line in 'ExecStart=/usr/bin/balancerd ' 'Documentation=man:' 'User=balancerd' 'Group=balancerd' 'StateDirectory=balancerd'; do
    grep -q "^$line" "$stage/lib/systemd/system/balancerd.service" \
        || { echo "package.sh: the packaged balancerd.service lacks $line (config/balancerd.service changed?)" >&2; exit 1; }
done
if grep -q 'DynamicUser=' "$stage/lib/systemd/system/balancerd.service"; then
    echo "package.sh: the packaged balancerd.service still has DynamicUser=" >&2; exit 1
fi
install -m 0644 config/balancerd.socket "$stage/lib/systemd/system/balancerd.socket"
chmod 0644 "$stage/lib/systemd/system/balancerd.service"

# Yams, the YAML parser of the configuration loader, compiles its own copy of libyaml (its
# CYaml target) into balancerd: SwiftPM cannot point it at Debian's libyaml.
install -d "$stage/usr/share/lintian/overrides"
cat > "$stage/usr/share/lintian/overrides/balancerd" <<'OVERRIDES'
# Yams (the Swift YAML parser) builds its own copy of libyaml into the binary.
balancerd: embedded-library libyaml [usr/bin/balancerd]
OVERRIDES
chmod 0644 "$stage/usr/share/lintian/overrides/balancerd"

# Man pages; balancerd.yaml(5) from the commented configuration, so that they cannot drift.
python3 scripts/gen-man.py config/balancerd.yaml > "$work/balancerd.yaml.5"
gzip -9n < "$work/balancerd.yaml.5" > "$stage/usr/share/man/man5/balancerd.yaml.5.gz"
for page in balancerd.8 balancerctl.8; do
    gzip -9n < "man/$page" > "$stage/usr/share/man/man8/$page.gz"
done

# /usr/share/doc: the copyright of what the binaries hold, and a Debian changelog.
{
    echo "balancerd"
    echo
    echo "Copyright: the balancerd authors."
    echo "The project has not chosen a licence yet; until it does, this package is for"
    echo "evaluation only."
    echo
    echo "The binaries link in, statically:"
    echo
    echo " - The Swift runtime, standard library and Foundation (swift.org), Apache-2.0 with"
    echo "   the Runtime Library Exception; see /usr/share/common-licenses/Apache-2.0."
    echo " - swift-argument-parser (Apple Inc.), Apache-2.0 with the Runtime Library Exception."
    echo " - Yams (JP Simard and contributors) and the libyaml it embeds (Kirill Simonov,"
    echo "   Ingy dot Net), MIT:"
    echo
    sed -e 's/^/   /' -e 's/^ *$/   ./' "$root/.build-package/checkouts/Yams/LICENSE"
} > "$stage/usr/share/doc/balancerd/copyright"
date="$(git log -1 --format=%cD 2>/dev/null || date -R)"
printf 'balancerd (%s) unstable; urgency=medium\n\n  * Release %s, built from %s.\n\n -- %s  %s\n' \
    "$version" "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')" "$maintainer" "$date" \
    | gzip -9n > "$stage/usr/share/doc/balancerd/changelog.gz"

# Maintainer scripts, in the idioms debhelper's dh_installsystemd writes, but: enable on
# install without starting; try-restart (only if running) on upgrade.
cat > "$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e

if [ "$1" = "configure" ]; then
    # The unit runs as this user (User=balancerd); it owns nothing but /var/lib/balancerd.
    if ! getent passwd balancerd >/dev/null; then
        adduser --system --group --quiet --home /nonexistent --no-create-home balancerd
    fi
fi

if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
    # This only removes a mask that postrm put on removal.
    deb-systemd-helper unmask 'balancerd.service' >/dev/null || true
    # was-enabled is true on a first install, so that enables it; after that the admin decides.
    if deb-systemd-helper --quiet was-enabled 'balancerd.service'; then
        deb-systemd-helper enable 'balancerd.service' >/dev/null || true
    else
        deb-systemd-helper update-state 'balancerd.service' >/dev/null || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        # Not started on a first install: /etc/balancerd/balancerd.yaml is an example to edit
        # first. On an upgrade, restarted only if it runs.
        if [ -n "$2" ]; then
            deb-systemd-invoke try-restart 'balancerd.service' >/dev/null || true
        fi
    fi
fi
EOF
cat > "$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e

if [ -d /run/systemd/system ] && [ "$1" = "remove" ]; then
    deb-systemd-invoke stop 'balancerd.service' 'balancerd.socket' >/dev/null || true
fi
EOF
cat > "$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e

if [ "$1" = "remove" ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi

if [ "$1" = "remove" ]; then
    if [ -x "/usr/bin/deb-systemd-helper" ]; then
        deb-systemd-helper mask 'balancerd.service' >/dev/null || true
    fi
fi

if [ "$1" = "purge" ]; then
    if [ -x "/usr/bin/deb-systemd-helper" ]; then
        deb-systemd-helper purge 'balancerd.service' 'balancerd.socket' >/dev/null || true
        deb-systemd-helper unmask 'balancerd.service' >/dev/null || true
    fi
    # The unit's StateDirectory (admin.stateFile). The balancerd user stays, as Debian's
    # packages leave their system users: files elsewhere may still be owned by it.
    rm -rf /var/lib/balancerd /var/lib/private/balancerd
fi
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

# Depends: what the binaries link, as dpkg-shlibdeps finds it in the installed packages.
mkdir -p "$work/debian"
printf 'Source: balancerd\n\nPackage: balancerd\nArchitecture: any\n' > "$work/debian/control"
shlibs="$(cd "$work" && dpkg-shlibdeps -O "-e$stage/usr/bin/balancerd" "-e$stage/usr/bin/balancerctl" | sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || { echo "package.sh: dpkg-shlibdeps found no dependency" >&2; exit 1; }

(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
cat > "$stage/DEBIAN/control" <<EOF
Package: balancerd
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: adduser, $shlibs
Section: net
Priority: optional
Description: userspace L4 (TCP) load balancer daemon
 balancerd listens on host ports and spreads each service's TCP connections
 over the service's endpoints: weighted round-robin, least-connections or
 client-address affinity, active-active or active-passive. It checks the
 endpoints' health, retries a failed connect on the next endpoint, follows
 endpoints given by DNS name or kept in etcd, reloads its configuration
 without dropping a connection, and answers /stats and Prometheus /metrics on
 a local admin port, where endpoints can be drained at run time (balancerctl).
 .
 The systemd unit is enabled on install but not started: edit
 /etc/balancerd/balancerd.yaml, then run systemctl start balancerd.
EOF

mkdir -p "$output"
find "$output" -maxdepth 1 -name 'balancerd_*.deb' ! -name "$(basename "$deb")" -delete
# xz at level 3: four times faster than the default 6 on these 60 MB of binaries (most of it
# the ICU data of the static Foundation), for a package 10% larger.
dpkg-deb --root-owner-group -Zxz -z3 --build "$stage" "$deb" >&2
if [ "$lint" -eq 1 ]; then
    # Errors fail; warnings and notes are shown.
    lintian --fail-on error --info "$deb" >&2
fi
echo "$deb"
