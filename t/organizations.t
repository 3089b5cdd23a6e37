#!/usr/bin/perl
# Organizations (seed 002): create with built-in roles, list, read, update
# (the operator's fields and the organization admin's), soft delete, the
# caller's own organization, and the audit row of every change.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use UM::Test qw(error_is is_rfc3339_utc is_uuid);

my $t = UM::Test->new(workers => 2);

my $ORGS = '/api/v1/organizations';
my $TRUE = JSON::PP::true;
my $FALSE = JSON::PP::false;

my $l = $t->login($t->admin_email, $t->admin_password);
die "admin login: $l->{content}\n" unless $l->{status} == 200;
my $admin = $l->{json}{data}{access_token};
my $admin_id = $l->{json}{data}{user}{id};
my $SA = $t->auth_header($admin);

my ($default_org) = $t->psql(q{SELECT id FROM organizations
                                WHERE slug = 'default'});

sub data { my ($r) = @_; return eval { $r->{json}{data} } // {} }

sub has_detail {
    my ($r, $field, $rule, $name) = @_;
    my $d = eval { $r->{json}{error}{details} };
    my @hit = grep {
        ref $_ eq 'HASH' && ($_->{field} // '') eq $field
            && (!defined $rule || ($_->{rule} // '') eq $rule)
    } (ref $d eq 'ARRAY' ? @$d : ());
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return ok(@hit, $name) || diag('got: ' . ($r->{content} // ''));
}

# the newest audit row of an action on a resource id: "actor|org|status"
sub audit_of {
    my ($action, $id) = @_;
    return scalar $t->psql(
        q{SELECT actor_id || '|' || organization_id || '|' || status
            FROM audit_logs WHERE action = :'p1' AND resource_id = :'p2'
           ORDER BY created_at DESC LIMIT 1}, $action, $id);
}

sub count_orgs {
    return scalar $t->psql(q{SELECT count(*) FROM organizations});
}

# a member of an organization (by slug) with a user_type, signed in
sub member {
    my ($slug, $type) = @_;
    my $u = $t->new_user(organization_slug => $slug);
    if ($type ne 'user') {
        $t->psql(q{UPDATE users SET user_type = :'p2' WHERE id = :'p1'},
                 $u->{id}, $type);
        my $r = $t->login($u->{email}, $u->{password});
        die "login: $r->{content}\n" unless $r->{status} == 200;
        $u->{access_token} = $r->{json}{data}{access_token};
        $u->{refresh_token} = $r->{json}{data}{refresh_token};
    }
    $u->{h} = $t->auth_header($u->{access_token});
    return $u;
}

###########################################################################
# POST /organizations

my $r = $t->post($ORGS, { name => 'Acme Corp', slug => 'acme',
                          description => 'Makers of everything',
                          max_users => 100,
                          allow_self_registration => $TRUE,
                          settings => { theme => 'dark', seats => [1, 2] } },
                 headers => $SA);
is($r->{status}, 201, 'create: 201') or diag($r->{content});
my $acme = data($r);
ok(is_uuid($acme->{id}), 'an id');
is($acme->{name}, 'Acme Corp', 'name');
is($acme->{slug}, 'acme', 'slug');
is($acme->{description}, 'Makers of everything', 'description');
is($acme->{max_users}, 100, 'max_users');
ok($acme->{is_active}, 'is_active defaults to true');
ok($acme->{allow_self_registration}, 'allow_self_registration');
is_deeply($acme->{settings}, { theme => 'dark', seats => [1, 2] },
          'settings, as sent');
is($acme->{user_count}, 0, 'user_count 0');
is($acme->{created_by}, $admin_id, 'created_by the super admin');
ok(is_rfc3339_utc($acme->{created_at}), 'created_at in RFC 3339 UTC');
is($acme->{deleted_at}, undef, 'deleted_at null');

is(scalar $t->psql(q{SELECT name || '|' || slug || '|' || max_users || '|'
                            || settings::text
                       FROM organizations WHERE id = :'p1'}, $acme->{id}),
   'Acme Corp|acme|100|{"seats": [1, 2], "theme": "dark"}',
   'psql: the row as sent');
is(scalar $t->psql(q{SELECT string_agg(name::text, ',' ORDER BY name)
                       FROM roles WHERE organization_id = :'p1'
                        AND is_builtin}, $acme->{id}),
   'manager,org_admin,user', 'psql: the built-in roles were made with it');
is(audit_of('organization.create', $acme->{id}),
   "$admin_id|$acme->{id}|success", 'psql: audit row organization.create');

$r = $t->post($ORGS, { name => 'Bare', slug => 'bare' }, headers => $SA);
is($r->{status}, 201, 'create with name and slug only: 201')
    or diag($r->{content});
my $bare = data($r);
ok(!$bare->{allow_self_registration}, '... allow_self_registration false');
is_deeply($bare->{settings}, {}, '... settings {}');
is($bare->{max_users}, undef, '... max_users null (no limit)');
is($bare->{description}, undef, '... description null');

# the seed's own example
$r = $t->post($ORGS, { name => 'Test Organization', slug => 'test-org',
                       description => 'A test organization',
                       max_users => 100 }, headers => $SA);
is($r->{status}, 201, "seed 002's example: 201") or diag($r->{content});

# conflicts and bad input write nothing
my $before = count_orgs();
$r = $t->post($ORGS, { name => 'Acme again', slug => 'acme' }, headers => $SA);
error_is($r, 409, 'CONFLICT', 'a taken slug: 409');
has_detail($r, 'slug', 'unique', '... naming the field slug');

my @bad = (
    [ { slug => 'x1' }, 'name', 'required', 'no name' ],
    [ { name => 'X' }, 'slug', 'required', 'no slug' ],
    [ { name => 'X', slug => 'Upper' }, 'slug', 'format',
      'an upper-case slug' ],
    [ { name => 'X', slug => '-lead' }, 'slug', 'format',
      'a slug starting with -' ],
    [ { name => 'X', slug => 'a' x 51 }, 'slug', 'format', 'a 51-byte slug' ],
    [ { name => 'X', slug => 'has space' }, 'slug', 'format',
      'a slug with a space' ],
    [ { name => '', slug => 'x2' }, 'name', undef, 'an empty name' ],
    [ { name => '   ', slug => 'x2' }, 'name', undef, 'a blank name' ],
    [ { name => 'n' x 201, slug => 'x2' }, 'name', 'max_length',
      'a 201-character name' ],
    [ { name => 'X', slug => 'x2', max_users => 0 }, 'max_users', undef,
      'max_users 0' ],
    [ { name => 'X', slug => 'x2', max_users => -5 }, 'max_users', undef,
      'max_users -5' ],
    [ { name => 'X', slug => 'x2', max_users => '10' }, 'max_users', 'type',
      'max_users as a string' ],
    [ { name => 'X', slug => 'x2', max_users => 1.5 }, 'max_users', 'type',
      'max_users 1.5' ],
    [ { name => 'X', slug => 'x2', is_active => 'yes' }, 'is_active', 'type',
      'is_active "yes"' ],
    [ { name => 'X', slug => 'x2', settings => [1] }, 'settings', 'type',
      'settings an array' ],
    [ { name => 'X', slug => 'x2', owner => 'me' }, 'owner', 'unknown',
      'an unknown field' ],
    [ { name => 'X', slug => 'x2', description => 'd' x 1001 },
      'description', 'max_length', 'a 1001-character description' ],
);
for my $c (@bad) {
    my ($body, $field, $rule, $what) = @$c;
    $r = $t->post($ORGS, $body, headers => $SA);
    error_is($r, 422, 'VALIDATION_FAILED', "$what: 422");
    has_detail($r, $field, $rule, "... naming $field");
}
$r = $t->request('POST', $ORGS, { headers => { %$SA,
                                  'content-type' => 'application/json' },
                                  body => '{"name": "X", "slug": ' });
error_is($r, 400, 'BAD_REQUEST', 'malformed JSON: 400');
is(count_orgs(), $before, 'psql: none of them wrote an organization');

# a change and its audit row commit together, or neither does
$t->psql(q{CREATE FUNCTION test_audit_refuses() RETURNS trigger
           LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'the audit trail is full'; END $$;
           CREATE TRIGGER test_audit_refuses BEFORE INSERT ON audit_logs
               FOR EACH ROW EXECUTE FUNCTION test_audit_refuses()});
error_is($t->post($ORGS, { name => 'Unaudited', slug => 'unaudited' },
                  headers => $SA), 500, 'INTERNAL_ERROR',
         'the audit row cannot be written: create fails');
is(scalar $t->psql(q{SELECT count(*) FROM organizations o
                      FULL JOIN roles r ON r.organization_id = o.id
                     WHERE o.slug = 'unaudited'}), 0,
   'psql: ... and neither the organization nor its roles were made');
error_is($t->put("$ORGS/$bare->{id}", { name => 'Unaudited' },
                 headers => $SA), 500, 'INTERNAL_ERROR', '... update fails');
error_is($t->delete("$ORGS/$bare->{id}", headers => $SA), 500,
         'INTERNAL_ERROR', '... delete fails');
is(scalar $t->psql(q{SELECT name || '|' || (deleted_at IS NULL)
                       FROM organizations WHERE id = :'p1'}, $bare->{id}),
   'Bare|true', 'psql: ... and the organization is as it was');
$t->psql(q{DROP TRIGGER test_audit_refuses ON audit_logs;
           DROP FUNCTION test_audit_refuses()});

###########################################################################
# GET /organizations

# members to count
my $acme_admin = member('acme', 'admin');
my $acme_manager = member('acme', 'manager');
my $acme_user = member('acme', 'user');

$r = $t->get("$ORGS?page=1&size=2", headers => $SA);
is($r->{status}, 200, 'list: 200') or diag($r->{content});
my $page = data($r);
is(ref $page->{organizations}, 'ARRAY', 'under "organizations"');
is(scalar @{ $page->{organizations} }, 2, 'size=2: two of them');
is($page->{total}, 4, 'total 4 (default, acme, bare, test-org)');
is($page->{page_size}, 2, 'page_size 2');
is($page->{pages}, 2, 'pages 2');
ok($page->{has_next} && !$page->{has_prev}, 'has_next, not has_prev');

$r = $t->get("$ORGS?page=2&page_size=2", headers => $SA);
my @second = map { $_->{slug} } @{ data($r)->{organizations} // [] };
$r = $t->get("$ORGS?limit=2&offset=0", headers => $SA);
my @first = map { $_->{slug} } @{ data($r)->{organizations} // [] };
is(scalar(@first) + scalar(@second), 4, 'two pages hold all four');
my %seen = map { $_ => 1 } @first, @second;
is(scalar keys %seen, 4, '... each once');
is_deeply([ @first ], [ 'test-org', 'bare' ], 'newest first');

$r = $t->get("$ORGS?search=ACM", headers => $SA);
is_deeply([ map { $_->{slug} } @{ data($r)->{organizations} } ], ['acme'],
          'search over the name, any case');
is(data($r)->{organizations}[0]{user_count}, 3, '... with its user_count 3');
$r = $t->get("$ORGS?search=test-o", headers => $SA);
is_deeply([ map { $_->{slug} } @{ data($r)->{organizations} } ], ['test-org'],
          'search over the slug');
$r = $t->get("$ORGS?search=%25", headers => $SA);
is(data($r)->{total}, 0, "search '%' is a character, not a wildcard");

$t->psql(q{UPDATE organizations SET is_active = false WHERE slug = 'bare'});
$r = $t->get("$ORGS?is_active=false", headers => $SA);
is_deeply([ map { $_->{slug} } @{ data($r)->{organizations} } ], ['bare'],
          'is_active=false');
$r = $t->get("$ORGS?is_active=true", headers => $SA);
is(data($r)->{total}, 3, 'is_active=true: the other three');
error_is($t->get("$ORGS?is_active=maybe", headers => $SA), 400,
         'BAD_REQUEST', 'is_active=maybe: 400');
error_is($t->get("$ORGS?size=101", headers => $SA), 400, 'BAD_REQUEST',
         'size=101: 400');

# X-Tenant-ID narrows a super admin's list to that tenant
$r = $t->get($ORGS, headers => { %$SA, 'X-Tenant-ID' => $acme->{id} });
is_deeply([ map { $_->{slug} } @{ data($r)->{organizations} } ], ['acme'],
          'a super admin with X-Tenant-ID lists that organization only');

###########################################################################
# GET /organizations/{id}

$r = $t->get("$ORGS/$acme->{id}", headers => $SA);
is($r->{status}, 200, 'get: 200') or diag($r->{content});
is(data($r)->{slug}, 'acme', '... the organization');
is(data($r)->{user_count}, 3, '... user_count 3');

$r = $t->get("$ORGS/$acme->{id}", headers => $acme_user->{h});
is($r->{status}, 200, 'a member reads their own organization: 200');
error_is($t->get("$ORGS/$default_org", headers => $acme_user->{h}), 404,
         'NOT_FOUND', 'a member reading another organization: 404');
error_is($t->get("$ORGS/00000000-0000-4000-8000-000000000000",
                 headers => $SA), 404, 'NOT_FOUND', 'an unknown id: 404');
error_is($t->get("$ORGS/not-a-uuid", headers => $SA), 400, 'BAD_REQUEST',
         'an id that is not a UUID: 400');

###########################################################################
# GET /organizations/my/info

$t->psql(q{INSERT INTO locations (organization_id, name, code)
           VALUES (:'p1', 'HQ', 'HQ')}, $acme->{id});
$r = $t->get("$ORGS/my/info", headers => $acme_user->{h});
is($r->{status}, 200, 'my/info: 200') or diag($r->{content});
is(data($r)->{id}, $acme->{id}, '... the caller\'s organization');
is(data($r)->{user_count}, 3, '... user_count 3');
is(data($r)->{role_count}, 3, '... role_count 3 (the built-in roles)');
is(data($r)->{location_count}, 1, '... location_count 1');
$r = $t->get("$ORGS/my/info", headers => $SA);
is(data($r)->{slug}, 'default', 'the super admin\'s own: default');
$r = $t->get("$ORGS/my/info",
            headers => { %$SA, 'X-Tenant-ID' => $acme->{id} });
is(data($r)->{slug}, 'acme', '... or the one X-Tenant-ID names');

###########################################################################
# PUT /organizations/{id}

$r = $t->put("$ORGS/$acme->{id}", { name => 'Acme Inc', max_users => 50 },
             headers => $SA);
is($r->{status}, 200, 'update: 200') or diag($r->{content});
is(data($r)->{organization}{name}, 'Acme Inc', 'the new name');
is(data($r)->{organization}{max_users}, 50, 'the new max_users');
is(data($r)->{organization}{description}, 'Makers of everything',
   'fields not sent keep their value');
is_deeply(data($r)->{changes},
          { name => { old => 'Acme Corp', new => 'Acme Inc' },
            max_users => { old => 100, new => 50 } },
          'changes lists old and new');
is(scalar $t->psql(q{SELECT changes->'name'->>'new' FROM audit_logs
                      WHERE action = 'organization.update'
                        AND resource_id = :'p1'
                      ORDER BY created_at DESC LIMIT 1}, $acme->{id}),
   'Acme Inc', 'psql: the audit row holds the changes');

$r = $t->put("$ORGS/$acme->{id}", { max_users => 2 }, headers => $SA);
error_is($r, 409, 'CONFLICT', 'max_users below the 3 users: 409');
is(scalar $t->psql(q{SELECT max_users FROM organizations WHERE id = :'p1'},
                   $acme->{id}), 50, 'psql: max_users unchanged');
$r = $t->put("$ORGS/$acme->{id}", { max_users => 3 }, headers => $SA);
is($r->{status}, 200, 'max_users equal to the user count: 200');
$r = $t->register(email => $t->unique_email, password => 'Tq7-long-pass-zW1',
                  organization_slug => 'acme');
error_is($r, 409, 'CONFLICT', '... and a fourth user cannot register');
$r = $t->put("$ORGS/$acme->{id}", { max_users => undef }, headers => $SA);
is($r->{status}, 200, 'max_users null: no limit');
is(data($r)->{organization}{max_users}, undef, '... null');

$r = $t->put("$ORGS/$acme->{id}", { slug => 'test-org' }, headers => $SA);
error_is($r, 409, 'CONFLICT', 'a slug another organization has: 409');
has_detail($r, 'slug', 'unique', '... naming slug');
error_is($t->put("$ORGS/$acme->{id}", { settings => undef }, headers => $SA),
         422, 'VALIDATION_FAILED', 'settings null: 422');
error_is($t->put("$ORGS/$acme->{id}", { name => ' ' }, headers => $SA),
         422, 'VALIDATION_FAILED', 'a blank name: 422');
$r = $t->put("$ORGS/$acme->{id}", { settings => { theme => 'light' } },
             headers => $SA);
is_deeply(data($r)->{organization}{settings}, { theme => 'light' },
          'settings are replaced as a whole');
$r = $t->put("$ORGS/$acme->{id}", {}, headers => $SA);
is($r->{status}, 200, 'an empty update: 200');
is_deeply(data($r)->{changes}, {}, '... changes {}');
error_is($t->put("$ORGS/00000000-0000-4000-8000-000000000000",
                 { name => 'X' }, headers => $SA), 404, 'NOT_FOUND',
         'update of an unknown id: 404');

# the organization admin: description, settings, allow_self_registration
$r = $t->put("$ORGS/$acme->{id}",
             { description => 'Now with rockets',
               allow_self_registration => $FALSE,
               settings => { theme => 'blue' } },
             headers => $acme_admin->{h});
is($r->{status}, 200, 'the org admin updates description, settings and '
   . 'allow_self_registration: 200') or diag($r->{content});
is(data($r)->{organization}{description}, 'Now with rockets',
   '... the description');
ok(!data($r)->{organization}{allow_self_registration},
   '... allow_self_registration false');
is(audit_of('organization.update', $acme->{id}),
   "$acme_admin->{id}|$acme->{id}|success",
   'psql: the audit row names the org admin');
for my $f ([ name => 'Mine' ], [ slug => 'mine' ], [ max_users => 1000 ],
           [ is_active => $FALSE ]) {
    $r = $t->put("$ORGS/$acme->{id}", { $f->[0] => $f->[1] },
                 headers => $acme_admin->{h});
    error_is($r, 403, 'FORBIDDEN', "the org admin changing $f->[0]: 403");
    has_detail($r, $f->[0], 'forbidden', "... naming $f->[0]");
}
error_is($t->put("$ORGS/$default_org", { description => 'x' },
                 headers => $acme_admin->{h}), 404, 'NOT_FOUND',
         'the org admin updating another organization: 404');
error_is($t->put("$ORGS/$acme->{id}", { description => 'x' },
                 headers => $acme_manager->{h}), 403, 'FORBIDDEN',
         'a manager updating the organization: 403');
error_is($t->put("$ORGS/$acme->{id}", { description => 'x' },
                 headers => $acme_user->{h}), 403, 'FORBIDDEN',
         'a user updating the organization: 403');

# the default organization keeps its slug and stays active
error_is($t->put("$ORGS/$default_org", { slug => 'other' }, headers => $SA),
         409, 'CONFLICT', 'renaming the default slug: 409');
error_is($t->put("$ORGS/$default_org", { is_active => $FALSE },
                 headers => $SA), 409, 'CONFLICT',
         'deactivating the default organization: 409');
is($t->put("$ORGS/$default_org", { description => 'The first' },
           headers => $SA)->{status}, 200,
   '... its description may change');

###########################################################################
# DELETE /organizations/{id}

error_is($t->delete("$ORGS/$default_org", headers => $SA), 409, 'CONFLICT',
         'deleting the default organization: 409');
is(scalar $t->psql(q{SELECT deleted_at IS NULL FROM organizations
                      WHERE id = :'p1'}, $default_org), 't',
   'psql: it is still there');

my $live = $t->psql(q{SELECT count(*) FROM sessions
                       WHERE organization_id = :'p1' AND revoked_at IS NULL},
                    $acme->{id});
cmp_ok($live, '>=', 3, 'its members have live sessions');
$r = $t->delete("$ORGS/$acme->{id}", headers => $SA);
is($r->{status}, 200, 'delete: 200') or diag($r->{content});
ok(is_rfc3339_utc(data($r)->{deleted_at}), '... deleted_at set');
ok(!data($r)->{is_active}, '... is_active false');
is(scalar $t->psql(q{SELECT (deleted_at IS NOT NULL) || '|' || is_active
                       FROM organizations WHERE id = :'p1'}, $acme->{id}),
   'true|false', 'psql: soft deleted (the row stays)');
is(scalar $t->psql(q{SELECT count(*) FROM sessions s JOIN users u
                       ON u.id = s.user_id
                      WHERE u.organization_id = :'p1'
                        AND s.revoked_at IS NULL}, $acme->{id}),
   0, 'psql: every session of its users ended');
is(audit_of('organization.delete', $acme->{id}),
   "$admin_id|$acme->{id}|success", 'psql: audit row organization.delete');
is(scalar $t->psql(q{SELECT metadata->>'sessions_ended' FROM audit_logs
                      WHERE action = 'organization.delete'
                        AND resource_id = :'p1'}, $acme->{id}),
   $live, "... counting the $live sessions it ended");

error_is($t->get("$ORGS/$acme->{id}", headers => $SA), 404, 'NOT_FOUND',
         'a deleted organization: 404');
error_is($t->delete("$ORGS/$acme->{id}", headers => $SA), 404, 'NOT_FOUND',
         'deleting it again: 404');
error_is($t->put("$ORGS/$acme->{id}", { name => 'Back' }, headers => $SA),
         404, 'NOT_FOUND', 'updating it: 404');
$r = $t->get("$ORGS?search=acme", headers => $SA);
is(data($r)->{total}, 0, 'the list leaves it out');
error_is($t->get("/api/v1/organizations/lookup?slug=acme"), 404, 'NOT_FOUND',
         'the public lookup no longer finds its slug');
$r = $t->login($acme_user->{email}, $acme_user->{password});
error_is($r, 401, 'UNAUTHORIZED', 'its users cannot sign in');
{
    my ($hq) = $t->psql(q{SELECT id FROM locations
                           WHERE organization_id = :'p1'}, $acme->{id});
    error_is($t->get("/api/v1/locations/$hq", headers => $SA), 404,
             'NOT_FOUND', 'its locations are gone with it');
    # the organization's access tokens die with it
    $r = $t->get('/api/v1/locations', headers => $acme_admin->{h});
    error_is($r, 401, 'UNAUTHORIZED',
             '... and an access token of its admin is refused at once');
    like($r->{headers}{'www-authenticate'} // '', qr/token revoked/,
         '... as revoked');
}

$r = $t->post($ORGS, { name => 'Acme Reborn', slug => 'acme' },
              headers => $SA);
is($r->{status}, 201, 'its slug is free for a new organization')
    or diag($r->{content});

# a super admin cannot delete the organization they belong to
{
    my ($own) = $t->psql(q{SELECT organization_id FROM users
                            WHERE id = :'p1'}, $admin_id);
    error_is($t->delete("$ORGS/$own", headers => $SA), 409, 'CONFLICT',
             'deleting one\'s own organization: 409');
}

done_testing();
