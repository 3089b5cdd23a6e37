# Shared by bench/run.sh and bench/users.sh: sourced, never run.  Needs
# die() and PG_BIN from the script that sources it.

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

wait_for() {                        # wait_for SECONDS WHAT COMMAND...
    local secs=$1 what=$2 i
    shift 2
    for (( i = 0; i < secs * 10; i++ )); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what did not come up within $secs s"
}

psql_admin() {                      # as the superuser, on database postgres
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres "$@"
}
