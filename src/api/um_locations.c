/*
 * Locations of an organization, and the users assigned to them (seed 002).
 *
 *   POST   /api/v1/locations                       locations:create
 *   GET    /api/v1/locations                       locations:read
 *   GET    /api/v1/locations/{id}                  locations:read
 *   PUT    /api/v1/locations/{id}                  locations:update
 *   DELETE /api/v1/locations/{id}                  locations:delete
 *   POST   /api/v1/locations/assign                locations:assign
 *   GET    /api/v1/locations/user/{user_id}        oneself, or
 *                                                  locations:read
 *   DELETE /api/v1/locations/user/{user_id}/location/{location_id}
 *                                                  locations:assign
 *   GET    /api/v1/locations/{id}/users            locations:read
 *
 * Every query is limited to the caller's organization (a super admin's:
 * every one, unless X-Tenant-ID names one), so another tenant's location
 * or user answers 404; so do those of a deleted organization.
 */

#include "um_api.h"
#include "http/um_fields.h"
#include "http/um_page.h"


static ngx_int_t um_locations_created(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_locations_one(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_locations_of_user_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_locations_page(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_locations_users_page(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_locations_fold_address(um_ctx_t *ctx);
static const char *um_locations_scope(um_ctx_t *ctx);
static ngx_int_t um_locations_not_found(um_ctx_t *ctx);
static ngx_int_t um_locations_send(um_ctx_t *ctx, PGresult *res,
    ngx_uint_t status, const char *what);


static um_pg_stmt_t  um_sql_location_create = um_pg_stmt(
    "SELECT um_location_create($1, $2, $3, $4, $5)");

static um_pg_stmt_t  um_sql_location_update = um_pg_stmt(
    "SELECT um_location_update($1, $2, $3, $4, $5, $6)");

static um_pg_stmt_t  um_sql_location_delete = um_pg_stmt(
    "SELECT um_location_delete($1, $2, $3, $4, $5)");

static um_pg_stmt_t  um_sql_location_assign = um_pg_stmt(
    "SELECT um_location_assign($1, $2, $3, $4, $5)");

static um_pg_stmt_t  um_sql_location_unassign = um_pg_stmt(
    "SELECT um_location_unassign($1, $2, $3, $4, $5, $6)");

/* $2: the organization the caller is limited to, NULL for every one */
static um_pg_stmt_t  um_sql_location_get = um_pg_stmt(
    "SELECT um_location_json(l)"
    "       || jsonb_build_object('user_count', um_location_users(l.id))"
    "  FROM locations l"
    " WHERE l.id = $1 AND l.deleted_at IS NULL"
    "   AND ($2::uuid IS NULL OR l.organization_id = $2)"
    "   AND um_organization_live(l.organization_id)");

static um_pg_stmt_t  um_sql_location_of_user = um_pg_stmt(
    "SELECT um_user_locations_json(u.id) FROM users u"
    " WHERE u.id = $1 AND u.deleted_at IS NULL"
    "   AND ($2::uuid IS NULL OR u.organization_id = $2)"
    "   AND um_organization_live(u.organization_id)");

/*
 * $1 scope, $2 is_active, $3 search (a substring of name, code or city,
 * any case; strpos() so that '%' and '_' are plain characters), $4 city,
 * $5 country (either equal, any case), $6 limit, $7 offset.
 */
static um_pg_stmt_t  um_sql_location_list = um_pg_stmt(
    "WITH f AS ("
    "  SELECT l FROM locations l"
    "   WHERE l.deleted_at IS NULL"
    "     AND ($1::uuid IS NULL OR l.organization_id = $1)"
    "     AND um_organization_live(l.organization_id)"
    "     AND ($2::boolean IS NULL OR l.is_active = $2)"
    "     AND ($3::text IS NULL"
    "          OR strpos(lower(l.name), lower($3)) > 0"
    "          OR strpos(lower(l.code::text), lower($3)) > 0"
    "          OR strpos(lower(l.address->>'city'), lower($3)) > 0)"
    "     AND ($4::text IS NULL OR lower(l.address->>'city') = lower($4))"
    "     AND ($5::text IS NULL"
    "          OR lower(l.address->>'country') = lower($5)))"
    " SELECT (SELECT count(*) FROM f),"
    "        (SELECT coalesce(jsonb_agg(um_location_json(p.l)"
    "                                   ORDER BY (p.l).name, (p.l).id),"
    "                         '[]')"
    "           FROM (SELECT l FROM f ORDER BY (l).name, (l).id"
    "                  LIMIT $6 OFFSET $7) p)");

/* no row: no such location in the caller's scope */
static um_pg_stmt_t  um_sql_location_users = um_pg_stmt(
    "SELECT um_location_users(l.id),"
    "       (SELECT coalesce(jsonb_agg(p.j ORDER BY p.assigned_at,"
    "                                               p.user_id), '[]')"
    "          FROM (SELECT um_user_json(u, false)"
    "                       || jsonb_build_object("
    "                            'is_primary', ul.is_primary,"
    "                            'assigned_by', ul.assigned_by,"
    "                            'assigned_at', um_ts(ul.assigned_at)) AS j,"
    "                       ul.assigned_at, ul.user_id"
    "                  FROM user_locations ul"
    "                  JOIN users u ON u.id = ul.user_id"
    "                 WHERE ul.location_id = l.id AND u.deleted_at IS NULL"
    "                 ORDER BY ul.assigned_at, ul.user_id"
    "                 LIMIT $3 OFFSET $4) p)"
    "  FROM locations l"
    " WHERE l.id = $1 AND l.deleted_at IS NULL"
    "   AND ($2::uuid IS NULL OR l.organization_id = $2)"
    "   AND um_organization_live(l.organization_id)");


static const um_field_t  um_location_create_fields[] = {
    { "name", UM_F_TEXT, UM_REQUIRED, 200 },
    { "code", UM_F_TEXT, UM_REQUIRED, 50 },
    { "description", UM_F_TEXT, UM_NULLABLE, 1000 },
    { "address", UM_F_ADDRESS, UM_NULLABLE, 0 },
    { "latitude", UM_F_NUMBER, UM_NULLABLE, 90 },
    { "longitude", UM_F_NUMBER, UM_NULLABLE, 180 },
    { "timezone", UM_F_TEXT, UM_NULLABLE, 64 },
    { "parent_id", UM_F_UUID, UM_NULLABLE, 0 },
    { "is_active", UM_F_BOOL, 0, 0 },
    { "organization_id", UM_F_UUID, 0, 0 },
    { NULL, 0, 0, 0 }
};

/* a location stays in its organization */
static const um_field_t  um_location_update_fields[] = {
    { "name", UM_F_TEXT, 0, 200 },
    { "code", UM_F_TEXT, 0, 50 },
    { "description", UM_F_TEXT, UM_NULLABLE, 1000 },
    { "address", UM_F_ADDRESS, UM_NULLABLE, 0 },
    { "latitude", UM_F_NUMBER, UM_NULLABLE, 90 },
    { "longitude", UM_F_NUMBER, UM_NULLABLE, 180 },
    { "timezone", UM_F_TEXT, UM_NULLABLE, 64 },
    { "parent_id", UM_F_UUID, UM_NULLABLE, 0 },
    { "is_active", UM_F_BOOL, 0, 0 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_location_assign_fields[] = {
    { "user_id", UM_F_UUID, UM_REQUIRED, 0 },
    { "location_ids", UM_F_UUIDS, UM_REQUIRED, 100 },
    { "primary_location_id", UM_F_UUID, UM_NULLABLE, 0 },
    { NULL, 0, 0, 0 }
};


ngx_int_t
um_locations_create(um_ctx_t *ctx)
{
    const char  *org, **v;

    if (um_locations_fold_address(ctx) != NGX_OK) {
        return ctx->rc;
    }

    if (um_fields_check(ctx, um_location_create_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the caller's organization; a super admin may name another */
    org = um_field_str(ctx, "organization_id");

    if (org != NULL && !ctx->id.super_admin
        && (ngx_strlen(org) != ctx->id.tenant_id.len
            || ngx_strncasecmp((u_char *) org, ctx->id.tenant_id.data,
                               ctx->id.tenant_id.len) != 0))
    {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "organization_id must be your own organization",
                             json_pack("[{ss ss ss}]",
                                       "field", "organization_id",
                                       "rule", "forbidden", "message",
                                       "is not your organization"));
    }

    v[0] = org ? org : um_pstr(ctx, ctx->id.tenant_id.data,
                               ctx->id.tenant_id.len);

    return um_query_audited(ctx, &um_sql_location_create, v, 1, 1,
                            um_locations_created);
}


ngx_int_t
um_locations_list(um_ctx_t *ctx)
{
    um_page_t    *page;
    const char  **v;

    page = ngx_palloc(ctx->r->pool, sizeof(um_page_t));
    v = ngx_pcalloc(ctx->r->pool, 7 * sizeof(char *));

    if (page == NULL || v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_page_parse(ctx, page) != NGX_OK
        || um_page_filter_bool(ctx, "is_active", &v[1]) != NGX_OK
        || um_page_filter(ctx, "search", &v[2]) != NGX_OK
        || um_page_filter(ctx, "city", &v[3]) != NGX_OK
        || um_page_filter(ctx, "country", &v[4]) != NGX_OK)
    {
        return ctx->rc;
    }

    v[0] = um_locations_scope(ctx);
    v[5] = um_pint(ctx, page->page_size);
    v[6] = um_pint(ctx, page->offset);

    ctx->data = page;

    return um_query(ctx, &um_sql_location_list, v, 7, um_locations_page);
}


ngx_int_t
um_locations_get(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, 2 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[1] = um_locations_scope(ctx);

    return um_query(ctx, &um_sql_location_get, v, 2, um_locations_one);
}


ngx_int_t
um_locations_update(um_ctx_t *ctx)
{
    const char  **v;

    if (um_locations_fold_address(ctx) != NGX_OK) {
        return ctx->rc;
    }

    if (um_fields_check(ctx, um_location_update_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 6 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[1] = um_locations_scope(ctx);

    return um_query_audited(ctx, &um_sql_location_update, v, 2, 1,
                            um_locations_one);
}


ngx_int_t
um_locations_delete(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[1] = um_locations_scope(ctx);

    return um_query_audited(ctx, &um_sql_location_delete, v, 2, 0,
                            um_locations_one);
}


ngx_int_t
um_locations_assign(um_ctx_t *ctx)
{
    const char  **v;

    if (um_fields_check(ctx, um_location_assign_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_locations_scope(ctx);

    return um_query_audited(ctx, &um_sql_location_assign, v, 1, 1,
                            um_locations_of_user_done);
}


ngx_int_t
um_locations_of_user(um_ctx_t *ctx)
{
    ngx_uint_t    self;
    const char  **v;

    self = ctx->args[0].len == ctx->id.user_id.len
           && ngx_strncasecmp(ctx->args[0].data, ctx->id.user_id.data,
                              ctx->id.user_id.len) == 0;

    if (!self && !um_has_permission(ctx, "locations:read")) {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "insufficient permissions", NULL);
    }

    v = ngx_palloc(ctx->r->pool, 2 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[1] = um_locations_scope(ctx);

    return um_query(ctx, &um_sql_location_of_user, v, 2,
                    um_locations_of_user_done);
}


ngx_int_t
um_locations_unassign(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_palloc(ctx->r->pool, 6 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_locations_scope(ctx);
    v[1] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[2] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[3] = um_pstr(ctx, ctx->args[1].data, ctx->args[1].len);
    v[4] = um_client_ip(ctx);
    v[5] = um_user_agent(ctx);

    return um_query(ctx, &um_sql_location_unassign, v, 6,
                    um_locations_of_user_done);
}


ngx_int_t
um_locations_users(um_ctx_t *ctx)
{
    um_page_t    *page;
    const char  **v;

    page = ngx_palloc(ctx->r->pool, sizeof(um_page_t));
    v = ngx_palloc(ctx->r->pool, 4 * sizeof(char *));

    if (page == NULL || v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_page_parse(ctx, page) != NGX_OK) {
        return ctx->rc;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[1] = um_locations_scope(ctx);
    v[2] = um_pint(ctx, page->page_size);
    v[3] = um_pint(ctx, page->offset);

    ctx->data = page;

    return um_query(ctx, &um_sql_location_users, v, 4,
                    um_locations_users_page);
}


/*
 * After the n parameters of the endpoint, those every change passes: the
 * actor, the fields sent (with_body), the client's address and agent.
 */


/*
 * Seed 002 sends an address flat: "address" is the street line, and city,
 * state, postal_code and country stand beside it.  That form is folded
 * into the address object the API keeps, before the fields are checked.
 */
static ngx_int_t
um_locations_fold_address(um_ctx_t *ctx)
{
    json_t      *address, *folded, *part;
    ngx_uint_t   i, flat;

    static const char  *parts[] = {
        "city", "state", "postal_code", "country", NULL
    };

    address = json_object_get(ctx->body, "address");
    flat = json_is_string(address);

    for (i = 0; parts[i]; i++) {
        if (json_object_get(ctx->body, parts[i]) != NULL) {
            flat = 1;
        }
    }

    if (!flat) {
        return NGX_OK;
    }

    if (address != NULL && !json_is_string(address)
        && !json_is_null(address))
    {
        ctx->rc = um_send_invalid(ctx->r, "address", "format",
                                  "send the address as an object or flat, "
                                  "not both");
        return NGX_DECLINED;
    }

    folded = json_object();
    if (folded == NULL) {
        ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_ERROR;
    }

    if (json_is_string(address)) {
        json_object_set(folded, "street", address);
    }

    for (i = 0; parts[i]; i++) {
        part = json_object_get(ctx->body, parts[i]);

        if (part != NULL) {
            json_object_set(folded, parts[i], part);
            json_object_del(ctx->body, parts[i]);
        }
    }

    if (json_object_set_new(ctx->body, "address", folded) != 0) {
        ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the organization a caller is limited to: NULL for every one */
static const char *
um_locations_scope(um_ctx_t *ctx)
{
    if (ctx->id.super_admin && !ctx->tenant_chosen) {
        return NULL;
    }

    return um_pstr(ctx, ctx->id.tenant_id.data, ctx->id.tenant_id.len);
}


static ngx_int_t
um_locations_not_found(um_ctx_t *ctx)
{
    return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                         "location not found", NULL);
}


static ngx_int_t
um_locations_send(um_ctx_t *ctx, PGresult *res, ngx_uint_t status,
    const char *what)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND, what,
                             NULL);
    }

    return um_send_data(ctx->r, status, (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
}


static ngx_int_t
um_locations_created(um_ctx_t *ctx, PGresult *res)
{
    return um_locations_send(ctx, res, NGX_HTTP_CREATED,
                             "location not found");
}


static ngx_int_t
um_locations_one(um_ctx_t *ctx, PGresult *res)
{
    return um_locations_send(ctx, res, NGX_HTTP_OK, "location not found");
}


static ngx_int_t
um_locations_of_user_done(um_ctx_t *ctx, PGresult *res)
{
    return um_locations_send(ctx, res, NGX_HTTP_OK, "user not found");
}


static ngx_int_t
um_locations_page(um_ctx_t *ctx, PGresult *res)
{
    return um_page_send_result(ctx, ctx->data, "locations", res);
}


static ngx_int_t
um_locations_users_page(um_ctx_t *ctx, PGresult *res)
{
    /* no row: no such location in the caller's scope */
    if (PQntuples(res) != 1) {
        return um_locations_not_found(ctx);
    }

    return um_page_send_result(ctx, ctx->data, "users", res);
}
