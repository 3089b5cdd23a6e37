/*
 * The content handler every usermgmt location shares: find the route, read
 * and check the body, run the endpoint, and finish the request when its
 * asynchronous steps come back.
 *
 * An endpoint returns NGX_DONE when it has started a query whose callback
 * will finish the request, or the result of sending its answer otherwise.
 */

#include "um_http.h"
#include "um_validate.h"
#include "api/um_api.h"


static void um_ctx_cleanup(void *data);
static void um_body_ready(ngx_http_request_t *r);
static ngx_int_t um_body_parse(um_ctx_t *ctx);
static ngx_uint_t um_is_json_body(ngx_http_request_t *r);
static ngx_int_t um_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void um_query_result(um_pg_query_t *q, PGresult *res);
static void um_offload_done(void *data);
static ngx_int_t um_body_limited(um_ctx_t *ctx, ngx_int_t rc);


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


/* the system endpoints are routes outside the API table */
static const um_route_t  um_system_routes[] = {
    { 0, ngx_null_string, NULL, NULL, 0 },
    { 0, ngx_null_string, NULL, NULL, 0 },
    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/health"),
      um_system_health, NULL, UM_ROUTE_PUBLIC },
    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/ready"),
      um_system_ready, NULL, UM_ROUTE_PUBLIC },
    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/metrics"),
      um_system_metrics, NULL, UM_ROUTE_PUBLIC },
    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/.well-known/jwks.json"),
      um_auth_jwks, NULL, UM_ROUTE_PUBLIC },
};


ngx_int_t
ngx_http_usermgmt_content_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      allow;
    um_ctx_t                      *ctx;
    const um_route_t              *route;
    ngx_http_usermgmt_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_usermgmt_module);

    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);

    if (ctx == NULL) {
        ctx = um_ctx_create(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (lcf->content != UM_CONTENT_API) {
        route = &um_system_routes[lcf->content];

        ctx->metric = (lcf->content == UM_CONTENT_HEALTH) ? UM_METRIC_HEALTH
                      : (lcf->content == UM_CONTENT_READY) ? UM_METRIC_READY
                      : (lcf->content == UM_CONTENT_JWKS) ? UM_METRIC_JWKS
                      : UM_METRIC_METRICS;

        if (!(r->method & route->method)) {
            ngx_str_set(&allow, "GET, HEAD");
            (void) um_header_add(r, "Allow", &allow);
            return um_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                 UM_METHOD_NOT_ALLOWED,
                                 "method not allowed", NULL);
        }

        ctx->route = route;

    } else {
        if (!ctx->routed) {
            /* no access phase ran (a subrequest, or "satisfy any") */
            ctx->metric = UM_METRIC_UNMATCHED;
            ctx->route_rc = um_route_match(ctx, &ctx->allow, &ctx->bad);
            ctx->routed = 1;
        }

        rc = ctx->route_rc;

        if (rc == NGX_DECLINED) {
            return um_send_error(r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                                 "no such endpoint", NULL);
        }

        if (rc == NGX_HTTP_NOT_ALLOWED) {
            (void) um_header_add(r, "Allow", &ctx->allow);
            return um_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                 UM_METHOD_NOT_ALLOWED,
                                 "method not allowed", NULL);
        }

        if (rc == NGX_HTTP_BAD_REQUEST) {
            return um_send_error(r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                                 (char *) ctx->bad.data, NULL);
        }

        if (!(ctx->route->flags & UM_ROUTE_PUBLIC) && !ctx->authenticated) {
            return um_send_unauthorized(r, NULL);
        }
    }

    if (!(ctx->route->flags & UM_ROUTE_BODY)) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        rc = ctx->route->handler(ctx);

        if (rc == NGX_DONE) {
            /* held until the callback calls um_finish() */
            r->main->count++;
        }

        return rc;
    }

    if (!um_is_json_body(r)) {
        return um_send_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                             UM_UNSUPPORTED_MEDIA,
                             "the body must be sent as application/json",
                             NULL);
    }

    if (r->headers_in.content_length_n > lcf->max_body) {
        r->keepalive = 0;
        (void) ngx_http_discard_request_body(r);
        return um_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                             UM_PAYLOAD_TOO_LARGE,
                             "the request body is too large", NULL);
    }

    rc = ngx_http_read_client_request_body(r, um_body_ready);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


ngx_int_t
um_request_body_filter_init(void)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = um_request_body_filter;

    return NGX_OK;
}


void
um_finish(um_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->r;
    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * A query-string argument, percent-decoded ('+' is a space).  NGX_DECLINED
 * when absent, NGX_ERROR when it decodes to bytes that are not text.
 */
ngx_int_t
um_arg(um_ctx_t *ctx, const char *name, ngx_str_t *value)
{
    u_char     *dst, *src, *p;
    ngx_str_t   raw;

    if (ngx_http_arg(ctx->r, (u_char *) name, ngx_strlen(name), &raw)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* every '%' starts an escape of two hex digits */
    for (src = raw.data; src < raw.data + raw.len; src++) {
        if (*src == '%'
            && (src + 2 >= raw.data + raw.len
                || !isxdigit(src[1]) || !isxdigit(src[2])))
        {
            return NGX_ERROR;
        }
    }

    p = ngx_pnalloc(ctx->r->pool, raw.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, raw.data, raw.len);

    for (dst = p; dst < p + raw.len; dst++) {
        if (*dst == '+') {
            *dst = ' ';
        }
    }

    src = p;
    dst = p;
    ngx_unescape_uri(&dst, &src, raw.len, 0);
    *dst = '\0';

    value->data = p;
    value->len = dst - p;

    /* SQL parameters are text: valid UTF-8 without NUL bytes */
    return um_is_text(value->data, value->len) ? NGX_OK : NGX_ERROR;
}


ngx_int_t
um_query(um_ctx_t *ctx, um_pg_stmt_t *stmt, const char **values,
    int nvalues, ngx_int_t (*done)(um_ctx_t *ctx, PGresult *res))
{
    ngx_int_t       rc;
    um_pg_pool_t   *pool;
    um_pg_query_t  *q;

    pool = ctx->mcf->pg_pool;

    if (pool == NULL) {
        return um_send_unavailable(ctx->r, "postgres", 1000, NULL);
    }

    q = ngx_pcalloc(ctx->r->pool, sizeof(um_pg_query_t));
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q->stmt = stmt;
    q->values = values;
    q->nvalues = nvalues;
    q->handler = um_query_result;
    q->data = ctx;

    ctx->query_done = done;

    rc = um_pg_send(pool, q);

    if (rc == NGX_AGAIN) {
        ctx->query = q;
        return NGX_DONE;
    }

    return um_send_unavailable(ctx->r, "postgres", um_pg_retry_after(pool),
                               NULL);
}


/*
 * A mutation: its values, then those its audit row needs (the actor, the
 * body as JSON when with_body, the client address and User-Agent), in
 * the order the SQL functions of sql/migrations take them.  values must
 * have room for four more.
 */
ngx_int_t
um_query_audited(um_ctx_t *ctx, um_pg_stmt_t *stmt, const char **values,
    int nvalues, ngx_uint_t with_body,
    ngx_int_t (*done)(um_ctx_t *ctx, PGresult *res))
{
    char  *fields;

    values[nvalues++] = um_pstr(ctx, ctx->id.user_id.data,
                                ctx->id.user_id.len);

    if (with_body) {
        fields = json_dumps(ctx->body, JSON_COMPACT);
        if (fields == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        values[nvalues++] = um_pstr(ctx, (u_char *) fields,
                                    ngx_strlen(fields));
        free(fields);
    }

    values[nvalues++] = um_client_ip(ctx);
    values[nvalues++] = um_user_agent(ctx);

    return um_query(ctx, stmt, values, nvalues, done);
}


/* the done callback of a creation whose function returns the new object */
ngx_int_t
um_created(um_ctx_t *ctx, PGresult *res)
{
    return um_send_row(ctx->r, res, NGX_HTTP_CREATED, NULL);
}


/*
 * What a failed statement means to the client.  Handlers that expect a
 * particular constraint to fire look at the result themselves first.
 */
ngx_int_t
um_pg_error_answer(ngx_http_request_t *r, PGresult *res)
{
    char        *state, *message, *detail, *constraint;
    ngx_uint_t   i;

    /* the unique indexes a client can run into, and the field they guard */
    static const char  *unique[][2] = {
        { "users_org_email_key", "email" },
        { "users_org_username_key", "username" },
        { "organizations_slug_key", "slug" },
        { "roles_org_name_key", "name" },
        { "permissions_name_key", "name" },
        { "locations_org_code_key", "code" },
        { NULL, NULL }
    };

    /* the SQLSTATEs the functions raise, and the answer each means */
    static const struct {
        const char  *state;
        ngx_uint_t   status;
        const char  *code;
    } raised[] = {
        { "UMBAD", NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST },
        { "UMUNA", NGX_HTTP_UNAUTHORIZED, UM_UNAUTHORIZED },
        { "UMFBD", NGX_HTTP_FORBIDDEN, UM_FORBIDDEN },
        { "UMNOF", NGX_HTTP_NOT_FOUND, UM_NOT_FOUND },
        { "UMCON", NGX_HTTP_CONFLICT, UM_CONFLICT },
        { NULL, 0, NULL }
    };

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

    if (state == NULL) {
        state = "XX000";
    }

    /* raised by the functions of sql/migrations for the client */
    if (ngx_strncmp(state, "UM", 2) == 0 && message != NULL) {

        if (ngx_strcmp(state, "UMVAL") == 0) {
            return um_send_invalid(r, detail ? detail : "body", "invalid",
                                   message);
        }

        for (i = 0; raised[i].state != NULL; i++) {
            if (ngx_strcmp(state, raised[i].state) == 0) {
                return um_send_error(r, raised[i].status, raised[i].code,
                                     message, NULL);
            }
        }
    }

    if (ngx_strcmp(state, "23505") == 0) {
        constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

        for (i = 0; constraint && unique[i][0]; i++) {
            if (ngx_strcmp(constraint, unique[i][0]) == 0) {
                return um_send_error(r, NGX_HTTP_CONFLICT, UM_CONFLICT,
                                     "the resource already exists",
                                     json_pack("[{ss ss ss}]",
                                               "field", unique[i][1],
                                               "rule", "unique",
                                               "message",
                                               "is already taken"));
            }
        }

        return um_send_error(r, NGX_HTTP_CONFLICT, UM_CONFLICT,
                             "the resource already exists", NULL);
    }

    if (ngx_strcmp(state, "23503") == 0) {
        return um_send_error(r, NGX_HTTP_CONFLICT, UM_CONFLICT,
                             "a referenced resource does not exist "
                             "or is still in use", NULL);
    }

    if (ngx_strncmp(state, "22", 2) == 0 || ngx_strcmp(state, "23514") == 0) {
        constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

        return um_send_invalid(r, constraint ? constraint : "body", "invalid",
                               "a value is out of range or malformed");
    }

    if (ngx_strcmp(state, "57014") == 0 || ngx_strncmp(state, "08", 2) == 0
        || ngx_strncmp(state, "53", 2) == 0 || ngx_strncmp(state, "57P", 3) == 0
        || ngx_strcmp(state, "40001") == 0 || ngx_strcmp(state, "40P01") == 0)
    {
        return um_send_unavailable(r, "postgres", 1000, NULL);
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "usermgmt: query failed: %s %s", state,
                  PQresultErrorMessage(res));

    return um_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR, UM_INTERNAL_ERROR,
                         "internal error", NULL);
}


/* NUL-terminated copies for SQL parameters */
const char *
um_pstr(um_ctx_t *ctx, u_char *data, size_t len)
{
    u_char  *p;

    p = ngx_pnalloc(ctx->r->pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, data, len);
    p[len] = '\0';

    return (const char *) p;
}


const char *
um_pint(um_ctx_t *ctx, int64_t n)
{
    u_char  *p;

    p = ngx_pnalloc(ctx->r->pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NULL;
    }

    *ngx_sprintf(p, "%L", n) = '\0';

    return (const char *) p;
}


const char *
um_client_ip(um_ctx_t *ctx)
{
    ngx_str_t  *a;

    a = &ctx->r->connection->addr_text;

    return um_pstr(ctx, a->data, a->len);
}


/*
 * The User-Agent for the audit trail: at most 512 bytes of text.  A client
 * controls it, so anything that is not printable UTF-8 becomes '?', and it
 * is cut on a character boundary.
 */
const char *
um_user_agent(um_ctx_t *ctx)
{
    u_char           *p, *src, *last, *dst, *next;
    ngx_table_elt_t  *h;

    h = ctx->r->headers_in.user_agent;

    if (h == NULL) {
        return NULL;
    }

    p = ngx_pnalloc(ctx->r->pool, 513);
    if (p == NULL) {
        return NULL;
    }

    src = h->value.data;
    last = src + h->value.len;
    dst = p;

    while (src < last) {
        next = src;

        if (*src >= 0x20 && *src < 0x7f) {
            next = src + 1;

        } else if (*src < 0x80
                   || ngx_utf8_decode(&next, last - src) > 0x10ffff
                   || !um_is_text(src, next - src))
        {
            /* not printable text */
            if (dst + 1 > p + 512) {
                break;
            }

            *dst++ = '?';
            src++;
            continue;
        }

        if (dst + (next - src) > p + 512) {
            break;
        }

        dst = ngx_cpymem(dst, src, next - src);
        src = next;
    }

    *dst = '\0';

    return (const char *) p;
}


/*
 * Runs work in the thread pool, then resume(ctx) on the event loop.  The
 * request is held (blocked) meanwhile, so it cannot be freed under the
 * thread even if the client goes away.
 */
ngx_int_t
um_offload(um_ctx_t *ctx, um_thread_work_pt work,
    ngx_int_t (*resume)(um_ctx_t *ctx))
{
    ngx_http_request_t  *r;

    r = ctx->r;

    if (um_thread_run(ctx->mcf->thread_pool, r->pool, r->connection->log,
                      work, um_offload_done, ctx)
        != NGX_OK)
    {
        return um_send_unavailable(r, "the worker thread pool", 1000, NULL);
    }

    ctx->resume = resume;
    r->main->blocked++;
    r->aio = 1;

    return NGX_DONE;
}


uint64_t
um_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* the context of a request met first in a phase before the content one */
um_ctx_t *
um_ctx_get(ngx_http_request_t *r)
{
    um_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);

    if (ctx == NULL) {
        ctx = um_ctx_create(r);

        if (ctx != NULL) {
            ctx->metric = UM_METRIC_PROTECTED;
        }
    }

    return ctx;
}


um_ctx_t *
um_ctx_create(ngx_http_request_t *r)
{
    um_ctx_t            *ctx;
    ngx_pool_cleanup_t  *cln;

    ctx = ngx_pcalloc(r->pool, sizeof(um_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = um_ctx_cleanup;
    cln->data = ctx;

    ctx->r = r;
    ctx->mcf = ngx_http_get_module_main_conf(r, ngx_http_usermgmt_module);
    ctx->start_us = um_now_us();

    ngx_http_set_ctx(r, ctx, ngx_http_usermgmt_module);

    return ctx;
}


/* the request is going away: let go of everything still in flight */
static void
um_ctx_cleanup(void *data)
{
    um_ctx_t  *ctx = data;

    if (ctx->query != NULL) {
        um_pg_cancel(ctx->query);
        ctx->query = NULL;
    }

    if (ctx->redis != NULL) {
        um_redis_cancel(ctx->redis);
        ctx->redis = NULL;
    }

    if (ctx->limit != NULL) {
        um_limit_cancel(ctx);
    }

    if (ctx->body != NULL) {
        json_decref(ctx->body);
        ctx->body = NULL;
    }
}


static void
um_body_ready(ngx_http_request_t *r)
{
    ngx_int_t   rc;
    um_ctx_t   *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);

    if (ctx->body_too_large) {
        rc = um_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                           UM_PAYLOAD_TOO_LARGE,
                           "the request body is too large", NULL);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (um_body_parse(ctx) != NGX_OK) {
        ngx_http_finalize_request(r, ctx->rc);
        return;
    }

    /* limits keyed by the account of the body */
    rc = um_limit_after_body(ctx, um_body_limited);

    if (rc == NGX_DONE) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, ctx->rc);
        return;
    }

    rc = ctx->route->handler(ctx);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


static ngx_int_t
um_body_parse(um_ctx_t *ctx)
{
    u_char              *p, *buf;
    size_t               len;
    json_t              *body;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    json_error_t         err;
    ngx_http_request_t  *r;
    u_char               msg[JSON_ERROR_TEXT_LENGTH + 64];

    r = ctx->r;

    if (r->request_body == NULL || r->request_body->temp_file != NULL) {
        ctx->rc = um_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                UM_PAYLOAD_TOO_LARGE,
                                "the request body is too large", NULL);
        return NGX_DECLINED;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len == 0) {
        if (ctx->route->flags & UM_ROUTE_OPTIONAL_BODY) {
            return NGX_OK;
        }

        ctx->rc = um_send_error(r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                                "a JSON object body is required", NULL);
        return NGX_DECLINED;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL) {
        buf = cl->buf->pos;

    } else {
        buf = ngx_pnalloc(r->pool, len);
        if (buf == NULL) {
            ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DECLINED;
        }

        p = buf;

        for ( /* void */ ; cl; cl = cl->next) {
            b = cl->buf;
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    /* duplicate keys make a body mean different things to different readers */
    body = json_loadb((char *) buf, len, JSON_REJECT_DUPLICATES, &err);

    if (body == NULL) {
        ngx_snprintf(msg, sizeof(msg) - 1, "malformed JSON at line %d, "
                     "column %d: %s%Z", err.line, err.column, err.text);
        ctx->rc = um_send_error(r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                                (char *) msg, NULL);
        return NGX_DECLINED;
    }

    if (!json_is_object(body)) {
        json_decref(body);
        ctx->rc = um_send_error(r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                                "the body must be a JSON object", NULL);
        return NGX_DECLINED;
    }

    ctx->body = body;

    return NGX_OK;
}


/* no body at all (the parser then says what is missing), or JSON */
static ngx_uint_t
um_is_json_body(ngx_http_request_t *r)
{
    u_char      *p, *last;
    ngx_str_t    type;

    if (r->headers_in.content_type == NULL) {
        return r->headers_in.content_length_n <= 0 && !r->headers_in.chunked;
    }

    type = r->headers_in.content_type->value;
    last = type.data + type.len;

    for (p = type.data; p < last && *p != ';' && *p != ' '; p++) {
        /* void */
    }

    type.len = p - type.data;

    if (type.len == sizeof("application/json") - 1
        && ngx_strncasecmp(type.data, (u_char *) "application/json",
                           type.len) == 0)
    {
        return 1;
    }

    /* application/merge-patch+json and the like */
    return type.len > 17
           && ngx_strncasecmp(type.data, (u_char *) "application/", 12) == 0
           && ngx_strncasecmp(p - 5, (u_char *) "+json", 5) == 0;
}


/*
 * Counts the decoded body of API requests.  Past the limit the bytes are
 * consumed and dropped, so a chunked upload cannot grow the buffer; the
 * post handler then answers 413 in JSON.
 */
static ngx_int_t
um_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                   *cl;
    ngx_http_request_body_t       *rb;
    um_ctx_t                      *ctx;
    ngx_http_usermgmt_loc_conf_t  *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);

    if (ctx == NULL || ctx->route == NULL) {
        return ngx_http_next_request_body_filter(r, in);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_usermgmt_module);

    if (lcf->content != UM_CONTENT_API) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        ctx->body_size += ngx_buf_size(cl->buf);
    }

    /*
     * Over the limit; or the buffer (sized for the limit) is full while the
     * body goes on, which chunked framing of tiny chunks can cause: nginx
     * would then spool to a file, and the API keeps bodies in memory.
     */
    rb = r->request_body;

    if (!ctx->body_too_large
        && (ctx->body_size > lcf->max_body
            || (rb->buf != NULL && rb->buf->last == rb->buf->end
                && rb->rest > 0)))
    {
        ctx->body_too_large = 1;

        /* what was kept so far is dropped too, so the buffer frees up */
        for (cl = rb->bufs; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
        }

        rb->bufs = NULL;
    }

    if (!ctx->body_too_large) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
    }

    /* let the save filter see the end of the body, without its bytes */
    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf) {
            return ngx_http_next_request_body_filter(r, cl);
        }
    }

    return NGX_OK;
}


static void
um_query_result(um_pg_query_t *q, PGresult *res)
{
    ngx_int_t            rc;
    um_ctx_t            *ctx;
    ExecStatusType       st;
    ngx_http_request_t  *r;

    ctx = q->data;
    r = ctx->r;
    ctx->query = NULL;

    switch (q->status) {

    case UM_PG_OK:
        st = PQresultStatus(res);

        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            rc = ctx->query_done(ctx, res);

        } else {
            rc = um_pg_error_answer(r, res);
        }

        break;

    case UM_PG_TIMEOUT:
        rc = um_send_unavailable(r, "postgres", 1000, NULL);
        break;

    default: /* UM_PG_UNAVAILABLE, UM_PG_BUSY */
        rc = um_send_unavailable(r, "postgres",
                                 um_pg_retry_after(ctx->mcf->pg_pool), NULL);
        break;
    }

    if (rc != NGX_DONE) {
        um_finish(ctx, rc);
    }
}


static void
um_offload_done(void *data)
{
    um_ctx_t            *ctx = data;
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->r;
    r->main->blocked--;
    r->aio = 0;

    rc = ctx->resume(ctx);

    if (rc != NGX_DONE) {
        um_finish(ctx, rc);

    } else {
        ngx_http_run_posted_requests(r->connection);
    }
}


/* back from the limiter that waited for the body: run the endpoint */
static ngx_int_t
um_body_limited(um_ctx_t *ctx, ngx_int_t rc)
{
    if (rc == NGX_DONE) {
        /* refused: the answer is sent and the request finished */
        return NGX_DONE;
    }

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ctx->route->handler(ctx);
}
