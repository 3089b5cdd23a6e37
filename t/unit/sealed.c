/*
 * Sealed secrets: round trips, every kind of tampering refused, and the
 * layout the header documents opened here with OpenSSL EVP directly, so
 * that another program can read what we write.  Key files as an operator
 * makes them with "openssl rand".
 */

/* unit-sources: src/auth/um_sealed.c src/auth/um_base64url.c */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/um_base64url.h"
#include "auth/um_sealed.h"
#include "tap.h"

#define CONTEXT  "6f1c3b52-5e8a-4c2b-9d1e-0a7b3c4d5e6f"
#define MAX      2048

/* the bytes i * 37 + 11, as written below */
#define HEX                                                                 \
    "0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186"
#define HEX_UPPER                                                           \
    "0B30557A9FC4E90E33587DA2C7EC11365B80A5CAEF14395E83A8CDF2173C6186"


static int round_trip(const unsigned char *key, size_t len);
static int opens_with_evp(const unsigned char *key, const char *context,
    const char *text, const unsigned char *plain, size_t len);
static size_t raw_of(const char *text, unsigned char *raw);
static void text_of(const unsigned char *raw, size_t n, char *text);
static int opens(const unsigned char *key, const char *context,
    const char *text);
static int write_file(const char *path, const void *p, size_t n);
static int loads(const char *path, const unsigned char *want);
static int refuses(const char *path);


static char  dir[256];


int
main(void)
{
    int            all;
    char           sealed[um_sealed_len(MAX) + 1], other[sizeof(sealed)];
    char           bad[sizeof(sealed) + 2], path[300], cmd[400];
    size_t         n, i, bit;
    const char    *tmp, *err;
    unsigned char  key[UM_SEALED_KEY_LEN], key2[UM_SEALED_KEY_LEN];
    unsigned char  secret[20], out[MAX], raw[MAX];
    static const size_t  lens[] = { 0, 1, 15, 16, 17, 20, 100, 1000, MAX };

    if (RAND_bytes(key, sizeof(key)) != 1
        || RAND_bytes(key2, sizeof(key2)) != 1
        || RAND_bytes(secret, sizeof(secret)) != 1)
    {
        ok(0, "random bytes");
        return done_testing();
    }

    /* round trips */

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        ok(round_trip(key, lens[i]), "round trip of %zu bytes", lens[i]);
    }

    ok(um_sealed_seal(key, CONTEXT, secret, sizeof(secret), sealed) == 0,
       "seal a TOTP secret");

    ok(strlen(sealed) == um_sealed_len(20) && strlen(sealed) == 67
       && strncmp(sealed, "v1.", 3) == 0,
       "v1. and 64 characters: %s", sealed);

    ok(opens_with_evp(key, CONTEXT, sealed, secret, sizeof(secret)),
       "EVP opens it as nonce(12) || ciphertext || tag(16), context as AAD");

    ok(um_sealed_open(key, CONTEXT, sealed, strlen(sealed), out,
                      sizeof(secret)) == (int) sizeof(secret)
       && memcmp(out, secret, sizeof(secret)) == 0,
       "opens into a buffer of exactly its size");

    ok(um_sealed_open(key, CONTEXT, sealed, strlen(sealed), out,
                      sizeof(secret) - 1) == -1,
       "refused into a buffer one byte short");

    ok(um_sealed_seal(key, CONTEXT, secret, sizeof(secret), other) == 0
       && strcmp(sealed, other) != 0
       && memcmp(sealed + 3, other + 3, 16) != 0,
       "two seals of the same secret differ (in their nonces)");

    ok(um_sealed_open(key, CONTEXT, other, strlen(other), out, sizeof(out))
       == (int) sizeof(secret) && memcmp(out, secret, sizeof(secret)) == 0,
       "and both open");

    /* wrong key, wrong context */

    ok(!opens(key2, CONTEXT, sealed), "another key: refused");
    ok(!opens(key, "6f1c3b52-5e8a-4c2b-9d1e-0a7b3c4d5e60", sealed),
       "another context: refused");
    ok(!opens(key, CONTEXT "x", sealed), "a longer context: refused");
    ok(!opens(key, "", sealed), "empty context: refused");

    ok(um_sealed_seal(key, NULL, secret, sizeof(secret), other) == 0
       && opens(key, "", other) && !opens(key, CONTEXT, other),
       "NULL context seals as the empty context");

    /* tampering with the bytes under the base64url */

    n = raw_of(sealed, raw);
    ok(n == 12 + 20 + 16, "48 bytes under the text");

    raw[0] ^= 0x01;
    text_of(raw, n, bad);
    ok(!opens(key, CONTEXT, bad), "one bit flipped in the nonce: refused");
    raw[0] ^= 0x01;

    raw[12 + 7] ^= 0x10;
    text_of(raw, n, bad);
    ok(!opens(key, CONTEXT, bad),
       "one bit flipped in the ciphertext: refused");
    raw[12 + 7] ^= 0x10;

    raw[n - 1] ^= 0x80;
    text_of(raw, n, bad);
    memset(out, 0xaa, sizeof(out));
    ok(um_sealed_open(key, CONTEXT, bad, strlen(bad), out, sizeof(out)) == -1,
       "one bit flipped in the tag: refused");

    /* GCM decrypted the untouched ciphertext before it checked the tag */
    ok(memcmp(out, secret, sizeof(secret)) != 0,
       "a refused open leaves no plain text in out");
    raw[n - 1] ^= 0x80;

    text_of(raw, n, bad);
    ok(strcmp(bad, sealed) == 0 && opens(key, CONTEXT, bad),
       "the untouched bytes re-encoded open (the tests above are fair)");

    all = 1;

    for (bit = 0; bit < n * 8; bit++) {
        raw[bit / 8] ^= (unsigned char) (1 << bit % 8);
        text_of(raw, n, bad);

        if (opens(key, CONTEXT, bad)) {
            printf("# bit %zu flipped still opens\n", bit);
            all = 0;
        }

        raw[bit / 8] ^= (unsigned char) (1 << bit % 8);
    }

    ok(all, "each of the %zu bits flipped alone: refused", n * 8);

    /* truncation */

    text_of(raw, n - 1, bad);
    ok(!opens(key, CONTEXT, bad), "last byte of the tag cut: refused");

    text_of(raw, 12 + 16, bad);
    ok(!opens(key, CONTEXT, bad), "nonce and tag without ciphertext: refused");

    text_of(raw, 27, bad);
    ok(!opens(key, CONTEXT, bad), "27 bytes: refused");

    ok(um_sealed_open(key, CONTEXT, sealed, strlen(sealed) - 1, out,
                      sizeof(out)) == -1,
       "last character cut: refused");

    ok(um_sealed_open(key, CONTEXT, sealed, 40, out, sizeof(out)) == -1,
       "first 40 characters: refused");

    ok(!opens(key, CONTEXT, "v1."), "prefix alone: refused");
    ok(!opens(key, CONTEXT, ""), "empty: refused");
    ok(um_sealed_open(key, CONTEXT, "v1", 2, out, sizeof(out)) == -1,
       "\"v1\": refused");

    /* prefix and encoding */

    snprintf(bad, sizeof(bad), "v2.%s", sealed + 3);
    ok(!opens(key, CONTEXT, bad), "prefix v2.: refused");

    snprintf(bad, sizeof(bad), "V1.%s", sealed + 3);
    ok(!opens(key, CONTEXT, bad), "prefix V1.: refused");

    snprintf(bad, sizeof(bad), "v1%s", sealed + 3);
    ok(!opens(key, CONTEXT, bad), "prefix without its dot: refused");

    ok(!opens(key, CONTEXT, sealed + 3), "no prefix: refused");

    snprintf(bad, sizeof(bad), " %s", sealed);
    ok(!opens(key, CONTEXT, bad), "leading space: refused");

    snprintf(bad, sizeof(bad), "%s=", sealed);
    ok(!opens(key, CONTEXT, bad), "padding appended: refused");

    snprintf(bad, sizeof(bad), "%s\n", sealed);
    ok(!opens(key, CONTEXT, bad), "newline appended: refused");

    /* key files */

    tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/um-sealed-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return done_testing();
    }

    for (i = 0; i < sizeof(key); i++) {
        key[i] = (unsigned char) (i * 37 + 11);
    }

    snprintf(path, sizeof(path), "%s/raw32", dir);
    ok(write_file(path, key, 32) == 0 && loads(path, key), "raw 32 bytes");

    snprintf(path, sizeof(path), "%s/hex64", dir);
    ok(write_file(path, HEX, 64) == 0 && loads(path, key), "64 hex digits");

    snprintf(path, sizeof(path), "%s/hex64nl", dir);
    ok(write_file(path, HEX_UPPER "\n", 65) == 0 && loads(path, key),
       "64 upper-case hex digits and a newline");

    snprintf(path, sizeof(path), "%s/short", dir);
    ok(write_file(path, key, 31) == 0 && refuses(path), "31 bytes refused");

    snprintf(path, sizeof(path), "%s/long", dir);
    memcpy(raw, key, 32);
    raw[32] = '\n';
    ok(write_file(path, raw, 33) == 0 && refuses(path),
       "33 bytes (32 and a newline) refused");

    snprintf(path, sizeof(path), "%s/badhex", dir);
    memcpy(bad, HEX, 64);
    bad[63] = 'g';
    ok(write_file(path, bad, 64) == 0 && refuses(path),
       "64 characters ending in 'g' refused");

    snprintf(path, sizeof(path), "%s/hexspace", dir);
    memcpy(bad, HEX, 64);
    bad[0] = ' ';
    ok(write_file(path, bad, 64) == 0 && refuses(path),
       "64 characters starting with a space refused");

    snprintf(path, sizeof(path), "%s/hex63", dir);
    memcpy(bad, HEX, 63);
    bad[63] = '\n';
    ok(write_file(path, bad, 64) == 0 && refuses(path),
       "63 hex digits and a newline refused");

    snprintf(path, sizeof(path), "%s/hexcrlf", dir);
    ok(write_file(path, HEX "\r\n", 66) == 0 && refuses(path),
       "64 hex digits and CR LF refused");

    snprintf(path, sizeof(path), "%s/hex66", dir);
    ok(write_file(path, HEX "00", 66) == 0 && refuses(path),
       "66 hex digits refused");

    snprintf(path, sizeof(path), "%s/hexnlnl", dir);
    ok(write_file(path, HEX "\n\n", 66) == 0 && refuses(path),
       "64 hex digits and two newlines refused");

    snprintf(path, sizeof(path), "%s/empty", dir);
    ok(write_file(path, "", 0) == 0 && refuses(path), "empty file refused");

    snprintf(path, sizeof(path), "%s/missing", dir);
    err = NULL;
    errno = 0;
    ok(um_sealed_key_load(path, key2, &err) == -1 && err != NULL
       && errno == ENOENT,
       "missing file refused, errno ENOENT: %s", err ? err : "(no reason)");

    errno = 0;
    ok(um_sealed_key_load(dir, key2, &err) == -1 && err != NULL
       && errno == EISDIR,
       "a directory refused: %s", err ? err : "(no reason)");

    /* as an operator makes them */

    snprintf(path, sizeof(path), "%s/openssl-hex", dir);
    snprintf(cmd, sizeof(cmd), "openssl rand -hex 32 > '%s'", path);
    ok(system(cmd) == 0 && um_sealed_key_load(path, key, &err) == 0,
       "openssl rand -hex 32 > FILE loads");

    snprintf(path, sizeof(path), "%s/openssl-raw", dir);
    snprintf(cmd, sizeof(cmd), "openssl rand 32 > '%s'", path);
    ok(system(cmd) == 0 && um_sealed_key_load(path, key2, &err) == 0
       && memcmp(key, key2, sizeof(key)) != 0,
       "openssl rand 32 > FILE loads (another key)");

    ok(um_sealed_seal(key, CONTEXT, secret, sizeof(secret), sealed) == 0
       && opens(key, CONTEXT, sealed) && !opens(key2, CONTEXT, sealed),
       "a loaded key seals and opens; the other does not open");

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ok(system(cmd) == 0, "scratch removed");

    return done_testing();
}


static int
round_trip(const unsigned char *key, size_t len)
{
    int            n;
    char           sealed[um_sealed_len(MAX) + 1];
    unsigned char  in[MAX], out[MAX];

    if (RAND_bytes(in, MAX) != 1) {
        return 0;
    }

    if (um_sealed_seal(key, CONTEXT, in, len, sealed) != 0
        || strlen(sealed) != um_sealed_len(len))
    {
        return 0;
    }

    n = um_sealed_open(key, CONTEXT, sealed, strlen(sealed), out, len);

    return n == (int) len && memcmp(in, out, len) == 0
           && opens_with_evp(key, CONTEXT, sealed, in, len);
}


/* the documented layout, opened without um_sealed_open */
static int
opens_with_evp(const unsigned char *key, const char *context,
    const char *text, const unsigned char *plain, size_t len)
{
    int              n, ok1;
    size_t           raw_len;
    unsigned char    raw[MAX + 64], out[MAX + 16];
    EVP_CIPHER_CTX  *ctx;

    if (strncmp(text, "v1.", 3) != 0) {
        return 0;
    }

    raw_len = raw_of(text, raw);
    if (raw_len != 12 + len + 16) {
        return 0;
    }

    ctx = EVP_CIPHER_CTX_new();

    ok1 = ctx != NULL
          && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL)
          && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL)
          && EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw)
          && EVP_DecryptUpdate(ctx, NULL, &n,
                               (const unsigned char *) context,
                               (int) strlen(context))
          && EVP_DecryptUpdate(ctx, out, &n, raw + 12, (int) len)
          && (size_t) n == len
          && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
                                 raw + 12 + len)
          && EVP_DecryptFinal_ex(ctx, out + n, &n)
          && memcmp(out, plain, len) == 0;

    EVP_CIPHER_CTX_free(ctx);

    return ok1;
}


static size_t
raw_of(const char *text, unsigned char *raw)
{
    return um_base64url_decode(raw, (const unsigned char *) text + 3,
                               strlen(text) - 3);
}


static void
text_of(const unsigned char *raw, size_t n, char *text)
{
    size_t  len;

    memcpy(text, "v1.", 3);
    len = um_base64url_encode((unsigned char *) text + 3, raw, n);
    text[3 + len] = '\0';
}


static int
opens(const unsigned char *key, const char *context, const char *text)
{
    unsigned char  out[MAX];

    return um_sealed_open(key, context, text, strlen(text), out, sizeof(out))
           >= 0;
}


static int
write_file(const char *path, const void *p, size_t n)
{
    FILE  *f;

    f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }

    if (fwrite(p, 1, n, f) != n) {
        fclose(f);
        return -1;
    }

    return fclose(f) == 0 ? 0 : -1;
}


static int
loads(const char *path, const unsigned char *want)
{
    const char     *err;
    unsigned char   key[UM_SEALED_KEY_LEN];

    err = NULL;

    if (um_sealed_key_load(path, key, &err) != 0) {
        printf("# %s: %s\n", path + strlen(dir), err ? err : "(no reason)");
        return 0;
    }

    return memcmp(key, want, UM_SEALED_KEY_LEN) == 0;
}


static int
refuses(const char *path)
{
    const char     *err;
    unsigned char   key[UM_SEALED_KEY_LEN];

    err = NULL;

    if (um_sealed_key_load(path, key, &err) == 0 || err == NULL) {
        return 0;
    }

    printf("# %s: %s\n", path + strlen(dir), err);

    return 1;
}
