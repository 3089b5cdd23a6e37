/*
 * The life of a connection:
 *
 *   connecting ──► idle ◄──► preparing ──► executing ──► idle
 *        │           │                         │
 *        └───────────┴──── closed ◄────────────┘  (error, timeout, EOF)
 *
 * A query that finds no idle connection opens one (up to max) and waits in
 * the pool's queue, bounded in length and in time.  A connection returns to
 * the idle list only when the server says the session is idle; a request
 * that leaves mid-query leaves its connection to drain the answer, bounded by
 * the query timeout.  libpq owns every socket: nginx only watches it.
 */

#include "um_pg.h"
#include "um_fd.h"
#include "um_backoff.h"


#define UM_PG_CONNECTING    0
#define UM_PG_IDLE          1
#define UM_PG_PREPARING     2
#define UM_PG_EXECUTING     3



struct um_pg_conn_s {
    ngx_queue_t         link;           /* pool->idle or pool->active */
    um_pg_pool_t       *pool;
    PGconn             *pg;
    ngx_connection_t   *c;
    um_pg_query_t      *query;          /* NULL when idle or draining */
    PGresult           *result;
    ngx_uint_t          state;
    uint64_t            prepared[UM_PG_MAX_STMTS / 64];
};


struct um_pg_pool_s {
    um_pg_conf_t       *conf;
    um_pg_stats_t      *stats;
    ngx_log_t          *log;

    ngx_queue_t         idle;
    ngx_queue_t         active;
    ngx_queue_t         waiting;
    ngx_uint_t          nconns;
    ngx_uint_t          nwaiting;

    um_backoff_t        backoff;        /* before a new connection */

    const char         *keywords[6];
    const char         *values[6];
};


static ngx_int_t um_pg_open(um_pg_pool_t *pool);
static void um_pg_event_handler(ngx_event_t *ev);
static void um_pg_connect_poll(um_pg_conn_t *pc);
static void um_pg_idle_read(um_pg_conn_t *pc);
static ngx_int_t um_pg_run(um_pg_conn_t *pc, um_pg_query_t *q);
static ngx_int_t um_pg_send_step(um_pg_conn_t *pc);
static ngx_int_t um_pg_flush(um_pg_conn_t *pc);
static void um_pg_receive(um_pg_conn_t *pc);
static void um_pg_step_done(um_pg_conn_t *pc);
static void um_pg_release(um_pg_conn_t *pc);
static void um_pg_dispatch(um_pg_pool_t *pool);
static void um_pg_fail(um_pg_conn_t *pc, ngx_int_t status);
static void um_pg_close(um_pg_conn_t *pc);
static void um_pg_fail_waiting(um_pg_pool_t *pool, ngx_int_t status);
static void um_pg_wait_timeout(ngx_event_t *ev);
static void um_pg_finish(um_pg_query_t *q, PGresult *res, ngx_int_t status);
static void um_pg_count(um_pg_pool_t *pool);


static ngx_uint_t  um_pg_next_stmt_id;


um_pg_pool_t *
um_pg_pool_create(um_pg_conf_t *conf, um_pg_stats_t *stats, ngx_log_t *log)
{
    u_char        *options, *conninfo;
    um_pg_pool_t  *pool;

    pool = ngx_calloc(sizeof(um_pg_pool_t), log);
    if (pool == NULL) {
        return NULL;
    }

    conninfo = ngx_calloc(conf->conninfo.len + 1, log);
    options = ngx_calloc(sizeof("-c statement_timeout=") + NGX_INT_T_LEN
                         + sizeof(" -c TimeZone=UTC"), log);

    if (conninfo == NULL || options == NULL) {
        ngx_free(conninfo);
        ngx_free(options);
        ngx_free(pool);
        return NULL;
    }

    ngx_memcpy(conninfo, conf->conninfo.data, conf->conninfo.len);

    /*
     * The server ends a statement that outlives the client's patience, so a
     * connection whose caller timed out is not left running a query.
     */
    ngx_sprintf(options, "-c statement_timeout=%M -c TimeZone=UTC%Z",
                conf->timeout);

    /* keywords after "dbname" override the operator's connection string */
    pool->keywords[0] = "dbname";
    pool->values[0] = (const char *) conninfo;
    pool->keywords[1] = "application_name";
    pool->values[1] = "usermgmt";
    pool->keywords[2] = "options";
    pool->values[2] = (const char *) options;
    pool->keywords[3] = "client_encoding";
    pool->values[3] = "UTF8";
    pool->keywords[4] = NULL;
    pool->values[4] = NULL;

    pool->conf = conf;
    pool->stats = stats;
    pool->log = log;

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->active);
    ngx_queue_init(&pool->waiting);

    return pool;
}


void
um_pg_pool_destroy(um_pg_pool_t *pool)
{
    ngx_queue_t   *qu;
    um_pg_conn_t  *pc;

    if (pool == NULL) {
        return;
    }

    um_pg_fail_waiting(pool, UM_PG_UNAVAILABLE);

    while (!ngx_queue_empty(&pool->active)) {
        qu = ngx_queue_head(&pool->active);
        pc = ngx_queue_data(qu, um_pg_conn_t, link);
        um_pg_fail(pc, UM_PG_UNAVAILABLE);
    }

    while (!ngx_queue_empty(&pool->idle)) {
        qu = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(qu, um_pg_conn_t, link);
        um_pg_close(pc);
    }

    um_pg_count(pool);

    ngx_free((void *) pool->values[0]);
    ngx_free((void *) pool->values[2]);
    ngx_free(pool);
}


ngx_int_t
um_pg_send(um_pg_pool_t *pool, um_pg_query_t *q)
{
    ngx_uint_t     opened;
    ngx_queue_t   *qu;
    um_pg_conn_t  *pc;

    q->pool = pool;
    q->conn = NULL;
    q->queued = 0;
    q->status = UM_PG_OK;

    if (q->stmt->id == 0) {
        if (um_pg_next_stmt_id >= UM_PG_MAX_STMTS - 1) {
            ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                          "usermgmt: more than %d SQL statements",
                          UM_PG_MAX_STMTS);
            return UM_PG_UNAVAILABLE;
        }

        q->stmt->id = ++um_pg_next_stmt_id;
    }

    pool->stats->queries++;

    if (!ngx_queue_empty(&pool->idle)) {
        qu = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(qu, um_pg_conn_t, link);

        if (um_pg_run(pc, q) == NGX_OK) {
            return NGX_AGAIN;
        }

        /* never call the handler from inside the caller's own call */
        pc->query = NULL;
        q->conn = NULL;
        um_pg_close(pc);
        um_pg_count(pool);

        return UM_PG_UNAVAILABLE;
    }

    opened = 0;

    if (pool->nconns < pool->conf->max) {

        if (pool->nconns == 0
            && um_backoff_waiting(&pool->backoff))
        {
            /* the server was unreachable a moment ago: fail fast */
            return UM_PG_UNAVAILABLE;
        }

        if (um_pg_open(pool) == NGX_OK) {
            opened = 1;

        } else if (pool->nconns == 0) {
            return UM_PG_UNAVAILABLE;
        }
    }

    /* a query waiting for the connection it just opened is not queued */
    if (!opened && pool->nwaiting >= pool->conf->queue) {
        pool->stats->rejected++;
        return UM_PG_BUSY;
    }

    ngx_queue_insert_tail(&pool->waiting, &q->link);
    pool->nwaiting++;
    q->queued = 1;

    ngx_memzero(&q->wait, sizeof(ngx_event_t));
    q->wait.handler = um_pg_wait_timeout;
    q->wait.data = q;
    q->wait.log = pool->log;
    ngx_add_timer(&q->wait, pool->conf->queue_timeout);

    pool->stats->waits++;
    um_pg_count(pool);

    return NGX_AGAIN;
}


void
um_pg_cancel(um_pg_query_t *q)
{
    um_pg_pool_t  *pool;

    pool = q->pool;

    if (pool == NULL) {
        return;
    }

    if (q->queued) {
        ngx_queue_remove(&q->link);
        pool->nwaiting--;
        q->queued = 0;

        if (q->wait.timer_set) {
            ngx_del_timer(&q->wait);
        }

        um_pg_count(pool);
    }

    if (q->conn != NULL) {
        /* the connection drains the answer and then returns to the pool */
        q->conn->query = NULL;
        q->conn = NULL;
    }

    q->handler = NULL;
}


ngx_msec_t
um_pg_retry_after(um_pg_pool_t *pool)
{
    return um_backoff_retry_after(&pool->backoff);
}


char *
um_pg_check_conninfo(ngx_str_t *conninfo, ngx_pool_t *pool)
{
    char               *err, *msg, *ci;
    ngx_int_t           numeric;
    PQconninfoOption   *opts, *o;
    const char         *host, *hostaddr;
    struct sockaddr_in6 sa6;

    ci = ngx_pcalloc(pool, conninfo->len + 1);
    if (ci == NULL) {
        return "out of memory";
    }

    ngx_memcpy(ci, conninfo->data, conninfo->len);

    err = NULL;
    opts = PQconninfoParse(ci, &err);

    if (opts == NULL) {
        msg = ngx_pcalloc(pool, 256);
        if (msg != NULL) {
            ngx_snprintf((u_char *) msg, 255, "invalid connection string: %s",
                         err ? err : "out of memory");

            /* libpq ends its messages with a newline */
            for (ci = msg + ngx_strlen(msg); ci > msg && ci[-1] == '\n'; ci--) {
                ci[-1] = '\0';
            }
        }

        PQfreemem(err);
        return msg ? msg : "invalid connection string";
    }

    host = NULL;
    hostaddr = NULL;

    for (o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL) {
            continue;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o->val;
        }
    }

    msg = NULL;

    /*
     * libpq resolves "host" with getaddrinfo(), which blocks the worker on a
     * DNS lookup; only addresses and socket directories are accepted.
     */
    if (host != NULL && hostaddr == NULL && host[0] != '/') {
        numeric = (inet_pton(AF_INET, host, &sa6) == 1
                   || inet_pton(AF_INET6, host, &sa6) == 1);

        if (!numeric) {
            msg = "\"host\" must be an IP address or a unix socket directory "
                  "(a name lookup would block the worker); use \"hostaddr\"";
        }
    }

    PQconninfoFree(opts);

    return msg;
}


static ngx_int_t
um_pg_open(um_pg_pool_t *pool)
{
    PGconn        *pg;
    um_pg_conn_t  *pc;

    pg = PQconnectStartParams(pool->keywords, pool->values, 1);

    if (pg == NULL || PQstatus(pg) == CONNECTION_BAD
        || PQsocket(pg) == -1)
    {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "usermgmt: postgres connect failed: %s",
                      pg ? PQerrorMessage(pg) : "out of memory");
        goto failed;
    }

    if (PQsetnonblocking(pg, 1) == -1) {
        goto failed;
    }

    pc = ngx_calloc(sizeof(um_pg_conn_t), pool->log);
    if (pc == NULL) {
        goto failed;
    }

    pc->c = um_fd_attach(PQsocket(pg), pool->log, pc, um_pg_event_handler);
    if (pc->c == NULL) {
        ngx_free(pc);
        goto failed;
    }

    pc->pg = pg;
    pc->pool = pool;
    pc->state = UM_PG_CONNECTING;

    ngx_queue_insert_tail(&pool->active, &pc->link);
    pool->nconns++;
    pool->stats->connects++;

    /* libpq: behave as if PQconnectPoll had asked for writing */
    if (um_fd_want_write(pc->c, 1) != NGX_OK) {
        um_pg_fail(pc, UM_PG_UNAVAILABLE);
        return NGX_ERROR;
    }

    ngx_add_timer(pc->c->read, pool->conf->connect_timeout);
    um_pg_count(pool);

    return NGX_OK;

failed:

    if (pg != NULL) {
        PQfinish(pg);
    }

    pool->stats->errors++;
    um_backoff_failed(&pool->backoff);

    return NGX_ERROR;
}


static void
um_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;
    um_pg_conn_t      *pc;

    c = ev->data;
    pc = c->data;

    if (ev->timedout) {
        ev->timedout = 0;

        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "usermgmt: postgres %s timed out",
                      pc->state == UM_PG_CONNECTING ? "connect" : "query");

        pc->pool->stats->timeouts++;
        um_pg_fail(pc, UM_PG_TIMEOUT);
        return;
    }

    switch (pc->state) {

    case UM_PG_CONNECTING:
        um_pg_connect_poll(pc);
        return;

    case UM_PG_IDLE:
        if (ev->write) {
            (void) um_fd_want_write(c, 0);
            return;
        }

        um_pg_idle_read(pc);
        return;

    default: /* preparing or executing */

        if (ev->write) {
            if (um_pg_flush(pc) != NGX_OK) {
                um_pg_fail(pc, UM_PG_UNAVAILABLE);
            }

            return;
        }

        um_pg_receive(pc);
        return;
    }
}


static void
um_pg_connect_poll(um_pg_conn_t *pc)
{
    ngx_socket_t          fd;
    um_pg_pool_t         *pool;
    PostgresPollingStatusType  rc;

    pool = pc->pool;

    rc = PQconnectPoll(pc->pg);

    /* libpq may have moved to another socket (next host, SSL retry) */
    fd = PQsocket(pc->pg);

    if (rc != PGRES_POLLING_FAILED && fd != pc->c->fd) {
        um_fd_detach(pc->c, 1);

        pc->c = um_fd_attach(fd, pool->log, pc, um_pg_event_handler);
        if (pc->c == NULL) {
            um_pg_fail(pc, UM_PG_UNAVAILABLE);
            return;
        }

        ngx_add_timer(pc->c->read, pool->conf->connect_timeout);
    }

    switch (rc) {

    case PGRES_POLLING_READING:
        if (um_fd_want_write(pc->c, 0) != NGX_OK
            || um_fd_want_read(pc->c, 1) != NGX_OK)
        {
            um_pg_fail(pc, UM_PG_UNAVAILABLE);
        }

        return;

    case PGRES_POLLING_WRITING:
        if (um_fd_want_write(pc->c, 1) != NGX_OK) {
            um_pg_fail(pc, UM_PG_UNAVAILABLE);
        }

        return;

    case PGRES_POLLING_OK:
        break;

    default: /* PGRES_POLLING_FAILED */
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "usermgmt: postgres connect failed: %s",
                      PQerrorMessage(pc->pg));

        um_pg_fail(pc, UM_PG_UNAVAILABLE);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, pool->log, 0,
                   "usermgmt: postgres connected, fd:%d", pc->c->fd);

    um_backoff_reset(&pool->backoff);

    if (pc->c->read->timer_set) {
        ngx_del_timer(pc->c->read);
    }

    if (um_fd_want_write(pc->c, 0) != NGX_OK
        || um_fd_want_read(pc->c, 1) != NGX_OK)
    {
        um_pg_fail(pc, UM_PG_UNAVAILABLE);
        return;
    }

    um_pg_release(pc);
    um_pg_dispatch(pool);
}


/* an idle connection hears only notices, or the end of the session */
static void
um_pg_idle_read(um_pg_conn_t *pc)
{
    PGnotify      *n;
    um_pg_pool_t  *pool;

    pool = pc->pool;

    if (!PQconsumeInput(pc->pg) || PQstatus(pc->pg) == CONNECTION_BAD) {
        ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                      "usermgmt: the server closed an idle postgres "
                      "connection");
        pool->stats->errors++;
        um_pg_close(pc);
        um_pg_count(pool);
        return;
    }

    while ((n = PQnotifies(pc->pg)) != NULL) {
        PQfreemem(n);
    }
}


static ngx_int_t
um_pg_run(um_pg_conn_t *pc, um_pg_query_t *q)
{
    um_pg_pool_t  *pool;

    pool = pc->pool;

    ngx_queue_remove(&pc->link);
    ngx_queue_insert_tail(&pool->active, &pc->link);

    pc->query = q;
    q->conn = pc;

    pc->state = (pc->prepared[q->stmt->id / 64] & (1ULL << (q->stmt->id % 64)))
                ? UM_PG_EXECUTING : UM_PG_PREPARING;

    ngx_add_timer(pc->c->read, pool->conf->timeout);
    um_pg_count(pool);

    return um_pg_send_step(pc);
}


static ngx_int_t
um_pg_send_step(um_pg_conn_t *pc)
{
    int             ok;
    u_char          name[16];
    um_pg_query_t  *q;

    q = pc->query;

    ngx_sprintf(name, "um%ui%Z", q->stmt->id);

    if (pc->state == UM_PG_PREPARING) {
        ok = PQsendPrepare(pc->pg, (char *) name, q->stmt->sql, 0, NULL);

    } else {
        ok = PQsendQueryPrepared(pc->pg, (char *) name, q->nvalues,
                                 q->values, NULL, NULL, 0);
    }

    if (!ok) {
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "usermgmt: postgres send failed: %s",
                      PQerrorMessage(pc->pg));
        return NGX_ERROR;
    }

    return um_pg_flush(pc);
}


static ngx_int_t
um_pg_flush(um_pg_conn_t *pc)
{
    switch (PQflush(pc->pg)) {

    case 0:
        return um_fd_want_write(pc->c, 0);

    case 1:
        /* the socket buffer is full: finish when it drains */
        return um_fd_want_write(pc->c, 1);

    default:
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "usermgmt: postgres write failed: %s",
                      PQerrorMessage(pc->pg));
        return NGX_ERROR;
    }
}


static void
um_pg_receive(um_pg_conn_t *pc)
{
    PGresult  *res;

    if (!PQconsumeInput(pc->pg)) {
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "usermgmt: postgres read failed: %s",
                      PQerrorMessage(pc->pg));
        um_pg_fail(pc, UM_PG_UNAVAILABLE);
        return;
    }

    while (!PQisBusy(pc->pg)) {

        res = PQgetResult(pc->pg);

        if (res == NULL) {
            um_pg_step_done(pc);
            return;
        }

        /* keep the first result: the one a single statement returns */
        if (pc->result == NULL) {
            pc->result = res;

        } else {
            PQclear(res);
        }
    }
}


static void
um_pg_step_done(um_pg_conn_t *pc)
{
    PGresult       *res;
    um_pg_pool_t   *pool;
    um_pg_query_t  *q;

    pool = pc->pool;
    res = pc->result;
    pc->result = NULL;
    q = pc->query;

    if (PQstatus(pc->pg) == CONNECTION_BAD) {
        PQclear(res);
        um_pg_fail(pc, UM_PG_UNAVAILABLE);
        return;
    }

    if (pc->state == UM_PG_PREPARING
        && res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
    {
        PQclear(res);

        if (q == NULL) {
            /* the caller left; the statement stays unprepared */
            if (pc->c->read->timer_set) {
                ngx_del_timer(pc->c->read);
            }

            um_pg_release(pc);
            um_pg_dispatch(pool);
            return;
        }

        pc->prepared[q->stmt->id / 64] |= 1ULL << (q->stmt->id % 64);
        pc->state = UM_PG_EXECUTING;

        if (um_pg_send_step(pc) != NGX_OK) {
            um_pg_fail(pc, UM_PG_UNAVAILABLE);
        }

        return;
    }

    /* the answer (or the error of PREPARE) goes to the caller */

    if (pc->c->read->timer_set) {
        ngx_del_timer(pc->c->read);
    }

    pc->query = NULL;

    if (q != NULL) {
        q->conn = NULL;
    }

    if (PQtransactionStatus(pc->pg) == PQTRANS_IDLE) {
        um_pg_release(pc);

    } else {
        /* a session left inside a transaction cannot be shared */
        ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                      "usermgmt: postgres session not idle after a query, "
                      "closing it");
        um_pg_close(pc);
    }

    /* a follow-up query of the handler may take the connection at once */
    if (q != NULL) {
        um_pg_finish(q, res, UM_PG_OK);
    }

    PQclear(res);

    um_pg_dispatch(pool);
}


/* back to the idle list */
static void
um_pg_release(um_pg_conn_t *pc)
{
    pc->state = UM_PG_IDLE;
    pc->query = NULL;

    ngx_queue_remove(&pc->link);
    ngx_queue_insert_head(&pc->pool->idle, &pc->link);

    um_pg_count(pc->pool);
}


static void
um_pg_dispatch(um_pg_pool_t *pool)
{
    ngx_queue_t    *qu;
    um_pg_conn_t   *pc;
    um_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting) && !ngx_queue_empty(&pool->idle)) {

        qu = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qu, um_pg_query_t, link);

        ngx_queue_remove(qu);
        pool->nwaiting--;
        q->queued = 0;

        if (q->wait.timer_set) {
            ngx_del_timer(&q->wait);
        }

        qu = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(qu, um_pg_conn_t, link);

        if (um_pg_run(pc, q) != NGX_OK) {
            /* the waiter is called back from this event, not its own */
            um_pg_fail(pc, UM_PG_UNAVAILABLE);
            return;
        }
    }

    /* waiters whose connections were lost: open new ones */
    um_pg_count(pool);

    while (pool->nwaiting > pool->stats->conns_connecting
           && pool->nconns < pool->conf->max
           && !um_backoff_waiting(&pool->backoff))
    {
        if (um_pg_open(pool) != NGX_OK) {
            break;
        }
    }

    if (pool->nconns == 0) {
        um_pg_fail_waiting(pool, UM_PG_UNAVAILABLE);
    }

    um_pg_count(pool);
}


static void
um_pg_fail(um_pg_conn_t *pc, ngx_int_t status)
{
    um_pg_pool_t   *pool;
    um_pg_query_t  *q;

    pool = pc->pool;
    q = pc->query;

    if (q != NULL) {
        q->conn = NULL;
        pc->query = NULL;
    }

    pool->stats->errors++;

    if (pc->state == UM_PG_CONNECTING) {
        um_backoff_failed(&pool->backoff);
    }

    um_pg_close(pc);

    if (q != NULL) {
        um_pg_finish(q, NULL, status);
    }

    um_pg_dispatch(pool);
}


static void
um_pg_close(um_pg_conn_t *pc)
{
    um_pg_pool_t  *pool;

    pool = pc->pool;

    ngx_queue_remove(&pc->link);
    pool->nconns--;

    if (pc->result != NULL) {
        PQclear(pc->result);
    }

    /*
     * libpq closes the socket itself when a connect attempt fails or the
     * server hangs up; otherwise PQfinish closes it, after the detach.
     */
    um_fd_detach(pc->c, PQsocket(pc->pg) == -1);
    PQfinish(pc->pg);

    ngx_free(pc);
}


static void
um_pg_fail_waiting(um_pg_pool_t *pool, ngx_int_t status)
{
    ngx_queue_t    *qu;
    um_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)) {
        qu = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qu, um_pg_query_t, link);

        ngx_queue_remove(qu);
        pool->nwaiting--;
        q->queued = 0;

        if (q->wait.timer_set) {
            ngx_del_timer(&q->wait);
        }

        um_pg_finish(q, NULL, status);
    }
}


static void
um_pg_wait_timeout(ngx_event_t *ev)
{
    um_pg_query_t  *q;
    um_pg_pool_t   *pool;

    q = ev->data;
    pool = q->pool;

    ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                  "usermgmt: no postgres connection free within %M ms",
                  pool->conf->queue_timeout);

    ngx_queue_remove(&q->link);
    pool->nwaiting--;
    q->queued = 0;
    pool->stats->rejected++;

    um_pg_count(pool);
    um_pg_finish(q, NULL, UM_PG_BUSY);
}


static void
um_pg_finish(um_pg_query_t *q, PGresult *res, ngx_int_t status)
{
    um_pg_handler_pt  handler;

    handler = q->handler;
    q->handler = NULL;
    q->status = status;

    if (handler != NULL) {
        handler(q, res);
    }
}


/* the gauges another worker may read */
static void
um_pg_count(um_pg_pool_t *pool)
{
    ngx_uint_t     idle, connecting, busy;
    ngx_queue_t   *qu;
    um_pg_conn_t  *pc;

    idle = 0;
    connecting = 0;
    busy = 0;

    for (qu = ngx_queue_head(&pool->idle);
         qu != ngx_queue_sentinel(&pool->idle);
         qu = ngx_queue_next(qu))
    {
        idle++;
    }

    for (qu = ngx_queue_head(&pool->active);
         qu != ngx_queue_sentinel(&pool->active);
         qu = ngx_queue_next(qu))
    {
        pc = ngx_queue_data(qu, um_pg_conn_t, link);

        if (pc->state == UM_PG_CONNECTING) {
            connecting++;

        } else {
            busy++;
        }
    }

    pool->stats->conns_idle = idle;
    pool->stats->conns_connecting = connecting;
    pool->stats->conns_busy = busy;
    pool->stats->waiting = pool->nwaiting;
}
