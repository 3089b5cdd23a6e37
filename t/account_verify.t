#!/usr/bin/perl
# Email and phone verification: registration, admin creation and changes
# of address leave messages in the outbox; a link works once within 24
# hours, a phone code once within 10 minutes and dies after 5 wrong tries;
# resending kills what was sent before.  No token or code reaches the
# logs, even at level debug.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is is_rfc3339_utc json_decode);
use UM::Users;

# resends limited as conf.d/usermgmt.conf limits them: by account, which
# without an email in the body is the client address
my $t = UM::Test->new(
    workers => 2, access_log => 1,
    main_extra => 'error_log %%TMPDIR%%/debug.log debug;',
    http_extra => 'usermgmt_limit_zone sends key=account rate=4r/m '
                  . 'fail=closed;',
    server_extra => 'location = /api/v1/users/verify-email/resend { '
                    . 'usermgmt_api; usermgmt_limit sends; }');
my $users = UM::Users->new($t);

my $ME = '/api/v1/users/me';
my $VERIFY_EMAIL = '/api/v1/users/verify-email';
my $RESEND = '/api/v1/users/verify-email/resend';
my $VERIFY_PHONE = '/api/v1/users/verify-phone';
my $SEND = '/api/v1/users/verify-phone/send';

my (%tokens, %codes);   # every secret seen, to look for in the logs

sub outbox_last {
    my ($to, $template) = @_;
    my ($row) = $t->psql(
        q{SELECT payload FROM outbox
           WHERE recipient = :'p1' AND template = :'p2'
           ORDER BY created_at DESC LIMIT 1}, $to, $template);
    return undef unless defined $row && length $row;
    my $p = json_decode($row);
    $tokens{$p->{token}} = 1 if defined $p->{token};
    $codes{$p->{code}} = 1 if defined $p->{code};
    return $p;
}

sub outbox_count {
    my ($to, $template) = @_;
    return scalar $t->psql(
        q{SELECT count(*) FROM outbox
           WHERE recipient = :'p1' AND template = :'p2'}, $to, $template);
}

sub me {
    my ($u) = @_;
    my $r = $t->get($ME, headers => $t->auth_header($u->{access_token}
                                                    // $u->{token}));
    return $r->{json}{data};
}

sub call {
    my ($u, $path, $body) = @_;
    my $token = $u->{access_token} // $u->{token};
    return defined $body
        ? $t->post($path, $body, headers => $t->auth_header($token))
        : $t->request('POST', $path,
                      { headers => $t->auth_header($token) });
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

sub age {
    my ($user, $kind, $by) = @_;
    $t->psql(q{UPDATE account_tokens
                  SET created_at = created_at - :'p3'::interval,
                      expires_at = expires_at - :'p3'::interval
                WHERE user_id = :'p1' AND kind = :'p2'
                  AND used_at IS NULL AND revoked_at IS NULL},
             $user, $kind, $by);
}

###########################################################################
# email: the link of the registration

my $u = $t->new_user;
my $msg = outbox_last($u->{email}, 'email_verification');
ok($msg, 'registration leaves an email_verification message');
like($msg->{token} // '', qr/^[A-Za-z0-9_-]{43}\z/, '... with a token');
is($msg->{user_id}, $u->{id}, '... for the user');
is(outbox_count($u->{email}, 'email_verification'), 1, '... only one');
is(me($u)->{email_verified}, JSON::PP::false(), 'not verified yet');
is(scalar $t->psql(
       q{SELECT round(extract(epoch FROM expires_at - created_at))
           FROM account_tokens
          WHERE user_id = :'p1' AND kind = 'email_verification'}, $u->{id}),
   86400, 'the link lives 24 hours');

my $r = $t->post($VERIFY_EMAIL, { token => 'A' x 43 });
error_is($r, 401, 'UNAUTHORIZED', 'a wrong token: 401');
$r = $t->post($VERIFY_EMAIL, {});
error_is($r, 422, 'VALIDATION_FAILED', 'no token: 422');
ok(has_field($r, 'token'), '... naming token');

# resend: a new link, the old one dies
$r = call($u, $RESEND);
is($r->{status}, 200, 'resend: 200') or diag($r->{content});
is($r->{json}{data}{success}, JSON::PP::true(), '... success');
ok(is_rfc3339_utc($r->{json}{data}{expires_at}), '... with expires_at');
my $old = $msg->{token};
$msg = outbox_last($u->{email}, 'email_verification');
isnt($msg->{token}, $old, '... a new token in the outbox');
is(audit_count($u->{id}, 'user.verify_email_sent', 'success'), 1,
   '... audited');
error_is($t->post($VERIFY_EMAIL, { token => $old }), 401, 'UNAUTHORIZED',
         'the link sent before is dead');

$r = $t->post($VERIFY_EMAIL, { token => $msg->{token} });
is($r->{status}, 200, 'the new link: 200') or diag($r->{content});
is_deeply($r->{json}{data},
          { success => JSON::PP::true(),
            message => 'Email verified successfully.' },
          '... the answer of seed 004');
is(me($u)->{email_verified}, JSON::PP::true(), 'GET /users/me: verified');
is(audit_count($u->{id}, 'user.verify_email', 'success'), 1, 'audited');
error_is($t->post($VERIFY_EMAIL, { token => $msg->{token} }), 401,
         'UNAUTHORIZED', 'the link used twice: 401');

$r = call($u, $RESEND);
error_is($r, 409, 'CONFLICT', 'resend once verified: 409');
error_is($t->request('POST', $RESEND), 401, 'UNAUTHORIZED',
         'resend without a token: 401');
$r = call($u, $RESEND, {});
error_is($r, 409, 'CONFLICT', 'resend with an empty JSON body: the same');
$r = call($u, $RESEND, { email => 'someone@example.com' });
error_is($r, 422, 'VALIDATION_FAILED', 'resend with a field: 422');
ok(has_field($r, 'email'), '... naming it');

# expired
my $v = $t->new_user;
$msg = outbox_last($v->{email}, 'email_verification');
age($v->{id}, 'email_verification', '25 hours');
error_is($t->post($VERIFY_EMAIL, { token => $msg->{token} }), 401,
         'UNAUTHORIZED', 'a link older than 24 hours: 401');
is(me($v)->{email_verified}, JSON::PP::false(), '... still not verified');

# an administrator's new user gets a link too
my $admin = $users->admin;
my $w = $users->user($admin);
ok(outbox_last($w->{email}, 'email_verification'),
   'a user made by an administrator gets a link');

# a changed address: a new link to it, verified no more
my $new_email = $t->unique_email('moved');
$r = $users->call(PUT => "/api/v1/users/$u->{id}", $admin,
                  { email => $new_email });
is($r->{status}, 200, 'the administrator changes the address')
    or diag($r->{content});
$r = $t->get("/api/v1/users/$u->{id}",
             headers => $t->auth_header($admin->{token}));
is($r->{json}{data}{email_verified}, JSON::PP::false(),
   '... which is not verified any more');
$msg = outbox_last($new_email, 'email_verification');
ok($msg, '... and gets a link');
is($msg->{user_id}, $u->{id}, '... for the user');
$r = $t->post($VERIFY_EMAIL, { token => $msg->{token} });
is($r->{status}, 200, '... that verifies it') or diag($r->{content});

# changed again before the link was used: the link dies with the address
$r = $users->call(PUT => "/api/v1/users/$u->{id}", $admin,
                  { email => $t->unique_email('again') });
$msg = outbox_last($r->{json}{data}{user}{email} // '', 'email_verification');
ok($msg, 'a second change sends a link to the second address');
$users->call(PUT => "/api/v1/users/$u->{id}", $admin,
             { email => $t->unique_email('third') });
error_is($t->post($VERIFY_EMAIL, { token => $msg->{token} }), 401,
         'UNAUTHORIZED', 'a link to an address given up is dead');

###########################################################################
# phone

my $p = $t->new_user;
$r = call($p, $SEND);
error_is($r, 422, 'VALIDATION_FAILED', 'send without a phone: 422');
ok(has_field($r, 'phone'), '... naming phone');

my $phone = sprintf('+1555%07d', $$ % 10000000);
$r = $t->put($ME, { phone => $phone },
             headers => $t->auth_header($p->{access_token}));
is($r->{status}, 200, 'PUT /users/me sets a phone') or diag($r->{content});
$msg = outbox_last($phone, 'phone_verification');
ok($msg, '... which gets an sms message');
like($msg->{code} // '', qr/^\d{6}\z/, '... with a 6-digit code');
is(scalar $t->psql(q{SELECT channel FROM outbox
                      WHERE recipient = :'p1' LIMIT 1}, $phone),
   'sms', '... on the sms channel');
is(scalar $t->psql(
       q{SELECT count(*) FROM account_tokens
          WHERE user_id = :'p1' AND kind = 'phone_verification'
            AND token_hash = sha256(convert_to(:'p1' || :'p2', 'UTF8'))
            AND round(extract(epoch FROM expires_at - created_at)) = 600},
       $p->{id}, $msg->{code}),
   1, '... stored as the SHA-256 of user id and code, for 10 minutes');

my $code = $msg->{code};
my $n = $code;     # counted on a copy: $code stays a JSON string
my $wrong = sprintf('%06d', ($n + 1) % 1000000);

$r = call($p, $VERIFY_PHONE, { phone_code => '12ab56' });
error_is($r, 422, 'VALIDATION_FAILED', 'a code that is not 6 digits: 422');
ok(has_field($r, 'phone_code'), '... naming phone_code');
$r = call($p, $VERIFY_PHONE, {});
error_is($r, 422, 'VALIDATION_FAILED', 'no code: 422');

for my $i (1 .. 5) {
    $r = call($p, $VERIFY_PHONE, { phone_code => $wrong });
    error_is($r, 401, 'UNAUTHORIZED', "wrong code $i: 401");
}
$r = call($p, $VERIFY_PHONE, { phone_code => $code });
error_is($r, 401, 'UNAUTHORIZED', 'after 5 wrong codes the right one fails');
is(me($p)->{phone_verified}, JSON::PP::false(), '... not verified');
is(audit_count($p->{id}, 'user.verify_phone', 'failure'), 6,
   'every try is audited');

# a new code
$r = call($p, $SEND);
is($r->{status}, 200, 'send: 200') or diag($r->{content});
ok(is_rfc3339_utc($r->{json}{data}{expires_at}), '... with expires_at');
$msg = outbox_last($phone, 'phone_verification');
isnt($msg->{code}, undef, '... a new code in the outbox');
my $first = $msg->{code};
call($p, $SEND);
$msg = outbox_last($phone, 'phone_verification');
if ($msg->{code} ne $first) {
    error_is(call($p, $VERIFY_PHONE, { phone_code => $first }), 401,
             'UNAUTHORIZED', 'the code sent before is dead');
} else {
    pass('the same code drawn twice (one in a million)');
}

# expired
age($p->{id}, 'phone_verification', '11 minutes');
error_is(call($p, $VERIFY_PHONE, { phone_code => $msg->{code} }), 401,
         'UNAUTHORIZED', 'a code older than 10 minutes: 401');

call($p, $SEND);
$msg = outbox_last($phone, 'phone_verification');
$r = call($p, $VERIFY_PHONE, { phone_code => $msg->{code} });
is($r->{status}, 200, 'the right code: 200') or diag($r->{content});
is_deeply($r->{json}{data},
          { success => JSON::PP::true(),
            message => 'Phone number verified successfully.' },
          '... the answer of seed 004');
is(me($p)->{phone_verified}, JSON::PP::true(), 'GET /users/me: verified');
is(audit_count($p->{id}, 'user.verify_phone', 'success'), 1, 'audited');
error_is(call($p, $VERIFY_PHONE, { phone_code => $msg->{code} }), 401,
         'UNAUTHORIZED', 'the code used twice: 401');
error_is(call($p, $SEND), 409, 'CONFLICT', 'send once verified: 409');

# a new number: verified no more, and a code to it
my $phone2 = sprintf('+1556%07d', $$ % 10000000);
$t->put($ME, { phone => $phone2 },
        headers => $t->auth_header($p->{access_token}));
is(me($p)->{phone_verified}, JSON::PP::false(),
   'a changed phone is not verified');
ok(outbox_last($phone2, 'phone_verification'), '... and gets a code');
my $count = outbox_count($phone2, 'phone_verification');
$t->put($ME, { first_name => 'Same' },
        headers => $t->auth_header($p->{access_token}));
is(outbox_count($phone2, 'phone_verification'), $count,
   'a change of something else sends nothing');

error_is($t->request('POST', $VERIFY_PHONE,
                     { body => { phone_code => '123456' } }),
         401, 'UNAUTHORIZED', 'verify-phone without a token: 401');

###########################################################################
# resends are rate-limited by account (here: the client address)

my $x = $t->new_user;
my @res = map { call($x, $RESEND) } 1 .. 5;
my ($limited) = grep { $_->{status} == 429 } @res;
ok($limited, 'repeated resends meet the limit')
    or diag(join ' ', map { $_->{status} } @res);
error_is($limited // {}, 429, 'RATE_LIMIT_EXCEEDED', '... 429');
ok(($limited // {})->{headers}{'retry-after'}, '... with Retry-After');

###########################################################################
# no token or code in the logs

for my $file (qw(debug.log error.log access.log)) {
    my $text = do {
        local $/;
        open my $fh, '<', $t->tmp . "/$file" or die "$file: $!";
        <$fh>;
    };
    ok(length $text, "$file was written");
    my @found = grep { index($text, $_) >= 0 } keys %tokens;
    push @found, grep { $text =~ /(?<![0-9A-Za-z])\Q$_\E(?![0-9A-Za-z])/ }
        keys %codes;
    is(scalar @found, 0, "no token or code in $file")
        or diag(scalar(@found) . ' found');
}
cmp_ok(scalar keys %tokens, '>=', 6, 'the tokens looked for');
cmp_ok(scalar keys %codes, '>=', 4, 'the codes looked for');

done_testing();
