#!/usr/bin/perl
# A mutation and its audit row commit together or not at all.
#
# For each audited endpoint: make the audit insert of its action fail (a
# trigger on audit_logs, or a CHECK constraint, added with psql), call the
# endpoint, and show with psql that nothing of the change was kept; then
# take the obstacle away and show that the same call changes the data and
# writes exactly one audit row.  And a mutation that fails on its own
# leaves no audit row behind.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is);

my $t = UM::Test->new(workers => 1);

# the audit insert of the actions in this table fails
$t->psql(<<'SQL');
CREATE TABLE test_refused_actions (action text PRIMARY KEY);
CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM test_refused_actions WHERE action = NEW.action)
    THEN
        RAISE EXCEPTION 'audit row refused by the test: %', NEW.action;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();
SQL

sub refuse { $t->psql(q{INSERT INTO test_refused_actions VALUES (:'p1')}, $_[0]) }
sub allow  { $t->psql(q{DELETE FROM test_refused_actions WHERE action = :'p1'}, $_[0]) }

sub audit_rows {
    my ($action, $who) = @_;
    return scalar $t->psql(q{SELECT count(*) FROM audit_logs
                             WHERE action = :'p1'
                               AND (actor_id = :'p2' OR resource_id = :'p2')},
                           $action, $who);
}

sub user_row {
    my ($id) = @_;
    return scalar $t->psql(q{SELECT concat_ws('|', email, username, first_name,
                                              department, password_hash,
                                              last_login_at, updated_at,
                                              is_active)
                               FROM users WHERE id = :'p1'}, $id);
}

sub sessions_of {
    my ($id) = @_;
    return scalar $t->psql(q{SELECT string_agg(id || ':' || coalesce(
                                        revoked_reason, 'live'), ','
                                    ORDER BY created_at, id)
                               FROM sessions WHERE user_id = :'p1'}, $id);
}

sub tokens_of {
    my ($id) = @_;
    return scalar $t->psql(q{SELECT string_agg(r.id || ':' || (r.used_at IS
                                        NOT NULL), ',' ORDER BY r.id)
                               FROM refresh_tokens r
                               JOIN sessions s ON s.id = r.session_id
                              WHERE s.user_id = :'p1'}, $id);
}

# the state a mutation may touch, as psql sees it
sub state_of {
    my ($u) = @_;
    return join "\n", user_row($u->{id}), sessions_of($u->{id}),
                      tokens_of($u->{id});
}

my %tested;

# $action: what the endpoint audits; $call: the request (returns the
# response); $ok: the status of success; $after: extra checks once allowed
sub atomic_ok {
    my (%c) = @_;
    my $u = $c{user};
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $tested{$c{action}}++;
    subtest "$c{name} ($c{action})" => sub {
        my $before = state_of($u);
        my $rows = audit_rows($c{action}, $u->{id});

        refuse($c{action});
        my $r = $c{call}->();
        allow($c{action});
        error_is($r, 500, 'INTERNAL_ERROR',
                 'the audit row cannot be written: 500');
        is(state_of($u), $before, '... and nothing of the change was kept');
        is(audit_rows($c{action}, $u->{id}), $rows, '... nor an audit row');
        $c{unchanged}->($r) if $c{unchanged};

        $r = $c{call}->();
        is($r->{status}, $c{ok}, "the same call, allowed: $c{ok}")
            or diag($r->{content});
        isnt(state_of($u), $before, '... changes the data')
            unless $c{no_state};
        is(audit_rows($c{action}, $u->{id}), $rows + 1,
           '... and writes one audit row');
        $c{after}->($r) if $c{after};
    };
}

###########################################################################

my $u = $t->new_user(username => 'atomic_one', first_name => 'Ann');
my $auth = sub { $t->auth_header($u->{access_token}) };

# POST /auth/register: no user without its row
{
    my $email = $t->unique_email('reg');
    my $call = sub { $t->register(email => $email,
                                  password => 'Reg-' . $$ . '-pass-7q') };
    $tested{'user.register'}++;
    subtest 'register (user.register)' => sub {
        refuse('user.register');
        my $r = $call->();
        allow('user.register');
        error_is($r, 500, 'INTERNAL_ERROR', 'the audit row fails: 500');
        is($t->psql(q{SELECT count(*) FROM users WHERE email = :'p1'}, $email),
           0, '... and no user was created');
        $r = $call->();
        is($r->{status}, 201, 'allowed: 201') or diag($r->{content});
        my $id = eval { $r->{json}{data}{id} } // '';
        is(audit_rows('user.register', $id), 1, '... with its audit row');
    };
}

# POST /auth/login
atomic_ok(name => 'login', action => 'auth.login', user => $u, ok => 200,
          call => sub { $t->login($u->{email}, $u->{password}) },
          unchanged => sub {
              is($t->psql(q{SELECT count(*) FROM sessions
                             WHERE user_id = :'p1'}, $u->{id}), 1,
                 '... no session was opened');
          });

# a failed login writes only its row; refused, the answer is an error
atomic_ok(name => 'failed login', action => 'auth.login_failed', user => $u,
          ok => 401, no_state => 1,
          call => sub { $t->login($u->{email}, 'Not-the-password-9') });
# the attempt itself is counted before the password is checked
$t->psql(q{UPDATE users SET failed_login_attempts = 0 WHERE id = :'p1'},
         $u->{id});

# POST /auth/refresh: the token is rotated only with its row
{
    my $l = $t->login($u->{email}, $u->{password})->{json}{data};
    my $refresh = $l->{refresh_token};
    atomic_ok(name => 'refresh', action => 'auth.refresh', user => $u,
              ok => 200,
              call => sub { $t->post('/api/v1/auth/refresh',
                                     { refresh_token => $refresh }) },
              after => sub {
                  my ($r) = @_;
                  ok(eval { $r->{json}{data}{refresh_token} },
                     '... the old token was still good: it was not used');
              });

    # the same token again is a reuse: the session ends with its row
    atomic_ok(name => 'refresh reuse', action => 'auth.refresh_reused',
              user => $u, ok => 401,
              call => sub { $t->post('/api/v1/auth/refresh',
                                     { refresh_token => $refresh }) });
}

# POST /auth/logout
{
    my $l = $t->login($u->{email}, $u->{password})->{json}{data};
    my $tok = $l->{access_token};
    atomic_ok(name => 'logout', action => 'auth.logout', user => $u,
              ok => 200,
              call => sub { $t->post('/api/v1/auth/logout', {},
                                     headers => $t->auth_header($tok)) },
              unchanged => sub {
                  is($t->get('/api/v1/users/me',
                             headers => $t->auth_header($tok))->{status},
                     200, '... the token still works');
              });
}

# PUT /users/me
atomic_ok(name => 'profile update', action => 'user.update', user => $u,
          ok => 200,
          call => sub { $t->put('/api/v1/users/me',
                                { first_name => 'Bea', department => 'Ops' },
                                headers => $auth->()) },
          after => sub {
              is($t->psql(q{SELECT first_name FROM users WHERE id = :'p1'},
                          $u->{id}), 'Bea', '... the new name is stored');
          });

# POST /auth/change-password: hash and sessions together with the row
{
    my $new = 'New-' . $$ . '-pass-8w';
    atomic_ok(name => 'password change', action => 'auth.password_change',
              user => $u, ok => 200,
              call => sub {
                  $t->post('/api/v1/auth/change-password',
                           { current_password => $u->{password},
                             new_password => $new },
                           headers => $auth->());
              },
              unchanged => sub {
                  is($t->login($u->{email}, $u->{password})->{status}, 200,
                     '... the old password still signs in');
                  $t->psql(q{UPDATE users SET failed_login_attempts = 0
                              WHERE id = :'p1'}, $u->{id});
              },
              after => sub {
                  is($t->login($u->{email}, $new)->{status}, 200,
                     '... the new one signs in');
              });
    $u->{password} = $new;
    $u->{access_token} = $t->login($u->{email}, $new)->{json}{data}{access_token};
}

# GET /audit/export writes its own row before it sends anything
{
    my $a = $t->new_user;
    $t->psql(q{UPDATE users SET user_type = 'admin' WHERE id = :'p1'}, $a->{id});
    my $tok = $t->login($a->{email}, $a->{password})->{json}{data}{access_token};
    $tested{'audit.export'}++;
    subtest 'export (audit.export)' => sub {
        refuse('audit.export');
        my $r = $t->get('/api/v1/audit/export?format=json',
                        headers => $t->auth_header($tok));
        allow('audit.export');
        error_is($r, 500, 'INTERNAL_ERROR',
                 'the audit row fails: 500, and no export');
        is(audit_rows('audit.export', $a->{id}), 0, '... no row');
        $r = $t->get('/api/v1/audit/export?format=json',
                     headers => $t->auth_header($tok));
        is($r->{status}, 200, 'allowed: 200');
        is(audit_rows('audit.export', $a->{id}), 1, '... one row');
    };
}

###########################################################################
# a CHECK constraint instead of a trigger: every successful row refused

$t->psql(q{ALTER TABLE audit_logs ADD CONSTRAINT test_no_success
           CHECK (status <> 'success') NOT VALID});
{
    my $before = state_of($u);
    my $r = $t->put('/api/v1/users/me', { department => 'Checked' },
                    headers => $t->auth_header($u->{access_token}));
    isnt($r->{status}, 200, 'under a CHECK that refuses the row: no 200')
        or diag($r->{content});
    cmp_ok($r->{status}, '>=', 400, '... an error');
    is(state_of($u), $before, '... and the profile did not change');
    $r = $t->login($u->{email}, $u->{password});
    cmp_ok($r->{status}, '>=', 400, 'a login under that CHECK fails');
    is(state_of($u), $before, '... and opens no session');
}
$t->psql(q{ALTER TABLE audit_logs DROP CONSTRAINT test_no_success});
$t->psql(q{UPDATE users SET failed_login_attempts = 0 WHERE id = :'p1'},
         $u->{id});
is($t->put('/api/v1/users/me', { department => 'Checked' },
           headers => $t->auth_header($u->{access_token}))->{status}, 200,
   'the CHECK dropped: the update goes through');

###########################################################################
# a mutation that fails on its own writes no audit row

{
    my $v = $t->new_user(username => 'atomic_two');
    my $n = audit_rows('user.update', $v->{id});
    my $r = $t->put('/api/v1/users/me', { username => 'atomic_one' },
                    headers => $t->auth_header($v->{access_token}));
    error_is($r, 409, 'CONFLICT', 'a username already taken: 409');
    is(audit_rows('user.update', $v->{id}), $n, '... and no audit row');

    my $before = $t->psql(q{SELECT count(*) FROM audit_logs
                            WHERE action = 'user.register'});
    $r = $t->register(email => $v->{email}, password => 'Other-pass-55x');
    error_is($r, 409, 'CONFLICT', 'an email already registered: 409');
    is($t->psql(q{SELECT count(*) FROM audit_logs
                  WHERE action = 'user.register'}), $before,
       '... and no audit row');
}

###########################################################################
# which audited actions this file does not exercise yet

$t->psql(q{DROP TRIGGER test_refuse_audit ON audit_logs;
           DROP FUNCTION test_refuse_audit(); DROP TABLE test_refused_actions});
my $sources = $t->psql(q{SELECT string_agg(prosrc, ' ') FROM pg_proc
                          WHERE prosrc LIKE '%um_audit(%'});
my %seen = map { $_ => 1 }
           $sources =~ /um_audit\s*\([^;]*?'([a-z_]+\.[a-z_]+)'/g;
my @actions = sort keys %seen;
ok(scalar @actions, 'the SQL functions write audit rows: '
                    . join(', ', @actions));
# A TODO, so that endpoints merged from elsewhere are listed here, not
# failed, until they get their case.
TODO: {
    local $TODO = 'every audited action has its atomicity case here';
    my @missing = grep { !$tested{$_} } @actions;
    is_deeply(\@missing, [], 'no audited action without a case in this file')
        or diag('no case yet: ' . join(', ', @missing));
}

done_testing();
