#!/usr/bin/perl
# GET /health: liveness.  The process answers; it asks no dependency, so it
# stays 200 with PostgreSQL and Redis both down.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::Local qw(timegm);
use UM::Test qw(is_rfc3339_utc);

my $t = UM::Test->new(workers => 2);

sub epoch_of {
    my ($ts) = @_;
    my ($y, $mo, $d, $h, $mi, $s) =
        $ts =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)/ or return undef;
    return timegm($s, $mi, $h, $d, $mo - 1, $y);
}

sub health_ok {
    my ($r, $what) = @_;
    subtest "health answer: $what" => sub {
        is($r->{status}, 200, 'status 200');
        like($r->{headers}{'content-type'} // '', qr{^application/json\b},
             'Content-Type application/json');
        my $d = ref $r->{json} eq 'HASH' ? $r->{json}{data} : undef;
        is(ref $d, 'HASH', 'body is {"data": {...}}')
            or return diag($r->{content} // '(no body)');
        is($d->{status}, 'healthy', 'data.status is "healthy"');
        is($d->{service}, 'usermgmt', 'data.service is "usermgmt"');
        like($d->{version} // '', qr/^\d+\.\d+\.\d+/, 'data.version is x.y.z');
        ok(is_rfc3339_utc($d->{timestamp}),
           'data.timestamp is RFC 3339 UTC ending in Z')
            or diag('timestamp: ' . ($d->{timestamp} // 'missing'));
        my $epoch = epoch_of($d->{timestamp} // '');
        ok(defined $epoch && abs($epoch - time) <= 5,
           'data.timestamp is the current time');
    };
}

# GET

my $r = $t->get('/health');
health_ok($r, 'GET');

# the answer comes from any worker alike
for my $i (1 .. 6) {
    my $ri = $t->get('/health', fresh => 1);
    is($ri->{status}, 200, "GET /health on a new connection ($i)");
}

# HEAD: same status and headers, no body

my $h = $t->head('/health');
is($h->{status}, 200, 'HEAD /health: 200');
like($h->{headers}{'content-type'} // '', qr{^application/json\b},
     'HEAD /health: Content-Type application/json');
is(length($h->{content} // ''), 0, 'HEAD /health: no body');

# query strings are ignored
health_ok($t->get('/health?verbose=1'), 'with a query string');

# no dependency is touched: PostgreSQL and Redis both down

$t->stop_pg;
$t->stop_redis;

for my $i (1 .. 3) {
    my $rd = $t->get('/health');
    health_ok($rd, "PostgreSQL and Redis down ($i)");
    cmp_ok($rd->{elapsed}, '<', $t->secs(1.0), "answered at once ($i)");
}

$t->start_pg;
$t->start_redis;

health_ok($t->get('/health'), 'dependencies back');

done_testing();
