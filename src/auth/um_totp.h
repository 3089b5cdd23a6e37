/*
 * Time-based one-time passwords (RFC 6238) on top of liboath: 160-bit
 * secrets, 30-second steps, 6 digits, HMAC-SHA-1, one step of drift
 * either way.  A code is identified by its step number, so a caller that
 * remembers the last accepted step refuses a replayed code.
 *
 * Nothing here knows about nginx: plain C types, testable alone.
 */

#ifndef _UM_TOTP_H_INCLUDED_
#define _UM_TOTP_H_INCLUDED_

#include <stddef.h>
#include <time.h>


#define UM_TOTP_SECRET_LEN   20     /* bytes: 160 bits */
#define UM_TOTP_BASE32_LEN   32     /* base32 of 20 bytes, no padding */
#define UM_TOTP_DIGITS       6
#define UM_TOTP_STEP         30     /* seconds */
#define UM_TOTP_WINDOW       1      /* steps accepted either side */

#define UM_TOTP_NO_MATCH    (-1)
#define UM_TOTP_REPLAYED    (-2)
#define UM_TOTP_MALFORMED   (-3)


/* once per process, before any other call; 0 or -1 */
int um_totp_init(void);

/* a new random secret from the OpenSSL CSPRNG; 0 or -1 */
int um_totp_secret_new(unsigned char secret[UM_TOTP_SECRET_LEN]);

/* RFC 4648 base32 (upper case, no padding) of a secret, NUL-terminated */
void um_totp_base32(const unsigned char secret[UM_TOTP_SECRET_LEN],
    char out[UM_TOTP_BASE32_LEN + 1]);

/*
 * The otpauth:// URI an authenticator app reads (the Key Uri Format of
 * Google Authenticator): otpauth://totp/ISSUER:ACCOUNT?secret=...&
 * issuer=...&algorithm=SHA1&digits=6&period=30, issuer and account
 * percent-encoded (all but RFC 3986 unreserved characters).  With issuer
 * NULL or empty, the label is the account alone and there is no issuer
 * parameter.  Writes at most size bytes including the NUL; returns the
 * length, or -1 when it does not fit.
 */
int um_totp_uri(const char *issuer, const char *account,
    const char base32[UM_TOTP_BASE32_LEN + 1], char *out, size_t size);

/*
 * Checks code (exactly 6 ASCII digits) at time now against the steps
 * now/30 - 1 .. now/30 + 1.  Returns the step number it matched (>= 0);
 * UM_TOTP_REPLAYED when it matched a step <= last_step (pass -1 when no
 * code was accepted yet); UM_TOTP_NO_MATCH; UM_TOTP_MALFORMED when code
 * is not 6 digits.  Constant work whatever the code.
 */
long long um_totp_check(const unsigned char secret[UM_TOTP_SECRET_LEN],
    const char *code, time_t now, long long last_step);


#endif /* _UM_TOTP_H_INCLUDED_ */
