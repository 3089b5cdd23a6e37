#!/usr/bin/perl
# Directives: a correct configuration passes "nginx -t"; a wrong one fails
# it with a message that names the directive and the file:line, the way
# nginx's own directives do.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test;

plan skip_all => 'build/ngx_http_usermgmt_module.so is missing'
    unless -f UM::Test::module_path();

my $PG = '"hostaddr=127.0.0.1 port=%%PGPORT%% dbname=usermgmt user=usermgmt"';

# The http{} body with the given usermgmt_postgres / usermgmt_redis lines
# and extra text.
sub http_body {
    my (%o) = @_;
    my $pg    = $o{pg}    // "usermgmt_postgres $PG max=4 timeout=2s;";
    my $redis = $o{redis} // 'usermgmt_redis 127.0.0.1:%%REDISPORT%% timeout=50ms;';
    my $jwt   = $o{jwt}   // 'usermgmt_jwt_key hs256 %%JWTKEY%% kid=test;';
    my $http  = $o{http}  // '';
    my $loc   = $o{location} // '';
    return <<"EOF";
    access_log off;
    $pg
    $redis
    $jwt
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        location /api/v1/ { usermgmt_api; $loc }
        location = /health { usermgmt_health; }
        location = /ready { usermgmt_ready; }
        location = /metrics { usermgmt_metrics; }
    }
EOF
}

# Line number (1-based) of the first line of $text containing $needle.
sub line_of {
    my ($text, $needle) = @_;
    my @lines = split /\n/, $text;
    for my $i (0 .. $#lines) {
        return $i + 1 if index($lines[$i], $needle) >= 0;
    }
    return undef;
}

my $ok = UM::Test->check_config(config => http_body());
is($ok->{rc}, 0, 'the reference configuration passes nginx -t')
    or diag($ok->{out});
like($ok->{out}, qr/test is successful/, '... "test is successful"');

# [name, directive named in the message, http-body options, the text of the
#  wrong line (to find its number)]
my @bad = (
    ['max=0', 'usermgmt_postgres',
     { pg => "usermgmt_postgres $PG max=0;" }, 'max=0'],
    ['max=-1', 'usermgmt_postgres',
     { pg => "usermgmt_postgres $PG max=-1;" }, 'max=-1'],
    ['max=abc', 'usermgmt_postgres',
     { pg => "usermgmt_postgres $PG max=abc;" }, 'max=abc'],
    ['unknown parameter foo=bar', 'usermgmt_postgres',
     { pg => "usermgmt_postgres $PG max=4 foo=bar;" }, 'foo=bar'],
    ['bad timeout', 'usermgmt_postgres',
     { pg => "usermgmt_postgres $PG timeout=soon;" }, 'timeout=soon'],
    ['bad queue', 'usermgmt_postgres',
     { pg => "usermgmt_postgres $PG max=1 queue=-2;" }, 'queue=-2'],
    ['bad queue_timeout', 'usermgmt_postgres',
     { pg => "usermgmt_postgres $PG max=1 queue=2 queue_timeout=x;" },
     'queue_timeout=x'],
    ['no connection string', 'usermgmt_postgres',
     { pg => 'usermgmt_postgres;' }, 'usermgmt_postgres;'],
    ['duplicate usermgmt_postgres', 'usermgmt_postgres',
     { http => "usermgmt_postgres $PG max=2; # second" }, '# second'],
    ['redis address nonsense', 'usermgmt_redis',
     { redis => 'usermgmt_redis nonsense;' }, 'nonsense'],
    ['redis port out of range', 'usermgmt_redis',
     { redis => 'usermgmt_redis 127.0.0.1:99999;' }, '99999'],
    ['redis unknown parameter', 'usermgmt_redis',
     { redis => 'usermgmt_redis 127.0.0.1:%%REDISPORT%% foo=bar;' }, 'foo=bar'],
    ['redis bad timeout', 'usermgmt_redis',
     { redis => 'usermgmt_redis 127.0.0.1:%%REDISPORT%% timeout=never;' },
     'timeout=never'],
    ['usermgmt_api with an argument', 'usermgmt_api',
     { location => 'usermgmt_api extra;' }, 'usermgmt_api extra;'],
    ['usermgmt_api at http level', 'usermgmt_api',
     { http => 'usermgmt_api; # http level' }, '# http level'],
    ['usermgmt_health with an argument', 'usermgmt_health',
     { location => 'usermgmt_health yes;' }, 'usermgmt_health yes;'],
);

for my $case (@bad) {
    my ($name, $directive, $opts, $needle) = @$case;
    my $c = UM::Test->check_config(config => http_body(%$opts));
    my $line = line_of($c->{text}, $needle);
    subtest $name => sub {
        isnt($c->{rc}, 0, 'nginx -t fails');
        my ($msg) = grep { /\[emerg\]/ } split /\n/, $c->{out};
        ok(defined $msg, 'an [emerg] message') or return diag($c->{out});
        like($msg, qr/\Q$directive\E/, "the message names $directive");
        like($msg, qr/ in \Q$c->{file}\E:\Q$line\E\b/,
             "the message points at $c->{file}:$line");
    } or diag("nginx -t said:\n$c->{out}");
}

done_testing();
