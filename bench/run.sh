#!/usr/bin/env bash
#
# bench/run.sh - usermgmt benchmarks, as ratios measured within one run.
#
# Starts a throw-away PostgreSQL 15, Redis and nginx (with the usermgmt
# module loaded) in a temporary folder, measures every scenario with wrk,
# measures the ceilings (plain nginx, pgbench, redis-benchmark, argon2id
# hashing) on the same machine, prints one table and writes it to
# bench/results/latest.md. Everything it starts is stopped again on exit.
#
# Usage: bench/run.sh [--quick]        (or: ./build.sh bench)
#        bench/run.sh --users [--quick]  runs bench/users.sh instead: a
#        million users, GET /users/{id} against Parse Server, search, the
#        audit export (minutes; see bench/README.md)
# Knobs: BENCH_SECONDS (10), BENCH_CONNS (32), BENCH_WORKERS (1),
#        BENCH_WARMUP (1 s per wrk run, 0 = none), BENCH_ROUNDS (3),
#        BENCH_KEEP_TMP (0), BENCH_LOGIN_CONNS (8), BENCH_HASH_RUNS (20),
#        BENCH_POOL_THREADS (the number of CPUs), BENCH_RT_REQUESTS (2000),
#        PG_BIN (/usr/lib/postgresql/15/bin). See bench/README.md.

set -euo pipefail

usage() {
    sed -n '3,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CONNS=${BENCH_CONNS:-32}
BENCH_WORKERS=${BENCH_WORKERS:-1}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}
BENCH_LOGIN_CONNS=${BENCH_LOGIN_CONNS:-8}
BENCH_HASH_RUNS=${BENCH_HASH_RUNS:-20}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_POOL_THREADS=${BENCH_POOL_THREADS:-$(nproc)}
BENCH_RT_REQUESTS=${BENCH_RT_REQUESTS:-2000}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

for arg in "$@"; do
    case $arg in
    --users)   # the users-at-scale benchmarks are a script of their own
               users_args=()
               for a in "$@"; do [[ $a == --users ]] || users_args+=("$a"); done
               exec "$(dirname "${BASH_SOURCE[0]}")/users.sh" ${users_args[@]+"${users_args[@]}"} ;;
    --quick)   BENCH_SECONDS=3 BENCH_HASH_RUNS=10 ;;
    -h|--help) usage; exit 0 ;;
    *)         echo "run.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

for knob in BENCH_SECONDS BENCH_CONNS BENCH_WORKERS BENCH_WARMUP \
            BENCH_ROUNDS BENCH_LOGIN_CONNS BENCH_HASH_RUNS BENCH_POOL_THREADS \
            BENCH_RT_REQUESTS; do
    if ! [[ ${!knob} =~ ^[0-9]+$ ]]; then
        echo "run.sh: $knob must be a whole number, got '${!knob}'" >&2
        exit 2
    fi
done
if (( BENCH_SECONDS < 1 || BENCH_CONNS < 1 || BENCH_WORKERS < 1 \
      || BENCH_ROUNDS < 1 || BENCH_LOGIN_CONNS < 1 || BENCH_HASH_RUNS < 1 \
      || BENCH_POOL_THREADS < 1 || BENCH_RT_REQUESTS < 1 )); then
    echo "run.sh: BENCH_SECONDS, BENCH_CONNS, BENCH_WORKERS, BENCH_ROUNDS, BENCH_LOGIN_CONNS, BENCH_HASH_RUNS, BENCH_POOL_THREADS and BENCH_RT_REQUESTS must be >= 1" >&2
    exit 2
fi

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$bench_dir")
module_so=$root/build/ngx_http_usermgmt_module.so

say()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'run.sh: warning: %s\n' "$*" >&2; }
die()  { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

for tool in wrk nginx curl redis-server redis-cli redis-benchmark perl \
            "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/psql" "$PG_BIN/pgbench"
do
    command -v "$tool" >/dev/null 2>&1 \
        || die "missing $tool (Debian: wrk nginx-core curl redis-server postgresql-15)"
done


# ---------------------------------------------------------------------------
# Temporary folder and clean-up

tmp=$(mktemp -d "${TMPDIR:-/tmp}/usermgmt-bench.XXXXXX")
chmod 755 "$tmp"                    # postgres and nginx workers traverse it
mkdir -p "$tmp/logs" "$tmp/nginx/logs" "$tmp/redis" "$tmp/wrk" "$tmp/pgbench"

nginx_pid=
redis_pid=
load_pid=                           # a wrk running in the background
pg_data=
notes=()                            # remarks printed under the table
if awk -v l="${load_at_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l >= n) }'; then
    notes+=("the machine was busy: load average ${load_at_start%% *} at the start with $(nproc) CPU(s); rows measured at different moments are not comparable")
fi

stop_child() {                      # stop_child PID NAME: TERM, wait, KILL
    local pid=$1 name=$2 i
    local -a kids

    kill -TERM "$pid" 2>/dev/null || return 0
    for (( i = 0; i < 100; i++ )); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name ($pid) did not stop in 10 s, killing it"
        mapfile -t kids < <(pgrep -P "$pid" || true)
        kill -KILL "$pid" ${kids[@]+"${kids[@]}"} 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? f
    set +e
    trap - INT TERM

    [[ -n $load_pid ]] && stop_child "$load_pid" wrk
    [[ -n $nginx_pid ]] && stop_child "$nginx_pid" nginx
    [[ -n $redis_pid ]] && stop_child "$redis_pid" redis-server
    if [[ -n $pg_data ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -m fast -w -t 30 stop \
            >/dev/null 2>&1 \
        || as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -m immediate -w stop \
            >/dev/null 2>&1
    fi

    if (( rc != 0 )); then
        for f in "$tmp/pg/postgres.log" "$tmp/logs/redis.log" \
                 "$tmp/logs/nginx.log" "$tmp/nginx/logs/error.log"; do
            [[ -s $f ]] || continue
            printf -- '--- last lines of %s\n' "${f#"$tmp"/}" >&2
            tail -n 15 "$f" >&2
        done
    fi
    if [[ $BENCH_KEEP_TMP == 1 ]]; then
        printf 'run.sh: kept %s\n' "$tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---------------------------------------------------------------------------
# Helpers

. "$bench_dir/lib.sh"

http_status() {             # http_status URL [BODY-FILE [CURL ARGS...]] -> "200"
    local url=$1 body=${2:-/dev/null}
    shift $(( $# < 2 ? $# : 2 ))
    curl -s -o "$body" -w '%{http_code}' --max-time 10 "$@" "$url" \
        || true                     # "000" when nothing answered
}

to_ms() {                           # wrk duration "296.00us" -> "0.296"
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000
        else if (u == "s") n *= 1000
        else if (u == "m") n *= 60000
        else if (u == "h") n *= 3600000
        printf "%.3f", n
    }'
}


# ---------------------------------------------------------------------------
# Result rows, the ceiling registry and the peer registry
#
# A row names the ceiling and the peer it is compared with by key; ratios are
# computed when the table is printed, so the order of measurement is free.

row_name=() row_rps=() row_p50=() row_p99=() row_ceil=() row_peer=()
row_note=() row_kind=() row_target=()
declare -A CEILING=() CEILING_LABEL=() PEER=() PEER_LABEL=()

# add_row KIND NAME RPS P50 P99 CEILING-KEY PEER-KEY NOTE [TARGET]
# TARGET is checked when the table is printed and the verdict joins the
# notes: "ratio>=0.90" (ratio to the ceiling) or "p99<20" (ms).
add_row() {
    row_kind+=("$1") row_name+=("$2") row_rps+=("$3") row_p50+=("$4")
    row_p99+=("$5") row_ceil+=("$6") row_peer+=("$7") row_note+=("$8")
    row_target+=("${9:-}")
}

ceiling() {         # ceiling KEY RPS LABEL: register a ceiling
    CEILING[$1]=$2
    CEILING_LABEL[$1]=$3
}

peer() {            # peer KEY RPS LABEL: register a peer measurement
    PEER[$1]=$2
    PEER_LABEL[$1]=$3
}

wrk_n=0
probe_n=0

# run_wrk CONNS URL [WRK ARGS...]: CONNS connections for BENCH_SECONDS
# after a warm-up; sets w_rps w_p50 w_p99 w_note
run_wrk() {
    local conns=$1 url=$2 out
    shift 2
    wrk_n=$(( wrk_n + 1 ))
    out=$tmp/wrk/$wrk_n.txt

    if (( BENCH_WARMUP > 0 )); then
        wrk -t1 -c"$conns" -d"${BENCH_WARMUP}s" "$@" "$url" \
            >/dev/null 2>&1 || true
    fi
    wrk -t1 -c"$conns" -d"${BENCH_SECONDS}s" --latency "$@" "$url" \
        >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed on $url"; }
    read_wrk "$out"
}

read_wrk() {        # read_wrk FILE: sets w_rps w_p50 w_p99 w_note
    local out=$1

    w_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    w_p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    w_p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    w_note=$(awk '
        /Non-2xx or 3xx responses:/ { printf "%snon-2xx/3xx: %s", s, $NF; s = "; " }
        /Socket errors:/ {
            sub(/^ *Socket errors: */, ""); gsub(/,/, "")
            if ($2 + $4 + $6 + $8 > 0) { printf "%ssocket errors: %s", s, $0; s = "; " }
        }
        # printed by the scripts of wrk_post_script
        /^Statuses:/ { st = $0; sub(/^Statuses: */, "", st) }
        /^First refusal:/ { fr = $0; sub(/^First refusal: */, "", fr); gsub(/\|/, " ", fr) }
        END {
            if (fr != "") printf "%sstatuses %s; first refusal: %s", s, st, substr(fr, 1, 100)
        }' "$out")
    [[ -n $w_rps ]] || { cat "$out" >&2; die "could not read wrk output"; }
}

# wrk_post_script BODIES-FILE SCRIPT: writes a wrk Lua script that POSTs
# the JSON bodies of the file (one a line) in turn as application/json and,
# at the end, prints the count of every status and the start of the first
# non-2xx body (read_wrk reads them)
wrk_post_script() {
    local bodies=$1 script=$2 line
    # a Lua long string takes a body as it is, unless it holds the closer
    ! grep -q ']==]' "$bodies" || die "wrk_post_script: $bodies holds ]==]"
    {
        echo 'wrk.method = "POST"'
        echo 'wrk.headers["Content-Type"] = "application/json"'
        echo 'local bodies = {'
        while IFS= read -r line; do
            [[ -z $line ]] || printf '    [==[%s]==],\n' "$line"
        done <"$bodies"
        cat <<'EOF'
}
local next_body = 0
function request()
    next_body = next_body % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[next_body])
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; refusal = "" end
function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if status >= 300 and refusal == "" then
        refusal = status .. " " .. string.sub(body or "", 1, 120)
    end
end
function done(summary, latency, requests)
    local all, first, keys, line = {}, "", {}, "Statuses:"
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("statuses")) do all[k] = (all[k] or 0) + v end
        if first == "" then first = t:get("refusal") end
    end
    for k in pairs(all) do table.insert(keys, k) end
    table.sort(keys)
    for _, k in ipairs(keys) do line = line .. " " .. k .. "=" .. all[k] end
    print(line)
    if first ~= "" then print("First refusal: " .. first) end
end
EOF
    } >"$script"
}

# ---------------------------------------------------------------------------
# Measurements in rounds
#
# The machine is shared: a ceiling measured at one moment and its scenario
# at another can see different amounts of free CPU. So the scenarios of a
# group (a ceiling and what is compared with it) are measured in turn,
# BENCH_ROUNDS times, in the opposite order every other round (A B, B A,
# A B, ...), and each row reports its median round.
#
# An entry is a wrk scenario (scenario) or a function that measures once
# and sets w_rps w_p50 w_p99 w_note (measure_entry). Entries queue up until
# run_rounds measures them and adds their rows.

declare -A E_name=() E_kind=() E_ceil=() E_peer=() E_target=() E_note=()
declare -A E_conns=() E_url=() E_args=() E_fn=() E_by=() E_also=()
declare -A E_peer_as=() E_follow=() E_picked=()
declare -A R_rps=() R_p50=() R_p99=() R_note=()
queue=()                            # entry ids, in measuring order
round_loads=()                      # "group: load average" per run_rounds

# entry_options ID ARGS...: the options shared by scenario and
# measure_entry; sets n_opts to the number of words they took
entry_options() {
    local id=$1
    shift
    n_opts=0
    E_kind[$id]=wrk E_target[$id]='' E_note[$id]='' E_also[$id]=''
    E_peer_as[$id]='' E_by[$id]=rps E_conns[$id]=$BENCH_CONNS
    E_needs_module=''
    E_post=''
    while (( $# > 0 )) && [[ $1 == --* && $1 != -- ]]; do
        case $1 in
        --is-ceiling)   E_kind[$id]=ceiling:$2; shift 2; n_opts=$(( n_opts + 2 )) ;;
        --is-reference) E_kind[$id]=reference; shift; n_opts=$(( n_opts + 1 )) ;;
        --also-ceiling) E_also[$id]=$2; shift 2; n_opts=$(( n_opts + 2 )) ;;
        --is-peer)      E_peer_as[$id]=$2; shift 2; n_opts=$(( n_opts + 2 )) ;;
        --needs-module) E_needs_module=1; shift; n_opts=$(( n_opts + 1 )) ;;
        --conns)        E_conns[$id]=$2; shift 2; n_opts=$(( n_opts + 2 )) ;;
        --post)         E_post=$2; shift 2; n_opts=$(( n_opts + 2 )) ;;
        --target)       E_target[$id]=$2; shift 2; n_opts=$(( n_opts + 2 )) ;;
        --note)         E_note[$id]=$2; shift 2; n_opts=$(( n_opts + 2 )) ;;
        --median-by)    E_by[$id]=$2; shift 2; n_opts=$(( n_opts + 2 )) ;;
        *)              die "scenario: unknown option $1" ;;
        esac
    done
}

# scenario [--is-ceiling KEY | --is-reference] [--also-ceiling KEY]
#          [--is-peer KEY] [--needs-module] [--conns N] [--post JSON-FILE]
#          [--target TARGET] [--note TEXT] [--median-by rps|p99]
#          ID NAME URL [CEILING-KEY [PEER-KEY]] [-- WRK ARGS...]
#
# Probes URL once with curl; a non-2xx answer makes the row "n/a (status N)"
# at once. Otherwise queues the wrk run for run_rounds. WRK ARGS go to wrk
# as they are; their -H headers also go to the probe. --post sends the JSON
# bodies of a file, one a line, in turn as POSTs (wrk_post_script) (the
# first line of the file to the probe); --conns replaces BENCH_CONNS for
# this row; --target: see add_row; --also-ceiling registers the row's
# req/s as a ceiling for later rows while it keeps its own ratio.
scenario() {
    local id n_opts E_needs_module E_post name url status i
    local ceil='' peer_key=''
    local -a wrk_args=() curl_args=()

    id=${@:$(( $(entry_opt_count "$@") + 1 )):1}
    entry_options "$id" "$@"
    shift "$n_opts"
    id=$1 name=$2 url=$3
    shift 3
    if (( $# > 0 )) && [[ $1 != -- ]]; then ceil=$1; shift; fi
    if (( $# > 0 )) && [[ $1 != -- ]]; then peer_key=$1; shift; fi
    if (( $# > 0 )) && [[ $1 == -- ]]; then shift; wrk_args=("$@"); fi
    E_name[$id]=$name E_url[$id]=$url E_ceil[$id]=$ceil E_peer[$id]=$peer_key
    E_fn[$id]=''

    if [[ -n $E_needs_module && -z $module_loaded ]]; then
        say "$name: skipped ($module_missing)"
        add_row na "$name" "n/a ($module_missing)" - - "$ceil" "$peer_key" ""
        return 0
    fi

    for (( i = 0; i < ${#wrk_args[@]}; i++ )); do
        if [[ ${wrk_args[i]} == -H && -n ${wrk_args[i + 1]+x} ]]; then
            curl_args+=(-H "${wrk_args[i + 1]}")
        fi
    done
    if [[ -n $E_post ]]; then
        curl_args+=(-H "Content-Type: application/json"
                    --data-binary "$(head -n 1 "$E_post")")
        wrk_post_script "$E_post" "$tmp/wrk/post-$id.lua"
        wrk_args+=(-s "$tmp/wrk/post-$id.lua")
    fi

    # the probe's answer stays in the temporary folder (BENCH_KEEP_TMP=1)
    probe_n=$(( probe_n + 1 ))
    status=$(http_status "$url" "$tmp/wrk/probe-$probe_n.body" \
             ${curl_args[@]+"${curl_args[@]}"})
    if [[ $status != 2?? ]]; then
        [[ $status == 000 ]] && status="no answer" || status="status $status"
        say "$name: n/a ($status)"
        add_row na "$name" "n/a ($status)" - - "$ceil" "$peer_key" ""
        return 0
    fi

    E_args[$id]=${wrk_args[*]+$(printf '%q ' "${wrk_args[@]}")}
    queue+=("$id")
}

# entry_opt_count ARGS...: how many leading words are options
entry_opt_count() {
    local n=0
    while (( $# > 0 )) && [[ $1 == --* && $1 != -- ]]; do
        case $1 in
        --is-reference|--needs-module) n=$(( n + 1 )); shift ;;
        *) n=$(( n + 2 )); shift 2 ;;
        esac
    done
    echo "$n"
}

# measure_entry [OPTIONS as scenario] ID NAME FUNCTION [CEILING-KEY]:
# queues a measurement that FUNCTION makes once per round (it sets w_rps
# w_p50 w_p99 w_note and may read $round)
measure_entry() {
    local id n_opts E_needs_module E_post

    id=${@:$(( $(entry_opt_count "$@") + 1 )):1}
    entry_options "$id" "$@"
    shift "$n_opts"
    E_name[$1]=$2 E_fn[$1]=$3 E_ceil[$1]=${4:-} E_peer[$1]='' E_url[$1]=''
    queue+=("$1")
}

# follow_entry ID NAME LEADER CEILING-KEY [PEER-KEY]: a row whose figures
# the measuring function of LEADER stores (R_*[ID,round]); it reports the
# round picked for LEADER
follow_entry() {
    local id=$1
    entry_options "$id"
    E_name[$id]=$2 E_follow[$id]=$3 E_ceil[$id]=$4 E_peer[$id]=${5:-}
    E_fn[$id]='' E_url[$id]=''
    queue+=("$id")
}

# metrics_snapshot: the module's Redis counters and rate limit decisions
# from /metrics, "name value" a line (nothing without the module)
metrics_snapshot() {
    [[ -n $module_loaded ]] || return 0
    { curl -s --max-time 5 "$base_a/metrics" || true; } | awk '
        $1 ~ /^usermgmt_redis_(timeouts|errors|connects)_total$/ { print $1, $2 }
        $1 ~ /^usermgmt_ratelimit_decisions_total\{/ {
            k = $1; gsub(/usermgmt_ratelimit_decisions_total|[{}"]/, "", k)
            sub(/^zone=/, "", k); sub(/,result=/, "/", k)
            print "limit:" k, $2
        }' | sort
}

# metrics_note GROUP BEFORE AFTER: a note when Redis timed out or failed,
# or a limit was decided without Redis, during the group's measurements
metrics_note() {
    local diff
    diff=$(join -a 2 -e 0 -o 0,1.2,2.2 <(printf '%s\n' "$2") \
               <(printf '%s\n' "$3") 2>/dev/null \
           | awk '$3 - $2 > 0 { print $1, $3 - $2 }')
    # allowed decisions alone are the normal case
    if [[ -n $diff ]] \
       && grep -qv '^limit:[^ ]*/allowed \|^usermgmt_redis_connects_total 1$' <<<"$diff"
    then
        notes+=("during the $1 rows the module counted: $(awk '{ printf "%s%s +%s", s, $1, $2; s = ", " }' <<<"$diff") (a Redis command that misses usermgmt_redis timeout=50ms drops the connection; until it is back, limits decide locally (fail=local) and the sign-in count per address is skipped)")
    fi
}

# run_rounds GROUP: measures the queued entries BENCH_ROUNDS times, in
# turn, and adds their rows (the median round of each)
run_rounds() {
    local group=$1 round i id n=${#queue[@]} m_before
    local -a order args

    (( n > 0 )) || return 0
    round_loads+=("$group: $(cut -d' ' -f1 /proc/loadavg)")
    m_before=$(metrics_snapshot)
    for (( round = 1; round <= BENCH_ROUNDS; round++ )); do
        order=()
        for (( i = 0; i < n; i++ )); do
            if (( round % 2 )); then order+=("${queue[i]}")
            else order+=("${queue[n - 1 - i]}"); fi
        done
        for id in "${order[@]}"; do
            [[ -z ${E_follow[$id]:-} ]] || continue
            if [[ -n ${E_fn[$id]} ]]; then
                say "${E_name[$id]} (round $round/$BENCH_ROUNDS)"
                "${E_fn[$id]}"
            else
                say "${E_name[$id]} (round $round/$BENCH_ROUNDS): wrk -t1 -c${E_conns[$id]} -d${BENCH_SECONDS}s ${E_url[$id]}"
                eval "args=(${E_args[$id]})"
                run_wrk "${E_conns[$id]}" "${E_url[$id]}" \
                    ${args[@]+"${args[@]}"}
            fi
            R_rps[$id,$round]=$w_rps R_p50[$id,$round]=$w_p50
            R_p99[$id,$round]=$w_p99 R_note[$id,$round]=$w_note
        done
    done
    metrics_note "$group" "$m_before" "$(metrics_snapshot)"
    for id in "${queue[@]}"; do
        finish_entry "$id"
    done
    queue=()
}

# finish_entry ID: the row of the median round (by req/s, or by p99 for
# --median-by p99; a follower takes its leader's round)
finish_entry() {
    local id=$1 r picked values note by kind rps

    if [[ -n ${E_follow[$id]:-} ]]; then
        picked=${E_picked[${E_follow[$id]}]}
        by=rps
    else
        by=${E_by[$id]}
        picked=$(for (( r = 1; r <= BENCH_ROUNDS; r++ )); do
                     if [[ $by == p99 ]]; then echo "${R_p99[$id,$r]} $r"
                     else echo "${R_rps[$id,$r]} $r"; fi
                 done | sort -g | awk -v n="$BENCH_ROUNDS" \
                     'NR == int((n + 1) / 2) { print $2 }')
    fi
    E_picked[$id]=$picked

    values=
    for (( r = 1; r <= BENCH_ROUNDS; r++ )); do
        if [[ $by == p99 ]]; then values+="${values:+ / }${R_p99[$id,$r]}"
        else values+="${values:+ / }${R_rps[$id,$r]}"; fi
    done
    if (( BENCH_ROUNDS > 1 )); then
        if [[ -n ${E_follow[$id]:-} ]]; then
            note="round of the row above; req/s by round: $values"
        elif [[ $by == p99 ]]; then
            note="median of $BENCH_ROUNDS rounds by p99 (ms: $values)"
        else
            note="median of $BENCH_ROUNDS rounds (req/s: $values)"
        fi
    else
        note=
    fi
    [[ -z ${E_note[$id]} ]] || note=${E_note[$id]}${note:+; $note}
    [[ -z ${R_note[$id,$picked]} ]] || note+="${note:+; }${R_note[$id,$picked]}"

    rps=${R_rps[$id,$picked]}
    kind=${E_kind[$id]}
    case $kind in
    reference)
        add_row reference "${E_name[$id]}" "$rps" "${R_p50[$id,$picked]}" \
            "${R_p99[$id,$picked]}" "" "" "$note" ;;
    ceiling:*)
        add_row ceiling "${E_name[$id]}" "$rps" "${R_p50[$id,$picked]}" \
            "${R_p99[$id,$picked]}" "" "" "$note"
        ceiling "${kind#ceiling:}" "$rps" "${E_name[$id]}" ;;
    *)
        add_row wrk "${E_name[$id]}" "$rps" "${R_p50[$id,$picked]}" \
            "${R_p99[$id,$picked]}" "${E_ceil[$id]}" "${E_peer[$id]}" \
            "$note" "${E_target[$id]}" ;;
    esac
    [[ -z ${E_also[$id]} ]] || ceiling "${E_also[$id]}" "$rps" "${E_name[$id]}"
    [[ -z ${E_peer_as[$id]} ]] || peer "${E_peer_as[$id]}" "$rps" "${E_name[$id]}"
}


# ---------------------------------------------------------------------------
# PostgreSQL 15: own cluster, trust auth, 127.0.0.1 only

pg_port=$(free_port)
pg_data=$tmp/pg/data
mkdir -p "$tmp/pg"
(( EUID != 0 )) || chown postgres: "$tmp/pg"
pg_max_conn=$(( BENCH_CONNS + 8 * BENCH_WORKERS + 20 ))
(( pg_max_conn >= 100 )) || pg_max_conn=100

say "PostgreSQL: initdb, port $pg_port (fsync=off: durability is off, for benchmarking only)"
as_pg "$PG_BIN/initdb" -D "$pg_data" -U postgres -A trust -E UTF8 \
    --no-instructions >"$tmp/logs/initdb.log" 2>&1 \
    || { cat "$tmp/logs/initdb.log" >&2; die "initdb failed"; }
cat >>"$pg_data/postgresql.conf" <<EOF

# bench/run.sh: benchmarking settings, not for production
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$tmp/pg'
max_connections = $pg_max_conn
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -l "$tmp/pg/postgres.log" -w -t 60 \
    start >"$tmp/logs/pg_ctl.log" 2>&1 \
    || { cat "$tmp/pg/postgres.log" >&2; die "PostgreSQL did not start"; }

export PGHOST=127.0.0.1 PGPORT=$pg_port
psql_admin -c "CREATE ROLE usermgmt LOGIN" \
           -c "CREATE DATABASE usermgmt OWNER usermgmt" \
           -c "CREATE DATABASE bench"

db_ready=1
if [[ -x $root/build.sh ]]; then
    say "migrations: build.sh migrate"
    if ! PGUSER=usermgmt PGDATABASE=usermgmt "$root/build.sh" migrate \
            >"$tmp/logs/migrate.log" 2>&1; then
        tail -n 15 "$tmp/logs/migrate.log" >&2
        warn "build.sh migrate failed; module scenarios that need the schema will show it"
        notes+=("build.sh migrate failed: $(tail -n 1 "$tmp/logs/migrate.log")")
        db_ready=
    fi
    if [[ -n $db_ready ]]; then
        say "bootstrap: build.sh bootstrap"
        admin_password=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
        if ! PGUSER=usermgmt PGDATABASE=usermgmt \
                USERMGMT_ADMIN_PASSWORD=$admin_password \
                "$root/build.sh" bootstrap >"$tmp/logs/bootstrap.log" 2>&1
        then
            tail -n 15 "$tmp/logs/bootstrap.log" >&2
            warn "build.sh bootstrap failed"
            notes+=("build.sh bootstrap failed: $(tail -n 1 "$tmp/logs/bootstrap.log")")
        fi
    fi
else
    warn "no build.sh: the usermgmt database stays empty"
    notes+=("no build.sh: migrations not applied")
fi


# ---------------------------------------------------------------------------
# Redis: own server, no persistence

redis_port=$(free_port)
say "Redis: port $redis_port (no persistence)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$tmp/redis" --logfile "$tmp/logs/redis.log" \
    --daemonize no &
redis_pid=$!
wait_for 20 "Redis" redis-cli -h 127.0.0.1 -p "$redis_port" ping


# ---------------------------------------------------------------------------
# nginx: port A = the module, port B = plain nginx in the same process

port_a=$(free_port)
port_b=$(free_port)
base_a=http://127.0.0.1:$port_a
base_b=http://127.0.0.1:$port_b
module_loaded=
module_missing=
[[ -f $module_so ]] || module_missing="module not built"

# nginx_conf WITH_MODULE BODY_FILE: writes $tmp/nginx/nginx.conf
nginx_conf() {
    local with_module=$1 body_file=$2 body

    # The body goes into a single-quoted nginx string: escape \ ' and
    # control characters, and write $ as ${dollar} (return text is a
    # complex value; geo values are not, so $dollar holds a real "$").
    body=$(perl -0777 -pe 's/\\/\\\\/g; s/\x27/\\\x27/g; s/\n/\\n/g;
                            s/\r/\\r/g; s/\t/\\t/g; s/\$/\${dollar}/g' \
           "$body_file")

    {
        [[ -z $with_module ]] || echo "load_module $module_so;"
        # as conf.d does: a pool of its own for password hashing
        [[ -z $with_module ]] \
            || echo "thread_pool usermgmt threads=$BENCH_POOL_THREADS max_queue=4096;"
        cat <<EOF
worker_processes $BENCH_WORKERS;
daemon off;
master_process on;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    geo \$dollar { default "\$"; }
EOF
        if [[ -n $with_module ]]; then
            cat <<EOF

    usermgmt_postgres "hostaddr=127.0.0.1 port=$pg_port dbname=usermgmt user=usermgmt" max=8 timeout=5s;
    usermgmt_redis 127.0.0.1:$redis_port timeout=50ms;
    usermgmt_jwt_key hs256 $jwt_key kid=bench;
    usermgmt_thread_pool usermgmt;
    # the per-address count holds the sign-ins under way too: with 32
    # clients on one address it passes 50 (see login_ip_failures)
    usermgmt_login_ip_max_failures 1000000;
    # a limit that never refuses: what is measured is its cost
    usermgmt_limit_zone benchzone key=user rate=100000000r/s;

    server {
        listen 127.0.0.1:$port_a;
        location = /health  { usermgmt_health; }
        location = /ready   { usermgmt_ready; }
        location = /metrics { usermgmt_metrics; }
        location /api/v1/   { usermgmt_api; }
        # the token check and the limit run at the start of the rewrite
        # phase, before "return"
        location = /auth204 { usermgmt_auth on; return 204; }
        location = /authlimit204 {
            usermgmt_auth on;
            usermgmt_limit benchzone;
            return 204;
        }
    }
EOF
        fi
        cat <<EOF

    server {
        listen 127.0.0.1:$port_b;
        location = /health {
            default_type application/json;
            return 200 '$body';
        }
        location = /plain204 { return 204; }
    }
}
EOF
    } >"$tmp/nginx/nginx.conf"
}

nginx_cmd() {
    nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" "$@"
}

# The token signing key: 64 random bytes, read by the master at start.
jwt_key=$tmp/nginx/jwt-hs256.key
(umask 077; head -c 64 /dev/urandom >"$jwt_key")

# Until the module's /health answers, the ceiling serves a stand-in body.
printf '{"data":{"status":"ok","timestamp":"1970-01-01T00:00:00Z"}}' \
    >"$tmp/nginx/body.json"

if [[ -z $module_missing ]]; then
    nginx_conf 1 "$tmp/nginx/body.json"
    if nginx_cmd -t >"$tmp/logs/nginx-t.log" 2>&1; then
        module_loaded=1
    else
        cat "$tmp/logs/nginx-t.log" >&2
        module_missing="nginx -t failed with the module"
        notes+=("nginx -t failed with the module: $(grep -m1 emerg "$tmp/logs/nginx-t.log" || tail -n1 "$tmp/logs/nginx-t.log")")
    fi
fi
[[ -n $module_loaded ]] || nginx_conf "" "$tmp/nginx/body.json"

say "nginx: $BENCH_WORKERS worker(s), module port $port_a, plain port $port_b${module_missing:+ ($module_missing)}"
# nginx itself (not a subshell) must be the child whose pid we keep
nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" >"$tmp/logs/nginx.log" 2>&1 &
nginx_pid=$!
wait_for 20 "nginx" curl -sf -o /dev/null "$base_b/health"

# The ceiling returns the very bytes the module returns for /health (the
# timestamp changes from call to call, its length does not).
ceiling_body_note="stand-in body"
if [[ -n $module_loaded ]]; then
    status=$(curl -s -o "$tmp/nginx/body.json.new" -w '%{http_code}' \
             --max-time 5 "$base_a/health" || true)
    if [[ $status == 2?? && -s $tmp/nginx/body.json.new ]]; then
        mv "$tmp/nginx/body.json.new" "$tmp/nginx/body.json"
        nginx_conf 1 "$tmp/nginx/body.json"
        nginx_cmd -t >"$tmp/logs/nginx-t.log" 2>&1 \
            || { cat "$tmp/logs/nginx-t.log" >&2; die "nginx -t failed on the /health body"; }
        kill -HUP "$nginx_pid"
        want=$(wc -c <"$tmp/nginx/body.json")
        got_len() {
            [[ $(curl -s "$base_b/health" | wc -c) -eq $want ]] \
                && [[ $(pgrep -c -P "$nginx_pid") -eq $BENCH_WORKERS ]]
        }
        wait_for 20 "nginx reload" got_len
        ceiling_body_note="same $want-byte body as the module's /health"
    else
        notes+=("module /health answered $status: plain nginx serves a stand-in body")
    fi
fi
say "plain nginx /health: $ceiling_body_note"

# Each worker subscribes to the revocation channel about a second after it
# starts and then copies the deny-list; until then an authenticated request
# asks Redis. Wait for the subscriptions (the reload above started new
# workers), then 2 s more for the copies.
if [[ -n $module_loaded ]]; then
    subscribers() {
        redis-cli -h 127.0.0.1 -p "$redis_port" PUBSUB NUMSUB usermgmt:revoked \
            | sed -n 2p
    }
    for (( i = 0; i < 100; i++ )); do
        n=$(subscribers)
        (( ${n:-0} >= BENCH_WORKERS )) && break
        sleep 0.1
    done
    (( ${n:-0} >= BENCH_WORKERS )) \
        || notes+=("$n of $BENCH_WORKERS worker(s) subscribed to usermgmt:revoked 10 s after the start: authenticated requests may ask Redis")
    sleep 2
fi


# ---------------------------------------------------------------------------
# Ceilings that are not HTTP: pgbench and redis-benchmark. Each function
# measures once (one round) and sets w_rps w_p50 w_p99 w_note.

pgbench_init() {
    say "pgbench: -i -s 1 bench"
    "$PG_BIN/pgbench" -U postgres -i -s 1 -q bench >"$tmp/logs/pgbench-init.log" 2>&1 \
        || { cat "$tmp/logs/pgbench-init.log" >&2; die "pgbench -i failed"; }
}

measure_pgbench() {
    local avg out=$tmp/pgbench/run-$round.txt prefix=$tmp/pgbench/txn-$round

    "$PG_BIN/pgbench" -U postgres -S -M prepared -c "$BENCH_CONNS" -j 1 \
        -T "$BENCH_SECONDS" --log --log-prefix="$prefix" bench \
        >"$out" 2>&1 || { cat "$out" >&2; die "pgbench failed"; }

    w_rps=$(awk '/^tps = / { printf "%.0f", $3; exit }' "$out")
    avg=$(awk '/^latency average = / { printf "%.3f", $4 }' "$out")
    # per-transaction log: client txn latency_us script epoch epoch_us
    read -r w_p50 w_p99 < <(cat "$prefix".* | awk '{ print $3 }' \
        | sort -n | awk '{ v[NR] = $1 }
            END {
                if (NR == 0) { print "- -"; exit }
                i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
                i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
                printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
            }')
    w_note="avg ${avg} ms"
    [[ -n $w_rps ]] || { cat "$out" >&2; die "could not read pgbench output"; }
}

# measure_redis_benchmark TEST: one redis-benchmark test (ping_mbulk or
# ping_inline)
measure_redis_benchmark() {
    local t=$1 out=$tmp/logs/redis-benchmark-$1-$round.csv test rps p50 p99

    redis-benchmark -h 127.0.0.1 -p "$redis_port" -t "$t" -n 200000 \
        -c "$BENCH_CONNS" --csv >"$out" 2>&1 \
        || { cat "$out" >&2; die "redis-benchmark failed"; }
    # "test","rps","avg","min","p50","p95","p99","max"
    w_rps=
    while IFS=, read -r test rps _ _ p50 _ p99 _; do
        test=${test//\"/} rps=${rps//\"/} p50=${p50//\"/} p99=${p99//\"/}
        [[ $test == PING_* ]] || continue
        w_rps=$(printf '%.0f' "$rps") w_p50=$p50 w_p99=$p99 w_note=
    done <"$out"
    [[ -n $w_rps ]] || { cat "$out" >&2; die "could not read redis-benchmark output"; }
}
measure_redis_mbulk()  { measure_redis_benchmark ping_mbulk; }
measure_redis_inline() { measure_redis_benchmark ping_inline; }

# The EVALSHA the limit of /authlimit204 sends, word for word: read with
# MONITOR while one request goes through (the script is loaded by then).
# Sets limit_cmd (empty when it could not be seen).
limit_cmd=()
capture_limit_cmd() {
    local mon=$tmp/logs/redis-monitor.txt pid line

    redis-cli -h 127.0.0.1 -p "$redis_port" MONITOR >"$mon" 2>&1 &
    pid=$!
    sleep 0.5
    curl -s -o /dev/null --max-time 5 -H "$auth_header" "$base_a/authlimit204" || true
    sleep 0.5
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    line=$(grep -m1 '"EVALSHA"' "$mon" || true)
    # 1700000000.123456 [0 127.0.0.1:40000] "EVALSHA" "sha" "1" "key" ...
    mapfile -t limit_cmd < <(perl -ne 's/^.*?\] //; print "$1\n" while /"([^"]*)"/g' <<<"$line")
}

# redis-benchmark sending that EVALSHA: what Redis alone does with it
measure_redis_limit() {
    local out=$tmp/logs/redis-benchmark-evalsha-$round.csv rps p50 p99

    redis-benchmark -h 127.0.0.1 -p "$redis_port" -n 200000 \
        -c "$BENCH_CONNS" --csv "${limit_cmd[@]}" >"$out" 2>&1 \
        || { cat "$out" >&2; die "redis-benchmark failed"; }
    # "test","rps","avg","min","p50","p95","p99","max"
    IFS=, read -r _ rps _ _ p50 _ p99 _ < <(grep -i '^"EVALSHA' "$out")
    rps=${rps//\"/} w_p50=${p50//\"/} w_p99=${p99//\"/}
    [[ -n $rps ]] || { cat "$out" >&2; die "could not read redis-benchmark output"; }
    w_rps=$(printf '%.0f' "$rps") w_note=
}


# ---------------------------------------------------------------------------
# argon2id: the ceiling of login throughput
#
# A login is one argon2id verification (m=19456 KiB, t=2, p=1, the module's
# default) in the thread pool; the rest is a few round trips. The pool has
# BENCH_POOL_THREADS threads (the number of CPUs by default, as conf.d
# sizes it), so at most min(nproc, threads) hashes run at once:
# ceiling = min(nproc, threads) / (single-thread time of one hash).
#
# The single-thread time comes from bench/argon2-time.c: libargon2 (the
# library the module links) verifying in a loop in one thread, which reuses
# its memory as a pool thread does; its thread CPU time is the figure (wall
# time on a shared machine also holds other processes' turns). Debian's
# argon2 CLI is timed too, as a cross-check: its own timing (CPU time of one
# hash in a fresh process) also pays the page faults of 19 MiB of new
# memory, so it comes out higher. Without a C compiler or libargon2-dev the
# CLI's figure is the ceiling.

argon2_m=19456 argon2_t=2 argon2_p=1 pool_threads=$BENCH_POOL_THREADS
pool_label="thread_pool usermgmt threads=$pool_threads (BENCH_POOL_THREADS; nice 10)"

# ms_stats: reads one number a line -> "mean p50 p99" (ms)
ms_stats() {
    sort -n | awk '
        NF { v[++n] = $1; s += $1 }
        END {
            if (n == 0) { print "- - -"; exit }
            i50 = int((n + 1) / 2)
            i99 = int(n * 0.99 + 0.999); if (i99 > n) i99 = n
            printf "%.2f %.2f %.2f\n", s / n, v[i50], v[i99]
        }'
}

argon2_helper=
argon2_cli_ms=
argon2_cli_mean=-
argon2_cores=$(( $(nproc) < pool_threads ? $(nproc) : pool_threads ))

# argon2_entry: times the CLI once, builds the helper, and queues the
# ceiling (one helper run per round); a row n/a when neither works
argon2_entry() {
    local params="m=$argon2_m t=$argon2_t p=$argon2_p"
    local name="argon2id $params, 1 thread" i out

    # the CLI, in fresh processes: its own "0.027 seconds" line per hash
    if command -v argon2 >/dev/null 2>&1; then
        say "argon2 CLI: $BENCH_HASH_RUNS hashes in fresh processes"
        for (( i = 0; i < BENCH_HASH_RUNS; i++ )); do
            out=$(printf '%s' "$bench_password" \
                  | argon2 somesaltsomesalt -id -t "$argon2_t" \
                           -k "$argon2_m" -p "$argon2_p" -l 32) \
                || die "argon2 failed: $out"
            argon2_cli_ms+=$(awk '$2 == "seconds" { print $1 * 1000 }' <<<"$out")$'\n'
        done
        read -r argon2_cli_mean _ _ < <(printf '%s' "$argon2_cli_ms" | ms_stats)
    fi

    # libargon2 in one warm thread
    if cc -O2 -o "$tmp/argon2-time" "$bench_dir/argon2-time.c" -largon2 \
            >"$tmp/logs/argon2-time-cc.log" 2>&1; then
        argon2_helper=$tmp/argon2-time
        name+=" (libargon2, $BENCH_HASH_RUNS runs)"
    elif [[ $argon2_cli_mean != - ]]; then
        warn "cannot build bench/argon2-time.c (cc, libargon2-dev?): the argon2 CLI's figure is the ceiling"
        notes+=("bench/argon2-time.c did not build: the login ceiling uses the argon2 CLI's cold figure (higher than a pool thread's)")
        name+=" (argon2 CLI, $BENCH_HASH_RUNS runs)"
    else
        warn "neither bench/argon2-time.c nor the argon2 CLI: login rows have no ceiling"
        add_row na "$name" "n/a (no cc + libargon2-dev, no argon2 CLI)" - - "" "" ""
        return 0
    fi
    measure_entry --is-ceiling argon2 argon2 "$name" measure_argon2
    # what the pool can get from this machine right now: as many threads
    # as the pool hashes with, at its priority, timed by the wall clock
    if [[ -n $argon2_helper ]]; then
        measure_entry --is-reference argon2_nice \
            "argon2id $params, $argon2_cores threads at nice 10, wall time" \
            measure_argon2_nice
    fi
}

# one round: argon2_cores helpers at once under nice 10 (the pool's
# priority), BENCH_HASH_RUNS verifications each; w_rps from the wall time
measure_argon2_nice() {
    local i mean
    local -a pids=()

    for (( i = 1; i <= argon2_cores; i++ )); do
        nice -n 10 "$argon2_helper" "$argon2_m" "$argon2_t" "$argon2_p" \
            "$BENCH_HASH_RUNS" >"$tmp/logs/argon2-nice-$round-$i.txt" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do
        wait "$i" || die "argon2-time failed under nice"
    done
    read -r mean w_p50 w_p99 < <(cat "$tmp"/logs/argon2-nice-"$round"-*.txt \
        | awk '{ print $1 }' | ms_stats)
    w_rps=$(awk -v c="$argon2_cores" -v m="$mean" \
            'BEGIN { printf "%.0f", c * 1000 / m }')
    w_note="hashes/s = $argon2_cores / $mean ms wall time per hash: the CPU the pool's threads get at nice 10 next to everything else running now (an idle machine gives the ceiling's figure); p50/p99 = wall ms per hash"
}

# one round: BENCH_HASH_RUNS verifications in one thread (or the CLI's
# figures); w_rps = hashes/s of min(nproc, pool threads) threads
measure_argon2() {
    local mean source

    if [[ -n $argon2_helper ]]; then
        "$argon2_helper" "$argon2_m" "$argon2_t" "$argon2_p" \
            "$BENCH_HASH_RUNS" >"$tmp/logs/argon2-time-$round.txt" 2>&1 \
            || { cat "$tmp/logs/argon2-time-$round.txt" >&2; die "argon2-time failed"; }
        read -r mean w_p50 w_p99 < <(awk '{ print $2 }' \
            "$tmp/logs/argon2-time-$round.txt" | ms_stats)
        source="libargon2 in one warm thread (bench/argon2-time.c), mean thread CPU time"
    else
        read -r mean w_p50 w_p99 < <(printf '%s' "$argon2_cli_ms" | ms_stats)
        source="argon2 CLI, fresh process per hash, mean CPU time"
    fi
    [[ $mean != - ]] || die "no argon2 timing"
    w_rps=$(awk -v c="$argon2_cores" -v m="$mean" \
            'BEGIN { printf "%.0f", c * 1000 / m }')
    w_note="hashes/s = min(nproc $(nproc), $pool_threads pool threads) / $mean ms per hash ($source); p50/p99 = ms per hash; argon2 CLI (fresh process, page faults included): $argon2_cli_mean ms"
}


# ---------------------------------------------------------------------------
# The bench accounts: registered once; the first one logs in once for a
# bearer token.
#
# The login rows cycle through login_users accounts (twice the larger of
# BENCH_CONNS and BENCH_LOGIN_CONNS, at least 16) rather than one. Parallel
# correct sign-ins of one account no longer lock it, but an account takes
# at most usermgmt_login_max_failures (5) attempts under way at once (the
# bound on parallel guesses; the others are refused), and every sign-in of
# an account updates the same row. With at least twice as many accounts as
# connections no account has more than one login in flight, so the rows
# measure hashing and round trips, not an account's own limits.

bench_password=bench-Passphrase-4711
login_json=$tmp/wrk/login.json         # login bodies, one a line
access_token=
account_missing=
login_users=$(( 2 * (BENCH_CONNS > BENCH_LOGIN_CONNS ? BENCH_CONNS : BENCH_LOGIN_CONNS) ))
(( login_users >= 16 )) || login_users=16

bench_accounts() {
    local status n i json=(-H "Content-Type: application/json")

    if [[ -z $module_loaded ]]; then
        account_missing=$module_missing
        return 0
    fi
    : >"$login_json"
    : >"$tmp/wrk/register.json"
    for (( i = 1; i <= login_users; i++ )); do
        printf '{"email":"loadtest-%03d@example.com","password":"%s","first_name":"Bench","last_name":"Load"}\n' \
            "$i" "$bench_password" >>"$tmp/wrk/register.json"
        printf '{"email":"loadtest-%03d@example.com","password":"%s"}\n' \
            "$i" "$bench_password" >>"$login_json"
    done

    say "accounts: register $login_users (8 at a time), log in the first"
    # one status a line ("000": no answer)
    tr '\n' '\0' <"$tmp/wrk/register.json" \
        | xargs -0 -P 8 -I{} curl -s --max-time 30 -o /dev/null \
              -w '%{http_code}\n' "${json[@]}" --data-binary {} \
              "$base_a/api/v1/auth/register" >"$tmp/wrk/register.out" || true
    n=$(grep -c '^201$' "$tmp/wrk/register.out" || true)
    if (( n != login_users )); then
        status=$(grep -v -m1 '^201$' "$tmp/wrk/register.out" || true)
        account_missing="register answered ${status:-nothing}"
        # one more account, to quote the answer
        http_status "$base_a/api/v1/auth/register" "$tmp/wrk/register.body" \
            "${json[@]}" --data-binary "$(printf '{"email":"loadtest-x@example.com","password":"%s"}' "$bench_password")" >/dev/null
        notes+=("POST /api/v1/auth/register: $n of $login_users accounts created (statuses: $(sort "$tmp/wrk/register.out" | uniq -c | awk '{ printf "%s%s x%s", s, $2, $1; s = ", " }')); another attempt answered: $(head -c 300 "$tmp/wrk/register.body")")
        return 0
    fi
    status=$(http_status "$base_a/api/v1/auth/login" "$tmp/wrk/login.out" \
             "${json[@]}" --data-binary "$(head -n 1 "$login_json")")
    if [[ $status != 200 ]]; then
        account_missing="login answered $status"
        notes+=("POST /api/v1/auth/login answered $status: $(head -c 300 "$tmp/wrk/login.out")")
        return 0
    fi
    access_token=$(perl -MJSON::PP -0777 -ne '
        my $t = eval { decode_json($_)->{data}{access_token} };
        print $t if defined $t && !ref $t' "$tmp/wrk/login.out")
    if [[ -z $access_token ]]; then
        account_missing="no access_token in the login answer"
        notes+=("login answer without data.access_token: $(head -c 300 "$tmp/wrk/login.out")")
    fi
}

# account_scenario NAME CEILING-KEY: the n/a row of a scenario that needs
# the bench account when there is none; returns 1 then
account_scenario() {
    [[ -n $access_token ]] && return 0
    say "$1: n/a (${account_missing})"
    add_row na "$1" "n/a (${account_missing})" - - "$2" "" ""
    return 1
}

# /health with 4 connections while BENCH_CONNS clients log in: does the
# event loop stay responsive while the thread pool is saturated with
# argon2id? The login load starts first and ends last. The /health row
# reports the round with the median p99; the login row the same round.
health_name="/health (module, c=4) while $BENCH_CONNS clients log in"
health_load_entry() {
    local login_name="POST /api/v1/auth/login (module, c=$BENCH_CONNS, during the /health run)"

    if ! account_scenario "$health_name" ""; then
        add_row na "$login_name" "n/a (${account_missing})" - - argon2 login ""
        return 0
    fi
    wrk_post_script "$login_json" "$tmp/wrk/post-background.lua"
    measure_entry --target "p99<20" --median-by p99 health_load \
        "$health_name" measure_health_load
    follow_entry login_load "$login_name" health_load argon2 login
    E_note[login_load]="$login_users accounts in turn; $(( BENCH_SECONDS + 2 )) s of load around the /health run"
}

measure_health_load() {
    local login_out health_out

    wrk_n=$(( wrk_n + 1 )); login_out=$tmp/wrk/$wrk_n.txt
    wrk_n=$(( wrk_n + 1 )); health_out=$tmp/wrk/$wrk_n.txt
    say "  wrk -t1 -c$BENCH_CONNS -d$(( BENCH_SECONDS + 2 ))s login, after 1 s wrk -t1 -c4 -d${BENCH_SECONDS}s /health"
    wrk -t1 -c"$BENCH_CONNS" -d"$(( BENCH_SECONDS + 2 ))s" --latency \
        --timeout 10s -s "$tmp/wrk/post-background.lua" \
        "$base_a/api/v1/auth/login" >"$login_out" 2>&1 &
    load_pid=$!
    sleep 1
    wrk -t1 -c4 -d"${BENCH_SECONDS}s" --latency "$base_a/health" \
        >"$health_out" 2>&1 || { cat "$health_out" >&2; die "wrk failed on /health"; }
    wait "$load_pid" || { load_pid=; cat "$login_out" >&2; die "wrk failed on login"; }
    load_pid=

    read_wrk "$login_out"
    R_rps[login_load,$round]=$w_rps R_p50[login_load,$round]=$w_p50
    R_p99[login_load,$round]=$w_p99 R_note[login_load,$round]=$w_note
    local l_rps=$w_rps
    read_wrk "$health_out"
    w_note="login load meanwhile: $l_rps logins/s${w_note:+; $w_note}"
}


# login_ip_failures WHEN: a sign-in counts against the client's address
# (usermgmt:login-failures:<ip> in Redis) before its password is checked
# and is taken back on success, so the count is failures plus sign-ins
# under way, and a sign-in refused for the count is itself counted. From
# one address, BENCH_CONNS logins in flight plus the tail of the previous
# run (queued hashes finish after wrk has gone) pass the default
# usermgmt_login_ip_max_failures (50); from then on every login from
# 127.0.0.1 answers 429 and keeps the count up until the key expires
# (usermgmt_login_lockout). The bench raises the limit (nginx_conf) and
# checks here, after the login rows, that nothing stayed counted: no
# failures, no sign-in left "under way" on an account.
login_ip_failures() {
    local key=usermgmt:login-failures:127.0.0.1 n inflight a sum max i

    [[ -n $module_loaded ]] || return 0
    # the logins wrk cut off are still queued for the pool: wait until
    # they are done (up to 20 s; a place never given back would expire
    # only 30 s after the account's last sign-in)
    for (( i = 0; i < 40; i++ )); do
        sleep 0.5
        n=$(redis-cli -h 127.0.0.1 -p "$redis_port" GET "$key")
        # a sign-in whose client went away must still give its place back
        inflight=$("$PG_BIN/psql" -X -q -At -U usermgmt -d usermgmt -c "
            SELECT count(*) || ' ' || coalesce(sum(login_inflight), 0)
                            || ' ' || coalesce(max(login_inflight), 0)
              FROM users
             WHERE login_inflight > 0 AND login_inflight_until > now()" \
            2>/dev/null || true)
        [[ ${n:-0} == 0 && ( -z $inflight || $inflight == "0 "* ) ]] && break
    done
    redis-cli -h 127.0.0.1 -p "$redis_port" DEL "$key" >/dev/null
    if [[ -n $inflight && $inflight != "0 "* ]]; then
        read -r a sum max <<<"$inflight"
        notes+=("$(( i / 2 )) s after $1, $a bench account(s) still had sign-ins under way (login_inflight: $sum in all, at most $max on one account) with no request left (wrk had cut them off): their places were not given back and stay counted while the account keeps signing in (each new attempt renews login_inflight_until)")
    fi
    if [[ -n $n && $n -lt 0 ]]; then
        notes+=("$(( i / 2 )) s after $1, the count of failed sign-ins of 127.0.0.1 ($key) was $n: more sign-ins were given back than were counted (the count is skipped when Redis cannot take it, but a success gives it back all the same), which leaves room for as many extra failures")
    elif [[ -n $n && $n != 0 ]]; then
        notes+=("$(( i / 2 )) s after $1, $n sign-in(s) still counted as failures of 127.0.0.1 ($key) although every login of the bench uses the right password")
    fi
}


# ---------------------------------------------------------------------------
# Redis commands per request
#
# INFO commandstats before and after BENCH_RT_REQUESTS requests sent one
# after the other (one curl, one keep-alive connection), with the bench
# account's token. Redis counts the commands a Lua script calls under their
# own names, so the limit script's TIME, GET and SET (1 TIME, and 1 GET and
# 1 SET per key of an allowed request) show up beside the EVALSHA; what is
# left over are the other commands the module sent. The module's own count
# (usermgmt_redis_commands_total of /metrics) is read as a cross-check.

redis_cmdstats() {                  # -> "name calls" lines
    redis-cli -h 127.0.0.1 -p "$redis_port" INFO commandstats | tr -d '\r' \
        | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | sort
}

module_redis_commands() {
    # awk reads to the end: a reader that stops early makes curl fail
    { curl -s --max-time 5 "$base_a/metrics" || true; } \
        | awk '$1 == "usermgmt_redis_commands_total" { n = $2 } END { print n }'
}

# redis_calls_under_load NAME URL: the same location under wrk's load.
# Each request still waits for one round trip, but the requests a worker
# reads in one turn of its event loop share one EVALSHA; the row says how
# many shared a call, and checks that every request got one decision.
redis_calls_under_load() {
    local name=$1 url=$2 out=$tmp/wrk/calls-under-load.out
    local e0 e1 d0 d1 reqs calls decisions

    # allowed + limited of benchzone, from metrics_snapshot's lines
    limit_decisions() {
        metrics_snapshot | awk '$1 ~ /^limit:benchzone\/(allowed|limited)$/ { n += $2 }
                                END { print n + 0 }'
    }

    say "$name: wrk -t1 -c$BENCH_CONNS -d${BENCH_SECONDS}s, INFO commandstats before and after"
    d0=$(limit_decisions)
    e0=$(redis_cmdstats | awk '$1 == "evalsha" { print $2 }')
    wrk -t1 -c"$BENCH_CONNS" -d"${BENCH_SECONDS}s" -H "Authorization: Bearer $access_token" \
        "$url" >"$out" 2>&1 || true
    e1=$(redis_cmdstats | awk '$1 == "evalsha" { print $2 }')
    d1=$(limit_decisions)
    reqs=$(awk '/requests in/ { print $1 }' "$out")
    calls=$(( ${e1:-0} - ${e0:-0} ))
    decisions=$(( d1 - d0 ))
    if [[ -z $reqs ]] || (( calls <= 0 )); then
        add_row count "$name" - - - "" "" "could not be measured: $(head -c 200 "$out")"
        return 0
    fi
    add_row count "$name" - - - "" "" "$(awk -v r="$reqs" -v c="$calls" -v d="$decisions" -v k="$BENCH_CONNS" 'BEGIN {
        printf "%d requests, %d EVALSHA calls: %.1f requests per call (%.3f calls per request); %d decisions counted (%.3f per request): target exactly 1 decision and at most 1 round trip per request: %s",
            r, c, r / c, c / r, d, d / r, (d >= r && d <= r + k && c <= r) ? "met" : "NOT met" }')"
}

# redis_roundtrips NAME URL KEYS: KEYS = the limit keys per request (0 for
# a location without limits); adds a row with the verdict in its notes
redis_roundtrips() {
    local name=$1 url=$2 keys=$3 n=$BENCH_RT_REQUESTS i cfg out
    local m_before m_after before after statuses verdict note secs t0

    cfg=$tmp/wrk/rt-$keys.curl out=$tmp/wrk/rt-$keys.out
    for (( i = 0; i < n; i++ )); do
        printf 'url = "%s"\noutput = "/dev/null"\n' "$url"
    done >"$cfg"

    say "$name: $n requests, INFO commandstats before and after"
    m_before=$(module_redis_commands)
    before=$(redis_cmdstats)
    t0=$(date +%s.%N)
    curl -s --max-time 300 -K "$cfg" -w '%{http_code}\n' \
        -H "Authorization: Bearer $access_token" >"$out" || true
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    after=$(redis_cmdstats)
    m_after=$(module_redis_commands)
    statuses=$(sort "$out" | uniq -c \
               | awk '{ printf "%s%s x%s", s, $2, $1; s = ", " }')

    # per command: calls in the window ("info" is this measurement's own)
    read -r note < <(join -a 2 -e 0 -o 0,1.2,2.2 \
            <(printf '%s\n' "$before") <(printf '%s\n' "$after") \
        | awk -v n="$n" -v keys="$keys" '
            $1 != "info" && $3 - $2 > 0 { d[$1] = $3 - $2 }
            END {
                ev = d["evalsha"] + 0
                # what the script itself calls
                if (keys > 0) {
                    inner["time"] = ev; inner["get"] = ev * keys
                    inner["set"] = ev * keys
                }
                other = 0; olist = ""; ilist = ""
                split("time get set", names, " ")
                for (i = 1; i <= 3; i++) {
                    c = names[i]
                    if (!(c in inner)) continue
                    x = d[c] + 0
                    ilist = ilist sprintf("%s%s %d", ilist == "" ? "" : ", ", toupper(c), (x < inner[c] ? x : inner[c]))
                }
                for (c in d) {
                    if (c == "evalsha") continue
                    x = d[c]
                    if (c in inner) {
                        x -= inner[c]; if (x < 0) x = 0
                    }
                    if (x > 0) {
                        other += x
                        olist = olist sprintf("%s%s %d", olist == "" ? "" : ", ", c, x)
                    }
                }
                total = 0; for (c in d) total += d[c]
                if (keys > 0) {
                    ok = (ev == n && other == 0) ? "met" : "NOT met"
                    printf "EVALSHA %.2f per request (%d in %d requests): target exactly 1.00 and no other command: %s; other top-level commands: %d%s; inside the script: %s (per request: 1 TIME + %d GET + %d SET)\n", \
                        ev / n, ev, n, ok, other, (olist == "" ? "" : " (" olist ")"), (ilist == "" ? "none" : ilist), keys, keys
                } else {
                    ok = (total == 0) ? "met" : "NOT met"
                    printf "%.2f Redis commands per request (%d in %d requests%s): target 0: %s\n", \
                        total / n, total, n, (olist == "" ? "" : ": " olist), ok
                }
            }')
    note+="; module's own count (usermgmt_redis_commands_total): +$(( ${m_after:-0} - ${m_before:-0} )); statuses: $statuses; $secs s"
    add_row count "$name" - - - "" "" "$note"
}


# ---------------------------------------------------------------------------
# The scenarios. To add one: queue its ceiling and itself (scenario,
# measure_entry), then run_rounds measures them in turn and adds the rows.

# Pure edge: the ceiling is nginx answering the same bytes from config.
scenario --is-ceiling edge edge "plain nginx return 200" "$base_b/health"
scenario --needs-module health "/health (module)" "$base_a/health" edge health
run_rounds "/health"

# One PostgreSQL round trip.
pgbench_init
measure_entry --is-ceiling pg --note "PK lookup, 1 query/txn" pgbench \
    "pgbench -S -M prepared (c=$BENCH_CONNS)" measure_pgbench
scenario --needs-module lookup \
    "GET /api/v1/organizations/lookup?slug=default (module, one PG query)" \
    "$base_a/api/v1/organizations/lookup?slug=default" pg lookup
run_rounds "lookup"

# PostgreSQL + Redis round trips: neither can beat the slower of the two.
# hiredis speaks RESP multibulk: PING_MBULK is the module's round trip; the
# inline protocol is shown for reference.
measure_entry --is-reference redis_inline \
    "redis-benchmark PING_INLINE (c=$BENCH_CONNS)" measure_redis_inline
measure_entry --is-ceiling redis redis_mbulk \
    "redis-benchmark PING_MBULK (c=$BENCH_CONNS)" measure_redis_mbulk
scenario --needs-module ready "/ready (module, PG + Redis round trips)" \
    "$base_a/ready" pg_redis ready
run_rounds "/ready"
if [[ -n ${CEILING[pg]:-} && -n ${CEILING[redis]:-} ]]; then
    if (( CEILING[pg] < CEILING[redis] )); then
        ceiling pg_redis "${CEILING[pg]}" "min(pgbench, redis)"
    else
        ceiling pg_redis "${CEILING[redis]}" "min(pgbench, redis)"
    fi
fi

# Authentication at the edge. All three answer "return 204" and get the
# same Authorization header: the plain location ignores it, the auth-only
# location verifies the token (cached per worker after the first time) and
# looks the session up in this node's copy of the deny-list, and the
# auth + limit location also asks Redis once (EVALSHA) for its limit.
bench_accounts
plain_name="plain nginx return 204 (same Authorization header)"
auth_name="auth-only location (usermgmt_auth on; return 204)"
limit_name="auth + limit location (+ usermgmt_limit, key=user)"
auth_header="Authorization: Bearer ${access_token:-none}"
scenario --is-ceiling noop plain "$plain_name" "$base_b/plain204" \
    -- -H "$auth_header"
if account_scenario "$auth_name" noop \
   && account_scenario "$limit_name" auth; then
    # without a token the locations must refuse, or nothing is measured
    for path in /auth204 /authlimit204; do
        status=$(http_status "$base_a$path")
        [[ $status == 401 ]] \
            || notes+=("$path without a token answered $status, not 401: the token check did not run")
    done
    scenario --needs-module --target "ratio>=0.90" --also-ceiling auth \
        auth "$auth_name" "$base_a/auth204" noop auth -- -H "$auth_header"
    scenario --needs-module --target "ratio>=0.80" authlimit "$limit_name" \
        "$base_a/authlimit204" auth authlimit -- -H "$auth_header"
    # a request of the limited location cannot beat Redis running its
    # script either: the same EVALSHA, sent by redis-benchmark
    capture_limit_cmd
    if (( ${#limit_cmd[@]} >= 2 )); then
        measure_entry --is-reference \
            --note "the EVALSHA of /authlimit204 (same script, key and arguments) sent by redis-benchmark: Redis's own ceiling for the limited location" \
            redis_limit "redis-benchmark EVALSHA of the limit (c=$BENCH_CONNS)" \
            measure_redis_limit
    else
        notes+=("no EVALSHA seen by MONITOR during a request to /authlimit204: no redis-benchmark row for the limit script")
    fi
fi
run_rounds "auth"
if [[ -n $access_token && -n $module_loaded ]]; then
    redis_roundtrips "Redis commands per request: auth-only location (N=$BENCH_RT_REQUESTS)" \
        "$base_a/auth204" 0
    redis_roundtrips "Redis commands per request: auth + limit location (N=$BENCH_RT_REQUESTS)" \
        "$base_a/authlimit204" 1
    redis_calls_under_load "Redis calls under load: auth + limit location (c=$BENCH_CONNS)" \
        "$base_a/authlimit204"
fi

# Login: argon2id in the thread pool bounds it.
argon2_entry
login_name="POST /api/v1/auth/login (module, c=$BENCH_LOGIN_CONNS)"
if account_scenario "$login_name" argon2; then
    scenario --needs-module --conns "$BENCH_LOGIN_CONNS" --post "$login_json" \
        --note "$login_users accounts in turn" \
        login "$login_name" "$base_a/api/v1/auth/login" argon2 login \
        -- --timeout 10s
fi
run_rounds "login"
login_ip_failures "the login rows"
health_load_entry
run_rounds "/health under login load"
login_ip_failures "the /health under login load rows"

# --- Parse Server: the peer (not in this run yet) --------------------------
# bench/users.sh (run.sh --users) runs Parse Server for GET /users/{id}
# against GET /parse/users/:id; its start-up (parse_install, parse_start)
# is the model for this run's rows.
# To be added: start Parse Server (npm parse-server) on the same PostgreSQL
# (database parse, own free port), then measure the same requests on it and
# register them as peers under the keys the module rows above already name
# (queued with the module rows, before their run_rounds):
#
#   scenario --is-peer health parse_health "Parse Server /health" \
#       "$parse_url/health"
#   scenario --is-peer lookup parse_lookup "Parse Server class query" \
#       "$parse_url/..." -- -H "X-Parse-Application-Id: bench"
#
# Rows whose peer key is registered then show "ratio to peer"; until then "-".
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# The table

ratio() {                           # ratio A B -> "0.87"
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

# target_verdict TARGET KIND RPS P99 CEILING-KEY -> "target ...: met" or ""
target_verdict() {
    local target=$1 kind=$2 rps=$3 p99=$4 key=$5 want met

    [[ -n $target && $kind == wrk ]] || return 0
    case $target in
    'ratio>='*)
        want=${target#'ratio>='}
        [[ -n $key && -n ${CEILING[$key]:-} && ${CEILING[$key]} != 0 ]] \
            || return 0
        met=$(awk -v a="$rps" -v b="${CEILING[$key]}" -v w="$want" \
              'BEGIN { print (a / b >= w) ? "met" : "NOT met" }')
        echo "target >= $want of ceiling: $met"
        ;;
    'p99<'*)
        want=${target#'p99<'}
        met=$(awk -v p="$p99" -v w="$want" \
              'BEGIN { print (p < w) ? "met" : "NOT met" }')
        if [[ $met == met ]]; then
            echo "target p99 < $want ms: met, the event loop stays responsive"
        else
            echo "target p99 < $want ms: NOT met"
        fi
        ;;
    esac
}

header=("scenario" "req/s" "p50 ms" "p99 ms" "ratio to ceiling" \
        "ratio to peer" "notes")
table=()                            # cells, 7 per row
for i in "${!row_name[@]}"; do
    ceil_cell=- peer_cell=-
    case ${row_kind[i]} in
    ceiling)
        ceil_cell="(ceiling)" ;;
    reference)
        ceil_cell="(reference)" ;;
    wrk)
        k=${row_ceil[i]}
        if [[ -n $k && -n ${CEILING[$k]:-} && ${CEILING[$k]} != 0 ]]; then
            ceil_cell="$(ratio "${row_rps[i]}" "${CEILING[$k]}") of ${CEILING_LABEL[$k]}"
        fi
        k=${row_peer[i]}
        if [[ -n $k && -n ${PEER[$k]:-} && ${PEER[$k]} != 0 ]]; then
            peer_cell="$(ratio "${row_rps[i]}" "${PEER[$k]}")x ${PEER_LABEL[$k]}"
        fi
        ;;
    esac
    note=${row_note[i]}
    verdict=$(target_verdict "${row_target[i]}" "${row_kind[i]}" \
              "${row_rps[i]}" "${row_p99[i]}" "${row_ceil[i]}")
    [[ -z $verdict ]] || note=$verdict${note:+; $note}
    table+=("${row_name[i]}" "${row_rps[i]}" "${row_p50[i]}" "${row_p99[i]}" \
            "$ceil_cell" "$peer_cell" "${note:--}")
done

ncols=${#header[@]}
width=()
for (( c = 0; c < ncols; c++ )); do width[c]=${#header[c]}; done
for (( j = 0; j < ${#table[@]}; j++ )); do
    c=$(( j % ncols ))
    (( ${#table[j]} <= width[c] )) || width[c]=${#table[j]}
done

print_row() {                       # print_row SEP CELLS...: aligned line
    local sep=$1 c line=
    shift
    local -a cells=("$@")
    for (( c = 0; c < ncols; c++ )); do
        if (( c >= 1 && c <= 3 )); then     # numbers: right-aligned
            line+=$(printf '%*s' "${width[c]}" "${cells[c]}")
        else
            line+=$(printf '%-*s' "${width[c]}" "${cells[c]}")
        fi
        (( c == ncols - 1 )) || line+=$sep
    done
    printf '%s\n' "${line%"${line##*[! ]}"}"
}

nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')
pg_version=$("$PG_BIN/postgres" --version)
redis_version=$(redis-server --version | awk '{ print $3 }' | sed 's/^v=//')
wrk_version=$(wrk --version 2>&1 | awk 'NR == 1 { print $2 }' || true)
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "none")
when=$(date -u +%Y-%m-%dT%H:%M:%SZ)

info=(
    "date: $when, commit $commit"
    "machine: $(nproc) CPU(s), ${cpu_model:-unknown CPU}, Linux $(uname -r); load average $load_at_start before the run, $(cut -d' ' -f1-3 /proc/loadavg) after"
    "versions: $nginx_version, $pg_version, Redis $redis_version, wrk $wrk_version"
    "load: wrk -t1 -c$BENCH_CONNS -d${BENCH_SECONDS}s (after ${BENCH_WARMUP}s warm-up) unless the row names its c=; login rows: wrk --timeout 10s; pgbench -c$BENCH_CONNS -j1 -T$BENCH_SECONDS; redis-benchmark -n 200000 -c$BENCH_CONNS; Redis commands: $BENCH_RT_REQUESTS requests one after the other (curl, one connection)"
    "rounds: $BENCH_ROUNDS per row; the rows of a group (a ceiling and what is compared with it) measured in turn, in reverse order every other round; each row is its median round; 1-minute load average at the start of each group: ${round_loads[*]+$(IFS=';'; echo "${round_loads[*]}" | sed 's/;/, /g')}"
    "nginx: $BENCH_WORKERS worker(s), access_log off; module pool max=8 per worker; plain nginx /health: $ceiling_body_note"
    "PostgreSQL: shared_buffers=256MB, fsync=off, synchronous_commit=off, full_page_writes=off (benchmark settings: no durability)"
    "module: ${module_missing:-loaded}; usermgmt_jwt_key hs256 (64 random bytes); usermgmt_limit_zone benchzone key=user rate=100000000r/s; argon2id m=$argon2_m t=$argon2_t p=$argon2_p in $pool_label"
)

{
    echo
    print_row " | " "${header[@]}"
    sep=()
    for (( c = 0; c < ncols; c++ )); do
        sep+=("$(printf '%*s' "${width[c]}" '' | tr ' ' -)")
    done
    print_row "-+-" "${sep[@]}"
    for (( j = 0; j < ${#table[@]}; j += ncols )); do
        print_row " | " "${table[@]:j:ncols}"
    done
    echo
    printf '%s\n' "${info[@]}"
    (( ${#notes[@]} == 0 )) || printf 'note: %s\n' "${notes[@]}"
}

mkdir -p "$bench_dir/results"
{
    echo "# usermgmt benchmark"
    echo
    md_row() {
        local cell out="|"
        for cell in "$@"; do out+=" ${cell//|/\\|} |"; done
        printf '%s\n' "$out"
    }
    md_row "${header[@]}"
    md_row --- ---: ---: ---: --- --- ---
    for (( j = 0; j < ${#table[@]}; j += ncols )); do
        md_row "${table[@]:j:ncols}"
    done
    echo
    printf -- '- %s\n' "${info[@]}"
    (( ${#notes[@]} == 0 )) || printf -- '- note: %s\n' "${notes[@]}"
} >"$bench_dir/results/latest.md"
say "written: bench/results/latest.md"
