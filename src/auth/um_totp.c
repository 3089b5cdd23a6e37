/*
 * TOTP on liboath: the one-time codes come from oath_totp_generate2(), the
 * comparison, the window and the replay rule are ours, so that the work
 * done does not depend on which step matched, or whether one did.
 */

#include <string.h>

#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "um_totp.h"


#define UM_TOTP_CANDIDATES  (2 * UM_TOTP_WINDOW + 1)

#define um_totp_str(n)      um_totp_str2(n)
#define um_totp_str2(n)     #n

/* what the URI says of the fixed parameters, after the secret and issuer */
#define UM_TOTP_PARAMS                                                      \
    "&algorithm=SHA1&digits=" um_totp_str(UM_TOTP_DIGITS)                   \
    "&period=" um_totp_str(UM_TOTP_STEP)


static int um_totp_is_code(const char *code);
static size_t um_totp_escape(char *dst, const char *src);
static char *um_totp_copy(char *dst, const char *src);


int
um_totp_init(void)
{
    return oath_init() == OATH_OK ? 0 : -1;
}


int
um_totp_secret_new(unsigned char secret[UM_TOTP_SECRET_LEN])
{
    return RAND_bytes(secret, UM_TOTP_SECRET_LEN) == 1 ? 0 : -1;
}


/*
 * RFC 4648 section 6.  20 bytes are 160 bits, exactly 32 characters of 5
 * bits: there is never a partial group, hence never padding.
 */
void
um_totp_base32(const unsigned char secret[UM_TOTP_SECRET_LEN],
    char out[UM_TOTP_BASE32_LEN + 1])
{
    int          bits;
    size_t       i, n;
    unsigned     acc;
    static const char  alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < UM_TOTP_SECRET_LEN; i++) {
        acc = (acc << 8) | secret[i];
        bits += 8;

        while (bits >= 5) {
            bits -= 5;
            out[n++] = alphabet[(acc >> bits) & 0x1f];
        }
    }

    out[n] = '\0';
}


int
um_totp_uri(const char *issuer, const char *account,
    const char base32[UM_TOTP_BASE32_LEN + 1], char *out, size_t size)
{
    char    *p;
    size_t   len;

    if (issuer != NULL && issuer[0] == '\0') {
        issuer = NULL;
    }

    len = sizeof("otpauth://totp/") - 1 + um_totp_escape(NULL, account)
          + sizeof("?secret=") - 1 + strlen(base32)
          + sizeof(UM_TOTP_PARAMS) - 1;

    if (issuer != NULL) {
        len += 2 * um_totp_escape(NULL, issuer) + sizeof(":&issuer=") - 1;
    }

    if (len >= size) {
        return -1;
    }

    p = out;
    p = um_totp_copy(p, "otpauth://totp/");

    if (issuer != NULL) {
        p += um_totp_escape(p, issuer);
        *p++ = ':';
    }

    p += um_totp_escape(p, account);
    p = um_totp_copy(p, "?secret=");
    p = um_totp_copy(p, base32);

    if (issuer != NULL) {
        p = um_totp_copy(p, "&issuer=");
        p += um_totp_escape(p, issuer);
    }

    p = um_totp_copy(p, UM_TOTP_PARAMS);
    *p = '\0';

    return (int) (p - out);
}


long long
um_totp_check(const unsigned char secret[UM_TOTP_SECRET_LEN],
    const char *code, time_t now, long long last_step)
{
    int        i, rc;
    char       otp[UM_TOTP_DIGITS + 1];
    long long  step, first, matched;

    if (code == NULL || !um_totp_is_code(code)) {
        return UM_TOTP_MALFORMED;
    }

    first = (long long) (now / UM_TOTP_STEP) - UM_TOTP_WINDOW;
    matched = UM_TOTP_NO_MATCH;

    /*
     * Every candidate step is computed and compared, whichever matches.
     * Two steps can give the same code (one chance in a million): the
     * later one wins, so a code used at one step and shown again at the
     * next is accepted for the next, not called a replay.
     */

    for (i = 0; i < UM_TOTP_CANDIDATES; i++) {
        step = first + i;

        if (step < 0) {
            continue;
        }

        rc = oath_totp_generate2((const char *) secret, UM_TOTP_SECRET_LEN,
                                 (time_t) (step * UM_TOTP_STEP), UM_TOTP_STEP,
                                 OATH_TOTP_DEFAULT_START_TIME, UM_TOTP_DIGITS,
                                 0, otp);

        if (rc == OATH_OK
            && CRYPTO_memcmp(otp, code, UM_TOTP_DIGITS) == 0)
        {
            matched = step;
        }
    }

    OPENSSL_cleanse(otp, sizeof(otp));

    if (matched == UM_TOTP_NO_MATCH) {
        return UM_TOTP_NO_MATCH;
    }

    return matched <= last_step ? UM_TOTP_REPLAYED : matched;
}


static int
um_totp_is_code(const char *code)
{
    int  i;

    for (i = 0; i < UM_TOTP_DIGITS; i++) {
        if (code[i] < '0' || code[i] > '9') {
            return 0;
        }
    }

    return code[UM_TOTP_DIGITS] == '\0';
}


/*
 * RFC 3986 percent-encoding: all but the unreserved characters.  With dst
 * NULL, only counts the characters it would write.
 */
static size_t
um_totp_escape(char *dst, const char *src)
{
    size_t             n;
    unsigned char      c;
    static const char  hex[] = "0123456789ABCDEF";

    n = 0;

    while (*src != '\0') {
        c = (unsigned char) *src++;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~')
        {
            if (dst != NULL) {
                dst[n] = (char) c;
            }

            n++;
            continue;
        }

        if (dst != NULL) {
            dst[n] = '%';
            dst[n + 1] = hex[c >> 4];
            dst[n + 2] = hex[c & 0x0f];
        }

        n += 3;
    }

    return n;
}


static char *
um_totp_copy(char *dst, const char *src)
{
    size_t  n;

    n = strlen(src);
    memcpy(dst, src, n);

    return dst + n;
}
