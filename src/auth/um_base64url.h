/*
 * base64url without padding (RFC 4648 section 5, RFC 7515 appendix C), the
 * encoding of every part of a JSON Web Token.  Pure functions over bytes: no
 * nginx, no allocation.
 */

#ifndef _UM_BASE64URL_H_INCLUDED_
#define _UM_BASE64URL_H_INCLUDED_

#include <stddef.h>


/* characters that encode n bytes, without padding */
size_t um_base64url_encoded_len(size_t n);

/* at most this many bytes come out of n characters */
size_t um_base64url_decoded_len(size_t n);

/*
 * Writes um_base64url_encoded_len(n) characters to dst (no '=', no NUL);
 * returns their number.
 */
size_t um_base64url_encode(unsigned char *dst, const unsigned char *src,
    size_t n);

/*
 * Strict decoding: only A-Z a-z 0-9 '-' '_', no padding, no whitespace, and
 * the unused low bits of the last character must be zero, so that a given
 * byte string has exactly one encoding (a token cannot be altered without
 * its signature check seeing it).  dst needs um_base64url_decoded_len(n)
 * bytes.  Returns the decoded length, or (size_t) -1.
 */
size_t um_base64url_decode(unsigned char *dst, const unsigned char *src,
    size_t n);


#endif /* _UM_BASE64URL_H_INCLUDED_ */
