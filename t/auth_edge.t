#!/usr/bin/perl
# Identity at the edge: locations of any kind (here proxy_pass) protected
# by "usermgmt_auth", the identity variables the upstream receives,
# "usermgmt_require", "usermgmt_auth optional", and the X-Tenant-ID check.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is wait_until);
use UM::JWT qw(jwt_decode);

# the upstream: a plain nginx server on the second port that shows the
# identity headers it got, and logs every request it receives
my $upstream = <<'EOF';
    log_format upstream_seen '$request_uri';
    server {
        listen 127.0.0.1:%%PORT2%%;
        access_log %%TMPDIR%%/upstream.log upstream_seen;
        location / {
            return 200 "$http_x_user_id|$http_x_tenant_id|$http_x_roles|$http_x_claim_email";
        }
    }
EOF

my $identity = join "\n",
    'proxy_set_header X-User-Id $usermgmt_user_id;',
    'proxy_set_header X-Tenant-Id $usermgmt_tenant_id;',
    'proxy_set_header X-Roles $usermgmt_roles;',
    'proxy_set_header X-Claim-Email $usermgmt_claim_email;';

my $locations = <<"EOF";
        location /internal/ {
            usermgmt_auth on;
            $identity
            proxy_pass http://127.0.0.1:%%PORT2%%/;
        }
        location /org-admin/ {
            usermgmt_auth on;
            usermgmt_require role=org_admin;
            $identity
            proxy_pass http://127.0.0.1:%%PORT2%%/;
        }
        location /deleters/ {
            usermgmt_auth on;
            usermgmt_require permission=users:delete;
            $identity
            proxy_pass http://127.0.0.1:%%PORT2%%/;
        }
        location /maybe/ {
            usermgmt_auth optional;
            $identity
            proxy_pass http://127.0.0.1:%%PORT2%%/;
        }
        location /open/ {
            $identity
            proxy_pass http://127.0.0.1:%%PORT2%%/;
        }
EOF

my $t = UM::Test->new(workers => 2, http_extra => $upstream,
                      server_extra => $locations);

my $LOG = $t->tmp . '/upstream.log';

sub upstream_saw {
    my ($path) = @_;
    open my $fh, '<', $LOG or return 0;
    return scalar grep { /^\Q$path\E$/ } <$fh>;
}

sub with_token {
    my ($path, $tok, %h) = @_;
    return $t->get($path, headers => { ($tok ? (authorization => "Bearer $tok")
                                              : ()), %h });
}

my ($org) = $t->psql(q{SELECT id FROM organizations WHERE slug = 'default'});
my $u = $t->new_user;
my $tok = $u->{access_token};

my $l = $t->login($t->admin_email, $t->admin_password);
is($l->{status}, 200, 'the bootstrap super admin logs in') or diag($l->{content});
my $admin = eval { $l->{json}{data}{access_token} } // '';
my (undef, $ap) = jwt_decode($admin);
ok($ap && grep({ $_ eq 'super_admin' } @{ $ap->{roles} // [] }),
   'the admin token has the super_admin role') or diag(explain $ap);

# the plain upstream works
my $r = $t->get('/', port => $t->port2);
is($r->{status}, 200, 'the upstream answers on its own');

# usermgmt_auth on

$r = with_token('/internal/hello', $tok);
is($r->{status}, 200, 'a protected proxy location with a token: 200')
    or diag($r->{content});
is($r->{content}, "$u->{id}|$org|user|$u->{email}",
   'the upstream got X-User-Id, X-Tenant-Id, X-Roles and X-Claim-Email');
# the upstream logs its request after it answered: give it a moment
wait_until(sub { upstream_saw('/hello') >= 1 }, 2);
is(upstream_saw('/hello'), 1, 'the upstream was reached once');

$r = with_token('/internal/no-token', undef);
error_is($r, 401, 'UNAUTHORIZED', 'no token: 401');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="usermgmt"',
   'WWW-Authenticate: Bearer realm="usermgmt"');
is(upstream_saw('/no-token'), 0, 'the upstream was not reached');

$r = with_token('/internal/bad-token', "$tok" . 'x');
error_is($r, 401, 'UNAUTHORIZED', 'a bad token: 401');
like($r->{headers}{'www-authenticate'} // '', qr/error="invalid_token"/,
     '... error="invalid_token"');
is(upstream_saw('/bad-token'), 0, 'the upstream was not reached');

$r = with_token('/internal/spoof', $tok, 'X-User-Id' => 'attacker',
                'X-Roles' => 'super_admin', 'X-Claim-Email' => 'evil@x');
is($r->{content}, "$u->{id}|$org|user|$u->{email}",
   'identity headers sent by the client are replaced by the real ones');

for my $m (qw(POST PUT DELETE)) {
    $r = $t->request($m, "/internal/method-$m",
                     { headers => { authorization => "Bearer $tok" },
                       ($m eq 'DELETE' ? () : (body => 'x')) });
    is($r->{status}, 200, "$m with a token passes to the upstream");
    $r = $t->request($m, "/internal/method-anon-$m",
                     { ($m eq 'DELETE' ? () : (body => 'x')) });
    is($r->{status}, 401, "$m without a token: 401");
}
is(upstream_saw('/method-anon-POST') + upstream_saw('/method-anon-PUT')
   + upstream_saw('/method-anon-DELETE'), 0,
   'no anonymous request reached the upstream');

# revoked tokens are refused at the edge too
{
    my $v = $t->new_user;
    is(with_token('/internal/before-logout', $v->{access_token})->{status}, 200,
       'a second user passes');
    my $out = $t->post('/api/v1/auth/logout', undef,
                       headers => $t->auth_header($v->{access_token}));
    is($out->{status}, 200, '... logs out');
    $r = with_token('/internal/after-logout', $v->{access_token});
    error_is($r, 401, 'UNAUTHORIZED', '... and is refused at the edge at once');
    is(upstream_saw('/after-logout'), 0, '... without reaching the upstream');
}

# usermgmt_require

$r = with_token('/org-admin/x', $tok);
error_is($r, 403, 'FORBIDDEN', 'require role=org_admin, a plain user: 403');
is(upstream_saw('/x'), 0, '... the upstream was not reached');
$r = with_token('/org-admin/y', undef);
error_is($r, 401, 'UNAUTHORIZED', 'require role=org_admin, no token: 401');
$r = with_token('/org-admin/z', $admin);
is($r->{status}, 200, 'require role=org_admin, the super admin: 200')
    or diag($r->{content});
like($r->{content}, qr/^\Q$ap->{sub}\E\|\Q$org\E\|[^|]*super_admin[^|]*\|admin\@example\.com$/,
     'the upstream sees the admin and its roles') or diag($r->{content});

$r = with_token('/deleters/x', $tok);
error_is($r, 403, 'FORBIDDEN', 'require permission=users:delete, a plain user: 403');
$r = with_token('/deleters/y', $admin);
is($r->{status}, 200, 'require permission=users:delete, the super admin: 200')
    or diag($r->{content});

# a user made org admin in the database gets the role with a new token
{
    my $m = $t->new_user;
    $t->psql(q{UPDATE users SET user_type = 'admin' WHERE id = :'p1'}, $m->{id});
    error_is(with_token('/org-admin/old', $m->{access_token}), 403, 'FORBIDDEN',
             'the old token still says user: 403');
    my $nl = $t->login($m->{email}, $m->{password});
    my $mt = eval { $nl->{json}{data}{access_token} } // '';
    $r = with_token('/org-admin/new', $mt);
    is($r->{status}, 200, 'a new token of an org admin: 200') or diag($r->{content});
    like($r->{content}, qr/\|org_admin\|/, '... with the role org_admin');
}

# usermgmt_auth optional

$r = with_token('/maybe/anon', undef);
is($r->{status}, 200, 'optional, no token: 200');
is($r->{content}, '|||', '... no identity headers');
$r = with_token('/maybe/anon-spoof', undef, 'X-User-Id' => 'attacker');
is($r->{content}, '|||', '... and a client X-User-Id is not passed on');
$r = with_token('/maybe/known', $tok);
is($r->{status}, 200, 'optional, with a token: 200');
is($r->{content}, "$u->{id}|$org|user|$u->{email}", '... with the identity');

# a location without usermgmt_auth knows no identity
$r = with_token('/open/x', $tok);
is($r->{status}, 200, 'a location without usermgmt_auth: 200');
is($r->{content}, '|||', '... and no identity variables');

# X-Tenant-ID on the API

my $ME = '/api/v1/users/me';
$r = with_token($ME, $tok, 'X-Tenant-ID' => $org);
is($r->{status}, 200, 'X-Tenant-ID equal to the token tenant: 200');
$r = with_token($ME, $tok, 'X-Tenant-ID' => uc $org);
is($r->{status}, 200, '... in capitals: 200');
$r = with_token($ME, $tok, 'X-Tenant-ID' => '00000000-0000-4000-8000-000000000001');
error_is($r, 403, 'FORBIDDEN', 'X-Tenant-ID of another tenant: 403');
$r = with_token($ME, $tok, 'X-Tenant-ID' => 'not-a-tenant');
ok($r->{status} == 400 || $r->{status} == 403,
   'X-Tenant-ID that is not a UUID: 400 or 403') or diag($r->{content});
$r = with_token('/internal/tenant', $tok,
                'X-Tenant-ID' => '00000000-0000-4000-8000-000000000001');
error_is($r, 403, 'FORBIDDEN', 'X-Tenant-ID of another tenant at the edge: 403');
is(upstream_saw('/tenant'), 0, '... the upstream was not reached');

my ($other_org) = $t->psql(q{INSERT INTO organizations (name, slug)
                             VALUES ('Other', 'other-org') RETURNING id});
$r = with_token('/internal/admin-tenant', $admin, 'X-Tenant-ID' => $other_org);
is($r->{status}, 200, 'the super admin may name another tenant');
like($r->{content}, qr/^[^|]*\|\Q$other_org\E\|/,
     '... and the upstream sees that tenant') or diag($r->{content});

done_testing();
