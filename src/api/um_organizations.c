/*
 * Organizations, the tenants.
 *
 *   GET /api/v1/organizations/lookup?slug=   public: what a sign-in page
 *                                            needs to know of a tenant
 */

#include "um_api.h"
#include "http/um_validate.h"


static ngx_int_t um_organizations_lookup_done(um_ctx_t *ctx, PGresult *res);


static um_pg_stmt_t  um_sql_org_lookup = um_pg_stmt(
    "SELECT json_build_object("
    "         'id', id, 'name', name, 'slug', slug,"
    "         'allow_self_registration', allow_self_registration)"
    "  FROM organizations"
    " WHERE slug = $1 AND is_active AND deleted_at IS NULL");


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


static ngx_int_t
um_organizations_lookup_done(um_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1) {
        return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                             "organization not found", NULL);
    }

    return um_send_data(ctx->r, NGX_HTTP_OK,
                        (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
}
