/*
 * Permissions: the global catalogue of "resource:action" names that roles
 * and users are granted.
 *
 *   POST   /api/v1/permissions           create one (super admin)
 *   GET    /api/v1/permissions           list: search, resource, action
 *   GET    /api/v1/permissions/grouped   the same filters, by resource
 *   GET    /api/v1/permissions/{id}      one
 *   PUT    /api/v1/permissions/{id}      description; the name of one
 *                                        outside the catalogue (super admin)
 *   DELETE /api/v1/permissions/{id}      one outside the catalogue
 *                                        (super admin)
 */

#include "um_api.h"
#include "http/um_fields.h"
#include "http/um_page.h"


#define UM_PERM_PART_MAX  50
#define UM_SEARCH_MAX     200


static ngx_int_t um_permissions_name(um_ctx_t *ctx, ngx_uint_t required,
    const char **name);
static ngx_uint_t um_permission_part(const u_char *p, size_t len,
    ngx_uint_t star);
static ngx_int_t um_permissions_filters(um_ctx_t *ctx, const char **v);
static ngx_int_t um_permissions_list_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_permissions_one_done(um_ctx_t *ctx, PGresult *res);


static um_pg_stmt_t  um_sql_permission_create = um_pg_stmt(
    "SELECT um_permission_create($1, $2, $3, $4, $5)");

/* $1 search, $2 resource, $3 action */
#define UM_PERMISSION_FILTER                                                  \
    "  FROM permissions p"                                                    \
    " WHERE ($1::text IS NULL"                                                \
    "        OR p.name ILIKE um_rbac_pattern($1)"                             \
    "        OR p.description ILIKE um_rbac_pattern($1))"                     \
    "   AND ($2::text IS NULL OR p.resource = $2)"                            \
    "   AND ($3::text IS NULL OR p.action = $3)"

static um_pg_stmt_t  um_sql_permission_list = um_pg_stmt(
    "WITH f AS (SELECT p" UM_PERMISSION_FILTER ")"
    " SELECT (SELECT count(*) FROM f),"
    "        (SELECT coalesce(jsonb_agg(um_permission_json(x.p)"
    "                                   ORDER BY (x.p).resource,"
    "                                            (x.p).action),"
    "                         '[]')"
    "           FROM (SELECT p FROM f ORDER BY (p).resource, (p).action"
    "                  LIMIT $4 OFFSET $5) x)");

static um_pg_stmt_t  um_sql_permission_grouped = um_pg_stmt(
    "SELECT jsonb_build_object("
    "         'groups', coalesce(jsonb_agg(jsonb_build_object("
    "                       'resource', g.resource,"
    "                       'count', g.n,"
    "                       'permissions', g.items)"
    "                     ORDER BY g.resource), '[]'),"
    "         'total', coalesce(sum(g.n), 0))"
    "  FROM (SELECT p.resource, count(*) AS n,"
    "               jsonb_agg(um_permission_json(p) ORDER BY p.action)"
    "                   AS items"
    UM_PERMISSION_FILTER
    "         GROUP BY p.resource) g");

static um_pg_stmt_t  um_sql_permission_get = um_pg_stmt(
    "SELECT um_permission_json(p) FROM permissions p WHERE p.id = $1");

static um_pg_stmt_t  um_sql_permission_update = um_pg_stmt(
    "SELECT um_permission_update($1, $2, $3, $4, $5)");

static um_pg_stmt_t  um_sql_permission_delete = um_pg_stmt(
    "SELECT um_permission_delete($1, $2, $3, $4)");


static const um_field_t  um_permission_fields[] = {
    { "name", UM_F_TEXT, 0, 2 * UM_PERM_PART_MAX + 1 },
    { "resource", UM_F_TEXT, 0, UM_PERM_PART_MAX },
    { "action", UM_F_TEXT, 0, UM_PERM_PART_MAX },
    { "description", UM_F_TEXT, UM_NULLABLE, 500 },
    { NULL, 0, 0, 0 }
};


ngx_int_t
um_permissions_create(um_ctx_t *ctx)
{
    const char   *name, **v;

    if (um_fields_check(ctx, um_permission_fields) != NGX_OK) {
        return ctx->rc;
    }

    if (um_permissions_name(ctx, 1, &name) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = name;
    v[2] = um_field_str(ctx, "description");
    v[3] = um_client_ip(ctx);
    v[4] = um_user_agent(ctx);

    if (v[0] == NULL || v[1] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v[2] != NULL) {
        v[2] = um_pstr(ctx, (u_char *) v[2], ngx_strlen(v[2]));

        if (v[2] == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return um_query(ctx, &um_sql_permission_create, v, 5,
                    um_created);
}


ngx_int_t
um_permissions_list(um_ctx_t *ctx)
{
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

    if (um_permissions_filters(ctx, v) != NGX_OK) {
        return ctx->rc;
    }

    v[3] = um_pint(ctx, page->page_size);
    v[4] = um_pint(ctx, page->offset);

    if (v[3] == NULL || v[4] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = page;

    return um_query(ctx, &um_sql_permission_list, v, 5,
                    um_permissions_list_done);
}


/*
 * {"data": {"groups": [{"resource", "count", "permissions": [...]}, ...],
 * "total"}}, resources in alphabetical order, without pages: the
 * catalogue is small and a screen shows it whole.
 */
ngx_int_t
um_permissions_grouped(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_pcalloc(ctx->r->pool, 3 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_permissions_filters(ctx, v) != NGX_OK) {
        return ctx->rc;
    }

    return um_query(ctx, &um_sql_permission_grouped, v, 3,
                    um_permissions_one_done);
}


ngx_int_t
um_permissions_get(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);

    if (v[0] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_permission_get, v, 1,
                    um_permissions_one_done);
}


ngx_int_t
um_permissions_update(um_ctx_t *ctx)
{
    char         *fields;
    const char   *name, **v;

    if (um_fields_check(ctx, um_permission_fields) != NGX_OK) {
        return ctx->rc;
    }

    /* the SQL function puts a new name together with the old one */
    if (um_permissions_name(ctx, 0, &name) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fields = json_dumps(ctx->body, JSON_COMPACT);
    if (fields == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[2] = um_pstr(ctx, (u_char *) fields, ngx_strlen(fields));
    v[3] = um_client_ip(ctx);
    v[4] = um_user_agent(ctx);

    free(fields);

    if (v[0] == NULL || v[1] == NULL || v[2] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_permission_update, v, 5,
                    um_permissions_one_done);
}


ngx_int_t
um_permissions_delete(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[2] = um_client_ip(ctx);
    v[3] = um_user_agent(ctx);

    if (v[0] == NULL || v[1] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_permission_delete, v, 4,
                    um_permissions_one_done);
}


/*
 * Checks "name", "resource" and "action" of the body.  *name is the
 * "resource:action" they make: the name, or resource and action joined;
 * when all are sent they must agree.  With required unset, a body that
 * names only one of resource and action leaves *name NULL.
 */
static ngx_int_t
um_permissions_name(um_ctx_t *ctx, ngx_uint_t required, const char **name)
{
    u_char      *p, *colon;
    size_t       len;
    const char  *n, *res, *act;

    *name = NULL;

    n = um_field_str(ctx, "name");
    res = um_field_str(ctx, "resource");
    act = um_field_str(ctx, "action");

    if (res != NULL
        && !um_permission_part((u_char *) res, ngx_strlen(res), 0))
    {
        goto bad_resource;
    }

    if (act != NULL
        && !um_permission_part((u_char *) act, ngx_strlen(act), 1))
    {
        ctx->rc = um_send_invalid(ctx->r, "action", "format",
                                  "action is a lower-case word of letters, "
                                  "digits and '_', or '*'");
        return NGX_DECLINED;
    }

    if (n != NULL) {
        len = ngx_strlen(n);
        colon = (u_char *) ngx_strchr(n, ':');

        if (colon == NULL
            || !um_permission_part((u_char *) n, colon - (u_char *) n, 0)
            || !um_permission_part(colon + 1,
                                   len - (colon + 1 - (u_char *) n), 1))
        {
            goto bad_name;
        }

        if ((res != NULL
             && (ngx_strlen(res) != (size_t) (colon - (u_char *) n)
                 || ngx_strncmp(res, n, colon - (u_char *) n) != 0))
            || (act != NULL && ngx_strcmp(act, colon + 1) != 0))
        {
            ctx->rc = um_send_invalid(ctx->r, "name", "mismatch",
                                      "name must be resource:action");
            return NGX_DECLINED;
        }

        *name = um_pstr(ctx, (u_char *) n, len);

        if (*name == NULL) {
            ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (res != NULL && act != NULL) {
        len = ngx_strlen(res) + 1 + ngx_strlen(act);

        p = ngx_pnalloc(ctx->r->pool, len + 1);
        if (p == NULL) {
            ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_ERROR;
        }

        ngx_sprintf(p, "%s:%s%Z", res, act);
        *name = (const char *) p;

        return NGX_OK;
    }

    if (!required) {
        return NGX_OK;
    }

    if (res == NULL && act == NULL) {
        goto bad_name;
    }

    ctx->rc = um_send_invalid(ctx->r, res == NULL ? "resource" : "action",
                              "required",
                              "name, or resource and action, are required");
    return NGX_DECLINED;

bad_resource:

    ctx->rc = um_send_invalid(ctx->r, "resource", "format",
                              "resource is a lower-case word of letters, "
                              "digits and '_'");
    return NGX_DECLINED;

bad_name:

    ctx->rc = um_send_invalid(ctx->r, "name", "format",
                              "name is \"resource:action\": lower-case "
                              "words of letters, digits and '_' (the "
                              "action may be '*')");
    return NGX_DECLINED;
}


/* the format of permissions.name in sql/migrations/0004_rbac.sql */
static ngx_uint_t
um_permission_part(const u_char *p, size_t len, ngx_uint_t star)
{
    size_t  i;

    if (star && len == 1 && p[0] == '*') {
        return 1;
    }

    if (len == 0 || len > UM_PERM_PART_MAX || p[0] < 'a' || p[0] > 'z') {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')
              || p[i] == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/* search, resource and action of the query string into v[0..2] */
static ngx_int_t
um_permissions_filters(um_ctx_t *ctx, const char **v)
{
    ngx_int_t    rc;
    ngx_str_t    value;
    ngx_uint_t   i;
    u_char       msg[64];

    static const char  *names[] = { "search", "resource", "action" };

    for (i = 0; i < 3; i++) {
        rc = um_arg(ctx, names[i], &value);

        if (rc == NGX_DECLINED || (rc == NGX_OK && value.len == 0)) {
            continue;
        }

        if (rc == NGX_ERROR
            || um_text_length(value.data, value.len) > UM_SEARCH_MAX)
        {
            ngx_snprintf(msg, sizeof(msg), "%s is text of at most %d "
                         "characters%Z", names[i], UM_SEARCH_MAX);
            ctx->rc = um_send_invalid(ctx->r, names[i], "format",
                                      (char *) msg);
            return NGX_DECLINED;
        }

        v[i] = (const char *) value.data;
    }

    return NGX_OK;
}


static ngx_int_t
um_permissions_list_done(um_ctx_t *ctx, PGresult *res)
{
    return um_page_send_result(ctx, ctx->data, "permissions", res);
}


static ngx_int_t
um_permissions_one_done(um_ctx_t *ctx, PGresult *res)
{
    return um_send_row(ctx->r, res, NGX_HTTP_OK, "permission not found");
}
