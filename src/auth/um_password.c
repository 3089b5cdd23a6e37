/*
 * Password hashing: argon2id, PHC strings.
 */

#include <string.h>

#include <argon2.h>
#include <openssl/rand.h>

#include "um_password.h"


#define UM_PW_SALT_LEN      16
#define UM_PW_HASH_LEN      32

/*
 * Bounds on what a stored PHC string may ask of verify: a tampered or
 * corrupt row must not make one login allocate gigabytes or spin for
 * minutes.  Far above any sane configuration.
 */
#define UM_PW_VERIFY_M_MAX  (1024 * 1024)           /* KiB: 1 GiB */
#define UM_PW_VERIFY_T_MAX  64
#define UM_PW_VERIFY_P_MAX  64
#define UM_PW_B64_MAX       86                      /* 64 bytes */

/* the parts of "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH" */
typedef struct {
    uint32_t     m;
    uint32_t     t;
    uint32_t     p;
    size_t       salt_bytes;
    size_t       hash_bytes;
} um_pw_phc_t;

static int um_pw_phc_parse(const char *phc, um_pw_phc_t *h);
static const char *um_pw_parse_u32(const char *s, uint32_t *v);
static const char *um_pw_parse_b64(const char *s, size_t *bytes);


int
um_password_hash(const char *pw, size_t len,
    const um_argon2_params_t *params, char *out, size_t outlen)
{
    int                 rc;
    unsigned char       salt[UM_PW_SALT_LEN];
    um_argon2_params_t  owasp = UM_ARGON2_OWASP;

    if (params == NULL) {
        params = &owasp;
    }

    if (out == NULL || outlen == 0) {
        return -1;
    }

    out[0] = '\0';

    if ((uint64_t) len > ARGON2_MAX_PWD_LENGTH) {
        return -1;
    }

    if (outlen < argon2_encodedlen(params->t, params->m_kib, params->p,
                                   UM_PW_SALT_LEN, UM_PW_HASH_LEN,
                                   Argon2_id))
    {
        return -1;
    }

    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        return -1;
    }

    rc = argon2_hash(params->t, params->m_kib, params->p, pw, len,
                     salt, sizeof(salt), NULL, UM_PW_HASH_LEN, out, outlen,
                     Argon2_id, ARGON2_VERSION_13);

    if (rc != ARGON2_OK) {
        out[0] = '\0';
        return -1;
    }

    return 0;
}


int
um_password_verify(const char *pw, size_t len, const char *phc)
{
    int          rc;
    um_pw_phc_t  h;

    if (phc == NULL || um_pw_phc_parse(phc, &h) != 0) {
        return -1;
    }

    if (h.m > UM_PW_VERIFY_M_MAX || h.t > UM_PW_VERIFY_T_MAX
        || h.p > UM_PW_VERIFY_P_MAX || (uint64_t) len > ARGON2_MAX_PWD_LENGTH)
    {
        return -1;
    }

    /* decodes the string again, hashes, and compares in constant time */
    rc = argon2_verify(phc, pw, len, Argon2_id);

    if (rc == ARGON2_OK) {
        return 1;
    }

    if (rc == ARGON2_VERIFY_MISMATCH) {
        return 0;
    }

    return -1;
}


int
um_password_needs_rehash(const char *phc, const um_argon2_params_t *params)
{
    um_pw_phc_t         h;
    um_argon2_params_t  owasp = UM_ARGON2_OWASP;

    if (params == NULL) {
        params = &owasp;
    }

    if (phc == NULL || um_pw_phc_parse(phc, &h) != 0) {
        return 1;
    }

    return h.m != params->m_kib || h.t != params->t || h.p != params->p
           || h.salt_bytes < UM_PW_SALT_LEN || h.hash_bytes != UM_PW_HASH_LEN;
}


/*
 * Only the form this module writes is accepted: argon2id, version 1.3
 * ("v=19", not the pre-1.3 form without it), the parameters in the order
 * m, t, p, no keyid or data fields, unpadded base64.
 */
static int
um_pw_phc_parse(const char *phc, um_pw_phc_t *h)
{
    static const char  prefix[] = "$argon2id$v=19$m=";

    const char  *s;

    if (strncmp(phc, prefix, sizeof(prefix) - 1) != 0) {
        return -1;
    }

    s = um_pw_parse_u32(phc + sizeof(prefix) - 1, &h->m);

    if (s == NULL || strncmp(s, ",t=", 3) != 0) {
        return -1;
    }

    s = um_pw_parse_u32(s + 3, &h->t);

    if (s == NULL || strncmp(s, ",p=", 3) != 0) {
        return -1;
    }

    s = um_pw_parse_u32(s + 3, &h->p);

    if (s == NULL || *s != '$') {
        return -1;
    }

    s = um_pw_parse_b64(s + 1, &h->salt_bytes);

    if (s == NULL || *s != '$') {
        return -1;
    }

    s = um_pw_parse_b64(s + 1, &h->hash_bytes);

    if (s == NULL || *s != '\0') {
        return -1;
    }

    /* argon2's own minimums: 8 bytes of salt, 4 of hash */
    if (h->m == 0 || h->t == 0 || h->p == 0 || h->salt_bytes < 8
        || h->hash_bytes < 4)
    {
        return -1;
    }

    return 0;
}


/* a decimal without leading zeros, as argon2 writes them */
static const char *
um_pw_parse_u32(const char *s, uint32_t *v)
{
    uint64_t  n;
    size_t    i;

    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] >= '0'
                                     && s[1] <= '9'))
    {
        return NULL;
    }

    n = 0;

    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        n = n * 10 + (uint64_t) (s[i] - '0');

        if (n > UINT32_MAX) {
            return NULL;
        }
    }

    *v = (uint32_t) n;

    return s + i;
}


static const char *
um_pw_parse_b64(const char *s, size_t *bytes)
{
    size_t  i;

    for (i = 0; (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')
                || (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/';
         i++)
    {
        if (i == UM_PW_B64_MAX) {
            return NULL;
        }
    }

    /* a lone sixth of a byte is no encoding */
    if (i % 4 == 1) {
        return NULL;
    }

    *bytes = i * 3 / 4;

    return s + i;
}
