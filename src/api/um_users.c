/*
 * Users.
 *
 *   GET    /api/v1/users/me                the caller's own profile
 *   PUT    /api/v1/users/me                change it; the answer lists what
 *                                          changed
 *   POST   /api/v1/users                   a new user of the organization
 *   GET    /api/v1/users                   the tenant's users: filters,
 *                                          sort, pages and keyset cursors
 *   GET    /api/v1/users/search?q=         full-text search, best first
 *   GET    /api/v1/users/{id}              one user: oneself, or any user
 *                                          of the tenant with users:read
 *                                          (then with the admin fields)
 *   PUT    /api/v1/users/{id}              partial update; oneself may
 *                                          change the profile fields
 *   DELETE /api/v1/users/{id}              soft delete; the sessions end
 *   POST   /api/v1/users/{id}/reactivate   undo a delete or deactivation
 *   PUT    /api/v1/users/{id}/status       activate or deactivate
 *   GET    /api/v1/users/{id}/permissions  direct and effective permissions
 *   PUT    /api/v1/users/{id}/permissions  replace the direct permissions
 *   POST   /api/v1/users/{id}/permissions  add direct permissions
 *   POST   /api/v1/users/{id}/roles        assign roles
 *   DELETE /api/v1/users/{id}/roles        take roles away
 *
 * The permission an endpoint needs is in the route table; where oneself
 * will do too, the handler checks.  The rules that need the stored user
 * (who may change an admin, the organization's user limit, what a caller
 * may grant) live in the SQL functions of sql/migrations/0005_users.sql,
 * which also write the audit rows.  They learn who the caller is from one
 * JSON parameter built here from the verified token.
 */

#include "um_api.h"
#include "http/um_fields.h"
#include "http/um_page.h"


/* the state of one request across its steps */
typedef struct {
    um_page_t            page;
    u_char              *answer;        /* sent once sessions are revoked */
    size_t               answer_len;
} um_users_t;


static um_users_t *um_users_state(um_ctx_t *ctx);
static ngx_int_t um_users_tenant(um_ctx_t *ctx, const char **tenant);
static const char *um_users_caller(um_ctx_t *ctx);
static const char *um_users_json(um_ctx_t *ctx, json_t *value);
static ngx_uint_t um_users_self(um_ctx_t *ctx);
static ngx_int_t um_users_enum(um_ctx_t *ctx, const char *field,
    const char **allowed);
static ngx_int_t um_users_arg(um_ctx_t *ctx, const char *name, size_t max,
    const char **allowed, ngx_str_t *value);
static ngx_int_t um_users_bool_arg(um_ctx_t *ctx, const char *name,
    ngx_int_t *value);
static ngx_int_t um_users_bad_arg(um_ctx_t *ctx, const char *name,
    const char *message);
static ngx_int_t um_users_target(um_ctx_t *ctx, um_pg_stmt_t *stmt,
    const char *extra, ngx_int_t (*done)(um_ctx_t *ctx, PGresult *res));
static ngx_int_t um_users_set_permissions(um_ctx_t *ctx, ngx_uint_t replace);
static ngx_int_t um_users_set_roles(um_ctx_t *ctx, ngx_uint_t assign);

static ngx_int_t um_users_me_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_users_create_hashed(um_ctx_t *ctx, const char *hash);
static ngx_int_t um_users_list_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_users_search_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_users_ended(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_users_answer(um_ctx_t *ctx);


static um_pg_stmt_t  um_sql_me = um_pg_stmt(
    "SELECT um_user_doc(u, false) FROM users u"
    " WHERE u.id = $1 AND u.deleted_at IS NULL");

/* another tenant's user is "not found", like one that does not exist */
static um_pg_stmt_t  um_sql_user = um_pg_stmt(
    "SELECT um_user_doc(u, $3) FROM users u"
    " WHERE u.id = $1"
    "   AND ($2::uuid IS NULL OR u.organization_id = $2)"
    "   AND (u.deleted_at IS NULL OR $3)");

static um_pg_stmt_t  um_sql_update_me = um_pg_stmt(
    "SELECT um_update_me($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_create = um_pg_stmt(
    "SELECT um_create_user($1, $2, $3, $4, $5)");

/* totals are counted up to a cap: see sql/migrations/0011_user_search.sql */
static um_pg_stmt_t  um_sql_list = um_pg_stmt(
    "SELECT users, total, cursor_offset, next_cursor, filters,"
    "       total_is_estimate, has_next"
    "  FROM um_list_users($1, $2, $3, $4, $5)");

static um_pg_stmt_t  um_sql_search = um_pg_stmt(
    "SELECT users, total, total_is_estimate, has_next"
    "  FROM um_search_users($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_update = um_pg_stmt(
    "SELECT answer, sessions FROM um_update_user($1, $2, $5, $3, $4)");

static um_pg_stmt_t  um_sql_delete = um_pg_stmt(
    "SELECT answer, sessions FROM um_delete_user($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_reactivate = um_pg_stmt(
    "SELECT um_reactivate_user($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_status = um_pg_stmt(
    "SELECT answer, sessions FROM um_set_user_status($1, $2, $5, $3, $4)");

static um_pg_stmt_t  um_sql_permissions = um_pg_stmt(
    "SELECT um_user_permissions_json(u) FROM users u"
    " WHERE u.id = $1"
    "   AND ($2::uuid IS NULL OR u.organization_id = $2)"
    "   AND u.deleted_at IS NULL");

static um_pg_stmt_t  um_sql_set_permissions = um_pg_stmt(
    "SELECT um_set_user_permissions($1, $2, $3, $4, $5, $6, $7)");

static um_pg_stmt_t  um_sql_set_roles = um_pg_stmt(
    "SELECT um_set_user_roles($1, $2, $3, $4, $5, $6)");


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

static const um_field_t  um_create_fields[] = {
    { "email", UM_F_EMAIL, UM_REQUIRED, 255 },
    { "username", UM_F_USERNAME, UM_NULLABLE, 50 },
    { "password", UM_F_PASSWORD, UM_NULLABLE, 0 },
    { "first_name", UM_F_NAME, UM_NULLABLE, 100 },
    { "last_name", UM_F_NAME, UM_NULLABLE, 100 },
    { "phone", UM_F_PHONE, UM_NULLABLE, 0 },
    { "avatar_url", UM_F_URL, UM_NULLABLE, 2048 },
    { "department", UM_F_TEXT, UM_NULLABLE, 100 },
    { "user_type", UM_F_TEXT, 0, 16 },
    { "date_of_birth", UM_F_DATE, UM_NULLABLE, 0 },
    { "address", UM_F_ADDRESS, UM_NULLABLE, 0 },
    { "kyc_status", UM_F_TEXT, UM_NULLABLE, 16 },
    { "is_active", UM_F_BOOL, 0, 0 },
    { "preferences", UM_F_OBJECT, 0, 0 },
    { "organization_id", UM_F_UUID, UM_NULLABLE, 0 },
    { NULL, 0, 0, 0 }
};

/* the profile fields, and those that need users:update */
static const um_field_t  um_update_fields[] = {
    { "username", UM_F_USERNAME, UM_NULLABLE, 50 },
    { "first_name", UM_F_NAME, UM_NULLABLE, 100 },
    { "last_name", UM_F_NAME, UM_NULLABLE, 100 },
    { "phone", UM_F_PHONE, UM_NULLABLE, 0 },
    { "avatar_url", UM_F_URL, UM_NULLABLE, 2048 },
    { "department", UM_F_TEXT, UM_NULLABLE, 100 },
    { "date_of_birth", UM_F_DATE, UM_NULLABLE, 0 },
    { "address", UM_F_ADDRESS, UM_NULLABLE, 0 },
    { "preferences", UM_F_OBJECT, 0, 0 },
    { "email", UM_F_EMAIL, 0, 255 },
    { "kyc_status", UM_F_TEXT, UM_NULLABLE, 16 },
    { "is_active", UM_F_BOOL, 0, 0 },
    { "user_type", UM_F_TEXT, 0, 16 },
    { "is_verified", UM_F_BOOL, 0, 0 },
    { "email_verified", UM_F_BOOL, 0, 0 },
    { "phone_verified", UM_F_BOOL, 0, 0 },
    { NULL, 0, 0, 0 }
};

static const char  *um_admin_fields[] = {
    "email", "kyc_status", "is_active", "user_type", "is_verified",
    "email_verified", "phone_verified", NULL
};

static const um_field_t  um_status_fields[] = {
    { "is_active", UM_F_BOOL, 0, 0 },
    { "status", UM_F_TEXT, 0, 16 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_permissions_fields[] = {
    { "permissions", UM_F_STRINGS, UM_REQUIRED, 100 },
    { "valid_until", UM_F_TEXT, UM_NULLABLE, 64 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_roles_fields[] = {
    { "role_ids", UM_F_UUIDS, UM_REQUIRED, 100 },
    { NULL, 0, 0, 0 }
};

static const char  *um_user_types[] = { "user", "manager", "admin", NULL };
static const char  *um_kyc_statuses[] = {
    "pending", "approved", "rejected", NULL
};
static const char  *um_statuses[] = { "active", "inactive", NULL };
static const char  *um_sort_keys[] = {
    "created_at", "updated_at", "last_login_at", "email", "username",
    "first_name", "last_name", NULL
};
static const char  *um_sort_orders[] = { "asc", "desc", NULL };


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
    const char  **v;

    if (um_fields_check(ctx, um_me_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_users_json(ctx, ctx->body);
    v[2] = um_client_ip(ctx);
    v[3] = um_user_agent(ctx);

    if (v[1] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_update_me, v, 4, um_users_me_done);
}


/*
 * POST /api/v1/users
 *
 * Without a password the account cannot sign in until its password is
 * reset.  The SQL function checks what needs the stored data: the
 * organization (a super admin may name any), the fields only an
 * administrator sets, and the organization's user limit.
 */
ngx_int_t
um_users_create(um_ctx_t *ctx)
{
    const char  *password;

    if (um_fields_check(ctx, um_create_fields) != NGX_OK
        || um_users_enum(ctx, "user_type", um_user_types) != NGX_OK
        || um_users_enum(ctx, "kyc_status", um_kyc_statuses) != NGX_OK)
    {
        return ctx->rc;
    }

    password = um_field_str(ctx, "password");

    if (password == NULL) {
        return um_users_create_hashed(ctx, NULL);
    }

    return um_auth_hash_password(ctx, "password", password,
                                 um_field_str(ctx, "email"),
                                 um_field_str(ctx, "username"),
                                 um_users_create_hashed);
}


static ngx_int_t
um_users_create_hashed(um_ctx_t *ctx, const char *hash)
{
    const char  **v;

    if (hash == NULL && um_field_str(ctx, "password") != NULL) {
        return um_send_error(ctx->r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             UM_INTERNAL_ERROR, "password hashing failed",
                             NULL);
    }

    /* the password goes no further than its hash */
    (void) json_object_del(ctx->body, "password");

    v = ngx_pcalloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_users_caller(ctx);
    v[1] = um_users_json(ctx, ctx->body);
    v[2] = hash;
    v[3] = um_client_ip(ctx);
    v[4] = um_user_agent(ctx);

    if (v[0] == NULL || v[1] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_create, v, 5, um_created);
}


/*
 * GET /api/v1/users
 *
 * Filters: search (a substring of the names, email or username), is_active
 * or status, kyc_status, department, role; sort_by and sort_order; and
 * include_deleted for those who may delete users.  An empty argument is
 * no filter.  The answer echoes the filters and offers next_cursor: sent
 * back as "cursor", the next page is found through the sort index instead
 * of skipping rows, and stays stable while users are added.  The total is
 * exact up to a cap, and says so when it stopped there.
 */
ngx_int_t
um_users_list(um_ctx_t *ctx)
{
    u_char       *p;
    json_t       *filters;
    ngx_int_t     rc, active, deleted;
    ngx_str_t     value;
    ngx_uint_t    i;
    um_users_t   *st;
    const char  **v;

    static const struct {
        const char   *name;
        size_t        max;
        const char  **allowed;
    } args[] = {
        { "search", 100, NULL },
        { "kyc_status", 16, um_kyc_statuses },
        { "department", 100, NULL },
        { "role", 100, NULL },
        { "sort_by", 16, um_sort_keys },
        { "sort_order", 4, um_sort_orders },
        { "status", 16, um_statuses },
    };

    st = um_users_state(ctx);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_page_parse(ctx, &st->page) != NGX_OK
        || um_users_bool_arg(ctx, "is_active", &active) != NGX_OK
        || um_users_bool_arg(ctx, "include_deleted", &deleted) != NGX_OK)
    {
        return ctx->rc;
    }

    filters = json_object();
    if (filters == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
        rc = um_users_arg(ctx, args[i].name, args[i].max, args[i].allowed,
                          &value);

        if (rc == NGX_ERROR) {
            json_decref(filters);
            return ctx->rc;
        }

        if (rc == NGX_OK
            && json_object_set_new(filters, args[i].name,
                                   json_stringn((char *) value.data,
                                                value.len))
               != 0)
        {
            json_decref(filters);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* status is is_active by another name (seed 004) */
    p = (u_char *) json_string_value(json_object_get(filters, "status"));

    if (p != NULL) {
        rc = (*p == 'a');

        if (active != NGX_DECLINED && active != rc) {
            json_decref(filters);
            return um_users_bad_arg(ctx, "status",
                                    "status contradicts is_active");
        }

        active = rc;
    }

    if (active != NGX_DECLINED) {
        json_object_set_new(filters, "is_active", json_boolean(active));
    }

    if (deleted == 1) {
        if (!um_has_permission(ctx, "users:delete")) {
            json_decref(filters);
            return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                                 "include_deleted needs the permission "
                                 "users:delete", NULL);
        }

        json_object_set_new(filters, "include_deleted", json_true());
    }

    v = ngx_pcalloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        json_decref(filters);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_users_caller(ctx);
    v[1] = um_users_json(ctx, filters);
    v[2] = um_pint(ctx, st->page.page_size);
    v[3] = um_pint(ctx, st->page.offset);

    json_decref(filters);

    if (st->page.cursor.len) {
        /* the SQL function decodes it: here only its alphabet and size */
        for (i = 0; i < st->page.cursor.len; i++) {
            if (!(isalnum(st->page.cursor.data[i])
                  || st->page.cursor.data[i] == '-'
                  || st->page.cursor.data[i] == '_'))
            {
                break;
            }
        }

        if (i < st->page.cursor.len || st->page.cursor.len > 1024) {
            return um_send_invalid(ctx->r, "cursor", "format",
                                   "cursor is not a valid cursor");
        }

        v[4] = (const char *) st->page.cursor.data;
    }

    if (v[0] == NULL || v[1] == NULL || v[2] == NULL || v[3] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_list, v, 5, um_users_list_done);
}


static ngx_int_t
um_users_list_done(um_ctx_t *ctx, PGresult *res)
{
    u_char      *extra, *p;
    size_t       len;
    uint64_t     total;
    um_users_t  *st;
    const char  *cursor;

    st = ctx->data;

    if (PQntuples(res) != 1 || PQnfields(res) != 7
        || PQgetisnull(res, 0, 0))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    total = ngx_atoof((u_char *) PQgetvalue(res, 0, 1),
                      PQgetlength(res, 0, 1));

    st->page.capped = 1;
    st->page.estimate = (*PQgetvalue(res, 0, 5) == 't');
    st->page.more = (*PQgetvalue(res, 0, 6) == 't');

    /* from a cursor: the page is where the cursor's row is */
    if (!PQgetisnull(res, 0, 2)) {
        st->page.offset = ngx_atoof((u_char *) PQgetvalue(res, 0, 2),
                                    PQgetlength(res, 0, 2));
        st->page.page = st->page.offset / st->page.page_size + 1;
    }

    cursor = PQgetisnull(res, 0, 3)
             ? NULL : um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 3),
                              PQgetlength(res, 0, 3));

    len = sizeof("\"filters\":") - 1 + PQgetlength(res, 0, 4);

    extra = ngx_pnalloc(ctx->r->pool, len);
    if (extra == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(extra, "\"filters\":", sizeof("\"filters\":") - 1);
    ngx_memcpy(p, PQgetvalue(res, 0, 4), PQgetlength(res, 0, 4));

    return um_page_send_extra(ctx, &st->page, "users",
                              (u_char *) PQgetvalue(res, 0, 0),
                              PQgetlength(res, 0, 0), total, cursor,
                              extra, len);
}


/*
 * GET /api/v1/users/search?q=
 *
 * Full text over the names, the email and the username: case-insensitive,
 * stemmed, "quoted phrases", -excluded words, "or".  q holds 2 to 100
 * characters.  The total is exact up to a cap, like the list's.
 */
ngx_int_t
um_users_search(um_ctx_t *ctx)
{
    size_t        n;
    ngx_int_t     rc;
    ngx_str_t     q;
    um_users_t   *st;
    const char  **v;

    st = um_users_state(ctx);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_page_parse(ctx, &st->page) != NGX_OK) {
        return ctx->rc;
    }

    rc = um_arg(ctx, "q", &q);

    while (rc == NGX_OK && q.len && (q.data[0] == ' ' || q.data[0] == '\t'))
    {
        q.data++;
        q.len--;
    }

    while (rc == NGX_OK && q.len
           && (q.data[q.len - 1] == ' ' || q.data[q.len - 1] == '\t'))
    {
        q.len--;
    }

    n = (rc == NGX_OK) ? um_text_length(q.data, q.len) : 0;

    if (n < 2 || n > 100) {
        return um_users_bad_arg(ctx, "q", rc == NGX_DECLINED
                                          ? "q is required"
                                          : "q must hold 2 to 100 "
                                            "characters");
    }

    v = ngx_pcalloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_users_caller(ctx);
    v[1] = um_pstr(ctx, q.data, q.len);
    v[2] = um_pint(ctx, st->page.page_size);
    v[3] = um_pint(ctx, st->page.offset);

    if (v[0] == NULL || v[1] == NULL || v[2] == NULL || v[3] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_search, v, 4, um_users_search_done);
}


static ngx_int_t
um_users_search_done(um_ctx_t *ctx, PGresult *res)
{
    um_users_t  *st;

    st = ctx->data;

    if (PQntuples(res) != 1 || PQnfields(res) != 4
        || PQgetisnull(res, 0, 0))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->page.capped = 1;
    st->page.estimate = (*PQgetvalue(res, 0, 2) == 't');
    st->page.more = (*PQgetvalue(res, 0, 3) == 't');

    return um_page_send(ctx, &st->page, "users",
                        (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0),
                        ngx_atoof((u_char *) PQgetvalue(res, 0, 1),
                                  PQgetlength(res, 0, 1)),
                        NULL);
}


ngx_int_t
um_users_get(um_ctx_t *ctx)
{
    ngx_uint_t    admin;
    const char  **v;

    admin = um_has_permission(ctx, "users:read");

    if (!um_users_self(ctx) && !admin) {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "insufficient permissions", NULL);
    }

    v = ngx_palloc(ctx->r->pool, 3 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[2] = admin ? "true" : "false";

    if (um_users_tenant(ctx, &v[1]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_user, v, 3, um_users_me_done);
}


/*
 * PUT /api/v1/users/{id}
 *
 * Oneself: the profile fields of PUT /users/me.  The other fields, and
 * other users, need users:update.  Answers the user and what changed;
 * deactivating ends the user's sessions.
 */
ngx_int_t
um_users_update(um_ctx_t *ctx)
{
    json_t      *details;
    ngx_uint_t   i;
    const char  *fields;

    if (!um_users_self(ctx) && !um_has_permission(ctx, "users:update")) {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "insufficient permissions", NULL);
    }

    if (um_fields_check(ctx, um_update_fields) != NGX_OK
        || um_users_enum(ctx, "user_type", um_user_types) != NGX_OK
        || um_users_enum(ctx, "kyc_status", um_kyc_statuses) != NGX_OK)
    {
        return ctx->rc;
    }

    if (!um_has_permission(ctx, "users:update")) {
        details = json_array();
        if (details == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        for (i = 0; um_admin_fields[i]; i++) {
            if (json_object_get(ctx->body, um_admin_fields[i]) != NULL) {
                json_array_append_new(details,
                    json_pack("{ss ss ss}", "field", um_admin_fields[i],
                              "rule", "forbidden",
                              "message", "only an administrator "
                                         "(users:update) may change it"));
            }
        }

        if (json_array_size(details)) {
            return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                                 "some fields may only be changed by an "
                                 "administrator", details);
        }

        json_decref(details);
    }

    fields = um_users_json(ctx, ctx->body);
    if (fields == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_users_target(ctx, &um_sql_update, fields, um_users_ended);
}


/*
 * DELETE /api/v1/users/{id}
 *
 * A soft delete; "usermgmt_user_delete off" turns it off (seed 001).
 * Deleting oneself is a conflict (409): an account is deleted by another
 * administrator.
 */
ngx_int_t
um_users_delete(um_ctx_t *ctx)
{
    ngx_http_usermgmt_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(ctx->r, ngx_http_usermgmt_module);

    if (!lcf->user_delete) {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "deleting users is disabled on this server",
                             NULL);
    }

    return um_users_target(ctx, &um_sql_delete, NULL, um_users_ended);
}


/* POST /api/v1/users/{id}/reactivate */
ngx_int_t
um_users_reactivate(um_ctx_t *ctx)
{
    return um_users_target(ctx, &um_sql_reactivate, NULL, um_users_me_done);
}


/*
 * PUT /api/v1/users/{id}/status
 *
 * {"is_active": bool} (seed 004), or {"status": "active" | "inactive"}.
 */
ngx_int_t
um_users_status(um_ctx_t *ctx)
{
    json_t      *flag;
    ngx_int_t    active;
    const char  *status;

    if (um_fields_check(ctx, um_status_fields) != NGX_OK
        || um_users_enum(ctx, "status", um_statuses) != NGX_OK)
    {
        return ctx->rc;
    }

    flag = json_object_get(ctx->body, "is_active");
    status = um_field_str(ctx, "status");

    active = flag ? json_is_true(flag)
                  : status ? (ngx_strcmp(status, "active") == 0)
                           : NGX_DECLINED;

    if (active == NGX_DECLINED) {
        return um_send_invalid(ctx->r, "is_active", "required",
                               "is_active (or status) is required");
    }

    if (flag && status
        && active != (ngx_int_t) (ngx_strcmp(status, "active") == 0))
    {
        return um_send_invalid(ctx->r, "status", "invalid",
                               "status contradicts is_active");
    }

    return um_users_target(ctx, &um_sql_status, active ? "true" : "false",
                           um_users_ended);
}


/* GET /api/v1/users/{id}/permissions: oneself, or with users:read */
ngx_int_t
um_users_permissions(um_ctx_t *ctx)
{
    const char  **v;

    if (!um_users_self(ctx) && !um_has_permission(ctx, "users:read")) {
        return um_send_error(ctx->r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                             "insufficient permissions", NULL);
    }

    v = ngx_palloc(ctx->r->pool, 2 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);

    if (v[0] == NULL || um_users_tenant(ctx, &v[1]) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_permissions, v, 2, um_users_me_done);
}


/* PUT /api/v1/users/{id}/permissions: the direct ones become these */
ngx_int_t
um_users_permissions_replace(um_ctx_t *ctx)
{
    return um_users_set_permissions(ctx, 1);
}


/* POST /api/v1/users/{id}/permissions: these are added */
ngx_int_t
um_users_permissions_add(um_ctx_t *ctx)
{
    return um_users_set_permissions(ctx, 0);
}


/* POST /api/v1/users/{id}/roles */
ngx_int_t
um_users_roles_add(um_ctx_t *ctx)
{
    return um_users_set_roles(ctx, 1);
}


/* DELETE /api/v1/users/{id}/roles */
ngx_int_t
um_users_roles_remove(um_ctx_t *ctx)
{
    return um_users_set_roles(ctx, 0);
}


/*
 * {"permissions": [names or ids], "valid_until": RFC 3339 time}.  An
 * unknown permission is refused (422) by name.
 */
static ngx_int_t
um_users_set_permissions(um_ctx_t *ctx, ngx_uint_t replace)
{
    json_t       *list;
    const char  **v;

    if (um_fields_check(ctx, um_permissions_fields) != NGX_OK) {
        return ctx->rc;
    }

    list = json_object_get(ctx->body, "permissions");

    if (!replace && json_array_size(list) == 0) {
        return um_send_invalid(ctx->r, "permissions", "required",
                               "must not be empty");
    }

    v = ngx_pcalloc(ctx->r->pool, 7 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_users_caller(ctx);
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[2] = um_users_json(ctx, list);
    v[3] = um_field_str(ctx, "valid_until");
    v[4] = replace ? "true" : "false";
    v[5] = um_client_ip(ctx);
    v[6] = um_user_agent(ctx);

    if (v[0] == NULL || v[1] == NULL || v[2] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_set_permissions, v, 7, um_users_me_done);
}


/* {"role_ids": [uuid, ...]}: roles of the user's organization */
static ngx_int_t
um_users_set_roles(um_ctx_t *ctx, ngx_uint_t assign)
{
    const char  **v;

    if (um_fields_check(ctx, um_roles_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_pcalloc(ctx->r->pool, 6 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_users_caller(ctx);
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[2] = um_users_json(ctx, json_object_get(ctx->body, "role_ids"));
    v[3] = assign ? "true" : "false";
    v[4] = um_client_ip(ctx);
    v[5] = um_user_agent(ctx);

    if (v[0] == NULL || v[1] == NULL || v[2] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_set_roles, v, 6, um_users_me_done);
}


/*
 * The changes of one user: stmt takes the caller, the user of the path,
 * the client's address and user agent, and extra (as $5) when given.
 */
static ngx_int_t
um_users_target(um_ctx_t *ctx, um_pg_stmt_t *stmt, const char *extra,
    ngx_int_t (*done)(um_ctx_t *ctx, PGresult *res))
{
    const char  **v;

    if (um_users_state(ctx) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v = ngx_pcalloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_users_caller(ctx);
    v[1] = um_pstr(ctx, ctx->args[0].data, ctx->args[0].len);
    v[2] = um_client_ip(ctx);
    v[3] = um_user_agent(ctx);
    v[4] = extra;

    if (v[0] == NULL || v[1] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, stmt, v, extra ? 5 : 4, done);
}


static ngx_int_t
um_users_me_done(um_ctx_t *ctx, PGresult *res)
{
    return um_send_row(ctx->r, res, NGX_HTTP_OK, "user not found");
}


/*
 * A change that ended sessions: their access tokens go on the deny-list
 * before the answer.
 */
static ngx_int_t
um_users_ended(um_ctx_t *ctx, PGresult *res)
{
    json_t      *sids;
    um_users_t  *st;

    st = ctx->data;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                             "user not found", NULL);
    }

    st->answer_len = PQgetlength(res, 0, 0);
    st->answer = ngx_pnalloc(ctx->r->pool, st->answer_len);
    if (st->answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(st->answer, PQgetvalue(res, 0, 0), st->answer_len);

    sids = json_loadb(PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1), 0,
                      NULL);
    if (sids == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_auth_end_sessions(ctx, sids, um_users_answer);
}


static ngx_int_t
um_users_answer(um_ctx_t *ctx)
{
    um_users_t  *st;

    st = ctx->data;

    return um_send_data(ctx->r, NGX_HTTP_OK, st->answer, st->answer_len);
}


static um_users_t *
um_users_state(um_ctx_t *ctx)
{
    um_users_t  *st;

    st = ngx_pcalloc(ctx->r->pool, sizeof(um_users_t));
    if (st == NULL) {
        return NULL;
    }

    ctx->data = st;

    return st;
}


/*
 * The organization the caller sees: their own, or for a super admin every
 * one (NULL) unless X-Tenant-ID narrowed it.
 */
static ngx_int_t
um_users_tenant(um_ctx_t *ctx, const char **tenant)
{
    if (ctx->id.super_admin && !ctx->tenant_chosen) {
        *tenant = NULL;
        return NGX_OK;
    }

    *tenant = um_pstr(ctx, ctx->id.tenant_id.data, ctx->id.tenant_id.len);

    return (*tenant == NULL || ctx->id.tenant_id.len == 0) ? NGX_ERROR
                                                           : NGX_OK;
}


/*
 * The caller, for the SQL functions of 0005_users.sql, from the verified
 * token: {"id", "org", "tenant", "super_admin", "org_admin",
 * "permissions"}.
 */
static const char *
um_users_caller(um_ctx_t *ctx)
{
    json_t      *caller, *perms;
    const char  *id, *org, *tenant, *text;

    id = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    org = um_pstr(ctx, ctx->id.tenant_id.data, ctx->id.tenant_id.len);

    if (id == NULL || org == NULL
        || um_users_tenant(ctx, &tenant) != NGX_OK)
    {
        return NULL;
    }

    perms = json_is_array(ctx->id.permissions)
            ? json_incref(ctx->id.permissions) : json_array();

    caller = json_pack("{ss ss ss? sb sb so}", "id", id, "org", org,
                       "tenant", tenant,
                       "super_admin", (int) ctx->id.super_admin,
                       "org_admin",
                       (int) um_has_role_exactly(ctx, "org_admin"),
                       "permissions", perms);
    if (caller == NULL) {
        return NULL;
    }

    text = um_users_json(ctx, caller);
    json_decref(caller);

    return text;
}


/* a JSON value as a NUL-terminated parameter */
static const char *
um_users_json(um_ctx_t *ctx, json_t *value)
{
    char        *text;
    const char  *p;

    text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        return NULL;
    }

    p = um_pstr(ctx, (u_char *) text, ngx_strlen(text));
    free(text);

    return p;
}


/* the user of the path is the caller */
static ngx_uint_t
um_users_self(um_ctx_t *ctx)
{
    return ctx->args[0].len == ctx->id.user_id.len
           && ngx_strncasecmp(ctx->args[0].data, ctx->id.user_id.data,
                              ctx->id.user_id.len) == 0;
}


/* a string field of the checked body, when present, is one of allowed */
static ngx_int_t
um_users_enum(um_ctx_t *ctx, const char *field, const char **allowed)
{
    u_char       msg[128], *p;
    ngx_uint_t   i;
    const char  *s;

    s = um_field_str(ctx, field);

    if (s == NULL) {
        return NGX_OK;
    }

    for (i = 0; allowed[i]; i++) {
        if (ngx_strcmp(s, allowed[i]) == 0) {
            return NGX_OK;
        }
    }

    p = ngx_snprintf(msg, sizeof(msg) - 1, "must be one of");

    for (i = 0; allowed[i]; i++) {
        p = ngx_snprintf(p, msg + sizeof(msg) - 1 - p, "%s %s",
                         i ? "," : "", allowed[i]);
    }

    *p = '\0';

    ctx->rc = um_send_invalid(ctx->r, field, "enum", (char *) msg);

    return NGX_DECLINED;
}


/*
 * A query argument of at most max characters (and, with allowed, one of
 * those, in any case).  NGX_DECLINED when absent or empty; NGX_ERROR when
 * refused: the 400 answer was sent and ctx->rc holds what to return.
 */
static ngx_int_t
um_users_arg(um_ctx_t *ctx, const char *name, size_t max,
    const char **allowed, ngx_str_t *value)
{
    u_char      msg[160], *p;
    ngx_int_t   rc;
    ngx_uint_t  i;

    rc = um_arg(ctx, name, value);

    if (rc == NGX_DECLINED || (rc == NGX_OK && value->len == 0)) {
        return NGX_DECLINED;
    }

    if (rc == NGX_OK && um_text_length(value->data, value->len) <= max) {

        if (allowed == NULL) {
            return NGX_OK;
        }

        for (i = 0; allowed[i]; i++) {
            if (value->len == ngx_strlen(allowed[i])
                && ngx_strncasecmp(value->data, (u_char *) allowed[i],
                                   value->len) == 0)
            {
                value->data = (u_char *) allowed[i];
                return NGX_OK;
            }
        }
    }

    if (allowed == NULL) {
        p = ngx_snprintf(msg, sizeof(msg) - 1, "%s must be text of at most "
                         "%uz characters", name, max);

    } else {
        p = ngx_snprintf(msg, sizeof(msg) - 1, "%s must be one of", name);

        for (i = 0; allowed[i]; i++) {
            p = ngx_snprintf(p, msg + sizeof(msg) - 1 - p, "%s %s",
                             i ? "," : "", allowed[i]);
        }
    }

    *p = '\0';

    (void) um_users_bad_arg(ctx, name, (char *) msg);

    return NGX_ERROR;
}


/* true, false, 1 or 0; *value NGX_DECLINED when absent or empty */
static ngx_int_t
um_users_bool_arg(um_ctx_t *ctx, const char *name, ngx_int_t *value)
{
    ngx_int_t   rc;
    ngx_str_t   s;

    static const char  *truths[] = { "true", "1", "false", "0", NULL };

    rc = um_users_arg(ctx, name, 5, truths, &s);

    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    if (rc == NGX_DECLINED) {
        *value = NGX_DECLINED;
        return NGX_OK;
    }

    *value = (s.data[0] == 't' || s.data[0] == '1');

    return NGX_OK;
}


static ngx_int_t
um_users_bad_arg(um_ctx_t *ctx, const char *name, const char *message)
{
    ctx->rc = um_send_error(ctx->r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                            message,
                            json_pack("[{ss ss ss}]", "field", name,
                                      "rule", "invalid", "message",
                                      message));

    return ctx->rc;
}
