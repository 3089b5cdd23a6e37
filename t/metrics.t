#!/usr/bin/perl
# GET /metrics: Prometheus text, counters kept in shared memory (every
# worker reports the same numbers), and a JSON summary on
# Accept: application/json.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use UM::Test qw(wait_until);

my $t = UM::Test->new(workers => 2);

# Parses the text exposition format into
#   { samples => [ [name, {labels}, value], ... ], types => {name => type} }
sub parse_metrics {
    my ($text) = @_;
    my (@samples, %types, @bad);
    for my $line (split /\n/, $text // '') {
        next if $line =~ /^\s*$/;
        if ($line =~ /^#\s*TYPE\s+(\S+)\s+(\S+)/) {
            $types{$1} = $2;
            next;
        }
        next if $line =~ /^#/;
        if ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?\s*$/) {
            my ($name, $lab, $value) = ($1, $2 // '', $3);
            my %labels;
            while ($lab =~ /\G\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gc) {
                $labels{$1} = $2;
            }
            push @bad, $line if (pos($lab) // 0) != length $lab;
            push @bad, $line
                unless $value =~ /^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+|Inf|NaN)$/;
            push @samples, [$name, \%labels, $value];
        } else {
            push @bad, $line;
        }
    }
    return { samples => \@samples, types => \%types, bad => \@bad };
}

# Sum of the samples named $name whose labels include %want.
sub metric_sum {
    my ($m, $name, %want) = @_;
    my ($sum, $found) = (0, 0);
    SAMPLE: for my $s (@{ $m->{samples} }) {
        next unless $s->[0] eq $name;
        for (keys %want) {
            next SAMPLE unless defined $s->[1]{$_} && $s->[1]{$_} eq $want{$_};
        }
        $sum += $s->[2];
        $found++;
    }
    return $found ? $sum : undef;
}

sub metrics {
    my (%o) = @_;
    my $r = $t->get('/metrics', fresh => 1, %o);
    return ($r, parse_metrics($r->{content}));
}

sub health_count {
    my ($m) = @_;
    return metric_sum($m, 'usermgmt_http_requests_total',
                      route => 'health', status => '200') // 0;
}

# the text format

my ($r, $m) = metrics();
is($r->{status}, 200, 'GET /metrics: 200');
like($r->{headers}{'content-type'} // '',
     qr{^text/plain;\s*version=0\.0\.4\b}, 'Content-Type text/plain; version=0.0.4');
is_deeply($m->{bad}, [], 'every line parses as exposition format')
    or diag(join "\n", @{ $m->{bad} });

# some traffic so every family has samples
$t->get('/health');
$t->get('/api/v1/organizations/lookup?slug=default');
$t->get('/api/v1/no-such-thing');
($r, $m) = metrics();

for my $family (qw(usermgmt_http_requests_total usermgmt_pg_connections
                   usermgmt_pg_queue_rejected_total usermgmt_redis_errors_total
                   usermgmt_http_request_duration_seconds_bucket
                   usermgmt_http_request_duration_seconds_sum
                   usermgmt_http_request_duration_seconds_count)) {
    ok(defined metric_sum($m, $family), "$family is exported")
        or diag(substr($r->{content} // '', 0, 3000));
}

is($m->{types}{usermgmt_http_requests_total}, 'counter',
   'TYPE usermgmt_http_requests_total counter');
is($m->{types}{usermgmt_http_request_duration_seconds}, 'histogram',
   'TYPE usermgmt_http_request_duration_seconds histogram');
is($m->{types}{usermgmt_pg_connections}, 'gauge',
   'TYPE usermgmt_pg_connections gauge');
is($m->{types}{usermgmt_pg_queue_rejected_total}, 'counter',
   'TYPE usermgmt_pg_queue_rejected_total counter');
is($m->{types}{usermgmt_redis_errors_total}, 'counter',
   'TYPE usermgmt_redis_errors_total counter');

my @req = grep { $_->[0] eq 'usermgmt_http_requests_total' } @{ $m->{samples} };
ok(@req && !grep({ !defined $_->[1]{route} || !defined $_->[1]{status} } @req),
   'usermgmt_http_requests_total has route and status labels');
ok(defined metric_sum($m, 'usermgmt_http_requests_total', route => 'health',
                      status => '200'),
   'a sample for route="health", status="200"');
ok(defined metric_sum($m, 'usermgmt_http_requests_total', status => '404'),
   'a sample with status="404" after a 404');

my @pgc = grep { $_->[0] eq 'usermgmt_pg_connections' } @{ $m->{samples} };
ok(@pgc && !grep({ !defined $_->[1]{state} } @pgc),
   'usermgmt_pg_connections has a state label');
cmp_ok(metric_sum($m, 'usermgmt_pg_connections') // 0, '>=', 1,
       'usermgmt_pg_connections counts the connection the lookup used');

# the histogram is well formed: cumulative buckets per series, +Inf = count

subtest 'histogram buckets' => sub {
    my %series;
    for my $s (@{ $m->{samples} }) {
        next unless $s->[0] eq 'usermgmt_http_request_duration_seconds_bucket';
        my %l = %{ $s->[1] };
        my $le = delete $l{le};
        ok(defined $le, 'bucket has an le label') or next;
        my $key = join ',', map { "$_=$l{$_}" } sort keys %l;
        push @{ $series{$key} }, [$le eq '+Inf' ? 9**9**9 : $le, $s->[2]];
    }
    ok(%series, 'at least one bucket series') or return;
    for my $key (sort keys %series) {
        my @b = sort { $a->[0] <=> $b->[0] } @{ $series{$key} };
        ok($b[-1][0] == 9**9**9, "{$key}: has le=\"+Inf\"");
        my $mono = 1;
        for my $i (1 .. $#b) { $mono = 0 if $b[$i][1] < $b[$i - 1][1] }
        ok($mono, "{$key}: buckets are cumulative");
        my %l = map { split /=/, $_, 2 } split /,/, $key;
        my $count = metric_sum($m, 'usermgmt_http_request_duration_seconds_count', %l);
        is($count, $b[-1][1], "{$key}: _count equals the +Inf bucket");
    }
};

# counters live in shared memory: N requests to /health, whichever worker
# answers, and every /metrics answer agrees

my $before = health_count($m);
my $N = 25;
my $ok = 0;
for (1 .. $N) {
    $ok++ if $t->get('/health', fresh => 1)->{status} == 200;
}
is($ok, $N, "$N requests to /health answered 200");

my $want = $before + $N;
my $got;
wait_until(sub { (undef, my $mm) = metrics(); ($got = health_count($mm)) >= $want },
           $t->secs(2), 0.05);
is($got, $want, "health/200 counter rose by exactly $N");

my %answers;
for (1 .. 10) {
    my (undef, $mm) = metrics();
    $answers{ health_count($mm) }++;
}
is_deeply([ keys %answers ], [ $want ],
          'ten /metrics answers (any worker) all agree')
    or diag(explain \%answers);

subtest 'histogram count follows the requests' => sub {
    my (undef, $m1) = metrics();
    my $c1 = metric_sum($m1, 'usermgmt_http_request_duration_seconds_count',
                        route => 'health') // 0;
    $t->get('/health', fresh => 1) for 1 .. 5;
    my $c2;
    wait_until(sub {
        my (undef, $m2) = metrics();
        ($c2 = metric_sum($m2, 'usermgmt_http_request_duration_seconds_count',
                          route => 'health') // 0) >= $c1 + 5;
    }, $t->secs(2), 0.05);
    is($c2, $c1 + 5, 'duration _count for route="health" rose by 5');
};

# Redis errors are counted

subtest 'redis errors are counted' => sub {
    my (undef, $m1) = metrics();
    my $e1 = metric_sum($m1, 'usermgmt_redis_errors_total') // 0;
    $t->stop_redis;
    $t->get('/ready', fresh => 1) for 1 .. 3;
    my (undef, $m2) = metrics();
    my $e2 = metric_sum($m2, 'usermgmt_redis_errors_total') // 0;
    cmp_ok($e2, '>', $e1, 'usermgmt_redis_errors_total rose while Redis was down');
    $t->start_redis;
};

# JSON summary

my $j = $t->get('/metrics', headers => { Accept => 'application/json' });
is($j->{status}, 200, 'Accept: application/json: 200');
like($j->{headers}{'content-type'} // '', qr{^application/json\b},
     'Content-Type application/json');
my $d = ref $j->{json} eq 'HASH' ? $j->{json}{data} : undef;
is(ref $d, 'HASH', 'body is {"data": {...}}')
    or diag($j->{content} // '(no body)');
$d //= {};

my $enc = JSON::PP->new->allow_nonref;
for my $k (qw(active_users total_requests error_rate average_response_time)) {
    ok(exists $d->{$k} && defined $d->{$k} && !ref $d->{$k}
       && $enc->encode($d->{$k}) !~ /"/, "data.$k is a JSON number")
        or diag("$k: " . ($enc->encode($d->{$k}) // 'missing'));
}
like($d->{active_users} // '', qr/^\d+$/, 'active_users is a whole number');
like($d->{total_requests} // '', qr/^\d+$/, 'total_requests is a whole number');
cmp_ok($d->{total_requests} // 0, '>=', $want,
       'total_requests counts at least the requests made');
cmp_ok($d->{error_rate} // -1, '>=', 0, 'error_rate >= 0');
cmp_ok($d->{average_response_time} // -1, '>=', 0, 'average_response_time >= 0');

done_testing();
