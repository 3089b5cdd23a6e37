/*
 * The audit trail.
 *
 *   GET /api/v1/audit/logs                     audit:read: a page of the
 *                                              tenant's trail, newest first
 *   GET /api/v1/audit/user/{id}/activity       audit:read, or oneself: what
 *                                              a user did and underwent
 *   GET /api/v1/audit/organization/{id}/stats  audit:read: a tenant in
 *                                              figures
 *   GET /api/v1/audit/export                   audit:export: the trail as
 *                                              CSV or JSON, streamed
 *
 * The rows are written by the SQL function of each mutation, in the same
 * transaction (um_audit() of sql/migrations/0002_auth.sql); this file only
 * reads them, through the functions of sql/migrations/0008_audit.sql.
 *
 * An export may hold millions of rows, so it never exists whole in the
 * worker.  Its upper bound is fixed first; then batches of rows, oldest
 * first, each starting after the last row of the one before (a keyset on
 * created_at and id), are asked for one at a time, each a query of its
 * own (the connection goes back to the pool in between).  PostgreSQL
 * formats every row as a line; a batch is copied into one buffer, reused
 * from batch to batch, and sent.  The next batch is asked for only when
 * the client has taken the previous one, so a slow reader slows the
 * export down instead of filling the worker's memory.
 */

#include "um_api.h"
#include "http/um_page.h"
#include "auth/um_base64url.h"


#define UM_AUDIT_BATCH      5000    /* rows a query of an export fetches */
#define UM_AUDIT_BUF_MIN    65536

#define UM_AUDIT_TIME_LEN   40      /* a parsed time, for PostgreSQL */
#define UM_AUDIT_TS_LEN     27      /* um_ts_exact(): ...T00:00:00.000000Z */
#define UM_AUDIT_UUID_LEN   36
#define UM_AUDIT_CURSOR_LEN (UM_AUDIT_TS_LEN + 1 + UM_AUDIT_UUID_LEN)

#define UM_AUDIT_DAYS       30
#define UM_AUDIT_DAYS_MAX   365


/* the filters of /audit/logs and /audit/export, as SQL parameters */
typedef struct {
    const char          *org;           /* NULL: every tenant */
    const char          *actor;
    const char          *action;        /* exact */
    const char          *prefix;        /* "auth." for action=auth.* */
    const char          *action_arg;    /* as given */
    const char          *resource;
    const char          *resource_id;
    const char          *status;
    const char          *from;
    const char          *to;
} um_audit_filter_t;


/* a page of /audit/logs */
typedef struct {
    um_page_t            page;
    ngx_uint_t           cursor;        /* the page follows a cursor */
} um_audit_list_t;


/* an export under way */
typedef struct {
    um_audit_filter_t    filter;
    ngx_uint_t           json;          /* else CSV */

    um_pg_query_t        query;         /* of every batch */
    const char          *values[12];
    char                 after_ts[UM_AUDIT_TIME_LEN];
    char                 after_id[UM_AUDIT_UUID_LEN + 1];
    char                 bound[UM_AUDIT_TIME_LEN];

    u_char              *start;         /* the batch buffer */
    size_t               size;
    ngx_buf_t           *sent;          /* the last buffer given to nginx */
    ngx_chain_t          out;
    uint64_t             rows;
} um_audit_export_t;


static ngx_int_t um_audit_logs_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_audit_json_done(um_ctx_t *ctx, PGresult *res);

static ngx_int_t um_audit_export_begin(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_audit_export_header(um_ctx_t *ctx);
static ngx_int_t um_audit_export_next(um_ctx_t *ctx, ngx_int_t rc);
static void um_audit_export_result(um_pg_query_t *q, PGresult *res);
static ngx_int_t um_audit_export_batch(um_ctx_t *ctx, PGresult *res);
static void um_audit_export_writer(ngx_http_request_t *r);

static ngx_int_t um_audit_filter(um_ctx_t *ctx, um_audit_filter_t *f);
static ngx_int_t um_audit_scope(um_ctx_t *ctx, const char **org);
static ngx_int_t um_audit_days(um_ctx_t *ctx, ngx_int_t *days);
static ngx_int_t um_audit_arg(um_ctx_t *ctx, const char *name,
    ngx_str_t *value);
static ngx_int_t um_audit_time_arg(um_ctx_t *ctx, const char *name,
    ngx_uint_t end, const char **value, int64_t *t);
static ngx_int_t um_audit_time(u_char *p, size_t len, ngx_uint_t end,
    u_char *out, int64_t *t);
static ngx_int_t um_audit_digits(u_char *p, ngx_uint_t n);
static int64_t um_audit_days_from_civil(ngx_int_t y, ngx_int_t m,
    ngx_int_t d);
static ngx_int_t um_audit_cursor(um_ctx_t *ctx, ngx_str_t *cursor,
    const char **ts, const char **id);
static const char *um_audit_cursor_make(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_audit_bad(um_ctx_t *ctx, const char *field,
    const char *rule, const char *message);


static um_pg_stmt_t  um_sql_audit_list = um_pg_stmt(
    "SELECT total, skipped, items, last_ts, last_id"
    "  FROM um_audit_list($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
    "                     $12, $13)");

static um_pg_stmt_t  um_sql_audit_activity = um_pg_stmt(
    "SELECT um_audit_user_activity($1, $2, $3, $4, $5, $6)");

static um_pg_stmt_t  um_sql_audit_stats = um_pg_stmt(
    "SELECT um_audit_org_stats($1, $2, $3)");

static um_pg_stmt_t  um_sql_audit_export_start = um_pg_stmt(
    "SELECT um_audit_export_start($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
    "                             $11, $12)");

static um_pg_stmt_t  um_sql_audit_export_batch = um_pg_stmt(
    "SELECT line, last_ts, last_id"
    "  FROM um_audit_export_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
    "                             $11, $12)");


/* the columns of um_audit_csv() */
static u_char  um_audit_csv_header[] =
    "id,created_at,organization_id,actor_id,actor_email,action,resource,"
    "resource_id,status,ip,user_agent,changes,metadata\r\n";

static u_char  um_audit_json_open[] = "[\n";
static u_char  um_audit_json_close[] = "\n]\n";


ngx_int_t
um_audit_logs(um_ctx_t *ctx)
{
    const char          **v, *cursor_ts, *cursor_id;
    um_audit_list_t      *l;
    um_audit_filter_t     f;

    l = ngx_pcalloc(ctx->r->pool, sizeof(um_audit_list_t));
    v = ngx_palloc(ctx->r->pool, 13 * sizeof(char *));

    if (l == NULL || v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_page_parse(ctx, &l->page) != NGX_OK) {
        return ctx->rc;
    }

    if (um_audit_filter(ctx, &f) != NGX_OK) {
        return ctx->rc;
    }

    cursor_ts = NULL;
    cursor_id = NULL;

    if (l->page.cursor.len > 0) {
        if (um_audit_cursor(ctx, &l->page.cursor, &cursor_ts, &cursor_id)
            != NGX_OK)
        {
            return ctx->rc;
        }

        l->cursor = 1;
    }

    v[0] = f.org;
    v[1] = f.actor;
    v[2] = f.action;
    v[3] = f.prefix;
    v[4] = f.resource;
    v[5] = f.resource_id;
    v[6] = f.status;
    v[7] = f.from;
    v[8] = f.to;
    v[9] = cursor_ts;
    v[10] = cursor_id;
    v[11] = um_pint(ctx, l->page.page_size);
    v[12] = um_pint(ctx, l->page.offset);

    ctx->data = l;

    return um_query(ctx, &um_sql_audit_list, v, 13, um_audit_logs_done);
}


ngx_int_t
um_audit_user_activity(um_ctx_t *ctx)
{
    ngx_int_t      days;
    um_page_t      page;
    const char   **v, *org;

    /* oneself, or anyone of the tenant with audit:read */
    if (!(ctx->args[0].len == ctx->id.user_id.len
          && ngx_strncasecmp(ctx->args[0].data, ctx->id.user_id.data,
                             ctx->id.user_id.len) == 0)
        && !um_has_permission(ctx, "audit:read"))
    {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "insufficient permissions", NULL);
    }

    if (um_audit_days(ctx, &days) != NGX_OK
        || um_page_parse(ctx, &page) != NGX_OK
        || um_audit_scope(ctx, &org) != NGX_OK)
    {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 6 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = org;
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[2] = um_pint(ctx, days);
    v[3] = um_pint(ctx, page.page);
    v[4] = um_pint(ctx, page.page_size);
    v[5] = um_pint(ctx, page.offset);

    ctx->data = "user not found";

    return um_query(ctx, &um_sql_audit_activity, v, 6, um_audit_json_done);
}


ngx_int_t
um_audit_organization_stats(um_ctx_t *ctx)
{
    ngx_int_t      days;
    const char   **v, *org;

    if (um_audit_days(ctx, &days) != NGX_OK
        || um_audit_scope(ctx, &org) != NGX_OK)
    {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 3 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* another tenant is "not found", like one that does not exist */
    v[0] = org;
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[2] = um_pint(ctx, days);

    ctx->data = "organization not found";

    return um_query(ctx, &um_sql_audit_stats, v, 3, um_audit_json_done);
}


ngx_int_t
um_audit_export(um_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_str_t            format;
    const char         **v;
    um_audit_export_t   *e;

    e = ngx_pcalloc(ctx->r->pool, sizeof(um_audit_export_t));
    v = ngx_palloc(ctx->r->pool, 12 * sizeof(char *));

    if (e == NULL || v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = um_audit_arg(ctx, "format", &format);

    if (rc == NGX_ERROR) {
        return ctx->rc;
    }

    if (rc == NGX_OK
        && !(format.len == 3 && ngx_strncmp(format.data, "csv", 3) == 0))
    {
        if (!(format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0)) {
            um_audit_bad(ctx, "format", "enum", "format is csv or json");
            return ctx->rc;
        }

        e->json = 1;
    }

    if (um_audit_filter(ctx, &e->filter) != NGX_OK) {
        return ctx->rc;
    }

    ctx->data = e;

    if (ctx->r->method == NGX_HTTP_HEAD) {
        return um_audit_export_header(ctx);
    }

    /* the export's own audit row: in the tenant read, or the caller's */
    v[0] = ctx->id.tenant_id.len == 0
           ? NULL : um_pstr(ctx, ctx->id.tenant_id.data,
                            ctx->id.tenant_id.len);
    v[1] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[2] = e->json ? "json" : "csv";
    v[3] = e->filter.actor;
    v[4] = e->filter.action_arg;
    v[5] = e->filter.resource;
    v[6] = e->filter.resource_id;
    v[7] = e->filter.status;
    v[8] = e->filter.from;
    v[9] = e->filter.to;
    v[10] = um_client_ip(ctx);
    v[11] = um_user_agent(ctx);

    return um_query(ctx, &um_sql_audit_export_start, v, 12,
                    um_audit_export_begin);
}


static ngx_int_t
um_audit_logs_done(um_ctx_t *ctx, PGresult *res)
{
    off_t             total, skipped;
    const char       *next;
    um_audit_list_t  *l;

    l = ctx->data;

    if (PQntuples(res) != 1) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    total = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                      PQgetlength(res, 0, 0));
    skipped = ngx_atoof((u_char *) PQgetvalue(res, 0, 1),
                        PQgetlength(res, 0, 1));

    if (total == NGX_ERROR || skipped == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* after a cursor, the page is wherever the cursor's row was */
    if (l->cursor) {
        l->page.offset = skipped;
        l->page.page = skipped / l->page.page_size + 1;
    }

    next = NULL;

    if (!PQgetisnull(res, 0, 3)
        && l->page.offset + l->page.page_size < (uint64_t) total)
    {
        next = um_audit_cursor_make(ctx, res);
        if (next == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return um_page_send(ctx, &l->page, "logs",
                        (u_char *) PQgetvalue(res, 0, 2),
                        PQgetlength(res, 0, 2), total, next);
}


/* an answer PostgreSQL built whole; NULL is the "not found" in ctx->data */
static ngx_int_t
um_audit_json_done(um_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                             ctx->data, NULL);
    }

    return um_send_data(ctx->r, NGX_HTTP_OK,
                        (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
}


/* the bound is fixed and the export audited: answer, and ask for rows */
static ngx_int_t
um_audit_export_begin(um_ctx_t *ctx, PGresult *res)
{
    size_t               len;
    ngx_int_t            rc;
    um_audit_export_t   *e;

    e = ctx->data;
    len = PQgetlength(res, 0, 0);

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)
        || len >= sizeof(e->bound))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(e->bound, PQgetvalue(res, 0, 0), len + 1);

    /* the first batch starts at start_date, or at the beginning */
    ngx_cpystrn((u_char *) e->after_ts,
                (u_char *) (e->filter.from ? e->filter.from : "-infinity"),
                sizeof(e->after_ts));
    ngx_cpystrn((u_char *) e->after_id,
                (u_char *) "00000000-0000-0000-0000-000000000000",
                sizeof(e->after_id));

    e->values[0] = e->json ? "false" : "true";
    e->values[1] = e->filter.org;
    e->values[2] = e->filter.actor;
    e->values[3] = e->filter.action;
    e->values[4] = e->filter.prefix;
    e->values[5] = e->filter.resource;
    e->values[6] = e->filter.resource_id;
    e->values[7] = e->filter.status;
    e->values[8] = e->after_ts;
    e->values[9] = e->after_id;
    e->values[10] = e->bound;
    e->values[11] = um_pint(ctx, UM_AUDIT_BATCH);

    e->query.stmt = &um_sql_audit_export_batch;
    e->query.values = e->values;
    e->query.nvalues = 12;
    e->query.data = ctx;

    rc = um_audit_export_header(ctx);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    /* a client that goes away ends the export (and its query) */
    ctx->r->read_event_handler = ngx_http_test_reading;

    return um_audit_export_next(ctx, rc);
}


/* 200 and the start of the document, sent at once, in chunks to come */
static ngx_int_t
um_audit_export_header(um_ctx_t *ctx)
{
    u_char              *p;
    ngx_int_t            rc;
    ngx_tm_t             tm;
    ngx_buf_t           *b;
    ngx_str_t            value;
    ngx_chain_t          out;
    um_audit_export_t   *e;
    ngx_http_request_t  *r;

    r = ctx->r;
    e = ctx->data;

    p = ngx_pnalloc(r->pool, sizeof("attachment; filename=\"audit-"
                                    "YYYY-MM-DD.json\""));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_gmtime(ngx_time(), &tm);

    value.data = p;
    value.len = ngx_sprintf(p, "attachment; filename=\"audit-%4d-%02d-%02d"
                            ".%s\"", tm.ngx_tm_year, tm.ngx_tm_mon,
                            tm.ngx_tm_mday, e->json ? "json" : "csv")
                - p;

    if (um_header_add(r, "Content-Disposition", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&value, "no-store");

    if (um_header_add(r, "Cache-Control", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&value, "nosniff");

    if (um_header_add(r, "X-Content-Type-Options", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;

    if (e->json) {
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        ngx_str_set(&r->headers_out.content_type, "text/csv; charset=utf-8");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;

    /* the length is not known: chunked (or the end of the connection) */
    r->headers_out.content_length_n = -1;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (e->json) {
        b->pos = um_audit_json_open;
        b->last = um_audit_json_open + sizeof(um_audit_json_open) - 1;

    } else {
        b->pos = um_audit_csv_header;
        b->last = um_audit_csv_header + sizeof(um_audit_csv_header) - 1;
    }

    b->memory = 1;
    b->flush = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * rc: what the last output gave.  While the client has not taken all of
 * it, wait for the connection to drain (um_audit_export_writer); then ask
 * for the next batch.  NGX_DONE, or what to finalize the request with.
 */
static ngx_int_t
um_audit_export_next(um_ctx_t *ctx, ngx_int_t rc)
{
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    um_audit_export_t         *e;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = ctx->r;
    c = r->connection;
    wev = c->write;
    e = ctx->data;

    if (rc == NGX_AGAIN || c->buffered || r->buffered || r->postponed) {

        r->write_event_handler = um_audit_export_writer;

        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            return NGX_ERROR;
        }

        return NGX_DONE;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    if (ctx->mcf->pg_pool == NULL) {
        return NGX_ERROR;
    }

    e->query.handler = um_audit_export_result;

    rc = um_pg_send(ctx->mcf->pg_pool, &e->query);

    if (rc != NGX_AGAIN) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "usermgmt: audit export cut short after %uL rows: "
                      "no postgres connection", e->rows);
        return NGX_ERROR;
    }

    ctx->query = &e->query;

    return NGX_DONE;
}


static void
um_audit_export_result(um_pg_query_t *q, PGresult *res)
{
    ngx_int_t            rc;
    um_ctx_t            *ctx;
    ngx_connection_t    *c;
    um_audit_export_t   *e;
    ngx_http_request_t  *r;

    ctx = q->data;
    e = ctx->data;
    r = ctx->r;
    c = r->connection;

    ctx->query = NULL;

    if (q->status == UM_PG_OK && res != NULL
        && PQresultStatus(res) == PGRES_TUPLES_OK)
    {
        rc = um_audit_export_batch(ctx, res);

    } else {
        /*
         * The status line is long gone: closing the connection before the
         * last chunk is how the client learns that the export is cut.
         */
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "usermgmt: audit export cut short after %uL rows: %s",
                      e->rows,
                      q->status == UM_PG_TIMEOUT ? "postgres timed out"
                      : q->status != UM_PG_OK ? "postgres is unavailable"
                      : PQresultErrorMessage(res));
        rc = NGX_ERROR;
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/* one batch of lines into the buffer and out; the last one ends it */
static ngx_int_t
um_audit_export_batch(um_ctx_t *ctx, PGresult *res)
{
    int                  i, n;
    u_char              *p;
    size_t               need, len;
    ngx_int_t            rc;
    ngx_uint_t           done;
    ngx_buf_t           *b;
    um_audit_export_t   *e;
    ngx_http_request_t  *r;

    r = ctx->r;
    e = ctx->data;
    n = PQntuples(res);
    done = (n < UM_AUDIT_BATCH);

    need = sizeof(um_audit_json_close);

    for (i = 0; i < n; i++) {
        need += PQgetlength(res, i, 0) + 2;
    }

    /*
     * The buffer of the previous batch is reused once it has been sent
     * (we only get here when it was), so an export holds one batch at a
     * time whatever its length.
     */
    if (e->sent != NULL && e->sent->pos != e->sent->last) {
        e->start = NULL;
        e->size = 0;
    }

    if (need > e->size) {
        if (e->start != NULL) {
            ngx_pfree(r->pool, e->start);
        }

        e->size = ngx_max(need, UM_AUDIT_BUF_MIN);

        e->start = ngx_palloc(r->pool, e->size);
        if (e->start == NULL) {
            return NGX_ERROR;
        }
    }

    p = e->start;

    for (i = 0; i < n; i++) {
        if (e->json && (i > 0 || e->rows > 0)) {
            *p++ = ',';
            *p++ = '\n';
        }

        p = ngx_cpymem(p, PQgetvalue(res, i, 0), PQgetlength(res, i, 0));

        if (!e->json) {
            *p++ = '\r';
            *p++ = '\n';
        }
    }

    if (n > 0) {
        /* where the next batch starts */
        len = PQgetlength(res, n - 1, 1);

        if (PQgetisnull(res, n - 1, 1) || len >= sizeof(e->after_ts)
            || PQgetlength(res, n - 1, 2) != UM_AUDIT_UUID_LEN)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "usermgmt: audit export: a batch without its "
                          "position");
            return NGX_ERROR;
        }

        ngx_memcpy(e->after_ts, PQgetvalue(res, n - 1, 1), len + 1);
        ngx_memcpy(e->after_id, PQgetvalue(res, n - 1, 2),
                   UM_AUDIT_UUID_LEN + 1);
    }

    e->rows += n;

    if (done && e->json) {
        p = ngx_cpymem(p, um_audit_json_close,
                       sizeof(um_audit_json_close) - 1);
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = e->start;
    b->last = p;
    b->memory = (p > e->start);
    b->flush = 1;
    b->last_buf = done;
    b->last_in_chain = 1;

    e->sent = b;
    e->out.buf = b;
    e->out.next = NULL;

    rc = ngx_http_output_filter(r, &e->out);

    if (rc == NGX_ERROR || done) {
        return rc;
    }

    return um_audit_export_next(ctx, rc);
}


/* the client is taking the output: on with the export once it has it all */
static void
um_audit_export_writer(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    um_ctx_t                  *ctx;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;
    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (wev->delayed) {
        /* limit_rate: the write event comes back when it is time */
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    if (rc != NGX_ERROR) {
        rc = um_audit_export_next(ctx, rc);
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * The filters both the list and the export take; an empty parameter is
 * no filter (the seeds send "user_id=&action=").  NGX_OK, or the 400
 * answer is in ctx->rc.
 */
static ngx_int_t
um_audit_filter(um_ctx_t *ctx, um_audit_filter_t *f)
{
    u_char      *p;
    int64_t      from, to;
    ngx_int_t    rc;
    ngx_str_t    s;

    ngx_memzero(f, sizeof(um_audit_filter_t));

    if (um_audit_scope(ctx, &f->org) != NGX_OK) {
        return NGX_DECLINED;
    }

    rc = um_audit_arg(ctx, "user_id", &s);

    if (rc == NGX_OK) {
        if (!um_is_uuid(s.data, s.len)) {
            return um_audit_bad(ctx, "user_id", "format",
                                "user_id is not a valid UUID");
        }

        f->actor = (const char *) s.data;

    } else if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    rc = um_audit_arg(ctx, "action", &s);

    if (rc == NGX_OK) {
        if (s.len > 100) {
            return um_audit_bad(ctx, "action", "length",
                                "action has at most 100 bytes");
        }

        f->action_arg = (const char *) s.data;

        /* "auth.*" is every action that starts with "auth."; "*" all */
        for (p = s.data + s.len; p > s.data && p[-1] == '*'; p--) {
            /* void */
        }

        if (p == s.data + s.len) {
            f->action = (const char *) s.data;

        } else if (p > s.data) {
            f->prefix = um_pstr(ctx, s.data, p - s.data);
        }

    } else if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    rc = um_audit_arg(ctx, "resource", &s);

    if (rc == NGX_OK) {
        if (s.len > 100) {
            return um_audit_bad(ctx, "resource", "length",
                                "resource has at most 100 bytes");
        }

        f->resource = (const char *) s.data;

    } else if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    rc = um_audit_arg(ctx, "resource_id", &s);

    if (rc == NGX_OK) {
        if (s.len > 255) {
            return um_audit_bad(ctx, "resource_id", "length",
                                "resource_id has at most 255 bytes");
        }

        f->resource_id = (const char *) s.data;

    } else if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    rc = um_audit_arg(ctx, "status", &s);

    if (rc == NGX_OK) {
        if (!(s.len == 7 && ngx_strncmp(s.data, "success", 7) == 0)
            && !(s.len == 7 && ngx_strncmp(s.data, "failure", 7) == 0))
        {
            return um_audit_bad(ctx, "status", "enum",
                                "status is success or failure");
        }

        f->status = (const char *) s.data;

    } else if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    if (um_audit_time_arg(ctx, "start_date", 0, &f->from, &from) != NGX_OK
        || um_audit_time_arg(ctx, "end_date", 1, &f->to, &to) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (f->from != NULL && f->to != NULL && from > to) {
        return um_audit_bad(ctx, "start_date", "range",
                            "start_date is after end_date");
    }

    return NGX_OK;
}


/*
 * The organization the caller reads: their own, or the one a super admin
 * named with X-Tenant-ID; NULL (every one) for a super admin who did not.
 */
static ngx_int_t
um_audit_scope(um_ctx_t *ctx, const char **org)
{
    if (ctx->id.super_admin && !ctx->tenant_chosen) {
        *org = NULL;
        return NGX_OK;
    }

    if (ctx->id.tenant_id.len == 0) {
        ctx->rc = um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                                "the token names no organization", NULL);
        return NGX_DECLINED;
    }

    *org = um_pstr(ctx, ctx->id.tenant_id.data, ctx->id.tenant_id.len);

    return NGX_OK;
}


static ngx_int_t
um_audit_days(um_ctx_t *ctx, ngx_int_t *days)
{
    ngx_int_t  rc;
    ngx_str_t  s;

    *days = UM_AUDIT_DAYS;

    rc = um_audit_arg(ctx, "days", &s);

    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    if (rc == NGX_OK) {
        *days = ngx_atoi(s.data, s.len);

        if (*days == NGX_ERROR || *days < 1 || *days > UM_AUDIT_DAYS_MAX) {
            return um_audit_bad(ctx, "days", "range",
                                "days must be a whole number from 1 to 365");
        }
    }

    return NGX_OK;
}


/*
 * A query parameter, NUL-terminated: NGX_OK; NGX_DECLINED when absent or
 * empty; NGX_ERROR when it is not text (the 400 is in ctx->rc).
 */
static ngx_int_t
um_audit_arg(um_ctx_t *ctx, const char *name, ngx_str_t *value)
{
    ngx_int_t  rc;
    u_char     msg[64];

    rc = um_arg(ctx, name, value);

    if (rc == NGX_ERROR) {
        ngx_snprintf(msg, sizeof(msg), "%s is not valid UTF-8 text%Z", name);
        um_audit_bad(ctx, name, "format", (char *) msg);
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED || value->len == 0) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* start_date, end_date: NGX_OK (*value NULL when absent), or the 400 */
static ngx_int_t
um_audit_time_arg(um_ctx_t *ctx, const char *name, ngx_uint_t end,
    const char **value, int64_t *t)
{
    u_char     *out, msg[160];
    ngx_int_t   rc;
    ngx_str_t   s;

    *value = NULL;
    *t = 0;

    rc = um_audit_arg(ctx, name, &s);

    if (rc == NGX_DECLINED) {
        return NGX_OK;
    }

    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    out = ngx_pnalloc(ctx->r->pool, UM_AUDIT_TIME_LEN);
    if (out == NULL) {
        ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    if (um_audit_time(s.data, s.len, end, out, t) != NGX_OK) {
        ngx_snprintf(msg, sizeof(msg), "%s must be a date (YYYY-MM-DD) or "
                     "an RFC 3339 time (YYYY-MM-DDTHH:MM:SSZ)%Z", name);
        return um_audit_bad(ctx, name, "format", (char *) msg);
    }

    *value = (const char *) out;

    return NGX_OK;
}


/*
 * "YYYY-MM-DD", or RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|
 * -HH:MM)".  Writes into out (UM_AUDIT_TIME_LEN bytes) a time PostgreSQL
 * reads the same whatever its TimeZone: a date alone is its first (end:
 * its last) microsecond in UTC.  *t is the time in seconds since 1970,
 * for comparing two of them.  A '+' that the query string turned into a
 * space is a '+'.
 */
static ngx_int_t
um_audit_time(u_char *p, size_t len, ngx_uint_t end, u_char *out,
    int64_t *t)
{
    u_char     *q, *last;
    ngx_int_t   y, mo, d, h, mi, s, oh, om, mdays;

    static const ngx_int_t  days_in_month[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (len < 10 || p[4] != '-' || p[7] != '-') {
        return NGX_ERROR;
    }

    y = um_audit_digits(p, 4);
    mo = um_audit_digits(p + 5, 2);
    d = um_audit_digits(p + 8, 2);

    if (y < 1 || mo < 1 || mo > 12 || d < 1) {
        return NGX_ERROR;
    }

    mdays = days_in_month[mo - 1];

    if (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
        mdays = 29;
    }

    if (d > mdays) {
        return NGX_ERROR;
    }

    *t = um_audit_days_from_civil(y, mo, d) * 86400;

    if (len == 10) {
        ngx_sprintf(out, "%*s%s%Z", (size_t) 10, p,
                    end ? "T23:59:59.999999Z" : "T00:00:00Z");

        if (end) {
            *t += 86399;
        }

        return NGX_OK;
    }

    last = p + len;

    if (len < 20 || (p[10] != 'T' && p[10] != 't' && p[10] != ' ')
        || p[13] != ':' || p[16] != ':')
    {
        return NGX_ERROR;
    }

    h = um_audit_digits(p + 11, 2);
    mi = um_audit_digits(p + 14, 2);
    s = um_audit_digits(p + 17, 2);

    if (h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60) {
        return NGX_ERROR;
    }

    *t += h * 3600 + mi * 60 + s;

    q = ngx_cpymem(out, p, 10);
    *q++ = 'T';
    q = ngx_cpymem(q, p + 11, 8);

    p += 19;

    if (p < last && *p == '.') {
        *q++ = *p++;

        for (s = 0; p < last && *p >= '0' && *p <= '9'; s++) {
            if (s == 9) {
                return NGX_ERROR;
            }

            *q++ = *p++;
        }

        if (s == 0) {
            return NGX_ERROR;
        }
    }

    if (last - p == 1 && (*p == 'Z' || *p == 'z')) {
        *q++ = 'Z';

    } else if (last - p == 6 && (*p == '+' || *p == '-' || *p == ' ')
               && p[3] == ':')
    {
        oh = um_audit_digits(p + 1, 2);
        om = um_audit_digits(p + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return NGX_ERROR;
        }

        *t += (*p == '-' ? 1 : -1) * (oh * 3600 + om * 60);

        *q++ = (*p == '-') ? '-' : '+';
        q = ngx_cpymem(q, p + 1, 5);

    } else {
        return NGX_ERROR;
    }

    *q = '\0';

    return NGX_OK;
}


/* n decimal digits, or -1 */
static ngx_int_t
um_audit_digits(u_char *p, ngx_uint_t n)
{
    ngx_int_t   v;
    ngx_uint_t  i;

    v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    return v;
}


/* days since 1970-01-01 of a date of the proleptic Gregorian calendar */
static int64_t
um_audit_days_from_civil(ngx_int_t y, ngx_int_t m, ngx_int_t d)
{
    int64_t  era, yoe, doy, doe;

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


/*
 * A cursor is the base64url of "<um_ts_exact(created_at)>,<id>" of the
 * last row of a page; the next page holds the rows older than it.
 */
static ngx_int_t
um_audit_cursor(um_ctx_t *ctx, ngx_str_t *cursor, const char **ts,
    const char **id)
{
    u_char   *buf, *out;
    int64_t   t;
    size_t    n;

    buf = ngx_pnalloc(ctx->r->pool, UM_AUDIT_CURSOR_LEN + 3);
    out = ngx_pnalloc(ctx->r->pool, UM_AUDIT_TIME_LEN);

    if (buf == NULL || out == NULL) {
        ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    n = (size_t) -1;

    if (cursor->len == um_base64url_encoded_len(UM_AUDIT_CURSOR_LEN)) {
        n = um_base64url_decode(buf, cursor->data, cursor->len);
    }

    if (n != UM_AUDIT_CURSOR_LEN
        || buf[UM_AUDIT_TS_LEN] != ','
        || !um_is_uuid(buf + UM_AUDIT_TS_LEN + 1, UM_AUDIT_UUID_LEN)
        || um_audit_time(buf, UM_AUDIT_TS_LEN, 0, out, &t) != NGX_OK)
    {
        return um_audit_bad(ctx, "cursor", "format",
                            "cursor is not a cursor of this list");
    }

    buf[UM_AUDIT_CURSOR_LEN] = '\0';

    *ts = (const char *) out;
    *id = (const char *) buf + UM_AUDIT_TS_LEN + 1;

    return NGX_OK;
}


/* the cursor after the page: last_ts and last_id of the result */
static const char *
um_audit_cursor_make(um_ctx_t *ctx, PGresult *res)
{
    u_char  *p, text[UM_AUDIT_CURSOR_LEN];

    if (PQgetlength(res, 0, 3) != UM_AUDIT_TS_LEN
        || PQgetlength(res, 0, 4) != UM_AUDIT_UUID_LEN)
    {
        return NULL;
    }

    p = ngx_cpymem(text, PQgetvalue(res, 0, 3), UM_AUDIT_TS_LEN);
    *p++ = ',';
    ngx_memcpy(p, PQgetvalue(res, 0, 4), UM_AUDIT_UUID_LEN);

    p = ngx_pnalloc(ctx->r->pool,
                    um_base64url_encoded_len(UM_AUDIT_CURSOR_LEN) + 1);
    if (p == NULL) {
        return NULL;
    }

    p[um_base64url_encode(p, text, UM_AUDIT_CURSOR_LEN)] = '\0';

    return (const char *) p;
}


/* 400 naming the query parameter; NGX_DECLINED with the answer in rc */
static ngx_int_t
um_audit_bad(um_ctx_t *ctx, const char *field, const char *rule,
    const char *message)
{
    ctx->rc = um_send_error(ctx->r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                            message,
                            json_pack("[{ss ss ss}]", "field", field,
                                      "rule", rule, "message", message));

    return NGX_DECLINED;
}
