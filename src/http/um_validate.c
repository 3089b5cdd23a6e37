#include "um_validate.h"


static long um_utf8_next(const unsigned char **p, const unsigned char *last);
static int um_is_letter(long cp);


int
um_is_uuid(const unsigned char *p, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len != 36) {
        return 0;
    }

    for (i = 0; i < 36; i++) {
        c = p[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return 0;
            }

            continue;
        }

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
              || (c >= 'A' && c <= 'F')))
        {
            return 0;
        }
    }

    return 1;
}


int
um_is_text(const unsigned char *p, size_t len)
{
    const unsigned char  *last;

    last = p + len;

    while (p < last) {
        if (um_utf8_next(&p, last) <= 0) {
            return 0;
        }
    }

    return 1;
}


size_t
um_text_length(const unsigned char *p, size_t len)
{
    size_t                n;
    const unsigned char  *last;

    last = p + len;
    n = 0;

    while (p < last) {
        if (um_utf8_next(&p, last) < 0) {
            return (size_t) -1;
        }

        n++;
    }

    return n;
}


int
um_is_email(const unsigned char *p, size_t len)
{
    size_t  i, at, dot;

    if (len < 3 || len > 255) {
        return 0;
    }

    at = len;
    dot = 0;

    for (i = 0; i < len; i++) {

        if (p[i] <= ' ' || p[i] == 0x7f || p[i] == '"' || p[i] == '('
            || p[i] == ')' || p[i] == ',' || p[i] == ':' || p[i] == ';'
            || p[i] == '<' || p[i] == '>' || p[i] == '[' || p[i] == ']'
            || p[i] == '\\')
        {
            return 0;
        }

        if (p[i] == '@') {
            if (at != len) {
                return 0;
            }

            at = i;

        } else if (p[i] == '.' && at != len) {
            if (i == at + 1 || i == len - 1 || p[i - 1] == '.') {
                return 0;
            }

            dot = i;
        }
    }

    /* a local part of 1..64 bytes and a domain with a dot in it */
    if (at == 0 || at == len || at > 64 || dot == 0) {
        return 0;
    }

    return um_is_text(p, len);
}


int
um_is_e164(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len < 3 || len > 16 || p[0] != '+' || p[1] < '1' || p[1] > '9') {
        return 0;
    }

    for (i = 2; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
    }

    return 1;
}


int
um_is_slug(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 50) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')) {
            continue;
        }

        if (i > 0 && (p[i] == '-' || p[i] == '_')) {
            continue;
        }

        return 0;
    }

    return 1;
}


int
um_is_name(const unsigned char *p, size_t len, size_t max)
{
    long                  cp;
    size_t                n;
    int                   prev_letter;
    const unsigned char  *last;

    last = p + len;
    n = 0;
    prev_letter = 0;

    while (p < last) {
        cp = um_utf8_next(&p, last);

        if (cp <= 0) {
            return 0;
        }

        n++;

        if (um_is_letter(cp)) {
            prev_letter = 1;
            continue;
        }

        /* combining marks follow a letter */
        if (cp >= 0x300 && cp <= 0x36f && prev_letter) {
            continue;
        }

        /* a separator sits between letters */
        if ((cp == ' ' || cp == '-' || cp == '\'' || cp == '.'
             || cp == 0x2019)
            && prev_letter && (p < last || cp == '.'))
        {
            prev_letter = (cp == '.');
            continue;
        }

        return 0;
    }

    return n >= 1 && n <= max && prev_letter;
}


/*
 * Decodes one code point and advances; -1 for malformed input, 0 for NUL.
 */
static long
um_utf8_next(const unsigned char **p, const unsigned char *last)
{
    long                  cp, min;
    size_t                n, i;
    const unsigned char  *s;

    s = *p;

    if (*s < 0x80) {
        (*p)++;
        return *s;
    }

    if ((*s & 0xe0) == 0xc0) {
        n = 1;
        cp = *s & 0x1f;
        min = 0x80;

    } else if ((*s & 0xf0) == 0xe0) {
        n = 2;
        cp = *s & 0x0f;
        min = 0x800;

    } else if ((*s & 0xf8) == 0xf0) {
        n = 3;
        cp = *s & 0x07;
        min = 0x10000;

    } else {
        return -1;
    }

    if ((size_t) (last - s) <= n) {
        return -1;
    }

    for (i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return -1;
        }

        cp = (cp << 6) | (s[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return -1;
    }

    *p = s + n + 1;

    return cp;
}


/* letters of the scripts people write names in */
static int
um_is_letter(long cp)
{
    static const long  ranges[][2] = {
        { 'A', 'Z' }, { 'a', 'z' },
        { 0x00c0, 0x00d6 }, { 0x00d8, 0x00f6 }, { 0x00f8, 0x024f },
        { 0x0250, 0x02af },                     /* IPA extensions */
        { 0x0370, 0x03ff },                     /* Greek */
        { 0x0400, 0x052f },                     /* Cyrillic */
        { 0x0531, 0x0587 },                     /* Armenian */
        { 0x05d0, 0x05ea },                     /* Hebrew */
        { 0x0620, 0x064a }, { 0x066e, 0x06d3 }, /* Arabic */
        { 0x0900, 0x0dff },                     /* Indic scripts */
        { 0x0e00, 0x0e7f },                     /* Thai */
        { 0x10a0, 0x10ff },                     /* Georgian */
        { 0x1100, 0x11ff },                     /* Hangul Jamo */
        { 0x1e00, 0x1fff },                     /* Latin and Greek ext. */
        { 0x3040, 0x30ff },                     /* Hiragana, Katakana */
        { 0x3400, 0x4dbf }, { 0x4e00, 0x9fff }, /* CJK */
        { 0xac00, 0xd7a3 },                     /* Hangul */
        { 0xf900, 0xfaff },                     /* CJK compatibility */
        { 0x20000, 0x2fa1f }                    /* CJK extensions */
    };

    size_t  i;

    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) {
            return cp != 0x00d7 && cp != 0x00f7;
        }
    }

    return 0;
}
