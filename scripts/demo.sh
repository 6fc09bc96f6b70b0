#!/usr/bin/env bash
# Installs what is missing, builds balancerd, starts three demo backends and balancerd in
# front of them (config/demo.yaml), shows the round-robin, then stops everything it started.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/lib/packages.sh

ensure_packages libev-dev libhttp-parser-dev libc-ares-dev libcurl4-openssl-dev

echo "building (release)..."
swift build -c release --product balancerd >/dev/null
swift build -c release --product testbackend >/dev/null
bin="$(swift build -c release --show-bin-path)"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

for i in 1 2 3; do
    name="pod-$(printf '%s' "abc" | cut -c"$i")"
    "$bin/testbackend" --name "$name" --port "1808$i" >/dev/null &
    pids+=($!)
done
log="$(mktemp)"
"$bin/balancerd" --config config/demo.yaml 2>"$log" &
pids+=($!)

# Wait (at most 5 s) for the listener.
for _ in $(seq 50); do
    grep -q "started:" "$log" && break
    sleep 0.1
done
grep -q "started:" "$log" || { echo "balancerd did not start:"; cat "$log"; exit 1; }
sed 's/^/  balancerd | /' "$log"

echo
echo "six connections to 127.0.0.1:30080 (service 'web', endpoints 127.0.0.1:18081-18083):"
for n in 1 2 3 4 5 6; do
    exec 3<>/dev/tcp/127.0.0.1/30080
    read -r -t 2 answer <&3 || answer="(no answer)"
    exec 3>&-
    echo "  connection $n -> $answer"
done

echo
echo "stopping balancerd with SIGTERM:"
kill -TERM "${pids[3]}"
wait "${pids[3]}" 2>/dev/null || true
tail -n 2 "$log" | sed 's/^/  balancerd | /'
rm -f "$log"
