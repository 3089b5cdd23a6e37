/*
 * Passwords: argon2id hashes in PHC strings.
 *
 * Pure C, no nginx: hashing blocks for tens of milliseconds, so the module
 * calls these from a thread task, never from the event loop.
 */

#ifndef _UM_PASSWORD_H_INCLUDED_
#define _UM_PASSWORD_H_INCLUDED_

#include <stddef.h>
#include <stdint.h>


typedef struct {
    uint32_t  m_kib;             /* memory, KiB */
    uint32_t  t;                 /* passes over the memory */
    uint32_t  p;                 /* lanes */
} um_argon2_params_t;

/* OWASP Password Storage Cheat Sheet: 19 MiB, two passes, one lane */
#define UM_ARGON2_OWASP  { 19456, 2, 1 }

/* "$argon2id$v=19$m=4294967295,t=4294967295,p=16777215$" + 22 + 1 + 43 */
#define UM_PASSWORD_HASH_MAX  128


/*
 * argon2id with a 16-byte random salt and a 32-byte hash, written as
 * "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (unpadded base64) and a
 * NUL into out.  params NULL means UM_ARGON2_OWASP.  Returns 0, or -1 when
 * outlen is too small, the parameters are out of range, or there is no
 * randomness or memory.
 */
int um_password_hash(const char *pw, size_t len,
    const um_argon2_params_t *params, char *out, size_t outlen);

/*
 * 1 when pw matches the PHC string, 0 when it does not, -1 when the string
 * is not "$argon2id$v=19$..." with sane parameters, or memory runs out.
 * The comparison is argon2's constant-time one.
 */
int um_password_verify(const char *pw, size_t len, const char *phc);

/*
 * 1 when the PHC string should be replaced at the next successful login:
 * other parameters, a salt under 16 bytes, a hash not of 32 bytes, not
 * argon2id v=19, or not parseable at all.  0 when it is current.
 */
int um_password_needs_rehash(const char *phc,
    const um_argon2_params_t *params);


#endif /* _UM_PASSWORD_H_INCLUDED_ */
