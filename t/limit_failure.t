#!/usr/bin/perl
# Rate limits when Redis fails.  Redis stopped: a fail=local zone (the
# default) still limits at its rate in the node's shared memory, a
# fail=closed zone answers 503 at once, a fail=open zone lets everything
# through without rate-limit fields; every such decision is counted.
# Redis back: limiting goes through Redis again, without a reload.  The
# script cache flushed: the next request reloads the script and is limited
# as before.  Redis slow: the answer still comes within the Redis timeout
# (50 ms) plus a little, never hangs.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test qw(error_is wait_until);

my $zones = <<'EOF';
    usermgmt_limit_zone f_local     key=ip rate=3r/m;
    usermgmt_limit_zone f_seven     key=ip rate=7r/m;
    usermgmt_limit_zone f_closed    key=ip rate=100r/m fail=closed;
    usermgmt_limit_zone f_open      key=ip rate=3r/m fail=open;
    usermgmt_limit_zone mix_open    key=ip rate=100r/m fail=open;
    usermgmt_limit_zone mix_local   key=ip rate=3r/m fail=local;
    usermgmt_limit_zone probe       key=ip rate=10000r/m fail=open;
    usermgmt_limit_zone back        key=ip rate=3r/m;
    usermgmt_limit_zone flushed     key=ip rate=3r/m;
    usermgmt_limit_zone slow_local  key=ip rate=3r/m fail=local;
    usermgmt_limit_zone slow_closed key=ip rate=100r/m fail=closed;
    usermgmt_limit_zone slow_open   key=ip rate=3r/m fail=open;
EOF

my $locations = <<'EOF';
        location = /local       { usermgmt_limit f_local; return 200 "ok\n"; }
        location = /seven       { usermgmt_limit f_seven; return 200 "ok\n"; }
        location = /closed      { usermgmt_limit f_closed; return 200 "ok\n"; }
        location = /open        { usermgmt_limit f_open; return 200 "ok\n"; }
        location = /mixed       { usermgmt_limit mix_open;
                                  usermgmt_limit mix_local;
                                  return 200 "ok\n"; }
        location = /probe       { usermgmt_limit probe; return 200 "ok\n"; }
        location = /back        { usermgmt_limit back; return 200 "ok\n"; }
        location = /flushed     { usermgmt_limit flushed; return 200 "ok\n"; }
        location = /slow_local  { usermgmt_limit slow_local; return 200 "ok\n"; }
        location = /slow_closed { usermgmt_limit slow_closed; return 200 "ok\n"; }
        location = /slow_open   { usermgmt_limit slow_open; return 200 "ok\n"; }
EOF

# DEBUG SLEEP makes Redis slow (refused by default since Redis 7)
my $t = UM::Test->new(workers => 2, http_extra => $zones,
                      server_extra => $locations,
                      redis_server_args => ['--enable-debug-command', 'yes']);

###########################################################################
# helpers

sub get { $t->get($_[0], fresh => 1) }

sub decisions {
    my $m = $t->get('/metrics', fresh => 1)->{content} // '';
    my %c;
    $c{"$1|$2"} = $3 while $m =~ /^usermgmt_ratelimit_decisions_total\{zone="([^"]+)",result="([^"]+)"\} (\d+)$/mg;
    return \%c;
}

# the counters that changed between two decisions() snapshots
sub changed {
    my ($a, $b) = @_;
    my %d;
    for (keys %$b) {
        my $n = $b->{$_} - ($a->{$_} // 0);
        $d{$_} = $n if $n;
    }
    return \%d;
}

sub counters_are {
    my ($d, $zone, $want, $name) = @_;
    my %got = map { /^\Q$zone\E\|(.*)$/ ? ($1 => $d->{$_}) : () } keys %$d;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is_deeply(\%got, $want, $name)
        or diag('got: ' . join(', ', map { "$_=$got{$_}" } sort keys %got));
}

sub no_fields {
    my ($r) = @_;
    return !grep { /^(?:x-ratelimit-|ratelimit)/ } keys %{ $r->{headers} };
}

sub zones_in {
    my ($r) = @_;
    my $v = $r->{headers}{ratelimit} // '';
    return join ',', $v =~ /"([^"]+)"/g;
}

# true when $n answers in a row of /probe on new connections came through
# Redis (a fail=open zone has rate-limit fields only then)
sub through_redis {
    my ($n) = @_;
    for (1 .. $n) {
        return 0 if no_fields(get('/probe'));
    }
    return 1;
}

###########################################################################
# Redis up

ok(through_redis(4), 'Redis up: the limits run through Redis');
my $r = get('/open');
is($r->{headers}{'x-ratelimit-remaining'}, 2,
   'Redis up: fail=open zone: rate-limit fields (remaining 2)');

###########################################################################
# Redis down

my $m0 = decisions();
$t->stop_redis;
ok(!$t->redis_running, 'Redis stopped');

my @st;
for my $i (1 .. 6) {
    $r = get('/local');
    push @st, $r->{status};
    cmp_ok($r->{elapsed}, '<', $t->secs(0.5),
           "fail=local: request $i answered within 0.5 s");
    if ($i <= 3) {
        is($r->{status}, 200, "fail=local: request $i passes");
        is($r->{headers}{'x-ratelimit-remaining'}, 3 - $i,
           "fail=local: request $i: X-RateLimit-Remaining " . (3 - $i));
        is($r->{headers}{'x-ratelimit-limit'}, 3,
           "fail=local: request $i: X-RateLimit-Limit 3");
    } else {
        error_is($r, 429, 'RATE_LIMIT_EXCEEDED',
                 "fail=local: request $i is refused");
        like($r->{headers}{'retry-after'} // '', qr/^(?:[1-9]|1\d|20)\z/,
             "fail=local: request $i: Retry-After within 1 .. 20");
    }
}
is(scalar(grep { $_ == 200 } @st), 3,
   'fail=local: exactly 3 of 6 passed with Redis down');

# 7r/m: an emission interval of 8571.43 ms, not a whole number
my @rem;
@st = ();
for my $i (1 .. 8) {
    $r = get('/seven');
    push @st, $r->{status};
    push @rem, $r->{headers}{'x-ratelimit-remaining'} // '-';
}
is_deeply(\@st, [(200) x 7, 429], 'fail=local: 7r/m: 7 pass, then 429');
is("@rem", '6 5 4 3 2 1 0 0',
   'fail=local: 7r/m: X-RateLimit-Remaining counts down 6 .. 0');

for my $i (1 .. 3) {
    $r = get('/closed');
    error_is($r, 503, 'SERVICE_UNAVAILABLE', "fail=closed: request $i: 503");
    is($r->{headers}{'retry-after'}, 1, "fail=closed: request $i: Retry-After: 1");
    cmp_ok($r->{elapsed}, '<', $t->secs(0.5),
           "fail=closed: request $i answered within 0.5 s");
}

for my $i (1 .. 5) {
    $r = get('/open');
    is($r->{status}, 200, "fail=open: request $i passes");
    ok(no_fields($r), "fail=open: request $i: no rate-limit fields")
        or diag(join "\n", map { "$_: $r->{headers}{$_}" }
                             grep { /rate/i } keys %{ $r->{headers} });
    cmp_ok($r->{elapsed}, '<', $t->secs(0.5),
           "fail=open: request $i answered within 0.5 s");
}

@st = ();
for my $i (1 .. 4) {
    $r = get('/mixed');
    push @st, $r->{status};
    is(zones_in($r), 'mix_local',
       "mixed: request $i: RateLimit names the local zone only");
}
is_deeply(\@st, [200, 200, 200, 429],
          'mixed (open + local): the local zone decides: 3 pass');

my $d = changed($m0, decisions());
counters_are($d, 'f_local', { fail_local => 6, allowed => 3, limited => 3 },
             'metrics: f_local: fail_local 6 (3 allowed, 3 limited)');
counters_are($d, 'f_closed', { fail_closed => 3 },
             'metrics: f_closed: fail_closed 3');
counters_are($d, 'f_open', { fail_open => 5 }, 'metrics: f_open: fail_open 5');
counters_are($d, 'mix_local', { fail_local => 4, allowed => 3, limited => 1 },
             'metrics: mix_local: fail_local 4');
counters_are($d, 'mix_open', { fail_open => 4 }, 'metrics: mix_open: fail_open 4');

###########################################################################
# Redis back: through Redis again, no reload

my @pids = $t->nginx_pids;
$t->start_redis;
my $t0 = time;
ok(wait_until(sub { through_redis(6) }, $t->secs(15), 0.1),
   'Redis back: the limits run through Redis again (within 15 s)');
note(sprintf 'back through Redis after %.2f s', time - $t0);
is_deeply([$t->nginx_pids], \@pids, '... the same workers (no reload)');

$m0 = decisions();
@st = map { get('/back')->{status} } 1 .. 5;
is_deeply(\@st, [200, 200, 200, 429, 429], 'back: 3 of 5 pass');
@st = map { get('/local')->{status} } 1 .. 4;
is_deeply(\@st, [200, 200, 200, 429],
          "f_local: Redis's bucket again (the node's own was used up)");
my $keys = $t->redis_cli('KEYS', 'usermgmt:rl:back:*');
is(scalar @{ $keys // [] }, 1, 'back: its bucket is in Redis');
$d = changed($m0, decisions());
counters_are($d, 'back', { allowed => 3, limited => 2 },
             'metrics: back: allowed 3, limited 2, no fallback');
counters_are($d, 'f_local', { allowed => 3, limited => 1 },
             'metrics: f_local: allowed 3, limited 1, no fallback');

###########################################################################
# SCRIPT FLUSH: NOSCRIPT, the script sent again, same decisions

sub evals {
    my $info = $t->redis_cli('INFO', 'commandstats');
    my %n;
    $n{$1} = $2 while $info =~ /^cmdstat_(eval|evalsha):calls=(\d+)/mg;
    return \%n;
}

is($t->redis_cli('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');
$m0 = decisions();
my $e0 = evals();
for my $i (1 .. 3) {
    $r = get('/flushed');
    is($r->{status}, 200, "flushed: request $i passes");
    is($r->{headers}{'x-ratelimit-remaining'}, 3 - $i,
       "flushed: request $i: remaining " . (3 - $i));
}
$r = get('/flushed');
error_is($r, 429, 'RATE_LIMIT_EXCEEDED', 'flushed: the 4th is refused');
my $e1 = evals();
is(($e1->{eval} // 0) - ($e0->{eval} // 0), 1,
   'flushed: the script text was sent once (EVAL after NOSCRIPT)');
is(($e1->{evalsha} // 0) - ($e0->{evalsha} // 0), 4,
   'flushed: four EVALSHA (the first answered NOSCRIPT)');
counters_are(changed($m0, decisions()), 'flushed',
             { allowed => 3, limited => 1 },
             'metrics: flushed: allowed 3, limited 1, no fallback');

###########################################################################
# Redis slow: DEBUG SLEEP 1 while requests come

sub redis_sleep_bg {
    my ($secs) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        eval { $t->redis_cli('DEBUG', 'SLEEP', $secs) };
        POSIX::_exit($@ ? 1 : 0);
    }
    return $pid;
}

SKIP: {
    # under valgrind the Redis timeout is raised far beyond the sleep
    skip 'timing of a slow Redis is not checked under valgrind', 15
        if UM::Test::valgrind();

    $m0 = decisions();
    my $sleeper = redis_sleep_bg(1);
    sleep 0.1;   # the sleep has begun
    my $start = time;
    my %slow;
    for my $path (qw(/slow_local /slow_closed /slow_open)) {
        $slow{$path} = get($path);
    }
    my $spent = time - $start;
    ok($spent < 0.9, 'the three requests came while Redis slept')
        or diag("they took $spent s");

    $r = $slow{'/slow_local'};
    is($r->{status}, 200, 'slow: fail=local: 200');
    cmp_ok($r->{elapsed}, '<', $t->secs(0.2), 'slow: fail=local: within 0.2 s');
    is($r->{headers}{'x-ratelimit-remaining'}, 2,
       'slow: fail=local: limited locally (remaining 2)');

    $r = $slow{'/slow_closed'};
    error_is($r, 503, 'SERVICE_UNAVAILABLE', 'slow: fail=closed: 503');
    is($r->{headers}{'retry-after'}, 1, 'slow: fail=closed: Retry-After: 1');
    cmp_ok($r->{elapsed}, '<', $t->secs(0.2), 'slow: fail=closed: within 0.2 s');

    $r = $slow{'/slow_open'};
    is($r->{status}, 200, 'slow: fail=open: 200');
    ok(no_fields($r), 'slow: fail=open: no rate-limit fields');
    cmp_ok($r->{elapsed}, '<', $t->secs(0.2), 'slow: fail=open: within 0.2 s');

    is($t->wait_bg($sleeper, 10), 0, 'DEBUG SLEEP ran and ended');

    $d = changed($m0, decisions());
    counters_are($d, 'slow_local', { fail_local => 1, allowed => 1 },
                 'metrics: slow_local: fail_local 1');
    counters_are($d, 'slow_closed', { fail_closed => 1 },
                 'metrics: slow_closed: fail_closed 1');
    counters_are($d, 'slow_open', { fail_open => 1 },
                 'metrics: slow_open: fail_open 1');

}

ok(wait_until(sub { through_redis(6) }, $t->secs(15), 0.1),
   'after the slow spell: through Redis again');
is_deeply([$t->nginx_pids], \@pids, 'the same workers all along');

done_testing();
