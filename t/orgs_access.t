#!/usr/bin/perl
# Who may do what with organizations and locations: every endpoint for the
# super admin, an organization admin, a manager and a user; another
# tenant's organization, locations and users answer 404 on every {id}
# route; SQL-injection strings are data; the users of a deleted or
# deactivated organization can neither sign in nor refresh.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use UM::Test qw(error_is);

my $t = UM::Test->new(workers => 2);

my $ORGS = '/api/v1/organizations';
my $LOC = '/api/v1/locations';
my $TRUE = JSON::PP::true;
my $FALSE = JSON::PP::false;
my $NOBODY = '00000000-0000-4000-8000-000000000000';

my $l = $t->login($t->admin_email, $t->admin_password);
die "admin login: $l->{content}\n" unless $l->{status} == 200;
my $SA = $t->auth_header($l->{json}{data}{access_token});

sub data { my ($r) = @_; return eval { $r->{json}{data} } // {} }

sub org {
    my ($slug) = @_;
    my $r = $t->post($ORGS, { name => ucfirst($slug), slug => $slug,
                              allow_self_registration => $TRUE },
                     headers => $SA);
    die "org $slug: $r->{content}\n" unless $r->{status} == 201;
    return data($r)->{id};
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
        $u->{refresh_token} = $r->{json}{data}{refresh_token};
    }
    $u->{h} = $t->auth_header($u->{access_token});
    return $u;
}

sub location {
    my ($org, $code) = @_;
    return scalar $t->psql(q{INSERT INTO locations (organization_id, name, code)
                             VALUES (:'p1', :'p2', :'p2') RETURNING id},
                           $org, $code);
}

my $A = org('alpha');
my $B = org('beta');

my $a_admin = member('alpha', 'admin');
my $a_manager = member('alpha', 'manager');
my $a_user = member('alpha', 'user');
my $a_user2 = member('alpha', 'user');
my $b_admin = member('beta', 'admin');
my $b_user = member('beta', 'user');

my $LA = location($A, 'LA');
my $LA2 = location($A, 'LA2');
my $LB = location($B, 'LB');
$t->psql(q{INSERT INTO user_locations (user_id, location_id, is_primary)
           VALUES (:'p1', :'p2', true)}, $a_user->{id}, $LA);
$t->psql(q{INSERT INTO user_locations (user_id, location_id, is_primary)
           VALUES (:'p1', :'p2', true)}, $b_user->{id}, $LB);

###########################################################################
# each role, each endpoint (inside organization alpha)

my @roles = ([ 'super admin', $SA ], [ 'org admin', $a_admin->{h} ],
             [ 'manager', $a_manager->{h} ], [ 'user', $a_user->{h} ]);
my $n = 0;

# name, a request made fresh for each call, the status of each role
my @matrix = (
    [ 'POST /organizations',
      sub { ('POST', $ORGS, { name => "M$n", slug => "m-$n" }) },
      [ 201, 403, 403, 403 ] ],
    [ 'GET /organizations', sub { ('GET', $ORGS) }, [ 200, 403, 403, 403 ] ],
    [ 'GET /organizations/{id}', sub { ('GET', "$ORGS/$A") },
      [ 200, 200, 200, 200 ] ],
    [ 'PUT /organizations/{id}',
      sub { ('PUT', "$ORGS/$A", { description => "d$n" }) },
      [ 200, 200, 403, 403 ] ],
    [ 'DELETE /organizations/{id}',
      sub {
          my ($id) = $t->psql(q{INSERT INTO organizations (name, slug)
                                VALUES ('Gone', :'p1') RETURNING id},
                              "gone-$n");
          ('DELETE', "$ORGS/$id");
      },
      [ 200, 403, 403, 403 ] ],
    [ 'GET /organizations/my/info', sub { ('GET', "$ORGS/my/info") },
      [ 200, 200, 200, 200 ] ],
    [ 'POST /locations',
      sub { ('POST', $LOC, { name => "L$n", code => "L-$n" }) },
      [ 201, 201, 403, 403 ] ],
    [ 'GET /locations', sub { ('GET', $LOC) }, [ 200, 200, 200, 200 ] ],
    [ 'GET /locations/{id}', sub { ('GET', "$LOC/$LA") },
      [ 200, 200, 200, 200 ] ],
    [ 'PUT /locations/{id}',
      sub { ('PUT', "$LOC/$LA", { description => "d$n" }) },
      [ 200, 200, 403, 403 ] ],
    [ 'DELETE /locations/{id}',
      sub { ('DELETE', "$LOC/" . location($A, "DEL-$n")) },
      [ 200, 200, 403, 403 ] ],
    [ 'POST /locations/assign',
      sub { ('POST', "$LOC/assign", { user_id => $a_user2->{id},
                                      location_ids => [ $LA2 ] }) },
      [ 200, 200, 200, 403 ] ],
    [ 'GET /locations/user/{user_id} (another user)',
      sub { ('GET', "$LOC/user/$a_user2->{id}") }, [ 200, 200, 200, 200 ] ],
    [ 'DELETE /locations/user/{user_id}/location/{location_id}',
      sub {
          $t->psql(q{INSERT INTO user_locations (user_id, location_id)
                     VALUES (:'p1', :'p2') ON CONFLICT DO NOTHING},
                   $a_user2->{id}, $LA);
          ('DELETE', "$LOC/user/$a_user2->{id}/location/$LA");
      },
      [ 200, 200, 200, 403 ] ],
    [ 'GET /locations/{id}/users', sub { ('GET', "$LOC/$LA/users") },
      [ 200, 200, 200, 200 ] ],
);

for my $row (@matrix) {
    my ($name, $make, $want) = @$row;
    my @got;
    for my $i (0 .. $#roles) {
        $n++;
        my ($method, $path, $body) = $make->();
        my $r = $t->request($method, $path, { headers => $roles[$i][1],
                                              body => $body });
        push @got, $r->{status};
        diag("$name as $roles[$i][0]: $r->{content}")
            if $r->{status} != $want->[$i];
    }
    is_deeply(\@got, $want,
              "$name: " . join(', ', map { "$roles[$_][0] $want->[$_]" }
                                     0 .. $#roles));

    # and nobody without a token
    $n++;
    my ($method, $path, $body) = $make->();
    error_is($t->request($method, $path, { body => $body }), 401,
             'UNAUTHORIZED', "$name without a token: 401");
}

###########################################################################
# another tenant's objects answer 404

my $before = $t->psql(q{SELECT name || '|' || coalesce(description, '') || '|'
                               || (deleted_at IS NULL)
                          FROM locations WHERE id = :'p1'}, $LA);
my $assigned = $t->psql(q{SELECT string_agg(user_id || ':' || location_id, ','
                                            ORDER BY user_id, location_id)
                            FROM user_locations});
my ($a_desc) = $t->psql(q{SELECT description FROM organizations
                           WHERE id = :'p1'}, $A);

my @cross = (
    [ "GET alpha", 'GET', "$ORGS/$A" ],
    [ "PUT alpha", 'PUT', "$ORGS/$A", { description => 'theirs' } ],
    [ "GET alpha's location", 'GET', "$LOC/$LA" ],
    [ "PUT alpha's location", 'PUT', "$LOC/$LA", { name => 'theirs' } ],
    [ "DELETE alpha's location", 'DELETE', "$LOC/$LA" ],
    [ "GET the users of alpha's location", 'GET', "$LOC/$LA/users" ],
    [ "GET the locations of alpha's user", 'GET',
      "$LOC/user/$a_user->{id}" ],
    [ "assign alpha's user to alpha's location", 'POST', "$LOC/assign",
      { user_id => $a_user2->{id}, location_ids => [ $LA2 ] } ],
    [ "unassign alpha's user from alpha's location", 'DELETE',
      "$LOC/user/$a_user->{id}/location/$LA" ],
);

for my $who ([ 'the org admin of beta', $b_admin->{h} ],
             [ 'the super admin acting in beta (X-Tenant-ID)',
               { %$SA, 'X-Tenant-ID' => $B } ])
{
    for my $c (@cross) {
        my ($what, $method, $path, $body) = @$c;
        my $r = $t->request($method, $path, { headers => $who->[1],
                                              body => $body });
        error_is($r, 404, 'NOT_FOUND', "$who->[0]: $what: 404");
    }

    # their own user with alpha's location, alpha's user with their own
    error_is($t->post("$LOC/assign", { user_id => $b_user->{id},
                                       location_ids => [ $LA ] },
                      headers => $who->[1]), 404, 'NOT_FOUND',
             "$who->[0]: assigning their user to alpha's location: 404");
    error_is($t->post("$LOC/assign", { user_id => $a_user->{id},
                                       location_ids => [ $LB ] },
                      headers => $who->[1]), 404, 'NOT_FOUND',
             "$who->[0]: assigning alpha's user to their location: 404");
    error_is($t->post("$LOC/assign", { user_id => $b_user->{id},
                                       location_ids => [ $LB, $LA ],
                                       primary_location_id => $LB },
                      headers => $who->[1]), 404, 'NOT_FOUND',
             "$who->[0]: one of alpha's among their locations: 404");
    error_is($t->delete("$LOC/user/$b_user->{id}/location/$LA",
                        headers => $who->[1]), 404, 'NOT_FOUND',
             "$who->[0]: unassigning alpha's location from their user: 404");

    my $r = $t->get($LOC, headers => $who->[1]);
    is_deeply([ map { $_->{code} } @{ data($r)->{locations} // [] } ], ['LB'],
              "$who->[0]: the list holds their location only");
}

error_is($t->delete("$ORGS/$A", headers => { %$SA, 'X-Tenant-ID' => $B }),
         404, 'NOT_FOUND',
         'the super admin acting in beta deletes alpha: 404');
error_is($t->delete("$ORGS/$A", headers => $b_admin->{h}), 403, 'FORBIDDEN',
         'the org admin of beta deletes alpha: 403 (super admins only)');
error_is($t->get("$LOC/$LA", headers => $b_user->{h}), 404, 'NOT_FOUND',
         'a user of beta reads alpha\'s location: 404');
error_is($t->get("$LOC/user/$a_user->{id}", headers => $b_user->{h}), 404,
         'NOT_FOUND',
         'a user of beta reads the locations of alpha\'s user: 404');
error_is($t->get("$ORGS/$A", headers => $b_user->{h}), 404, 'NOT_FOUND',
         'a user of beta reads alpha: 404');

is(scalar $t->psql(q{SELECT name || '|' || coalesce(description, '') || '|'
                            || (deleted_at IS NULL)
                       FROM locations WHERE id = :'p1'}, $LA),
   scalar $before, 'psql: alpha\'s location is unchanged');
is(scalar $t->psql(q{SELECT string_agg(user_id || ':' || location_id, ','
                                       ORDER BY user_id, location_id)
                       FROM user_locations}),
   scalar $assigned, 'psql: no assignment came or went');
is(scalar $t->psql(q{SELECT description FROM organizations WHERE id = :'p1'},
                   $A), $a_desc, 'psql: alpha is unchanged');

###########################################################################
# SQL-injection strings are data

my @evil = ("' OR '1'='1", "'; DROP TABLE locations; --",
            "x\") OR 1=1 --", "1; SELECT pg_sleep(5)", "%' AND '%'='");

for my $s (@evil) {
    for my $q ("search", "city", "country") {
        my $r = $t->get("$LOC?$q=" . uri($s), headers => $a_admin->{h});
        is($r->{status}, 200, "GET /locations?$q=<$s>: 200")
            or diag($r->{content});
        is(data($r)->{total}, 0, '... and nothing matches');
    }
    my $r = $t->get("$ORGS?search=" . uri($s), headers => $SA);
    is(data($r)->{total}, 0, "GET /organizations?search=<$s>: nothing");
    $r = $t->get("$LOC?is_active=" . uri($s), headers => $a_admin->{h});
    error_is($r, 400, 'BAD_REQUEST', "is_active=<$s>: 400");
}

{
    my $i = 0;
    for my $s (@evil) {
        $i++;
        my $r = $t->post($LOC, { name => $s, code => "SQL-$i",
                                 description => $s,
                                 address => { street => $s, city => $s },
                                 timezone => undef },
                         headers => $a_admin->{h});
        is($r->{status}, 201, "a location named <$s>: 201")
            or diag($r->{content});
        my $id = data($r)->{id} // $NOBODY;
        is(scalar $t->psql(q{SELECT name || '|' || description || '|'
                                    || (address->>'city')
                               FROM locations WHERE id = :'p1'}, $id),
           "$s|$s|$s", '... stored verbatim');
        $r = $t->get("$LOC?search=" . uri($s), headers => $a_admin->{h});
        is_deeply([ map { $_->{id} } @{ data($r)->{locations} // [] } ], [$id],
                  '... and found by searching for exactly that');

        $r = $t->post($LOC, { name => 'X', code => $s },
                      headers => $a_admin->{h});
        error_is($r, 422, 'VALIDATION_FAILED', "a code <$s>: 422");

        $r = $t->post($ORGS, { name => $s, slug => "sql-$i",
                               description => $s }, headers => $SA);
        is($r->{status}, 201, "an organization named <$s>: 201")
            or diag($r->{content});
        is(scalar $t->psql(q{SELECT name FROM organizations WHERE slug = :'p1'},
                           "sql-$i"), $s, '... stored verbatim');
        error_is($t->post($ORGS, { name => 'X', slug => $s }, headers => $SA),
                 422, 'VALIDATION_FAILED', "a slug <$s>: 422");
        error_is($t->post("$LOC/assign", { user_id => $s,
                                           location_ids => [ $LA ] },
                          headers => $a_admin->{h}),
                 422, 'VALIDATION_FAILED', "a user_id <$s>: 422");
        error_is($t->get("$LOC/" . uri($s), headers => $a_admin->{h}), 400,
                 'BAD_REQUEST', "a location id <$s> in the path: 400");
    }
}
is(scalar $t->psql(q{SELECT count(*) FROM pg_tables
                      WHERE tablename IN ('locations', 'organizations',
                                          'user_locations')}), 3,
   'psql: the tables are all still there');

###########################################################################
# the users of a deleted or deactivated organization are locked out

for my $case ([ 'deleted', sub { $t->delete("$ORGS/$_[0]", headers => $SA) } ],
              [ 'deactivated',
                sub { $t->put("$ORGS/$_[0]", { is_active => $FALSE },
                              headers => $SA) } ])
{
    my ($what, $act) = @$case;
    my $slug = "lock-$what";
    my $id = org($slug);
    my $u = member($slug, 'admin');

    is($t->post('/api/v1/auth/refresh',
                { refresh_token => $u->{refresh_token} })->{status}, 200,
       "$what: before, the user refreshes");
    my $fresh = $t->login($u->{email}, $u->{password});
    is($fresh->{status}, 200, "$what: ... and signs in");

    is($act->($id)->{status}, 200, "$what: the super admin acts: 200");

    error_is($t->login($u->{email}, $u->{password}), 401, 'UNAUTHORIZED',
             "$what: its user cannot sign in");
    error_is($t->login($u->{email}, $u->{password}, organization_slug => $slug),
             401, 'UNAUTHORIZED', "$what: ... not even naming the slug");
    error_is($t->post('/api/v1/auth/refresh',
                      { refresh_token => $fresh->{json}{data}{refresh_token} }),
             401, 'UNAUTHORIZED', "$what: ... nor refresh");
}

###########################################################################
# "oneself or locations:read" for a user's locations

{
    org('gamma');
    my $g1 = member('gamma', 'user');
    my $g2 = member('gamma', 'user');
    $t->psql(q{DELETE FROM role_permissions rp USING roles r, permissions p
                WHERE r.id = rp.role_id AND p.id = rp.permission_id
                  AND r.organization_id = (SELECT id FROM organizations
                                            WHERE slug = 'gamma')
                  AND r.name = 'user' AND p.name = 'locations:read'});
    my $r = $t->login($g1->{email}, $g1->{password});
    my $h = $t->auth_header($r->{json}{data}{access_token});
    error_is($t->get($LOC, headers => $h), 403, 'FORBIDDEN',
             'without locations:read, the list: 403');
    is($t->get("$LOC/user/$g1->{id}", headers => $h)->{status}, 200,
       '... but one\'s own locations: 200');
    error_is($t->get("$LOC/user/$g2->{id}", headers => $h), 403, 'FORBIDDEN',
             '... and another user\'s: 403');
}

sub uri {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

done_testing();
