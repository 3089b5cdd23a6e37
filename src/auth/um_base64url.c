#include "um_base64url.h"


static int um_base64url_value(unsigned char c);


static const char  um_base64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


size_t
um_base64url_encoded_len(size_t n)
{
    /* 4 characters per 3 bytes; 1 or 2 bytes left take 2 or 3 characters */
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}


size_t
um_base64url_decoded_len(size_t n)
{
    return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}


size_t
um_base64url_encode(unsigned char *dst, const unsigned char *src, size_t n)
{
    unsigned char  *d;

    d = dst;

    while (n >= 3) {
        *d++ = um_base64url_alphabet[src[0] >> 2];
        *d++ = um_base64url_alphabet[((src[0] & 0x03) << 4) | (src[1] >> 4)];
        *d++ = um_base64url_alphabet[((src[1] & 0x0f) << 2) | (src[2] >> 6)];
        *d++ = um_base64url_alphabet[src[2] & 0x3f];

        src += 3;
        n -= 3;
    }

    if (n == 1) {
        *d++ = um_base64url_alphabet[src[0] >> 2];
        *d++ = um_base64url_alphabet[(src[0] & 0x03) << 4];

    } else if (n == 2) {
        *d++ = um_base64url_alphabet[src[0] >> 2];
        *d++ = um_base64url_alphabet[((src[0] & 0x03) << 4) | (src[1] >> 4)];
        *d++ = um_base64url_alphabet[(src[1] & 0x0f) << 2];
    }

    return d - dst;
}


size_t
um_base64url_decode(unsigned char *dst, const unsigned char *src, size_t n)
{
    int             a, b, c, e;
    unsigned char  *d;

    /* a single character left over carries only 6 bits: not a byte */
    if (n % 4 == 1) {
        return (size_t) -1;
    }

    d = dst;

    while (n >= 4) {
        a = um_base64url_value(src[0]);
        b = um_base64url_value(src[1]);
        c = um_base64url_value(src[2]);
        e = um_base64url_value(src[3]);

        if ((a | b | c | e) < 0) {
            return (size_t) -1;
        }

        *d++ = (unsigned char) (a << 2 | b >> 4);
        *d++ = (unsigned char) (b << 4 | c >> 2);
        *d++ = (unsigned char) (c << 6 | e);

        src += 4;
        n -= 4;
    }

    if (n == 0) {
        return d - dst;
    }

    a = um_base64url_value(src[0]);
    b = um_base64url_value(src[1]);
    c = (n == 3) ? um_base64url_value(src[2]) : 0;

    if ((a | b | c) < 0) {
        return (size_t) -1;
    }

    /*
     * The bits of the last character that fall beyond the last byte must be
     * zero: "Zg" is the only encoding of "f", "Zh" is refused.
     */

    if (n == 2) {
        if (b & 0x0f) {
            return (size_t) -1;
        }

        *d++ = (unsigned char) (a << 2 | b >> 4);

    } else {
        if (c & 0x03) {
            return (size_t) -1;
        }

        *d++ = (unsigned char) (a << 2 | b >> 4);
        *d++ = (unsigned char) (b << 4 | c >> 2);
    }

    return d - dst;
}


static int
um_base64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '-') {
        return 62;
    }

    if (c == '_') {
        return 63;
    }

    return -1;
}
