#!/usr/bin/env bash
# Memory for the app's kept output after a flood of long lines: ancm's resident memory (now
# and at its peak), and what `ancm logs -n 1000` sends and costs its client. Not part of CI.
#
#   bench/log_flood.sh [ANCM_BINARY]
#
# Environment (defaults in brackets): FLOOD_LINES lines printed [2000], FLOOD_BYTES bytes in
# each [100000]. The app prints them with no pause, then a last short line, then waits (it
# never listens: ancm keeps waiting for it within startupTimeLimit while this measures).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
ANCM=${1:-$ROOT/target/release/ancm}
LINES=${FLOOD_LINES:-2000}
BYTES=${FLOOD_BYTES:-100000}
[ -x "$ANCM" ] || { echo "no ancm binary at $ANCM (cargo build --release)" >&2; exit 1; }

WORK=$(mktemp -d)
ANCM_PID=""
cleanup() {
    [ -n "$ANCM_PID" ] && kill "$ANCM_PID" 2>/dev/null && wait "$ANCM_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/flood.py" <<PY
import sys, time
out = sys.stdout.buffer
line = b"x" * $BYTES + b"\n"
for _ in range($LINES):
    out.write(line)
out.write(b"flood done\n")
out.flush()
time.sleep(3600)
PY
mkdir -p "$WORK/app" "$WORK/run"
XDG_RUNTIME_DIR="$WORK/run" ANCM_LOG=warn "$ANCM" run --listen 127.0.0.1:0 \
    --startup-time-limit 3600 "$WORK/app" -- python3 "$WORK/flood.py" >/dev/null 2>&1 &
ANCM_PID=$!

kb() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$ANCM_PID/status"; }
for _ in $(seq 600); do
    if XDG_RUNTIME_DIR="$WORK/run" "$ANCM" logs -n 1 2>/dev/null | grep -q "flood done"; then
        break
    fi
    sleep 0.1
done
XDG_RUNTIME_DIR="$WORK/run" "$ANCM" logs -n 1 | grep -q "flood done" || { echo "the flood never ended" >&2; exit 1; }
SENT=$(XDG_RUNTIME_DIR="$WORK/run" "$ANCM" logs -n 1000 | wc -c)
CLIENT_KB=$( { XDG_RUNTIME_DIR="$WORK/run" /usr/bin/time -f "%M" "$ANCM" logs -n 1000 >/dev/null; } 2>&1 | tail -1)
printf 'ancm %s, %s lines of %s bytes\n' "$("$ANCM" --version 2>/dev/null || echo '?')" "$LINES" "$BYTES"
printf '  ancm resident memory: %s MiB now, %s MiB at the peak\n' \
    "$(( $(kb VmRSS) / 1024 ))" "$(( $(kb VmHWM) / 1024 ))"
printf '  ancm logs -n 1000: %s bytes sent; the client peaked at %s MiB\n' "$SENT" "$(( CLIENT_KB / 1024 ))"
