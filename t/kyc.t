#!/usr/bin/perl
# KYC requests: a user asks for a verification level, which makes the
# account's kyc_status pending; one request may be pending at a time; an
# administrator decides through PUT /users/{id} (kyc_status), which
# closes the request; every step is audited.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is is_uuid is_rfc3339_utc);
use UM::Users;

my $t = UM::Test->new(workers => 2);
my $users = UM::Users->new($t);

my $REQUEST = '/api/v1/users/kyc/request';
my $STATUS = '/api/v1/users/kyc/status';

my $admin = $users->admin;

sub has_field {
    my ($r, $field) = @_;
    my $d = eval { $r->{json}{error}{details} } // [];
    return scalar grep { ref $_ eq 'HASH' && ($_->{field} // '') eq $field }
        @$d;
}

sub kyc_row {
    my ($user) = @_;
    my $row = $t->psql(
        q{SELECT status, coalesce(decided_by::text, ''),
                 decided_at IS NOT NULL, verification_level
            FROM kyc_requests WHERE user_id = :'p1'
           ORDER BY requested_at DESC LIMIT 1}, $user);
    return [split /\|/, $row, -1];
}

sub audit_rows {
    my ($action, $resource_id) = @_;
    return scalar $t->psql(
        q{SELECT count(*) FROM audit_logs
           WHERE action = :'p1' AND resource_id = :'p2'
             AND status = 'success'}, $action, $resource_id);
}

my $u = $users->user($admin);

# input checks first: nothing is recorded
my $r = $users->call(POST => $REQUEST, $u, { verification_level => 'gold' });
error_is($r, 422, 'VALIDATION_FAILED', 'an unknown level: 422');
ok(has_field($r, 'verification_level'), '... naming verification_level');
$r = $users->call(POST => $REQUEST, $u, {});
error_is($r, 422, 'VALIDATION_FAILED', 'no level: 422');
ok(has_field($r, 'verification_level'), '... naming verification_level');
$r = $users->call(POST => $REQUEST, $u, { verification_level => 3 });
error_is($r, 422, 'VALIDATION_FAILED', 'a level that is no string: 422');
error_is($users->call(POST => $REQUEST, undef,
                      { verification_level => 'basic' }),
         401, 'UNAUTHORIZED', 'without a token: 401');
is(scalar $t->psql(q{SELECT count(*) FROM kyc_requests
                      WHERE user_id = :'p1'}, $u->{id}),
   0, 'no request recorded');

$r = $users->call(GET => $STATUS, $u);
is($r->{status}, 200, 'status before any request: 200');
is_deeply($r->{json}{data}, { kyc_status => undef, request => undef },
          '... no status, no request');

# the request
$r = $users->call(POST => $REQUEST, $u, { verification_level => 'basic' });
is($r->{status}, 200, 'a request: 200') or diag($r->{content});
my $d = $r->{json}{data};
is($d->{success}, JSON::PP::true(), '... success');
like($d->{message}, qr/KYC verification request initiated/,
     '... the message of seed 004');
is($d->{kyc_status}, 'pending', '... kyc_status pending');
ok(is_uuid($d->{request}{id}), '... the request has an id');
is($d->{request}{verification_level}, 'basic', '... and its level');
is($d->{request}{status}, 'pending', '... pending');
ok(is_rfc3339_utc($d->{request}{requested_at}), '... requested_at');
my $request_id = $d->{request}{id};

$r = $users->call(GET => "/api/v1/users/$u->{id}", $u);
is($r->{json}{data}{kyc_status}, 'pending', 'the user is now pending');
is(audit_rows('user.kyc_request', $request_id), 1, 'the request is audited');

$r = $users->call(POST => $REQUEST, $u, { verification_level => 'enhanced' });
error_is($r, 409, 'CONFLICT', 'a second request while one is pending: 409');
is(scalar $t->psql(q{SELECT count(*) FROM kyc_requests
                      WHERE user_id = :'p1'}, $u->{id}),
   1, '... recorded nothing');

$r = $users->call(GET => $STATUS, $u);
is($r->{json}{data}{kyc_status}, 'pending', 'status: pending');
is($r->{json}{data}{request}{id}, $request_id, '... with the request');

# a user cannot decide their own
$r = $users->call(PUT => "/api/v1/users/$u->{id}", $u,
                  { kyc_status => 'approved' });
error_is($r, 403, 'FORBIDDEN', 'the user cannot approve themselves');
is(kyc_row($u->{id})->[0], 'pending', '... the request stays pending');

# nor can another user without users:update
my $peer = $users->user($admin);
$r = $users->call(PUT => "/api/v1/users/$u->{id}", $peer,
                  { kyc_status => 'approved' });
ok($r->{status} == 403 || $r->{status} == 404,
   'another user cannot approve it') or diag($r->{content});
is(kyc_row($u->{id})->[0], 'pending', '... the request stays pending');

# an administrator approves
$r = $users->call(PUT => "/api/v1/users/$u->{id}", $admin,
                  { kyc_status => 'approved' });
is($r->{status}, 200, 'the administrator approves') or diag($r->{content});
is_deeply(kyc_row($u->{id}), ['approved', $admin->{id}, 't', 'basic'],
          '... the request is closed: approved, by whom, when');
is(audit_rows('user.kyc_decision', $request_id), 1,
   '... the decision is audited on the request');
is(scalar $t->psql(
       q{SELECT actor_id FROM audit_logs
          WHERE action = 'user.kyc_decision' AND resource_id = :'p1'},
       $request_id),
   $admin->{id}, '... with the administrator as actor');
is(audit_rows('user.update', $u->{id}), 1,
   '... next to the change of the user');

$r = $users->call(GET => $STATUS, $u);
is($r->{json}{data}{kyc_status}, 'approved', 'status: approved');
is($r->{json}{data}{request}{status}, 'approved', '... the request too');
is($r->{json}{data}{request}{decided_by}, $admin->{id}, '... decided_by');
ok(is_rfc3339_utc($r->{json}{data}{request}{decided_at}), '... decided_at');

# a later request, rejected
$r = $users->call(POST => $REQUEST, $u, { verification_level => 'premium' });
is($r->{status}, 200, 'a later request for another level: 200')
    or diag($r->{content});
$request_id = $r->{json}{data}{request}{id};
$r = $users->call(PUT => "/api/v1/users/$u->{id}", $admin,
                  { kyc_status => 'rejected' });
is($r->{status}, 200, 'the administrator rejects it');
is_deeply(kyc_row($u->{id}), ['rejected', $admin->{id}, 't', 'premium'],
          '... the request is closed: rejected');
is(scalar $t->psql(q{SELECT count(*) FROM kyc_requests
                      WHERE user_id = :'p1'}, $u->{id}),
   2, 'both requests are kept');

# an administrator's other changes leave requests alone
$r = $users->call(POST => $REQUEST, $u, { verification_level => 'basic' });
is($r->{status}, 200, 'a third request');
$users->call(PUT => "/api/v1/users/$u->{id}", $admin,
             { department => 'Finance' });
is(kyc_row($u->{id})->[0], 'pending',
   'a change of another field leaves it pending');

done_testing();
