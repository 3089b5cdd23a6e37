package UM::Test;

# Test harness for usermgmt: a throw-away PostgreSQL, Redis and nginx (with
# the module loaded), each on its own free port under one temporary folder,
# and an HTTP client to talk to them.  Everything is stopped at the end of
# the test file, also when it dies.
#
#   use FindBin;
#   use lib "$FindBin::Bin/lib";
#   use Test::More;
#   use UM::Test qw(error_is);
#
#   my $t = UM::Test->new(workers => 2);
#   my $r = $t->get('/health');
#   is($r->{status}, 200, 'health answers');
#   done_testing();
#
# At done_testing() (or when the file dies) the harness stops nginx, then
# adds one last test: error.log holds no [alert]/[emerg] line and no sign of
# a crashed worker.  Under USERMGMT_VALGRIND=1 a second test reads the
# valgrind logs.  Then Redis and PostgreSQL are stopped and the temporary
# folder removed (kept when UM_KEEP=1).
#
# Only core Perl modules are used.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Test::More ();
use Test2::API qw(test2_add_callback_testing_done);
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(project_root free_port error_is is_rfc3339_utc is_uuid
                    json_decode json_encode wait_until);

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');

my %BIN = (
    initdb  => '/usr/lib/postgresql/15/bin/initdb',
    pg_ctl  => '/usr/lib/postgresql/15/bin/pg_ctl',
    psql    => _which('psql') // '/usr/lib/postgresql/15/bin/psql',
    redis   => _which('redis-server') // '/usr/bin/redis-server',
    nginx   => _which('nginx', '/usr/sbin') // '/usr/sbin/nginx',
    runuser => _which('runuser', '/usr/sbin', '/sbin') // 'runuser',
);

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

my @LIVE;           # weak references to harnesses not yet stopped
my $HOOKED;         # the testing-done callback is registered once

sub project_root { $ROOT }
sub module_path  { "$ROOT/build/ngx_http_usermgmt_module.so" }
sub valgrind     { ($ENV{USERMGMT_VALGRIND} // '') eq '1' }

###########################################################################
# construction

sub new {
    my ($class, %opt) = @_;

    my $want_nginx = exists $opt{nginx} ? $opt{nginx} : 1;

    if ($want_nginx && !-f module_path()) {
        Test::More::plan(skip_all =>
            'build/ngx_http_usermgmt_module.so is missing (./build.sh build)');
    }

    my $vg = valgrind();
    my $self = bless {
        opt         => \%opt,
        want_nginx  => $want_nginx,
        want_pg     => exists $opt{postgres} ? $opt{postgres} : 1,
        want_redis  => exists $opt{redis} ? $opt{redis} : 1,
        workers     => $opt{workers} // 2,
        timeout     => $opt{timeout} // ($vg ? 60 : 10),
        start_wait  => $vg ? 60 : 10,
        valgrind    => $vg,
        owner_pid   => $$,
        stopped     => 0,
        admin_password => 'Adm1n-' . _random_hex(12) . '-pass',
    }, $class;

    $self->_register;

    my $tmp = tempdir('usermgmt-test-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $tmp;
    $self->{tmp} = $tmp;
    make_path("$tmp/run");
    $self->_start_guard;

    $self->{ports} = [ free_port(4) ];
    @{$self}{qw(pg_port redis_port port port2)} = @{ $self->{ports} };

    # pg_port / redis_port: use the servers of another harness (a second
    # nginx node) instead of starting new ones
    for my $s (qw(pg redis)) {
        next unless defined $opt{"${s}_port"};
        $self->{"${s}_port"} = $opt{"${s}_port"};
        $self->{"want_$s"} = 0;
    }

    $self->_pg_setup    if $self->{want_pg};
    $self->_redis_start if $self->{want_redis};
    if ($self->{want_nginx}) {
        $self->write_config;
        $self->_nginx_start;
    }

    return $self;
}

sub _register {
    my ($self) = @_;

    push @LIVE, $self;
    weaken($LIVE[-1]);

    return if $HOOKED++;

    test2_add_callback_testing_done(sub { _stop_all(1) });

    for my $sig (qw(INT TERM HUP)) {
        next if defined $SIG{$sig} && ref $SIG{$sig};
        $SIG{$sig} = sub { die "caught SIG$sig\n" };
    }
}

sub _stop_all {
    my ($with_tests) = @_;
    for my $t (@LIVE) {
        next unless defined $t;
        $t->stop(tests => $with_tests);
    }
    @LIVE = grep { defined } @LIVE;
}

END {
    # Normally the testing-done callback did this already.  When the file
    # died, this END block runs before Test2's own (it was compiled later),
    # so the final checks can still be reported as tests.
    local $?;
    _stop_all(!Test2::API::test2_is_testing_done());
}

sub DESTROY {
    my ($self) = @_;
    local ($@, $!, $?);
    $self->stop(tests => ${^GLOBAL_PHASE} ne 'DESTRUCT'
                         && !Test2::API::test2_is_testing_done());
}

###########################################################################
# accessors

sub tmp            { $_[0]{tmp} }
sub port           { $_[0]{port} }
sub port2          { $_[0]{port2} }
sub pg_port        { $_[0]{pg_port} }
sub redis_port     { $_[0]{redis_port} }
sub admin_email    { 'admin@example.com' }
sub admin_password { $_[0]{admin_password} }
sub has_admin      { $_[0]{bootstrap_ok} }
sub migrated       { $_[0]{migrate_ok} }
sub workers        { $_[0]{workers} }
sub timeout        { $_[0]{timeout} }
sub conf_file      { "$_[0]{tmp}/nginx.conf" }
sub error_log_file { "$_[0]{tmp}/error.log" }

# A time bound for an assertion: $seconds, stretched under valgrind, where
# everything runs some ten times slower.
sub secs {
    my ($self, $seconds) = @_;
    return $self->{valgrind} ? $seconds * 10 : $seconds;
}

sub url {
    my ($self, $path, $port) = @_;
    $path = "/$path" unless $path =~ m{^/};
    return 'http://127.0.0.1:' . ($port // $self->{port}) . $path;
}

###########################################################################
# PostgreSQL

sub _pg_dir { "$_[0]{tmp}/pg" }

sub _pg_setup {
    my ($self) = @_;
    my $dir = $self->_pg_dir;

    make_path($dir);
    chmod 0700, $dir;
    _chown_to_postgres($dir);

    my $r = $self->_run([$BIN{initdb}, '-D', "$dir/data", '-A', 'trust',
                         '-U', 'postgres', '-E', 'UTF8', '--locale=C',
                         '--no-sync', '--no-instructions'],
                        as_postgres => 1, timeout => 120);
    die "initdb failed (rc $r->{rc}):\n$r->{out}" if $r->{rc};

    open my $fh, '>>', "$dir/data/postgresql.conf"
        or die "postgresql.conf: $!";
    print $fh <<"EOF";

# usermgmt test harness
listen_addresses = '127.0.0.1'
port = $self->{pg_port}
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
log_min_messages = warning
EOF
    close $fh;

    $self->start_pg;

    $self->psql_super('CREATE ROLE usermgmt LOGIN');
    $self->psql_super('CREATE DATABASE usermgmt OWNER usermgmt');

    $self->_migrate;
    $self->_bootstrap;
}

sub pg_env {
    my ($self) = @_;
    return (
        PGHOST     => '127.0.0.1',
        PGPORT     => $self->{pg_port},
        PGUSER     => 'usermgmt',
        PGDATABASE => 'usermgmt',
    );
}

sub _migrate {
    my ($self) = @_;
    my $build = "$ROOT/build.sh";

    if (-x $build && _file_mentions($build, 'migrate')) {
        my $r = $self->_run([$build, 'migrate'], env => { $self->pg_env },
                            cwd => $ROOT, timeout => 300);
        if ($r->{rc}) {
            die "./build.sh migrate failed (rc $r->{rc}):\n$r->{out}";
        }
        $self->{migrate_ok} = 1;
        return;
    }

    # build.sh (or its migrate step) is not there yet: apply the files
    # ourselves, in order, so the rest of the tests can run.
    Test::More::diag('build.sh migrate is not available: applying '
                     . 'sql/migrations/*.sql directly');
    for my $file (sort glob("$ROOT/sql/migrations/*.sql")) {
        my $r = $self->_run([$BIN{psql}, '-X', '-q', '-v', 'ON_ERROR_STOP=1',
                             '-1', '-f', $file],
                            env => { $self->pg_env }, timeout => 120);
        die "migration $file failed:\n$r->{out}" if $r->{rc};
    }
    $self->{migrate_ok} = 1;
}

sub _bootstrap {
    my ($self) = @_;
    my $build = "$ROOT/build.sh";

    $self->{bootstrap_ok} = 0;

    unless (-x $build && _file_mentions($build, 'bootstrap')) {
        Test::More::diag('build.sh bootstrap is not available: '
                         . 'tests that need the admin or the default '
                         . 'organization will fail or skip');
        return;
    }

    my $r = $self->_run([$build, 'bootstrap'],
                        env => { $self->pg_env,
                                 USERMGMT_ADMIN_EMAIL => $self->admin_email,
                                 USERMGMT_ADMIN_PASSWORD =>
                                     $self->admin_password },
                        cwd => $ROOT, timeout => 120);
    if ($r->{rc}) {
        Test::More::diag("./build.sh bootstrap failed (rc $r->{rc}):\n"
                         . $r->{out});
        return;
    }
    $self->{bootstrap_ok} = 1;
}

sub start_pg {
    my ($self) = @_;
    my $dir = $self->_pg_dir;
    my $r = $self->_run([$BIN{pg_ctl}, 'start', '-D', "$dir/data",
                         '-l', "$dir/postgres.log", '-w', '-t', '60', '-s'],
                        as_postgres => 1, timeout => 90);
    if ($r->{rc}) {
        my $log = _slurp("$dir/postgres.log") // '';
        die "pg_ctl start failed (rc $r->{rc}):\n$r->{out}\n$log";
    }
    $self->{pg_running} = 1;
    return 1;
}

sub stop_pg {
    my ($self) = @_;
    return 1 unless $self->{pg_running};
    # With synchronous_commit=off the last commits may still sit in the WAL
    # buffers, and an immediate stop would lose them: write them out first.
    # The stop itself stays abrupt for the clients.
    eval { $self->psql_super('CHECKPOINT') };
    my $r = $self->_run([$BIN{pg_ctl}, 'stop', '-D', $self->_pg_dir . '/data',
                         '-m', 'immediate', '-w', '-t', '60', '-s'],
                        as_postgres => 1, timeout => 90);
    Test::More::diag("pg_ctl stop failed:\n$r->{out}") if $r->{rc};
    $self->{pg_running} = 0;
    return !$r->{rc};
}

sub pg_running { $_[0]{pg_running} }

# $t->psql($sql, @bind) or $t->psql($sql, {name => value, ...})
#
# Runs $sql through psql -At as the usermgmt role.  Values travel as psql
# variables: write :'p1', :'p2', ... in $sql for @bind (or :'name' for a
# hash), never splice them into the text.  Returns the output lines (the
# joined text in scalar context); dies with psql's message on an error.
sub psql {
    my ($self, $sql, @bind) = @_;
    return $self->_psql('usermgmt', 'usermgmt', $sql, @bind);
}

sub psql_super {
    my ($self, $sql, @bind) = @_;
    return $self->_psql('postgres', 'postgres', $sql, @bind);
}

sub _psql_cmd {
    my ($self, $user, $db, @bind) = @_;
    my @vars;
    if (@bind == 1 && ref $bind[0] eq 'HASH') {
        my $h = $bind[0];
        @vars = map { ('-v', "$_=$h->{$_}") } sort keys %$h;
    } else {
        @vars = map { ('-v', 'p' . ($_ + 1) . "=$bind[$_]") } 0 .. $#bind;
    }
    return [$BIN{psql}, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
            '-h', '127.0.0.1', '-p', $self->{pg_port}, '-U', $user,
            '-d', $db, @vars, '-f', '-'];
}

sub _psql {
    my ($self, $user, $db, $sql, @bind) = @_;
    my $r = $self->_run($self->_psql_cmd($user, $db, @bind),
                        stdin => $sql, timeout => 60, split_err => 1);
    die "psql failed (rc $r->{rc}): $r->{err}\nSQL: $sql\n" if $r->{rc};
    my @lines = split /\n/, $r->{out};
    return wantarray ? @lines : join("\n", @lines);
}

# Runs psql in the background; returns a pid for wait_bg().
sub psql_bg {
    my ($self, $sql, @bind) = @_;
    return $self->_spawn($self->_psql_cmd('usermgmt', 'usermgmt', @bind),
                         stdin => $sql);
}

# Waits (bounded) for a pid from psql_bg(); returns its exit status, or
# undef after killing it when it did not end in time.
sub wait_bg {
    my ($self, $pid, $timeout) = @_;
    my $end = time + ($timeout // 30);
    while (time < $end) {
        my $w = waitpid($pid, WNOHANG);
        return $? >> 8 if $w == $pid;
        return undef if $w < 0;
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return undef;
}

###########################################################################
# Redis

sub _redis_dir { "$_[0]{tmp}/redis" }

sub _redis_start {
    my ($self) = @_;
    my $dir = $self->_redis_dir;
    make_path($dir);

    unlink "$dir/redis.pid";
    # option redis_server_args: more redis-server arguments (an array ref)
    my $r = $self->_run([$BIN{redis}, '--port', $self->{redis_port},
                         '--bind', '127.0.0.1', '--save', '',
                         '--appendonly', 'no', '--daemonize', 'yes',
                         '--pidfile', "$dir/redis.pid",
                         '--logfile', "$dir/redis.log", '--dir', $dir,
                         @{ $self->{opt}{redis_server_args} // [] }],
                        timeout => 30);
    die "redis-server failed (rc $r->{rc}):\n$r->{out}" if $r->{rc};

    my $ok = wait_until(sub {
        my $pong = eval { $self->redis_cli('PING') };
        defined $pong && $pong eq 'PONG';
    }, $self->{start_wait});
    unless ($ok) {
        my $log = _slurp("$dir/redis.log") // '';
        die "redis-server did not answer PING:\n$log";
    }
    $self->{redis_pid} = _read_pid("$dir/redis.pid");
    $self->{redis_running} = 1;
    return 1;
}

sub start_redis { $_[0]->_redis_start }

sub stop_redis {
    my ($self) = @_;
    return 1 unless $self->{redis_running};
    my $pid = $self->{redis_pid} // _read_pid($self->_redis_dir . '/redis.pid');
    $self->{redis_running} = 0;
    return 1 unless $pid;
    _terminate($pid, 10);
    return 1;
}

sub redis_running { $_[0]{redis_running} }

# $t->redis_cli('SET', 'k', 'v') talks RESP to the test Redis directly.
# Returns the reply: a string, an integer, undef (nil) or an array ref;
# dies on a Redis error reply.
sub redis_cli {
    my ($self, @args) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{redis_port},
                                  Proto => 'tcp', Timeout => 5)
        or die "redis connect: $!\n";
    $s->autoflush(1);
    my $cmd = '*' . scalar(@args) . "\r\n";
    $cmd .= '$' . length($_) . "\r\n$_\r\n" for @args;
    print {$s} $cmd;
    my $reply = _resp_read($s);
    close $s;
    return $reply;
}

sub _resp_read {
    my ($s) = @_;
    my $line = <$s>;
    die "redis: connection closed\n" unless defined $line;
    $line =~ s/\r\n\z//;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $type eq '+';
    die "redis error: $rest\n" if $type eq '-';
    return 0 + $rest if $type eq ':';
    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length($buf) < $rest + 2) {
            my $n = read($s, $buf, $rest + 2 - length($buf), length($buf));
            die "redis: short read\n" unless $n;
        }
        return substr($buf, 0, $rest);
    }
    if ($type eq '*') {
        return undef if $rest < 0;
        return [ map { _resp_read($s) } 1 .. $rest ];
    }
    die "redis: unexpected reply '$line'\n";
}

###########################################################################
# nginx

# The nginx.conf text for the harness options (see new()).
sub config_text {
    my ($self, %o) = @_;
    %o = (%{ $self->{opt} }, %o);
    my $tmp = $self->{tmp};
    my $vg = $self->{valgrind};

    my $http;
    if (defined $o{config}) {
        $http = $o{config};
    } else {
        my $pg = _params({ max => 4, timeout => $vg ? '10s' : '2s' },
                         $o{pg_args});
        my $redis = _params({ timeout => $vg ? '2s' : '50ms' },
                            $o{redis_args});
        my $access = $o{access_log} ? "access_log $tmp/access.log;"
                                    : 'access_log off;';
        my $jwt = !exists $o{jwt_keys}
            ? 'usermgmt_jwt_key hs256 %%JWTKEY%% kid=%%JWTKID%%;'
            : $o{jwt_keys} // '';
        my $mfa = !exists $o{mfa_key}
            ? 'usermgmt_mfa_key %%MFAKEY%%;'
            : $o{mfa_key} // '';
        my $http_extra = $o{http_extra} // '';
        my $server_extra = $o{server_extra} // '';
        $http = <<"EOF";
    $access
    client_max_body_size 1m;

    usermgmt_postgres "hostaddr=127.0.0.1 port=%%PGPORT%% dbname=usermgmt user=usermgmt" $pg;
    usermgmt_redis 127.0.0.1:%%REDISPORT%% $redis;
    $jwt
    $mfa

$http_extra
    server {
        listen 127.0.0.1:%%PORT%%;

        location /api/v1/ { usermgmt_api; }
        location = /health { usermgmt_health; }
        location = /ready { usermgmt_ready; }
        location = /metrics { usermgmt_metrics; }
        location = /.well-known/jwks.json { usermgmt_jwks; }

$server_extra
    }
EOF
    }

    my $workers = $o{workers} // $self->{workers};
    my $main_extra = $o{main_extra} // '';
    my $module = module_path();
    my $text = <<"EOF";
# generated by t/lib/UM/Test.pm
load_module $module;

master_process on;
daemon on;
worker_processes $workers;
pid $tmp/nginx.pid;
error_log $tmp/error.log info;
$main_extra
events {
    worker_connections 1024;
}

http {
    client_body_temp_path $tmp/tmp/client_body;
    proxy_temp_path $tmp/tmp/proxy;
    fastcgi_temp_path $tmp/tmp/fastcgi;
    uwsgi_temp_path $tmp/tmp/uwsgi;
    scgi_temp_path $tmp/tmp/scgi;

$http
}
EOF
    my %ph = (PGPORT => $self->{pg_port}, REDISPORT => $self->{redis_port},
              PORT => $self->{port}, PORT2 => $self->{port2},
              TMPDIR => $tmp, ROOT => $ROOT, JWTKEY => $self->jwt_key_file,
              JWTKID => $self->jwt_kid, MFAKEY => $self->mfa_key_file);
    $text =~ s/%%(PGPORT|REDISPORT|PORT2|PORT|TMPDIR|ROOT|JWTKEY|JWTKID|MFAKEY)%%
              /$ph{$1}/gx;
    return $text;
}

# Writes nginx.conf (options as for new(), merged over the ones given
# there); call reload() afterwards to apply it to a running nginx.
sub write_config {
    my ($self, %o) = @_;
    my $tmp = $self->{tmp};
    make_path("$tmp/tmp");
    chmod 01777, "$tmp/tmp";
    for (qw(client_body proxy fastcgi uwsgi scgi)) {
        make_path("$tmp/tmp/$_");
        chmod 01777, "$tmp/tmp/$_";
    }
    %{ $self->{opt} } = (%{ $self->{opt} }, %o) if %o;
    $self->_make_jwt_key;
    _spew($self->conf_file, $self->config_text);
}

# The HS256 signing secret of the test configuration: 64 random bytes in
# $tmp/keys/jwt-hs256.key, key id "test".
sub jwt_key_file { "$_[0]{tmp}/keys/jwt-hs256.key" }
sub jwt_kid      { 'test' }

sub jwt_secret {
    my ($self) = @_;
    return _slurp($self->jwt_key_file);
}

sub _make_jwt_key {
    my ($self) = @_;
    my $file = $self->jwt_key_file;
    make_path(dirname($file));
    chmod 0700, dirname($file);
    my $old = umask 077;
    _spew($file, pack('H*', _random_hex(64))) unless -s $file;
    # the key sealing TOTP secrets: 32 bytes as hex
    _spew($self->mfa_key_file, _random_hex(32) . "\n")
        unless -s $self->mfa_key_file;
    umask $old;
}

sub mfa_key_file { "$_[0]{tmp}/keys/mfa.key" }

sub _nginx_cmd {
    my ($self, @args) = @_;
    my $tmp = $self->{tmp};
    my @cmd = ($BIN{nginx}, '-p', "$tmp/", '-c', $self->conf_file,
               '-e', "$tmp/error.log", @args);
    return @cmd;
}

sub _nginx_start {
    my ($self) = @_;
    my $tmp = $self->{tmp};
    my @cmd = $self->_nginx_cmd;

    if ($self->{valgrind}) {
        unshift @cmd, 'valgrind', '--tool=memcheck', '--trace-children=yes',
            '--error-exitcode=0', '--track-origins=no', '--leak-check=full',
            '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
            "--log-file=$tmp/valgrind.%p.log",
            "--suppressions=$ROOT/t/valgrind.supp";
    }

    unlink "$tmp/nginx.pid";
    my $r = $self->_run(\@cmd, timeout => $self->{start_wait} + 30);
    if ($r->{rc}) {
        die "nginx did not start (rc $r->{rc}):\n$r->{out}\n"
            . ($self->error_log // '');
    }

    my $up = wait_until(sub {
        -s "$tmp/nginx.pid" && _port_open($self->{port});
    }, $self->{start_wait});
    $self->{nginx_pid} = _read_pid("$tmp/nginx.pid");
    $self->{nginx_running} = 1 if $self->{nginx_pid};
    die "nginx is not listening on port $self->{port}:\n"
        . ($self->error_log // '') unless $up;

    my $want = $self->{opt}{workers} // $self->{workers};
    wait_until(sub { my @p = $self->nginx_pids; @p == $want },
               $self->{start_wait})
        or Test::More::diag('nginx: ' . scalar(my @p = $self->nginx_pids)
                            . " workers running, $want expected");
    return 1;
}

sub nginx_master_pid {
    my ($self) = @_;
    return _read_pid("$self->{tmp}/nginx.pid") // $self->{nginx_pid};
}

# The pids of the running nginx worker processes, sorted.
sub nginx_pids {
    my ($self) = @_;
    my $master = $self->nginx_master_pid or return;
    my @pids = sort { $a <=> $b } _children_of($master);
    return @pids;
}

# nginx -s reload, then wait (bounded) until the old workers are gone and
# the new generation is complete.  Returns true when that happened.
sub reload {
    my ($self, %o) = @_;
    $self->write_config(%o) if %o;
    my @old = $self->nginx_pids;
    my $r = $self->_run([$self->_nginx_cmd('-s', 'reload')], timeout => 30);
    if ($r->{rc}) {
        Test::More::diag("nginx -s reload failed:\n$r->{out}");
        return 0;
    }
    my $want = $self->{opt}{workers} // $self->{workers};
    my $ok = wait_until(sub {
        my %now = map { $_ => 1 } $self->nginx_pids;
        return 0 if grep { $now{$_} } @old;
        return scalar(keys %now) == $want;
    }, $self->{valgrind} ? 60 : 10);
    Test::More::diag('reload: the old workers did not go away in time')
        unless $ok;
    return $ok;
}

# Runs "nginx -t" on the current config; returns {rc, out}.
sub nginx_test_config {
    my ($self) = @_;
    return $self->_run([$self->_nginx_cmd('-t')], timeout => 60);
}

sub error_log {
    my ($self) = @_;
    return _slurp("$self->{tmp}/error.log");
}

sub _stop_nginx {
    my ($self) = @_;
    return unless $self->{nginx_running};
    $self->{nginx_running} = 0;

    my $master = $self->nginx_master_pid or return;
    my @workers = _children_of($master);
    kill 'QUIT', $master;
    my $wait = $self->{valgrind} ? 60 : 10;
    my $gone = wait_until(sub { !_alive($master) }, $wait);
    unless ($gone) {
        Test::More::diag("nginx master $master ignored QUIT for ${wait}s, "
                         . 'terminating');
        push @workers, _children_of($master);
        _terminate($master, 5);
    }
    _terminate($_, 5) for grep { _alive($_) } @workers;
}

###########################################################################
# HTTP

sub http {
    my ($self) = @_;
    return $self->{http} //= HTTP::Tiny->new(
        timeout    => $self->{timeout},
        keep_alive => 1,
        agent      => 'usermgmt-tests/1',
        max_redirect => 0,
    );
}

# $t->request($method, $path, {headers => {...}, body => $str_or_ref,
#                               port => $other_port})
# Returns {status, reason, headers (lower-case keys), content, json,
# elapsed (seconds)}.  A body that is a reference is sent as JSON.
sub request {
    my ($self, $method, $path, $o) = @_;
    $o //= {};
    my %headers = %{ $o->{headers} // {} };
    my %args = (headers => \%headers);

    if (defined $o->{body}) {
        if (ref $o->{body}) {
            $args{content} = $JSON->encode($o->{body});
            $headers{'content-type'} = 'application/json'
                unless grep { lc eq 'content-type' } keys %headers;
        } else {
            $args{content} = $o->{body};
        }
    }

    my $http = $o->{fresh}
        ? HTTP::Tiny->new(timeout => $self->{timeout}, keep_alive => 0,
                          max_redirect => 0)
        : $self->http;

    my $t0 = time;
    my $res = $http->request($method, $self->url($path, $o->{port}), \%args);
    my $elapsed = time - $t0;

    my $json;
    if (defined $res->{content} && length $res->{content}) {
        $json = eval { $JSON->decode($res->{content}) };
    }
    return {
        status  => $res->{status},
        reason  => $res->{reason},
        headers => $res->{headers} // {},
        content => $res->{content},
        json    => $json,
        elapsed => $elapsed,
    };
}

sub get    { my ($s, $p, %o) = @_; $s->request('GET', $p, \%o) }
sub head   { my ($s, $p, %o) = @_; $s->request('HEAD', $p, \%o) }
sub delete { my ($s, $p, %o) = @_; $s->request('DELETE', $p, \%o) }
sub post   { my ($s, $p, $b, %o) = @_; $s->request('POST', $p, { %o, body => $b }) }
sub put    { my ($s, $p, $b, %o) = @_; $s->request('PUT', $p, { %o, body => $b }) }
sub patch  { my ($s, $p, $b, %o) = @_; $s->request('PATCH', $p, { %o, body => $b }) }

###########################################################################
# accounts and tokens

# $t->register(%fields): POST /api/v1/auth/register with %fields as the
# JSON body; returns the response.
sub register {
    my ($self, %fields) = @_;
    return $self->post('/api/v1/auth/register', \%fields);
}

# $t->login($email, $password [, %more_fields]): POST /api/v1/auth/login;
# returns the response.
sub login {
    my ($self, $email, $password, %more) = @_;
    return $self->post('/api/v1/auth/login',
                       { email => $email, password => $password, %more });
}

# Headers for a bearer token, for the headers option of request():
#   $t->get('/api/v1/users/me', headers => $t->auth_header($token))
sub auth_header {
    my ($self, $token, %more) = @_;
    return { authorization => "Bearer $token", %more };
}

# A unique e-mail address for a test account.
sub unique_email {
    my ($self, $prefix) = @_;
    return lc(($prefix // 'user') . '-' . $$ . '-' . ++$self->{emails} . '-'
              . _random_hex(3) . '@example.com');
}

# $t->new_user(%fields): registers an account (a unique e-mail and a good
# password unless given) and logs it in.  Dies when either step fails.
# Returns {id, email, password, user, access_token, refresh_token, login}.
sub new_user {
    my ($self, %fields) = @_;
    $fields{email} //= $self->unique_email;
    $fields{password} //= 'Tq7-' . _random_hex(8) . '-zW';
    my $r = $self->register(%fields);
    die "register $fields{email}: $r->{status} " . ($r->{content} // '')
        . "\n" unless $r->{status} == 201;
    my $user = $r->{json}{data};
    my $l = $self->login($fields{email}, $fields{password});
    die "login $fields{email}: $l->{status} " . ($l->{content} // '') . "\n"
        unless $l->{status} == 200;
    my $d = $l->{json}{data};
    return { id => $user->{id}, email => $fields{email},
             password => $fields{password}, user => $user,
             access_token => $d->{access_token},
             refresh_token => $d->{refresh_token}, login => $d };
}

# Sends $raw bytes as they are on a new connection and returns what came
# back until the server closed or the timeout: for requests HTTP::Tiny
# refuses to build.  Returns {status, headers, content, raw}.
sub raw_request {
    my ($self, $raw, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // $self->{port},
                                  Proto => 'tcp', Timeout => 5)
        or return { status => 599, raw => '', content => "connect: $!" };
    local $SIG{PIPE} = 'IGNORE';
    print {$s} $raw;
    my $buf = '';
    my $end = time + ($o{timeout} // $self->{timeout});
    my $sel = '';
    vec($sel, fileno($s), 1) = 1;
    while (time < $end) {
        my $r = $sel;
        last unless select($r, undef, undef, 0.2) >= 0;
        next unless vec($r, fileno($s), 1);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    my %h;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\d\.\d (\d{3})};
    for my $line (split /\r\n/, $head // '') {
        $h{lc $1} = $2 if $line =~ /^([^:\s]+):\s*(.*)$/;
    }
    return { status => $status // 599, headers => \%h,
             content => $body, raw => $buf };
}

###########################################################################
# stopping and the final checks

sub stop {
    my ($self, %o) = @_;
    return if $self->{stopped}++;
    return unless ($self->{owner_pid} // 0) == $$;
    my $tests = $o{tests};

    if (my $guard = delete $self->{guard_pid}) {
        kill 'TERM', $guard;
        waitpid($guard, 0);
    }

    $self->_stop_nginx;

    my $failed = 0;
    if ($self->{want_nginx} && -e "$self->{tmp}/error.log") {
        $failed += !$self->_check_error_log($tests);
    }
    if ($self->{valgrind} && $self->{want_nginx}) {
        $failed += !$self->_check_valgrind($tests);
    }

    $self->stop_redis;
    $self->stop_pg;

    my $ctx_failed = !Test::More->builder->is_passing;
    my $tmp = $self->{tmp};
    return unless $tmp;

    if (($ENV{UM_KEEP} // '') eq '1') {
        _note_or_diag($tests, "kept test folder $tmp (UM_KEEP=1)");
    } else {
        if ($failed || $ctx_failed) {
            _note_or_diag($tests, "test folder was $tmp "
                                  . '(removed; set UM_KEEP=1 to keep it)');
            my $log = $self->error_log // '';
            my @tail = (split /\n/, $log)[-40 .. -1];
            @tail = grep { defined } @tail;
            _note_or_diag($tests, "error.log tail:\n" . join("\n", @tail))
                if @tail;
        }
        remove_tree($tmp);
    }
}

sub _note_or_diag {
    my ($tests, $msg) = @_;
    if ($tests && !Test2::API::test2_is_testing_done()) {
        Test::More::diag($msg);
    } else {
        print STDERR map { "# $_\n" } split /\n/, $msg;
    }
}

# The test every file gets: no [alert]/[emerg] and no crashed worker.
sub _check_error_log {
    my ($self, $tests) = @_;
    my $log = $self->error_log // '';
    my @bad = grep {
        /\[(?:alert|emerg)\]/
        || /signal 11|signal 6|exited on signal|core dumped/
    } split /\n/, $log;
    my $name = 'error.log: no [alert], [emerg] or crashed worker';
    if ($tests) {
        Test::More::ok(!@bad, $name)
            or Test::More::diag(join "\n", @bad);
    } elsif (@bad) {
        print STDERR "# not checked as a test (file ended early): $name\n";
        print STDERR "# $_\n" for @bad;
    }
    return !@bad;
}

sub _check_valgrind {
    my ($self, $tests) = @_;
    my @bad;
    for my $file (sort glob("$self->{tmp}/valgrind.*.log")) {
        my $text = _slurp($file) // '';
        my $block = '';
        for my $line (split /\n/, $text . "\n==0== \n") {
            if ($line =~ /^==\d+==\s*$/) {
                push @bad, "$file:\n$block"
                    if $block =~ /Invalid\ read|Invalid\ write|Invalid\ free
                                  |uninitialised|definitely\ lost/x
                    && $block =~ /ngx_http_usermgmt|\bum_/;
                $block = '';
            } else {
                $block .= "$line\n";
            }
        }
    }
    my $name = 'valgrind: no memory error or leak in the module';
    if ($tests) {
        Test::More::ok(!@bad, $name)
            or Test::More::diag(join "\n", @bad);
    } elsif (@bad) {
        print STDERR "# $_\n" for @bad;
    }
    return !@bad;
}

###########################################################################
# the guard: cleanup when the test process is killed outright

# A test killed with SIGKILL (a CI timeout, say) runs no END block.  A small
# guard process, in its own session so a process-group kill spares it,
# waits for the test process to go away without having stopped it, and
# then stops nginx, Redis and PostgreSQL from their pid files.
sub _start_guard {
    my ($self) = @_;
    my $parent = $$;
    my $pid = fork;
    return unless defined $pid;
    if ($pid) {
        $self->{guard_pid} = $pid;
        return;
    }

    POSIX::setsid();
    # let go of the TAP pipe: prove waits for every writer to close it
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    if (opendir my $dh, '/proc/self/fd') {
        my @fds = grep { /^\d+$/ && $_ > 2 } readdir $dh;
        closedir $dh;
        POSIX::close($_) for @fds;
    }
    $SIG{$_} = 'DEFAULT' for qw(INT HUP PIPE);
    $SIG{TERM} = sub { POSIX::_exit(0) };

    sleep 0.5 while getppid() == $parent;

    $self->_emergency_cleanup;
    POSIX::_exit(0);
}

sub _emergency_cleanup {
    my ($self) = @_;
    my $tmp = $self->{tmp};

    if (my $master = _read_pid("$tmp/nginx.pid")) {
        my @workers = _children_of($master);
        kill 'QUIT', $master;
        unless (wait_until(sub { !_alive($master) }, 5)) {
            push @workers, _children_of($master);
            _terminate($master, 2);
        }
        _terminate($_, 2) for @workers;
    }
    if (my $redis = _read_pid("$tmp/redis/redis.pid")) {
        _terminate($redis, 5);
    }
    if (my $pg = _read_pid("$tmp/pg/data/postmaster.pid")) {
        # SIGQUIT is PostgreSQL's immediate shutdown
        kill 'QUIT', $pg;
        wait_until(sub { !_alive($pg) }, 10) or kill 'KILL', $pg;
    }
    remove_tree($tmp) unless ($ENV{UM_KEEP} // '') eq '1';
}

###########################################################################
# a config check without servers: UM::Test->check_config(%opts)

# Writes a config like new() would (same options; the ports are free but
# nothing listens) into its own temporary folder and runs "nginx -t".
# Returns {rc, out, file, text}.
sub check_config {
    my ($class, %opt) = @_;
    my $self = bless {
        opt => \%opt, workers => $opt{workers} // 1,
        valgrind => 0, stopped => 1, owner_pid => $$,
    }, ref $class || $class;
    my $tmp = tempdir('usermgmt-conf-XXXXXX', TMPDIR => 1,
                      CLEANUP => ($ENV{UM_KEEP} // '') ne '1');
    chmod 0755, $tmp;
    $self->{tmp} = $tmp;
    $self->{ports} = [ free_port(4) ];
    @{$self}{qw(pg_port redis_port port port2)} = @{ $self->{ports} };
    $self->write_config;
    my $r = $self->nginx_test_config;
    return { rc => $r->{rc}, out => $r->{out}, file => $self->conf_file,
             text => $self->config_text };
}

###########################################################################
# process helpers

# Runs @$cmd to its end (bounded by timeout), stdout and stderr captured.
# Options: env, cwd, stdin (string), as_postgres, timeout, split_err.
sub _run {
    my ($self, $cmd, %o) = @_;
    my $dir = (ref $self && $self->{tmp}) ? "$self->{tmp}/run"
                                          : tempdir(CLEANUP => 1);
    make_path($dir) unless -d $dir;
    my $n = ref $self ? ++$self->{runs} : 0;
    my $base = "$dir/cmd.$n.$$";

    if (defined $o{stdin}) {
        _spew("$base.in", $o{stdin});
    }

    my @cmd = @$cmd;
    if ($o{as_postgres} && $> == 0) {
        chmod 0644, "$base.in" if defined $o{stdin};
        @cmd = ($BIN{runuser}, '-u', 'postgres', '--', @cmd);
    }

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        eval {
            if (my $env = $o{env}) {
                $ENV{$_} = $env->{$_} for keys %$env;
            }
            my $cwd = $o{cwd} // (ref $self && $self->{tmp}) // '/';
            chdir $cwd or chdir '/';
            open STDIN, '<', defined $o{stdin} ? "$base.in" : '/dev/null'
                or die "stdin: $!";
            open STDOUT, '>', "$base.out" or die "stdout: $!";
            if ($o{split_err}) {
                open STDERR, '>', "$base.err" or die "stderr: $!";
            } else {
                open STDERR, '>&', \*STDOUT or die "stderr: $!";
            }
            exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!";
        };
        print STDERR $@;
        POSIX::_exit(127);
    }

    my $end = time + ($o{timeout} // 60);
    my $status;
    while (1) {
        my $w = waitpid($pid, WNOHANG);
        if ($w == $pid) { $status = $?; last }
        if (time > $end) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            $status = -1;
            last;
        }
        sleep 0.01;
    }

    my $out = _slurp("$base.out") // '';
    my $err = _slurp("$base.err") // '';
    unlink "$base.in", "$base.out", "$base.err";
    $out .= "\n(killed after $o{timeout}s)" if $status == -1;
    my $rc = $status == -1 ? 124
           : $status & 127 ? 128 + ($status & 127)
           : $status >> 8;
    return { rc => $rc, out => $out, err => $err };
}

# Starts @$cmd in the background (stdout/stderr to a file under tmp/run);
# returns the pid.
sub _spawn {
    my ($self, $cmd, %o) = @_;
    my $base = "$self->{tmp}/run/bg." . ++$self->{runs} . ".$$";
    _spew("$base.in", $o{stdin} // '');
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', "$base.in";
        open STDOUT, '>', "$base.out";
        open STDERR, '>&', \*STDOUT;
        { exec { $cmd->[0] } @$cmd }
        POSIX::_exit(127);
    }
    return $pid;
}

sub _children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = _slurp("/proc/$pid/stat") // next;
        # pid (comm) state ppid ...; comm may hold spaces and parens
        next unless $stat =~ /\)\s+(\S)\s+(\d+)/;
        next if $1 eq 'Z';
        push @kids, 0 + $pid if $2 == $ppid;
    }
    closedir $dh;
    return @kids;
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    my $stat = _slurp("/proc/$pid/stat") // return 0;
    return $stat !~ /\)\s+Z\s/;
}

# TERM, then KILL after $wait seconds.
sub _terminate {
    my ($pid, $wait) = @_;
    return unless _alive($pid);
    kill 'TERM', $pid;
    waitpid($pid, WNOHANG);
    return if wait_until(sub { waitpid($pid, WNOHANG); !_alive($pid) },
                         $wait);
    kill 'KILL', $pid;
    wait_until(sub { waitpid($pid, WNOHANG); !_alive($pid) }, 5);
}

sub _chown_to_postgres {
    my ($path) = @_;
    return unless $> == 0;
    my (undef, undef, $uid, $gid) = getpwnam('postgres');
    die "no postgres user to run initdb as\n" unless defined $uid;
    chown $uid, $gid, $path or die "chown $path: $!";
}

###########################################################################
# small helpers (exportable)

# free_port($n): $n distinct TCP ports free on 127.0.0.1, taken below the
# kernel's ephemeral range so outgoing connections do not collide with them.
sub free_port {
    my ($n) = @_;
    $n //= 1;
    my (@ports, @held, %seen);
    my $tries = 0;
    while (@ports < $n) {
        die "no free port found\n" if ++$tries > 2000;
        my $p = 20000 + int(rand(12000));
        next if $seen{$p}++;
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $p, Proto => 'tcp',
                                      Listen => 1, ReuseAddr => 1)
            or next;
        push @held, $s;
        push @ports, $p;
    }
    close $_ for @held;
    return wantarray ? @ports : $ports[0];
}

# wait_until(sub {...}, $seconds [, $step]): polls until true; returns the
# last value (false on timeout).
sub wait_until {
    my ($cond, $timeout, $step) = @_;
    my $end = time + ($timeout // 10);
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return $v if time >= $end;
        sleep($step // 0.05);
    }
}

# error_is($res, $status, $code, $name): the error shape of the API.
sub error_is {
    my ($res, $status, $code, $name) = @_;
    $name //= "$status $code";
    my $j = $res->{json};
    my $e = ref $j eq 'HASH' ? $j->{error} : undef;
    my @why;
    push @why, "status $res->{status}, want $status"
        unless ($res->{status} // 0) == $status;
    push @why, 'content-type is not application/json'
        unless ($res->{headers}{'content-type'} // '') =~ m{^application/json};
    if (ref $e ne 'HASH') {
        push @why, 'no {"error": {...}} object';
    } else {
        push @why, 'error.code is ' . ($e->{code} // 'missing')
            . ", want $code"
            unless defined $e->{code} && $e->{code} eq $code;
        push @why, 'error.status_code is '
            . ($e->{status_code} // 'missing') . ", want $status"
            unless defined $e->{status_code} && !ref $e->{status_code}
                && $e->{status_code} =~ /^\d+$/ && $e->{status_code} == $status;
        push @why, 'error.message is not a non-empty string'
            unless defined $e->{message} && !ref $e->{message}
                && length $e->{message};
        push @why, 'error.details is not an array'
            if exists $e->{details} && ref $e->{details} ne 'ARRAY';
    }
    my $tb = Test::More->builder;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = $tb->ok(!@why, $name);
    unless ($ok) {
        $tb->diag(join("\n", @why) . "\nbody: "
                  . (defined $res->{content}
                     ? substr($res->{content}, 0, 1000) : '(none)'));
    }
    return $ok;
}

sub is_rfc3339_utc {
    my ($s) = @_;
    return defined $s && !ref $s
        && $s =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\z/;
}

sub is_uuid {
    my ($s) = @_;
    return defined $s && !ref $s
        && $s =~ /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\z/;
}

sub json_decode { $JSON->decode($_[0]) }
sub json_encode { $JSON->encode($_[0]) }

# key=value parameters: defaults, overridden (or extended) by a string.
sub _params {
    my ($defaults, $str) = @_;
    my @order = sort keys %$defaults;
    my %v = %$defaults;
    my @extra;
    for my $tok (split ' ', $str // '') {
        if ($tok =~ /^([^=]+)=(.*)$/ && exists $v{$1}) {
            $v{$1} = $2;
        } else {
            push @extra, $tok;
        }
    }
    return join ' ', (map { "$_=$v{$_}" } @order), @extra;
}

sub _port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub _read_pid {
    my ($file) = @_;
    my $s = _slurp($file) // return undef;
    return $s =~ /(\d+)/ ? 0 + $1 : undef;
}

sub _slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s // '';
}

sub _spew {
    my ($file, $text) = @_;
    open my $fh, '>:raw', $file or die "$file: $!";
    print {$fh} $text;
    close $fh or die "$file: $!";
}

sub _file_mentions {
    my ($file, $word) = @_;
    my $text = _slurp($file) // return 0;
    return $text =~ /\b\Q$word\E\b/;
}

sub _which {
    my ($name, @extra) = @_;
    for my $d (split(/:/, $ENV{PATH} // ''), @extra) {
        return "$d/$name" if length $d && -x "$d/$name";
    }
    return undef;
}

sub _random_hex {
    my ($n) = @_;
    my $s = '';
    if (open my $fh, '<', '/dev/urandom') {
        my $bytes = '';
        read $fh, $bytes, $n;
        close $fh;
        $s = unpack 'H*', $bytes;
    } else {
        $s .= sprintf '%02x', int rand 256 for 1 .. $n;
    }
    return $s;
}

1;
