#!/usr/bin/perl
# GET /ready: readiness.  200 when PostgreSQL and Redis answer; 503 with
# Retry-After naming the failed dependency, at once, when one is down; back
# to 200 by itself (no reload) when it returns.  The API answers 503 too
# while PostgreSQL is down, and no worker dies on the way.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is wait_until);

my $t = UM::Test->new(workers => 2);

my $LOOKUP = '/api/v1/organizations/lookup?slug=default';

sub ready_ok {
    my ($r, $what) = @_;
    subtest "ready: $what" => sub {
        is($r->{status}, 200, 'status 200');
        like($r->{headers}{'content-type'} // '', qr{^application/json\b},
             'Content-Type application/json');
        my $d = ref $r->{json} eq 'HASH' ? $r->{json}{data} : undef;
        is(ref $d, 'HASH', 'body is {"data": {...}}')
            or return diag($r->{content} // '(no body)');
        is($d->{status}, 'ready', 'data.status is "ready"');
        is($d->{checks}{postgres}, 'ok', 'data.checks.postgres is "ok"');
        is($d->{checks}{redis}, 'ok', 'data.checks.redis is "ok"');
    };
}

# $failed: names of the dependencies that must be reported down
sub not_ready_ok {
    my ($r, $what, @failed) = @_;
    my %down = map { $_ => 1 } @failed;
    subtest "not ready: $what" => sub {
        error_is($r, 503, 'SERVICE_UNAVAILABLE', '503 SERVICE_UNAVAILABLE');
        like($r->{headers}{'retry-after'} // '', qr/^\d+$/,
             'Retry-After: seconds');
        cmp_ok($r->{elapsed}, '<', $t->secs(1.0), 'answered within 1 s');
        my $details = eval { $r->{json}{error}{details} };
        is(ref $details, 'ARRAY', 'error.details is an array')
            or return;
        my %seen;
        for my $d (@$details) {
            next unless ref $d eq 'HASH' && defined $d->{dependency};
            $seen{ $d->{dependency} } = $d->{status};
        }
        for my $dep (@failed) {
            ok(exists $seen{$dep}, "details name $dep");
            ok(defined $seen{$dep} && !ref $seen{$dep} && $seen{$dep} ne 'ok',
               "details give $dep a failure status")
                or diag('status: ' . ($seen{$dep} // 'undef'));
        }
        for my $dep (grep { !$down{$_} } qw(postgres redis)) {
            ok(!exists $seen{$dep} || ($seen{$dep} // '') eq 'ok',
               "$dep is not reported as failed");
        }
    } or diag($r->{content} // '(no body)');
}

sub lookup_ok {
    my ($r, $what) = @_;
    is($r->{status}, 200, "lookup 200: $what")
        or diag($r->{content} // '(no body)');
}

my @workers = $t->nginx_pids;
is(scalar @workers, 2, 'two workers running');

# everything up

ready_ok($t->get('/ready'), 'all up');
lookup_ok($t->get($LOOKUP), 'all up');

# ask each worker (new connections land on any of them)
ready_ok($t->get('/ready', fresh => 1), "all up, new connection $_") for 1 .. 4;

# PostgreSQL down

$t->stop_pg;

for my $i (1 .. 4) {
    not_ready_ok($t->get('/ready', fresh => $i % 2), "postgres down ($i)",
                 'postgres');
}
for my $i (1 .. 4) {
    my $r = $t->get($LOOKUP, fresh => $i % 2);
    subtest "lookup while postgres is down ($i)" => sub {
        error_is($r, 503, 'SERVICE_UNAVAILABLE', '503 SERVICE_UNAVAILABLE');
        like($r->{headers}{'retry-after'} // '', qr/^\d+$/,
             'Retry-After: seconds');
        cmp_ok($r->{elapsed}, '<', $t->secs(1.0), 'answered within 1 s');
    };
}
is($t->get('/health')->{status}, 200, 'health stays 200 with postgres down');

# PostgreSQL back: no reload needed

$t->start_pg;

my $r;
ok(wait_until(sub {
       $r = $t->get('/ready', fresh => 1);
       $r->{status} == 200;
   }, $t->secs(5), 0.1), 'postgres back: /ready is 200 again within 5 s')
    or diag("last answer: $r->{status} " . ($r->{content} // ''));
ready_ok($r, 'postgres back');

ok(wait_until(sub {
       $r = $t->get($LOOKUP, fresh => 1);
       $r->{status} == 200;
   }, $t->secs(5), 0.1), 'postgres back: lookup is 200 again within 5 s')
    or diag("last answer: $r->{status} " . ($r->{content} // ''));

# every worker recovered, not only the one that answered first
for my $i (1 .. 6) {
    lookup_ok($t->get($LOOKUP, fresh => 1), "postgres back, new connection $i");
}

# Redis down

$t->stop_redis;

for my $i (1 .. 4) {
    not_ready_ok($t->get('/ready', fresh => $i % 2), "redis down ($i)",
                 'redis');
}
is($t->get('/health')->{status}, 200, 'health stays 200 with redis down');

$t->start_redis;

ok(wait_until(sub {
       $r = $t->get('/ready', fresh => 1);
       $r->{status} == 200;
   }, $t->secs(5), 0.1), 'redis back: /ready is 200 again within 5 s')
    or diag("last answer: $r->{status} " . ($r->{content} // ''));
ready_ok($r, 'redis back');
ready_ok($t->get('/ready', fresh => 1), "redis back, new connection $_")
    for 1 .. 4;

# both down at once

$t->stop_pg;
$t->stop_redis;
not_ready_ok($t->get('/ready'), 'both down', 'postgres', 'redis');
$t->start_pg;
$t->start_redis;
ok(wait_until(sub { $t->get('/ready', fresh => 1)->{status} == 200 },
              $t->secs(5), 0.1),
   'both back: /ready is 200 again within 5 s');

# no worker died on the way

is_deeply([ $t->nginx_pids ], \@workers, 'the same workers are running');

done_testing();
