/*
 * Types shared by the module file, the HTTP layer and the API handlers.
 */

#ifndef _NGX_HTTP_USERMGMT_H_INCLUDED_
#define _NGX_HTTP_USERMGMT_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "io/um_pg.h"
#include "io/um_redis.h"


#define UM_SERVICE          "usermgmt"
#define UM_VERSION          "0.1.0"

#define UM_MAX_PATH_ARGS    4


/* what a location answers with */
#define UM_CONTENT_NONE     0
#define UM_CONTENT_API      1
#define UM_CONTENT_HEALTH   2
#define UM_CONTENT_READY    3
#define UM_CONTENT_METRICS  4


typedef struct um_route_s  um_route_t;
typedef struct um_ctx_s    um_ctx_t;


typedef struct {
    um_pg_conf_t            pg;
    um_redis_conf_t         redis;
    ngx_flag_t              pg_set;
    ngx_flag_t              redis_set;

    ngx_shm_zone_t         *metrics_zone;

    /* per worker, made in init_process */
    um_pg_pool_t           *pg_pool;
    um_redis_t             *redis_client;
} ngx_http_usermgmt_main_conf_t;


typedef struct {
    ngx_uint_t              content;        /* UM_CONTENT_* */
    off_t                   max_body;       /* client_max_body_size */
} ngx_http_usermgmt_loc_conf_t;


/* the per-request state, kept across asynchronous steps */
struct um_ctx_s {
    ngx_http_request_t     *r;
    ngx_http_usermgmt_main_conf_t  *mcf;

    const um_route_t       *route;
    ngx_str_t               args[UM_MAX_PATH_ARGS];
    ngx_uint_t              nargs;

    json_t                 *body;           /* parsed request body, owned */

    um_pg_query_t          *query;          /* in flight, or NULL */
    ngx_int_t             (*query_done)(um_ctx_t *ctx, PGresult *res);
    um_redis_cmd_t         *redis;          /* in flight, or NULL */

    ngx_uint_t              metric;         /* route slot in the metrics */
    uint64_t                start_us;       /* monotonic */

    ngx_uint_t              pending;        /* steps still to come back */
    off_t                   body_size;
    unsigned                body_too_large:1;
    void                   *data;           /* handler's own state */
};


typedef ngx_int_t (*um_handler_pt)(um_ctx_t *ctx);


extern ngx_module_t  ngx_http_usermgmt_module;


#endif /* _NGX_HTTP_USERMGMT_H_INCLUDED_ */
