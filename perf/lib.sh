# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# perf/lib.sh: what the wrk-driven comparisons (perf/proxy, perf/mw) share: their common
# options, the binary, starting and stopping servers, measuring a server's CPU per request
# around one wrk run (with the quiet gate and the retry of runs disturbed by other load), and
# writing the results. Sourced, not run.
#
# The script sets, before sourcing it (from the repository's root, where it has cd'ed):
#   caller      the directory it was started from
#   ALL         array: the names it can measure, in the order of a round
#   PORT_BASE   the default of its first port
# and may set KEY_WIDTH (the width of a name in the progress lines; 6) and WRK_REPORT (the
# wrk parser: perf/bench.d/report.py). Its header comment, from line 3 to `set -euo`, is its
# --help. After parse_options it has RUNS SECS CONNS OUT bin SERVERS, and it may define:
#   own_option ARG     returns 0 if ARG is one of its own (argument-less) options
#   run_start KEY      before a run's first sample (its own counters)
#   run_end KEY        after its last sample
#   run_metrics KEY M  more "metric<TAB>value" lines for the run (M: the wrk parser's lines)
#   run_note KEY TSV   more text for the run's progress line (TSV: the run's figures)
# Servers: start one in the background, then `launched KEY PORT` (waits until it answers);
# PATHS[KEY] is the path wrk asks for, HEADER[KEY] an optional request header for wrk.

ME=perf/${0##*/}
usage() { sed -n '3,/^set -euo/p' "$ME" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "$ME: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

RUNS=5 SECS=5 CONNS=64 ONLY="" SKIP="" OUT=perf/results
SERVER_CPU=${SERVER_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
QUIET_PCT=${QUIET_PCT:-15} QUIET_WAIT=${QUIET_WAIT:-30} OTHER_PCT=${OTHER_PCT:-20} RETRIES=${RETRIES:-2}
KEY_WIDTH=${KEY_WIDTH:-6} WRK_REPORT=${WRK_REPORT:-perf/bench.d/report.py}
DEFAULT_BIN=build-release/handlers/coil
bin=""
PY=python3 # the system's, where there is one: no version-manager shim between runs
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3
HZ=$(getconf CLK_TCK)
declare -A LAUNCH=() PORT=() PATHS=() HEADER=()
SERVERS=() # the order of every round

# hook NAME ARGS...: runs the script's NAME if it has one.
hook() { declare -F "$1" >/dev/null || return 0; "$@"; }
in_list() { [[ " ${2//,/ } " == *" $1 "* ]]; } # name list
wants() { in_list "$1" "${SERVERS[*]}"; }

# ---------------------------------------------------------------- options

parse_options() { # "$@"
    while (($#)); do
        case $1 in
        --runs) RUNS=${2:?}; shift ;;
        --secs) SECS=${2:?}; shift ;;
        --conns) CONNS=${2:?}; shift ;;
        --only) ONLY=${2:?}; shift ;;
        --skip) SKIP=${2:?}; shift ;;
        --out) OUT=${2:?}; shift ;;
        -h | --help) usage; exit 0 ;;
        *)
            if declare -F own_option >/dev/null && own_option "$1"; then
                :
            elif [[ $1 == -* ]]; then
                die "unknown option '$1' (try --help)"
            else
                [[ -z $bin ]] || die "one binary only"
                bin=$1
            fi
            ;;
        esac
        shift
    done
    local v s
    for v in RUNS SECS CONNS SERVER_CPU LOAD_CPU PORT_BASE QUIET_PCT QUIET_WAIT OTHER_PCT RETRIES; do
        [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
    done
    ((RUNS >= 1 && SECS >= 1 && CONNS >= 1)) || die "runs, secs, conns >= 1"
    ((SERVER_CPU != LOAD_CPU)) || die "SERVER_CPU and LOAD_CPU must differ"
    ((SERVER_CPU < $(nproc) && LOAD_CPU < $(nproc))) || die "needs cpus $SERVER_CPU and $LOAD_CPU"
    for s in ${ONLY//,/ } ${SKIP//,/ }; do
        in_list "$s" "${ALL[*]}" || die "no server '$s' (servers: ${ALL[*]})"
    done
    for s in "${ALL[@]}"; do
        [[ -n $ONLY ]] && ! in_list "$s" "$ONLY" && continue
        in_list "$s" "$SKIP" && continue
        SERVERS+=("$s")
    done
    ((${#SERVERS[@]})) || die "no server left to run"
    [[ $OUT == /* ]] || OUT=$PWD/$OUT
}

need_tools() { # commands...
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || die "needs $c (apt-get install ${c/taskset/util-linux})"
    done
}

# The coil binary: BIN as given (relative to where the script was started: $caller), else
# build-release's, built there if missing.
find_bin() {
    if [[ -z $bin ]]; then
        bin=$DEFAULT_BIN
        if [[ ! -x $bin ]]; then
            # As perf/bench: the release configuration, said explicitly.
            say "building coil (build-release, RelWithDebInfo)"
            cmake -S . -B build-release -DCOIL_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
                -DCOIL_SANITIZE= >/dev/null || die "cmake configure failed"
            cmake --build build-release -j"$(nproc)" --target coil >/dev/null ||
                die "build failed (cmake --build build-release --target coil)"
        fi
    fi
    # shellcheck disable=SC2154 # caller: the script's
    case $bin in /*) ;; *) [[ $bin == "$DEFAULT_BIN" ]] || bin=$caller/$bin ;; esac
    [[ $bin == /* ]] || bin=$PWD/$bin
    [[ -x $bin && -f $bin ]] || die "$bin: not an executable file"
}

# The run's directory ($tmp: one subdirectory per server, the raw runs in $raw), removed with
# every server still running on exit.
setup_tmp() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    tmp=$(mktemp -d)
    chmod 755 "$tmp" # nginx's workers run as nobody when started by root
    raw=$tmp/raw.tsv
    printf 'run\tserver\tmetric\tvalue\n' >"$raw"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}
cleanup() {
    local k pid
    for k in "${!LAUNCH[@]}"; do kill -TERM "${LAUNCH[$k]}" 2>/dev/null || true; done
    for k in "${!LAUNCH[@]}"; do
        pid=${LAUNCH[$k]}
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}

# ---------------------------------------------------------------- servers

mask() { # cpu: nginx's worker_cpu_affinity wants the mask in binary (cpu 1 = 10)
    local m=1 i
    for ((i = 0; i < $1; i++)); do m+=0; done
    echo "$m"
}

# The start of every nginx configuration: one worker pinned to a cpu, no logs, client
# keep-alive that never runs out within a run, temp files in the run's directory. The http
# block is left open for the script's own lines.
nginx_head() { # dir cpu
    cat <<CONF
worker_processes 1;
worker_cpu_affinity $(mask "$2");
worker_rlimit_nofile $(ulimit -n);
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
CONF
}
start_nginx() { # dir cpu: with the configuration in dir/nginx.conf
    taskset -c "$2" nginx -c "$1/nginx.conf" -p "$1" -e "$1/error.log" >"$1/log" 2>&1 &
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Right after starting server KEY in the background: notes it, then waits until it answers
# HTTP at PATHS[KEY] (any status); returns 1 if it exits or does not within 10 s.
launched() { # key port
    local key=$1 port=$2
    LAUNCH[$key]=$! PORT[$key]=$port
    for _ in $(seq 100); do
        kill -0 "${LAUNCH[$key]}" 2>/dev/null || break
        curl -s -o /dev/null "http://127.0.0.1:$port${PATHS[$key]}" && return 0 # any answer
        sleep 0.1
    done
    return 1
}

show_log() { # key
    cat "$tmp/$1/log" "$tmp/$1/error.log" 2>/dev/null | tail -20 | sed 's/^/    /' >&2 || true
}

stop_server() { # key
    local pid=${LAUNCH[$1]}
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "LAUNCH[$1]"
}

# The processes whose CPU is a server's: the one started and its children (nginx: master and
# its worker; h2o: its process and its idle helper). Read again at every run.
pids_of() { # key
    local pid=${LAUNCH[$1]}
    local kids
    kids=$(pgrep -P "$pid" | paste -sd' ' || true)
    echo "$pid${kids:+ $kids}"
}

describe() { # key: its processes, threads, and cpus
    local key=$1 p threads=0 cpus n=0
    for p in $(pids_of "$key"); do
        n=$((n + 1))
        threads=$((threads + $(awk '/^Threads:/ {print $2}' "/proc/$p/status")))
    done
    cpus=$(for p in $(pids_of "$key"); do ps -L -o psr= -p "$p"; done | tr -d ' ' | sort -un | paste -sd,)
    echo "$key: $n process(es), $threads thread(s), on cpu $cpus"
}

# ---------------------------------------------------------------- measuring

cpu_ns() { # pids...: CPU time of all their threads so far, ns (schedstat, else stat ticks)
    local sum=0 p t ns rest
    for p in "$@"; do
        if [[ -r /proc/$p/schedstat ]]; then
            for t in /proc/"$p"/task/*/schedstat; do
                read -r ns rest <"$t" 2>/dev/null && sum=$((sum + ns))
            done
        else
            sum=$((sum + $(cpu_ticks "$p") * 1000000000 / HZ))
        fi
    done
    echo "$sum"
}
cpu_ticks() { # pids...: utime+stime of /proc/PID/stat (the whole process), in ticks
    local p sum=0 f
    for p in "$@"; do
        f=$(<"/proc/$p/stat")
        f=${f##*) } # past "pid (comm) ": field 3 is now the first
        read -r -a f <<<"$f"
        sum=$((sum + f[11] + f[12])) # fields 14 and 15
    done
    echo "$sum"
}
# Busy and total jiffies of a cpu so far (/proc/stat: busy = all but idle, iowait).
cpu_jiffies() { # cpu
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
busy_pct() { # "b0 t0" "b1 t1"
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$1"
    read -r b1 t1 <<<"$2"
    awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.1f", t ? 100 * b / t : 0 }'
}

record() { # run server file < "metric<TAB>value" lines
    local m v
    while IFS=$'\t' read -r m v; do
        [[ -n $m ]] && printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$m" "$v"
    done >"$3"
}

# Before each measured run: wait (up to $QUIET_WAIT s) until both cpus are under $QUIET_PCT %
# busy over half a second (every server is idle then, so that is other processes' load);
# QUIET_WAIT=0 turns the wait off. Runs that had to start anyway are counted and reported.
NOISY_STARTS=0 NOISY_RETRIES=0 NOISY_KEPT=0 NOISY=0 tries=0
quiet_gate() {
    ((QUIET_WAIT > 0)) || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) a0 a1
    while :; do
        a0="$(cpu_jiffies "$SERVER_CPU") $(cpu_jiffies "$LOAD_CPU")"
        sleep 0.5
        a1="$(cpu_jiffies "$SERVER_CPU") $(cpu_jiffies "$LOAD_CPU")"
        awk -v a="$a0" -v b="$a1" -v q="$QUIET_PCT" 'BEGIN { split(a, x); split(b, y)
            for (i = 1; i <= 3; i += 2) { t = y[i + 1] - x[i + 1]; if (t && 100 * (y[i] - x[i]) / t >= q) exit 1 } }' &&
            return 0
        if ((SECONDS >= deadline)); then
            NOISY_STARTS=$((NOISY_STARTS + 1))
            echo "   (cpus $SERVER_CPU/$LOAD_CPU still over $QUIET_PCT% busy after ${QUIET_WAIT}s: measuring anyway)" >&2
            return 0
        fi
    done
}

wrk_at() { # key secs
    local h=()
    [[ -z ${HEADER[$1]:-} ]] || h=(-H "${HEADER[$1]}")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$2s" --latency "${h[@]}" \
        "http://127.0.0.1:${PORT[$1]}${PATHS[$1]}"
}

# One wrk run against KEY, its figures appended to $raw (run, KEY, metric, value): those of
# the wrk parser (requests, rps, p99_us, non2xx, sock_errors, cpu_us_per_req: schedstat) and
# cpu_us_per_req_stat (utime+stime ticks), server_busy_pct (the server's CPU over wall time),
# wall_s, server_cpu_busy_pct and load_cpu_busy_pct (/proc/stat), then the script's
# run_metrics. Any non-2xx answer or socket error stops the script. A run during which the
# server's cpu was over $OTHER_PCT % busy beyond the server is not kept but flagged ($NOISY=1)
# to be measured again, up to $RETRIES times a round ($tries: the retries so far); the last
# try is kept whatever it saw.
measure() { # run key
    local run=$1 key=$2 pids c0 c1 t0 t1 j0 j1 l0 l1 w0 w1 out metrics
    pids=$(pids_of "$key")
    quiet_gate
    hook run_start "$key"
    # shellcheck disable=SC2086 # pid lists
    {
        j0=$(cpu_jiffies "$SERVER_CPU") l0=$(cpu_jiffies "$LOAD_CPU") w0=$(date +%s%N)
        c0=$(cpu_ns $pids) t0=$(cpu_ticks $pids)
        out=$(wrk_at "$key" "$SECS") || die "wrk failed against $key"
        c1=$(cpu_ns $pids) t1=$(cpu_ticks $pids)
        j1=$(cpu_jiffies "$SERVER_CPU") l1=$(cpu_jiffies "$LOAD_CPU") w1=$(date +%s%N)
    }
    hook run_end "$key"
    for p in $pids; do kill -0 "$p" 2>/dev/null || { show_log "$key"; die "$key exited (run $run)"; }; done
    metrics=$("$PY" "$WRK_REPORT" wrk $((c1 - c0)) <<<"$out") ||
        die "could not read wrk's output: $out"
    {
        printf '%s\n' "$metrics"
        awk -v t=$((t1 - t0)) -v hz="$HZ" -v w=$((w1 - w0)) -v c=$((c1 - c0)) '
            $1 == "requests" { n = $2 }
            END {
                printf "cpu_us_per_req_stat\t%.6g\n", t * 1e6 / hz / n
                printf "server_busy_pct\t%.1f\n", 100 * c / w
                printf "wall_s\t%.3f\n", w / 1e9
            }' <<<"$metrics"
        printf 'server_cpu_busy_pct\t%s\nload_cpu_busy_pct\t%s\n' \
            "$(busy_pct "$j0" "$j1")" "$(busy_pct "$l0" "$l1")"
        hook run_metrics "$key" "$metrics"
    } | record "$run" "$key" "$tmp/run.tsv"
    awk -F'\t' '{ m[$3] = $4 }
        END { printf "   run %s %-*s %8.0f req/s  p99 %8.0f us  server %6.2f us/req (busy %3.0f%%)%s" \
                     "  cpu%s/cpu%s %3.0f%%/%3.0f%%\n",
                     r, kw, k, m["rps"], m["p99_us"], m["cpu_us_per_req"], m["server_busy_pct"],
                     note, sc, lc, m["server_cpu_busy_pct"], m["load_cpu_busy_pct"] }' \
        r="$run" k="$key" kw="$KEY_WIDTH" note="$(hook run_note "$key" "$tmp/run.tsv")" \
        sc="$SERVER_CPU" lc="$LOAD_CPU" "$tmp/run.tsv" >&2
    local non2xx sock
    non2xx=$(awk -F'\t' '$1 == "non2xx" { print $2 }' <<<"$metrics")
    sock=$(awk -F'\t' '$1 == "sock_errors" { print $2 }' <<<"$metrics")
    if [[ $non2xx != 0 || $sock != 0 ]]; then
        sed 's/^/    /' <<<"$out" >&2
        show_log "$key"
        die "$key, run $run: $non2xx non-2xx answers and $sock socket errors (wrk's output above)"
    fi
    # Other load on the server's cpu during the run (the gate only looks before it).
    local other
    other=$(awk -F'\t' '{ m[$3] = $4 } END { printf "%.0f", m["server_cpu_busy_pct"] - m["server_busy_pct"] }' \
        "$tmp/run.tsv")
    NOISY=0
    if ((other > OTHER_PCT)); then
        if ((tries < RETRIES)); then
            echo "   (other load on cpu $SERVER_CPU: ${other}% over the run: measuring it again)" >&2
            NOISY=1 NOISY_RETRIES=$((NOISY_RETRIES + 1))
            return 0
        fi
        NOISY_KEPT=$((NOISY_KEPT + 1))
    fi
    cat "$tmp/run.tsv" >>"$raw"
}

# 1 s of wrk against each server.
warm_up() { # keys...
    local key
    say "warm-up: 1 s of wrk each"
    for key in "$@"; do wrk_at "$key" 1 >/dev/null || die "wrk failed against $key (warm-up)"; done
}
# What each server runs on, into WORKERS (for the report) and on stderr.
WORKERS=()
describe_all() { # keys...
    local key
    for key in "$@"; do WORKERS+=("$(describe "$key")"); say "${WORKERS[-1]}"; done
}

# $RUNS rounds, each measuring every key once in the order given (drift hits them alike).
rounds() { # keys...
    local run key
    for run in $(seq "$RUNS"); do
        say "run $run/$RUNS"
        for key in "$@"; do
            tries=0
            while measure "$run" "$key" && ((NOISY)); do tries=$((tries + 1)); done
        done
    done
}

# ---------------------------------------------------------------- results

commit_id() {
    local c
    c=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD 2>/dev/null || c+=-dirty
    echo "$c"
}
machine_line() {
    echo "- machine: nproc $(nproc), $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)"
}
quiet_line() {
    echo "- quiet gate: each run waited up to ${QUIET_WAIT}s for cpus $SERVER_CPU and $LOAD_CPU under ${QUIET_PCT}% busy;" \
        "$NOISY_STARTS run(s) started without; $NOISY_RETRIES run(s) measured again for over ${OTHER_PCT}%" \
        "other load on cpu $SERVER_CPU during the run, $NOISY_KEPT kept with it after $RETRIES retries"
}

# Writes the report (the file MD) and the raw runs to $OUT/NAME-DATE.{md,tsv}, prints the
# report, then whatever the servers KEYS logged beyond their start (and stop) lines.
finish() { # name md keys...
    local name=$1 md=$2 stamp key extra
    shift 2
    stamp=$(date -u +%Y%m%d-%H%M%S)
    mkdir -p "$OUT"
    cp "$md" "$OUT/$name-$stamp.md"
    cp "$raw" "$OUT/$name-$stamp.tsv"
    cat "$OUT/$name-$stamp.md"
    echo
    for key in "$@"; do
        extra=$(cat "$tmp/$key/log" "$tmp/$key/error.log" 2>/dev/null | grep -v -e '^coil: listening on ' \
            -e 'raised RLIMIT_NOFILE' -e 'is ready to serve requests' -e '^coil: SIGTERM: draining' \
            -e '^coil: stopped: ' || true)
        [[ -z $extra ]] || { echo "$key's log:"; sed 's/^/    /' <<<"$extra"; }
    done
    echo "table: $OUT/$name-$stamp.md, raw runs: $OUT/$name-$stamp.tsv"
}
