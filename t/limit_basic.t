#!/usr/bin/perl
# Rate limits through Redis: exactly N of N+k requests pass (also when they
# arrive at once on both workers), the X-RateLimit-* and IETF RateLimit /
# RateLimit-Policy fields on every answer, the 429 answer, burst=, the
# emission interval, several limits on one location (all-or-nothing),
# limits in front of proxy_pass and "return", keys by variable, user and
# tenant, tiers by role, and the decision counters in /metrics.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test qw(error_is json_decode);
use UM::JWT qw(jwt_decode);

my $zones = <<'EOF';
    usermgmt_limit_zone basic     key=ip rate=5r/m;
    usermgmt_limit_zone par       key=ip rate=5r/m;
    usermgmt_limit_zone seven     key=ip rate=7r/m;
    usermgmt_limit_zone nine      key=ip rate=9r/m;
    usermgmt_limit_zone bursty    key=ip rate=1r/h burst=3;
    usermgmt_limit_zone fast      key=ip rate=2r/s;
    usermgmt_limit_zone every2s   key=ip rate=1r/2s;
    usermgmt_limit_zone tight     key=ip rate=2r/h;
    usermgmt_limit_zone loose     key=ip rate=10r/h;
    usermgmt_limit_zone proxied   key=ip rate=3r/m;
    usermgmt_limit_zone ret       key=ip rate=3r/m;
    usermgmt_limit_zone apikey    key=$http_x_api_key rate=3r/m;
    usermgmt_limit_zone peruser   key=user rate=3r/m;
    usermgmt_limit_zone pertenant key=tenant rate=3r/m;
    usermgmt_limit_zone tiered    key=user rate=3r/m tier=manager:6r/m
                                  tier=org_admin:8r/m tier=super_admin:10r/m;

    log_format upstream_seen '$request_uri';
    server {
        listen 127.0.0.1:%%PORT2%%;
        access_log %%TMPDIR%%/upstream.log upstream_seen;
        location / { return 200 "upstream\n"; }
    }
EOF

my $locations = <<'EOF';
        location = /basic     { usermgmt_limit basic; return 200 "ok\n"; }
        location = /par       { usermgmt_limit par; return 200 "ok\n"; }
        location = /seven     { usermgmt_limit seven; return 200 "ok\n"; }
        location = /nine      { usermgmt_limit nine; return 200 "ok\n"; }
        location = /bursty    { usermgmt_limit bursty; return 200 "ok\n"; }
        location = /fast      { usermgmt_limit fast; return 200 "ok\n"; }
        location = /every2s   { usermgmt_limit every2s; return 200 "ok\n"; }
        location = /multi     { usermgmt_limit tight; usermgmt_limit loose;
                                return 204; }
        location = /loose     { usermgmt_limit loose; return 204; }
        location /proxied/    { usermgmt_limit proxied;
                                proxy_pass http://127.0.0.1:%%PORT2%%/; }
        location = /ret       { usermgmt_limit ret; return 204; }
        location = /keyed     { usermgmt_limit apikey; return 200 "ok\n"; }
        location = /peruser   { usermgmt_limit peruser; return 200 "ok\n"; }
        location = /pertenant { usermgmt_limit pertenant; return 200 "ok\n"; }
        location = /tiered    { usermgmt_auth on; usermgmt_limit tiered;
                                return 200 "ok\n"; }
EOF

my $t = UM::Test->new(workers => 2, http_extra => $zones,
                      server_extra => $locations);

###########################################################################
# helpers

# An RFC 8941 List of sf-string Items with parameters (integer or boolean
# values), as RateLimit and RateLimit-Policy use:
#   '"a";q=5;w=60, "b";q=2;w=3600'  ->  [ ['a', {q => 5, w => 60}], ... ]
# undef when the text is not such a list.
sub sf_list {
    my ($s) = @_;
    return undef unless defined $s;
    $s =~ s/^ +//;
    $s =~ s/ +\z//;
    my @items;
    pos($s) = 0;
    while (1) {
        $s =~ /\G"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\\"])*)"/gc
            or return undef;
        my $name = $1;
        $name =~ s/\\(.)/$1/g;
        my %p;
        while ($s =~ /\G; *([a-z*][a-z0-9_.*-]*)(?:=(-?[0-9]{1,15}))?/gc) {
            return undef if exists $p{$1};
            $p{$1} = defined $2 ? 0 + $2 : 1;
        }
        push @items, [$name, \%p];
        last if pos($s) == length $s;
        $s =~ /\G[ \t]*,[ \t]*/gc or return undef;
        return undef if pos($s) == length $s;
    }
    return \@items;
}

# name => {params} of a list from sf_list
sub sf_map {
    my ($list) = @_;
    return { map { ($_->[0] => $_->[1]) } @{ $list // [] } };
}

# Checks the rate-limit fields of an answer for the zone $zone:
#   limit, remaining, window (seconds, the w of the policy), full (the
#   longest time until the bucket is full again: window unless given),
#   tightest (the X-RateLimit-* are this zone's: true unless said
#   otherwise), before (time() before the request).
sub fields_ok {
    my ($r, $zone, %w) = @_;
    my $h = $r->{headers};
    my $tightest = $w{tightest} // 1;
    my $before = int($w{before} // time - 5);
    my $after = int(time) + 1;
    my $full = $w{full} // $w{window};
    my @why;

    my $policy = sf_list($h->{'ratelimit-policy'});
    my $state = sf_list($h->{ratelimit});
    push @why, 'RateLimit-Policy is not a structured list: '
        . ($h->{'ratelimit-policy'} // 'missing') unless $policy;
    push @why, 'RateLimit is not a structured list: '
        . ($h->{ratelimit} // 'missing') unless $state;

    my $p = sf_map($policy)->{$zone};
    my $s = sf_map($state)->{$zone};
    if ($policy && !$p) {
        push @why, "RateLimit-Policy has no \"$zone\"";
    } elsif ($p) {
        push @why, "RateLimit-Policy q=" . ($p->{q} // 'none')
            . ", want $w{limit}" unless ($p->{q} // -1) == $w{limit};
        push @why, "RateLimit-Policy w=" . ($p->{w} // 'none')
            . ", want $w{window}" unless ($p->{w} // -1) == $w{window};
    }
    if ($state && !$s) {
        push @why, "RateLimit has no \"$zone\"";
    } elsif ($s) {
        push @why, "RateLimit r=" . ($s->{r} // 'none')
            . ", want $w{remaining}"
            unless ($s->{r} // -1) == $w{remaining};
        push @why, "RateLimit t=" . ($s->{t} // 'none')
            . " is not within 1 .. $full"
            unless defined $s->{t} && $s->{t} >= 1 && $s->{t} <= $full;
    }

    if ($tightest) {
        my ($lim, $rem, $reset) =
            @{$h}{qw(x-ratelimit-limit x-ratelimit-remaining x-ratelimit-reset)};
        push @why, 'X-RateLimit-Limit is ' . ($lim // 'missing')
            . ", want $w{limit}"
            unless defined $lim && $lim =~ /^\d+\z/ && $lim == $w{limit};
        push @why, 'X-RateLimit-Remaining is ' . ($rem // 'missing')
            . ", want $w{remaining}"
            unless defined $rem && $rem =~ /^\d+\z/
                && $rem == $w{remaining};
        if (!defined $reset || $reset !~ /^\d+\z/) {
            push @why, 'X-RateLimit-Reset is ' . ($reset // 'missing')
                . ', want a unix time';
        } else {
            push @why, "X-RateLimit-Reset $reset is not in the future "
                . "within the period ($before + 1 .. $after + $full)"
                unless $reset >= $before + 1 && $reset <= $after + $full;
            push @why, "X-RateLimit-Reset $reset does not agree with "
                . "RateLimit t=$s->{t} (now $before .. $after)"
                if $s && defined $s->{t}
                   && ($reset < $before + $s->{t} - 1
                       || $reset > $after + $s->{t} + 1);
        }
    }

    my $tb = Test::More->builder;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = $tb->ok(!@why, $w{name} // "rate-limit fields of \"$zone\"");
    unless ($ok) {
        $tb->diag(join("\n", @why) . "\nstatus $r->{status}; headers:\n"
                  . join("\n", map { "  $_: $h->{$_}" }
                                   grep { /rate|retry/i } sort keys %$h));
    }
    return $ok;
}

# The 429 answer: body, Retry-After (whole seconds, 1 .. $max) and the
# same number in the message.
sub limited_ok {
    my ($r, $max, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    subtest $name => sub {
        error_is($r, 429, 'RATE_LIMIT_EXCEEDED', '429 RATE_LIMIT_EXCEEDED');
        my $ra = $r->{headers}{'retry-after'};
        ok(defined $ra && $ra =~ /^[0-9]+\z/ && $ra >= 1 && $ra <= $max,
           "Retry-After is whole seconds within 1 .. $max")
            or diag('Retry-After: ' . ($ra // 'missing'));
        my $e = eval { $r->{json}{error} } // {};
        is($e->{message},
           'Rate limit exceeded. Try again in ' . ($ra // '?') . ' seconds.',
           'the message names the same wait');
        is_deeply($e->{details}, [], 'details: []');
    };
}

sub statuses {
    my ($path, $n, %o) = @_;
    return map { $t->get($path, fresh => 1, %o)->{status} } 1 .. $n;
}

sub count_of {
    my ($status, @list) = @_;
    return scalar grep { $_ == $status } @list;
}

# $n requests at the same moment, each on its own connection from its own
# process; returns their statuses.
sub parallel {
    my ($path, $n) = @_;
    my $start = time + 0.3;
    my @kids;
    for my $i (1 .. $n) {
        pipe(my $rd, my $wr) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $rd;
            my $ua = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
            sleep($start - time) if $start > time;
            my $res = $ua->get($t->url($path));
            print {$wr} $res->{status};
            close $wr;
            POSIX::_exit(0);
        }
        close $wr;
        push @kids, [$pid, $rd];
    }
    my @st;
    for my $k (@kids) {
        my $fh = $k->[1];
        local $/;
        my $s = <$fh>;
        close $fh;
        waitpid($k->[0], 0);
        push @st, $s // 0;
    }
    return @st;
}

# a request from another loopback address (a separate per-IP bucket)
sub get_from {
    my ($addr, $path, %headers) = @_;
    my $ua = HTTP::Tiny->new(timeout => 10, keep_alive => 0,
                             local_address => $addr);
    my $res = $ua->get($t->url($path), { headers => \%headers });
    return { status => $res->{status}, headers => $res->{headers},
             content => $res->{content} };
}

sub bearer { { authorization => "Bearer $_[0]" } }

sub upstream_saw {
    my ($path) = @_;
    open my $fh, '<', $t->tmp . '/upstream.log' or return 0;
    return scalar grep { /^\Q$path\E$/ } <$fh>;
}

sub metrics {
    my $r = $t->get('/metrics', fresh => 1);
    my %m;
    for (split /\n/, $r->{content} // '') {
        $m{"$1|$2"} = $3 if /^usermgmt_ratelimit_decisions_total\{zone="([^"]*)",result="([^"]*)"\} (\d+)$/;
    }
    return (\%m, $r->{content} // '');
}

###########################################################################
# one zone: 5r/m, seven requests one after the other on new connections

my ($r, @st);
for my $i (1 .. 5) {
    my $before = time;
    $r = $t->get('/basic', fresh => 1);
    push @st, $r->{status};
    is($r->{status}, 200, "basic: request $i passes");
    fields_ok($r, 'basic', limit => 5, remaining => 5 - $i, window => 60,
              before => $before,
              name => "basic: request $i: fields (remaining " . (5 - $i) . ')');
    ok(!exists $r->{headers}{'retry-after'},
       "basic: request $i: no Retry-After");
}
for my $i (6 .. 7) {
    my $before = time;
    $r = $t->get('/basic', fresh => 1);
    push @st, $r->{status};
    limited_ok($r, 12, "basic: request $i is refused");
    fields_ok($r, 'basic', limit => 5, remaining => 0, window => 60,
              before => $before, name => "basic: request $i: fields");
}
is(count_of(200, @st), 5, 'basic: exactly 5 of 7 passed');


###########################################################################
# a rate whose emission interval is not a whole number of milliseconds
# (7r/m: 8571.43 ms, 9r/m: 6666.67 ms): the same count-down

for my $n (7, 9) {
    my $zone = $n == 7 ? 'seven' : 'nine';
    my (@rem, @r, @stat);
    for my $i (1 .. $n + 1) {
        $r = $t->get("/$zone", fresh => 1);
        push @stat, $r->{status};
        push @rem, $r->{headers}{'x-ratelimit-remaining'} // '-';
        push @r, eval { sf_map(sf_list($r->{headers}{ratelimit}))->{$zone}{r} }
                 // '-';
    }
    is_deeply(\@stat, [(200) x $n, 429], "$zone: ${n}r/m: $n pass, then 429");
    is("@rem", join(' ', reverse(0 .. $n - 1), 0),
       "$zone: X-RateLimit-Remaining counts down " . ($n - 1) . ' .. 0');
    is("@r", join(' ', reverse(0 .. $n - 1), 0),
       "$zone: RateLimit r counts down " . ($n - 1) . ' .. 0');
}

###########################################################################
# at once: 12 requests at the same moment from 12 connections, 5r/m

@st = parallel('/par', 12);
is(count_of(200, @st), 5, 'par: exactly 5 of 12 simultaneous requests passed')
    or diag("statuses: @st");
is(count_of(429, @st), 7, 'par: the other 7 got 429');

###########################################################################
# burst=3 at 1r/h: three pass, then one an hour

@st = ();
for my $i (1 .. 3) {
    $r = $t->get('/bursty', fresh => 1);
    push @st, $r->{status};
    fields_ok($r, 'bursty', limit => 3, remaining => 3 - $i, window => 3600,
              full => 3 * 3600, name => "bursty: request $i: fields (q=3, w=3600)");
}
$r = $t->get('/bursty', fresh => 1);
push @st, $r->{status};
limited_ok($r, 3600, 'bursty: the 4th is refused');
is(count_of(200, @st), 3, 'bursty: exactly the burst of 3 passed');

###########################################################################
# the emission interval: 2r/s lets one more through every 500 ms

my $t0 = time;
@st = statuses('/fast', 3);
my $burst_time = time - $t0;
SKIP: {
    skip 'three requests took longer than 400 ms', 4 if $burst_time > 0.4;
    is_deeply(\@st, [200, 200, 429], 'fast: 2r/s: two pass, the third is refused');
    $r = $t->get('/fast', fresh => 1);
    is($r->{headers}{'retry-after'}, 1, 'fast: Retry-After: 1');
    sleep 0.6;
    $r = $t->get('/fast', fresh => 1);
    is($r->{status}, 200, 'fast: after one emission interval one more passes');
    $r = $t->get('/fast', fresh => 1);
    is($r->{status}, 429, 'fast: ... and only one');
}

###########################################################################
# Retry-After is enough: 1r/2s, wait what the 429 says, then one passes

$r = $t->get('/every2s', fresh => 1);
is($r->{status}, 200, 'every2s: the first passes');
fields_ok($r, 'every2s', limit => 1, remaining => 0, window => 2,
          name => 'every2s: fields (q=1, w=2)');
$r = $t->get('/every2s', fresh => 1);
limited_ok($r, 2, 'every2s: the second is refused');
my $wait = $r->{headers}{'retry-after'} // 2;
sleep $wait if $wait =~ /^\d+\z/ && $wait <= 2;
$r = $t->get('/every2s', fresh => 1);
is($r->{status}, 200, "every2s: after Retry-After ($wait s) one passes");

###########################################################################
# two limits on one location: the tighter one decides, a refused request
# takes nothing from the other

$r = $t->get('/multi', fresh => 1);
is($r->{status}, 204, 'multi: request 1 passes');
fields_ok($r, 'tight', limit => 2, remaining => 1, window => 3600,
          name => 'multi: request 1: tight (X-RateLimit-* are the tightest)');
fields_ok($r, 'loose', limit => 10, remaining => 9, window => 3600,
          tightest => 0, name => 'multi: request 1: loose');
$r = $t->get('/multi', fresh => 1);
is($r->{status}, 204, 'multi: request 2 passes');
fields_ok($r, 'loose', limit => 10, remaining => 8, window => 3600,
          tightest => 0, name => 'multi: request 2: loose r=8');
my $loose_t = eval { sf_map(sf_list($r->{headers}{ratelimit}))->{loose}{t} };

for my $i (3 .. 5) {
    $r = $t->get('/multi', fresh => 1);
    limited_ok($r, 1800, "multi: request $i is refused by tight");
    fields_ok($r, 'tight', limit => 2, remaining => 0, window => 3600,
              name => "multi: request $i: tight r=0 in X-RateLimit-*");
    fields_ok($r, 'loose', limit => 10, remaining => 8, window => 3600,
              tightest => 0,
              name => "multi: request $i: loose still r=8 (nothing taken)");
    my $lt = eval { sf_map(sf_list($r->{headers}{ratelimit}))->{loose}{t} };
    ok(defined $lt && defined $loose_t && $lt <= $loose_t,
       "multi: request $i: loose t did not grow (a refusal takes nothing)")
        or diag('loose t: ' . ($lt // 'none') . ' after '
                . ($loose_t // 'none'));
}
$r = $t->get('/loose', fresh => 1);
is($r->{status}, 204, 'loose alone passes');
fields_ok($r, 'loose', limit => 10, remaining => 7, window => 3600,
          name => 'loose alone: r=7: the three refusals took nothing');

###########################################################################
# in front of proxy_pass

for my $i (1 .. 3) {
    $r = $t->get("/proxied/p$i", fresh => 1);
    is($r->{status}, 200, "proxied: request $i passes");
    is($r->{content}, "upstream\n", "proxied: request $i: the upstream's answer");
    fields_ok($r, 'proxied', limit => 3, remaining => 3 - $i, window => 60,
              name => "proxied: request $i: fields on the proxied answer");
}
for my $i (4 .. 5) {
    $r = $t->get("/proxied/p$i", fresh => 1);
    limited_ok($r, 20, "proxied: request $i is refused");
}
is(upstream_saw("/p$_"), 1, "proxied: the upstream saw /p$_") for 1 .. 3;
is(upstream_saw("/p$_"), 0, "proxied: the upstream did not see /p$_")
    for 4 .. 5;

###########################################################################
# in front of "return 204"

for my $i (1 .. 3) {
    $r = $t->get('/ret', fresh => 1);
    is($r->{status}, 204, "ret: request $i: 204");
    fields_ok($r, 'ret', limit => 3, remaining => 3 - $i, window => 60,
              name => "ret: request $i: fields");
}
$r = $t->get('/ret', fresh => 1);
limited_ok($r, 20, 'ret: the 4th is refused before the return');

###########################################################################
# key=$http_x_api_key

@st = statuses('/keyed', 4, headers => { 'X-Api-Key' => 'alpha' });
is_deeply(\@st, [200, 200, 200, 429], 'keyed: key alpha: 3 pass, the 4th is refused');
$r = $t->get('/keyed', fresh => 1, headers => { 'X-Api-Key' => 'beta' });
is($r->{status}, 200, 'keyed: key beta has its own bucket');
fields_ok($r, 'apikey', limit => 3, remaining => 2, window => 60,
          name => 'keyed: key beta: remaining 2');
@st = statuses('/keyed', 2, headers => { 'X-Api-Key' => 'beta' });
is_deeply(\@st, [200, 200], 'keyed: key beta: two more pass');
$r = $t->get('/keyed', fresh => 1, headers => { 'X-Api-Key' => 'beta' });
is($r->{status}, 429, 'keyed: key beta: the 4th is refused');

###########################################################################
# key=user

my $ua = $t->new_user;
my $ub = $t->new_user;

@st = statuses('/peruser', 4, headers => bearer($ua->{access_token}));
is_deeply(\@st, [200, 200, 200, 429], 'peruser: user A: 3 pass, the 4th is refused');
$r = get_from('127.0.0.2', '/peruser', %{ bearer($ua->{access_token}) });
is($r->{status}, 429, 'peruser: user A from another address: still refused');
$r = $t->get('/peruser', fresh => 1, headers => bearer($ub->{access_token}));
is($r->{status}, 200, 'peruser: user B has its own bucket');
fields_ok($r, 'peruser', limit => 3, remaining => 2, window => 60,
          name => 'peruser: user B: remaining 2');
@st = statuses('/peruser', 3);
is_deeply(\@st, [200, 200, 200], 'peruser: anonymous (no token): its own bucket, 3 pass');
$r = $t->get('/peruser', fresh => 1);
is($r->{status}, 429, 'peruser: anonymous: the 4th is refused');
$r = get_from('127.0.0.2', '/peruser');
is($r->{status}, 200, 'peruser: anonymous from another address: per address')
    or diag($r->{content});
$r = $t->get('/peruser', fresh => 1,
             headers => bearer($ub->{access_token} . 'x'));
is($r->{status}, 429, 'peruser: a bad token counts as anonymous (per address)');

###########################################################################
# key=tenant

my ($org) = $t->psql(q{INSERT INTO organizations (name, slug,
                              allow_self_registration)
                       VALUES ('Limit Org', 'limit-org', true) RETURNING id});
my $uc = $t->new_user(organization_slug => 'limit-org');
is(eval { $uc->{user}{organization_id} }, $org,
   'tenant: user C is in another organization');

@st = (statuses('/pertenant', 2, headers => bearer($ua->{access_token})),
       statuses('/pertenant', 1, headers => bearer($ub->{access_token})));
is_deeply(\@st, [200, 200, 200], 'pertenant: users A and B (one tenant): 3 pass');
$r = $t->get('/pertenant', fresh => 1, headers => bearer($ub->{access_token}));
is($r->{status}, 429, 'pertenant: B is refused: the tenant bucket is shared');
$r = $t->get('/pertenant', fresh => 1, headers => bearer($ua->{access_token}));
is($r->{status}, 429, 'pertenant: A is refused too');
$r = $t->get('/pertenant', fresh => 1, headers => bearer($uc->{access_token}));
is($r->{status}, 200, 'pertenant: user C (another tenant) passes');
fields_ok($r, 'pertenant', limit => 3, remaining => 2, window => 60,
          name => 'pertenant: user C: remaining 2');
$r = $t->get('/pertenant', fresh => 1);
is($r->{status}, 200, 'pertenant: anonymous: per address');

###########################################################################
# tiers by role

sub roles_of {
    my ($token) = @_;
    my (undef, $p) = eval { jwt_decode($token) };
    return join ',', @{ ($p // {})->{roles} // [] };
}

sub tier_ok {
    my ($who, $token, $cap) = @_;
    subtest "tiered: $who gets $cap a minute" => sub {
        my @s;
        for my $i (1 .. $cap) {
            my $r = $t->get('/tiered', fresh => 1, headers => bearer($token));
            push @s, $r->{status};
            if ($i == 1) {
                fields_ok($r, 'tiered', limit => $cap, remaining => $cap - 1,
                          window => 60, name => "first answer: q=$cap");
            }
        }
        is(count_of(200, @s), $cap, "$cap pass") or diag("statuses: @s");
        my $r = $t->get('/tiered', fresh => 1, headers => bearer($token));
        is($r->{status}, 429, 'the next is refused');
    };
}

my $plain = $t->new_user;
is(roles_of($plain->{access_token}), 'user', 'a new user has the role "user"');
tier_ok('a user', $plain->{access_token}, 3);

for my $case (['manager', 'manager', 6], ['admin', 'org_admin', 8]) {
    my ($type, $role, $cap) = @$case;
    my $u = $t->new_user;
    $t->psql(q{UPDATE users SET user_type = :'p1' WHERE email = :'p2'},
             $type, $u->{email});
    my $l = $t->login($u->{email}, $u->{password});
    my $tok = eval { $l->{json}{data}{access_token} } // '';
    like(roles_of($tok), qr/(?:^|,)\Q$role\E(?:,|$)/,
         "user_type $type: the token has the role $role");
    tier_ok("a $role", $tok, $cap);
}

SKIP: {
    skip 'no bootstrap admin', 2 unless $t->has_admin;
    my $l = $t->login($t->admin_email, $t->admin_password);
    my $tok = eval { $l->{json}{data}{access_token} } // '';
    like(roles_of($tok), qr/(?:^|,)super_admin(?:,|$)/,
         'the bootstrap admin has the role super_admin');
    tier_ok('the super_admin', $tok, 10);
}

$r = $t->get('/tiered', fresh => 1);
error_is($r, 401, 'UNAUTHORIZED', 'tiered (usermgmt_auth on): no token: 401');

###########################################################################
# the counters

my ($m, $text) = metrics();
like($text, qr/^# TYPE usermgmt_ratelimit_decisions_total counter$/m,
     'metrics: usermgmt_ratelimit_decisions_total is a counter');
my %want = (
    'basic|allowed' => 5, 'basic|limited' => 2,
    'par|allowed' => 5, 'par|limited' => 7,
    'bursty|allowed' => 3, 'bursty|limited' => 1,
    'tight|allowed' => 2, 'tight|limited' => 3,
    'loose|allowed' => 3, 'loose|limited' => 0,
    'proxied|allowed' => 3, 'proxied|limited' => 2,
    'ret|allowed' => 3, 'ret|limited' => 1,
    'basic|fail_open' => 0, 'basic|fail_local' => 0,
    'basic|fail_closed' => 0,
);
for my $k (sort keys %want) {
    my ($zone, $result) = split /\|/, $k;
    is($m->{$k}, $want{$k},
       "metrics: {zone=\"$zone\",result=\"$result\"} is $want{$k}");
}

done_testing();
