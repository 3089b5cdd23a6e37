/*
 * What the two halves of the rate limiter share: um_limit.c (zones, keys,
 * the decision and its answer, the local fallback) and um_limit_redis.c
 * (the GCRA script and the batches of requests that go to Redis).
 */

#ifndef _UM_LIMIT_H_INCLUDED_
#define _UM_LIMIT_H_INCLUDED_

#include "um_http.h"


/* one limit of a request */
typedef struct {
    um_limit_zone_t       *zone;
    u_char                *key;
    size_t                 key_len;
    double                 interval;   /* us between requests */
    ngx_uint_t             capacity;
    ngx_uint_t             count;      /* for the headers */
    ngx_msec_t             period;
    int64_t                remaining;
    int64_t                retry;      /* ms */
    int64_t                reset;      /* ms */
} um_limit_check_t;


typedef struct um_limit_slot_s  um_limit_slot_t;

/* the limits of a request, ctx->limit */
typedef struct {
    um_limit_check_t      *checks;
    ngx_uint_t             n;
    ngx_int_t            (*resume)(um_ctx_t *ctx, ngx_int_t rc);
    um_limit_slot_t       *slot;       /* while waiting for Redis */
} um_limit_run_t;


/* um_limit_redis.c */

/*
 * NGX_AGAIN: the request waits for Redis, and um_limit_resolved() is
 * called.  NGX_ERROR: Redis cannot be asked; decide without it.
 */
ngx_int_t um_limit_redis_ask(um_ctx_t *ctx);
void um_limit_script_sha(u_char *sha);   /* 40 hex digits and a NUL */


/* um_limit.c */

/*
 * Redis has decided (allowed 1 or 0, with remaining, retry and reset of
 * every check filled in) or could not (allowed -1).
 */
void um_limit_resolved(um_ctx_t *ctx, ngx_int_t allowed);


#endif /* _UM_LIMIT_H_INCLUDED_ */
