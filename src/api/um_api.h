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
ngx_int_t um_auth_hash_password(um_ctx_t *ctx, const char *field,
    const char *password, const char *email, const char *username,
    ngx_int_t (*done)(um_ctx_t *ctx, const char *hash));
ngx_int_t um_auth_end_sessions(um_ctx_t *ctx, json_t *sids,
    ngx_int_t (*answer)(um_ctx_t *ctx));
ngx_int_t um_auth_registered(um_ctx_t *ctx, json_t *payload, time_t ttl);
ngx_int_t um_auth_sign(um_ctx_t *ctx, const char *typ, json_t *payload,
    ngx_int_t (*done)(um_ctx_t *ctx, const char *jwt));
const char *um_auth_refresh_new(um_ctx_t *ctx);
ngx_int_t um_auth_signed_in(um_ctx_t *ctx, PGresult *res);
ngx_int_t um_send_tokens(um_ctx_t *ctx, u_char *body, size_t len);

/* um_mfa.c */
ngx_int_t um_mfa_enable(um_ctx_t *ctx);
ngx_int_t um_mfa_setup(um_ctx_t *ctx);
ngx_int_t um_mfa_verify(um_ctx_t *ctx);
ngx_int_t um_mfa_disable(um_ctx_t *ctx);
ngx_int_t um_mfa_new_codes(um_ctx_t *ctx);
ngx_int_t um_mfa_status(um_ctx_t *ctx);
ngx_int_t um_mfa_login(um_ctx_t *ctx);
ngx_int_t um_mfa_challenge(um_ctx_t *ctx, const char *user_id);

/* um_users.c */
ngx_int_t um_users_me(um_ctx_t *ctx);
ngx_int_t um_users_update_me(um_ctx_t *ctx);
ngx_int_t um_users_get(um_ctx_t *ctx);
ngx_int_t um_users_create(um_ctx_t *ctx);
ngx_int_t um_users_list(um_ctx_t *ctx);
ngx_int_t um_users_search(um_ctx_t *ctx);
ngx_int_t um_users_update(um_ctx_t *ctx);
ngx_int_t um_users_delete(um_ctx_t *ctx);
ngx_int_t um_users_reactivate(um_ctx_t *ctx);
ngx_int_t um_users_status(um_ctx_t *ctx);
ngx_int_t um_users_permissions(um_ctx_t *ctx);
ngx_int_t um_users_permissions_replace(um_ctx_t *ctx);
ngx_int_t um_users_permissions_add(um_ctx_t *ctx);
ngx_int_t um_users_roles_add(um_ctx_t *ctx);
ngx_int_t um_users_roles_remove(um_ctx_t *ctx);

/* um_organizations.c */
ngx_int_t um_organizations_lookup(um_ctx_t *ctx);
ngx_int_t um_organizations_create(um_ctx_t *ctx);
ngx_int_t um_organizations_list(um_ctx_t *ctx);
ngx_int_t um_organizations_my_info(um_ctx_t *ctx);
ngx_int_t um_organizations_get(um_ctx_t *ctx);
ngx_int_t um_organizations_update(um_ctx_t *ctx);
ngx_int_t um_organizations_delete(um_ctx_t *ctx);

/* um_locations.c */
ngx_int_t um_locations_create(um_ctx_t *ctx);
ngx_int_t um_locations_list(um_ctx_t *ctx);
ngx_int_t um_locations_get(um_ctx_t *ctx);
ngx_int_t um_locations_update(um_ctx_t *ctx);
ngx_int_t um_locations_delete(um_ctx_t *ctx);
ngx_int_t um_locations_assign(um_ctx_t *ctx);
ngx_int_t um_locations_of_user(um_ctx_t *ctx);
ngx_int_t um_locations_unassign(um_ctx_t *ctx);
ngx_int_t um_locations_users(um_ctx_t *ctx);

/* um_roles.c */
ngx_int_t um_roles_create(um_ctx_t *ctx);
ngx_int_t um_roles_list(um_ctx_t *ctx);
ngx_int_t um_roles_get(um_ctx_t *ctx);
ngx_int_t um_roles_update(um_ctx_t *ctx);
ngx_int_t um_roles_delete(um_ctx_t *ctx);
ngx_int_t um_roles_permissions_add(um_ctx_t *ctx);
ngx_int_t um_roles_permissions_remove(um_ctx_t *ctx);

/* um_permissions.c */
ngx_int_t um_permissions_create(um_ctx_t *ctx);
ngx_int_t um_permissions_list(um_ctx_t *ctx);
ngx_int_t um_permissions_grouped(um_ctx_t *ctx);
ngx_int_t um_permissions_get(um_ctx_t *ctx);
ngx_int_t um_permissions_update(um_ctx_t *ctx);
ngx_int_t um_permissions_delete(um_ctx_t *ctx);

/* um_audit.c */
ngx_int_t um_audit_logs(um_ctx_t *ctx);
ngx_int_t um_audit_user_activity(um_ctx_t *ctx);
ngx_int_t um_audit_organization_stats(um_ctx_t *ctx);
ngx_int_t um_audit_export(um_ctx_t *ctx);

/* um_account.c */
ngx_int_t um_account_reset_request(um_ctx_t *ctx);
ngx_int_t um_account_reset_confirm(um_ctx_t *ctx);
ngx_int_t um_account_verify_email(um_ctx_t *ctx);
ngx_int_t um_account_verify_email_resend(um_ctx_t *ctx);
ngx_int_t um_account_verify_phone(um_ctx_t *ctx);
ngx_int_t um_account_verify_phone_send(um_ctx_t *ctx);
ngx_int_t um_account_kyc_request(um_ctx_t *ctx);
ngx_int_t um_account_kyc_status(um_ctx_t *ctx);


#endif /* _UM_API_H_INCLUDED_ */
