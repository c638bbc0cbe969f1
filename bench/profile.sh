#!/usr/bin/env bash
# Profiles ancm under wrk load (the same nginx backend as run.sh) and prints the hottest
# functions. Not part of CI; expects bench/run.sh to have installed nginx and wrk. In callgrind
# mode it first measures ancm and nginx as the reverse proxy at full speed (no valgrind), then
# profiles both under callgrind, and ends with one table: requests/s, p99, CPU time, context
# switches and instructions per request of each proxy, and their ratios.
#
#   bench/profile.sh [auto|perf|callgrind]
#
# auto (the default) uses perf when `perf stat -e instructions true` counts instructions
# (hardware counters available), else valgrind's callgrind. `perf` forces perf sampling on
# the cpu-clock software event, which works without hardware counters. Callgrind slows ancm
# down ~50x, so its load is lighter: wrk -t1 -c8 for BENCH_PROFILE_SECS [15] seconds.
# BENCH_ANCM=PATH profiles that ancm binary instead of building this tree's release build
# (to compare two builds one after the other, under the same load from the rest of the machine).
#
# The full-speed runs (callgrind mode): wrk -t2 -c64 for BENCH_FULL_SECS [10] seconds,
# BENCH_FULL_REPS [3] times for each proxy, interleaved, medians; BENCH_FULL_REPS=0 skips them.
# Both proxies have as many workers (ancm's proxy threads, nginx's worker processes) and serve
# the backend ancm runs. Every process runs in this script's session, so that Linux's
# autogroup scheduling (one CPU share per session) treats them alike; BENCH_SESSIONS=apart
# starts ancm and the nginx proxy each in a session of its own, as run.sh does, where ancm's
# app shares ancm's session and the nginx proxy has one to itself.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
MODE=${1:-auto}
SECS=${BENCH_PROFILE_SECS:-15}
TOP=${BENCH_PROFILE_TOP:-10}
FULL_SECS=${BENCH_FULL_SECS:-10}
FULL_REPS=${BENCH_FULL_REPS:-3}
SESSIONS=${BENCH_SESSIONS:-shared}

log() { printf '[profile %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
H() { python3 "$HERE/helpers.py" "$@"; }

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] && command -v wrk >/dev/null || die "nginx and wrk are needed: run bench/run.sh first"

if [ "$MODE" = auto ]; then
    if perf stat -x, -e instructions true 2>&1 >/dev/null | grep -q '^[0-9]'; then
        MODE=perf-instructions
    else
        MODE=callgrind
    fi
fi
case $MODE in
perf | perf-instructions) command -v perf >/dev/null || die "perf is missing (apt-get install linux-perf)" ;;
callgrind) command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)" ;;
*) die "unknown mode $MODE (auto, perf or callgrind)" ;;
esac
case $SESSIONS in
shared | apart) ;;
*) die "BENCH_SESSIONS is $SESSIONS: shared or apart" ;;
esac

WORK=""
ANCM_PID=""
PROF_PID=""
FULL_PIDS=""  # the full-speed runs' ancm and nginx master, in this script's session
# The children of PID (nginx's workers), by their parent.
children() { ps -o pid= --ppid "$1" 2>/dev/null || true; }
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    local kids=""
    for pid in $FULL_PIDS; do
        kids="$kids $(children "$pid")"
    done
    for pid in $PROF_PID $ANCM_PID $FULL_PIDS; do
        kill -TERM "$pid" 2>/dev/null
    done
    sleep 1
    for pid in $PROF_PID $ANCM_PID; do
        kill -KILL -- "-$pid" 2>/dev/null
    done
    for pid in $FULL_PIDS $kids; do
        kill -KILL "$pid" 2>/dev/null
    done
    [ -z "$APP_PID" ] || kill -KILL -- "-$APP_PID" 2>/dev/null
    [ -z "$WORK" ] || rm -rf "$WORK"
    exit "$rc"
}
APP_PID=""
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ -n "${BENCH_ANCM:-}" ]; then
    ANCM=$BENCH_ANCM
    [ -x "$ANCM" ] || die "BENCH_ANCM is $ANCM: not an executable"
else
    (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
    ANCM=${CARGO_TARGET_DIR:-$ROOT/target}/release/ancm
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ancm-profile.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/app" "$WORK/www" "$WORK/run" "$WORK/tmp"
chmod 755 "$WORK/app" "$WORK/www" "$WORK/run"
chmod 1777 "$WORK/tmp"
sed "s#@DIR@#$WORK#g" "$HERE/backend.conf.in" >"$WORK/app/backend.tmpl"
APP_CMD="sed \"s/@PORT@/\$BACKEND_PORT/g\" '$WORK/app/backend.tmpl' > '$WORK/run/backend-'\$BACKEND_PORT.conf && exec '$NGINX' -e stderr -p '$WORK' -c '$WORK/run/backend-'\$BACKEND_PORT.conf -g 'daemon off;'"
ANCM_ARGS=(run "$WORK/app" --listen 127.0.0.1:0 --port-env BACKEND_PORT -- sh -c "$APP_CMD")

# Full speed: CPU time and context switches per request of ancm (its process: every thread)
# and of nginx as the reverse proxy (master and workers), from /proc before and after each wrk
# run, divided by the requests wrk counted; both proxies idle before and after.
full_speed() {
    local launch=() fpid fp fapp fm q workers rep i
    [ "$SESSIONS" = apart ] && launch=(setsid)
    "${launch[@]}" "$ANCM" "${ANCM_ARGS[@]}" </dev/null >"$WORK/ancm-full.log" 2>&1 &
    fpid=$!
    FULL_PIDS="$fpid"
    read -r fp fapp fm < <(H wait-ready "$WORK/ancm-full.log" "$fpid" 60) || true
    [ -n "${fm:-}" ] || { cat "$WORK/ancm-full.log" >&2; die "ancm did not start"; }
    APP_PID=$fapp
    workers=$(grep -l '^ancm-proxy-' /proc/"$fpid"/task/*/comm 2>/dev/null | wc -l)
    ((workers > 0)) || workers=1
    q=$(H freeport)
    sed -e "s#@DIR@#$WORK#g" -e "s/@PORT@/$q/g" -e "s/@BACKEND@/$fm/g" \
        -e "s/^worker_processes auto;/worker_processes $workers;/" \
        "$HERE/proxy.conf.in" >"$WORK/run/proxy-full.conf"
    "${launch[@]}" "$NGINX" -e stderr -p "$WORK" -c "$WORK/run/proxy-full.conf" -g 'daemon off;' \
        </dev/null >"$WORK/nginx-full.log" 2>&1 &
    FULL_PIDS="$fpid $!"
    local nginx_pid=$!
    for ((i = 0; i < 100; i++)); do
        [ "$(curl -s "http://127.0.0.1:$q/" || true)" = hello ] && break
        kill -0 "$nginx_pid" 2>/dev/null || { cat "$WORK/nginx-full.log" >&2; die "nginx did not start"; }
        sleep 0.1
    done
    log "full speed: ancm on port $fp, nginx on port $q, $workers workers each, backend on port $fm (sessions: $SESSIONS)"
    local busy
    busy=$(H quiet 30)
    case $busy in
    busy*)
        FULL_NOTE="other work kept the machine ${busy#busy }% busy (of both cores) before the full-speed runs"
        log "note: $FULL_NOTE"
        ;;
    esac
    FULL_LOAD=(wrk -t2 -c64 -d"${FULL_SECS}s" --latency)
    for url in "http://127.0.0.1:$fp/" "http://127.0.0.1:$q/"; do
        wrk -t2 -c64 -d2s "$url" >/dev/null
    done
    for ((rep = 1; rep <= FULL_REPS; rep++)); do
        log "full speed $rep/$FULL_REPS: ancm"
        H cost-run "$WORK/full.txt" ancm "$fpid" -- "${FULL_LOAD[@]}" "http://127.0.0.1:$fp/"
        log "full speed $rep/$FULL_REPS: nginx"
        H cost-run "$WORK/full.txt" nginx "$nginx_pid" tree -- "${FULL_LOAD[@]}" "http://127.0.0.1:$q/"
    done
    kill -TERM "$nginx_pid" "$fpid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$fpid" 2>/dev/null || kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$fpid" "$nginx_pid" 2>/dev/null || true
    FULL_PIDS=""
    APP_PID=""
}
: >"$WORK/full.txt"
: >"$WORK/instructions.txt"
FULL_LOAD=()
FULL_NOTE=""
if [ "$MODE" = callgrind ] && ((FULL_REPS > 0)); then
    full_speed
fi

case $MODE in
callgrind)
    setsid valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
        "$ANCM" "${ANCM_ARGS[@]}" </dev/null >"$WORK/ancm.log" 2>&1 &
    ANCM_PID=$!
    WRK=(wrk -t1 -c8 -d"${SECS}s" --latency)
    ;;
*)
    setsid "$ANCM" "${ANCM_ARGS[@]}" </dev/null >"$WORK/ancm.log" 2>&1 &
    ANCM_PID=$!
    WRK=(wrk -t2 -c64 -d"${SECS}s" --latency)
    ;;
esac
read -r P APP_PID _ < <(H wait-ready "$WORK/ancm.log" "$ANCM_PID" 120) || true
[ -n "${P:-}" ] || { cat "$WORK/ancm.log" >&2; die "ancm did not start"; }
log "ancm ($MODE) on port $P"
# Warm the pool up before collecting.
curl -s "http://127.0.0.1:$P/" >/dev/null

case $MODE in
callgrind)
    callgrind_control -i on "$ANCM_PID" >/dev/null
    "${WRK[@]}" "http://127.0.0.1:$P/" | tee "$WORK/wrk.out" >&2
    callgrind_control -i off "$ANCM_PID" >/dev/null
    kill -TERM "$ANCM_PID"
    for ((i = 0; i < 300; i++)); do kill -0 "$ANCM_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$ANCM_PID" 2>/dev/null || true
    ANCM_PID=""
    APP_PID=""
    out=$(ls "$WORK"/callgrind.out* | head -1)
    [ -z "${BENCH_PROFILE_KEEP:-}" ] || cp "$out" "$BENCH_PROFILE_KEEP"
    echo "Top $TOP functions by instructions executed in ancm (callgrind, self cost, ${WRK[*]}):"
    callgrind_annotate --inclusive=no "$out" 2>/dev/null | awk -v top="$TOP" '
        /PROGRAM TOTALS/ { print; next }
        /file:function/ { go = 1; getline; next }
        go && NF && n < top { print; n++ }'
    reqs=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
    total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    [ -z "$reqs" ] || [ -z "$total" ] ||
        echo "$reqs requests: $((total / reqs)) instructions per request in ancm (user space)"
    ancm_per=$((total / reqs))
    echo "ancm $ancm_per" >>"$WORK/instructions.txt"

    # nginx as the reverse proxy in front of the same backend, one worker in the foreground
    # (master_process off) under callgrind, with the same load: both figures from one run.
    backend_port=$(H freeport)
    proxy_port=$(H freeport)
    sed "s/@PORT@/$backend_port/g" "$WORK/app/backend.tmpl" >"$WORK/run/backend.conf"
    setsid "$NGINX" -e stderr -p "$WORK" -c "$WORK/run/backend.conf" -g 'daemon off;' \
        </dev/null >"$WORK/backend.log" 2>&1 &
    APP_PID=$!
    sed -e "s#@DIR@#$WORK#g" -e "s/@PORT@/$proxy_port/g" -e "s/@BACKEND@/$backend_port/g" \
        -e 's/^worker_processes auto;/worker_processes 1;/' \
        "$HERE/proxy.conf.in" >"$WORK/run/proxy.conf"
    setsid valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/nginx.callgrind" \
        "$NGINX" -e stderr -p "$WORK" -c "$WORK/run/proxy.conf" -g 'daemon off; master_process off;' \
        </dev/null >"$WORK/nginx.log" 2>&1 &
    ANCM_PID=$!
    for ((i = 0; i < 600; i++)); do
        curl -sf "http://127.0.0.1:$proxy_port/" >/dev/null && break
        kill -0 "$ANCM_PID" 2>/dev/null || { cat "$WORK/nginx.log" >&2; die "nginx did not start"; }
        sleep 0.1
    done
    log "nginx (callgrind) on port $proxy_port"
    callgrind_control -i on "$ANCM_PID" >/dev/null
    "${WRK[@]}" "http://127.0.0.1:$proxy_port/" | tee "$WORK/wrk-nginx.out" >&2
    callgrind_control -i off "$ANCM_PID" >/dev/null
    kill -TERM "$ANCM_PID"
    for ((i = 0; i < 300; i++)); do kill -0 "$ANCM_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$ANCM_PID" 2>/dev/null || true
    ANCM_PID=""
    kill -TERM "$APP_PID" 2>/dev/null || true
    out=$(ls "$WORK"/nginx.callgrind* | head -1)
    reqs=$(awk '/requests in/ { print $1 }' "$WORK/wrk-nginx.out")
    total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    if [ -n "$reqs" ] && [ -n "$total" ]; then
        nginx_per=$((total / reqs))
        echo "$reqs requests: $nginx_per instructions per request in nginx (user space)"
        awk -v a="$ancm_per" -v n="$nginx_per" 'BEGIN { printf "ancm / nginx: %.2f\n", a / n }'
        echo "nginx $nginx_per" >>"$WORK/instructions.txt"
    fi
    if [ -s "$WORK/full.txt" ]; then
        echo
        echo "Per request, ancm and nginx as the reverse proxy in front of the same backend"
        echo "($(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); sessions: $SESSIONS)."
        echo "req/s, p99, CPU (user+sys of the proxy's processes and threads) and context switches"
        echo "(voluntary + involuntary, all threads) at full speed: ${FULL_LOAD[*]};"
        echo "instructions (user space) under callgrind: ${WRK[*]}."
        H cost-table "$WORK/full.txt" "$WORK/instructions.txt"
        [ -z "$FULL_NOTE" ] || echo "Note: $FULL_NOTE."
    fi
    ;;
*)
    event=cpu-clock
    [ "$MODE" = perf-instructions ] && event=instructions
    perf record -e "$event" -F 2000 -p "$ANCM_PID" -o "$WORK/perf.data" 2>"$WORK/perf.log" &
    PROF_PID=$!
    sleep 0.5
    "${WRK[@]}" "http://127.0.0.1:$P/" | tee "$WORK/wrk.out" >&2
    kill -INT "$PROF_PID"
    wait "$PROF_PID" 2>/dev/null || true
    PROF_PID=""
    echo "Top $TOP functions in ancm (perf, $event, self, ${WRK[*]}):"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol 2>/dev/null |
        grep -E '^ +[0-9.]+%' | sed -e 's/[ -]*$//' >"$WORK/perf.txt"
    head -"$TOP" "$WORK/perf.txt"
    awk '$2 == "[k]" { k += $1 } $2 == "[.]" { u += $1 }
        END { printf "samples in the kernel: %.0f%%, in user space: %.0f%%\n", k, u }' "$WORK/perf.txt"
    ;;
esac
