#!/usr/bin/perl
# "usermgmt_limit off" drops the limits a location would inherit.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test;

my $t = UM::Test->new(
    http_extra => 'usermgmt_limit_zone tight key=ip rate=2r/m;',
    server_extra => <<'EOF2');
        usermgmt_limit tight;
        location = /limited { return 204; }
        location = /free { usermgmt_limit off; return 204; }
EOF2

my @st = map { $t->get('/limited')->{status} } 1 .. 3;
is_deeply(\@st, [204, 204, 429], 'the server-level limit applies below it');

my $r = $t->get('/free');
@st = ($r->{status}, map { $t->get('/free')->{status} } 1 .. 4);
is_deeply(\@st, [204, 204, 204, 204, 204], '"off" drops it');
ok(!exists $r->{headers}{'x-ratelimit-limit'}, '... and its headers');

done_testing();
