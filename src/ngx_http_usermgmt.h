/*
 * Types shared by the module file, the HTTP layer and the API handlers.
 */

#ifndef _NGX_HTTP_USERMGMT_H_INCLUDED_
#define _NGX_HTTP_USERMGMT_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include <ngx_thread_pool.h>

#include "io/um_pg.h"
#include "io/um_redis.h"
#include "io/um_thread.h"
#include "auth/um_jwt.h"
#include "auth/um_password.h"


#define UM_SERVICE          "usermgmt"
#define UM_VERSION          "0.1.0"

#define UM_MAX_PATH_ARGS    4


/* what a location answers with */
#define UM_CONTENT_NONE     0
#define UM_CONTENT_API      1
#define UM_CONTENT_HEALTH   2
#define UM_CONTENT_READY    3
#define UM_CONTENT_METRICS  4
#define UM_CONTENT_JWKS     5

/* usermgmt_auth */
#define UM_AUTH_OFF         0
#define UM_AUTH_ON          1
#define UM_AUTH_OPTIONAL    2

/* usermgmt_limit_zone */
#define UM_LIMIT_KEY_IP        0
#define UM_LIMIT_KEY_USER      1
#define UM_LIMIT_KEY_TENANT    2
#define UM_LIMIT_KEY_ACCOUNT   3
#define UM_LIMIT_KEY_VAR       4

#define UM_LIMIT_FAIL_LOCAL    0
#define UM_LIMIT_FAIL_OPEN     1
#define UM_LIMIT_FAIL_CLOSED   2

/* usermgmt_require */
#define UM_REQUIRE_ROLE        1
#define UM_REQUIRE_PERMISSION  2


typedef struct um_route_s  um_route_t;
typedef struct um_ctx_s    um_ctx_t;


typedef struct {
    um_pg_conf_t            pg;
    um_redis_conf_t         redis;
    ngx_flag_t              pg_set;
    ngx_flag_t              redis_set;
    ngx_flag_t              needs_keys;

    ngx_shm_zone_t         *metrics_zone;
    ngx_shm_zone_t         *revoke_zone;

    /* rate limits */
    ngx_array_t            *limit_zones;    /* um_limit_zone_t */
    ngx_shm_zone_t         *limit_zone;
    u_char                  limit_sha[41];

    /* tokens */
    ngx_array_t            *jwt_keys;       /* um_jwt_key_t, first signs */
    ngx_str_t               issuer;
    ngx_str_t               audience;
    time_t                  leeway;
    time_t                  access_ttl;
    time_t                  refresh_ttl;

    /* passwords and sign-in */
    um_argon2_params_t      argon2;
    ngx_uint_t              password_min;
    ngx_str_t               blocklist_path;
    um_pw_blocklist_t      *blocklist;
    ngx_uint_t              max_failures;
    time_t                  lockout;
    ngx_uint_t              ip_max_failures;
    char                    dummy_hash[128];

    /* two-factor authentication */
    u_char                  mfa_key[32];    /* seals TOTP secrets */
    ngx_flag_t              mfa_key_set;
    ngx_str_t               mfa_issuer;     /* named in authenticator apps */
    time_t                  mfa_ttl;        /* of a sign-in challenge */

    ngx_str_t               thread_pool_name;
    ngx_thread_pool_t      *thread_pool;

    /* per worker, made in init_process */
    um_pg_pool_t           *pg_pool;
    um_redis_t             *redis_client;
} ngx_http_usermgmt_main_conf_t;


typedef struct {
    ngx_str_t               role;           /* NUL-terminated */
    ngx_uint_t              count;
    ngx_msec_t              period;
} um_limit_tier_t;


typedef struct {
    ngx_str_t               name;
    ngx_uint_t              stat;           /* its counters in the zone */
    ngx_uint_t              key;            /* UM_LIMIT_KEY_* */
    ngx_http_complex_value_t  *var;
    ngx_uint_t              count;          /* requests per period */
    ngx_msec_t              period;
    ngx_uint_t              burst;          /* 0: the count */
    ngx_array_t            *tiers;          /* um_limit_tier_t */
    ngx_uint_t              fail;           /* UM_LIMIT_FAIL_* */
} um_limit_zone_t;


typedef struct {
    ngx_uint_t              type;           /* UM_REQUIRE_* */
    ngx_str_t               value;
} um_require_t;


typedef struct {
    ngx_uint_t              content;        /* UM_CONTENT_* */
    off_t                   max_body;       /* client_max_body_size */
    ngx_uint_t              auth;           /* UM_AUTH_* */
    ngx_array_t            *requires;       /* um_require_t */
    ngx_array_t            *limits;         /* indexes of limit zones */
    ngx_uint_t              limit_after_body;
    ngx_str_t               limit_file;     /* where key=account was used */
    ngx_uint_t              limit_line;
    ngx_flag_t              user_delete;    /* DELETE /users/{id} allowed */
} ngx_http_usermgmt_loc_conf_t;


/* what a verified access token says; strings point into claims */
typedef struct {
    json_t                 *claims;         /* owned */
    ngx_str_t               user_id;
    ngx_str_t               tenant_id;
    ngx_str_t               email;
    ngx_str_t               sid;
    ngx_str_t               jti;
    ngx_str_t               token_tenant;
    json_t                 *roles;
    json_t                 *permissions;
    time_t                  exp;
    unsigned                super_admin:1;
} um_identity_t;


/* the per-request state, kept across asynchronous steps */
struct um_ctx_s {
    ngx_http_request_t     *r;
    ngx_http_usermgmt_main_conf_t  *mcf;

    const um_route_t       *route;
    ngx_str_t               args[UM_MAX_PATH_ARGS];
    ngx_uint_t              nargs;
    ngx_int_t               route_rc;       /* of the match */
    ngx_str_t               allow;          /* for 405 */
    ngx_str_t               bad;            /* for 400 */

    um_identity_t           id;
    ngx_int_t               access_rc;
    ngx_int_t               verify_rc;
    const char             *verify_reason;
    void                   *limit;          /* the limit check under way */
    ngx_int_t               limit_rc;
    unsigned                routed:1;
    unsigned                verified:1;
    unsigned                authenticated:1;
    unsigned                tenant_chosen:1;   /* by a super admin */
    unsigned                limit_done:1;
    unsigned                limit_waiting:1;
    unsigned                access_done:1;
    unsigned                access_waiting:1;

    json_t                 *body;           /* parsed request body, owned */

    um_pg_query_t          *query;          /* in flight, or NULL */
    ngx_int_t             (*query_done)(um_ctx_t *ctx, PGresult *res);
    um_redis_cmd_t         *redis;          /* in flight, or NULL */

    ngx_uint_t              metric;         /* route slot in the metrics */
    uint64_t                start_us;       /* monotonic */

    ngx_uint_t              pending;        /* steps still to come back */
    ngx_int_t               rc;             /* an answer already sent */
    ngx_int_t             (*resume)(um_ctx_t *ctx);  /* after a thread */
    off_t                   body_size;
    unsigned                body_too_large:1;
    void                   *data;           /* handler's own state */
};


typedef ngx_int_t (*um_handler_pt)(um_ctx_t *ctx);


extern ngx_module_t  ngx_http_usermgmt_module;


#endif /* _NGX_HTTP_USERMGMT_H_INCLUDED_ */
