#!/usr/bin/perl
# Two nginx nodes on one Redis (and one PostgreSQL): a limit holds across
# them.  N requests spread over both nodes, one after the other or all at
# once, let exactly N through in total; a per-user limit follows the user
# from node to node.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test;

my $zones = <<'EOF';
    usermgmt_limit_zone shared    key=ip   rate=6r/m;
    usermgmt_limit_zone together  key=ip   rate=5r/m;
    usermgmt_limit_zone peruser   key=user rate=4r/m;
EOF

my $locations = <<'EOF';
        location = /shared   { usermgmt_limit shared; return 200 "ok\n"; }
        location = /together { usermgmt_limit together; return 200 "ok\n"; }
        location = /peruser  { usermgmt_auth on; usermgmt_limit peruser;
                               return 200 "ok\n"; }
EOF

my $n1 = UM::Test->new(workers => 2, http_extra => $zones,
                       server_extra => $locations);

# the second node: the first one's Redis, PostgreSQL and signing key
my $n2 = UM::Test->new(workers => 2, http_extra => $zones,
                       server_extra => $locations,
                       redis_port => $n1->redis_port,
                       pg_port => $n1->pg_port,
                       jwt_keys => 'usermgmt_jwt_key hs256 '
                                   . $n1->jwt_key_file . ' kid=test;');
isnt($n1->port, $n2->port, 'two nodes on two ports');
is(scalar(my @p = $n2->nginx_pids), 2, 'the second node runs two workers');
is($n2->get('/ready')->{status}, 200,
   "the second node is ready on the first one's PostgreSQL and Redis");

my @nodes = ($n1, $n2);

sub count_of {
    my ($status, @list) = @_;
    return scalar grep { $_ == $status } @list;
}

###########################################################################
# one after the other, alternating nodes: 6r/m lets 6 of 10 through

my @st;
for my $i (1 .. 10) {
    my $node = $nodes[($i - 1) % 2];
    my $r = $node->get('/shared', fresh => 1);
    push @st, $r->{status};
    if ($i <= 6) {
        is($r->{status}, 200, "shared: request $i (node " . (($i - 1) % 2 + 1)
                              . ') passes');
        is($r->{headers}{'x-ratelimit-remaining'}, 6 - $i,
           "shared: request $i: X-RateLimit-Remaining " . (6 - $i)
           . ' (counted across nodes)');
    } else {
        is($r->{status}, 429, "shared: request $i (node " . (($i - 1) % 2 + 1)
                              . ') is refused');
    }
}
is(count_of(200, @st), 6, 'shared: exactly 6 of 10 passed over two nodes');

###########################################################################
# all at once: 16 simultaneous requests, 8 to each node, 5r/m

sub parallel {
    my ($path, @targets) = @_;
    my $start = time + 0.3;
    my @kids;
    for my $node (@targets) {
        pipe(my $rd, my $wr) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $rd;
            my $ua = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
            sleep($start - time) if $start > time;
            print {$wr} $ua->get($node->url($path))->{status};
            close $wr;
            POSIX::_exit(0);
        }
        close $wr;
        push @kids, [$pid, $rd];
    }
    my @out;
    for my $k (@kids) {
        my $fh = $k->[1];
        local $/;
        my $s = <$fh>;
        close $fh;
        waitpid($k->[0], 0);
        push @out, $s // 0;
    }
    return @out;
}

@st = parallel('/together', map { ($n1, $n2) } 1 .. 8);
is(count_of(200, @st), 5,
   'together: exactly 5 of 16 simultaneous requests on two nodes passed')
    or diag("statuses: @st");
is(count_of(429, @st), 11, 'together: the other 11 got 429');

###########################################################################
# key=user: the same user on both nodes

my $u = $n1->new_user;
my $auth = $n1->auth_header($u->{access_token});
is($n2->get('/peruser', fresh => 1, headers => $auth)->{status}, 200,
   "peruser: node 2 accepts node 1's token");
@st = map { $nodes[$_ % 2]->get('/peruser', fresh => 1, headers => $auth)
                ->{status} } 0 .. 3;
is_deeply(\@st, [200, 200, 200, 429],
          'peruser: 4r/m: 3 more pass over both nodes, then 429');

###########################################################################
# each node counts its own decisions; together they add up

sub decisions {
    my ($node) = @_;
    my $m = $node->get('/metrics', fresh => 1)->{content} // '';
    my %c;
    $c{"$1|$2"} = $3 while $m =~ /^usermgmt_ratelimit_decisions_total\{zone="([^"]+)",result="([^"]+)"\} (\d+)$/mg;
    return \%c;
}

my ($m1, $m2) = (decisions($n1), decisions($n2));
for my $case (['shared', 6, 4], ['together', 5, 11], ['peruser', 4, 1]) {
    my ($zone, $allowed, $limited) = @$case;
    is(($m1->{"$zone|allowed"} // 0) + ($m2->{"$zone|allowed"} // 0), $allowed,
       "metrics: $zone allowed on both nodes: $allowed");
    is(($m1->{"$zone|limited"} // 0) + ($m2->{"$zone|limited"} // 0), $limited,
       "metrics: $zone limited on both nodes: $limited");
}
cmp_ok($m2->{'shared|allowed'} // 0, '>=', 1,
       'metrics: node 2 counted its own share');

# the second node goes first: it depends on the first one's servers
$n2->stop(tests => 1);

done_testing();
