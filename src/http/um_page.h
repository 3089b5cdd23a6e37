/*
 * Pagination of list endpoints: page/page_size (or per_page, or size),
 * limit/offset (or skip), and keyset cursors; at most 100 items a page.
 */

#ifndef _UM_PAGE_H_INCLUDED_
#define _UM_PAGE_H_INCLUDED_

#include "um_http.h"


#define UM_PAGE_DEFAULT  20
#define UM_PAGE_MAX      100


typedef struct {
    ngx_uint_t   page;          /* 1-based */
    ngx_uint_t   page_size;
    ngx_uint_t   offset;
    ngx_str_t    cursor;        /* opaque, from next_cursor; may be empty */

    /*
     * Set by a list whose total is counted only up to a cap: the answer
     * then says whether the count stopped there (total_is_estimate), and
     * has_next comes from "more", which the list knows exactly.
     */
    unsigned     capped:1;
    unsigned     estimate:1;
    unsigned     more:1;
} um_page_t;


/*
 * NGX_OK, or the 400 answer was sent and ctx->rc holds what the handler
 * returns.
 */
ngx_int_t um_page_parse(um_ctx_t *ctx, um_page_t *page);

/*
 * A text filter of a list (at most 200 bytes): *value is NULL when it is
 * absent or empty.  NGX_OK, or the 400 answer was sent and ctx->rc holds
 * what the handler returns.
 */
ngx_int_t um_page_filter(um_ctx_t *ctx, const char *name,
    const char **value);

/* the same for "true" or "false" */
ngx_int_t um_page_filter_bool(um_ctx_t *ctx, const char *name,
    const char **value);

/*
 * {"data": {"<key>": <items>, "total", "page", "page_size", "pages",
 * "has_next", "has_prev", "next_cursor"}} around a JSON array PostgreSQL
 * built; next_cursor may be NULL.  A capped page adds "total_is_estimate"
 * after "total".
 */
ngx_int_t um_page_send(um_ctx_t *ctx, um_page_t *page, const char *key,
    u_char *items, size_t len, uint64_t total, const char *next_cursor);

/* the same for a query whose one row holds the total and the items */
ngx_int_t um_page_send_result(um_ctx_t *ctx, um_page_t *page,
    const char *key, PGresult *res);
/* the same with more members after next_cursor: extra is '"name":value' */
ngx_int_t um_page_send_extra(um_ctx_t *ctx, um_page_t *page, const char *key,
    u_char *items, size_t len, uint64_t total, const char *next_cursor,
    u_char *extra, size_t extra_len);


#endif /* _UM_PAGE_H_INCLUDED_ */
