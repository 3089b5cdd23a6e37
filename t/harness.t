#!/usr/bin/perl
# The test harness itself: PostgreSQL and Redis come up on free ports, the
# migrations are applied, psql passes values safely, both servers can be
# stopped and started again, and nothing is left behind.  nginx is checked
# at the end only when the module has been built.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(free_port wait_until);

my @ports = free_port(5);
is(scalar(keys %{{ map { $_ => 1 } @ports }}), 5, 'free_port: distinct ports');
ok(!grep({ $_ < 1024 || $_ > 65535 } @ports), 'free_port: in range');

my $t = UM::Test->new(nginx => 0);
my $tmp = $t->tmp;
ok(-d $tmp, 'temporary folder exists');

# PostgreSQL

is(scalar $t->psql('SELECT 1'), '1', 'psql runs against the test database');
is(scalar $t->psql('SELECT current_user'), 'usermgmt', 'as the usermgmt role');
ok(scalar($t->psql(q{SELECT count(*) FROM information_schema.tables
                      WHERE table_name = 'organizations'})) == 1,
   'migrations applied: organizations table exists');

my $evil = q{x'); DROP TABLE organizations; --};
is(scalar $t->psql(q{SELECT :'p1'::text}, $evil), $evil,
   'psql: values travel as variables, never spliced');
is(scalar $t->psql(q{SELECT :'a' || '/' || :'b'}, { a => 'one', b => "two's" }),
   "one/two's", 'psql: named variables');
is_deeply([ $t->psql('SELECT g FROM generate_series(1, 3) g') ], [1, 2, 3],
          'psql: one line per row');
ok(!eval { $t->psql('SELECT * FROM no_such_table'); 1 }, 'psql dies on error');
like($@, qr/no_such_table/, '... with the server message');

# Redis

is($t->redis_cli('PING'), 'PONG', 'redis answers');
is($t->redis_cli('SET', 'k', "v a l"), 'OK', 'redis SET');
is($t->redis_cli('GET', 'k'), 'v a l', 'redis GET');
is($t->redis_cli('INCR', 'n'), 1, 'redis integer reply');
is_deeply($t->redis_cli('MGET', 'k', 'nope'), ['v a l', undef],
          'redis array reply with nil');

# stop and start again, same ports

$t->stop_pg;
ok(!eval { $t->psql('SELECT 1'); 1 }, 'stop_pg: database unreachable');
$t->start_pg;
is(scalar $t->psql('SELECT count(*) > 0 FROM organizations'), 't',
   'start_pg: same data back (bootstrap organization present)')
    if $t->has_admin;
is(scalar $t->psql('SELECT 2'), '2', 'start_pg: reachable again');

$t->stop_redis;
ok(!eval { $t->redis_cli('PING'); 1 }, 'stop_redis: redis unreachable');
$t->start_redis;
is($t->redis_cli('PING'), 'PONG', 'start_redis: redis back');

# background psql

my $pid = $t->psql_bg('SELECT pg_sleep(0.3)');
is($t->wait_bg($pid, 10), 0, 'psql_bg runs and ends');

# a config check without servers

my $c = UM::Test->check_config(config => 'server { listen 127.0.0.1:%%PORT%%; }');
if (-f UM::Test::module_path()) {
    is($c->{rc}, 0, 'nginx -t accepts a minimal config with the module')
        or diag($c->{out});
} else {
    isnt($c->{rc}, 0, 'nginx -t fails without the module file');
}

# cleanup: the processes go away and the folder is removed

my $pg_pid = do {
    open my $fh, '<', "$tmp/pg/data/postmaster.pid" or die $!;
    0 + <$fh>;
};
my $redis_pid = do {
    open my $fh, '<', "$tmp/redis/redis.pid" or die $!;
    0 + <$fh>;
};
ok(kill(0, $pg_pid) && kill(0, $redis_pid), 'servers running before stop');
$t->stop;
ok(wait_until(sub { !kill(0, $pg_pid) && !kill(0, $redis_pid) }, 10),
   'stop: postgres and redis are gone');
ok(($ENV{UM_KEEP} // '') eq '1' || !-e $tmp, 'stop: temporary folder removed');

done_testing();
