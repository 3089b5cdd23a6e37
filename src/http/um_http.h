/*
 * The HTTP layer: the request context, the route table, body reading,
 * JSON answers, and the metrics that every request leaves behind.
 */

#ifndef _UM_HTTP_H_INCLUDED_
#define _UM_HTTP_H_INCLUDED_

#include "ngx_http_usermgmt.h"
#include "um_validate.h"


/* route flags */
#define UM_ROUTE_PUBLIC     0x01    /* answered without a token */
#define UM_ROUTE_BODY       0x02    /* takes a JSON object body */
#define UM_ROUTE_OPTIONAL_BODY  0x04  /* ... which may be left out */


struct um_route_s {
    ngx_uint_t              method;         /* NGX_HTTP_GET, ... */
    ngx_str_t               path;           /* "/api/v1/users/{id}" */
    um_handler_pt           handler;
    const char             *permission;     /* NULL: any signed-in caller */
    ngx_uint_t              flags;
};


/* metric slots after the routes of the table */
#define UM_METRIC_HEALTH        (um_nroutes + 0)
#define UM_METRIC_READY         (um_nroutes + 1)
#define UM_METRIC_METRICS       (um_nroutes + 2)
#define UM_METRIC_UNMATCHED     (um_nroutes + 3)
#define UM_METRIC_PROTECTED     (um_nroutes + 4)
#define UM_METRIC_JWKS          (um_nroutes + 5)
#define UM_METRIC_SLOTS         (um_nroutes + 6)


/* the error codes of the API */
#define UM_BAD_REQUEST          "BAD_REQUEST"
#define UM_UNAUTHORIZED         "UNAUTHORIZED"
#define UM_FORBIDDEN            "FORBIDDEN"
#define UM_NOT_FOUND            "NOT_FOUND"
#define UM_METHOD_NOT_ALLOWED   "METHOD_NOT_ALLOWED"
#define UM_CONFLICT             "CONFLICT"
#define UM_PAYLOAD_TOO_LARGE    "PAYLOAD_TOO_LARGE"
#define UM_UNSUPPORTED_MEDIA    "UNSUPPORTED_MEDIA_TYPE"
#define UM_VALIDATION_FAILED    "VALIDATION_FAILED"
#define UM_TOO_MANY_REQUESTS    "RATE_LIMIT_EXCEEDED"
#define UM_INTERNAL_ERROR       "INTERNAL_ERROR"
#define UM_SERVICE_UNAVAILABLE  "SERVICE_UNAVAILABLE"


/* um_router.c */
extern const um_route_t     um_routes[];
extern const ngx_uint_t     um_nroutes;

ngx_int_t um_route_match(um_ctx_t *ctx, ngx_str_t *allow, ngx_str_t *bad);
void um_route_label(ngx_uint_t slot, ngx_str_t *method, ngx_str_t *path);


/* um_access.c */
ngx_int_t ngx_http_usermgmt_access_handler(ngx_http_request_t *r);
ngx_int_t um_access_verify(um_ctx_t *ctx);
ngx_int_t um_has_role_exactly(um_ctx_t *ctx, const char *role);
ngx_int_t um_access_add_variables(ngx_conf_t *cf);
ngx_int_t um_has_role(um_ctx_t *ctx, const char *role);
ngx_int_t um_has_permission(um_ctx_t *ctx, const char *perm);
void um_verify_opts(ngx_http_usermgmt_main_conf_t *mcf, const char *typ,
    um_jwt_verify_t *opts);
ngx_int_t um_send_unauthorized(ngx_http_request_t *r,
    const char *description);


/* um_limit.c */
ngx_int_t ngx_http_usermgmt_limit_handler(ngx_http_request_t *r);
void um_limit_cancel(um_ctx_t *ctx);
ngx_int_t um_limit_after_body(um_ctx_t *ctx,
    ngx_int_t (*resume)(um_ctx_t *ctx, ngx_int_t rc));
ngx_int_t um_limit_add_zone(ngx_conf_t *cf,
    ngx_http_usermgmt_main_conf_t *mcf);
u_char *um_limit_metrics(ngx_http_usermgmt_main_conf_t *mcf, u_char *p);
size_t um_limit_metrics_size(ngx_http_usermgmt_main_conf_t *mcf);
char *ngx_http_usermgmt_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_usermgmt_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/* um_token_cache.c */
json_t *um_token_cache_get(ngx_str_t *token, time_t leeway);
void um_token_cache_put(ngx_str_t *token, json_t *claims, ngx_log_t *log);
void um_token_cache_free(void);


/* um_revoke.c */
ngx_int_t um_revoke_add_zone(ngx_conf_t *cf,
    ngx_http_usermgmt_main_conf_t *mcf);
ngx_int_t um_revoke_init_worker(ngx_http_usermgmt_main_conf_t *mcf,
    ngx_log_t *log);
void um_revoke_exit_worker(void);
ngx_int_t um_revoke_check(ngx_http_usermgmt_main_conf_t *mcf, ngx_str_t *jti,
    ngx_str_t *sid, ngx_str_t *tenant);
um_redis_cmd_t *um_revoke_ask(ngx_http_usermgmt_main_conf_t *mcf,
    ngx_str_t *jti, ngx_str_t *sid, ngx_str_t *tenant,
    um_redis_handler_pt handler, void *data);
ngx_int_t um_revoke_answer(redisReply *reply);
um_redis_cmd_t *um_revoke_ids(um_ctx_t *ctx, ngx_str_t *ids, ngx_uint_t n,
    time_t exp, um_redis_handler_pt handler);


/* um_request.c */
ngx_int_t ngx_http_usermgmt_content_handler(ngx_http_request_t *r);
um_ctx_t *um_ctx_create(ngx_http_request_t *r);
um_ctx_t *um_ctx_get(ngx_http_request_t *r);
ngx_int_t um_offload(um_ctx_t *ctx, um_thread_work_pt work,
    ngx_int_t (*resume)(um_ctx_t *ctx));
ngx_int_t um_request_body_filter_init(void);
void um_finish(um_ctx_t *ctx, ngx_int_t rc);
ngx_int_t um_arg(um_ctx_t *ctx, const char *name, ngx_str_t *value);

ngx_int_t um_query(um_ctx_t *ctx, um_pg_stmt_t *stmt, const char **values,
    int nvalues, ngx_int_t (*done)(um_ctx_t *ctx, PGresult *res));
ngx_int_t um_query_audited(um_ctx_t *ctx, um_pg_stmt_t *stmt,
    const char **values, int nvalues, ngx_uint_t with_body,
    ngx_int_t (*done)(um_ctx_t *ctx, PGresult *res));
ngx_int_t um_pg_error_answer(ngx_http_request_t *r, PGresult *res);
ngx_int_t um_created(um_ctx_t *ctx, PGresult *res);
const char *um_pstr(um_ctx_t *ctx, u_char *data, size_t len);
const char *um_pint(um_ctx_t *ctx, int64_t n);
const char *um_client_ip(um_ctx_t *ctx);
const char *um_user_agent(um_ctx_t *ctx);
uint64_t um_now_us(void);


/* um_response.c */
ngx_int_t um_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);
ngx_int_t um_send_data(ngx_http_request_t *r, ngx_uint_t status,
    u_char *json, size_t len);
ngx_int_t um_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *data);
ngx_int_t um_send_row(ngx_http_request_t *r, PGresult *res,
    ngx_uint_t status, const char *not_found);
ngx_int_t um_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, json_t *details);
ngx_int_t um_send_invalid(ngx_http_request_t *r, const char *field,
    const char *rule, const char *message);
ngx_int_t um_send_unavailable(ngx_http_request_t *r, const char *what,
    ngx_msec_t retry_after, json_t *details);
ngx_int_t um_header_add(ngx_http_request_t *r, const char *name,
    ngx_str_t *value);


/* um_metrics.c */
ngx_int_t um_metrics_add_zone(ngx_conf_t *cf,
    ngx_http_usermgmt_main_conf_t *mcf);
ngx_int_t um_metrics_attach_worker(ngx_http_usermgmt_main_conf_t *mcf,
    um_pg_stats_t **pg, um_redis_stats_t **redis);
void um_metrics_detach_worker(ngx_http_usermgmt_main_conf_t *mcf);
ngx_int_t um_metrics_log_handler(ngx_http_request_t *r);
ngx_int_t um_metrics_prometheus(ngx_http_request_t *r);

typedef struct {
    uint64_t    requests;
    uint64_t    server_errors;
    uint64_t    client_errors;
    uint64_t    duration_us;
} um_metrics_summary_t;

void um_metrics_summary(ngx_http_usermgmt_main_conf_t *mcf,
    um_metrics_summary_t *s);


#endif /* _UM_HTTP_H_INCLUDED_ */
