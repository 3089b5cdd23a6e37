#include <stdio.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "um_token.h"
#include "um_base64url.h"


int
um_token_new(char token[UM_TOKEN_LEN + 1], char hash[UM_TOKEN_HASH_LEN + 1])
{
    unsigned char  raw[32];

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return -1;
    }

    um_base64url_encode((unsigned char *) token, raw, sizeof(raw));
    token[UM_TOKEN_LEN] = '\0';

    um_token_hash(token, UM_TOKEN_LEN, hash);

    return 0;
}


void
um_token_hash(const char *token, size_t len, char hash[UM_TOKEN_HASH_LEN + 1])
{
    size_t         i;
    unsigned char  md[SHA256_DIGEST_LENGTH];
    static const char  hex[] = "0123456789abcdef";

    SHA256((const unsigned char *) token, len, md);

    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        hash[2 * i] = hex[md[i] >> 4];
        hash[2 * i + 1] = hex[md[i] & 0x0f];
    }

    hash[UM_TOKEN_HASH_LEN] = '\0';
}


int
um_uuid_v4(char out[37])
{
    unsigned char  b[16];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        return -1;
    }

    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;

    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);

    return 0;
}
