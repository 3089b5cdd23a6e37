#!/usr/bin/perl
# Who may do what to users: every endpoint for the super admin, an
# organization admin, a manager and a user; another tenant's users (404 on
# every {id} route, and nothing changed); oneself; who may change an admin
# or hand out more than they hold; and SQL-injection strings in every
# query parameter and body field (stored verbatim or refused, never 500).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use UM::Test qw(error_is);
use UM::Users;

my $t = UM::Test->new(workers => 2);
my $u = UM::Users->new($t);
my $admin = $u->admin;
my $org_a = $admin->{org};

my %who = (
    super_admin => $admin,
    org_admin   => $u->user($admin, user_type => 'admin'),
    manager     => $u->user($admin, user_type => 'manager'),
    user        => $u->user($admin),
);
my @ROLES = qw(super_admin org_admin manager user);

my $org_b = $u->org('access-b');
my $boss_b = $u->user($admin, user_type => 'admin', organization_id => $org_b);
my $user_b = $u->user($admin, organization_id => $org_b);

my ($mgr_role_a) = $t->psql(q{SELECT id FROM roles WHERE organization_id = :'p1'
                              AND name = 'manager'}, $org_a);
my ($mgr_role_b) = $t->psql(q{SELECT id FROM roles WHERE organization_id = :'p1'
                              AND name = 'manager'}, $org_b);

# a user to act on, without a password (no hashing: fast)
sub target {
    my (%f) = @_;
    my $r = $u->call(POST => '/api/v1/users', $admin,
                     { email => $t->unique_email('target'), %f });
    die "target: $r->{status} $r->{content}\n" unless $r->{status} == 201;
    return $r->{json}{data}{id};
}

sub audit_by {
    my ($actor, $id) = @_;
    return scalar $t->psql(q{SELECT count(*) FROM audit_logs
                              WHERE actor_id = :'p1' AND resource_id = :'p2'},
                           $actor, $id);
}

# the state of a user that any endpoint could change
sub state_of {
    my ($id) = @_;
    return scalar $t->psql(q{
        SELECT concat_ws('|', first_name, is_active, deleted_at IS NULL,
                         (SELECT count(*) FROM user_permissions
                           WHERE user_id = u.id),
                         (SELECT count(*) FROM user_roles WHERE user_id = u.id))
          FROM users u WHERE id = :'p1'}, $id);
}

###########################################################################
# every endpoint, every role

my @ENDPOINTS = (
    # name, method, path (ID: a fresh target), body, prepare, statuses
    ['POST /users', POST => '/api/v1/users',
     sub { { email => $t->unique_email('made') } }, undef,
     [201, 201, 403, 403]],
    ['GET /users', GET => '/api/v1/users', undef, undef, [200, 200, 200, 403]],
    ['GET /users/search', GET => '/api/v1/users/search?q=target', undef, undef,
     [200, 200, 200, 403]],
    ['GET /users/{id}', GET => '/api/v1/users/ID', undef, undef,
     [200, 200, 200, 403]],
    ['PUT /users/{id}', PUT => '/api/v1/users/ID',
     sub { { first_name => 'Changed' } }, undef, [200, 200, 403, 403]],
    ['DELETE /users/{id}', DELETE => '/api/v1/users/ID', undef, undef,
     [200, 200, 403, 403]],
    ['POST /users/{id}/reactivate', POST => '/api/v1/users/ID/reactivate',
     undef, sub { $t->psql(q{UPDATE users SET is_active = false
                             WHERE id = :'p1'}, $_[0]) },
     [200, 200, 403, 403]],
    ['PUT /users/{id}/status', PUT => '/api/v1/users/ID/status',
     sub { { is_active => JSON::PP::false } }, undef, [200, 200, 403, 403]],
    ['GET /users/{id}/permissions', GET => '/api/v1/users/ID/permissions',
     undef, undef, [200, 200, 200, 403]],
    ['PUT /users/{id}/permissions', PUT => '/api/v1/users/ID/permissions',
     sub { { permissions => ['tickets:read'] } }, undef, [200, 200, 403, 403]],
    ['POST /users/{id}/permissions', POST => '/api/v1/users/ID/permissions',
     sub { { permissions => ['tickets:read'] } }, undef, [200, 200, 403, 403]],
    ['POST /users/{id}/roles', POST => '/api/v1/users/ID/roles',
     sub { { role_ids => [$mgr_role_a] } }, undef, [200, 200, 403, 403]],
    ['DELETE /users/{id}/roles', DELETE => '/api/v1/users/ID/roles',
     sub { { role_ids => [$mgr_role_a] } },
     sub { $t->psql(q{INSERT INTO user_roles (user_id, role_id)
                      VALUES (:'p1', :'p2')}, $_[0], $mgr_role_a) },
     [200, 200, 403, 403]],
);

for my $e (@ENDPOINTS) {
    my ($name, $method, $path, $body, $prepare, $want) = @$e;
    for my $i (0 .. $#ROLES) {
        my $id = target(first_name => 'Target');
        $prepare->($id) if $prepare;
        my $before = state_of($id);
        (my $p = $path) =~ s/ID/$id/;
        my $r = $u->call($method => $p, $who{$ROLES[$i]},
                         $body ? $body->() : undef);
        if ($want->[$i] == 403) {
            error_is($r, 403, 'FORBIDDEN', "$name as $ROLES[$i]: 403");
            is(state_of($id), $before, '... nothing changed');
            is(audit_by($who{$ROLES[$i]}{id}, $id), 0, '... nothing audited');
        } else {
            is($r->{status}, $want->[$i], "$name as $ROLES[$i]: $want->[$i]")
                or diag($r->{content});
        }
    }
}

###########################################################################
# oneself

my $me = $who{user};
is($u->call(GET => "/api/v1/users/$me->{id}", $me)->{status}, 200,
   'a user reads themselves by id: 200');
is($u->call(GET => "/api/v1/users/$me->{id}/permissions", $me)->{status}, 200,
   '... and their permissions: 200');
is($u->call(PUT => "/api/v1/users/$me->{id}", $me,
            { department => 'Myself' })->{status}, 200,
   '... changes their profile: 200');
error_is($u->call(PUT => "/api/v1/users/$me->{id}", $me,
                  { kyc_status => 'approved' }), 403, 'FORBIDDEN',
         '... but not their kyc_status: 403');
error_is($u->call(PUT => "/api/v1/users/$me->{id}/status", $me,
                  { is_active => JSON::PP::true }), 403, 'FORBIDDEN',
         '... nor their status: 403');
error_is($u->call(POST => "/api/v1/users/$me->{id}/permissions", $me,
                  { permissions => ['users:delete'] }), 403, 'FORBIDDEN',
         '... nor grant themselves permissions: 403');
error_is($u->call(POST => "/api/v1/users/$me->{id}/roles", $me,
                  { role_ids => [$mgr_role_a] }), 403, 'FORBIDDEN',
         '... nor roles: 403');
error_is($u->call(DELETE => "/api/v1/users/$who{org_admin}{id}",
                  $who{org_admin}), 409, 'CONFLICT',
         'an org admin deleting themselves: 409');

###########################################################################
# another tenant's users: 404, whatever the route

my $victim = target(first_name => 'Victim');
$t->psql(q{UPDATE users SET is_active = false WHERE id = :'p1'}, $victim);
my $before = state_of($victim);
for my $e (@ENDPOINTS) {
    my ($name, $method, $path, $body) = @$e;
    next unless $path =~ /ID/;
    (my $p = $path) =~ s/ID/$victim/;
    error_is($u->call($method => $p, $boss_b, $body ? $body->() : undef),
             404, 'NOT_FOUND', "$name of another tenant's user: 404");
}
is(state_of($victim), $before, "... and nothing of the user changed");
is(audit_by($boss_b->{id}, $victim), 0, '... nothing audited');
error_is($u->call(GET => "/api/v1/users/$user_b->{id}", $who{org_admin}),
         404, 'NOT_FOUND', 'and the other way round: 404');
error_is($u->call(DELETE => "/api/v1/users/$user_b->{id}", $who{org_admin}),
         404, 'NOT_FOUND', '... DELETE: 404');
error_is($u->call(GET => "/api/v1/users/$victim", $admin, undef,
                  'X-Tenant-ID' => $org_b),
         404, 'NOT_FOUND', 'the super admin narrowed to another tenant: 404');
error_is($u->call(PUT => "/api/v1/users/$victim", $admin,
                  { first_name => 'X' }, 'X-Tenant-ID' => $org_b),
         404, 'NOT_FOUND', '... PUT: 404');
is($u->call(GET => "/api/v1/users/$user_b->{id}", $admin)->{status}, 200,
   'the super admin, not narrowed, reads any tenant: 200');
error_is($u->call(GET => '/api/v1/users', $who{org_admin}, undef,
                  'X-Tenant-ID' => $org_b), 403, 'FORBIDDEN',
         "an org admin naming another tenant in X-Tenant-ID: 403");

my $rb = $u->call(GET => '/api/v1/users?page_size=100', $boss_b);
is($rb->{json}{data}{total},
   scalar $t->psql(q{SELECT count(*) FROM users WHERE organization_id = :'p1'
                      AND deleted_at IS NULL}, $org_b),
   "another tenant's list counts only its users");
ok(!(grep { $_->{organization_id} ne $org_b } @{ $rb->{json}{data}{users} }),
   '... and shows only them');
is($u->call(GET => '/api/v1/users/search?q=victim', $boss_b)->{json}{data}{total},
   0, "... its search finds no one of ours");

my $r = $u->call(POST => "/api/v1/users/$victim/roles", $who{org_admin},
                 { role_ids => [$mgr_role_b] });
error_is($r, 422, 'VALIDATION_FAILED', "assigning another tenant's role: 422");
like($r->{content}, qr/role_ids/, '... naming role_ids');
like($r->{content}, qr/\Q$mgr_role_b\E/, '... and the role');
$r = $u->call(POST => '/api/v1/users', $who{org_admin},
              { email => $t->unique_email, organization_id => $org_b });
error_is($r, 403, 'FORBIDDEN', 'creating a user in another organization: 403');

###########################################################################
# who may change whom, and hand out what

error_is($u->call(PUT => "/api/v1/users/$admin->{id}", $who{org_admin},
                  { first_name => 'Demoted' }), 403, 'FORBIDDEN',
         'an org admin changing the super admin: 403');
error_is($u->call(DELETE => "/api/v1/users/$admin->{id}", $who{org_admin}),
         403, 'FORBIDDEN', '... deleting the super admin: 403');

# a manager given users:update (and users:create) directly
my $helper = $u->user($admin, user_type => 'manager');
$t->psql(q{INSERT INTO user_permissions (user_id, permission_id)
           SELECT :'p1', id FROM permissions
            WHERE name IN ('users:update', 'users:create')}, $helper->{id});
$u->relogin($helper);
my $plain = target();
is($u->call(PUT => "/api/v1/users/$plain", $helper,
            { kyc_status => 'approved' })->{status}, 200,
   'with users:update a manager sets kyc_status: 200');
error_is($u->call(PUT => "/api/v1/users/$who{org_admin}{id}", $helper,
                  { first_name => 'Pwned' }), 403, 'FORBIDDEN',
         '... but cannot change an org admin: 403');
error_is($u->call(PUT => "/api/v1/users/$plain", $helper,
                  { user_type => 'manager' }), 403, 'FORBIDDEN',
         '... nor make a manager without roles:assign: 403');
error_is($u->call(PUT => "/api/v1/users/$helper->{id}", $helper,
                  { user_type => 'admin' }), 403, 'FORBIDDEN',
         '... nor make themselves an admin: 403');
error_is($u->call(POST => '/api/v1/users', $helper,
                  { email => $t->unique_email, user_type => 'admin' }),
         403, 'FORBIDDEN', '... nor create an admin: 403');
is($u->call(POST => '/api/v1/users', $helper,
            { email => $t->unique_email, kyc_status => 'pending' })->{status},
   201, '... creates a plain user: 201');
is(scalar $t->psql(q{SELECT string_agg(user_type, ',' ORDER BY id = :'p1' DESC)
                      FROM users WHERE id IN (:'p1', :'p2')}, $plain, $helper->{id}),
   'user,manager', 'no user_type was changed');

# users:create alone: no admin-only fields
my $creator = $u->user($admin);
$t->psql(q{INSERT INTO user_permissions (user_id, permission_id)
           SELECT :'p1', id FROM permissions WHERE name = 'users:create'},
         $creator->{id});
$u->relogin($creator);
error_is($u->call(POST => '/api/v1/users', $creator,
                  { email => $t->unique_email, kyc_status => 'approved' }),
         403, 'FORBIDDEN', 'users:create without users:update sets kyc_status: 403');
is($u->call(POST => '/api/v1/users', $creator,
            { email => $t->unique_email })->{status}, 201,
   '... a plain user: 201');

# the org admin role by assignment is an org admin too
my $promoted = target();
my ($org_admin_role) = $t->psql(q{SELECT id FROM roles WHERE organization_id = :'p1'
                                  AND name = 'org_admin'}, $org_a);
$t->psql(q{INSERT INTO user_roles (user_id, role_id) VALUES (:'p1', :'p2')},
         $promoted, $org_admin_role);
error_is($u->call(PUT => "/api/v1/users/$promoted", $helper,
                  { first_name => 'X' }), 403, 'FORBIDDEN',
         'a user holding the org_admin role is changed only by an org admin');

###########################################################################
# SQL injection: query parameters

my @INJ = UM::Users::injections();

sub enc { (my $s = $_[0]) =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge; $s }

my %bad_status;
for my $param (qw(search kyc_status department role sort_by sort_order status
                  is_active include_deleted page page_size per_page limit
                  offset skip cursor)) {
    for my $inj (@INJ) {
        my $r = $u->call(GET => "/api/v1/users?$param=" . enc($inj),
                         $who{org_admin});
        $bad_status{"users?$param=$inj"} = $r->{status}
            unless $r->{status} =~ /^(200|400|422)$/;
        if ($param =~ /^(search|department|role)$/) {
            $bad_status{"users?$param=$inj (not 200)"} = $r->{status}
                unless $r->{status} == 200;
        }
    }
}
for my $param (qw(q page page_size)) {
    for my $inj (@INJ) {
        my $q = $param eq 'q' ? '' : 'q=target&';
        my $r = $u->call(GET => "/api/v1/users/search?$q$param=" . enc($inj),
                         $who{org_admin});
        $bad_status{"search?$param=$inj"} = $r->{status}
            unless $r->{status} =~ /^(200|400)$/;
    }
}
is_deeply(\%bad_status, {},
          'SQL in every query parameter: 200, 400 or 422, never 500');
is($u->call(GET => '/api/v1/users?search=' . enc("' OR '1'='1"),
            $who{org_admin})->{json}{data}{total}, 0,
   "search=' OR '1'='1 finds nobody");

###########################################################################
# SQL injection: body fields

my %bad;
my $n = 0;
for my $inj (@INJ) {
    $n++;
    # stored verbatim where any text is allowed
    my $r = $u->call(POST => '/api/v1/users', $who{org_admin}, {
        email => $t->unique_email('inj'), department => $inj,
        address => { street => $inj, city => $inj },
        preferences => { note => $inj, $inj => 1 }, password => "$inj-Xy9-long-$n" });
    if ($r->{status} == 201) {
        my $id = $r->{json}{data}{id};
        my ($dep, $street, $note) = split /\n/, scalar $t->psql(
            q{SELECT department || E'\n' || (address->>'street') || E'\n'
                     || (preferences->>'note') FROM users WHERE id = :'p1'},
            $id);
        $bad{"stored $inj"} = "$dep / $street / $note"
            unless $dep eq $inj && $street eq $inj && $note eq $inj;
        $bad{"signs in with $inj"} = 1
            unless $t->login($r->{json}{data}{email}, "$inj-Xy9-long-$n")->{status}
                   == 200;
    } else {
        $bad{"POST text fields $inj"} = $r->{content};
    }

    # refused where the format is fixed
    for my $f (qw(email username first_name last_name phone avatar_url
                  user_type kyc_status date_of_birth organization_id)) {
        my $r = $u->call(POST => '/api/v1/users', $who{org_admin},
                         { email => $t->unique_email('inj'), $f => $inj });
        $bad{"POST $f=$inj"} = $r->{status} unless $r->{status} =~ /^(201|422)$/;
    }

    my $target = target();
    for my $f (qw(first_name department email username kyc_status user_type)) {
        my $r = $u->call(PUT => "/api/v1/users/$target", $who{org_admin},
                         { $f => $inj });
        $bad{"PUT $f=$inj"} = $r->{status} unless $r->{status} =~ /^(200|422)$/;
    }
    $r = $u->call(PUT => "/api/v1/users/$target/status", $who{org_admin},
                  { status => $inj });
    $bad{"status=$inj"} = $r->{status} unless $r->{status} == 422;
    $r = $u->call(POST => "/api/v1/users/$target/permissions", $who{org_admin},
                  { permissions => [$inj] });
    $bad{"permissions=[$inj]"} = $r->{status} unless $r->{status} == 422
        && index($r->{json}{error}{details}[0]{message} // '', $inj) >= 0;
    $r = $u->call(PUT => "/api/v1/users/$target/permissions", $who{org_admin},
                  { permissions => ['tickets:read'], valid_until => $inj });
    $bad{"valid_until=$inj"} = $r->{status} unless $r->{status} == 422;
    $r = $u->call(POST => "/api/v1/users/$target/roles", $who{org_admin},
                  { role_ids => [$inj] });
    $bad{"role_ids=[$inj]"} = $r->{status} unless $r->{status} == 422;
}
is_deeply(\%bad, {}, 'SQL in every body field: stored verbatim or 422, never 500');
is(scalar $t->psql(q{SELECT count(*) > 0 FROM users}), 't',
   'and the users table is still there');

done_testing();
