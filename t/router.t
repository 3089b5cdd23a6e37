#!/usr/bin/perl
# The API router: unknown paths 404, wrong methods 405 with Allow, and the
# public organization lookup (GET /api/v1/organizations/lookup?slug=...),
# including hostile and odd input, which never yields a 500.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is is_uuid);

my $t = UM::Test->new(workers => 2);

my $LOOKUP = '/api/v1/organizations/lookup';

# any JSON error answer whose status is one of @ok
sub error_among {
    my ($r, $name, @ok) = @_;
    my %ok = map { $_ => 1 } @ok;
    subtest $name => sub {
        ok($ok{ $r->{status} }, 'status ' . join(' or ', @ok))
            or diag("got $r->{status}: " . substr($r->{content} // '', 0, 500));
        like($r->{headers}{'content-type'} // '', qr{^application/json\b},
             'JSON answer');
        my $e = eval { $r->{json}{error} };
        is(ref $e, 'HASH', '{"error": {...}}') or return;
        is($e->{status_code}, $r->{status}, 'error.status_code matches');
        like($e->{code} // '', qr/^[A-Z_]+$/, 'error.code is set');
    };
}

# unknown paths

error_is($t->get('/api/v1/no-such-thing'), 404, 'NOT_FOUND',
         'GET unknown path: 404 NOT_FOUND');
error_is($t->get('/api/v1/'), 404, 'NOT_FOUND', 'GET /api/v1/: 404');
error_is($t->post('/api/v1/no-such-thing', { a => 1 }), 404, 'NOT_FOUND',
         'POST unknown path: 404 NOT_FOUND');
error_is($t->get("$LOOKUP/extra"), 404, 'NOT_FOUND',
         'a known path with an extra segment: 404');
error_is($t->get('/api/v1/auth/loginx'), 404,
         'NOT_FOUND', 'a known path with extra characters: 404');
error_is($t->get('/api/v1/organizations/lookupx?slug=default'), 400,
         'BAD_REQUEST',
         '... unless a template takes it: an {id} that is not a UUID, 400');

# wrong method: 405 with Allow

for my $m (qw(POST PUT PATCH DELETE)) {
    my $r = $t->request($m, "$LOOKUP?slug=default",
                        $m eq 'DELETE' ? {} : { body => { slug => 'x' } });
    error_is($r, 405, 'METHOD_NOT_ALLOWED', "$m lookup: 405 METHOD_NOT_ALLOWED");
    like($r->{headers}{allow} // '', qr/\bGET\b/, "$m lookup: Allow names GET");
    unlike($r->{headers}{allow} // '', qr/\b$m\b/, "$m lookup: Allow omits $m");
}

# the lookup

my ($id) = $t->psql(q{SELECT id FROM organizations
                      WHERE slug = 'default' AND deleted_at IS NULL});
ok(is_uuid($id), 'the bootstrap created the default organization')
    or diag('build.sh bootstrap did not run?');

my $r = $t->get("$LOOKUP?slug=default");
is($r->{status}, 200, 'lookup default: 200') or diag($r->{content});
like($r->{headers}{'content-type'} // '', qr{^application/json\b},
     'lookup: Content-Type application/json');
my $d = eval { $r->{json}{data} } // {};
ok(is_uuid($d->{id}), 'data.id is a UUID');
is($d->{id}, $id, 'data.id is the organization stored in PostgreSQL');
is($d->{name}, 'Default', 'data.name');
is($d->{slug}, 'default', 'data.slug');
ok(JSON::PP::is_bool($d->{allow_self_registration})
   && $d->{allow_self_registration}, 'data.allow_self_registration is true');

# the answer follows the database, not a copy
$t->psql(q{UPDATE organizations SET name = :'p1',
           allow_self_registration = false WHERE id = :'p2'},
         'Default Renamed', $id);
$r = $t->get("$LOOKUP?slug=default");
is(eval { $r->{json}{data}{name} }, 'Default Renamed',
   'lookup reads the current row');
ok(eval { JSON::PP::is_bool($r->{json}{data}{allow_self_registration})
          && !$r->{json}{data}{allow_self_registration} },
   'allow_self_registration false is a JSON false');
$t->psql(q{UPDATE organizations SET name = 'Default',
           allow_self_registration = true WHERE id = :'p1'}, $id);

# another organization by its own slug; deleted ones are not found
my ($other) = $t->psql(q{INSERT INTO organizations (name, slug)
                         VALUES ('Acme Corp', 'acme-corp') RETURNING id});
$r = $t->get("$LOOKUP?slug=acme-corp");
is($r->{status}, 200, 'lookup of a second organization: 200');
is(eval { $r->{json}{data}{id} }, $other, '... its own id');
$t->psql(q{UPDATE organizations SET deleted_at = now() WHERE id = :'p1'},
         $other);
error_is($t->get("$LOOKUP?slug=acme-corp"), 404, 'NOT_FOUND',
         'a deleted organization: 404');

# other query arguments around slug
$r = $t->get("$LOOKUP?foo=bar&slug=default&x=1");
is($r->{status}, 200, 'slug among other arguments: 200');

error_is($t->get("$LOOKUP?slug=no-such-org"), 404, 'NOT_FOUND',
         'unknown slug: 404 NOT_FOUND');

# missing slug: 422 naming the field and the rule

for my $q ('', '?', '?other=default', '?slugs=default') {
    $r = $t->get("$LOOKUP$q");
    error_is($r, 422, 'VALIDATION_FAILED', "no slug ('$q'): 422 VALIDATION_FAILED");
    my $det = eval { $r->{json}{error}{details} } // [];
    my ($f) = grep { ref $_ eq 'HASH' && ($_->{field} // '') eq 'slug' }
              @{ ref $det eq 'ARRAY' ? $det : [] };
    ok($f, "no slug ('$q'): details name the field slug")
        or diag($r->{content});
    is($f && $f->{rule}, 'required', "no slug ('$q'): rule is required");
    ok($f && defined $f->{message} && length $f->{message},
       "no slug ('$q'): a message");
}

$r = $t->get("$LOOKUP?slug=");
error_is($r, 422, 'VALIDATION_FAILED', 'empty slug: 422 VALIDATION_FAILED');

# percent-encoding is decoded

is($t->get("$LOOKUP?slug=%64efault")->{status}, 200, 'slug=%64efault: 200');
is($t->get("$LOOKUP?slug=defaul%74")->{status}, 200, 'slug=defaul%74: 200');

# hostile input: never a 500, always a JSON error, fast

my @hostile = (
    q{default' OR '1'='1},
    q{' OR 1=1 --},
    q{default'; DROP TABLE organizations; --},
    q{default"; DROP TABLE organizations; --},
    q{'; SELECT pg_sleep(5); --},
    q{default' UNION SELECT id, name, slug, true FROM organizations --},
    q{\\'},
    q{%},
    q{default%},
    q{_efault},
    q{$1},
    qq{default\x{e9}},
    "def\tault",
    '../default',
    '{"slug":"default"}',
);

sub uri_escape {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

for my $h (@hostile) {
    my $r = $t->get("$LOOKUP?slug=" . uri_escape($h));
    error_among($r, "slug '$h': 404 or 422", 404, 422);
    cmp_ok($r->{elapsed}, '<', $t->secs(2), "slug '$h': answered at once");
}

is(scalar $t->psql('SELECT count(*) FROM organizations WHERE deleted_at IS NULL'),
   1, 'the organizations table is intact');

# odd encodings

for my $case (['%00', 'a NUL byte'],
              ['default%00', 'default then a NUL byte'],
              ['default%00x', 'a NUL byte inside'],
              ['%ZZ', 'an invalid escape'],
              ['default%', 'a truncated escape'],
              ['%C3%28', 'invalid UTF-8'],
              ['%FF%FE', 'bytes that are not UTF-8'],
              ['de+fault', 'a plus sign'],
              ['%E2%80%AEdefault', 'a bidi control character']) {
    my ($q, $what) = @$case;
    $r = $t->get("$LOOKUP?slug=$q");
    error_among($r, "slug with $what ($q): 400, 404 or 422", 400, 404, 422);
}

# very long input

$r = $t->get("$LOOKUP?slug=" . ('a' x 3000));
error_among($r, 'a 3000-character slug: 404 or 422', 404, 422);
$r = $t->get("$LOOKUP?slug=" . ('%27' x 1000));
error_among($r, '1000 escaped quotes: 404 or 422', 404, 422);
$r = $t->get("$LOOKUP?" . join('&', map { "a$_=$_" } 1 .. 300) . '&slug=default');
is($r->{status}, 200, 'slug after 300 other arguments: 200')
    or diag($r->{content});

# still healthy after all that
is($t->get("$LOOKUP?slug=default")->{status}, 200, 'lookup still answers 200');

done_testing();
