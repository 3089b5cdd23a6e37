#include "um_page.h"


static ngx_int_t um_page_number(um_ctx_t *ctx, const char *name,
    ngx_uint_t min, ngx_uint_t max, ngx_uint_t *value, ngx_uint_t *set);


#define UM_PAGE_SIZE    0
#define UM_PAGE_NUMBER  1
#define UM_PAGE_OFFSET  2


ngx_int_t
um_page_parse(um_ctx_t *ctx, um_page_t *page)
{
    ngx_uint_t  i, n, set, offset_set;

    /* the names the seeds use for the same things */
    static const struct {
        const char  *name;
        ngx_uint_t   min;
        ngx_uint_t   max;
        ngx_uint_t   what;
    } params[] = {
        { "page_size", 1, UM_PAGE_MAX, UM_PAGE_SIZE },
        { "per_page", 1, UM_PAGE_MAX, UM_PAGE_SIZE },
        { "size", 1, UM_PAGE_MAX, UM_PAGE_SIZE },
        { "limit", 1, UM_PAGE_MAX, UM_PAGE_SIZE },
        { "page", 1, 10000000, UM_PAGE_NUMBER },
        { "offset", 0, 1000000000, UM_PAGE_OFFSET },
        { "skip", 0, 1000000000, UM_PAGE_OFFSET },
    };

    ngx_memzero(page, sizeof(um_page_t));

    page->page = 1;
    page->page_size = UM_PAGE_DEFAULT;
    offset_set = 0;

    for (i = 0; i < sizeof(params) / sizeof(params[0]); i++) {

        if (um_page_number(ctx, params[i].name, params[i].min, params[i].max,
                           &n, &set)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }

        if (!set) {
            continue;
        }

        switch (params[i].what) {

        case UM_PAGE_SIZE:
            page->page_size = n;
            break;

        case UM_PAGE_NUMBER:
            page->page = n;
            break;

        default:
            page->offset = n;
            offset_set = 1;
            break;
        }
    }

    if (offset_set) {
        page->page = page->offset / page->page_size + 1;

    } else {
        page->offset = (page->page - 1) * page->page_size;
    }

    if (um_arg(ctx, "cursor", &page->cursor) == NGX_ERROR) {
        ctx->rc = um_send_invalid(ctx->r, "cursor", "format",
                                  "cursor is not a valid cursor");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
um_page_send(um_ctx_t *ctx, um_page_t *page, const char *key, u_char *items,
    size_t len, uint64_t total, const char *next_cursor)
{
    return um_page_send_extra(ctx, page, key, items, len, total, next_cursor,
                              NULL, 0);
}


ngx_int_t
um_page_send_extra(um_ctx_t *ctx, um_page_t *page, const char *key,
    u_char *items, size_t len, uint64_t total, const char *next_cursor,
    u_char *extra, size_t extra_len)
{
    u_char      *body, *p;
    size_t       size;
    uint64_t     pages;
    ngx_uint_t   more;

    pages = (total + page->page_size - 1) / page->page_size;

    more = page->capped ? page->more
                        : page->offset + page->page_size < total;

    size = len + ngx_strlen(key) + 320 + extra_len
           + (next_cursor ? ngx_strlen(next_cursor) : 0);

    body = ngx_pnalloc(ctx->r->pool, size);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"%s\":", key);
    p = ngx_cpymem(p, items, len);
    p = ngx_sprintf(p, ",\"total\":%uL", total);

    if (page->capped) {
        p = ngx_sprintf(p, ",\"total_is_estimate\":%s",
                        page->estimate ? "true" : "false");
    }

    p = ngx_sprintf(p, ",\"page\":%ui,\"page_size\":%ui,"
                    "\"per_page\":%ui,\"pages\":%uL,\"has_next\":%s,"
                    "\"has_prev\":%s,\"next_cursor\":",
                    page->page, page->page_size, page->page_size, pages,
                    more ? "true" : "false",
                    page->offset > 0 ? "true" : "false");

    /* cursors are base64url: nothing to escape */
    if (next_cursor != NULL) {
        p = ngx_sprintf(p, "\"%s\"", next_cursor);

    } else {
        p = ngx_sprintf(p, "null");
    }

    if (extra_len) {
        *p++ = ',';
        p = ngx_cpymem(p, extra, extra_len);
    }

    *p++ = '}';

    return um_send_data(ctx->r, NGX_HTTP_OK, body, p - body);
}


ngx_int_t
um_page_send_result(um_ctx_t *ctx, um_page_t *page, const char *key,
    PGresult *res)
{
    off_t  total;

    if (PQntuples(res) != 1 || PQnfields(res) != 2) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    total = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                      PQgetlength(res, 0, 0));

    if (total == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_page_send(ctx, page, key, (u_char *) PQgetvalue(res, 0, 1),
                        PQgetlength(res, 0, 1), (uint64_t) total, NULL);
}


ngx_int_t
um_page_filter(um_ctx_t *ctx, const char *name, const char **value)
{
    ngx_int_t  rc;
    ngx_str_t  s;

    rc = um_arg(ctx, name, &s);

    if (rc == NGX_ERROR || (rc == NGX_OK && s.len > 200)) {
        ctx->rc = um_send_error(ctx->r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                                "a filter must be text of at most 200 bytes",
                                json_pack("[{ss ss ss}]", "field", name,
                                          "rule", "format", "message",
                                          "must be text of at most 200 "
                                          "bytes"));
        return NGX_DECLINED;
    }

    *value = (rc == NGX_OK && s.len > 0) ? (const char *) s.data : NULL;

    return NGX_OK;
}


ngx_int_t
um_page_filter_bool(um_ctx_t *ctx, const char *name, const char **value)
{
    ngx_int_t  rc;
    ngx_str_t  s;

    rc = um_arg(ctx, name, &s);

    if (rc == NGX_DECLINED) {
        *value = NULL;
        return NGX_OK;
    }

    if (rc == NGX_OK && s.len == 4 && ngx_strncmp(s.data, "true", 4) == 0) {
        *value = "true";
        return NGX_OK;
    }

    if (rc == NGX_OK && s.len == 5 && ngx_strncmp(s.data, "false", 5) == 0) {
        *value = "false";
        return NGX_OK;
    }

    ctx->rc = um_send_error(ctx->r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                            "a filter must be true or false",
                            json_pack("[{ss ss ss}]", "field", name,
                                      "rule", "type", "message",
                                      "must be true or false"));
    return NGX_DECLINED;
}


static ngx_int_t
um_page_number(um_ctx_t *ctx, const char *name, ngx_uint_t min,
    ngx_uint_t max, ngx_uint_t *value, ngx_uint_t *set)
{
    ngx_int_t   rc, n;
    ngx_str_t   s;
    u_char      msg[96];

    *set = 0;

    rc = um_arg(ctx, name, &s);

    if (rc == NGX_DECLINED) {
        return NGX_OK;
    }

    n = (rc == NGX_OK && s.len > 0) ? ngx_atoi(s.data, s.len) : NGX_ERROR;

    if (n == NGX_ERROR || (ngx_uint_t) n < min || (ngx_uint_t) n > max) {
        ngx_snprintf(msg, sizeof(msg), "%s must be a whole number from %ui "
                     "to %ui%Z", name, min, max);
        ctx->rc = um_send_error(ctx->r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                                (char *) msg,
                                json_pack("[{ss ss ss}]", "field", name,
                                          "rule", "range", "message", msg));
        return NGX_DECLINED;
    }

    *value = n;
    *set = 1;

    return NGX_OK;
}
