/*
 * Validators for request input.  Pure functions over bytes: no nginx, no
 * allocation, so the unit tests in t/unit/ exercise them directly.
 */

#ifndef _UM_VALIDATE_H_INCLUDED_
#define _UM_VALIDATE_H_INCLUDED_

#include <stddef.h>


/* 8-4-4-4-12 hexadecimal digits */
int um_is_uuid(const unsigned char *p, size_t len);

/* well-formed UTF-8 (no overlong forms, no surrogates), no NUL byte */
int um_is_text(const unsigned char *p, size_t len);

/* code points in well-formed UTF-8 text */
size_t um_text_length(const unsigned char *p, size_t len);

/* "local@domain.tld", at most 255 bytes, no spaces or control bytes */
int um_is_email(const unsigned char *p, size_t len);

/* E.164: '+', a non-zero digit, at most 15 digits in all */
int um_is_e164(const unsigned char *p, size_t len);

/* lower-case letters, digits, '-' and '_', starting alphanumeric, <= 50 */
int um_is_slug(const unsigned char *p, size_t len);

/*
 * A personal name of 1..max code points: letters of any script, with
 * single spaces, hyphens, apostrophes and periods between them.
 */
int um_is_name(const unsigned char *p, size_t len, size_t max);


#endif /* _UM_VALIDATE_H_INCLUDED_ */
