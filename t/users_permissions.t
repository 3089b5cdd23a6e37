#!/usr/bin/perl
# A user's direct permissions (seed 001: GET, PUT to replace, POST to add;
# validity windows) and roles (POST/DELETE /users/{id}/roles), and the
# access tokens that carry them after the next sign-in or refresh.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use UM::Test qw(error_is is_uuid is_rfc3339_utc);
use UM::JWT qw(jwt_decode);
use UM::Users;

my $t = UM::Test->new(workers => 2);
my $u = UM::Users->new($t);
my $admin = $u->admin;
my $org = $admin->{org};

my $boss = $u->user($admin, user_type => 'admin');
my $mgr = $u->user($admin, user_type => 'manager');
my $pu = $u->user($admin, first_name => 'Perm');
my $PERMS = "/api/v1/users/$pu->{id}/permissions";
my $ROLES = "/api/v1/users/$pu->{id}/roles";

sub claims {
    my (undef, $p) = jwt_decode($_[0]{token});
    return $p // {};
}

sub has { my ($list, $x) = @_; scalar grep { $_ eq $x } @{ $list // [] } }

sub data { my $d = eval { $_[0]{json}{data} }; ref $d eq 'HASH' ? $d : {} }

sub direct {
    return join ',', $t->psql(q{SELECT p.name FROM user_permissions up
                                 JOIN permissions p ON p.id = up.permission_id
                                WHERE up.user_id = :'p1' ORDER BY p.name},
                              $_[0]);
}

sub perm_id {
    return scalar $t->psql(q{SELECT id FROM permissions WHERE name = :'p1'},
                           $_[0]);
}

sub audit_changes {
    my ($action, $id) = @_;
    my ($c) = $t->psql(q{SELECT changes FROM audit_logs
                          WHERE action = :'p1' AND resource_id = :'p2'
                          ORDER BY created_at DESC LIMIT 1}, $action, $id);
    return defined $c ? JSON::PP->new->decode($c) : undef;
}

###########################################################################
# GET /users/{id}/permissions

my $r = $u->call(GET => $PERMS, $boss);
is($r->{status}, 200, 'GET .../permissions: 200') or diag($r->{content});
my $d = data($r);
is($d->{user_id}, $pu->{id}, 'user_id');
is_deeply($d->{permissions}, [], 'no direct permissions yet');
is_deeply($d->{permissionDetails}, [], '... no details');
my @builtin = $t->psql(q{SELECT p.name FROM roles r
                          JOIN role_permissions rp ON rp.role_id = r.id
                          JOIN permissions p ON p.id = rp.permission_id
                         WHERE r.organization_id = :'p1' AND r.name = 'user'
                         ORDER BY p.name}, $org);
is_deeply($d->{effective_permissions}, \@builtin,
          'effective_permissions: those of the built-in role user');
is($u->call(GET => $PERMS, $pu)->{status}, 200, 'the user reads their own: 200');
is($u->call(GET => $PERMS, $mgr)->{status}, 200, 'a manager (users:read): 200');
error_is($u->call(GET => "/api/v1/users/$mgr->{id}/permissions", $pu), 403,
         'FORBIDDEN', "a user reading another's: 403");
error_is($u->call(GET => '/api/v1/users/00000000-0000-4000-8000-000000000000'
                  . '/permissions', $boss), 404, 'NOT_FOUND',
         'of a user that does not exist: 404');

###########################################################################
# POST: add

my $export = perm_id('reports:export');
$r = $u->call(POST => $PERMS, $boss,
              { permissions => ['tickets:read', $export] });
is($r->{status}, 200, 'POST .../permissions by name and by id: 200')
    or diag($r->{content});
$d = data($r);
is_deeply($d->{permissions}, ['reports:export', 'tickets:read'], 'permissions');
is_deeply($d->{addedPermissions}, ['reports:export', 'tickets:read'],
          'addedPermissions');
my ($det) = grep { $_->{name} eq 'reports:export' } @{ $d->{permissionDetails} };
is(eval { $det->{id} }, $export, 'permissionDetails: id');
is(eval { $det->{valid} }, JSON::PP::true, '... valid');
ok(is_rfc3339_utc(eval { $det->{valid_from} }), '... valid_from');
is(eval { $det->{valid_until} }, undef, '... valid_until null');
is(direct($pu->{id}), 'reports:export,tickets:read', 'PostgreSQL holds them');
is(scalar $t->psql(q{SELECT count(*) FROM user_permissions
                      WHERE user_id = :'p1' AND granted_by = :'p2'},
                   $pu->{id}, $boss->{id}), 2, '... granted_by the caller');
is_deeply(eval { audit_changes('user.permissions_add', $pu->{id})->{granted} },
          ['reports:export', 'tickets:read'], 'the audit row names them');

$r = $u->call(POST => $PERMS, $boss,
              { permissions => ['tickets:read'],
                valid_until => '2099-12-31T23:59:59Z' });
is($r->{status}, 200, 'POST again with valid_until: 200');
($det) = grep { $_->{name} eq 'tickets:read' } @{ data($r)->{permissionDetails} };
is(eval { $det->{valid_until} }, '2099-12-31T23:59:59Z', '... valid_until set');
is(direct($pu->{id}), 'reports:export,tickets:read', '... no duplicate');

for my $case ([{ permissions => ['tickets:read', 'tickets:fly'] }, 'tickets:fly',
               'an unknown permission'],
              [{ permissions => ['00000000-0000-4000-8000-000000000000'] },
               '00000000-0000-4000-8000-000000000000', 'an unknown id'],
              [{ permissions => ['users:read'],
                 valid_until => '2001-01-01T00:00:00Z' }, 'valid_until',
               'valid_until in the past'],
              [{ permissions => ['users:read'], valid_until => 'tomorrow' },
               'valid_until', 'valid_until not a time'],
              [{ permissions => ['users:read'],
                 valid_until => '2099-13-01T00:00:00Z' }, 'valid_until',
               'valid_until with month 13'],
              [{ permissions => [] }, 'permissions', 'an empty list'],
              [{ permissions => 'users:read' }, 'permissions', 'not a list'],
              [{ permissions => [5] }, 'permissions', 'a number (seed 001 ids)'],
              [{}, 'permissions', 'no list']) {
    my ($body, $named, $what) = @$case;
    $r = $u->call(POST => $PERMS, $boss, $body);
    error_is($r, 422, 'VALIDATION_FAILED', "POST, $what: 422");
    like($r->{content}, qr/\Q$named\E/, "... names $named");
}
is(direct($pu->{id}), 'reports:export,tickets:read', 'nothing of those was stored');

###########################################################################
# the next token carries them

$u->relogin($pu);
ok(has(claims($pu)->{permissions}, 'tickets:read')
   && has(claims($pu)->{permissions}, 'reports:export'),
   'after signing in again the token carries the direct permissions');

$u->call(POST => $PERMS, $boss, { permissions => ['users:read'] });
error_is($u->call(GET => '/api/v1/users', $pu), 403, 'FORBIDDEN',
         'users:read granted: the old token still cannot list users');
$r = $t->post('/api/v1/auth/refresh', { refresh_token => $pu->{refresh} });
is($r->{status}, 200, 'a refresh') or diag($r->{content});
$pu->{token} = $r->{json}{data}{access_token};
$pu->{refresh} = $r->{json}{data}{refresh_token};
ok(has(claims($pu)->{permissions}, 'users:read'),
   '... whose token carries users:read');
is($u->call(GET => '/api/v1/users', $pu)->{status}, 200, '... and lists users');

# validity windows
$t->psql(q{INSERT INTO user_permissions (user_id, permission_id, valid_from,
                                         valid_until)
           SELECT :'p1', id, now() - interval '2 days', now() - interval '1 day'
             FROM permissions WHERE name = 'customers:delete'}, $pu->{id});
$d = data($u->call(GET => $PERMS, $boss));
($det) = grep { $_->{name} eq 'customers:delete' } @{ $d->{permissionDetails} };
is(eval { $det->{valid} }, JSON::PP::false, 'an expired grant: valid false');
ok(!has($d->{effective_permissions}, 'customers:delete'),
   '... not among the effective permissions');
$u->relogin($pu);
ok(!has(claims($pu)->{permissions}, 'customers:delete'),
   '... nor in the token');

###########################################################################
# PUT: replace

$r = $u->call(PUT => $PERMS, $boss, { permissions => ['customers:read'] });
is($r->{status}, 200, 'PUT .../permissions: 200') or diag($r->{content});
is_deeply(data($r)->{permissions}, ['customers:read'], '... only the new set');
ok(!exists data($r)->{addedPermissions}, '... no addedPermissions');
is(direct($pu->{id}), 'customers:read', 'PostgreSQL holds only it');
my $chg = audit_changes('user.permissions_replace', $pu->{id});
is_deeply(eval { $chg->{removed} },
          ['customers:delete', 'reports:export', 'tickets:read', 'users:read'],
          'the audit row names what was removed');
is_deeply(eval { $chg->{granted} }, ['customers:read'], '... and granted');
$r = $u->call(PUT => $PERMS, $boss, { permissions => ['customers:read', 'nope:x'] });
error_is($r, 422, 'VALIDATION_FAILED', 'PUT with an unknown permission: 422');
is(direct($pu->{id}), 'customers:read', '... nothing changed');
$r = $u->call(PUT => $PERMS, $boss, { permissions => [] });
is($r->{status}, 200, 'PUT an empty list: 200');
is(direct($pu->{id}), '', '... every direct permission is gone');

###########################################################################
# one hands out only what one holds

my $pm = $u->user($admin);
$t->psql(q{INSERT INTO user_permissions (user_id, permission_id)
           SELECT :'p1', id FROM permissions
            WHERE name IN ('users:manage_permissions', 'tickets:read')},
         $pm->{id});
$u->relogin($pm);
is($u->call(POST => $PERMS, $pm, { permissions => ['tickets:read'] })->{status},
   200, 'a holder of users:manage_permissions grants what they hold: 200');
$r = $u->call(POST => $PERMS, $pm, { permissions => ['users:delete'] });
error_is($r, 403, 'FORBIDDEN', '... but not what they do not hold: 403');
like($r->{content}, qr/users:delete/, '... naming it');
$t->psql(q{INSERT INTO user_permissions (user_id, permission_id)
           SELECT :'p1', id FROM permissions WHERE name = 'audit:export'},
         $pu->{id});
error_is($u->call(PUT => $PERMS, $pm, { permissions => ['tickets:read'] }),
         403, 'FORBIDDEN', '... nor take away what they do not hold: 403');
error_is($u->call(POST => "/api/v1/users/$pm->{id}/permissions", $pm,
                  { permissions => ['users:delete'] }), 403, 'FORBIDDEN',
         '... nor grant it to themselves: 403');
error_is($u->call(POST => $PERMS, $boss, { permissions => ['system:admin'] }),
         403, 'FORBIDDEN', 'an org admin cannot grant system:admin: 403');
is($u->call(POST => $PERMS, $admin, { permissions => ['system:admin'] })->{status},
   200, 'the super admin can: 200');
is(direct($pu->{id}), 'audit:export,system:admin,tickets:read',
   'PostgreSQL: what was allowed, only');

###########################################################################
# roles

my ($ticketeers) = $t->psql(<<'SQL', $org);
WITH r AS (INSERT INTO roles (organization_id, name, description)
           VALUES (:'p1', 'ticketeers', 'Handle tickets') RETURNING id),
     g AS (INSERT INTO role_permissions (role_id, permission_id)
           SELECT r.id, p.id FROM r, permissions p
            WHERE p.name IN ('tickets:create', 'tickets:close'))
SELECT id FROM r
SQL
my ($manager_role, $admin_role) = map {
    scalar $t->psql(q{SELECT id FROM roles WHERE organization_id = :'p1'
                       AND name = :'p2'}, $org, $_)
} qw(manager org_admin);

$r = $u->call(POST => $ROLES, $boss, { role_ids => [$ticketeers] });
is($r->{status}, 200, 'POST .../roles: 200') or diag($r->{content});
$d = data($r);
is($d->{user_id}, $pu->{id}, 'the answer names the user');
is_deeply([ map { $_->{name} } @{ $d->{roles} } ], ['ticketeers'],
          '... and lists the role');
is($d->{builtin_role}, 'user', '... and the built-in role of the user_type');
is(eval { $d->{roles}[0]{assigned_by} }, $boss->{id}, '... assigned_by');
is(scalar $t->psql(q{SELECT count(*) FROM user_roles WHERE user_id = :'p1'},
                   $pu->{id}), 1, 'PostgreSQL holds the assignment');
is_deeply(eval { audit_changes('user.roles_assign', $pu->{id})->{assigned} },
          ['ticketeers'], 'the audit row names the role');
$r = $u->call(POST => $ROLES, $boss, { role_ids => [$ticketeers] });
is($r->{status}, 200, 'assigning it again: 200');
is(scalar @{ data($r)->{roles} }, 1, '... still once');

$u->relogin($pu);
ok(has(claims($pu)->{roles}, 'ticketeers'),
   'after signing in again the token names the role');
ok(has(claims($pu)->{permissions}, 'tickets:close')
   && has(claims($pu)->{permissions}, 'tickets:create'),
   '... and carries its permissions');

$r = $u->call(POST => $ROLES, $boss, { role_ids => [$manager_role] });
is($r->{status}, 200, 'a built-in role may be assigned: 200');
$u->relogin($pu);
ok(has(claims($pu)->{roles}, 'manager'), '... the token names manager');
ok(has(claims($pu)->{permissions}, 'users:read'), '... with users:read');

$r = $u->call(DELETE => $ROLES, $boss,
              { role_ids => [$ticketeers, $manager_role] });
is($r->{status}, 200, 'DELETE .../roles: 200') or diag($r->{content});
is_deeply(data($r)->{roles}, [], '... no roles left');
is_deeply(eval { audit_changes('user.roles_remove', $pu->{id})->{removed} },
          ['manager', 'ticketeers'], 'the audit row names them');
$u->relogin($pu);
ok(!has(claims($pu)->{roles}, 'ticketeers') && !has(claims($pu)->{roles}, 'manager'),
   'the next token names neither');
ok(!has(claims($pu)->{permissions}, 'tickets:close'),
   '... nor carries their permissions');
is($u->call(DELETE => $ROLES, $boss, { role_ids => [$ticketeers] })->{status},
   200, 'removing a role the user does not hold: 200');

my $other = $u->org('perm-other');
my ($foreign) = $t->psql(q{SELECT id FROM roles WHERE organization_id = :'p1'
                           AND name = 'user'}, $other);
my ($gone) = $t->psql(q{INSERT INTO roles (organization_id, name, deleted_at)
                        VALUES (:'p1', 'old-role', now()) RETURNING id}, $org);
for my $case ([[$foreign], $foreign, "another organization's role"],
              [['00000000-0000-4000-8000-000000000000'],
               '00000000-0000-4000-8000-000000000000', 'a role that does not exist'],
              [[$gone], $gone, 'a deleted role'],
              [['abc'], 'role_ids', 'not a UUID'],
              [[], 'role_ids', 'an empty list']) {
    my ($ids, $named, $what) = @$case;
    $r = $u->call(POST => $ROLES, $boss, { role_ids => $ids });
    error_is($r, 422, 'VALIDATION_FAILED', "assigning $what: 422");
    like($r->{content}, qr/\Q$named\E/, "... names $named");
}
is(scalar $t->psql(q{SELECT count(*) FROM user_roles WHERE user_id = :'p1'},
                   $pu->{id}), 0, 'none of them was assigned');

# roles:assign hands out only roles whose permissions one holds
my $ra = $u->user($admin);
$t->psql(q{INSERT INTO user_permissions (user_id, permission_id)
           SELECT :'p1', id FROM permissions
            WHERE name IN ('roles:assign', 'tickets:create')}, $ra->{id});
$u->relogin($ra);
$r = $u->call(POST => $ROLES, $ra, { role_ids => [$ticketeers] });
error_is($r, 403, 'FORBIDDEN',
         'roles:assign without tickets:close assigning ticketeers: 403');
like($r->{content}, qr/ticketeers/, '... naming the role');
error_is($u->call(POST => $ROLES, $ra, { role_ids => [$admin_role] }),
         403, 'FORBIDDEN', '... assigning org_admin: 403');
$t->psql(q{INSERT INTO user_permissions (user_id, permission_id)
           SELECT :'p1', id FROM permissions WHERE name = 'tickets:close'},
         $ra->{id});
$u->relogin($ra);
is($u->call(POST => $ROLES, $ra, { role_ids => [$ticketeers] })->{status}, 200,
   '... holding all its permissions: 200');
is($u->call(POST => $ROLES, $boss, { role_ids => [$admin_role] })->{status}, 200,
   'an org admin assigns org_admin: 200');
$u->relogin($pu);
ok(has(claims($pu)->{roles}, 'org_admin'), '... and the next token names it');
is($u->call(GET => "/api/v1/users/$ra->{id}/permissions", $pu)->{status}, 200,
   '... which reads any user of the organization');

done_testing();
