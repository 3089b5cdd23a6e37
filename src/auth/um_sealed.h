/*
 * Secrets at rest (TOTP secrets): AES-256-GCM with a random 96-bit nonce,
 * bound to a context (the owner's id) as additional data, so a sealed
 * value copied to another row does not open.  The sealed text is
 *
 *     "v1." base64url(nonce(12) || ciphertext || tag(16))
 *
 * Nothing here knows about nginx: plain C types, testable alone.
 */

#ifndef _UM_SEALED_H_INCLUDED_
#define _UM_SEALED_H_INCLUDED_

#include <stddef.h>


#define UM_SEALED_KEY_LEN  32

/* the length of the sealed text of len bytes, without the NUL */
#define um_sealed_len(len)                                                  \
    (3 + (((12 + (len) + 16) * 4 + 2) / 3))


/*
 * Reads a key file: 32 raw bytes, or 64 hex digits (a trailing newline
 * allowed).  0, or -1 with a reason in err (static text); when the file
 * cannot be opened or read, errno says why.
 */
int um_sealed_key_load(const char *path, unsigned char key[UM_SEALED_KEY_LEN],
    const char **err);

/* seals len bytes into out (um_sealed_len(len) + 1 bytes); 0 or -1 */
int um_sealed_seal(const unsigned char key[UM_SEALED_KEY_LEN],
    const char *context, const unsigned char *in, size_t len, char *out);

/*
 * Opens a sealed text of text_len bytes into out (at most size bytes);
 * returns the length, or -1 when it is malformed, sealed with another key
 * or another context, or altered.
 */
int um_sealed_open(const unsigned char key[UM_SEALED_KEY_LEN],
    const char *context, const char *text, size_t text_len,
    unsigned char *out, size_t size);


#endif /* _UM_SEALED_H_INCLUDED_ */
