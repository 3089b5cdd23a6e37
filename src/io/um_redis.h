/*
 * One asynchronous Redis connection per worker (Redis pipelines, so one is
 * enough), driven by nginx events through a hiredis adapter.  Every command
 * has a deadline kept by an nginx timer; a connection that misses one is
 * dropped and re-opened after a back-off.  Nothing here knows about HTTP.
 */

#ifndef _UM_REDIS_H_INCLUDED_
#define _UM_REDIS_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define UM_REDIS_OK           0
#define UM_REDIS_UNAVAILABLE  1
#define UM_REDIS_TIMEOUT      2


typedef struct um_redis_s      um_redis_t;
typedef struct um_redis_cmd_s  um_redis_cmd_t;

/* reply is NULL unless status is UM_REDIS_OK; it is freed after the call */
typedef void (*um_redis_handler_pt)(void *data, redisReply *reply,
    ngx_int_t status);


typedef struct {
    ngx_str_t            host;          /* an IP address */
    in_port_t            port;
    ngx_str_t            unix_path;     /* or a unix socket */
    ngx_msec_t           timeout;       /* one command */
    ngx_msec_t           connect_timeout;
} um_redis_conf_t;


typedef struct {
    ngx_atomic_t         connected;
    ngx_atomic_t         commands;
    ngx_atomic_t         errors;
    ngx_atomic_t         timeouts;
    ngx_atomic_t         connects;
} um_redis_stats_t;


um_redis_t *um_redis_create(um_redis_conf_t *conf, um_redis_stats_t *stats,
    ngx_log_t *log);
void um_redis_destroy(um_redis_t *rd);

/*
 * Sends one command.  Returns a handle the caller may cancel, or NULL when
 * Redis is unreachable now (the handler is then not called).
 */
um_redis_cmd_t *um_redis_send(um_redis_t *rd, um_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen);
void um_redis_cancel(um_redis_cmd_t *cmd);

/*
 * Subscribes to a channel: the handler gets every message, and a NULL
 * reply once when the subscription ends (the connection was lost).  The
 * connection must be used for nothing else.
 */
ngx_int_t um_redis_subscribe(um_redis_t *rd, const char *channel,
    um_redis_handler_pt handler, void *data);
ngx_uint_t um_redis_connected(um_redis_t *rd);

ngx_msec_t um_redis_retry_after(um_redis_t *rd);

char *um_redis_parse_addr(ngx_str_t *addr, um_redis_conf_t *conf);


#endif /* _UM_REDIS_H_INCLUDED_ */
