/*
 * Password hashing and policy.  The argon2 command-line tool (Debian's
 * "argon2" package) is the oracle for the PHC strings; the common-password
 * cases use cracklib's small dictionary (package cracklib-runtime) and are
 * skipped where it is missing.
 */

/* unit-sources: src/auth/um_password.c src/http/um_validate.c */
/* unit-libs: -largon2 */

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/um_password.h"
#include "tap.h"

#define S(s)       (s), strlen(s)
#define OWASP_PHC  "$argon2id$v=19$m=19456,t=2,p=1$"
#define CRACKLIB   "/usr/share/dict/cracklib-small"

#define skip(n, why)                                                        \
    do {                                                                    \
        int  skip_i;                                                        \
        for (skip_i = 0; skip_i < (n); skip_i++) {                          \
            printf("ok %d # skip %s\n", ++tap_n, why);                      \
        }                                                                   \
    } while (0)

/* policy with the usual lengths and no identity */
#define POLICY(pw, bl)  um_password_policy(S(pw), 8, 128, bl, NULL, NULL)


/*
 * Made with: printf %s PASSWORD | argon2 SALT -id -t 2 -k 19456 -p 1 -l 32 -e
 * (argon2 0~20171227, Debian 12), the last one with -i.
 */

/* "correct horse battery staple", salt "somesalt16bytes" (15 bytes) */
static const char  cli_horse[] =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQxNmJ5dGVz"
    "$zew2UsR1pLD6oo8StLfFnVRnkuN0TTTlMh7YYYia+iU";

/* "p\xc3\xa4ssw\xc3\xb6rd", salt "0123456789abcdef" */
static const char  cli_umlaut[] =
    "$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg"
    "$yxo0u725ht/u+ArqyyL37VGxPOyFMvsz2eBUq2J6aH8";

/* "x", salt "0123456789abcdef", argon2i */
static const char  cli_argon2i[] =
    "$argon2i$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg"
    "$iGI6lfuS7Bk2xEXYg75I/IKaC6vsfB1QxW8aORkZa5U";


static double
now(void)
{
    struct timespec  ts;

    timespec_get(&ts, TIME_UTC);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }

    return strcmp(a, b) == 0;
}


/* unpadded standard base64, as in PHC strings; the length or -1 */
static int
b64_decode(const char *s, size_t len, unsigned char *out, size_t outlen)
{
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    size_t       i, n, bits;
    uint32_t     acc;
    const char  *c;

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        c = strchr(alphabet, s[i]);
        if (c == NULL || s[i] == '\0') {
            return -1;
        }

        acc = (acc << 6) | (uint32_t) (c - alphabet);
        bits += 6;

        if (bits >= 8) {
            bits -= 8;

            if (n == outlen) {
                return -1;
            }

            out[n++] = (unsigned char) (acc >> bits);
        }
    }

    return (int) n;
}


/* the first line a shell command prints, without its newline */
static int
run(const char *cmd, char *out, size_t outlen)
{
    FILE  *f;
    int    rc;

    f = popen(cmd, "r");
    if (f == NULL) {
        return -1;
    }

    if (fgets(out, (int) outlen, f) == NULL) {
        out[0] = '\0';
    }

    rc = pclose(f);
    out[strcspn(out, "\n")] = '\0';

    return rc == 0 && out[0] != '\0' ? 0 : -1;
}


static void
test_hash(void)
{
    char                phc[UM_PASSWORD_HASH_MAX], phc2[UM_PASSWORD_HASH_MAX];
    char                small[64];
    double              t0, t1;
    um_argon2_params_t  owasp = UM_ARGON2_OWASP;
    um_argon2_params_t  tiny = { 1, 1, 1 };

    t0 = now();
    ok(um_password_hash(S("correct horse battery staple"), &owasp,
                        phc, sizeof(phc)) == 0, "hash with OWASP parameters");
    t1 = now();
    printf("# one argon2id hash, m=19456 KiB t=2 p=1: %.1f ms\n",
           (t1 - t0) * 1000);

    ok(strncmp(phc, OWASP_PHC, sizeof(OWASP_PHC) - 1) == 0,
       "PHC prefix: %.32s", phc);
    ok(strlen(phc) == sizeof(OWASP_PHC) - 1 + 22 + 1 + 43
       && phc[sizeof(OWASP_PHC) - 1 + 22] == '$',
       "16-byte salt and 32-byte hash, unpadded base64");
    ok(um_password_verify(S("correct horse battery staple"), phc) == 1,
       "own hash verifies with the password");
    ok(um_password_verify(S("correct horse battery stapl"), phc) == 0,
       "and not with a shorter one");
    ok(um_password_verify(S("Correct horse battery staple"), phc) == 0,
       "nor with other case");
    ok(um_password_verify(S(""), phc) == 0, "nor with an empty one");

    ok(um_password_hash(S("correct horse battery staple"), NULL,
                        phc2, sizeof(phc2)) == 0
       && strncmp(phc2, OWASP_PHC, sizeof(OWASP_PHC) - 1) == 0,
       "NULL parameters are OWASP's");
    ok(strcmp(phc, phc2) != 0, "same password twice, different strings");
    ok(um_password_verify(S("correct horse battery staple"), phc2) == 1,
       "the second verifies too");

    ok(um_password_hash(S("p\xc3\xa4ssw\xc3\xb6rd"), &owasp,
                        phc2, sizeof(phc2)) == 0
       && um_password_verify(S("p\xc3\xa4ssw\xc3\xb6rd"), phc2) == 1
       && um_password_verify(S("pa\xcc\x88ssw\xc3\xb6rd"), phc2) == 0,
       "UTF-8 bytes hashed as given (NFC and NFD differ)");

    ok(um_password_hash(S("x"), &owasp, small, sizeof(small)) == -1
       && small[0] == '\0', "too small an output buffer");
    ok(um_password_hash(S("x"), &tiny, phc2, sizeof(phc2)) == -1,
       "parameters argon2 refuses (1 KiB)");

    /* strings the argon2 tool wrote */
    ok(um_password_verify(S("correct horse battery staple"), cli_horse) == 1,
       "argon2 CLI string verifies");
    ok(um_password_verify(S("correct horse battery staplf"), cli_horse) == 0,
       "argon2 CLI string, wrong password");
    ok(um_password_verify(S("p\xc3\xa4ssw\xc3\xb6rd"), cli_umlaut) == 1,
       "argon2 CLI string of a UTF-8 password verifies");

    /* not ours to verify */
    ok(um_password_verify(S("x"), cli_argon2i) == -1, "argon2i refused");
    ok(um_password_verify(S("x"), "garbage") == -1, "garbage refused");
    ok(um_password_verify(S("x"), "") == -1, "empty string refused");
    ok(um_password_verify(S("x"), NULL) == -1, "NULL refused");
    ok(um_password_verify(S("correct horse battery staple"),
                          "$argon2id$m=19456,t=2,p=1$c29tZXNhbHQxNmJ5dGVz"
                          "$zew2UsR1pLD6oo8StLfFnVRnkuN0TTTlMh7YYYia+iU")
       == -1, "no version refused");
    ok(um_password_verify(S("correct horse battery staple"),
                          "$argon2id$v=19$m=19456,t=2,p=1"
                          "$c29tZXNhbHQxNmJ5dGVz") == -1, "no hash refused");
    ok(um_password_verify(S("correct horse battery staple"),
                          "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQxNmJ5dGVz"
                          "$zew2UsR1pLD6oo8StLfFnVRnkuN0TTTlMh7YYYia+iU=")
       == -1, "padding refused");
    ok(um_password_verify(S("correct horse battery staple"),
                          "$argon2id$v=19$m=4194304,t=2,p=1"
                          "$c29tZXNhbHQxNmJ5dGVz"
                          "$zew2UsR1pLD6oo8StLfFnVRnkuN0TTTlMh7YYYia+iU")
       == -1, "4 GiB of memory refused without trying");
    ok(um_password_verify(S("correct horse battery staple"),
                          "$argon2id$v=19$m=019456,t=2,p=1"
                          "$c29tZXNhbHQxNmJ5dGVz"
                          "$zew2UsR1pLD6oo8StLfFnVRnkuN0TTTlMh7YYYia+iU")
       == -1, "leading zero refused");

    /* needs_rehash */
    ok(um_password_needs_rehash(phc, &owasp) == 0, "same parameters: 0");
    ok(um_password_needs_rehash(phc, NULL) == 0, "NULL means OWASP: 0");
    ok(um_password_needs_rehash(cli_umlaut, &owasp) == 0,
       "CLI string with a 16-byte salt: 0");
    {
        um_argon2_params_t  t3 = { 19456, 3, 1 };
        um_argon2_params_t  m46 = { 47104, 1, 1 };
        um_argon2_params_t  p2 = { 19456, 2, 2 };

        ok(um_password_needs_rehash(phc, &t3) == 1, "t=3: 1");
        ok(um_password_needs_rehash(phc, &m46) == 1, "46 MiB, t=1: 1");
        ok(um_password_needs_rehash(phc, &p2) == 1, "p=2: 1");
    }
    ok(um_password_needs_rehash(cli_argon2i, &owasp) == 1, "argon2i: 1");
    ok(um_password_needs_rehash(cli_horse, &owasp) == 1,
       "15-byte salt (under 128 bits): 1");
    ok(um_password_needs_rehash("$argon2id$v=16$m=19456,t=2,p=1"
                                "$MDEyMzQ1Njc4OWFiY2RlZg"
                                "$yxo0u725ht/u+ArqyyL37VGxPOyFMvsz2eBUq2J6aH8",
                                &owasp) == 1, "v=16: 1");
    ok(um_password_needs_rehash("garbage", &owasp) == 1, "garbage: 1");
    ok(um_password_needs_rehash(NULL, &owasp) == 1, "NULL: 1");
}


/*
 * The argon2 tool, given our salt, must write exactly our string.  The
 * salt travels through the environment, so it must hold no NUL byte.
 */
static void
test_cli(void)
{
    int                 i, n;
    char                phc[UM_PASSWORD_HASH_MAX], cli[256];
    const char         *salt;
    unsigned char       raw[32];
    um_argon2_params_t  owasp = UM_ARGON2_OWASP;

    if (run("command -v argon2", cli, sizeof(cli)) != 0) {
        skip(4, "no argon2 command");
        return;
    }

    ok(run("printf %s 'Tr0ub4dor&3x' | argon2 somesalt16bytes -id -t 2"
           " -k 19456 -p 1 -l 32 -e", cli, sizeof(cli)) == 0
       && um_password_verify(S("Tr0ub4dor&3x"), cli) == 1,
       "fresh argon2 CLI string verifies");
    ok(um_password_verify(S("Tr0ub4dor&3y"), cli) == 0,
       "fresh argon2 CLI string, wrong password");

    n = -1;

    for (i = 0; i < 8; i++) {
        if (um_password_hash(S("Tr0ub4dor&3x"), &owasp, phc, sizeof(phc))
            != 0)
        {
            break;
        }

        salt = phc + sizeof(OWASP_PHC) - 1;
        n = b64_decode(salt, 22, raw, sizeof(raw) - 1);

        if (n == 16 && memchr(raw, '\0', 16) == NULL) {
            break;
        }

        n = -1;
    }

    ok(n == 16, "a salt without NUL in %d tries", i + 1);

    raw[16] = '\0';
    setenv("UM_SALT", (char *) raw, 1);

    ok(n == 16
       && run("printf %s 'Tr0ub4dor&3x' | argon2 \"$UM_SALT\" -id -t 2"
              " -k 19456 -p 1 -l 32 -e", cli, sizeof(cli)) == 0
       && strcmp(cli, phc) == 0,
       "argon2 CLI with our salt writes our string");

    unsetenv("UM_SALT");
}


static void
test_blocklist(void)
{
    int                 fd;
    char                path[] = "/tmp/um-blocklist-XXXXXX";
    char                err[256];
    FILE               *f;
    double              t0, t1;
    um_pw_blocklist_t  *bl;

    err[0] = '\0';
    bl = um_pw_blocklist_load("/nonexistent/words", err, sizeof(err));
    ok(bl == NULL && strstr(err, "/nonexistent/words") != NULL,
       "missing file: %s", err);

    fd = mkstemp(path);
    f = (fd == -1) ? NULL : fdopen(fd, "w");
    if (f == NULL) {
        skip(12, "no temporary file");
        return;
    }

    fputs("# a comment\n\nDragon\n  monkey \r\nletmein\ndragon\n"
          "P\xc3\x84ss\n#dragonfly\nlast-unended", f);
    fclose(f);

    bl = um_pw_blocklist_load(path, err, sizeof(err));
    unlink(path);

    ok(bl != NULL, "small list loads");
    ok(um_pw_blocklist_size(bl) == 5, "5 distinct words, comments skipped"
       " (%zu)", um_pw_blocklist_size(bl));
    ok(um_pw_blocklist_has(bl, S("dragon")), "dragon");
    ok(um_pw_blocklist_has(bl, S("DrAgOn")), "DrAgOn (ASCII case)");
    ok(!um_pw_blocklist_has(bl, S("drago"))
       && !um_pw_blocklist_has(bl, S("dragons")), "no prefixes, no suffixes");
    ok(um_pw_blocklist_has(bl, S("monkey")), "blanks and CR trimmed");
    ok(!um_pw_blocklist_has(bl, S("# a comment"))
       && !um_pw_blocklist_has(bl, S("#dragonfly"))
       && !um_pw_blocklist_has(bl, S("dragonfly")), "comments are no words");
    ok(um_pw_blocklist_has(bl, S("p\xc3\x84ss"))
       && um_pw_blocklist_has(bl, S("P\xc3\x84SS"))
       && !um_pw_blocklist_has(bl, S("p\xc3\xa4ss")),
       "non-ASCII kept as written");
    ok(um_pw_blocklist_has(bl, S("last-unended")), "last line without \\n");
    ok(!um_pw_blocklist_has(bl, "", 0)
       && !um_pw_blocklist_has(bl, "dragon\0", 7), "empty word, NUL");
    ok(!um_pw_blocklist_has(NULL, S("dragon"))
       && um_pw_blocklist_size(NULL) == 0, "NULL list is empty");

    um_pw_blocklist_free(bl);

    if (access(CRACKLIB, R_OK) != 0) {
        skip(3, "no " CRACKLIB);
        return;
    }

    t0 = now();
    bl = um_pw_blocklist_load(CRACKLIB, err, sizeof(err));
    t1 = now();
    printf("# cracklib-small: %zu words in %.1f ms\n",
           um_pw_blocklist_size(bl), (t1 - t0) * 1000);

    ok(bl != NULL && um_pw_blocklist_size(bl) == 54763,
       "cracklib-small: 54763 words");
    ok(t1 - t0 < 1.0, "loaded in under a second");
    ok(um_pw_blocklist_has(bl, S("password"))
       && um_pw_blocklist_has(bl, S("QWERTY123"))
       && !um_pw_blocklist_has(bl, S("correct horse battery staple")),
       "lookups");

    um_pw_blocklist_free(bl);
}


static void
test_policy(void)
{
    char                buf[512];
    size_t              i;
    uint32_t            seed;
    const char         *pw;
    um_pw_blocklist_t  *bl;

    /* format */
    ok(streq(POLICY("abc\x01" "defgh", NULL), "format"), "C0 control");
    ok(streq(POLICY("tab\there!", NULL), "format"), "tab");
    ok(streq(POLICY("delete\x7fme", NULL), "format"), "DEL");
    ok(streq(POLICY("next\xc2\x85line", NULL), "format"), "C1 control");
    ok(streq(um_password_policy("pass\0word", 9, 8, 128, NULL, NULL, NULL),
             "format"), "NUL");
    ok(streq(POLICY("caf\xe9-au-lait", NULL), "format"), "Latin-1 byte");
    ok(streq(POLICY("\xc0\xafpassword", NULL), "format"), "overlong form");
    ok(streq(um_password_policy(NULL, 3, 8, 128, NULL, NULL, NULL), "format"),
       "NULL with a length");

    /* lengths in code points */
    ok(streq(POLICY("", NULL), "min_length"), "empty");
    ok(streq(POLICY("seven!!", NULL), "min_length"), "7 characters");
    ok(POLICY("eight!!!", NULL) == NULL, "8 characters");
    ok(streq(um_password_policy(S("\xc3\xb1" "and\xc3\xba"), 6, 128, NULL,
                                NULL, NULL), "min_length"),
       "\"\xc3\xb1" "and\xc3\xba\" is 5 characters (7 bytes) < 6");
    ok(um_password_policy(S("\xc3\xb1" "and\xc3\xba"), 5, 128, NULL,
                          NULL, NULL) == NULL, "and 5 is enough for 5");

    /* no period, no run: a linear congruential walk over an alphabet */
    for (i = 0, seed = 1; i < 128; i++) {
        seed = seed * 1103515245 + 12345;
        buf[i] = "abcdefghijklmnopqrstuvwxyz0123456789 -"[(seed >> 16) % 38];
    }

    ok(um_password_policy(buf, 128, 8, 128, NULL, NULL, NULL) == NULL,
       "128 characters accepted");
    buf[128] = 'z';
    ok(streq(um_password_policy(buf, 129, 8, 128, NULL, NULL, NULL),
             "max_length"), "129 characters refused");

    for (i = 0; i < 129; i++) {
        memcpy(buf + i * 2, "\xc3\xa4", 2);
    }

    ok(streq(um_password_policy(buf, 256, 8, 128, NULL, NULL, NULL),
             "repetitive"), "128 two-byte characters are not too long");
    ok(streq(um_password_policy(buf, 258, 8, 128, NULL, NULL, NULL),
             "max_length"), "129 two-byte characters are");

    /* repetitive */
    ok(streq(POLICY("aaaaaaaa", NULL), "repetitive"), "aaaaaaaa");
    ok(streq(POLICY("abcabcabc", NULL), "repetitive"), "abcabcabc");
    ok(streq(POLICY("abcABCabcAB", NULL), "repetitive"),
       "abcABCabcAB (case, cut short)");
    ok(streq(POLICY("hellohello", NULL), "repetitive"), "hellohello");
    ok(streq(POLICY("\xc3\xa4\xc3\xb6\xc3\xa4\xc3\xb6\xc3\xa4\xc3\xb6"
                    "\xc3\xa4\xc3\xb6", NULL), "repetitive"),
       "\xc3\xa4\xc3\xb6 four times");
    ok(POLICY("abcabcabd", NULL) == NULL, "abcabcabd is no repetition");

    /* sequential */
    ok(streq(POLICY("12345678", NULL), "sequential"), "12345678");
    ok(streq(POLICY("87654321", NULL), "sequential"), "87654321");
    ok(streq(POLICY("abcdefgh", NULL), "sequential"), "abcdefgh");
    ok(streq(POLICY("ZYXWVUTS", NULL), "sequential"), "ZYXWVUTS");
    ok(streq(POLICY("qwertyui", NULL), "sequential"), "qwertyui");
    ok(streq(POLICY("POIUYTREWQ", NULL), "sequential"), "POIUYTREWQ");
    ok(streq(POLICY("asdfghjkl", NULL), "sequential"), "asdfghjkl");
    ok(streq(POLICY("1234567890", NULL), "sequential"), "1234567890");
    ok(streq(POLICY("!@#$%^&*", NULL), "sequential"), "!@#$%%^&*");
    ok(streq(POLICY("qwertzuiop", NULL), "sequential"), "qwertzuiop");
    ok(streq(POLICY("\xce\xb1\xce\xb2\xce\xb3\xce\xb4\xce\xb5\xce\xb6"
                    "\xce\xb7\xce\xb8", NULL), "sequential"),
       "alpha to theta");
    ok(POLICY("13579bdf", NULL) == NULL, "13579bdf is no run");
    ok(POLICY("12345678x", NULL) == NULL, "a run must cover it all");

    /* identity */
    ok(streq(um_password_policy(S("JohnSmith"), 8, 128, NULL, NULL,
                                "johnsmith"), "contains_identity"),
       "the username");
    ok(streq(um_password_policy(S("i-am-johnsmith-2024"), 8, 128, NULL, NULL,
                                "johnsmith"), "contains_identity"),
       "the username inside");
    ok(streq(um_password_policy(S("Alice.Wonder"), 8, 128, NULL,
                                "alice.wonder@example.com", NULL),
             "contains_identity"), "the local part");
    ok(streq(um_password_policy(S("my-ALICE.WONDER-pw"), 8, 128, NULL,
                                "alice.wonder@example.com", NULL),
             "contains_identity"), "the local part inside");
    ok(streq(um_password_policy(S("alice.wonder@example.com"), 8, 128, NULL,
                                "alice.wonder@example.com", NULL),
             "contains_identity"), "the email");
    ok(streq(um_password_policy(S("bo@example.com!"), 8, 128, NULL,
                                "bo@example.com", NULL),
             "contains_identity"), "the email inside");
    ok(streq(um_password_policy(S("Bob"), 3, 128, NULL,
                                "bob@example.com", "bob"),
             "contains_identity"), "a short name as the whole password");
    ok(um_password_policy(S("bobcat-sunrise-42"), 8, 128, NULL,
                          "bob@example.com", "bob") == NULL,
       "a short name inside is fine");
    ok(um_password_policy(S("correct horse battery staple"), 8, 128, NULL,
                          "", "") == NULL, "empty identities ignored");

    /* acceptable, no blocklist */
    ok(POLICY("password", NULL) == NULL, "no blocklist, no common rule");

    bl = NULL;

    if (access(CRACKLIB, R_OK) == 0) {
        bl = um_pw_blocklist_load(CRACKLIB, buf, sizeof(buf));
    }

    if (bl == NULL) {
        skip(20, "no " CRACKLIB);

    } else {
        ok(streq(POLICY("password", bl), "common"), "password");
        ok(streq(POLICY("PASSWORD", bl), "common"), "PASSWORD");
        ok(streq(POLICY("Password123!", bl), "common"), "Password123!");
        ok(streq(POLICY("dragon2024", bl), "common"), "dragon2024");
        ok(streq(POLICY("letmein!", bl), "common"), "letmein!");
        ok(streq(POLICY("qwerty123", bl), "common"), "qwerty123 (listed)");
        ok(streq(POLICY("sunshine 2024", bl), "common"), "sunshine 2024");
        ok(POLICY("cat!!!!!!!", bl) == NULL,
           "a stem under 4 characters is not looked up");
        ok(POLICY("2024dragon", bl) == NULL, "only trailing digits stripped");

        pw = "correct horse battery staple";
        ok(POLICY(pw, bl) == NULL, "%s", pw);
        pw = "Tr0ub4dor&3x";
        ok(POLICY(pw, bl) == NULL, "%s", pw);
        pw = "the-quick-brown-fox-jumps-over-the-lazy-dog-in-the-rain-at-night";
        ok(strlen(pw) == 64 && POLICY(pw, bl) == NULL, "64 characters");
        pw = "p\xc3\xa4ssw\xc3\xb6rd-ist-lang";
        ok(POLICY(pw, bl) == NULL, "%s", pw);
        pw = "\xc3\xb1" "and\xc3\xba-corre-r\xc3\xa1pido";
        ok(POLICY(pw, bl) == NULL, "%s", pw);
        pw = "\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89"
             "\xe3\x81\xaf\xe9\x95\xb7\xe3\x81\x84";
        ok(POLICY(pw, bl) == NULL, "%s (8 characters, 24 bytes)", pw);
        pw = "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c "
             "\xd0\xb4\xd0\xbb\xd0\xb8\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb9";
        ok(POLICY(pw, bl) == NULL, "%s", pw);
        pw = "\xf0\x9f\x90\x89 dragon \xf0\x9f\x94\xa5 fire";
        ok(POLICY(pw, bl) == NULL, "%s", pw);
        ok(streq(um_password_policy(S("Password123!"), 8, 128, bl,
                                    "password@example.com", "password"),
                 "common"), "rules in order: common before identity");
        ok(streq(POLICY("qwertyui", bl), "common"),
           "qwertyui is common before it is sequential");
        ok(streq(POLICY("1q2w3e4r", bl), "common"), "1q2w3e4r (listed)");

        um_pw_blocklist_free(bl);
    }

    /* messages */
    {
        static const char  *rules[] = {
            "format", "min_length", "max_length", "common", "repetitive",
            "sequential", "contains_identity"
        };

        int          good;
        size_t       k;
        const char  *m;

        good = 1;

        for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
            m = um_password_rule_message(rules[i]);

            if (m == NULL || strchr(m, '%') != NULL
                || strncmp(m, "password ", 9) != 0)
            {
                good = 0;
            }

            for (k = 0; k < i; k++) {
                if (streq(m, um_password_rule_message(rules[k]))) {
                    good = 0;
                }
            }
        }

        ok(good, "a distinct sentence for each rule");
        ok(um_password_rule_message("whatever") != NULL
           && um_password_rule_message(NULL) == NULL,
           "unknown rule: generic sentence; NULL: NULL");
    }
}


int
main(void)
{
    test_hash();
    test_cli();
    test_blocklist();
    test_policy();

    return done_testing();
}
