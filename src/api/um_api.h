/*
 * The endpoints.  Each src/api/ file reads as a list of them: validate the
 * input, send one query, shape the answer.
 */

#ifndef _UM_API_H_INCLUDED_
#define _UM_API_H_INCLUDED_

#include "http/um_http.h"


/* um_system.c */
ngx_int_t um_system_health(um_ctx_t *ctx);
ngx_int_t um_system_ready(um_ctx_t *ctx);
ngx_int_t um_system_metrics(um_ctx_t *ctx);

/* um_auth.c */
ngx_int_t um_auth_register(um_ctx_t *ctx);
ngx_int_t um_auth_login(um_ctx_t *ctx);
ngx_int_t um_auth_refresh(um_ctx_t *ctx);
ngx_int_t um_auth_logout(um_ctx_t *ctx);
ngx_int_t um_auth_change_password(um_ctx_t *ctx);
ngx_int_t um_auth_jwks(um_ctx_t *ctx);

/* um_users.c */
ngx_int_t um_users_me(um_ctx_t *ctx);
ngx_int_t um_users_update_me(um_ctx_t *ctx);
ngx_int_t um_users_get(um_ctx_t *ctx);

/* um_organizations.c */
ngx_int_t um_organizations_lookup(um_ctx_t *ctx);

/* um_audit.c */
ngx_int_t um_audit_logs(um_ctx_t *ctx);
ngx_int_t um_audit_user_activity(um_ctx_t *ctx);
ngx_int_t um_audit_organization_stats(um_ctx_t *ctx);
ngx_int_t um_audit_export(um_ctx_t *ctx);


#endif /* _UM_API_H_INCLUDED_ */
