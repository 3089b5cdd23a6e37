#!/usr/bin/perl
# The PostgreSQL connection cache is bounded: with max=1 queue=2
# queue_timeout=200ms, while the only connection is held by a slow query,
# the surplus requests get a prompt 503 SERVICE_UNAVAILABLE with
# Retry-After (never a hang), the worker keeps serving other requests, the
# rejections are counted, and once the slow query ends the lookup works.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use JSON::PP ();
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test qw(error_is wait_until);

my $t = UM::Test->new(
    workers => 1,
    # under valgrind a first connect alone takes longer than 200 ms
    pg_args => 'max=1 queue=2 timeout=5s queue_timeout='
               . (UM::Test::valgrind() ? '2s' : '200ms'),
);

my $LOOKUP = '/api/v1/organizations/lookup?slug=default';
my $LOCK_SECONDS = 3;
my $SURPLUS = 7;

sub rejected_total {
    my $r = $t->get('/metrics', fresh => 1);
    my $sum;
    for (split /\n/, $r->{content} // '') {
        $sum += $1 if /^usermgmt_pg_queue_rejected_total(?:\{[^}]*\})?\s+(\S+)/;
    }
    return $sum;
}

my $r = $t->get($LOOKUP);
is($r->{status}, 200, 'lookup answers before the congestion')
    or diag($r->{content});
my $rejected0 = rejected_total();
ok(defined $rejected0, 'usermgmt_pg_queue_rejected_total is exported');
$rejected0 //= 0;
my @workers = $t->nginx_pids;

# hold the organizations table so the lookup query blocks

my $locker = $t->psql_bg(
    "BEGIN; LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE; "
    . "SELECT pg_sleep($LOCK_SECONDS); COMMIT;");
ok(wait_until(sub {
       $t->psql(q{SELECT count(*) FROM pg_locks
                  WHERE relation = 'organizations'::regclass
                    AND mode = 'AccessExclusiveLock' AND granted}) == 1;
   }, 5, 0.02), 'the slow transaction holds the table lock');

# one request takes the connection, then a burst of $SURPLUS more

my $dir = $t->tmp;
my $t0 = time;

sub fire {
    my ($n, $at) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    sleep($at - time) if $at > time;
    my $http = HTTP::Tiny->new(timeout => $t->timeout, keep_alive => 0);
    my $start = time;
    my $res = $http->get($t->url($LOOKUP));
    my $json = eval { JSON::PP->new->decode($res->{content}) };
    my %out = (
        n           => $n,
        status      => $res->{status},
        elapsed     => time - $start,
        retry_after => $res->{headers}{'retry-after'},
        code        => ref $json eq 'HASH' && ref $json->{error} eq 'HASH'
                       ? $json->{error}{code} : undef,
        content     => substr($res->{content} // '', 0, 300),
    );
    open my $fh, '>', "$dir/burst.$n" or POSIX::_exit(2);
    print {$fh} JSON::PP->new->canonical->encode(\%out);
    close $fh;
    POSIX::_exit(0);
}

my @pids = (fire(0, $t0));
sleep 0.3;
my $burst_at = time + 0.05;
push @pids, fire($_, $burst_at) for 1 .. $SURPLUS;

# the worker is not blocked meanwhile
sleep 0.3;
my $h = $t->get('/health', fresh => 1);
is($h->{status}, 200, 'health answers during the congestion');
cmp_ok($h->{elapsed}, '<', $t->secs(0.5), '... at once');

ok(wait_until(sub {
       @pids = grep { waitpid($_, WNOHANG) == 0 } @pids;
       !@pids;
   }, $t->secs(15), 0.05), 'every request of the burst finished');
kill 'KILL', @pids if @pids;
waitpid($_, 0) for @pids;

my @res;
for my $n (0 .. $SURPLUS) {
    my $text = do { local (@ARGV, $/) = ("$dir/burst.$n"); <> };
    push @res, $text ? JSON::PP->new->decode($text) : { n => $n, status => 'none' };
}

my $holder = shift @res;
subtest 'the request that got the connection' => sub {
    is($holder->{status}, 200, 'answered 200 once the lock was released')
        or diag(explain $holder);
    cmp_ok($holder->{elapsed} // 99, '>', 1.0,
           'it really waited for the lock (the test works)');
    cmp_ok($holder->{elapsed} // 99, '<', $LOCK_SECONDS + $t->secs(1.5),
           'and did not wait much longer');
};

for my $x (@res) {
    subtest "surplus request $x->{n}" => sub {
        is($x->{status}, 503, 'status 503') or diag(explain $x);
        is($x->{code}, 'SERVICE_UNAVAILABLE', 'error code SERVICE_UNAVAILABLE');
        like($x->{retry_after} // '', qr/^\d+$/, 'Retry-After: seconds');
        cmp_ok($x->{elapsed} // 99, '<', $t->secs(1.5),
               'answered promptly (queue full or queue_timeout), no hang');
    };
}

my $rc = $t->wait_bg($locker, $LOCK_SECONDS + 10);
is($rc, 0, 'the slow transaction committed');

ok(wait_until(sub { $t->get($LOOKUP, fresh => 1)->{status} == 200 },
              $t->secs(3), 0.1),
   'after the lock ends a new lookup returns 200');
for my $i (1 .. 3) {
    is($t->get($LOOKUP)->{status}, 200, "and keeps doing so ($i)");
}

my $rejected1 = rejected_total() // 0;
cmp_ok($rejected1 - $rejected0, '>=', $SURPLUS - 2,
       'usermgmt_pg_queue_rejected_total rose by the requests that found '
       . 'the queue full');

is_deeply([ $t->nginx_pids ], \@workers, 'the worker survived');

done_testing();
