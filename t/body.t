#!/usr/bin/perl
# Request bodies of the API: the media type (415), malformed or empty JSON
# (400), the size limit (413, also for chunked bodies), and the field
# checks shared by every route that takes a body (422 with rule "unknown",
# "type", "required").  The harness sets client_max_body_size 1m.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use UM::Test qw(error_is json_encode);

my $t = UM::Test->new(workers => 2);

my $REGISTER = '/api/v1/auth/register';
my $LOGIN = '/api/v1/auth/login';
my $LIMIT = 1024 * 1024;

sub details_of {
    my ($r) = @_;
    my $d = eval { $r->{json}{error}{details} };
    return ref $d eq 'ARRAY' ? @$d : ();
}

# a detail entry with this field (and rule, when given)
sub has_detail {
    my ($r, $field, $rule, $name) = @_;
    my @hit = grep {
        ref $_ eq 'HASH' && ($_->{field} // '') eq $field
            && (!defined $rule || ($_->{rule} // '') eq $rule)
    } details_of($r);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(@hit, $name) or diag('details: ' . ($r->{content} // ''));
    return $hit[0];
}

sub post_raw {
    my ($path, $body, $type, %h) = @_;
    my %headers = (%h);
    $headers{'content-type'} = $type if defined $type;
    return $t->request('POST', $path, { body => $body, headers => \%headers });
}

my $good = json_encode({ email => $t->unique_email,
                         password => 'plumbing-Ok-7319' });

# 415: the body must be JSON

for my $case (['text/plain', 'text/plain'],
              ['application/x-www-form-urlencoded', 'a form'],
              ['multipart/form-data; boundary=x', 'multipart'],
              ['application/xml', 'XML'],
              ['application/jsonx', 'application/jsonx'],
              ['json', 'a bare word']) {
    my ($type, $what) = @$case;
    for my $path ($REGISTER, $LOGIN) {
        error_is(post_raw($path, $good, $type), 415, 'UNSUPPORTED_MEDIA_TYPE',
                 "$path with $what: 415 UNSUPPORTED_MEDIA_TYPE");
    }
}

error_is(post_raw($REGISTER, $good, undef), 415, 'UNSUPPORTED_MEDIA_TYPE',
         'a body without Content-Type: 415');

# JSON media types with parameters or a +json suffix are accepted
for my $type ('application/json; charset=utf-8', 'Application/JSON',
              'application/vnd.api+json') {
    my $r = post_raw($LOGIN, json_encode({ email => 'nobody@example.com',
                                           password => 'whatever-pass-1' }),
                     $type);
    is($r->{status}, 401, "Content-Type '$type' is accepted (login runs: 401)")
        or diag($r->{content});
}

# 400: no body, or not a JSON object

for my $path ($REGISTER, $LOGIN) {
    error_is(post_raw($path, '', 'application/json'), 400, 'BAD_REQUEST',
             "$path with an empty body: 400");
}

my $r = $t->request('POST', $REGISTER,
                    { headers => { 'content-type' => 'application/json' } });
error_is($r, 400, 'BAD_REQUEST', 'POST with no body at all: 400');

for my $case (['{', 'an unclosed object'],
              ['{"email": }', 'a missing value'],
              ['{"email": "a@example.com",}', 'a trailing comma'],
              ["{'email': 'x'}", 'single quotes'],
              ['{"a":1}{"b":2}', 'two objects'],
              ['{"email":"a@example.com","email":"b@example.com"}',
               'a duplicate key'],
              ['nul', 'a bad literal'],
              ["{\"email\":\"\xff\xfe\"}", 'invalid UTF-8'],
              ['{"email":"a\u0000b@example.com","password":"x-x-x-x-x-1"}',
               'an escaped NUL']) {
    my ($body, $what) = @$case;
    $r = post_raw($REGISTER, $body, 'application/json');
    if ($what eq 'an escaped NUL') {
        ok($r->{status} == 400 || $r->{status} == 422,
           "$what: 400 or 422, never stored") or diag($r->{content});
        next;
    }
    error_is($r, 400, 'BAD_REQUEST', "malformed JSON ($what): 400");
}
like(eval { post_raw($REGISTER, '{"a":', 'application/json')
                ->{json}{error}{message} } // '',
     qr/malformed JSON/i, 'the message says malformed JSON');

for my $body ('[]', '"x"', '1', 'null', 'true', '[{"email":"a@b.c"}]') {
    error_is(post_raw($REGISTER, $body, 'application/json'), 400,
             'BAD_REQUEST', "JSON that is not an object ($body): 400");
}

# 422: the fields

$r = $t->register(email => $t->unique_email, password => 'plumbing-Ok-7319',
                  is_admin => JSON::PP::true);
error_is($r, 422, 'VALIDATION_FAILED', 'an unknown field: 422');
has_detail($r, 'is_admin', 'unknown', '... field is_admin, rule unknown');

$r = $t->register(password => 'plumbing-Ok-7319');
error_is($r, 422, 'VALIDATION_FAILED', 'no email: 422');
has_detail($r, 'email', 'required', '... field email, rule required');

$r = $t->post($REGISTER, {});
error_is($r, 422, 'VALIDATION_FAILED', 'an empty object: 422');
has_detail($r, 'email', 'required', '... email required');
has_detail($r, 'password', 'required', '... password required');

$r = $t->register(email => 42, password => 'plumbing-Ok-7319');
error_is($r, 422, 'VALIDATION_FAILED', 'email as a number: 422');
has_detail($r, 'email', undef, '... names email');

$r = $t->register(email => $t->unique_email, password => ['a']);
error_is($r, 422, 'VALIDATION_FAILED', 'password as an array: 422');
has_detail($r, 'password', undef, '... names password');

$r = $t->login(undef, undef);
error_is($r, 422, 'VALIDATION_FAILED', 'login with null email and password: 422');

# 413: the size limit, with Content-Length

my $big = json_encode({ email => $t->unique_email,
                        password => 'plumbing-Ok-7319',
                        first_name => 'x' x ($LIMIT + 10) });
$r = $t->request('POST', $REGISTER,
                 { body => $big, fresh => 1,
                   headers => { 'content-type' => 'application/json' } });
error_is($r, 413, 'PAYLOAD_TOO_LARGE', 'a body over 1m: 413 in JSON');

$r = $t->request('POST', $LOGIN,
                 { body => ' ' x ($LIMIT + 1), fresh => 1,
                   headers => { 'content-type' => 'application/json' } });
error_is($r, 413, 'PAYLOAD_TOO_LARGE', 'login with 1m + 1 bytes: 413');

# just under the limit is read and checked (first_name is too long: 422)
my $under = json_encode({ email => $t->unique_email,
                          password => 'plumbing-Ok-7319',
                          first_name => 'y' x ($LIMIT - 200) });
cmp_ok(length $under, '<=', $LIMIT, 'the body is within the limit');
$r = $t->request('POST', $REGISTER,
                 { body => $under, fresh => 1,
                   headers => { 'content-type' => 'application/json' } });
error_is($r, 422, 'VALIDATION_FAILED',
         'a body just under the limit is read: 422 for the field');
has_detail($r, 'first_name', 'max_length', '... first_name max_length');

# Content-Length over the limit announced, nothing sent: answered at once
$r = $t->raw_request("POST $REGISTER HTTP/1.1\r\nHost: x\r\n"
                     . "Content-Type: application/json\r\n"
                     . 'Content-Length: ' . ($LIMIT * 5) . "\r\n\r\n",
                     timeout => 3);
is($r->{status}, 413, 'Content-Length over the limit: 413 before the body');
like($r->{headers}{'content-type'} // '', qr{^application/json},
     '... in JSON');

# 413 with chunked transfer encoding

sub chunked {
    my ($total, $chunk) = @_;
    my $raw = "POST $REGISTER HTTP/1.1\r\nHost: x\r\n"
            . "Content-Type: application/json\r\n"
            . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    my $left = $total;
    while ($left > 0) {
        my $n = $left < $chunk ? $left : $chunk;
        $raw .= sprintf("%x\r\n", $n) . ('z' x $n) . "\r\n";
        $left -= $n;
    }
    return $raw . "0\r\n\r\n";
}

$r = $t->raw_request(chunked($LIMIT + 4096, 65536), timeout => 5);
is($r->{status}, 413, 'a chunked body over the limit: 413');
is(eval { json_decode_safe($r->{content})->{error}{code} } // '',
   'PAYLOAD_TOO_LARGE', '... code PAYLOAD_TOO_LARGE in JSON');

$r = $t->raw_request(chunked($LIMIT + 4096, 8192), timeout => 5);
is($r->{status}, 413, 'a chunked body over the limit in 8 KiB chunks: 413');

$r = $t->raw_request(chunked(2 * $LIMIT, 1000), timeout => 5);
is($r->{status}, 413, 'a chunked body of many small chunks over the limit: 413');

# docs/directives.md: bodies stay in memory, never in a temporary file
my @spooled = grep { /buffered to a temporary file/ }
              split /\n/, $t->error_log // '';
ok(!@spooled, 'no request body was written to a temporary file')
    or diag(join "\n", @spooled);

# a small chunked body is accepted like any other
{
    my $body = json_encode({ email => $t->unique_email,
                             password => 'plumbing-Ok-7319' });
    my $raw = "POST $REGISTER HTTP/1.1\r\nHost: x\r\n"
            . "Content-Type: application/json\r\n"
            . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for my $part (substr($body, 0, 10), substr($body, 10)) {
        $raw .= sprintf("%x\r\n", length $part) . $part . "\r\n";
    }
    $raw .= "0\r\n\r\n";
    $r = $t->raw_request($raw, timeout => 5);
    is($r->{status}, 201, 'a small chunked body registers: 201')
        or diag($r->{raw});
}

sub json_decode_safe {
    my ($s) = @_;
    $s //= '';
    # the raw client does not undo chunked encoding of the answer
    if ($s =~ /^[0-9a-f]+\r\n/) {
        my $out = '';
        while ($s =~ s/^([0-9a-f]+)\r\n//) {
            my $n = hex $1;
            last unless $n;
            $out .= substr($s, 0, $n, '');
            $s =~ s/^\r\n//;
        }
        $s = $out;
    }
    return UM::Test::json_decode($s);
}

# a route without a body ignores one
$r = $t->request('GET', '/api/v1/organizations/lookup?slug=default',
                 { body => 'not json at all',
                   headers => { 'content-type' => 'text/plain' } });
is($r->{status}, 200, 'a body sent to a GET route is ignored: 200');

# still fine afterwards
is($t->get('/health')->{status}, 200, 'health still 200');

done_testing();
