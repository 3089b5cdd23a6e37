/*
 * Passwords: argon2id hashes in PHC strings, and the NIST SP 800-63B
 * acceptance policy (length, blocklist, no composition rules).
 *
 * Pure C, no nginx: hashing blocks for tens of milliseconds, so the module
 * calls these from a thread task, never from the event loop.  The blocklist
 * is loaded at configuration time and only read afterwards, so any number
 * of threads may look words up in it at once.
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


/* a set of lower-cased words */
typedef struct um_pw_blocklist_s  um_pw_blocklist_t;

/*
 * Reads one word per line (blocking; meant for configuration time).
 * Surrounding blanks and a CR are trimmed; empty lines and lines starting
 * with '#' are skipped; ASCII letters are lower-cased.  Returns NULL with
 * a sentence in err on failure.
 */
um_pw_blocklist_t *um_pw_blocklist_load(const char *path, char *err,
    size_t errlen);
void um_pw_blocklist_free(um_pw_blocklist_t *bl);

/* distinct words */
size_t um_pw_blocklist_size(const um_pw_blocklist_t *bl);

/* 1 when the word is in the set, ignoring ASCII case; never allocates */
int um_pw_blocklist_has(const um_pw_blocklist_t *bl, const char *word,
    size_t len);


/*
 * NIST SP 800-63B acceptance.  NULL when pw is acceptable, otherwise the
 * name of the first rule it breaks, checked in this order:
 *
 *   "format"             not UTF-8 text, or a control character (C0, DEL,
 *                        C1) in it
 *   "min_length"         fewer than min_len code points
 *   "max_length"         more than max_len code points
 *   "common"             in the blocklist; or, without its trailing digits
 *                        and punctuation, a blocklisted word of at least
 *                        4 code points ("Password123!", "dragon2024")
 *   "repetitive"         a unit repeated at least twice: "aaaaaaaa",
 *                        "abcabcabc", "hellohello"
 *   "sequential"         one run of consecutive code points up or down
 *                        ("12345678", "hgfedcba") or along a keyboard row
 *                        ("qwertyui", "0987654321")
 *   "contains_identity"  equals the email, its local part or the username,
 *                        or contains the email, or contains the local part
 *                        or the username when those have 4 code points
 *
 * Letters are compared without regard to ASCII case.  bl, email and
 * username may be NULL.  No composition rules: NIST forbids them.
 */
const char *um_password_policy(const char *pw, size_t len, size_t min_len,
    size_t max_len, const um_pw_blocklist_t *bl, const char *email,
    const char *username);

/*
 * A sentence for a rule name from um_password_policy(), for the error
 * answer; no format directives in it.  NULL for NULL.
 */
const char *um_password_rule_message(const char *rule);


#endif /* _UM_PASSWORD_H_INCLUDED_ */
