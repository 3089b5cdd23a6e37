#!/usr/bin/perl
# GET /users and GET /users/search over an organization of 1,000 users
# (made with one INSERT ... SELECT generate_series): totals and pages, the
# page-size limits, search, filters, sorting, keyset cursors that stay
# stable while users are added, deleted users, tenancy; and full-text
# search with stemming, phrases and ranking; totals exact up to the cap of
# 1,000 and flagged past it.  psql is the oracle.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use MIME::Base64 qw(encode_base64url);
use Test::More;
use UM::Test qw(error_is);
use UM::Users;

my $t = UM::Test->new(workers => 2);
my $u = UM::Users->new($t);
my $admin = $u->admin;

my $org = $u->org('list');
my $boss = $u->user($admin, user_type => 'admin', organization_id => $org,
                    first_name => 'Lisa', last_name => 'Boss');
my $mgr = $u->user($admin, user_type => 'manager', organization_id => $org,
                   first_name => 'Manny', last_name => 'Ager');

$t->psql(<<'SQL', $org);
INSERT INTO users (organization_id, email, username, first_name, last_name,
                   department, kyc_status, is_active, user_type,
                   last_login_at, created_at, updated_at)
SELECT :'p1', 'bulk' || g || '@list.example.com', 'bulk.' || g,
       (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara'])[1 + g % 5],
       'Tester' || lpad(g::text, 4, '0'),
       (ARRAY['Sales', 'Ops', 'Eng', 'Legal'])[1 + g % 4],
       (ARRAY['pending', 'approved', 'rejected'])[1 + g % 3],
       g % 10 <> 0,
       CASE WHEN g % 50 = 0 THEN 'manager' ELSE 'user' END,
       CASE WHEN g % 5 = 0 THEN NULL
            ELSE now() - g * interval '1 hour' END,
       now() - interval '1 day' - g * interval '1 minute',
       now() - interval '1 day' + (g % 37) * interval '1 second'
  FROM generate_series(1, 1000) g
SQL

# a few users the generated ones do not cover
$t->psql(<<'SQL', $org);
INSERT INTO users (organization_id, email, first_name, last_name, created_at)
VALUES (:'p1', 'pct@list.example.com', 'Hundred', '100%Sure',
        now() - interval '3 days'),
       (:'p1', 'under@list.example.com', 'Under', 'Under_Score',
        now() - interval '3 days'),
       (:'p1', 'quote@list.example.com', 'Liam', 'O''Brien',
        now() - interval '3 days'),
       (:'p1', 'run@list.example.com', 'Running', 'Walker',
        now() - interval '3 days'),
       (:'p1', 'js@list.example.com', 'John', 'Smith',
        now() - interval '3 days'),
       (:'p1', 'sj@list.example.com', 'Smith', 'John',
        now() - interval '3 days'),
       (:'p1', 'grace.note@list.example.com', 'Zed', 'Zulu',
        now() - interval '3 days');
SQL

# a custom role held by three users
$t->psql(<<'SQL', $org);
WITH r AS (INSERT INTO roles (organization_id, name) VALUES (:'p1', 'auditors')
           RETURNING id)
INSERT INTO user_roles (user_id, role_id)
SELECT u.id, r.id FROM users u, r
 WHERE u.organization_id = :'p1' AND u.username IN ('bulk.1', 'bulk.2', 'bulk.3')
SQL

# other tenants' users, which must never show
my $other = $u->org('list-other');
$t->psql(q{INSERT INTO users (organization_id, email, first_name, last_name)
           VALUES (:'p1', 'grace@other.example.com', 'Grace', 'Tester0001')},
         $other);

my $LIVE = "organization_id = '$org' AND deleted_at IS NULL";

sub count_where {
    my ($cond, @bind) = @_;
    return scalar $t->psql("SELECT count(*) FROM users WHERE $LIVE AND ($cond)",
                           @bind);
}

sub ids_where {
    my ($cond, $order, $limit) = @_;
    return [ $t->psql("SELECT id FROM users WHERE $LIVE AND ($cond)"
                      . " ORDER BY $order LIMIT $limit") ];
}

sub list {
    my ($query, $who, %h) = @_;
    return $u->call(GET => "/api/v1/users$query", $who // $boss, undef, %h);
}

sub data { my $d = eval { $_[0]{json}{data} }; ref $d eq 'HASH' ? $d : {} }

# Totals are counted up to 1,000 (um_search_cap() of 0011_user_search.sql):
# past it, total is 1000 and total_is_estimate true (at least that many).
my $CAP = 1000;

sub total_is {
    my ($d, $want, $name) = @_;
    my $over = $want > $CAP;
    is($d->{total}, $over ? $CAP : $want,
       $name . ($over ? " (past the cap: $CAP)" : ''));
    is($d->{total_is_estimate}, $over ? JSON::PP::true : JSON::PP::false,
       '... total_is_estimate ' . ($over ? 'true' : 'false'));
}

# A page past the cap counts up to its own end: page 11 of 100 has the
# exact total of up to 1,100 users.
sub deep_total_is {
    my ($query, $want, $name, $who, %h) = @_;
    my $d = data(list("?page_size=100&page=11$query", $who, %h));
    is($d->{total}, $want, "$name: page 11 of 100 counts exactly");
    is($d->{total_is_estimate}, JSON::PP::false,
       '... total_is_estimate false');
}
sub ids { [ map { $_->{id} } @{ data($_[0])->{users} // [] } ] }

my $total = count_where('true');
is($total, 1009, 'the organization has 1,009 live users (psql)');

###########################################################################
# totals, pages and page sizes

my $r = list('');
is($r->{status}, 200, 'GET /users: 200') or diag($r->{content});
my $d = data($r);
total_is($d, $total, 'total');
is(scalar @{ $d->{users} // [] }, 20, '20 users by default');
is($d->{page}, 1, 'page 1');
is($d->{page_size}, 20, 'page_size 20');
is($d->{per_page}, 20, 'per_page 20');
is($d->{pages}, 50, 'pages 50: those of the capped total');
is($d->{has_next}, JSON::PP::true, 'has_next');
is($d->{has_prev}, JSON::PP::false, 'has_prev false');
ok($d->{next_cursor}, 'a next_cursor');
is(ref $d->{filters}, 'HASH', 'the filters are echoed');
is(eval { $d->{filters}{sort_by} }, 'created_at', '... sort_by created_at');
is(eval { $d->{filters}{sort_order} }, 'desc', '... sort_order desc');
ok(!(grep { exists $_->{password_hash} } @{ $d->{users} }), 'no password hash');

$r = list('?page_size=100&page=11');
$d = data($r);
is(scalar @{ $d->{users} // [] }, 9, 'page 11 of 100: the last 9 users');
is($d->{pages}, 11, '... of 11 pages');
is($d->{has_next}, JSON::PP::false, '... has_next false');
is($d->{has_prev}, JSON::PP::true, '... has_prev true');
is($d->{next_cursor}, undef, '... no next_cursor');

$r = list('?page=12&page_size=100');
is(data($r)->{total}, $total, 'past the last page: the total still');
is_deeply(data($r)->{users}, [], '... and no users');

my $p3 = ids(list('?page=3&page_size=10'));
is(scalar @$p3, 10, 'page=3&page_size=10: 10 users');
is_deeply(ids(list('?limit=10&offset=20')), $p3, 'limit=10&offset=20: the same');
is_deeply(ids(list('?skip=20&limit=10')), $p3, 'skip=20&limit=10: the same');
is_deeply(ids(list('?per_page=10&page=3')), $p3, 'per_page=10&page=3: the same');
is(data(list('?limit=10&offset=20'))->{page}, 3, '... reported as page 3');
is(data(list('?page_size=100'))->{page_size}, 100, 'page_size 100 is allowed');
for my $q (qw(page_size=101 page_size=0 per_page=1000 limit=-1 page=0 page=abc
              offset=-5)) {
    error_is(list("?$q"), 400, 'BAD_REQUEST', "?$q: 400");
}

###########################################################################
# search: a substring of names, email or username, any case

for my $case (['GRACE', q{first_name ILIKE '%grace%' OR email ILIKE '%grace%'}],
              ['tester000', q{last_name ILIKE '%tester000%'}],
              ['bulk.12', q{username ILIKE '%bulk.12%' OR email ILIKE '%bulk.12%'}],
              ['%', q{last_name LIKE '%\%%' OR first_name LIKE '%\%%'
                      OR email LIKE '%\%%' OR username LIKE '%\%%'}],
              ['_', q{last_name LIKE '%\_%' OR first_name LIKE '%\_%'
                      OR email LIKE '%\_%' OR username LIKE '%\_%'}],
              ["O'Brien", q{last_name = 'O''Brien'}],
              ['Lisa Boss', q{first_name = 'Lisa'}],
              ['no such person', 'false']) {
    my ($q, $cond) = @$case;
    my $want = count_where($cond);
    (my $enc = $q) =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
    $r = list("?search=$enc&page_size=100");
    is($r->{status}, 200, "search=$q: 200") or diag($r->{content});
    total_is(data($r), $want, "search=$q: $want users (psql)");
    is(eval { data($r)->{filters}{search} }, $q, '... echoed');
}
ok(count_where(q{username LIKE '%\_%'}) == 0 && data(list('?search=_'))->{total} == 1,
   'an underscore is a literal, not a wildcard');
total_is(data(list('?search=')), $total, 'an empty search is no filter');

###########################################################################
# filters

for my $case (['is_active=false', 'NOT is_active'],
              ['is_active=true', 'is_active'],
              ['status=inactive', 'NOT is_active'],
              ['status=ACTIVE', 'is_active'],
              ['kyc_status=approved', q{kyc_status = 'approved'}],
              ['department=ops', q{lower(department) = 'ops'}],
              ['role=manager', q{user_type = 'manager'}],
              ['role=org_admin', q{user_type = 'admin'}],
              ['role=auditors', q{username IN ('bulk.1', 'bulk.2', 'bulk.3')}],
              ['role=nobody', 'false'],
              ['is_active=1&department=Eng&kyc_status=pending',
               q{is_active AND department = 'Eng' AND kyc_status = 'pending'}],
              ['search=grace&is_active=0',
               q{first_name = 'Grace' AND NOT is_active}]) {
    my ($q, $cond) = @$case;
    my $want = count_where($cond);
    $r = list("?$q&page_size=5");
    is($r->{status}, 200, "?$q: 200") or diag($r->{content});
    total_is(data($r), $want, "?$q: $want users (psql)");
}
$d = data(list('?department=ops&is_active=false'));
is(eval { $d->{filters}{department} }, 'ops', 'filters.department echoed');
is(eval { $d->{filters}{is_active} }, JSON::PP::false, 'filters.is_active echoed');
for my $q ('status=active&is_active=false', 'is_active=maybe',
           'kyc_status=unknown', 'status=paused', 'sort_by=password_hash',
           'sort_by=created_at%3B%20DROP%20TABLE%20users', 'sort_order=up',
           'include_deleted=perhaps', 'search=' . ('x' x 101)) {
    error_is(list("?$q"), 400, 'BAD_REQUEST', "?$q: 400");
}

###########################################################################
# sorting

for my $case (['created_at', 'asc', 'created_at ASC, id ASC'],
              ['created_at', 'desc', 'created_at DESC, id DESC'],
              ['updated_at', 'asc', 'updated_at ASC, id ASC'],
              ['last_login_at', 'desc', 'last_login_at DESC NULLS LAST, id DESC'],
              ['last_login_at', 'asc', 'last_login_at ASC NULLS FIRST, id ASC'],
              ['email', 'asc', 'lower(email::text) ASC, id ASC'],
              ['username', 'desc', 'username DESC NULLS LAST, id DESC'],
              ['first_name', 'asc', 'first_name ASC, id ASC'],
              ['last_name', 'desc', 'last_name DESC, id DESC']) {
    my ($by, $dir, $order) = @$case;
    my $want = ids_where('true', $order, 15);
    $r = list("?sort_by=$by&sort_order=$dir&page_size=15");
    is_deeply(ids($r), $want, "sort_by=$by&sort_order=$dir: the order of psql");
    # and past the first page, by cursor
    my $next = list("?sort_by=$by&sort_order=$dir&page_size=15&cursor="
                    . data($r)->{next_cursor});
    is_deeply(ids($next), [ (ids_where('true', $order, 30))->@[15 .. 29] ],
              "... and its next page by cursor");
}
is_deeply(ids(list('?sort_by=EMAIL&sort_order=ASC&page_size=5')),
          ids_where('true', 'lower(email::text), id', 5),
          'sort_by and sort_order in capitals');

###########################################################################
# keyset cursors

# the same pages as with offsets while nothing changes
my (@by_cursor, @by_page);
my $cursor = '';
for my $n (1 .. 3) {
    $r = list("?sort_by=email&sort_order=asc&page_size=50$cursor");
    $d = data($r);
    is($d->{page}, $n, "cursor page $n reports page $n");
    is($d->{has_prev}, $n > 1 ? JSON::PP::true : JSON::PP::false,
       "... has_prev " . ($n > 1 ? 'true' : 'false'));
    push @by_cursor, @{ ids($r) };
    push @by_page, @{ ids(list("?sort_by=email&sort_order=asc&page_size=50&page=$n")) };
    $cursor = "&cursor=$d->{next_cursor}";
}
is_deeply(\@by_cursor, \@by_page, 'three cursor pages = three offset pages');

# stable while users are added: the walk sees every user once
my @before = $t->psql("SELECT id FROM users WHERE $LIVE"
                      . ' ORDER BY created_at DESC, id DESC');
my (@seen, $pages);
$cursor = '';
while (1) {
    $r = list("?page_size=100$cursor");
    last unless $r->{status} == 200;
    push @seen, @{ ids($r) };
    $pages++;
    if ($pages == 1) {
        # five newer users: offsets would now show five users twice
        $t->psql(q{INSERT INTO users (organization_id, email)
                   SELECT :'p1', 'late' || g || '@list.example.com'
                     FROM generate_series(1, 5) g}, $org);
        my $off = ids(list('?page_size=100&page=2'));
        my %p1 = map { $_ => 1 } @seen;
        is(scalar(grep { $p1{$_} } @$off), 5,
           'offset paging after the inserts repeats five users');
    }
    my $next = data($r)->{next_cursor};
    last unless $next;
    $cursor = "&cursor=$next";
    last if $pages > 20;
}
is($pages, 11, 'the cursor walk took 11 pages');
is_deeply(\@seen, \@before,
          'and saw every user of before, once each, in order');
is(data($r)->{has_next}, JSON::PP::false, 'the last page: has_next false');
# 1,005 users before the last page's cursor: past the cap
$d = data($r);
ok($d->{total_is_estimate} && $d->{total} >= $CAP + 9
   && $d->{total} <= $total + 5,
   '... total: at least the capped users before the cursor and the page')
    or diag(explain $d);

# a walk with filters
my @want = $t->psql("SELECT id FROM users WHERE $LIVE AND NOT is_active"
                    . ' ORDER BY last_name ASC, id ASC');
@seen = ();
$cursor = '';
for (1 .. 10) {
    $r = list("?is_active=false&sort_by=last_name&sort_order=asc&page_size=30$cursor");
    push @seen, @{ ids($r) };
    my $next = data($r)->{next_cursor} or last;
    $cursor = "&cursor=$next";
}
is_deeply(\@seen, \@want, 'a cursor walk with a filter sees exactly its users');

my $email_cursor = data(list('?sort_by=email&page_size=5'))->{next_cursor};
$r = list("?sort_by=username&cursor=$email_cursor");
error_is($r, 422, 'VALIDATION_FAILED', "a cursor of another sort: 422");
for my $bad ('abc', 'not!base64', encode_base64url('{"a":1}'),
             encode_base64url(qq{["created_at","desc","2020-01-01'; DROP TABLE users;--","$boss->{id}"]}),
             encode_base64url(q{["created_at","desc","2020-01-01","1 OR 1=1"]}),
             'x' x 2000) {
    $r = list("?cursor=$bad");
    error_is($r, 422, 'VALIDATION_FAILED', 'a forged cursor: 422')
        or diag($bad);
}
is(scalar $t->psql(q{SELECT count(*) FROM users WHERE organization_id = :'p1'},
                   $org) > 1000, 1, 'the users table is intact');

###########################################################################
# deleted users

my @doomed = @{ ids_where(q{username LIKE 'bulk.7%'}, 'id', 3) };
for my $id (@doomed) {
    is($u->call(DELETE => "/api/v1/users/$id", $boss)->{status}, 200,
       'a user is deleted');
}
my $now = count_where('true');
total_is(data(list('')), $now, 'deleted users are not listed');
deep_total_is('', $now, 'deleted users are not listed');
$r = list('?include_deleted=true&page_size=100&sort_by=updated_at');
total_is(data($r), $now + 3, 'include_deleted=true: they are');
deep_total_is('&include_deleted=true', $now + 3, '... they are');
my %dl = map { $_->{id} => $_->{deleted_at} } @{ data($r)->{users} };
ok((!grep { !$dl{$_} } @doomed), '... with deleted_at');
error_is(list('?include_deleted=true', $mgr), 403, 'FORBIDDEN',
         'include_deleted=true without users:delete: 403');
deep_total_is('&include_deleted=false', $now,
              'include_deleted=false: the live users', $mgr);

###########################################################################
# tenancy

$r = list('?page_size=100&search=grace');
ok(!(grep { $_->{organization_id} ne $org } @{ data($r)->{users} }),
   "an org admin sees only their organization's users");
my ($everyone) = $t->psql('SELECT count(*) FROM users WHERE deleted_at IS NULL');
deep_total_is('', $everyone, 'the super admin sees every organization',
              $admin);
deep_total_is('', $now, '... or the one X-Tenant-ID names', $admin,
              'X-Tenant-ID' => $org);
is(data(list('', $admin, 'X-Tenant-ID' => $other))->{total}, 1,
   '... another one');

###########################################################################
# GET /users/search: full text

sub search {
    my ($q, $more, $who) = @_;
    (my $enc = $q) =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
    return $u->call(GET => "/api/v1/users/search?q=$enc" . ($more // ''),
                    $who // $boss);
}

sub emails { [ sort map { $_->{email} } @{ data($_[0])->{users} // [] } ] }

my $graces = count_where(q{first_name = 'Grace'}) + 1;    # + grace.note@
$r = search('grace', '&page_size=100');
is($r->{status}, 200, 'GET /users/search?q=grace: 200') or diag($r->{content});
is(data($r)->{total}, $graces, "... $graces users: the Graces and grace.note@");
my $gpages = int(($graces + 99) / 100);
is(data($r)->{pages}, $gpages, "... on $gpages pages of 100");
is(data(search('GRACE'))->{total}, $graces, 'any case');
$r = search('grace', "&page_size=100&page=$gpages");
my $last = data($r)->{users}[-1];
is(eval { $last->{email} }, 'grace.note@list.example.com',
   'a match in the email ranks after matches in the names');
is_deeply(emails(search('runs')), ['run@list.example.com'],
          'stemming: "runs" finds "Running"');
is_deeply(emails(search('"john smith"')), ['js@list.example.com'],
          'a quoted phrase keeps its order');
is_deeply(emails(search('john smith')),
          ['js@list.example.com', 'sj@list.example.com'],
          'the same words unquoted find both');
is_deeply(emails(search('smith -walker')),
          ['js@list.example.com', 'sj@list.example.com'], 'a -word excludes');
is_deeply(emails(search('bulk17@list.example.com')),
          ['bulk17@list.example.com'], 'a whole email');
total_is(data(search('list.example.com', '&page_size=1')),
         count_where(q{email LIKE '%@list.example.com'}),
         'the domain of the email');
is(data(search('the'))->{total}, 0, 'only a stop word: nothing, and no error');
is(data(search("'; DROP TABLE users; --"))->{total}, 0,
   'SQL in q is only text');
is(data(search('grace', '', $admin))->{total}, $graces + 1,
   "the super admin's search spans every organization");
$r = search('grace', '&page_size=7&page=2');
is(scalar @{ data($r)->{users} }, 7, 'page_size=7&page=2: 7 users');
is(data($r)->{page}, 2, '... page 2');
for my $q ('a', ' b ', 'x' x 101, '') {
    error_is(search($q), 400, 'BAD_REQUEST', "q of " . length($q)
             . " characters: 400");
}
error_is($u->call(GET => '/api/v1/users/search', $boss), 400, 'BAD_REQUEST',
         'no q: 400');
is(search('ab')->{status}, 200, 'q of 2 characters: 200');
is(search('x' x 100)->{status}, 200, 'q of 100 characters: 200');


###########################################################################
# totals past the cap

# the first page of a list past the cap: at least 1,000, and more to come
$d = data(list('?page_size=100'));
is($d->{total}, $CAP, 'a list past the cap: total 1000');
is($d->{total_is_estimate}, JSON::PP::true, '... total_is_estimate true');
is($d->{pages}, 10, '... 10 pages of 100 so far');
is($d->{has_next}, JSON::PP::true, '... has_next true');
ok($d->{next_cursor}, '... a next_cursor');

# the page that reaches the cap still knows what follows
$d = data(list('?page_size=100&page=10'));
is(scalar @{ $d->{users} }, 100, 'page 10 of 100: 100 users');
is($d->{has_next}, JSON::PP::true, '... has_next true: more follow the cap');

# a substring that nearly everyone has: the page still comes in the
# order of the sort, and the next one by cursor
my $AT = q{email LIKE '%@list.example.com'};
$r = list('?search=%40list.example.com&page_size=50');
total_is(data($r), count_where($AT), 'search=@list.example.com');
is_deeply(ids($r), ids_where($AT, 'created_at DESC, id DESC', 50),
          '... the 50 newest, in the order of psql');
is(data($r)->{has_next}, JSON::PP::true, '... has_next true');
$r = list('?search=%40list.example.com&page_size=50&cursor='
          . data($r)->{next_cursor});
is_deeply(ids($r), [ (ids_where($AT, 'created_at DESC, id DESC', 100))
                     ->@[50 .. 99] ], '... and the next 50 by cursor');
is_deeply(ids(list('?search=grace&page_size=30')),
          ids_where(q{first_name = 'Grace' OR email LIKE '%grace%'},
                    'created_at DESC, id DESC', 30),
          'search=grace: the 30 newest Graces, in the order of psql');
is_deeply(ids(list('?search=grace&page_size=30&sort_by=email&sort_order=asc')),
          ids_where(q{first_name = 'Grace' OR email LIKE '%grace%'},
                    'lower(email::text), id', 30),
          '... and sorted by email');

# search: the email domain of every user of the organization
my $domain = count_where(q{email LIKE '%@list.example.com'});
ok($domain > $CAP, "$domain users at list.example.com: more than the cap");
$d = data(search('list.example.com', '&page_size=100'));
is($d->{total}, $CAP, 'a search past the cap: total 1000');
is($d->{total_is_estimate}, JSON::PP::true, '... total_is_estimate true');
is($d->{has_next}, JSON::PP::true, '... has_next true');
is(scalar @{ $d->{users} }, 100, '... a full page');
my $last_page = int(($domain + 99) / 100);
$d = data(search('list.example.com', "&page_size=100&page=$last_page"));
is($d->{total}, $domain, "its last page ($last_page of 100) counts exactly");
is($d->{total_is_estimate}, JSON::PP::false, '... total_is_estimate false');
is($d->{has_next}, JSON::PP::false, '... has_next false');
is(scalar @{ $d->{users} }, $domain - 100 * ($last_page - 1),
   '... with the last users');

# below the cap, exact and said so
$d = data(search('grace', '&page_size=5'));
is($d->{total_is_estimate}, JSON::PP::false,
   'a search below the cap: total_is_estimate false');
is($d->{has_next}, JSON::PP::true, '... has_next true');
$d = data(search('grace', "&page_size=100&page=$gpages"));
is($d->{has_next}, JSON::PP::false, '... and false on its last page');

###########################################################################
# search still stems, keeps phrases, and now looks at the username

is_deeply(emails(search('running')), ['run@list.example.com'],
          'stemming after the change: "running"');
is_deeply(emails(search('walkers')), ['run@list.example.com'],
          '... and "walkers" finds Walker');
is_deeply(emails(search('"smith john"')), ['sj@list.example.com'],
          'a phrase in the other order finds the other user');
is(data(search('"john list"'))->{total}, 0,
   'a phrase does not run from the names into the email');
is_deeply(emails(search('bulk.17')), ['bulk17@list.example.com'],
          'the username (bulk.17) is searched');
is(data(search('bulk.17', '', $mgr))->{total}, 1,
   '... by anyone with users:read');
is_deeply(emails(search('grace -tester0001 zed')),
          ['grace.note@list.example.com'], 'words, -not and the email');

###########################################################################
# substrings: short, non-ASCII, across word edges

$t->psql(<<'SQL', $org);
INSERT INTO users (organization_id, email, username, first_name, last_name)
VALUES (:'p1', 'zoe@list.example.com', 'zoe.a', 'Zoë', 'Ångström-Ek'),
       (:'p1', 'zoey@list.example.com', NULL, 'Zoëy', 'Berg')
SQL
for my $q ('Zoë', 'zoë', 'NGSTRöM', 'ngström-e', 'öm-ek', 'ek', 'oë',
           'zoë Ångström', 'ace Tester00', 'er0001 bulk') {
    my $want = scalar $t->psql(
        "SELECT count(*) FROM users WHERE $LIVE AND"
        . " (coalesce(first_name, '') || ' ' || coalesce(last_name, '')"
        . " || ' ' || email || ' ' || coalesce(username, '')) ILIKE :'p1'",
        '%' . $q . '%');
    (my $enc = $q) =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
    $r = list("?search=$enc&page_size=100");
    is($r->{status}, 200, "search=$q: 200") or diag($r->{content});
    is(data($r)->{total}, $want, "search=$q: $want users (psql)");
}

done_testing();
