/*
 * A per-worker cache of non-blocking PostgreSQL connections driven by nginx
 * events.  Callers hand in a query (a prepared statement and its text
 * parameters) and are called back once with the result.  Nothing here knows
 * about HTTP.
 */

#ifndef _UM_PG_H_INCLUDED_
#define _UM_PG_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>


#define UM_PG_MAX_STMTS     256

/* how a query ended; the result is only given with UM_PG_OK */
#define UM_PG_OK            0
#define UM_PG_UNAVAILABLE   1   /* no connection could be had */
#define UM_PG_TIMEOUT       2   /* the server did not answer in time */
#define UM_PG_BUSY          3   /* the wait queue is full or waited too long */


typedef struct um_pg_pool_s   um_pg_pool_t;
typedef struct um_pg_conn_s   um_pg_conn_t;
typedef struct um_pg_query_s  um_pg_query_t;

typedef void (*um_pg_handler_pt)(um_pg_query_t *q, PGresult *res);


typedef struct {
    ngx_str_t           conninfo;
    ngx_uint_t          max;            /* connections per worker */
    ngx_uint_t          queue;          /* waiting queries per worker */
    ngx_msec_t          timeout;        /* one query */
    ngx_msec_t          connect_timeout;
    ngx_msec_t          queue_timeout;  /* longest wait for a connection */
} um_pg_conf_t;


/*
 * Counters a pool keeps; they are placed in shared memory by the owner so
 * that any worker can report every worker's figures.
 */
typedef struct {
    ngx_atomic_t        conns_connecting;
    ngx_atomic_t        conns_idle;
    ngx_atomic_t        conns_busy;
    ngx_atomic_t        waiting;
    ngx_atomic_t        queries;
    ngx_atomic_t        waits;          /* queries that had to queue */
    ngx_atomic_t        rejected;       /* queue full or wait timed out */
    ngx_atomic_t        timeouts;
    ngx_atomic_t        errors;         /* connections lost or refused */
    ngx_atomic_t        connects;
} um_pg_stats_t;


/* a statement is prepared on each connection the first time it runs there */
typedef struct {
    const char         *sql;
    ngx_uint_t          id;             /* assigned on first use */
} um_pg_stmt_t;

#define um_pg_stmt(sql)  { sql, 0 }


struct um_pg_query_s {
    um_pg_stmt_t       *stmt;
    const char *const  *values;         /* text parameters, NULL = SQL NULL */
    int                 nvalues;

    um_pg_handler_pt    handler;
    void               *data;
    ngx_int_t           status;         /* UM_PG_* */

    /* owned by the pool */
    um_pg_pool_t       *pool;
    um_pg_conn_t       *conn;
    ngx_queue_t         link;
    ngx_event_t         wait;
    unsigned            queued:1;
};


um_pg_pool_t *um_pg_pool_create(um_pg_conf_t *conf, um_pg_stats_t *stats,
    ngx_log_t *log);
void um_pg_pool_destroy(um_pg_pool_t *pool);

/*
 * NGX_AGAIN: the handler will be called later.  UM_PG_UNAVAILABLE or
 * UM_PG_BUSY: refused at once, the handler will not be called.
 */
ngx_int_t um_pg_send(um_pg_pool_t *pool, um_pg_query_t *q);

/* the caller no longer wants the answer (its request went away) */
void um_pg_cancel(um_pg_query_t *q);

/* milliseconds a caller should wait before trying again */
ngx_msec_t um_pg_retry_after(um_pg_pool_t *pool);

char *um_pg_check_conninfo(ngx_str_t *conninfo, ngx_pool_t *pool);


#endif /* _UM_PG_H_INCLUDED_ */
