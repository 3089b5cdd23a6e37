/*
 * Users.
 *
 *   GET /api/v1/users/me    the caller's own profile
 *   PUT /api/v1/users/me    change it; the answer lists what changed
 *   GET /api/v1/users/{id}  one user: oneself, or any user of the tenant
 *                           with users:read (then with the admin fields)
 */

#include "um_api.h"
#include "http/um_fields.h"


static ngx_int_t um_users_me_done(um_ctx_t *ctx, PGresult *res);


static um_pg_stmt_t  um_sql_me = um_pg_stmt(
    "SELECT um_user_json(u, false) FROM users u"
    " WHERE u.id = $1 AND u.deleted_at IS NULL");

/* another tenant's user is "not found", like one that does not exist */
static um_pg_stmt_t  um_sql_user = um_pg_stmt(
    "SELECT um_user_json(u, $3) FROM users u"
    " WHERE u.id = $1"
    "   AND ($2::uuid IS NULL OR u.organization_id = $2)"
    "   AND (u.deleted_at IS NULL OR $3)");

static um_pg_stmt_t  um_sql_update_me = um_pg_stmt(
    "SELECT um_update_me($1, $2, $3, $4)");


/* what a user may change on their own profile */
static const um_field_t  um_me_fields[] = {
    { "username", UM_F_USERNAME, UM_NULLABLE, 50 },
    { "first_name", UM_F_NAME, UM_NULLABLE, 100 },
    { "last_name", UM_F_NAME, UM_NULLABLE, 100 },
    { "phone", UM_F_PHONE, UM_NULLABLE, 0 },
    { "avatar_url", UM_F_URL, UM_NULLABLE, 2048 },
    { "department", UM_F_TEXT, UM_NULLABLE, 100 },
    { "date_of_birth", UM_F_DATE, UM_NULLABLE, 0 },
    { "address", UM_F_ADDRESS, UM_NULLABLE, 0 },
    { "preferences", UM_F_OBJECT, 0, 0 },
    { NULL, 0, 0, 0 }
};


ngx_int_t
um_users_me(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);

    return um_query(ctx, &um_sql_me, v, 1, um_users_me_done);
}


ngx_int_t
um_users_update_me(um_ctx_t *ctx)
{
    char         *fields;
    const char  **v;

    if (um_fields_check(ctx, um_me_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fields = json_dumps(ctx->body, JSON_COMPACT);
    if (fields == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pstr(ctx, (u_char *) fields, ngx_strlen(fields));
    v[2] = um_client_ip(ctx);
    v[3] = um_user_agent(ctx);

    free(fields);

    return um_query(ctx, &um_sql_update_me, v, 4, um_users_me_done);
}


ngx_int_t
um_users_get(um_ctx_t *ctx)
{
    ngx_uint_t    admin, self;
    const char  **v;

    self = ctx->args[0].len == ctx->id.user_id.len
           && ngx_strncasecmp(ctx->args[0].data, ctx->id.user_id.data,
                              ctx->id.user_id.len) == 0;
    admin = um_has_permission(ctx, "users:read");

    if (!self && !admin) {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "insufficient permissions", NULL);
    }

    v = ngx_palloc(ctx->r->pool, 3 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[1] = ctx->id.super_admin && ctx->id.tenant_id.len == 0
           ? NULL : um_pstr(ctx, ctx->id.tenant_id.data,
                            ctx->id.tenant_id.len);
    v[2] = admin ? "true" : "false";

    /* a super admin sees every tenant unless X-Tenant-ID narrows it */
    if (ctx->id.super_admin && !ctx->tenant_chosen) {
        v[1] = NULL;
    }

    return um_query(ctx, &um_sql_user, v, 3, um_users_me_done);
}


static ngx_int_t
um_users_me_done(um_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                             "user not found", NULL);
    }

    return um_send_data(ctx->r, NGX_HTTP_OK,
                        (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
}
