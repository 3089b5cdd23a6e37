/*
 * Rate limits: GCRA (a token bucket kept as one timestamp per key) in
 * Redis, so a limit holds across workers and nodes.  Every limit of a
 * request is decided in one round trip (um_limit_redis.c), and either all
 * limits take the request or none does.
 *
 * For key = ip | user | tenant | $variable the check runs at the start of
 * the rewrite phase (before "return" and before the token check); for
 * key = account (the email or username of the body) it runs once the body
 * is read, just before the handler.
 *
 * When Redis cannot answer within its timeout, each zone does what its
 * "fail=" says: open (allow), closed (503), or local (the same GCRA in
 * this node's shared memory, so a node still limits on its own).
 */

#include "um_limit.h"
#include "um_fields.h"

#include <openssl/evp.h>
#include <openssl/sha.h>


#define UM_LIMIT_SLOTS     65536
#define UM_LIMIT_STATS     64
#define UM_LIMIT_PROBES    16
#define UM_LIMIT_PREFIX    "usermgmt:rl:"

#define UM_LIMIT_ALLOWED   0
#define UM_LIMIT_LIMITED   1
#define UM_LIMIT_OPEN      2
#define UM_LIMIT_LOCAL     3
#define UM_LIMIT_CLOSED    4
#define UM_LIMIT_RESULTS   5


typedef struct {
    uint64_t               hash;
    int64_t                tat;        /* us */
} um_limit_entry_t;


/* the counters of a zone, found by its name across reloads */
typedef struct {
    u_char                 name[48];
    size_t                 len;
    ngx_atomic_t           results[UM_LIMIT_RESULTS];
} um_limit_stats_t;


typedef struct {
    ngx_uint_t             nslots;
    um_limit_stats_t       stats[UM_LIMIT_STATS];
    um_limit_entry_t       slots[1];
} um_limit_shm_t;


static ngx_int_t um_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t um_limit_start(um_ctx_t *ctx,
    ngx_int_t (*resume)(um_ctx_t *ctx, ngx_int_t rc));
static ngx_int_t um_limit_prepare(um_ctx_t *ctx, um_limit_run_t *run);
static ngx_int_t um_limit_fallback(um_ctx_t *ctx);
static ngx_int_t um_limit_local(um_ctx_t *ctx, um_limit_check_t *c,
    ngx_uint_t commit);
static ngx_int_t um_limit_decide(um_ctx_t *ctx, ngx_uint_t allowed);
static ngx_int_t um_limit_headers(um_ctx_t *ctx);
static ngx_int_t um_limit_resume_phases(um_ctx_t *ctx, ngx_int_t rc);
static void um_limit_count(ngx_http_usermgmt_main_conf_t *mcf,
    um_limit_zone_t *zone, ngx_uint_t result);
static int64_t um_limit_now_us(void);
static void um_limit_sha1(const u_char *data, size_t len, u_char *md);
static ngx_int_t um_limit_parse_rate(ngx_str_t *s, ngx_uint_t *count,
    ngx_msec_t *period);


static const char  *um_limit_result_names[] = {
    "allowed", "limited", "fail_open", "fail_local", "fail_closed"
};


ngx_int_t
ngx_http_usermgmt_limit_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    um_ctx_t                      *ctx;
    ngx_http_usermgmt_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_usermgmt_module);

    if (lcf->limits == NULL || r != r->main || lcf->limit_after_body == 1) {
        return NGX_DECLINED;
    }

    ctx = um_ctx_get(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->limit_waiting) {
        return NGX_DONE;
    }

    /* back from Redis, or the first time */
    rc = ctx->limit_done ? ctx->limit_rc
                         : um_limit_start(ctx, um_limit_resume_phases);

    /* in the rewrite phase, NGX_DONE waits (or has finished) */
    return (rc == NGX_AGAIN) ? NGX_DONE : rc;
}


/*
 * The limits of a location whose key is the account of the body: run by
 * the content handler once the body is parsed.  NGX_OK: go on.  NGX_DONE:
 * resume(ctx, rc) is called later.  Otherwise the answer was sent and
 * ctx->rc says what to return.
 */
ngx_int_t
um_limit_after_body(um_ctx_t *ctx, ngx_int_t (*resume)(um_ctx_t *ctx,
    ngx_int_t rc))
{
    ngx_int_t                      rc;
    ngx_http_usermgmt_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(ctx->r, ngx_http_usermgmt_module);

    if (lcf->limits == NULL || lcf->limit_after_body != 1
        || ctx->limit_done)
    {
        return NGX_OK;
    }

    rc = um_limit_start(ctx, resume);

    if (rc == NGX_AGAIN || rc == NGX_DONE) {
        /* asking Redis, or refused and finished */
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        return NGX_OK;
    }

    ctx->rc = rc;

    return NGX_ERROR;
}


static ngx_int_t
um_limit_resume_phases(um_ctx_t *ctx, ngx_int_t rc)
{
    ngx_http_core_run_phases(ctx->r);

    return NGX_DONE;
}


/*
 * NGX_DECLINED: allowed now.  NGX_AGAIN: asking Redis.  NGX_DONE: refused,
 * the answer sent and the request finished.
 */
static ngx_int_t
um_limit_start(um_ctx_t *ctx, ngx_int_t (*resume)(um_ctx_t *ctx,
    ngx_int_t rc))
{
    um_limit_run_t  *run;

    run = ngx_pcalloc(ctx->r->pool, sizeof(um_limit_run_t));
    if (run == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    run->resume = resume;
    ctx->limit = run;

    if (um_limit_prepare(ctx, run) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->mcf->redis_client == NULL) {
        return um_limit_fallback(ctx);
    }

    if (um_limit_redis_ask(ctx) == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    return um_limit_fallback(ctx);
}


/* the key and the rate of every limit of the location */
static ngx_int_t
um_limit_prepare(um_ctx_t *ctx, um_limit_run_t *run)
{
    u_char                        *p;
    ngx_str_t                      value, tenant;
    ngx_uint_t                     i, j;
    const char                    *account;
    ngx_uint_t                    *index;
    um_limit_tier_t               *tier;
    um_limit_zone_t               *zones, *zone;
    um_limit_check_t              *c;
    ngx_http_request_t            *r;
    ngx_http_usermgmt_loc_conf_t  *lcf;
    u_char                         md[SHA_DIGEST_LENGTH];

    r = ctx->r;
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_usermgmt_module);

    zones = ctx->mcf->limit_zones->elts;
    index = lcf->limits->elts;
    run->n = lcf->limits->nelts;

    run->checks = ngx_pcalloc(r->pool, run->n * sizeof(um_limit_check_t));
    if (run->checks == NULL) {
        return NGX_ERROR;
    }

    /* the identity, for per-user and per-tenant keys and for tiers */
    if (!ctx->verified) {
        (void) um_access_verify(ctx);
    }

    for (i = 0; i < run->n; i++) {
        zone = &zones[index[i]];
        c = &run->checks[i];
        c->zone = zone;
        c->count = zone->count;
        c->period = zone->period;

        /* the highest tier of the caller's roles */
        if (zone->tiers != NULL && ctx->authenticated) {
            tier = zone->tiers->elts;

            for (j = 0; j < zone->tiers->nelts; j++) {
                if (um_has_role_exactly(ctx, (char *) tier[j].role.data)
                    && (double) tier[j].count / tier[j].period
                       > (double) c->count / c->period)
                {
                    c->count = tier[j].count;
                    c->period = tier[j].period;
                }
            }
        }

        c->capacity = zone->burst ? zone->burst : c->count;
        c->interval = (double) c->period * 1000 / c->count;

        switch (zone->key) {

        case UM_LIMIT_KEY_USER:
            value = ctx->authenticated ? ctx->id.user_id
                                       : r->connection->addr_text;
            break;

        case UM_LIMIT_KEY_TENANT:
            tenant = ctx->id.tenant_id;
            value = ctx->authenticated ? tenant : r->connection->addr_text;
            break;

        case UM_LIMIT_KEY_ACCOUNT:
            account = um_field_str(ctx, "email");

            if (account == NULL || account[0] == '\0') {
                account = um_field_str(ctx, "username");
            }

            if (account == NULL || account[0] == '\0') {
                value = r->connection->addr_text;

            } else {
                value.len = ngx_strlen(account);
                value.data = ngx_pnalloc(r->pool, value.len);
                if (value.data == NULL) {
                    return NGX_ERROR;
                }

                /* the same account whatever its spelling */
                ngx_strlow(value.data, (u_char *) account, value.len);
            }

            break;

        case UM_LIMIT_KEY_VAR:
            if (ngx_http_complex_value(r, zone->var, &value) != NGX_OK) {
                return NGX_ERROR;
            }

            break;

        default: /* UM_LIMIT_KEY_IP */
            value = r->connection->addr_text;
            break;
        }

        /* a fixed-size key, whatever the value */
        um_limit_sha1(value.data, value.len, md);

        c->key_len = sizeof(UM_LIMIT_PREFIX) - 1 + zone->name.len + 1
                     + 2 * SHA_DIGEST_LENGTH;
        c->key = ngx_pnalloc(r->pool, c->key_len);
        if (c->key == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(c->key, UM_LIMIT_PREFIX "%V:", &zone->name);
        (void) ngx_hex_dump(p, md, SHA_DIGEST_LENGTH);
    }

    return NGX_OK;
}


void
um_limit_resolved(um_ctx_t *ctx, ngx_int_t allowed)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    um_limit_run_t      *run;

    c = ctx->r->connection;
    run = ctx->limit;
    ctx->limit_waiting = 0;
    ctx->limit_done = 1;

    rc = (allowed == -1) ? um_limit_fallback(ctx)
                         : um_limit_decide(ctx, allowed);

    /* refused: the request is finished, and may be gone already */
    if (rc != NGX_DONE) {
        ctx->limit_rc = rc;
        rc = run->resume(ctx, rc);

        if (rc != NGX_DONE) {
            um_finish(ctx, rc);
        }
    }

    ngx_http_run_posted_requests(c);
}


/* Redis did not answer: each zone as its "fail=" says */
static ngx_int_t
um_limit_fallback(um_ctx_t *ctx)
{
    ngx_str_t         retry = ngx_string("1");
    ngx_uint_t        i, allowed;
    um_limit_run_t   *run;
    um_limit_check_t *c;

    run = ctx->limit;

    for (i = 0; i < run->n; i++) {
        if (run->checks[i].zone->fail == UM_LIMIT_FAIL_CLOSED) {
            um_limit_count(ctx->mcf, run->checks[i].zone, UM_LIMIT_CLOSED);

            ctx->limit_done = 1;

            if (um_header_add(ctx->r, "Retry-After", &retry) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_http_finalize_request(ctx->r,
                um_send_error(ctx->r, NGX_HTTP_SERVICE_UNAVAILABLE,
                              UM_SERVICE_UNAVAILABLE,
                              "rate limiting is unavailable",
                              json_pack("[{ss ss}]", "dependency", "redis",
                                        "status", "unavailable")));
            return NGX_DONE;
        }
    }

    /* all or nothing, as in Redis: look first, then take */
    allowed = 1;

    for (i = 0; i < run->n; i++) {
        c = &run->checks[i];

        if (c->zone->fail == UM_LIMIT_FAIL_OPEN) {
            c->remaining = -1;
            um_limit_count(ctx->mcf, c->zone, UM_LIMIT_OPEN);
            continue;
        }

        um_limit_count(ctx->mcf, c->zone, UM_LIMIT_LOCAL);

        if (um_limit_local(ctx, c, 0) != NGX_OK) {
            allowed = 0;
        }
    }

    for (i = 0; allowed && i < run->n; i++) {
        c = &run->checks[i];

        if (c->zone->fail != UM_LIMIT_FAIL_OPEN) {
            (void) um_limit_local(ctx, c, 1);
        }
    }

    return um_limit_decide(ctx, allowed);
}


/* the same GCRA, in this node's shared memory; commit takes a token */
static ngx_int_t
um_limit_local(um_ctx_t *ctx, um_limit_check_t *c, ngx_uint_t commit)
{
    int64_t            now, tat, new, diff;
    uint64_t           h;
    ngx_uint_t         i, slot, pick;
    um_limit_shm_t    *shm;
    ngx_slab_pool_t   *shpool;
    u_char             md[SHA_DIGEST_LENGTH];

    shm = ctx->mcf->limit_zone->data;
    shpool = (ngx_slab_pool_t *) ctx->mcf->limit_zone->shm.addr;

    um_limit_sha1(c->key, c->key_len, md);
    ngx_memcpy(&h, md, sizeof(h));
    h |= 1;

    now = um_limit_now_us();

    ngx_shmtx_lock(&shpool->mutex);

    pick = shm->nslots;

    for (i = 0; i < UM_LIMIT_PROBES; i++) {
        slot = (h + i) % shm->nslots;

        if (shm->slots[slot].hash == h) {
            pick = slot;
            break;
        }

        /* an empty or long-expired slot, or else the oldest */
        if (pick == shm->nslots
            || shm->slots[slot].tat < shm->slots[pick].tat)
        {
            pick = slot;
        }
    }

    tat = (shm->slots[pick].hash == h) ? shm->slots[pick].tat : now;

    if (tat < now) {
        tat = now;
    }

    new = tat + (int64_t) (c->interval + 0.5);
    diff = now - (new - (int64_t) (c->capacity * c->interval + 0.5));

    if (diff < 0) {
        c->remaining = 0;
        c->retry = (-diff + 999) / 1000;
        c->reset = (tat - now + 999) / 1000;
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    if (commit) {
        shm->slots[pick].hash = h;
        shm->slots[pick].tat = new;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    /* what is left once this request is counted */
    c->remaining = (int64_t) (diff / c->interval + 0.001);
    c->retry = 0;
    c->reset = (new - now + 999) / 1000;

    return NGX_OK;
}


static ngx_int_t
um_limit_decide(um_ctx_t *ctx, ngx_uint_t allowed)
{
    u_char            *msg;
    ngx_str_t          retry;
    ngx_uint_t         i;
    int64_t            wait;
    um_limit_run_t    *run;
    um_limit_check_t  *c;

    run = ctx->limit;

    if (um_limit_headers(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    wait = 0;

    for (i = 0; i < run->n; i++) {
        c = &run->checks[i];

        if (c->retry > 0) {
            um_limit_count(ctx->mcf, c->zone, UM_LIMIT_LIMITED);
            wait = ngx_max(wait, c->retry);

        } else if (allowed && c->remaining >= 0) {
            um_limit_count(ctx->mcf, c->zone, UM_LIMIT_ALLOWED);
        }
    }

    if (allowed) {
        return NGX_DECLINED;
    }

    /* whole seconds, never before the bucket has room again */
    wait = (wait + 999) / 1000;

    if (wait < 1) {
        wait = 1;
    }

    retry.data = ngx_pnalloc(ctx->r->pool, NGX_INT64_LEN);
    msg = ngx_pnalloc(ctx->r->pool, 80);

    if (retry.data == NULL || msg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    retry.len = ngx_sprintf(retry.data, "%L", wait) - retry.data;

    if (um_header_add(ctx->r, "Retry-After", &retry) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(msg, "Rate limit exceeded. Try again in %L second%s.%Z", wait,
                wait == 1 ? "" : "s");

    ctx->limit_done = 1;

    ngx_http_finalize_request(ctx->r,
        um_send_error(ctx->r, NGX_HTTP_TOO_MANY_REQUESTS,
                      UM_TOO_MANY_REQUESTS, (char *) msg, NULL));

    return NGX_DONE;
}


/*
 * X-RateLimit-* (seed 003) for the tightest limit, and the IETF
 * RateLimit-Policy / RateLimit fields for every limit.
 */
static ngx_int_t
um_limit_headers(um_ctx_t *ctx)
{
    u_char            *policy, *state, *p, *q;
    size_t             size;
    ngx_str_t          v;
    ngx_uint_t         i;
    um_limit_run_t    *run;
    um_limit_check_t  *c, *tight;
    int64_t            reset;

    run = ctx->limit;
    tight = NULL;
    size = 0;

    for (i = 0; i < run->n; i++) {
        c = &run->checks[i];

        if (c->remaining < 0) {
            /* failed open: nothing known */
            continue;
        }

        size += c->zone->name.len + 3 * NGX_INT64_LEN + 32;

        if (tight == NULL || c->remaining < tight->remaining) {
            tight = c;
        }
    }

    if (tight == NULL) {
        return NGX_OK;
    }

    policy = ngx_pnalloc(ctx->r->pool, size);
    state = ngx_pnalloc(ctx->r->pool, size);
    v.data = ngx_pnalloc(ctx->r->pool, 3 * NGX_INT64_LEN);

    if (policy == NULL || state == NULL || v.data == NULL) {
        return NGX_ERROR;
    }

    p = policy;
    q = state;

    for (i = 0; i < run->n; i++) {
        c = &run->checks[i];

        if (c->remaining < 0) {
            continue;
        }

        if (p != policy) {
            p = ngx_cpymem(p, ", ", 2);
            q = ngx_cpymem(q, ", ", 2);
        }

        p = ngx_sprintf(p, "\"%V\";q=%ui;w=%M", &c->zone->name, c->capacity,
                        (c->period + 999) / 1000);
        q = ngx_sprintf(q, "\"%V\";r=%L;t=%L", &c->zone->name, c->remaining,
                        (c->reset + 999) / 1000);
    }

    reset = (tight->reset + 999) / 1000;

    v.len = ngx_sprintf(v.data, "%ui", tight->capacity) - v.data;
    if (um_header_add(ctx->r, "X-RateLimit-Limit", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data += v.len;
    v.len = ngx_sprintf(v.data, "%L", tight->remaining) - v.data;
    if (um_header_add(ctx->r, "X-RateLimit-Remaining", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data += v.len;
    v.len = ngx_sprintf(v.data, "%T", ngx_time() + (time_t) reset) - v.data;
    if (um_header_add(ctx->r, "X-RateLimit-Reset", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data = policy;
    v.len = p - policy;
    if (um_header_add(ctx->r, "RateLimit-Policy", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data = state;
    v.len = q - state;

    return um_header_add(ctx->r, "RateLimit", &v);
}


static void
um_limit_count(ngx_http_usermgmt_main_conf_t *mcf, um_limit_zone_t *zone,
    ngx_uint_t result)
{
    um_limit_shm_t  *shm;

    shm = mcf->limit_zone->data;

    if (zone->stat < UM_LIMIT_STATS) {
        (void) ngx_atomic_fetch_add(&shm->stats[zone->stat].results[result],
                                    1);
    }
}


u_char *
um_limit_metrics(ngx_http_usermgmt_main_conf_t *mcf, u_char *p)
{
    ngx_uint_t        i, k;
    um_limit_shm_t   *shm;
    um_limit_zone_t  *zones;

    if (mcf->limit_zones == NULL || mcf->limit_zone == NULL) {
        return p;
    }

    shm = mcf->limit_zone->data;
    zones = mcf->limit_zones->elts;

    p = ngx_sprintf(p, "# HELP usermgmt_ratelimit_decisions_total "
                    "Rate limit decisions by zone and result.\n"
                    "# TYPE usermgmt_ratelimit_decisions_total counter\n");

    for (i = 0; i < mcf->limit_zones->nelts; i++) {
        if (zones[i].stat >= UM_LIMIT_STATS) {
            continue;
        }

        for (k = 0; k < UM_LIMIT_RESULTS; k++) {
            p = ngx_sprintf(p, "usermgmt_ratelimit_decisions_total"
                            "{zone=\"%V\",result=\"%s\"} %uA\n",
                            &zones[i].name, um_limit_result_names[k],
                            shm->stats[zones[i].stat].results[k]);
        }
    }

    return p;
}


size_t
um_limit_metrics_size(ngx_http_usermgmt_main_conf_t *mcf)
{
    if (mcf->limit_zones == NULL) {
        return 0;
    }

    return 256 + mcf->limit_zones->nelts * UM_LIMIT_RESULTS * 160;
}


ngx_int_t
um_limit_add_zone(ngx_conf_t *cf, ngx_http_usermgmt_main_conf_t *mcf)
{
    size_t      size;
    ngx_str_t   name = ngx_string("usermgmt_limits");

    if (mcf->limit_zones == NULL) {
        return NGX_OK;
    }

    /* one size whatever the zones, so that a reload keeps the buckets */
    size = sizeof(um_limit_shm_t) + UM_LIMIT_SLOTS * sizeof(um_limit_entry_t);
    size = ngx_align(size + 16 * ngx_pagesize, ngx_pagesize);

    mcf->limit_zone = ngx_shared_memory_add(cf, &name, size,
                                            &ngx_http_usermgmt_module);
    if (mcf->limit_zone == NULL) {
        return NGX_ERROR;
    }

    mcf->limit_zone->init = um_limit_init_zone;
    mcf->limit_zone->data = mcf;

    /* the script's SHA-1, the name EVALSHA calls it by */
    um_limit_script_sha(mcf->limit_sha);

    return NGX_OK;
}


static ngx_int_t
um_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                          size;
    ngx_uint_t                      i, k;
    um_limit_shm_t                 *shm;
    um_limit_zone_t                *zone;
    ngx_slab_pool_t                *shpool;
    ngx_http_usermgmt_main_conf_t  *mcf;

    mcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data != NULL) {
        /* a reload: the buckets and counters go on */
        shm = data;

    } else if (shm_zone->shm.exists) {
        shm = shpool->data;

    } else {
        size = sizeof(um_limit_shm_t)
               + UM_LIMIT_SLOTS * sizeof(um_limit_entry_t);

        shm = ngx_slab_calloc(shpool, size);
        if (shm == NULL) {
            return NGX_ERROR;
        }

        shm->nslots = UM_LIMIT_SLOTS;
        shpool->data = shm;
    }

    shm_zone->data = shm;

    /* each zone finds its counters by name, or takes free ones */
    zone = mcf->limit_zones->elts;

    for (i = 0; i < mcf->limit_zones->nelts; i++) {
        zone[i].stat = UM_LIMIT_STATS;

        if (zone[i].name.len > sizeof(shm->stats[0].name)) {
            continue;
        }

        for (k = 0; k < UM_LIMIT_STATS; k++) {
            if (shm->stats[k].len == zone[i].name.len
                && ngx_strncmp(shm->stats[k].name, zone[i].name.data,
                               zone[i].name.len) == 0)
            {
                zone[i].stat = k;
                break;
            }
        }

        for (k = 0; zone[i].stat == UM_LIMIT_STATS && k < UM_LIMIT_STATS;
             k++)
        {
            if (shm->stats[k].len == 0) {
                ngx_memcpy(shm->stats[k].name, zone[i].name.data,
                           zone[i].name.len);
                shm->stats[k].len = zone[i].name.len;
                zone[i].stat = k;
            }
        }
    }

    return NGX_OK;
}


/*
 * SHA1() of OpenSSL 3 looks the digest up in its provider tables on every
 * call (a lock and a hash lookup); the worker fetches it once and keeps it
 * for its life.
 */
static void
um_limit_sha1(const u_char *data, size_t len, u_char *md)
{
    static EVP_MD  *sha1;

    if (sha1 == NULL) {
        sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    }

    if (sha1 == NULL || EVP_Digest(data, len, md, NULL, sha1, NULL) != 1) {
        (void) SHA1(data, len, md);
    }
}


static int64_t
um_limit_now_us(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return ((int64_t) tp->sec * 1000 + tp->msec) * 1000;
}


/*
 * usermgmt_limit_zone NAME key=ip|user|tenant|account|$var rate=100r/m
 *     [burst=N] [tier=ROLE:RATE ...] [fail=open|closed|local];
 */
char *
ngx_http_usermgmt_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    u_char                            *colon;
    ngx_str_t                         *value, s;
    ngx_int_t                          n;
    ngx_uint_t                         i;
    um_limit_tier_t                   *tier;
    um_limit_zone_t                   *zone, *z;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (mcf->limit_zones == NULL) {
        mcf->limit_zones = ngx_array_create(cf->pool, 4,
                                            sizeof(um_limit_zone_t));
        if (mcf->limit_zones == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    z = mcf->limit_zones->elts;

    for (i = 0; i < mcf->limit_zones->nelts; i++) {
        if (z[i].name.len == value[1].len
            && ngx_strncmp(z[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": zone \"%V\" is already defined",
                               &cmd->name, &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    zone = ngx_array_push(mcf->limit_zones);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(zone, sizeof(um_limit_zone_t));

    zone->name = value[1];
    zone->key = NGX_CONF_UNSET_UINT;
    zone->fail = UM_LIMIT_FAIL_LOCAL;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            if (s.len == 2 && ngx_strncmp(s.data, "ip", 2) == 0) {
                zone->key = UM_LIMIT_KEY_IP;

            } else if (s.len == 4 && ngx_strncmp(s.data, "user", 4) == 0) {
                zone->key = UM_LIMIT_KEY_USER;

            } else if (s.len == 6 && ngx_strncmp(s.data, "tenant", 6) == 0) {
                zone->key = UM_LIMIT_KEY_TENANT;

            } else if (s.len == 7 && ngx_strncmp(s.data, "account", 7) == 0) {
                zone->key = UM_LIMIT_KEY_ACCOUNT;

            } else if (s.len > 1 && s.data[0] == '$') {
                zone->key = UM_LIMIT_KEY_VAR;

                zone->var = ngx_palloc(cf->pool,
                                       sizeof(ngx_http_complex_value_t));
                if (zone->var == NULL) {
                    return NGX_CONF_ERROR;
                }

                ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
                ccv.cf = cf;
                ccv.value = &s;
                ccv.complex_value = zone->var;

                if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                    return NGX_CONF_ERROR;
                }

            } else {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (um_limit_parse_rate(&s, &zone->count, &zone->period)
                != NGX_OK)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 1 || n > 1000000) {
                goto invalid;
            }

            zone->burst = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tier=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            colon = ngx_strlchr(s.data, s.data + s.len, ':');
            if (colon == NULL || colon == s.data) {
                goto invalid;
            }

            if (zone->tiers == NULL) {
                zone->tiers = ngx_array_create(cf->pool, 2,
                                               sizeof(um_limit_tier_t));
                if (zone->tiers == NULL) {
                    return NGX_CONF_ERROR;
                }
            }

            tier = ngx_array_push(zone->tiers);
            if (tier == NULL) {
                return NGX_CONF_ERROR;
            }

            /* NUL-terminated, for the role check */
            tier->role.len = colon - s.data;
            tier->role.data = (u_char *) ngx_pcalloc(cf->pool,
                                                     tier->role.len + 1);
            if (tier->role.data == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memcpy(tier->role.data, s.data, tier->role.len);

            s.len -= colon - s.data + 1;
            s.data = colon + 1;

            if (um_limit_parse_rate(&s, &tier->count, &tier->period)
                != NGX_OK)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "fail=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (s.len == 4 && ngx_strncmp(s.data, "open", 4) == 0) {
                zone->fail = UM_LIMIT_FAIL_OPEN;

            } else if (s.len == 6 && ngx_strncmp(s.data, "closed", 6) == 0) {
                zone->fail = UM_LIMIT_FAIL_CLOSED;

            } else if (s.len == 5 && ngx_strncmp(s.data, "local", 5) == 0) {
                zone->fail = UM_LIMIT_FAIL_LOCAL;

            } else {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (zone->fail == UM_LIMIT_FAIL_CLOSED && !mcf->redis_set) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" zone \"%V\": fail=closed needs "
                           "\"usermgmt_redis\" earlier in the http block",
                           &cmd->name, &zone->name);
        return NGX_CONF_ERROR;
    }

    if (zone->key == NGX_CONF_UNSET_UINT || zone->count == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" zone \"%V\" needs key= and rate=",
                           &cmd->name, &zone->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid parameter \"%V\"",
                       &cmd->name, &value[i]);
    return NGX_CONF_ERROR;
}


/* usermgmt_limit NAME; */
char *
ngx_http_usermgmt_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_loc_conf_t  *lcf = conf;

    ngx_str_t                      *value;
    ngx_uint_t                      i, *zp;
    um_limit_zone_t                *z;
    ngx_http_usermgmt_main_conf_t  *mcf;

    value = cf->args->elts;
    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_usermgmt_module);

    /* "off" drops the limits this level would inherit */
    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        if (lcf->limits != NGX_CONF_UNSET_PTR) {
            return "is duplicate: \"off\" with other limits";
        }

        lcf->limits = NULL;
        return NGX_CONF_OK;
    }

    if (lcf->limits == NULL) {
        return "is duplicate: limits after \"off\"";
    }

    z = mcf->limit_zones ? mcf->limit_zones->elts : NULL;

    for (i = 0; z && i < mcf->limit_zones->nelts; i++) {
        if (z[i].name.len == value[1].len
            && ngx_strncmp(z[i].name.data, value[1].data, value[1].len) == 0)
        {
            break;
        }
    }

    if (z == NULL || i == mcf->limit_zones->nelts) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": unknown zone \"%V\" (declare it first "
                           "with \"usermgmt_limit_zone\")",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    if (lcf->limits == NGX_CONF_UNSET_PTR) {
        lcf->limits = ngx_array_create(cf->pool, 2, sizeof(ngx_uint_t));
        if (lcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    zp = ngx_array_push(lcf->limits);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    /* an index: the array of zones may still grow and move */
    *zp = i;

    if (z[i].key == UM_LIMIT_KEY_ACCOUNT) {
        lcf->limit_after_body = 1;

        /* for the error, should the location turn out not to be an API */
        lcf->limit_file = cf->conf_file->file.name;
        lcf->limit_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


/* "100r/m", "10r/s", "1000r/h", "5r/15m" */
static ngx_int_t
um_limit_parse_rate(ngx_str_t *s, ngx_uint_t *count, ngx_msec_t *period)
{
    u_char     *slash;
    ngx_int_t   n;
    ngx_str_t   p;

    slash = ngx_strlchr(s->data, s->data + s->len, '/');

    if (slash == NULL || slash - s->data < 2 || slash[-1] != 'r') {
        return NGX_ERROR;
    }

    n = ngx_atoi(s->data, slash - s->data - 1);
    if (n < 1 || n > 100000000) {
        return NGX_ERROR;
    }

    p.data = slash + 1;
    p.len = s->data + s->len - p.data;

    if (p.len == 1) {
        switch (p.data[0]) {
        case 's':
            *period = 1000;
            break;
        case 'm':
            *period = 60000;
            break;
        case 'h':
            *period = 3600000;
            break;
        case 'd':
            *period = 86400000;
            break;
        default:
            return NGX_ERROR;
        }

    } else {
        *period = ngx_parse_time(&p, 0);

        if (*period == (ngx_msec_t) NGX_ERROR || *period == 0) {
            return NGX_ERROR;
        }
    }

    *count = n;

    return NGX_OK;
}
