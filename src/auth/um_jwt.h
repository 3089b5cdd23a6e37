/*
 * JSON Web Tokens (RFC 7519) signed as compact JWS (RFC 7515), following the
 * JWT best current practices of RFC 8725: the algorithm comes from the
 * configured key, never from the token; "none" is refused; HMAC keys are at
 * least as long as their hash; "typ" is explicit (RFC 9068's "at+jwt").
 *
 * Pure C over OpenSSL 3 and jansson, no nginx: key loading does blocking
 * file I/O and belongs to configuration time; signing and verifying do no
 * I/O.  Every function is safe on any input bytes.
 */

#ifndef _UM_JWT_H_INCLUDED_
#define _UM_JWT_H_INCLUDED_

#include <stddef.h>
#include <openssl/evp.h>
#include <jansson.h>


/* tokens longer than this are refused when um_jwt_verify_t.max_len is 0 */
#define UM_JWT_MAX_LEN  8192


typedef enum {
    UM_JWT_HS256 = 1,
    UM_JWT_HS384,
    UM_JWT_HS512,
    UM_JWT_RS256,
    UM_JWT_ES256,
    UM_JWT_EDDSA
} um_jwt_alg_t;


typedef struct {
    um_jwt_alg_t    alg;
    char            kid[65];
    EVP_PKEY       *pkey;        /* RSA, EC P-256 or Ed25519 */
    unsigned char  *secret;      /* HMAC key bytes */
    size_t          secret_len;
    int             can_sign;    /* HMAC, or a private key */
} um_jwt_key_t;


/*
 * Loads the key of one algorithm from a file.  alg_name is "hs256",
 * "hs384", "hs512", "rs256", "es256" or "eddsa", in any case.
 *
 * HMAC: every byte of the file is the secret, a trailing newline included
 * (write keys with "openssl rand -out FILE 64", not with echo); it must be
 * at least as long as the hash: 32, 48 or 64 bytes.
 *
 * RS256, ES256, EdDSA: a PEM private key (the key then signs and verifies)
 * or public key (it only verifies), unencrypted.  RS256 wants RSA of at
 * least 2048 bits, ES256 EC on P-256, EdDSA Ed25519; a key of another type
 * is refused, which is what keeps a token from choosing how it is checked.
 *
 * kid: 1 to 64 printable ASCII characters, or NULL to derive one: the first
 * 16 characters of base64url(SHA-256) of the public key's DER
 * SubjectPublicKeyInfo, or of the HMAC secret.
 *
 * Returns 0, or -1 with a message for the administrator in err.  The key is
 * released with um_jwt_key_free() (also safe after a failed load).
 */
int um_jwt_key_load(um_jwt_key_t *key, const char *alg_name,
    const char *path, const char *kid, char *err, size_t errlen);
void um_jwt_key_free(um_jwt_key_t *key);

/* the JWS "alg" value: "HS256", ..., "EdDSA"; NULL for an unknown value */
const char *um_jwt_alg_name(um_jwt_alg_t alg);


/*
 * A compact JWS: header {"alg":...,"typ":typ,"kid":...} ("typ" left out when
 * typ is NULL), then the payload, which must be an object, as compact JSON.
 * Returns a malloc()'d NUL-terminated string, or NULL (no private key,
 * payload not an object, out of memory).  ES256 signatures are R||S of 64
 * bytes, as RFC 7518 section 3.4 wants.
 */
char *um_jwt_sign(const um_jwt_key_t *key, const char *typ,
    const json_t *payload);


typedef struct {
    const um_jwt_key_t  *keys;
    size_t               nkeys;

    /* required "typ", e.g. "at+jwt", also as "application/at+jwt", in any
     * case; NULL: not checked */
    const char          *typ;

    /* required "iss"; NULL: not checked */
    const char          *iss;

    /* required in "aud", a string or an array of strings; NULL: not checked */
    const char          *aud;

    long                 leeway;     /* seconds of clock skew, >= 0 */
    long long            now;        /* unix time */

    /* longer tokens are refused before anything else; 0: UM_JWT_MAX_LEN */
    size_t               max_len;
} um_jwt_verify_t;


#define UM_JWT_OK                 0
#define UM_JWT_MALFORMED         -1
#define UM_JWT_TOO_LONG          -2
#define UM_JWT_UNSUPPORTED_ALG   -3
#define UM_JWT_UNKNOWN_KEY       -4
#define UM_JWT_ALG_MISMATCH      -5
#define UM_JWT_BAD_SIGNATURE     -6
#define UM_JWT_WRONG_TYPE        -7
#define UM_JWT_EXPIRED           -8
#define UM_JWT_NOT_YET_VALID     -9
#define UM_JWT_ISSUED_IN_FUTURE  -10
#define UM_JWT_WRONG_ISSUER      -11
#define UM_JWT_WRONG_AUDIENCE    -12
#define UM_JWT_MISSING_EXP       -13
#define UM_JWT_MISSING_SUB       -14


/*
 * Verifies token[0..len) (no NUL needed).  Returns UM_JWT_OK and a new
 * reference to the claims object in *payload (if payload is not NULL), or a
 * negative UM_JWT_ code and a static string saying why in *reason (if
 * reason is not NULL): "malformed", "too long", "unsupported algorithm",
 * "unknown key", "algorithm does not match key", "bad signature",
 * "wrong type", "expired", "not yet valid", "issued in the future",
 * "wrong issuer", "wrong audience", "missing exp", "missing sub".
 *
 * In order: at most max_len bytes; three strict base64url parts; the header
 * an object with a known "alg" ("none" is unsupported), no "crit" (no
 * extension is understood: "malformed"), a string "kid" if any, "typ" as
 * opts->typ; the key is the one "kid" names, or without "kid" every key of
 * the header's algorithm in turn, and its algorithm must be the header's;
 * the signature; then the claims: an object, a numeric "exp" with
 * now <= exp + leeway, "nbf" and "iat" (if present, numeric) <= now +
 * leeway, a non-empty string "sub", then "iss" and "aud" when opts ask.
 */
int um_jwt_verify(const char *token, size_t len, const um_jwt_verify_t *opts,
    json_t **payload, const char **reason);


/*
 * {"keys":[...]}: the public JWKs (RFC 7517) of the asymmetric keys, with
 * "kty", "kid", "use":"sig", "alg" and "n","e" (RSA), "crv","x","y" (EC) or
 * "crv","x" (OKP).  HMAC keys and private parts never appear.  A new
 * reference, or NULL when out of memory.
 */
json_t *um_jwt_jwks(const um_jwt_key_t *keys, size_t nkeys);


#endif /* _UM_JWT_H_INCLUDED_ */
