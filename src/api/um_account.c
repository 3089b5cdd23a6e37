/*
 * Account security flows.
 *
 *   POST /api/v1/users/password/reset/request   public: a reset link by
 *                                               mail, same answer for
 *                                               every address
 *   POST /api/v1/users/password/reset/confirm   public: a new password for
 *                                               a reset token
 *   POST /api/v1/users/verify-email             public: the link's token
 *   POST /api/v1/users/verify-email/resend      a new link to one's address
 *   POST /api/v1/users/verify-phone             the code sent by SMS
 *   POST /api/v1/users/verify-phone/send        a new code to one's phone
 *   POST /api/v1/users/kyc/request              ask for KYC verification
 *   GET  /api/v1/users/kyc/status               one's KYC status and latest
 *                                               request
 *
 * No message leaves from here.  The SQL functions of
 * sql/migrations/0012_account_flows.sql make each token and write its
 * message to the outbox in the transaction of the change; a mailer outside
 * nginx delivers it (docs/account.md).  Tokens and codes reach this file
 * only from clients, and only their SHA-256 goes on to PostgreSQL.
 */

#include "um_api.h"
#include "http/um_fields.h"
#include "auth/um_token.h"


#define UM_PHONE_CODE_LEN  6


static ngx_int_t um_account_answer(um_ctx_t *ctx, const char *message);
static ngx_int_t um_account_refused(um_ctx_t *ctx, const char *what);
static const char *um_account_token_hash(um_ctx_t *ctx, const char *token,
    size_t len);
static const char **um_account_self(um_ctx_t *ctx);
static ngx_int_t um_account_send(um_ctx_t *ctx, um_pg_stmt_t *stmt);

static ngx_int_t um_reset_requested(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_reset_found(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_reset_hashed(um_ctx_t *ctx, const char *hash);
static ngx_int_t um_reset_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_reset_answer(um_ctx_t *ctx);
static ngx_int_t um_verify_email_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_verify_phone_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_account_row(um_ctx_t *ctx, PGresult *res);


static um_pg_stmt_t  um_sql_reset_request = um_pg_stmt(
    "SELECT um_password_reset_request($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_reset_lookup = um_pg_stmt(
    "SELECT user_id, email, username FROM um_password_reset_lookup($1)");

static um_pg_stmt_t  um_sql_reset_confirm = um_pg_stmt(
    "SELECT um_password_reset_confirm($1, $2, $3, $4)");

static um_pg_stmt_t  um_sql_verify_email = um_pg_stmt(
    "SELECT um_verify_email($1, $2, $3)");

static um_pg_stmt_t  um_sql_verify_email_resend = um_pg_stmt(
    "SELECT um_verify_email_resend($1, $2, $3)");

static um_pg_stmt_t  um_sql_verify_phone = um_pg_stmt(
    "SELECT um_verify_phone($1, $4, $2, $3)");

static um_pg_stmt_t  um_sql_verify_phone_send = um_pg_stmt(
    "SELECT um_verify_phone_send($1, $2, $3)");

static um_pg_stmt_t  um_sql_kyc_request = um_pg_stmt(
    "SELECT um_kyc_request($1, $4, $2, $3)");

static um_pg_stmt_t  um_sql_kyc_status = um_pg_stmt(
    "SELECT um_kyc_status($1)");


static const um_field_t  um_reset_request_fields[] = {
    { "email", UM_F_EMAIL, UM_REQUIRED, 255 },
    { "organization_slug", UM_F_SLUG, UM_NULLABLE, 0 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_reset_confirm_fields[] = {
    { "token", UM_F_TEXT, UM_REQUIRED, 256 },
    { "new_password", UM_F_PASSWORD, UM_REQUIRED, 0 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_verify_email_fields[] = {
    { "token", UM_F_TEXT, UM_REQUIRED, 256 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_verify_phone_fields[] = {
    { "phone_code", UM_F_TEXT, UM_REQUIRED, 16 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_kyc_fields[] = {
    { "verification_level", UM_F_TEXT, UM_REQUIRED, 16 },
    { NULL, 0, 0, 0 }
};

/* the sends take no fields: an empty body or none */
static const um_field_t  um_no_fields[] = {
    { NULL, 0, 0, 0 }
};

static const char  *um_kyc_levels[] = { "basic", "enhanced", "premium", NULL };


/*
 * POST /api/v1/users/password/reset/request
 *
 * One SQL call whether the address is known or not, and one answer: what
 * differs (a token and its message, or none) stays in the database.
 */
ngx_int_t
um_account_reset_request(um_ctx_t *ctx)
{
    const char  **v;

    if (um_fields_check(ctx, um_reset_request_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_field_str(ctx, "email");
    v[1] = um_field_str(ctx, "organization_slug");
    v[2] = um_client_ip(ctx);
    v[3] = um_user_agent(ctx);

    return um_query(ctx, &um_sql_reset_request, v, 4, um_reset_requested);
}


static ngx_int_t
um_reset_requested(um_ctx_t *ctx, PGresult *res)
{
    return um_account_answer(ctx, "If a matching email address was found, "
                                  "a password reset link has been sent.");
}


/*
 * POST /api/v1/users/password/reset/confirm
 *
 * The token is looked up first, only to learn whose it is: the policy
 * refuses a password made of the account's email or username.  The hash
 * is made in the thread pool, and the token is consumed only then, in the
 * statement that sets the password, so a refused password leaves it live
 * and parallel confirms of one token succeed once.
 */
ngx_int_t
um_account_reset_confirm(um_ctx_t *ctx)
{
    const char  **v, *token;

    if (um_fields_check(ctx, um_reset_confirm_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    token = um_field_str(ctx, "token");

    v[0] = um_account_token_hash(ctx, token, ngx_strlen(token));
    if (v[0] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_reset_lookup, v, 1, um_reset_found);
}


static ngx_int_t
um_reset_found(um_ctx_t *ctx, PGresult *res)
{
    const char  *email, *username;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_account_refused(ctx, "invalid or expired token");
    }

    email = um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 1),
                    PQgetlength(res, 0, 1));
    username = PQgetisnull(res, 0, 2)
               ? NULL : um_pstr(ctx, (u_char *) PQgetvalue(res, 0, 2),
                                PQgetlength(res, 0, 2));

    if (email == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_auth_hash_password(ctx, "new_password",
                                 um_field_str(ctx, "new_password"),
                                 email, username, um_reset_hashed);
}


static ngx_int_t
um_reset_hashed(um_ctx_t *ctx, const char *hash)
{
    const char  **v, *token;

    if (hash == NULL) {
        return um_send_error(ctx->r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             UM_INTERNAL_ERROR, "password hashing failed",
                             NULL);
    }

    v = ngx_palloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    token = um_field_str(ctx, "token");

    v[0] = um_account_token_hash(ctx, token, ngx_strlen(token));
    v[1] = hash;
    v[2] = um_client_ip(ctx);
    v[3] = um_user_agent(ctx);

    if (v[0] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_reset_confirm, v, 4, um_reset_done);
}


/* the sessions the reset ended go on the deny-list before the answer */
static ngx_int_t
um_reset_done(um_ctx_t *ctx, PGresult *res)
{
    json_t  *sids;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        /* used or expired between the two steps */
        return um_account_refused(ctx, "invalid or expired token");
    }

    sids = json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), 0,
                      NULL);
    if (sids == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_auth_end_sessions(ctx, sids, um_reset_answer);
}


static ngx_int_t
um_reset_answer(um_ctx_t *ctx)
{
    return um_account_answer(ctx, "Password has been reset successfully.");
}


/* POST /api/v1/users/verify-email */
ngx_int_t
um_account_verify_email(um_ctx_t *ctx)
{
    const char  **v, *token;

    if (um_fields_check(ctx, um_verify_email_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_palloc(ctx->r->pool, 3 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    token = um_field_str(ctx, "token");

    v[0] = um_account_token_hash(ctx, token, ngx_strlen(token));
    v[1] = um_client_ip(ctx);
    v[2] = um_user_agent(ctx);

    if (v[0] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_verify_email, v, 3, um_verify_email_done);
}


static ngx_int_t
um_verify_email_done(um_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)
        || PQgetvalue(res, 0, 0)[0] != 't')
    {
        return um_account_refused(ctx, "invalid or expired token");
    }

    return um_account_answer(ctx, "Email verified successfully.");
}


/* POST /api/v1/users/verify-email/resend; 409 once verified */
ngx_int_t
um_account_verify_email_resend(um_ctx_t *ctx)
{
    return um_account_send(ctx, &um_sql_verify_email_resend);
}


/*
 * POST /api/v1/users/verify-phone
 *
 * The code is checked as the SHA-256 of the caller's id followed by the
 * code, the form the code was stored in; wrong codes count in PostgreSQL,
 * which also burns the code at the limit.
 */
ngx_int_t
um_account_verify_phone(um_ctx_t *ctx)
{
    size_t        i, len;
    u_char       *buf, *p;
    const char  **v, *code;

    if (um_fields_check(ctx, um_verify_phone_fields) != NGX_OK) {
        return ctx->rc;
    }

    code = um_field_str(ctx, "phone_code");
    len = ngx_strlen(code);

    for (i = 0; i < len && code[i] >= '0' && code[i] <= '9'; i++) {
        /* void */
    }

    if (len != UM_PHONE_CODE_LEN || i != len) {
        return um_send_invalid(ctx->r, "phone_code", "format",
                               "must be the 6 digits sent by SMS");
    }

    v = um_account_self(ctx);
    buf = ngx_pnalloc(ctx->r->pool, ctx->id.user_id.len + len);

    if (v == NULL || buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(buf, ctx->id.user_id.data, ctx->id.user_id.len);
    p = ngx_cpymem(p, code, len);

    v[3] = um_account_token_hash(ctx, (const char *) buf, p - buf);

    if (v[3] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_verify_phone, v, 4, um_verify_phone_done);
}


static ngx_int_t
um_verify_phone_done(um_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)
        || PQgetvalue(res, 0, 0)[0] != 't')
    {
        return um_account_refused(ctx, "invalid or expired phone code");
    }

    return um_account_answer(ctx, "Phone number verified successfully.");
}


/*
 * POST /api/v1/users/verify-phone/send; 422 naming phone without one,
 * 409 once verified
 */
ngx_int_t
um_account_verify_phone_send(um_ctx_t *ctx)
{
    return um_account_send(ctx, &um_sql_verify_phone_send);
}


/* the endpoints that send the caller a new link or code: no fields */
static ngx_int_t
um_account_send(um_ctx_t *ctx, um_pg_stmt_t *stmt)
{
    const char  **v;

    if (um_fields_check(ctx, um_no_fields) != NGX_OK) {
        return ctx->rc;
    }

    v = um_account_self(ctx);
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, stmt, v, 3, um_account_row);
}


/* POST /api/v1/users/kyc/request; 409 while one is pending */
ngx_int_t
um_account_kyc_request(um_ctx_t *ctx)
{
    ngx_uint_t    i;
    const char  **v, *level;

    if (um_fields_check(ctx, um_kyc_fields) != NGX_OK) {
        return ctx->rc;
    }

    level = um_field_str(ctx, "verification_level");

    for (i = 0; um_kyc_levels[i]; i++) {
        if (ngx_strcmp(level, um_kyc_levels[i]) == 0) {
            break;
        }
    }

    if (um_kyc_levels[i] == NULL) {
        return um_send_invalid(ctx->r, "verification_level", "enum",
                               "must be one of basic, enhanced, premium");
    }

    v = um_account_self(ctx);
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[3] = level;

    return um_query(ctx, &um_sql_kyc_request, v, 4, um_account_row);
}


/* GET /api/v1/users/kyc/status */
ngx_int_t
um_account_kyc_status(um_ctx_t *ctx)
{
    const char  **v;

    v = um_account_self(ctx);
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_query(ctx, &um_sql_kyc_status, v, 1, um_account_row);
}


static ngx_int_t
um_account_row(um_ctx_t *ctx, PGresult *res)
{
    return um_send_row(ctx->r, res, NGX_HTTP_OK, "user not found");
}


/* the answer of seed 004: {"success": true, "message": ...} */
static ngx_int_t
um_account_answer(um_ctx_t *ctx, const char *message)
{
    return um_send_json(ctx->r, NGX_HTTP_OK,
                        json_pack("{sbss}", "success", 1,
                                  "message", message));
}


/*
 * A token or code that is wrong, used or expired: one answer for all, so
 * it tells nothing about which.  No WWW-Authenticate: no bearer token was
 * refused.
 */
static ngx_int_t
um_account_refused(um_ctx_t *ctx, const char *what)
{
    return um_send_error(ctx->r, NGX_HTTP_UNAUTHORIZED, UM_UNAUTHORIZED,
                         what, NULL);
}


/* the stored form (hex SHA-256) of what a client presents */
static const char *
um_account_token_hash(um_ctx_t *ctx, const char *token, size_t len)
{
    char  *hash;

    hash = ngx_pnalloc(ctx->r->pool, UM_TOKEN_HASH_LEN + 1);
    if (hash == NULL) {
        return NULL;
    }

    um_token_hash(token, len, hash);

    return hash;
}


/*
 * The parameters of a call about the caller's own account: the caller,
 * the client address and User-Agent, and room for one more.
 */
static const char **
um_account_self(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_pcalloc(ctx->r->pool, 4 * sizeof(char *));
    if (v == NULL) {
        return NULL;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);
    v[1] = um_client_ip(ctx);
    v[2] = um_user_agent(ctx);

    if (v[0] == NULL) {
        return NULL;
    }

    return v;
}
