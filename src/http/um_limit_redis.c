/*
 * The rate limiter's side of Redis: the GCRA script, and the batches in
 * which requests reach it.
 *
 * The requests a worker reads in one turn of its event loop join one
 * batch, which a posted event sends once the turn's events are handled:
 * one EVALSHA decides the limits of all of them, each request in turn,
 * each all-or-nothing, as if it were alone.  A request therefore waits for
 * exactly one round trip, and Redis pays the fixed cost of a call (parsing,
 * the Lua call, TIME, the reply) once per batch instead of once per
 * request.  A request that goes away while its batch is out clears its
 * slot; its share of the answer is then skipped.
 */

#include "um_limit.h"

#include <openssl/sha.h>


#define UM_LIMIT_BATCH       64       /* requests in one script call */
#define UM_LIMIT_BATCH_KEYS  256      /* and their keys */


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


/* a request's place in a batch; ctx is cleared when the request goes */
struct um_limit_slot_s {
    um_ctx_t              *ctx;
    ngx_uint_t             n;          /* its limits */
    unsigned               sent:1;     /* in the call under way */
};


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


static void um_limit_flush(ngx_event_t *ev);
static void um_limit_batch_send(um_limit_batch_t *b);
static void um_limit_batch_reply(void *data, redisReply *reply,
    ngx_int_t status);
static void um_limit_batch_done(um_limit_batch_t *b, redisReply *reply);
static void um_limit_reply(um_ctx_t *ctx, redisReply **res);


/* the batches of this worker not yet sent, and the event that sends them */
static ngx_queue_t   um_limit_pending;
static ngx_event_t   um_limit_flush_event;


/*
 * The request joins the batch of this turn of the event loop; the batch
 * goes to Redis once the turn's events are handled (a posted event).
 */
ngx_int_t
um_limit_redis_ask(um_ctx_t *ctx)
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
            return NGX_ERROR;
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
    ngx_uint_t         i;
    um_limit_run_t    *run;
    um_limit_check_t  *check;

    run = ctx->limit;

    for (i = 0; res != NULL && i < 1 + 3 * run->n; i++) {
        if (res[i]->type != REDIS_REPLY_INTEGER) {
            res = NULL;
        }
    }

    if (res == NULL) {
        um_limit_resolved(ctx, -1);
        return;
    }

    for (i = 0; i < run->n; i++) {
        check = &run->checks[i];
        check->remaining = res[1 + 3 * i]->integer;
        check->retry = res[2 + 3 * i]->integer;
        check->reset = res[3 + 3 * i]->integer;
    }

    um_limit_resolved(ctx, res[0]->integer == 1);
}


void
um_limit_script_sha(u_char *sha)
{
    u_char  md[SHA_DIGEST_LENGTH];

    SHA1((u_char *) um_limit_script, sizeof(um_limit_script) - 1, md);

    *ngx_hex_dump(sha, md, SHA_DIGEST_LENGTH) = '\0';
}
