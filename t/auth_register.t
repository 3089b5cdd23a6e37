#!/usr/bin/perl
# POST /api/v1/auth/register: the user it answers and stores, the
# organization it lands in, duplicates (409), the password policy (422 with
# the rule) and the other field checks.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is is_rfc3339_utc is_uuid);

my $t = UM::Test->new(workers => 2);

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $GOOD = 'Register-Good-8421';

my ($default_org) = $t->psql(q{SELECT id FROM organizations
                               WHERE slug = 'default' AND deleted_at IS NULL});
ok(is_uuid($default_org), 'the bootstrap made the default organization');

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
    ok(@hit, $name) or diag('got: ' . ($r->{content} // ''));
    if (@hit) {
        ok(defined $hit[0]{message} && length $hit[0]{message},
           "$name: with a message");
    }
    return $hit[0];
}

# keys anywhere in a JSON document
sub all_keys {
    my ($v) = @_;
    return () unless ref $v;
    return map { all_keys($_) } @$v if ref $v eq 'ARRAY';
    return () unless ref $v eq 'HASH';
    return (keys %$v, map { all_keys($_) } values %$v);
}

# the full answer

my $email = $t->unique_email('full');
my $r = $t->register(email => $email, password => $GOOD,
                     username => "full_$$", first_name => 'Ada',
                     last_name => 'Lovelace');
is($r->{status}, 201, 'register: 201') or diag($r->{content});
like($r->{headers}{'content-type'} // '', qr{^application/json\b},
     'Content-Type application/json');
my $u = eval { $r->{json}{data} } // {};
ok(is_uuid($u->{id}), 'data.id is a UUID');
is($u->{email}, $email, 'data.email');
is($u->{username}, "full_$$", 'data.username');
is($u->{first_name}, 'Ada', 'data.first_name');
is($u->{last_name}, 'Lovelace', 'data.last_name');
is($u->{organization_id}, $default_org,
   'no organization given: the default organization');
is($u->{tenant_id}, $default_org, 'data.tenant_id is the organization');
ok(JSON::PP::is_bool($u->{is_active}) && $u->{is_active}, 'is_active true');
ok(JSON::PP::is_bool($u->{is_verified}) && !$u->{is_verified},
   'is_verified false');
ok(JSON::PP::is_bool($u->{email_verified}) && !$u->{email_verified},
   'email_verified false');
ok(is_rfc3339_utc($u->{created_at}), 'created_at is RFC 3339 UTC')
    or diag($u->{created_at});
ok(is_rfc3339_utc($u->{updated_at}), 'updated_at is RFC 3339 UTC');
my @pw_keys = grep { /password/i } all_keys($r->{json});
ok(!@pw_keys, 'no password field in the answer') or diag("@pw_keys");
unlike($r->{content}, qr/\$argon2/, 'no password hash in the answer');
unlike($r->{content}, qr/\Q$GOOD\E/, 'the password is not echoed');

my @row = split /\|/, scalar $t->psql(
    q{SELECT email, username, organization_id, password_hash, is_active
        FROM users WHERE id = :'p1'}, $u->{id} // '');
is($row[0], $email, 'stored: email');
is($row[1], "full_$$", 'stored: username');
is($row[2], $default_org, 'stored: organization');
like($row[3] // '', qr/^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/,
     'stored: an argon2id PHC string');
is($row[4], 't', 'stored: active');

my ($audit) = $t->psql(q{SELECT action || ',' || status || ',' ||
                                coalesce(actor_id::text, '')
                           FROM audit_logs WHERE resource_id = :'p1'
                            AND action = 'user.register'}, $u->{id} // '');
is($audit, "user.register,success,$u->{id}",
   'audit: user.register by the new user');

# the new account logs in
is($t->login($email, $GOOD)->{status}, 200, 'the new account logs in');

# minimal body: the optional fields stay empty
$r = $t->register(email => $t->unique_email, password => $GOOD);
is($r->{status}, 201, 'email and password only: 201') or diag($r->{content});
$u = eval { $r->{json}{data} } // {};
ok(!defined $u->{username} && !defined $u->{first_name},
   'no username or names unless given');

# organizations

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  organization_slug => 'default');
is($r->{status}, 201, 'organization_slug default: 201');
is(eval { $r->{json}{data}{organization_id} }, $default_org, '... in it');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  organization_id => $default_org);
is($r->{status}, 201, 'organization_id of default: 201');

my ($open) = $t->psql(q{INSERT INTO organizations (name, slug,
                               allow_self_registration)
                        VALUES ('Open Org', 'open-org', true) RETURNING id});
my ($closed) = $t->psql(q{INSERT INTO organizations (name, slug)
                          VALUES ('Closed Org', 'closed-org') RETURNING id});
my ($inactive) = $t->psql(q{INSERT INTO organizations (name, slug,
                                  allow_self_registration, is_active)
                            VALUES ('Gone Org', 'gone-org', true, false)
                            RETURNING id});

my $shared = $t->unique_email('shared');
$r = $t->register(email => $shared, password => $GOOD);
is($r->{status}, 201, 'an email in the default organization');
$r = $t->register(email => $shared, password => $GOOD,
                  organization_slug => 'open-org');
is($r->{status}, 201, 'the same email in another organization: 201')
    or diag($r->{content});
is(eval { $r->{json}{data}{organization_id} }, $open,
   '... lands in that organization');
is(eval { $r->{json}{data}{tenant_id} }, $open, '... tenant_id too');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  organization_slug => 'closed-org');
error_is($r, 422, 'VALIDATION_FAILED',
         'an organization without self-registration (slug): 422');
has_detail($r, 'organization_slug', undef, '... field organization_slug');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  organization_id => $closed);
error_is($r, 422, 'VALIDATION_FAILED',
         'an organization without self-registration (id): 422');
has_detail($r, 'organization_id', undef, '... field organization_id');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  organization_slug => 'gone-org');
error_is($r, 422, 'VALIDATION_FAILED', 'an inactive organization: 422');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  organization_slug => 'no-such-org');
error_is($r, 422, 'VALIDATION_FAILED', 'an unknown organization slug: 422');
has_detail($r, 'organization_slug', undef, '... field organization_slug');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  organization_id => '00000000-0000-4000-8000-000000000000');
error_is($r, 422, 'VALIDATION_FAILED', 'an unknown organization id: 422');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  organization_id => 'not-a-uuid');
error_is($r, 422, 'VALIDATION_FAILED', 'organization_id not a UUID: 422');
has_detail($r, 'organization_id', undef, '... field organization_id');

is(scalar $t->psql(q{SELECT count(*) FROM users
                      WHERE organization_id IN (:'p1', :'p2')},
                   $closed, $inactive),
   0, 'nobody was stored in the closed organizations');

# duplicates: 409

$r = $t->register(email => $email, password => $GOOD);
error_is($r, 409, 'CONFLICT', 'the same email again: 409 CONFLICT');
has_detail($r, 'email', 'unique', '... field email, rule unique');

$r = $t->register(email => uc($email), password => $GOOD);
error_is($r, 409, 'CONFLICT', 'the same email in capitals: 409');
has_detail($r, 'email', 'unique', '... field email, rule unique');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  username => "full_$$");
error_is($r, 409, 'CONFLICT', 'the same username again: 409 CONFLICT');
has_detail($r, 'username', 'unique', '... field username, rule unique');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  username => uc("full_$$"));
error_is($r, 409, 'CONFLICT', 'the same username in capitals: 409');

is(scalar $t->psql(q{SELECT count(*) FROM users WHERE email = :'p1'
                      AND organization_id = :'p2'}, $email, $default_org),
   1, 'one account for the email in the organization');

# the password policy: 422 on field password with the rule

sub policy_refused {
    my ($password, $rule, $name, %more) = @_;
    my $r = $t->register(password => $password, %more,
                         email => $more{email} // $t->unique_email);
    subtest "password $name: rule $rule" => sub {
        error_is($r, 422, 'VALIDATION_FAILED', '422 VALIDATION_FAILED');
        has_detail($r, 'password', $rule, "field password, rule $rule");
        # (the sequential rule's message quotes 12345678 as its example)
        unlike($r->{content} // '', qr/\Q$password\E/,
               'the password is not echoed')
            if length $password >= 8 && $rule ne 'sequential';
    };
}

policy_refused('Sh0rt!x', 'min_length', '7 characters');
policy_refused("\x{e0}\x{e9}\x{ee}\x{f5}\x{fc}\x{e7}\x{f1}", 'min_length',
               '7 code points in 14 bytes');
policy_refused('', 'min_length', 'empty');
policy_refused(join('', map { chr(0x21 + ($_ * 7) % 90) } 1 .. 129),
               'max_length', '129 characters');
policy_refused('password123', 'common', 'password123');
policy_refused('sunshine2024', 'common', 'sunshine2024');
policy_refused('letmein!', 'common', 'letmein!');
policy_refused('PASSWORD123', 'common', 'PASSWORD123 (case)');
policy_refused('aaaaaaaaaa', 'repetitive', 'aaaaaaaaaa');
policy_refused('12345678', 'sequential', '12345678');
policy_refused('abcdefgh', 'sequential', 'abcdefgh');
policy_refused('qwertyuiop', 'sequential', 'qwertyuiop');
{
    my $local = "jonathanwalker$$";
    policy_refused($local, 'contains_identity',
                   'equal to the email local part',
                   email => "$local\@example.com");
    my $name = "margaret_h$$";
    policy_refused($name, 'contains_identity', 'equal to the username',
                   username => $name);
}

# accepted at the edges: 8 and 128 code points, multi-byte characters
for my $case (['Gx7!kq2M', '8 characters'],
              [join('', map { chr(0x400 + ($_ * 37) % 128) } 0 .. 127),
               '128 code points in 256 bytes'],
              [join('', map { chr(0x21 + ($_ * 7) % 90) } 1 .. 128),
               '128 characters'],
              ["\x{17d}lu\x{165}ou\x{10d}k\x{fd} k\x{16f}\x{148} 9",
               'Czech with a space'],
              ["\x{1f600}\x{1f680}\x{1f308}\x{1f355}\x{1f3b8}\x{1f40d}"
               . "\x{1f4a1}\x{1f511}", '8 emoji (astral plane)']) {
    my ($pw, $what) = @$case;
    my $e = $t->unique_email('edge');
    $r = $t->register(email => $e, password => $pw);
    is($r->{status}, 201, "password of $what: 201") or diag($r->{content});
    is($t->login($e, $pw)->{status}, 200, "... and it logs in");
}

# other fields

for my $bad ('notanemail', 'a@', '@example.com', 'a b@example.com',
             'a@@example.com', ('x' x 250) . '@example.com',
             "a\@example.com\n", '') {
    (my $show = $bad) =~ s/\n/\\n/g;
    $show = substr($show, 0, 20) . '...' if length $show > 20;
    $r = $t->register(email => $bad, password => $GOOD);
    error_is($r, 422, 'VALIDATION_FAILED', "email '$show': 422");
    has_detail($r, 'email', undef, "email '$show': field email");
}

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  role => 'admin');
error_is($r, 422, 'VALIDATION_FAILED', 'an unknown field (role): 422');
has_detail($r, 'role', 'unknown', '... rule unknown');

for my $field (qw(is_super_admin user_type is_active email_verified
                  kyc_status id)) {
    $r = $t->register(email => $t->unique_email, password => $GOOD,
                      $field => 'x');
    error_is($r, 422, 'VALIDATION_FAILED', "$field cannot be set: 422");
    has_detail($r, $field, 'unknown', "... $field rule unknown");
}

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  first_name => 'x' x 101);
error_is($r, 422, 'VALIDATION_FAILED', 'first_name of 101 characters: 422');
has_detail($r, 'first_name', 'max_length', '... rule max_length');

$r = $t->register(email => $t->unique_email, password => $GOOD,
                  username => 'ab');
error_is($r, 422, 'VALIDATION_FAILED', 'a 2-character username: 422');
has_detail($r, 'username', undef, '... field username');

# several problems at once are all listed
$r = $t->register(email => 'nope', password => 'short', extra => 1);
error_is($r, 422, 'VALIDATION_FAILED', 'three problems: 422');
my %fields = map { ($_->{field} // '') => 1 } details_of($r);
ok($fields{email} && $fields{extra}, 'details list email and the unknown field')
    or diag($r->{content});

# SQL-looking input is data
my $sqlish = "o'brien$$\@example.com";
$r = $t->register(email => $sqlish, password => $GOOD,
                  first_name => "D'Arcy", last_name => "O'Neil-Smith");
is($r->{status}, 201, 'quotes in fields: 201') or diag($r->{content});
is(eval { $r->{json}{data}{email} }, $sqlish, '... email stored as given');
is(eval { $r->{json}{data}{last_name} }, "O'Neil-Smith",
   '... last_name stored as given');
$r = $t->register(email => $t->unique_email, password => $GOOD,
                  first_name => "Robert'); DROP TABLE users; --");
error_is($r, 422, 'VALIDATION_FAILED',
         'a first_name with SQL punctuation: 422 (names hold letters)');
has_detail($r, 'first_name', 'format', '... rule format');
ok(scalar $t->psql('SELECT count(*) FROM users') > 5, 'the users table is there');

done_testing();
