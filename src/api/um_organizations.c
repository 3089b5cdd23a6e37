/*
 * Organizations, the tenants.
 *
 *   GET    /api/v1/organizations/lookup?slug=   public: what a sign-in page
 *                                               needs to know of a tenant
 *   POST   /api/v1/organizations                super admin: a new tenant,
 *                                               with its built-in roles
 *   GET    /api/v1/organizations                super admin: the list
 *   GET    /api/v1/organizations/my/info        the caller's organization
 *   GET    /api/v1/organizations/{id}           super admin: any; members:
 *                                               their own
 *   PUT    /api/v1/organizations/{id}           super admin: every field;
 *                                               organizations:update: the
 *                                               own one's description,
 *                                               settings and registration
 *   DELETE /api/v1/organizations/{id}           super admin: soft delete
 *
 * Outside the caller's scope an organization answers 404: another tenant
 * for a member, the tenant X-Tenant-ID names for a super admin.
 */

#include "um_api.h"
#include "http/um_validate.h"
#include "http/um_fields.h"
#include "http/um_page.h"


static ngx_int_t um_organizations_lookup_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_organizations_deleted(um_ctx_t *ctx, PGresult *res);
static void um_organizations_revoked(void *data, redisReply *reply,
    ngx_int_t status);
static ngx_int_t um_organizations_one(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_organizations_page(um_ctx_t *ctx, PGresult *res);
static const char *um_organizations_scope(um_ctx_t *ctx);
static ngx_uint_t um_organizations_in_scope(um_ctx_t *ctx);
static ngx_int_t um_organizations_not_found(um_ctx_t *ctx);


static um_pg_stmt_t  um_sql_org_lookup = um_pg_stmt(
    "SELECT json_build_object("
    "         'id', id, 'name', name, 'slug', slug,"
    "         'allow_self_registration', allow_self_registration)"
    "  FROM organizations"
    " WHERE slug = $1 AND is_active AND deleted_at IS NULL");

static um_pg_stmt_t  um_sql_org_create = um_pg_stmt(
    "SELECT um_organization_create($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_org_update = um_pg_stmt(
    "SELECT um_organization_update($1, $2, $3, $4, $5, $6)");

static um_pg_stmt_t  um_sql_org_delete = um_pg_stmt(
    "SELECT um_organization_delete($1, $2, $3, $4)");

/* $2: the organization the caller may see, NULL for every one */
static um_pg_stmt_t  um_sql_org_get = um_pg_stmt(
    "SELECT um_organization_view(o) FROM organizations o"
    " WHERE o.id = $1 AND o.deleted_at IS NULL"
    "   AND ($2::uuid IS NULL OR o.id = $2)");

static um_pg_stmt_t  um_sql_org_my_info = um_pg_stmt(
    "SELECT um_organization_view(o)"
    "       || jsonb_build_object("
    "            'role_count', (SELECT count(*) FROM roles r"
    "                            WHERE r.organization_id = o.id"
    "                              AND r.deleted_at IS NULL),"
    "            'location_count', (SELECT count(*) FROM locations l"
    "                                WHERE l.organization_id = o.id"
    "                                  AND l.deleted_at IS NULL))"
    "  FROM organizations o"
    " WHERE o.id = $1 AND o.deleted_at IS NULL");

/*
 * $1 is_active, $2 search (a substring of name or slug, any case), $3
 * limit, $4 offset, $5 the one organization X-Tenant-ID names.  strpos()
 * rather than LIKE: a '%' or '_' searched for is a character.
 */
static um_pg_stmt_t  um_sql_org_list = um_pg_stmt(
    "WITH f AS ("
    "  SELECT o FROM organizations o"
    "   WHERE o.deleted_at IS NULL"
    "     AND ($1::boolean IS NULL OR o.is_active = $1)"
    "     AND ($2::text IS NULL"
    "          OR strpos(lower(o.name), lower($2)) > 0"
    "          OR strpos(lower(o.slug::text), lower($2)) > 0)"
    "     AND ($5::uuid IS NULL OR o.id = $5))"
    " SELECT (SELECT count(*) FROM f),"
    "        (SELECT coalesce(jsonb_agg(um_organization_view(p.o)"
    "                                   ORDER BY (p.o).created_at DESC,"
    "                                            (p.o).id DESC), '[]')"
    "           FROM (SELECT o FROM f"
    "                  ORDER BY (o).created_at DESC, (o).id DESC"
    "                  LIMIT $3 OFFSET $4) p)");


static const um_field_t  um_org_create_fields[] = {
    { "name", UM_F_TEXT, UM_REQUIRED, 200 },
    { "slug", UM_F_SLUG, UM_REQUIRED, 0 },
    { "description", UM_F_TEXT, UM_NULLABLE, 1000 },
    { "max_users", UM_F_INT, UM_NULLABLE, 100000000 },
    { "is_active", UM_F_BOOL, 0, 0 },
    { "allow_self_registration", UM_F_BOOL, 0, 0 },
    { "settings", UM_F_OBJECT, UM_NULLABLE, 0 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_org_update_fields[] = {
    { "name", UM_F_TEXT, 0, 200 },
    { "slug", UM_F_SLUG, 0, 0 },
    { "description", UM_F_TEXT, UM_NULLABLE, 1000 },
    { "max_users", UM_F_INT, UM_NULLABLE, 100000000 },
    { "is_active", UM_F_BOOL, 0, 0 },
    { "allow_self_registration", UM_F_BOOL, 0, 0 },
    { "settings", UM_F_OBJECT, 0, 0 },
    { NULL, 0, 0, 0 }
};

/*
 * What an organization's own administrators may change: how it presents
 * itself and whether people may join it.  Its name and slug (how people
 * sign in), its size and whether it is active are the operator's.
 */
static const char  *um_org_member_fields[] = {
    "description", "settings", "allow_self_registration", NULL
};


ngx_int_t
um_organizations_lookup(um_ctx_t *ctx)
{
    ngx_int_t     rc;
    ngx_str_t     slug;
    ngx_uint_t    i;
    const char  **values;

    rc = um_arg(ctx, "slug", &slug);

    if (rc == NGX_DECLINED || (rc == NGX_OK && slug.len == 0)) {
        return um_send_invalid(ctx->r, "slug", "required",
                               "slug is required");
    }

    if (rc != NGX_OK) {
        return um_send_invalid(ctx->r, "slug", "format",
                               "slug must be valid UTF-8 text");
    }

    for (i = 0; i < slug.len; i++) {
        slug.data[i] = ngx_tolower(slug.data[i]);
    }

    /* the format of sql/migrations/0001_core.sql, checked before asking */
    if (!um_is_slug(slug.data, slug.len)) {
        return um_send_invalid(ctx->r, "slug", "format",
                               "slug has 1 to 50 letters, digits, '-' "
                               "and '_'");
    }

    values = ngx_palloc(ctx->r->pool, sizeof(char *));
    if (values == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    values[0] = (const char *) slug.data;

    return um_query(ctx, &um_sql_org_lookup, values, 1,
                    um_organizations_lookup_done);
}


ngx_int_t
um_organizations_create(um_ctx_t *ctx)
{
    const char  **v;

    if (um_fields_check(ctx, um_org_create_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query_audited(ctx, &um_sql_org_create, v, 0, 1,
                            um_created);
}


ngx_int_t
um_organizations_list(um_ctx_t *ctx)
{
    um_page_t    *page;
    const char  **v;

    page = ngx_palloc(ctx->r->pool, sizeof(um_page_t));
    v = ngx_pcalloc(ctx->r->pool, 5 * sizeof(char *));

    if (page == NULL || v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_page_parse(ctx, page) != NGX_OK
        || um_page_filter_bool(ctx, "is_active", &v[0]) != NGX_OK
        || um_page_filter(ctx, "search", &v[1]) != NGX_OK)
    {
        return ctx->rc;
    }

    v[2] = um_pint(ctx, page->page_size);
    v[3] = um_pint(ctx, page->offset);
    v[4] = um_organizations_scope(ctx);

    ctx->data = page;

    return um_query(ctx, &um_sql_org_list, v, 5, um_organizations_page);
}


ngx_int_t
um_organizations_my_info(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a super admin's own, or the one X-Tenant-ID names */
    v[0] = um_pstr(ctx, ctx->id.tenant_id.data, ctx->id.tenant_id.len);

    return um_query(ctx, &um_sql_org_my_info, v, 1, um_organizations_one);
}


ngx_int_t
um_organizations_get(um_ctx_t *ctx)
{
    const char  **v;

    if (!um_organizations_in_scope(ctx)) {
        return um_organizations_not_found(ctx);
    }

    v = ngx_palloc(ctx->r->pool, 2 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[1] = um_organizations_scope(ctx);

    return um_query(ctx, &um_sql_org_get, v, 2, um_organizations_one);
}


ngx_int_t
um_organizations_update(um_ctx_t *ctx)
{
    json_t       *details, *value;
    const char   *key, **f, **v;

    if (!um_organizations_in_scope(ctx)) {
        return um_organizations_not_found(ctx);
    }

    if (um_fields_check(ctx, um_org_update_fields) != NGX_OK) {
        return ctx->rc;
    }

    if (!ctx->id.super_admin) {
        details = json_array();
        if (details == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        json_object_foreach(ctx->body, key, value) {
            for (f = um_org_member_fields; *f; f++) {
                if (ngx_strcmp(*f, key) == 0) {
                    break;
                }
            }

            if (*f == NULL) {
                json_array_append_new(details,
                    json_pack("{ss ss ss}", "field", key,
                              "rule", "forbidden", "message",
                              "only a super admin may change this field"));
            }
        }

        if (json_array_size(details) > 0) {
            return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                                 "insufficient permissions", details);
        }

        json_decref(details);
    }

    v = ngx_palloc(ctx->r->pool, 6 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[1] = um_organizations_scope(ctx);

    return um_query_audited(ctx, &um_sql_org_update, v, 2, 1,
                            um_organizations_one);
}


ngx_int_t
um_organizations_delete(um_ctx_t *ctx)
{
    const char  **v;

    if (!um_organizations_in_scope(ctx)) {
        return um_organizations_not_found(ctx);
    }

    v = ngx_palloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);

    return um_query_audited(ctx, &um_sql_org_delete, v, 1, 0,
                            um_organizations_deleted);
}


/*
 * The organization's access tokens die with it: the tenant goes on the
 * deny-list for one access-token lifetime, and the answer waits for it.
 */
static ngx_int_t
um_organizations_deleted(um_ctx_t *ctx, PGresult *res)
{
    ngx_str_t  *id, *answer;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_organizations_not_found(ctx);
    }

    id = ngx_palloc(ctx->r->pool, sizeof(ngx_str_t));
    answer = ngx_palloc(ctx->r->pool, sizeof(ngx_str_t));

    if (id == NULL || answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the result is gone once this returns */
    answer->len = PQgetlength(res, 0, 0);
    answer->data = (u_char *) um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 0),
                                      answer->len);
    if (answer->data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = answer;
    *id = ctx->args[0];

    ctx->redis = um_revoke_ids(ctx, id, 1,
                               ngx_time() + ctx->mcf->access_ttl
                               + ctx->mcf->leeway,
                               um_organizations_revoked);

    if (ctx->redis == NULL) {
        /* this node knows at once; the others when Redis returns */
        return um_send_data(ctx->r, NGX_HTTP_OK, answer->data, answer->len);
    }

    return NGX_DONE;
}


static void
um_organizations_revoked(void *data, redisReply *reply, ngx_int_t status)
{
    um_ctx_t   *ctx = data;
    ngx_str_t  *answer;

    ctx->redis = NULL;
    answer = ctx->data;

    um_finish(ctx, um_send_data(ctx->r, NGX_HTTP_OK, answer->data,
                                answer->len));
}


/*
 * After the n parameters of the endpoint, those every change passes: the
 * actor, the fields sent (with_body), the client's address and agent.
 */


/* the organization a caller is limited to: NULL for every one */
static const char *
um_organizations_scope(um_ctx_t *ctx)
{
    if (ctx->id.super_admin && !ctx->tenant_chosen) {
        return NULL;
    }

    return um_pstr(ctx, ctx->id.tenant_id.data, ctx->id.tenant_id.len);
}


/* the {id} of the path, seen from the caller's scope */
static ngx_uint_t
um_organizations_in_scope(um_ctx_t *ctx)
{
    if (ctx->id.super_admin && !ctx->tenant_chosen) {
        return 1;
    }

    return ctx->args[0].len == ctx->id.tenant_id.len
           && ngx_strncasecmp(ctx->args[0].data, ctx->id.tenant_id.data,
                              ctx->id.tenant_id.len) == 0;
}


static ngx_int_t
um_organizations_not_found(um_ctx_t *ctx)
{
    return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                         "organization not found", NULL);
}


static ngx_int_t
um_organizations_lookup_done(um_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1) {
        return um_organizations_not_found(ctx);
    }

    return um_send_data(ctx->r, NGX_HTTP_OK,
                        (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
}


static ngx_int_t
um_organizations_one(um_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_organizations_not_found(ctx);
    }

    return um_send_data(ctx->r, NGX_HTTP_OK,
                        (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
}


static ngx_int_t
um_organizations_page(um_ctx_t *ctx, PGresult *res)
{
    return um_page_send_result(ctx, ctx->data, "organizations", res);
}
