#!/usr/bin/perl
# nginx -s reload under load drops no request: four clients send sequential
# keep-alive requests (/health and the PostgreSQL-backed lookup) while the
# configuration is reloaded three times; every answer is a 200.  Afterwards
# a new generation of workers serves, with fresh connection caches.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test qw(wait_until);

my $t = UM::Test->new(workers => 2);

my $CLIENTS  = 4;
my $MIN_EACH = 100;     # requests per client, at least
my $MAX_TIME = 60;      # seconds a client keeps going, at most
my @PATHS = ('/health', '/api/v1/organizations/lookup?slug=default');

is($t->get($PATHS[1])->{status}, 200, 'lookup answers before the reloads');

my $dir = $t->tmp;
my $stop_file = "$dir/clients.stop";

# A client: sequential keep-alive GETs until the stop file appears (and at
# least $MIN_EACH of them); writes "total failures retries" and one line
# per failure to its result file.
#
# An old worker closes its idle keep-alive connections when it shuts down;
# a request written at that very moment meets a reset before the server
# read it.  That race belongs to HTTP keep-alive itself (plain nginx shows
# it too), and clients resend such a request on a new connection, as
# HTTP::Tiny already does for "Socket closed".  So does this client, once,
# and only for a connection it reused; anything else is a failure.
sub client {
    my ($n) = @_;
    my $http = HTTP::Tiny->new(keep_alive => 1, timeout => $t->timeout);
    my ($total, $retries, @fail) = (0, 0);
    my $end = time + $MAX_TIME;
    while (($total < $MIN_EACH || !-e $stop_file) && time < $end) {
        my $path = $PATHS[$total % 2];
        my $reused = defined $http->{handle};
        my $res = $http->get($t->url($path));
        if ($reused && $res->{status} == 599
            && ($res->{content} // '') =~ /reset by peer|Broken pipe/) {
            $retries++;
            $http = HTTP::Tiny->new(keep_alive => 1, timeout => $t->timeout);
            $res = $http->get($t->url($path));
        }
        $total++;
        if ($res->{status} != 200) {
            my $body = substr($res->{content} // '', 0, 200);
            $body =~ s/\s+/ /g;
            push @fail, sprintf('%.3f %s %s %s', time, $path, $res->{status},
                                $body);
        }
        sleep 0.002;
    }
    open my $fh, '>', "$dir/client.$n" or POSIX::_exit(2);
    print {$fh} "$total " . scalar(@fail) . " $retries\n", map { "$_\n" } @fail;
    close $fh;
}

my @pids;
for my $n (1 .. $CLIENTS) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        client($n);
        POSIX::_exit(0);
    }
    push @pids, $pid;
}

my @gen0 = $t->nginx_pids;
sleep 0.3;

for my $i (1 .. 3) {
    ok($t->reload, "reload $i: a new generation of workers took over");
    sleep 0.2;
}

open my $sf, '>', $stop_file or die $!;
close $sf;

my $done = wait_until(sub {
    @pids = grep { waitpid($_, WNOHANG) == 0 } @pids;
    !@pids;
}, $MAX_TIME + 30, 0.05);
ok($done, 'all clients finished');
kill 'KILL', @pids if @pids;
waitpid($_, 0) for @pids;

my ($total, $failed, $retried, @lines) = (0, 0, 0);
for my $n (1 .. $CLIENTS) {
    open my $fh, '<', "$dir/client.$n" or do {
        fail("client $n wrote no result");
        next;
    };
    my ($tot, $fl, $rt) = split ' ', scalar <$fh>;
    push @lines, map { "client $n: $_" } <$fh>;
    close $fh;
    $total += $tot;
    $failed += $fl;
    $retried += $rt;
}
note("$retried request(s) resent after a keep-alive reset");

cmp_ok($total, '>=', $CLIENTS * $MIN_EACH,
       "at least @{[ $CLIENTS * $MIN_EACH ]} requests sent ($total)");
is($failed, 0, 'every request during the reloads got a 200')
    or diag(join '', @lines[0 .. ($#lines < 20 ? $#lines : 19)]);

# the new generation

my @gen = $t->nginx_pids;
is(scalar @gen, 2, 'two workers after the reloads');
ok(!grep({ my $p = $_; grep { $_ == $p } @gen0 } @gen),
   'none of them is an old worker');

for my $i (1 .. 6) {
    my $r = $t->get($PATHS[1], fresh => 1);
    is($r->{status}, 200, "lookup on the new workers ($i)")
        or diag($r->{content});
}
is($t->get('/ready', fresh => 1)->{status}, 200, 'ready on the new workers');

# PostgreSQL connections of the old generations were closed: after the old
# workers left, the server sees at most the new workers' caches
my $conns;
wait_until(sub {
    $conns = $t->psql(q{SELECT count(*) FROM pg_stat_activity
                        WHERE usename = 'usermgmt'
                          AND pid <> pg_backend_pid()});
    $conns <= 2 * 4;
}, 3, 0.1);
cmp_ok($conns, '<=', 2 * 4,
       "PostgreSQL sessions of nginx: at most workers x max ($conns)");

done_testing();
