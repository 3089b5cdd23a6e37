#!/usr/bin/perl
# Sessions: refresh-token rotation and reuse detection, logout, password
# changes (which end the other sessions at once), PUT /users/me, and the
# audit rows all of them leave.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use UM::Test qw(error_is is_uuid);
use UM::JWT qw(jwt_decode jwt_verify);

my $t = UM::Test->new(workers => 2);

my $ME = '/api/v1/users/me';
my $REFRESH = '/api/v1/auth/refresh';
my $LOGOUT = '/api/v1/auth/logout';

sub me { $t->get($ME, headers => $t->auth_header($_[0])) }
sub refresh { $t->post($REFRESH, { refresh_token => $_[0] }) }

sub details_of {
    my ($r) = @_;
    my $d = eval { $r->{json}{error}{details} };
    return ref $d eq 'ARRAY' ? @$d : ();
}

sub has_detail {
    my ($r, $field, $rule, $name) = @_;
    my @hit = grep {
        ref $_ eq 'HASH' && ($_->{field} // '') eq $field
            && (!defined $rule || ($_->{rule} // '') eq $rule)
    } details_of($r);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return ok(@hit, $name) || diag('got: ' . ($r->{content} // ''));
}

# a 401 for a token that was valid and has been revoked
sub revoked_ok {
    my ($tok, $name) = @_;
    my $r = me($tok);
    subtest $name => sub {
        error_is($r, 401, 'UNAUTHORIZED', 'status 401 UNAUTHORIZED');
        my $www = $r->{headers}{'www-authenticate'} // '';
        like($www, qr/error="invalid_token"/, 'error="invalid_token"');
        like($www, qr/error_description="token revoked"/,
             'error_description="token revoked"');
    };
}

sub session_of {
    my ($access) = @_;
    my (undef, $p) = jwt_decode($access);
    return $p ? $p->{sid} : undef;
}

sub login_ok {
    my ($u, $password) = @_;
    my $r = $t->login($u->{email}, $password // $u->{password});
    die "login: $r->{status} $r->{content}\n" unless $r->{status} == 200;
    return $r->{json}{data};
}

###########################################################################
# refresh: rotation

my $u = $t->new_user;
my $s1 = $u->{login};
my $s2 = login_ok($u);                # a second session of the same user

my $r = refresh($s1->{refresh_token});
is($r->{status}, 200, 'refresh: 200') or diag($r->{content});
like($r->{headers}{'cache-control'} // '', qr/\bno-store\b/,
     'Cache-Control: no-store');
my $d = eval { $r->{json}{data} } // {};
ok($d->{access_token} && $d->{refresh_token}, 'a new access and refresh token');
isnt($d->{access_token}, $s1->{access_token}, 'the access token is new');
isnt($d->{refresh_token}, $s1->{refresh_token}, 'the refresh token is new');
is($d->{token_type}, 'bearer', 'token_type bearer');
is($d->{expires_in}, 900, 'expires_in 900');
ok(jwt_verify($d->{access_token}, key => $t->jwt_secret),
   'the new access token verifies with the harness key');
is(session_of($d->{access_token}), session_of($s1->{access_token}),
   'the same session (sid)');
my (undef, $np) = jwt_decode($d->{access_token});
my (undef, $op) = jwt_decode($s1->{access_token});
isnt($np->{jti}, $op->{jti}, 'a new jti');
is($np->{sub}, $u->{id}, 'the same sub');
is(me($d->{access_token})->{status}, 200, 'the new access token works');
is(me($s1->{access_token})->{status}, 200,
   'the access token of the first pair still works until the reuse');

my @chain = ($s1->{refresh_token}, $d->{refresh_token});
my @access = ($s1->{access_token}, $d->{access_token});
for my $i (1 .. 2) {
    $r = refresh($chain[-1]);
    is($r->{status}, 200, "refresh again ($i): 200") or diag($r->{content});
    push @chain, eval { $r->{json}{data}{refresh_token} } // 'none';
    push @access, eval { $r->{json}{data}{access_token} } // 'none';
}
my %uniq = map { $_ => 1 } @chain;
is(scalar keys %uniq, 4, 'every refresh token of the chain differs');

# reuse: an old refresh token ends the family
$r = refresh($chain[1]);
error_is($r, 401, 'UNAUTHORIZED', 'reusing an old refresh token: 401');
$r = refresh($chain[-1]);
error_is($r, 401, 'UNAUTHORIZED',
         'after the reuse the newest refresh token fails too');
revoked_ok($access[$_], "after the reuse, access token $_ of the session")
    for 0 .. $#access;
is(scalar $t->psql(q{SELECT revoked_reason FROM sessions WHERE id = :'p1'},
                   session_of($access[0])),
   'reuse', 'the session is revoked with reason reuse');

# the other session lives on
is(me($s2->{access_token})->{status}, 200,
   'the other session of the user keeps its access token');
$r = refresh($s2->{refresh_token});
is($r->{status}, 200, '... and its refresh token') or diag($r->{content});
$s2 = eval { $r->{json}{data} } // {};

# bad refresh tokens
error_is(refresh('A' x 43), 401, 'UNAUTHORIZED', 'an unknown refresh token: 401');
$r = refresh($s2->{access_token});
ok($r->{status} == 401 || $r->{status} == 422,
   'an access token as refresh token: 401 (or 422: over 256 characters)')
    or diag($r->{content});
$r = $t->post($REFRESH, {});
error_is($r, 422, 'VALIDATION_FAILED', 'no refresh_token: 422');
has_detail($r, 'refresh_token', 'required', '... field refresh_token required');
$r = $t->post($REFRESH, { refresh_token => 'x' x 300 });
ok($r->{status} == 401 || $r->{status} == 422,
   'a 300-character refresh token: 401 or 422') or diag($r->{content});

# an expired session does not refresh
{
    my $d3 = login_ok($u);
    $t->psql(q{UPDATE sessions SET expires_at = now() - interval '1 second'
                WHERE id = :'p1'}, session_of($d3->{access_token}));
    $t->psql(q{UPDATE refresh_tokens SET expires_at = now() - interval '1 second'
                WHERE session_id = :'p1'}, session_of($d3->{access_token}));
    error_is(refresh($d3->{refresh_token}), 401, 'UNAUTHORIZED',
             'a refresh token of an expired session: 401');
}

# a disabled account does not refresh
{
    my $v = $t->new_user;
    $t->psql(q{UPDATE users SET is_active = false WHERE id = :'p1'}, $v->{id});
    error_is(refresh($v->{refresh_token}), 401, 'UNAUTHORIZED',
             'a refresh token of a disabled account: 401');
}

# the same refresh token 10 times at once: at most one new pair
{
    my $v = $t->new_user;
    my @kids;
    my $at = time + 0.3;
    for my $i (1 .. 10) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
            Time::HiRes::sleep($at - time) if $at > time;
            my $res = $http->post($t->url($REFRESH),
                                  { headers => { 'content-type' =>
                                                     'application/json' },
                                    content => UM::Test::json_encode(
                                        { refresh_token =>
                                              $v->{refresh_token} }) });
            POSIX::_exit($res->{status} == 200 ? 0
                         : $res->{status} == 401 ? 1 : 2);
        }
        push @kids, $pid;
    }
    my %got;
    for my $pid (@kids) {
        waitpid($pid, 0);
        $got{ (qw(200 401 other))[$? >> 8] // 'other' }++;
    }
    cmp_ok($got{200} // 0, '<=', 1,
           '10 parallel refreshes of one token: at most one succeeds')
        or diag(explain \%got);
    is($got{other} // 0, 0, '... the others get 401') or diag(explain \%got);
}

###########################################################################
# logout

my $a = login_ok($u);
my $b = login_ok($u);
$r = $t->post($LOGOUT, undef, headers => $t->auth_header($a->{access_token}));
is($r->{status}, 200, 'logout without a body: 200') or diag($r->{content});
like($r->{headers}{'content-type'} // '', qr{^application/json\b}, '... JSON');
revoked_ok($a->{access_token}, 'the access token is refused right after logout');
error_is(refresh($a->{refresh_token}), 401, 'UNAUTHORIZED',
         'its refresh token fails');
is(me($b->{access_token})->{status}, 200, 'another session stays valid');
$r = refresh($b->{refresh_token});
is($r->{status}, 200, "... and so does its refresh token");
$b = eval { $r->{json}{data} } // {};
is(scalar $t->psql(q{SELECT revoked_reason FROM sessions WHERE id = :'p1'},
                   session_of($a->{access_token})),
   'logout', 'the session is revoked with reason logout');

$r = $t->post($LOGOUT, undef, headers => $t->auth_header($a->{access_token}));
error_is($r, 401, 'UNAUTHORIZED', 'logout again with the same token: 401');
$r = $t->post($LOGOUT, undef);
error_is($r, 401, 'UNAUTHORIZED', 'logout without a token: 401');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer realm="usermgmt"/,
     '... with WWW-Authenticate');

# clients that always send a JSON content type
for my $case (['an empty body', ''], ['{}', '{}']) {
    my $e = login_ok($u);
    $r = $t->request('POST', $LOGOUT,
                     { body => $case->[1],
                       headers => $t->auth_header($e->{access_token},
                                      'content-type' => 'application/json') });
    is($r->{status}, 200, "logout, Content-Type JSON and $case->[0]: 200")
        or diag($r->{content});
    revoked_ok($e->{access_token}, "... its access token is refused");
}

# with a JSON body naming the refresh token
my $c = login_ok($u);
$r = $t->post($LOGOUT, { refresh_token => $c->{refresh_token} },
              headers => $t->auth_header($c->{access_token}));
is($r->{status}, 200, 'logout with {refresh_token}: 200') or diag($r->{content});
revoked_ok($c->{access_token}, '... the access token is refused');
error_is(refresh($c->{refresh_token}), 401, 'UNAUTHORIZED',
         '... the refresh token fails');

$r = $t->post($LOGOUT, { everything => JSON::PP::true },
              headers => $t->auth_header($b->{access_token}));
error_is($r, 422, 'VALIDATION_FAILED', 'logout with an unknown field: 422');
is(me($b->{access_token})->{status}, 200, '... and nothing was ended');

# the refresh token of another user's session is not ended by my logout
{
    my $w = $t->new_user;
    my $mine = login_ok($u);
    $r = $t->post($LOGOUT, { refresh_token => $w->{refresh_token} },
                  headers => $t->auth_header($mine->{access_token}));
    ok($r->{status} == 200 || $r->{status} == 403 || $r->{status} == 422,
       "logout naming another user's refresh token answers")
        or diag($r->{content});
    is(me($w->{access_token})->{status}, 200,
       "... the other user's session is untouched");
    is(refresh($w->{refresh_token})->{status}, 200,
       "... and their refresh token still works");
}

###########################################################################
# change-password

for my $route (['POST', '/api/v1/auth/change-password'],
               ['PUT', '/api/v1/users/password']) {
    my ($method, $path) = @$route;
    # a local part that is no dictionary word in any normalization, so the
    # contains_identity case below cannot also be "common"
    my $v = $t->new_user(email => $t->unique_email('xq-wombat-zyx'));
    my $cur = $v->{login};
    my $oth = login_ok($v);
    my $oth2 = login_ok($v);
    my $change = sub {
        my ($body, $tok) = @_;
        return $t->request($method, $path,
                           { body => $body,
                             headers => $t->auth_header($tok
                                                        // $cur->{access_token}) });
    };

    $r = $change->({ current_password => 'Not-The-Password-1',
                     new_password => 'Fresh-Secret-7781' });
    error_is($r, 401, 'UNAUTHORIZED', "$path: wrong current password: 401");
    is(me($oth->{access_token})->{status}, 200,
       "$path: ... other sessions untouched");
    is($t->login($v->{email}, $v->{password})->{status}, 200,
       "$path: ... the password is unchanged");

    for my $case (['password123', 'common'], ['short', 'min_length'],
                  ['aaaaaaaaaaaa', 'repetitive'], ['12345678', 'sequential'],
                  [(split /\@/, $v->{email})[0], 'contains_identity']) {
        my ($pw, $rule) = @$case;
        $r = $change->({ current_password => $v->{password},
                         new_password => $pw });
        error_is($r, 422, 'VALIDATION_FAILED', "$path: new password '$pw': 422");
        has_detail($r, 'new_password', $rule,
                   "$path: ... field new_password, rule $rule");
    }
    $r = $change->({ new_password => 'Fresh-Secret-7781' });
    error_is($r, 422, 'VALIDATION_FAILED', "$path: no current_password: 422");
    $r = $change->({ current_password => $v->{password},
                     new_password => 'Fresh-Secret-7781', logout_all => 1 });
    error_is($r, 422, 'VALIDATION_FAILED', "$path: an unknown field: 422");
    $r = $t->request($method, $path,
                     { body => { current_password => $v->{password},
                                 new_password => 'Fresh-Secret-7781' } });
    error_is($r, 401, 'UNAUTHORIZED', "$path: without a token: 401");

    is(me($oth->{access_token})->{status}, 200,
       "$path: other sessions still valid before the change");

    my $new = "Fresh-Secret-$$-" . length $path;
    $r = $change->({ current_password => $v->{password},
                     new_password => $new });
    is($r->{status}, 200, "$path: the change: 200") or diag($r->{content});

    error_is($t->login($v->{email}, $v->{password}), 401, 'UNAUTHORIZED',
             "$path: the old password no longer logs in");
    is($t->login($v->{email}, $new)->{status}, 200,
       "$path: the new password logs in");
    revoked_ok($oth->{access_token},
               "$path: another session's access token is refused at once");
    revoked_ok($oth2->{access_token},
               "$path: a third session's access token is refused at once");
    error_is(refresh($oth->{refresh_token}), 401, 'UNAUTHORIZED',
             "$path: another session's refresh token fails");
    is(me($cur->{access_token})->{status}, 200,
       "$path: the current session's access token still works");
    $r = refresh($cur->{refresh_token});
    is($r->{status}, 200, "$path: the current session's refresh token works")
        or diag($r->{content});
    is(scalar $t->psql(q{SELECT revoked_reason FROM sessions WHERE id = :'p1'},
                       session_of($oth->{access_token})),
       'password_change', "$path: the other session ended for password_change");
    my ($stored) = $t->psql(q{SELECT password_hash FROM users WHERE id = :'p1'},
                            $v->{id});
    like($stored, qr/^\$argon2id\$/, "$path: the new hash is argon2id");
    is(scalar $t->psql(q{SELECT count(*) FROM audit_logs
                          WHERE actor_id = :'p1'
                            AND action = 'auth.password_change'
                            AND status = 'success'}, $v->{id}),
       1, "$path: one auth.password_change audit row");
}

###########################################################################
# PUT /users/me

my $pu = $t->new_user(first_name => 'Old', last_name => 'Name');
my $tok = $pu->{access_token};
my %upd = (
    first_name => 'Grace',
    last_name => 'Hopper',
    username => "grace_$$",
    phone => '+14155550123',
    avatar_url => 'https://example.com/a.png',
    department => 'Engineering',
    date_of_birth => '1906-12-09',
    address => { street => '1 Main St', city => 'Arlington', state => 'VA',
                 postal_code => '22201', country => 'US' },
    preferences => { theme => 'dark', language => 'en' },
);
$r = $t->put($ME, \%upd, headers => $t->auth_header($tok));
is($r->{status}, 200, 'PUT /users/me: 200') or diag($r->{content});
my $user = eval { $r->{json}{data}{user} } // {};
my $changes = eval { $r->{json}{data}{changes} } // {};
for my $f (sort keys %upd) {
    is_deeply($user->{$f}, $upd{$f}, "data.user.$f is the new value");
    is_deeply(eval { $changes->{$f}{new} }, $upd{$f}, "changes.$f.new");
}
is(eval { $changes->{first_name}{old} }, 'Old', 'changes.first_name.old');
is(eval { $changes->{last_name}{old} }, 'Name', 'changes.last_name.old');
ok(exists $changes->{phone} && !defined $changes->{phone}{old},
   'changes.phone.old is null');

my $g = me($tok);
is(eval { $g->{json}{data}{first_name} }, 'Grace', 'GET /users/me shows it');
is(eval { $g->{json}{data}{address}{city} }, 'Arlington', '... the address');
is(scalar $t->psql(q{SELECT first_name || ',' || phone || ',' || date_of_birth
                       FROM users WHERE id = :'p1'}, $pu->{id}),
   'Grace,+14155550123,1906-12-09', 'PostgreSQL holds it');

$r = $t->put($ME, { first_name => 'Grace', department => 'Navy' },
             headers => $t->auth_header($tok));
is($r->{status}, 200, 'a second update: 200');
is_deeply([sort keys %{ (eval { $r->{json}{data}{changes} }) // {} }],
          ['department'], 'changes lists only what changed');

for my $f (qw(is_active email kyc_status user_type is_super_admin
              organization_id password email_verified id)) {
    $r = $t->put($ME, { $f => ($f eq 'is_active' || $f eq 'is_super_admin'
                               || $f eq 'email_verified'
                               ? JSON::PP::true : 'x') },
                 headers => $t->auth_header($tok));
    error_is($r, 422, 'VALIDATION_FAILED', "PUT /users/me with $f: 422");
    has_detail($r, $f, 'unknown', "... field $f, rule unknown");
}
$r = $t->put($ME, { first_name => 'Sneaky', is_super_admin => JSON::PP::true },
             headers => $t->auth_header($tok));
error_is($r, 422, 'VALIDATION_FAILED', 'a good field with an admin field: 422');
is(scalar $t->psql(q{SELECT first_name || ',' || is_super_admin
                       FROM users WHERE id = :'p1'}, $pu->{id}),
   'Grace,false', '... and nothing was changed');

for my $case ([{ phone => '4155550123' }, 'phone', 'a phone without +'],
              [{ phone => '+0123' }, 'phone', 'a phone starting +0'],
              [{ date_of_birth => '1906-13-45' }, 'date_of_birth',
               'an impossible date'],
              [{ date_of_birth => 'yesterday' }, 'date_of_birth', 'not a date'],
              [{ avatar_url => 'javascript:alert(1)' }, 'avatar_url',
               'a javascript: URL'],
              [{ address => { planet => 'Mars' } }, 'address',
               'an unknown address key'],
              [{ preferences => 'dark' }, 'preferences',
               'preferences not an object'],
              [{ username => 'x' }, 'username', 'a 1-character username']) {
    my ($body, $field, $what) = @$case;
    $r = $t->put($ME, $body, headers => $t->auth_header($tok));
    error_is($r, 422, 'VALIDATION_FAILED', "PUT /users/me, $what: 422");
    my @d = details_of($r);
    ok((grep { ($_->{field} // '') =~ /^\Q$field\E(?:\.|$)/ } @d),
       "... names $field") or diag($r->{content});
}

my $taken = $t->new_user(username => "taken_$$");
$r = $t->put($ME, { username => "taken_$$" }, headers => $t->auth_header($tok));
error_is($r, 409, 'CONFLICT', "another user's username: 409");
has_detail($r, 'username', 'unique', '... field username, rule unique');

error_is($t->put($ME, { first_name => 'X' }), 401, 'UNAUTHORIZED',
         'PUT /users/me without a token: 401');

###########################################################################
# the audit trail of one user through all of it

my $au = $t->new_user;
$t->login($au->{email}, 'Wrong-Password-1');
my $as2 = login_ok($au);
$r = refresh($au->{refresh_token});
my $rt2 = eval { $r->{json}{data}{refresh_token} };
refresh($au->{refresh_token});                       # reuse
$t->put($ME, { department => 'Audit' }, headers => $t->auth_header($as2->{access_token}));
$t->post('/api/v1/auth/change-password',
         { current_password => $au->{password},
           new_password => "Audit-New-Pass-$$" },
         headers => $t->auth_header($as2->{access_token}));
$t->post($LOGOUT, undef, headers => $t->auth_header($as2->{access_token}));

my %rows;
for my $line ($t->psql(q{SELECT action || '|' || status || '|' ||
                                coalesce(actor_id::text, '')
                           FROM audit_logs WHERE actor_id = :'p1'
                              OR resource_id = :'p1'
                          ORDER BY created_at}, $au->{id})) {
    my ($action, $status, $actor) = split /\|/, $line;
    push @{ $rows{$action} }, { status => $status, actor => $actor };
}
for my $case (['user.register', 'success'], ['auth.login', 'success'],
              ['auth.login_failed', 'failure'], ['auth.refresh', 'success'],
              ['auth.refresh_reused', 'failure'], ['user.update', 'success'],
              ['auth.password_change', 'success'], ['auth.logout', 'success']) {
    my ($action, $status) = @$case;
    my @hit = grep { $_->{status} eq $status && $_->{actor} eq $au->{id} }
              @{ $rows{$action} // [] };
    ok(@hit, "audit: $action, $status, actor the user")
        or diag(explain \%rows);
}
my ($chg) = $t->psql(q{SELECT changes::text FROM audit_logs
                        WHERE actor_id = :'p1' AND action = 'user.update'},
                     $au->{id});
like($chg // '', qr/"department"/, 'the user.update row holds the changes');
my ($leak) = $t->psql(q{SELECT count(*) FROM audit_logs
                         WHERE coalesce(changes::text, '') || coalesce(metadata::text, '')
                               LIKE '%' || :'p1' || '%'},
                      $au->{password});
is($leak, 0, 'no audit row holds the password');

done_testing();
