#!/usr/bin/env bash
#
# bench/run.sh - usermgmt benchmarks, as ratios measured within one run.
#
# Starts a throw-away PostgreSQL 15, Redis and nginx (with the usermgmt
# module loaded) in a temporary folder, measures every scenario with wrk,
# measures the ceilings (plain nginx, pgbench, redis-benchmark) on the same
# machine, prints one table and writes it to bench/results/latest.md.
# Everything it starts is stopped again on exit.
#
# Usage: bench/run.sh [--quick]        (or: ./build.sh bench)
# Knobs: BENCH_SECONDS (10), BENCH_CONNS (32), BENCH_WORKERS (1),
#        BENCH_WARMUP (1 s per wrk scenario, 0 = none), BENCH_KEEP_TMP (0),
#        PG_BIN (/usr/lib/postgresql/15/bin). See bench/README.md.

set -euo pipefail

usage() {
    sed -n '3,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CONNS=${BENCH_CONNS:-32}
BENCH_WORKERS=${BENCH_WORKERS:-1}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

for arg in "$@"; do
    case $arg in
    --quick)   BENCH_SECONDS=3 ;;
    -h|--help) usage; exit 0 ;;
    *)         echo "run.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

for knob in BENCH_SECONDS BENCH_CONNS BENCH_WORKERS BENCH_WARMUP; do
    if ! [[ ${!knob} =~ ^[0-9]+$ ]]; then
        echo "run.sh: $knob must be a whole number, got '${!knob}'" >&2
        exit 2
    fi
done
if (( BENCH_SECONDS < 1 || BENCH_CONNS < 1 || BENCH_WORKERS < 1 )); then
    echo "run.sh: BENCH_SECONDS, BENCH_CONNS and BENCH_WORKERS must be >= 1" >&2
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
pg_data=
notes=()                            # remarks printed under the table

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

as_pg() {                           # initdb/postgres refuse to run as root
    if (( EUID == 0 )); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

taken_ports=" "
free_port() {                       # a port nothing listens on, not handed out
    local port i
    for (( i = 0; i < 200; i++ )); do
        port=$(( 20000 + RANDOM % 40000 ))
        [[ $taken_ports == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            taken_ports+="$port "
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

http_status() {                     # http_status URL [BODY-FILE] -> "200"
    curl -s -o "${2:-/dev/null}" -w '%{http_code}' --max-time 5 "$1" \
        || true                     # "000" when nothing answered
}

wait_for() {                        # wait_for SECONDS WHAT COMMAND...
    local secs=$1 what=$2 i
    shift 2
    for (( i = 0; i < secs * 10; i++ )); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what did not come up within $secs s"
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
row_note=() row_kind=()
declare -A CEILING=() CEILING_LABEL=() PEER=() PEER_LABEL=()

add_row() {         # add_row KIND NAME RPS P50 P99 CEILING-KEY PEER-KEY NOTE
    row_kind+=("$1") row_name+=("$2") row_rps+=("$3") row_p50+=("$4")
    row_p99+=("$5") row_ceil+=("$6") row_peer+=("$7") row_note+=("$8")
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
run_wrk() {         # run_wrk URL [WRK ARGS...]: sets w_rps w_p50 w_p99 w_note
    local url=$1 out
    shift
    wrk_n=$(( wrk_n + 1 ))
    out=$tmp/wrk/$wrk_n.txt

    if (( BENCH_WARMUP > 0 )); then
        wrk -t1 -c"$BENCH_CONNS" -d"${BENCH_WARMUP}s" "$@" "$url" \
            >/dev/null 2>&1 || true
    fi
    wrk -t1 -c"$BENCH_CONNS" -d"${BENCH_SECONDS}s" --latency "$@" "$url" \
        >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed on $url"; }

    w_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    w_p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    w_p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    w_note=$(awk '
        /Non-2xx or 3xx responses:/ { printf "%snon-2xx/3xx: %s", s, $NF; s = "; " }
        /Socket errors:/ {
            sub(/^ *Socket errors: */, ""); gsub(/,/, "")
            if ($2 + $4 + $6 + $8 > 0) { printf "%ssocket errors: %s", s, $0; s = "; " }
        }' "$out")
    [[ -n $w_rps ]] || { cat "$out" >&2; die "could not read wrk output"; }
}

# scenario [--is-ceiling KEY] [--is-peer KEY] [--needs-module]
#          NAME URL [CEILING-KEY [PEER-KEY]] [-- WRK ARGS...]
#
# Probes URL once with curl; a non-2xx answer makes the row "n/a (status N)"
# instead of stopping the run. Otherwise measures it with wrk. WRK ARGS go
# to wrk as they are (e.g. -s script.lua for a POST body).
scenario() {
    local as_ceiling='' as_peer='' needs_module='' ceil='' peer_key=''
    local name url status
    local -a wrk_args=()

    while [[ $1 == --* ]]; do
        case $1 in
        --is-ceiling)   as_ceiling=$2; shift 2 ;;
        --is-peer)      as_peer=$2; shift 2 ;;
        --needs-module) needs_module=1; shift ;;
        *)              die "scenario: unknown option $1" ;;
        esac
    done
    name=$1 url=$2
    shift 2
    if (( $# > 0 )) && [[ $1 != -- ]]; then ceil=$1; shift; fi
    if (( $# > 0 )) && [[ $1 != -- ]]; then peer_key=$1; shift; fi
    if (( $# > 0 )) && [[ $1 == -- ]]; then shift; wrk_args=("$@"); fi

    if [[ -n $needs_module && -z $module_loaded ]]; then
        say "$name: skipped ($module_missing)"
        add_row na "$name" "n/a ($module_missing)" - - "$ceil" "$peer_key" ""
        return 0
    fi

    # the probe's answer stays in the temporary folder (BENCH_KEEP_TMP=1)
    probe_n=$(( probe_n + 1 ))
    status=$(http_status "$url" "$tmp/wrk/probe-$probe_n.body")
    if [[ $status != 2?? ]]; then
        [[ $status == 000 ]] && status="no answer" || status="status $status"
        say "$name: n/a ($status)"
        add_row na "$name" "n/a ($status)" - - "$ceil" "$peer_key" ""
        return 0
    fi

    say "$name: wrk -t1 -c$BENCH_CONNS -d${BENCH_SECONDS}s $url"
    run_wrk "$url" ${wrk_args[@]+"${wrk_args[@]}"}
    if [[ -n $as_ceiling ]]; then
        add_row ceiling "$name" "$w_rps" "$w_p50" "$w_p99" "" "" "$w_note"
        ceiling "$as_ceiling" "$w_rps" "$name"
    else
        add_row wrk "$name" "$w_rps" "$w_p50" "$w_p99" "$ceil" "$peer_key" \
            "$w_note"
    fi
    [[ -z $as_peer ]] || peer "$as_peer" "$w_rps" "$name"
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
psql_admin() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres "$@"
}
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

    server {
        listen 127.0.0.1:$port_a;
        location = /health { usermgmt_health; }
        location = /ready  { usermgmt_ready; }
        location /api/v1/  { usermgmt_api; }
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
    }
}
EOF
    } >"$tmp/nginx/nginx.conf"
}

nginx_cmd() {
    nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" "$@"
}

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


# ---------------------------------------------------------------------------
# Ceilings that are not HTTP: pgbench and redis-benchmark

pgbench_ceiling() {
    local tps avg p50 p99 out=$tmp/pgbench/run.txt

    say "pgbench: -i -s 1 bench"
    "$PG_BIN/pgbench" -U postgres -i -s 1 -q bench >"$tmp/logs/pgbench-init.log" 2>&1 \
        || { cat "$tmp/logs/pgbench-init.log" >&2; die "pgbench -i failed"; }
    say "pgbench: -S -M prepared -c $BENCH_CONNS -j 1 -T $BENCH_SECONDS"
    "$PG_BIN/pgbench" -U postgres -S -M prepared -c "$BENCH_CONNS" -j 1 \
        -T "$BENCH_SECONDS" --log --log-prefix="$tmp/pgbench/txn" bench \
        >"$out" 2>&1 || { cat "$out" >&2; die "pgbench failed"; }

    tps=$(awk '/^tps = / { printf "%.0f", $3; exit }' "$out")
    avg=$(awk '/^latency average = / { printf "%.3f", $4 }' "$out")
    # per-transaction log: client txn latency_us script epoch epoch_us
    read -r p50 p99 < <(cat "$tmp"/pgbench/txn.* | awk '{ print $3 }' \
        | sort -n | awk '{ v[NR] = $1 }
            END {
                if (NR == 0) { print "- -"; exit }
                i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
                i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
                printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
            }')
    add_row ceiling "pgbench -S -M prepared (c=$BENCH_CONNS)" "$tps" "$p50" \
        "$p99" "" "" "avg ${avg} ms; PK lookup, 1 query/txn"
    ceiling pg "$tps" "pgbench -S"
}

redis_ceiling() {
    local out=$tmp/logs/redis-benchmark.csv test rps p50 p99

    say "redis-benchmark: -t ping -n 200000 -c $BENCH_CONNS"
    redis-benchmark -h 127.0.0.1 -p "$redis_port" -t ping -n 200000 \
        -c "$BENCH_CONNS" --csv >"$out" 2>&1 \
        || { cat "$out" >&2; die "redis-benchmark failed"; }
    # "test","rps","avg","min","p50","p95","p99","max"
    while IFS=, read -r test rps _ _ p50 _ p99 _; do
        test=${test//\"/} rps=${rps//\"/} p50=${p50//\"/} p99=${p99//\"/}
        [[ $test == PING_* ]] || continue
        rps=$(printf '%.0f' "$rps")
        # hiredis speaks RESP multibulk: that is the module's round trip;
        # the inline protocol is shown for reference.
        if [[ $test == PING_MBULK ]]; then
            add_row ceiling "redis-benchmark $test (c=$BENCH_CONNS)" "$rps" \
                "$p50" "$p99" "" "" ""
            ceiling redis "$rps" "redis PING_MBULK"
        else
            add_row reference "redis-benchmark $test (c=$BENCH_CONNS)" \
                "$rps" "$p50" "$p99" "" "" ""
        fi
    done <"$out"
}


# ---------------------------------------------------------------------------
# The scenarios. To add one: measure its ceiling (or reuse one) and call
# scenario NAME URL CEILING-KEY [PEER-KEY] [-- WRK ARGS...].

# Pure edge: the ceiling is nginx answering the same bytes from config.
scenario --is-ceiling edge "plain nginx return 200" "$base_b/health"
scenario --needs-module "/health (module)" "$base_a/health" edge health

# One PostgreSQL round trip.
pgbench_ceiling
scenario --needs-module \
    "GET /api/v1/organizations/lookup?slug=default (module, one PG query)" \
    "$base_a/api/v1/organizations/lookup?slug=default" pg lookup

# PostgreSQL + Redis round trips: neither can beat the slower of the two.
redis_ceiling
if [[ -n ${CEILING[pg]:-} && -n ${CEILING[redis]:-} ]]; then
    if (( CEILING[pg] < CEILING[redis] )); then
        ceiling pg_redis "${CEILING[pg]}" "min(pgbench, redis)"
    else
        ceiling pg_redis "${CEILING[redis]}" "min(pgbench, redis)"
    fi
fi
scenario --needs-module "/ready (module, PG + Redis round trips)" \
    "$base_a/ready" pg_redis ready

# --- Parse Server: the peer (not in this run yet) --------------------------
# To be added: start Parse Server (npm parse-server) on the same PostgreSQL
# (database parse, own free port), then measure the same requests on it and
# register them as peers under the keys the module rows above already name:
#
#   scenario --is-peer health "Parse Server /health" "$parse_url/health"
#   scenario --is-peer lookup "Parse Server class query" "$parse_url/..." \
#       -- -H "X-Parse-Application-Id: bench"
#
# Rows whose peer key is registered then show "ratio to peer"; until then "-".
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# The table

ratio() {                           # ratio A B -> "0.87"
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
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
    table+=("${row_name[i]}" "${row_rps[i]}" "${row_p50[i]}" "${row_p99[i]}" \
            "$ceil_cell" "$peer_cell" "${row_note[i]:--}")
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
    "load: wrk -t1 -c$BENCH_CONNS -d${BENCH_SECONDS}s (after ${BENCH_WARMUP}s warm-up); pgbench -c$BENCH_CONNS -j1 -T$BENCH_SECONDS; redis-benchmark -n 200000 -c$BENCH_CONNS"
    "nginx: $BENCH_WORKERS worker(s), access_log off; module pool max=8 per worker; plain nginx /health: $ceiling_body_note"
    "PostgreSQL: shared_buffers=256MB, fsync=off, synchronous_commit=off, full_page_writes=off (benchmark settings: no durability)"
    "module: ${module_missing:-loaded}"
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
