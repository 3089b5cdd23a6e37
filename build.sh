#!/usr/bin/env bash
# build.sh: one entry point to build, run and test usermgmt on Debian 12.
# Run `./build.sh help` for the list of subcommands.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$ROOT"

# --- settings ---------------------------------------------------------------

PG_PORT="${USERMGMT_PG_PORT:-55432}"
REDIS_PORT="${USERMGMT_REDIS_PORT:-56379}"
HTTP_PORT="${USERMGMT_HTTP_PORT:-8000}"

PGBIN=/usr/lib/postgresql/15/bin
NGX_SYS_SRC=/usr/share/nginx/src
MODULE=ngx_http_usermgmt_module

BUILD="$ROOT/build"
VAR="$ROOT/var"
PGDATA_DIR="$VAR/pg"
PGSOCK_DIR="$VAR/pgsock"
NGINX_CONF_SRC=conf.d/usermgmt.conf     # relative to $ROOT (nginx prefix)
NGINX_CONF=var/nginx.conf               # rendered from NGINX_CONF_SRC
NGINX_PID="$VAR/run/nginx.pid"
REDIS_PID="$VAR/run/redis.pid"
REDIS_CONF="$VAR/redis.conf"
JWT_KEY="$VAR/keys/jwt-hs256.key"
MFA_KEY="$VAR/keys/mfa.key"
ADMIN_FILE="$VAR/bootstrap-admin.txt"

DEPS=(nginx-core nginx-dev libpq-dev libhiredis-dev libjansson-dev libssl-dev
      liboath-dev libargon2-dev argon2 libqrencode-dev libpng-dev
      libpwquality-dev cracklib-runtime postgresql postgresql-contrib
      redis-server wrk oathtool zbar-tools valgrind pkg-config
      build-essential curl perl openssl)

usage() {
    cat <<EOF
usage: ./build.sh <command> [args]

  deps            install missing Debian packages (apt-get)
  build [--asan]  build build/$MODULE.so against the Debian nginx source
  start           start PostgreSQL, Redis (under var/), migrate, bootstrap,
                  then nginx on 127.0.0.1:$HTTP_PORT
  stop            stop what start started
  status          show which of the servers are running
  migrate         apply pending sql/migrations/*.sql
  bootstrap       create the default organization, the first super admin
                  and the JWT and two-factor keys (idempotent)
  run             deps + build + start, then follow var/log/error.log;
                  Ctrl-C stops everything
  test [--valgrind] [prove args]
                  deps + build, then prove -r t/ (or the given tests)
  bench [args]    deps + build, then bench/run.sh
  clean           remove build/ (var/ is kept)

environment:
  USERMGMT_PG_PORT (55432)  USERMGMT_REDIS_PORT (56379)  USERMGMT_HTTP_PORT (8000)
  USERMGMT_ADMIN_EMAIL (admin@example.com)  USERMGMT_ADMIN_PASSWORD (random)
  PGHOST PGPORT PGUSER PGDATABASE: used by migrate/bootstrap when set
EOF
}

say()  { printf '%s\n' "$*"; }
warn() { printf 'build.sh: warning: %s\n' "$*" >&2; }
die()  { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# initdb and postgres refuse to run as root: as root, run them as the
# "postgres" user; otherwise as ourselves.
as_pg() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pid_alive() {                           # pid_alive <pidfile>
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

wait_pid_gone() {                       # wait_pid_gone <pid> <tenths>
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# --- deps -------------------------------------------------------------------

cmd_deps() {
    local p missing=() sudo=()
    for p in "${DEPS[@]}"; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0

    if ! is_root; then
        command -v sudo >/dev/null || die "missing packages (run as root): ${missing[*]}"
        sudo=(sudo)
    fi
    say "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    # The postgresql package may create (and try to start) the system
    # cluster "15/main" on port 5432. We never use it: our cluster lives in
    # var/pg on its own port, so it is left alone.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
}

# --- build ------------------------------------------------------------------

cmd_build() {
    local extra="" ldextra=""
    while [[ $# -gt 0 ]]; do
        case $1 in
            --asan) extra="-fsanitize=address -fno-omit-frame-pointer"
                    ldextra="-fsanitize=address" ;;
            *) die "build: unknown option $1" ;;
        esac
        shift
    done
    [[ -f $ROOT/config ]] || die "build: no ./config (the C module is not there yet)"
    [[ -x $NGX_SYS_SRC/configure ]] || die "build: $NGX_SYS_SRC missing (./build.sh deps)"

    local src="$BUILD/nginx-src" objs="$BUILD/objs"
    local src_id stamp="$BUILD/nginx-src/.usermgmt-source"

    # Work on a private copy: configure must never run inside the system
    # folder. Copy again when the installed source changes (package version
    # or file times of the copied tree).
    src_id="$(dpkg-query -W -f='${Version}' nginx-dev) $(stat -c %Y "$NGX_SYS_SRC/configure" "$NGX_SYS_SRC/conf_flags" | tr '\n' ' ')"
    if [[ ! -f $stamp || $(<"$stamp") != "$src_id" ]]; then
        say "build: copying $NGX_SYS_SRC to build/nginx-src"
        rm -rf "$src" "$objs"
        mkdir -p "$BUILD"
        cp -a "$NGX_SYS_SRC" "$src"
        printf '%s' "$src_id" >"$stamp"
    fi

    # Debian's recipe for dynamic modules (debhelper's nginx_mod build).
    local NGX_CONF_FLAGS=()
    # shellcheck disable=SC1091
    source "$NGX_SYS_SRC/conf_flags"
    local args=("${NGX_CONF_FLAGS[@]}"
        --with-cc-opt="$(dpkg-buildflags --get CFLAGS) -fPIC -Wall -Wextra -Werror $extra"
        --with-ld-opt="$(dpkg-buildflags --get LDFLAGS) $ldextra"
        --add-dynamic-module="$ROOT"
        --builddir="$objs")
    local want have=""
    want=$(printf '%q ' "${args[@]}")
    [[ -f $objs/.usermgmt-configure ]] && have=$(<"$objs/.usermgmt-configure")

    if [[ $want != "$have" ]]; then
        # New flags (first build, --asan toggled): start from clean objects.
        rm -rf "$objs"
    fi
    if [[ ! -f $objs/Makefile || $ROOT/config -nt $objs/Makefile ]]; then
        say "build: configure"
        # configure's probes read the generated headers of an earlier run:
        # always start from an empty folder
        rm -rf "$objs"
        mkdir -p "$objs"
        (cd "$src" && ./configure "${args[@]}") >"$BUILD/configure.log" 2>&1 || {
            tail -n 30 "$BUILD/configure.log" >&2
            die "build: configure failed (see build/configure.log)"
        }
        printf '%s' "$want" >"$objs/.usermgmt-configure"
    fi

    (cd "$src" && make -j2 -f "$objs/Makefile" modules)

    # Replace the module by rename, never in place: a running nginx has the
    # old file mapped and would crash if it were rewritten under it.
    cp "$objs/$MODULE.so" "$BUILD/.$MODULE.so.tmp"
    chmod 0644 "$BUILD/.$MODULE.so.tmp"
    mv -f "$BUILD/.$MODULE.so.tmp" "$BUILD/$MODULE.so"
    say "build: build/$MODULE.so"
}

cmd_clean() {
    rm -rf "$BUILD"
    say "clean: removed build/"
}

# --- PostgreSQL connection for migrate/bootstrap -----------------------------

# PGHOST/PGPORT/PGUSER/PGDATABASE win when set (the test harness points
# migrate at its own cluster that way); otherwise the var/ cluster.
pg_env() {
    export PGHOST="${PGHOST:-127.0.0.1}"
    export PGPORT="${PGPORT:-$PG_PORT}"
    export PGUSER="${PGUSER:-usermgmt}"
    export PGDATABASE="${PGDATABASE:-usermgmt}"
    psql_q -c 'SELECT 1' >/dev/null 2>&1 ||
        die "cannot connect to PostgreSQL $PGUSER@$PGHOST:$PGPORT/$PGDATABASE (./build.sh start?)"
}

psql_q() {
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

# --- migrate ----------------------------------------------------------------

cmd_migrate() {
    local f version applied n=0
    pg_env
    psql_q -c 'SET client_min_messages = warning' -c '
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    text PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )'
    applied=$(psql_q -At -c 'SELECT version FROM schema_migrations')

    shopt -s nullglob
    local files=("$ROOT"/sql/migrations/*.sql)   # glob order is lexical
    shopt -u nullglob
    for f in "${files[@]}"; do
        version=$(basename "$f" .sql)
        grep -qxF -- "$version" <<<"$applied" && continue
        # The migration and its schema_migrations row commit together.
        psql_q --single-transaction -v version="$version" \
            -c 'SET client_min_messages = warning' \
            -f "$f" \
            -f - <<<"INSERT INTO schema_migrations (version, applied_at) VALUES (:'version', now());" ||
            die "migrate: $version failed (nothing of it was applied)"
        say "migrate: applied $version"
        n=$((n + 1))
    done
    [[ $n -gt 0 ]] || say "migrate: up to date" >&2
}

# --- bootstrap --------------------------------------------------------------

cmd_bootstrap() {
    local email="${USERMGMT_ADMIN_EMAIL:-admin@example.com}" pw generated=0
    local salt hash id org
    pg_env

    org=$(psql_q -At <<'SQL'
INSERT INTO organizations (name, slug, allow_self_registration)
SELECT 'Default', 'default', true
WHERE NOT EXISTS (SELECT 1 FROM organizations
                  WHERE slug = 'default' AND deleted_at IS NULL)
RETURNING id;
SQL
    )
    [[ -n $org ]] && say "bootstrap: created organization default"

    if [[ $(psql_q -At -c 'SELECT count(*) FROM users
                           WHERE is_super_admin AND deleted_at IS NULL') == 0 ]]; then
        if [[ -n ${USERMGMT_ADMIN_PASSWORD:-} ]]; then
            pw=$USERMGMT_ADMIN_PASSWORD
        else
            pw=$(openssl rand -base64 18 | tr '+/' '-_')
            generated=1
        fi
        # argon2id with the OWASP parameters (m = 19 MiB, t = 2, p = 1); the
        # CLI takes the salt as text: 16 random bytes as 22 url-safe base64
        # characters (128 bits).
        salt=$(openssl rand -base64 16 | tr -d '=\n' | tr '+/' '-_')
        [[ ${#salt} -ge 8 ]] || die "bootstrap: salt too short"
        hash=$(printf %s "$pw" | argon2 "$salt" -id -t 2 -k 19456 -p 1 -l 32 -e)
        # shellcheck disable=SC2016  # a literal $, not an expansion
        [[ $hash == '$argon2id$'* ]] || die "bootstrap: argon2 failed"

        id=$(psql_q -At -v email="$email" -v hash="$hash" <<'SQL'
INSERT INTO users (organization_id, email, password_hash, user_type,
                   is_super_admin, email_verified, is_active,
                   password_changed_at)
SELECT o.id, :'email', :'hash', 'admin', true, true, true, now()
  FROM organizations o
 WHERE o.slug = 'default' AND o.deleted_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM users
                   WHERE is_super_admin AND deleted_at IS NULL)
RETURNING id;
SQL
        )
        if [[ -n $id ]]; then
            say "bootstrap: created super admin $email"
            if [[ $generated == 1 ]]; then
                mkdir -p "$VAR"
                (umask 077; printf 'email=%s\npassword=%s\n' "$email" "$pw" >"$ADMIN_FILE")
                chmod 0600 "$ADMIN_FILE"
                say "bootstrap: password: $pw (saved in var/bootstrap-admin.txt)"
            fi
        fi
    fi

    # The JWT signing key is read by the nginx master (root) at config load.
    if [[ ! -s $JWT_KEY ]]; then
        mkdir -p "$(dirname "$JWT_KEY")"
        chmod 0700 "$(dirname "$JWT_KEY")"
        # Written aside and renamed: parallel bootstraps (tests) never see
        # a half-written key.
        (umask 077; openssl rand -out "$JWT_KEY.$$" 64)
        mv -f "$JWT_KEY.$$" "$JWT_KEY"
        say "bootstrap: created var/keys/jwt-hs256.key"
    fi

    # The key that seals TOTP secrets (usermgmt_mfa_key): every node of a
    # deployment needs the same one, and losing it disables everyone's 2FA.
    if [[ ! -s $MFA_KEY ]]; then
        (umask 077; openssl rand -hex -out "$MFA_KEY.$$" 32)
        mv -f "$MFA_KEY.$$" "$MFA_KEY"
        say "bootstrap: created var/keys/mfa.key"
    fi
}

# --- servers ----------------------------------------------------------------

pg_running() {
    [[ -f $PGDATA_DIR/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

pg_start() {
    local q

    if pg_running; then
        say "start: PostgreSQL already running"
        return 0
    fi
    mkdir -p "$PGDATA_DIR" "$PGSOCK_DIR"
    touch "$VAR/log/postgresql.log"
    if is_root; then
        chown postgres:postgres "$PGDATA_DIR" "$PGSOCK_DIR" "$VAR/log/postgresql.log"
        runuser -u postgres -- test -w "$PGDATA_DIR" ||
            die "start: user postgres cannot reach $PGDATA_DIR (a parent folder is not searchable)"
    fi
    chmod 0700 "$PGDATA_DIR"

    if [[ ! -f $PGDATA_DIR/PG_VERSION ]]; then
        say "start: initdb var/pg"
        as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 \
            --locale=C.UTF-8 -A trust >"$VAR/log/initdb.log" 2>&1 || {
            cat "$VAR/log/initdb.log" >&2
            die "start: initdb failed"
        }
        # Development only: trust on loopback TCP, nothing else (no unix
        # socket logins, no other hosts). Production uses scram-sha-256
        # passwords (password_encryption = scram-sha-256, "host ... scram-sha-256").
        as_pg tee "$PGDATA_DIR/pg_hba.conf" >/dev/null <<'EOF'
# usermgmt development cluster: trust on 127.0.0.1 only.
# Production: scram-sha-256 (never trust).
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  trust
EOF
        printf "\n# usermgmt: port and socket folder, rewritten by build.sh start\ninclude_if_exists = 'usermgmt.conf'\n" |
            as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    fi

    # Written on every start so USERMGMT_PG_PORT changes take effect.
    q=${PGSOCK_DIR//\'/\'\'}
    as_pg tee "$PGDATA_DIR/usermgmt.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$q'
# every nginx worker keeps its own pool (usermgmt_postgres max=16)
max_connections = 500
EOF

    as_pg "$PGBIN/pg_ctl" start -D "$PGDATA_DIR" -l "$VAR/log/postgresql.log" -w -t 30 -s || {
        tail -n 20 "$VAR/log/postgresql.log" >&2
        die "start: PostgreSQL did not start (port $PG_PORT taken?)"
    }
    say "start: PostgreSQL on 127.0.0.1:$PG_PORT (data in var/pg)"

    # Role and database; the role owns the database, so it may create the
    # trusted contrib extensions (pgcrypto, citext, pg_trgm) the schema needs.
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres <<'SQL'
SELECT 'CREATE ROLE usermgmt LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'usermgmt') \gexec
SELECT 'CREATE DATABASE usermgmt OWNER usermgmt'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'usermgmt') \gexec
SQL
}

pg_stop() {
    pg_running || return 0
    as_pg "$PGBIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 30 -s
    say "stop: PostgreSQL stopped"
}

redis_start() {
    if pid_alive "$REDIS_PID"; then
        say "start: Redis already running"
        return 0
    fi
    rm -f "$REDIS_PID"
    mkdir -p "$VAR/redis"
    cat >"$REDIS_CONF" <<EOF
# generated by build.sh start; development Redis, memory only
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile "$REDIS_PID"
logfile "$VAR/log/redis.log"
dir "$VAR/redis"
save ""
appendonly no
EOF
    redis-server "$REDIS_CONF" || die "start: redis-server failed (see var/log/redis.log)"
    local i
    for ((i = 0; i < 50; i++)); do
        if pid_alive "$REDIS_PID" &&
            [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; then
            say "start: Redis on 127.0.0.1:$REDIS_PORT"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$VAR/log/redis.log" >&2 || true
    die "start: Redis did not come up (port $REDIS_PORT taken?)"
}

redis_stop() {
    local pid port
    pid_alive "$REDIS_PID" || { rm -f "$REDIS_PID"; return 0; }
    pid=$(<"$REDIS_PID")
    port=$(awk '$1 == "port" { print $2 }' "$REDIS_CONF" 2>/dev/null)
    redis-cli -h 127.0.0.1 -p "${port:-$REDIS_PORT}" shutdown nosave >/dev/null 2>&1 ||
        kill -TERM "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 100 || { kill -KILL "$pid" 2>/dev/null || true; }
    rm -f "$REDIS_PID"
    say "stop: Redis stopped"
}

# conf.d/usermgmt.conf carries the default ports; start renders it to
# var/nginx.conf with the ports of this run (USERMGMT_*_PORT).
nginx_render_conf() {
    sed -e "s/port=55432/port=$PG_PORT/" \
        -e "s/127\.0\.0\.1:56379/127.0.0.1:$REDIS_PORT/" \
        -e "s/listen 127\.0\.0\.1:8000/listen 127.0.0.1:$HTTP_PORT/" \
        "$ROOT/$NGINX_CONF_SRC" >"$ROOT/$NGINX_CONF"
}

nginx_cmd() {
    nginx -p "$ROOT/" -c "$NGINX_CONF" -e var/log/error.log "$@"
}

nginx_start() {
    local i
    if pid_alive "$NGINX_PID"; then
        say "start: nginx already running"
        return 0
    fi
    [[ -f $BUILD/$MODULE.so ]] || die "start: build/$MODULE.so missing (./build.sh build)"
    nginx_render_conf
    nginx_cmd -t -q || die "start: nginx -t failed for $NGINX_CONF"
    nginx_cmd || die "start: nginx did not start (see var/log/error.log)"
    for ((i = 0; i < 50; i++)); do
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$HTTP_PORT/health" 2>/dev/null && {
            say "start: nginx on http://127.0.0.1:$HTTP_PORT/ (health ok)"
            return 0
        }
        pid_alive "$NGINX_PID" || die "start: nginx exited (see var/log/error.log)"
        sleep 0.2
    done
    warn "nginx runs but http://127.0.0.1:$HTTP_PORT/health does not answer 2xx"
}

# Ends nginx through its pid file: SIGQUIT is what `nginx -s quit` sends,
# without re-reading the config (and loading the module) to find the pid.
nginx_stop() {
    local pid
    pid_alive "$NGINX_PID" || return 0
    pid=$(<"$NGINX_PID")
    kill -QUIT "$pid" 2>/dev/null || true
    if ! wait_pid_gone "$pid" 150; then
        warn "nginx did not quit gracefully; terminating"
        kill -TERM "$pid" 2>/dev/null || true
        wait_pid_gone "$pid" 50 || kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stop: nginx stopped"
}

var_dirs() {
    mkdir -p "$VAR"/{log,run,redis,keys} \
        "$VAR"/tmp/{client_body,proxy,fastcgi,uwsgi,scgi}
    # nginx workers run as nobody when started as root: they must reach the
    # temp folders (nginx chowns each one to them) and the logs.
    chmod 0755 "$VAR" "$VAR/log" "$VAR/run" "$VAR/tmp"
    chmod 0700 "$VAR/keys" "$VAR/redis"
    if is_root && ! runuser -u nobody -- test -x "$VAR/tmp" 2>/dev/null; then
        warn "user nobody cannot reach $VAR/tmp (a parent folder is not searchable)"
    fi
}

cmd_start() {
    var_dirs
    pg_start
    redis_start
    (
        export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=usermgmt PGDATABASE=usermgmt
        cmd_migrate
        cmd_bootstrap
    )
    nginx_start
}

cmd_stop() {
    nginx_stop
    redis_stop
    pg_stop
}

cmd_status() {
    local s
    s=stopped; pid_alive "$NGINX_PID" && s="running (pid $(<"$NGINX_PID"))"
    say "nginx:      $s"
    s=stopped; pid_alive "$REDIS_PID" && s="running (pid $(<"$REDIS_PID"))"
    say "redis:      $s"
    s=stopped; pg_running && s="running ($PGDATA_DIR)"
    say "postgresql: $s"
}

RUN_TAIL_PID=""

cmd_run() {
    cmd_deps
    cmd_build
    # Whatever ends this command (Ctrl-C, a failed start) stops the servers.
    trap 'run_cleanup' EXIT
    trap 'exit 130' INT TERM
    cmd_start
    say "run: following var/log/error.log (Ctrl-C stops everything)"
    tail -n 20 -F "$VAR/log/error.log" &
    RUN_TAIL_PID=$!
    wait "$RUN_TAIL_PID"
}

run_cleanup() {
    trap - EXIT INT TERM
    [[ -n $RUN_TAIL_PID ]] && kill "$RUN_TAIL_PID" 2>/dev/null
    say ""
    cmd_stop
}

cmd_test() {
    local args=() paths=0 a
    for a in "$@"; do
        case $a in
            --valgrind) export USERMGMT_VALGRIND=1 ;;
            *) args+=("$a")
               [[ $a != -* && -e $a ]] && paths=1 ;;
        esac
    done
    [[ $paths == 1 ]] || args+=(t/)
    cmd_deps
    cmd_build
    exec prove -r "${args[@]}"
}

cmd_bench() {
    cmd_deps
    cmd_build
    [[ -x $ROOT/bench/run.sh ]] || die "bench: bench/run.sh missing"
    exec "$ROOT/bench/run.sh" "$@"
}

# --- main -------------------------------------------------------------------

[[ $# -gt 0 ]] || { usage >&2; exit 2; }
cmd=$1
shift
case $cmd in
    deps)      cmd_deps ;;
    build)     cmd_build "$@" ;;
    start)     cmd_start ;;
    stop)      cmd_stop ;;
    status)    cmd_status ;;
    migrate)   cmd_migrate ;;
    bootstrap) cmd_bootstrap ;;
    run)       cmd_run ;;
    test)      cmd_test "$@" ;;
    bench)     cmd_bench "$@" ;;
    clean)     cmd_clean ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
