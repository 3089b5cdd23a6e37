/*
 * Accounts and sessions.
 *
 *   POST /api/v1/auth/register          public: a new account
 *   POST /api/v1/auth/login             public: tokens for a password
 *   POST /api/v1/auth/refresh           public: rotate a refresh token
 *   POST /api/v1/auth/logout            end the session, revoke the token
 *   POST /api/v1/auth/change-password   new password, other sessions end
 *   PUT  /api/v1/users/password         the same (seed 004)
 *   GET  /.well-known/jwks.json         the public signing keys
 *
 * Password hashing and checking run in the thread pool; every change and
 * its audit row are one SQL function call (sql/migrations/0002_auth.sql).
 * Other endpoints that set a password or end sessions use
 * um_auth_hash_password() and um_auth_end_sessions().
 */

#include "um_api.h"
#include "http/um_fields.h"
#include "auth/um_token.h"


#define UM_LOGIN_FAILURES_PREFIX  "usermgmt:login-failures:"


/* the state of one authentication request across its steps */
typedef struct {
    /* handed to the thread */
    const char          *password;
    size_t               password_len;
    const char          *new_password;
    size_t               new_password_len;
    const char          *phc;               /* to check the password with */
    um_argon2_params_t   params;
    char                 hash[128];         /* a new hash */
    int                  verified;
    int                  hashed;

    /* signing (in the thread for RSA) */
    const um_jwt_key_t  *key;
    const char          *typ;
    json_t              *payload;
    char                *jwt;               /* malloc'd by the signer */
    ngx_int_t          (*signed_done)(um_ctx_t *ctx, const char *jwt);

    const char          *login;
    const char          *user_id;
    const char          *state;
    char                 refresh[UM_TOKEN_LEN + 1];
    char                 refresh_hash[UM_TOKEN_HASH_LEN + 1];
    u_char              *user;              /* JSON of the user */
    size_t               user_len;
    const char          *email;
    const char          *username;

    const char          *message;           /* of a session-ending call */
    ngx_uint_t           revoke_token;
    time_t               refresh_expires;   /* seconds left */
    ngx_uint_t           ip_counted;        /* in the address's count */

    /* of um_auth_hash_password() */
    ngx_int_t          (*hashed_done)(um_ctx_t *ctx, const char *hash);
} um_auth_t;


static um_auth_t *um_auth_state(um_ctx_t *ctx);
static void um_auth_cleanup(void *data);
static void um_hash_work(void *data);
static void um_check_work(void *data);
static void um_sign_work(void *data);
static ngx_int_t um_policy(um_ctx_t *ctx, const char *field, const char *pw,
    const char *email, const char *username);

static ngx_int_t um_hash_resume(um_ctx_t *ctx);

static ngx_int_t um_register_hashed(um_ctx_t *ctx, const char *hash);

static ngx_int_t um_login_ip_checked(um_ctx_t *ctx);
static um_redis_cmd_t *um_login_ip_count(um_ctx_t *ctx, ngx_uint_t incr,
    um_redis_handler_pt done);
static void um_login_ip_done(void *data, redisReply *reply, ngx_int_t status);
static ngx_int_t um_login_found(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_login_checked(um_ctx_t *ctx);
static ngx_int_t um_login_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_login_failed_done(um_ctx_t *ctx, PGresult *res);

static ngx_int_t um_refresh_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_password_identity(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_password_found(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_password_checked(um_ctx_t *ctx);

static ngx_int_t um_issue(um_ctx_t *ctx, json_t *claims, const char *sid);
static ngx_int_t um_signed(um_ctx_t *ctx);
static ngx_int_t um_issued(um_ctx_t *ctx, const char *jwt);
static ngx_int_t um_revoke(um_ctx_t *ctx, json_t *sids, ngx_uint_t token,
    ngx_int_t (*answer)(um_ctx_t *ctx));
static void um_revoke_done(void *data, redisReply *reply, ngx_int_t status);
static ngx_int_t um_sessions_ended(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_password_refused(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_sessions_answer(um_ctx_t *ctx);
static json_t *um_result_json(PGresult *res);


static um_pg_stmt_t  um_sql_register = um_pg_stmt(
    "SELECT um_register($1, $2, $3, $4, $5, $6, $7, $8, $9)");

static um_pg_stmt_t  um_sql_login_begin = um_pg_stmt(
    "SELECT user_id, password_hash, state"
    "  FROM um_login_begin($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_login_finish = um_pg_stmt(
    "SELECT um_login_end($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");

static um_pg_stmt_t  um_sql_refresh = um_pg_stmt(
    "SELECT um_refresh($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_logout = um_pg_stmt(
    "SELECT um_logout($1, $2, $3, $4, $5)");

static um_pg_stmt_t  um_sql_password_of = um_pg_stmt(
    "SELECT email, username FROM um_password_of($1)");

static um_pg_stmt_t  um_sql_password_check = um_pg_stmt(
    "SELECT password_hash, email, username, state"
    "  FROM um_password_check_begin($1, $2, $3)");

static um_pg_stmt_t  um_sql_password_failed = um_pg_stmt(
    "SELECT um_password_check_end($1, $2, $3, $4, $5, $6)");

static um_pg_stmt_t  um_sql_change_password = um_pg_stmt(
    "SELECT um_change_password($1, $2, $3, $4, $5)");


static const um_field_t  um_register_fields[] = {
    { "email", UM_F_EMAIL, UM_REQUIRED, 255 },
    { "username", UM_F_USERNAME, UM_NULLABLE, 50 },
    { "password", UM_F_PASSWORD, UM_REQUIRED, 0 },
    { "first_name", UM_F_NAME, UM_NULLABLE, 100 },
    { "last_name", UM_F_NAME, UM_NULLABLE, 100 },
    { "organization_id", UM_F_UUID, UM_NULLABLE, 0 },
    { "organization_slug", UM_F_SLUG, UM_NULLABLE, 0 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_login_fields[] = {
    { "email", UM_F_TEXT, 0, 255 },
    { "username", UM_F_TEXT, 0, 255 },
    { "password", UM_F_PASSWORD, UM_REQUIRED, 0 },
    { "organization_slug", UM_F_SLUG, UM_NULLABLE, 0 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_refresh_fields[] = {
    { "refresh_token", UM_F_TEXT, UM_REQUIRED, 256 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_logout_fields[] = {
    { "refresh_token", UM_F_TEXT, UM_NULLABLE, 256 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_password_fields[] = {
    { "current_password", UM_F_PASSWORD, UM_REQUIRED, 0 },
    { "new_password", UM_F_PASSWORD, UM_REQUIRED, 0 },
    { NULL, 0, 0, 0 }
};


/* POST /api/v1/auth/register */
ngx_int_t
um_auth_register(um_ctx_t *ctx)
{
    if (um_fields_check(ctx, um_register_fields) != NGX_OK) {
        return ctx->rc;
    }

    return um_auth_hash_password(ctx, "password",
                                 um_field_str(ctx, "password"),
                                 um_field_str(ctx, "email"),
                                 um_field_str(ctx, "username"),
                                 um_register_hashed);
}


static ngx_int_t
um_register_hashed(um_ctx_t *ctx, const char *hash)
{
    const char  **v;

    if (hash == NULL) {
        return um_send_error(ctx->r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             UM_INTERNAL_ERROR, "password hashing failed",
                             NULL);
    }

    v = ngx_pcalloc(ctx->r->pool, 9 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_field_str(ctx, "email");
    v[1] = um_field_str(ctx, "username");
    v[2] = hash;
    v[3] = um_field_str(ctx, "first_name");
    v[4] = um_field_str(ctx, "last_name");
    v[5] = um_field_str(ctx, "organization_id");
    v[6] = um_field_str(ctx, "organization_slug");
    v[7] = um_client_ip(ctx);
    v[8] = um_user_agent(ctx);

    return um_query(ctx, &um_sql_register, v, 9, um_created);
}


/*
 * The failed sign-ins of the caller's address in the current window.  The
 * attempt is counted before the password is checked (and taken back when
 * it succeeds), so parallel guesses cannot get past the limit.
 */
static um_redis_cmd_t *
um_login_ip_count(um_ctx_t *ctx, ngx_uint_t incr, um_redis_handler_pt done)
{
    size_t       len, lens[5];
    u_char      *key, *ttl;
    const char  *argv[5];

    len = sizeof(UM_LOGIN_FAILURES_PREFIX) - 1
          + ctx->r->connection->addr_text.len;

    key = ngx_pnalloc(ctx->r->pool, len);
    ttl = ngx_pnalloc(ctx->r->pool, NGX_TIME_T_LEN);

    if (key == NULL || ttl == NULL) {
        return NULL;
    }

    ngx_sprintf(key, UM_LOGIN_FAILURES_PREFIX "%V",
                &ctx->r->connection->addr_text);

    argv[0] = "EVAL";
    argv[1] = incr ? "local n = redis.call('INCR', KEYS[1]) "
                     "if n == 1 then "
                     "redis.call('EXPIRE', KEYS[1], ARGV[1]) end "
                     "return n"
                   : "if tonumber(redis.call('GET', KEYS[1]) or 0) > 0 then "
                     "return redis.call('DECR', KEYS[1]) end "
                     "return 0";
    argv[2] = "1";
    argv[3] = (char *) key;
    argv[4] = (char *) ttl;

    lens[0] = 4;
    lens[1] = ngx_strlen(argv[1]);
    lens[2] = 1;
    lens[3] = len;
    lens[4] = ngx_sprintf(ttl, "%T", ctx->mcf->lockout) - ttl;

    return um_redis_send(ctx->mcf->redis_client, done, ctx, 5, argv, lens);
}


/*
 * POST /api/v1/auth/login
 *
 * An unknown account, a wrong password and a locked account get the same
 * answer after the same work (a password check against a dummy hash), so
 * the answer tells nothing about which accounts exist.
 */
ngx_int_t
um_auth_login(um_ctx_t *ctx)
{
    um_auth_t  *st;

    if (um_fields_check(ctx, um_login_fields) != NGX_OK) {
        return ctx->rc;
    }

    st = um_auth_state(ctx);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->login = um_field_str(ctx, "email");

    if (st->login == NULL || st->login[0] == '\0') {
        st->login = um_field_str(ctx, "username");
    }

    if (st->login == NULL || st->login[0] == '\0') {
        return um_send_invalid(ctx->r, "email", "required",
                               "email or username is required");
    }

    st->password = um_field_str(ctx, "password");
    st->password_len = ngx_strlen(st->password);

    if (ctx->mcf->redis_client == NULL || ctx->mcf->ip_max_failures == 0) {
        return um_login_ip_checked(ctx);
    }

    ctx->redis = um_login_ip_count(ctx, 1, um_login_ip_done);

    if (ctx->redis == NULL) {
        /* the account lockout in PostgreSQL still holds */
        return um_login_ip_checked(ctx);
    }

    return NGX_DONE;
}


static void
um_login_ip_done(void *data, redisReply *reply, ngx_int_t status)
{
    um_ctx_t   *ctx = data;
    ngx_int_t   rc;
    ngx_str_t   retry;
    u_char      buf[NGX_TIME_T_LEN];

    ctx->redis = NULL;

    if (status == UM_REDIS_OK && reply->type == REDIS_REPLY_INTEGER
        && reply->integer > (long long) ctx->mcf->ip_max_failures)
    {
        /* a refused attempt checks no password: it does not count */
        (void) um_login_ip_count(ctx, 0, NULL);

        retry.data = buf;
        retry.len = ngx_sprintf(buf, "%T", ctx->mcf->lockout) - buf;
        (void) um_header_add(ctx->r, "Retry-After", &retry);

        rc = um_send_error(ctx->r, NGX_HTTP_TOO_MANY_REQUESTS,
                           UM_TOO_MANY_REQUESTS,
                           "too many failed sign-ins from this address",
                           NULL);
    } else {
        /* only what was counted is taken back on success */
        ((um_auth_t *) ctx->data)->ip_counted =
            (status == UM_REDIS_OK && reply->type == REDIS_REPLY_INTEGER);

        rc = um_login_ip_checked(ctx);
    }

    if (rc != NGX_DONE) {
        um_finish(ctx, rc);
    }
}


static ngx_int_t
um_login_ip_checked(um_ctx_t *ctx)
{
    um_auth_t    *st;
    const char  **v;

    st = ctx->data;

    v = ngx_pcalloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = st->login;
    v[1] = um_field_str(ctx, "organization_slug");
    v[2] = um_pint(ctx, ctx->mcf->max_failures);
    v[3] = um_pint(ctx, ctx->mcf->lockout);

    return um_query(ctx, &um_sql_login_begin, v, 4, um_login_found);
}


static ngx_int_t
um_login_found(um_ctx_t *ctx, PGresult *res)
{
    um_auth_t  *st;

    st = ctx->data;

    st->state = um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 2),
                        PQgetlength(res, 0, 2));
    st->user_id = PQgetisnull(res, 0, 0)
                  ? NULL
                  : um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 0),
                            PQgetlength(res, 0, 0));

    if (st->state == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* every path checks a password, so they all take the same time */
    if (ngx_strcmp(st->state, "ok") == 0 && !PQgetisnull(res, 0, 1)) {
        st->phc = um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 1),
                          PQgetlength(res, 0, 1));

    } else {
        st->phc = ctx->mcf->dummy_hash;
    }

    if (st->phc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_offload(ctx, um_check_work, um_login_checked);
}


static ngx_int_t
um_login_checked(um_ctx_t *ctx)
{
    um_auth_t    *st;
    ngx_uint_t    ok;
    const char  **v;

    st = ctx->data;

    ok = st->verified && ngx_strcmp(st->state, "ok") == 0;

    v = ngx_pcalloc(ctx->r->pool, 11 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[9] = um_pint(ctx, ctx->mcf->max_failures);
    v[10] = um_pint(ctx, ctx->mcf->lockout);

    v[0] = st->user_id;
    v[1] = ok ? "true" : "false";
    v[2] = ok ? NULL : (ngx_strcmp(st->state, "ok") == 0
                        ? "wrong_password" : st->state);
    v[3] = st->login;
    v[4] = (ok && st->hashed) ? st->hash : NULL;
    v[7] = um_client_ip(ctx);
    v[8] = um_user_agent(ctx);

    if (!ok) {
        return um_query(ctx, &um_sql_login_finish, v, 11,
                        um_login_failed_done);
    }

    if (um_token_new(st->refresh, st->refresh_hash) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[5] = st->refresh_hash;
    v[6] = um_pint(ctx, ctx->mcf->refresh_ttl);

    return um_query(ctx, &um_sql_login_finish, v, 11, um_login_done);
}


static ngx_int_t
um_login_done(um_ctx_t *ctx, PGresult *res)
{
    um_auth_t  *st;

    st = ctx->data;

    /* a success is no failure: take the attempt back, without waiting */
    if (st->ip_counted) {
        (void) um_login_ip_count(ctx, 0, NULL);
    }

    return um_auth_signed_in(ctx, res);
}


/*
 * The answer of a sign-in, from what its SQL function returned: the
 * tokens and the user, or (for an account with two-factor authentication,
 * after the password step) the challenge of the second step.
 */
ngx_int_t
um_auth_signed_in(um_ctx_t *ctx, PGresult *res)
{
    json_t      *result, *user;
    um_auth_t   *st;
    ngx_int_t    rc;
    const char  *id;
    char        *text;

    st = ctx->data;

    result = um_result_json(res);
    if (result == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_is_true(json_object_get(result, "mfa_required"))) {
        id = json_string_value(json_object_get(result, "user_id"));
        id = (id != NULL) ? um_pstr(ctx, (u_char *) id, ngx_strlen(id))
                          : NULL;

        json_decref(result);

        return (id != NULL) ? um_mfa_challenge(ctx, id)
                            : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    user = json_object_get(result, "user");
    text = json_dumps(user, JSON_COMPACT);

    if (text != NULL) {
        st->user_len = ngx_strlen(text);
        st->user = ngx_pnalloc(ctx->r->pool, st->user_len);

        if (st->user != NULL) {
            ngx_memcpy(st->user, text, st->user_len);
        }

        free(text);
    }

    if (st->user == NULL) {
        json_decref(result);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = um_issue(ctx, json_object_get(result, "claims"),
                  json_string_value(json_object_get(result, "sid")));

    json_decref(result);

    return rc;
}


/*
 * For the endpoints that complete a sign-in elsewhere: a new refresh
 * token, whose hash (hex) the SQL function stores; its answer goes to
 * um_auth_signed_in().  Takes ctx->data; NULL when out of memory.
 */
const char *
um_auth_refresh_new(um_ctx_t *ctx)
{
    um_auth_t  *st;

    st = um_auth_state(ctx);

    if (st == NULL || um_token_new(st->refresh, st->refresh_hash) != 0) {
        return NULL;
    }

    return st->refresh_hash;
}


static ngx_int_t
um_login_failed_done(um_ctx_t *ctx, PGresult *res)
{
    /* the attempt was counted against the address when it began */
    return um_send_error(ctx->r, NGX_HTTP_UNAUTHORIZED, UM_UNAUTHORIZED,
                         "invalid credentials", NULL);
}


/* POST /api/v1/auth/refresh */
ngx_int_t
um_auth_refresh(um_ctx_t *ctx)
{
    um_auth_t    *st;
    const char  **v, *token;
    char         *old;

    if (um_fields_check(ctx, um_refresh_fields) != NGX_OK) {
        return ctx->rc;
    }

    st = um_auth_state(ctx);
    v = ngx_pcalloc(ctx->r->pool, 4 * sizeof(char *));
    old = ngx_pnalloc(ctx->r->pool, UM_TOKEN_HASH_LEN + 1);

    if (st == NULL || v == NULL || old == NULL
        || um_token_new(st->refresh, st->refresh_hash) != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    token = um_field_str(ctx, "refresh_token");
    um_token_hash(token, ngx_strlen(token), old);

    v[0] = old;
    v[1] = st->refresh_hash;
    v[2] = um_client_ip(ctx);
    v[3] = um_user_agent(ctx);

    return um_query(ctx, &um_sql_refresh, v, 4, um_refresh_done);
}


static ngx_int_t
um_refresh_done(um_ctx_t *ctx, PGresult *res)
{
    json_t      *result, *sids;
    ngx_int_t    rc;
    const char  *status;

    result = um_result_json(res);
    if (result == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = json_string_value(json_object_get(result, "status"));

    if (status != NULL && ngx_strcmp(status, "ok") == 0) {
        ((um_auth_t *) ctx->data)->refresh_expires = (time_t)
            json_integer_value(json_object_get(result, "expires_in"));

        rc = um_issue(ctx, json_object_get(result, "claims"),
                      json_string_value(json_object_get(result, "sid")));
        json_decref(result);
        return rc;
    }

    if (status != NULL && ngx_strcmp(status, "reused") == 0) {
        /* the family is gone: so are the access tokens it issued */
        sids = json_pack("[O]", json_object_get(result, "sid"));
        json_decref(result);

        if (sids == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->rc = um_send_unauthorized(ctx->r, "refresh token reused; "
                                               "the session is revoked");
        return um_revoke(ctx, sids, 0, NULL);
    }

    json_decref(result);

    return um_send_unauthorized(ctx->r, "invalid refresh token");
}


/* POST /api/v1/auth/logout */
ngx_int_t
um_auth_logout(um_ctx_t *ctx)
{
    um_auth_t    *st;
    const char  **v, *token;
    char         *hash;

    if (ctx->body == NULL) {
        ctx->body = json_object();
    }

    if (um_fields_check(ctx, um_logout_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_pcalloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL || um_auth_state(ctx) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    token = um_field_str(ctx, "refresh_token");

    if (token != NULL) {
        hash = ngx_pnalloc(ctx->r->pool, UM_TOKEN_HASH_LEN + 1);
        if (hash == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        um_token_hash(token, ngx_strlen(token), hash);
        v[2] = hash;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pstr(ctx, ctx->id.sid.data, ctx->id.sid.len);
    v[3] = um_client_ip(ctx);
    v[4] = um_user_agent(ctx);

    st = ctx->data;
    st->message = "logged out";
    st->revoke_token = 1;

    return um_query(ctx, &um_sql_logout, v, 5, um_sessions_ended);
}


/* POST /api/v1/auth/change-password and PUT /api/v1/users/password */
ngx_int_t
um_auth_change_password(um_ctx_t *ctx)
{
    const char  **v;

    if (um_fields_check(ctx, um_password_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_pcalloc(ctx->r->pool, sizeof(char *));
    if (v == NULL || um_auth_state(ctx) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);

    return um_query(ctx, &um_sql_password_of, v, 1, um_password_identity);
}


/* the new password must pass the policy before anything is counted */
static ngx_int_t
um_password_identity(um_ctx_t *ctx, PGresult *res)
{
    um_auth_t    *st;
    const char  **v;

    st = ctx->data;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                             "user not found", NULL);
    }

    st->email = um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
    st->username = PQgetisnull(res, 0, 1)
                   ? NULL : um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 1),
                                    PQgetlength(res, 0, 1));

    if (st->email == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (um_policy(ctx, "new_password", um_field_str(ctx, "new_password"),
                  st->email, st->username)
        != NGX_OK)
    {
        return ctx->rc;
    }

    v = ngx_pcalloc(ctx->r->pool, 3 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* counted like a login attempt, before the password is checked */
    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pint(ctx, ctx->mcf->max_failures);
    v[2] = um_pint(ctx, ctx->mcf->lockout);

    return um_query(ctx, &um_sql_password_check, v, 3, um_password_found);
}


static ngx_int_t
um_password_found(um_ctx_t *ctx, PGresult *res)
{
    um_auth_t  *st;

    st = ctx->data;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 3)) {
        return um_send_error(ctx->r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND,
                             "user not found", NULL);
    }

    st->state = um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 3),
                        PQgetlength(res, 0, 3));

    /* a locked account is checked against the dummy, and refused */
    st->phc = PQgetisnull(res, 0, 0)
              ? ctx->mcf->dummy_hash
              : um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));

    if (st->phc == NULL || st->state == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->password = um_field_str(ctx, "current_password");
    st->password_len = ngx_strlen(st->password);
    st->new_password = um_field_str(ctx, "new_password");
    st->new_password_len = ngx_strlen(st->new_password);

    return um_offload(ctx, um_check_work, um_password_checked);
}


static ngx_int_t
um_password_checked(um_ctx_t *ctx)
{
    um_auth_t    *st;
    const char  **v;

    st = ctx->data;

    if (!st->verified || ngx_strcmp(st->state, "ok") != 0) {
        v = ngx_pcalloc(ctx->r->pool, 6 * sizeof(char *));
        if (v == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* the attempt counts as a failure only if it was taken */
        v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
        v[1] = ngx_strcmp(st->state, "ok") == 0 ? "true" : "false";
        v[2] = um_pint(ctx, ctx->mcf->max_failures);
        v[3] = um_pint(ctx, ctx->mcf->lockout);
        v[4] = um_client_ip(ctx);
        v[5] = um_user_agent(ctx);

        return um_query(ctx, &um_sql_password_failed, v, 6,
                        um_password_refused);
    }

    if (!st->hashed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v = ngx_pcalloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_pstr(ctx, ctx->id.sid.data, ctx->id.sid.len);
    v[2] = st->hash;
    v[3] = um_client_ip(ctx);
    v[4] = um_user_agent(ctx);

    st->message = "password changed; other sessions ended";

    return um_query(ctx, &um_sql_change_password, v, 5, um_sessions_ended);
}


/* the failed check is audited; the lockout counted it already */
static ngx_int_t
um_password_refused(um_ctx_t *ctx, PGresult *res)
{
    return um_send_error(ctx->r, NGX_HTTP_UNAUTHORIZED, UM_UNAUTHORIZED,
                         "the current password is incorrect",
                         json_pack("[{ss ss ss}]",
                                   "field", "current_password",
                                   "rule", "incorrect",
                                   "message", "does not match"));
}


/*
 * After logout or a password change: the ended sessions (and, at logout,
 * the caller's token) go on the deny-list before the answer.
 */
static ngx_int_t
um_sessions_ended(um_ctx_t *ctx, PGresult *res)
{
    json_t     *sids;
    um_auth_t  *st;

    st = ctx->data;

    sids = um_result_json(res);
    if (sids == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_revoke(ctx, sids, st->revoke_token, um_sessions_answer);
}


static ngx_int_t
um_sessions_answer(um_ctx_t *ctx)
{
    u_char     *body, *p;
    um_auth_t  *st;

    st = ctx->data;

    body = ngx_pnalloc(ctx->r->pool, 128);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"message\":\"%s\",\"sessions_ended\":%ui}",
                    st->message, ctx->pending);

    return um_send_data(ctx->r, NGX_HTTP_OK, body, p - body);
}


/* GET /.well-known/jwks.json */
ngx_int_t
um_auth_jwks(um_ctx_t *ctx)
{
    json_t     *jwks;
    char       *text;
    ngx_int_t   rc;
    ngx_str_t   type = ngx_string("application/jwk-set+json");
    ngx_str_t   cache = ngx_string("public, max-age=300");
    u_char     *body;
    size_t      len;

    jwks = um_jwt_jwks(ctx->mcf->jwt_keys->elts, ctx->mcf->jwt_keys->nelts);
    if (jwks == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    text = json_dumps(jwks, JSON_COMPACT);
    json_decref(jwks);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(text);
    body = ngx_pnalloc(ctx->r->pool, len);

    if (body == NULL) {
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body, text, len);
    free(text);

    rc = um_header_add(ctx->r, "Cache-Control", &cache);
    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_send(ctx->r, NGX_HTTP_OK, &type, body, len);
}


/*
 * For every endpoint that sets a password: checks it against the policy
 * (a 422 naming field), then hashes it in the thread pool and resumes with
 * done(ctx, hash), hash NULL when hashing failed.  Takes ctx->data.
 */
ngx_int_t
um_auth_hash_password(um_ctx_t *ctx, const char *field, const char *password,
    const char *email, const char *username,
    ngx_int_t (*done)(um_ctx_t *ctx, const char *hash))
{
    um_auth_t  *st;

    if (um_policy(ctx, field, password, email, username) != NGX_OK) {
        return ctx->rc;
    }

    st = um_auth_state(ctx);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->new_password = password;
    st->new_password_len = ngx_strlen(password);
    st->hashed_done = done;

    return um_offload(ctx, um_hash_work, um_hash_resume);
}


static ngx_int_t
um_hash_resume(um_ctx_t *ctx)
{
    um_auth_t  *st;

    st = ctx->data;

    return st->hashed_done(ctx, st->hashed ? st->hash : NULL);
}


/*
 * For every endpoint that ends a user's sessions: their access tokens go
 * on the deny-list, then answer(ctx) runs (ctx->pending holds how many
 * sessions there were).  Takes the reference to sids, a JSON array of
 * session ids.
 */
ngx_int_t
um_auth_end_sessions(um_ctx_t *ctx, json_t *sids,
    ngx_int_t (*answer)(um_ctx_t *ctx))
{
    return um_revoke(ctx, sids, 0, answer);
}


static um_auth_t *
um_auth_state(um_ctx_t *ctx)
{
    um_auth_t           *st;
    ngx_pool_cleanup_t  *cln;

    st = ngx_pcalloc(ctx->r->pool, sizeof(um_auth_t));
    if (st == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(ctx->r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = um_auth_cleanup;
    cln->data = st;

    st->params = ctx->mcf->argon2;
    ctx->data = st;

    return st;
}


static void
um_auth_cleanup(void *data)
{
    um_auth_t  *st = data;

    if (st->payload != NULL) {
        json_decref(st->payload);
    }

    if (st->jwt != NULL) {
        OPENSSL_cleanse(st->jwt, ngx_strlen(st->jwt));
        free(st->jwt);
    }
}


/* in a pool thread: hash new_password */
static void
um_hash_work(void *data)
{
    um_ctx_t   *ctx = data;
    um_auth_t  *st = ctx->data;

    st->hashed = (um_password_hash(st->new_password, st->new_password_len,
                                   &st->params, st->hash, sizeof(st->hash))
                  == 0);
}


/*
 * In a pool thread: check password against phc; then hash new_password
 * when one is given, or rehash a good password stored with old
 * parameters.
 */
static void
um_check_work(void *data)
{
    um_ctx_t   *ctx = data;
    um_auth_t  *st = ctx->data;

    st->verified = (um_password_verify(st->password, st->password_len,
                                       st->phc)
                    == 1);

    if (!st->verified) {
        return;
    }

    if (st->new_password != NULL) {
        um_hash_work(data);

    } else if (um_password_needs_rehash(st->phc, &st->params)) {
        st->hashed = (um_password_hash(st->password, st->password_len,
                                       &st->params, st->hash,
                                       sizeof(st->hash))
                      == 0);
    }
}


static void
um_sign_work(void *data)
{
    um_ctx_t   *ctx = data;
    um_auth_t  *st = ctx->data;

    st->jwt = um_jwt_sign(st->key, st->typ, st->payload);
}


static ngx_int_t
um_policy(um_ctx_t *ctx, const char *field, const char *pw,
    const char *email, const char *username)
{
    const char  *rule;

    rule = um_password_policy(pw, ngx_strlen(pw), ctx->mcf->password_min, 128,
                              ctx->mcf->blocklist, email, username);

    if (rule == NULL) {
        return NGX_OK;
    }

    ctx->rc = um_send_invalid(ctx->r, field, rule,
                              um_password_rule_message(rule));

    return NGX_DECLINED;
}


/*
 * Signs an access token for the claims PostgreSQL computed, adding the
 * registered claims; RSA signatures are made in the thread pool.
 */
static ngx_int_t
um_issue(um_ctx_t *ctx, json_t *claims, const char *sid)
{
    json_t  *payload;

    if (!json_is_object(claims) || sid == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    payload = json_deep_copy(claims);

    if (payload == NULL
        || um_auth_registered(ctx, payload, ctx->mcf->access_ttl) != NGX_OK
        || json_object_set_new(payload, "sid", json_string(sid)) != 0)
    {
        json_decref(payload);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_auth_sign(ctx, "at+jwt", payload, um_issued);
}


/*
 * Adds the registered claims of every token this module signs: issuer,
 * audience, issued and valid from now, expiring after ttl, a new jti.
 */
ngx_int_t
um_auth_registered(um_ctx_t *ctx, json_t *payload, time_t ttl)
{
    char                            jti[37];
    time_t                          now;
    ngx_http_usermgmt_main_conf_t  *mcf;

    mcf = ctx->mcf;
    now = ngx_time();

    if (um_uuid_v4(jti) != 0
        || json_object_set_new(payload, "iss",
                               json_string((char *) mcf->issuer.data)) != 0
        || json_object_set_new(payload, "aud",
                               json_string((char *) mcf->audience.data)) != 0
        || json_object_set_new(payload, "iat", json_integer(now)) != 0
        || json_object_set_new(payload, "nbf", json_integer(now)) != 0
        || json_object_set_new(payload, "exp", json_integer(now + ttl)) != 0
        || json_object_set_new(payload, "jti", json_string(jti)) != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Signs payload (takes the reference) as a token of type typ with the
 * first key, in the thread pool for RSA, then resumes with done(ctx, jwt),
 * jwt NULL when signing failed.  Needs the state of um_auth_state().
 */
ngx_int_t
um_auth_sign(um_ctx_t *ctx, const char *typ, json_t *payload,
    ngx_int_t (*done)(um_ctx_t *ctx, const char *jwt))
{
    um_auth_t  *st;

    st = ctx->data;

    if (st->payload != NULL) {
        json_decref(st->payload);
    }

    st->payload = payload;
    st->typ = typ;
    st->signed_done = done;
    st->key = ctx->mcf->jwt_keys->elts;

    if (st->key->alg == UM_JWT_RS256) {
        return um_offload(ctx, um_sign_work, um_signed);
    }

    um_sign_work(ctx);

    return um_signed(ctx);
}


static ngx_int_t
um_signed(um_ctx_t *ctx)
{
    um_auth_t  *st;

    st = ctx->data;

    return st->signed_done(ctx, st->jwt);
}


static ngx_int_t
um_issued(um_ctx_t *ctx, const char *jwt)
{
    u_char      *body, *p;
    size_t       len;
    um_auth_t   *st;

    st = ctx->data;

    if (jwt == NULL) {
        return um_send_error(ctx->r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             UM_INTERNAL_ERROR, "token signing failed", NULL);
    }

    len = sizeof("{\"access_token\":\"\",\"refresh_token\":\"\","
                 "\"token_type\":\"bearer\",\"expires_in\":,"
                 "\"refresh_expires_in\":,\"user\":}")
          + ngx_strlen(jwt) + UM_TOKEN_LEN + 2 * NGX_TIME_T_LEN
          + st->user_len;

    body = ngx_pnalloc(ctx->r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* tokens are base64url: nothing in them needs escaping */
    p = ngx_sprintf(body, "{\"access_token\":\"%s\",\"refresh_token\":\"%s\","
                    "\"token_type\":\"bearer\",\"expires_in\":%T,"
                    "\"refresh_expires_in\":%T",
                    jwt, st->refresh, ctx->mcf->access_ttl,
                    st->refresh_expires ? st->refresh_expires
                                        : ctx->mcf->refresh_ttl);

    if (st->user != NULL) {
        p = ngx_sprintf(p, ",\"user\":");
        p = ngx_cpymem(p, st->user, st->user_len);
    }

    *p++ = '}';

    return um_send_tokens(ctx, body, p - body);
}


/* RFC 6749 section 5.1: answers with tokens are never cached */
ngx_int_t
um_send_tokens(um_ctx_t *ctx, u_char *body, size_t len)
{
    ngx_str_t  no_store = ngx_string("no-store");
    ngx_str_t  no_cache = ngx_string("no-cache");

    if (um_header_add(ctx->r, "Cache-Control", &no_store) != NGX_OK
        || um_header_add(ctx->r, "Pragma", &no_cache) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_send_data(ctx->r, NGX_HTTP_OK, body, len);
}


/*
 * Puts ended sessions (and, with token set, the caller's own access token)
 * on the deny-list until every access token they issued has expired, then
 * answers.  Takes the reference to sids.  Without answer, ctx->rc was
 * already sent.
 */
static ngx_int_t
um_revoke(um_ctx_t *ctx, json_t *sids, ngx_uint_t token,
    ngx_int_t (*answer)(um_ctx_t *ctx))
{
    size_t      i, n;
    json_t     *sid;
    ngx_str_t  *ids;

    n = json_array_size(sids);

    ids = ngx_palloc(ctx->r->pool, (n + 1) * sizeof(ngx_str_t));
    if (ids == NULL) {
        json_decref(sids);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->pending = 0;

    json_array_foreach(sids, i, sid) {
        if (json_is_string(sid)) {
            ids[ctx->pending].data = (u_char *) um_pstr(ctx,
                                         (u_char *) json_string_value(sid),
                                         json_string_length(sid));
            ids[ctx->pending].len = json_string_length(sid);

            if (ids[ctx->pending].data != NULL) {
                ctx->pending++;
            }
        }
    }

    json_decref(sids);

    n = ctx->pending;

    if (token) {
        ids[n++] = ctx->id.jti;
    }

    ctx->resume = answer;

    /* a session's tokens live at most one access lifetime (plus leeway) */
    ctx->redis = um_revoke_ids(ctx, ids, n,
                               ngx_time() + ctx->mcf->access_ttl
                               + ctx->mcf->leeway,
                               um_revoke_done);

    if (ctx->redis == NULL) {
        if (ctx->mcf->redis_client != NULL && n > 0) {
            ngx_log_error(NGX_LOG_WARN, ctx->r->connection->log, 0,
                          "usermgmt: redis unavailable, revocations stay "
                          "on this node until it returns");
        }

        return answer ? answer(ctx) : ctx->rc;
    }

    return NGX_DONE;
}


static void
um_revoke_done(void *data, redisReply *reply, ngx_int_t status)
{
    um_ctx_t   *ctx = data;
    ngx_int_t   rc;

    ctx->redis = NULL;

    if (status != UM_REDIS_OK || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ctx->r->connection->log, 0,
                      "usermgmt: could not publish revocations to redis%s%s",
                      reply && reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply && reply->type == REDIS_REPLY_ERROR
                      ? reply->str : "");
    }

    rc = ctx->resume ? ctx->resume(ctx) : ctx->rc;

    if (rc != NGX_DONE) {
        um_finish(ctx, rc);
    }
}


/* the single JSON value a function returned; a new reference */
static json_t *
um_result_json(PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return NULL;
    }

    return json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0),
                      JSON_DECODE_ANY, NULL);
}
