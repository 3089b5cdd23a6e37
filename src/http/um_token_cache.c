/*
 * The verified access tokens a worker has seen, so that a client calling
 * again with the same token costs a hash and a compare instead of a
 * base64 decode, an HMAC or signature check and two JSON parses.
 *
 * An entry is the exact token text and its claims; it is used only while
 * the token is unexpired (with the leeway), and a revoked token is still
 * refused: revocation is checked on every request after this.  Direct
 * mapped and per worker: no locks, bounded memory, a reload starts empty.
 */

#include "um_http.h"


#define UM_TOKEN_CACHE_SIZE  4096       /* a power of two */


typedef struct {
    uint64_t    hash;
    u_char     *token;
    size_t      len;
    json_t     *claims;
    time_t      exp;
} um_token_cache_entry_t;


static um_token_cache_entry_t  *um_token_cache;


static uint64_t
um_token_cache_hash(u_char *p, size_t len)
{
    size_t    n;
    uint64_t  h;

    /*
     * FNV-1a over the end of the token: its signature, which is as good as
     * random; the full text is compared on a hit anyway.
     */
    n = ngx_min(len, 32);
    p += len - n;
    h = 0xcbf29ce484222325ULL ^ len;

    while (n--) {
        h ^= *p++;
        h *= 0x100000001b3ULL;
    }

    return h;
}


/* the claims of a token verified before (a new reference), or NULL */
json_t *
um_token_cache_get(ngx_str_t *token, time_t leeway)
{
    uint64_t                 h;
    um_token_cache_entry_t  *e;

    if (um_token_cache == NULL) {
        return NULL;
    }

    h = um_token_cache_hash(token->data, token->len);
    e = &um_token_cache[h & (UM_TOKEN_CACHE_SIZE - 1)];

    if (e->claims == NULL || e->hash != h || e->len != token->len
        || e->exp + leeway < ngx_time()
        || ngx_memcmp(e->token, token->data, token->len) != 0)
    {
        return NULL;
    }

    return json_incref(e->claims);
}


/* keeps a verified token; takes nothing from the caller */
void
um_token_cache_put(ngx_str_t *token, json_t *claims, ngx_log_t *log)
{
    uint64_t                 h;
    json_t                  *exp;
    u_char                  *copy;
    um_token_cache_entry_t  *e;

    if (um_token_cache == NULL) {
        um_token_cache = ngx_calloc(UM_TOKEN_CACHE_SIZE
                                    * sizeof(um_token_cache_entry_t), log);
        if (um_token_cache == NULL) {
            return;
        }
    }

    exp = json_object_get(claims, "exp");
    if (!json_is_number(exp)) {
        return;
    }

    copy = ngx_alloc(token->len, log);
    if (copy == NULL) {
        return;
    }

    ngx_memcpy(copy, token->data, token->len);

    h = um_token_cache_hash(token->data, token->len);
    e = &um_token_cache[h & (UM_TOKEN_CACHE_SIZE - 1)];

    if (e->claims != NULL) {
        json_decref(e->claims);
        ngx_free(e->token);
    }

    e->hash = h;
    e->token = copy;
    e->len = token->len;
    e->claims = json_incref(claims);
    e->exp = (time_t) json_number_value(exp);
}


void
um_token_cache_free(void)
{
    ngx_uint_t  i;

    if (um_token_cache == NULL) {
        return;
    }

    for (i = 0; i < UM_TOKEN_CACHE_SIZE; i++) {
        if (um_token_cache[i].claims != NULL) {
            json_decref(um_token_cache[i].claims);
            ngx_free(um_token_cache[i].token);
        }
    }

    ngx_free(um_token_cache);
    um_token_cache = NULL;
}
