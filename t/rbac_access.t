#!/usr/bin/perl
# Who may call the roles and permissions endpoints: each role (super admin,
# org admin, manager, user) against each endpoint; another organization's
# role is "not found" on every {id} route; a role's permissions reach the
# access token of the users who hold it; nobody grants more than they
# hold; SQL-injection strings are stored verbatim or refused, never 500.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use UM::JWT qw(jwt_decode);
use UM::Test qw(error_is);

my $t = UM::Test->new(workers => 2);

my $ROLES = '/api/v1/roles';
my $PERMS = '/api/v1/permissions';

my ($org_a) = $t->psql(q{SELECT id FROM organizations WHERE slug = 'default'});
my ($org_b) = $t->psql(q{INSERT INTO organizations
                             (name, slug, allow_self_registration)
                         VALUES ('Beta', 'beta', true) RETURNING id});

sub sign_in {
    my ($u) = @_;
    my $l = $t->login($u->{email}, $u->{password});
    die "login: $l->{content}" unless $l->{status} == 200;
    $u->{access_token} = $l->{json}{data}{access_token};
    $u->{h} = $t->auth_header($u->{access_token});
    (undef, $u->{claims}) = jwt_decode($u->{access_token});
    return $u;
}

sub member {
    my ($type, $slug) = @_;
    my $u = $t->new_user(organization_slug => $slug // 'default');
    $t->psql(q{UPDATE users SET user_type = :'p1' WHERE id = :'p2'},
             $type, $u->{id});
    return sign_in($u);
}

sub perm_id {
    return scalar $t->psql(q{SELECT id FROM permissions WHERE name = :'p1'},
                           $_[0]);
}

sub del_body {
    my ($path, $body, $h) = @_;
    return $t->request('DELETE', $path, { body => $body, headers => $h });
}

sub new_role {
    my ($name, $org, @perms) = @_;
    return scalar $t->psql(q{
        WITH r AS (INSERT INTO roles (organization_id, name)
                   VALUES (:'p1', :'p2') RETURNING id),
             g AS (INSERT INTO role_permissions (role_id, permission_id)
                   SELECT r.id, p.id FROM r, permissions p
                    WHERE p.name = ANY (string_to_array(:'p3', ',')))
        SELECT id FROM r}, $org, $name, join(',', @perms));
}

sub has {
    my ($list, $x) = @_;
    return scalar grep { $_ eq $x } @{ $list // [] };
}

my $l = $t->login($t->admin_email, $t->admin_password);
my $sa = { h => $t->auth_header($l->{json}{data}{access_token}) };
($sa->{id}) = $t->psql(q{SELECT id FROM users WHERE is_super_admin});

my $oa = member('admin');
my $mgr = member('manager');
my $usr = member('user');
my $ob = member('admin', 'beta');
my $mgr_b = member('manager', 'beta');

ok(has($oa->{claims}{roles}, 'org_admin'), 'the org admin token says org_admin');
ok(has($mgr->{claims}{permissions}, 'roles:read')
   && !has($mgr->{claims}{permissions}, 'roles:update'),
   'a manager holds roles:read, not roles:update');
ok(has($usr->{claims}{permissions}, 'permissions:read')
   && !has($usr->{claims}{permissions}, 'roles:read'),
   'a plain user holds permissions:read, not roles:read');

my $reports_read = perm_id('reports:read');
my $tickets_read = perm_id('tickets:read');

###########################################################################
# each role against each endpoint

my @who = ([ 'super admin', $sa ], [ 'org admin', $oa ],
           [ 'manager', $mgr ], [ 'user', $usr ]);

my $target = new_role('Matrix', $org_a);
my $n = 0;

my @matrix = (
    [ 'GET /roles', [200, 200, 200, 403],
      sub { $t->get($ROLES, headers => $_[0]) } ],
    [ 'POST /roles', [201, 201, 403, 403],
      sub { $t->post($ROLES, { name => 'Made ' . ++$n }, headers => $_[0]) } ],
    [ 'GET /roles/{id}', [200, 200, 200, 403],
      sub { $t->get("$ROLES/$target", headers => $_[0]) } ],
    [ 'PUT /roles/{id}', [200, 200, 403, 403],
      sub { $t->put("$ROLES/$target", { description => 'by ' . ++$n },
                    headers => $_[0]) } ],
    [ 'POST /roles/{id}/permissions', [200, 200, 403, 403],
      sub { $t->post("$ROLES/$target/permissions",
                     { permission_ids => [$tickets_read] }, headers => $_[0]) } ],
    [ 'DELETE /roles/{id}/permissions', [200, 200, 403, 403],
      sub { del_body("$ROLES/$target/permissions",
                     { permission_ids => [$tickets_read] }, $_[0]) } ],
    [ 'DELETE /roles/{id}', [200, 200, 403, 403],
      sub { $t->delete("$ROLES/" . new_role('Doomed ' . ++$n, $org_a),
                       headers => $_[0]) } ],
    [ 'GET /permissions', [200, 200, 200, 200],
      sub { $t->get($PERMS, headers => $_[0]) } ],
    [ 'GET /permissions/grouped', [200, 200, 200, 200],
      sub { $t->get("$PERMS/grouped", headers => $_[0]) } ],
    [ 'GET /permissions/{id}', [200, 200, 200, 200],
      sub { $t->get("$PERMS/$reports_read", headers => $_[0]) } ],
    [ 'POST /permissions', [201, 403, 403, 403],
      sub { $t->post($PERMS, { name => 'matrix:p' . ++$n }, headers => $_[0]) } ],
    [ 'PUT /permissions/{id}', [200, 403, 403, 403],
      sub { $t->put("$PERMS/$reports_read", { description => 'View reports' },
                    headers => $_[0]) } ],
    [ 'DELETE /permissions/{id}', [200, 403, 403, 403],
      sub {
          my ($id) = $t->psql(q{INSERT INTO permissions (name, resource, action)
                                VALUES ('matrix:d' || :'p1', 'matrix',
                                        'd' || :'p1') RETURNING id}, ++$n);
          $t->delete("$PERMS/$id", headers => $_[0]);
      } ],
);

for my $m (@matrix) {
    my ($what, $want, $call) = @$m;
    for my $i (0 .. $#who) {
        my $r = $call->($who[$i][1]{h});
        if ($want->[$i] == 403) {
            error_is($r, 403, 'FORBIDDEN', "$what as $who[$i][0]: 403");
        } else {
            is($r->{status}, $want->[$i], "$what as $who[$i][0]: $want->[$i]")
                or diag($r->{content});
        }
    }
    my ($method, $path) = split ' ', $what;
    $path =~ s/\{id\}/$target/;
    my $r = $t->request($method, "/api/v1$path",
                        { $method =~ /^(POST|PUT)$/ ? (body => {}) : () });
    error_is($r, 401, 'UNAUTHORIZED', "$what without a token: 401");
}

is(scalar $t->psql(q{SELECT count(*) FROM audit_logs
                      WHERE actor_id IN (:'p1', :'p2')
                        AND resource IN ('role', 'permission')},
                   $mgr->{id}, $usr->{id}),
   0, 'psql: none of the refused calls changed anything');
is(scalar $t->psql(q{SELECT count(*) FROM roles
                      WHERE name LIKE 'Made %' AND organization_id = :'p1'},
                   $org_a), 2, 'psql: two roles were made, by the admins');

my $r = $t->request('PATCH', "$ROLES/$target",
                    { body => {}, headers => $oa->{h} });
error_is($r, 405, 'METHOD_NOT_ALLOWED', 'PATCH /roles/{id}: 405');
like($r->{headers}{allow} // '', qr/GET.*PUT.*DELETE/, '... Allow lists the others');

###########################################################################
# another organization's role is not found, on every {id} route

my $role_a = new_role('Alpha Only', $org_a, 'tickets:read');
my ($user_a) = $t->psql(q{SELECT id FROM roles WHERE organization_id = :'p1'
                            AND name = 'user'}, $org_a);
my $role_b = new_role('Beta Only', $org_b, 'tickets:read');

my @routes = (
    [ 'GET', '', undef ],
    [ 'PUT', '', { description => 'hijacked', name => 'Hijacked' } ],
    [ 'DELETE', '', undef ],
    [ 'POST', '/permissions', { permission_ids => [$reports_read] } ],
    [ 'DELETE', '/permissions', { permission_ids => [$tickets_read] } ],
);

my $snapshot = q{SELECT r.name || ',' || coalesce(r.description, '-') || ','
                        || r.updated_at || ',' || (r.deleted_at IS NULL) || ','
                        || (SELECT string_agg(p.name, ' ' ORDER BY p.name)
                              FROM role_permissions rp
                              JOIN permissions p ON p.id = rp.permission_id
                             WHERE rp.role_id = r.id)
                   FROM roles r WHERE r.id = :'p1'};

for my $case ([ $ob, 'an admin of B', $role_a, 'a role of A' ],
              [ $ob, 'an admin of B', $user_a, 'the built-in user role of A' ],
              [ $oa, 'an admin of A', $role_b, 'a role of B' ],
              [ { h => { %{ $sa->{h} }, 'X-Tenant-ID' => $org_b } },
                'the super admin narrowed to B', $role_a, 'a role of A' ]) {
    my ($caller, $cname, $id, $rname) = @$case;
    my ($before) = $t->psql($snapshot, $id);
    for my $route (@routes) {
        my ($method, $tail, $body) = @$route;
        $r = $t->request($method, "$ROLES/$id$tail",
                         { headers => $caller->{h},
                           defined $body ? (body => $body) : () });
        error_is($r, 404, 'NOT_FOUND', "$method /roles/{id}$tail, $cname, "
                                       . "$rname: 404");
    }
    is(scalar $t->psql($snapshot, $id), $before, "psql: $rname is untouched");
}
error_is($t->get("$ROLES/$role_b", headers => $mgr->{h}), 404, 'NOT_FOUND',
         'a manager of A reading a role of B: 404');
error_is($t->get("$ROLES/$role_a", headers => $mgr_b->{h}), 404, 'NOT_FOUND',
         'a manager of B reading a role of A: 404');
is(scalar $t->psql(q{SELECT count(*) FROM audit_logs
                      WHERE resource = 'role' AND resource_id IN (:'p1', :'p2',
                                                                  :'p3')},
                   $role_a, $role_b, $user_a), 0,
   'psql: no audit row for any of them');

$r = $t->get("$ROLES/$role_b", headers => $sa->{h});
is($r->{status}, 200, 'the super admin reads a role of B');
$r = $t->get("$ROLES/$role_b", headers => { %{ $sa->{h} }, 'X-Tenant-ID' => $org_b });
is($r->{status}, 200, '... also narrowed to B');

$r = $t->get("$ROLES?page_size=100", headers => $ob->{h});
ok(!(grep { $_->{organization_id} ne $org_b } @{ $r->{json}{data}{roles} }),
   'an admin of B lists only the roles of B');
is($r->{json}{data}{total},
   scalar $t->psql(q{SELECT count(*) FROM roles WHERE organization_id = :'p1'
                      AND deleted_at IS NULL}, $org_b), '... all of them (psql)');
$r = $t->get("$ROLES?search=Alpha", headers => $ob->{h});
is($r->{json}{data}{total}, 0, '... a search does not reach into A');
$r = $t->get($ROLES, headers => { %{ $ob->{h} }, 'X-Tenant-ID' => $org_a });
error_is($r, 403, 'FORBIDDEN', '... and X-Tenant-ID of A is refused: 403');

###########################################################################
# a role's permissions reach the token of the users who hold it

my $readers = $t->post($ROLES, { name => 'Role Readers',
                                 permission_ids => [perm_id('roles:read')] },
                       headers => $oa->{h})->{json}{data}{id};
ok($readers, 'the org admin makes a role with roles:read');
error_is($t->get($ROLES, headers => $usr->{h}), 403, 'FORBIDDEN',
         'a plain user may not list roles');
$t->psql(q{INSERT INTO user_roles (user_id, role_id, assigned_by)
           VALUES (:'p1', :'p2', :'p3')}, $usr->{id}, $readers, $oa->{id});
error_is($t->get($ROLES, headers => $usr->{h}), 403, 'FORBIDDEN',
         '... assigned the role, the old token still may not');
sign_in($usr);
ok(has($usr->{claims}{permissions}, 'roles:read'),
   '... the next token carries roles:read') or diag(explain $usr->{claims});
ok(has($usr->{claims}{roles}, 'Role Readers'), '... and the role name');
$r = $t->get($ROLES, headers => $usr->{h});
is($r->{status}, 200, '... and lists roles') or diag($r->{content});
is($t->get("$ROLES/$readers", headers => $usr->{h})->{status}, 200,
   '... and reads one');
error_is($t->post($ROLES, { name => 'Nope' }, headers => $usr->{h}), 403,
         'FORBIDDEN', '... but may not make one');
$r = $t->get("$ROLES/$readers", headers => $oa->{h});
is($r->{json}{data}{user_count}, 1, '... the role counts its user');

del_body("$ROLES/$readers/permissions",
         { permission_ids => [perm_id('roles:read')] }, $oa->{h});
sign_in($usr);
ok(!has($usr->{claims}{permissions}, 'roles:read'),
   'the permission taken from the role: the next token lacks it');
error_is($t->get($ROLES, headers => $usr->{h}), 403, 'FORBIDDEN',
         '... and the list is refused again');

$t->post("$ROLES/$readers/permissions",
         { permission_ids => [perm_id('roles:read')] }, headers => $oa->{h});
$t->put("$ROLES/$readers", { is_active => JSON::PP::false }, headers => $oa->{h});
sign_in($usr);
ok(!has($usr->{claims}{permissions}, 'roles:read')
   && !has($usr->{claims}{roles}, 'Role Readers'),
   'a deactivated role gives nothing');
$t->put("$ROLES/$readers", { is_active => JSON::PP::true }, headers => $oa->{h});
sign_in($usr);
ok(has($usr->{claims}{permissions}, 'roles:read'), '... active again, it does');
$t->delete("$ROLES/$readers", headers => $oa->{h});
sign_in($usr);
ok(!has($usr->{claims}{permissions}, 'roles:read')
   && !has($usr->{claims}{roles}, 'Role Readers'),
   'a deleted role gives nothing');
is(scalar $t->psql(q{SELECT count(*) FROM user_roles WHERE user_id = :'p1'},
                   $usr->{id}), 0, '... and is no longer assigned (psql)');

###########################################################################
# nobody grants more than they hold

my $editors = new_role('Role Editors', $org_a, 'roles:update');
$t->psql(q{INSERT INTO user_roles (user_id, role_id) VALUES (:'p1', :'p2')},
         $mgr->{id}, $editors);
sign_in($mgr);
ok(has($mgr->{claims}{permissions}, 'roles:update'),
   'a manager given roles:update through a role');
my $MP = "$ROLES/$target/permissions";
$r = $t->post($MP, { permission_ids => [$reports_read] }, headers => $mgr->{h});
is($r->{status}, 200, '... grants a permission they hold (reports:read)')
    or diag($r->{content});
$r = $t->post($MP, { permission_ids => [perm_id('roles:update')] },
              headers => $mgr->{h});
is($r->{status}, 200, '... and one they hold through the role');
$r = $t->post($MP, { permission_ids => [$reports_read, perm_id('users:delete')] },
              headers => $mgr->{h});
error_is($r, 403, 'FORBIDDEN', '... but not users:delete, which they lack');
like($r->{json}{error}{message} // '', qr/users:delete/, '... named in the message');
$r = $t->post($MP, { permission_ids => [perm_id('system:admin')] },
              headers => $mgr->{h});
error_is($r, 403, 'FORBIDDEN', '... nor system:admin');
$r = $t->post($MP, { permission_ids => [perm_id('system:admin')] },
              headers => $oa->{h});
error_is($r, 403, 'FORBIDDEN', 'an org admin may not grant system:admin either');
is(scalar $t->psql(q{SELECT string_agg(p.name, ',' ORDER BY p.name)
                       FROM role_permissions rp
                       JOIN permissions p ON p.id = rp.permission_id
                      WHERE rp.role_id = :'p1'}, $target),
   'reports:read,roles:update', 'psql: only the allowed grants were made');
$r = del_body($MP, { permission_ids => [perm_id('roles:update')] }, $mgr->{h});
is($r->{status}, 200, 'the manager takes a permission back');
$r = $t->put("$ROLES/$target", { name => 'Renamed by manager' }, headers => $mgr->{h});
is($r->{status}, 200, '... and renames the role (roles:update)');
error_is($t->delete("$ROLES/$target", headers => $mgr->{h}), 403, 'FORBIDDEN',
         '... but may not delete it (no roles:delete)');

# the role names the module gives meaning to are not for made roles: an
# admin who could name a role super_admin and hold it would be one
for my $name ('super_admin', 'SUPER_ADMIN', 'org_admin', 'x,super_admin') {
    $r = $t->post($ROLES, { name => $name }, headers => $oa->{h});
    error_is($r, 422, 'VALIDATION_FAILED', "an org admin making a role $name: 422");
}
$r = $t->put("$ROLES/$target", { name => 'super_admin' }, headers => $oa->{h});
error_is($r, 422, 'VALIDATION_FAILED', '... or renaming one to super_admin: 422');
is(scalar $t->psql(q{SELECT count(*) FROM roles
                      WHERE lower(name) LIKE '%super_admin%'}), 0,
   'psql: no role is called super_admin');
my $err = eval { $t->psql(q{INSERT INTO roles (organization_id, name)
                            VALUES (:'p1', 'Super_Admin')}, $org_a); 1 }
          ? '' : $@;
like($err, qr/roles_name_reserved_check/,
     'psql: the table refuses such a name too');

###########################################################################
# SQL-injection strings

my @evil = (q{' OR '1'='1}, q{'; DROP TABLE roles; --}, q{%' --},
            q{Robert'); DELETE FROM role_permissions;--},
            q{\\'; SELECT pg_sleep(5); --}, q{$1::uuid}, qq{line\nbreak});

sub qs {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

for my $s (@evil) {
    my $label = $s =~ s/\n/\\n/gr;
    $r = $t->get("$ROLES?search=" . qs($s), headers => $oa->{h});
    is($r->{status}, 200, "GET /roles?search=$label: 200") or diag($r->{content});
    is($r->{json}{data}{total}, 0, '... finds nothing');
    for my $q (qw(search resource action)) {
        $r = $t->get("$PERMS?$q=" . qs($s), headers => $usr->{h});
        ok($r->{status} == 200 && $r->{json}{data}{total} == 0,
           "GET /permissions?$q=$label: 200, nothing") or diag($r->{content});
    }
    $r = $t->get("$PERMS/grouped?search=" . qs($s), headers => $usr->{h});
    ok($r->{status} == 200 && !@{ $r->{json}{data}{groups} },
       "GET /permissions/grouped?search=$label: 200, no groups");
    $r = $t->get("$ROLES?is_active=" . qs($s), headers => $oa->{h});
    error_is($r, 422, 'VALIDATION_FAILED', "GET /roles?is_active=$label: 422");
    $r = $t->get("$ROLES?page=" . qs($s), headers => $oa->{h});
    error_is($r, 400, 'BAD_REQUEST', "GET /roles?page=$label: 400");
    $r = $t->get("$ROLES/" . qs($s), headers => $oa->{h});
    ok($r->{status} == 400 || $r->{status} == 404,
       "GET /roles/$label: 400 or 404") or diag($r->{content});
    $r = $t->post($ROLES, { name => 'x', permission_ids => [$s] },
                  headers => $oa->{h});
    error_is($r, 422, 'VALIDATION_FAILED', "permission_ids [$label]: 422");
}

my @made;
for my $i (0 .. $#evil) {
    my $name = substr(($evil[$i] =~ tr/\n/ /r) . " #$i", 0, 100);
    $r = $t->post($ROLES, { name => $name, description => $evil[$i] },
                  headers => $oa->{h});
    is($r->{status}, 201, "a role named " . ($name =~ s/\n/\\n/gr) . ": 201")
        or diag($r->{content});
    is($r->{json}{data}{name}, $name, '... answered verbatim');
    push @made, [$r->{json}{data}{id}, $name];
}
for my $m (@made) {
    is(scalar $t->psql(q{SELECT name = :'p2' AND description IS NOT NULL
                           FROM roles WHERE id = :'p1'}, @$m),
       't', 'psql: stored verbatim: ' . ($m->[1] =~ s/\n/\\n/gr));
}
$r = $t->put("$ROLES/$made[0][0]", { name => $evil[1], description => $evil[2] },
             headers => $oa->{h});
is($r->{status}, 200, 'PUT with SQL-injection strings: 200') or diag($r->{content});
is(scalar $t->psql(q{SELECT name || '|' || description FROM roles
                      WHERE id = :'p1'}, $made[0][0]),
   "$evil[1]|$evil[2]", 'psql: stored verbatim');
$r = $t->get($ROLES, headers => { %{ $sa->{h} }, 'X-Tenant-ID' => $evil[0] });
error_is($r, 400, 'BAD_REQUEST', 'an X-Tenant-ID that is SQL: 400');
is(scalar $t->psql(q{SELECT count(*) > 0 FROM roles}), 't',
   'psql: the roles table is still there');
is(scalar $t->psql(q{SELECT count(*) > 0 FROM role_permissions}), 't',
   '... and the grants');

done_testing();
