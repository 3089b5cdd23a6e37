#!/usr/bin/perl
# Permissions (seed 002): the global catalogue of "resource:action" names.
# Every signed-in user reads it (permissions:read is in every built-in
# role); only the super admin creates, changes and deletes, and never the
# names of the catalogue's own system permissions.  psql is the oracle.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is is_rfc3339_utc is_uuid);

my $t = UM::Test->new(workers => 2);

my $PERMS = '/api/v1/permissions';

sub member {
    my ($type) = @_;
    my $u = $t->new_user;
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

sub audit_of {
    my ($action, $id) = @_;
    return scalar $t->psql(q{SELECT actor_id || ',' || status || ','
                                    || coalesce(organization_id::text, '-')
                               FROM audit_logs
                              WHERE action = :'p1' AND resource = 'permission'
                                AND resource_id = :'p2'}, $action, $id);
}

my $l = $t->login($t->admin_email, $t->admin_password);
is($l->{status}, 200, 'the super admin signs in') or diag($l->{content});
my $sa = $t->auth_header($l->{json}{data}{access_token});
my ($sa_id) = $t->psql(q{SELECT id FROM users WHERE is_super_admin});

my $user = member('user');
my $uh = $user->{h};
my $admin = member('admin');

my ($catalogue) = $t->psql(q{SELECT count(*) FROM permissions});
my ($users_read) = $t->psql(q{SELECT id FROM permissions
                               WHERE name = 'users:read'});

###########################################################################
# GET /permissions

my $r = $t->get($PERMS, headers => $uh);
is($r->{status}, 200, 'a plain user lists the permissions') or diag($r->{content});
my $d = $r->{json}{data} // {};
is($d->{total}, $catalogue, '... total: the whole catalogue (psql)');
is(scalar @{ $d->{permissions} }, 20, '... 20 on the first page');
is($d->{pages}, int(($catalogue + 19) / 20), '... pages');
ok($d->{has_next} && !$d->{has_prev}, '... has_next, not has_prev');
my $p0 = $d->{permissions}[0];
ok(is_uuid($p0->{id}) && $p0->{name} eq "$p0->{resource}:$p0->{action}",
   '... each with id, and name = resource:action');
ok(exists $p0->{description} && $p0->{is_system}
   && is_rfc3339_utc($p0->{created_at}) && is_rfc3339_utc($p0->{updated_at}),
   '... description, is_system, created_at, updated_at');
is_deeply([map { $_->{name} } @{ $d->{permissions} }],
          [$t->psql(q{SELECT name FROM permissions
                       ORDER BY resource, action LIMIT 20})],
          '... by resource, then action (psql)');

$r = $t->get("$PERMS?page=2&per_page=15", headers => $uh);
is($r->{json}{data}{permissions}[0]{name},
   scalar $t->psql(q{SELECT name FROM permissions ORDER BY resource, action
                      OFFSET 15 LIMIT 1}), 'page=2&per_page=15: the 16th first');
$r = $t->get("$PERMS?limit=5&offset=5", headers => $uh);
is($r->{json}{data}{page}, 2, 'limit=5&offset=5: page 2');

$r = $t->get("$PERMS?resource=users", headers => $uh);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{permissions} }],
          [qw(users:create users:delete users:manage_permissions users:read
              users:update)], 'resource=users: the five of seed 001');
$r = $t->get("$PERMS?action=export", headers => $uh);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{permissions} }],
          [qw(audit:export reports:export)], 'action=export');
$r = $t->get("$PERMS?resource=roles&action=assign", headers => $uh);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{permissions} }],
          ['roles:assign'], 'resource and action together');
$r = $t->get("$PERMS?search=TRAIL", headers => $uh);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{permissions} }],
          [qw(audit:export audit:read)], 'search: the description, any case');
$r = $t->get("$PERMS?search=manage_", headers => $uh);
is_deeply([map { $_->{name} } @{ $r->{json}{data}{permissions} }],
          ['users:manage_permissions'], '... "_" is itself');
$r = $t->get("$PERMS?resource=nothing", headers => $uh);
is($r->{json}{data}{total}, 0, 'an unknown resource: none');
$r = $t->get("$PERMS?page_size=0", headers => $uh);
error_is($r, 400, 'BAD_REQUEST', 'page_size=0: 400');
$r = $t->get("$PERMS?search=%FF", headers => $uh);
error_is($r, 422, 'VALIDATION_FAILED', 'a search that is not UTF-8: 422');
$r = $t->get("$PERMS?resource=" . ('x' x 201), headers => $uh);
error_is($r, 422, 'VALIDATION_FAILED', 'a resource of 201 characters: 422');
error_is($t->get($PERMS), 401, 'UNAUTHORIZED', 'no token: 401');

###########################################################################
# GET /permissions/grouped

$r = $t->get("$PERMS/grouped", headers => $uh);
is($r->{status}, 200, 'a plain user reads them grouped') or diag($r->{content});
my $g = $r->{json}{data} // {};
is($g->{total}, $catalogue, '... total: the whole catalogue');
my @resources = map { $_->{resource} } @{ $g->{groups} // [] };
is_deeply(\@resources,
          [$t->psql(q{SELECT DISTINCT resource FROM permissions
                       ORDER BY resource})],
          '... one group per resource, in order (psql)');
my ($ug) = grep { $_->{resource} eq 'users' } @{ $g->{groups} };
is($ug->{count}, 5, '... the users group counts 5');
is_deeply([map { $_->{action} } @{ $ug->{permissions} }],
          [qw(create delete manage_permissions read update)],
          '... its permissions, by action');
ok(!(grep { $_->{resource} ne 'users' } @{ $ug->{permissions} }),
   '... all of that resource');

$r = $t->get("$PERMS/grouped?resource=tickets", headers => $uh);
is_deeply([map { $_->{resource} } @{ $r->{json}{data}{groups} }], ['tickets'],
          'resource=tickets: one group');
$r = $t->get("$PERMS/grouped?action=read", headers => $uh);
ok(!(grep { grep { $_->{action} ne 'read' } @{ $_->{permissions} } }
       @{ $r->{json}{data}{groups} }), 'action=read: reads only');
is($r->{json}{data}{total},
   scalar $t->psql(q{SELECT count(*) FROM permissions WHERE action = 'read'}),
   '... all of them');
$r = $t->get("$PERMS/grouped?search=nothing-like-this&resource=&action=",
             headers => $uh);
is_deeply($r->{json}{data}, { groups => [], total => 0 },
          'nothing found: no groups (empty filters are no filters)');

###########################################################################
# GET /permissions/{id}

$r = $t->get("$PERMS/$users_read", headers => $uh);
is($r->{status}, 200, 'a plain user reads one permission') or diag($r->{content});
is($r->{json}{data}{name}, 'users:read', '... users:read');
ok($r->{json}{data}{is_system}, '... a system permission');
error_is($t->get("$PERMS/00000000-0000-4000-8000-000000000001", headers => $uh),
         404, 'NOT_FOUND', 'an unknown id: 404');
error_is($t->get("$PERMS/users:read", headers => $uh), 400, 'BAD_REQUEST',
         'an id that is not a UUID: 400');

###########################################################################
# POST /permissions

$r = $t->post($PERMS, { name => 'widgets:spin', description => 'Spin widgets' },
              headers => $sa);
is($r->{status}, 201, 'the super admin creates a permission by name')
    or diag($r->{content});
my $spin = $r->{json}{data} // {};
is_deeply([@{$spin}{qw(name resource action description)}],
          [qw(widgets:spin widgets spin), 'Spin widgets'],
          '... resource and action follow from the name');
ok(!$spin->{is_system} && is_uuid($spin->{id}), '... not a system permission');
is(scalar $t->psql(q{SELECT resource || ',' || action || ',' || is_system
                       FROM permissions WHERE id = :'p1'}, $spin->{id}),
   'widgets,spin,false', 'psql: stored');
is(audit_of('permission.create', $spin->{id}), "$sa_id,success,-",
   'psql: the permission.create audit row (no organization: it is global)');

$r = $t->post($PERMS, { resource => 'widgets', action => 'polish' }, headers => $sa);
is($r->{status}, 201, '... by resource and action') or diag($r->{content});
is($r->{json}{data}{name}, 'widgets:polish', '... the name joins them');
my $polish = $r->{json}{data}{id};
$r = $t->post($PERMS, { name => 'widgets:*', resource => 'widgets', action => '*',
                        description => 'Anything with widgets' }, headers => $sa);
is($r->{status}, 201, '... all three agreeing, with a wildcard action')
    or diag($r->{content});
my $wild = $r->{json}{data}{id};

$r = $t->post($PERMS, { name => 'Widgets:Spin' }, headers => $sa);
error_is($r, 422, 'VALIDATION_FAILED', 'upper case: 422');
$r = $t->post($PERMS, { name => 'widgets:spin' }, headers => $sa);
error_is($r, 409, 'CONFLICT', 'a name that exists: 409');
is(eval { $r->{json}{error}{details}[0]{field} }, 'name', '... naming name');
$r = $t->post($PERMS, { name => 'users:read' }, headers => $sa);
error_is($r, 409, 'CONFLICT', '... also one of the catalogue');

for my $case (
    [ {}, 'name', 'nothing' ],
    [ { description => 'x' }, 'name', 'only a description' ],
    [ { resource => 'widgets' }, 'action', 'a resource without action' ],
    [ { action => 'spin' }, 'resource', 'an action without resource' ],
    [ { name => 'widgets' }, 'name', 'a name without colon' ],
    [ { name => 'widgets:spin:fast' }, 'name', 'two colons' ],
    [ { name => ':spin' }, 'name', 'no resource in the name' ],
    [ { name => 'widgets:' }, 'name', 'no action in the name' ],
    [ { name => '*:spin' }, 'name', 'a wildcard resource' ],
    [ { name => '9lives:spin' }, 'name', 'a resource starting with a digit' ],
    [ { name => 'wid gets:spin' }, 'name', 'a space' ],
    [ { name => 'widgets:spin', resource => 'gadgets' }, 'name',
      'a name that disagrees with resource' ],
    [ { name => 'widgets:spin', action => 'twirl' }, 'name',
      'a name that disagrees with action' ],
    [ { name => ('w' x 51) . ':spin' }, 'name', 'a resource of 51 characters' ],
    [ { resource => 'widgets', action => 'Spin' }, 'action', 'an upper-case action' ],
    [ { resource => "x'; DROP TABLE permissions; --", action => 'a' }, 'resource',
      'an SQL-injection resource' ],
    [ { name => 'widgets:oil', description => 'd' x 501 }, 'description',
      'a description of 501 characters' ],
    [ { name => 'widgets:oil', is_system => JSON::PP::true }, 'is_system',
      'is_system' ],
) {
    my ($body, $field, $what) = @$case;
    $r = $t->post($PERMS, $body, headers => $sa);
    error_is($r, 422, 'VALIDATION_FAILED', "$what: 422");
    ok((grep { $_->{field} eq $field } @{ $r->{json}{error}{details} // [] }),
       "... naming $field") or diag($r->{content});
}
is(scalar $t->psql(q{SELECT count(*) FROM permissions}), $catalogue + 3,
   'psql: only the three good ones were added');

my $evil = q{'; DELETE FROM permissions; -- "quoted" \\ back};
$r = $t->post($PERMS, { name => 'widgets:oil', description => $evil },
              headers => $sa);
is($r->{status}, 201, 'an SQL-injection description is stored')
    or diag($r->{content});
is($r->{json}{data}{description}, $evil, '... and answered verbatim');
is(scalar $t->psql(q{SELECT description FROM permissions WHERE name = 'widgets:oil'}),
   $evil, 'psql: verbatim');
my $oil = $r->{json}{data}{id};

for my $who ([$admin->{h}, 'an org admin'], [$uh, 'a plain user']) {
    $r = $t->post($PERMS, { name => 'widgets:steal' }, headers => $who->[0]);
    error_is($r, 403, 'FORBIDDEN', "$who->[1] creating a permission: 403");
}
is(scalar $t->psql(q{SELECT count(*) FROM permissions WHERE name = 'widgets:steal'}),
   0, '... nothing written');

###########################################################################
# PUT /permissions/{id}

$r = $t->put("$PERMS/$users_read", { description => 'See the people' }, headers => $sa);
is($r->{status}, 200, 'the super admin describes a system permission anew')
    or diag($r->{content});
is($r->{json}{data}{description}, 'See the people', '... the new description');
is_deeply($r->{json}{data}{changes},
          { description => { old => 'View users', new => 'See the people' } },
          '... the changes');
is(audit_of('permission.update', $users_read), "$sa_id,success,-",
   'psql: the permission.update audit row');

$r = $t->put("$PERMS/$users_read", { name => 'users:look' }, headers => $sa);
error_is($r, 409, 'CONFLICT', 'renaming a system permission: 409');
like($r->{json}{error}{message}, qr/system permission/, '... saying why');
$r = $t->put("$PERMS/$users_read", { action => 'look' }, headers => $sa);
error_is($r, 409, 'CONFLICT', '... also by its action');
$r = $t->put("$PERMS/$users_read", { name => 'users:read', description => 'View users' },
             headers => $sa);
is($r->{status}, 200, '... its own name is no change: 200');
is(scalar $t->psql(q{SELECT name FROM permissions WHERE id = :'p1'}, $users_read),
   'users:read', 'psql: still users:read');

$r = $t->put("$PERMS/$spin->{id}", { action => 'twirl' }, headers => $sa);
is($r->{status}, 200, 'a new action for a permission of our own') or diag($r->{content});
is($r->{json}{data}{name}, 'widgets:twirl', '... renames it');
is(scalar $t->psql(q{SELECT name || ',' || resource || ',' || action
                       FROM permissions WHERE id = :'p1'}, $spin->{id}),
   'widgets:twirl,widgets,twirl', 'psql: name, resource and action agree');
$r = $t->put("$PERMS/$spin->{id}", { name => 'gizmos:spin' }, headers => $sa);
is($r->{json}{data}{resource}, 'gizmos', 'a new name moves it to its resource');
$r = $t->put("$PERMS/$spin->{id}", { name => 'widgets:polish' }, headers => $sa);
error_is($r, 409, 'CONFLICT', 'renamed to a taken name: 409');
is(eval { $r->{json}{error}{details}[0]{field} }, 'name', '... naming name');
$r = $t->put("$PERMS/$spin->{id}", { name => 'gizmos:spin', resource => 'widgets' },
             headers => $sa);
error_is($r, 422, 'VALIDATION_FAILED', 'name and resource disagreeing: 422');
$r = $t->put("$PERMS/$spin->{id}", { name => 'Gizmos' }, headers => $sa);
error_is($r, 422, 'VALIDATION_FAILED', 'a malformed name: 422');
$r = $t->put("$PERMS/$spin->{id}", { name => undef }, headers => $sa);
error_is($r, 422, 'VALIDATION_FAILED', 'a null name: 422');
$r = $t->put("$PERMS/00000000-0000-4000-8000-000000000001", { description => 'x' },
             headers => $sa);
error_is($r, 404, 'NOT_FOUND', 'an unknown permission: 404');
for my $who ([$admin->{h}, 'an org admin'], [$uh, 'a plain user']) {
    $r = $t->put("$PERMS/$spin->{id}", { description => 'mine' }, headers => $who->[0]);
    error_is($r, 403, 'FORBIDDEN', "$who->[1] changing a permission: 403");
}
is(scalar $t->psql(q{SELECT count(*) FROM permissions WHERE description = 'mine'}),
   0, '... nothing written');

###########################################################################
# DELETE /permissions/{id}

# held by a role and by a user
my ($role) = $t->psql(q{SELECT id FROM roles WHERE name = 'manager' LIMIT 1});
$t->psql(q{INSERT INTO role_permissions (role_id, permission_id)
           VALUES (:'p1', :'p2')}, $role, $polish);
$t->psql(q{INSERT INTO user_permissions (user_id, permission_id)
           VALUES (:'p1', :'p2')}, $user->{id}, $polish);

for my $who ([$admin->{h}, 'an org admin'], [$uh, 'a plain user']) {
    $r = $t->delete("$PERMS/$polish", headers => $who->[0]);
    error_is($r, 403, 'FORBIDDEN', "$who->[1] deleting a permission: 403");
}
$r = $t->delete("$PERMS/$polish", headers => $sa);
is($r->{status}, 200, 'the super admin deletes a permission') or diag($r->{content});
is_deeply([@{ $r->{json}{data} }{qw(id name roles users)}],
          [$polish, 'widgets:polish', 1, 1],
          '... the answer says which roles and users held it');
is(scalar $t->psql(q{SELECT (SELECT count(*) FROM permissions WHERE id = :'p1')
                          + (SELECT count(*) FROM role_permissions
                              WHERE permission_id = :'p1')
                          + (SELECT count(*) FROM user_permissions
                              WHERE permission_id = :'p1')}, $polish),
   0, 'psql: gone, and from the role and the user');
is(audit_of('permission.delete', $polish), "$sa_id,success,-",
   'psql: the permission.delete audit row');
error_is($t->delete("$PERMS/$polish", headers => $sa), 404, 'NOT_FOUND',
         '... deleting it again: 404');
error_is($t->get("$PERMS/$polish", headers => $uh), 404, 'NOT_FOUND',
         '... reading it: 404');

$r = $t->delete("$PERMS/$users_read", headers => $sa);
error_is($r, 409, 'CONFLICT', 'deleting a system permission: 409');
like($r->{json}{error}{message}, qr/users:read/, '... naming it');
is(scalar $t->psql(q{SELECT count(*) FROM permissions WHERE id = :'p1'}, $users_read),
   1, 'psql: still there');
is(scalar $t->psql(q{SELECT count(*) FROM audit_logs
                      WHERE action = 'permission.delete'
                        AND resource_id = :'p1'}, $users_read),
   0, '... and no audit row');

for my $id ($wild, $oil, $spin->{id}) {
    is($t->delete("$PERMS/$id", headers => $sa)->{status}, 200,
       'the super admin deletes the others');
}
is(scalar $t->psql(q{SELECT count(*) FROM permissions}), $catalogue,
   'psql: the catalogue is as it was');

###########################################################################
# a change and its audit row commit together: when the audit row cannot be
# written (here an address that is no IP), the change is undone with it

sub fails {
    my ($sql, @bind) = @_;
    return !eval { $t->psql($sql, @bind); 1 } && $@ =~ /inet/;
}

my ($gadget) = $t->psql(q{INSERT INTO permissions (name, resource, action)
                          VALUES ('gadgets:fix', 'gadgets', 'fix')
                          RETURNING id});
my $state = q{SELECT (SELECT string_agg(name || '/' || coalesce(description, '-'),
                                        ',' ORDER BY name)
                        FROM permissions WHERE resource LIKE 'gadgets%')
                     || ',' || (SELECT count(*) FROM audit_logs
                                 WHERE resource = 'permission')};
my ($was) = $t->psql($state);
my %ctx = (p1 => $sa_id, p2 => $gadget);
ok(fails(q{SELECT um_permission_create(:'p1', 'gadgets:make', NULL, 'no-ip',
                                       NULL)}, \%ctx),
   'um_permission_create with an unwritable audit row fails');
ok(fails(q{SELECT um_permission_update(:'p1', :'p2',
                                       '{"name": "gadgets:mend",
                                         "description": "x"}',
                                       'no-ip', NULL)}, \%ctx),
   'um_permission_update fails');
ok(fails(q{SELECT um_permission_delete(:'p1', :'p2', 'no-ip', NULL)}, \%ctx),
   'um_permission_delete fails');
is(scalar $t->psql($state), $was,
   'psql: nothing made, renamed or deleted, no audit row');
$t->psql(q{DELETE FROM permissions WHERE id = :'p1'}, $gadget);

done_testing();
