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
# Knobs: BENCH_SECONDS (10), BENCH_CONNS (32), BENCH_WORKERS (1),
#        BENCH_WARMUP (1 s per wrk scenario, 0 = none), BENCH_KEEP_TMP (0),
#        BENCH_LOGIN_CONNS (8), BENCH_HASH_RUNS (20), BENCH_POOL_THREADS
#        (unset: nginx's default pool, 32 threads),
#        PG_BIN (/usr/lib/postgresql/15/bin). See bench/README.md.

set -euo pipefail

usage() {
    sed -n '3,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CONNS=${BENCH_CONNS:-32}
BENCH_WORKERS=${BENCH_WORKERS:-1}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}
BENCH_LOGIN_CONNS=${BENCH_LOGIN_CONNS:-8}
BENCH_HASH_RUNS=${BENCH_HASH_RUNS:-20}
BENCH_POOL_THREADS=${BENCH_POOL_THREADS:-}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

for arg in "$@"; do
    case $arg in
    --quick)   BENCH_SECONDS=3 BENCH_HASH_RUNS=10 ;;
    -h|--help) usage; exit 0 ;;
    *)         echo "run.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

for knob in BENCH_SECONDS BENCH_CONNS BENCH_WORKERS BENCH_WARMUP \
            BENCH_LOGIN_CONNS BENCH_HASH_RUNS; do
    if ! [[ ${!knob} =~ ^[0-9]+$ ]]; then
        echo "run.sh: $knob must be a whole number, got '${!knob}'" >&2
        exit 2
    fi
done
if [[ -n $BENCH_POOL_THREADS ]] \
   && ! [[ $BENCH_POOL_THREADS =~ ^[0-9]+$ && $BENCH_POOL_THREADS -ge 1 ]]; then
    echo "run.sh: BENCH_POOL_THREADS must be a whole number >= 1, got '$BENCH_POOL_THREADS'" >&2
    exit 2
fi
if (( BENCH_SECONDS < 1 || BENCH_CONNS < 1 || BENCH_WORKERS < 1 \
      || BENCH_LOGIN_CONNS < 1 || BENCH_HASH_RUNS < 1 )); then
    echo "run.sh: BENCH_SECONDS, BENCH_CONNS, BENCH_WORKERS, BENCH_LOGIN_CONNS and BENCH_HASH_RUNS must be >= 1" >&2
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

as_pg() {                           # initdb/postgres refuse to run as root
    if (( EUID == 0 )); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Ports come from below the kernel's ephemeral range: a port in that range
# can be taken between the check and the bind by any outgoing connection
# on the machine (a wrk of somebody else's run, a test client).
taken_ports=" "
read -r eph_low eph_high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null \
    || { eph_low=32768 eph_high=60999; }
if (( eph_low > 11024 )); then              # below it (Linux: 32768-60999)
    port_low=$(( eph_low > 30000 ? 20000 : 10000 )) port_high=$(( eph_low - 1 ))
elif (( eph_high < 64535 )); then           # above it
    port_low=$(( eph_high + 1 )) port_high=65535
else                                        # it is everything: take the risk
    port_low=20000 port_high=59999
fi
free_port() {                       # a port nothing listens on, not handed out
    local port i
    for (( i = 0; i < 200; i++ )); do
        port=$(( port_low + RANDOM % (port_high - port_low + 1) ))
        [[ $taken_ports == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            taken_ports+="$port "
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

http_status() {             # http_status URL [BODY-FILE [CURL ARGS...]] -> "200"
    local url=$1 body=${2:-/dev/null}
    shift $(( $# < 2 ? $# : 2 ))
    curl -s -o "$body" -w '%{http_code}' --max-time 10 "$@" "$url" \
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
w_conns=$BENCH_CONNS                # connections of the next run_wrk

# run_wrk URL [WRK ARGS...]: w_conns connections for BENCH_SECONDS after a
# warm-up; sets w_rps w_p50 w_p99 w_note
run_wrk() {
    local url=$1 out
    shift
    wrk_n=$(( wrk_n + 1 ))
    out=$tmp/wrk/$wrk_n.txt

    if (( BENCH_WARMUP > 0 )); then
        wrk -t1 -c"$w_conns" -d"${BENCH_WARMUP}s" "$@" "$url" \
            >/dev/null 2>&1 || true
    fi
    wrk -t1 -c"$w_conns" -d"${BENCH_SECONDS}s" --latency "$@" "$url" \
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

# scenario [--is-ceiling KEY | --is-reference] [--is-peer KEY] [--needs-module]
#          [--conns N] [--post JSON-FILE] [--target TARGET] [--note TEXT]
#          NAME URL [CEILING-KEY [PEER-KEY]] [-- WRK ARGS...]
#
# Probes URL once with curl; a non-2xx answer makes the row "n/a (status N)"
# instead of stopping the run. Otherwise measures it with wrk. WRK ARGS go
# to wrk as they are; their -H headers also go to the probe. --post sends
# the JSON bodies of a file, one a line, in turn as POSTs (wrk_post_script)
# (the first line of the file to the probe); --conns replaces BENCH_CONNS
# for this row; --target: see add_row.
scenario() {
    local as_ceiling='' as_peer='' needs_module='' ceil='' peer_key=''
    local post='' target='' extra_note='' name url status i
    local -a wrk_args=() curl_args=()

    w_conns=$BENCH_CONNS
    while [[ $1 == --* ]]; do
        case $1 in
        --is-ceiling)   as_ceiling=$2; shift 2 ;;
        --is-reference) as_ceiling=-; shift ;;
        --is-peer)      as_peer=$2; shift 2 ;;
        --needs-module) needs_module=1; shift ;;
        --conns)        w_conns=$2; shift 2 ;;
        --post)         post=$2; shift 2 ;;
        --target)       target=$2; shift 2 ;;
        --note)         extra_note=$2; shift 2 ;;
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

    for (( i = 0; i < ${#wrk_args[@]}; i++ )); do
        if [[ ${wrk_args[i]} == -H && -n ${wrk_args[i + 1]+x} ]]; then
            curl_args+=(-H "${wrk_args[i + 1]}")
        fi
    done
    if [[ -n $post ]]; then
        curl_args+=(-H "Content-Type: application/json"
                    --data-binary "$(head -n 1 "$post")")
        wrk_post_script "$post" "$tmp/wrk/post-$(( wrk_n + 1 )).lua"
        wrk_args+=(-s "$tmp/wrk/post-$(( wrk_n + 1 )).lua")
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

    say "$name: wrk -t1 -c$w_conns -d${BENCH_SECONDS}s $url"
    run_wrk "$url" ${wrk_args[@]+"${wrk_args[@]}"}
    if [[ -n $extra_note ]]; then
        w_note=$extra_note${w_note:+; $w_note}
    fi
    if [[ $as_ceiling == - ]]; then
        add_row reference "$name" "$w_rps" "$w_p50" "$w_p99" "" "" "$w_note"
    elif [[ -n $as_ceiling ]]; then
        add_row ceiling "$name" "$w_rps" "$w_p50" "$w_p99" "" "" "$w_note"
        ceiling "$as_ceiling" "$w_rps" "$name"
    else
        add_row wrk "$name" "$w_rps" "$w_p50" "$w_p99" "$ceil" "$peer_key" \
            "$w_note" "$target"
    fi
    [[ -z $as_peer ]] || peer "$as_peer" "$w_rps" "$name"
    w_conns=$BENCH_CONNS
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
        [[ -z $with_module || -z $BENCH_POOL_THREADS ]] \
            || echo "thread_pool bench threads=$BENCH_POOL_THREADS;"
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
EOF
            [[ -z $BENCH_POOL_THREADS ]] \
                || echo "    usermgmt_thread_pool bench;"
            cat <<EOF

    server {
        listen 127.0.0.1:$port_a;
        location = /health  { usermgmt_health; }
        location = /ready   { usermgmt_ready; }
        location /api/v1/   { usermgmt_api; }
        # "return" answers in the rewrite phase, before the access phase
        # where the token is checked: the 204 comes from try_files instead
        location = /auth204 { usermgmt_auth on; try_files /.none =204; }
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
        location = /plain204  { try_files /.none =204; }
        location = /return204 { return 204; }
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
# argon2id: the ceiling of login throughput
#
# A login is one argon2id verification (m=19456 KiB, t=2, p=1, the module's
# default) in nginx's thread pool; the rest is a few round trips. The pool
# has 32 threads ("thread_pool default"; BENCH_POOL_THREADS declares another
# pool), so at most min(nproc, threads) hashes run at once:
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

argon2_m=19456 argon2_t=2 argon2_p=1 pool_threads=${BENCH_POOL_THREADS:-32}
if [[ -n $BENCH_POOL_THREADS ]]; then
    pool_label="thread_pool bench threads=$pool_threads (BENCH_POOL_THREADS)"
else
    pool_label="thread_pool default ($pool_threads threads)"
fi

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

argon2_ceiling() {
    local params="m=$argon2_m t=$argon2_t p=$argon2_p"
    local name="argon2id $params, 1 thread" helper=$tmp/argon2-time
    local i out cli='' cli_mean='-' mean p50 p99 cores rate source

    # the CLI, in fresh processes: its own "0.027 seconds" line per hash
    if command -v argon2 >/dev/null 2>&1; then
        for (( i = 0; i < BENCH_HASH_RUNS; i++ )); do
            out=$(printf '%s' "$bench_password" \
                  | argon2 somesaltsomesalt -id -t "$argon2_t" \
                           -k "$argon2_m" -p "$argon2_p" -l 32) \
                || die "argon2 failed: $out"
            cli+=$(awk '$2 == "seconds" { print $1 * 1000 }' <<<"$out")$'\n'
        done
        read -r cli_mean _ _ < <(printf '%s' "$cli" | ms_stats)
    fi

    # libargon2 in one warm thread
    if cc -O2 -o "$helper" "$bench_dir/argon2-time.c" -largon2 \
            >"$tmp/logs/argon2-time-cc.log" 2>&1; then
        say "argon2: $BENCH_HASH_RUNS verifications, libargon2 $params, 1 thread"
        "$helper" "$argon2_m" "$argon2_t" "$argon2_p" "$BENCH_HASH_RUNS" \
            >"$tmp/logs/argon2-time.txt" 2>&1 \
            || { cat "$tmp/logs/argon2-time.txt" >&2; die "argon2-time failed"; }
        read -r mean p50 p99 < <(awk '{ print $2 }' "$tmp/logs/argon2-time.txt" | ms_stats)
        source="libargon2 in one warm thread (bench/argon2-time.c), mean thread CPU time"
        name+=" (libargon2, $BENCH_HASH_RUNS runs)"
    elif [[ $cli_mean != - ]]; then
        warn "cannot build bench/argon2-time.c (cc, libargon2-dev?): the argon2 CLI's figure is the ceiling"
        notes+=("bench/argon2-time.c did not build: the login ceiling uses the argon2 CLI's cold figure (higher than a pool thread's)")
        read -r mean p50 p99 < <(printf '%s' "$cli" | ms_stats)
        source="argon2 CLI, fresh process per hash, mean CPU time"
        name+=" (argon2 CLI, $BENCH_HASH_RUNS runs)"
    else
        warn "neither bench/argon2-time.c nor the argon2 CLI: login rows have no ceiling"
        add_row na "$name" "n/a (no cc + libargon2-dev, no argon2 CLI)" - - "" "" ""
        return 0
    fi
    [[ $mean != - ]] || die "no argon2 timing"

    cores=$(nproc)
    (( cores <= pool_threads )) || cores=$pool_threads
    rate=$(awk -v c="$cores" -v m="$mean" 'BEGIN { printf "%.0f", c * 1000 / m }')
    add_row ceiling "$name" "$rate" "$p50" "$p99" "" "" \
        "hashes/s = min(nproc $(nproc), $pool_threads pool threads) / $mean ms per hash ($source); p50/p99 = ms per hash; argon2 CLI (fresh process, page faults included): $cli_mean ms"
    ceiling argon2 "$rate" "argon2id ceiling"
}


# ---------------------------------------------------------------------------
# The bench accounts: registered once; the first one logs in once for a
# bearer token.
#
# The login rows cycle through login_users accounts (twice the larger of
# BENCH_CONNS and BENCH_LOGIN_CONNS, at least 16) rather than one:
# um_login_begin counts an attempt as a failure until its password checks
# out (so parallel guesses cannot outrun the lockout), and with one account
# usermgmt_login_max_failures (5) logins in flight lock it, the 401s that
# follow fill the per-address failure counter and every login gets 429.
# With at least twice as many accounts as connections no account has more
# than one login in flight.

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
# argon2id? The login load starts first and ends last.
health_under_login_load() {
    local health_name="/health (module, c=4) while $BENCH_CONNS clients log in"
    local login_name="POST /api/v1/auth/login (module, c=$BENCH_CONNS, during the /health run)"
    local login_out health_out script=$tmp/wrk/post-background.lua

    if account_scenario "$health_name" ""; then :; else
        add_row na "$login_name" "n/a (${account_missing})" - - argon2 login ""
        return 0
    fi
    wrk_n=$(( wrk_n + 1 )); login_out=$tmp/wrk/$wrk_n.txt
    wrk_n=$(( wrk_n + 1 )); health_out=$tmp/wrk/$wrk_n.txt
    wrk_post_script "$login_json" "$script"

    say "$health_name: wrk -t1 -c$BENCH_CONNS -d$(( BENCH_SECONDS + 2 ))s login, after 1 s wrk -t1 -c4 -d${BENCH_SECONDS}s /health"
    wrk -t1 -c"$BENCH_CONNS" -d"$(( BENCH_SECONDS + 2 ))s" --latency \
        --timeout 10s -s "$script" "$base_a/api/v1/auth/login" \
        >"$login_out" 2>&1 &
    load_pid=$!
    sleep 1
    wrk -t1 -c4 -d"${BENCH_SECONDS}s" --latency "$base_a/health" \
        >"$health_out" 2>&1 || { cat "$health_out" >&2; die "wrk failed on /health"; }
    wait "$load_pid" || { load_pid=; cat "$login_out" >&2; die "wrk failed on login"; }
    load_pid=

    read_wrk "$login_out"
    local l_rps=$w_rps l_p50=$w_p50 l_p99=$w_p99 l_note=$w_note
    read_wrk "$health_out"
    add_row wrk "$health_name" "$w_rps" "$w_p50" "$w_p99" "" "" \
        "login load meanwhile: $l_rps logins/s${w_note:+; $w_note}" "p99<20"
    add_row wrk "$login_name" "$l_rps" "$l_p50" "$l_p99" argon2 login \
        "$login_users accounts in turn; $(( BENCH_SECONDS + 2 )) s of load around the /health run${l_note:+; $l_note}"
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

# Authentication at the edge: a location that only checks the bearer token
# (HS256 in-process, one Redis round trip for the deny-list) against the
# same location without the check. Both answer 204 from try_files; plain
# "return 204" is shown for reference.
bench_accounts
scenario --is-ceiling noop "plain nginx 204 (try_files =204)" "$base_b/plain204"
scenario --is-reference "plain nginx return 204" "$base_b/return204"
auth_name="auth-only location (module, Bearer token, 1 Redis round trip)"
if account_scenario "$auth_name" noop; then
    # without a token the location must refuse, or nothing is measured
    status=$(http_status "$base_a/auth204")
    [[ $status == 401 ]] \
        || notes+=("/auth204 without a token answered $status, not 401: the token check did not run")
    scenario --needs-module --target "ratio>=0.90" "$auth_name" \
        "$base_a/auth204" noop auth -- -H "Authorization: Bearer $access_token"
fi

# Login: argon2id in the thread pool bounds it.
argon2_ceiling
login_name="POST /api/v1/auth/login (module, c=$BENCH_LOGIN_CONNS)"
if account_scenario "$login_name" argon2; then
    scenario --needs-module --conns "$BENCH_LOGIN_CONNS" --post "$login_json" \
        --note "$login_users accounts in turn" \
        "$login_name" "$base_a/api/v1/auth/login" argon2 login \
        -- --timeout 10s
fi
health_under_login_load

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
    "load: wrk -t1 -c$BENCH_CONNS -d${BENCH_SECONDS}s (after ${BENCH_WARMUP}s warm-up) unless the row names its c=; login rows: wrk --timeout 10s; pgbench -c$BENCH_CONNS -j1 -T$BENCH_SECONDS; redis-benchmark -n 200000 -c$BENCH_CONNS"
    "nginx: $BENCH_WORKERS worker(s), access_log off; module pool max=8 per worker; plain nginx /health: $ceiling_body_note"
    "PostgreSQL: shared_buffers=256MB, fsync=off, synchronous_commit=off, full_page_writes=off (benchmark settings: no durability)"
    "module: ${module_missing:-loaded}; usermgmt_jwt_key hs256 (64 random bytes); argon2id m=$argon2_m t=$argon2_t p=$argon2_p in $pool_label"
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
