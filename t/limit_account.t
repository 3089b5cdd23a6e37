#!/usr/bin/perl
# key=account: a limit on the e-mail of the sign-in body, whatever its
# spelling, decided once the body is read together with the location's
# other limits (one Redis round trip, all-or-nothing); and the Redis
# round trips themselves: exactly one command (EVALSHA) per limited
# request, also in front of a token-protected location (seen through
# MONITOR: INFO commandstats also counts the commands the script calls).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use Test::More;
use UM::Test qw(error_is);

# The sign-in's own per-address failure counter (one Redis GET per login,
# one EVAL per failure) is switched off, so that the Redis commands
# counted below are the limiter's alone.
my $zones = <<'EOF';
    usermgmt_login_ip_max_failures 0;
    usermgmt_limit_zone login_ip      key=ip      rate=100r/h;
    usermgmt_limit_zone login_account key=account rate=3r/m;
    usermgmt_limit_zone edge_ip       key=ip      rate=100r/m;
EOF

my $locations = <<'EOF';
        location = /api/v1/auth/login {
            usermgmt_api;
            usermgmt_limit login_ip;
            usermgmt_limit login_account;
        }
        location = /edge {
            usermgmt_auth on;
            usermgmt_limit edge_ip;
            return 200 "ok\n";
        }
EOF

my $t = UM::Test->new(workers => 2, http_extra => $zones,
                      server_extra => $locations);

my $PASSWORD = 'Tq7-limit-account-zW';

sub register_ok {
    my ($email) = @_;
    my $r = $t->register(email => $email, password => $PASSWORD);
    is($r->{status}, 201, "registered $email") or diag($r->{content});
}

sub login {
    my ($email, $password) = @_;
    return $t->request('POST', '/api/v1/auth/login',
                       { body => { email => $email, password => $password },
                         fresh => 1 });
}

# name => {r => .., t => ..} of the RateLimit field
sub rl {
    my ($r) = @_;
    my %z;
    for my $item (split /\s*,\s*/, $r->{headers}{ratelimit} // '') {
        next unless $item =~ /^"([^"]+)"((?:;[a-z]+=-?\d+)*)$/;
        my $name = $1;
        my %p = $2 =~ /;([a-z]+)=(-?\d+)/g;
        $z{$name} = \%p;
    }
    return \%z;
}

sub remaining_is {
    my ($r, $zone, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(rl($r)->{$zone}{r}, $want, $name)
        or diag('RateLimit: ' . ($r->{headers}{ratelimit} // 'missing'));
}

sub limited_ok {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    subtest $name => sub {
        error_is($r, 429, 'RATE_LIMIT_EXCEEDED', '429 RATE_LIMIT_EXCEEDED');
        my $ra = $r->{headers}{'retry-after'} // '';
        ok($ra =~ /^\d+\z/ && $ra >= 1 && $ra <= 20,
           'Retry-After within 1 .. 20 s') or diag("Retry-After: $ra");
        ok(!eval { $r->{json}{data}{access_token} }, 'no token');
    };
}

###########################################################################
# three attempts per account a minute

my $alice = $t->unique_email('alice');
my $bob = $t->unique_email('bob');
register_ok($alice);
register_ok($bob);

my $r = login($alice, 'wrong-password-1');
error_is($r, 401, 'UNAUTHORIZED', 'alice, wrong password: 401');
remaining_is($r, 'login_account', 2, '... login_account r=2');
remaining_is($r, 'login_ip', 99, '... login_ip r=99 (both limits on the answer)');
is($r->{headers}{'x-ratelimit-limit'}, 3,
   '... X-RateLimit-Limit is the tighter limit (3)');

$r = login(uc $alice, 'wrong-password-2');
error_is($r, 401, 'UNAUTHORIZED', 'ALICE (upper case), wrong password: 401');
remaining_is($r, 'login_account', 1,
             '... the same account: login_account r=1');

(my $mixed = $alice) =~ s/^(\w)/\u$1/;
$r = login($mixed, $PASSWORD);
is($r->{status}, 200, 'Alice (mixed case), right password: 200')
    or diag($r->{content});
remaining_is($r, 'login_account', 0, '... login_account r=0');

$r = login($alice, $PASSWORD);
limited_ok($r, 'alice, 4th attempt, right password: 429');
remaining_is($r, 'login_account', 0, '... login_account r=0');

$r = login(uc $alice, $PASSWORD);
limited_ok($r, 'ALICE, 5th attempt: 429');

$r = login($bob, $PASSWORD);
is($r->{status}, 200, 'bob (another account) still signs in')
    or diag($r->{content});
remaining_is($r, 'login_account', 2, '... his own bucket: r=2');
remaining_is($r, 'login_ip', 96,
             '... login_ip r=96: the two refused attempts took nothing from it');

# an account that does not exist is limited the same way
my $ghost = $t->unique_email('ghost');
my @st = map { login($ghost, 'whatever-password')->{status} } 1 .. 4;
is_deeply(\@st, [401, 401, 401, 429],
          'an unknown account: 3 attempts answered, the 4th refused');

###########################################################################
# Redis round trips: one command per limited request

# Every command Redis runs while $code runs, through MONITOR: [source,
# command name] pairs, source "lua" for the commands a script calls.
# A marker command sent last tells when everything has arrived.
sub redis_commands {
    my ($code) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->redis_port,
                                  Proto => 'tcp', Timeout => 5)
        or die "redis connect: $!\n";
    $s->autoflush(1);
    print {$s} "MONITOR\r\n";
    my $ok = <$s>;
    die "MONITOR: $ok" unless defined $ok && $ok =~ /^\+OK/;
    $code->();
    my $marker = 'limit-account-marker-' . int(rand(1e9));
    $t->redis_cli('ECHO', $marker);
    my @seen;
    while (defined(my $line = <$s>)) {
        last if index($line, $marker) >= 0;
        push @seen, [$1, uc $2]
            if $line =~ /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/;
    }
    close $s;
    return \@seen;
}

# the commands sent by clients (not by a script), as "NAME=count, ..."
sub client_commands {
    my ($seen) = @_;
    my %n;
    $n{ $_->[1] }++ for grep { $_->[0] ne 'lua' } @$seen;
    return join(', ', map { "$_=$n{$_}" } sort keys %n) || 'none';
}

sub script_commands {
    my ($seen) = @_;
    my %n;
    $n{ $_->[1] }++ for grep { $_->[0] eq 'lua' } @$seen;
    return join(', ', map { "$_=$n{$_}" } sort keys %n) || 'none';
}

my @carols = map { $t->unique_email("carol$_") } 1 .. 5;
register_ok($_) for @carols;

# the script is loaded (NOSCRIPT/EVAL happened, if at all, above)
my $seen = redis_commands(sub {
    for my $c (@carols) {
        $r = login($c, $PASSWORD);
        is($r->{status}, 200, "login $c: 200") or diag($r->{content});
    }
});
is(client_commands($seen), 'EVALSHA=5',
   'five sign-ins with two limits (ip, account): 5 Redis commands, EVALSHA');
is(script_commands($seen), 'GET=10, SET=10, TIME=5',
   '... the script read and wrote both keys each time');

# a key=ip limit in front of a token check
my $u = $t->new_user;
my $auth = $t->auth_header($u->{access_token});
for (1 .. 6) {   # warm up both workers
    $r = $t->get('/edge', fresh => 1, headers => $auth);
}
is($r->{status}, 200, 'edge: a token request passes');
ok(defined $r->{headers}{'x-ratelimit-limit'}, 'edge: ... with rate-limit fields');

$seen = redis_commands(sub {
    for my $i (1 .. 6) {
        $r = $t->get('/edge', fresh => 1, headers => $auth);
        is($r->{status}, 200, "edge: token request $i: 200");
    }
});
is(client_commands($seen), 'EVALSHA=6',
   'edge: six token requests: 6 Redis commands, EVALSHA');

$seen = redis_commands(sub {
    $r = $t->get('/edge', fresh => 1);
});
error_is($r, 401, 'UNAUTHORIZED', 'edge: no token: 401');
ok(defined $r->{headers}{'x-ratelimit-limit'},
   'edge: ... the limit ran first (rate-limit fields on the 401)');
is(client_commands($seen), 'EVALSHA=1', 'edge: ... one EVALSHA, nothing else');

###########################################################################
# the counters

my $m = $t->get('/metrics', fresh => 1)->{content} // '';
my %c;
$c{"$1|$2"} = $3 while $m =~ /^usermgmt_ratelimit_decisions_total\{zone="([^"]+)",result="([^"]+)"\} (\d+)$/mg;
is($c{'login_account|limited'}, 3, 'metrics: login_account limited 3');
is($c{'login_account|allowed'}, 3 + 1 + 3 + 5 + 1,
   'metrics: login_account allowed 13 (one more: new_user signs in)');
is($c{'login_ip|limited'}, 0, 'metrics: login_ip limited 0');

done_testing();
