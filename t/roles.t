#!/usr/bin/perl
# Roles (seed 002, "Role & Permission Management"): create, list, read,
# update, delete, and the permissions of a role, as an organization admin
# and as the super admin.  psql is the oracle for what was stored and for
# the audit row each change wrote.  Who may call what, across tenants, is
# in t/rbac_access.t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use UM::Test qw(error_is is_rfc3339_utc is_uuid);

my $t = UM::Test->new(workers => 2);

my $TRUE = JSON::PP::true;
my $FALSE = JSON::PP::false;
my $ROLES = '/api/v1/roles';

my ($org_a) = $t->psql(q{SELECT id FROM organizations WHERE slug = 'default'});
my ($org_b) = $t->psql(q{INSERT INTO organizations
                             (name, slug, allow_self_registration)
                         VALUES ('Beta', 'beta', true) RETURNING id});

# a member of an organization with the given user_type, signed in again so
# that the token carries the role
sub member {
    my ($type, $slug) = @_;
    my $u = $t->new_user(organization_slug => $slug // 'default');
    if ($type ne 'user') {
        $t->psql(q{UPDATE users SET user_type = :'p1' WHERE id = :'p2'},
                 $type, $u->{id});
        my $l = $t->login($u->{email}, $u->{password});
        die "login: $l->{content}" unless $l->{status} == 200;
        $u->{access_token} = $l->{json}{data}{access_token};
    }
    $u->{h} = $t->auth_header($u->{access_token});
    return $u;
}

sub perm_id {
    my ($name) = @_;
    return scalar $t->psql(q{SELECT id FROM permissions WHERE name = :'p1'},
                           $name);
}

sub audits {
    my ($action, $id) = @_;
    return scalar $t->psql(q{SELECT count(*) FROM audit_logs
                              WHERE action = :'p1' AND resource = 'role'
                                AND resource_id = :'p2'}, $action, $id);
}

sub del_body {
    my ($path, $body, $h) = @_;
    return $t->request('DELETE', $path, { body => $body, headers => $h });
}

my $l = $t->login($t->admin_email, $t->admin_password);
is($l->{status}, 200, 'the super admin signs in') or diag($l->{content});
my $sa = $t->auth_header($l->{json}{data}{access_token});
my ($sa_id) = $t->psql(q{SELECT id FROM users WHERE is_super_admin});

my $admin = member('admin');
my $oa = $admin->{h};
my $admin_b = member('admin', 'beta');

my ($tickets_read, $tickets_update, $reports_read, $system_admin) =
    map { perm_id($_) } qw(tickets:read tickets:update reports:read
                           system:admin);

###########################################################################
# POST /roles

my $r = $t->post($ROLES, { name => 'Support', description => 'Front line',
                           is_active => $TRUE,
                           permission_ids => [$tickets_update, $tickets_read] },
                 headers => $oa);
is($r->{status}, 201, 'an org admin creates a role: 201') or diag($r->{content});
my $role = $r->{json}{data} // {};
ok(is_uuid($role->{id}), '... with a UUID id');
is($role->{organization_id}, $org_a, '... in their organization');
is($role->{name}, 'Support', '... the name');
is($role->{description}, 'Front line', '... the description');
ok($role->{is_active} && !$role->{is_builtin}, '... active, not built-in');
is_deeply($role->{permissions},
          [{ id => $tickets_read, name => 'tickets:read' },
           { id => $tickets_update, name => 'tickets:update' }],
          '... its permissions as {id, name}, by name');
ok(is_rfc3339_utc($role->{created_at}) && is_rfc3339_utc($role->{updated_at}),
   '... created_at and updated_at in RFC 3339 UTC');
my $support = $role->{id};

is(scalar $t->psql(q{SELECT organization_id || ',' || name || ','
                            || created_by || ',' || is_builtin
                       FROM roles WHERE id = :'p1'}, $support),
   "$org_a,Support,$admin->{id},false", 'psql: the role is stored, made by the admin');
is(scalar $t->psql(q{SELECT count(*) FROM role_permissions
                      WHERE role_id = :'p1' AND granted_by = :'p2'},
                   $support, $admin->{id}),
   2, 'psql: with its two permissions');
is(scalar $t->psql(q{SELECT organization_id || ',' || actor_id || ','
                            || status || ',' || (changes->'name'->>'new')
                       FROM audit_logs
                      WHERE action = 'role.create' AND resource_id = :'p1'},
                   $support),
   "$org_a,$admin->{id},success,Support", 'psql: the role.create audit row');

$r = $t->post($ROLES, { name => 'Empty', permission_ids => [] }, headers => $oa);
is($r->{status}, 201, 'permission_ids [] is a role without permissions')
    or diag($r->{content});
is_deeply($r->{json}{data}{permissions}, [], '... permissions: []');
ok($r->{json}{data}{is_active}, '... active by default');
ok(!exists $r->{json}{data}{description} || !defined $r->{json}{data}{description},
   '... no description');

# names are unique in an organization, whatever their case
$r = $t->post($ROLES, { name => 'SUPPORT' }, headers => $oa);
error_is($r, 409, 'CONFLICT', 'a name taken in the organization: 409');
is(eval { $r->{json}{error}{details}[0]{field} }, 'name', '... naming the field name');
$r = $t->post($ROLES, { name => 'Support' }, headers => $admin_b->{h});
is($r->{status}, 201, 'the same name in another organization: 201')
    or diag($r->{content});
is($r->{json}{data}{organization_id}, $org_b, '... in that organization');

# the organization
$r = $t->post($ROLES, { name => 'Own', organization_id => $org_a }, headers => $oa);
is($r->{status}, 201, 'an org admin naming their own organization_id: 201');
$r = $t->post($ROLES, { name => 'Elsewhere', organization_id => $org_b },
              headers => $oa);
error_is($r, 403, 'FORBIDDEN', 'an org admin naming another organization_id: 403');
is(scalar $t->psql(q{SELECT count(*) FROM roles WHERE name = 'Elsewhere'}), 0,
   '... nothing was written');

$r = $t->post($ROLES, { name => 'Admin made' }, headers => $sa);
is($r->{status}, 201, 'the super admin creates a role');
is($r->{json}{data}{organization_id}, $org_a, '... in their own organization by default');
$r = $t->post($ROLES, { name => 'Chosen by header' },
              headers => { %$sa, 'X-Tenant-ID' => $org_b });
is($r->{json}{data}{organization_id}, $org_b,
   '... in the organization X-Tenant-ID names') or diag($r->{content});
$r = $t->post($ROLES, { name => 'Chosen by body', organization_id => $org_b },
              headers => $sa);
is($r->{json}{data}{organization_id}, $org_b,
   '... or the organization_id of the body') or diag($r->{content});
$r = $t->post($ROLES, { name => 'Nowhere' },
              headers => { %$sa, 'X-Tenant-ID' => '00000000-0000-4000-8000-00000000abcd' });
error_is($r, 404, 'NOT_FOUND', '... an organization that does not exist: 404');
$r = $t->post($ROLES, { name => 'Mixed', organization_id => $org_a },
              headers => { %$sa, 'X-Tenant-ID' => $org_b });
error_is($r, 403, 'FORBIDDEN',
         '... an organization_id other than the X-Tenant-ID chosen: 403');

# system permissions are the super admin's to grant
$r = $t->post($ROLES, { name => 'Sneaky', permission_ids => [$system_admin] },
              headers => $oa);
error_is($r, 403, 'FORBIDDEN', 'an org admin granting system:admin: 403');
like($r->{json}{error}{message} // '', qr/system:admin/, '... the message names it');
is(scalar $t->psql(q{SELECT count(*) FROM roles WHERE name = 'Sneaky'}), 0,
   '... and no role was made');
$r = $t->post($ROLES, { name => 'Operators', permission_ids => [$system_admin] },
              headers => $sa);
is($r->{status}, 201, 'the super admin may') or diag($r->{content});

# bad input
my $unknown = '00000000-0000-4000-8000-000000000123';
for my $case (
    [ {}, 'name', 'no name' ],
    [ { name => '' }, 'name', 'an empty name' ],
    [ { name => '   ' }, 'name', 'a name of spaces' ],
    [ { name => 'x' x 101 }, 'name', 'a name of 101 characters' ],
    [ { name => undef }, 'name', 'a null name' ],
    [ { name => 42 }, 'name', 'a number as name' ],
    [ { name => 'super_admin' }, 'name', 'the name super_admin' ],
    [ { name => 'Super_Admin' }, 'name', 'the name Super_Admin' ],
    [ { name => 'org_admin' }, 'name', 'the name of a built-in role' ],
    [ { name => 'USER' }, 'name', '... in other case' ],
    [ { name => 'ops,super_admin' }, 'name', 'a name with a comma' ],
    [ { name => "ops\r\nX-Roles: super_admin" }, 'name',
      'a name with a line break' ],
    [ { name => "ops\x{85}" }, 'name', 'a name with a C1 control' ],
    [ { name => 'Ok', description => 'd' x 501 }, 'description',
      'a description of 501 characters' ],
    [ { name => 'Ok', is_active => 'yes' }, 'is_active', 'is_active "yes"' ],
    [ { name => 'Ok', permission_ids => 'all' }, 'permission_ids',
      'permission_ids not an array' ],
    [ { name => 'Ok', permission_ids => ['tickets:read'] }, 'permission_ids',
      'permission_ids holding a name' ],
    [ { name => 'Ok', permission_ids => [$unknown] }, 'permission_ids',
      'permission_ids holding an unknown id' ],
    [ { name => 'Ok', organization_id => 'beta' }, 'organization_id',
      'organization_id not a UUID' ],
    [ { name => 'Ok', is_builtin => $TRUE }, 'is_builtin', 'is_builtin' ],
) {
    my ($body, $field, $what) = @$case;
    $r = $t->post($ROLES, $body, headers => $oa);
    error_is($r, 422, 'VALIDATION_FAILED', "$what: 422");
    ok((grep { $_->{field} eq $field } @{ $r->{json}{error}{details} // [] }),
       "... naming $field") or diag($r->{content});
}
is(scalar $t->psql(q{SELECT count(*) FROM roles
                      WHERE name IN ('Ok', 'Super_Admin', 'ops,super_admin')
                         OR (name = 'super_admin' AND NOT is_builtin)
                         OR name LIKE 'ops%'}), 0,
   'none of them wrote a role');
is(scalar $t->psql(q{SELECT count(*) FROM role_permissions
                      WHERE permission_id = :'p1'}, $unknown), 0,
   '... or a grant');

$r = $t->post($ROLES, '{"name": "Broken"', headers => { %$oa,
              'content-type' => 'application/json' });
error_is($r, 400, 'BAD_REQUEST', 'malformed JSON: 400');
$r = $t->post($ROLES, 'name=Form', headers => { %$oa,
              'content-type' => 'application/x-www-form-urlencoded' });
error_is($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'a form body: 415');

###########################################################################
# GET /roles

$r = $t->get($ROLES, headers => $oa);
is($r->{status}, 200, 'an org admin lists roles') or diag($r->{content});
my $list = $r->{json}{data} // {};
my @names = map { $_->{name} } @{ $list->{roles} // [] };
my ($count_a) = $t->psql(q{SELECT count(*) FROM roles
                            WHERE organization_id = :'p1'
                              AND deleted_at IS NULL}, $org_a);
is($list->{total}, $count_a, '... total: every role of the organization (psql)');
ok((grep { $_ eq 'org_admin' } @names) && (grep { $_ eq 'user' } @names)
   && (grep { $_ eq 'Support' } @names), '... built-in roles and made ones');
ok(!(grep { $_->{organization_id} ne $org_a } @{ $list->{roles} }),
   '... none of another organization');
is_deeply(\@names,
          [$t->psql(q{SELECT name FROM roles WHERE organization_id = :'p1'
                        AND deleted_at IS NULL ORDER BY name, id LIMIT 20},
                    $org_a)], '... in name order (psql)');
my ($builtin) = grep { $_->{name} eq 'manager' } @{ $list->{roles} };
ok($builtin->{is_builtin}, '... built-in roles say so');
ok((grep { $_->{name} eq 'roles:read' } @{ $builtin->{permissions} }),
   '... with their permissions');
is($list->{page}, 1, '... page 1');
is($list->{page_size}, 20, '... of 20');
ok(exists $list->{has_next} && exists $list->{has_prev} && exists $list->{pages},
   '... with has_next, has_prev and pages');

$r = $t->get("$ROLES?page_size=2&page=2", headers => $oa);
is(scalar @{ $r->{json}{data}{roles} }, 2, 'page_size=2&page=2: two roles');
is($r->{json}{data}{roles}[0]{name}, $names[2], '... the third and fourth');
ok($r->{json}{data}{has_prev}, '... has_prev');
$r = $t->get("$ROLES?limit=1&skip=3", headers => $oa);
is($r->{json}{data}{roles}[0]{name}, $names[3], 'limit=1&skip=3: the fourth');
$r = $t->get("$ROLES?page_size=101", headers => $oa);
error_is($r, 400, 'BAD_REQUEST', 'page_size=101: 400');

$r = $t->get("$ROLES?search=UPPORT", headers => $oa);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{roles} }], ['Support'],
          'search: a substring of the name, any case');
$r = $t->get("$ROLES?search=front%20LINE", headers => $oa);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{roles} }], ['Support'],
          '... or of the description');
$t->post($ROLES, { name => '100% sure_thing' }, headers => $oa);
$r = $t->get("$ROLES?search=%25", headers => $oa);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{roles} }],
          ['100% sure_thing'], '... "%" matches only itself');
$r = $t->get("$ROLES?search=_", headers => $oa);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{roles} }],
          ['100% sure_thing', 'org_admin'], '... and so does "_"');
$r = $t->get("$ROLES?search=", headers => $oa);
is($r->{json}{data}{total}, $count_a + 1, '... an empty search is no filter');

$t->post($ROLES, { name => 'Dormant', is_active => $FALSE }, headers => $oa);
$r = $t->get("$ROLES?is_active=false", headers => $oa);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{roles} }], ['Dormant'],
          'is_active=false: the inactive roles');
$r = $t->get("$ROLES?is_active=true", headers => $oa);
ok(!(grep { !$_->{is_active} } @{ $r->{json}{data}{roles} }),
   'is_active=true: only active ones');
$r = $t->get("$ROLES?is_active=maybe", headers => $oa);
error_is($r, 422, 'VALIDATION_FAILED', 'is_active=maybe: 422');
is(eval { $r->{json}{error}{details}[0]{field} }, 'is_active', '... naming it');

$r = $t->get($ROLES, headers => $sa);
my ($count_all) = $t->psql(q{SELECT count(*) FROM roles
                              WHERE deleted_at IS NULL});
is($r->{json}{data}{total}, $count_all,
   'the super admin lists the roles of every organization');
$r = $t->get($ROLES, headers => { %$sa, 'X-Tenant-ID' => $org_b });
ok(!(grep { $_->{organization_id} ne $org_b } @{ $r->{json}{data}{roles} }),
   '... or of the one X-Tenant-ID names');

###########################################################################
# GET /roles/{id}

$r = $t->get("$ROLES/$support", headers => $oa);
is($r->{status}, 200, 'an org admin reads a role') or diag($r->{content});
is($r->{json}{data}{name}, 'Support', '... its name');
is(scalar @{ $r->{json}{data}{permissions} }, 2, '... its permissions');
is($r->{json}{data}{user_count}, 0, '... user_count 0');

my $u1 = $t->new_user;
my $u2 = $t->new_user;
$t->psql(q{INSERT INTO user_roles (user_id, role_id) VALUES (:'p1', :'p3'),
                                                           (:'p2', :'p3')},
         $u1->{id}, $u2->{id}, $support);
$r = $t->get("$ROLES/$support", headers => $oa);
is($r->{json}{data}{user_count}, 2, '... user_count counts its assignments');

my ($user_role) = $t->psql(q{SELECT id FROM roles WHERE organization_id = :'p1'
                               AND name = 'user'}, $org_a);
my ($users) = $t->psql(q{SELECT count(*) FROM users WHERE organization_id = :'p1'
                          AND user_type = 'user' AND deleted_at IS NULL}, $org_a);
$r = $t->get("$ROLES/$user_role", headers => $oa);
is($r->{json}{data}{user_count}, $users,
   'a built-in role counts the users of its user_type (psql)');
ok($r->{json}{data}{is_builtin}, '... and is built-in');

$r = $t->get("$ROLES/$unknown", headers => $oa);
error_is($r, 404, 'NOT_FOUND', 'an unknown role: 404');
$r = $t->get("$ROLES/not-a-uuid", headers => $oa);
error_is($r, 400, 'BAD_REQUEST', 'an id that is not a UUID: 400');

###########################################################################
# PUT /roles/{id}

my ($before) = $t->psql(q{SELECT updated_at FROM roles WHERE id = :'p1'}, $support);
$r = $t->put("$ROLES/$support", { name => 'Customer Support',
                                   description => undef }, headers => $oa);
is($r->{status}, 200, 'an org admin renames a role') or diag($r->{content});
is($r->{json}{data}{name}, 'Customer Support', '... the new name');
ok(!defined $r->{json}{data}{description}, '... the description cleared');
ok($r->{json}{data}{is_active}, '... is_active untouched');
is_deeply($r->{json}{data}{changes},
          { name => { old => 'Support', new => 'Customer Support' },
            description => { old => 'Front line', new => undef } },
          '... the answer lists what changed');
is(scalar $t->psql(q{SELECT name || ',' || coalesce(description, '-') || ','
                            || (updated_at > :'p2')
                       FROM roles WHERE id = :'p1'}, $support, $before),
   'Customer Support,-,true', 'psql: stored, updated_at moved');
is(scalar $t->psql(q{SELECT changes->'name'->>'old' FROM audit_logs
                      WHERE action = 'role.update' AND resource_id = :'p1'
                        AND actor_id = :'p2'}, $support, $admin->{id}),
   'Support', 'psql: the role.update audit row with the changes');

$r = $t->put("$ROLES/$support", { is_active => $FALSE }, headers => $oa);
ok($r->{status} == 200 && !$r->{json}{data}{is_active}, 'deactivated')
    or diag($r->{content});
$r = $t->put("$ROLES/$support", { is_active => $TRUE }, headers => $oa);
ok($r->{json}{data}{is_active}, '... and active again');

$r = $t->put("$ROLES/$support", { name => 'dormant' }, headers => $oa);
error_is($r, 409, 'CONFLICT', 'renamed to a taken name: 409');
is(eval { $r->{json}{error}{details}[0]{field} }, 'name', '... naming name');
for my $case ([{ name => '' }, 'name'], [{ name => undef }, 'name'],
              [{ name => 'super_admin' }, 'name'], [{ name => 'Manager' }, 'name'],
              [{ name => "a\tb" }, 'name'],
              [{ is_active => undef }, 'is_active'],
              [{ organization_id => $org_b }, 'organization_id'],
              [{ permissions => [] }, 'permissions']) {
    $r = $t->put("$ROLES/$support", $case->[0], headers => $oa);
    error_is($r, 422, 'VALIDATION_FAILED', "PUT with a bad $case->[1]: 422");
}
is(scalar $t->psql(q{SELECT name FROM roles WHERE id = :'p1'}, $support),
   'Customer Support', '... the role is as it was');

$r = $t->put("$ROLES/$user_role", { name => 'members' }, headers => $oa);
error_is($r, 409, 'CONFLICT', 'renaming a built-in role: 409');
like($r->{json}{error}{message}, qr/built-in/, '... saying why');
$r = $t->put("$ROLES/$user_role", { is_active => $FALSE }, headers => $oa);
error_is($r, 409, 'CONFLICT', 'deactivating a built-in role: 409');
$r = $t->put("$ROLES/$user_role", { name => 'USER' }, headers => $oa);
error_is($r, 409, 'CONFLICT', '... or changing the case of its name: 409');
$r = $t->put("$ROLES/$user_role", { name => 'user', description => 'Everyone' },
             headers => $oa);
is($r->{status}, 200, 'a built-in role: its own name and a new description: 200')
    or diag($r->{content});
is(scalar $t->psql(q{SELECT name || ',' || is_active || ',' || description
                       FROM roles WHERE id = :'p1'}, $user_role),
   'user,true,Everyone', 'psql: the name stays, the description changed');
$r = $t->put("$ROLES/$unknown", { description => 'x' }, headers => $oa);
error_is($r, 404, 'NOT_FOUND', 'PUT of an unknown role: 404');

###########################################################################
# POST and DELETE /roles/{id}/permissions

my $P = "$ROLES/$support/permissions";
$r = $t->post($P, { permission_ids => [$reports_read, $tickets_read] }, headers => $oa);
is($r->{status}, 200, 'an org admin adds permissions to a role') or diag($r->{content});
is_deeply([map { $_->{name} } @{ $r->{json}{data}{permissions} }],
          [qw(reports:read tickets:read tickets:update)],
          '... the answer is the role with its permissions (one was held)');
is(scalar $t->psql(q{SELECT string_agg(p.name, ',' ORDER BY p.name)
                       FROM role_permissions rp
                       JOIN permissions p ON p.id = rp.permission_id
                      WHERE rp.role_id = :'p1'}, $support),
   'reports:read,tickets:read,tickets:update', 'psql: the grants');
is(scalar $t->psql(q{SELECT (changes->'permissions'->'new')::text
                       FROM audit_logs
                      WHERE action = 'role.permissions_add'
                        AND resource_id = :'p1'}, $support),
   '["reports:read", "tickets:read", "tickets:update"]',
   'psql: the role.permissions_add audit row');

$r = $t->post($P, { permission_ids => [$tickets_read, $unknown] }, headers => $oa);
error_is($r, 422, 'VALIDATION_FAILED', 'an unknown permission id: 422');
is(eval { $r->{json}{error}{details}[0]{field} }, 'permission_ids',
   '... naming permission_ids');
is(audits('role.permissions_add', $support), 1, '... and no audit row');
$r = $t->post($P, { permission_ids => [$system_admin] }, headers => $oa);
error_is($r, 403, 'FORBIDDEN', 'an org admin adding system:admin: 403');
for my $body ({}, { permission_ids => [] }, { permission_ids => ['x'] },
              { permission_ids => [$tickets_read], extra => 1 }) {
    $r = $t->post($P, $body, headers => $oa);
    error_is($r, 422, 'VALIDATION_FAILED',
             'a body of ' . UM::Test::json_encode($body) . ': 422');
}

$r = del_body($P, { permission_ids => [$tickets_update, $reports_read] }, $oa);
is($r->{status}, 200, 'an org admin removes permissions from a role')
    or diag($r->{content});
is_deeply([map { $_->{name} } @{ $r->{json}{data}{permissions} }],
          ['tickets:read'], '... the role keeps the others');
is(scalar $t->psql(q{SELECT count(*) FROM role_permissions WHERE role_id = :'p1'},
                   $support), 1, 'psql: one grant left');
is(audits('role.permissions_remove', $support), 1,
   'psql: the role.permissions_remove audit row');
$r = del_body($P, { permission_ids => [$unknown] }, $oa);
error_is($r, 422, 'VALIDATION_FAILED', 'removing an unknown permission: 422');
$r = del_body($P, { permission_ids => [$reports_read] }, $oa);
is($r->{status}, 200, 'removing one the role does not hold: 200');
$r = del_body("$ROLES/$unknown/permissions",
              { permission_ids => [$reports_read] }, $oa);
error_is($r, 404, 'NOT_FOUND', 'permissions of an unknown role: 404');

# the operator role holds system:admin; an org admin may take it back
my ($operators) = $t->psql(q{SELECT id FROM roles WHERE name = 'Operators'});
$r = $t->post("$ROLES/$operators/permissions",
              { permission_ids => [$tickets_read] }, headers => $sa);
is($r->{status}, 200, 'the super admin adds to a role');

###########################################################################
# DELETE /roles/{id}

$r = $t->delete("$ROLES/$support", headers => $oa);
is($r->{status}, 200, 'an org admin deletes a role') or diag($r->{content});
is($r->{json}{data}{id}, $support, '... the answer names it');
is($r->{json}{data}{unassigned_users}, 2, '... and the users who lost it');
is(scalar $t->psql(q{SELECT (deleted_at IS NOT NULL) FROM roles WHERE id = :'p1'},
                   $support), 't', 'psql: soft-deleted');
is(scalar $t->psql(q{SELECT count(*) FROM user_roles WHERE role_id = :'p1'},
                   $support), 0, 'psql: its assignments are gone');
is(scalar $t->psql(q{SELECT actor_id || ',' || (metadata->>'unassigned_users')
                       FROM audit_logs
                      WHERE action = 'role.delete' AND resource_id = :'p1'},
                   $support), "$admin->{id},2", 'psql: the role.delete audit row');
error_is($t->get("$ROLES/$support", headers => $oa), 404, 'NOT_FOUND',
         'a deleted role: 404');
error_is($t->delete("$ROLES/$support", headers => $oa), 404, 'NOT_FOUND',
         '... deleting it again: 404');
error_is($t->put("$ROLES/$support", { description => 'x' }, headers => $oa), 404,
         'NOT_FOUND', '... updating it: 404');
$r = $t->get("$ROLES?search=customer", headers => $oa);
is($r->{json}{data}{total}, 0, '... not listed');
$r = $t->post($ROLES, { name => 'Customer Support' }, headers => $oa);
is($r->{status}, 201, '... and its name is free again') or diag($r->{content});

$r = $t->delete("$ROLES/$user_role", headers => $oa);
error_is($r, 409, 'CONFLICT', 'deleting a built-in role: 409');
like($r->{json}{error}{message}, qr/built-in roles \(user\) cannot be deleted/,
     '... saying why');
$r = $t->delete("$ROLES/$user_role", headers => $sa);
error_is($r, 409, 'CONFLICT', '... also for the super admin');
is(scalar $t->psql(q{SELECT count(*) FROM roles WHERE id = :'p1'
                      AND deleted_at IS NULL}, $user_role), 1,
   'psql: the built-in role is still there');
is(audits('role.delete', $user_role), 0, '... and no audit row says otherwise');

###########################################################################
# a change and its audit row commit together: when the audit row cannot be
# written (here an address that is no IP), the change is undone with it

sub fails {
    my ($sql, @bind) = @_;
    return !eval { $t->psql($sql, @bind); 1 } && $@ =~ /inet/;
}

my $atomic = $t->post($ROLES, { name => 'Atomic', permission_ids => [$tickets_read] },
                      headers => $oa)->{json}{data}{id};
$t->psql(q{INSERT INTO user_roles (user_id, role_id) VALUES (:'p1', :'p2')},
         $u1->{id}, $atomic);
my $state = q{SELECT (SELECT count(*) FROM roles WHERE name LIKE 'Atomic%'
                        AND deleted_at IS NULL)
                     || ',' || (SELECT name FROM roles WHERE id = :'p1')
                     || ',' || (SELECT count(*) FROM role_permissions
                                 WHERE role_id = :'p1')
                     || ',' || (SELECT count(*) FROM user_roles
                                 WHERE role_id = :'p1')
                     || ',' || (SELECT count(*) FROM audit_logs
                                 WHERE resource = 'role')};
my ($was) = $t->psql($state, $atomic);
my %ctx = (p1 => $admin->{id}, p2 => $org_a, p3 => $atomic,
           p4 => $reports_read);
ok(fails(q{SELECT um_role_create(:'p1', :'p2', '{"name": "Atomic 2"}',
                                 '{"super_admin": true}', 'no-ip', NULL)},
         \%ctx), 'um_role_create with an unwritable audit row fails');
ok(fails(q{SELECT um_role_update(:'p1', :'p3', :'p2', '{"name": "Atomic 3"}',
                                 'no-ip', NULL)}, \%ctx),
   'um_role_update fails');
ok(fails(q{SELECT um_role_delete(:'p1', :'p3', :'p2', 'no-ip', NULL)}, \%ctx),
   'um_role_delete fails');
ok(fails(q{SELECT um_role_permissions_add(:'p1', :'p3', :'p2',
                                          jsonb_build_array(:'p4'),
                                          '{"super_admin": true}',
                                          'no-ip', NULL)}, \%ctx),
   'um_role_permissions_add fails');
ok(fails(q{SELECT um_role_permissions_remove(:'p1', :'p3', :'p2',
                                             jsonb_build_array(:'p4'),
                                             'no-ip', NULL)}, \%ctx),
   'um_role_permissions_remove fails');
is(scalar $t->psql($state, $atomic), $was,
   'psql: no role made, renamed, deleted, granted or unassigned, no audit row');

done_testing();
