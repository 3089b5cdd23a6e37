#!/usr/bin/perl
# Two-factor authentication (TOTP, RFC 6238) with backup codes.  oathtool
# is the independent TOTP implementation, zbarimg reads the QR code, and
# psql shows what was stored: the whole life of a second factor, from
# set-up through sign-ins to disabling it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use MIME::Base64 qw(decode_base64);
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use UM::Test qw(error_is);
use UM::JWT qw(jwt_decode);

for my $tool (qw(oathtool zbarimg)) {
    plan skip_all => "$tool is not installed"
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

# a debug log besides the usual one: nothing secret may reach either
my $t = UM::Test->new(workers => 2,
                      http_extra => 'usermgmt_mfa_issuer "Acme ID";',
                      main_extra => 'error_log %%TMPDIR%%/debug.log debug;');

my $ENABLE  = '/api/v1/users/2fa/enable';
my $SETUP   = '/api/v1/user/auth/mfa/setup';
my $VERIFY  = '/api/v1/users/2fa/verify';
my $DISABLE = '/api/v1/users/2fa/disable';
my $CODES   = '/api/v1/users/2fa/backup-codes';
my $STATUS  = '/api/v1/users/2fa/status';
my $STEP2   = '/api/v1/auth/mfa/verify';
my $ME      = '/api/v1/users/me';

my @secrets_seen;       # nothing of these may reach the error log

# the TOTP code of a time, by oathtool
sub totp {
    my ($secret, $at) = @_;
    $at //= time;
    my $out = `oathtool --totp --base32 --now '\@@{[int $at]}' '$secret' 2>&1`;
    chomp $out;
    die "oathtool: $out\n" unless $out =~ /^\d{6}$/;
    push @secrets_seen, $out;
    return $out;
}

# the codes of this step and the next: both stay valid for the next 30 s
sub step_codes {
    my ($secret) = @_;
    my $now = time;
    my $step = int($now / 30);
    return (totp($secret, $step * 30), totp($secret, ($step + 1) * 30));
}

# a 6-digit code that is none of the ones valid around now
sub wrong_code {
    my ($secret) = @_;
    my %valid = map { totp($secret, time + 30 * $_) => 1 } -2 .. 2;
    my $c;
    do { $c = sprintf '%06d', int rand 1_000_000 } while $valid{$c};
    return $c;
}

sub auth { $t->auth_header($_[0]) }

sub enable {
    my ($u) = @_;
    my $r = $t->post($ENABLE, undef, headers => auth($u->{access_token}));
    die "enable: $r->{status} $r->{content}\n" unless $r->{status} == 200;
    my $d = $r->{json}{data};
    push @secrets_seen, $d->{secret}, @{ $d->{backup_codes} };
    return $d;
}

# a user with 2FA on; returns (user, secret, backup codes)
sub user_with_mfa {
    my $u = $t->new_user;
    my $d = enable($u);
    my ($code) = step_codes($d->{secret});
    my $r = $t->post($VERIFY, { two_factor_code => $code },
                     headers => auth($u->{access_token}));
    die "verify: $r->{status} $r->{content}\n" unless $r->{status} == 200;
    return ($u, $d->{secret}, $d->{backup_codes});
}

sub challenge {
    my ($u) = @_;
    my $r = $t->login($u->{email}, $u->{password});
    die "login: $r->{status} $r->{content}\n"
        unless $r->{status} == 200 && $r->{json}{data}{mfa_token};
    push @secrets_seen, $r->{json}{data}{mfa_token};
    return $r->{json}{data}{mfa_token};
}

sub step2 {
    my ($token, %code) = @_;
    return $t->post($STEP2, { mfa_token => $token, %code });
}

sub audit_actions {
    my ($id) = @_;
    return [ split /\n/, $t->psql(
        "SELECT action || ':' || status FROM audit_logs"
        . " WHERE actor_id = :'p1' AND action LIKE ANY"
        . " (ARRAY['mfa.%', 'auth.mfa%', 'auth.login%'])"
        . " ORDER BY created_at, id", $id) ];
}

# ---------------------------------------------------------------------------
# set-up: the secret, the URI, a QR code of it, backup codes

my $u = $t->new_user(email => 'Grace.Hopper+2fa@example.com');

my $r = $t->get($STATUS, headers => auth($u->{access_token}));
is($r->{status}, 200, 'status: 200');
is_deeply([ @{ $r->{json}{data} }{qw(two_factor_enabled setup_pending)} ],
          [ JSON::PP::false, JSON::PP::false ], 'status: off, nothing pending');

$r = $t->post($ENABLE, undef, headers => auth($u->{access_token}));
is($r->{status}, 200, 'enable (no body): 200');
my $d = $r->{json}{data};
push @secrets_seen, $d->{secret}, @{ $d->{backup_codes} || [] };
is($r->{headers}{'cache-control'}, 'no-store', 'enable: Cache-Control no-store');
is($d->{success}, JSON::PP::true, 'enable: success');
like($d->{message}, qr/authenticator app/, "enable: seed 004's message");
like($d->{secret}, qr/^[A-Z2-7]{32}$/, 'secret: 32 base32 characters (160 bits)');
is($d->{verification_required}, JSON::PP::true, 'verification_required');

my $secret = $d->{secret};
my $uri = "otpauth://totp/Acme%20ID:Grace.Hopper%2B2fa%40example.com?secret=$secret"
        . '&issuer=Acme%20ID&algorithm=SHA1&digits=6&period=30';
is($d->{otpauth_uri}, $uri, 'otpauth_uri: issuer, account and parameters');

like($d->{qr_code}, qr{^data:image/png;base64,[A-Za-z0-9+/]+=*$},
     'qr_code: a PNG data URI');
is("data:image/png;base64,$d->{qr_code_image}", $d->{qr_code},
   'qr_code_image: the same PNG, bare base64 (seed 004)');

{
    my $png = decode_base64($d->{qr_code_image});
    is(substr($png, 0, 8), "\x89PNG\r\n\x1a\n", 'the QR code is a PNG');
    my $file = $t->tmp . '/qr.png';
    open my $fh, '>:raw', $file or die "$file: $!";
    print {$fh} $png;
    close $fh;
    my $text = `zbarimg --nodbus --raw -q '$file' 2>/dev/null`;
    chomp $text;
    is($text, $uri, 'zbarimg reads the otpauth:// URI from the QR code');
}

is(scalar @{ $d->{backup_codes} }, 8, '8 backup codes by default');
like($_, qr/^[a-z2-7]{5}-[a-z2-7]{5}$/, "backup code $_ has the form")
    for @{ $d->{backup_codes} }[0, 7];
my %distinct = map { $_ => 1 } @{ $d->{backup_codes} };
is(scalar keys %distinct, 8, 'the backup codes differ');

# what PostgreSQL holds: neither the secret nor the codes in clear
{
    my $stored = $t->psql(q{SELECT secret FROM user_mfa WHERE user_id = :'p1'},
                          $u->{id});
    like($stored, qr/^v1\.[A-Za-z0-9_-]+$/, 'the secret is stored sealed');
    unlike($stored, qr/\Q$secret\E/i, 'not the base32 secret');
    my $hashes = $t->psql(q{SELECT string_agg(code_hash, ' ') FROM}
                          . q{ user_backup_codes WHERE user_id = :'p1'},
                          $u->{id});
    is(scalar(split / /, $hashes), 8, '8 backup code hashes stored');
    my $plain = join '|', map { (my $c = $_) =~ s/-//; $c }
                          @{ $d->{backup_codes} };
    unlike($hashes, qr/$plain/, 'no backup code in clear');
    is($t->psql(q{SELECT two_factor_enabled FROM users WHERE id = :'p1'},
                $u->{id}), 'f', 'not enabled before the first code');
}

# until a code confirms it, sign-in needs the password only
$r = $t->login($u->{email}, $u->{password});
ok($r->{status} == 200 && $r->{json}{data}{access_token},
   'before verification, login gives tokens');

$r = $t->get($STATUS, headers => auth($u->{access_token}));
is($r->{json}{data}{setup_pending}, JSON::PP::true, 'status: set-up pending');

# ---------------------------------------------------------------------------
# verify: bad input, wrong codes, the first good code turns 2FA on

$r = $t->post($VERIFY, {}, headers => auth($u->{access_token}));
error_is($r, 422, 'VALIDATION_FAILED', 'verify without a code: 422');
is($r->{json}{error}{details}[0]{field}, 'two_factor_code',
   '... naming two_factor_code');

for my $bad ('12345', '1234567', '12a456', "123456'--", '') {
    $r = $t->post($VERIFY, { two_factor_code => $bad },
                  headers => auth($u->{access_token}));
    error_is($r, 422, 'VALIDATION_FAILED', "verify '$bad': 422");
}

$r = $t->post($VERIFY, { two_factor_code => 42 },
              headers => auth($u->{access_token}));
error_is($r, 422, 'VALIDATION_FAILED', 'a number instead of a string: 422');

$r = $t->post($VERIFY, { two_factor_code => wrong_code($secret) },
              headers => auth($u->{access_token}));
error_is($r, 401, 'UNAUTHORIZED', 'verify a wrong code: 401');

$r = $t->post($VERIFY, { two_factor_code => $d->{backup_codes}[0] },
              headers => auth($u->{access_token}));
error_is($r, 401, 'UNAUTHORIZED',
         'a backup code cannot confirm the set-up: 401');

my ($now_code, $next_code) = step_codes($secret);
$r = $t->post($VERIFY, { two_factor_code => $now_code },
              headers => auth($u->{access_token}));
is($r->{status}, 200, "verify oathtool's code: 200");
is($r->{json}{data}{message}, 'Two-factor authentication verified.',
   "verify: seed 004's message");
is($r->{json}{data}{two_factor_enabled}, JSON::PP::true, 'now enabled');

$r = $t->get($ME, headers => auth($u->{access_token}));
is($r->{json}{data}{two_factor_enabled}, JSON::PP::true,
   'GET /users/me: two_factor_enabled');

$r = $t->post($VERIFY, { two_factor_code => $now_code },
              headers => auth($u->{access_token}));
error_is($r, 401, 'UNAUTHORIZED', 'the same code again (replay): 401');

$r = $t->post($ENABLE, undef, headers => auth($u->{access_token}));
error_is($r, 400, 'BAD_REQUEST', 'enable again while on: 400');

# ---------------------------------------------------------------------------
# sign-in: the password step asks for the second

$r = $t->login($u->{email}, $u->{password});
is($r->{status}, 200, 'login with 2FA on: 200');
my $l = $r->{json}{data};
is($l->{mfa_required}, JSON::PP::true, 'mfa_required: true');
ok(!exists $l->{access_token} && !exists $l->{refresh_token},
   'no tokens before the second step');
is($r->{headers}{'cache-control'}, 'no-store', 'challenge: no-store');
is_deeply($l->{methods}, ['totp', 'backup_code'], 'methods');
# (this one is also sent as a bearer token below, and nginx's own debug
# log prints request headers: it is left out of the log check)
my $mfa = $l->{mfa_token};
{
    my ($h, $p) = jwt_decode($mfa);
    is($h->{typ}, 'mfa+jwt', 'the challenge token has its own typ');
    is($p->{sub}, $u->{id}, '... names the user');
    ok($p->{exp} - $p->{iat} <= 300, '... lives 5 minutes at most');
}

$r = $t->get($ME, headers => auth($mfa));
error_is($r, 401, 'UNAUTHORIZED', 'the challenge token is no access token');

$r = step2($u->{access_token}, code => $next_code);
error_is($r, 401, 'UNAUTHORIZED', 'an access token is no challenge token');

$r = step2('not.a.token', code => $next_code);
error_is($r, 401, 'UNAUTHORIZED', 'a forged challenge: 401');

$r = $t->post($STEP2, { code => $next_code });
error_is($r, 422, 'VALIDATION_FAILED', 'step 2 without mfa_token: 422');

$r = step2($mfa, code => wrong_code($secret));
error_is($r, 401, 'UNAUTHORIZED', 'step 2 with a wrong code: 401');

$r = step2($mfa, code => $now_code);
error_is($r, 401, 'UNAUTHORIZED', 'step 2 with a spent code (replay): 401');

$r = step2($mfa, code => $next_code);
is($r->{status}, 200, 'step 2 with the next code: 200');
my $tokens = $r->{json}{data};
ok($tokens->{access_token} && $tokens->{refresh_token},
   'step 2 gives access and refresh tokens');
is($tokens->{user}{id}, $u->{id}, '... and the user');
is($r->{headers}{'cache-control'}, 'no-store', 'tokens: no-store');
$r = $t->get($ME, headers => auth($tokens->{access_token}));
is($r->{status}, 200, 'the access token of step 2 works');
$r = $t->post('/api/v1/auth/refresh',
              { refresh_token => $tokens->{refresh_token} });
is($r->{status}, 200, 'the refresh token of step 2 works');

$r = step2($mfa, backup_code => $d->{backup_codes}[1]);
error_is($r, 401, 'UNAUTHORIZED', 'a completed challenge is spent');

# a backup code: once
my $mfa2 = challenge($u);
$r = step2($mfa2, backup_code => uc $d->{backup_codes}[2]);
is($r->{status}, 200, 'step 2 with a backup code (any case): 200');

my $mfa3 = challenge($u);
$r = step2($mfa3, backup_code => $d->{backup_codes}[2]);
error_is($r, 401, 'UNAUTHORIZED', 'the same backup code again: 401');
(my $bare = $d->{backup_codes}[3]) =~ s/-//;
$r = step2($mfa3, two_factor_code => $bare);
is($r->{status}, 200, 'a backup code without its dash, as two_factor_code');

$r = $t->get($STATUS, headers => auth($u->{access_token}));
is($r->{json}{data}{backup_codes_remaining}, 6, 'status: 6 backup codes left');

# a wrong password still says nothing about 2FA
$r = $t->login($u->{email}, 'Wrong-password-123');
error_is($r, 401, 'UNAUTHORIZED', 'wrong password with 2FA on: 401');
ok(!exists(($r->{json}{data} // {})->{mfa_token}), '... and no challenge');

is_deeply(audit_actions($u->{id}),
          [ 'auth.login:success', 'mfa.setup:success', 'auth.login:success',
            'mfa.verify:failure', 'mfa.verify:failure', 'mfa.enable:success',
            'mfa.verify:failure', 'auth.mfa_challenge:success',
            'auth.login_failed:failure', 'auth.login_failed:failure',
            'auth.login:success', 'auth.login_failed:failure',
            'auth.mfa_challenge:success', 'auth.login:success',
            'auth.mfa_challenge:success', 'auth.login_failed:failure',
            'auth.login:success', 'auth.login_failed:failure' ],
          'every step is in the audit trail')
    or diag explain audit_actions($u->{id});
like($t->psql("SELECT metadata::text FROM audit_logs WHERE actor_id = :'p1'"
              . " AND action = 'auth.login' ORDER BY created_at DESC LIMIT 1",
              $u->{id}),
     qr/"amr": \["pwd", "mfa"\]/, 'the sign-in records its methods (amr)');

# ---------------------------------------------------------------------------
# new backup codes, then disable

$r = $t->post($CODES, { backup_code => $d->{backup_codes}[4] },
              headers => auth($u->{access_token}));
is($r->{status}, 200, 'new backup codes: 200');
my $codes = $r->{json}{data}{backup_codes};
push @secrets_seen, @$codes;
is(scalar @$codes, 8, '... 8 of them');
is($r->{json}{data}{backup_codes_remaining}, 8, '... all unused');

$r = step2(challenge($u), backup_code => $d->{backup_codes}[5]);
error_is($r, 401, 'UNAUTHORIZED', 'an old backup code no longer works');

$r = $t->post($DISABLE, {}, headers => auth($u->{access_token}));
error_is($r, 422, 'VALIDATION_FAILED', 'disable without a code: 422');
$r = $t->post($DISABLE, { two_factor_code => wrong_code($secret) },
              headers => auth($u->{access_token}));
error_is($r, 401, 'UNAUTHORIZED', 'disable with a wrong code: 401');
$r = $t->post($DISABLE, { backup_code => $codes->[0] },
              headers => auth($u->{access_token}));
is($r->{status}, 200, 'disable with a backup code: 200');
is($r->{json}{data}{message}, 'Two-factor authentication disabled.',
   "disable: seed 004's message");
is($t->psql(q{SELECT count(*) FROM user_mfa WHERE user_id = :'p1'}, $u->{id})
   . $t->psql(q{SELECT count(*) FROM user_backup_codes WHERE user_id = :'p1'},
              $u->{id}), '00', 'the secret and the codes are deleted');

$r = $t->login($u->{email}, $u->{password});
ok($r->{status} == 200 && $r->{json}{data}{access_token},
   'after disabling, login gives tokens at once');

$r = $t->post($DISABLE, { two_factor_code => '123456' },
              headers => auth($u->{access_token}));
error_is($r, 400, 'BAD_REQUEST', 'disable when not set up: 400');
$r = $t->post($VERIFY, { two_factor_code => '123456' },
              headers => auth($u->{access_token}));
error_is($r, 400, 'BAD_REQUEST', 'verify when not set up: 400');

# ---------------------------------------------------------------------------
# seed 000's set-up

my $v = $t->new_user;
$r = $t->post($SETUP, { method => 'totp', phone_number => undef,
                        backup_codes_count => 5 },
              headers => auth($v->{access_token}));
is($r->{status}, 200, 'seed 000 set-up: 200');
is($r->{json}{data}{workflow_id}, 'mfa_setup', 'workflow_id mfa_setup');
my $res = $r->{json}{data}{results} // {};
push @secrets_seen, $res->{secret} // (), @{ $res->{backup_codes} || [] };
is(scalar @{ $res->{backup_codes} || [] }, 5, 'backup_codes_count 5');
like($res->{qr_code} // '', qr{^data:image/png;base64,}, 'results.qr_code');
is($res->{verification_required}, JSON::PP::true, 'verification_required');

for my $case ([ { method => 'sms' }, 'method' ],
              [ { backup_codes_count => 0 }, 'backup_codes_count' ],
              [ { backup_codes_count => 21 }, 'backup_codes_count' ],
              [ { backup_codes_count => 'many' }, 'backup_codes_count' ],
              [ { colour => 'blue' }, 'colour' ]) {
    my ($body, $field) = @$case;
    $r = $t->post($SETUP, $body, headers => auth($v->{access_token}));
    error_is($r, 422, 'VALIDATION_FAILED', "set-up with bad $field: 422");
    is($r->{json}{error}{details}[0]{field}, $field, "... naming $field");
}

$r = $t->post($ENABLE, undef);
error_is($r, 401, 'UNAUTHORIZED', 'enable without a token: 401');

# ---------------------------------------------------------------------------
# wrong codes are limited per account, parallel guesses included

my ($w, $wsecret) = user_with_mfa();
my $wt = challenge($w);
for my $i (1 .. 5) {
    $r = step2($wt, code => wrong_code($wsecret));
    error_is($r, 401, 'UNAUTHORIZED', "wrong code $i: 401");
}
my ($c1, $c2) = step_codes($wsecret);
$r = step2($wt, code => $c2);
error_is($r, 429, 'RATE_LIMIT_EXCEEDED', 'then even a right code: 429');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, '... with Retry-After');
$r = $t->post($VERIFY, { two_factor_code => $c2 },
              headers => auth($w->{access_token}));
error_is($r, 429, 'RATE_LIMIT_EXCEEDED',
         'the limit holds for the other endpoints too');
$t->psql("UPDATE user_mfa SET attempted_at = now() - interval '1 hour'"
         . q{ WHERE user_id = :'p1'}, $w->{id});
$r = step2($wt, code => $c2);
is($r->{status}, 200, 'after the lockout window, the right code works');

{
    my ($p, $psecret) = user_with_mfa();
    my $pt = challenge($p);
    my $start = time + 0.5;
    my @pids;
    for my $i (1 .. 20) {
        my $code = wrong_code($psecret);
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            Time::HiRes::sleep($start - time) if $start > time;
            my $x = step2($pt, code => $code);
            POSIX::_exit($x->{status} == 401 ? 1 : $x->{status} == 429 ? 2 : 3);
        }
        push @pids, $pid;
    }
    my %n;
    for my $pid (@pids) {
        waitpid($pid, 0);
        $n{ $? >> 8 }++;
    }
    is($n{1} // 0, 5, '20 parallel guesses: exactly 5 were checked');
    is($n{2} // 0, 15, '... and 15 refused with 429');
}

# ---------------------------------------------------------------------------
# the challenge token's lifetime; a disabled account

{
    my ($x, $xsecret) = user_with_mfa();
    my $xt = challenge($x);
    my ($h, $p) = jwt_decode($xt);
    $t->psql("UPDATE users SET is_active = false WHERE id = :'p1'", $x->{id});
    my (undef, $next) = step_codes($xsecret);
    $r = step2($xt, code => $next);
    error_is($r, 401, 'UNAUTHORIZED', 'a deactivated account: 401');
}

# ---------------------------------------------------------------------------
# configuration

$t->write_config(mfa_key => '');
ok($t->reload, 'reload without usermgmt_mfa_key');
$r = $t->post($ENABLE, undef, headers => auth($v->{access_token}));
is($r->{status}, 501, 'without a key, set-up answers 501');
is($r->{json}{error}{code}, 'NOT_IMPLEMENTED', '... NOT_IMPLEMENTED');

{
    my $bad = $t->tmp . '/short.key';
    open my $fh, '>', $bad or die;
    print {$fh} 'ab' x 31;
    close $fh;
    my $c = UM::Test->check_config(mfa_key => "usermgmt_mfa_key $bad;");
    isnt($c->{rc}, 0, 'nginx -t refuses a short key');
    like($c->{out}, qr/\[emerg\].*usermgmt_mfa_key.*short\.key.*32 bytes/,
         '... naming the directive, the file and the rule');
}

delete $t->{opt}{mfa_key};
$t->write_config;
ok($t->reload, 'reload with the key again');

# ---------------------------------------------------------------------------
# nothing secret in the logs

for my $file ('error.log', 'debug.log') {
    my $log = do { local (@ARGV, $/) = ($t->tmp . "/$file"); <> } // '';
    like($log, qr/\[debug\]/, 'the debug log is written') if $file =~ /debug/;
    my @leaked = grep { index($log, $_) >= 0 } @secrets_seen;
    is(scalar @leaked, 0,
       "no secret, code, backup code or challenge in $file")
        or diag "leaked: @leaked";
    (my $bare = join '|', map { my $c = $_; $c =~ s/-//; $c }
                          grep { /-/ } @secrets_seen) ||= 'x^';
    unlike($log, qr/$bare/, "no backup code without its dash in $file");
}

done_testing;
