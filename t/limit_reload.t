#!/usr/bin/perl
# Rate limits across "nginx -s reload": the buckets (in Redis) and the
# decision counters (in shared memory) go on; zones can be added, put in
# another order and removed by a reload, each counter staying with its
# zone's name; the node's own limiter (fail=local) works after a reload.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(wait_until);

# the http-level zones and the server's locations for a list of zone names
sub config {
    my (@zones) = @_;
    return (
        http_extra => join('', map {
            "    usermgmt_limit_zone $_ key=ip rate=3r/m;\n" } @zones),
        server_extra => join('', map {
            "        location = /$_ { usermgmt_limit $_; return 200 \"ok\\n\"; }\n"
        } @zones),
    );
}

my $t = UM::Test->new(workers => 2, config('za', 'zb'));

sub get { $t->get($_[0], fresh => 1) }

sub decisions {
    my $m = $t->get('/metrics', fresh => 1)->{content} // '';
    my %c;
    $c{"$1|$2"} = $3 while $m =~ /^usermgmt_ratelimit_decisions_total\{zone="([^"]+)",result="([^"]+)"\} (\d+)$/mg;
    return \%c;
}

sub counters_ok {
    my ($want, $name) = @_;
    my $m = decisions();
    my %got = map { ($_ => $m->{$_}) } keys %$want;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is_deeply(\%got, $want, $name)
        or diag(join ', ', map { "$_=" . ($m->{$_} // 'none') } sort keys %$m);
}

# error.log from the previous call on has no [crit], [alert] or [emerg]
my $log_seen = 0;
sub log_clean {
    my ($name) = @_;
    my $log = $t->error_log // '';
    my $new = substr($log, $log_seen);
    $log_seen = length $log;
    my @bad = grep { /\[(?:crit|alert|emerg)\]/ } split /\n/, $new;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(!@bad, $name) or diag(join "\n", @bad);
}

###########################################################################

log_clean('start: no [crit], [alert] or [emerg] in error.log');

my @st = map { get('/za')->{status} } 1 .. 2;
is_deeply(\@st, [200, 200], 'za: two pass');
is(get('/zb')->{status}, 200, 'zb: one passes');
counters_ok({ 'za|allowed' => 2, 'zb|allowed' => 1 }, 'counters before any reload');

# the same configuration again
ok($t->reload, 'reload 1 (same zones): new workers took over');
@st = map { get('/za')->{status} } 1 .. 2;
is_deeply(\@st, [200, 429], 'za: the bucket went on across the reload (3rd passes, 4th refused)');
counters_ok({ 'za|allowed' => 3, 'za|limited' => 1, 'zb|allowed' => 1 },
            'the counters went on across the reload');

# the same zones in another order
ok($t->reload(config('zb', 'za')), 'reload 2 (zones in another order): new workers took over');
log_clean('reload 2: no [crit], [alert] or [emerg] in error.log');
is(get('/za')->{status}, 429, 'za: still refused (its bucket is in Redis)');
counters_ok({ 'za|allowed' => 3, 'za|limited' => 2, 'zb|allowed' => 1,
              'zb|limited' => 0 },
            'counters after reordering the zones: still under their names');

# one more zone
ok($t->reload(config('zb', 'za', 'zc')), 'reload 3 (a zone added): new workers took over');
log_clean('reload 3: no [crit], [alert] or [emerg] in error.log');
my $r = get('/zc');
is($r->{status}, 200, 'zc: the new zone answers');
is($r->{headers}{'x-ratelimit-limit'}, 3, 'zc: ... and limits (X-RateLimit-Limit 3)');
counters_ok({ 'za|allowed' => 3, 'za|limited' => 2, 'zb|allowed' => 1,
              'zc|allowed' => 1 },
            'counters after adding a zone: each zone kept its own');

# one zone less
ok($t->reload(config('zc', 'za')), 'reload 4 (a zone removed): new workers took over');
log_clean('reload 4: no [crit], [alert] or [emerg] in error.log');
is(get('/zb')->{status}, 404, 'zb: its location is gone');
my $m = decisions();
ok(!grep({ /^zb\|/ } keys %$m), 'zb: no longer in /metrics');
counters_ok({ 'za|allowed' => 3, 'za|limited' => 2, 'zc|allowed' => 1 },
            'counters after removing a zone: the others kept theirs');

# the node's own limiter after the reloads
$t->stop_redis;
@st = map { get('/za')->{status} } 1 .. 4;
is_deeply(\@st, [200, 200, 200, 429],
          'Redis down: fail=local limits after the reloads (3 of 4)');
counters_ok({ 'za|fail_local' => 4 }, 'za: fail_local 4');

done_testing();
