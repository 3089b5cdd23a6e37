package UM::JWT;

# A small JSON Web Token toolkit for the tests, independent of the module:
# base64url, HS256/384/512 with Digest::SHA, and RS256 / ES256 / EdDSA
# signing and verification through the openssl command-line tool, which is
# the oracle (the module links libcrypto, the tests never do).
#
#   use UM::JWT qw(b64u_encode b64u_decode jwt_encode jwt_decode);
#
#   my $token = jwt_encode({ alg => 'HS256', typ => 'at+jwt', kid => 'test' },
#                          { sub => $id, exp => time + 60 },
#                          key => $secret);
#   my $tok = jwt_encode({ alg => 'RS256' }, \%claims, key_file => $pem);
#   my ($header, $payload, $sig, $input) = jwt_decode($token);
#   ok(jwt_verify($token, key => $secret));
#   ok(jwt_verify($token, pub_file => $public_pem));
#
#   my ($private, $public) = gen_key('rs256', $dir, 'name');
#
# Only core Perl modules are used.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 hmac_sha384 hmac_sha512);
use Exporter qw(import);
use File::Temp qw(tempdir);
use IPC::Open3 qw(open3);
use JSON::PP;

our @EXPORT_OK = qw(b64u_encode b64u_decode jwt_encode jwt_decode jwt_verify
                    jwt_sign_input jwt_signature jwt_check_signature
                    gen_key public_der public_raw rsa_modulus
                    ecdsa_der_to_raw ecdsa_raw_to_der openssl);

my $JSON = JSON::PP->new->utf8->canonical;

my $OPENSSL = 'openssl';

###########################################################################
# base64url (RFC 4648 section 5), without padding

sub b64u_encode {
    my ($bytes) = @_;
    require MIME::Base64;
    my $s = MIME::Base64::encode_base64($bytes, '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+\z//;
    return $s;
}

# Strict: only the base64url alphabet, no padding, no impossible length.
# Returns undef for anything else.
sub b64u_decode {
    my ($s) = @_;
    return undef unless defined $s && $s =~ /\A[A-Za-z0-9_-]*\z/;
    return undef if length($s) % 4 == 1;
    require MIME::Base64;
    (my $t = $s) =~ tr{-_}{+/};
    $t .= '=' x ((4 - length($t) % 4) % 4);
    return MIME::Base64::decode_base64($t);
}

###########################################################################
# tokens

# jwt_encode(\%header or $header_json, \%payload or $payload_json, %key)
#   key => $secret          HS256/384/512 secret bytes
#   key_file => $pem        private key for RS256/ES256/EdDSA
#   alg => $alg             the algorithm to sign with, when it is not the
#                           header's (algorithm confusion tests)
#   signature => $bytes     put these bytes as the signature instead
#   raw_signature => $str   put this text (already base64url) instead
# A header or payload given as a string is used as is (bytes, not
# re-encoded), to send odd JSON.
sub jwt_encode {
    my ($header, $payload, %o) = @_;
    my $h = ref $header ? $JSON->encode($header) : $header;
    my $p = ref $payload ? $JSON->encode($payload) : $payload;
    my $input = b64u_encode($h) . '.' . b64u_encode($p);
    return "$input.$o{raw_signature}" if defined $o{raw_signature};
    my $sig = $o{signature};
    unless (defined $sig) {
        my $alg = $o{alg} // (ref $header ? $header->{alg}
                                          : eval { $JSON->decode($h)->{alg} });
        $sig = jwt_signature($alg, $input, %o);
    }
    return "$input." . b64u_encode($sig);
}

sub jwt_sign_input {
    my ($token) = @_;
    my @parts = split /\./, $token, -1;
    return undef unless @parts == 3;
    return "$parts[0].$parts[1]";
}

# jwt_decode($token) -> ($header, $payload, $signature_bytes, $input), or
# an empty list when it is not three base64url parts of JSON objects.
sub jwt_decode {
    my ($token) = @_;
    my @parts = split /\./, $token // '', -1;
    return unless @parts == 3;
    my ($h, $p, $s) = map { b64u_decode($_) } @parts;
    return unless defined $h && defined $p && defined $s;
    my $header = eval { $JSON->decode($h) };
    my $payload = eval { $JSON->decode($p) };
    return unless ref $header eq 'HASH' && ref $payload eq 'HASH';
    return ($header, $payload, $s, "$parts[0].$parts[1]");
}

# jwt_verify($token, key => $secret | pub_file => $pem [, alg => $alg]):
# checks the signature only (the alg of the header unless alg is given).
sub jwt_verify {
    my ($token, %o) = @_;
    my ($header, undef, $sig, $input) = jwt_decode($token) or return 0;
    my $alg = $o{alg} // $header->{alg} // return 0;
    return jwt_check_signature($alg, $input, $sig, %o);
}

# The signature bytes of $input.
sub jwt_signature {
    my ($alg, $input, %o) = @_;
    $alg //= '';
    if ($alg =~ /^HS(256|384|512)\z/) {
        die "jwt_signature: $alg needs key => secret\n"
            unless defined $o{key};
        return hmac_sha256($input, $o{key}) if $1 eq '256';
        return hmac_sha384($input, $o{key}) if $1 eq '384';
        return hmac_sha512($input, $o{key});
    }
    my $pem = $o{key_file} // die "jwt_signature: $alg needs key_file\n";
    my $dir = tempdir(CLEANUP => 1);
    _spew("$dir/in", $input);
    if ($alg eq 'RS256' || $alg eq 'ES256') {
        openssl('dgst', '-sha256', '-sign', $pem, '-out', "$dir/sig",
                "$dir/in");
        my $sig = _slurp("$dir/sig");
        return $alg eq 'ES256' ? ecdsa_der_to_raw($sig, 32) : $sig;
    }
    if ($alg eq 'EdDSA') {
        openssl('pkeyutl', '-sign', '-inkey', $pem, '-rawin', '-in',
                "$dir/in", '-out', "$dir/sig");
        return _slurp("$dir/sig");
    }
    die "jwt_signature: unsupported algorithm '$alg'\n";
}

# True when $sig is a valid $alg signature of $input.
#   HS*: key => $secret (compared with our own HMAC)
#   RS256/ES256/EdDSA: pub_file => $pem (openssl decides)
sub jwt_check_signature {
    my ($alg, $input, $sig, %o) = @_;
    $alg //= '';
    if ($alg =~ /^HS/) {
        my $want = eval { jwt_signature($alg, $input, %o) } // return 0;
        return $want eq $sig ? 1 : 0;
    }
    my $pub = $o{pub_file} // die "jwt_check_signature: needs pub_file\n";
    my $dir = tempdir(CLEANUP => 1);
    _spew("$dir/in", $input);
    if ($alg eq 'RS256' || $alg eq 'ES256') {
        if ($alg eq 'ES256') {
            return 0 unless length $sig == 64;
            $sig = ecdsa_raw_to_der($sig);
        } else {
            # openssl dgst reads only as many signature bytes as the key
            # size and ignores the rest: check the length ourselves
            my ($n) = rsa_modulus($pub);
            return 0 unless length $sig == length $n;
        }
        _spew("$dir/sig", $sig);
        my $r = openssl_run('dgst', '-sha256', '-verify', $pub,
                            '-signature', "$dir/sig", "$dir/in");
        return $r->{rc} == 0 && $r->{out} =~ /Verified OK/ ? 1 : 0;
    }
    if ($alg eq 'EdDSA') {
        _spew("$dir/sig", $sig);
        my $r = openssl_run('pkeyutl', '-verify', '-pubin', '-inkey', $pub,
                            '-rawin', '-in', "$dir/in", '-sigfile',
                            "$dir/sig");
        return $r->{rc} == 0 && $r->{out} =~ /Verified Successfully/ ? 1 : 0;
    }
    return 0;
}

###########################################################################
# keys

# gen_key($type, $dir, $name) -> ($private_pem, $public_pem), mode 0644 so
# that nginx workers could read them too.  $type: rs256 (RSA 2048), es256
# (P-256) or eddsa (Ed25519).
sub gen_key {
    my ($type, $dir, $name) = @_;
    $name //= $type;
    my $priv = "$dir/$name.pem";
    my $pub = "$dir/$name.pub.pem";
    my @alg = $type eq 'rs256' ? ('-algorithm', 'RSA',
                                  '-pkeyopt', 'rsa_keygen_bits:2048')
            : $type eq 'es256' ? ('-algorithm', 'EC',
                                  '-pkeyopt', 'ec_paramgen_curve:P-256')
            : $type eq 'eddsa' ? ('-algorithm', 'ED25519')
            : die "gen_key: unknown type '$type'\n";
    openssl('genpkey', @alg, '-out', $priv);
    openssl('pkey', '-in', $priv, '-pubout', '-out', $pub);
    chmod 0644, $priv, $pub;
    return ($priv, $pub);
}

# The DER SubjectPublicKeyInfo of a public (or private) PEM key.
sub public_der {
    my ($pem) = @_;
    my $dir = tempdir(CLEANUP => 1);
    my @in = _slurp($pem) =~ /PRIVATE KEY/ ? ('-in', $pem)
                                           : ('-pubin', '-in', $pem);
    openssl('pkey', @in, '-pubout', '-outform', 'DER', '-out', "$dir/der");
    return _slurp("$dir/der");
}

# The raw public key bytes: for P-256 (x, y), 32 bytes each; for Ed25519
# the 32-byte key.  They end the SubjectPublicKeyInfo.
sub public_raw {
    my ($pem, $type) = @_;
    my $der = public_der($pem);
    if ($type eq 'es256') {
        my $point = substr($der, -65);
        die "public_raw: not an uncompressed P-256 point\n"
            unless substr($point, 0, 1) eq "\x04";
        return (substr($point, 1, 32), substr($point, 33, 32));
    }
    return substr($der, -32) if $type eq 'eddsa';
    die "public_raw: unknown type '$type'\n";
}

# RSA modulus bytes and public exponent bytes (big-endian, no leading 0).
sub rsa_modulus {
    my ($pem) = @_;
    my @pub = _slurp($pem) =~ /PRIVATE KEY/ ? () : ('-pubin');
    my $r = openssl_run('rsa', @pub, '-in', $pem, '-noout',
                        '-modulus', '-text');
    die "openssl rsa failed: $r->{out}" if $r->{rc};
    my ($hex) = $r->{out} =~ /^Modulus=([0-9A-F]+)/m
        or die "no modulus in: $r->{out}";
    my ($e) = $r->{out} =~ /Exponent:\s*(\d+)/
        or die "no exponent in: $r->{out}";
    my $n = pack 'H*', (length($hex) % 2 ? "0$hex" : $hex);
    $n =~ s/\A\x00+//;
    my $eb = '';
    while ($e > 0) { $eb = chr($e & 0xff) . $eb; $e >>= 8 }
    return ($n, $eb);
}

###########################################################################
# ECDSA signatures: DER (openssl) <-> R||S (JWS, RFC 7518 section 3.4)

sub ecdsa_der_to_raw {
    my ($der, $n) = @_;
    my $pos = 0;
    my $byte = sub { ord substr($der, $pos++, 1) };
    my $len = sub {
        my $l = $byte->();
        return $l if $l < 0x80;
        my $k = $l & 0x7f;
        $l = 0;
        $l = ($l << 8) | $byte->() for 1 .. $k;
        return $l;
    };
    die "ecdsa_der_to_raw: not a SEQUENCE\n" unless $byte->() == 0x30;
    $len->();
    my @ints;
    for (1, 2) {
        die "ecdsa_der_to_raw: not an INTEGER\n" unless $byte->() == 0x02;
        my $l = $len->();
        my $v = substr($der, $pos, $l);
        $pos += $l;
        $v =~ s/\A\x00+//;
        die "ecdsa_der_to_raw: integer too long\n" if length $v > $n;
        push @ints, ("\x00" x ($n - length $v)) . $v;
    }
    return join '', @ints;
}

sub ecdsa_raw_to_der {
    my ($raw) = @_;
    my $n = length($raw) / 2;
    my $body = '';
    # copies: a loop variable over substr() would alias into $raw
    my @ints = (substr($raw, 0, $n), substr($raw, $n));
    for my $v (@ints) {
        $v =~ s/\A\x00+//;
        $v = "\x00" if $v eq '';
        $v = "\x00$v" if ord(substr $v, 0, 1) >= 0x80;
        $body .= "\x02" . _der_len(length $v) . $v;
    }
    return "\x30" . _der_len(length $body) . $body;
}

sub _der_len {
    my ($l) = @_;
    return chr($l) if $l < 0x80;
    my $s = '';
    while ($l) { $s = chr($l & 0xff) . $s; $l >>= 8 }
    return chr(0x80 | length $s) . $s;
}

###########################################################################
# running openssl

# openssl(@args): runs it, dies with its output when it fails.
sub openssl {
    my $r = openssl_run(@_);
    die "openssl @_ failed (rc $r->{rc}):\n$r->{out}" if $r->{rc};
    return $r->{out};
}

# openssl_run(@args) -> {rc, out}: stdout and stderr together.
sub openssl_run {
    my (@args) = @_;
    my $pid = open3(my $in, my $out, undef, $OPENSSL, @args);
    close $in;
    local $/;
    my $text = <$out> // '';
    close $out;
    waitpid($pid, 0);
    return { rc => $? >> 8, out => $text };
}

sub _slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or die "$file: $!";
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s // '';
}

sub _spew {
    my ($file, $bytes) = @_;
    open my $fh, '>:raw', $file or die "$file: $!";
    print {$fh} $bytes;
    close $fh or die "$file: $!";
}

1;
