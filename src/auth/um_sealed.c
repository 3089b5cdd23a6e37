/*
 * AES-256-GCM sealing of small secrets with OpenSSL EVP.  The nonce is
 * random: with one key, 2^32 seals keep the chance of a repeated nonce
 * below 2^-32 (NIST SP 800-38D section 8.3), far more TOTP secrets than
 * any installation will ever enrol.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "um_base64url.h"
#include "um_sealed.h"


#define UM_SEALED_PREFIX     "v1."
#define UM_SEALED_PREFIX_LEN (sizeof(UM_SEALED_PREFIX) - 1)
#define UM_SEALED_NONCE_LEN  12
#define UM_SEALED_TAG_LEN    16
#define UM_SEALED_OVERHEAD   (UM_SEALED_NONCE_LEN + UM_SEALED_TAG_LEN)

/* 64 hex digits, a newline, and one byte more to tell a longer file */
#define UM_SEALED_FILE_MAX   (2 * UM_SEALED_KEY_LEN + 2)


static int um_sealed_hex(int c);


int
um_sealed_key_load(const char *path, unsigned char key[UM_SEALED_KEY_LEN],
    const char **err)
{
    int            hi, lo, rc, e;
    FILE          *f;
    size_t         n, i;
    const char    *why;
    unsigned char  buf[UM_SEALED_FILE_MAX];

    if (err == NULL) {
        err = &why;
    }

    /* errno still tells why when the file cannot be opened or read */

    f = fopen(path, "rb");
    if (f == NULL) {
        *err = "cannot open the key file";
        return -1;
    }

    n = fread(buf, 1, sizeof(buf), f);

    if (ferror(f)) {
        e = errno;
        fclose(f);
        OPENSSL_cleanse(buf, sizeof(buf));
        errno = e;
        *err = "cannot read the key file";
        return -1;
    }

    fclose(f);

    rc = -1;

    if (n == UM_SEALED_KEY_LEN) {
        memcpy(key, buf, UM_SEALED_KEY_LEN);
        rc = 0;
        goto done;
    }

    if (n == 2 * UM_SEALED_KEY_LEN + 1 && buf[n - 1] == '\n') {
        n--;
    }

    if (n != 2 * UM_SEALED_KEY_LEN) {
        *err = "the key file must hold 32 bytes or 64 hex digits";
        goto done;
    }

    for (i = 0; i < UM_SEALED_KEY_LEN; i++) {
        hi = um_sealed_hex(buf[2 * i]);
        lo = um_sealed_hex(buf[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(key, UM_SEALED_KEY_LEN);
            *err = "the key file holds a character that is not a hex digit";
            goto done;
        }

        key[i] = (unsigned char) (hi << 4 | lo);
    }

    rc = 0;

done:

    OPENSSL_cleanse(buf, sizeof(buf));

    return rc;
}


int
um_sealed_seal(const unsigned char key[UM_SEALED_KEY_LEN],
    const char *context, const unsigned char *in, size_t len, char *out)
{
    int              n, rc;
    size_t           raw_len, ctx_len;
    unsigned char   *raw, *ct;
    EVP_CIPHER_CTX  *ctx;

    if (context == NULL) {
        context = "";
    }

    ctx_len = strlen(context);

    if (len > INT_MAX - UM_SEALED_OVERHEAD || ctx_len > INT_MAX) {
        return -1;
    }

    raw_len = UM_SEALED_OVERHEAD + len;

    raw = malloc(raw_len);
    if (raw == NULL) {
        return -1;
    }

    ct = raw + UM_SEALED_NONCE_LEN;
    rc = -1;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        goto failed;
    }

    /* 12 bytes is GCM's default nonce length: no EVP_CTRL_GCM_SET_IVLEN */

    if (RAND_bytes(raw, UM_SEALED_NONCE_LEN) != 1
        || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1
        || EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *) context,
                             (int) ctx_len) != 1
        || EVP_EncryptUpdate(ctx, ct, &n, in, (int) len) != 1
        || (size_t) n != len
        || EVP_EncryptFinal_ex(ctx, ct + len, &n) != 1
        || n != 0
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, UM_SEALED_TAG_LEN,
                               ct + len) != 1)
    {
        goto failed;
    }

    memcpy(out, UM_SEALED_PREFIX, UM_SEALED_PREFIX_LEN);
    n = (int) um_base64url_encode((unsigned char *) out + UM_SEALED_PREFIX_LEN,
                                  raw, raw_len);
    out[UM_SEALED_PREFIX_LEN + n] = '\0';

    rc = 0;

failed:

    EVP_CIPHER_CTX_free(ctx);
    free(raw);

    return rc;
}


int
um_sealed_open(const unsigned char key[UM_SEALED_KEY_LEN],
    const char *context, const char *text, size_t text_len,
    unsigned char *out, size_t size)
{
    int              n, rc;
    size_t           raw_len, ct_len, ctx_len;
    unsigned char   *raw, *tag;
    EVP_CIPHER_CTX  *ctx;

    if (context == NULL) {
        context = "";
    }

    ctx_len = strlen(context);

    if (text_len < UM_SEALED_PREFIX_LEN
        || memcmp(text, UM_SEALED_PREFIX, UM_SEALED_PREFIX_LEN) != 0
        || text_len > INT_MAX
        || ctx_len > INT_MAX)
    {
        return -1;
    }

    text += UM_SEALED_PREFIX_LEN;
    text_len -= UM_SEALED_PREFIX_LEN;

    raw = malloc(um_base64url_decoded_len(text_len) + 1);
    if (raw == NULL) {
        return -1;
    }

    rc = -1;
    ctx = NULL;

    raw_len = um_base64url_decode(raw, (const unsigned char *) text,
                                  text_len);

    if (raw_len == (size_t) -1 || raw_len < UM_SEALED_OVERHEAD) {
        goto failed;
    }

    ct_len = raw_len - UM_SEALED_OVERHEAD;
    tag = raw + raw_len - UM_SEALED_TAG_LEN;

    if (ct_len > size) {
        goto failed;
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        goto failed;
    }

    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1
        || EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *) context,
                             (int) ctx_len) != 1
        || EVP_DecryptUpdate(ctx, out, &n, raw + UM_SEALED_NONCE_LEN,
                             (int) ct_len) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, UM_SEALED_TAG_LEN,
                               tag) != 1)
    {
        OPENSSL_cleanse(out, ct_len);
        goto failed;
    }

    /*
     * GCM decrypts before it authenticates: the plain text is already in
     * out when the tag turns out wrong.  Wipe it, so that a caller that
     * ignores the -1 still holds nothing an attacker chose.
     */

    if (EVP_DecryptFinal_ex(ctx, out + ct_len, &n) != 1) {
        OPENSSL_cleanse(out, ct_len);
        goto failed;
    }

    rc = (int) ct_len;

failed:

    EVP_CIPHER_CTX_free(ctx);
    free(raw);

    return rc;
}


static int
um_sealed_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}
