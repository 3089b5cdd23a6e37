#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "um_base64url.h"
#include "um_jwt.h"


/* a PEM file of a 16384-bit RSA key is about 13 KB */
#define UM_JWT_KEY_FILE_MAX  65536

#define UM_JWT_KID_DERIVED   16

/* P-256: 32-byte coordinates, and R and S of as many bytes each */
#define UM_JWT_P256_LEN      32

#define um_jwt_is_hmac(alg)                                                  \
    ((alg) == UM_JWT_HS256 || (alg) == UM_JWT_HS384 || (alg) == UM_JWT_HS512)


static um_jwt_alg_t um_jwt_alg_from_config(const char *name);
static um_jwt_alg_t um_jwt_alg_from_header(const json_t *v);
static const EVP_MD *um_jwt_md(um_jwt_alg_t alg);
static void um_jwt_error(char *err, size_t errlen, const char *fmt, ...);
static int um_jwt_read_file(const char *path, unsigned char **data,
    size_t *len, char *err, size_t errlen);
static int um_jwt_no_passphrase(char *buf, int size, int rwflag, void *u);
static int um_jwt_load_secret(um_jwt_key_t *key, const char *path,
    const unsigned char *data, size_t len, char *err, size_t errlen);
static int um_jwt_load_pem(um_jwt_key_t *key, const char *path,
    const unsigned char *data, size_t len, char *err, size_t errlen);
static int um_jwt_kid_valid(const char *kid);
static int um_jwt_derive_kid(um_jwt_key_t *key);
static unsigned char *um_jwt_sign_input(const um_jwt_key_t *key,
    const unsigned char *data, size_t len, size_t *siglen);
static int um_jwt_hmac(const um_jwt_key_t *key, const unsigned char *data,
    size_t len, unsigned char *mac, size_t *maclen);
static int um_jwt_ecdsa_to_raw(const unsigned char *der, size_t len,
    unsigned char *raw);
static unsigned char *um_jwt_ecdsa_to_der(const unsigned char *raw,
    int *len);
static int um_jwt_verify_input(const um_jwt_key_t *key,
    const unsigned char *data, size_t len, const unsigned char *sig,
    size_t siglen);
static json_t *um_jwt_decode_json(const char *part, size_t n);
static int um_jwt_typ_matches(const json_t *v, const char *typ);
static int um_jwt_equal_nocase(const char *s, size_t len, const char *text);
static int um_jwt_string_is(const json_t *v, const char *s);
static int um_jwt_check_claims(const json_t *claims,
    const um_jwt_verify_t *opts);
static json_t *um_jwt_jwk(const um_jwt_key_t *key);
static int um_jwt_set_base64url(json_t *obj, const char *name,
    const unsigned char *p, size_t n);
static int um_jwt_set_bn(json_t *obj, const char *name, EVP_PKEY *pkey,
    const char *param, int pad);


/* indexed by um_jwt_alg_t: JWS names, and as written in the configuration */
static const char  *um_jwt_names[] = {
    NULL, "HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA"
};

static const char  *um_jwt_config_names[] = {
    NULL, "hs256", "hs384", "hs512", "rs256", "es256", "eddsa"
};

/* indexed by minus the UM_JWT_ codes */
static const char  *um_jwt_reasons[] = {
    "valid",
    "malformed",
    "too long",
    "unsupported algorithm",
    "unknown key",
    "algorithm does not match key",
    "bad signature",
    "wrong type",
    "expired",
    "not yet valid",
    "issued in the future",
    "wrong issuer",
    "wrong audience",
    "missing exp",
    "missing sub"
};


int
um_jwt_key_load(um_jwt_key_t *key, const char *alg_name, const char *path,
    const char *kid, char *err, size_t errlen)
{
    int             rc;
    size_t          len;
    unsigned char  *data;

    memset(key, 0, sizeof(um_jwt_key_t));

    if (path == NULL) {
        um_jwt_error(err, errlen, "no key file given");
        return -1;
    }

    key->alg = um_jwt_alg_from_config(alg_name);
    if (key->alg == 0) {
        um_jwt_error(err, errlen, "unknown JWT algorithm \"%s\" (expected "
                     "hs256, hs384, hs512, rs256, es256 or eddsa)",
                     alg_name != NULL ? alg_name : "");
        return -1;
    }

    if (kid != NULL && !um_jwt_kid_valid(kid)) {
        um_jwt_error(err, errlen, "key id \"%s\" for %s must be 1 to 64 "
                     "printable ASCII characters without quotes or "
                     "backslashes", kid, path);
        return -1;
    }

    if (um_jwt_read_file(path, &data, &len, err, errlen) != 0) {
        return -1;
    }

    if (um_jwt_is_hmac(key->alg)) {
        rc = um_jwt_load_secret(key, path, data, len, err, errlen);

    } else {
        rc = um_jwt_load_pem(key, path, data, len, err, errlen);
    }

    /* the file held a secret or a private key: leave no copy behind */
    OPENSSL_cleanse(data, len);
    free(data);

    if (rc != 0) {
        goto failed;
    }

    if (kid != NULL) {
        memcpy(key->kid, kid, strlen(kid) + 1);

    } else if (um_jwt_derive_kid(key) != 0) {
        um_jwt_error(err, errlen, "cannot derive a key id for %s", path);
        goto failed;
    }

    return 0;

failed:

    um_jwt_key_free(key);
    ERR_clear_error();

    return -1;
}


void
um_jwt_key_free(um_jwt_key_t *key)
{
    EVP_PKEY_free(key->pkey);
    key->pkey = NULL;

    if (key->secret != NULL) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
        key->secret = NULL;
    }

    key->secret_len = 0;
    key->can_sign = 0;
}


const char *
um_jwt_alg_name(um_jwt_alg_t alg)
{
    if (alg < UM_JWT_HS256 || alg > UM_JWT_EDDSA) {
        return NULL;
    }

    return um_jwt_names[alg];
}


char *
um_jwt_sign(const um_jwt_key_t *key, const char *typ, const json_t *payload)
{
    char           *h, *p, *token;
    size_t          hlen, plen, siglen, n;
    json_t         *header;
    unsigned char  *sig, *t;

    if (key == NULL || !key->can_sign || um_jwt_alg_name(key->alg) == NULL
        || !json_is_object(payload))
    {
        return NULL;
    }

    h = NULL;
    p = NULL;
    sig = NULL;
    token = NULL;

    header = json_object();
    if (header == NULL) {
        return NULL;
    }

    /* compact JSON in this order: {"alg":...,"typ":...,"kid":...} */

    if (json_object_set_new(header, "alg", json_string(um_jwt_names[key->alg]))
        || (typ != NULL
            && json_object_set_new(header, "typ", json_string(typ)))
        || (key->kid[0] != '\0'
            && json_object_set_new(header, "kid", json_string(key->kid))))
    {
        goto done;
    }

    h = json_dumps(header, JSON_COMPACT);
    p = json_dumps(payload, JSON_COMPACT);

    if (h == NULL || p == NULL) {
        goto done;
    }

    hlen = um_base64url_encoded_len(strlen(h));
    plen = um_base64url_encoded_len(strlen(p));

    /* the longest signature is an RSA one, of the size of the modulus */
    n = hlen + 1 + plen + 1
        + um_base64url_encoded_len(key->pkey != NULL
                                   ? (size_t) EVP_PKEY_get_size(key->pkey)
                                   : EVP_MAX_MD_SIZE)
        + 1;

    token = malloc(n);
    if (token == NULL) {
        goto done;
    }

    t = (unsigned char *) token;

    t += um_base64url_encode(t, (const unsigned char *) h, strlen(h));
    *t++ = '.';
    t += um_base64url_encode(t, (const unsigned char *) p, strlen(p));

    sig = um_jwt_sign_input(key, (const unsigned char *) token,
                            t - (unsigned char *) token, &siglen);
    if (sig == NULL) {
        free(token);
        token = NULL;
        goto done;
    }

    *t++ = '.';
    t += um_base64url_encode(t, sig, siglen);
    *t = '\0';

done:

    json_decref(header);
    free(h);
    free(p);
    free(sig);
    ERR_clear_error();

    return token;
}


int
um_jwt_verify(const char *token, size_t len, const um_jwt_verify_t *opts,
    json_t **payload, const char **reason)
{
    int                   rc, found;
    size_t                i, dot1, dot2, dots, max, siglen, kidlen;
    json_t               *header, *claims, *v, *kid;
    um_jwt_alg_t          alg;
    unsigned char        *sig;
    const char           *s;
    const um_jwt_key_t   *key;
    const unsigned char  *data;

    header = NULL;
    claims = NULL;
    sig = NULL;

    if (payload != NULL) {
        *payload = NULL;
    }

    max = opts->max_len ? opts->max_len : UM_JWT_MAX_LEN;

    if (len > max) {
        rc = UM_JWT_TOO_LONG;
        goto done;
    }

    rc = UM_JWT_MALFORMED;

    if (token == NULL) {
        goto done;
    }

    data = (const unsigned char *) token;

    /* header.payload.signature */

    dots = 0;
    dot1 = 0;
    dot2 = 0;

    for (i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (dots == 0) {
                dot1 = i;

            } else {
                dot2 = i;
            }

            if (++dots > 2) {
                goto done;
            }
        }
    }

    if (dots != 2 || dot1 == 0 || dot2 == dot1 + 1) {
        goto done;
    }

    header = um_jwt_decode_json(token, dot1);
    if (!json_is_object(header)) {
        goto done;
    }

    v = json_object_get(header, "alg");
    if (!json_is_string(v)) {
        goto done;
    }

    alg = um_jwt_alg_from_header(v);
    if (alg == 0) {
        rc = UM_JWT_UNSUPPORTED_ALG;
        goto done;
    }

    /*
     * "crit" lists extensions the recipient must understand (RFC 7515
     * section 4.1.11); we understand none.
     */
    if (json_object_get(header, "crit") != NULL) {
        goto done;
    }

    kid = json_object_get(header, "kid");
    if (kid != NULL && !json_is_string(kid)) {
        goto done;
    }

    if (opts->typ != NULL
        && !um_jwt_typ_matches(json_object_get(header, "typ"), opts->typ))
    {
        rc = UM_JWT_WRONG_TYPE;
        goto done;
    }

    /* one more byte: malloc(0) may return NULL */
    siglen = len - dot2 - 1;
    sig = malloc(um_base64url_decoded_len(siglen) + 1);
    if (sig == NULL) {
        goto done;
    }

    siglen = um_base64url_decode(sig, data + dot2 + 1, siglen);
    if (siglen == (size_t) -1) {
        goto done;
    }

    /*
     * The key comes from the configuration, never from the token: "kid"
     * only picks one, and the key's own algorithm must be the header's.
     */

    if (kid != NULL) {
        s = json_string_value(kid);
        kidlen = json_string_length(kid);
        key = NULL;

        for (i = 0; i < opts->nkeys; i++) {
            if (strlen(opts->keys[i].kid) == kidlen
                && memcmp(opts->keys[i].kid, s, kidlen) == 0)
            {
                key = &opts->keys[i];
                break;
            }
        }

        if (key == NULL) {
            rc = UM_JWT_UNKNOWN_KEY;
            goto done;
        }

        if (key->alg != alg) {
            rc = UM_JWT_ALG_MISMATCH;
            goto done;
        }

        if (!um_jwt_verify_input(key, data, dot2, sig, siglen)) {
            rc = UM_JWT_BAD_SIGNATURE;
            goto done;
        }

    } else {
        found = 0;

        for (i = 0; i < opts->nkeys; i++) {
            if (opts->keys[i].alg != alg) {
                continue;
            }

            found = 1;

            if (um_jwt_verify_input(&opts->keys[i], data, dot2, sig, siglen)) {
                found = 2;
                break;
            }
        }

        if (found == 0) {
            rc = opts->nkeys ? UM_JWT_ALG_MISMATCH : UM_JWT_UNKNOWN_KEY;
            goto done;
        }

        if (found == 1) {
            rc = UM_JWT_BAD_SIGNATURE;
            goto done;
        }
    }

    /* the claims are read only once they are known to be the issuer's */

    rc = UM_JWT_MALFORMED;

    claims = um_jwt_decode_json(token + dot1 + 1, dot2 - dot1 - 1);
    if (!json_is_object(claims)) {
        goto done;
    }

    rc = um_jwt_check_claims(claims, opts);

    if (rc == UM_JWT_OK && payload != NULL) {
        *payload = claims;
        claims = NULL;
    }

done:

    json_decref(header);
    json_decref(claims);
    free(sig);

    if (rc != UM_JWT_OK) {
        /* failed verifications must not leave errors for nginx to log */
        ERR_clear_error();
    }

    if (reason != NULL) {
        *reason = um_jwt_reasons[-rc];
    }

    return rc;
}


json_t *
um_jwt_jwks(const um_jwt_key_t *keys, size_t nkeys)
{
    size_t   i;
    json_t  *jwks, *list, *jwk;

    jwks = json_object();
    list = json_array();

    if (jwks == NULL || list == NULL) {
        goto failed;
    }

    for (i = 0; i < nkeys; i++) {
        if (keys[i].pkey == NULL) {
            continue;
        }

        jwk = um_jwt_jwk(&keys[i]);
        if (jwk == NULL || json_array_append_new(list, jwk) != 0) {
            goto failed;
        }
    }

    if (json_object_set(jwks, "keys", list) != 0) {
        goto failed;
    }

    json_decref(list);

    return jwks;

failed:

    json_decref(jwks);
    json_decref(list);
    ERR_clear_error();

    return NULL;
}


static um_jwt_alg_t
um_jwt_alg_from_config(const char *name)
{
    int          alg;
    size_t       i;
    const char  *p;

    if (name == NULL) {
        return 0;
    }

    for (alg = UM_JWT_HS256; alg <= UM_JWT_EDDSA; alg++) {
        p = um_jwt_config_names[alg];

        for (i = 0; p[i] != '\0'; i++) {
            if (tolower((unsigned char) name[i])
                != tolower((unsigned char) p[i]))
            {
                break;
            }
        }

        if (p[i] == '\0' && name[i] == '\0') {
            return alg;
        }
    }

    return 0;
}


/* JWS algorithm names are case-sensitive (RFC 7515 section 4.1.1) */
static um_jwt_alg_t
um_jwt_alg_from_header(const json_t *v)
{
    int          alg;
    size_t       len;
    const char  *name;

    name = json_string_value(v);
    len = json_string_length(v);

    for (alg = UM_JWT_HS256; alg <= UM_JWT_EDDSA; alg++) {
        if (strlen(um_jwt_names[alg]) == len
            && memcmp(um_jwt_names[alg], name, len) == 0)
        {
            return alg;
        }
    }

    return 0;
}


static const EVP_MD *
um_jwt_md(um_jwt_alg_t alg)
{
    switch (alg) {

    case UM_JWT_HS384:
        return EVP_sha384();

    case UM_JWT_HS512:
        return EVP_sha512();

    case UM_JWT_EDDSA:
        /* Ed25519 hashes the message itself */
        return NULL;

    default:
        return EVP_sha256();
    }
}


static void
um_jwt_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  args;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
}


static int
um_jwt_read_file(const char *path, unsigned char **data, size_t *len,
    char *err, size_t errlen)
{
    int             e;
    FILE           *f;
    size_t          n;
    unsigned char  *buf;

    f = fopen(path, "rb");
    if (f == NULL) {
        um_jwt_error(err, errlen, "cannot open key file %s: %s", path,
                     strerror(errno));
        return -1;
    }

    /* one byte more than allowed tells a file that is too large */
    buf = malloc(UM_JWT_KEY_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        um_jwt_error(err, errlen, "out of memory reading %s", path);
        return -1;
    }

    n = fread(buf, 1, UM_JWT_KEY_FILE_MAX + 1, f);
    e = ferror(f) ? errno : 0;
    fclose(f);

    if (e != 0 || n > UM_JWT_KEY_FILE_MAX) {
        OPENSSL_cleanse(buf, n);
        free(buf);

        if (e != 0) {
            um_jwt_error(err, errlen, "cannot read key file %s: %s", path,
                         strerror(e));

        } else {
            um_jwt_error(err, errlen, "key file %s is larger than %d bytes",
                         path, UM_JWT_KEY_FILE_MAX);
        }

        return -1;
    }

    *data = buf;
    *len = n;

    return 0;
}


/*
 * An encrypted private key would make OpenSSL ask for a passphrase on the
 * terminal, and nginx would hang at start: refuse it instead.
 */
static int
um_jwt_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void) buf;
    (void) size;
    (void) rwflag;
    (void) u;

    return -1;
}


static int
um_jwt_load_secret(um_jwt_key_t *key, const char *path,
    const unsigned char *data, size_t len, char *err, size_t errlen)
{
    size_t  min;

    /* RFC 7518 section 3.2: a key at least as long as the hash output */
    min = (size_t) EVP_MD_get_size(um_jwt_md(key->alg));

    if (len < min) {
        um_jwt_error(err, errlen, "%s key in %s is %zu bytes; at least %zu "
                     "are required", um_jwt_config_names[key->alg], path, len,
                     min);
        return -1;
    }

    key->secret = malloc(len);
    if (key->secret == NULL) {
        um_jwt_error(err, errlen, "out of memory reading %s", path);
        return -1;
    }

    memcpy(key->secret, data, len);
    key->secret_len = len;
    key->can_sign = 1;

    return 0;
}


static int
um_jwt_load_pem(um_jwt_key_t *key, const char *path,
    const unsigned char *data, size_t len, char *err, size_t errlen)
{
    int          bits;
    BIO         *bio;
    char         group[64];
    const char  *name, *type;

    bio = BIO_new_mem_buf(data, (int) len);
    if (bio == NULL) {
        um_jwt_error(err, errlen, "out of memory reading %s", path);
        return -1;
    }

    key->pkey = PEM_read_bio_PrivateKey(bio, NULL, um_jwt_no_passphrase,
                                        NULL);
    BIO_free(bio);

    if (key->pkey != NULL) {
        key->can_sign = 1;

    } else {
        ERR_clear_error();

        bio = BIO_new_mem_buf(data, (int) len);
        if (bio == NULL) {
            um_jwt_error(err, errlen, "out of memory reading %s", path);
            return -1;
        }

        key->pkey = PEM_read_bio_PUBKEY(bio, NULL, um_jwt_no_passphrase,
                                        NULL);
        BIO_free(bio);
    }

    if (key->pkey == NULL) {
        um_jwt_error(err, errlen, "no PEM private or public key in %s "
                     "(encrypted keys are not supported)", path);
        return -1;
    }

    name = um_jwt_config_names[key->alg];
    type = EVP_PKEY_get0_type_name(key->pkey);

    if (type == NULL) {
        type = "unknown";
    }

    switch (key->alg) {

    case UM_JWT_RS256:
        if (!EVP_PKEY_is_a(key->pkey, "RSA")) {
            um_jwt_error(err, errlen, "%s key in %s is an %s key, not RSA",
                         name, path, type);
            return -1;
        }

        bits = EVP_PKEY_get_bits(key->pkey);

        if (bits < 2048) {
            um_jwt_error(err, errlen, "%s key in %s has %d bits; at least "
                         "2048 are required", name, path, bits);
            return -1;
        }

        break;

    case UM_JWT_ES256:
        if (!EVP_PKEY_is_a(key->pkey, "EC")) {
            um_jwt_error(err, errlen, "%s key in %s is an %s key, not EC "
                         "P-256", name, path, type);
            return -1;
        }

        group[0] = '\0';

        if (!EVP_PKEY_get_group_name(key->pkey, group, sizeof(group), NULL)
            || OBJ_sn2nid(group) != NID_X9_62_prime256v1)
        {
            um_jwt_error(err, errlen, "%s key in %s is on curve %s, not "
                         "P-256", name, path, group[0] ? group : "unknown");
            return -1;
        }

        break;

    default: /* UM_JWT_EDDSA */
        if (!EVP_PKEY_is_a(key->pkey, "ED25519")) {
            um_jwt_error(err, errlen, "%s key in %s is an %s key, not "
                         "Ed25519", name, path, type);
            return -1;
        }

        break;
    }

    return 0;
}


/* the kid travels in a JSON header and in logs: keep it plain */
static int
um_jwt_kid_valid(const char *kid)
{
    size_t  i;

    for (i = 0; kid[i] != '\0'; i++) {
        if (i == 64 || kid[i] <= ' ' || kid[i] > '~' || kid[i] == '"'
            || kid[i] == '\\')
        {
            return 0;
        }
    }

    return i > 0;
}


static int
um_jwt_derive_kid(um_jwt_key_t *key)
{
    int             rc, n;
    unsigned int    mdlen;
    unsigned char  *der, md[EVP_MAX_MD_SIZE], b64[EVP_MAX_MD_SIZE * 2];

    if (key->pkey != NULL) {
        der = NULL;

        n = i2d_PUBKEY(key->pkey, &der);
        if (n <= 0) {
            return -1;
        }

        rc = EVP_Digest(der, n, md, &mdlen, EVP_sha256(), NULL);
        OPENSSL_free(der);

    } else {
        rc = EVP_Digest(key->secret, key->secret_len, md, &mdlen,
                        EVP_sha256(), NULL);
    }

    if (rc != 1) {
        return -1;
    }

    um_base64url_encode(b64, md, mdlen);
    memcpy(key->kid, b64, UM_JWT_KID_DERIVED);
    key->kid[UM_JWT_KID_DERIVED] = '\0';

    return 0;
}


/* a malloc()'d signature of data, in its JWS form */
static unsigned char *
um_jwt_sign_input(const um_jwt_key_t *key, const unsigned char *data,
    size_t len, size_t *siglen)
{
    size_t          n;
    EVP_MD_CTX     *ctx;
    unsigned char  *sig, *raw;

    if (um_jwt_is_hmac(key->alg)) {
        sig = malloc(EVP_MAX_MD_SIZE);

        if (sig != NULL && um_jwt_hmac(key, data, len, sig, siglen) != 0) {
            free(sig);
            sig = NULL;
        }

        return sig;
    }

    n = (size_t) EVP_PKEY_get_size(key->pkey);

    sig = malloc(n);
    ctx = EVP_MD_CTX_new();

    if (sig == NULL || ctx == NULL
        || EVP_DigestSignInit(ctx, NULL, um_jwt_md(key->alg), NULL,
                              key->pkey) != 1
        || EVP_DigestSign(ctx, sig, &n, data, len) != 1)
    {
        goto failed;
    }

    EVP_MD_CTX_free(ctx);
    ctx = NULL;

    if (key->alg == UM_JWT_ES256) {
        /* OpenSSL gives an ASN.1 ECDSA-Sig-Value; JWS wants R||S */
        raw = malloc(2 * UM_JWT_P256_LEN);

        if (raw == NULL || um_jwt_ecdsa_to_raw(sig, n, raw) != 0) {
            free(raw);
            goto failed;
        }

        free(sig);
        sig = raw;
        n = 2 * UM_JWT_P256_LEN;
    }

    *siglen = n;

    return sig;

failed:

    EVP_MD_CTX_free(ctx);
    free(sig);

    return NULL;
}


static int
um_jwt_hmac(const um_jwt_key_t *key, const unsigned char *data, size_t len,
    unsigned char *mac, size_t *maclen)
{
    const char  *digest;

    if (key->secret == NULL) {
        return -1;
    }

    digest = EVP_MD_get0_name(um_jwt_md(key->alg));

    if (EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, key->secret,
                  key->secret_len, data, len, mac, EVP_MAX_MD_SIZE, maclen)
        == NULL)
    {
        return -1;
    }

    return 0;
}


static int
um_jwt_ecdsa_to_raw(const unsigned char *der, size_t len, unsigned char *raw)
{
    int                   rc;
    ECDSA_SIG            *sig;
    const BIGNUM         *r, *s;
    const unsigned char  *p;

    p = der;

    sig = d2i_ECDSA_SIG(NULL, &p, (long) len);
    if (sig == NULL) {
        return -1;
    }

    ECDSA_SIG_get0(sig, &r, &s);

    rc = (BN_bn2binpad(r, raw, UM_JWT_P256_LEN) == UM_JWT_P256_LEN
          && BN_bn2binpad(s, raw + UM_JWT_P256_LEN, UM_JWT_P256_LEN)
             == UM_JWT_P256_LEN) ? 0 : -1;

    ECDSA_SIG_free(sig);

    return rc;
}


/* an OPENSSL_malloc()'d ECDSA-Sig-Value of the 64 bytes R||S */
static unsigned char *
um_jwt_ecdsa_to_der(const unsigned char *raw, int *len)
{
    BIGNUM         *r, *s;
    ECDSA_SIG      *sig;
    unsigned char  *der;

    der = NULL;
    sig = ECDSA_SIG_new();
    r = BN_bin2bn(raw, UM_JWT_P256_LEN, NULL);
    s = BN_bin2bn(raw + UM_JWT_P256_LEN, UM_JWT_P256_LEN, NULL);

    if (sig == NULL || r == NULL || s == NULL
        || ECDSA_SIG_set0(sig, r, s) != 1)
    {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return NULL;
    }

    /* the ECDSA_SIG owns r and s now */

    *len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);

    if (*len <= 0) {
        OPENSSL_free(der);
        return NULL;
    }

    return der;
}


static int
um_jwt_verify_input(const um_jwt_key_t *key, const unsigned char *data,
    size_t len, const unsigned char *sig, size_t siglen)
{
    int             rc, derlen;
    size_t          maclen;
    EVP_MD_CTX     *ctx;
    unsigned char  *der, mac[EVP_MAX_MD_SIZE];

    if (um_jwt_is_hmac(key->alg)) {
        if (um_jwt_hmac(key, data, len, mac, &maclen) != 0) {
            return 0;
        }

        return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    }

    if (key->pkey == NULL) {
        return 0;
    }

    der = NULL;

    switch (key->alg) {

    case UM_JWT_RS256:
        /* RFC 7518 section 3.3: exactly the size of the modulus */
        if (siglen != (size_t) EVP_PKEY_get_size(key->pkey)) {
            return 0;
        }

        break;

    case UM_JWT_ES256:
        if (siglen != 2 * UM_JWT_P256_LEN) {
            return 0;
        }

        der = um_jwt_ecdsa_to_der(sig, &derlen);
        if (der == NULL) {
            return 0;
        }

        sig = der;
        siglen = (size_t) derlen;
        break;

    default: /* UM_JWT_EDDSA */
        if (siglen != 64) {
            return 0;
        }

        break;
    }

    ctx = EVP_MD_CTX_new();

    rc = ctx != NULL
         && EVP_DigestVerifyInit(ctx, NULL, um_jwt_md(key->alg), NULL,
                                 key->pkey) == 1
         && EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;

    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);

    return rc;
}


static json_t *
um_jwt_decode_json(const char *part, size_t n)
{
    size_t          len;
    json_t         *json;
    json_error_t    error;
    unsigned char  *buf;

    buf = malloc(um_base64url_decoded_len(n) + 1);
    if (buf == NULL) {
        return NULL;
    }

    len = um_base64url_decode(buf, (const unsigned char *) part, n);

    /*
     * A member given twice could be read one way here and another way by a
     * different parser (RFC 7515 section 4: reject or take the last).
     */
    json = (len == (size_t) -1)
           ? NULL : json_loadb((char *) buf, len, JSON_REJECT_DUPLICATES,
                               &error);

    free(buf);

    return json;
}


/*
 * RFC 7515 section 4.1.9: media types compare case-insensitively, and
 * "application/" may be left out.
 */
static int
um_jwt_typ_matches(const json_t *v, const char *typ)
{
    size_t       len, n;
    const char  *s;

    if (!json_is_string(v)) {
        return 0;
    }

    s = json_string_value(v);
    len = json_string_length(v);
    n = sizeof("application/") - 1;

    if (len > n && um_jwt_equal_nocase(s, n, "application/")) {
        s += n;
        len -= n;
    }

    return um_jwt_equal_nocase(s, len, typ);
}


static int
um_jwt_equal_nocase(const char *s, size_t len, const char *text)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (text[i] == '\0'
            || tolower((unsigned char) s[i])
               != tolower((unsigned char) text[i]))
        {
            return 0;
        }
    }

    return text[len] == '\0';
}


static int
um_jwt_string_is(const json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s)
           && memcmp(json_string_value(v), s, strlen(s)) == 0;
}


static int
um_jwt_check_claims(const json_t *claims, const um_jwt_verify_t *opts)
{
    double   now, leeway;
    size_t   i;
    json_t  *v;

    /*
     * Unix times as doubles: exact for integers below 2^53, and a claim of
     * 1e300 or 9223372036854775807 compares without overflow.
     */
    now = (double) opts->now;
    leeway = (double) opts->leeway;

    v = json_object_get(claims, "exp");
    if (!json_is_number(v)) {
        return UM_JWT_MISSING_EXP;
    }

    if (now > json_number_value(v) + leeway) {
        return UM_JWT_EXPIRED;
    }

    v = json_object_get(claims, "nbf");
    if (v != NULL) {
        if (!json_is_number(v)) {
            return UM_JWT_MALFORMED;
        }

        if (json_number_value(v) > now + leeway) {
            return UM_JWT_NOT_YET_VALID;
        }
    }

    v = json_object_get(claims, "iat");
    if (v != NULL) {
        if (!json_is_number(v)) {
            return UM_JWT_MALFORMED;
        }

        if (json_number_value(v) > now + leeway) {
            return UM_JWT_ISSUED_IN_FUTURE;
        }
    }

    v = json_object_get(claims, "sub");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        return UM_JWT_MISSING_SUB;
    }

    if (opts->iss != NULL
        && !um_jwt_string_is(json_object_get(claims, "iss"), opts->iss))
    {
        return UM_JWT_WRONG_ISSUER;
    }

    if (opts->aud != NULL) {
        v = json_object_get(claims, "aud");

        if (json_is_array(v)) {
            for (i = 0; i < json_array_size(v); i++) {
                if (um_jwt_string_is(json_array_get(v, i), opts->aud)) {
                    break;
                }
            }

            if (i == json_array_size(v)) {
                return UM_JWT_WRONG_AUDIENCE;
            }

        } else if (!um_jwt_string_is(v, opts->aud)) {
            return UM_JWT_WRONG_AUDIENCE;
        }
    }

    return UM_JWT_OK;
}


static json_t *
um_jwt_jwk(const um_jwt_key_t *key)
{
    int            rc;
    size_t         n;
    json_t        *jwk;
    const char    *kty;
    unsigned char  raw[64];

    switch (key->alg) {

    case UM_JWT_RS256:
        kty = "RSA";
        break;

    case UM_JWT_ES256:
        kty = "EC";
        break;

    default: /* UM_JWT_EDDSA */
        kty = "OKP";
        break;
    }

    jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", kty, "kid", key->kid,
                    "use", "sig", "alg", um_jwt_names[key->alg]);
    if (jwk == NULL) {
        return NULL;
    }

    switch (key->alg) {

    case UM_JWT_RS256:
        /* RFC 7518 section 6.3.1: unsigned big-endian, no leading zeros */
        rc = um_jwt_set_bn(jwk, "n", key->pkey, OSSL_PKEY_PARAM_RSA_N, 0)
             || um_jwt_set_bn(jwk, "e", key->pkey, OSSL_PKEY_PARAM_RSA_E, 0);
        break;

    case UM_JWT_ES256:
        /* RFC 7518 section 6.2.1.2: coordinates of the full field size */
        rc = json_object_set_new(jwk, "crv", json_string("P-256"))
             || um_jwt_set_bn(jwk, "x", key->pkey, OSSL_PKEY_PARAM_EC_PUB_X,
                              UM_JWT_P256_LEN)
             || um_jwt_set_bn(jwk, "y", key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y,
                              UM_JWT_P256_LEN);
        break;

    default: /* UM_JWT_EDDSA, RFC 8037 section 2 */
        n = sizeof(raw);

        rc = json_object_set_new(jwk, "crv", json_string("Ed25519"))
             || EVP_PKEY_get_raw_public_key(key->pkey, raw, &n) != 1
             || um_jwt_set_base64url(jwk, "x", raw, n);
        break;
    }

    if (rc != 0) {
        json_decref(jwk);
        return NULL;
    }

    return jwk;
}


static int
um_jwt_set_base64url(json_t *obj, const char *name, const unsigned char *p,
    size_t n)
{
    int     rc;
    char   *b64;
    size_t  len;

    b64 = malloc(um_base64url_encoded_len(n) + 1);
    if (b64 == NULL) {
        return -1;
    }

    len = um_base64url_encode((unsigned char *) b64, p, n);

    rc = json_object_set_new(obj, name, json_stringn(b64, len));
    free(b64);

    return rc;
}


/* a public key number, padded to pad bytes when pad is not 0 */
static int
um_jwt_set_bn(json_t *obj, const char *name, EVP_PKEY *pkey,
    const char *param, int pad)
{
    int             rc, n;
    BIGNUM         *bn;
    unsigned char  *buf;

    bn = NULL;

    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) {
        return -1;
    }

    n = pad ? pad : BN_num_bytes(bn);
    rc = -1;

    buf = malloc(n > 0 ? n : 1);

    if (buf != NULL && BN_bn2binpad(bn, buf, n) == n) {
        rc = um_jwt_set_base64url(obj, name, buf, n);
    }

    free(buf);
    BN_free(bn);

    return rc;
}
