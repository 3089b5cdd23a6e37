#!/usr/bin/perl
# The outbox as a mailer sees it (docs/account.md): a NOTIFY on channel
# usermgmt_outbox for each new message, claims that lease messages and
# skip the ones another mailer holds, sent messages losing their secret,
# failures retried later, and the purge of what is old.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use UM::Test qw(is_uuid json_decode wait_until);

my $t = UM::Test->new(nginx => 0);

# a user with an unverified address: the insert leaves a message
sub new_message {
    my ($email) = @_;
    $t->psql(q{INSERT INTO users (organization_id, email)
               SELECT id, :'p1' FROM organizations WHERE slug = 'default'},
             $email);
    return scalar $t->psql(q{SELECT id FROM outbox WHERE recipient = :'p1'},
                           $email);
}

# the notification, seen by a listening session
my @out = $t->psql(q{
    LISTEN usermgmt_outbox;
    INSERT INTO users (organization_id, email)
    SELECT id, 'listen@example.com' FROM organizations
     WHERE slug = 'default';
    SELECT id FROM outbox WHERE recipient = 'listen@example.com';
});
my ($id) = grep { is_uuid($_) } @out;
ok($id, 'a new user leaves a message');
ok((grep { /notification "usermgmt_outbox" with payload "\Q$id\E"/ } @out),
   '... and a listener hears its id on usermgmt_outbox')
    or diag(join "\n", @out);

my $row = $t->psql(q{SELECT channel, template, attempts, sent_at IS NULL,
                            available_at <= now()
                       FROM outbox WHERE id = :'p1'}, $id);
is($row, 'email|email_verification|0|t|t', '... due, unsent, untried');

# claims
my $m2 = new_message('claim-2@example.com');
my @claimed = $t->psql(q{SELECT id FROM um_outbox_claim(10, 60)});
is_deeply([sort @claimed], [sort $id, $m2], 'a claim returns the due ones');
is(scalar $t->psql(q{SELECT count(*) FROM outbox
                      WHERE attempts = 1
                        AND available_at > now() + interval '50 seconds'}),
   2, '... counts an attempt and leases them');
is(scalar $t->psql(q{SELECT count(*) FROM um_outbox_claim(10, 60)}), 0,
   'a second claim finds them leased');

# another mailer holds a row: skipped, not waited for
my $m3 = new_message('claim-3@example.com');
my $m4 = new_message('claim-4@example.com');
my $holder = $t->psql_bg(q{
    BEGIN;
    SELECT id FROM outbox WHERE id = :'p1' FOR UPDATE;
    SELECT pg_sleep(3);
    COMMIT;
}, $m3);
sleep 0.5;
my $t0 = time;
@claimed = $t->psql(q{SELECT id FROM um_outbox_claim(10, 60)});
my $took = time - $t0;
is_deeply(\@claimed, [$m4], 'a row another mailer holds is skipped');
cmp_ok($took, '<', 2, '... without waiting for it');
$t->wait_bg($holder, 10);

# sent: the secret leaves the payload
my $payload = json_decode(scalar $t->psql(
    q{SELECT payload FROM outbox WHERE id = :'p1'}, $id));
ok(defined $payload->{token}, 'an unsent message carries its token');
$t->psql(q{SELECT um_outbox_sent(:'p1')}, $id);
$payload = json_decode(scalar $t->psql(
    q{SELECT payload FROM outbox WHERE id = :'p1'}, $id));
ok(!exists $payload->{token}, 'once sent, the token is gone');
is($payload->{user_id}, scalar $t->psql(
       q{SELECT id FROM users WHERE email = 'listen@example.com'}),
   '... the rest stays');
is(scalar $t->psql(q{SELECT sent_at IS NOT NULL FROM outbox
                      WHERE id = :'p1'}, $id), 't', '... sent_at is set');

# failed: due again later, with the error
$t->psql(q{SELECT um_outbox_failed(:'p1', 'smtp: 451 try later')}, $m2);
is(scalar $t->psql(
       q{SELECT last_error || '|'
                || round(extract(epoch FROM available_at - now()))
           FROM outbox WHERE id = :'p1'}, $m2),
   'smtp: 451 try later|30', 'a failure: the error, due in 30 s');
$t->psql(q{UPDATE outbox SET available_at = now() WHERE id = :'p1'}, $m2);
@claimed = $t->psql(q{SELECT id, attempts FROM um_outbox_claim(10, 60)});
is_deeply([sort @claimed], [sort "$m2|2", "$m3|1"],
          '... then claimed again, attempt 2 (with the one skipped before)');
$t->psql(q{SELECT um_outbox_failed(:'p1', 'again')}, $m2);
is(scalar $t->psql(
       q{SELECT round(extract(epoch FROM available_at - now()))
           FROM outbox WHERE id = :'p1'}, $m2),
   60, '... the backoff doubles');

$t->psql(q{UPDATE outbox SET attempts = 10, available_at = now()
            WHERE id = :'p1'}, $m2);
is(scalar $t->psql(q{SELECT count(*) FROM um_outbox_claim(10, 60)
                      WHERE id = :'p1'}, $m2),
   0, 'after ten attempts a message is claimed no more');

# the purge
$t->psql(q{UPDATE outbox SET sent_at = now() - interval '8 days'
            WHERE id = :'p1'}, $id);
$t->psql(q{SELECT um_outbox_sent(:'p1')}, $m4);
$t->psql(q{UPDATE account_tokens
              SET created_at = created_at - interval '9 days',
                  expires_at = expires_at - interval '9 days'
            WHERE sent_to = 'claim-3@example.com'});
$t->psql(q{SELECT um_account_flows_purge(interval '7 days')});
is(scalar $t->psql(q{SELECT count(*) FROM outbox WHERE id = :'p1'}, $id),
   0, 'the purge removes messages sent long ago');
is(scalar $t->psql(q{SELECT count(*) FROM outbox WHERE id = :'p1'}, $m4),
   1, '... keeps the ones sent lately');
is(scalar $t->psql(q{SELECT count(*) FROM outbox WHERE id = :'p1'}, $m3),
   1, '... and the unsent ones');
is(scalar $t->psql(q{SELECT count(*) FROM account_tokens
                      WHERE sent_to = 'claim-3@example.com'}),
   0, '... and removes tokens expired long ago');
is(scalar $t->psql(q{SELECT count(*) FROM account_tokens
                      WHERE sent_to = 'claim-4@example.com'}),
   1, '... but not live ones');

done_testing();
