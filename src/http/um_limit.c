/*
 * Rate limits: GCRA (a token bucket kept as one timestamp per key) in
 * Redis, so a limit holds across workers and nodes.  Every limit of a
 * request is decided by one Lua script call: one round trip, and either
 * all limits take the request or none does.
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

#include "um_http.h"
#include "um_fields.h"

#include <openssl/sha.h>


#define UM_LIMIT_SLOTS     65536
#define UM_LIMIT_STATS     64
#define UM_LIMIT_PROBES    16
#define UM_LIMIT_PREFIX    "usermgmt:rl:"
#define UM_LIMIT_BATCH     64         /* requests in one script call */
#define UM_LIMIT_BATCH_KEYS 256       /* and their keys */

#define UM_LIMIT_ALLOWED   0
#define UM_LIMIT_LIMITED   1
#define UM_LIMIT_OPEN      2
#define UM_LIMIT_LOCAL     3
#define UM_LIMIT_CLOSED    4
#define UM_LIMIT_RESULTS   5


/*
 * One call decides the limits of every request of a batch, in turn.
 * KEYS: the keys of each request's limits, one request after another.
 * ARGV: per request, its number of limits, then per limit the emission
 * interval (us) and the bucket size.  Returns per request: allowed, then
 * per limit: remaining, the wait before a retry (ms), the time until the
 * bucket is full (ms).  Times are kept in microseconds, so that rates like
 * 7 a minute stay exact; the small slack in the floor absorbs the rounding
 * of the division.  A key met again in the same call is read from the
 * call's own table, and each changed key is written once at the end.
 */
static const char  um_limit_script[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000000 + t[2]\n"
    "local seen, dirty, out = {}, {}, {}\n"
    "local a, k = 1, 0\n"
    "while a <= #ARGV do\n"
    "  local n = tonumber(ARGV[a])\n"
    "  local allowed, base, tats, olds = 1, #out, {}, {}\n"
    "  a = a + 1\n"
    "  out[base + 1] = 1\n"
    "  for i = 1, n do\n"
    "    local key, o = KEYS[k + i], base + 3 * i - 1\n"
    "    local ei, cap = tonumber(ARGV[a]), tonumber(ARGV[a + 1])\n"
    "    a = a + 2\n"
    "    local tat = seen[key]\n"
    "    if tat == nil then\n"
    "      tat = tonumber(redis.call('GET', key) or 0)\n"
    "      seen[key] = tat\n"
    "    end\n"
    "    if tat < now then tat = now end\n"
    "    local new = tat + ei\n"
    "    local diff = now - (new - cap * ei)\n"
    "    if diff < 0 then\n"
    "      allowed = 0\n"
    "      out[o] = 0\n"
    "      out[o + 1] = math.ceil(-diff / 1000)\n"
    "    else\n"
    "      out[o] = math.floor(diff / ei + 0.001)\n"
    "      out[o + 1] = 0\n"
    "    end\n"
    "    out[o + 2] = math.ceil((new - now) / 1000)\n"
    "    tats[i], olds[i] = new, tat\n"
    "  end\n"
    "  for i = 1, n do\n"
    "    local o = base + 3 * i - 1\n"
    "    if allowed == 1 then\n"
    "      seen[KEYS[k + i]] = tats[i]\n"
    "      dirty[KEYS[k + i]] = true\n"
    "    else\n"
    "      -- refused: no bucket gives anything, so none reports a taking\n"
    "      if out[o + 1] == 0 then\n"
    "        out[o] = out[o] + 1\n"
    "      end\n"
    "      out[o + 2] = math.ceil((olds[i] - now) / 1000)\n"
    "    end\n"
    "  end\n"
    "  out[base + 1] = allowed\n"
    "  k = k + n\n"
    "end\n"
    "for key in pairs(dirty) do\n"
    "  local tat = seen[key]\n"
    "  redis.call('SET', key, string.format('%.0f', tat), 'PX',\n"
    "             math.max(1, math.ceil((tat - now) / 1000)))\n"
    "end\n"
    "return out\n";


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


/* a request's place in a batch; ctx is cleared when the request goes */
typedef struct {
    um_ctx_t              *ctx;
    ngx_uint_t             n;          /* its limits */
    unsigned               sent:1;     /* in the call under way */
} um_limit_slot_t;


/*
 * The requests of one turn of the event loop whose limits go to Redis in
 * one script call.  Each request still waits for exactly one round trip;
 * under load many share it, which spares Redis the cost of a call each.
 */
typedef struct {
    ngx_queue_t            link;       /* um_limit_pending, until sent */
    ngx_http_usermgmt_main_conf_t  *mcf;
    ngx_uint_t             n;
    ngx_uint_t             nkeys;
    unsigned               evalsha:1;
    um_limit_slot_t        slots[UM_LIMIT_BATCH];
} um_limit_batch_t;


typedef struct {
    um_limit_check_t      *checks;
    ngx_uint_t             n;
    ngx_int_t            (*resume)(um_ctx_t *ctx, ngx_int_t rc);
    um_limit_slot_t       *slot;       /* while waiting for Redis */
} um_limit_run_t;


static ngx_int_t um_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t um_limit_start(um_ctx_t *ctx,
    ngx_int_t (*resume)(um_ctx_t *ctx, ngx_int_t rc));
static ngx_int_t um_limit_prepare(um_ctx_t *ctx, um_limit_run_t *run);
static ngx_int_t um_limit_enqueue(um_ctx_t *ctx);
static void um_limit_flush(ngx_event_t *ev);
static void um_limit_batch_send(um_limit_batch_t *b);
static void um_limit_batch_reply(void *data, redisReply *reply,
    ngx_int_t status);
static void um_limit_batch_done(um_limit_batch_t *b, redisReply *reply);
static void um_limit_reply(um_ctx_t *ctx, redisReply **res);
static ngx_int_t um_limit_fallback(um_ctx_t *ctx);
static ngx_int_t um_limit_local(um_ctx_t *ctx, um_limit_check_t *c,
    ngx_uint_t commit);
static ngx_int_t um_limit_decide(um_ctx_t *ctx, ngx_uint_t allowed);
static ngx_int_t um_limit_headers(um_ctx_t *ctx);
static ngx_int_t um_limit_resume_phases(um_ctx_t *ctx, ngx_int_t rc);
static void um_limit_count(ngx_http_usermgmt_main_conf_t *mcf,
    um_limit_zone_t *zone, ngx_uint_t result);
static int64_t um_limit_now_us(void);
static ngx_int_t um_limit_parse_rate(ngx_str_t *s, ngx_uint_t *count,
    ngx_msec_t *period);


static const char  *um_limit_result_names[] = {
    "allowed", "limited", "fail_open", "fail_local", "fail_closed"
};


/* the batches of this worker not yet sent, and the event that sends them */
static ngx_queue_t   um_limit_pending;
static ngx_event_t   um_limit_flush_event;


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

    return um_limit_enqueue(ctx);
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
    static const char              hex[] = "0123456789abcdef";

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
        SHA1(value.data, value.len, md);

        c->key_len = sizeof(UM_LIMIT_PREFIX) - 1 + zone->name.len + 1
                     + 2 * SHA_DIGEST_LENGTH;
        c->key = ngx_pnalloc(r->pool, c->key_len);
        if (c->key == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(c->key, UM_LIMIT_PREFIX "%V:", &zone->name);

        for (j = 0; j < SHA_DIGEST_LENGTH; j++) {
            *p++ = hex[md[j] >> 4];
            *p++ = hex[md[j] & 0x0f];
        }
    }

    return NGX_OK;
}


/*
 * The request joins the batch of this turn of the event loop; the batch
 * goes to Redis once the turn's events are handled (a posted event).
 */
static ngx_int_t
um_limit_enqueue(um_ctx_t *ctx)
{
    ngx_queue_t       *q;
    um_limit_run_t    *run;
    um_limit_slot_t   *slot;
    um_limit_batch_t  *b;

    run = ctx->limit;
    b = NULL;

    if (um_limit_pending.next == NULL) {
        ngx_queue_init(&um_limit_pending);
    }

    if (!ngx_queue_empty(&um_limit_pending)) {
        q = ngx_queue_last(&um_limit_pending);
        b = ngx_queue_data(q, um_limit_batch_t, link);

        if (b->n == UM_LIMIT_BATCH
            || b->nkeys + run->n > UM_LIMIT_BATCH_KEYS)
        {
            b = NULL;
        }
    }

    if (b == NULL) {
        b = ngx_alloc(sizeof(um_limit_batch_t), ctx->r->connection->log);
        if (b == NULL) {
            return um_limit_fallback(ctx);
        }

        b->mcf = ctx->mcf;
        b->n = 0;
        b->nkeys = 0;
        b->evalsha = 1;
        ngx_queue_insert_tail(&um_limit_pending, &b->link);
    }

    if (!um_limit_flush_event.posted) {
        um_limit_flush_event.handler = um_limit_flush;
        um_limit_flush_event.log = ngx_cycle->log;
        ngx_post_event(&um_limit_flush_event, &ngx_posted_events);
    }

    slot = &b->slots[b->n++];
    slot->ctx = ctx;
    slot->n = run->n;
    slot->sent = 0;
    b->nkeys += run->n;

    run->slot = slot;
    ctx->limit_waiting = 1;

    return NGX_AGAIN;
}


/* the request went away: its decision, if any comes, is dropped */
void
um_limit_cancel(um_ctx_t *ctx)
{
    um_limit_run_t  *run;

    run = ctx->limit;

    if (run != NULL && run->slot != NULL) {
        run->slot->ctx = NULL;
        run->slot = NULL;
    }
}


static void
um_limit_flush(ngx_event_t *ev)
{
    ngx_queue_t       *q;
    um_limit_batch_t  *b;

    while (!ngx_queue_empty(&um_limit_pending)) {
        q = ngx_queue_head(&um_limit_pending);
        ngx_queue_remove(q);

        b = ngx_queue_data(q, um_limit_batch_t, link);
        um_limit_batch_send(b);
    }
}


/* EVALSHA runs the cached script; NOSCRIPT brings the text once */
static void
um_limit_batch_send(um_limit_batch_t *b)
{
    u_char            *buf, *p;
    size_t            *lens;
    ngx_uint_t         i, j, k, nkeys, nreq, argc;
    const char       **argv;
    um_limit_run_t    *run;
    um_limit_slot_t   *slot;
    um_limit_check_t  *c;
    um_redis_cmd_t    *cmd;

    nkeys = 0;
    nreq = 0;

    for (i = 0; i < b->n; i++) {
        slot = &b->slots[i];
        slot->sent = (slot->ctx != NULL);

        if (slot->sent) {
            nreq++;
            nkeys += slot->n;
        }
    }

    if (nreq == 0) {
        ngx_free(b);
        return;
    }

    argc = 3 + nkeys + nreq + 2 * nkeys;

    argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t))
                     + nreq * NGX_INT_T_LEN + nkeys * (64 + NGX_INT_T_LEN),
                     ngx_cycle->log);
    if (argv == NULL) {
        um_limit_batch_done(b, NULL);
        return;
    }

    lens = (size_t *) (argv + argc);
    buf = (u_char *) (lens + argc);

    if (b->evalsha) {
        argv[0] = "EVALSHA";
        argv[1] = (char *) b->mcf->limit_sha;

    } else {
        argv[0] = "EVAL";
        argv[1] = um_limit_script;
    }

    lens[0] = ngx_strlen(argv[0]);
    lens[1] = ngx_strlen(argv[1]);

    argv[2] = (char *) buf;
    buf = ngx_sprintf(buf, "%ui", nkeys);
    lens[2] = buf - (u_char *) argv[2];

    /* the keys, then each request's count and rates, in the same order */
    k = 3;
    p = buf;

    for (i = 0; i < b->n; i++) {
        if (!b->slots[i].sent) {
            continue;
        }

        run = b->slots[i].ctx->limit;

        for (j = 0; j < run->n; j++) {
            argv[k] = (char *) run->checks[j].key;
            lens[k++] = run->checks[j].key_len;
        }
    }

    for (i = 0; i < b->n; i++) {
        if (!b->slots[i].sent) {
            continue;
        }

        run = b->slots[i].ctx->limit;

        argv[k] = (char *) p;
        p = ngx_sprintf(p, "%ui", run->n);
        lens[k] = p - (u_char *) argv[k];
        k++;

        for (j = 0; j < run->n; j++) {
            c = &run->checks[j];

            argv[k] = (char *) p;
            p = ngx_sprintf(p, "%.3f", c->interval);
            lens[k] = p - (u_char *) argv[k];
            k++;

            argv[k] = (char *) p;
            p = ngx_sprintf(p, "%ui", c->capacity);
            lens[k] = p - (u_char *) argv[k];
            k++;
        }
    }

    /* hiredis copies the command; the arguments are ours to free */
    cmd = um_redis_send(b->mcf->redis_client, um_limit_batch_reply, b,
                        argc, argv, lens);

    ngx_free(argv);

    if (cmd == NULL) {
        um_limit_batch_done(b, NULL);
    }
}


static void
um_limit_batch_reply(void *data, redisReply *reply, ngx_int_t status)
{
    um_limit_batch_t  *b = data;

    if (status != UM_REDIS_OK) {
        um_limit_batch_done(b, NULL);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        if (b->evalsha && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            /* the server lost its scripts (restart, SCRIPT FLUSH) */
            b->evalsha = 0;
            um_limit_batch_send(b);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "usermgmt: rate limit script failed: %s", reply->str);
        um_limit_batch_done(b, NULL);
        return;
    }

    um_limit_batch_done(b, reply);
}


/* each request of the batch gets its part of the answer, or the fallback */
static void
um_limit_batch_done(um_limit_batch_t *b, redisReply *reply)
{
    size_t            k, want;
    ngx_uint_t        i;
    um_ctx_t         *ctx;
    um_limit_run_t   *run;
    um_limit_slot_t  *slot;

    want = 0;

    for (i = 0; i < b->n; i++) {
        if (b->slots[i].sent) {
            want += 1 + 3 * b->slots[i].n;
        }
    }

    if (reply != NULL
        && (reply->type != REDIS_REPLY_ARRAY || reply->elements != want))
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "usermgmt: rate limit script gave an unexpected answer");
        reply = NULL;
    }

    k = 0;

    for (i = 0; i < b->n; i++) {
        slot = &b->slots[i];

        if (!slot->sent) {
            continue;
        }

        ctx = slot->ctx;

        if (ctx != NULL) {
            run = ctx->limit;
            run->slot = NULL;
            slot->ctx = NULL;

            um_limit_reply(ctx, reply ? &reply->element[k] : NULL);
        }

        k += 1 + 3 * slot->n;
    }

    ngx_free(b);
}


/* res: the request's 1 + 3n integers, or NULL when Redis did not answer */
static void
um_limit_reply(um_ctx_t *ctx, redisReply **res)
{
    ngx_int_t            rc;
    ngx_uint_t           i;
    ngx_connection_t    *c;
    um_limit_run_t      *run;
    um_limit_check_t    *check;
    ngx_http_request_t  *r;

    r = ctx->r;
    c = r->connection;
    run = ctx->limit;
    ctx->limit_waiting = 0;
    ctx->limit_done = 1;

    for (i = 0; res != NULL && i < 1 + 3 * run->n; i++) {
        if (res[i]->type != REDIS_REPLY_INTEGER) {
            res = NULL;
        }
    }

    if (res == NULL) {
        rc = um_limit_fallback(ctx);

    } else {
        for (i = 0; i < run->n; i++) {
            check = &run->checks[i];
            check->remaining = res[1 + 3 * i]->integer;
            check->retry = res[2 + 3 * i]->integer;
            check->reset = res[3 + 3 * i]->integer;
        }

        rc = um_limit_decide(ctx, res[0]->integer == 1);
    }

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

    SHA1(c->key, c->key_len, md);
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
    u_char      md[SHA_DIGEST_LENGTH], *p;
    size_t      size, i;
    ngx_str_t   name = ngx_string("usermgmt_limits");
    static const char  hex[] = "0123456789abcdef";

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
    SHA1((u_char *) um_limit_script, sizeof(um_limit_script) - 1, md);

    p = mcf->limit_sha;

    for (i = 0; i < SHA_DIGEST_LENGTH; i++) {
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 0x0f];
    }

    *p = '\0';

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
