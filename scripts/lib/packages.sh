# Sourced by the scripts: installs Debian packages that are missing, once.
# Usage: ensure_packages PACKAGE...

ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Stops processes started from this checkout's build folders (a crashed test run can leave
# a daemon behind).
stop_strays() {
    local root="$1"
    pkill -KILL -f "$root/.build/.*/(balancerd|testbackend)( |$)" 2>/dev/null || true
}
