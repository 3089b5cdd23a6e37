/*
 * TOTP.  oathtool (Debian's "oathtool") is the oracle for the codes, the
 * coreutils base32 command for the encoding of secrets; RFC 6238
 * appendix B and RFC 4648 section 10 give fixed vectors.
 */

/* unit-sources: src/auth/um_totp.c */
/* unit-libs: -loath */

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <liboath/oath.h>

#include "auth/um_totp.h"
#include "tap.h"

#define RFC6238_SECRET  "12345678901234567890"
#define RFC6238_BASE32  "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

#define skip(n, why)                                                        \
    do {                                                                    \
        int  skip_i;                                                        \
        for (skip_i = 0; skip_i < (n); skip_i++) {                          \
            printf("ok %d # skip %s\n", ++tap_n, why);                      \
        }                                                                   \
    } while (0)


static int have(const char *cmd);
static int oathtool_code(const char *base32, long long t, char code[8]);
static int coreutils_base32(const char *dir, const unsigned char *secret,
    char *out, size_t size);
static int oath_base32(const unsigned char *secret, char *out, size_t size);
static void check_against_oathtool(long long t);
static void check_uri(void);


int
main(void)
{
    int             i, agree;
    char            b32[UM_TOTP_BASE32_LEN + 1], theirs[64], dir[256];
    char            code[8], cmd[300];
    long long       step;
    const char     *tmp;
    unsigned char   secret[UM_TOTP_SECRET_LEN], other[UM_TOTP_SECRET_LEN];
    static const struct {
        long long    t;
        const char  *code8;
    } rfc6238[] = {
        /* RFC 6238 appendix B, the SHA-1 column (8 digits) */
        { 59,          "94287082" },
        { 1111111109,  "07081804" },
        { 1111111111,  "14050471" },
        { 1234567890,  "89005924" },
        { 2000000000,  "69279037" },
        { 20000000000, "65353130" },
    };
    static const struct {
        const char  *code;
        const char  *what;
    } malformed[] = {
        { "12345",    "5 digits" },
        { "1234567",  "7 digits" },
        { "12a456",   "a letter" },
        { "",         "empty" },
        { " 12345",   "a leading space" },
        { "12345 ",   "a trailing space" },
        { "123456 ",  "6 digits and a space" },
        { "-12345",   "a minus sign" },
        { "+12345",   "a plus sign" },
        { "12345\n",  "a newline" },
        { "\xef\xbc\x91" "23456", "a full-width digit" },
        { "1234.5",   "a dot" },
    };

    ok(um_totp_init() == 0, "init");

    /* base32 */

    um_totp_base32((const unsigned char *) RFC6238_SECRET, b32);
    ok(strcmp(b32, RFC6238_BASE32) == 0,
       "base32 of the RFC 6238 secret: %s", b32);

    /* RFC 4648 section 10: "fooba" is MZXW6YTB; 20 bytes are 4 groups */
    um_totp_base32((const unsigned char *) "foobafoobafoobafooba", b32);
    ok(strcmp(b32, "MZXW6YTBMZXW6YTBMZXW6YTBMZXW6YTB") == 0,
       "base32 of 4 times the RFC 4648 'fooba'");

    memset(secret, 0, sizeof(secret));
    um_totp_base32(secret, b32);
    ok(strcmp(b32, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") == 0,
       "base32 of zeros");

    memset(secret, 0xff, sizeof(secret));
    um_totp_base32(secret, b32);
    ok(strcmp(b32, "77777777777777777777777777777777") == 0,
       "base32 of all ones");

    tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/um-totp-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return done_testing();
    }

    agree = 1;

    for (i = 0; i < 20; i++) {
        if (um_totp_secret_new(secret) != 0) {
            agree = 0;
            break;
        }

        um_totp_base32(secret, b32);

        if (strlen(b32) != UM_TOTP_BASE32_LEN
            || coreutils_base32(dir, secret, theirs, sizeof(theirs)) != 0
            || strcmp(b32, theirs) != 0
            || oath_base32(secret, theirs, sizeof(theirs)) != 0
            || strcmp(b32, theirs) != 0)
        {
            printf("# %s differs\n", b32);
            agree = 0;
        }
    }

    ok(agree, "20 random secrets: base32 as coreutils base32 and liboath "
              "write it");

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ok(system(cmd) == 0, "scratch removed");

    ok(um_totp_secret_new(secret) == 0 && um_totp_secret_new(other) == 0
       && memcmp(secret, other, sizeof(secret)) != 0,
       "two new secrets differ");

    /* RFC 6238 appendix B: 6 digits are the last 6 of the 8 */

    for (i = 0; i < (int) (sizeof(rfc6238) / sizeof(rfc6238[0])); i++) {
        step = rfc6238[i].t / 30;

        ok(um_totp_check((const unsigned char *) RFC6238_SECRET,
                         rfc6238[i].code8 + 2, (time_t) rfc6238[i].t, -1)
           == step,
           "RFC 6238 T=%lld: %s accepted at step %lld", rfc6238[i].t,
           rfc6238[i].code8 + 2, step);
    }

    /* the oracle agrees with the vectors: it is the right oracle */

    if (!have("oathtool")) {
        skip(1, "no oathtool");

    } else {
        ok(oathtool_code(RFC6238_BASE32, 1234567890, code) == 0
           && strcmp(code, "005924") == 0,
           "oathtool gives the RFC 6238 code at T=1234567890");
    }

    /* malformed codes, refused before any comparison */

    for (i = 0; i < (int) (sizeof(malformed) / sizeof(malformed[0])); i++) {
        ok(um_totp_check((const unsigned char *) RFC6238_SECRET,
                         malformed[i].code, 1234567890, -1)
           == UM_TOTP_MALFORMED,
           "code with %s: malformed", malformed[i].what);
    }

    ok(um_totp_check((const unsigned char *) RFC6238_SECRET, NULL,
                     1234567890, -1) == UM_TOTP_MALFORMED,
       "NULL code malformed");

    /* a malformed code that would match is still malformed */
    ok(um_totp_check((const unsigned char *) RFC6238_SECRET, "0059240",
                     1234567890, -1) == UM_TOTP_MALFORMED,
       "the right code with a digit more is malformed");

    /* random secrets against oathtool, at fixed times and now */

    check_against_oathtool(1111111109);             /* mid-step */
    check_against_oathtool(1700000010);             /* first second + 10 */
    check_against_oathtool(1700000040);
    check_against_oathtool(1700000069);             /* last second */
    check_against_oathtool(2000000000);
    check_against_oathtool(4102444800LL);           /* 2100-01-01 */
    check_against_oathtool((long long) time(NULL));

    check_uri();

    return done_testing();
}


static void
check_against_oathtool(long long t)
{
    char           b32[UM_TOTP_BASE32_LEN + 1], code[8], wrong[8];
    long long      step;
    unsigned char  secret[UM_TOTP_SECRET_LEN], other[UM_TOTP_SECRET_LEN];

    step = t / UM_TOTP_STEP;

    if (!have("oathtool")) {
        skip(14, "no oathtool");
        return;
    }

    if (um_totp_secret_new(secret) != 0 || um_totp_secret_new(other) != 0) {
        ok(0, "new secrets");
        return;
    }

    um_totp_base32(secret, b32);

    if (oathtool_code(b32, t, code) != 0) {
        ok(0, "oathtool --totp -b %s --now @%lld", b32, t);
        return;
    }

    printf("# T=%lld, step %lld, a new secret, its code from oathtool\n", t,
           step);

    ok(um_totp_check(secret, code, t, -1) == step,
       "T=%lld: accepted at its step", t);
    ok(um_totp_check(secret, code, t + 30, -1) == step,
       "T=%lld: accepted 30 s later, at its step", t);
    ok(um_totp_check(secret, code, t - 30, -1) == step,
       "T=%lld: accepted 30 s earlier, at its step", t);
    ok(um_totp_check(secret, code, t + 90, -1) == UM_TOTP_NO_MATCH,
       "T=%lld: refused 90 s later", t);
    ok(um_totp_check(secret, code, t - 90, -1) == UM_TOTP_NO_MATCH,
       "T=%lld: refused 90 s earlier", t);
    ok(um_totp_check(secret, code, t + 60, -1) == UM_TOTP_NO_MATCH,
       "T=%lld: refused 60 s later (two steps)", t);

    ok(um_totp_check(secret, code, t, step - 1) == step,
       "T=%lld: accepted after the step before it", t);
    ok(um_totp_check(secret, code, t, step) == UM_TOTP_REPLAYED,
       "T=%lld: replay at the same step refused", t);
    ok(um_totp_check(secret, code, t + 30, step) == UM_TOTP_REPLAYED,
       "T=%lld: replay in the next step refused", t);
    ok(um_totp_check(secret, code, t, step + 1) == UM_TOTP_REPLAYED,
       "T=%lld: refused once a later step was used", t);

    ok(um_totp_check(other, code, t, -1) == UM_TOTP_NO_MATCH,
       "T=%lld: another secret refuses it", t);

    memcpy(wrong, code, sizeof(wrong));
    wrong[5] = (char) ('0' + (wrong[5] - '0' + 1) % 10);

    ok(um_totp_check(secret, wrong, t, -1) == UM_TOTP_NO_MATCH,
       "T=%lld: last digit changed, refused", t);

    /* the codes of the steps either side, from the oracle too */

    ok(oathtool_code(b32, t + 30, code) == 0
       && um_totp_check(secret, code, t, -1) == step + 1,
       "T=%lld: the next step's code accepted as step + 1", t);
    ok(oathtool_code(b32, t - 30, code) == 0
       && um_totp_check(secret, code, t, -1) == step - 1,
       "T=%lld: the previous step's code accepted as step - 1", t);
}


static void
check_uri(void)
{
    int          n;
    char         uri[512], small[200];
    const char  *want;

    want = "otpauth://totp/Example%20Co:a%20b%2Bc%40example.com"
           "?secret=" RFC6238_BASE32 "&issuer=Example%20Co"
           "&algorithm=SHA1&digits=6&period=30";

    n = um_totp_uri("Example Co", "a b+c@example.com", RFC6238_BASE32,
                    uri, sizeof(uri));

    ok(n == (int) strlen(want) && strcmp(uri, want) == 0,
       "URI with percent-encoded issuer and account: %s", uri);

    n = um_totp_uri("Example Co", "a b+c@example.com", RFC6238_BASE32,
                    small, strlen(want) + 1);

    ok(n == (int) strlen(want) && strcmp(small, want) == 0,
       "URI fits a buffer of its length + 1");

    ok(um_totp_uri("Example Co", "a b+c@example.com", RFC6238_BASE32,
                   small, strlen(want)) == -1,
       "URI refused in a buffer of its length");

    ok(um_totp_uri("Example Co", "a b+c@example.com", RFC6238_BASE32,
                   small, 0) == -1,
       "URI refused in no buffer");

    n = um_totp_uri("A-z.0_9~", "Z\xc3\xbcrich:x/y?&=#%", RFC6238_BASE32,
                    uri, sizeof(uri));

    want = "otpauth://totp/A-z.0_9~:Z%C3%BCrich%3Ax%2Fy%3F%26%3D%23%25"
           "?secret=" RFC6238_BASE32 "&issuer=A-z.0_9~"
           "&algorithm=SHA1&digits=6&period=30";

    ok(n == (int) strlen(want) && strcmp(uri, want) == 0,
       "unreserved characters kept, UTF-8 and delimiters escaped: %s", uri);

    want = "otpauth://totp/bob?secret=" RFC6238_BASE32
           "&algorithm=SHA1&digits=6&period=30";

    n = um_totp_uri(NULL, "bob", RFC6238_BASE32, uri, sizeof(uri));

    ok(n == (int) strlen(want) && strcmp(uri, want) == 0,
       "no issuer: label is the account alone, no issuer parameter");

    n = um_totp_uri("", "bob", RFC6238_BASE32, uri, sizeof(uri));

    ok(n == (int) strlen(want) && strcmp(uri, want) == 0,
       "empty issuer: as no issuer");
}


static int
have(const char *cmd)
{
    char  buf[200];

    snprintf(buf, sizeof(buf), "command -v %s >/dev/null 2>&1", cmd);

    return system(buf) == 0;
}


/* the 6-digit code oathtool computes at time t */
static int
oathtool_code(const char *base32, long long t, char code[8])
{
    char   cmd[200], line[64];
    FILE  *f;

    snprintf(cmd, sizeof(cmd), "oathtool --totp -b --now @%lld %s", t,
             base32);

    f = popen(cmd, "r");
    if (f == NULL) {
        return -1;
    }

    if (fgets(line, sizeof(line), f) == NULL) {
        pclose(f);
        return -1;
    }

    if (pclose(f) != 0 || strlen(line) != 7 || line[6] != '\n') {
        return -1;
    }

    memcpy(code, line, 6);
    code[6] = '\0';

    return 0;
}


static int
coreutils_base32(const char *dir, const unsigned char *secret, char *out,
    size_t size)
{
    char    path[300], cmd[400];
    FILE   *f;
    size_t  n;

    snprintf(path, sizeof(path), "%s/secret", dir);

    f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }

    n = fwrite(secret, 1, UM_TOTP_SECRET_LEN, f);
    fclose(f);

    if (n != UM_TOTP_SECRET_LEN) {
        return -1;
    }

    snprintf(cmd, sizeof(cmd), "base32 -w 0 '%s'", path);

    f = popen(cmd, "r");
    if (f == NULL) {
        return -1;
    }

    if (fgets(out, size, f) == NULL) {
        out[0] = '\0';
    }

    return pclose(f) == 0 && out[0] != '\0' ? 0 : -1;
}


/* liboath's own encoder, its padding (none for 20 bytes) dropped */
static int
oath_base32(const unsigned char *secret, char *out, size_t size)
{
    char    *p;
    size_t   n;

    if (oath_base32_encode((const char *) secret, UM_TOTP_SECRET_LEN, &p, &n)
        != OATH_OK)
    {
        return -1;
    }

    while (n > 0 && p[n - 1] == '=') {
        n--;
    }

    if (n >= size) {
        free(p);
        return -1;
    }

    memcpy(out, p, n);
    out[n] = '\0';
    free(p);

    return 0;
}
