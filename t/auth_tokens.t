#!/usr/bin/perl
# Access tokens: the header and claims of a login token, checked with our
# own HS256 (UM::JWT) against the harness key; every kind of bad token is a
# 401 (never a 500); forged tokens with the right key and claims pass, which
# proves the checks are the reason for the refusals.  Then the other
# algorithms, checked with the openssl command as the oracle: the JWKS,
# tokens the server signs with RS256 / ES256 / EdDSA, key rotation, and
# algorithm confusion.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path);
use MIME::Base64 ();
use Test::More;
use UM::Test qw(error_is is_uuid json_encode);
use UM::JWT qw(b64u_encode b64u_decode jwt_encode jwt_decode jwt_verify
               gen_key public_raw rsa_modulus);

# a 10 KB token must reach the module: nginx's default header buffers are 8k
my $t = UM::Test->new(workers => 2,
                      http_extra => 'large_client_header_buffers 4 32k;');

my $ME = '/api/v1/users/me';
my $SECRET = $t->jwt_secret;
is(length $SECRET, 64, 'the harness key is 64 bytes');

my ($org) = $t->psql(q{SELECT id FROM organizations WHERE slug = 'default'});
my $u = $t->new_user(username => "tok_$$");
my $other = $t->new_user;
my $token = $u->{access_token};

###########################################################################
# the login token

my ($h, $p, $sig, $input) = jwt_decode($token);
ok($h && $p, 'the access token decodes as three base64url parts of JSON')
    or BAIL_OUT("no token to work with: $token");
is_deeply($h, { alg => 'HS256', typ => 'at+jwt', kid => 'test' },
          'header {"alg":"HS256","typ":"at+jwt","kid":"test"}');
ok(jwt_verify($token, key => $SECRET),
   'the signature verifies with our HS256 and the harness key');
ok(!jwt_verify($token, key => 'x' x 64), '... and not with another key');

is($p->{sub}, $u->{id}, 'sub is the user id');
is($p->{tenant_id}, $org, 'tenant_id is the organization');
is($p->{email}, $u->{email}, 'email');
is($p->{user_type}, 'user', 'user_type user');
is_deeply($p->{roles}, ['user'], 'roles ["user"]');
# the effective permissions: here those of the built-in role "user"
my @expected = $t->psql(
    q{SELECT p.name FROM roles r
        JOIN role_permissions rp ON rp.role_id = r.id
        JOIN permissions p ON p.id = rp.permission_id
       WHERE r.organization_id = :'p1' AND r.name = 'user' ORDER BY 1},
    $org);
ok(scalar @expected, "the built-in role 'user' holds permissions");
is_deeply($p->{permissions}, \@expected,
          "permissions are those of the built-in role 'user'");
is($p->{iss}, 'usermgmt', 'iss usermgmt');
ok($p->{aud} && ($p->{aud} eq 'usermgmt'
                 || (ref $p->{aud} eq 'ARRAY'
                     && grep { $_ eq 'usermgmt' } @{ $p->{aud} })),
   'aud usermgmt') or diag(explain $p->{aud});
for my $c (qw(iat nbf exp)) {
    ok(defined $p->{$c} && !ref $p->{$c} && $p->{$c} =~ /^\d+$/,
       "$c is a whole number of seconds") or diag(explain $p->{$c});
}
cmp_ok(abs(($p->{iat} // 0) - time), '<=', 5, 'iat is now');
cmp_ok($p->{nbf} // 1e12, '<=', $p->{iat} // 0, 'nbf is not after iat');
is(($p->{exp} // 0) - ($p->{iat} // 0), 900, 'exp is iat + 900');
ok(is_uuid($p->{jti}), 'jti is a UUID');
ok(is_uuid($p->{sid}), 'sid is a UUID');
is(scalar $t->psql(q{SELECT user_id FROM sessions WHERE id = :'p1'},
                   $p->{sid} // ''),
   $u->{id}, 'sid names the session of the login in PostgreSQL');
my (undef, $p2) = jwt_decode($t->login($u->{email}, $u->{password})
                                 ->{json}{data}{access_token});
isnt($p2->{jti}, $p->{jti}, 'another login: another jti');
isnt($p2->{sid}, $p->{sid}, 'another login: another session');

my $r = $t->get($ME, headers => $t->auth_header($token));
is($r->{status}, 200, 'the token opens /users/me') or diag($r->{content});
is(eval { $r->{json}{data}{id} }, $u->{id}, '... as its user');

$r = $t->get($ME, headers => { authorization => "bearer $token" });
is($r->{status}, 200, 'the scheme is case-insensitive ("bearer")');

###########################################################################
# no token

$r = $t->get($ME);
error_is($r, 401, 'UNAUTHORIZED', 'no token: 401');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="usermgmt"',
   'WWW-Authenticate: Bearer realm="usermgmt"');

###########################################################################
# refusals

sub refused {
    my ($tok, $name, %o) = @_;
    my $r = $t->get($ME, headers => { authorization =>
                                          $o{raw} // "Bearer $tok" });
    subtest $name => sub {
        error_is($r, 401, 'UNAUTHORIZED', '401 UNAUTHORIZED');
        my $www = $r->{headers}{'www-authenticate'} // '';
        like($www, qr/^Bearer\b/, 'WWW-Authenticate: Bearer');
        like($www, qr/\brealm="usermgmt"/, '... realm="usermgmt"');
        like($www, qr/\berror="invalid_token"/, '... error="invalid_token"')
            unless $o{no_token};
    };
    return $r;
}

sub accepted {
    my ($tok, $name) = @_;
    my $r = $t->get($ME, headers => $t->auth_header($tok));
    is($r->{status}, 200, $name) or diag($r->{content});
    return $r;
}

my %HEAD = (alg => 'HS256', typ => 'at+jwt', kid => 'test');
my $now = time;

# a token signed with the harness key: the login's claims, with changes
sub forge {
    my (%o) = @_;
    my %claims = (%$p, iat => $now, nbf => $now, exp => $now + 600,
                  %{ $o{claims} // {} });
    delete @claims{ @{ $o{drop} // [] } };
    my %head = (%HEAD, %{ $o{header} // {} });
    delete @head{ @{ $o{drop_header} // [] } };
    return jwt_encode(\%head, \%claims, key => $o{key} // $SECRET,
                      %{ $o{sign} // {} });
}

# the control: a forged token with every claim right passes
accepted(forge(), 'a token forged with the key and the right claims: 200');
accepted(forge(claims => { exp => $now - 30 }),
         'expired 30 s ago (within the 60 s leeway): 200');
accepted(forge(claims => { nbf => $now + 30 }),
         'nbf 30 s ahead (within the leeway): 200');

my ($hb, $pb, $sb) = split /\./, $token;

refused("$hb.$pb.", 'the signature stripped');
refused("$hb.$pb", 'two parts only');
refused("$hb.$pb." . substr($sb, 0, -2), 'the signature truncated');
refused("$hb.$pb." . substr($sb, 0, 10), 'a 10-character signature');
{
    my $raw = b64u_decode($sb);
    substr($raw, 5, 1) = chr(ord(substr $raw, 5, 1) ^ 0x01);
    refused("$hb.$pb." . b64u_encode($raw), 'one signature bit flipped');
    refused("$hb.$pb." . b64u_encode($raw . "\0"), 'a byte added to the signature');
}
refused("$hb.$pb.$sb.$sb", 'four parts');
refused("$hb.$pb.$sb=", 'a padded signature');

my %bad_payload = (%$p, sub => $other->{id});
refused("$hb." . b64u_encode(json_encode(\%bad_payload)) . ".$sb",
        'the payload tampered (another sub), the signature kept');
%bad_payload = (%$p, roles => ['super_admin']);
refused("$hb." . b64u_encode(json_encode(\%bad_payload)) . ".$sb",
        'the payload tampered (roles), the signature kept');
refused(b64u_encode(json_encode({ %HEAD, kid => 'test', x => 1 })) . ".$pb.$sb",
        'the header tampered, the signature kept');

# alg none
for my $alg ('none', 'None', 'NONE', 'nOnE') {
    my $hn = b64u_encode(json_encode({ %HEAD, alg => $alg }));
    refused("$hn.$pb.", "alg \"$alg\" with an empty signature");
    refused("$hn.$pb.$sb", "alg \"$alg\" with a signature");
}
refused(jwt_encode({ typ => 'at+jwt', kid => 'test' }, $p, key => $SECRET,
                   alg => 'HS256'), 'no alg in the header');

# algorithms the key does not allow, signed with the same secret
refused(forge(header => { alg => 'HS512' }, sign => { alg => 'HS512' }),
        'HS512 signed with the HS256 key');
refused(forge(header => { alg => 'HS384' }, sign => { alg => 'HS384' }),
        'HS384 signed with the HS256 key');
refused(forge(header => { alg => 'RS256' }, sign => { alg => 'HS256' }),
        'alg RS256 in the header, an HMAC signature');

# claims
refused(forge(claims => { exp => $now - 120 }),
        'expired 120 s ago (beyond the 60 s leeway)');
refused(forge(claims => { exp => $now - 3600, iat => $now - 4500,
                          nbf => $now - 4500 }), 'expired an hour ago');
refused(forge(claims => { nbf => $now + 300 }), 'nbf 5 minutes ahead');
refused(forge(claims => { iat => $now + 3600, nbf => $now }),
        'iat an hour ahead');
refused(forge(claims => { iss => 'someone-else' }), 'wrong iss');
refused(forge(drop => ['iss']), 'no iss');
refused(forge(claims => { aud => 'another-service' }), 'wrong aud');
refused(forge(drop => ['aud']), 'no aud');
refused(forge(drop => ['exp']), 'no exp');
refused(forge(claims => { exp => '' . ($now + 600) }),
        'exp as a string');
refused(forge(drop => ['sub']), 'no sub');
refused(forge(header => { typ => 'JWT' }), 'typ JWT');
refused(forge(drop_header => ['typ']), 'no typ');
refused(forge(header => { kid => 'no-such-key' }), 'an unknown kid');
refused(forge(key => 'k' x 64), 'signed with another secret');
refused(forge(key => substr($SECRET, 0, 32)),
        'signed with the first half of the key');

# sizes and garbage
my $big = forge(claims => { pad => 'x' x 10_000 });
cmp_ok(length $big, '>', 10_000, 'a token of over 10 KB');
refused($big, 'an oversized token (10 KB, correctly signed)');
refused('abc', 'the token "abc"');
refused('a.b.c', 'the token "a.b.c"');
refused('..', 'the token ".."');
refused('e30.e30.', 'empty JSON objects');
refused(b64u_encode('not json') . '.' . b64u_encode('{}') . '.' . $sb,
        'a header that is not JSON');
refused(b64u_encode(json_encode(\%HEAD)) . '.' . b64u_encode('[1,2]') . ".$sb",
        'a payload that is not an object');
refused("$hb.$pb!.$sb", 'a character outside base64url in the payload');
refused(undef, 'the scheme "Bearer" with nothing', raw => 'Bearer',
        no_token => 1);
refused(undef, '"Bearer " and spaces', raw => 'Bearer    ', no_token => 1);
refused(undef, 'the "Basic" scheme', raw => 'Basic xyz', no_token => 1);
refused(undef, 'a Basic scheme with credentials',
        raw => 'Basic ' . MIME::Base64::encode_base64("$u->{email}:$u->{password}", ''),
        no_token => 1);
refused(undef, 'a token without a scheme', raw => $token, no_token => 1);

is($t->get('/health')->{status}, 200, 'the server is fine after all that');

###########################################################################
# other algorithms: keys made with openssl

my $kdir = $t->tmp . '/test-keys';
make_path($kdir);
chmod 0755, $kdir;
my %key;
for my $name (qw(rs es ed rs_old ed_old)) {
    my $type = { rs => 'rs256', es => 'es256', ed => 'eddsa',
                 rs_old => 'rs256', ed_old => 'eddsa' }->{$name};
    @{ $key{$name} }{qw(priv pub)} = gen_key($type, $kdir, $name);
}
my $hs_old = "$kdir/hs_old.key";
{
    open my $fh, '>:raw', $hs_old or die $!;
    print {$fh} join '', map { chr int rand 256 } 1 .. 64;
    close $fh;
    chmod 0644, $hs_old;
}
my $HS_OLD = do { open my $fh, '<:raw', $hs_old or die; local $/; <$fh> };

# JWKS with the HS256 key only: nothing to publish
$r = $t->get('/.well-known/jwks.json');
is($r->{status}, 200, 'JWKS: 200');
like($r->{headers}{'content-type'} // '', qr{^application/(?:jwk-set\+)?json\b},
     'JWKS: a JSON content type');
is_deeply($r->{json}, { keys => [] }, 'JWKS with an HS256 key only: {"keys":[]}');

# the server signs with RS256

my $rs = UM::Test->new(workers => 1,
                       jwt_keys => "usermgmt_jwt_key rs256 $key{rs}{priv} kid=r1;");
my $ru = $rs->new_user;
my ($rh, $rp) = jwt_decode($ru->{access_token});
is_deeply($rh, { alg => 'RS256', typ => 'at+jwt', kid => 'r1' },
          'RS256 server: header alg RS256, kid r1');
ok(jwt_verify($ru->{access_token}, pub_file => $key{rs}{pub}),
   'RS256 server: the token verifies with openssl and the public key');
ok(!jwt_verify($ru->{access_token}, pub_file => $key{rs_old}{pub}),
   '... and not with another public key');
is($rs->get($ME, headers => $rs->auth_header($ru->{access_token}))->{status},
   200, 'RS256 server: its token opens /users/me');

$r = $rs->get('/.well-known/jwks.json');
is($r->{status}, 200, 'RS256 JWKS: 200');
my @keys = @{ (eval { $r->{json}{keys} }) // [] };
is(scalar @keys, 1, 'RS256 JWKS: one key');
my $jwk = $keys[0] // {};
is($jwk->{kty}, 'RSA', 'kty RSA');
is($jwk->{kid}, 'r1', 'kid r1');
my ($n, $e) = rsa_modulus($key{rs}{pub});
is(b64u_decode($jwk->{n} // ''), $n, 'n is the modulus openssl reports');
is(b64u_decode($jwk->{e} // ''), $e, 'e is the public exponent');
is($jwk->{alg}, 'RS256', 'alg RS256') if exists $jwk->{alg};
is($jwk->{use}, 'sig', 'use sig') if exists $jwk->{use};
ok(!grep({ exists $jwk->{$_} } qw(d p q dp dq qi k)),
   'no private member (d, p, q, dp, dq, qi) in the JWK')
    or diag(explain $jwk);

# algorithm confusion: HS256 with the public key as the HMAC secret
my $pem_text = do { open my $fh, '<:raw', $key{rs}{pub} or die; local $/; <$fh> };
my $rnow = time;
my %rclaims = (%$rp, iat => $rnow, nbf => $rnow, exp => $rnow + 600);
sub rs_status {
    my ($tok) = @_;
    my $x = $rs->get($ME, headers => $rs->auth_header($tok));
    return $x;
}
$r = rs_status(jwt_encode({ alg => 'HS256', typ => 'at+jwt', kid => 'r1' },
                          \%rclaims, key => $pem_text));
error_is($r, 401, 'UNAUTHORIZED',
         'algorithm confusion: HS256 signed with the RSA public key PEM: 401');
like($r->{headers}{'www-authenticate'} // '', qr/error="invalid_token"/,
     '... error="invalid_token"');
$r = rs_status(jwt_encode({ alg => 'HS256', typ => 'at+jwt' },
                          \%rclaims, key => $pem_text));
error_is($r, 401, 'UNAUTHORIZED', '... the same without a kid: 401');
(my $pem_body = $pem_text) =~ s/\n\z//;
$r = rs_status(jwt_encode({ alg => 'HS256', typ => 'at+jwt', kid => 'r1' },
                          \%rclaims, key => $pem_body));
error_is($r, 401, 'UNAUTHORIZED', '... with the PEM without its last newline: 401');
$r = rs_status(jwt_encode({ alg => 'HS256', typ => 'at+jwt', kid => 'r1' },
                          \%rclaims,
                          key => public_der_of($key{rs}{pub})));
error_is($r, 401, 'UNAUTHORIZED', '... with the DER public key as secret: 401');
$r = rs_status(jwt_encode({ alg => 'none', typ => 'at+jwt', kid => 'r1' },
                          \%rclaims, signature => ''));
error_is($r, 401, 'UNAUTHORIZED', 'RS256 server: alg none: 401');
# the control: openssl-signed RS256 with the right claims passes
is(rs_status(jwt_encode({ alg => 'RS256', typ => 'at+jwt', kid => 'r1' },
                        \%rclaims, key_file => $key{rs}{priv}))->{status},
   200, 'RS256 server: a token we sign with its private key passes');
$r = rs_status(jwt_encode({ alg => 'RS256', typ => 'at+jwt', kid => 'r1' },
                          \%rclaims, key_file => $key{rs_old}{priv}));
error_is($r, 401, 'UNAUTHORIZED', 'RS256 server: signed with another RSA key: 401');
$r = rs_status(jwt_encode({ alg => 'HS256', typ => 'at+jwt', kid => 'test' },
                          \%rclaims, key => $SECRET));
error_is($r, 401, 'UNAUTHORIZED',
         'RS256 server: an HS256 token of the first server: 401');

sub public_der_of { UM::JWT::public_der($_[0]) }

# several keys: ES256 signs, the older keys still verify

my $multi = join "\n    ",
    "usermgmt_jwt_key es256 $key{es}{priv} kid=new;",
    "usermgmt_jwt_key eddsa $key{ed_old}{priv} kid=old-ed;",
    "usermgmt_jwt_key rs256 $key{rs_old}{pub} kid=old-rs-public;",
    "usermgmt_jwt_key hs256 $hs_old kid=old-hs;";
my $mk = UM::Test->new(workers => 1, jwt_keys => $multi);
my $mu = $mk->new_user;
my ($mh, $mp) = jwt_decode($mu->{access_token});
is_deeply($mh, { alg => 'ES256', typ => 'at+jwt', kid => 'new' },
          'rotation: login tokens carry the first key (ES256, kid new)');
ok(jwt_verify($mu->{access_token}, pub_file => $key{es}{pub}),
   'ES256 token verifies with openssl (R||S converted to DER)');
is(length((jwt_decode($mu->{access_token}))[2]), 64,
   'the ES256 signature is 64 bytes (R||S, not DER)');

sub mk_get {
    my ($tok) = @_;
    return $mk->get($ME, headers => $mk->auth_header($tok));
}
is(mk_get($mu->{access_token})->{status}, 200, 'rotation: the new token works');

my $mnow = time;
my %mclaims = (%$mp, iat => $mnow, nbf => $mnow, exp => $mnow + 600);
is(mk_get(jwt_encode({ alg => 'EdDSA', typ => 'at+jwt', kid => 'old-ed' },
                     \%mclaims, key_file => $key{ed_old}{priv}))->{status},
   200, 'rotation: a token signed with the old EdDSA key and its kid: 200');
is(mk_get(jwt_encode({ alg => 'RS256', typ => 'at+jwt', kid => 'old-rs-public' },
                     \%mclaims, key_file => $key{rs_old}{priv}))->{status},
   200, 'rotation: an old RS256 key configured as a public key verifies: 200');
is(mk_get(jwt_encode({ alg => 'HS256', typ => 'at+jwt', kid => 'old-hs' },
                     \%mclaims, key => $HS_OLD))->{status},
   200, 'rotation: an old HS256 secret with its kid: 200');
error_is(mk_get(jwt_encode({ alg => 'EdDSA', typ => 'at+jwt', kid => 'new' },
                           \%mclaims, key_file => $key{ed_old}{priv})),
         401, 'UNAUTHORIZED', 'the old EdDSA key under the new kid: 401');
error_is(mk_get(jwt_encode({ alg => 'HS256', typ => 'at+jwt', kid => 'old-rs-public' },
                           \%mclaims,
                           key => do { open my $fh, '<:raw', $key{rs_old}{pub};
                                       local $/; <$fh> })),
         401, 'UNAUTHORIZED',
         'algorithm confusion against a public-only RSA key: 401');
error_is(mk_get(jwt_encode({ alg => 'ES256', typ => 'at+jwt', kid => 'new' },
                           \%mclaims, key_file => $key{es}{priv},
                           signature => UM::JWT::ecdsa_raw_to_der(
                               (jwt_decode($mu->{access_token}))[2]))),
         401, 'UNAUTHORIZED', 'an ES256 signature in DER form: 401');
error_is(mk_get(jwt_encode({ alg => 'ES256', typ => 'at+jwt', kid => 'new' },
                           \%mclaims, signature => "\0" x 64)),
         401, 'UNAUTHORIZED', 'an ES256 signature of zeros: 401');

# its JWKS: EC and OKP (and RSA) keys, never the HMAC secret
$r = $mk->get('/.well-known/jwks.json');
is($r->{status}, 200, 'multi-key JWKS: 200');
my %jwk = map { ($_->{kid} // '?') => $_ } @{ (eval { $r->{json}{keys} }) // [] };
is_deeply([sort keys %jwk], [sort qw(new old-ed old-rs-public)],
          'the three public keys are listed, the HMAC secret is not')
    or diag($r->{content});
unlike($r->{content}, qr/"k"\s*:/, 'no symmetric key member "k"');
my ($x, $y) = public_raw($key{es}{pub}, 'es256');
is($jwk{new}{kty}, 'EC', 'ES256: kty EC');
is($jwk{new}{crv}, 'P-256', 'ES256: crv P-256');
is(b64u_decode($jwk{new}{x} // ''), $x, 'ES256: x is the point openssl reports');
is(b64u_decode($jwk{new}{y} // ''), $y, 'ES256: y is the point openssl reports');
is($jwk{'old-ed'}{kty}, 'OKP', 'EdDSA: kty OKP');
is($jwk{'old-ed'}{crv}, 'Ed25519', 'EdDSA: crv Ed25519');
is(b64u_decode($jwk{'old-ed'}{x} // ''), public_raw($key{ed_old}{pub}, 'eddsa'),
   'EdDSA: x is the public key openssl reports');
is($jwk{'old-rs-public'}{kty}, 'RSA', 'the public-only RSA key: kty RSA');
for my $k (values %jwk) {
    ok(!grep({ exists $k->{$_} } qw(d p q dp dq qi k)),
       "JWK $k->{kid}: no private member");
}

# the server signs with EdDSA (reload with the Ed25519 key first); tokens
# of the ES256 key, now second, still verify
my $es_token = $mu->{access_token};
ok($mk->reload(jwt_keys => join "\n    ",
                   "usermgmt_jwt_key eddsa $key{ed}{priv} kid=ed-now;",
                   "usermgmt_jwt_key es256 $key{es}{priv} kid=new;"),
   'reload with an EdDSA key first');
my $l = $mk->login($mu->{email}, $mu->{password});
is($l->{status}, 200, 'EdDSA server: login 200') or diag($l->{content});
my $ed_token = eval { $l->{json}{data}{access_token} } // '';
my ($eh) = jwt_decode($ed_token);
is_deeply($eh, { alg => 'EdDSA', typ => 'at+jwt', kid => 'ed-now' },
          'EdDSA server: header alg EdDSA, kid ed-now');
ok(jwt_verify($ed_token, pub_file => $key{ed}{pub}),
   'the EdDSA token verifies with openssl pkeyutl');
is(mk_get($ed_token)->{status}, 200, 'the EdDSA token opens /users/me');
is(mk_get($es_token)->{status}, 200,
   'the ES256 token from before the rotation still works');
error_is(mk_get(jwt_encode({ alg => 'EdDSA', typ => 'at+jwt', kid => 'old-ed' },
                           \%mclaims, key_file => $key{ed_old}{priv})),
         401, 'UNAUTHORIZED', 'a key removed from the configuration: 401');

# HS512 as the signing key
ok($mk->reload(jwt_keys => "usermgmt_jwt_key hs512 $hs_old kid=h5;"),
   'reload with an HS512 key');
$l = $mk->login($mu->{email}, $mu->{password});
my $h5 = eval { $l->{json}{data}{access_token} } // '';
my ($h5h) = jwt_decode($h5);
is($h5h && $h5h->{alg}, 'HS512', 'HS512 server: alg HS512');
ok(jwt_verify($h5, key => $HS_OLD), 'the HS512 token verifies with our HMAC');
is(mk_get($h5)->{status}, 200, 'the HS512 token opens /users/me');
is_deeply($mk->get('/.well-known/jwks.json')->{json}, { keys => [] },
          'HS512 only: the JWKS is empty');

# configuration checks of the keys
my $c = UM::Test->check_config(
    jwt_keys => "usermgmt_jwt_key rs256 $key{rs}{pub} kid=pub-first;");
isnt($c->{rc}, 0, 'nginx -t: a public key cannot be the first (signing) key');
like($c->{out}, qr/usermgmt_jwt_key|signing|private/i,
     '... and says why') or diag($c->{out});
$c = UM::Test->check_config(jwt_keys => '');
isnt($c->{rc}, 0, 'nginx -t: usermgmt_api without any key fails');
{
    my $short = "$kdir/short.key";
    open my $fh, '>:raw', $short or die $!;
    print {$fh} 'x' x 16;
    close $fh;
    $c = UM::Test->check_config(jwt_keys => "usermgmt_jwt_key hs256 $short;");
    isnt($c->{rc}, 0, 'nginx -t: a 16-byte HS256 secret is refused');
}
$c = UM::Test->check_config(jwt_keys => join ' ',
    "usermgmt_jwt_key hs256 $hs_old kid=same;",
    "usermgmt_jwt_key eddsa $key{ed}{priv} kid=same;");
isnt($c->{rc}, 0, 'nginx -t: two keys with the same kid are refused');

done_testing();
