/*
 * The deny-list of access tokens and sessions ended before their tokens
 * expire (logout, refresh-token reuse, password change).
 *
 * Redis holds the list for every node: a sorted set of ids scored by the
 * time the last token they cover expires, and a channel that announces
 * each addition.  Each node keeps a copy in shared memory, written by the
 * worker that revokes and by the workers that hear the channel, so an
 * authenticated request is checked without leaving the process.  While a
 * worker is not subscribed (Redis away, just started), it asks Redis on
 * each request instead, so nothing revoked slips through a gap.
 */

#include "um_http.h"


#define UM_REVOKED_SET       "usermgmt:revoked"
#define UM_REVOKED_CHANNEL   "usermgmt:revoked"
#define UM_REVOKE_SLOTS      131072
#define UM_REVOKE_PROBES     64
#define UM_REVOKE_TICK       1000
#define UM_REVOKE_BATCH      128


/*
 * Publishes revocations: ARGV[1] is now, then pairs of id and expiry.
 * The set forgets what has expired on every call.
 */
static const char  um_revoke_script[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) "
    "local msg = {} "
    "for i = 2, #ARGV - 1, 2 do "
    "  redis.call('ZADD', KEYS[1], 'GT', ARGV[i + 1], ARGV[i]) "
    "  msg[#msg + 1] = ARGV[i] .. ' ' .. ARGV[i + 1] "
    "end "
    "redis.call('PUBLISH', '" UM_REVOKED_CHANNEL "', table.concat(msg, ' ')) "
    "return #msg";


typedef struct {
    u_char                id[16];
    int64_t               exp;
    ngx_uint_t            pending;      /* not yet told to Redis */
} um_revoke_entry_t;


typedef struct {
    ngx_uint_t            nslots;
    ngx_atomic_t          full_until;   /* an id found no slot */
    ngx_atomic_t          pending;      /* entries not yet in Redis */
    um_revoke_entry_t     slots[1];
} um_revoke_table_t;


/* revocations on their way to Redis */
typedef struct {
    um_ctx_t                       *ctx;
    um_redis_handler_pt             handler;
    ngx_str_t                      *ids;
    ngx_uint_t                      n;
    time_t                          exp;
} um_revoke_job_t;


typedef struct {
    ngx_http_usermgmt_main_conf_t  *mcf;
    um_redis_t                     *sub;
    ngx_event_t                     tick;
    um_redis_cmd_t                 *catchup;
    u_char                          now[NGX_TIME_T_LEN + 1];

    /* the batch of the node's unpublished revocations being replayed */
    um_revoke_entry_t               replay[UM_REVOKE_BATCH];
    ngx_uint_t                      nreplay;
    unsigned                        replaying:1;
    unsigned                        subscribed:1;
    unsigned                        live:1;
} um_revoke_worker_t;


static ngx_int_t um_revoke_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static void um_revoke_tick(ngx_event_t *ev);
static void um_revoke_message(void *data, redisReply *reply,
    ngx_int_t status);
static void um_revoke_caught_up(void *data, redisReply *reply,
    ngx_int_t status);
static ngx_int_t um_revoke_parse_id(const u_char *s, size_t len,
    u_char id[16]);
static void um_revoke_insert(ngx_shm_zone_t *zone, const u_char *s,
    size_t len, int64_t exp, ngx_uint_t pending);
static void um_revoke_published(void *data, redisReply *reply,
    ngx_int_t status);
static void um_revoke_replay(um_revoke_worker_t *w);
static void um_revoke_replayed(void *data, redisReply *reply,
    ngx_int_t status);
static void um_revoke_mark(ngx_shm_zone_t *zone, um_revoke_entry_t *e,
    ngx_uint_t n);
static size_t um_revoke_id_text(u_char id[16], u_char text[37]);
static void um_revoke_insert_list(ngx_shm_zone_t *zone, const char *s,
    size_t len);
static ngx_int_t um_revoke_lookup(ngx_shm_zone_t *zone, ngx_str_t *id);


static um_revoke_worker_t  um_revoke_worker;

static um_redis_stats_t    um_revoke_sub_stats;


ngx_int_t
um_revoke_add_zone(ngx_conf_t *cf, ngx_http_usermgmt_main_conf_t *mcf)
{
    size_t      size;
    ngx_str_t   name = ngx_string("usermgmt_revoked");

    size = sizeof(um_revoke_table_t)
           + UM_REVOKE_SLOTS * sizeof(um_revoke_entry_t);
    size = ngx_align(size + 16 * ngx_pagesize, ngx_pagesize);

    mcf->revoke_zone = ngx_shared_memory_add(cf, &name, size,
                                             &ngx_http_usermgmt_module);
    if (mcf->revoke_zone == NULL) {
        return NGX_ERROR;
    }

    mcf->revoke_zone->init = um_revoke_init_zone;

    return NGX_OK;
}


ngx_int_t
um_revoke_init_worker(ngx_http_usermgmt_main_conf_t *mcf, ngx_log_t *log)
{
    um_revoke_worker_t  *w;

    w = &um_revoke_worker;
    ngx_memzero(w, sizeof(um_revoke_worker_t));

    if (!mcf->redis_set) {
        /* one node without Redis: the local table is the whole list */
        w->live = 1;
        return NGX_OK;
    }

    w->mcf = mcf;

    w->sub = um_redis_create(&mcf->redis, &um_revoke_sub_stats, log);
    if (w->sub == NULL) {
        return NGX_ERROR;
    }

    w->tick.handler = um_revoke_tick;
    w->tick.data = w;
    w->tick.log = log;
    w->tick.cancelable = 1;

    um_revoke_tick(&w->tick);

    return NGX_OK;
}


void
um_revoke_exit_worker(void)
{
    um_revoke_worker_t  *w;

    w = &um_revoke_worker;

    if (w->tick.timer_set) {
        ngx_del_timer(&w->tick);
    }

    if (w->catchup != NULL) {
        um_redis_cancel(w->catchup);
        w->catchup = NULL;
    }

    um_redis_destroy(w->sub);
    w->sub = NULL;
    w->live = 0;
    w->subscribed = 0;
}


/*
 * 1: revoked.  0: not revoked.  NGX_DECLINED: this worker's copy may be
 * behind; ask Redis.
 */
ngx_int_t
um_revoke_check(ngx_http_usermgmt_main_conf_t *mcf, ngx_str_t *jti,
    ngx_str_t *sid, ngx_str_t *tenant)
{
    ngx_int_t  rc;

    /* the token, its session, or its whole organization */
    rc = um_revoke_lookup(mcf->revoke_zone, sid);

    if (rc == 0) {
        rc = um_revoke_lookup(mcf->revoke_zone, jti);
    }

    if (rc == 0) {
        rc = um_revoke_lookup(mcf->revoke_zone, tenant);
    }

    if (rc == 1) {
        return 1;
    }

    if (rc == NGX_DECLINED || !um_revoke_worker.live
        || (time_t) ((um_revoke_table_t *) mcf->revoke_zone->data)->full_until
           > ngx_time())
    {
        return NGX_DECLINED;
    }

    return 0;
}


/* the question to Redis when the local copy cannot answer */
um_redis_cmd_t *
um_revoke_ask(ngx_http_usermgmt_main_conf_t *mcf, ngx_str_t *jti,
    ngx_str_t *sid, ngx_str_t *tenant, um_redis_handler_pt handler,
    void *data)
{
    const char  *argv[5];
    size_t       lens[5];

    argv[0] = "ZMSCORE";
    lens[0] = 7;
    argv[1] = UM_REVOKED_SET;
    lens[1] = sizeof(UM_REVOKED_SET) - 1;
    argv[2] = (char *) jti->data;
    lens[2] = jti->len;
    argv[3] = (char *) sid->data;
    lens[3] = sid->len;
    argv[4] = (char *) tenant->data;
    lens[4] = tenant->len;

    return um_redis_send(mcf->redis_client, handler, data, 5, argv, lens);
}


/* an answer of um_revoke_ask(): is any id listed beyond now? */
ngx_int_t
um_revoke_answer(redisReply *reply)
{
    size_t  i;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return 0;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_STRING
            && ngx_atoi((u_char *) reply->element[i]->str,
                        ngx_strlen(reply->element[i]->str))
               > ngx_time())
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Revokes ids (sessions or token ids) until exp: at once on this node, and
 * through Redis for every node.  Returns the Redis command to wait for, or
 * NULL when Redis is out of reach: the node then keeps the ids and replays
 * them to Redis when it is back.
 */
um_redis_cmd_t *
um_revoke_ids(um_ctx_t *ctx, ngx_str_t *ids, ngx_uint_t n, time_t exp,
    um_redis_handler_pt handler)
{
    u_char           *p;
    size_t           *lens, exp_len;
    ngx_uint_t        i, k;
    const char      **argv;
    um_redis_cmd_t   *cmd;
    um_revoke_job_t  *job;

    for (i = 0; i < n; i++) {
        um_revoke_insert(ctx->mcf->revoke_zone, ids[i].data, ids[i].len, exp,
                         0);
    }

    if (ctx->mcf->redis_client == NULL || n == 0) {
        return NULL;
    }

    job = ngx_palloc(ctx->r->pool, sizeof(um_revoke_job_t));
    argv = ngx_palloc(ctx->r->pool, (5 + 2 * n) * sizeof(char *));
    lens = ngx_palloc(ctx->r->pool, (5 + 2 * n) * sizeof(size_t));
    p = ngx_pnalloc(ctx->r->pool, NGX_TIME_T_LEN);

    if (job == NULL || argv == NULL || lens == NULL || p == NULL) {
        goto unpublished;
    }

    job->ctx = ctx;
    job->handler = handler;
    job->ids = ids;
    job->n = n;
    job->exp = exp;

    /* EVAL script 1 set now id exp id exp ... */
    argv[0] = "EVAL";
    argv[1] = um_revoke_script;
    argv[2] = "1";
    argv[3] = UM_REVOKED_SET;
    argv[4] = um_pint(ctx, ngx_time());

    if (argv[4] == NULL) {
        goto unpublished;
    }

    exp_len = ngx_sprintf(p, "%T", exp) - p;

    for (i = 0, k = 5; i < n; i++) {
        argv[k] = (char *) ids[i].data;
        lens[k] = ids[i].len;
        k++;
        argv[k] = (char *) p;
        lens[k] = exp_len;
        k++;
    }

    for (i = 0; i < 5; i++) {
        lens[i] = ngx_strlen(argv[i]);
    }

    cmd = um_redis_send(ctx->mcf->redis_client, um_revoke_published, job, k,
                        argv, lens);

    if (cmd != NULL) {
        return cmd;
    }

unpublished:

    for (i = 0; i < n; i++) {
        um_revoke_insert(ctx->mcf->revoke_zone, ids[i].data, ids[i].len, exp,
                         1);
    }

    return NULL;
}


static void
um_revoke_published(void *data, redisReply *reply, ngx_int_t status)
{
    um_revoke_job_t  *job = data;
    ngx_uint_t        i;

    if (status != UM_REDIS_OK || reply->type == REDIS_REPLY_ERROR) {
        /* kept here, and replayed to Redis once it answers again */
        for (i = 0; i < job->n; i++) {
            um_revoke_insert(job->ctx->mcf->revoke_zone, job->ids[i].data,
                             job->ids[i].len, job->exp, 1);
        }
    }

    job->handler(job->ctx, reply, status);
}


static ngx_int_t
um_revoke_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t              size;
    ngx_slab_pool_t    *shpool;
    um_revoke_table_t  *t;

    if (data != NULL) {
        /* a reload keeps the list */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    size = sizeof(um_revoke_table_t)
           + UM_REVOKE_SLOTS * sizeof(um_revoke_entry_t);

    t = ngx_slab_calloc(shpool, size);
    if (t == NULL) {
        return NGX_ERROR;
    }

    t->nslots = UM_REVOKE_SLOTS;

    shpool->data = t;
    shm_zone->data = t;

    return NGX_OK;
}


/*
 * Once a second: subscribe when not subscribed.  Redis coming back is
 * noticed here, without a reload.
 */
static void
um_revoke_tick(ngx_event_t *ev)
{
    um_revoke_worker_t  *w = ev->data;

    if (!w->subscribed) {
        if (um_redis_subscribe(w->sub, UM_REVOKED_CHANNEL, um_revoke_message,
                               w)
            == NGX_OK)
        {
            w->subscribed = 1;
        }
    }

    if (w->live && !w->replaying
        && ((um_revoke_table_t *) w->mcf->revoke_zone->data)->pending)
    {
        um_revoke_replay(w);
    }

    if (!ngx_exiting) {
        ngx_add_timer(&w->tick, UM_REVOKE_TICK);
    }
}


static void
um_revoke_message(void *data, redisReply *reply, ngx_int_t status)
{
    um_revoke_worker_t  *w = data;
    redisReply          *kind, *payload;
    const char          *argv[7];

    if (reply == NULL || status != UM_REDIS_OK) {
        /* the subscription ended: ask Redis per request until it is back */
        w->subscribed = 0;
        w->live = 0;
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        return;
    }

    kind = reply->element[0];
    payload = reply->element[2];

    if (kind->type != REDIS_REPLY_STRING) {
        return;
    }

    if (ngx_strcmp(kind->str, "message") == 0
        && payload->type == REDIS_REPLY_STRING)
    {
        um_revoke_insert_list(w->mcf->revoke_zone, payload->str,
                              payload->len);
        return;
    }

    if (ngx_strcmp(kind->str, "subscribe") != 0 || w->catchup != NULL) {
        return;
    }

    /* subscribed: now copy what was revoked before, then trust the copy */
    *ngx_sprintf(w->now, "%T", ngx_time()) = '\0';

    argv[0] = "ZRANGE";
    argv[1] = UM_REVOKED_SET;
    argv[2] = "+inf";
    argv[3] = (char *) w->now;
    argv[4] = "BYSCORE";
    argv[5] = "REV";
    argv[6] = "WITHSCORES";

    w->catchup = um_redis_send(w->mcf->redis_client, um_revoke_caught_up, w,
                               7, argv, NULL);
}


static void
um_revoke_caught_up(void *data, redisReply *reply, ngx_int_t status)
{
    size_t               i;
    redisReply          *id, *score;
    um_revoke_worker_t  *w = data;

    w->catchup = NULL;

    if (status != UM_REDIS_OK || reply->type != REDIS_REPLY_ARRAY) {
        /* stay in ask-Redis mode; a new subscription tries again */
        um_redis_destroy(w->sub);
        w->sub = um_redis_create(&w->mcf->redis, &um_revoke_sub_stats,
                                 w->tick.log);
        w->subscribed = 0;
        return;
    }

    /* member, score, member, score, ... */
    for (i = 0; i + 1 < reply->elements; i += 2) {
        id = reply->element[i];
        score = reply->element[i + 1];

        if (id->type == REDIS_REPLY_STRING
            && score->type == REDIS_REPLY_STRING)
        {
            um_revoke_insert(w->mcf->revoke_zone, (u_char *) id->str,
                             id->len,
                             ngx_atoi((u_char *) score->str, score->len), 0);
        }
    }

    w->live = 1;
}


/* "36-char-uuid exp 36-char-uuid exp ..." */
static void
um_revoke_insert_list(ngx_shm_zone_t *zone, const char *s, size_t len)
{
    const char  *p, *last, *id, *num;
    size_t       idlen, numlen;

    p = s;
    last = s + len;

    while (p < last) {
        id = p;

        while (p < last && *p != ' ') {
            p++;
        }

        idlen = p - id;

        if (p < last) {
            p++;
        }

        num = p;

        while (p < last && *p != ' ') {
            p++;
        }

        numlen = p - num;

        if (p < last) {
            p++;
        }

        um_revoke_insert(zone, (u_char *) id, idlen,
                         ngx_atoi((u_char *) num, numlen), 0);
    }
}


/* a hex digit um_is_uuid() has already checked */
static ngx_inline ngx_int_t
um_revoke_hex(u_char c)
{
    return (c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
}


static ngx_int_t
um_revoke_parse_id(const u_char *s, size_t len, u_char id[16])
{
    size_t      i, k;
    ngx_int_t   hi, lo;

    if (!um_is_uuid(s, len)) {
        return NGX_ERROR;
    }

    for (i = 0, k = 0; i < len && k < 16; /* void */ ) {
        if (s[i] == '-') {
            i++;
            continue;
        }

        hi = um_revoke_hex(s[i]);
        lo = um_revoke_hex(s[i + 1]);
        id[k++] = (u_char) (hi << 4 | lo);
        i += 2;
    }

    return NGX_OK;
}


static void
um_revoke_insert(ngx_shm_zone_t *zone, const u_char *s, size_t len,
    int64_t exp, ngx_uint_t pending)
{
    u_char              id[16];
    uint64_t            h;
    ngx_uint_t          i, slot, free;
    ngx_slab_pool_t    *shpool;
    um_revoke_table_t  *t;
    int64_t             now;

    if (exp <= 0 || um_revoke_parse_id(s, len, id) != NGX_OK) {
        return;
    }

    t = zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    now = ngx_time();

    ngx_memcpy(&h, id, sizeof(h));
    free = t->nslots;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < UM_REVOKE_PROBES; i++) {
        slot = (h + i) % t->nslots;

        if (ngx_memcmp(t->slots[slot].id, id, 16) == 0
            && t->slots[slot].exp > now)
        {
            if (t->slots[slot].exp < exp) {
                t->slots[slot].exp = exp;
            }

            free = slot;
            goto found;
        }

        if (free == t->nslots && t->slots[slot].exp <= now) {
            free = slot;
        }
    }

    if (free == t->nslots) {
        /* never drop a revocation: ask Redis until this one has expired */
        if ((int64_t) t->full_until < exp) {
            t->full_until = exp;
        }

        ngx_shmtx_unlock(&shpool->mutex);
        return;
    }

    if (t->slots[free].pending) {
        t->pending--;
    }

    ngx_memcpy(t->slots[free].id, id, 16);
    t->slots[free].exp = exp;
    t->slots[free].pending = 0;

found:

    if (pending && !t->slots[free].pending) {
        t->slots[free].pending = 1;
        t->pending++;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* 1 listed, 0 not, NGX_DECLINED when the id is not a UUID */
static ngx_int_t
um_revoke_lookup(ngx_shm_zone_t *zone, ngx_str_t *s)
{
    u_char              id[16];
    uint64_t            h;
    ngx_int_t           rc;
    ngx_uint_t          i, slot;
    ngx_slab_pool_t    *shpool;
    um_revoke_table_t  *t;

    if (um_revoke_parse_id(s->data, s->len, id) != NGX_OK) {
        return NGX_DECLINED;
    }

    t = zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_memcpy(&h, id, sizeof(h));
    rc = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < UM_REVOKE_PROBES; i++) {
        slot = (h + i) % t->nslots;

        if (ngx_memcmp(t->slots[slot].id, id, 16) == 0) {
            rc = (t->slots[slot].exp > ngx_time());
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * Revocations made while Redis was away reach the other nodes now: a
 * batch at a time, taken off the table's pending list and put back if
 * Redis fails again.
 */
static void
um_revoke_replay(um_revoke_worker_t *w)
{
    size_t              lens[5 + 2 * UM_REVOKE_BATCH];
    int64_t             now;
    ngx_uint_t          i, k;
    const char         *argv[5 + 2 * UM_REVOKE_BATCH];
    ngx_slab_pool_t    *shpool;
    um_revoke_table_t  *t;
    u_char              ids[UM_REVOKE_BATCH][37];
    u_char              exps[UM_REVOKE_BATCH][NGX_INT64_LEN];

    t = w->mcf->revoke_zone->data;
    shpool = (ngx_slab_pool_t *) w->mcf->revoke_zone->shm.addr;
    now = ngx_time();
    w->nreplay = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < t->nslots && w->nreplay < UM_REVOKE_BATCH; i++) {
        if (!t->slots[i].pending) {
            continue;
        }

        t->slots[i].pending = 0;
        t->pending--;

        if (t->slots[i].exp > now) {
            w->replay[w->nreplay++] = t->slots[i];
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (w->nreplay == 0) {
        return;
    }

    argv[0] = "EVAL";
    argv[1] = um_revoke_script;
    argv[2] = "1";
    argv[3] = UM_REVOKED_SET;
    argv[4] = (char *) w->now;
    *ngx_sprintf(w->now, "%T", ngx_time()) = '\0';

    for (i = 0, k = 5; i < w->nreplay; i++) {
        /* hiredis copies the arguments: stack buffers are enough */
        argv[k] = (char *) ids[i];
        lens[k] = um_revoke_id_text(w->replay[i].id, ids[i]);
        k++;

        argv[k] = (char *) exps[i];
        lens[k] = ngx_sprintf(exps[i], "%L", w->replay[i].exp) - exps[i];
        k++;
    }

    for (i = 0; i < 5; i++) {
        lens[i] = ngx_strlen(argv[i]);
    }

    if (um_redis_send(w->mcf->redis_client, um_revoke_replayed, w, k, argv,
                      lens)
        == NULL)
    {
        um_revoke_mark(w->mcf->revoke_zone, w->replay, w->nreplay);
        return;
    }

    w->replaying = 1;
}


static void
um_revoke_replayed(void *data, redisReply *reply, ngx_int_t status)
{
    um_revoke_worker_t  *w = data;

    w->replaying = 0;

    if (status != UM_REDIS_OK || reply->type == REDIS_REPLY_ERROR) {
        um_revoke_mark(w->mcf->revoke_zone, w->replay, w->nreplay);
    }
}


/* puts entries back on the pending list */
static void
um_revoke_mark(ngx_shm_zone_t *zone, um_revoke_entry_t *e, ngx_uint_t n)
{
    ngx_uint_t  i;
    u_char      text[37];

    for (i = 0; i < n; i++) {
        um_revoke_insert(zone, text, um_revoke_id_text(e[i].id, text),
                         e[i].exp, 1);
    }
}


/* the text form of a UUID kept as 16 bytes */
static size_t
um_revoke_id_text(u_char id[16], u_char text[37])
{
    return ngx_sprintf(text, "%*xs-%*xs-%*xs-%*xs-%*xs",
                       (size_t) 4, id, (size_t) 2, id + 4, (size_t) 2, id + 6,
                       (size_t) 2, id + 8, (size_t) 6, id + 10)
           - text;
}
