/*
 * Roles: named sets of permissions inside an organization.
 *
 *   POST   /api/v1/roles                   create one, with permission_ids
 *   GET    /api/v1/roles                   list: search, is_active, pages
 *   GET    /api/v1/roles/{id}              one, with its user count
 *   PUT    /api/v1/roles/{id}              name, description, is_active
 *   DELETE /api/v1/roles/{id}              soft delete; built-in ones stay
 *   POST   /api/v1/roles/{id}/permissions  grant permission_ids
 *   DELETE /api/v1/roles/{id}/permissions  take permission_ids back
 *
 * The route table says which permission each needs.  A caller works on the
 * roles of their own organization; a super admin on those of every
 * organization, or of the one X-Tenant-ID names.  Another organization's
 * role is "not found".
 */

#include "um_api.h"
#include "http/um_fields.h"
#include "http/um_page.h"


static ngx_int_t um_roles_tenant(um_ctx_t *ctx, const char **tenant);
static const char *um_roles_grantor(um_ctx_t *ctx);
static const char *um_roles_body(um_ctx_t *ctx);
static ngx_int_t um_roles_name_check(um_ctx_t *ctx);
static ngx_int_t um_roles_permissions(um_ctx_t *ctx, ngx_uint_t add);
static ngx_int_t um_roles_list_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_roles_one_done(um_ctx_t *ctx, PGresult *res);


#define UM_SEARCH_MAX  200


static um_pg_stmt_t  um_sql_role_create = um_pg_stmt(
    "SELECT um_role_create($1, $2, $3, $4, $5, $6)");

static um_pg_stmt_t  um_sql_role_list = um_pg_stmt(
    "WITH f AS ("
    "  SELECT r FROM roles r"
    "   WHERE r.deleted_at IS NULL"
    "     AND ($1::uuid IS NULL OR r.organization_id = $1)"
    "     AND ($2::text IS NULL"
    "          OR r.name ILIKE um_rbac_pattern($2)"
    "          OR r.description ILIKE um_rbac_pattern($2))"
    "     AND ($3::boolean IS NULL OR r.is_active = $3))"
    " SELECT (SELECT count(*) FROM f),"
    "        (SELECT coalesce(jsonb_agg(um_role_json(p.r)"
    "                                   ORDER BY (p.r).name, (p.r).id),"
    "                         '[]')"
    "           FROM (SELECT r FROM f ORDER BY (r).name, (r).id"
    "                  LIMIT $4 OFFSET $5) p)");

static um_pg_stmt_t  um_sql_role_get = um_pg_stmt(
    "SELECT um_role_json(r)"
    "       || jsonb_build_object('user_count', um_role_user_count(r))"
    "  FROM roles r"
    " WHERE r.id = $1 AND r.deleted_at IS NULL"
    "   AND ($2::uuid IS NULL OR r.organization_id = $2)");

static um_pg_stmt_t  um_sql_role_update = um_pg_stmt(
    "SELECT um_role_update($1, $2, $3, $4, $5, $6)");

static um_pg_stmt_t  um_sql_role_delete = um_pg_stmt(
    "SELECT um_role_delete($1, $2, $3, $4, $5)");

static um_pg_stmt_t  um_sql_role_permissions_add = um_pg_stmt(
    "SELECT um_role_permissions_add($1, $2, $3, $4, $5, $6, $7)");

static um_pg_stmt_t  um_sql_role_permissions_remove = um_pg_stmt(
    "SELECT um_role_permissions_remove($1, $2, $3, $4, $5, $6)");


static const um_field_t  um_role_create_fields[] = {
    { "name", UM_F_TEXT, UM_REQUIRED, 100 },
    { "description", UM_F_TEXT, UM_NULLABLE, 500 },
    { "is_active", UM_F_BOOL, 0, 0 },
    { "permission_ids", UM_F_UUIDS, 0, 100 },
    { "organization_id", UM_F_UUID, 0, 0 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_role_update_fields[] = {
    { "name", UM_F_TEXT, 0, 100 },
    { "description", UM_F_TEXT, UM_NULLABLE, 500 },
    { "is_active", UM_F_BOOL, 0, 0 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_role_permission_fields[] = {
    { "permission_ids", UM_F_UUIDS, UM_REQUIRED, 100 },
    { NULL, 0, 0, 0 }
};


ngx_int_t
um_roles_create(um_ctx_t *ctx)
{
    json_t       *ids;
    ngx_uint_t    any;
    const char   *org, **v;

    /* a new role may start without permissions */
    ids = json_object_get(ctx->body, "permission_ids");

    if (json_is_array(ids) && json_array_size(ids) == 0) {
        json_object_del(ctx->body, "permission_ids");
    }

    if (um_fields_check(ctx, um_role_create_fields) != NGX_OK) {
        return ctx->rc;
    }

    if (um_roles_name_check(ctx) != NGX_OK) {
        return ctx->rc;
    }

    /*
     * The organization is the caller's (or the one a super admin chose
     * with X-Tenant-ID); a super admin who did not may name any in the
     * body, anybody else only their own.
     */
    any = ctx->id.super_admin && !ctx->tenant_chosen;
    org = um_field_str(ctx, "organization_id");

    if (org != NULL && !any
        && (ngx_strlen(org) != ctx->id.tenant_id.len
            || ngx_strncasecmp((u_char *) org, ctx->id.tenant_id.data,
                               ctx->id.tenant_id.len) != 0))
    {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "organization_id must be your own "
                             "organization", NULL);
    }

    org = (org != NULL)
          ? um_pstr(ctx, (u_char *) org, ngx_strlen(org))
          : um_pstr(ctx, ctx->id.tenant_id.data, ctx->id.tenant_id.len);

    v = ngx_palloc(ctx->r->pool, 6 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = org;
    v[2] = um_roles_body(ctx);
    v[3] = um_roles_grantor(ctx);
    v[4] = um_client_ip(ctx);
    v[5] = um_user_agent(ctx);

    if (v[0] == NULL || v[1] == NULL || v[2] == NULL || v[3] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_role_create, v, 6, um_created);
}


ngx_int_t
um_roles_list(um_ctx_t *ctx)
{
    ngx_int_t     rc;
    ngx_str_t     search, active;
    um_page_t    *page;
    const char  **v;

    page = ngx_palloc(ctx->r->pool, sizeof(um_page_t));
    v = ngx_pcalloc(ctx->r->pool, 5 * sizeof(char *));

    if (page == NULL || v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_page_parse(ctx, page) != NGX_OK) {
        return ctx->rc;
    }

    if (um_roles_tenant(ctx, &v[0]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = um_arg(ctx, "search", &search);

    if (rc == NGX_ERROR
        || (rc == NGX_OK && um_text_length(search.data, search.len)
                            > UM_SEARCH_MAX))
    {
        return um_send_invalid(ctx->r, "search", "format",
                               "search is text of at most 200 characters");
    }

    if (rc == NGX_OK && search.len > 0) {
        v[1] = (const char *) search.data;
    }

    rc = um_arg(ctx, "is_active", &active);

    if (rc == NGX_OK && active.len > 0) {
        if (active.len == 4 && ngx_strncmp(active.data, "true", 4) == 0) {
            v[2] = "true";

        } else if (active.len == 5
                   && ngx_strncmp(active.data, "false", 5) == 0)
        {
            v[2] = "false";

        } else {
            rc = NGX_ERROR;
        }
    }

    if (rc == NGX_ERROR) {
        return um_send_invalid(ctx->r, "is_active", "type",
                               "is_active is true or false");
    }

    v[3] = um_pint(ctx, page->page_size);
    v[4] = um_pint(ctx, page->offset);

    if (v[3] == NULL || v[4] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = page;

    return um_query(ctx, &um_sql_role_list, v, 5, um_roles_list_done);
}


ngx_int_t
um_roles_get(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, 2 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);

    if (v[0] == NULL || um_roles_tenant(ctx, &v[1]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_role_get, v, 2, um_roles_one_done);
}


ngx_int_t
um_roles_update(um_ctx_t *ctx)
{
    const char  **v;

    if (um_fields_check(ctx, um_role_update_fields) != NGX_OK) {
        return ctx->rc;
    }

    if (um_roles_name_check(ctx) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 6 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[3] = um_roles_body(ctx);
    v[4] = um_client_ip(ctx);
    v[5] = um_user_agent(ctx);

    if (v[0] == NULL || v[1] == NULL || v[3] == NULL
        || um_roles_tenant(ctx, &v[2]) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_role_update, v, 6, um_roles_one_done);
}


ngx_int_t
um_roles_delete(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[3] = um_client_ip(ctx);
    v[4] = um_user_agent(ctx);

    if (v[0] == NULL || v[1] == NULL
        || um_roles_tenant(ctx, &v[2]) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_role_delete, v, 5, um_roles_one_done);
}


ngx_int_t
um_roles_permissions_add(um_ctx_t *ctx)
{
    return um_roles_permissions(ctx, 1);
}


ngx_int_t
um_roles_permissions_remove(um_ctx_t *ctx)
{
    return um_roles_permissions(ctx, 0);
}


/* POST and DELETE /roles/{id}/permissions: the same body, one query */
static ngx_int_t
um_roles_permissions(um_ctx_t *ctx, ngx_uint_t add)
{
    int           n;
    char         *ids;
    const char  **v;

    if (um_fields_check(ctx, um_role_permission_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 7 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ids = json_dumps(json_object_get(ctx->body, "permission_ids"),
                     JSON_COMPACT);
    if (ids == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[3] = um_pstr(ctx, (u_char *) ids, ngx_strlen(ids));

    free(ids);

    /* taking a permission back needs no right to grant it */
    if (add) {
        v[4] = um_roles_grantor(ctx);
        v[5] = um_client_ip(ctx);
        v[6] = um_user_agent(ctx);
        n = 7;

    } else {
        v[4] = um_client_ip(ctx);
        v[5] = um_user_agent(ctx);
        n = 6;
    }

    if (v[0] == NULL || v[1] == NULL || v[3] == NULL
        || (add && v[4] == NULL)
        || um_roles_tenant(ctx, &v[2]) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, add ? &um_sql_role_permissions_add
                             : &um_sql_role_permissions_remove,
                    v, n, um_roles_one_done);
}


/*
 * The organization a query is limited to: the caller's, or none (NULL)
 * for a super admin who did not name one with X-Tenant-ID.  A failed
 * allocation must not widen the scope, hence the separate status.
 */
static ngx_int_t
um_roles_tenant(um_ctx_t *ctx, const char **tenant)
{
    if (ctx->id.super_admin && !ctx->tenant_chosen) {
        *tenant = NULL;
        return NGX_OK;
    }

    *tenant = um_pstr(ctx, ctx->id.tenant_id.data, ctx->id.tenant_id.len);

    return *tenant != NULL ? NGX_OK : NGX_ERROR;
}


/* what the caller's token allows them to grant, for um_role_grantable() */
static const char *
um_roles_grantor(um_ctx_t *ctx)
{
    char        *dump;
    json_t      *grantor, *perms;
    const char  *s;

    perms = ctx->id.permissions ? json_incref(ctx->id.permissions)
                                : json_array();

    grantor = json_pack("{sbsbso}",
                        "super_admin", (int) ctx->id.super_admin,
                        "org_admin",
                        (int) um_has_role_exactly(ctx, "org_admin"),
                        "permissions", perms);
    if (grantor == NULL) {
        return NULL;
    }

    dump = json_dumps(grantor, JSON_COMPACT);
    json_decref(grantor);

    if (dump == NULL) {
        return NULL;
    }

    s = um_pstr(ctx, (u_char *) dump, ngx_strlen(dump));
    free(dump);

    return s;
}


static const char *
um_roles_body(um_ctx_t *ctx)
{
    char        *dump;
    const char  *s;

    dump = json_dumps(ctx->body, JSON_COMPACT);
    if (dump == NULL) {
        return NULL;
    }

    s = um_pstr(ctx, (u_char *) dump, ngx_strlen(dump));
    free(dump);

    return s;
}


/*
 * A name has a character other than a space, and no comma or control
 * character: role names reach upstreams in $usermgmt_roles, a
 * comma-separated header value.
 */
static ngx_int_t
um_roles_name_check(um_ctx_t *ctx)
{
    const u_char  *name, *p;

    name = (const u_char *) um_field_str(ctx, "name");

    if (name == NULL) {
        return NGX_OK;
    }

    for (p = name; *p == ' '; p++) {
        /* void */
    }

    if (*p == '\0') {
        ctx->rc = um_send_invalid(ctx->r, "name", "min_length",
                                  "name must not be empty");
        return NGX_DECLINED;
    }

    /* C0, DEL, and C1 (U+0080..U+009F, 0xc2 0x80..0x9f in UTF-8) */
    for (p = name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == ','
            || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
        {
            ctx->rc = um_send_invalid(ctx->r, "name", "format",
                                      "name may not hold commas or "
                                      "control characters");
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
um_roles_list_done(um_ctx_t *ctx, PGresult *res)
{
    return um_page_send_result(ctx, ctx->data, "roles", res);
}


static ngx_int_t
um_roles_one_done(um_ctx_t *ctx, PGresult *res)
{
    return um_send_row(ctx->r, res, NGX_HTTP_OK, "role not found");
}
