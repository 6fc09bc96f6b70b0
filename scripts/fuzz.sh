#!/usr/bin/env bash
# Runs a libFuzzer target for a given time.
#
#   scripts/fuzz.sh config|admin-request|client-hello [SECONDS]     (default 60)
#
# Builds with -sanitize=fuzzer,address in .build-fuzz/, seeds from Fuzz/corpus/TARGET,
# keeps what it discovers in .build-fuzz/corpus-TARGET and writes crashes to Fuzz/crashes/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/lib/packages.sh

target="${1:?usage: scripts/fuzz.sh config|admin-request|client-hello [SECONDS]}"
seconds="${2:-60}"
case "$target" in
    config|admin-request|client-hello) ;;
    *) echo "unknown target $target (config, admin-request or client-hello)" >&2; exit 2 ;;
esac
ensure_packages libev-dev libhttp-parser-dev libc-ares-dev libcurl4-openssl-dev

swift build --build-path .build-fuzz --product "fuzz-$target" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld
work=".build-fuzz/corpus-$target"
mkdir -p "$work" Fuzz/crashes
".build-fuzz/debug/fuzz-$target" "$work" "Fuzz/corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="Fuzz/crashes/$target-" -print_final_stats=1
