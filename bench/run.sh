#!/usr/bin/env bash
# Measures ancm against nginx on this machine and prints a table; also writes bench/results.md.
# Not part of CI. See bench/README.md for what it measures and the targets.
#
#   bench/run.sh
#
# Environment (defaults in brackets): BENCH_DURATION seconds per wrk run [10], BENCH_REPS wrk
# and streaming repetitions [3], BENCH_START_REPS start/recovery repetitions [5],
# BENCH_IDLE_CONNS the idle connection counts [1000 10000].
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DURATION=${BENCH_DURATION:-10}
REPS=${BENCH_REPS:-3}
START_REPS=${BENCH_START_REPS:-5}
IDLE_CONNS=${BENCH_IDLE_CONNS:-"1000 10000"}
THREADS=2
CONNS=64
WRK_CMD="wrk -t$THREADS -c$CONNS -d${DURATION}s --latency"
GIB=1073741824
COMMAND="bench/run.sh"
[ "$DURATION/$REPS/$START_REPS/$IDLE_CONNS" = "10/3/5/1000 10000" ] ||
    COMMAND="BENCH_DURATION=$DURATION BENCH_REPS=$REPS BENCH_START_REPS=$START_REPS BENCH_IDLE_CONNS='$IDLE_CONNS' bench/run.sh"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
H() { python3 "$HERE/helpers.py" "$@"; }

WORK=""
RESULTS=""
BG_PIDS=()     # processes started here in their own group (setsid): ancm, the nginx proxy, helpers
APP_GROUPS=()  # process groups of apps and backends, killed at the end if anything is left

# Other work on the machine skews the figures: wait for it to calm down first, up to 30 s
# each time and 120 s in all; then measure anyway, and say so in the notes.
SETTLE_LEFT=120
settle() {
    local w limit=$((SETTLE_LEFT < 30 ? SETTLE_LEFT : 30)) t0=$SECONDS
    w=$(H quiet "$limit")
    SETTLE_LEFT=$((SETTLE_LEFT - (SECONDS - t0)))
    ((SETTLE_LEFT > 0)) || SETTLE_LEFT=0
    case $w in
    busy*) note "the machine was ${w#busy }% busy with other work before $1" ;;
    0.0) ;;
    *) log "waited ${w} s for other work on the machine to finish" ;;
    esac
}

record() { printf '%s %s\n' "$1" "$2" >>"$RESULTS"; }
note() { log "note: $*"; record note "$*"; }

# True while PID exists and is not a zombie.
alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$stat" ] && [ "${stat:0:1}" != Z ]
}

# stop PID [SIGNAL]: signal it, give it 15 s, then SIGKILL its process group.
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    [ -n "$pid" ] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "pid $pid did not stop after SIG$sig; killing its group"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP ERR
    set +e
    local pid g
    for pid in "${BG_PIDS[@]}"; do
        alive "$pid" && stop_pid "$pid"
    done
    for g in "${APP_GROUPS[@]}"; do
        kill -KILL -- "-$g" 2>/dev/null
    done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP
trap 'log "error: line $LINENO: $BASH_COMMAND failed"' ERR

# ------------------------------------------------------------------ tools
[ "$(uname -s)" = Linux ] || die "this benchmark needs Linux (/proc)"
NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; }
missing=()
[ -n "$NGINX" ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    log "installing: ${missing[*]}"
    $SUDO apt-get update
    pkgs=()
    for m in "${missing[@]}"; do
        if [ "$m" = nginx ]; then
            if apt-cache show nginx-light >/dev/null 2>&1; then pkgs+=(nginx-light); else pkgs+=(nginx); fi
        else
            pkgs+=("$m")
        fi
    done
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}"
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ -x "$NGINX" ] || die "nginx is not installed"

log "building ancm (cargo build --release)"
(cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
ANCM=${CARGO_TARGET_DIR:-$ROOT/target}/release/ancm
[ -x "$ANCM" ] || die "$ANCM is missing after the build"

# Room for 10,000 connections on each side.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=65536
[ "$hard" -gt 65536 ] && hard=65536
ulimit -n "$hard"

# ------------------------------------------------------------------ files
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ancm-bench.XXXXXX")
RESULTS=$WORK/results.txt
: >"$RESULTS"
# nginx workers run as an unprivileged user when started as root: they must read www/ and
# write tmp/.
chmod 755 "$WORK"
mkdir -p "$WORK/app" "$WORK/www" "$WORK/run" "$WORK/tmp" "$WORK/out"
chmod 755 "$WORK/app" "$WORK/www" "$WORK/run"
chmod 1777 "$WORK/tmp"
log "work folder $WORK; writing a 1 GiB file"
dd if=/dev/zero of="$WORK/www/big" bs=1M count=1024 status=none
chmod 644 "$WORK/www/big"
sed "s#@DIR@#$WORK#g" "$HERE/backend.conf.in" >"$WORK/app/backend.tmpl"

# The app's command, as ancm runs it (and as the start-time baseline runs it without ancm).
APP_CMD="sed \"s/@PORT@/\$BACKEND_PORT/g\" '$WORK/app/backend.tmpl' > '$WORK/run/backend-'\$BACKEND_PORT.conf && exec '$NGINX' -e stderr -p '$WORK' -c '$WORK/run/backend-'\$BACKEND_PORT.conf -g 'daemon off;'"

nproc_n=$(nproc)
model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
nginx_v=$("$NGINX" -v 2>&1 | sed 's#.*nginx/#nginx #' || true)
wrk_v=$( (wrk -v 2>&1 || true) | awk 'NR == 1 {print "wrk", $2}')
ancm_v=$("$ANCM" --version 2>/dev/null | head -1 || true)
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
record date "$(date -u '+%Y-%m-%d %H:%M UTC')"
record nproc "$nproc_n"
record model "${model:-unknown}"
record versions "$ancm_v (commit $rev), $nginx_v, $wrk_v, $(uname -r)"
record wrk_cmd "$WRK_CMD"

# ------------------------------------------------------------------ ancm + backend
log "starting ancm with nginx as its app"
setsid "$ANCM" run "$WORK/app" --listen 127.0.0.1:0 --max-request-body 0 --port-env BACKEND_PORT -- sh -c "$APP_CMD" \
    </dev/null >"$WORK/ancm.log" 2>&1 &
ANCM_PID=$!
BG_PIDS+=("$ANCM_PID")
read -r P APP_PID M < <(H wait-ready "$WORK/ancm.log" "$ANCM_PID" 60) ||
    { cat "$WORK/ancm.log" >&2; die "ancm did not start"; }
[ -n "${M:-}" ] || { cat "$WORK/ancm.log" >&2; die "ancm did not start"; }
APP_GROUPS+=("$APP_PID")
log "ancm pid $ANCM_PID on port $P; backend nginx pid $APP_PID on port $M"
sleep 1
read -r rss _ < <(H status "$ANCM_PID")
record rss_idle "$rss"

log "starting the nginx reverse proxy"
Q=$(H freeport)
sed -e "s#@DIR@#$WORK#g" -e "s#@PORT@#$Q#g" -e "s#@BACKEND@#$M#g" "$HERE/proxy.conf.in" >"$WORK/run/proxy.conf"
setsid "$NGINX" -e stderr -p "$WORK" -c "$WORK/run/proxy.conf" -g 'daemon off;' \
    </dev/null >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
BG_PIDS+=("$PROXY_PID")

declare -A URL=([direct]="http://127.0.0.1:$M" [ancm]="http://127.0.0.1:$P" [nginx]="http://127.0.0.1:$Q")
for path in direct ancm nginx; do
    ok=""
    for ((i = 0; i < 100; i++)); do
        if [ "$(curl -s --max-time 5 "${URL[$path]}/" || true)" = hello ]; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { cat "$WORK/ancm.log" "$WORK/proxy.log" >&2; die "no hello from ${URL[$path]}/ ($path)"; }
done

# ------------------------------------------------------------------ requests/s
# cpu_spec: what to account CPU to during a wrk run.
cpu_specs() { echo "wrk=$1 backend=-$APP_PID ancm=$ANCM_PID proxy=-$PROXY_PID"; }
span=$((DURATION > 4 ? DURATION - 2 : 1))
log "warming up each path (2 s each)"
for path in direct ancm nginx; do
    wrk -t$THREADS -c$CONNS -d2s "${URL[$path]}/" >/dev/null
done
for ((rep = 1; rep <= REPS; rep++)); do
    for path in direct ancm nginx; do
        settle "wrk $path run $rep"
        log "wrk $rep/$REPS: $path (${DURATION}s)"
        out=$WORK/out/wrk-$path-$rep
        wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency "${URL[$path]}/" >"$out" &
        wrk_pid=$!
        # shellcheck disable=SC2046
        H cpu "$out.cpu" 1 "$span" $(cpu_specs "$wrk_pid") &
        cpu_pid=$!
        wait "$wrk_pid" || die "wrk failed: $(cat "$out")"
        wait "$cpu_pid" || true
        read -r rps p50 p99 errs < <(H wrk-parse "$out") || die "could not read wrk's output: $(cat "$out")"
        record "rps_$path" "$rps"
        record "p50_$path" "$p50"
        record "p99_$path" "$p99"
        record "err_$path" "$errs"
        [ "$errs" = 0 ] || note "wrk $path run $rep: $errs errors or non-2xx responses"
        while read -r name pct; do record "cpu_${path}_$name" "$pct"; done <"$out.cpu"
        log "  $rps req/s, p50 $p50 ms, p99 $p99 ms; CPU % $(tr '\n' ' ' <"$out.cpu")"
    done
done
read -r rss hwm < <(H status "$ANCM_PID")
record hwm_after_wrk "$hwm"
record rss_after_wrk "$rss"

# ------------------------------------------------------------------ streaming
for ((rep = 1; rep <= REPS; rep++)); do
    for path in direct ancm nginx; do
        for dir in down up; do
            out=$WORK/out/curl-$dir-$path-$rep
            settle "1 GiB $dir $path run $rep"
            if [ "$dir" = down ]; then
                curl -sS --max-time 120 -o /dev/null -w '%{http_code} %{size_download} %{speed_download}\n' \
                    "${URL[$path]}/big" >"$out" &
            else
                curl -sS --max-time 120 -o /dev/null -H 'Expect:' -X POST -T "$WORK/www/big" \
                    -w '%{http_code} %{size_upload} %{speed_upload}\n' "${URL[$path]}/upload" >"$out" &
            fi
            curl_pid=$!
            rss_pid=""
            if [ "$path" = ancm ]; then
                H rss-peak "$ANCM_PID" "$curl_pid" >"$out.rss" &
                rss_pid=$!
            fi
            wait "$curl_pid" || die "curl $dir $path failed: $(cat "$out")"
            [ -z "$rss_pid" ] || { wait "$rss_pid"; record "rsspeak_$dir" "$(cat "$out.rss")"; }
            read -r code size speed <"$out"
            [ "$code" = 200 ] && [ "$size" = "$GIB" ] || die "curl $dir $path: status $code, $size bytes"
            mbs=$(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1e6 }')
            record "${dir}_$path" "$mbs"
            log "1 GiB $dir $rep/$REPS $path: $mbs MB/s"
        done
    done
done

# ------------------------------------------------------------------ idle connections
fdlimit=$(ulimit -n)
for n in $IDLE_CONNS; do
    if [ "$fdlimit" -lt $((n + 100)) ]; then
        note "skipped $n idle connections: the open-file limit is $fdlimit"
        continue
    fi
    log "opening $n idle keep-alive connections to ancm"
    out=$WORK/out/idle-$n
    setsid python3 "$HERE/helpers.py" idle 127.0.0.1 "$P" "$n" </dev/null >"$out" 2>&1 &
    idle_pid=$!
    BG_PIDS+=("$idle_pid")
    for ((i = 0; i < 1200; i++)); do
        grep -q '^ready' "$out" 2>/dev/null && break
        alive "$idle_pid" || break
        sleep 0.1
    done
    grep -q '^ready' "$out" || die "the idle-connection helper did not finish: $(cat "$out")"
    sleep 1
    read -r _ open _ failed <"$out"
    read -r rss _ < <(H status "$ANCM_PID")
    fds=$(ls "/proc/$ANCM_PID/fd" | wc -l)
    record "rss_idle_$n" "$rss"
    record "idle_${n}_open" "$open"
    [ "$failed" = 0 ] || note "$failed of $n idle connections failed"
    log "  $open open ($failed failed), ancm has $fds fds, RSS $((rss / 1024)) MiB"
    stop_pid "$idle_pid"
    sleep 1
done
read -r rss _ < <(H status "$ANCM_PID")
record rss_after_idle "$rss"

log "stopping ancm and the nginx proxy"
stop_pid "$PROXY_PID"
stop_pid "$ANCM_PID"

# ------------------------------------------------------------------ start and recovery
for ((rep = 0; rep <= START_REPS; rep++)); do
    # rep 0 warms caches up and is not counted.
    settle "start run $rep"
    port=$(H freeport)
    read -r ms pid < <(H first-ok "$port" "$WORK/out/start-app.log" -- \
        env BACKEND_PORT="$port" sh -c "$APP_CMD") || die "the backend did not start alone"
    APP_GROUPS+=("$pid")
    [ "$ms" != fail ] || die "the backend did not start alone: $(tail -5 "$WORK/out/start-app.log")"
    stop_pid "$pid"
    app_ms=$ms

    port=$(H freeport)
    alog=$WORK/out/start-ancm-$rep.log
    read -r ms apid < <(H first-ok "$port" "$alog" -- \
        "$ANCM" run "$WORK/app" --listen "127.0.0.1:$port" --port-env BACKEND_PORT -- sh -c "$APP_CMD") ||
        die "ancm did not start"
    BG_PIDS+=("$apid")
    [ "$ms" != fail ] || die "ancm did not start: $(tail -5 "$alog")"
    ancm_ms=$ms
    read -r _ app_pid _ < <(H wait-ready "$alog" "$apid" 10) || die "no ready line from ancm"
    APP_GROUPS+=("$app_pid")
    sleep 0.3
    rec_ms=$(H recover "$port" "$app_pid") || die "ancm did not recover: $(tail -5 "$alog")"
    read -r _ app_pid2 _ < <(H wait-ready "$alog" "$apid" 10 2) || die "no second ready line from ancm"
    APP_GROUPS+=("$app_pid2")
    stop_pid "$apid"
    if ((rep > 0)); then
        record start_app "$app_ms"
        record start_ancm "$ancm_ms"
        record recover "$rec_ms"
    fi
    log "start $rep/$START_REPS: backend alone $app_ms ms, through ancm $ancm_ms ms, recovery $rec_ms ms$( ((rep > 0)) || echo ' (warm-up)')"
done

# ------------------------------------------------------------------ report
H render "$RESULTS" "$HERE/results.md" "$COMMAND"
log "wrote bench/results.md"
