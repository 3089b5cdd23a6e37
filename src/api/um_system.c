/*
 * System endpoints:
 *
 *   GET /health    alive; touches no dependency
 *   GET /ready     PostgreSQL and Redis reachable from this worker
 *   GET /metrics   Prometheus text, or seed 000's JSON summary
 */

#include "um_api.h"


typedef struct {
    const char   *pg;           /* NULL while pending */
    const char   *redis;
} um_ready_t;


static void um_ready_pg_done(um_pg_query_t *q, PGresult *res);
static void um_ready_redis_done(void *data, redisReply *reply,
    ngx_int_t status);
static ngx_int_t um_ready_answer(um_ctx_t *ctx);
static ngx_uint_t um_wants_json(ngx_http_request_t *r);
static void um_metrics_users_done(um_pg_query_t *q, PGresult *res);
static ngx_int_t um_metrics_json(um_ctx_t *ctx, const char *active_users);


static um_pg_stmt_t  um_sql_ready = um_pg_stmt("SELECT 1");

/* accounts that signed in during the last 15 minutes */
static um_pg_stmt_t  um_sql_active_users = um_pg_stmt(
    "SELECT count(*) FROM users"
    " WHERE deleted_at IS NULL"
    "   AND last_login_at > now() - interval '15 minutes'");


ngx_int_t
um_system_health(um_ctx_t *ctx)
{
    u_char     *body, *p;
    ngx_tm_t    tm;
    ngx_str_t   type = ngx_string("application/json");

    body = ngx_pnalloc(ctx->r->pool, 160);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_gmtime(ngx_time(), &tm);

    p = ngx_sprintf(body, "{\"data\":{\"status\":\"healthy\","
                    "\"timestamp\":\"%4d-%02d-%02dT%02d:%02d:%02dZ\","
                    "\"service\":\"" UM_SERVICE "\","
                    "\"version\":\"" UM_VERSION "\"}}",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    return um_send(ctx->r, NGX_HTTP_OK, &type, body, p - body);
}


ngx_int_t
um_system_ready(um_ctx_t *ctx)
{
    ngx_int_t        rc;
    um_ready_t      *st;
    um_pg_query_t   *q;
    const char      *ping = "PING";

    st = ngx_pcalloc(ctx->r->pool, sizeof(um_ready_t));
    q = ngx_pcalloc(ctx->r->pool, sizeof(um_pg_query_t));

    if (st == NULL || q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = st;

    q->stmt = &um_sql_ready;
    q->handler = um_ready_pg_done;
    q->data = ctx;

    rc = um_pg_send(ctx->mcf->pg_pool, q);

    if (rc == NGX_AGAIN) {
        ctx->query = q;
        ctx->pending++;

    } else {
        st->pg = "unavailable";
    }

    if (ctx->mcf->redis_client == NULL) {
        st->redis = "not_configured";

    } else {
        ctx->redis = um_redis_send(ctx->mcf->redis_client,
                                   um_ready_redis_done, ctx, 1, &ping, NULL);

        if (ctx->redis != NULL) {
            ctx->pending++;

        } else {
            st->redis = "unavailable";
        }
    }

    if (ctx->pending) {
        return NGX_DONE;
    }

    return um_ready_answer(ctx);
}


ngx_int_t
um_system_metrics(um_ctx_t *ctx)
{
    ngx_int_t        rc;
    um_pg_query_t   *q;

    if (!um_wants_json(ctx->r)) {
        return um_metrics_prometheus(ctx->r);
    }

    if (ctx->mcf->pg_pool == NULL) {
        return um_metrics_json(ctx, NULL);
    }

    q = ngx_pcalloc(ctx->r->pool, sizeof(um_pg_query_t));
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q->stmt = &um_sql_active_users;
    q->handler = um_metrics_users_done;
    q->data = ctx;

    rc = um_pg_send(ctx->mcf->pg_pool, q);

    if (rc != NGX_AGAIN) {
        /* the figures of this process do not depend on the database */
        return um_metrics_json(ctx, NULL);
    }

    ctx->query = q;

    return NGX_DONE;
}


static void
um_ready_pg_done(um_pg_query_t *q, PGresult *res)
{
    um_ctx_t    *ctx;
    um_ready_t  *st;

    ctx = q->data;
    st = ctx->data;
    ctx->query = NULL;

    st->pg = (q->status == UM_PG_OK
              && PQresultStatus(res) == PGRES_TUPLES_OK)
             ? "ok" : (q->status == UM_PG_BUSY ? "busy" : "unavailable");

    if (--ctx->pending == 0) {
        um_finish(ctx, um_ready_answer(ctx));
    }
}


static void
um_ready_redis_done(void *data, redisReply *reply, ngx_int_t status)
{
    um_ctx_t    *ctx;
    um_ready_t  *st;

    ctx = data;
    st = ctx->data;
    ctx->redis = NULL;

    st->redis = (status == UM_REDIS_OK && reply->type == REDIS_REPLY_STATUS)
                ? "ok" : (status == UM_REDIS_TIMEOUT ? "timeout"
                                                     : "unavailable");

    if (--ctx->pending == 0) {
        um_finish(ctx, um_ready_answer(ctx));
    }
}


static ngx_int_t
um_ready_answer(um_ctx_t *ctx)
{
    json_t      *details, *checks;
    ngx_msec_t   retry;
    um_ready_t  *st;

    st = ctx->data;

    if (ngx_strcmp(st->pg, "ok") == 0
        && (ngx_strcmp(st->redis, "ok") == 0
            || ngx_strcmp(st->redis, "not_configured") == 0))
    {
        checks = json_pack("{ss ss}", "postgres", st->pg, "redis", st->redis);

        return um_send_json(ctx->r, NGX_HTTP_OK,
                            json_pack("{ss so}", "status", "ready",
                                      "checks", checks));
    }

    details = json_array();
    retry = 1000;

    if (ngx_strcmp(st->pg, "ok") != 0) {
        json_array_append_new(details,
                              json_pack("{ss ss}", "dependency", "postgres",
                                        "status", st->pg));
        retry = um_pg_retry_after(ctx->mcf->pg_pool);
    }

    if (ngx_strcmp(st->redis, "ok") != 0
        && ngx_strcmp(st->redis, "not_configured") != 0)
    {
        json_array_append_new(details,
                              json_pack("{ss ss}", "dependency", "redis",
                                        "status", st->redis));
        retry = ngx_max(retry, um_redis_retry_after(ctx->mcf->redis_client));
    }

    return um_send_unavailable(ctx->r,
                               json_array_size(details) > 1
                               ? "postgres (and redis)"
                               : ngx_strcmp(st->pg, "ok") != 0
                                 ? "postgres" : "redis",
                               retry, details);
}


static ngx_uint_t
um_wants_json(ngx_http_request_t *r)
{
    ngx_str_t         format;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        return format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == 6
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Accept", 6) == 0
            && ngx_strlcasestrn(h[i].value.data,
                                h[i].value.data + h[i].value.len,
                                (u_char *) "application/json", 16 - 1)
               != NULL)
        {
            return 1;
        }
    }

    return 0;
}


static void
um_metrics_users_done(um_pg_query_t *q, PGresult *res)
{
    um_ctx_t  *ctx;

    ctx = q->data;
    ctx->query = NULL;

    um_finish(ctx, um_metrics_json(ctx,
                   (q->status == UM_PG_OK
                    && PQresultStatus(res) == PGRES_TUPLES_OK
                    && PQntuples(res) == 1)
                   ? PQgetvalue(res, 0, 0) : NULL));
}


static ngx_int_t
um_metrics_json(um_ctx_t *ctx, const char *active_users)
{
    double                 error_rate, client_error_rate, avg_ms;
    json_t                *data;
    um_metrics_summary_t   s;

    um_metrics_summary(ctx->mcf, &s);

    error_rate = s.requests ? (double) s.server_errors / s.requests : 0.0;
    client_error_rate = s.requests ? (double) s.client_errors / s.requests
                                   : 0.0;
    avg_ms = s.requests ? (double) s.duration_us / s.requests / 1000.0 : 0.0;

    data = json_pack("{so sI sf sf sf}",
                     "active_users",
                     active_users ? json_integer(ngx_atoof(
                                        (u_char *) active_users,
                                        ngx_strlen(active_users)))
                                  : json_null(),
                     "total_requests", (json_int_t) s.requests,
                     "error_rate", error_rate,
                     "client_error_rate", client_error_rate,
                     "average_response_time", avg_ms);

    return um_send_json(ctx->r, NGX_HTTP_OK, data);
}
