#!/usr/bin/perl
# Requests that reach a worker in the same turn of its event loop share one
# script call in Redis, and each still gets its own exact decision: N of
# N+k pass, keys of a call are counted apart, a request refused by one of
# its limits takes nothing from its others even when the same call carries
# other requests on those keys, and NOSCRIPT sends the whole call again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test;

my $zones = <<'EOF';
    usermgmt_limit_zone burst key=$http_x_key rate=20r/m;
    usermgmt_limit_zone apart key=$http_x_key rate=4r/m;
    usermgmt_limit_zone per   key=$http_x_key rate=3r/m;
    usermgmt_limit_zone group key=$http_x_group rate=5r/m;
EOF

my $locations = <<'EOF';
        location = /burst { usermgmt_limit burst; return 204; }
        location = /apart { usermgmt_limit apart; return 204; }
        location = /pair  { usermgmt_limit per; usermgmt_limit group;
                            return 204; }
EOF

# one worker, so that every request of a burst meets the same batch
my $t = UM::Test->new(workers => 1, http_extra => $zones,
                      server_extra => $locations);

# Opens a connection per request, stops the worker, writes every request,
# and lets the worker go on: it finds them all in one turn of its loop.
# Returns the status and the RateLimit field of each answer, in the order
# of @reqs, and the number of script calls Redis ran meanwhile.
sub burst {
    my (@reqs) = @_;
    my ($worker) = $t->nginx_pids;
    my $calls = evalsha_calls();
    my @socks;
    for my $req (@reqs) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $t->port, Proto => 'tcp',
                                      Timeout => 10)
            or die "connect: $!";
        push @socks, $s;
    }
    sleep $t->secs(0.2);                # every connection accepted
    kill 'STOP', $worker or die "SIGSTOP: $!";
    stopped($worker) or die "worker $worker did not stop";
    for my $i (0 .. $#reqs) {
        my ($path, %h) = @{ $reqs[$i] };
        my $text = "GET $path HTTP/1.1\r\nHost: localhost\r\n"
                 . join('', map { "$_: $h{$_}\r\n" } sort keys %h)
                 . "Connection: close\r\n\r\n";
        syswrite($socks[$i], $text) == length $text or die "write: $!";
    }
    sleep $t->secs(0.1);
    kill 'CONT', $worker or die "SIGCONT: $!";
    my @out;
    for my $s (@socks) {
        local $/;
        my $answer = <$s> // '';
        close $s;
        my ($status) = $answer =~ m{^HTTP/1\.1 (\d{3})};
        my ($state) = $answer =~ m{^RateLimit: ([^\r\n]*)}mi;
        push @out, { status => $status // 0, state => $state };
    }
    return (evalsha_calls() - $calls, @out);
}

# the signal is taken when the process next runs: wait until it has
sub stopped {
    my ($pid) = @_;
    for (1 .. 200) {
        open(my $fh, '<', "/proc/$pid/stat") or return 0;
        my $stat = <$fh> // '';
        close $fh;
        return 1 if $stat =~ /^\d+ \(.*\) [Tt] /;
        sleep 0.01;
    }
    return 0;
}

sub evalsha_calls {
    my $info = $t->redis_cli('INFO', 'commandstats');
    return $info =~ /^cmdstat_evalsha:calls=(\d+)/m ? $1 : 0;
}

sub count_of {
    my ($status, @answers) = @_;
    return scalar grep { $_->{status} == $status } @answers;
}

###########################################################################
# 50 requests at once on one key, 20 a minute: 20 pass, in one script call

my ($calls, @a) = burst(map { ['/burst', 'X-Key' => 'burst'] } 1 .. 50);
is(count_of(204, @a), 20, 'burst: exactly 20 of 50 simultaneous requests passed');
is(count_of(429, @a), 30, 'burst: the other 30 got 429');
is($calls, 1, 'burst: the 50 decisions took one script call');

# a call carries at most 64 requests: 100 at once take two
($calls, @a) = burst(map { ['/burst', 'X-Key' => 'cap'] } 1 .. 100);
is(count_of(204, @a), 20, 'cap: exactly 20 of 100 simultaneous requests passed');
is($calls, 2, 'cap: 100 requests, two script calls (64 + 36)');

# one after another, each request is a call of its own
my $before = evalsha_calls();
for my $i (1 .. 3) {
    my $r = $t->get('/burst', headers => { 'X-Key' => 'alone' }, fresh => 1);
    is($r->{status}, 204, "alone: request $i passes");
}
is(evalsha_calls() - $before, 3, 'alone: 3 requests, 3 script calls');

###########################################################################
# three keys in the same burst, 4 a minute each: 4 of each key's 10 pass

my @reqs;
for my $i (1 .. 10) {
    push @reqs, ['/apart', 'X-Key' => "apart-$_"] for 1 .. 3;
}
($calls, @a) = burst(@reqs);
is($calls, 1, 'apart: 30 requests of three keys, one script call');
for my $k (1 .. 3) {
    my @mine = @a[grep { $reqs[$_][2] eq "apart-$k" } 0 .. $#reqs];
    is(count_of(204, @mine), 4, "apart: key $k: exactly 4 of 10 passed");
    is(count_of(429, @mine), 6, "apart: key $k: 6 got 429");
    my @left = sort { $a <=> $b }
               map { $_->{state} =~ /;r=(\d+)/ ? $1 : -1 }
               grep { $_->{status} == 204 } @mine;
    is("@left", '0 1 2 3', "apart: key $k: the passing ones were told 3, 2, 1, 0 left");
}

###########################################################################
# all or nothing inside a shared call: "per" (3 a minute per key) and
# "group" (5 a minute per group). Two keys of one group, 5 requests each:
# at most 3 of a key pass, and the group's 5 are all used, which they
# would not be if a request refused by "per" had taken from "group".

@reqs = map { ['/pair', 'X-Key' => ($_ % 2 ? 'pair-a' : 'pair-b'),
                        'X-Group' => 'pair-g'] } 1 .. 10;
($calls, @a) = burst(@reqs);
is($calls, 1, 'pair: the 10 requests shared one script call');
my %passed;
for my $i (0 .. $#reqs) {
    $passed{ $reqs[$i][2] }++ if $a[$i]{status} == 204;
}
is(count_of(204, @a), 5, 'pair: exactly 5 of 10 passed (the whole group)');
ok(($passed{'pair-a'} // 0) <= 3 && ($passed{'pair-b'} // 0) <= 3,
   'pair: no key passed more than 3')
    or diag('pair-a: ' . ($passed{'pair-a'} // 0) . ', pair-b: '
            . ($passed{'pair-b'} // 0));
is(count_of(429, @a), 5, 'pair: the other 5 got 429');

###########################################################################
# SCRIPT FLUSH: the next call answers NOSCRIPT and goes again with the
# script's text; every request of it is still decided exactly once

is($t->redis_cli('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');
my $info0 = $t->redis_cli('INFO', 'commandstats');
($calls, @a) = burst(map { ['/apart', 'X-Key' => 'flushed'] } 1 .. 10);
is($calls, 1, 'flushed: one EVALSHA (NOSCRIPT) for the 10 requests');
is(count_of(204, @a), 4, 'flushed: exactly 4 of 10 passed');
is(count_of(429, @a), 6, 'flushed: 6 got 429');
my $info1 = $t->redis_cli('INFO', 'commandstats');
my ($e0) = $info0 =~ /^cmdstat_eval:calls=(\d+)/m;
my ($e1) = $info1 =~ /^cmdstat_eval:calls=(\d+)/m;
ok(($e1 // 0) - ($e0 // 0) >= 1, 'flushed: the script was sent again (EVAL)');

###########################################################################

done_testing;
