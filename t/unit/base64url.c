/* unit-sources: src/auth/um_base64url.c */

/* mkdtemp(), popen() */
#define _POSIX_C_SOURCE  200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/um_base64url.h"
#include "tap.h"

#define S(s)  (const unsigned char *) (s), strlen(s)


static int encodes_to(const char *in, const char *out);
static int decodes_to(const char *in, const char *out);
static int refused(const char *in);
static int matches_openssl(const char *dir, const unsigned char *p,
    size_t n);


int
main(void)
{
    int            agree;
    char           dir[256], cmd[600];
    size_t         n, i;
    const char    *tmp;
    unsigned char  buf[300];

    /* RFC 4648 section 10 */
    ok(encodes_to("", ""), "encode empty");
    ok(encodes_to("f", "Zg"), "encode f");
    ok(encodes_to("fo", "Zm8"), "encode fo");
    ok(encodes_to("foo", "Zm9v"), "encode foo");
    ok(encodes_to("foob", "Zm9vYg"), "encode foob");
    ok(encodes_to("fooba", "Zm9vYmE"), "encode fooba");
    ok(encodes_to("foobar", "Zm9vYmFy"), "encode foobar");

    ok(decodes_to("", ""), "decode empty");
    ok(decodes_to("Zg", "f"), "decode f");
    ok(decodes_to("Zm8", "fo"), "decode fo");
    ok(decodes_to("Zm9v", "foo"), "decode foo");
    ok(decodes_to("Zm9vYg", "foob"), "decode foob");
    ok(decodes_to("Zm9vYmE", "fooba"), "decode fooba");
    ok(decodes_to("Zm9vYmFy", "foobar"), "decode foobar");

    /* the two characters that differ from base64 */
    ok(encodes_to("\xfb\xff", "-_8"), "encode uses - and _");
    ok(decodes_to("-_8", "\xfb\xff"), "decode - and _");

    /* RFC 7515 appendix A.1: the JOSE header of the example */
    ok(decodes_to("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
                  "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}"),
       "decode RFC 7515 A.1 header");

    /* strictness */
    ok(refused("Zg=="), "padding refused");
    ok(refused("Zm8="), "single padding refused");
    ok(refused("+_8"), "'+' refused");
    ok(refused("-/8"), "'/' refused");
    ok(refused("Zm9v\nYg"), "newline refused");
    ok(refused(" Zm9"), "leading space refused");
    ok(refused("Zm9 "), "trailing space refused");
    ok(refused("Z"), "one character refused");
    ok(refused("Zm9vY"), "length 4n+1 refused");
    ok(refused("Zh"), "non-zero unused bits (2 chars) refused");
    ok(refused("Zm9"), "non-zero unused bits (3 chars) refused");
    ok(refused("Zm.v"), "'.' refused");
    ok(um_base64url_decode(buf, (const unsigned char *) "Zm\0v", 4)
       == (size_t) -1, "NUL refused");
    ok(refused("Zm\xc3\xa9"), "non-ASCII refused");

    ok(um_base64url_encoded_len(0) == 0 && um_base64url_encoded_len(1) == 2
       && um_base64url_encoded_len(2) == 3
       && um_base64url_encoded_len(3) == 4
       && um_base64url_encoded_len(32) == 43
       && um_base64url_encoded_len(64) == 86,
       "encoded lengths");
    ok(um_base64url_decoded_len(43) == 32 && um_base64url_decoded_len(86) == 64
       && um_base64url_decoded_len(4) == 3, "decoded lengths");

    /* every length from 0 to 100 against openssl's base64, and back */
    tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/um-b64-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return done_testing();
    }

    srand(7);
    agree = 1;

    for (n = 0; n <= 100; n++) {
        for (i = 0; i < n; i++) {
            buf[i] = (unsigned char) rand();
        }

        if (!matches_openssl(dir, buf, n)) {
            agree = 0;
            printf("# length %zu differs\n", n);
        }
    }

    ok(agree, "101 random strings encode as openssl base64 does, "
              "and decode back");

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);

    ok(system(cmd) == 0, "scratch removed");

    return done_testing();
}


static int
encodes_to(const char *in, const char *out)
{
    size_t         n;
    unsigned char  buf[100];

    n = um_base64url_encode(buf, S(in));

    return n == strlen(out) && n == um_base64url_encoded_len(strlen(in))
           && memcmp(buf, out, n) == 0;
}


static int
decodes_to(const char *in, const char *out)
{
    size_t         n;
    unsigned char  buf[100];

    n = um_base64url_decode(buf, S(in));

    return n == strlen(out) && n <= um_base64url_decoded_len(strlen(in))
           && memcmp(buf, out, n) == 0;
}


static int
refused(const char *in)
{
    unsigned char  buf[100];

    return um_base64url_decode(buf, S(in)) == (size_t) -1;
}


/*
 * openssl base64 is the oracle: its output with '+' '/' turned into '-' '_'
 * and '=' dropped must be ours, and ours must decode to the input.
 */
static int
matches_openssl(const char *dir, const unsigned char *p, size_t n)
{
    int            c;
    char           path[300], cmd[700];
    FILE          *f;
    size_t         len, i;
    unsigned char  theirs[200], ours[200], back[200];

    snprintf(path, sizeof(path), "%s/in.bin", dir);

    f = fopen(path, "wb");
    if (f == NULL) {
        return 0;
    }

    if (fwrite(p, 1, n, f) != n) {
        fclose(f);
        return 0;
    }

    fclose(f);

    snprintf(cmd, sizeof(cmd), "openssl base64 -A -in '%s'", path);

    f = popen(cmd, "r");
    if (f == NULL) {
        return 0;
    }

    len = 0;

    while ((c = fgetc(f)) != EOF && len < sizeof(theirs)) {
        if (c == '=' || c == '\n') {
            continue;
        }

        theirs[len++] = (unsigned char) (c == '+' ? '-' : c == '/' ? '_' : c);
    }

    if (pclose(f) != 0) {
        return 0;
    }

    if (um_base64url_encode(ours, p, n) != len
        || memcmp(ours, theirs, len) != 0)
    {
        return 0;
    }

    i = um_base64url_decode(back, ours, len);

    return i == n && memcmp(back, p, n) == 0;
}
