#!/usr/bin/perl
# The account security flows write their change and its audit row
# together or not at all: two-factor set-up, enabling, disabling and the
# second step of sign-in; password reset; email and phone verification;
# KYC requests.  As in audit_atomic.t, a trigger added with psql makes
# the audit insert of one action fail; the call must then change nothing
# (no token or code spent, no message queued), and succeed once the
# obstacle is gone.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test;

plan skip_all => 'oathtool is not installed'
    unless grep { -x "$_/oathtool" } split /:/, $ENV{PATH};

my $t = UM::Test->new(workers => 1);

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
sub sql1   { my ($q, @b) = @_; return scalar $t->psql($q, @b) }
sub auth   { $t->auth_header($_[0]) }

sub totp {
    my ($secret, $at) = @_;
    my $out = `oathtool --totp --base32 --now '\@@{[int $at]}' '$secret'`;
    chomp $out;
    return $out;
}

# refused, then allowed: the same call fails without a trace, then works
sub atomic_ok {
    my (%o) = @_;
    subtest $o{name} => sub {
        my $before = $o{state}->();
        refuse($o{action});
        my $r = $o{call}->();
        is($r->{status}, 500, "with $o{action} refused: 500");
        is($o{state}->(), $before, 'nothing of the change was kept');
        allow($o{action});
        $r = $o{call}->();
        is($r->{status}, $o{status} // 200, 'allowed: the call succeeds')
            or diag $r->{content};
        isnt($o{state}->(), $before, 'and changes the data');
    };
}

my $u = $t->new_user;
my $state = sub {
    sql1(q{SELECT concat_ws('|', u.two_factor_enabled, m.secret, m.last_step,
                            m.challenge_floor,
                            (SELECT count(*) FROM user_backup_codes b
                              WHERE b.user_id = u.id AND b.used_at IS NULL),
                            (SELECT count(*) FROM sessions s
                              WHERE s.user_id = u.id))
            FROM users u LEFT JOIN user_mfa m ON m.user_id = u.id
           WHERE u.id = :'p1'}, $u->{id});
};

my $setup;
atomic_ok(name => 'two-factor set-up', action => 'mfa.setup', state => $state,
          call => sub {
              my $r = $t->post('/api/v1/users/2fa/enable', undef,
                               headers => auth($u->{access_token}));
              $setup = $r->{json}{data} if $r->{status} == 200;
              return $r;
          });

my $step = int(time / 30);
atomic_ok(name => 'enabling with the first code', action => 'mfa.enable',
          state => $state,
          call => sub {
              $t->post('/api/v1/users/2fa/verify',
                       { code => totp($setup->{secret}, $step * 30) },
                       headers => auth($u->{access_token}));
          });

my $mfa = $t->login($u->{email}, $u->{password})->{json}{data}{mfa_token};
ok($mfa, 'a sign-in challenge');
atomic_ok(name => 'the second step of sign-in', action => 'auth.login',
          state => $state,
          call => sub {
              $t->post('/api/v1/auth/mfa/verify',
                       { mfa_token => $mfa,
                         code => totp($setup->{secret}, ($step + 1) * 30) });
          });

atomic_ok(name => 'disabling', action => 'mfa.disable', state => $state,
          call => sub {
              $t->post('/api/v1/users/2fa/disable',
                       { backup_code => $setup->{backup_codes}[0] },
                       headers => auth($u->{access_token}));
          });

# password reset: the token stays unused, the password unchanged
my $v = $t->new_user;
$t->post('/api/v1/users/password/reset/request', { email => $v->{email} });
my $token = sql1(q{SELECT payload->>'token' FROM outbox
                    WHERE template = 'password_reset' AND recipient = :'p1'
                    ORDER BY id DESC LIMIT 1}, $v->{email});
ok($token, 'a reset token in the outbox');
my $vstate = sub {
    sql1(q{SELECT concat_ws('|', u.password_hash,
                            (SELECT count(*) FROM account_tokens a
                              WHERE a.user_id = u.id AND a.used_at IS NULL),
                            (SELECT count(*) FROM sessions s
                              WHERE s.user_id = u.id AND s.revoked_at IS NULL))
            FROM users u WHERE u.id = :'p1'}, $v->{id});
};
atomic_ok(name => 'password reset', action => 'auth.password_reset',
          state => $vstate,
          call => sub {
              $t->post('/api/v1/users/password/reset/confirm',
                       { token => $token,
                         new_password => 'quiet-lantern-orchard-77' });
          });

# email verification
my $w = $t->new_user;
my $link = sql1(q{SELECT payload->>'token' FROM outbox
                   WHERE template = 'email_verification' AND recipient = :'p1'
                   ORDER BY id DESC LIMIT 1}, $w->{email});
my $wstate = sub {
    sql1(q{SELECT concat_ws('|', email_verified,
                            (SELECT count(*) FROM account_tokens a
                              WHERE a.user_id = u.id AND a.used_at IS NULL))
             FROM users u WHERE id = :'p1'}, $w->{id});
};
atomic_ok(name => 'email verification', action => 'user.verify_email',
          state => $wstate,
          call => sub {
              $t->post('/api/v1/users/verify-email', { token => $link });
          });

# KYC request
atomic_ok(name => 'KYC request', action => 'user.kyc_request',
          state => sub {
              sql1(q{SELECT concat_ws('|', kyc_status,
                                      (SELECT count(*) FROM kyc_requests k
                                        WHERE k.user_id = u.id))
                       FROM users u WHERE id = :'p1'}, $w->{id});
          },
          call => sub {
              $t->post('/api/v1/users/kyc/request',
                       { verification_level => 'basic' },
                       headers => auth($w->{access_token}));
          });

done_testing;
