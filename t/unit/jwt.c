/* unit-sources: src/auth/um_base64url.c src/auth/um_jwt.c */

/*
 * JSON Web Tokens, with the openssl command as the independent party: it
 * makes the keys, checks the signatures we make and makes signatures we
 * must accept.  Then every refusal RFC 8725 asks for, and a few thousand
 * mutated tokens that must all be refused without a crash or a leak (run
 * the binary under valgrind to see the latter).
 */

/* mkdtemp(), popen() */
#define _POSIX_C_SOURCE  200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "auth/um_base64url.h"
#include "auth/um_jwt.h"
#include "tap.h"


#define NOW     1700000000LL

#define TYP     "at+jwt"
#define ISS     "https://id.example"
#define AUD     "api"

#define HS_HDR  "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"h1\"}"
#define CLAIMS  "{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"," \
                "\"exp\":1700000300,\"iat\":1700000000}"


static char  dir[256];

/* signers, with private keys */
static um_jwt_key_t  hs, rs, es, ed;

/* what a resource server holds: the secret and the public halves */
static um_jwt_key_t  vkeys[4];

static um_jwt_verify_t  opts;


static void test_key_loading(void);
static void test_openssl_checks_ours(void);
static void test_we_check_openssl(void);
static void test_refusals(void);
static void test_claims(void);
static void test_fuzz(void);
static void test_jwks(void);

static const char *path(const char *name);
static int sh(const char *fmt, ...);
static char *sh_output(const char *fmt, ...);
static int write_file(const char *name, const void *p, size_t n);
static unsigned char *read_file(const char *name, size_t *n);
static char *b64(const void *p, size_t n);
static char *b64s(const char *s);
static char *openssl_hmac(const char *md, const um_jwt_key_t *key,
    const char *token);
static char *token3(const char *header, const char *payload,
    const unsigned char *sig, size_t siglen);
static char *mac_token(const unsigned char *secret, size_t len,
    const char *header, const char *payload);
static char *hs_token(const char *header, const char *payload);
static unsigned char *part(const char *token, int i, size_t *n);
static int sign_input_to_file(const char *token, const char *name);
static size_t raw_to_der(const unsigned char *raw, unsigned char *der);
static int der_to_raw(const unsigned char *der, size_t n,
    unsigned char *raw);
static int load(um_jwt_key_t *key, const char *alg, const char *name,
    const char *kid);
static int refused(const char *alg, const char *name, const char *expect);
static int verifies(const char *token);
static int refused_as(const char *token, const char *expect);
static int claims_ok(const char *payload);
static int claims_refused(const char *payload, const char *expect);
static unsigned int rnd(void);


int
main(void)
{
    size_t       i;
    const char  *tmp;

    tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/um-jwt-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return done_testing();
    }

    ok(sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
          "-out %s", path("rsa.pem")) == 0
       && sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 "
             "-out %s", path("rsa1024.pem")) == 0
       && sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
             "-out %s", path("ec.pem")) == 0
       && sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 "
             "-out %s", path("ec384.pem")) == 0
       && sh("openssl genpkey -algorithm ED25519 -out %s", path("ed.pem"))
          == 0
       && sh("openssl pkey -in %s -pubout -out %s", path("rsa.pem"),
             path("rsa.pub")) == 0
       && sh("openssl pkey -in %s -pubout -out %s", path("ec.pem"),
             path("ec.pub")) == 0
       && sh("openssl pkey -in %s -pubout -out %s", path("ed.pem"),
             path("ed.pub")) == 0
       && sh("openssl rand -out %s 64", path("hs.key")) == 0
       && sh("openssl rand -out %s 16", path("hs16.key")) == 0
       && sh("openssl rand -out %s 32", path("hs32.key")) == 0
       && sh("openssl rand -out %s 48", path("hs48.key")) == 0
       && sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
             "-aes256 -pass pass:secret -out %s", path("rsa-enc.pem")) == 0,
       "openssl made the keys");

    ok(load(&hs, "hs256", "hs.key", "h1") && load(&rs, "rs256", "rsa.pem", "r1")
       && load(&es, "es256", "ec.pem", "e1")
       && load(&ed, "eddsa", "ed.pem", "d1"),
       "signing keys load");

    ok(load(&vkeys[0], "HS256", "hs.key", "h1")
       && load(&vkeys[1], "RS256", "rsa.pub", "r1")
       && load(&vkeys[2], "Es256", "ec.pub", "e1")
       && load(&vkeys[3], "EdDSA", "ed.pub", "d1"),
       "verifying keys load (algorithm names in any case)");

    ok(hs.can_sign && rs.can_sign && es.can_sign && ed.can_sign
       && vkeys[0].can_sign && !vkeys[1].can_sign && !vkeys[2].can_sign
       && !vkeys[3].can_sign, "private keys sign, public keys do not");

    opts.keys = vkeys;
    opts.nkeys = 4;
    opts.typ = TYP;
    opts.iss = ISS;
    opts.aud = AUD;
    opts.leeway = 60;
    opts.now = NOW;
    opts.max_len = 8192;

    test_key_loading();
    test_openssl_checks_ours();
    test_we_check_openssl();
    test_refusals();
    test_claims();
    test_fuzz();
    test_jwks();

    um_jwt_key_free(&hs);
    um_jwt_key_free(&rs);
    um_jwt_key_free(&es);
    um_jwt_key_free(&ed);

    for (i = 0; i < 4; i++) {
        um_jwt_key_free(&vkeys[i]);
    }

    ok(sh("rm -rf '%s'", dir) == 0, "scratch removed");

    return done_testing();
}


static void
test_key_loading(void)
{
    int           good;
    char         *s, *t;
    size_t        i;
    um_jwt_key_t  k;

    ok(strcmp(um_jwt_alg_name(UM_JWT_HS256), "HS256") == 0
       && strcmp(um_jwt_alg_name(UM_JWT_HS384), "HS384") == 0
       && strcmp(um_jwt_alg_name(UM_JWT_HS512), "HS512") == 0
       && strcmp(um_jwt_alg_name(UM_JWT_RS256), "RS256") == 0
       && strcmp(um_jwt_alg_name(UM_JWT_ES256), "ES256") == 0
       && strcmp(um_jwt_alg_name(UM_JWT_EDDSA), "EdDSA") == 0
       && um_jwt_alg_name(0) == NULL && um_jwt_alg_name(99) == NULL,
       "algorithm names");

    /* RFC 7518 section 3.2: an HMAC key at least as long as the hash */
    ok(refused("hs256", "hs16.key", "is 16 bytes; at least 32 are required"),
       "16-byte hs256 key refused");
    ok(refused("hs384", "hs32.key", "is 32 bytes; at least 48 are required"),
       "32-byte hs384 key refused");
    ok(refused("hs512", "hs48.key", "is 48 bytes; at least 64 are required"),
       "48-byte hs512 key refused");
    ok(load(&k, "hs256", "hs32.key", NULL), "32-byte hs256 key loads");
    um_jwt_key_free(&k);
    ok(load(&k, "hs512", "hs.key", NULL), "64-byte hs512 key loads");
    um_jwt_key_free(&k);

    /* the key's type must be the algorithm's */
    ok(refused("rs256", "rsa1024.pem", "has 1024 bits; at least 2048"),
       "1024-bit RSA refused");
    ok(refused("es256", "ec384.pem", "secp384r1, not P-256"),
       "P-384 key refused for es256");
    ok(refused("es256", "rsa.pem", "is an RSA key, not EC"),
       "RSA key refused for es256");
    ok(refused("rs256", "ec.pub", "is an EC key, not RSA"),
       "EC key refused for rs256");
    ok(refused("eddsa", "rsa.pub", "not Ed25519"),
       "RSA key refused for eddsa");
    ok(refused("es256", "ed.pem", "not EC"),
       "Ed25519 key refused for es256");
    ok(refused("rs256", "hs.key", "no PEM private or public key"),
       "random bytes refused as a PEM key");
    ok(refused("rs256", "rsa-enc.pem", "encrypted keys are not supported"),
       "encrypted key refused, without asking for a passphrase");
    ok(refused("rs256", "missing.pem", "cannot open key file"),
       "missing file refused");
    ok(refused("none", "hs.key", "unknown JWT algorithm \"none\""),
       "algorithm none refused");
    ok(refused("hs257", "hs.key", "unknown JWT algorithm"),
       "unknown algorithm refused");
    ok(refused("hs25", "hs.key", "unknown JWT algorithm")
       && refused("hs2566", "hs.key", "unknown JWT algorithm"),
       "algorithm prefixes refused");

    good = !load(&k, "hs256", "hs.key", "a\"b")
           && !load(&k, "hs256", "hs.key", "")
           && !load(&k, "hs256", "hs.key", "a b")
           && !load(&k, "hs256", "hs.key",
                    "0123456789012345678901234567890123456789"
                    "01234567890123456789012345")
           && load(&k, "hs256", "hs.key",
                   "0123456789012345678901234567890123456789"
                   "012345678901234567890123");
    ok(good && strlen(k.kid) == 64, "kid of 1 to 64 plain characters");
    um_jwt_key_free(&k);

    /* derived kids: base64url(SHA-256(...)), 16 characters */
    s = sh_output("openssl pkey -pubin -in %s -outform DER "
                  "| openssl dgst -sha256 -binary | openssl base64 -A",
                  path("rsa.pub"));
    good = load(&k, "rs256", "rsa.pem", NULL);

    for (i = 0; s != NULL && s[i] != '\0'; i++) {
        s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    }

    ok(good && s != NULL && strlen(k.kid) == 16
       && strncmp(k.kid, s, 16) == 0,
       "derived RSA kid %s is SHA-256 of the public key DER", k.kid);
    um_jwt_key_free(&k);
    free(s);

    t = sh_output("openssl dgst -sha256 -binary %s | openssl base64 -A",
                  path("hs.key"));
    good = load(&k, "hs256", "hs.key", NULL);

    for (i = 0; t != NULL && t[i] != '\0'; i++) {
        t[i] = t[i] == '+' ? '-' : t[i] == '/' ? '_' : t[i];
    }

    ok(good && t != NULL && strlen(k.kid) == 16
       && strncmp(k.kid, t, 16) == 0,
       "derived HMAC kid is SHA-256 of the secret");
    um_jwt_key_free(&k);
    free(t);

    /* a key freed twice, or after a failed load, stays harmless */
    memset(&k, 0, sizeof(k));
    um_jwt_key_load(&k, "rs256", path("rsa1024.pem"), NULL, NULL, 0);
    um_jwt_key_free(&k);
    um_jwt_key_free(&k);
    ok(k.pkey == NULL && k.secret == NULL, "free after a failed load");
}


static void
test_openssl_checks_ours(void)
{
    int              good;
    char            *tok, *mac;
    json_t          *claims;
    size_t           n, i, hl, pl;
    um_jwt_key_t     k;
    unsigned char   *sig, *h, *p, der[80];
    um_jwt_verify_t  o;

    claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "sub", "u1", "iss", ISS,
                       "aud", AUD, "exp", NOW + 300, "iat", NOW);

    /* HS256: the MAC is the one openssl computes */
    tok = um_jwt_sign(&hs, TYP, claims);
    h = part(tok, 0, &hl);
    p = part(tok, 1, &pl);

    ok(h != NULL && hl == strlen(HS_HDR) && memcmp(h, HS_HDR, hl) == 0,
       "header is {\"alg\",\"typ\",\"kid\"} compact, in that order");
    ok(p != NULL && pl == strlen(CLAIMS) && memcmp(p, CLAIMS, pl) == 0,
       "payload is the claims as compact JSON");
    free(h);
    free(p);

    mac = openssl_hmac("sha256", &hs, tok);
    sig = part(tok, 2, &n);
    ok(n == 32 && mac != NULL && strcmp(strrchr(tok, '.') + 1, mac) == 0,
       "HS256 signature equals openssl's HMAC-SHA256");
    ok(verifies(tok), "HS256 token verifies");
    free(tok);
    free(sig);
    free(mac);

    /* HS384 and HS512, with keys of their own */
    o = opts;
    o.keys = &k;
    o.nkeys = 1;

    for (i = 0; i < 2; i++) {
        good = load(&k, i ? "hs512" : "hs384", "hs.key", NULL);
        tok = um_jwt_sign(&k, TYP, claims);
        mac = openssl_hmac(i ? "sha512" : "sha384", &k, tok);
        sig = part(tok, 2, &n);
        h = part(tok, 0, &hl);

        ok(good && n == (i ? 64 : 48) && mac != NULL
           && strcmp(strrchr(tok, '.') + 1, mac) == 0
           && strstr((char *) h, i ? "\"HS512\"" : "\"HS384\"") != NULL
           && um_jwt_verify(tok, strlen(tok), &o, NULL, NULL) == UM_JWT_OK,
           "%s signature equals openssl's, and verifies",
           i ? "HS512" : "HS384");

        free(tok);
        free(sig);
        free(mac);
        free(h);
        um_jwt_key_free(&k);
    }

    /* RS256 */
    tok = um_jwt_sign(&rs, TYP, claims);
    sig = part(tok, 2, &n);
    write_file("sig.bin", sig, n);
    sign_input_to_file(tok, "in.txt");

    ok(n == 256 && sh("openssl dgst -sha256 -verify %s -signature %s %s",
                      path("rsa.pub"), path("sig.bin"), path("in.txt")) == 0,
       "openssl verifies our RS256 signature");
    write_file("in.txt", "x", 1);
    ok(sh("openssl dgst -sha256 -verify %s -signature %s %s",
          path("rsa.pub"), path("sig.bin"), path("in.txt")) != 0,
       "(and openssl refuses it for other data)");
    ok(verifies(tok), "RS256 token verifies with the public key");
    free(tok);
    free(sig);

    /* ES256: R||S, which openssl wants as DER */
    tok = um_jwt_sign(&es, TYP, claims);
    sig = part(tok, 2, &n);
    good = (n == 64);

    if (good) {
        write_file("sig.der", der, raw_to_der(sig, der));
    }

    sign_input_to_file(tok, "in.txt");

    ok(good && sh("openssl dgst -sha256 -verify %s -signature %s %s",
                  path("ec.pub"), path("sig.der"), path("in.txt")) == 0,
       "openssl verifies our ES256 signature (64 bytes R||S)");
    ok(verifies(tok), "ES256 token verifies with the public key");
    free(tok);
    free(sig);

    /* EdDSA */
    tok = um_jwt_sign(&ed, TYP, claims);
    sig = part(tok, 2, &n);
    write_file("sig.bin", sig, n);
    sign_input_to_file(tok, "in.txt");

    ok(n == 64 && sh("openssl pkeyutl -verify -pubin -inkey %s -rawin "
                     "-in %s -sigfile %s", path("ed.pub"), path("in.txt"),
                     path("sig.bin")) == 0,
       "openssl verifies our EdDSA signature");
    ok(verifies(tok), "EdDSA token verifies with the public key");
    free(tok);
    free(sig);

    ok(um_jwt_sign(&vkeys[1], TYP, claims) == NULL
       && um_jwt_sign(&vkeys[3], TYP, claims) == NULL,
       "a public key does not sign");

    json_decref(claims);
    claims = json_pack("[i]", 1);
    ok(um_jwt_sign(&hs, TYP, claims) == NULL, "a non-object payload is not "
       "signed");
    json_decref(claims);
}


static void
test_we_check_openssl(void)
{
    int             good;
    char           *tok, *enc, *hex, *mac;
    size_t          n, i;
    unsigned char  *sig, raw[64];

    /* headers with spaces: what counts is the bytes that were signed */
    tok = token3("{\"alg\": \"RS256\", \"typ\": \"at+jwt\", \"kid\": \"r1\"}",
                 CLAIMS, NULL, 0);
    sign_input_to_file(tok, "in.txt");

    good = sh("openssl dgst -sha256 -sign %s -out %s %s", path("rsa.pem"),
              path("sig.bin"), path("in.txt")) == 0;
    sig = read_file("sig.bin", &n);
    free(tok);
    tok = token3("{\"alg\": \"RS256\", \"typ\": \"at+jwt\", \"kid\": \"r1\"}",
                 CLAIMS, sig, n);
    ok(good && verifies(tok), "RS256 token signed by openssl verifies");
    free(sig);
    free(tok);

    /* ES256: openssl's DER turned into R||S here */
    tok = token3("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"e1\"}",
                 CLAIMS, NULL, 0);
    sign_input_to_file(tok, "in.txt");

    good = sh("openssl dgst -sha256 -sign %s -out %s %s", path("ec.pem"),
              path("sig.der"), path("in.txt")) == 0;
    sig = read_file("sig.der", &n);
    good = good && sig != NULL && der_to_raw(sig, n, raw) == 0;
    free(tok);

    tok = token3("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"e1\"}",
                 CLAIMS, raw, 64);
    ok(good && verifies(tok), "ES256 token signed by openssl verifies");
    free(tok);

    tok = token3("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"e1\"}",
                 CLAIMS, sig, n);
    ok(refused_as(tok, "bad signature"),
       "ES256 signature in DER rather than R||S refused");
    free(tok);
    free(sig);

    /* EdDSA */
    tok = token3("{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"d1\"}",
                 CLAIMS, NULL, 0);
    sign_input_to_file(tok, "in.txt");

    good = sh("openssl pkeyutl -sign -inkey %s -rawin -in %s -out %s",
              path("ed.pem"), path("in.txt"), path("sig.bin")) == 0;
    sig = read_file("sig.bin", &n);
    free(tok);
    tok = token3("{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"d1\"}",
                 CLAIMS, sig, n);
    ok(good && n == 64 && verifies(tok),
       "EdDSA token signed by openssl verifies");
    free(sig);
    free(tok);

    /* HS256 */
    tok = token3(HS_HDR, CLAIMS, NULL, 0);
    sign_input_to_file(tok, "in.txt");

    hex = malloc(hs.secret_len * 2 + 1);
    for (i = 0; i < hs.secret_len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", hs.secret[i]);
    }

    good = sh("openssl dgst -sha256 -mac HMAC -macopt hexkey:%s -binary "
              "-out %s %s", hex, path("mac.bin"), path("in.txt")) == 0;
    mac = (char *) read_file("mac.bin", &n);
    enc = token3(HS_HDR, CLAIMS, (unsigned char *) mac, n);
    ok(good && n == 32 && verifies(enc),
       "HS256 token MACed by openssl verifies");
    free(hex);
    free(mac);
    free(enc);
    free(tok);
}


static void
test_refusals(void)
{
    int              rc;
    char            *tok, *bad, *big, *s;
    size_t           n, len;
    json_t          *claims, *payload;
    const char      *reason;
    unsigned char   *sec, *sig;
    um_jwt_key_t     keys[2];
    um_jwt_verify_t  o;

    claims = json_pack("{s:s, s:s, s:s, s:I}", "sub", "u1", "iss", ISS,
                       "aud", AUD, "exp", NOW + 300);

    /* alg "none", RFC 8725 section 3.1 */
    tok = token3("{\"alg\":\"none\",\"typ\":\"at+jwt\"}", CLAIMS, NULL, 0);
    ok(refused_as(tok, "unsupported algorithm"), "alg none without signature");
    free(tok);

    tok = hs_token("{\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"h1\"}",
                   CLAIMS);
    ok(refused_as(tok, "unsupported algorithm"), "alg none with signature");
    free(tok);

    tok = hs_token("{\"alg\":\"None\",\"typ\":\"at+jwt\"}", CLAIMS);
    ok(refused_as(tok, "unsupported algorithm"), "alg None");
    free(tok);

    tok = hs_token("{\"alg\":\"hs256\",\"typ\":\"at+jwt\",\"kid\":\"h1\"}",
                   CLAIMS);
    ok(refused_as(tok, "unsupported algorithm"),
       "alg names are case-sensitive in tokens");
    free(tok);

    tok = hs_token("{\"alg\":\"PS256\",\"typ\":\"at+jwt\"}", CLAIMS);
    ok(refused_as(tok, "unsupported algorithm"), "alg PS256 unsupported");
    free(tok);

    tok = hs_token("{\"typ\":\"at+jwt\",\"kid\":\"h1\"}", CLAIMS);
    ok(refused_as(tok, "malformed"), "no alg");
    free(tok);

    tok = hs_token("{\"alg\":[\"HS256\"],\"typ\":\"at+jwt\"}", CLAIMS);
    ok(refused_as(tok, "malformed"), "alg not a string");
    free(tok);

    tok = hs_token("{\"alg\":\"HS256\",\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
                   CLAIMS);
    ok(refused_as(tok, "malformed"), "duplicate header member");
    free(tok);

    tok = hs_token("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"h1\","
                   "\"crit\":[\"exp\"],\"exp\":1}", CLAIMS);
    ok(refused_as(tok, "malformed"), "crit header refused");
    free(tok);

    tok = hs_token("[\"HS256\"]", CLAIMS);
    ok(refused_as(tok, "malformed"), "header not an object");
    free(tok);

    tok = hs_token("{\"alg\":\"HS256\"", CLAIMS);
    ok(refused_as(tok, "malformed"), "header not JSON");
    free(tok);

    /* tampering */
    tok = um_jwt_sign(&rs, TYP, claims);
    s = b64s("{\"sub\":\"admin\",\"iss\":\"" ISS "\",\"aud\":\"api\","
             "\"exp\":1700000300}");
    bad = malloc(strlen(tok) + strlen(s) + 1);
    n = strchr(tok, '.') - tok;
    sprintf(bad, "%.*s.%s%s", (int) n, tok, s, strrchr(tok, '.'));
    ok(refused_as(bad, "bad signature"), "tampered payload");
    free(bad);
    free(s);

    s = b64s("{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"r1\",\"x\":1}");
    bad = malloc(strlen(tok) + strlen(s) + 1);
    sprintf(bad, "%s%s", s, strchr(tok, '.'));
    ok(refused_as(bad, "bad signature"), "tampered header");
    free(bad);
    free(s);

    len = strlen(tok);
    bad = strdup(tok);
    bad[len - 4] = '\0';
    ok(um_jwt_verify(bad, strlen(bad), &opts, NULL, NULL) < 0,
       "RS256 signature cut by 4 characters");

    sig = part(tok, 2, &n);
    s = token3("{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"r1\"}",
               "x", sig, n - 1);
    sprintf(bad, "%.*s%s", (int) (strrchr(tok, '.') - tok), tok,
            strrchr(s, '.'));
    ok(refused_as(bad, "bad signature"), "RS256 signature cut by one byte");
    free(sig);
    free(s);
    *(strrchr(bad, '.') + 1) = '\0';
    ok(refused_as(bad, "bad signature"), "stripped signature (h.p.)");
    *strrchr(bad, '.') = '\0';
    ok(refused_as(bad, "malformed"), "signature part removed (h.p)");
    free(bad);

    ok(um_jwt_verify(tok, len - 1, &opts, NULL, NULL) < 0,
       "a prefix of a valid token refused");
    free(tok);

    /* a signature of the wrong length for its algorithm */
    sig = malloc(65);
    memset(sig, 0x11, 65);
    tok = token3("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"e1\"}",
                 CLAIMS, sig, 63);
    ok(refused_as(tok, "bad signature"), "63-byte ES256 signature");
    free(tok);
    tok = token3("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"e1\"}",
                 CLAIMS, sig, 65);
    ok(refused_as(tok, "bad signature"), "65-byte ES256 signature");
    free(tok);
    memset(sig, 0, 64);
    tok = token3("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"e1\"}",
                 CLAIMS, sig, 64);
    ok(refused_as(tok, "bad signature"), "ES256 signature of zeros");
    free(tok);
    tok = token3("{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"d1\"}",
                 CLAIMS, sig, 63);
    ok(refused_as(tok, "bad signature"), "63-byte EdDSA signature");
    free(tok);
    tok = token3(HS_HDR, CLAIMS, sig, 31);
    ok(refused_as(tok, "bad signature"), "31-byte HS256 signature");
    free(tok);
    free(sig);

    tok = hs_token(HS_HDR, CLAIMS);
    bad = malloc(strlen(tok) + 5);
    sprintf(bad, "%sAAAA", tok);
    ok(refused_as(bad, "bad signature"), "HS256 signature with 3 more bytes");
    free(bad);
    free(tok);

    /*
     * Algorithm confusion (RFC 8725 section 2.1): the RSA public key, which
     * is public, used as an HMAC secret.  The configured key is RS256, so
     * an HS256 header cannot select it.
     */
    sec = read_file("rsa.pub", &n);
    tok = mac_token(sec, n,
                    "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"r1\"}",
                    CLAIMS);

    ok(refused_as(tok, "algorithm does not match key"),
       "HS256 token MACed with the RSA public key, kid of the RS256 key");

    o = opts;
    o.keys = &vkeys[1];
    o.nkeys = 1;
    rc = um_jwt_verify(tok, strlen(tok), &o, &payload, &reason);
    ok(rc == UM_JWT_ALG_MISMATCH && payload == NULL,
       "... refused with only the RS256 key configured: %s", reason);
    free(tok);

    tok = mac_token(sec, n, "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
                    CLAIMS);
    rc = um_jwt_verify(tok, strlen(tok), &o, NULL, &reason);
    ok(rc == UM_JWT_ALG_MISMATCH, "... and without kid: %s", reason);
    free(tok);
    free(sec);

    /* kid */
    tok = hs_token("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"h2\"}",
                   CLAIMS);
    ok(refused_as(tok, "unknown key"), "unknown kid");
    free(tok);

    tok = hs_token("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"h\"}",
                   CLAIMS);
    ok(refused_as(tok, "unknown key"), "kid prefix is not the kid");
    free(tok);

    tok = hs_token("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":1}",
                   CLAIMS);
    ok(refused_as(tok, "malformed"), "kid not a string");
    free(tok);

    tok = hs_token("{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"h1\"}",
                   CLAIMS);
    ok(refused_as(tok, "algorithm does not match key"),
       "RS256 header naming the HMAC key");
    free(tok);

    tok = hs_token("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", CLAIMS);
    ok(verifies(tok), "HS256 without kid: the keys of that algorithm tried");

    o = opts;
    o.nkeys = 0;
    rc = um_jwt_verify(tok, strlen(tok), &o, NULL, &reason);
    ok(rc == UM_JWT_UNKNOWN_KEY, "no keys at all: %s", reason);
    free(tok);

    ok(load(&keys[0], "hs256", "hs32.key", "other"), "a second HMAC key");
    keys[1] = hs;
    o = opts;
    o.keys = keys;
    o.nkeys = 2;
    tok = hs_token("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", CLAIMS);
    rc = um_jwt_verify(tok, strlen(tok), &o, NULL, &reason);
    ok(rc == UM_JWT_OK, "without kid the second key of the algorithm "
       "verifies");
    free(tok);
    tok = hs_token(HS_HDR, CLAIMS);
    keys[1].kid[0] = 'x';
    rc = um_jwt_verify(tok, strlen(tok), &o, NULL, &reason);
    ok(rc == UM_JWT_UNKNOWN_KEY, "a kid selects one key: %s", reason);
    free(tok);
    um_jwt_key_free(&keys[0]);

    /* explicit typing, RFC 8725 section 3.11 */
    tok = um_jwt_sign(&hs, "JWT", claims);
    ok(refused_as(tok, "wrong type"), "typ JWT");
    free(tok);
    tok = um_jwt_sign(&hs, NULL, claims);
    ok(refused_as(tok, "wrong type"), "no typ");
    free(tok);
    tok = um_jwt_sign(&hs, "at+jwt2", claims);
    ok(refused_as(tok, "wrong type"), "typ at+jwt2");
    free(tok);
    tok = um_jwt_sign(&hs, "application/", claims);
    ok(refused_as(tok, "wrong type"), "typ application/");
    free(tok);
    tok = hs_token("{\"alg\":\"HS256\",\"typ\":1,\"kid\":\"h1\"}", CLAIMS);
    ok(refused_as(tok, "wrong type"), "typ not a string");
    free(tok);
    tok = um_jwt_sign(&hs, "AT+JWT", claims);
    ok(verifies(tok), "typ AT+JWT");
    free(tok);
    tok = um_jwt_sign(&hs, "Application/At+Jwt", claims);
    ok(verifies(tok), "typ Application/At+Jwt");
    free(tok);

    /* structure */
    tok = hs_token(HS_HDR, CLAIMS);
    bad = malloc(strlen(tok) + 6);
    sprintf(bad, "%s.AAAA", tok);
    ok(refused_as(bad, "malformed"), "4 parts");
    sprintf(bad, "%s.", tok);
    ok(refused_as(bad, "malformed"), "4 parts, the last empty");
    free(bad);

    ok(refused_as("", "malformed"), "empty token");
    ok(refused_as("..", "malformed"), "three empty parts");
    ok(refused_as("...", "malformed"), "four empty parts");
    ok(refused_as("abc", "malformed"), "one part");
    ok(refused_as(strchr(tok, '.'), "malformed"), "empty header");

    bad = strdup(tok);
    n = strchr(tok, '.') - tok;
    memmove(bad + n + 1, strrchr(tok, '.'), strlen(strrchr(tok, '.')) + 1);
    ok(refused_as(bad, "malformed"), "empty payload");

    /* the payload is only decoded once its signature is known good */
    strcpy(bad, tok);
    bad[n + 3] = '+';
    ok(refused_as(bad, "bad signature"), "'+' in the payload");
    strcpy(bad, tok);
    bad[2] = '/';
    ok(refused_as(bad, "malformed"), "'/' in the header");
    strcpy(bad, tok);
    bad[n + 3] = ' ';
    ok(refused_as(bad, "bad signature"), "space in the payload");
    strcpy(bad, tok);
    bad[strlen(bad) - 2] = '*';
    ok(refused_as(bad, "malformed"), "'*' in the signature");
    free(bad);

    bad = malloc(strlen(tok) + 3);
    sprintf(bad, "%.*s==%s", (int) n, tok, tok + n);
    ok(refused_as(bad, "malformed"), "padding '=' after the header");
    sprintf(bad, "%s=", tok);
    ok(refused_as(bad, "malformed"), "padding '=' after the signature");
    free(bad);

    /* without a NUL after it, nothing past len may be read */
    len = strlen(tok);
    bad = malloc(len);
    memcpy(bad, tok, len);
    rc = um_jwt_verify(bad, len, &opts, &payload, NULL);
    ok(rc == UM_JWT_OK && payload != NULL, "token without a NUL verifies");
    json_decref(payload);
    free(bad);

    /* size */
    big = malloc(20000);
    memset(big, 'A', 19999);
    big[19999] = '\0';
    memcpy(big, tok, strlen(tok));
    rc = um_jwt_verify(big, 8193, &opts, NULL, &reason);
    ok(rc == UM_JWT_TOO_LONG && strcmp(reason, "too long") == 0,
       "8193 bytes refused before parsing");
    rc = um_jwt_verify(big, 19999, &opts, NULL, &reason);
    ok(rc == UM_JWT_TOO_LONG, "19999 bytes refused");

    o = opts;
    o.max_len = 0;
    rc = um_jwt_verify(big, UM_JWT_MAX_LEN + 1, &o, NULL, &reason);
    ok(rc == UM_JWT_TOO_LONG, "max_len 0 means %d", UM_JWT_MAX_LEN);
    free(tok);

    memset(big, 'x', 9000);
    big[9000] = '\0';
    json_object_set_new(claims, "pad", json_string(big));
    tok = um_jwt_sign(&hs, TYP, claims);
    ok(refused_as(tok, "too long"), "a valid token beyond max_len");
    o.max_len = 16384;
    ok(um_jwt_verify(tok, strlen(tok), &o, NULL, NULL) == UM_JWT_OK,
       "the same token verifies with a larger max_len");
    free(tok);
    free(big);

    json_decref(claims);
}


static void
test_claims(void)
{
    int              rc;
    char            *tok;
    json_t          *payload;
    const char      *reason;
    um_jwt_verify_t  o;

    ok(claims_ok(CLAIMS), "valid claims");

    tok = hs_token(HS_HDR, CLAIMS);
    rc = um_jwt_verify(tok, strlen(tok), &opts, &payload, &reason);
    ok(rc == UM_JWT_OK && json_is_object(payload)
       && strcmp(json_string_value(json_object_get(payload, "sub")), "u1")
          == 0
       && strcmp(reason, "valid") == 0,
       "the claims come back");
    json_decref(payload);
    free(tok);

    /* exp, with 60 s of leeway at NOW */
    ok(claims_ok("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                 "\"exp\":1699999940}"), "exp + leeway == now accepted");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1699999939}", "expired"),
       "exp + leeway == now - 1 expired");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1}", "expired"), "long expired");
    ok(claims_ok("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                 "\"exp\":1700000300.5}"), "fractional exp");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\"}",
                      "missing exp"), "no exp");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":\"1700000300\"}", "missing exp"),
       "exp as a string");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":null}", "missing exp"), "exp null");
    ok(claims_ok("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                 "\"exp\":9223372036854775807}"), "exp at INT64_MAX");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":-9223372036854775808}", "expired"),
       "exp at INT64_MIN");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":99999999999999999999}", "malformed"),
       "exp beyond 64 bits: not JSON jansson reads");

    o = opts;
    o.leeway = 0;
    opts = o;
    ok(claims_ok("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                 "\"exp\":1700000000}"), "leeway 0: exp == now accepted");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1699999999}", "expired"),
       "leeway 0: exp == now - 1 expired");
    opts.leeway = 60;

    /* nbf and iat */
    ok(claims_ok("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                 "\"exp\":1700000300,\"nbf\":1700000060}"),
       "nbf == now + leeway accepted");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1700000300,\"nbf\":1700000061}",
                      "not yet valid"), "nbf == now + leeway + 1");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1700000300,\"nbf\":\"0\"}", "malformed"),
       "nbf not a number");
    ok(claims_ok("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                 "\"exp\":1700000300,\"iat\":1700000060}"),
       "iat == now + leeway accepted");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1700000300,\"iat\":1700000061}",
                      "issued in the future"), "iat == now + leeway + 1");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1700000300,\"iat\":[]}", "malformed"),
       "iat not a number");

    /* sub */
    ok(claims_refused("{\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1700000300}", "missing sub"), "no sub");
    ok(claims_refused("{\"sub\":\"\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1700000300}", "missing sub"), "empty sub");
    ok(claims_refused("{\"sub\":42,\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1700000300}", "missing sub"), "numeric sub");

    /* iss */
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"https://evil.example\","
                      "\"aud\":\"api\",\"exp\":1700000300}", "wrong issuer"),
       "wrong iss");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"https://id.example/\","
                      "\"aud\":\"api\",\"exp\":1700000300}", "wrong issuer"),
       "iss with a trailing slash");
    ok(claims_refused("{\"sub\":\"u1\",\"aud\":\"api\","
                      "\"exp\":1700000300}", "wrong issuer"), "no iss");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":[\"" ISS "\"],"
                      "\"aud\":\"api\",\"exp\":1700000300}", "wrong issuer"),
       "iss in an array");

    /* aud */
    ok(claims_ok("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":[\"web\","
                 "\"api\"],\"exp\":1700000300}"), "aud array containing api");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":[\"web\","
                      "1,null],\"exp\":1700000300}", "wrong audience"),
       "aud array without api");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":[],"
                      "\"exp\":1700000300}", "wrong audience"),
       "empty aud array");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"apis\","
                      "\"exp\":1700000300}", "wrong audience"), "wrong aud");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\","
                      "\"exp\":1700000300}", "wrong audience"), "no aud");

    o = opts;
    opts.iss = NULL;
    opts.aud = NULL;
    ok(claims_ok("{\"sub\":\"u1\",\"exp\":1700000300}"),
       "iss and aud not checked when not asked for");
    opts = o;

    /* the payload itself */
    ok(claims_refused("[1,2]", "malformed"), "payload an array");
    ok(claims_refused("\"u1\"", "malformed"), "payload a string");
    ok(claims_refused("123", "malformed"), "payload a number");
    ok(claims_refused("null", "malformed"), "payload null");
    ok(claims_refused("{\"sub\":\"u1\"", "malformed"), "payload not JSON");
    ok(claims_refused("{\"sub\":\"u1\",\"sub\":\"admin\",\"iss\":\"" ISS
                      "\",\"aud\":\"api\",\"exp\":1700000300}", "malformed"),
       "duplicate claim");
    ok(claims_refused("{\"sub\":\"u\\u0000\",\"iss\":\"" ISS
                      "\",\"aud\":\"api\",\"exp\":1700000300}", "malformed"),
       "NUL in a claim");
    ok(claims_refused("{\"sub\":\"u1\",\"iss\":\"" ISS "\",\"aud\":\"api\","
                      "\"exp\":1700000300} x", "malformed"),
       "bytes after the object");
}


/*
 * Mutations of valid tokens of every algorithm, and plain garbage: all
 * refused, none crashes.  Each token sits in a buffer of its exact length
 * so that valgrind sees any read past it.
 */
static void
test_fuzz(void)
{
    int          rc, all_refused, reasons;
    char        *toks[4], *t, *garbage;
    size_t       i, j, k, len, n, pos, seen[15];
    json_t      *claims, *payload;
    const char  *reason, *names[15];

    static const char  chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        ".=+/ \t\n\"{}[]:,\\";

    claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:[s, s]}", "sub", "u1",
                       "iss", ISS, "aud", AUD, "exp", NOW + 300, "iat", NOW,
                       "roles", "admin", "user");

    toks[0] = um_jwt_sign(&hs, TYP, claims);
    toks[1] = um_jwt_sign(&rs, TYP, claims);
    toks[2] = um_jwt_sign(&es, TYP, claims);
    toks[3] = um_jwt_sign(&ed, TYP, claims);
    json_decref(claims);

    for (i = 0; i < 4; i++) {
        ok(toks[i] != NULL && verifies(toks[i]), "fuzz seed %zu verifies", i);
    }

    all_refused = 1;
    reasons = 1;
    n = 0;
    memset(seen, 0, sizeof(seen));

    for (i = 0; i < 3000; i++) {
        t = toks[i % 4];
        len = strlen(t);

        /* room for up to 4 insertions */
        garbage = malloc(len + 4);
        memcpy(garbage, t, len);

        for (j = 0; j <= rnd() % 4; j++) {
            pos = len ? rnd() % len : 0;

            switch (rnd() % 6) {

            case 0:
                garbage[pos] ^= (char) (1 << (rnd() % 8));
                break;

            case 1:
                garbage[pos] = chars[rnd() % (sizeof(chars) - 1)];
                break;

            case 2:
                if (len > 0) {
                    memmove(garbage + pos, garbage + pos + 1, len - pos - 1);
                    len--;
                }
                break;

            case 3:
                memmove(garbage + pos + 1, garbage + pos, len - pos);
                garbage[pos] = chars[rnd() % (sizeof(chars) - 1)];
                len++;
                break;

            case 4:
                len = pos;
                break;

            default:
                garbage[pos] = (char) rnd();
                break;
            }
        }

        if (len == strlen(t) && memcmp(garbage, t, len) == 0) {
            free(garbage);
            continue;
        }

        /* the exact length, no NUL */
        t = malloc(len ? len : 1);
        memcpy(t, garbage, len);
        free(garbage);

        reason = NULL;
        payload = NULL;
        rc = um_jwt_verify(t, len, &opts, &payload, &reason);
        n++;

        if (rc >= 0 || payload != NULL) {
            all_refused = 0;
            printf("# accepted mutation: %.*s\n", (int) len, t);
        }

        if (reason == NULL) {
            reasons = 0;

        } else if (rc < 0 && rc > -15) {
            seen[-rc]++;
            names[-rc] = reason;
        }

        json_decref(payload);
        free(t);
    }

    ok(all_refused && reasons && n > 2500,
       "%zu mutated tokens refused, each with a reason", n);

    for (i = 1; i < 15; i++) {
        if (seen[i]) {
            printf("#   %5zu %s\n", seen[i], names[i]);
        }
    }

    all_refused = 1;

    for (i = 0; i < 2000; i++) {
        len = rnd() % 400;
        t = malloc(len ? len : 1);

        for (k = 0; k < len; k++) {
            /* half the time only base64url and dots, to get past the split */
            t[k] = (i % 2) ? (char) rnd() : chars[rnd() % 65];
        }

        if (um_jwt_verify(t, len, &opts, &payload, &reason) >= 0) {
            all_refused = 0;
        }

        free(t);
    }

    ok(all_refused, "2000 random byte strings refused");

    /* correctly signed headers or payloads of random JSON-like text */
    all_refused = 1;

    for (i = 0; i < 1000; i++) {
        char  buf[64];

        len = rnd() % sizeof(buf);

        for (k = 0; k < len; k++) {
            /* mostly punctuation, so that some of it parses */
            buf[k] = (rnd() % 4) ? chars[64 + rnd() % (sizeof(chars) - 65)]
                                 : chars[rnd() % 64];
        }

        buf[len] = '\0';

        t = (i % 2) ? hs_token(HS_HDR, buf) : hs_token(buf, CLAIMS);

        if (um_jwt_verify(t, strlen(t), &opts, &payload, &reason) >= 0) {
            all_refused = 0;
        }

        free(t);
    }

    ok(all_refused, "1000 signed tokens of random JSON punctuation refused");

    for (i = 0; i < 4; i++) {
        free(toks[i]);
    }
}


static void
test_jwks(void)
{
    int             good;
    char           *dump, *hex, *n64;
    json_t         *jwks, *list, *jwk;
    size_t          i, len, bytes;
    um_jwt_key_t    keys[4];
    unsigned char  *der, *mod;

    keys[0] = hs;
    keys[1] = rs;
    keys[2] = es;
    keys[3] = vkeys[3];

    jwks = um_jwt_jwks(keys, 4);
    list = json_object_get(jwks, "keys");
    dump = json_dumps(jwks, JSON_COMPACT | JSON_SORT_KEYS);

    ok(json_is_array(list) && json_array_size(list) == 3,
       "JWKS of 3 asymmetric keys: %s", dump != NULL ? dump : "(null)");

    ok(dump != NULL && strstr(dump, "\"d\"") == NULL
       && strstr(dump, "\"p\"") == NULL && strstr(dump, "\"k\"") == NULL
       && strstr(dump, "\"h1\"") == NULL && strstr(dump, "oct") == NULL,
       "no private part, no HMAC key");

    /* RSA: n is the modulus openssl prints, e is 65537 */
    jwk = json_array_get(list, 0);
    hex = sh_output("openssl rsa -pubin -in %s -noout -modulus",
                    path("rsa.pub"));
    good = 0;

    if (hex != NULL && strncmp(hex, "Modulus=", 8) == 0) {
        bytes = strlen(hex + 8) / 2;
        mod = malloc(bytes);

        for (i = 0; i < bytes; i++) {
            unsigned int  b;

            sscanf(hex + 8 + 2 * i, "%2x", &b);
            mod[i] = (unsigned char) b;
        }

        n64 = b64(mod, bytes);
        good = strcmp(json_string_value(json_object_get(jwk, "n")), n64)
               == 0;
        free(n64);
        free(mod);
    }

    free(hex);

    ok(good && strcmp(json_string_value(json_object_get(jwk, "kty")), "RSA")
               == 0
       && strcmp(json_string_value(json_object_get(jwk, "e")), "AQAB") == 0
       && strcmp(json_string_value(json_object_get(jwk, "kid")), "r1") == 0
       && strcmp(json_string_value(json_object_get(jwk, "alg")), "RS256")
          == 0
       && strcmp(json_string_value(json_object_get(jwk, "use")), "sig") == 0,
       "RSA JWK: n as openssl's modulus, e AQAB, kid, alg, use");

    /* EC: x and y are the last 64 bytes of the uncompressed point */
    jwk = json_array_get(list, 1);
    sh("openssl pkey -pubin -in %s -outform DER -out %s", path("ec.pub"),
       path("ec.der"));
    der = read_file("ec.der", &len);
    good = 0;

    if (der != NULL && len > 65 && der[len - 65] == 0x04) {
        char  *x, *y;

        x = b64(der + len - 64, 32);
        y = b64(der + len - 32, 32);
        good = strcmp(json_string_value(json_object_get(jwk, "x")), x) == 0
               && strcmp(json_string_value(json_object_get(jwk, "y")), y)
                  == 0;
        free(x);
        free(y);
    }

    free(der);

    ok(good && strcmp(json_string_value(json_object_get(jwk, "kty")), "EC")
               == 0
       && strcmp(json_string_value(json_object_get(jwk, "crv")), "P-256")
          == 0
       && strcmp(json_string_value(json_object_get(jwk, "alg")), "ES256")
          == 0,
       "EC JWK: crv P-256, x and y of the public point");

    /* Ed25519: x is the last 32 bytes of the SubjectPublicKeyInfo */
    jwk = json_array_get(list, 2);
    sh("openssl pkey -pubin -in %s -outform DER -out %s", path("ed.pub"),
       path("ed.der"));
    der = read_file("ed.der", &len);
    good = 0;

    if (der != NULL && len > 32) {
        char  *x;

        x = b64(der + len - 32, 32);
        good = strcmp(json_string_value(json_object_get(jwk, "x")), x) == 0;
        free(x);
    }

    free(der);

    ok(good && strcmp(json_string_value(json_object_get(jwk, "kty")), "OKP")
               == 0
       && strcmp(json_string_value(json_object_get(jwk, "crv")), "Ed25519")
          == 0
       && strcmp(json_string_value(json_object_get(jwk, "alg")), "EdDSA")
          == 0
       && json_object_get(jwk, "y") == NULL,
       "OKP JWK: crv Ed25519, x");

    free(dump);
    json_decref(jwks);

    jwks = um_jwt_jwks(&hs, 1);
    dump = json_dumps(jwks, JSON_COMPACT);
    ok(dump != NULL && strcmp(dump, "{\"keys\":[]}") == 0,
       "only HMAC keys: an empty set");
    free(dump);
    json_decref(jwks);
}


/* helpers */


static const char *
path(const char *name)
{
    static int   i;
    static char  buf[8][512];

    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);

    return buf[i];
}


/* runs a shell command quietly; its exit status */
static int
sh(const char *fmt, ...)
{
    int      rc;
    char     cmd[2048];
    va_list  args;

    va_start(args, fmt);
    rc = vsnprintf(cmd, sizeof(cmd) - 30, fmt, args);
    va_end(args);

    if (rc < 0 || (size_t) rc >= sizeof(cmd) - 30) {
        return -1;
    }

    strcat(cmd, " </dev/null >/dev/null 2>&1");

    rc = system(cmd);

    return rc;
}


/* a shell command's output, malloc()'d, without the last newline */
static char *
sh_output(const char *fmt, ...)
{
    int      c;
    char     cmd[2048], *out;
    FILE    *f;
    size_t   n;
    va_list  args;

    va_start(args, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, args);
    va_end(args);

    f = popen(cmd, "r");
    if (f == NULL) {
        return NULL;
    }

    out = malloc(4096);
    n = 0;

    while ((c = fgetc(f)) != EOF) {
        if (n < 4095) {
            out[n++] = (char) c;
        }
    }

    if (pclose(f) != 0 || n == 0) {
        free(out);
        return NULL;
    }

    if (out[n - 1] == '\n') {
        n--;
    }

    out[n] = '\0';

    return out;
}


static int
write_file(const char *name, const void *p, size_t n)
{
    int    rc;
    FILE  *f;

    f = fopen(path(name), "wb");
    if (f == NULL) {
        return -1;
    }

    rc = fwrite(p, 1, n, f) == n ? 0 : -1;

    if (fclose(f) != 0) {
        rc = -1;
    }

    return rc;
}


static unsigned char *
read_file(const char *name, size_t *n)
{
    FILE           *f;
    unsigned char  *buf;

    f = fopen(path(name), "rb");
    if (f == NULL) {
        return NULL;
    }

    buf = malloc(65536);
    *n = fread(buf, 1, 65536, f);
    fclose(f);

    return buf;
}


static char *
b64(const void *p, size_t n)
{
    char    *s;
    size_t   len;

    s = malloc(um_base64url_encoded_len(n) + 1);
    len = um_base64url_encode((unsigned char *) s, p, n);
    s[len] = '\0';

    return s;
}


static char *
b64s(const char *s)
{
    return b64(s, strlen(s));
}


/* base64url of the HMAC openssl computes over the token's signing input */
static char *
openssl_hmac(const char *md, const um_jwt_key_t *key, const char *token)
{
    char    *hex, *mac;
    size_t   i;

    if (token == NULL || sign_input_to_file(token, "in.txt") != 0) {
        return NULL;
    }

    hex = malloc(key->secret_len * 2 + 1);

    for (i = 0; i < key->secret_len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", key->secret[i]);
    }

    mac = sh_output("openssl dgst -%s -mac HMAC -macopt hexkey:%s -binary %s "
                    "| openssl base64 -A", md, hex, path("in.txt"));
    free(hex);

    for (i = 0; mac != NULL && mac[i] != '\0'; i++) {
        mac[i] = mac[i] == '+' ? '-' : mac[i] == '/' ? '_' : mac[i];
    }

    /* no padding in base64url */
    if (mac != NULL && strchr(mac, '=') != NULL) {
        *strchr(mac, '=') = '\0';
    }

    return mac;
}


/* header.payload.signature from raw JSON texts; "h.p." without sig */
static char *
token3(const char *header, const char *payload, const unsigned char *sig,
    size_t siglen)
{
    char  *h, *p, *s, *t;

    h = b64(header, strlen(header));
    p = b64(payload, strlen(payload));
    s = b64(sig, sig != NULL ? siglen : 0);

    t = malloc(strlen(h) + strlen(p) + strlen(s) + 3);
    sprintf(t, "%s.%s.%s", h, p, s);

    free(h);
    free(p);
    free(s);

    return t;
}


/* a token HMAC-SHA256'd here with a secret, whatever the header says */
static char *
mac_token(const unsigned char *secret, size_t len, const char *header,
    const char *payload)
{
    char           *t;
    size_t          n;
    unsigned char   mac[64];

    t = token3(header, payload, NULL, 0);
    n = 0;

    EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, len,
              (unsigned char *) t, strlen(t) - 1, mac, sizeof(mac), &n);
    free(t);

    return token3(header, payload, mac, n);
}


static char *
hs_token(const char *header, const char *payload)
{
    return mac_token(hs.secret, hs.secret_len, header, payload);
}


/* the decoded bytes of part i of a token, malloc()'d */
static unsigned char *
part(const char *token, int i, size_t *n)
{
    const char     *p, *e;
    unsigned char  *buf;

    if (token == NULL) {
        return NULL;
    }

    p = token;

    while (i-- > 0) {
        p = strchr(p, '.');
        if (p == NULL) {
            return NULL;
        }

        p++;
    }

    e = strchr(p, '.');
    if (e == NULL) {
        e = p + strlen(p);
    }

    buf = malloc(um_base64url_decoded_len(e - p) + 1);
    *n = um_base64url_decode(buf, (const unsigned char *) p, e - p);

    if (*n == (size_t) -1) {
        free(buf);
        return NULL;
    }

    return buf;
}


static int
sign_input_to_file(const char *token, const char *name)
{
    if (token == NULL) {
        return -1;
    }

    return write_file(name, token, strrchr(token, '.') - token);
}


/* R||S to an ECDSA-Sig-Value: SEQUENCE { INTEGER r, INTEGER s } */
static size_t
raw_to_der(const unsigned char *raw, unsigned char *der)
{
    int                   i;
    size_t                n, len, skip;
    const unsigned char  *v;

    len = 2;

    for (i = 0; i < 2; i++) {
        v = raw + 32 * i;

        for (skip = 0; skip < 31 && v[skip] == 0; skip++) {
            /* void */
        }

        n = 32 - skip;

        der[len++] = 0x02;

        if (v[skip] & 0x80) {
            der[len++] = (unsigned char) (n + 1);
            der[len++] = 0;

        } else {
            der[len++] = (unsigned char) n;
        }

        memcpy(der + len, v + skip, n);
        len += n;
    }

    der[0] = 0x30;
    der[1] = (unsigned char) (len - 2);

    return len;
}


static int
der_to_raw(const unsigned char *der, size_t n, unsigned char *raw)
{
    int     i;
    size_t  pos, len;

    if (n < 8 || der[0] != 0x30 || der[1] != n - 2) {
        return -1;
    }

    memset(raw, 0, 64);
    pos = 2;

    for (i = 0; i < 2; i++) {
        if (pos + 2 > n || der[pos] != 0x02) {
            return -1;
        }

        len = der[pos + 1];
        pos += 2;

        if (pos + len > n) {
            return -1;
        }

        while (len > 32 && der[pos] == 0) {
            pos++;
            len--;
        }

        if (len > 32) {
            return -1;
        }

        memcpy(raw + 32 * i + 32 - len, der + pos, len);
        pos += len;
    }

    return pos == n ? 0 : -1;
}


static int
load(um_jwt_key_t *key, const char *alg, const char *name, const char *kid)
{
    char  err[512];

    err[0] = '\0';

    if (um_jwt_key_load(key, alg, path(name), kid, err, sizeof(err)) != 0) {
        printf("# %s\n", err);
        return 0;
    }

    return 1;
}


static int
refused(const char *alg, const char *name, const char *expect)
{
    char          err[512];
    um_jwt_key_t  key;

    err[0] = '\0';

    if (um_jwt_key_load(&key, alg, path(name), NULL, err, sizeof(err)) == 0) {
        um_jwt_key_free(&key);
        printf("# loaded\n");
        return 0;
    }

    printf("# %s\n", err);

    /* the message names the file (but for an unknown algorithm) */
    return strstr(err, expect) != NULL
           && (strstr(err, "unknown JWT algorithm") != NULL
               || strstr(err, name) != NULL);
}


static int
verifies(const char *token)
{
    int          rc;
    json_t      *payload;
    const char  *reason;

    if (token == NULL) {
        return 0;
    }

    rc = um_jwt_verify(token, strlen(token), &opts, &payload, &reason);

    if (rc != UM_JWT_OK) {
        printf("# refused: %s\n", reason);
    }

    json_decref(payload);

    return rc == UM_JWT_OK;
}


static int
refused_as(const char *token, const char *expect)
{
    int          rc;
    json_t      *payload;
    const char  *reason;

    if (token == NULL) {
        return 0;
    }

    payload = (json_t *) 1;
    rc = um_jwt_verify(token, strlen(token), &opts, &payload, &reason);

    if (rc >= 0 || strcmp(reason, expect) != 0) {
        printf("# %d %s, expected %s\n", rc, reason, expect);
    }

    if (rc >= 0) {
        json_decref(payload);
        return 0;
    }

    return payload == NULL && strcmp(reason, expect) == 0;
}


static int
claims_ok(const char *payload)
{
    int    rc;
    char  *tok;

    tok = hs_token(HS_HDR, payload);
    rc = verifies(tok);
    free(tok);

    return rc;
}


static int
claims_refused(const char *payload, const char *expect)
{
    int    rc;
    char  *tok;

    tok = hs_token(HS_HDR, payload);
    rc = refused_as(tok, expect);
    free(tok);

    return rc;
}


/* xorshift32: the same mutations on every run */
static unsigned int
rnd(void)
{
    static unsigned int  x = 2463534242u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;

    return x;
}
