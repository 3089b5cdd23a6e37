#!/usr/bin/perl
# Locations (seed 002): create (the address as an object or flat, as the
# seed sends it), list with filters, read, partial update, soft delete,
# assigning users with one primary location each, a user's locations,
# unassigning, and a location's users; the audit row of every change.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use POSIX ();
use Test::More;
use UM::Test qw(error_is is_rfc3339_utc is_uuid);

my $t = UM::Test->new(workers => 2);

my $LOC = '/api/v1/locations';
my $TRUE = JSON::PP::true;
my $FALSE = JSON::PP::false;

my $l = $t->login($t->admin_email, $t->admin_password);
die "admin login: $l->{content}\n" unless $l->{status} == 200;
my $SA = $t->auth_header($l->{json}{data}{access_token});

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

sub audit_of {
    my ($action, $id) = @_;
    return scalar $t->psql(
        q{SELECT actor_id || '|' || organization_id || '|' || status
            FROM audit_logs WHERE action = :'p1' AND resource_id = :'p2'
           ORDER BY created_at DESC LIMIT 1}, $action, $id);
}

sub member {
    my ($slug, $type) = @_;
    my $u = $t->new_user(organization_slug => $slug);
    if ($type ne 'user') {
        $t->psql(q{UPDATE users SET user_type = :'p2' WHERE id = :'p1'},
                 $u->{id}, $type);
        my $r = $t->login($u->{email}, $u->{password});
        die "login: $r->{content}\n" unless $r->{status} == 200;
        $u->{access_token} = $r->{json}{data}{access_token};
    }
    $u->{h} = $t->auth_header($u->{access_token});
    return $u;
}

sub codes { return [ map { $_->{code} } @{ data($_[0])->{locations} // [] } ] }

# the primary location of a user, and how many they have, from psql
sub primary_of {
    my ($uid) = @_;
    return scalar $t->psql(
        q{SELECT coalesce(string_agg(location_id::text, ',')
                          FILTER (WHERE is_primary), '-')
                 || '/' || count(*)
            FROM user_locations WHERE user_id = :'p1'}, $uid);
}

my $r = $t->post('/api/v1/organizations',
                 { name => 'Globex', slug => 'globex',
                   allow_self_registration => $TRUE }, headers => $SA);
die "org: $r->{content}\n" unless $r->{status} == 201;
my $org = data($r)->{id};

my $admin = member('globex', 'admin');
my $H = $admin->{h};

###########################################################################
# POST /locations

$r = $t->post($LOC, { name => 'Head Office', code => 'HQ-001',
                      description => 'Where it all began',
                      address => { street => '1 Main St', city => 'Springfield',
                                   state => 'IL', postal_code => '62701',
                                   country => 'US' },
                      latitude => 39.7817, longitude => -89.6501,
                      timezone => 'America/Chicago' }, headers => $H);
is($r->{status}, 201, 'create: 201') or diag($r->{content});
my $hq = data($r);
ok(is_uuid($hq->{id}), 'an id');
is($hq->{organization_id}, $org, 'in the caller\'s organization');
is($hq->{name}, 'Head Office', 'name');
is($hq->{code}, 'HQ-001', 'code as sent');
is_deeply($hq->{address}, { street => '1 Main St', city => 'Springfield',
                            state => 'IL', postal_code => '62701',
                            country => 'US' }, 'address');
is($hq->{latitude}, 39.7817, 'latitude');
is($hq->{longitude}, -89.6501, 'longitude');
is($hq->{timezone}, 'America/Chicago', 'timezone');
ok($hq->{is_active}, 'is_active defaults to true');
is($hq->{parent_id}, undef, 'no parent');
is($hq->{created_by}, $admin->{id}, 'created_by the caller');
ok(is_rfc3339_utc($hq->{created_at}), 'created_at in RFC 3339 UTC');
is(scalar $t->psql(q{SELECT organization_id || '|' || code || '|'
                            || (address->>'city') || '|' || latitude
                       FROM locations WHERE id = :'p1'}, $hq->{id}),
   "$org|HQ-001|Springfield|39.7817", 'psql: the row as sent');
is(audit_of('location.create', $hq->{id}), "$admin->{id}|$org|success",
   'psql: audit row location.create');

# seed 002 sends the address flat
$r = $t->post($LOC, { name => 'Main Office', code => 'MAIN-001',
                      description => 'Main office location',
                      address => '123 Business Street', city => 'New York',
                      state => 'NY', country => 'USA',
                      postal_code => '10001' }, headers => $H);
is($r->{status}, 201, "seed 002's flat address: 201") or diag($r->{content});
my $main = data($r);
is_deeply($main->{address}, { street => '123 Business Street',
                              city => 'New York', state => 'NY',
                              country => 'USA', postal_code => '10001' },
          '... folded into the address object');

$r = $t->post($LOC, { name => 'Branch', code => 'BR-1', parent_id => $hq->{id},
                      address => { city => 'Shelbyville', country => 'US' },
                      is_active => $FALSE }, headers => $H);
is($r->{status}, 201, 'a sub-location, inactive: 201') or diag($r->{content});
my $branch = data($r);
is($branch->{parent_id}, $hq->{id}, '... parent_id');
ok(!$branch->{is_active}, '... is_active false');

$r = $t->post($LOC, { name => 'Depot', code => 'DEPOT' }, headers => $H);
is($r->{status}, 201, 'name and code only: 201');
my $depot = data($r);
is($depot->{address}, undef, '... address null');

my $count = sub { scalar $t->psql(q{SELECT count(*) FROM locations}) };
my $before = $count->();

$r = $t->post($LOC, { name => 'Again', code => 'hq-001' }, headers => $H);
error_is($r, 409, 'CONFLICT',
         'a code taken in the organization (any case): 409');
has_detail($r, 'code', 'unique', '... naming code');

my @bad = (
    [ { code => 'X1' }, 'name', 'required', 'no name' ],
    [ { name => 'X' }, 'code', 'required', 'no code' ],
    [ { name => ' ', code => 'X1' }, 'name', undef, 'a blank name' ],
    [ { name => 'X', code => 'has space' }, 'code', undef,
      'a code with a space' ],
    [ { name => 'X', code => '-X' }, 'code', undef, 'a code starting with -' ],
    [ { name => 'X', code => 'c' x 51 }, 'code', 'max_length',
      'a 51-character code' ],
    [ { name => 'X', code => 'X1', latitude => 90.5 }, 'latitude', 'range',
      'latitude 90.5' ],
    [ { name => 'X', code => 'X1', latitude => -91 }, 'latitude', 'range',
      'latitude -91' ],
    [ { name => 'X', code => 'X1', longitude => 180.01 }, 'longitude',
      'range', 'longitude 180.01' ],
    [ { name => 'X', code => 'X1', latitude => '12.5' }, 'latitude', 'type',
      'latitude as a string' ],
    [ { name => 'X', code => 'X1', timezone => 'Mars/Olympus' }, 'timezone',
      undef, 'an unknown time zone' ],
    [ { name => 'X', code => 'X1', timezone => 'Mars/Olympus+3' }, 'timezone',
      undef, 'a POSIX rule for a time zone' ],
    [ { name => 'X', code => 'X1', timezone => 'EST' }, 'timezone',
      undef, 'a time-zone abbreviation' ],
    [ { name => 'X', code => 'X1', parent_id => 'nope' }, 'parent_id',
      'format', 'parent_id not a UUID' ],
    [ { name => 'X', code => 'X1',
        parent_id => '00000000-0000-4000-8000-000000000000' }, 'parent_id',
      undef, 'parent_id of no location' ],
    [ { name => 'X', code => 'X1',
        address => { street => 'x', planet => 'Mars' } },
      'address', 'unknown', 'an address with an unknown key' ],
    [ { name => 'X', code => 'X1', address => { city => 'x' }, city => 'y' },
      'address', undef, 'an address both as an object and flat' ],
    [ { name => 'X', code => 'X1', address => [1] }, 'address', 'type',
      'an address that is an array' ],
    [ { name => 'X', code => 'X1', floor => 3 }, 'floor', 'unknown',
      'an unknown field' ],
    [ { name => 'X', code => 'X1', is_active => 1 }, 'is_active', 'type',
      'is_active 1' ],
);
for my $c (@bad) {
    my ($body, $field, $rule, $what) = @$c;
    $r = $t->post($LOC, $body, headers => $H);
    error_is($r, 422, 'VALIDATION_FAILED', "$what: 422");
    has_detail($r, $field, $rule, "... naming $field");
}
is($count->(), $before, 'psql: none of them wrote a location');

# organization_id: the caller's own, or (a super admin) any
$r = $t->post($LOC, { name => 'Own', code => 'OWN', organization_id => $org },
              headers => $H);
is($r->{status}, 201, 'organization_id of one\'s own organization: 201');
my ($default_org) = $t->psql(q{SELECT id FROM organizations
                                WHERE slug = 'default'});
$r = $t->post($LOC, { name => 'Theirs', code => 'THEIRS',
                      organization_id => $default_org }, headers => $H);
error_is($r, 403, 'FORBIDDEN', 'organization_id of another organization: 403');
has_detail($r, 'organization_id', 'forbidden', '... naming organization_id');
$r = $t->post($LOC, { name => 'Placed', code => 'PLACED',
                      organization_id => $org }, headers => $SA);
is($r->{status}, 201, 'a super admin places a location in any organization');
is(data($r)->{organization_id}, $org, '... the one named');
$r = $t->post($LOC, { name => 'Chosen', code => 'CHOSEN' },
              headers => { %$SA, 'X-Tenant-ID' => $org });
is(data($r)->{organization_id}, $org, '... or the one X-Tenant-ID names');
$r = $t->post($LOC, { name => 'Nowhere', code => 'NOWHERE',
                      organization_id =>
                          '00000000-0000-4000-8000-000000000000' },
              headers => $SA);
error_is($r, 404, 'NOT_FOUND', '... but not one that does not exist');

###########################################################################
# GET /locations

$r = $t->get($LOC, headers => $H);
is($r->{status}, 200, 'list: 200') or diag($r->{content});
is(data($r)->{total}, 7, 'total 7');
is_deeply(codes($r), [ qw(BR-1 CHOSEN DEPOT HQ-001 MAIN-001 OWN PLACED) ],
          'by name');
$r = $t->get("$LOC?skip=0&limit=2", headers => $H);
is_deeply(codes($r), [ qw(BR-1 CHOSEN) ], 'skip=0&limit=2');
ok(data($r)->{has_next}, '... has_next');
$r = $t->get("$LOC?page=4&per_page=2", headers => $H);
is_deeply(codes($r), [ 'PLACED' ], 'page=4&per_page=2: the last one');
$r = $t->get("$LOC?search=office", headers => $H);
is_deeply(codes($r), [ qw(HQ-001 MAIN-001) ], 'search over the name');
$r = $t->get("$LOC?search=br-", headers => $H);
is_deeply(codes($r), [ 'BR-1' ], 'search over the code');
$r = $t->get("$LOC?search=springf", headers => $H);
is_deeply(codes($r), [ 'HQ-001' ], 'search over the city');
$r = $t->get("$LOC?city=new+york", headers => $H);
is_deeply(codes($r), [ 'MAIN-001' ], 'city=new york (any case)');
$r = $t->get("$LOC?country=US", headers => $H);
is_deeply(codes($r), [ qw(BR-1 HQ-001) ], 'country=US');
$r = $t->get("$LOC?is_active=false", headers => $H);
is_deeply(codes($r), [ 'BR-1' ], 'is_active=false');
$r = $t->get("$LOC?is_active=true&country=us", headers => $H);
is_deeply(codes($r), [ 'HQ-001' ], 'filters combine');
error_is($t->get("$LOC?is_active=1", headers => $H), 400, 'BAD_REQUEST',
         'is_active=1: 400');
error_is($t->get("$LOC?limit=0", headers => $H), 400, 'BAD_REQUEST',
         'limit=0: 400');

###########################################################################
# GET /locations/{id}

$r = $t->get("$LOC/$hq->{id}", headers => $H);
is($r->{status}, 200, 'get: 200') or diag($r->{content});
is(data($r)->{code}, 'HQ-001', '... the location');
is(data($r)->{user_count}, 0, '... user_count 0');
error_is($t->get("$LOC/00000000-0000-4000-8000-000000000000", headers => $H),
         404, 'NOT_FOUND', 'an unknown id: 404');
error_is($t->get("$LOC/HQ-001", headers => $H), 400, 'BAD_REQUEST',
         'an id that is not a UUID: 400');

###########################################################################
# PUT /locations/{id}

$r = $t->put("$LOC/$hq->{id}", { name => 'Headquarters',
                                  address => { city => 'Capital City',
                                               state => undef } },
             headers => $H);
is($r->{status}, 200, 'update: 200') or diag($r->{content});
my $upd = data($r)->{location};
is($upd->{name}, 'Headquarters', 'the new name');
is_deeply($upd->{address}, { street => '1 Main St', city => 'Capital City',
                             postal_code => '62701', country => 'US' },
          'address keys sent replace, a key sent as null goes, '
          . 'the others stay');
is($upd->{timezone}, 'America/Chicago', 'fields not sent keep their value');
is_deeply(data($r)->{changes}{name}, { old => 'Head Office',
                                       new => 'Headquarters' },
          'changes lists old and new');
is(scalar $t->psql(q{SELECT changes->'name'->>'new' FROM audit_logs
                      WHERE action = 'location.update' AND resource_id = :'p1'
                      ORDER BY created_at DESC LIMIT 1}, $hq->{id}),
   'Headquarters', 'psql: audit row location.update with the changes');

$r = $t->put("$LOC/$main->{id}", { city => 'Boston' }, headers => $H);
is(data($r)->{location}{address}{city}, 'Boston',
   'a flat city updates the address');
is(data($r)->{location}{address}{street}, '123 Business Street',
   '... the street stays');

$r = $t->put("$LOC/$depot->{id}", { latitude => 10, longitude => 20,
                                     timezone => 'Europe/Paris',
                                     description => 'Stock' }, headers => $H);
is($r->{status}, 200, 'setting coordinates, zone and description: 200');
$r = $t->put("$LOC/$depot->{id}", { latitude => undef, timezone => undef,
                                     address => undef }, headers => $H);
is(data($r)->{location}{latitude}, undef, 'null clears latitude');
is(data($r)->{location}{timezone}, undef, '... and timezone');
is(data($r)->{location}{longitude}, 20, '... longitude stays');

error_is($t->put("$LOC/$depot->{id}", { code => 'MAIN-001' }, headers => $H),
         409, 'CONFLICT', 'a code another location has: 409');
error_is($t->put("$LOC/$hq->{id}", { parent_id => $hq->{id} }, headers => $H),
         422, 'VALIDATION_FAILED', 'its own parent: 422');
$r = $t->put("$LOC/$hq->{id}", { parent_id => $branch->{id} }, headers => $H);
error_is($r, 422, 'VALIDATION_FAILED', 'below its own sub-location: 422');
has_detail($r, 'parent_id', undef, '... naming parent_id');
$r = $t->put("$LOC/$depot->{id}", { parent_id => $hq->{id} }, headers => $H);
is(data($r)->{location}{parent_id}, $hq->{id}, 'a new parent');
$r = $t->put("$LOC/$depot->{id}", { parent_id => undef }, headers => $H);
is(data($r)->{location}{parent_id}, undef, '... and none again');
error_is($t->put("$LOC/$hq->{id}", { organization_id => $default_org },
                 headers => $H), 422, 'VALIDATION_FAILED',
         'moving a location to another organization: 422');
error_is($t->put("$LOC/00000000-0000-4000-8000-000000000000",
                 { name => 'X' }, headers => $H), 404, 'NOT_FOUND',
         'update of an unknown id: 404');

###########################################################################
# POST /locations/assign

my $u1 = member('globex', 'user');
my $u2 = member('globex', 'user');
my $ASSIGN = "$LOC/assign";

$r = $t->post($ASSIGN, { user_id => $u1->{id},
                         location_ids => [ $hq->{id}, $main->{id} ],
                         primary_location_id => $main->{id} }, headers => $H);
is($r->{status}, 200, 'assign two locations: 200') or diag($r->{content});
is(data($r)->{user_id}, $u1->{id}, '... the user');
is(data($r)->{primary_location_id}, $main->{id}, '... the primary one');
is_deeply([ sort map { $_->{id} } @{ data($r)->{locations} } ],
          [ sort $hq->{id}, $main->{id} ], '... the two locations');
is_deeply([ map { $_->{is_primary} ? 1 : 0 } @{ data($r)->{locations} } ],
          [ 1, 0 ], '... the primary first, flagged is_primary');
is(primary_of($u1->{id}), "$main->{id}/2", 'psql: two rows, one primary');
is(audit_of('location.assign', $u1->{id}), "$admin->{id}|$org|success",
   'psql: audit row location.assign');

# more, without a primary: the primary stays
$r = $t->post($ASSIGN, { user_id => $u1->{id},
                         location_ids => [ $depot->{id}, $depot->{id},
                                           $hq->{id} ] }, headers => $H);
is($r->{status}, 200, 'assign more (one twice, one again): 200')
    or diag($r->{content});
is(scalar @{ data($r)->{locations} }, 3, '... three locations now');
is(primary_of($u1->{id}), "$main->{id}/3", 'psql: the primary stays');

# a new primary among those already assigned
$r = $t->post($ASSIGN, { user_id => $u1->{id}, location_ids => [ $hq->{id} ],
                         primary_location_id => $hq->{id} }, headers => $H);
is(data($r)->{primary_location_id}, $hq->{id}, 'a new primary: moved');
is(primary_of($u1->{id}), "$hq->{id}/3", 'psql: still one primary');
is(scalar $t->psql(q{SELECT changes->'primary_location_id'->>'old'
                      FROM audit_logs WHERE action = 'location.assign'
                       AND resource_id = :'p1'
                     ORDER BY created_at DESC LIMIT 1}, $u1->{id}),
   $main->{id}, 'psql: the audit row says which primary it was');

# the first location of a user without one becomes the primary
$r = $t->post($ASSIGN, { user_id => $u2->{id},
                         location_ids => [ $depot->{id}, $hq->{id} ] },
              headers => $H);
is(data($r)->{primary_location_id}, $depot->{id},
   'no primary given and none yet: the first named');

$before = scalar $t->psql(q{SELECT count(*) FROM user_locations});
$r = $t->post($ASSIGN, { user_id => $u2->{id}, location_ids => [ $main->{id} ],
                         primary_location_id => $hq->{id} }, headers => $H);
error_is($r, 422, 'VALIDATION_FAILED',
         'a primary_location_id not among location_ids: 422');
has_detail($r, 'primary_location_id', undef, '... naming primary_location_id');
$r = $t->post($ASSIGN, { user_id => $u2->{id},
                         location_ids => [ $branch->{id} ] }, headers => $H);
error_is($r, 422, 'VALIDATION_FAILED', 'an inactive location: 422');
has_detail($r, 'location_ids', undef, '... naming location_ids');
error_is($t->post($ASSIGN, { user_id => $u2->{id},
                             location_ids => [ $main->{id},
                                 '00000000-0000-4000-8000-000000000000' ] },
                  headers => $H), 404, 'NOT_FOUND', 'an unknown location: 404');
error_is($t->post($ASSIGN, { user_id => '00000000-0000-4000-8000-000000000000',
                             location_ids => [ $main->{id} ] },
                  headers => $H), 404, 'NOT_FOUND', 'an unknown user: 404');
$r = $t->post($ASSIGN, { user_id => $u2->{id}, location_ids => [] },
              headers => $H);
error_is($r, 422, 'VALIDATION_FAILED', 'no location_ids: 422');
has_detail($r, 'location_ids', undef, '... naming location_ids');
$r = $t->post($ASSIGN, { user_id => $u2->{id}, location_ids => ['x'] },
              headers => $H);
error_is($r, 422, 'VALIDATION_FAILED', 'location_ids not UUIDs: 422');
$r = $t->post($ASSIGN, { location_ids => [ $main->{id} ] }, headers => $H);
has_detail($r, 'user_id', 'required', 'no user_id: 422 naming user_id');
is(scalar $t->psql(q{SELECT count(*) FROM user_locations}), $before,
   'psql: none of them assigned anything');
is(primary_of($u2->{id}), "$depot->{id}/2", 'psql: the primary is unchanged');

# eight assignments of one user at once, each naming its own primary
{
    my $u3 = member('globex', 'user');
    my @ids = map {
        scalar $t->psql(q{INSERT INTO locations (organization_id, name, code)
                          VALUES (:'p1', :'p2', :'p2') RETURNING id},
                        $org, "PAR-$_")
    } 1 .. 8;
    my @kids;
    for my $id (@ids) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $res = $t->post($ASSIGN, { user_id => $u3->{id},
                                          location_ids => [ $id ],
                                          primary_location_id => $id },
                               headers => $H, fresh => 1);
            POSIX::_exit($res->{status} == 200 ? 0 : 1);
        }
        push @kids, $pid;
    }
    my $failed = 0;
    for (@kids) { waitpid($_, 0); $failed++ if $? }
    is($failed, 0, 'eight assignments of one user at once: all 200');
    like(primary_of($u3->{id}), qr{^[0-9a-f-]{36}/8$},
         'psql: eight locations, exactly one primary');
    $t->psql(q{DELETE FROM user_locations WHERE user_id = :'p1';
               UPDATE locations SET deleted_at = now()
                WHERE code LIKE 'PAR-%'}, $u3->{id});
}

###########################################################################
# GET /locations/user/{user_id}

$r = $t->get("$LOC/user/$u1->{id}", headers => $u1->{h});
is($r->{status}, 200, 'a user reads their own locations: 200')
    or diag($r->{content});
is(data($r)->{primary_location_id}, $hq->{id}, '... with the primary');
is(scalar @{ data($r)->{locations} }, 3, '... three locations');
ok(is_rfc3339_utc(data($r)->{locations}[0]{assigned_at}),
   '... each with assigned_at');
is(data($r)->{locations}[0]{assigned_by}, $admin->{id}, '... and assigned_by');
$r = $t->get("$LOC/user/$u2->{id}", headers => $H);
is(data($r)->{primary_location_id}, $depot->{id}, 'the admin reads another\'s');
$r = $t->get("$LOC/user/$admin->{id}", headers => $H);
is_deeply(data($r)->{locations}, [], 'a user without locations: []');
is(data($r)->{primary_location_id}, undef, '... and no primary');
error_is($t->get("$LOC/user/00000000-0000-4000-8000-000000000000",
                 headers => $H), 404, 'NOT_FOUND', 'an unknown user: 404');

###########################################################################
# GET /locations/{id}/users

$r = $t->get("$LOC/$hq->{id}/users", headers => $H);
is($r->{status}, 200, 'a location\'s users: 200') or diag($r->{content});
is(data($r)->{total}, 2, '... total 2');
is_deeply([ map { $_->{id} } @{ data($r)->{users} } ], [ $u1->{id}, $u2->{id} ],
          '... in the order they were assigned');
is_deeply([ map { $_->{is_primary} ? 1 : 0 } @{ data($r)->{users} } ], [1, 0],
          '... is_primary for whom it is the primary');
is(data($r)->{users}[0]{email}, $u1->{email}, '... with the user\'s fields');
ok(!exists data($r)->{users}[0]{password_hash}, '... never the password hash');
$r = $t->get("$LOC/$hq->{id}/users?page_size=1&page=2", headers => $H);
is_deeply([ map { $_->{id} } @{ data($r)->{users} } ], [ $u2->{id} ],
          'page_size=1&page=2: the second');
is(data($r)->{pages}, 2, '... of 2 pages');
is(scalar $t->get("$LOC/$hq->{id}", headers => $H)->{json}{data}{user_count},
   2, 'the location\'s user_count is 2');
error_is($t->get("$LOC/00000000-0000-4000-8000-000000000000/users",
                 headers => $H), 404, 'NOT_FOUND',
         'of an unknown location: 404');

###########################################################################
# DELETE /locations/user/{user_id}/location/{location_id}

$r = $t->delete("$LOC/user/$u1->{id}/location/$hq->{id}", headers => $H);
is($r->{status}, 200, 'unassign the primary: 200') or diag($r->{content});
is(scalar @{ data($r)->{locations} }, 2, '... two locations left');
is(data($r)->{primary_location_id}, $main->{id},
   '... the one assigned first of the rest is the primary now');
is(primary_of($u1->{id}), "$main->{id}/2", 'psql: one primary of two');
is(audit_of('location.unassign', $u1->{id}), "$admin->{id}|$org|success",
   'psql: audit row location.unassign');
$r = $t->delete("$LOC/user/$u1->{id}/location/$depot->{id}", headers => $H);
is(data($r)->{primary_location_id}, $main->{id},
   'unassigning another: the primary stays');
error_is($t->delete("$LOC/user/$u1->{id}/location/$depot->{id}", headers => $H),
         404, 'NOT_FOUND', 'unassigning it again: 404');
error_is($t->delete("$LOC/user/$u1->{id}/location/nope", headers => $H),
         400, 'BAD_REQUEST', 'a location_id that is not a UUID: 400');

###########################################################################
# DELETE /locations/{id}

error_is($t->delete("$LOC/$hq->{id}", headers => $H), 409, 'CONFLICT',
         'a location with a sub-location: 409');
is($t->delete("$LOC/$branch->{id}", headers => $H)->{status}, 200,
   'deleting the sub-location: 200');

# u2 has depot (primary) and hq; u1 has main (primary)
$r = $t->delete("$LOC/$depot->{id}", headers => $H);
is($r->{status}, 200, 'delete: 200') or diag($r->{content});
ok(is_rfc3339_utc(data($r)->{deleted_at}), '... deleted_at set');
ok(!data($r)->{is_active}, '... is_active false');
is(scalar $t->psql(q{SELECT deleted_at IS NOT NULL FROM locations
                      WHERE id = :'p1'}, $depot->{id}), 't',
   'psql: soft deleted');
is(scalar $t->psql(q{SELECT count(*) FROM user_locations
                      WHERE location_id = :'p1'}, $depot->{id}), 0,
   'psql: its assignments ended');
is(primary_of($u2->{id}), "$hq->{id}/1",
   'psql: the user whose primary it was has another primary');
is(audit_of('location.delete', $depot->{id}), "$admin->{id}|$org|success",
   'psql: audit row location.delete');
is(scalar $t->psql(q{SELECT metadata->>'assignments_ended' FROM audit_logs
                      WHERE action = 'location.delete' AND resource_id = :'p1'},
                   $depot->{id}), 1, '... counting the assignment it ended');
error_is($t->get("$LOC/$depot->{id}", headers => $H), 404, 'NOT_FOUND',
         'a deleted location: 404');
error_is($t->delete("$LOC/$depot->{id}", headers => $H), 404, 'NOT_FOUND',
         'deleting it again: 404');
error_is($t->post($ASSIGN, { user_id => $u1->{id},
                             location_ids => [ $depot->{id} ] },
                  headers => $H), 404, 'NOT_FOUND', 'assigning it: 404');
ok(!grep({ $_ eq 'DEPOT' } @{ codes($t->get($LOC, headers => $H)) }),
   'the list leaves it out');
$r = $t->post($LOC, { name => 'New Depot', code => 'DEPOT' }, headers => $H);
is($r->{status}, 201, 'its code is free again') or diag($r->{content});

###########################################################################
# a change and its audit row commit together, or neither does

$t->psql(q{CREATE FUNCTION test_audit_refuses() RETURNS trigger
           LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'the audit trail is full'; END $$;
           CREATE TRIGGER test_audit_refuses BEFORE INSERT ON audit_logs
               FOR EACH ROW WHEN (NEW.action LIKE 'location.%')
               EXECUTE FUNCTION test_audit_refuses()});
my $undo = scalar $t->psql(q{SELECT name || '|' || (deleted_at IS NULL)
                               FROM locations WHERE id = :'p1'}, $main->{id});
error_is($t->post($LOC, { name => 'Unaudited', code => 'UNAUDITED' },
                  headers => $H), 500, 'INTERNAL_ERROR',
         'the audit row cannot be written: create fails');
is(scalar $t->psql(q{SELECT count(*) FROM locations WHERE code = 'UNAUDITED'}),
   0, 'psql: ... and no location was made');
error_is($t->put("$LOC/$main->{id}", { name => 'Unaudited' }, headers => $H),
         500, 'INTERNAL_ERROR', '... update fails');
error_is($t->delete("$LOC/$main->{id}", headers => $H), 500, 'INTERNAL_ERROR',
         '... delete fails');
is(scalar $t->psql(q{SELECT name || '|' || (deleted_at IS NULL)
                       FROM locations WHERE id = :'p1'}, $main->{id}),
   $undo, 'psql: ... and the location is as it was');
error_is($t->post($ASSIGN, { user_id => $u2->{id},
                             location_ids => [ $main->{id} ] }, headers => $H),
         500, 'INTERNAL_ERROR', '... assign fails');
is(primary_of($u2->{id}), "$hq->{id}/1", 'psql: ... and assigned nothing');
$t->psql(q{DROP TRIGGER test_audit_refuses ON audit_logs;
           DROP FUNCTION test_audit_refuses()});

###########################################################################
# a path is its most specific template

$r = $t->get("$LOC/assign", headers => $H);
error_is($r, 405, 'METHOD_NOT_ALLOWED',
         'GET /locations/assign: 405, not a location whose id is "assign"');
is($r->{headers}{allow}, 'POST', '... Allow: POST');
$r = $t->delete('/api/v1/organizations/lookup', headers => $H);
error_is($r, 405, 'METHOD_NOT_ALLOWED', 'DELETE /organizations/lookup: 405');

done_testing();
