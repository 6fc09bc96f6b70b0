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

# Installs PyPI modules that python3 cannot import yet, once.
# Usage: ensure_python_modules MODULE...
ensure_python_modules() {
    local missing=()
    for module in "$@"; do
        python3 -c "import $module" 2>/dev/null || missing+=("$module")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    python3 -m pip --version >/dev/null 2>&1 || ensure_packages python3-pip
    echo "installing from PyPI: ${missing[*]}" >&2
    python3 -m pip install --quiet "${missing[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "${missing[@]}"
}

# Stops processes started from this checkout's build folders (a crashed test run can leave
# a daemon behind).
stop_strays() {
    local root="$1"
    pkill -KILL -f "$root/.build/.*/(balancerd|testbackend)( |$)" 2>/dev/null || true
}
