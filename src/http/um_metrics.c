/*
 * Request counters, latency histograms and the connection-cache gauges of
 * every worker, kept in one shared-memory zone so that whichever worker
 * answers /metrics reports the totals of all of them.  The zone survives a
 * reload: counters only ever grow.
 *
 * Each worker owns one slot for its pool figures and writes it alone; the
 * per-route counters are shared and updated with atomic adds.
 */

#include "um_http.h"


#define UM_METRICS_MAGIC     0x756d6d31
#define UM_METRICS_WORKERS   64


static const ngx_uint_t  um_status_codes[] = {
    200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 409, 413, 415, 422,
    429, 499, 500, 502, 503, 504
};

#define UM_NSTATUS  (sizeof(um_status_codes) / sizeof(um_status_codes[0]))


/* upper bounds of the latency buckets, in microseconds */
static const uint64_t  um_buckets_us[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000
};

#define UM_NBUCKETS  (sizeof(um_buckets_us) / sizeof(um_buckets_us[0]))


typedef struct {
    ngx_atomic_t          status[UM_NSTATUS + 1];   /* + "other" */
    ngx_atomic_t          bucket[UM_NBUCKETS + 1];  /* + "+Inf" */
    ngx_atomic_t          sum_us;
} um_route_metrics_t;


typedef struct {
    ngx_atomic_t          pid;
    um_pg_stats_t         pg;
    um_redis_stats_t      redis;
} um_worker_metrics_t;


typedef struct {
    ngx_uint_t            magic;
    ngx_uint_t            nslots;
    um_worker_metrics_t   workers[UM_METRICS_WORKERS];
    um_route_metrics_t    routes[1];
} um_metrics_t;


static ngx_int_t um_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static size_t um_metrics_size(void);
static u_char *um_metrics_counter(u_char *p, const char *name,
    const char *help, ngx_atomic_uint_t value, ngx_uint_t gauge);


static um_worker_metrics_t  *um_worker;


ngx_int_t
um_metrics_add_zone(ngx_conf_t *cf, ngx_http_usermgmt_main_conf_t *mcf)
{
    size_t      size;
    ngx_str_t   name = ngx_string("usermgmt_metrics");

    size = ngx_align(um_metrics_size() + 16 * ngx_pagesize, ngx_pagesize);

    mcf->metrics_zone = ngx_shared_memory_add(cf, &name, size,
                                              &ngx_http_usermgmt_module);
    if (mcf->metrics_zone == NULL) {
        return NGX_ERROR;
    }

    mcf->metrics_zone->init = um_metrics_init_zone;

    return NGX_OK;
}


ngx_int_t
um_metrics_attach_worker(ngx_http_usermgmt_main_conf_t *mcf,
    um_pg_stats_t **pg, um_redis_stats_t **redis)
{
    ngx_uint_t            i;
    ngx_atomic_uint_t     pid;
    um_metrics_t         *m;
    um_worker_metrics_t  *w;

    m = mcf->metrics_zone->data;

    for (i = 0; i < UM_METRICS_WORKERS - 1; i++) {
        w = &m->workers[i];
        pid = w->pid;

        /* a slot is free, or left behind by a worker that died */
        if (pid == 0 || (kill((ngx_pid_t) pid, 0) == -1 && errno == ESRCH)) {
            if (ngx_atomic_cmp_set(&w->pid, pid, (ngx_atomic_uint_t) ngx_pid))
            {
                break;
            }
        }
    }

    /* the last slot is shared by any workers beyond the others */
    w = &m->workers[i];

    w->pg.conns_connecting = 0;
    w->pg.conns_idle = 0;
    w->pg.conns_busy = 0;
    w->pg.waiting = 0;
    w->redis.connected = 0;
    w->pid = ngx_pid;

    um_worker = w;
    *pg = &w->pg;
    *redis = &w->redis;

    return NGX_OK;
}


void
um_metrics_detach_worker(ngx_http_usermgmt_main_conf_t *mcf)
{
    um_worker_metrics_t  *w;

    w = um_worker;

    if (w == NULL) {
        return;
    }

    /* the counters stay: totals never go back */
    w->pg.conns_connecting = 0;
    w->pg.conns_idle = 0;
    w->pg.conns_busy = 0;
    w->pg.waiting = 0;
    w->redis.connected = 0;

    (void) ngx_atomic_cmp_set(&w->pid, (ngx_atomic_uint_t) ngx_pid, 0);

    um_worker = NULL;
}


ngx_int_t
um_metrics_log_handler(ngx_http_request_t *r)
{
    uint64_t                        us;
    ngx_uint_t                      status, i;
    um_ctx_t                       *ctx;
    um_metrics_t                   *m;
    um_route_metrics_t             *rm;
    ngx_http_usermgmt_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);

    if (ctx == NULL || r != r->main) {
        return NGX_OK;
    }

    mcf = ctx->mcf;
    m = mcf->metrics_zone->data;

    if (ctx->metric >= m->nslots) {
        return NGX_OK;
    }

    rm = &m->routes[ctx->metric];

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status == 0 || r->connection->error) {
        status = 499;
    }

    for (i = 0; i < UM_NSTATUS; i++) {
        if (um_status_codes[i] == status) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&rm->status[i], 1);

    us = um_now_us() - ctx->start_us;

    for (i = 0; i < UM_NBUCKETS; i++) {
        if (us <= um_buckets_us[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&rm->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&rm->sum_us, (ngx_atomic_int_t) us);

    return NGX_OK;
}


ngx_int_t
um_metrics_prometheus(ngx_http_request_t *r)
{
    u_char                         *body, *p;
    size_t                          size;
    uint64_t                        cumulative, count;
    ngx_str_t                       method, path;
    ngx_str_t                       type = ngx_string(
                                        "text/plain; version=0.0.4");
    ngx_uint_t                      slot, i, live;
    um_metrics_t                   *m;
    um_pg_stats_t                   pg;
    um_redis_stats_t                rs;
    um_route_metrics_t             *rm;
    um_worker_metrics_t            *w;
    ngx_http_usermgmt_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_usermgmt_module);
    m = mcf->metrics_zone->data;

    /* a line is at most ~200 bytes */
    size = 4096 + m->nslots * (UM_NSTATUS + UM_NBUCKETS + 4) * 200
           + um_limit_metrics_size(mcf);

    body = ngx_pnalloc(r->pool, size);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = body;

    p = ngx_sprintf(p, "# HELP usermgmt_http_requests_total "
                    "Requests answered, by route and status.\n"
                    "# TYPE usermgmt_http_requests_total counter\n");

    for (slot = 0; slot < m->nslots; slot++) {
        rm = &m->routes[slot];
        um_route_label(slot, &method, &path);

        for (i = 0; i <= UM_NSTATUS; i++) {
            if (rm->status[i] == 0) {
                continue;
            }

            p = ngx_sprintf(p, "usermgmt_http_requests_total"
                            "{method=\"%V\",route=\"%V\",status=\"", &method,
                            &path);

            if (i < UM_NSTATUS) {
                p = ngx_sprintf(p, "%ui", um_status_codes[i]);

            } else {
                p = ngx_sprintf(p, "other");
            }

            p = ngx_sprintf(p, "\"} %uA\n", rm->status[i]);
        }
    }

    p = ngx_sprintf(p, "# HELP usermgmt_http_request_duration_seconds "
                    "Time from the start of the request to the log phase.\n"
                    "# TYPE usermgmt_http_request_duration_seconds "
                    "histogram\n");

    for (slot = 0; slot < m->nslots; slot++) {
        rm = &m->routes[slot];

        count = 0;

        for (i = 0; i <= UM_NBUCKETS; i++) {
            count += rm->bucket[i];
        }

        if (count == 0) {
            continue;
        }

        um_route_label(slot, &method, &path);

        cumulative = 0;

        for (i = 0; i <= UM_NBUCKETS; i++) {
            cumulative += rm->bucket[i];

            p = ngx_sprintf(p, "usermgmt_http_request_duration_seconds_bucket"
                            "{method=\"%V\",route=\"%V\",le=\"", &method,
                            &path);

            if (i < UM_NBUCKETS) {
                p = ngx_sprintf(p, "%uL.%06uL", um_buckets_us[i] / 1000000,
                                um_buckets_us[i] % 1000000);

            } else {
                p = ngx_sprintf(p, "+Inf");
            }

            p = ngx_sprintf(p, "\"} %uL\n", cumulative);
        }

        p = ngx_sprintf(p, "usermgmt_http_request_duration_seconds_sum"
                        "{method=\"%V\",route=\"%V\"} %uA.%06uA\n"
                        "usermgmt_http_request_duration_seconds_count"
                        "{method=\"%V\",route=\"%V\"} %uL\n",
                        &method, &path, rm->sum_us / 1000000,
                        rm->sum_us % 1000000, &method, &path, count);
    }

    ngx_memzero(&pg, sizeof(um_pg_stats_t));
    ngx_memzero(&rs, sizeof(um_redis_stats_t));
    live = 0;

    for (i = 0; i < UM_METRICS_WORKERS; i++) {
        w = &m->workers[i];

        if (w->pid != 0) {
            live++;
            pg.conns_connecting += w->pg.conns_connecting;
            pg.conns_idle += w->pg.conns_idle;
            pg.conns_busy += w->pg.conns_busy;
            pg.waiting += w->pg.waiting;
            rs.connected += w->redis.connected;
        }

        pg.queries += w->pg.queries;
        pg.waits += w->pg.waits;
        pg.rejected += w->pg.rejected;
        pg.timeouts += w->pg.timeouts;
        pg.errors += w->pg.errors;
        pg.connects += w->pg.connects;
        rs.commands += w->redis.commands;
        rs.errors += w->redis.errors;
        rs.timeouts += w->redis.timeouts;
        rs.connects += w->redis.connects;
    }

    p = ngx_sprintf(p, "# HELP usermgmt_pg_connections "
                    "PostgreSQL connections of all workers, by state.\n"
                    "# TYPE usermgmt_pg_connections gauge\n"
                    "usermgmt_pg_connections{state=\"idle\"} %uA\n"
                    "usermgmt_pg_connections{state=\"busy\"} %uA\n"
                    "usermgmt_pg_connections{state=\"connecting\"} %uA\n",
                    pg.conns_idle, pg.conns_busy, pg.conns_connecting);

    p = um_metrics_counter(p, "usermgmt_pg_queue_waiting",
                           "Queries waiting for a free connection now.",
                           pg.waiting, 1);
    p = um_metrics_counter(p, "usermgmt_pg_queries_total",
                           "Queries sent to PostgreSQL.", pg.queries, 0);
    p = um_metrics_counter(p, "usermgmt_pg_queue_waits_total",
                           "Queries that waited for a connection.",
                           pg.waits, 0);
    p = um_metrics_counter(p, "usermgmt_pg_queue_rejected_total",
                           "Queries refused: wait queue full or wait "
                           "timed out.", pg.rejected, 0);
    p = um_metrics_counter(p, "usermgmt_pg_timeouts_total",
                           "Connects and queries that timed out.",
                           pg.timeouts, 0);
    p = um_metrics_counter(p, "usermgmt_pg_errors_total",
                           "Connections refused or lost.", pg.errors, 0);
    p = um_metrics_counter(p, "usermgmt_pg_connects_total",
                           "Connections opened.", pg.connects, 0);
    p = um_metrics_counter(p, "usermgmt_redis_connected",
                           "Workers connected to Redis now.",
                           rs.connected, 1);
    p = um_metrics_counter(p, "usermgmt_redis_commands_total",
                           "Commands sent to Redis.", rs.commands, 0);
    p = um_metrics_counter(p, "usermgmt_redis_errors_total",
                           "Redis connects refused, connections lost and "
                           "commands failed.", rs.errors, 0);
    p = um_metrics_counter(p, "usermgmt_redis_timeouts_total",
                           "Redis commands and connects that timed out.",
                           rs.timeouts, 0);
    p = um_metrics_counter(p, "usermgmt_redis_connects_total",
                           "Redis connections opened.", rs.connects, 0);
    p = um_metrics_counter(p, "usermgmt_workers",
                           "Worker processes reporting.", live, 1);

    p = um_limit_metrics(mcf, p);

    return um_send(r, NGX_HTTP_OK, &type, body, p - body);
}


void
um_metrics_summary(ngx_http_usermgmt_main_conf_t *mcf,
    um_metrics_summary_t *s)
{
    ngx_uint_t           slot, i;
    um_metrics_t        *m;
    um_route_metrics_t  *rm;

    ngx_memzero(s, sizeof(um_metrics_summary_t));

    m = mcf->metrics_zone->data;

    for (slot = 0; slot < m->nslots; slot++) {
        rm = &m->routes[slot];

        for (i = 0; i <= UM_NSTATUS; i++) {
            s->requests += rm->status[i];

            if (i < UM_NSTATUS && um_status_codes[i] >= 500) {
                s->server_errors += rm->status[i];

            } else if (i < UM_NSTATUS && um_status_codes[i] >= 400) {
                s->client_errors += rm->status[i];
            }
        }

        s->duration_us += rm->sum_us;
    }
}


static ngx_int_t
um_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    um_metrics_t     *m, *old;
    ngx_slab_pool_t  *shpool;

    old = data;

    if (old != NULL && old->magic == UM_METRICS_MAGIC
        && old->nslots == UM_METRIC_SLOTS)
    {
        /* a reload: keep counting where the previous generation was */
        shm_zone->data = old;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    m = ngx_slab_calloc(shpool, um_metrics_size());
    if (m == NULL) {
        return NGX_ERROR;
    }

    m->magic = UM_METRICS_MAGIC;
    m->nslots = UM_METRIC_SLOTS;

    shpool->data = m;
    shm_zone->data = m;

    return NGX_OK;
}


static size_t
um_metrics_size(void)
{
    return sizeof(um_metrics_t) + UM_METRIC_SLOTS * sizeof(um_route_metrics_t);
}


static u_char *
um_metrics_counter(u_char *p, const char *name, const char *help,
    ngx_atomic_uint_t value, ngx_uint_t gauge)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n%s %uA\n",
                       name, help, name, gauge ? "gauge" : "counter",
                       name, value);
}
