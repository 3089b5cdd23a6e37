#!/usr/bin/perl
# usermgmt_limit_zone / usermgmt_limit: a correct configuration passes
# "nginx -t"; a wrong one fails it with an [emerg] that names the directive
# and points at the file:line of the wrong directive.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test;

plan skip_all => 'build/ngx_http_usermgmt_module.so is missing'
    unless -f UM::Test::module_path();

# the http{} body: "zones" at http level before the server, "server" and
# "location" (in /api/v1/) inside it, "after" at http level after it
sub http_body {
    my (%o) = @_;
    my $zones  = $o{zones}    // '';
    my $server = $o{server}   // '';
    my $loc    = $o{location} // '';
    my $after  = $o{after}    // '';
    return <<"EOF";
    access_log off;
    usermgmt_postgres "hostaddr=127.0.0.1 port=%%PGPORT%% dbname=usermgmt user=usermgmt" max=4 timeout=2s;
    usermgmt_redis 127.0.0.1:%%REDISPORT%% timeout=50ms;
    usermgmt_jwt_key hs256 %%JWTKEY%% kid=test;
    $zones
    server {
        listen 127.0.0.1:%%PORT%%;
        location /api/v1/ {
            usermgmt_api;
            $loc
        }
        location = /health { usermgmt_health; }
$server
    }
    $after
EOF
}

sub line_of {
    my ($text, $needle) = @_;
    my @lines = split /\n/, $text;
    for my $i (0 .. $#lines) {
        return $i + 1 if index($lines[$i], $needle) >= 0;
    }
    return undef;
}

###########################################################################
# a configuration with every feature passes

my $good = UM::Test->check_config(config => http_body(
    zones => join("\n    ",
        'usermgmt_limit_zone a key=ip rate=100r/m;',
        'usermgmt_limit_zone b key=user rate=10r/s burst=20 fail=open;',
        'usermgmt_limit_zone c key=tenant rate=1000r/h tier=manager:2000r/h '
            . 'tier=org_admin:5000r/h fail=closed;',
        'usermgmt_limit_zone d key=account rate=5r/15m fail=closed;',
        'usermgmt_limit_zone e key=$http_x_api_key rate=100000r/d fail=local;',
        'usermgmt_limit_zone f key=ip rate=1r/s;'),
    location => 'usermgmt_limit a; usermgmt_limit b; usermgmt_limit c;',
    server => <<'EOF'));
        usermgmt_limit f;
        location = /api/v1/auth/login {
            usermgmt_api;
            usermgmt_limit a;
            usermgmt_limit d;
        }
        location /keyed/ {
            usermgmt_limit e;
            return 204;
        }
        location /upstream/ {
            usermgmt_limit a;
            usermgmt_limit c;
            proxy_pass http://127.0.0.1:%%PORT2%%/;
        }
EOF
is($good->{rc}, 0, 'zones with every key, rate unit, burst, tier and fail= '
                   . 'pass nginx -t') or diag($good->{out});

###########################################################################
# wrong ones

my $Z = 'usermgmt_limit_zone';
my $L = 'usermgmt_limit';

# [name, directive, http-body options, text of the wrong line,
#  (optional) text of another line the message may point at instead]
my @bad = (
    ['unknown zone', $L,
     { location => 'usermgmt_limit nosuch;' }, 'usermgmt_limit nosuch;'],
    ['zone declared after its use', $L,
     { location => 'usermgmt_limit late;',
       after => 'usermgmt_limit_zone late key=ip rate=5r/m;' },
     'usermgmt_limit late;'],
    ['unknown zone at server level', $L,
     { server => '        usermgmt_limit ghost;' }, 'usermgmt_limit ghost;'],
    ['usermgmt_limit without a name', $L,
     { location => 'usermgmt_limit;' }, 'usermgmt_limit;'],
    ['usermgmt_limit with two names', $L,
     { zones => "$Z a key=ip rate=5r/m;",
       location => 'usermgmt_limit a a;' }, 'usermgmt_limit a a;'],
    ['rate=100/m', $Z,
     { zones => "$Z z key=ip rate=100/m;" }, 'rate=100/m'],
    ['rate=0r/m', $Z,
     { zones => "$Z z key=ip rate=0r/m;" }, 'rate=0r/m'],
    ['rate=5r/x', $Z,
     { zones => "$Z z key=ip rate=5r/x;" }, 'rate=5r/x'],
    ['rate=-5r/m', $Z,
     { zones => "$Z z key=ip rate=-5r/m;" }, 'rate=-5r/m'],
    ['rate=r/m', $Z,
     { zones => "$Z z key=ip rate=r/m;" }, 'rate=r/m'],
    ['rate=5r/', $Z,
     { zones => "$Z z key=ip rate=5r/;" }, 'rate=5r/;'],
    ['rate=5r/0s', $Z,
     { zones => "$Z z key=ip rate=5r/0s;" }, 'rate=5r/0s'],
    ['rate=abc', $Z,
     { zones => "$Z z key=ip rate=abc;" }, 'rate=abc'],
    ['key=foo', $Z,
     { zones => "$Z z key=foo rate=5r/m;" }, 'key=foo'],
    ['key= (empty)', $Z,
     { zones => "$Z z key= rate=5r/m;" }, 'key= rate'],
    ['key=$ (no variable name)', $Z,
     { zones => "$Z z key=\$ rate=5r/m;" }, 'key=$ rate'],
    ['fail=maybe', $Z,
     { zones => "$Z z key=ip rate=5r/m fail=maybe;" }, 'fail=maybe'],
    ['burst=0', $Z,
     { zones => "$Z z key=ip rate=5r/m burst=0;" }, 'burst=0'],
    ['burst=abc', $Z,
     { zones => "$Z z key=ip rate=5r/m burst=abc;" }, 'burst=abc'],
    ['tier without a rate', $Z,
     { zones => "$Z z key=user rate=5r/m tier=manager;" }, 'tier=manager;'],
    ['tier without a role', $Z,
     { zones => "$Z z key=user rate=5r/m tier=:10r/m;" }, 'tier=:10r/m'],
    ['tier with a bad rate', $Z,
     { zones => "$Z z key=user rate=5r/m tier=manager:10/m;" },
     'tier=manager:10/m'],
    ['unknown parameter', $Z,
     { zones => "$Z z key=ip rate=5r/m foo=bar;" }, 'foo=bar'],
    ['no rate=', $Z,
     { zones => "$Z z key=ip;" }, "$Z z key=ip;"],
    ['no key=', $Z,
     { zones => "$Z z rate=5r/m;" }, "$Z z rate=5r/m;"],
    ['only a name', $Z,
     { zones => "$Z z;" }, "$Z z;"],
    ['duplicate zone name', $Z,
     { zones => "$Z dup key=ip rate=5r/m;\n    "
                . "$Z dup key=user rate=9r/m; # second" }, '# second'],
    ['usermgmt_limit_zone in a server', $Z,
     { zones => '',
       server => "        $Z inside key=ip rate=5r/m;" },
     "$Z inside"],
    ['key=account on a non-API location', $L,
     { zones => "$Z acct key=account rate=5r/m;",
       server => <<'EOF' }, 'usermgmt_limit acct; # here', 'location = /plain'],
        location = /plain
        {
            usermgmt_limit acct; # here
            return 200;
        }
EOF
    ['key=account inherited by a non-API location', $L,
     { zones => "$Z acct key=account rate=5r/m;",
       server => <<'EOF' }, 'usermgmt_limit acct; # server', 'location = /x'],
        usermgmt_limit acct; # server
        location = /x
        {
            return 204;
        }
EOF
);

for my $case (@bad) {
    my ($name, $directive, $opts, $needle, $alt) = @$case;
    my $c = UM::Test->check_config(config => http_body(%$opts));
    my $line = line_of($c->{text}, $needle);
    my $alt_line = defined $alt ? line_of($c->{text}, $alt) : undef;
    subtest $name => sub {
        isnt($c->{rc}, 0, 'nginx -t fails');
        my ($msg) = grep { /\[emerg\]/ } split /\n/, $c->{out};
        ok(defined $msg, 'an [emerg] message') or return diag($c->{out});
        like($msg, qr/"\Q$directive\E"/, "the message names \"$directive\"");
        my @at = grep { defined } $line, $alt_line;
        my $at = join '|', map { quotemeta } @at;
        like($msg, qr/ in \Q$c->{file}\E:(?:$at)\z/,
             "the message points at $c->{file}:" . join(' or ', @at));
    } or diag("nginx -t said:\n$c->{out}");
}

# an unknown variable is nginx's own check, made after the whole file is
# read: its message has no file:line, for any directive
my $c = UM::Test->check_config(config => http_body(
    zones => "$Z z key=\$no_such_variable rate=5r/m;"));
isnt($c->{rc}, 0, 'key=$no_such_variable: nginx -t fails');
like($c->{out}, qr/\[emerg\] unknown "no_such_variable" variable/,
     '... naming the variable') or diag($c->{out});

done_testing();
