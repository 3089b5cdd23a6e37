#!/usr/bin/perl
# Password reset: the request answers every address alike and leaves a
# message in the outbox only for a known one; the token works once, within
# 30 minutes, under the password policy; the reset ends every session
# (refresh tokens refused, access tokens deny-listed) and clears the
# lockout; every step is audited.  No token reaches the logs, even at
# level debug.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test qw(error_is is_uuid is_rfc3339_utc json_decode);

my $t = UM::Test->new(workers => 2, access_log => 1,
                      main_extra => 'error_log %%TMPDIR%%/debug.log debug;');

my $REQUEST = '/api/v1/users/password/reset/request';
my $CONFIRM = '/api/v1/users/password/reset/confirm';
my $ME = '/api/v1/users/me';

my @secrets;        # every token seen, to look for in the logs at the end

# the newest message of a template to a recipient: its payload
sub outbox_last {
    my ($to, $template) = @_;
    my ($row) = $t->psql(
        q{SELECT payload FROM outbox
           WHERE recipient = :'p1' AND template = :'p2'
           ORDER BY created_at DESC LIMIT 1}, $to, $template);
    return undef unless defined $row && length $row;
    my $p = json_decode($row);
    push @secrets, $p->{token} if defined $p->{token};
    return $p;
}

sub outbox_count {
    my ($to, $template) = @_;
    return scalar $t->psql(
        q{SELECT count(*) FROM outbox
           WHERE recipient = :'p1' AND template = :'p2'}, $to, $template);
}

sub request_reset {
    my ($email, %more) = @_;
    return $t->post($REQUEST, { email => $email, %more });
}

sub confirm {
    my ($token, $password) = @_;
    return $t->post($CONFIRM, { token => $token, new_password => $password });
}

sub has_field {
    my ($r, $field) = @_;
    my $d = eval { $r->{json}{error}{details} } // [];
    return scalar grep { ref $_ eq 'HASH' && ($_->{field} // '') eq $field }
        @$d;
}

sub audit_count {
    my ($user, $action, $status) = @_;
    return scalar $t->psql(
        q{SELECT count(*) FROM audit_logs
           WHERE resource_id = :'p1' AND action = :'p2' AND status = :'p3'},
        $user, $action, $status);
}

###########################################################################
# the request: one answer for every address

my $u = $t->new_user;
my $s2 = $t->login($u->{email}, $u->{password})->{json}{data};
my $unknown = $t->unique_email('nobody');

my $known_r = request_reset($u->{email});
my $unknown_r = request_reset($unknown);

is($known_r->{status}, 200, 'request for a known address: 200')
    or diag($known_r->{content});
is($unknown_r->{status}, 200, 'request for an unknown address: 200');
is($unknown_r->{content}, $known_r->{content},
   '... byte-identical bodies');
for my $h (qw(content-type content-length cache-control set-cookie)) {
    is($unknown_r->{headers}{$h}, $known_r->{headers}{$h},
       "... the same $h header");
}
is_deeply($known_r->{json},
          { data => { success => JSON::PP::true(),
                      message => 'If a matching email address was found, '
                                 . 'a password reset link has been sent.' } },
          '... the answer of seed 004');

my $msg = outbox_last($u->{email}, 'password_reset');
ok($msg, 'the known address has a password_reset message in the outbox');
like($msg->{token} // '', qr/^[A-Za-z0-9_-]{43}\z/,
     '... with a 256-bit base64url token');
is($msg->{user_id}, $u->{id}, '... for the user');
ok(is_rfc3339_utc($msg->{expires_at}), '... with expires_at');
is($msg->{organization}{slug}, 'default', '... naming the organization');
is(scalar $t->psql(q{SELECT count(*) FROM outbox WHERE recipient = :'p1'},
                   $unknown),
   0, 'the unknown address has no message');

is(scalar $t->psql(
       q{SELECT round(extract(epoch FROM expires_at - created_at))
           FROM account_tokens
          WHERE user_id = :'p1' AND kind = 'password_reset'}, $u->{id}),
   1800, 'the token lives 30 minutes');
is(scalar $t->psql(
       q{SELECT count(*) FROM account_tokens
          WHERE token_hash = sha256(convert_to(:'p1', 'UTF8'))},
       $msg->{token}),
   1, 'the token is stored as its SHA-256');
is(scalar $t->psql(
       q{SELECT count(*) FROM account_tokens t
          WHERE position(convert_to(:'p1', 'UTF8') IN t.token_hash) > 0
             OR t.sent_to = :'p1'}, $msg->{token}),
   0, '... and nowhere in clear');

is(audit_count($u->{id}, 'auth.password_reset_request', 'success'), 1,
   'the request is audited for the user');
is(scalar $t->psql(
       q{SELECT count(*) FROM audit_logs
          WHERE action = 'auth.password_reset_request'
            AND status = 'failure' AND actor_id IS NULL
            AND metadata->>'reason' = 'unknown_account'}),
   1, 'the unknown address leaves an anonymous audit row');
is(scalar $t->psql(
       q{SELECT count(*) FROM audit_logs
          WHERE strpos(lower(audit_logs::text), lower(:'p1')) > 0},
       $unknown),
   0, '... without the address');

# input checks
my $r = request_reset('not-an-email');
error_is($r, 422, 'VALIDATION_FAILED', 'a malformed email: 422');
ok(has_field($r, 'email'), '... naming email');
$r = $t->post($REQUEST, {});
error_is($r, 422, 'VALIDATION_FAILED', 'no email: 422');
ok(has_field($r, 'email'), '... naming email');
$r = $t->post($REQUEST, '{"email":', headers => {
    'content-type' => 'application/json' });
error_is($r, 400, 'BAD_REQUEST', 'malformed JSON: 400');

# another organization named: no message
my $before = outbox_count($u->{email}, 'password_reset');
my $other = 'other-' . $$;
$t->psql(q{INSERT INTO organizations (name, slug) VALUES ('Other', :'p1')},
         $other);
$r = request_reset($u->{email}, organization_slug => $other);
is($r->{status}, 200, 'an organization without the account: 200');
is($r->{content}, $known_r->{content}, '... the same answer');
is(outbox_count($u->{email}, 'password_reset'), $before,
   '... and no message');

###########################################################################
# the confirm

# a newer request kills the older link
request_reset($u->{email});
my $old = $msg->{token};
$msg = outbox_last($u->{email}, 'password_reset');
isnt($msg->{token}, $old, 'a second request makes a new token');
error_is(confirm($old, 'An0ther-g00d-passphrase'), 401, 'UNAUTHORIZED',
         'the older token is refused once a newer one was sent');

my $token = $msg->{token};

$r = confirm('x' x 43, 'An0ther-g00d-passphrase');
error_is($r, 401, 'UNAUTHORIZED', 'a wrong token: 401');
my $wrong_message = $r->{json}{error}{message};

$r = confirm($token, 'short');
error_is($r, 422, 'VALIDATION_FAILED', 'a password the policy refuses: 422');
ok(has_field($r, 'new_password'), '... naming new_password');

$r = confirm($token, $u->{email});
error_is($r, 422, 'VALIDATION_FAILED', 'the email as the password: 422');
ok(has_field($r, 'new_password'), '... naming new_password');

$r = $t->post($CONFIRM, { token => $token });
error_is($r, 422, 'VALIDATION_FAILED', 'no new_password: 422');
ok(has_field($r, 'new_password'), '... naming new_password');
$r = $t->post($CONFIRM, { token => $token, new_password => 'Xy-1234567890',
                          extra => 1 });
error_is($r, 422, 'VALIDATION_FAILED', 'an unknown field: 422');
ok(has_field($r, 'extra'), '... naming it');

# a locked account: the reset unlocks it
$t->psql(q{UPDATE users SET failed_login_attempts = 5,
                            locked_until = now() + interval '1 hour'
            WHERE id = :'p1'}, $u->{id});

my $new_password = 'Fresh-' . int(rand(1e9)) . '-Passphrase';
$r = confirm($token, $new_password);
is($r->{status}, 200, 'the token with a good password: 200')
    or diag($r->{content});
is_deeply($r->{json}{data},
          { success => JSON::PP::true(),
            message => 'Password has been reset successfully.' },
          '... the answer of seed 004');

is($t->login($u->{email}, $u->{password})->{status}, 401,
   'the old password no longer signs in');
my $l = $t->login($u->{email}, $new_password);
is($l->{status}, 200, 'the new one does (the lockout is cleared)')
    or diag($l->{content});

for my $s ([first => $u->{login}], [second => $s2]) {
    $r = $t->post('/api/v1/auth/refresh',
                  { refresh_token => $s->[1]{refresh_token} });
    error_is($r, 401, 'UNAUTHORIZED',
             "the refresh token of the $s->[0] old session is refused");
    $r = $t->get($ME, headers => $t->auth_header($s->[1]{access_token}));
    error_is($r, 401, 'UNAUTHORIZED',
             "the access token of the $s->[0] old session is refused");
}
$r = $t->get($ME, headers => $t->auth_header($l->{json}{data}{access_token}));
is($r->{status}, 200, 'a session opened after the reset works');
is($r->{json}{data}{email_verified}, JSON::PP::true(),
   '... and the address counts as verified');

is(scalar $t->psql(
       q{SELECT count(*) FROM sessions
          WHERE user_id = :'p1' AND revoked_reason = 'password_reset'},
       $u->{id}),
   2, 'both old sessions ended as password_reset');
is(scalar $t->psql(
       q{SELECT metadata->>'sessions_ended' FROM audit_logs
          WHERE resource_id = :'p1' AND action = 'auth.password_reset'
            AND status = 'success'}, $u->{id}),
   2, 'the reset is audited with the sessions it ended');

$r = confirm($token, 'Yet-another-' . int(rand(1e9)));
error_is($r, 401, 'UNAUTHORIZED', 'the token used twice: 401');
is($r->{json}{error}{message}, $wrong_message,
   '... with the message of a wrong token');

# expired
request_reset($u->{email});
$token = outbox_last($u->{email}, 'password_reset')->{token};
$t->psql(q{UPDATE account_tokens
              SET created_at = created_at - interval '31 minutes',
                  expires_at = expires_at - interval '31 minutes'
            WHERE user_id = :'p1' AND kind = 'password_reset'
              AND used_at IS NULL AND revoked_at IS NULL}, $u->{id});
$r = confirm($token, 'Late-' . int(rand(1e9)) . '-passphrase');
error_is($r, 401, 'UNAUTHORIZED', 'a token older than 30 minutes: 401');
is($r->{json}{error}{message}, $wrong_message,
   '... with the message of a wrong token');
is($t->login($u->{email}, $new_password)->{status}, 200,
   '... and the password is unchanged');

###########################################################################
# five parallel confirms of one token: exactly one succeeds

request_reset($u->{email});
$token = outbox_last($u->{email}, 'password_reset')->{token};

my $start = time + 0.5;
my @pids;
for my $i (1 .. 5) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        sleep($start - time) if $start > time;
        my $res = $t->request('POST', $CONFIRM,
                              { body => { token => $token,
                                          new_password =>
                                              "Parallel-$i-passphrase-x" },
                                fresh => 1 });
        POSIX::_exit($res->{status} == 200 ? 0
                     : $res->{status} == 401 ? 1 : 2);
    }
    push @pids, $pid;
}
my @st;
for my $pid (@pids) {
    waitpid($pid, 0);
    push @st, $? >> 8 == 0 ? 200 : $? >> 8 == 1 ? 401 : 'other';
}
is(scalar(grep { $_ eq '200' } @st), 1, 'five parallel confirms: one 200')
    or diag("@st");
is(scalar(grep { $_ eq '401' } @st), 4, '... and four 401')
    or diag("@st");
is(scalar(grep { $t->login($u->{email}, "Parallel-$_-passphrase-x")
                   ->{status} == 200 } 1 .. 5),
   1, '... and exactly one of their passwords signs in');

###########################################################################
# no token in the logs

for my $file (qw(debug.log error.log access.log)) {
    my $text = do {
        local $/;
        open my $fh, '<', $t->tmp . "/$file" or die "$file: $!";
        <$fh>;
    };
    ok(length $text, "$file was written");
    like($text, qr/\[debug\]/, '... at level debug') if $file eq 'debug.log';
    my @found = grep { index($text, $_) >= 0 } @secrets;
    is(scalar @found, 0, "no reset token in $file")
        or diag(scalar(@found) . ' tokens found');
}
my %seen = map { $_ => 1 } @secrets;
is(scalar keys %seen, 4, 'four tokens looked for');

done_testing();
