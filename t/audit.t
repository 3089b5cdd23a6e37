#!/usr/bin/perl
# The audit trail read back: GET /audit/logs (filters, pages, keyset
# cursors), /audit/user/{id}/activity, /audit/organization/{id}/stats, who
# may call them, other tenants (404), bad parameters (400 naming them) and
# SQL-injection strings (harmless).  psql says what the answers must hold.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is is_rfc3339_utc is_uuid);

my $t = UM::Test->new(workers => 2);

my $LOGS = '/api/v1/audit/logs';

sub q_escape {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-._~*])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub query {
    my (%p) = @_;
    return join '&', map { "$_=" . q_escape($p{$_}) } sort keys %p;
}

sub get_as {
    my ($tok, $path, %h) = @_;
    return $t->get($path, headers => $t->auth_header($tok, %h));
}

sub logs {
    my ($tok, %p) = @_;
    my $r = get_as($tok, $LOGS . (%p ? '?' . query(%p) : ''));
    return $r;
}

sub data { my ($r) = @_; return eval { $r->{json}{data} } // {} }

sub ids_of { my ($r) = @_; return [ map { $_->{id} } @{ data($r)->{logs} // [] } ] }

sub token_of {
    my ($u) = @_;
    my $l = $t->login($u->{email}, $u->{password});
    die "login $u->{email}: $l->{status}\n" unless $l->{status} == 200;
    return $l->{json}{data}{access_token};
}

# a user of the given type (admin is the org admin), with a fresh token
sub member {
    my ($type, %fields) = @_;
    my $u = $t->new_user(%fields);
    if ($type ne 'user') {
        $t->psql(q{UPDATE users SET user_type = :'p1' WHERE id = :'p2'},
                 $type, $u->{id});
    }
    $u->{token} = token_of($u);
    return $u;
}

sub bad_param {
    my ($r, $field, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    subtest $name => sub {
        error_is($r, 400, 'BAD_REQUEST', '400 BAD_REQUEST');
        my $det = eval { $r->{json}{error}{details} };
        my @d = ref $det eq "ARRAY" ? @$det : ();
        ok((grep { ($_->{field} // '') eq $field } @d),
           "details name $field") or diag($r->{content});
    };
}

###########################################################################
# the cast: two tenants and every role

my $sa = $t->login($t->admin_email, $t->admin_password)->{json}{data}{access_token};
ok($sa, 'the super admin signs in');

my $org_a = $t->psql(q{SELECT id FROM organizations WHERE slug = 'default'});
my $org_b = $t->psql(q{INSERT INTO organizations (name, slug,
                                                  allow_self_registration)
                       VALUES ('Audit B', 'audit-b', true) RETURNING id});

my $admin_a = member('admin');
my $manager_a = member('manager');
my $user_a = member('user');
my $user_a2 = member('user');
my $admin_b = member('admin', organization_slug => 'audit-b');
my $user_b = member('user', organization_slug => 'audit-b');

is($t->psql(q{SELECT organization_id FROM users WHERE id = :'p1'},
            $user_b->{id}), $org_b, 'a user of the second tenant');

# Rows of known times and values, beside the ones sign-ins wrote.  resource
# "widget" for the date filters, "bulk" for ties of created_at.
my $INJ = q{1' OR '1'='1'; DROP TABLE audit_logs; --};
$t->psql(<<'SQL', $org_a, $admin_a->{id}, $user_a->{id}, $INJ, $org_b);
INSERT INTO audit_logs (created_at, organization_id, actor_id, action,
                        resource, resource_id, status, ip, user_agent,
                        changes, metadata)
VALUES ('2025-03-10 10:00:00+00', :'p1', :'p2', 'widget.create', 'widget',
        'w-1', 'success', '10.1.2.3', 'ua "one"', '{"n": {"old": 1, "new": 2}}',
        '{"k": "v"}'),
       ('2025-03-11 23:30:00+00', :'p1', :'p2', 'widget.update', 'widget',
        'w-1', 'failure', '2001:db8::1', 'ua, two', NULL, NULL),
       ('2025-03-12 00:30:00+00', :'p1', :'p3', 'widget.delete', 'widget',
        'w-2', 'success', NULL, NULL, NULL, NULL),
       (now() - interval '1 hour', :'p1', :'p2', 'user.update', 'user',
        :'p3', 'success', '10.0.0.9', 'ua', NULL, NULL),
       (now() - interval '40 days', :'p1', :'p3', 'auth.login', 'session',
        NULL, 'success', NULL, NULL, NULL, NULL),
       (now() - interval '2 hours', :'p1', :'p2', :'p4', :'p4', :'p4',
        'success', NULL, :'p4', NULL, NULL),
       ('2025-03-11 12:00:00+00', :'p5', NULL, 'widget.create', 'widget',
        'w-b', 'success', NULL, NULL, NULL, NULL);
INSERT INTO audit_logs (created_at, organization_id, actor_id, action,
                        resource, resource_id, status)
SELECT '2025-04-01 12:00:00+00', :'p1', :'p3', 'bulk.same', 'bulk', i::text,
       CASE WHEN i % 3 = 0 THEN 'failure' ELSE 'success' END
  FROM generate_series(1, 30) i;
SQL

# one failed login in each tenant
is($t->login($user_a->{email}, 'Wrong-password-1')->{status}, 401,
   'a failed login (tenant A)');
is($t->login($user_b->{email}, 'Wrong-password-1')->{status}, 401,
   'a failed login (tenant B)');

sub count_a { scalar $t->psql(q{SELECT count(*) FROM audit_logs
                                WHERE organization_id = :'p1'}, $org_a) }

###########################################################################
# who may call what

my $r = $t->get($LOGS);
error_is($r, 401, 'UNAUTHORIZED', 'logs without a token: 401');

error_is(logs($user_a->{token}), 403, 'FORBIDDEN',
         'logs as a plain user: 403 (no audit:read)');
is(logs($manager_a->{token})->{status}, 200, 'logs as a manager: 200');
is(logs($admin_a->{token})->{status}, 200, 'logs as an org admin: 200');
is(logs($sa)->{status}, 200, 'logs as the super admin: 200');

my $EXPORT = '/api/v1/audit/export?format=json&start_date=2025-03-10'
             . '&end_date=2025-03-10';
error_is(get_as($user_a->{token}, $EXPORT), 403, 'FORBIDDEN',
         'export as a plain user: 403');
error_is(get_as($manager_a->{token}, $EXPORT), 403, 'FORBIDDEN',
         'export as a manager: 403 (audit:read only, no audit:export)');
is(get_as($admin_a->{token}, $EXPORT)->{status}, 200,
   'export as an org admin: 200');
is(get_as($sa, $EXPORT)->{status}, 200, 'export as the super admin: 200');

# a permission given directly is enough
{
    my $u = member('user');
    $t->psql(q{INSERT INTO user_permissions (user_id, permission_id)
               SELECT :'p1', id FROM permissions WHERE name = 'audit:read'},
             $u->{id});
    my $tok = token_of($u);
    is(logs($tok)->{status}, 200,
       'logs as a plain user granted audit:read: 200');
    error_is(get_as($tok, $EXPORT), 403, 'FORBIDDEN',
             '... who still may not export');
}

sub activity { "/api/v1/audit/user/$_[0]/activity" . ($_[1] // '') }
sub stats { "/api/v1/audit/organization/$_[0]/stats" . ($_[1] // '') }

is(get_as($user_a->{token}, activity($user_a->{id}))->{status}, 200,
   'activity: a plain user sees their own');
error_is(get_as($user_a->{token}, activity($user_a2->{id})), 403,
         'FORBIDDEN', "activity: a plain user, someone else's: 403");
is(get_as($manager_a->{token}, activity($user_a->{id}))->{status}, 200,
   'activity: a manager, a user of the tenant: 200');
is(get_as($admin_a->{token}, activity($user_a->{id}))->{status}, 200,
   'activity: an org admin, a user of the tenant: 200');
is(get_as($sa, activity($user_b->{id}))->{status}, 200,
   'activity: the super admin, a user of any tenant: 200');

error_is(get_as($user_a->{token}, stats($org_a)), 403, 'FORBIDDEN',
         'stats as a plain user: 403');
is(get_as($manager_a->{token}, stats($org_a))->{status}, 200,
   'stats as a manager, own tenant: 200');
is(get_as($admin_a->{token}, stats($org_a))->{status}, 200,
   'stats as an org admin, own tenant: 200');
is(get_as($sa, stats($org_b))->{status}, 200,
   'stats as the super admin, any tenant: 200');

###########################################################################
# other tenants: 404 on every {id} route

error_is(get_as($admin_a->{token}, activity($user_b->{id})), 404, 'NOT_FOUND',
         "activity of another tenant's user, as an org admin: 404");
error_is(get_as($manager_a->{token}, activity($admin_b->{id})), 404,
         'NOT_FOUND', "... as a manager: 404");
error_is(get_as($admin_b->{token}, activity($user_a->{id})), 404, 'NOT_FOUND',
         '... the other way round: 404');
error_is(get_as($admin_a->{token}, stats($org_b)), 404, 'NOT_FOUND',
         "stats of another tenant, as an org admin: 404");
error_is(get_as($manager_a->{token}, stats($org_b)), 404, 'NOT_FOUND',
         '... as a manager: 404');
error_is(get_as($admin_b->{token}, stats($org_a)), 404, 'NOT_FOUND',
         '... the other way round: 404');
error_is(get_as($sa, activity($user_a->{id}), 'X-Tenant-ID' => $org_b), 404,
         'NOT_FOUND', 'the super admin narrowed to tenant B, a user of A: 404');
error_is(get_as($sa, stats($org_a), 'X-Tenant-ID' => $org_b), 404,
         'NOT_FOUND', '... and the stats of A: 404');
my $nobody = '6a0c4d2e-5b1f-4c3d-9e8f-0123456789ab';
error_is(get_as($sa, activity($nobody)), 404, 'NOT_FOUND',
         'activity of a user that does not exist: 404');
error_is(get_as($sa, stats($nobody)), 404, 'NOT_FOUND',
         'stats of an organization that does not exist: 404');
error_is(get_as($sa, '/api/v1/audit/user/not-a-uuid/activity'), 400,
         'BAD_REQUEST', 'activity of a malformed id: 400');
error_is(get_as($sa, '/api/v1/audit/organization/1%27%20OR%201=1/stats'), 400,
         'BAD_REQUEST', 'stats of a malformed id: 400');

###########################################################################
# tenancy of the list

$r = logs($admin_a->{token}, page_size => 100);
my $d = data($r);
is($d->{total}, count_a(), "an org admin's total is the tenant's row count");
ok(!(grep { ($_->{organization_id} // '') ne $org_a } @{ $d->{logs} }),
   '... and every row is of the tenant');

$r = logs($admin_b->{token}, page_size => 100);
is(data($r)->{total},
   scalar $t->psql(q{SELECT count(*) FROM audit_logs
                     WHERE organization_id = :'p1'}, $org_b),
   "tenant B's admin sees B's rows");
ok(!(grep { ($_->{organization_id} // '') ne $org_b } @{ data($r)->{logs} }),
   '... only');

is(data(logs($sa))->{total},
   scalar $t->psql(q{SELECT count(*) FROM audit_logs}),
   'the super admin sees every tenant');
$r = get_as($sa, "$LOGS?page_size=100", 'X-Tenant-ID' => $org_b);
ok(@{ data($r)->{logs} // [] }
   && !(grep { ($_->{organization_id} // '') ne $org_b } @{ data($r)->{logs} }),
   '... or the tenant X-Tenant-ID names');

# a manager of B filtering on a user of A finds nothing
is(data(logs($admin_b->{token}, user_id => $user_a->{id}))->{total}, 0,
   "filtering on another tenant's user finds nothing");

###########################################################################
# the shape of a row

$r = logs($admin_a->{token}, resource => 'widget', status => 'success',
          action => 'widget.create');
$d = data($r);
is($d->{total}, 1, 'one row for resource, status and action together');
my $row = $d->{logs}[0] // {};
is_deeply([sort keys %$row],
          [sort qw(id created_at organization_id actor_id actor_email action
                   resource resource_id status ip user_agent changes
                   metadata)],
          'a row has the documented fields');
ok(is_uuid($row->{id}), 'id is a UUID');
is($row->{created_at}, '2025-03-10T10:00:00Z', 'created_at in RFC 3339 UTC');
is($row->{actor_id}, $admin_a->{id}, 'actor_id');
is($row->{actor_email}, $admin_a->{email}, 'actor_email from the users table');
is($row->{ip}, '10.1.2.3', 'ip');
is($row->{user_agent}, 'ua "one"', 'user_agent');
is_deeply($row->{changes}, { n => { old => 1, new => 2 } }, 'changes');
is_deeply($row->{metadata}, { k => 'v' }, 'metadata');
is($row->{organization_id}, $org_a, 'organization_id');

# the rows the sign-ins wrote
$r = logs($admin_a->{token}, user_id => $user_a->{id}, action => 'auth.login_failed');
is(data($r)->{total}, 1, 'the failed login of user A is in the trail');
is(eval { data($r)->{logs}[0]{status} }, 'failure', '... as a failure');

###########################################################################
# filters against psql

sub psql_ids {
    my ($where, @bind) = @_;
    return [ $t->psql("SELECT id FROM audit_logs WHERE organization_id = :'p1'"
                      . " AND $where ORDER BY created_at DESC, id DESC",
                      $org_a, @bind) ];
}

sub filter_ok {
    my ($name, $p, $where, @bind) = @_;
    my $r = logs($admin_a->{token}, page_size => 100, %$p);
    my $want = psql_ids($where, @bind);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    subtest $name => sub {
        is($r->{status}, 200, 'status 200') or diag($r->{content});
        is(data($r)->{total}, scalar @$want, 'total as psql counts');
        is_deeply(ids_of($r), $want, 'the rows psql finds, newest first');
    };
}

filter_ok('user_id is the actor', { user_id => $user_a->{id} },
          q{actor_id = :'p2'}, $user_a->{id});
filter_ok('action, exact', { action => 'widget.update' },
          q{action = 'widget.update'});
filter_ok('action with a trailing * is a prefix', { action => 'auth.*' },
          q{action LIKE 'auth.%'});
filter_ok('action "widget*"', { action => 'widget*' },
          q{action LIKE 'widget%'});
filter_ok('action "*" alone is every action', { action => '*' }, 'true');
filter_ok('a * elsewhere is taken literally', { action => 'auth*.login' },
          'false');
filter_ok('a prefix with % and _ in it is not a pattern', { action => '%_*' },
          'false');
filter_ok('resource', { resource => 'bulk' }, q{resource = 'bulk'});
filter_ok('resource_id', { resource_id => 'w-1' }, q{resource_id = 'w-1'});
filter_ok('status failure', { status => 'failure' }, q{status = 'failure'});
filter_ok('status success', { status => 'success' }, q{status = 'success'});
filter_ok('an empty parameter is no filter (seed 002 sends them)',
          { user_id => '', action => '', resource => '', status => '' },
          'true');
filter_ok('filters together', { resource => 'bulk', status => 'failure' },
          q{resource = 'bulk' AND status = 'failure'});

# dates: a date alone is a whole UTC day; times carry their offset
filter_ok('start_date and end_date, the same day',
          { resource => 'widget', start_date => '2025-03-11',
            end_date => '2025-03-11' },
          q{resource = 'widget' AND created_at >= '2025-03-11Z'
            AND created_at < '2025-03-12Z'});
filter_ok('start_date an RFC 3339 time',
          { resource => 'widget', start_date => '2025-03-11T23:30:00Z' },
          q{resource = 'widget' AND created_at >= '2025-03-11T23:30:00Z'});
filter_ok('end_date with an offset (+02:00)',
          { resource => 'widget', end_date => '2025-03-12T01:00:00+02:00' },
          q{resource = 'widget' AND created_at <= '2025-03-11T23:00:00Z'});
filter_ok('end_date with a negative offset and a fraction',
          { resource => 'widget', end_date => '2025-03-11T19:30:00.5-04:00' },
          q{resource = 'widget' AND created_at <= '2025-03-11T23:30:00.5Z'});
filter_ok('start_date one microsecond after the last row',
          { resource => 'widget', start_date => '2025-03-12T00:30:00.000001Z' },
          'false');

# a '+' left unescaped in the query string arrives as a space
$r = get_as($admin_a->{token},
            "$LOGS?resource=widget&end_date=2025-03-12T01:00:00+02:00");
is(data($r)->{total}, 1, 'an offset whose + the query string made a space');

###########################################################################
# bad parameters: 400 naming them

for my $bad ('2025-13-01', '2025-02-29', '2025-02-30', 'yesterday',
             '2025-1-01', '2025-01-01T25:00:00Z', '2025-01-01T10:00:00',
             '2025-01-01T10:00Z', '2025-01-01T10:00:00+2:00',
             '2025-01-01T10:00:00.Z', '0000-01-01', '2025-01-01X10:00:00Z',
             '20250101', "2025-01-01\x{e9}") {
    bad_param(logs($admin_a->{token}, start_date => $bad), 'start_date',
              "start_date=$bad: 400");
}
bad_param(logs($admin_a->{token}, end_date => '2025-04-31'), 'end_date',
          'end_date=2025-04-31: 400');
is(logs($admin_a->{token}, start_date => '2024-02-29')->{status}, 200,
   'start_date=2024-02-29 (a leap day): 200');
bad_param(logs($admin_a->{token}, start_date => '2025-03-12',
               end_date => '2025-03-11'), 'start_date',
          'start_date after end_date: 400');
bad_param(logs($admin_a->{token}, user_id => 'me'), 'user_id',
          'user_id not a UUID: 400');
bad_param(logs($admin_a->{token}, status => 'ok'), 'status',
          'status neither success nor failure: 400');
bad_param(logs($admin_a->{token}, action => 'a' x 101), 'action',
          'action over 100 bytes: 400');
bad_param(logs($admin_a->{token}, page_size => 101), 'page_size',
          'page_size over 100: 400');
bad_param(logs($admin_a->{token}, page => 0), 'page', 'page 0: 400');
bad_param(logs($admin_a->{token}, cursor => 'abc'), 'cursor',
          'a cursor that is not one: 400');
bad_param(get_as($admin_a->{token}, "$LOGS?action=%ff"), 'action',
          'a parameter that is not UTF-8: 400');
for my $days (0, 366, 'abc', -1, '1e2') {
    bad_param(get_as($sa, activity($user_a->{id}, "?days=$days")), 'days',
              "activity days=$days: 400");
    bad_param(get_as($sa, stats($org_a, "?days=$days")), 'days',
              "stats days=$days: 400");
}

###########################################################################
# pages and keyset cursors

$r = logs($admin_a->{token}, resource => 'bulk', page_size => 7, page => 2);
$d = data($r);
my $bulk = psql_ids(q{resource = 'bulk'});
is(scalar @$bulk, 30, 'thirty rows share one created_at');
is_deeply(ids_of($r), [ @$bulk[7 .. 13] ], 'page 2 of 7: rows 8 to 14');
is_deeply([ @$d{qw(total page page_size per_page pages has_next has_prev)} ],
          [ 30, 2, 7, 7, 5, JSON::PP::true, JSON::PP::true ],
          'total, page, page_size, per_page, pages, has_next, has_prev');

$r = logs($admin_a->{token}, resource => 'bulk', limit => 5, offset => 25);
is_deeply(ids_of($r), [ @$bulk[25 .. 29] ], 'limit/offset: the last five');
ok(!data($r)->{has_next} && !defined data($r)->{next_cursor},
   '... no next page, no next_cursor');
$r = logs($admin_a->{token}, resource => 'bulk', per_page => 4, skip => 8);
is_deeply(ids_of($r), [ @$bulk[8 .. 11] ], 'per_page/skip');
$r = logs($admin_a->{token}, resource => 'bulk', size => 4, page => 9);
is_deeply(ids_of($r), [], 'a page past the end is empty');
is(data($r)->{total}, 30, '... and still tells the total');

# follow next_cursor to the end: every row once, in order, ties by id
my (@walk, $cursor, $pages);
do {
    $r = logs($admin_a->{token}, resource => 'bulk', page_size => 7,
              ($cursor ? (cursor => $cursor) : ()));
    $d = data($r);
    push @walk, @{ ids_of($r) };
    $pages++;
    if ($pages == 2) {
        is($d->{page}, 2, 'the page after a cursor knows its number');
        ok($d->{has_prev}, '... and that pages come before it');
    }
    $cursor = $d->{next_cursor};
    like($cursor, qr/^[A-Za-z0-9_-]+$/, "next_cursor of page $pages is base64url")
        if defined $cursor;
} while (defined $cursor && $pages < 10);
is($pages, 5, 'five pages of seven');
is_deeply(\@walk, $bulk, 'the keyset walk returns every row once, in order');

# a cursor holds: rows written after it was handed out do not shift pages
$r = logs($admin_a->{token}, resource => 'bulk', page_size => 10);
$cursor = data($r)->{next_cursor};
$t->psql(q{INSERT INTO audit_logs (organization_id, action, resource, status)
           VALUES (:'p1', 'bulk.new', 'bulk', 'success')}, $org_a);
$r = logs($admin_a->{token}, resource => 'bulk', page_size => 10,
          cursor => $cursor);
is_deeply(ids_of($r), [ @$bulk[10 .. 19] ],
          'the next page after a new row: the same rows as before');
is(data($r)->{total}, 31, '... the total counts the new row');
is(data($r)->{page}, 2, '... and the page number counts the rows before the cursor');

# a cursor whose time or id is malformed
for my $c ('2025-04-01T12:00:00.000000Z,not-a-uuid-at-all-xxxxxxxxxxxxxxxxxxxx',
           '2025-02-30T12:00:00.000000Z,' . $bulk->[0],
           'x' x 64) {
    my $b64 = MIME_b64u($c);
    bad_param(logs($admin_a->{token}, cursor => $b64), 'cursor',
              "cursor of '" . substr($c, 0, 30) . "...': 400");
}

sub MIME_b64u {
    require MIME::Base64;
    my $s = MIME::Base64::encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

###########################################################################
# SQL injection in every parameter: stored verbatim or refused, never 500

my @inj = ($INJ, q{' OR 1=1 --}, q{"; SELECT pg_sleep(5); --},
           q{\\'; DELETE FROM audit_logs; --}, "%' OR '%'='", "*");
my $NOT_EXPORTS = q{SELECT count(*) FROM audit_logs
                    WHERE action <> 'audit.export'};
my $rows_before = $t->psql($NOT_EXPORTS);
for my $param (qw(user_id action resource resource_id status start_date
                  end_date cursor page page_size limit offset)) {
    for my $s (@inj) {
        $r = logs($admin_a->{token}, $param => $s);
        ok($r->{status} == 200 || $r->{status} == 400,
           "logs $param=" . substr($s, 0, 12) . "...: 200 or 400, not "
           . $r->{status}) or diag($r->{content});
    }
}
for my $s (@inj) {
    for my $p (activity($user_a->{id}, '?days=' . q_escape($s)),
               activity($user_a->{id}, '?page=' . q_escape($s)),
               stats($org_a, '?days=' . q_escape($s)),
               '/api/v1/audit/export?format=' . q_escape($s),
               '/api/v1/audit/export?format=json&action=' . q_escape($s)
               . '&start_date=2025-01-01&end_date=2025-01-01') {
        $r = get_as($admin_a->{token}, $p);
        ok($r->{status} == 200 || $r->{status} == 400,
           "$p: 200 or 400") or diag($r->{content});
    }
}
is($t->psql($NOT_EXPORTS), $rows_before,
   'the table is all there, and no row was added but the exports\' own');

for my $f (qw(action resource resource_id)) {
    $r = logs($admin_a->{token}, $f => $INJ);
    is(data($r)->{total}, 1, "$f: the injection string finds its own row");
    is(eval { data($r)->{logs}[0]{$f} }, $INJ, '... stored verbatim');
}

###########################################################################
# a user's activity

$r = get_as($admin_a->{token}, activity($user_a->{id}));
$d = data($r);
my $act_where = q{(actor_id = :'p2' OR resource_id = :'p2')
                  AND created_at >= now() - interval '30 days'};
my $want = psql_ids($act_where, $user_a->{id});
is($d->{user_id}, $user_a->{id}, 'activity: user_id');
is($d->{days}, 30, 'days defaults to 30');
ok(is_rfc3339_utc($d->{since}), 'since is an RFC 3339 time');
is($d->{total}, scalar @$want, 'total: what they did and what was done to them');
is($d->{summary}{total}, scalar @$want, 'summary.total');
is_deeply([ map { $_->{id} } @{ $d->{logs} } ], $want,
          'the rows, newest first');
my %by = map { split /\|/ } $t->psql(
    "SELECT action || '|' || count(*) FROM audit_logs
      WHERE organization_id = :'p1' AND $act_where GROUP BY action",
    $org_a, $user_a->{id});
is_deeply($d->{summary}{by_action}, \%by, 'summary.by_action as psql counts');
ok(exists $d->{summary}{by_action}{'user.update'},
   '... with the update an admin made to them (resource_id)');
ok(!(grep { $_->{action} eq 'auth.login' && $_->{created_at} lt $d->{since} }
     @{ $d->{logs} }), 'the 40-day-old sign-in is outside 30 days');

$r = get_as($admin_a->{token}, activity($user_a->{id}, '?days=60&page_size=2'));
$d = data($r);
is($d->{total}, scalar(@$want) + 1, 'days=60 takes in the 40-day-old row');
is(scalar @{ $d->{logs} }, 2, 'page_size=2: two rows');
is($d->{pages}, int(($d->{total} + 1) / 2), 'pages');
ok($d->{has_next} && !$d->{has_prev}, 'has_next, not has_prev');
$r = get_as($admin_a->{token}, activity($user_a->{id}, '?days=60&page_size=2&page=2'));
is_deeply([ map { $_->{id} } @{ data($r)->{logs} } ],
          [ (psql_ids(q{(actor_id = :'p2' OR resource_id = :'p2')
                        AND created_at >= now() - interval '60 days'},
                      $user_a->{id}))->@[2, 3] ],
          'page 2 of the activity');

###########################################################################
# a tenant's figures

$r = get_as($admin_a->{token}, stats($org_a, '?days=7'));
$d = data($r);
my $w = q{organization_id = :'p1' AND created_at >= now() - interval '7 days'};
is($d->{organization_id}, $org_a, 'stats: organization_id');
is($d->{days}, 7, 'days');
is($d->{total}, scalar $t->psql("SELECT count(*) FROM audit_logs WHERE $w",
                                $org_a), 'total as psql counts');
my %ba = map { split /\|/ } $t->psql(
    "SELECT action || '|' || count(*) FROM audit_logs WHERE $w GROUP BY action",
    $org_a);
is_deeply($d->{by_action}, \%ba, 'by_action');
is_deeply($d->{by_status},
          { success => scalar $t->psql("SELECT count(*) FROM audit_logs WHERE $w"
                                       . " AND status = 'success'", $org_a),
            failure => scalar $t->psql("SELECT count(*) FROM audit_logs WHERE $w"
                                       . " AND status = 'failure'", $org_a) },
          'by_status');
is($d->{failed_logins}, 1, 'failed_logins: the one wrong password');
is($d->{active_users},
   scalar $t->psql("SELECT count(DISTINCT actor_id) FROM audit_logs WHERE $w",
                   $org_a), 'active_users: distinct actors');
is(scalar @{ $d->{by_day} }, 8, 'by_day: the 7 days back and today');
my $sum = 0;
$sum += $_->{count} for @{ $d->{by_day} };
is($sum, $d->{total}, '... whose counts add up to the total');
like($d->{by_day}[-1]{date}, qr/^\d{4}-\d\d-\d\d$/, '... dated YYYY-MM-DD');
is($d->{by_day}[-1]{date},
   scalar $t->psql(q{SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')}),
   '... the last one today (UTC)');

$d = data(get_as($admin_b->{token}, stats($org_b)));
is($d->{failed_logins}, 1, "tenant B's stats count B's failed login");
is($d->{days}, 30, 'days defaults to 30');
is(scalar @{ $d->{by_day} }, 31, 'by_day has 31 days');

done_testing();
