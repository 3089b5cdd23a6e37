#!/usr/bin/perl
# GET /audit/export: a streamed CSV or JSON document of the trail.  Checked
# against psql's own \copy ... csv, with 200,000 rows: every record, the
# quoting, the date bounds, rows written while it runs, the worker's
# memory (bounded: one batch at a time), slow clients, clients that go
# away, and PostgreSQL going away in the middle.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test qw(error_is json_decode wait_until);

my $t = UM::Test->new(workers => 1);

my $N = $t->{valgrind} ? 40_000 : 200_000;
my $EXPORT = '/api/v1/audit/export';
my $MB = 1024 * 1024;

sub token_of {
    my ($u) = @_;
    my $l = $t->login($u->{email}, $u->{password});
    die "login $u->{email}: $l->{status}\n" unless $l->{status} == 200;
    return $l->{json}{data}{access_token};
}

# An RFC 4180 parser: records of fields; an unquoted empty field is undef
# (NULL), a quoted one ''.
sub csv_parse {
    my ($text) = @_;
    my (@rows, @f);
    my $len = length $text;
    return [] unless $len;
    pos($text) = 0;
    while (1) {
        if ($text =~ /\G"([^"]*(?:""[^"]*)*)"/gc) {
            (my $v = $1) =~ s/""/"/g;
            push @f, $v;
        } elsif ($text =~ /\G([^,"\r\n]*)/gc) {
            push @f, length $1 ? $1 : undef;
        }
        next if $text =~ /\G,/gc;
        push @rows, [@f];
        @f = ();
        if ($text =~ /\G\r?\n/gc) {
            last if pos($text) >= $len;
            next;
        }
        last if pos($text) >= $len;
        die 'not CSV at byte ' . pos($text) . ': '
            . substr($text, pos($text), 40) . "\n";
    }
    return \@rows;
}

# what a spreadsheet must not run: = + - @ (and tab, CR) get an apostrophe
sub neutralized {
    my ($v) = @_;
    return $v unless defined $v;
    return $v =~ /^[=+\-\@\t\r]/ ? "'$v" : $v;
}

sub rss {
    my ($pid) = @_;
    my %h;
    open my $fh, '<', "/proc/$pid/status" or return {};
    while (<$fh>) {
        $h{$1} = $2 if /^(VmRSS|VmHWM):\s+(\d+) kB/;
    }
    return \%h;
}

# A request on a socket of our own, so the test decides how fast it reads.
sub open_export {
    my ($tok, $query, %o) = @_;
    my $s = IO::Socket::INET->new(Proto => 'tcp', Timeout => 10)
        or die "socket: $!";
    # a small window: the server feels a slow reader at once
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, $o{rcvbuf}) if $o{rcvbuf};
    $s->connect(Socket::pack_sockaddr_in($t->port,
                                         Socket::inet_aton('127.0.0.1')))
        or die "connect: $!";
    my $method = $o{method} // 'GET';
    print {$s} "$method $EXPORT?$query HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $tok\r\nConnection: close\r\n\r\n";
    return { sock => $s, raw => '', eof => 0 };
}

# reads up to $max bytes (all when undef) within $secs, $step at a time
sub read_more {
    my ($c, $max, $secs, $step, $pause) = @_;
    my $end = time + ($secs // 60);
    my $got = 0;
    while (!$c->{eof} && (!defined $max || $got < $max) && time < $end) {
        my $rin = '';
        vec($rin, fileno($c->{sock}), 1) = 1;
        next unless select(my $rout = $rin, undef, undef, 0.2);
        my $n = sysread($c->{sock}, $c->{raw}, $step // $MB,
                        length $c->{raw});
        if (!$n) {
            $c->{eof} = 1;
            last;
        }
        $got += $n;
        sleep $pause if $pause;
    }
    return $got;
}

# head, body (de-chunked) and whether the last chunk came
sub response_of {
    my ($c) = @_;
    my $raw = $c->{raw};
    my $e = index($raw, "\r\n\r\n");
    return {} if $e < 0;
    my $head = substr($raw, 0, $e);
    my ($status) = $head =~ m{^HTTP/1\.1 (\d{3})};
    my %h;
    $h{lc $1} = $2 while $head =~ /^([^:\r\n]+):\s*([^\r\n]*)/mg;
    my ($body, $complete) = ('', 0);
    my $p = $e + 4;
    if (($h{'transfer-encoding'} // '') eq 'chunked') {
        while (1) {
            my $le = index($raw, "\r\n", $p);
            last if $le < 0;
            my $n = hex substr($raw, $p, $le - $p);
            $p = $le + 2;
            if ($n == 0) {
                $complete = substr($raw, $p, 2) eq "\r\n";
                last;
            }
            last if $p + $n + 2 > length $raw;
            $body .= substr($raw, $p, $n);
            $p += $n + 2;
        }
    } else {
        $body = substr($raw, $p);
    }
    return { status => $status, headers => \%h, body => $body,
             complete => $complete };
}

sub export {
    my ($tok, $query) = @_;
    my $c = open_export($tok, $query);
    read_more($c, undef, 120);
    return response_of($c);
}

sub error_lines_since {
    my ($offset) = @_;
    my $log = $t->error_log // '';
    return grep { /\[(?:error|crit|alert|emerg)\]/ }
           split /\n/, substr($log, $offset);
}

###########################################################################
# the trail: $N rows of tenant A, ties of created_at, awkward values

my $sa = $t->login($t->admin_email, $t->admin_password)->{json}{data}{access_token};
my $org = $t->psql(q{SELECT id FROM organizations WHERE slug = 'default'});
my $org_b = $t->psql(q{INSERT INTO organizations (name, slug)
                       VALUES ('Export B', 'export-b') RETURNING id});

my $admin = $t->new_user;
$t->psql(q{UPDATE users SET user_type = 'admin' WHERE id = :'p1'}, $admin->{id});
my $tok = token_of($admin);
my $manager = $t->new_user;
$t->psql(q{UPDATE users SET user_type = 'manager' WHERE id = :'p1'},
         $manager->{id});

my $t0 = time;
$t->psql(<<'SQL', $org, $admin->{id}, $N, $org_b);
INSERT INTO audit_logs (created_at, organization_id, actor_id, action,
                        resource, resource_id, status, ip, user_agent,
                        changes, metadata)
SELECT timestamptz '2025-01-01 00:00:00+00'
           + (i / 2) * (200000 / :'p3'::integer) * interval '1 minute',
       :'p1',
       CASE WHEN i % 5 = 0 THEN NULL ELSE :'p2'::uuid END,
       (ARRAY['auth.login', 'auth.logout', 'user.update',
              'auth.login_failed'])[1 + i % 4],
       'user', 'res-' || i,
       CASE WHEN i % 4 = 3 THEN 'failure' ELSE 'success' END,
       ('10.' || (i % 256) || '.' || (i / 256 % 256) || '.1')::inet,
       'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like '
           || 'Gecko) Chrome/120.0.0.0 Safari/537.36 #' || i,
       jsonb_build_object('first_name',
                          jsonb_build_object('old', 'A' || i, 'new', 'B' || i)),
       CASE WHEN i % 7 = 0 THEN '{"note": "x, \"y\""}'::jsonb END
  FROM generate_series(1, :'p3'::integer) i;

INSERT INTO audit_logs (created_at, organization_id, action, resource,
                        status)
SELECT timestamptz '2025-01-01 00:00:00+00' + i * interval '1 minute',
       :'p4', 'other.tenant', 'x', 'success'
  FROM generate_series(1, 1000) i;
SQL
note(sprintf('%d rows inserted in %.1f s', $N + 1000, time - $t0));

# awkward values, in the middle of the range
my @odd = (
    [ 'comma, and "quotes"', 'res,1', 'Agent, with "quotes" and, commas' ],
    [ "line\nbreak", "multi\nline", "two\r\nlines" ],
    [ '=cmd|\' /C calc\'!A0', '+1', '-2+3' ],
    [ '@SUM(A1)', "\tTAB", "=HYPERLINK(\"http://x\")" ],
    [ "caf\x{e9} \x{263a}", "'quoted'", '' ],
);
for my $i (0 .. $#odd) {
    $t->psql(q{INSERT INTO audit_logs (created_at, organization_id,
                                       actor_id, action, resource,
                                       resource_id, status, user_agent)
               VALUES (timestamptz '2025-02-10 12:00:00+00'
                       + :'p1'::integer * interval '1 second',
                       :'p2', :'p3', :'p4', 'odd', :'p5', 'success', :'p6')},
             $i, $org, $admin->{id}, map { my $s = $_; utf8::encode($s); $s }
                                     @{ $odd[$i] });
}

# what the export must hold, in PostgreSQL's own CSV (COPY ... TO STDOUT
# through psql)
sub oracle_csv {
    my ($where, @bind) = @_;
    my $text = $t->psql(<<"SQL", @bind);
COPY (SELECT a.id,
             to_char(a.created_at AT TIME ZONE 'UTC',
                     'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
             a.organization_id, a.actor_id, u.email, a.action, a.resource,
             a.resource_id, a.status, host(a.ip), a.user_agent, a.changes,
             a.metadata
        FROM audit_logs a LEFT JOIN users u ON u.id = a.actor_id
       WHERE $where
       ORDER BY a.created_at, a.id)
  TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)
SQL
    return csv_parse($text);
}

###########################################################################
# who may export; the answer's head

my $r = $t->get("$EXPORT?format=csv",
                headers => $t->auth_header(token_of($manager)));
error_is($r, 403, 'FORBIDDEN', 'a manager (audit:read only) may not export');
$r = $t->get("$EXPORT?format=xml", headers => $t->auth_header($tok));
error_is($r, 400, 'BAD_REQUEST', 'format=xml: 400');
$r = $t->get("$EXPORT?start_date=2025-02-31", headers => $t->auth_header($tok));
error_is($r, 400, 'BAD_REQUEST', 'start_date=2025-02-31: 400');
is(eval { $r->{json}{error}{details}[0]{field} }, 'start_date',
   '... naming start_date');

my $c = open_export($tok, 'format=csv', method => 'HEAD');
read_more($c, undef, 10);
my $h = response_of($c);
is($h->{status}, 200, 'HEAD: 200');
is($h->{body}, '', '... and no body');

# a small one first: its head, and the worker warmed up
my $res = export($tok, 'format=csv&start_date=2025-02-10&end_date=2025-02-10');
is($res->{status}, 200, 'CSV export: 200');
is($res->{headers}{'content-type'}, 'text/csv; charset=utf-8',
   'Content-Type: text/csv; charset=utf-8');
like($res->{headers}{'content-disposition'} // '',
     qr/^attachment; filename="audit-\d{4}-\d\d-\d\d\.csv"$/,
     'Content-Disposition: attachment; filename="audit-<date>.csv"');
is($res->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
is($res->{headers}{'transfer-encoding'}, 'chunked', 'chunked');
ok(!exists $res->{headers}{'content-length'}, 'no Content-Length');
ok($res->{complete}, 'the last chunk came');

my @lines = split /\r\n/, $res->{body}, 3;
is($lines[0], 'id,created_at,organization_id,actor_id,actor_email,action,'
              . 'resource,resource_id,status,ip,user_agent,changes,metadata',
   'the header line');

# quoting: raw lines as a spreadsheet would get them
my $body = $res->{body};
utf8::decode($body);
like($body, qr/,"comma, and ""quotes""","odd","res,1","success",,"Agent, with ""quotes"" and, commas",,\r\n/,
     'commas and quotes: quoted, quotes doubled');
like($body, qr/,"line\nbreak","odd","multi\nline","success",,"two\r\nlines",,\r\n/,
     'line breaks stay inside their quotes');
like($body, qr/,"'=cmd\|' \/C calc'!A0","odd","'\+1","success",,"'-2\+3",,\r\n/,
     '= + - get a leading apostrophe');
like($body, qr/,"'\@SUM\(A1\)","odd","'\tTAB","success",,"'=HYPERLINK\(""http:\/\/x""\)",,\r\n/,
     '@ and tab too');
like($body, qr/,"caf\x{e9} \x{263a}","odd","'quoted'","success",,"",,\r\n/,
     'UTF-8 as it is; an apostrophe elsewhere is left alone; empty is ""');

my $got = csv_parse($res->{body});
shift @$got;
my $want = oracle_csv(q{a.organization_id = :'p1'
                        AND a.created_at >= '2025-02-10Z'
                        AND a.created_at < '2025-02-11Z'}, $org);
is(scalar @$got, scalar @$want, 'the day holds the rows psql finds ('
                                . scalar(@$want) . ')');
is_deeply($got, [ map { [ map { neutralized($_) } @$_ ] } @$want ],
          "every field as psql's \\copy csv writes it (formulas neutralized)");

###########################################################################
# the whole trail, CSV: every record, the worker's memory bounded

my ($worker) = $t->nginx_pids;
my $before = rss($worker);
my $log_offset = length($t->error_log // '');

$t0 = time;
$res = export($tok, 'format=csv');
my $secs = time - $t0;
my $after = rss($worker);
is($res->{status}, 200, 'the whole trail as CSV: 200');
ok($res->{complete}, '... complete');
diag(sprintf('CSV export: %.1f MB in %.1f s; worker RSS %d -> %d kB, '
             . 'peak %d -> %d kB', length($res->{body}) / $MB, $secs,
             $before->{VmRSS}, $after->{VmRSS}, $before->{VmHWM},
             $after->{VmHWM}));
ok(length($res->{body}) > ($t->{valgrind} ? 10 : 60) * $MB,
   'the export is large (' . int(length($res->{body}) / $MB) . ' MB)');

SKIP: {
    skip 'memory figures mean nothing under valgrind', 2 if $t->{valgrind};
    cmp_ok(($after->{VmHWM} - $before->{VmHWM}) / 1024, '<', 30,
           "the worker's peak memory grew by less than 30 MB");
    cmp_ok(($after->{VmRSS} - $before->{VmRSS}) / 1024, '<', 30,
           "... and its memory after it by less than 30 MB");
}

$got = csv_parse($res->{body});
shift @$got;
my $last = pop @$got;
is($last->[5], 'audit.export', 'the last row is the export itself');
is($last->[3], $admin->{id}, '... by its caller');
$want = oracle_csv(q{a.organization_id = :'p1' AND a.created_at
                     <= (SELECT max(created_at) FROM audit_logs
                          WHERE action = 'audit.export')
                     AND a.id <> (SELECT id FROM audit_logs
                                   WHERE action = 'audit.export'
                                   ORDER BY created_at DESC LIMIT 1)}, $org);
is(scalar @$got, scalar @$want,
   'as many rows as psql counts (' . scalar(@$want) . '); none of tenant B');
my $bad = 0;
for my $i (0 .. $#$want) {
    my $w = join "\x00", map { neutralized($_) // '<NULL>' } @{ $want->[$i] };
    my $g = join "\x00", map { $_ // '<NULL>' } @{ $got->[$i] // [] };
    if ($w ne $g) {
        diag("record $i differs:\n got $g\nwant $w") if $bad++ < 3;
    }
}
is($bad, 0, "every record equals psql's, in (created_at, id) order");
my @ties = grep { $want->[$_][1] eq $want->[$_ - 1][1] } 1 .. $#$want;
cmp_ok(scalar @ties, '>', $N / 3, '... many of them ties of created_at');
is_deeply([ error_lines_since($log_offset) ], [], 'error.log: nothing');
undef $got;
undef $want;

###########################################################################
# JSON, the super admin: every tenant

$res = export($sa, 'format=json');
is($res->{status}, 200, 'JSON export: 200');
is($res->{headers}{'content-type'}, 'application/json',
   'Content-Type: application/json');
like($res->{headers}{'content-disposition'} // '',
     qr/^attachment; filename="audit-\d{4}-\d\d-\d\d\.json"$/,
     'Content-Disposition names a .json');
ok($res->{complete}, '... complete');
my @rows = split /\n/, $res->{body};
is(shift @rows, '[', 'it opens with [');
is(pop @rows, ']', 'and closes with ]');
ok(!(grep { !/,$/ } @rows[0 .. $#rows - 1]) && $rows[-1] !~ /,$/,
   'one row a line, joined by ",\n"');
my @ids = map { /^\{"id" : "([0-9a-f-]{36})"/ ? $1 : 'none' } @rows;
my @want_ids = $t->psql(q{SELECT id FROM audit_logs
                           WHERE created_at <= (SELECT max(created_at)
                                                  FROM audit_logs
                                                 WHERE action = 'audit.export')
                           ORDER BY created_at, id});
is(scalar @ids, scalar @want_ids,
   'every tenant\'s rows (' . scalar(@want_ids) . ')');
is_deeply(\@ids, \@want_ids, '... in (created_at, id) order');
my $doc = eval { json_decode(join '', '[', join("\n", @rows[0 .. 99],
                                                     ($rows[-1] =~ s/,$//r)),
                             ']') };
ok(ref $doc eq 'ARRAY' && @$doc == 101, 'rows are JSON objects');
my ($odd_line) = grep { /"multi\\nline"/ } @rows;
my $odd = eval { json_decode($odd_line =~ s/,$//r) } // {};
is($odd->{resource_id}, "multi\nline", 'a line break is escaped in JSON');
is($odd->{user_agent}, "two\r\nlines", '... and carriage returns');
($odd_line) = grep { /"\+1"/ } @rows;
$odd = eval { json_decode($odd_line =~ s/,$//r) } // {};
is($odd->{resource_id}, '+1', 'no apostrophe in JSON: it runs no formula');
my ($b_line) = grep { /"other\.tenant"/ } @rows;
like($b_line // '', qr/\Q$org_b\E/, "tenant B's rows are in it");
undef @rows;

###########################################################################
# date bounds

$res = export($tok, 'format=csv&start_date=2025-02-01&end_date=2025-02-28');
$got = csv_parse($res->{body});
shift @$got;
is(scalar @$got,
   scalar $t->psql(q{SELECT count(*) FROM audit_logs
                     WHERE organization_id = :'p1'
                       AND created_at >= '2025-02-01Z'
                       AND created_at < '2025-03-01Z'}, $org),
   'start_date=2025-02-01&end_date=2025-02-28: February, whole days');
ok(!(grep { $_->[1] lt '2025-02-01' || $_->[1] ge '2025-03-01' } @$got),
   '... and nothing else');

$res = export($tok, 'format=json&start_date=2025-01-10T10:00:00%2B02:00'
                    . '&end_date=2025-01-10T08:30:00Z');
@rows = grep { /^\{/ } split /\n/, $res->{body};
is(scalar @rows,
   scalar($t->psql(q{SELECT count(*) FROM audit_logs
                     WHERE organization_id = :'p1'
                       AND created_at BETWEEN '2025-01-10T08:00:00Z'
                                          AND '2025-01-10T08:30:00Z'}, $org)),
   '08:00Z to 08:30Z inclusive, as psql counts');
like($rows[0], qr/"created_at" : "2025-01-10T08:00:00Z"/, 'the first at 08:00');
like($rows[-1], qr/"created_at" : "2025-01-10T08:30:00Z"/, 'the last at 08:30');

$res = export($tok, 'format=csv&start_date=2030-01-01');
is($res->{body}, "id,created_at,organization_id,actor_id,actor_email,action,"
                 . "resource,resource_id,status,ip,user_agent,changes,"
                 . "metadata\r\n", 'nothing in range: the header line alone');
ok($res->{complete}, '... and the last chunk');
$res = export($tok, 'format=json&start_date=2030-01-01');
is($res->{body}, "[\n\n]\n", 'JSON: an empty array');
is_deeply(json_decode($res->{body}), [], '... that parses');

$res = export($tok, 'format=csv&action=auth.login_failed&status=failure'
                    . '&start_date=2025-01-01&end_date=2025-01-01');
$got = csv_parse($res->{body});
shift @$got;
is(scalar @$got,
   scalar($t->psql(q{SELECT count(*) FROM audit_logs
                     WHERE organization_id = :'p1'
                       AND action = 'auth.login_failed' AND status = 'failure'
                       AND created_at >= '2025-01-01Z'
                       AND created_at < '2025-01-02Z'}, $org)),
   'filters: action and status, as psql counts');

my $audit = $t->psql(q{SELECT metadata FROM audit_logs
                        WHERE action = 'audit.export'
                        ORDER BY created_at DESC LIMIT 1});
is_deeply(json_decode($audit),
          { format => 'csv',
            filters => { action => 'auth.login_failed', status => 'failure',
                         start_date => '2025-01-01T00:00:00.000000Z',
                         end_date => '2025-01-01T23:59:59.999999Z' } },
          'the export is audited with its format and filters');

###########################################################################
# a slow client: backpressure, rows written meanwhile, memory

$before = rss($worker);
$log_offset = length($t->error_log // '');
$c = open_export($tok, 'format=csv', rcvbuf => 32768);
read_more($c, 256 * 1024, 20, 4096, 0.002);
ok(length $c->{raw} >= 256 * 1024, 'a slow client reads its first 256 kB');

# while it pauses, new rows come (created after the export began)
$t->psql(q{INSERT INTO audit_logs (organization_id, action, resource, status)
           SELECT :'p1', 'during.export', 'x', 'success'
             FROM generate_series(1, 5)}, $org);
$t->psql(q{INSERT INTO audit_logs (created_at, organization_id, action,
                                   resource, status)
           VALUES ('2030-01-01Z', :'p1', 'future.row', 'x', 'success')}, $org);
sleep 2;
my $mid = rss($worker);
my $raw_mid = length $c->{raw};
sleep 1;
read_more($c, 64 * 1024, 10, 4096);
read_more($c, undef, 120, 256 * 1024);
$after = rss($worker);
$res = response_of($c);
ok($res->{complete}, 'it still gets everything');
# every record but the header starts a line with the quoted id (the rows
# were compared field by field above; counting is enough here)
my $records = () = $res->{body} =~ /\r\n"[0-9a-f]{8}-/g;
is($records, scalar($t->psql(q{SELECT count(*) FROM audit_logs
                                     WHERE organization_id = :'p1'
                                       AND action NOT IN ('during.export',
                                                          'future.row')
                                       AND created_at <= (
                                           SELECT max(created_at)
                                             FROM audit_logs
                                            WHERE action = 'audit.export')},
                                  $org)),
   '... every row up to its start');
ok($res->{body} !~ /"during\.export"|"future\.row"/,
   'rows written after it began are not in it');
SKIP: {
    skip 'memory figures mean nothing under valgrind', 1 if $t->{valgrind};
    cmp_ok(($mid->{VmRSS} - $before->{VmRSS}) / 1024, '<', 30,
           'while the client does not read, the worker holds less than '
           . '30 MB more (it waits instead of fetching)');
    diag(sprintf('slow client: worker RSS %d -> %d (paused) -> %d kB',
                 $before->{VmRSS}, $mid->{VmRSS}, $after->{VmRSS}));
}
is_deeply([ error_lines_since($log_offset) ], [], 'error.log: nothing');

###########################################################################
# a client that goes away in the middle

$log_offset = length($t->error_log // '');
for my $k (1 .. 3) {
    $c = open_export($tok, 'format=' . ($k == 2 ? 'json' : 'csv'),
                     rcvbuf => 32768);
    read_more($c, $k * 300 * 1024, 20, 16384);
    close $c->{sock};
    sleep 0.3;
}
sleep 1;
is_deeply([ error_lines_since($log_offset) ], [],
          'clients that hang up mid-export: no error in error.log');
is_deeply([ $t->nginx_pids ], [ $worker ], 'the same worker is running');
$res = export($tok, 'format=csv&start_date=2025-02-10&end_date=2025-02-10');
ok($res->{complete} && $res->{status} == 200, '... and exports again');
is(scalar(@{ csv_parse($res->{body}) }) - 1,
   scalar($t->psql(q{SELECT count(*) FROM audit_logs
                     WHERE organization_id = :'p1'
                       AND created_at >= '2025-02-10Z'
                       AND created_at < '2025-02-11Z'}, $org)),
   '... the whole day');

###########################################################################
# PostgreSQL goes away mid-export: the transfer is cut, not finished

{
    $log_offset = length($t->error_log // '');
    $c = open_export($tok, 'format=csv', rcvbuf => 32768);
    read_more($c, 512 * 1024, 20, 16384);
    $t->stop_pg;
    read_more($c, undef, 60, 256 * 1024);
    $res = response_of($c);
    is($res->{status}, 200, 'the status was sent before');
    ok(!$res->{complete}, 'the last chunk never comes: the client sees a cut');
    ok($c->{eof}, '... and the connection closed');
    ok((grep { /audit export cut short after \d+ rows/ }
        split /\n/, substr($t->error_log // '', $log_offset)),
       'error.log says the export was cut short');
    $t->start_pg;
    ok(wait_until(sub {
        $t->get('/api/v1/audit/logs?page_size=1',
                headers => $t->auth_header($tok))->{status} == 200
    }, $t->secs(30), 0.5), 'PostgreSQL back: the API answers again');
}

done_testing();
