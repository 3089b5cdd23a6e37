#!/usr/bin/perl
# Users, one at a time: POST /users, GET and PUT /users/{id}, the soft
# DELETE (and "usermgmt_user_delete off"), reactivation and PUT .../status,
# each with what PostgreSQL stored and the audit row it wrote.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use UM::Test qw(error_is is_uuid is_rfc3339_utc);
use UM::Users;

my $t = UM::Test->new(
    workers => 2,
    http_extra => <<'EOF');
    server {
        listen 127.0.0.1:%%PORT2%%;
        usermgmt_user_delete off;
        location /api/v1/ { usermgmt_api; }
    }
EOF

my $u = UM::Users->new($t);
my $admin = $u->admin;

sub details_of {
    my ($r) = @_;
    my $d = eval { $r->{json}{error}{details} };
    return ref $d eq 'ARRAY' ? @$d : ();
}

sub names_field {
    my ($r, $field, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok((grep { ($_->{field} // '') eq $field } details_of($r)),
       "$name: names $field") or diag($r->{content});
}

sub audit_count {
    my ($action, $id, $actor) = @_;
    return scalar $t->psql(
        q{SELECT count(*) FROM audit_logs
           WHERE action = :'p1' AND resource = 'user' AND resource_id = :'p2'
             AND actor_id = :'p3' AND status = 'success'},
        $action, $id, $actor);
}

sub stored {
    my ($id, $expr) = @_;
    return scalar $t->psql("SELECT $expr FROM users WHERE id = :'p1'", $id);
}

sub me { $u->call(GET => '/api/v1/users/me', $_[0]) }

###########################################################################
# POST /users

my $boss = $u->user($admin, user_type => 'admin', first_name => 'Olga');
ok(is_uuid($boss->{id}), 'the super admin makes an organization admin');
is($boss->{user}{user_type}, 'admin', '... user_type admin');

my $email = $t->unique_email('new');
my $r = $u->call(POST => '/api/v1/users', $boss, {
    email => $email, username => "newbie_$$", password => 'Quite-Long-Pw-77',
    first_name => 'Ada', last_name => 'Lovelace', phone => '+441234567890',
    avatar_url => 'https://example.com/a.png', department => 'Engineering',
    user_type => 'manager', date_of_birth => '1915-12-10',
    address => { street => '12 St James Sq', city => 'London',
                 postal_code => 'SW1Y', country => 'UK' },
    kyc_status => 'approved', is_active => JSON::PP::true,
    preferences => { theme => 'dark' } });
is($r->{status}, 201, 'POST /users by an org admin: 201') or diag($r->{content});
my $ada = eval { $r->{json}{data} } // {};
ok(is_uuid($ada->{id}), 'the answer carries an id');
is($ada->{email}, $email, '... the email');
is($ada->{username}, "newbie_$$", '... the username');
is($ada->{user_type}, 'manager', '... user_type manager');
is($ada->{kyc_status}, 'approved', '... kyc_status');
is($ada->{date_of_birth}, '1915-12-10', '... date_of_birth');
is(eval { $ada->{address}{city} }, 'London', '... the address');
is(eval { $ada->{preferences}{theme} }, 'dark', '... the preferences');
is($ada->{created_by}, $boss->{id}, '... created_by is the caller');
is($ada->{organization_id}, $admin->{org}, "... in the caller's organization");
ok(is_rfc3339_utc($ada->{created_at}), '... created_at in RFC 3339');
ok(!exists $ada->{password} && !exists $ada->{password_hash},
   '... and no password or hash');
like(stored($ada->{id}, 'password_hash'), qr/^\$argon2id\$/,
     'PostgreSQL holds an argon2id hash');
is(stored($ada->{id}, 'created_by'), $boss->{id}, '... and created_by');
is(audit_count('user.create', $ada->{id}, $boss->{id}), 1,
   'the audit trail has user.create by the caller');
my ($leak) = $t->psql(q{SELECT count(*) FROM audit_logs
                         WHERE changes::text LIKE '%Quite-Long-Pw-77%'
                            OR metadata::text LIKE '%Quite-Long-Pw-77%'});
is($leak, 0, '... and nowhere the password');
is($t->login($email, 'Quite-Long-Pw-77')->{status}, 200,
   'the new user can sign in');

# without a password: no sign-in until a reset
my $nopw = $t->unique_email('nopw');
$r = $u->call(POST => '/api/v1/users', $boss, { email => $nopw });
is($r->{status}, 201, 'POST /users without a password: 201')
    or diag($r->{content});
my $nopw_id = eval { $r->{json}{data}{id} };
is(stored($nopw_id, "coalesce(password_hash, 'none')"), 'none',
   '... no hash is stored');
is(eval { $r->{json}{data}{user_type} }, 'user', '... user_type user');
is(eval { $r->{json}{data}{is_active} }, JSON::PP::true, '... active');
error_is($t->login($nopw, 'anything-at-all-1'), 401, 'UNAUTHORIZED',
         '... and it cannot sign in');

# validation
for my $case ([{ first_name => 'X' }, 'email', 'no email'],
              [{ email => 'not-an-email' }, 'email', 'a bad email'],
              [{ email => $t->unique_email, phone => '12345' }, 'phone',
               'a phone not in E.164'],
              [{ email => $t->unique_email, first_name => 'R2-D2!' },
               'first_name', 'a name with digits'],
              [{ email => $t->unique_email, first_name => 'x' x 101 },
               'first_name', 'a name of 101 letters'],
              [{ email => $t->unique_email, user_type => 'root' },
               'user_type', 'an unknown user_type'],
              [{ email => $t->unique_email, kyc_status => 'maybe' },
               'kyc_status', 'an unknown kyc_status'],
              [{ email => $t->unique_email, is_active => 'yes' },
               'is_active', 'is_active not a boolean'],
              [{ email => $t->unique_email, date_of_birth => '2001-02-29' },
               'date_of_birth', 'an impossible date'],
              [{ email => $t->unique_email, organization_id => 'acme' },
               'organization_id', 'organization_id not a UUID'],
              [{ email => $t->unique_email, is_super_admin => JSON::PP::true },
               'is_super_admin', 'is_super_admin'],
              [{ email => $t->unique_email, password => 'short' },
               'password', 'a short password'],
              [{ email => $t->unique_email, password => 'password123' },
               'password', 'a common password']) {
    my ($body, $field, $what) = @$case;
    $r = $u->call(POST => '/api/v1/users', $boss, $body);
    error_is($r, 422, 'VALIDATION_FAILED', "POST /users, $what: 422");
    names_field($r, $field, "... $what");
}
is(scalar $t->psql(q{SELECT count(*) FROM users WHERE first_name = 'R2-D2!'
                       OR user_type NOT IN ('user', 'manager', 'admin')}),
   0, 'nothing of them was stored');

$r = $u->call(POST => '/api/v1/users', $boss, { email => uc $email });
error_is($r, 409, 'CONFLICT', 'the same email (in capitals): 409');
names_field($r, 'email', '... 409');
$r = $u->call(POST => '/api/v1/users', $boss,
              { email => $t->unique_email, username => "NEWBIE_$$" });
error_is($r, 409, 'CONFLICT', 'the same username: 409');
names_field($r, 'username', '... 409');

# organizations
my $org_b = $u->org('crud-b');
$r = $u->call(POST => '/api/v1/users', $boss,
              { email => $t->unique_email, organization_id => $org_b });
error_is($r, 403, 'FORBIDDEN', "an org admin naming another organization: 403");
is(scalar $t->psql(q{SELECT count(*) FROM users WHERE organization_id = :'p1'},
                   $org_b), 0, '... nothing was created there');
$r = $u->call(POST => '/api/v1/users', $boss,
              { email => $t->unique_email, organization_id => $admin->{org} });
is($r->{status}, 201, 'an org admin naming their own organization: 201');
$r = $u->call(POST => '/api/v1/users', $admin,
              { email => $t->unique_email, organization_id => $org_b,
                user_type => 'admin' });
is($r->{status}, 201, 'the super admin naming another organization: 201')
    or diag($r->{content});
is(eval { $r->{json}{data}{organization_id} }, $org_b, '... made there');
$r = $u->call(POST => '/api/v1/users', $admin,
              { email => $t->unique_email,
                organization_id => '00000000-0000-4000-8000-00000000dead' });
error_is($r, 422, 'VALIDATION_FAILED', 'an organization that does not exist: 422');
names_field($r, 'organization_id', '... 422');

# organizations.max_users
$t->psql(q{UPDATE organizations SET max_users = 2 WHERE id = :'p1'}, $org_b);
$r = $u->call(POST => '/api/v1/users', $admin,
              { email => $t->unique_email, organization_id => $org_b });
is($r->{status}, 201, 'max_users 2: the second user fits');
my $full = $t->unique_email('full');
$r = $u->call(POST => '/api/v1/users', $admin,
              { email => $full, organization_id => $org_b });
error_is($r, 409, 'CONFLICT', '... the third is refused: 409');
is(scalar $t->psql(q{SELECT count(*) FROM users WHERE email = :'p1'}, $full),
   0, '... and not stored');

###########################################################################
# GET /users/{id}

$r = $u->call(GET => "/api/v1/users/$ada->{id}", $boss);
is($r->{status}, 200, 'GET /users/{id}: 200');
is(eval { $r->{json}{data}{email} }, $email, '... the user');
$r = $u->call(GET => '/api/v1/users/00000000-0000-4000-8000-000000000000',
              $boss);
error_is($r, 404, 'NOT_FOUND', 'GET of a user that does not exist: 404');
error_is($u->call(GET => '/api/v1/users/nope', $boss), 400, 'BAD_REQUEST',
         'GET /users/nope: 400');

###########################################################################
# PUT /users/{id}

my $kim = $u->user($boss, first_name => 'Kim', last_name => 'Park',
                   phone => '+821012345678');
$t->psql(q{UPDATE users SET email_verified = true, phone_verified = true
            WHERE id = :'p1'}, $kim->{id});
my $new_email = $t->unique_email('kim2');
$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $boss,
              { first_name => 'Kimberly', email => $new_email,
                kyc_status => 'pending', department => 'Ops' });
is($r->{status}, 200, 'PUT /users/{id} by an org admin: 200')
    or diag($r->{content});
my $d = eval { $r->{json}{data} } // {};
is(eval { $d->{user}{first_name} }, 'Kimberly', 'the answer holds the user');
is(eval { $d->{user}{last_name} }, 'Park', '... with the fields not sent kept');
is_deeply(eval { $d->{changes}{first_name} }, { old => 'Kim', new => 'Kimberly' },
          'changes.first_name: {old, new}');
is_deeply(eval { $d->{changes}{email} }, { old => $kim->{email}, new => $new_email },
          'changes.email');
is_deeply(eval { $d->{changes}{email_verified} },
          { old => JSON::PP::true, new => JSON::PP::false },
          'a new email is not verified');
is_deeply(eval { $d->{changes}{kyc_status} }, { old => undef, new => 'pending' },
          'changes.kyc_status from null');
ok(!exists $d->{changes}{last_name} && !exists $d->{changes}{updated_at},
   'changes lists only what changed');
is(stored($kim->{id}, q{first_name || ',' || email || ',' || email_verified
                        || ',' || phone_verified}),
   "Kimberly,$new_email,false,true", 'PostgreSQL holds it');
my ($chg) = $t->psql(q{SELECT changes->'first_name'->>'new' FROM audit_logs
                        WHERE action = 'user.update' AND resource_id = :'p1'
                          AND actor_id = :'p2'}, $kim->{id}, $boss->{id});
is($chg, 'Kimberly', 'the audit row user.update holds the changes');
$kim->{email} = $new_email;

$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $boss, { phone => '+821099999999' });
is(eval { $r->{json}{data}{changes}{phone_verified}{new} }, JSON::PP::false,
   'a new phone is not verified either');
$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $boss, {});
is($r->{status}, 200, 'an empty update: 200');
is_deeply(eval { $r->{json}{data}{changes} }, {}, '... with no changes');
$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $boss, { email => uc $email });
error_is($r, 409, 'CONFLICT', "another user's email: 409");
$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $boss, { user_type => 'god' });
error_is($r, 422, 'VALIDATION_FAILED', 'an unknown user_type: 422');
$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $boss, { password => 'x' });
error_is($r, 422, 'VALIDATION_FAILED', 'a password in PUT: 422 (unknown field)');
$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $boss, [1]);
error_is($r, 400, 'BAD_REQUEST', 'a body that is not an object: 400');

# oneself
$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $kim,
              { last_name => 'Parker', preferences => { lang => 'ko' } });
is($r->{status}, 200, 'a user changes their own profile: 200')
    or diag($r->{content});
is(eval { $r->{json}{data}{user}{last_name} }, 'Parker', '... changed');
for my $f (qw(kyc_status is_active user_type email is_verified)) {
    my $v = $f eq 'is_active' || $f eq 'is_verified' ? JSON::PP::true
          : $f eq 'email' ? $t->unique_email : $f eq 'user_type' ? 'admin'
          : 'approved';
    $r = $u->call(PUT => "/api/v1/users/$kim->{id}", $kim,
                  { first_name => 'Sneaky', $f => $v });
    error_is($r, 403, 'FORBIDDEN', "a user setting their own $f: 403");
    names_field($r, $f, "... $f");
}
is(stored($kim->{id}, q{first_name || ',' || user_type}), 'Kimberly,user',
   '... and nothing of those requests was stored');
$r = $u->call(PUT => "/api/v1/users/$ada->{id}", $kim, { first_name => 'Eve' });
error_is($r, 403, 'FORBIDDEN', "a user changing another user: 403");

# deactivation through PUT ends the sessions
my $kim_old = $kim->{token};
$r = $u->call(PUT => "/api/v1/users/$kim->{id}", $boss, { is_active => JSON::PP::false });
is($r->{status}, 200, 'PUT is_active=false: 200');
error_is(me($kim), 401, 'UNAUTHORIZED', "... the user's access token is revoked");
is(scalar $t->psql(q{SELECT count(*) FROM sessions WHERE user_id = :'p1'
                       AND (revoked_at IS NULL OR revoked_reason <> 'user_disabled')},
                   $kim->{id}), 0, '... every session ended (user_disabled)');
error_is($t->login($kim->{email}, $kim->{password}), 401, 'UNAUTHORIZED',
         '... and it cannot sign in');
$r = $u->call(PUT => "/api/v1/users/$boss->{id}", $boss, { is_active => JSON::PP::false });
error_is($r, 409, 'CONFLICT', 'deactivating oneself: 409');

###########################################################################
# PUT /users/{id}/status

$r = $u->call(PUT => "/api/v1/users/$kim->{id}/status", $boss, { status => 'active' });
is($r->{status}, 200, 'PUT /status {"status":"active"}: 200') or diag($r->{content});
is(eval { $r->{json}{data}{is_active} }, JSON::PP::true, '... is_active true');
is(stored($kim->{id}, 'is_active'), 't', '... stored');
$u->relogin($kim);
is(me($kim)->{status}, 200, '... the user signs in again');
is(audit_count('user.status', $kim->{id}, $boss->{id}), 1,
   'the audit trail has user.status');

$r = $u->call(PUT => "/api/v1/users/$kim->{id}/status", $boss,
              { is_active => JSON::PP::false });
is($r->{status}, 200, 'PUT /status {"is_active":false}: 200');
is(eval { $r->{json}{data}{status} }, 'inactive', '... status inactive');
is(eval { $r->{json}{data}{sessions_ended} }, 1, '... one session ended');
error_is(me($kim), 401, 'UNAUTHORIZED', "... the user's token is revoked");
for my $case ([{}, 'is_active', 'an empty body'],
              [{ status => 'paused' }, 'status', 'an unknown status'],
              [{ is_active => 'no' }, 'is_active', 'is_active not a boolean'],
              [{ is_active => JSON::PP::true, status => 'inactive' }, 'status',
               'is_active and status that disagree']) {
    my ($body, $field, $what) = @$case;
    $r = $u->call(PUT => "/api/v1/users/$kim->{id}/status", $boss, $body);
    error_is($r, 422, 'VALIDATION_FAILED', "PUT /status, $what: 422");
    names_field($r, $field, "... $what");
}
$r = $u->call(PUT => "/api/v1/users/$boss->{id}/status", $boss,
              { status => 'inactive' });
error_is($r, 409, 'CONFLICT', 'deactivating oneself: 409');

###########################################################################
# POST /users/{id}/reactivate

$r = $u->call(POST => "/api/v1/users/$kim->{id}/reactivate", $boss);
is($r->{status}, 200, 'reactivating an inactive user: 200') or diag($r->{content});
is(eval { $r->{json}{data}{user}{is_active} }, JSON::PP::true, '... active');
$r = $u->call(POST => "/api/v1/users/$kim->{id}/reactivate", $boss);
error_is($r, 409, 'CONFLICT', 'reactivating an active user: 409');

###########################################################################
# DELETE /users/{id}

my $del = $u->user($boss, username => "gone_$$");
my $second = $t->login($del->{email}, $del->{password})->{json}{data};
$r = $u->call(DELETE => "/api/v1/users/$del->{id}", $boss);
is($r->{status}, 200, 'DELETE /users/{id}: 200') or diag($r->{content});
is(eval { $r->{json}{data}{user_id} }, $del->{id}, '... names the user');
is(eval { $r->{json}{data}{sessions_ended} }, 2, '... two sessions ended');
is(stored($del->{id}, q{is_active || ',' || (deleted_at IS NOT NULL)}),
   'false,true', 'PostgreSQL: is_active false, deleted_at set');
is(scalar $t->psql(q{SELECT string_agg(DISTINCT revoked_reason, ',')
                       FROM sessions WHERE user_id = :'p1'}, $del->{id}),
   'admin', '... the sessions revoked (admin)');
error_is(me($del), 401, 'UNAUTHORIZED', "the user's access token: 401");
error_is($u->call(GET => '/api/v1/users/me', { token => $second->{access_token} }),
         401, 'UNAUTHORIZED', '... and that of the other session');
error_is($t->post('/api/v1/auth/refresh', { refresh_token => $del->{refresh} }),
         401, 'UNAUTHORIZED', '... its refresh token: 401');
error_is($t->login($del->{email}, $del->{password}), 401, 'UNAUTHORIZED',
         '... it cannot sign in');
$r = $u->call(GET => "/api/v1/users/$del->{id}", $boss);
ok(is_rfc3339_utc(eval { $r->{json}{data}{deleted_at} }),
   'an admin still sees the deleted user, with deleted_at');
error_is($u->call(PUT => "/api/v1/users/$del->{id}", $boss,
                  { first_name => 'Ghost' }),
         404, 'NOT_FOUND', 'PUT on a deleted user: 404');
error_is($u->call(PUT => "/api/v1/users/$del->{id}/status", $boss,
                  { is_active => JSON::PP::true }),
         404, 'NOT_FOUND', 'PUT .../status on a deleted user: 404');
error_is($u->call(DELETE => "/api/v1/users/$del->{id}", $boss), 404, 'NOT_FOUND',
         'deleting again: 404');
is(audit_count('user.delete', $del->{id}, $boss->{id}), 1,
   'the audit trail has user.delete');

my $again = $u->user($boss, email => $del->{email}, username => "gone_$$");
ok(is_uuid($again->{id}) && $again->{id} ne $del->{id},
   'the email and username are free for a new account');
$r = $u->call(POST => "/api/v1/users/$del->{id}/reactivate", $boss);
error_is($r, 409, 'CONFLICT',
         'reactivating when the email was taken since: 409');
is(stored($del->{id}, '(deleted_at IS NOT NULL)'), 't', '... still deleted');
$r = $u->call(DELETE => "/api/v1/users/$again->{id}", $boss);
is($r->{status}, 200, 'the new account is deleted too');
$r = $u->call(POST => "/api/v1/users/$del->{id}/reactivate", $boss);
is($r->{status}, 200, 'now the first one can be reactivated: 200')
    or diag($r->{content});
is(stored($del->{id}, q{is_active || ',' || (deleted_at IS NULL)}), 'true,true',
   '... active and not deleted');
is($t->login($del->{email}, $del->{password})->{status}, 200,
   '... and it signs in again');
is(audit_count('user.reactivate', $del->{id}, $boss->{id}), 1,
   'the audit trail has user.reactivate');

error_is($u->call(DELETE => "/api/v1/users/$boss->{id}", $boss), 409, 'CONFLICT',
         'deleting oneself: 409');

# usermgmt_user_delete off
my $keep = $u->user($boss, login => 0);
$r = $t->request('DELETE', "/api/v1/users/$keep->{id}",
                 { port => $t->port2, headers => $t->auth_header($boss->{token}) });
error_is($r, 403, 'FORBIDDEN', 'usermgmt_user_delete off: 403');
like(eval { $r->{json}{error}{message} } // '', qr/disabled/, '... "disabled"');
is(stored($keep->{id}, '(deleted_at IS NULL)'), 't', '... the user is kept');
$r = $t->request('GET', "/api/v1/users/$keep->{id}",
                 { port => $t->port2, headers => $t->auth_header($boss->{token}) });
is($r->{status}, 200, '... while the rest of the API answers there');

###########################################################################
# a change and its audit row commit together

$t->psql(q{CREATE FUNCTION test_refuse_audit() RETURNS trigger
           LANGUAGE plpgsql AS $$ BEGIN
               IF NEW.action LIKE 'user.%' THEN
                   RAISE EXCEPTION 'audit refused';
               END IF;
               RETURN NEW;
           END $$;
           CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_logs
               FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()});
my $lost = $t->unique_email('lost');
$r = $u->call(POST => '/api/v1/users', $boss, { email => $lost });
is($r->{status}, 500, 'POST /users whose audit row fails: 500');
is(scalar $t->psql(q{SELECT count(*) FROM users WHERE email = :'p1'}, $lost), 0,
   '... and no user was created');
$r = $u->call(PUT => "/api/v1/users/$ada->{id}", $boss, { first_name => 'Lost' });
is($r->{status}, 500, 'PUT /users/{id} whose audit row fails: 500');
is(stored($ada->{id}, 'first_name'), 'Ada', '... and nothing was changed');
$r = $u->call(DELETE => "/api/v1/users/$ada->{id}", $boss);
is($r->{status}, 500, 'DELETE whose audit row fails: 500');
is(stored($ada->{id}, '(deleted_at IS NULL)'), 't', '... still there');
$t->psql(q{DROP TRIGGER test_refuse_audit ON audit_logs;
           DROP FUNCTION test_refuse_audit()});

done_testing();
