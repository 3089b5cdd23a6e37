#!/usr/bin/env bash
#
# bench/users.sh - usermgmt at a million users (issue 4), as ratios measured
# within one run.
#
# Starts a throw-away PostgreSQL 15, Redis and nginx (with the usermgmt
# module) in a temporary folder, loads bench/seed.sh's 1,000,000 users and
# 10,000,000 audit rows, starts Parse Server (npm parse-server, the peer) on
# the same PostgreSQL, and measures GET /users/{id} against pgbench and
# Parse Server, /users/search and /users?search= at 8 clients, and the audit
# export of one tenant (about 1,000,000 rows) with the worker's memory.
# Prints one table and writes it to bench/results/users.md. Everything it
# starts is stopped again on exit.
#
# Usage: bench/users.sh [--quick]        (or: bench/run.sh --users)
# Knobs: BENCH_SECONDS (10), BENCH_CONNS (32), BENCH_SEARCH_CONNS (8),
#        BENCH_ROUNDS (3), BENCH_WARMUP (1), BENCH_WORKERS (1),
#        BENCH_EXPORT_ROUNDS (1), BENCH_PARSE (1), BENCH_PARSE_USERS (10000),
#        BENCH_PARSE_VERSION (9.10.0), BENCH_NPM_DIR (bench/.parse-server),
#        BENCH_KEEP_TMP (0), SEED_USERS, SEED_AUDIT (see seed.sh),
#        PG_BIN (/usr/lib/postgresql/15/bin). See bench/README.md.

set -euo pipefail

usage() {
    sed -n '3,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$bench_dir")
module_so=$root/build/ngx_http_usermgmt_module.so

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CONNS=${BENCH_CONNS:-32}
BENCH_SEARCH_CONNS=${BENCH_SEARCH_CONNS:-8}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_WORKERS=${BENCH_WORKERS:-1}
BENCH_EXPORT_ROUNDS=${BENCH_EXPORT_ROUNDS:-1}
BENCH_POOL_THREADS=${BENCH_POOL_THREADS:-$(nproc)}
BENCH_PARSE=${BENCH_PARSE:-1}
BENCH_PARSE_USERS=${BENCH_PARSE_USERS:-10000}
BENCH_PARSE_VERSION=${BENCH_PARSE_VERSION:-9.10.0}
BENCH_NPM_DIR=${BENCH_NPM_DIR:-$bench_dir/.parse-server}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export SEED_USERS=${SEED_USERS:-1000000}
export SEED_AUDIT=${SEED_AUDIT:-10000000}
export SEED_ORGS=${SEED_ORGS:-10}
export SEED_PASSWORD=${SEED_PASSWORD:-bench-Passphrase-4711}

for arg in "$@"; do
    case $arg in
    --quick)   BENCH_SECONDS=3 ;;
    -h|--help) usage; exit 0 ;;
    *)         echo "users.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

for knob in BENCH_SECONDS BENCH_CONNS BENCH_SEARCH_CONNS BENCH_ROUNDS \
            BENCH_WARMUP BENCH_WORKERS BENCH_EXPORT_ROUNDS BENCH_POOL_THREADS \
            BENCH_PARSE_USERS SEED_USERS SEED_AUDIT; do
    if ! [[ ${!knob} =~ ^[0-9]+$ ]]; then
        echo "users.sh: $knob must be a whole number, got '${!knob}'" >&2
        exit 2
    fi
done
if (( BENCH_SECONDS < 1 || BENCH_CONNS < 1 || BENCH_SEARCH_CONNS < 1 \
      || BENCH_ROUNDS < 1 || BENCH_WORKERS < 1 || BENCH_EXPORT_ROUNDS < 1 \
      || BENCH_POOL_THREADS < 1 || BENCH_PARSE_USERS < 1 || SEED_USERS < 1 )); then
    echo "users.sh: BENCH_SECONDS, BENCH_CONNS, BENCH_SEARCH_CONNS, BENCH_ROUNDS, BENCH_WORKERS, BENCH_EXPORT_ROUNDS, BENCH_POOL_THREADS, BENCH_PARSE_USERS and SEED_USERS must be >= 1" >&2
    exit 2
fi

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

say()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'users.sh: warning: %s\n' "$*" >&2; }
die()  { printf 'users.sh: %s\n' "$*" >&2; exit 1; }

for tool in wrk nginx curl redis-server redis-cli perl \
            "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/psql" "$PG_BIN/pgbench"
do
    command -v "$tool" >/dev/null 2>&1 \
        || die "missing $tool (Debian: wrk nginx-core curl redis-server postgresql-15)"
done
[[ -f $module_so ]] || die "the module is not built: ./build.sh build"
[[ -x $root/build.sh ]] || die "no build.sh: cannot migrate the database"


# ---------------------------------------------------------------------------
# Temporary folder and clean-up

tmp=$(mktemp -d "${TMPDIR:-/tmp}/usermgmt-users-bench.XXXXXX")
chmod 755 "$tmp"                    # postgres and nginx workers traverse it
mkdir -p "$tmp/logs" "$tmp/nginx/logs" "$tmp/redis" "$tmp/wrk" \
         "$tmp/pgbench" "$tmp/parse"

nginx_pid= redis_pid= parse_pid= sampler_pid= pg_data=
notes=()                            # remarks printed under the table
if awk -v l="${load_at_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l >= n) }'; then
    notes+=("the machine was busy: load average ${load_at_start%% *} at the start with $(nproc) CPU(s); rows measured at different moments are not comparable")
fi

stop_child() {                      # stop_child PID NAME: TERM, wait, KILL
    local pid=$1 name=$2 i

    kill -TERM "$pid" 2>/dev/null || return 0
    for (( i = 0; i < 100; i++ )); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name ($pid) did not stop in 10 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? f
    set +e
    trap - INT TERM

    [[ -n $sampler_pid ]] && stop_child "$sampler_pid" "RSS sampler"
    [[ -n $parse_pid ]] && stop_child "$parse_pid" "Parse Server"
    [[ -n $nginx_pid ]] && stop_child "$nginx_pid" nginx
    [[ -n $redis_pid ]] && stop_child "$redis_pid" redis-server
    if [[ -n $pg_data ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -m fast -w -t 60 stop \
            >/dev/null 2>&1 \
        || as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -m immediate -w stop \
            >/dev/null 2>&1
    fi

    if (( rc != 0 )); then
        for f in "$tmp/pg/postgres.log" "$tmp/logs/redis.log" \
                 "$tmp/logs/nginx.log" "$tmp/nginx/logs/error.log" \
                 "$tmp/logs/parse.log"; do
            [[ -s $f ]] || continue
            printf -- '--- last lines of %s\n' "${f#"$tmp"/}" >&2
            tail -n 15 "$f" >&2
        done
    fi
    if [[ $BENCH_KEEP_TMP == 1 ]]; then
        printf 'users.sh: kept %s\n' "$tmp" >&2
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

now_ns() { date +%s%N; }
secs_since() {                      # secs_since NS -> "12.3"
    awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'
}

to_ms() {                           # wrk duration "296.00us" -> "0.296"
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000
        else if (u == "s") n *= 1000
        else if (u == "m") n *= 60000
        printf "%.3f", n
    }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

commas() { printf '%s' "$1" | sed -E ':a;s/([0-9])([0-9]{3})($|,)/\1,\2\3/;ta'; }

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1048576 }'; }

join_by() {                         # join_by SEP WORDS...
    local sep=$1 out= w
    shift
    for w in "$@"; do out+="${out:+$sep}$w"; done
    printf '%s' "$out"
}

group_loads=()                      # "group: 1-minute load" per group
group_load() { group_loads+=("$1: $(cut -d' ' -f1 /proc/loadavg)"); }


# ---------------------------------------------------------------------------
# Rows: the table is printed at the end; ratios are computed then.
#
# add_row KIND NAME RPS P50 P99 CEILING-KEY PEER-KEY NOTE [TARGET]
# KIND: ceiling, reference, peer, row, na. TARGET: "p99<25" (ms).

row_kind=() row_name=() row_rps=() row_p50=() row_p99=() row_ceil=()
row_peer=() row_note=() row_target=()
declare -A CEILING=() CEILING_LABEL=() PEER=() PEER_LABEL=()
add_row() {
    row_kind+=("$1") row_name+=("$2") row_rps+=("$3") row_p50+=("$4")
    row_p99+=("$5") row_ceil+=("$6") row_peer+=("$7") row_note+=("$8")
    row_target+=("${9:-}")
}


# ---------------------------------------------------------------------------
# wrk

wrk_n=0

# paths_script PATHS-FILE SCRIPT: a wrk Lua script that requests the paths
# of the file (one a line) in turn
paths_script() {
    local line
    ! grep -q ']==]' "$1" || die "paths_script: $1 holds ]==]"
    {
        echo 'local paths = {'
        while IFS= read -r line; do
            [[ -z $line ]] || printf '    [==[%s]==],\n' "$line"
        done <"$1"
        cat <<'EOF'
}
local i = 0
function request()
    i = i % #paths + 1
    return wrk.format(nil, paths[i])
end
EOF
    } >"$2"
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
        }' "$out")
    [[ -n $w_rps ]] || { cat "$out" >&2; die "could not read wrk output"; }
}

# run_wrk CONNS URL WRK-ARGS...: warm-up, then BENCH_SECONDS measured
run_wrk() {
    local conns=$1 url=$2 out
    shift 2
    wrk_n=$(( wrk_n + 1 ))
    out=$tmp/wrk/$wrk_n.txt
    if (( BENCH_WARMUP > 0 )); then
        wrk -t1 -c"$conns" -d"${BENCH_WARMUP}s" "$@" "$url" >/dev/null 2>&1 || true
    fi
    wrk -t1 -c"$conns" -d"${BENCH_SECONDS}s" --latency "$@" "$url" \
        >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed on $url"; }
    read_wrk "$out"
}


# ---------------------------------------------------------------------------
# Rounds (as run.sh): the entries of a group are measured in turn,
# BENCH_ROUNDS times, in reverse order every other round; each row reports
# its median round (by req/s, or by p99 for the latency rows).
#
# entry ID KIND NAME FUNCTION CEILING-KEY PEER-KEY MEDIAN-BY TARGET NOTE
# FUNCTION measures once and sets w_rps w_p50 w_p99 w_note.

declare -A E_kind=() E_name=() E_fn=() E_ceil=() E_peer=() E_by=()
declare -A E_target=() E_note=() R_rps=() R_p50=() R_p99=() R_note=()
queue=()
entry() {
    E_kind[$1]=$2 E_name[$1]=$3 E_fn[$1]=$4 E_ceil[$1]=$5 E_peer[$1]=$6
    E_by[$1]=$7 E_target[$1]=$8 E_note[$1]=$9
    queue+=("$1")
}

run_rounds() {
    local group=$1 round i id n=${#queue[@]} picked values note rps
    local -a order

    (( n > 0 )) || return 0
    group_load "$group"
    for (( round = 1; round <= BENCH_ROUNDS; round++ )); do
        order=()
        for (( i = 0; i < n; i++ )); do
            if (( round % 2 )); then order+=("${queue[i]}")
            else order+=("${queue[n - 1 - i]}"); fi
        done
        for id in "${order[@]}"; do
            say "${E_name[$id]} (round $round/$BENCH_ROUNDS)"
            "${E_fn[$id]}"
            R_rps[$id,$round]=$w_rps R_p50[$id,$round]=$w_p50
            R_p99[$id,$round]=$w_p99 R_note[$id,$round]=$w_note
        done
    done
    for id in "${queue[@]}"; do
        picked=$(for (( r = 1; r <= BENCH_ROUNDS; r++ )); do
                     if [[ ${E_by[$id]} == p99 ]]; then echo "${R_p99[$id,$r]} $r"
                     else echo "${R_rps[$id,$r]} $r"; fi
                 done | sort -g | awk -v n="$BENCH_ROUNDS" \
                     'NR == int((n + 1) / 2) { print $2 }')
        values=
        for (( r = 1; r <= BENCH_ROUNDS; r++ )); do
            if [[ ${E_by[$id]} == p99 ]]; then values+="${values:+ / }${R_p99[$id,$r]}"
            else values+="${values:+ / }${R_rps[$id,$r]}"; fi
        done
        note=
        if (( BENCH_ROUNDS > 1 )); then
            if [[ ${E_by[$id]} == p99 ]]; then
                note="median of $BENCH_ROUNDS rounds by p99 (ms: $values)"
            else
                note="median of $BENCH_ROUNDS rounds (req/s: $values)"
            fi
        fi
        [[ -z ${E_note[$id]} ]] || note=${E_note[$id]}${note:+; $note}
        [[ -z ${R_note[$id,$picked]} ]] || note+="${note:+; }${R_note[$id,$picked]}"
        rps=${R_rps[$id,$picked]}
        add_row "${E_kind[$id]}" "${E_name[$id]}" "$rps" \
            "${R_p50[$id,$picked]}" "${R_p99[$id,$picked]}" \
            "${E_ceil[$id]}" "${E_peer[$id]}" "$note" "${E_target[$id]}"
        case ${E_kind[$id]} in
        ceiling) CEILING[$id]=$rps CEILING_LABEL[$id]=${E_name[$id]%% (*} ;;
        peer)    PEER[$id]=$rps PEER_LABEL[$id]=${E_name[$id]%% (*} ;;
        esac
    done
    queue=()
}


# ---------------------------------------------------------------------------
# PostgreSQL 15: own cluster, trust auth, 127.0.0.1 only

pg_port=$(free_port)
pg_data=$tmp/pg/data
mkdir -p "$tmp/pg"
(( EUID != 0 )) || chown postgres: "$tmp/pg"
pg_max_conn=$(( BENCH_CONNS + 8 * BENCH_WORKERS + 60 ))
(( pg_max_conn >= 100 )) || pg_max_conn=100

say "PostgreSQL: initdb, port $pg_port (fsync=off: durability is off, for benchmarking only)"
as_pg "$PG_BIN/initdb" -D "$pg_data" -U postgres -A trust -E UTF8 \
    --no-instructions >"$tmp/logs/initdb.log" 2>&1 \
    || { cat "$tmp/logs/initdb.log" >&2; die "initdb failed"; }
cat >>"$pg_data/postgresql.conf" <<EOF

# bench/users.sh: benchmarking settings, not for production
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$tmp/pg'
max_connections = $pg_max_conn
shared_buffers = 1GB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 8GB
checkpoint_timeout = 30min
autovacuum = off
EOF
as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -l "$tmp/pg/postgres.log" -w -t 60 \
    start >"$tmp/logs/pg_ctl.log" 2>&1 \
    || { cat "$tmp/pg/postgres.log" >&2; die "PostgreSQL did not start"; }

export PGHOST=127.0.0.1 PGPORT=$pg_port
psql_um() {                         # as the module's role, on its database
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -U usermgmt -d usermgmt "$@"
}
# seed.sh writes its rows as a replica (no triggers), which the role must
# be allowed to choose
psql_admin -c "CREATE ROLE usermgmt LOGIN" \
           -c "CREATE DATABASE usermgmt OWNER usermgmt" \
           -c "CREATE DATABASE bench" \
           -c "GRANT SET ON PARAMETER session_replication_role TO usermgmt"

say "migrations: build.sh migrate"
PGUSER=usermgmt PGDATABASE=usermgmt "$root/build.sh" migrate \
    >"$tmp/logs/migrate.log" 2>&1 \
    || { tail -n 15 "$tmp/logs/migrate.log" >&2; die "build.sh migrate failed"; }
say "bootstrap: build.sh bootstrap"
PGUSER=usermgmt PGDATABASE=usermgmt \
    USERMGMT_ADMIN_PASSWORD=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n') \
    "$root/build.sh" bootstrap >"$tmp/logs/bootstrap.log" 2>&1 \
    || { tail -n 15 "$tmp/logs/bootstrap.log" >&2; die "build.sh bootstrap failed"; }


# ---------------------------------------------------------------------------
# The seed (timed): bench/seed.sh, its own figures from its log

say "seed: bench/seed.sh, $SEED_USERS users and $SEED_AUDIT audit rows (minutes)"
group_load "seed"
seed_t0=$(now_ns)
PGUSER=usermgmt PGDATABASE=usermgmt "$bench_dir/seed.sh" 2>&1 \
    | tee "$tmp/logs/seed.log" >&2 \
    || die "bench/seed.sh failed"
seed_secs=$(secs_since "$seed_t0")
# "==> users 1..1000000 (81.2 s)", "==> index users_fts_idx (12.3 s)", ...
seed_parts=$(awk '
    function secs(l) { sub(/^.*\(/, "", l); sub(/ s\).*$/, "", l); return l }
    /^==> users [0-9]/       { u = secs($0) }
    /^==> audit rows [0-9]/  { a = secs($0) }
    /^==> index /            { i += secs($0); ni++ }
    /^==> vacuum analyze \(/ { v = secs($0) }
    END { printf "users %s s, audit rows %s s, %d secondary indexes rebuilt %.1f s, vacuum analyze %s s", u, a, ni, i, v }' \
    "$tmp/logs/seed.log")
seed_sizes=$(tail -n 1 "$tmp/logs/seed.log")
seed_rows=$(( SEED_USERS + SEED_AUDIT ))
add_row reference "bench/seed.sh: $(commas "$SEED_USERS") users + $(commas "$SEED_AUDIT") audit rows (rows/s)" \
    "$(awk -v n="$seed_rows" -v s="$seed_secs" 'BEGIN { printf "%.0f", n / s }')" - - "" "" \
    "seed time $seed_secs s: $seed_parts; $seed_sizes; $SEED_ORGS organizations"

# The seeded tenant: organization seed-00, its first admin signs in.
tenant=$(psql_um -At -c "SELECT md5('seed-org-0')::uuid")
admin_email=$(psql_um -At -c "
    SELECT email FROM users
     WHERE organization_id = '$tenant' AND user_type = 'admin'
       AND deleted_at IS NULL AND is_active
     ORDER BY email LIMIT 1")
[[ -n $admin_email ]] || die "no admin user in the seeded organization seed-00"
tenant_users=$(psql_um -At -c "SELECT count(*) FROM users
                               WHERE organization_id = '$tenant' AND deleted_at IS NULL")


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
# nginx with the module (one server; run.sh has the edge ceilings)
#
# All three clients of PostgreSQL (the module, pgbench and Parse Server)
# reach it through its unix socket, as a server on the same host is best
# reached. The access token carries the caller's roles and permissions
# (about 1.1 KiB here): with nginx's default 1 KiB first header buffer
# every request would be read in two system calls, so the buffer is 4 KiB,
# as conf.d/usermgmt.conf has it.

port_a=$(free_port)
base_a=http://127.0.0.1:$port_a
jwt_key=$tmp/nginx/jwt-hs256.key
(umask 077; head -c 64 /dev/urandom >"$jwt_key")

cat >"$tmp/nginx/nginx.conf" <<EOF
load_module $module_so;
thread_pool usermgmt threads=$BENCH_POOL_THREADS max_queue=4096;
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
    client_header_buffer_size 4k;

    usermgmt_postgres "host=$tmp/pg port=$pg_port dbname=usermgmt user=usermgmt" max=8 timeout=5s;
    usermgmt_redis 127.0.0.1:$redis_port timeout=50ms;
    usermgmt_jwt_key hs256 $jwt_key kid=bench;
    usermgmt_thread_pool usermgmt;
    # one token serves the whole run
    usermgmt_access_token_ttl 2h;

    server {
        listen 127.0.0.1:$port_a;
        location = /health { usermgmt_health; }
        location /api/v1/   { usermgmt_api; }
    }
}
EOF
nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -t >"$tmp/logs/nginx-t.log" 2>&1 \
    || { cat "$tmp/logs/nginx-t.log" >&2; die "nginx -t failed"; }
say "nginx: $BENCH_WORKERS worker(s), port $port_a"
nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" >"$tmp/logs/nginx.log" 2>&1 &
nginx_pid=$!
wait_for 20 "nginx" curl -sf -o /dev/null "$base_a/health"
# the workers subscribe to the revocation channel and copy the deny-list
for (( i = 0; i < 100; i++ )); do
    n=$(redis-cli -h 127.0.0.1 -p "$redis_port" PUBSUB NUMSUB usermgmt:revoked | sed -n 2p)
    (( ${n:-0} >= BENCH_WORKERS )) && break
    sleep 0.1
done
sleep 2
worker_pids() { pgrep -P "$nginx_pid" | sort -n; }
workers_at_start=$(worker_pids | tr '\n' ' ')

say "login: $admin_email (organization admin of seed-00)"
status=$(curl -s -o "$tmp/wrk/login.out" -w '%{http_code}' --max-time 30 \
         -H 'Content-Type: application/json' \
         --data-binary "{\"email\":\"$admin_email\",\"password\":\"$SEED_PASSWORD\"}" \
         "$base_a/api/v1/auth/login" || true)
[[ $status == 200 ]] \
    || die "login of $admin_email answered $status: $(head -c 300 "$tmp/wrk/login.out")"
access_token=$(perl -MJSON::PP -0777 -ne '
    my $t = eval { decode_json($_)->{data}{access_token} };
    print $t if defined $t && !ref $t' "$tmp/wrk/login.out")
[[ -n $access_token ]] || die "no access_token in the login answer"
auth_header="Authorization: Bearer $access_token"

# 1000 users of the tenant, in random order
psql_um -At -c "SELECT id FROM users
                 WHERE organization_id = '$tenant' AND deleted_at IS NULL
                 ORDER BY random() LIMIT 1000" >"$tmp/wrk/user-ids.txt"
sed 's|^|/api/v1/users/|' "$tmp/wrk/user-ids.txt" >"$tmp/wrk/user-paths.txt"
paths_script "$tmp/wrk/user-paths.txt" "$tmp/wrk/user-paths.lua"


# ---------------------------------------------------------------------------
# Parse Server: the peer, on the same PostgreSQL (database "parse")
#
# npm parse-server (BENCH_PARSE_VERSION) and express, installed once into
# BENCH_NPM_DIR (git-ignored) and reused. One node process (as nginx runs
# one worker), its pg pool at 8 connections (the module's max=8), logging
# errors only. Its _User rows: one made through its REST API (which creates
# the class, with firstName, lastName and department), then
# BENCH_PARSE_USERS - 1 more inserted into its table with the same password
# hash and public read (_rperm '*'), so a user's session may read them.

parse_na=                           # the reason when Parse Server cannot run
parse_port=
parse_master=bench-master-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
parse_version=

parse_install() {
    local want=$BENCH_PARSE_VERSION have=

    command -v node >/dev/null 2>&1 || { parse_na="node is missing"; return 1; }
    command -v npm >/dev/null 2>&1 || { parse_na="npm is missing"; return 1; }
    if [[ -f $BENCH_NPM_DIR/node_modules/parse-server/package.json ]]; then
        have=$(node -p "require('$BENCH_NPM_DIR/node_modules/parse-server/package.json').version" 2>/dev/null || true)
    fi
    if [[ $have != "$want" ]]; then
        say "Parse Server: npm install parse-server@$want into ${BENCH_NPM_DIR#"$root"/}"
        mkdir -p "$BENCH_NPM_DIR"
        printf '{ "private": true, "description": "bench/users.sh: Parse Server, the peer (not in git)" }\n' \
            >"$BENCH_NPM_DIR/package.json"
        if ! (cd "$BENCH_NPM_DIR" && npm install --no-audit --no-fund \
                --loglevel=error "parse-server@$want" express@5) \
                >"$tmp/logs/npm-install.log" 2>&1; then
            parse_na="npm install parse-server@$want failed: $(grep -m1 -i 'err' "$tmp/logs/npm-install.log" || tail -n 1 "$tmp/logs/npm-install.log")"
            return 1
        fi
    fi
    parse_version=$(node -p "require('$BENCH_NPM_DIR/node_modules/parse-server/package.json').version")
}

parse_start() {
    parse_port=$(free_port)
    psql_admin -c "CREATE DATABASE parse"
    cat >"$tmp/parse/server.js" <<'EOF'
// bench/users.sh: Parse Server on the bench's PostgreSQL
const express = require('express');
const { ParseServer } = require('parse-server');
const port = Number(process.env.PARSE_PORT);
(async () => {
  const api = new ParseServer({
    databaseURI: process.env.PARSE_DB,
    // its URI parser takes no socket directory; the pg driver does
    databaseOptions: { host: process.env.PARSE_PG_HOST },
    appId: 'bench',
    masterKey: process.env.PARSE_MASTER_KEY,
    masterKeyIps: ['127.0.0.1', '::1', '::ffff:127.0.0.1'],
    serverURL: `http://127.0.0.1:${port}/parse`,
    logLevel: 'error',
    logsFolder: process.env.PARSE_LOGS,
  });
  await api.start();
  const app = express();
  app.use('/parse', api.app);
  const srv = app.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
  process.on('SIGTERM', () => { srv.close(); process.exit(0); });
})().catch((e) => { console.error((e && e.stack) || e); process.exit(1); });
EOF
    say "Parse Server $parse_version: node, port $parse_port"
    # in the temporary folder: its default logger writes ./logs as soon
    # as it is loaded, before the options say otherwise
    (   cd "$tmp/parse"
        NODE_PATH=$BENCH_NPM_DIR/node_modules NODE_ENV=production \
        PARSE_PORT=$parse_port PARSE_MASTER_KEY=$parse_master \
        PARSE_DB="postgres://postgres@127.0.0.1:$pg_port/parse?max=8" \
        PARSE_PG_HOST=$tmp/pg \
        PARSE_LOGS=$tmp/parse/logs PARSE_SERVER_LOGS_FOLDER=$tmp/parse/logs \
            exec node "$tmp/parse/server.js" ) >"$tmp/logs/parse.log" 2>&1 &
    parse_pid=$!
    for (( i = 0; i < 600; i++ )); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
             "http://127.0.0.1:$parse_port/parse/health" || true) == 200 ]] && return 0
        kill -0 "$parse_pid" 2>/dev/null || break
        sleep 0.1
    done
    parse_na="Parse Server did not answer /parse/health: $(grep -v -i 'deprecat' "$tmp/logs/parse.log" | grep -m1 -i 'error' || tail -n 1 "$tmp/logs/parse.log")"
    stop_child "$parse_pid" "Parse Server"
    parse_pid=
    return 1
}

parse_rest() {      # parse_rest METHOD PATH [JSON]: answer in parse/rest.out
    local out=$tmp/parse/rest.out status
    status=$(curl -s -o "$out" -w '%{http_code}' --max-time 30 -X "$1" \
             -H 'X-Parse-Application-Id: bench' \
             -H "X-Parse-Master-Key: $parse_master" \
             -H 'Content-Type: application/json' \
             ${3:+--data-binary "$3"} "http://127.0.0.1:$parse_port/parse$2" || true)
    if [[ $status != 2?? ]]; then
        parse_na="Parse Server $1 $2 answered $status: $(head -c 200 "$out")"
        return 1
    fi
}

parse_session=
parse_users() {
    local n=$BENCH_PARSE_USERS

    say "Parse Server: $n _User rows"
    # the first through the API: it creates the class, and its extra
    # fields become columns of "_User"
    parse_rest POST /users "{\"username\":\"parse-0000000\",\"password\":\"$SEED_PASSWORD\",\"email\":\"parse-0000000@example.com\",\"firstName\":\"James\",\"lastName\":\"Smith\",\"department\":\"Engineering\"}" \
        || return 1
    # the rest straight into its table (its REST API hashes every password
    # with bcrypt: minutes for 10,000 users); same hash, public read
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -U postgres -d parse -v n="$n" <<'SQL' \
        || { parse_na="inserting into \"_User\" failed"; return 1; }
INSERT INTO "_User" ("objectId", "createdAt", "updatedAt", username, email,
                     "emailVerified", _rperm, _wperm, _hashed_password,
                     "firstName", "lastName", department)
SELECT o.id, now(), now(),
       'parse-' || lpad(k::text, 7, '0'),
       'parse-' || lpad(k::text, 7, '0') || '@example.com',
       k % 3 <> 0, ARRAY['*', o.id], ARRAY[o.id], u._hashed_password,
       (ARRAY['James', 'Mary', 'John', 'Patricia', 'Robert'])[1 + k % 5],
       (ARRAY['Smith', 'Johnson', 'Williams', 'Brown', 'Jones'])[1 + k % 5],
       (ARRAY['Engineering', 'Sales', 'Support', NULL])[1 + k % 4]
  FROM generate_series(1, :n - 1) k
 CROSS JOIN LATERAL (SELECT substr(md5('parse-user-' || k), 1, 10) AS id) o
 CROSS JOIN (SELECT _hashed_password FROM "_User"
              WHERE username = 'parse-0000000') u;
ANALYZE "_User";
SQL
    "$PG_BIN/psql" -X -q -At -U postgres -d parse -c "
        SELECT '/parse/users/' || \"objectId\" FROM \"_User\"
         WHERE username <> 'parse-0000000'
         ORDER BY random() LIMIT 1000" >"$tmp/wrk/parse-paths.txt"
    paths_script "$tmp/wrk/parse-paths.txt" "$tmp/wrk/parse-paths.lua"
    # a session of the first user (not a master key): reads public users
    parse_session=$(curl -s --max-time 30 -H 'X-Parse-Application-Id: bench' \
        -H 'Content-Type: application/json' \
        --data-binary "{\"username\":\"parse-0000000\",\"password\":\"$SEED_PASSWORD\"}" \
        "http://127.0.0.1:$parse_port/parse/login" \
        | perl -MJSON::PP -0777 -ne '
            my $t = eval { decode_json($_)->{sessionToken} };
            print $t if defined $t && !ref $t')
    [[ -n $parse_session ]] || warn "Parse Server login gave no sessionToken: no session row"
}

if [[ $BENCH_PARSE == 1 ]]; then
    parse_install && parse_start && parse_users || true
    [[ -z $parse_na ]] || warn "Parse Server: $parse_na"
else
    parse_na="BENCH_PARSE=0"
fi


# ---------------------------------------------------------------------------
# 1. GET /api/v1/users/{id}: pgbench ceiling, the module, the peer

pgbench_scale=$(( (SEED_USERS + 99999) / 100000 ))
say "pgbench: -i -s $pgbench_scale bench (as many rows as users)"
"$PG_BIN/pgbench" -U postgres -i -s "$pgbench_scale" -q bench \
    >"$tmp/logs/pgbench-init.log" 2>&1 \
    || { cat "$tmp/logs/pgbench-init.log" >&2; die "pgbench -i failed"; }

measure_pgbench() {
    local avg out=$tmp/pgbench/run-$round.txt prefix=$tmp/pgbench/txn-$round
    "$PG_BIN/pgbench" -h "$tmp/pg" -U postgres -S -M prepared -c "$BENCH_CONNS" -j 1 \
        -T "$BENCH_SECONDS" --log --log-prefix="$prefix" bench \
        >"$out" 2>&1 || { cat "$out" >&2; die "pgbench failed"; }
    w_rps=$(awk '/^tps = / { printf "%.0f", $3; exit }' "$out")
    avg=$(awk '/^latency average = / { printf "%.3f", $4 }' "$out")
    read -r w_p50 w_p99 < <(cat "$prefix".* | awk '{ print $3 }' \
        | sort -n | awk '{ v[NR] = $1 }
            END {
                if (NR == 0) { print "- -"; exit }
                i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
                i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
                printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
            }')
    rm -f "$prefix".*
    w_note="avg $avg ms"
    [[ -n $w_rps ]] || { cat "$out" >&2; die "could not read pgbench output"; }
}
measure_user() {
    run_wrk "$BENCH_CONNS" "$base_a" -s "$tmp/wrk/user-paths.lua" -H "$auth_header"
}
measure_parse_master() {
    run_wrk "$BENCH_CONNS" "http://127.0.0.1:$parse_port" \
        -s "$tmp/wrk/parse-paths.lua" -H 'X-Parse-Application-Id: bench' \
        -H "X-Parse-Master-Key: $parse_master"
}
measure_parse_session() {
    run_wrk "$BENCH_CONNS" "http://127.0.0.1:$parse_port" \
        -s "$tmp/wrk/parse-paths.lua" -H 'X-Parse-Application-Id: bench' \
        -H "X-Parse-Session-Token: $parse_session"
}

probe() {           # probe NAME URL CURL-ARGS...: 2xx, or an n/a row
    local name=$1 url=$2 status
    shift 2
    status=$(curl -s -o "$tmp/wrk/probe.body" -w '%{http_code}' --max-time 30 \
             "$@" "$url" || true)
    [[ $status == 2?? ]] && return 0
    say "$name: n/a (status $status)"
    add_row na "$name" "n/a (status $status: $(head -c 120 "$tmp/wrk/probe.body"))" - - "" "" ""
    return 1
}

user_name="GET /api/v1/users/{id} (module, org admin JWT, c=$BENCH_CONNS)"
entry pgbench ceiling "pgbench -S -M prepared (c=$BENCH_CONNS, scale $pgbench_scale)" \
    measure_pgbench "" "" rps "" "PK lookup, 1 query/txn"
if probe "$user_name" "$base_a$(head -n 1 "$tmp/wrk/user-paths.txt")" -H "$auth_header"
then
    user_bytes=$(wc -c <"$tmp/wrk/probe.body")
    entry user row "$user_name" measure_user pgbench parse rps "" \
        "1000 random users of seed-00 ($(commas "$tenant_users") users) in turn; $user_bytes-byte answer"
fi
parse_master_name="GET /parse/users/:id (Parse Server, master key, c=$BENCH_CONNS)"
parse_session_name="GET /parse/users/:id (Parse Server, session token, c=$BENCH_CONNS)"
if [[ -z $parse_na ]]; then
    parse_get=(-H 'X-Parse-Application-Id: bench' -H "X-Parse-Master-Key: $parse_master")
    if probe "$parse_master_name" "http://127.0.0.1:$parse_port$(head -n 1 "$tmp/wrk/parse-paths.txt")" \
            "${parse_get[@]}"; then
        parse_bytes=$(wc -c <"$tmp/wrk/probe.body")
        entry parse_master peer "$parse_master_name" measure_parse_master pgbench "" rps "" \
            "1000 of its $(commas "$BENCH_PARSE_USERS") users in turn; $parse_bytes-byte answer"
    fi
    if [[ -n $parse_session ]] \
       && probe "$parse_session_name" "http://127.0.0.1:$parse_port$(head -n 1 "$tmp/wrk/parse-paths.txt")" \
            -H 'X-Parse-Application-Id: bench' -H "X-Parse-Session-Token: $parse_session"; then
        entry parse_session peer "$parse_session_name" measure_parse_session pgbench "" rps "" \
            "a user's session reading public users"
    fi
else
    add_row na "GET /parse/users/:id (Parse Server, the peer)" "n/a ($parse_na)" - - "" "" ""
fi
run_rounds "GET /users/{id}"
# the peer: the faster of Parse Server's two rows (the harder comparison)
if [[ -n ${PEER[parse_master]:-} || -n ${PEER[parse_session]:-} ]]; then
    if (( ${PEER[parse_master]:-0} >= ${PEER[parse_session]:-0} )); then
        PEER[parse]=${PEER[parse_master]} PEER_LABEL[parse]="Parse Server (master key)"
    else
        PEER[parse]=${PEER[parse_session]} PEER_LABEL[parse]="Parse Server (session token)"
    fi
fi


# ---------------------------------------------------------------------------
# 2. /users/search?q= and /users?search= at 8 clients
#
# Words from seed.sh's data, as they fall in tenant seed-00 (100,000
# users; each name picked by a hash, the common ones more often): James,
# the most common first name (about 3,000 users), Smith the most common
# last name (about 2,200), Garcia (about 800), Leila, among the rarest
# first names (about 300), Zoë (non-ASCII, about 300), a first and last
# name together as a phrase (a few dozen), and a name nobody has.  For the
# substring list also "son" (in many last names: over 10,000 users) and
# the start of seeded usernames and emails (10 users).

search_q=("garcia" "james" "%22mary%20johnson%22" "leila" "smith" "xavier"
          "zo%C3%AB")
list_q=("garcia" "james" "smith" "leila" "son" "seed-00424" "xavier")
printf '/api/v1/users/search?q=%s\n' "${search_q[@]}" >"$tmp/wrk/search-paths.txt"
printf '/api/v1/users?search=%s\n' "${list_q[@]}" >"$tmp/wrk/list-paths.txt"
paths_script "$tmp/wrk/search-paths.txt" "$tmp/wrk/search-paths.lua"
paths_script "$tmp/wrk/list-paths.txt" "$tmp/wrk/list-paths.lua"

measure_search() {
    run_wrk "$BENCH_SEARCH_CONNS" "$base_a" -s "$tmp/wrk/search-paths.lua" -H "$auth_header"
}
measure_list() {
    run_wrk "$BENCH_SEARCH_CONNS" "$base_a" -s "$tmp/wrk/list-paths.lua" -H "$auth_header"
}

# per_word PATHS-FILE: one client, each path 5 times after one untimed
# request: "word ms (N matches)" of the median, and the slowest's path
per_word() {
    local path i t total word out=
    while IFS= read -r path; do
        curl -s -o /dev/null --max-time 30 -H "$auth_header" "$base_a$path" || true
        for (( i = 0; i < 5; i++ )); do
            curl -s -o "$tmp/wrk/word.body" -w '%{time_total}\n' --max-time 30 \
                -H "$auth_header" "$base_a$path" || true
        done >"$tmp/wrk/word.times"
        t=$(sort -g "$tmp/wrk/word.times" | sed -n 3p)
        total=$(perl -MJSON::PP -0777 -ne '
            my $d = eval { decode_json($_)->{data} }; print $d->{total} // "?"' \
            "$tmp/wrk/word.body")
        word=${path#*=}
        word=$(perl -e '($w = shift) =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; print $w' "$word")
        out+="${out:+, }$word $(awk -v t="$t" 'BEGIN { printf "%.1f", t * 1000 }') ms ($total)"
    done <"$1"
    printf '%s' "$out"
}

search_name="GET /api/v1/users/search?q= (module, c=$BENCH_SEARCH_CONNS)"
list_name="GET /api/v1/users?search= (module, c=$BENCH_SEARCH_CONNS)"
if probe "$search_name" "$base_a$(head -n 1 "$tmp/wrk/search-paths.txt")" -H "$auth_header"; then
    entry search row "$search_name" measure_search "" "" p99 "p99<25" \
        "${#search_q[@]} queries in turn (full text, ranked, 20 a page, with the total, exact up to the cap)"
fi
if probe "$list_name" "$base_a$(head -n 1 "$tmp/wrk/list-paths.txt")" -H "$auth_header"; then
    entry list row "$list_name" measure_list "" "" p99 "p99<25" \
        "${#list_q[@]} substrings in turn (ILIKE through trigrams, newest first, 20 a page, with the total, exact up to the cap)"
fi
has_search=${E_name[search]:+1} has_list=${E_name[list]:+1}
run_rounds "search"

# Each word alone (one client), with PostgreSQL logging every statement
# with its parameters meanwhile: the slowest call of each function is
# explained below.
if [[ -n $has_search$has_list ]]; then
    say "search: each query alone, 5 times (one client), statements logged"
    pg_log_lines=$(wc -l <"$tmp/pg/postgres.log")
    psql_admin -c "ALTER SYSTEM SET log_min_duration_statement = 0" \
               -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
    [[ -z $has_search ]] || search_words=$(per_word "$tmp/wrk/search-paths.txt")
    [[ -z $has_list ]] || list_words=$(per_word "$tmp/wrk/list-paths.txt")
    psql_admin -c "ALTER SYSTEM RESET log_min_duration_statement" \
               -c "SELECT pg_reload_conf()" >/dev/null
    for (( i = 0; i < ${#row_name[@]}; i++ )); do
        case ${row_name[i]} in
        "$search_name") row_note[i]+="; each query alone (1 client, median of 5, matches in the tenant): $search_words" ;;
        "$list_name")   row_note[i]+="; each substring alone (1 client, median of 5, matches in the tenant): $list_words" ;;
        esac
    done
    # "LOG:  duration: 12.345 ms  execute name: SELECT ..." then
    # "DETAIL:  parameters: $1 = '...', ..."; the slowest call of each
    # um_search_users and um_list_users: "function ms sql parameters"
    tail -n +"$(( pg_log_lines + 1 ))" "$tmp/pg/postgres.log" >"$tmp/logs/statements.log"
    perl -ne '
        if (/duration: ([0-9.]+) ms\s+execute [^:]*: (.*(um_(?:search|list)_users).*)$/) {
            ($ms, $sql, $fn) = ($1, $2, $3); next;
        }
        if (defined $sql && /DETAIL:\s+parameters: (.*)$/i && $ms > ($best{$fn} // -1)) {
            $best{$fn} = $ms; $line{$fn} = "$fn\t$ms\t$sql\t$1\n";
        }
        undef $sql;
        END { print $line{$_} for sort keys %line }
    ' "$tmp/logs/statements.log" >"$tmp/logs/slowest.tsv"
fi

# explain FUNCTION MS SQL PARAMETERS: the statement replayed in psql with
# auto_explain. plpgsql runs the query with EXECUTE, which EXPLAIN ANALYZE
# of the call does not open; auto_explain (nested statements, ANALYZE,
# BUFFERS) shows its plan, as a WARNING: the functions SET
# client_min_messages = warning. Only statements of 1 ms or more.
explain_report=
explain() {
    local fn=$1 ms=$2 sql=$3 params=$4 args out shown
    say "EXPLAIN ANALYZE of the slowest $fn call ($ms ms)"
    # the parameters as PostgreSQL logged them: $1 = '...', $2 = NULL, ...
    args=$(perl -e '
        my $p = shift; my @v;
        while ($p =~ /\$\d+ = (NULL|\x27(?:[^\x27]|\x27\x27)*\x27)/g) { push @v, $1 }
        print join(", ", @v)' "$params")
    out=$("$PG_BIN/psql" -X -q -U postgres -d usermgmt 2>&1 <<SQL || true
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 1;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = warning;
PREPARE slowest AS $sql;
\o /dev/null
EXECUTE slowest($args);
SQL
)
    # the parameters, each cut to 100 characters, for the report
    shown=$(perl -e '
        my $p = shift; my @v;
        while ($p =~ /(\$\d+) = (NULL|\x27(?:[^\x27]|\x27\x27)*\x27)/g) {
            my ($k, $v) = ($1, $2);
            $v = substr($v, 0, 97) . "...\x27" if length($v) > 100;
            push @v, "$k = $v";
        }
        print join(", ", @v)' "$params")
    explain_report+="${explain_report:+$'\n'}slowest $fn call with one client: $ms ms: $sql"$'\n'
    explain_report+="parameters: $shown"$'\n'
    explain_report+="EXPLAIN ANALYZE (auto_explain, nested statements of 1 ms or more):"$'\n'
    explain_report+=$(printf '%s\n' "$out" | sed -E 's/^psql:[^ ]* (WARNING|NOTICE): */\1: /')$'\n'
}
if [[ -s $tmp/logs/slowest.tsv ]]; then
    while IFS=$'\t' read -r fn ms sql params; do
        explain "$fn" "$ms" "$sql" "$params"
    done <"$tmp/logs/slowest.tsv"
fi


# ---------------------------------------------------------------------------
# 3. The audit export of one tenant (about SEED_AUDIT / SEED_ORGS rows)
#
# The ceiling: PostgreSQL writing the same rows (with the actor's email, the
# same order) as CSV with COPY to psql, in one statement. The module's
# worker is sampled every 50 ms meanwhile (VmRSS), and its VmHWM read
# before and after.

export_from=$(date -u -d "$(( ${SEED_DAYS:-365} + 1 )) days ago" +%Y-%m-%d)
export_to=$(date -u +%Y-%m-%d)
export_path="/api/v1/audit/export?format=csv&start_date=$export_from&end_date=$export_to"
export_rows_db=$(psql_um -At -c "SELECT count(*) FROM audit_logs
    WHERE organization_id = '$tenant'
      AND created_at >= '$export_from'::date
      AND created_at < '$export_to'::date + 1")

copy_sql="COPY (SELECT a.id, a.created_at, a.organization_id, a.actor_id,
                       u.email, a.action, a.resource, a.resource_id,
                       a.status, host(a.ip), a.user_agent, a.changes,
                       a.metadata
                  FROM audit_logs a LEFT JOIN users u ON u.id = a.actor_id
                 WHERE a.organization_id = '$tenant'
                   AND a.created_at >= '$export_from'::date
                   AND a.created_at < '$export_to'::date + 1
                 ORDER BY a.created_at, a.id)
          TO STDOUT WITH (FORMAT csv, HEADER)"

status_kb() {       # status_kb PID FIELD -> kB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

measure_copy() {
    local t0 lines bytes
    t0=$(now_ns)
    read -r lines bytes < <("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -U usermgmt -d usermgmt -c "$copy_sql" | wc -lc)
    c_secs=$(secs_since "$t0")
    c_rows=$(( lines - 1 )) c_bytes=$bytes
}

# measure_export: one export; every worker is sampled (pid VmRSS a line),
# and the one that grew most is the one that served it
measure_export() {
    local t0 meta pid lines bytes
    local -a workers
    declare -gA x_before=() x_hwm0=()

    mapfile -t workers < <(worker_pids)
    for pid in "${workers[@]}"; do
        x_before[$pid]=$(status_kb "$pid" VmRSS)
        x_hwm0[$pid]=$(status_kb "$pid" VmHWM)
    done
    (   while :; do
            for pid in "${workers[@]}"; do
                echo "$pid $(status_kb "$pid" VmRSS)"
            done
            sleep 0.05
        done ) >"$tmp/logs/export-rss-$round.txt" &
    sampler_pid=$!
    meta=$tmp/logs/export-$round.meta
    t0=$(now_ns)
    read -r lines bytes < <(curl -sS --max-time 1800 -H "$auth_header" \
        -w '%{stderr}%{http_code} %{size_download} %{time_total} %{time_starttransfer}\n' \
        "$base_a$export_path" 2>"$meta" | wc -lc)
    x_secs=$(secs_since "$t0")
    stop_child "$sampler_pid" "RSS sampler"
    sampler_pid=
    read -r x_status x_bytes _ x_ttfb < <(tail -n 1 "$meta") || true
    [[ $x_bytes == "$bytes" ]] || x_bytes=$bytes
    x_rows=$(( lines - 1 ))
    # the worker whose VmRSS rose most above its start
    read -r x_worker x_rss_max < <(
        for pid in "${workers[@]}"; do
            awk -v p="$pid" -v b="${x_before[$pid]:-0}" \
                '$1 == p && $2 > m { m = $2 } END { print m - b, p, m }' \
                "$tmp/logs/export-rss-$round.txt"
        done | sort -n | tail -n 1 | cut -d' ' -f2-) || true
    [[ -n ${x_worker:-} ]] || x_worker=${workers[0]:-0} x_rss_max=0
    x_rss_before=${x_before[$x_worker]:-0}
    x_hwm_before=${x_hwm0[$x_worker]:-0}
    x_hwm_after=$(status_kb "$x_worker" VmHWM)
    x_samples=$(awk -v p="$x_worker" '$1 == p' "$tmp/logs/export-rss-$round.txt" | wc -l)
}

say "audit export: warming the cache (the ceiling's COPY, not measured)"
group_load "export"
measure_copy
best_copy_secs= best_x=
export_notes=()
for (( round = 1; round <= BENCH_EXPORT_ROUNDS; round++ )); do
    say "audit export, COPY ceiling (round $round/$BENCH_EXPORT_ROUNDS)"
    measure_copy
    export_notes+=("COPY round $round: $c_secs s")
    if [[ -z $best_copy_secs ]] || awk -v a="$c_secs" -v b="$best_copy_secs" 'BEGIN { exit !(a < b) }'; then
        best_copy_secs=$c_secs best_copy_rows=$c_rows best_copy_bytes=$c_bytes
    fi
    say "audit export, GET $export_path (round $round/$BENCH_EXPORT_ROUNDS)"
    measure_export
    export_notes+=("export round $round: status $x_status, $x_rows rows in $x_secs s, peak VmRSS $x_rss_max kB")
    if [[ -z $best_x ]] || awk -v a="$x_secs" -v b="$best_secs" 'BEGIN { exit !(a < b) }'; then
        best_x=$round best_secs=$x_secs best_rows=$x_rows best_bytes=$x_bytes
        best_status=$x_status best_rss_max=$x_rss_max best_rss_before=$x_rss_before
        best_hwm_before=$x_hwm_before best_hwm_after=$x_hwm_after
        best_ttfb=$x_ttfb best_samples=$x_samples best_worker=$x_worker
    fi
done
copy_rps=$(awk -v n="$best_copy_rows" -v s="$best_copy_secs" 'BEGIN { printf "%.0f", n / s }')
add_row ceiling "COPY (SELECT ... same rows, actor email, order) TO STDOUT CSV via psql (rows/s)" \
    "$copy_rps" - - "" "" \
    "$best_copy_rows rows, $(mb "$best_copy_bytes") in $best_copy_secs s (fastest of $BENCH_EXPORT_ROUNDS, after one warm-up run): PostgreSQL writing the tenant's trail alone"
CEILING[copy]=$copy_rps CEILING_LABEL[copy]=COPY
export_name="GET /api/v1/audit/export?format=csv (module, one tenant, rows/s)"
if [[ $best_status == 200 ]]; then
    x_rps=$(awk -v n="$best_rows" -v s="$best_secs" 'BEGIN { printf "%.0f", n / s }')
    note="$best_rows rows ($export_rows_db in the range before the export began), $(mb "$best_bytes") in $best_secs s, first byte after $(awk -v t="${best_ttfb:-0}" 'BEGIN { printf "%.3f", t }') s; worker (pid $best_worker) peak RSS during the export $(awk -v k="$best_rss_max" 'BEGIN { printf "%.1f", k / 1024 }') MB ($best_samples samples of VmRSS every 50 ms; $(awk -v k="$best_rss_before" 'BEGIN { printf "%.1f", k / 1024 }') MB before it); VmHWM $(awk -v k="$best_hwm_before" 'BEGIN { printf "%.1f", k / 1024 }') MB before, $(awk -v k="$best_hwm_after" 'BEGIN { printf "%.1f", k / 1024 }') MB after; start_date=$export_from end_date=$export_to"
    (( BENCH_EXPORT_ROUNDS == 1 )) || note+="; $(join_by '; ' "${export_notes[@]}")"
    add_row row "$export_name" "$x_rps" - - copy "" "$note"
else
    add_row na "$export_name" "n/a (status $best_status)" - - copy "" \
        "$(join_by '; ' "${export_notes[@]}")"
fi


# ---------------------------------------------------------------------------
# Checks: did a worker die, did the module log errors?

workers_at_end=$(worker_pids | tr '\n' ' ')
[[ $workers_at_start == "$workers_at_end" ]] \
    || notes+=("the nginx workers changed during the run ($workers_at_start-> $workers_at_end): a worker died")
if grep -q '\[alert\]\|\[emerg\]\|\[crit\]' "$tmp/nginx/logs/error.log" 2>/dev/null; then
    notes+=("nginx error.log: $(grep -m3 '\[alert\]\|\[emerg\]\|\[crit\]' "$tmp/nginx/logs/error.log" | sed 's/^[0-9/: ]*//' | tr '\n' ' ')")
fi
n_err=$(grep -c '\[error\]' "$tmp/nginx/logs/error.log" 2>/dev/null || true)
(( ${n_err:-0} == 0 )) \
    || notes+=("nginx error.log has $n_err [error] line(s), the first: $(grep -m1 '\[error\]' "$tmp/nginx/logs/error.log" | sed 's/^[0-9/: ]*//' | head -c 300)")
if [[ -n $parse_pid ]] && ! kill -0 "$parse_pid" 2>/dev/null; then
    notes+=("Parse Server exited during the run: $(tail -n 1 "$tmp/logs/parse.log")")
fi


# ---------------------------------------------------------------------------
# The table (run.sh's format)

header=("scenario" "req/s" "p50 ms" "p99 ms" "ratio to ceiling" \
        "ratio to peer" "notes")
table=()
for i in "${!row_name[@]}"; do
    ceil_cell=- peer_cell=- note=${row_note[i]}
    case ${row_kind[i]} in
    ceiling)   ceil_cell="(ceiling)" ;;
    reference) ceil_cell="(reference)" ;;
    peer)      peer_cell="(peer)" ;;&
    row|peer)
        k=${row_ceil[i]}
        if [[ -n $k && -n ${CEILING[$k]:-} && ${CEILING[$k]} != 0 ]]; then
            ceil_cell="$(ratio "${row_rps[i]}" "${CEILING[$k]}") of ${CEILING_LABEL[$k]}"
        fi
        k=${row_peer[i]}
        if [[ -n $k && -n ${PEER[$k]:-} && ${PEER[$k]} != 0 ]]; then
            peer_cell="$(ratio "${row_rps[i]}" "${PEER[$k]}")x ${PEER_LABEL[$k]}"
            verdict=$(awk -v a="${row_rps[i]}" -v b="${PEER[$k]}" \
                      'BEGIN { print (a / b >= 10) ? "met" : "NOT met" }')
            note="target >= 10x the peer: $verdict${note:+; $note}"
        elif [[ -n $k ]]; then
            peer_cell="n/a (${parse_na:-no peer figure})"
        fi
        ;;
    esac
    if [[ ${row_target[i]} == 'p99<'* && ${row_kind[i]} == row ]]; then
        want=${row_target[i]#'p99<'}
        verdict=$(awk -v p="${row_p99[i]}" -v w="$want" \
                  'BEGIN { print (p < w) ? "met" : "NOT met" }')
        note="target p99 < $want ms: $verdict${note:+; $note}"
    fi
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
print_row() {
    local sep=$1 c line=
    shift
    local -a cells=("$@")
    for (( c = 0; c < ncols; c++ )); do
        if (( c >= 1 && c <= 3 )); then
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
node_version=$(node --version 2>/dev/null || echo none)
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "none")

info=(
    "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit"
    "machine: $(nproc) CPU(s), ${cpu_model:-unknown CPU}, Linux $(uname -r), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; load average $load_at_start before the run, $(cut -d' ' -f1-3 /proc/loadavg) after; 1-minute load average at the start of each group: $(join_by ', ' "${group_loads[@]}")"
    "versions: $nginx_version, $pg_version, Redis $redis_version, wrk $wrk_version, node $node_version, parse-server ${parse_version:-not installed}"
    "load: wrk -t1 -d${BENCH_SECONDS}s (after ${BENCH_WARMUP}s warm-up), c=$BENCH_CONNS for the GET-by-id rows and pgbench -j1, c=$BENCH_SEARCH_CONNS for the search rows; $BENCH_ROUNDS round(s) per row, in reverse order every other round, each row its median round; export: $BENCH_EXPORT_ROUNDS round(s), the fastest"
    "data: bench/seed.sh, $SEED_USERS users and $SEED_AUDIT audit rows in $SEED_ORGS organizations; tenant seed-00 ($tenant_users users), signed in as its admin $admin_email (user_type admin = org_admin)"
    "nginx: $BENCH_WORKERS worker(s), access_log off, client_header_buffer_size 4k, module pool max=8 per worker, usermgmt_access_token_ttl 2h"
    "PostgreSQL: shared_buffers=1GB, fsync=off, synchronous_commit=off, full_page_writes=off, max_wal_size=8GB, autovacuum=off (benchmark settings: no durability); pgbench -i -s $pgbench_scale; the module, pgbench and Parse Server connect through its unix socket"
    "Parse Server: ${parse_na:-one node process, express, pg pool max=8, logLevel error, database parse on the same PostgreSQL; $BENCH_PARSE_USERS _User rows (one through POST /parse/users, the rest inserted with the same bcrypt hash and public read); the peer is the faster of its two rows}"
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
    if [[ -n $explain_report ]]; then
        echo
        printf '%s' "$explain_report"
    fi
}

mkdir -p "$bench_dir/results"
{
    echo "# usermgmt benchmark: users at scale (bench/users.sh)"
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
    if [[ -n $explain_report ]]; then
        echo
        echo "## The slowest search statements"
        echo
        echo '```'
        printf '%s' "$explain_report"
        echo '```'
    fi
} >"$bench_dir/results/users.md"
say "written: bench/results/users.md"
