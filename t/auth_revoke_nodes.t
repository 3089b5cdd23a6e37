#!/usr/bin/perl
# Revocation across nodes.  Two nginx nodes share Redis and PostgreSQL: a
# logout on one node is refused on the other at once; and a logout made
# while Redis is away reaches the other node once Redis is back.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep);
use UM::Test qw(wait_until);

my $n1 = UM::Test->new(workers => 2);
my $n2 = UM::Test->new(workers => 2,
                       redis_port => $n1->redis_port,
                       pg_port => $n1->pg_port,
                       jwt_keys => 'usermgmt_jwt_key hs256 '
                                   . $n1->jwt_key_file . ' kid=test;');

sub me {
    my ($node, $token) = @_;
    return $node->get('/api/v1/users/me',
                      headers => $n1->auth_header($token))->{status};
}

# with Redis up: the other node learns through the channel
my $u = $n1->new_user;
is(me($n2, $u->{access_token}), 200, 'a token of node 1 works on node 2');
is($n1->post('/api/v1/auth/logout', undef,
             headers => $n1->auth_header($u->{access_token}))->{status},
   200, 'logout on node 1');
ok(wait_until(sub { me($n2, $u->{access_token}) == 401 }, 2),
   'node 2 refuses the logged-out token within moments');
is(me($n1, $u->{access_token}), 401, 'node 1 refuses it at once');

# with Redis down: node 1 keeps the revocation and replays it
my $v = $n1->new_user;
is(me($n2, $v->{access_token}), 200, 'a second session works on node 2');

$n1->stop_redis;
is($n1->post('/api/v1/auth/logout', undef,
             headers => $n1->auth_header($v->{access_token}))->{status},
   200, 'logout on node 1 while Redis is down');
is(me($n1, $v->{access_token}), 401,
   'node 1 refuses the token at once, without Redis');

$n1->start_redis;
ok(wait_until(sub { me($n2, $v->{access_token}) == 401 }, 10),
   'once Redis is back, node 2 refuses the token too (replayed)');

my $n = $n1->redis_cli('ZCARD', 'usermgmt:revoked');
$n = $n->[0] if ref $n;
ok($n >= 2, 'both sessions are in the Redis deny-list') or diag($n);

done_testing();
