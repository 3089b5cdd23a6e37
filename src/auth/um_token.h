/*
 * Opaque tokens (refresh tokens, reset links, verification links): 256 bits
 * from the OpenSSL CSPRNG, given to the client in base64url and stored
 * only as the SHA-256 of that text.
 */

#ifndef _UM_TOKEN_H_INCLUDED_
#define _UM_TOKEN_H_INCLUDED_

#include <stddef.h>


#define UM_TOKEN_LEN       43      /* base64url of 32 bytes */
#define UM_TOKEN_HASH_LEN  64      /* hex of SHA-256 */


/* token and hash get NUL-terminated text; 0 or -1 */
int um_token_new(char token[UM_TOKEN_LEN + 1],
    char hash[UM_TOKEN_HASH_LEN + 1]);

/* the stored form of a token a client presents */
void um_token_hash(const char *token, size_t len,
    char hash[UM_TOKEN_HASH_LEN + 1]);

/* a random RFC 4122 version 4 UUID as text */
int um_uuid_v4(char out[37]);


#endif /* _UM_TOKEN_H_INCLUDED_ */
