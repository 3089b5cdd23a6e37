/*
 * Exponential back-off for reconnecting to a server that refused or lost
 * a connection: 100 ms doubling to 2 s.  While it runs, callers are told
 * "unavailable" at once instead of waiting on a dead server.
 */

#ifndef _UM_BACKOFF_H_INCLUDED_
#define _UM_BACKOFF_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


#define UM_BACKOFF_MIN  100
#define UM_BACKOFF_MAX  2000


typedef struct {
    ngx_msec_t  delay;
    ngx_msec_t  retry_at;
} um_backoff_t;


static ngx_inline void
um_backoff_failed(um_backoff_t *b)
{
    if (b->delay < UM_BACKOFF_MIN) {
        b->delay = UM_BACKOFF_MIN;
    }

    b->retry_at = ngx_current_msec + b->delay;
    b->delay = ngx_min(b->delay * 2, UM_BACKOFF_MAX);
}


static ngx_inline void
um_backoff_reset(um_backoff_t *b)
{
    b->delay = 0;
    b->retry_at = ngx_current_msec;
}


/* still waiting before the next attempt */
static ngx_inline ngx_uint_t
um_backoff_waiting(um_backoff_t *b)
{
    return (ngx_msec_int_t) (b->retry_at - ngx_current_msec) > 0;
}


/* what to tell a client in Retry-After, in ms: at least a second */
static ngx_inline ngx_msec_t
um_backoff_retry_after(um_backoff_t *b)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (b->retry_at - ngx_current_msec);

    return left > 1000 ? (ngx_msec_t) left : 1000;
}


#endif /* _UM_BACKOFF_H_INCLUDED_ */
