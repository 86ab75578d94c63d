# shellcheck shell=bash disable=SC2004,SC2154 # LAUNCH, PORT, tmp, raw...: perf/lib.sh's
# SPDX-License-Identifier: MIT
# perf/tls.d/tls.sh: what perf/tls needs beyond perf/lib.sh, sourced after it. lib.sh speaks
# plain HTTP only (launched polls http://, wrk_at asks http://), so this file redefines wrk_at
# for https and for the handshake cases' client, and adds launched_tls beside launched.
#
# Uses, from perf/tls: TOOL[KEY] (wrk, hsload or hsload-r; default wrk), HSLOAD (the built
# hsload), HS_TLS12 (1: hsload -2), tmp.

declare -A TOOL=()

# lib.sh's wrk_at over https: wrk (keep-alive) for TOOL wrk, else hsload, one new TLS
# connection per request (hsload-r: offering the previous connection's session). hsload exits
# 1 when it saw errors: its counts still go to measure, which stops on them with the output.
wrk_at() { # key secs
    local key=$1 h=() hs=()
    case ${TOOL[$key]:-wrk} in
    wrk)
        [[ -z ${HEADER[$key]:-} ]] || h=(-H "${HEADER[$key]}")
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$2s" --latency "${h[@]}" \
            "https://127.0.0.1:${PORT[$key]}${PATHS[$key]}"
        ;;
    hsload | hsload-r)
        [[ ${TOOL[$key]} == hsload-r ]] && hs+=(-r)
        ((HS_TLS12)) && hs+=(-2)
        taskset -c "$LOAD_CPU" "$HSLOAD" -p "${PORT[$key]}" -c "$CONNS" -d "$2" \
            -u "${PATHS[$key]}" "${hs[@]}" 2>/dev/null || (($? == 1))
        ;;
    esac
}

# lib.sh's launched for a TLS port: notes the server started last, then waits until it
# answers https://127.0.0.1:PORT PATHS[KEY] (any HTTP status; the certificate unchecked).
launched_tls() { # key port
    local key=$1 port=$2
    LAUNCH[$key]=$! PORT[$key]=$port
    for _ in $(seq 100); do
        kill -0 "${LAUNCH[$key]}" 2>/dev/null || break
        curl -sk -o /dev/null "https://127.0.0.1:$port${PATHS[$key]}" && return 0
        sleep 0.1
    done
    return 1
}

# A self-signed certificate for localhost and 127.0.0.1: ECDSA P-256, or RSA-2048.
make_cert() { # cert key rsa(0|1)
    local alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    (($3)) && alg=(-newkey rsa:2048)
    openssl req -x509 "${alg[@]}" -nodes -keyout "$2" -out "$1" -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 ||
        die "openssl req could not make a certificate"
    chmod 644 "$1" "$2"
}

# What a TLS handshake with the openssl client gives (its default offer, as wrk's and
# hsload's; SNI localhost; ALPN http/1.1): "VERSION CIPHER GROUP ALPN", "-" for each it lacks.
tls_info() { # port s_client-args...
    openssl s_client -connect "127.0.0.1:$1" -servername localhost -alpn http/1.1 "${@:2}" \
        </dev/null 2>&1 | awk '
            /^New, / && $2 != "(NONE)," { v = $2; sub(",", "", v); c = $NF }
            /^Server Temp Key:/ { g = $4; sub(",", "", g) }
            /^ALPN protocol:/ { a = $3 }
            END { printf "%s %s %s %s\n", v ? v : "-", c ? c : "-", g ? g : "-", a ? a : "-" }'
}

# coil's TLS counters from /metrics on its plain port: "handshakes resumed failures" (all
# versions summed; "- - -" if it has none).
coil_tls_counts() { # plain-port
    curl -s -m 5 "http://127.0.0.1:$1/metrics" | awk '
        /^coil_tls_handshakes_total[{ ]/ { h += $NF; seen = 1 }
        /^coil_tls_resumed_total[{ ]/ { r += $NF }
        /^coil_tls_handshake_failures_total[{ ]/ { f += $NF }
        END { if (seen) printf "%d %d %d\n", h, r, f; else print "- - -" }'
}

# One openssl s_time run (-new: a full handshake per connection; -reuse: the first
# connection's session offered by all the others), HTTP/1.0 GET of the path on each, on the
# load cpu; its figures with the server's CPU appended to $raw as KEY s_time-MODE/SERVER.
stime_measure() { # run server mode
    local run=$1 server=$2 mode=$3 key="s_time-$3/$2" pids c0 c1 w0 w1 out
    pids=$(pids_of "$server")
    quiet_gate
    # shellcheck disable=SC2086 # a pid list
    {
        w0=$(date +%s%N) c0=$(cpu_ns $pids)
        out=$(taskset -c "$LOAD_CPU" openssl s_time -connect "127.0.0.1:${PORT[$server]}" \
            -"$mode" -time "$SECS" -www "${PATHS[$server]}" 2>&1) ||
            die "openssl s_time -$mode failed against $server: $(tail -5 <<<"$out")"
        c1=$(cpu_ns $pids) w1=$(date +%s%N)
    }
    "$PY" perf/tls.d/report.py s_time $((c1 - c0)) $((w1 - w0)) <<<"$out" |
        record "$run" "$key" "$tmp/run.tsv" || die "could not read s_time's output: $out"
    awk -F'\t' '{ m[$3] = $4 }
        END { printf "   run %s %-*s %8.0f conn/s  (s_time: %6.0f conn/user s)  server %6.2f us/conn" \
                     "  resumed %d/%d\n", r, kw, k, m["rps"], m["stime_conn_per_user_s"],
                     m["cpu_us_per_req"], m["resumed"], m["requests"] }' \
        r="$run" k="$key" kw="$KEY_WIDTH" "$tmp/run.tsv" >&2
    cat "$tmp/run.tsv" >>"$raw"
}
