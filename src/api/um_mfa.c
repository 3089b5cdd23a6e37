/*
 * Two-factor authentication: TOTP (RFC 6238) and single-use backup codes.
 *
 *   POST /api/v1/users/2fa/enable          a new secret, its QR code and
 *                                          backup codes (seed 004)
 *   POST /api/v1/user/auth/mfa/setup       the same as seed 000's workflow
 *   POST /api/v1/users/2fa/verify          a code; the first turns 2FA on
 *   POST /api/v1/users/2fa/disable         a code; turns 2FA off
 *   POST /api/v1/users/2fa/backup-codes    a code; a new set of backup codes
 *   GET  /api/v1/users/2fa/status          whether 2FA is on, codes left
 *   POST /api/v1/auth/mfa/verify           public: the second step of a
 *                                          sign-in (um_auth.c asks for it)
 *
 * The secret is sealed with usermgmt_mfa_key before it is stored and only
 * ever opened here, to check a code.  PostgreSQL keeps what makes a code
 * count once (sql/migrations/0013_mfa.sql): the last step accepted, the
 * backup codes used, and the attempts, counted before a code is checked.
 * QR codes are rendered in the thread pool.
 */

#include "um_api.h"
#include "http/um_fields.h"
#include "http/um_validate.h"
#include "auth/um_qr.h"
#include "auth/um_sealed.h"
#include "auth/um_totp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>


#define UM_BACKUP_CHARS     10      /* 50 bits: a-z, 2-7 */
#define UM_BACKUP_SHOWN     11      /* "abcde-fghij" */
#define UM_BACKUP_DEFAULT   8
#define UM_BACKUP_MAX       20
#define UM_MFA_HASH_LEN     64      /* hex of HMAC-SHA-256 */

#define UM_QR_PREFIX        "data:image/png;base64,"


typedef enum {
    UM_MFA_VERIFY = 0,
    UM_MFA_DISABLE,
    UM_MFA_CODES,
    UM_MFA_LOGIN
} um_mfa_action_e;


/* the state of one request across its steps */
typedef struct {
    um_mfa_action_e      action;
    ngx_uint_t           workflow;      /* answer as seed 000's workflow */
    const char          *user_id;
    const char          *field;         /* the field the code came in */
    const char          *code;          /* normalised */
    ngx_uint_t           backup;        /* code is a backup code */
    const char          *jti;           /* of the sign-in challenge */
    long long            issued;        /* its "iat" */

    /* what the check found, for the SQL that ends the attempt */
    const char          *step;
    const char          *backup_hash;
    const char          *reason;

    /* a new set-up or a new set of backup codes */
    char                 base32[UM_TOTP_BASE32_LEN + 1];
    char                *uri;
    ngx_uint_t           ncodes;
    char               (*codes)[UM_BACKUP_SHOWN + 1];
    const char          *hashes;        /* a text[] literal */
    char                *qr;            /* malloc'd in the thread */
    size_t               qr_len;
} um_mfa_t;


static um_mfa_t *um_mfa_state(um_ctx_t *ctx);
static void um_mfa_cleanup(void *data);
static ngx_int_t um_mfa_configured(um_ctx_t *ctx);
static ngx_int_t um_mfa_code(um_ctx_t *ctx, um_mfa_t *st);
static ngx_int_t um_mfa_backup_codes(um_ctx_t *ctx, um_mfa_t *st,
    ngx_uint_t n);
static const char *um_mfa_hash(um_ctx_t *ctx, const char *user_id,
    const char *code);
static ngx_int_t um_mfa_status_done(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_mfa_setup_count(um_ctx_t *ctx, ngx_uint_t *n);
static ngx_int_t um_mfa_act(um_ctx_t *ctx, um_mfa_action_e action);
static ngx_int_t um_mfa_begin(um_ctx_t *ctx, um_mfa_t *st);
static ngx_int_t um_mfa_begun(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_mfa_check(um_ctx_t *ctx, um_mfa_t *st, PGresult *res);
static ngx_int_t um_mfa_ended(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_mfa_login_ended(um_ctx_t *ctx, PGresult *res);
static ngx_int_t um_mfa_refused(um_ctx_t *ctx);
static ngx_int_t um_mfa_setup_start(um_ctx_t *ctx, ngx_uint_t workflow,
    ngx_uint_t ncodes);
static ngx_int_t um_mfa_setup_stored(um_ctx_t *ctx, PGresult *res);
static void um_mfa_qr_work(void *data);
static ngx_int_t um_mfa_setup_answer(um_ctx_t *ctx);
static json_t *um_mfa_codes_json(um_mfa_t *st);
static ngx_int_t um_mfa_challenged(um_ctx_t *ctx, const char *jwt);
static ngx_int_t um_mfa_send(um_ctx_t *ctx, json_t *data);


static um_pg_stmt_t  um_sql_mfa_setup = um_pg_stmt(
    "SELECT um_mfa_setup($1, $2, $3, $4, $5)");

static um_pg_stmt_t  um_sql_mfa_begin = um_pg_stmt(
    "SELECT state, secret, last_step, enabled, retry_after"
    "  FROM um_mfa_begin($1, $2, $3)");

static um_pg_stmt_t  um_sql_mfa_end = um_pg_stmt(
    "SELECT um_mfa_end($1, $2, $3, $4, $5, $6, $7, $8)");

static um_pg_stmt_t  um_sql_mfa_login = um_pg_stmt(
    "SELECT um_mfa_login($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");

static um_pg_stmt_t  um_sql_mfa_status = um_pg_stmt(
    "SELECT jsonb_build_object("
    "    'two_factor_enabled', u.two_factor_enabled,"
    "    'method', CASE WHEN m.enabled_at IS NOT NULL THEN 'totp' END,"
    "    'enabled_at', um_ts(m.enabled_at),"
    "    'setup_pending', m.user_id IS NOT NULL AND m.enabled_at IS NULL,"
    "    'backup_codes_remaining', coalesce(um_mfa_codes_left(u.id), 0))"
    "  FROM users u LEFT JOIN user_mfa m ON m.user_id = u.id"
    " WHERE u.id = $1 AND u.deleted_at IS NULL");


static const um_field_t  um_setup_fields[] = {
    { "method", UM_F_TEXT, UM_NULLABLE, 20 },
    { "phone_number", UM_F_PHONE, UM_NULLABLE, 0 },
    { "backup_codes_count", UM_F_INT, UM_NULLABLE, UM_BACKUP_MAX },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_code_fields[] = {
    { "two_factor_code", UM_F_TEXT, UM_NULLABLE, 32 },
    { "code", UM_F_TEXT, UM_NULLABLE, 32 },
    { "backup_code", UM_F_TEXT, UM_NULLABLE, 32 },
    { NULL, 0, 0, 0 }
};

static const um_field_t  um_login_fields[] = {
    { "mfa_token", UM_F_TEXT, UM_REQUIRED, 4096 },
    { "two_factor_code", UM_F_TEXT, UM_NULLABLE, 32 },
    { "code", UM_F_TEXT, UM_NULLABLE, 32 },
    { "backup_code", UM_F_TEXT, UM_NULLABLE, 32 },
    { NULL, 0, 0, 0 }
};


/* POST /api/v1/users/2fa/enable (seed 004; the body may be left out) */
ngx_int_t
um_mfa_enable(um_ctx_t *ctx)
{
    ngx_uint_t  n;

    if (um_mfa_setup_count(ctx, &n) != NGX_OK) {
        return ctx->rc;
    }

    return um_mfa_setup_start(ctx, 0, n);
}


/* POST /api/v1/user/auth/mfa/setup (seed 000) */
ngx_int_t
um_mfa_setup(um_ctx_t *ctx)
{
    ngx_uint_t  n;

    if (um_mfa_setup_count(ctx, &n) != NGX_OK) {
        return ctx->rc;
    }

    return um_mfa_setup_start(ctx, 1, n);
}


/* the body of a set-up: the method and how many backup codes */
static ngx_int_t
um_mfa_setup_count(um_ctx_t *ctx, ngx_uint_t *n)
{
    json_t      *count;
    const char  *method;

    *n = UM_BACKUP_DEFAULT;

    if (ctx->body == NULL) {
        return NGX_OK;
    }

    if (um_fields_check(ctx, um_setup_fields) != NGX_OK) {
        return NGX_DECLINED;
    }

    method = um_field_str(ctx, "method");

    if (method != NULL && ngx_strcmp(method, "totp") != 0) {
        ctx->rc = um_send_invalid(ctx->r, "method", "enum",
                                  "the only method is \"totp\"");
        return NGX_DECLINED;
    }

    count = json_object_get(ctx->body, "backup_codes_count");

    if (json_is_integer(count)) {
        if (json_integer_value(count) < 1) {
            ctx->rc = um_send_invalid(ctx->r, "backup_codes_count", "range",
                                      "backup_codes_count must be 1 to 20");
            return NGX_DECLINED;
        }

        *n = (ngx_uint_t) json_integer_value(count);
    }

    return NGX_OK;
}


/* POST /api/v1/users/2fa/verify */
ngx_int_t
um_mfa_verify(um_ctx_t *ctx)
{
    return um_mfa_act(ctx, UM_MFA_VERIFY);
}


/* POST /api/v1/users/2fa/disable */
ngx_int_t
um_mfa_disable(um_ctx_t *ctx)
{
    return um_mfa_act(ctx, UM_MFA_DISABLE);
}


/* POST /api/v1/users/2fa/backup-codes: the old codes stop working */
ngx_int_t
um_mfa_new_codes(um_ctx_t *ctx)
{
    return um_mfa_act(ctx, UM_MFA_CODES);
}


/* the endpoints of a signed-in user that check a code */
static ngx_int_t
um_mfa_act(um_ctx_t *ctx, um_mfa_action_e action)
{
    um_mfa_t  *st;

    st = um_mfa_state(ctx);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->action = action;

    return um_mfa_begin(ctx, st);
}


/* GET /api/v1/users/2fa/status */
ngx_int_t
um_mfa_status(um_ctx_t *ctx)
{
    const char  **v;

    v = ngx_pcalloc(ctx->r->pool, sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);

    return um_query(ctx, &um_sql_mfa_status, v, 1, um_mfa_status_done);
}


static ngx_int_t
um_mfa_status_done(um_ctx_t *ctx, PGresult *res)
{
    return um_send_row(ctx->r, res, NGX_HTTP_OK, "user not found");
}


/*
 * POST /api/v1/auth/mfa/verify: {"mfa_token", "code"} completes the
 * sign-in the password step began; the answer is the one of
 * /auth/login.
 */
ngx_int_t
um_mfa_login(um_ctx_t *ctx)
{
    json_t           *claims, *iat;
    um_mfa_t         *st;
    const char       *token, *sub, *jti;
    um_jwt_verify_t   opts;

    st = um_mfa_state(ctx);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->action = UM_MFA_LOGIN;

    if (um_fields_check(ctx, um_login_fields) != NGX_OK) {
        return ctx->rc;
    }

    token = um_field_str(ctx, "mfa_token");

    um_verify_opts(ctx->mcf, "mfa+jwt", &opts);

    if (um_jwt_verify(token, ngx_strlen(token), &opts, &claims, NULL) != 0) {
        return um_send_error(ctx->r, NGX_HTTP_UNAUTHORIZED, UM_UNAUTHORIZED,
                             "invalid or expired mfa_token", NULL);
    }

    sub = json_string_value(json_object_get(claims, "sub"));
    jti = json_string_value(json_object_get(claims, "jti"));
    iat = json_object_get(claims, "iat");

    if (sub != NULL && jti != NULL && json_is_integer(iat)
        && um_is_uuid((u_char *) sub, ngx_strlen(sub))
        && um_is_uuid((u_char *) jti, ngx_strlen(jti)))
    {
        st->user_id = um_pstr(ctx, (u_char *) sub, ngx_strlen(sub));
        st->jti = um_pstr(ctx, (u_char *) jti, ngx_strlen(jti));
        st->issued = json_integer_value(iat);
    }

    json_decref(claims);

    if (st->user_id == NULL || st->jti == NULL) {
        return um_send_error(ctx->r, NGX_HTTP_UNAUTHORIZED, UM_UNAUTHORIZED,
                             "invalid or expired mfa_token", NULL);
    }

    return um_mfa_begin(ctx, st);
}


/*
 * Called by the password step of /auth/login for an account with 2FA on:
 * a short-lived challenge token of its own type ("mfa+jwt"), which the
 * access phase refuses as an access token.  Uses um_auth.c's state.
 */
ngx_int_t
um_mfa_challenge(um_ctx_t *ctx, const char *user_id)
{
    json_t  *payload;

    payload = json_pack("{ss}", "sub", user_id);

    if (payload == NULL
        || um_auth_registered(ctx, payload, ctx->mcf->mfa_ttl) != NGX_OK)
    {
        json_decref(payload);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_auth_sign(ctx, "mfa+jwt", payload, um_mfa_challenged);
}


static ngx_int_t
um_mfa_challenged(um_ctx_t *ctx, const char *jwt)
{
    u_char  *body, *p;
    size_t   len;

    if (jwt == NULL) {
        return um_send_error(ctx->r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             UM_INTERNAL_ERROR, "token signing failed", NULL);
    }

    len = sizeof("{\"mfa_required\":true,\"mfa_token\":\"\","
                 "\"token_type\":\"mfa\",\"expires_in\":,"
                 "\"methods\":[\"totp\",\"backup_code\"]}")
          + ngx_strlen(jwt) + NGX_TIME_T_LEN;

    body = ngx_pnalloc(ctx->r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"mfa_required\":true,\"mfa_token\":\"%s\","
                    "\"token_type\":\"mfa\",\"expires_in\":%T,"
                    "\"methods\":[\"totp\",\"backup_code\"]}",
                    jwt, ctx->mcf->mfa_ttl);

    return um_send_tokens(ctx, body, p - body);
}


/* the endpoints that check a code: the attempt is counted first */
static ngx_int_t
um_mfa_begin(um_ctx_t *ctx, um_mfa_t *st)
{
    const char  **v;

    if (st->action != UM_MFA_LOGIN) {
        if (um_fields_check(ctx, um_code_fields) != NGX_OK) {
            return ctx->rc;
        }

        st->user_id = um_pstr(ctx, ctx->id.user_id.data,
                              ctx->id.user_id.len);
    }

    if (um_mfa_code(ctx, st) != NGX_OK || um_mfa_configured(ctx) != NGX_OK) {
        return ctx->rc;
    }

    v = ngx_pcalloc(ctx->r->pool, 3 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = st->user_id;
    v[1] = um_pint(ctx, ctx->mcf->max_failures);
    v[2] = um_pint(ctx, ctx->mcf->lockout);

    return um_query(ctx, &um_sql_mfa_begin, v, 3, um_mfa_begun);
}


static ngx_int_t
um_mfa_begun(um_ctx_t *ctx, PGresult *res)
{
    um_mfa_t    *st;
    ngx_str_t    retry;
    const char  *state;

    st = ctx->data;
    state = PQgetvalue(res, 0, 0);

    if (ngx_strcmp(state, "locked") == 0) {
        retry.data = (u_char *) PQgetvalue(res, 0, 4);
        retry.len = PQgetlength(res, 0, 4);

        if (um_header_add(ctx->r, "Retry-After", &retry) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return um_send_error(ctx->r, NGX_HTTP_TOO_MANY_REQUESTS,
                             UM_TOO_MANY_REQUESTS,
                             "too many two-factor attempts, try again later",
                             NULL);
    }

    if (ngx_strcmp(state, "ok") != 0) {
        if (st->action == UM_MFA_LOGIN) {
            return um_mfa_refused(ctx);
        }

        return um_send_error(ctx->r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                             "two-factor authentication is not set up",
                             NULL);
    }

    if (st->action == UM_MFA_LOGIN && PQgetvalue(res, 0, 3)[0] != 't') {
        return um_mfa_refused(ctx);
    }

    if (st->action != UM_MFA_VERIFY && PQgetvalue(res, 0, 3)[0] != 't') {
        /* the attempt began, but nothing is checked: it is forgiven by
         * the next good code, or expires with the lockout window */
        return um_send_error(ctx->r, NGX_HTTP_BAD_REQUEST, UM_BAD_REQUEST,
                             "two-factor authentication is not enabled",
                             NULL);
    }

    return um_mfa_check(ctx, st, res);
}


/*
 * Checks the code against the opened secret (three HMAC-SHA-1: a few
 * microseconds) or hashes the backup code, then ends the attempt in SQL,
 * which spends the code only if no other request spent it first.
 */
static ngx_int_t
um_mfa_check(um_ctx_t *ctx, um_mfa_t *st, PGresult *res)
{
    int             n;
    ngx_uint_t      enabled;
    long long       step, last;
    const char    **v, *hash;
    unsigned char   secret[UM_TOTP_SECRET_LEN + 16];

    enabled = (PQgetvalue(res, 0, 3)[0] == 't');
    last = strtoll(PQgetvalue(res, 0, 2), NULL, 10);

    if (st->backup) {
        if (!enabled) {
            /* a set-up is confirmed with the app, not a backup code */
            st->reason = "backup_code_before_enable";

        } else {
            st->backup_hash = um_mfa_hash(ctx, st->user_id, st->code);
            if (st->backup_hash == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

    } else {
        n = um_sealed_open(ctx->mcf->mfa_key, st->user_id,
                           PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1),
                           secret, sizeof(secret));

        if (n != UM_TOTP_SECRET_LEN) {
            OPENSSL_cleanse(secret, sizeof(secret));
            ngx_log_error(NGX_LOG_ERR, ctx->r->connection->log, 0,
                          "usermgmt: a stored TOTP secret does not open: "
                          "was \"usermgmt_mfa_key\" changed?");
            return um_send_error(ctx->r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                 UM_INTERNAL_ERROR,
                                 "the two-factor secret cannot be read",
                                 NULL);
        }

        step = um_totp_check(secret, st->code, ngx_time(), last);

        OPENSSL_cleanse(secret, sizeof(secret));

        if (step >= 0) {
            st->step = um_pint(ctx, step);
            if (st->step == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

        } else {
            st->reason = (step == UM_TOTP_REPLAYED) ? "replayed"
                                                    : "wrong_code";
        }
    }

    if (st->action == UM_MFA_CODES
        && um_mfa_backup_codes(ctx, st, UM_BACKUP_DEFAULT) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (st->action == UM_MFA_LOGIN) {
        /* from here ctx->data is um_auth.c's: st stays in the pool */
        hash = um_auth_refresh_new(ctx);

        v = ngx_pcalloc(ctx->r->pool, 10 * sizeof(char *));
        if (hash == NULL || v == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        v[0] = st->user_id;
        v[1] = st->jti;
        v[2] = um_pint(ctx, st->issued);
        v[3] = st->step;
        v[4] = st->backup_hash;
        v[5] = st->reason;
        v[6] = hash;
        v[7] = um_pint(ctx, ctx->mcf->refresh_ttl);
        v[8] = um_client_ip(ctx);
        v[9] = um_user_agent(ctx);

        return um_query(ctx, &um_sql_mfa_login, v, 10, um_mfa_login_ended);
    }

    v = ngx_pcalloc(ctx->r->pool, 8 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = st->user_id;
    v[1] = (st->action == UM_MFA_VERIFY) ? "verify"
           : (st->action == UM_MFA_DISABLE) ? "disable" : "codes";
    v[2] = st->step;
    v[3] = st->backup_hash;
    v[4] = st->reason;
    v[5] = st->hashes;
    v[6] = um_client_ip(ctx);
    v[7] = um_user_agent(ctx);

    return um_query(ctx, &um_sql_mfa_end, v, 8, um_mfa_ended);
}


static ngx_int_t
um_mfa_ended(um_ctx_t *ctx, PGresult *res)
{
    json_t      *result, *data;
    um_mfa_t    *st;
    const char  *message;

    st = ctx->data;

    result = json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), 0,
                        NULL);
    if (result == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!json_is_true(json_object_get(result, "ok"))) {
        json_decref(result);
        return um_mfa_refused(ctx);
    }

    message = (st->action == UM_MFA_VERIFY)
              ? "Two-factor authentication verified."
              : (st->action == UM_MFA_DISABLE)
              ? "Two-factor authentication disabled."
              : "New backup codes created; the old ones no longer work.";

    data = json_pack("{sb ss sO sO}",
                     "success", 1,
                     "message", message,
                     "two_factor_enabled",
                     json_object_get(result, "two_factor_enabled"),
                     "backup_codes_remaining",
                     json_object_get(result, "backup_codes_remaining"));

    json_decref(result);

    if (data != NULL && st->action == UM_MFA_CODES) {
        json_object_set_new(data, "backup_codes", um_mfa_codes_json(st));
        json_object_set_new(data, "backup_codes_remaining",
                            json_integer(st->ncodes));
    }

    return um_mfa_send(ctx, data);
}


static ngx_int_t
um_mfa_login_ended(um_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return um_mfa_refused(ctx);
    }

    return um_auth_signed_in(ctx, res);
}


/* one answer for every code that does not count: wrong, spent, replayed */
static ngx_int_t
um_mfa_refused(um_ctx_t *ctx)
{
    return um_send_error(ctx->r, NGX_HTTP_UNAUTHORIZED, UM_UNAUTHORIZED,
                         "invalid two-factor code", NULL);
}


/* a new secret and backup codes; the QR code is drawn once they are kept */
static ngx_int_t
um_mfa_setup_start(um_ctx_t *ctx, ngx_uint_t workflow, ngx_uint_t ncodes)
{
    int             len;
    char           *sealed, *account;
    um_mfa_t       *st;
    const char    **v;
    unsigned char   secret[UM_TOTP_SECRET_LEN];

    if (um_mfa_configured(ctx) != NGX_OK) {
        return ctx->rc;
    }

    st = um_mfa_state(ctx);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->workflow = workflow;
    st->user_id = um_pstr(ctx, ctx->id.user_id.data, ctx->id.user_id.len);

    account = (ctx->id.email.len > 0) ? (char *) ctx->id.email.data
                                      : (char *) st->user_id;

    sealed = ngx_pnalloc(ctx->r->pool,
                         um_sealed_len(UM_TOTP_SECRET_LEN) + 1);
    st->uri = ngx_pnalloc(ctx->r->pool, 1024);

    if (sealed == NULL || st->uri == NULL
        || um_totp_secret_new(secret) != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    um_totp_base32(secret, st->base32);

    len = um_totp_uri((char *) ctx->mcf->mfa_issuer.data, account,
                      st->base32, st->uri, 1024);

    if (len < 0
        || um_sealed_seal(ctx->mcf->mfa_key, st->user_id, secret,
                          UM_TOTP_SECRET_LEN, sealed) != 0)
    {
        OPENSSL_cleanse(secret, sizeof(secret));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    OPENSSL_cleanse(secret, sizeof(secret));

    if (um_mfa_backup_codes(ctx, st, ncodes) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v = ngx_pcalloc(ctx->r->pool, 5 * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[0] = st->user_id;
    v[1] = sealed;
    v[2] = st->hashes;
    v[3] = um_client_ip(ctx);
    v[4] = um_user_agent(ctx);

    return um_query(ctx, &um_sql_mfa_setup, v, 5, um_mfa_setup_stored);
}


static ngx_int_t
um_mfa_setup_stored(um_ctx_t *ctx, PGresult *res)
{
    return um_offload(ctx, um_mfa_qr_work, um_mfa_setup_answer);
}


/* in a pool thread */
static void
um_mfa_qr_work(void *data)
{
    um_ctx_t  *ctx = data;
    um_mfa_t  *st = ctx->data;

    st->qr = um_qr_png_data_uri(st->uri, &st->qr_len);
}


static ngx_int_t
um_mfa_setup_answer(um_ctx_t *ctx)
{
    json_t    *results, *data;
    um_mfa_t  *st;

    st = ctx->data;

    if (st->qr == NULL) {
        return um_send_error(ctx->r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             UM_INTERNAL_ERROR, "QR code rendering failed",
                             NULL);
    }

    results = json_pack("{ss ss ss ss ss so sb}",
                        "method", "totp",
                        "secret", st->base32,
                        "otpauth_uri", st->uri,
                        "qr_code", st->qr,
                        "qr_code_image", st->qr + sizeof(UM_QR_PREFIX) - 1,
                        "backup_codes", um_mfa_codes_json(st),
                        "verification_required", 1);
    if (results == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (st->workflow) {
        data = json_pack("{sb ss so}",
                         "success", 1,
                         "workflow_id", "mfa_setup",
                         "results", results);

    } else {
        data = results;
        json_object_set_new(data, "success", json_true());
        json_object_set_new(data, "message",
                            json_string("Scan the QR code with your "
                                        "authenticator app"));
    }

    return um_mfa_send(ctx, data);
}


/* answers that hold secrets or codes are never cached */
static ngx_int_t
um_mfa_send(um_ctx_t *ctx, json_t *data)
{
    ngx_str_t  no_store = ngx_string("no-store");

    if (data == NULL
        || um_header_add(ctx->r, "Cache-Control", &no_store) != NGX_OK)
    {
        json_decref(data);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return um_send_json(ctx->r, NGX_HTTP_OK, data);
}


/*
 * The code of the body, normalised: six digits for TOTP, or a backup
 * code (ten of a-z and 2-7, any case, dashes and spaces ignored).
 */
static ngx_int_t
um_mfa_code(um_ctx_t *ctx, um_mfa_t *st)
{
    u_char       *out, c;
    size_t        n;
    ngx_uint_t    i, digits;
    const char   *in, *name;

    static const char  *fields[] = { "two_factor_code", "code",
                                     "backup_code", NULL };

    in = NULL;
    name = "two_factor_code";

    for (i = 0; fields[i] != NULL; i++) {
        if (um_field_str(ctx, fields[i]) != NULL) {
            if (in != NULL) {
                ctx->rc = um_send_invalid(ctx->r, fields[i], "exclusive",
                                          "send one code");
                return NGX_DECLINED;
            }

            in = um_field_str(ctx, fields[i]);
            name = fields[i];
        }
    }

    if (in == NULL) {
        ctx->rc = um_send_invalid(ctx->r, "two_factor_code", "required",
                                  "two_factor_code is required");
        return NGX_DECLINED;
    }

    st->field = name;

    out = ngx_pnalloc(ctx->r->pool, UM_BACKUP_CHARS + 1);
    if (out == NULL) {
        ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    n = 0;
    digits = 0;

    for ( /* void */ ; *in != '\0'; in++) {
        c = (u_char) *in;

        if (c == '-' || c == ' ') {
            continue;
        }

        c = ngx_tolower(c);

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            || n == UM_BACKUP_CHARS)
        {
            n = 0;
            break;
        }

        digits += (c >= '0' && c <= '9');
        out[n++] = c;
    }

    out[n] = '\0';

    if (n == UM_TOTP_DIGITS && digits == n) {
        st->code = (char *) out;
        return NGX_OK;
    }

    if (n == UM_BACKUP_CHARS) {
        for (i = 0; i < n; i++) {
            if (out[i] == '0' || out[i] == '1' || out[i] == '8'
                || out[i] == '9')
            {
                break;
            }
        }

        if (i == n) {
            st->code = (char *) out;
            st->backup = 1;
            return NGX_OK;
        }
    }

    ctx->rc = um_send_invalid(ctx->r, name, "format",
                              "a 6-digit code or a backup code");
    return NGX_DECLINED;
}


/*
 * n new backup codes, shown once, and their hashes as a text[] literal
 * for SQL.  50 random bits each, as "abcde-fghij".
 */
static ngx_int_t
um_mfa_backup_codes(um_ctx_t *ctx, um_mfa_t *st, ngx_uint_t n)
{
    u_char         *p, *list;
    ngx_uint_t      i, j;
    const char     *hash;
    unsigned char   raw[UM_BACKUP_CHARS];
    char            code[UM_BACKUP_CHARS + 1];

    static const char  alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

    st->ncodes = n;
    st->codes = ngx_pcalloc(ctx->r->pool, n * sizeof(*st->codes));
    list = ngx_pnalloc(ctx->r->pool, n * (UM_MFA_HASH_LEN + 1) + 3);

    if (st->codes == NULL || list == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(list, "{", 1);

    for (i = 0; i < n; i++) {
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            return NGX_ERROR;
        }

        for (j = 0; j < UM_BACKUP_CHARS; j++) {
            code[j] = alphabet[raw[j] & 31];
        }

        code[UM_BACKUP_CHARS] = '\0';

        ngx_sprintf((u_char *) st->codes[i], "%*s-%*s%Z",
                    (size_t) 5, code, (size_t) 5, code + 5);

        hash = um_mfa_hash(ctx, st->user_id, code);
        if (hash == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(p, "%s%s", i ? "," : "", hash);
    }

    OPENSSL_cleanse(code, sizeof(code));
    OPENSSL_cleanse(raw, sizeof(raw));

    *p++ = '}';
    *p = '\0';

    st->hashes = (const char *) list;

    return NGX_OK;
}


/* the stored form of a backup code: HMAC-SHA-256(key, user ":" code) */
static const char *
um_mfa_hash(um_ctx_t *ctx, const char *user_id, const char *code)
{
    u_char         *hex, msg[128];
    size_t          len;
    unsigned int    mdlen;
    unsigned char   md[EVP_MAX_MD_SIZE];

    len = ngx_snprintf(msg, sizeof(msg), "%s:%s", user_id, code) - msg;

    hex = ngx_pnalloc(ctx->r->pool, UM_MFA_HASH_LEN + 1);

    if (hex == NULL
        || HMAC(EVP_sha256(), ctx->mcf->mfa_key, UM_SEALED_KEY_LEN, msg, len,
                md, &mdlen) == NULL)
    {
        return NULL;
    }

    OPENSSL_cleanse(msg, sizeof(msg));

    *ngx_hex_dump(hex, md, mdlen) = '\0';

    return (const char *) hex;
}


static json_t *
um_mfa_codes_json(um_mfa_t *st)
{
    json_t      *codes;
    ngx_uint_t   i;

    codes = json_array();

    for (i = 0; codes != NULL && i < st->ncodes; i++) {
        json_array_append_new(codes, json_string(st->codes[i]));
    }

    return codes;
}


static ngx_int_t
um_mfa_configured(um_ctx_t *ctx)
{
    if (ctx->mcf->mfa_key_set) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, ctx->r->connection->log, 0,
                  "usermgmt: two-factor authentication needs "
                  "\"usermgmt_mfa_key\"");

    ctx->rc = um_send_error(ctx->r, NGX_HTTP_NOT_IMPLEMENTED,
                            "NOT_IMPLEMENTED",
                            "two-factor authentication is not configured "
                            "on this server", NULL);
    return NGX_DECLINED;
}


static um_mfa_t *
um_mfa_state(um_ctx_t *ctx)
{
    um_mfa_t            *st;
    ngx_pool_cleanup_t  *cln;

    st = ngx_pcalloc(ctx->r->pool, sizeof(um_mfa_t));
    if (st == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(ctx->r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = um_mfa_cleanup;
    cln->data = st;

    ctx->data = st;

    return st;
}


/* codes and secrets do not outlive the request in memory */
static void
um_mfa_cleanup(void *data)
{
    um_mfa_t  *st = data;

    if (st->qr != NULL) {
        free(st->qr);
    }

    if (st->codes != NULL) {
        OPENSSL_cleanse(st->codes, st->ncodes * sizeof(*st->codes));
    }

    OPENSSL_cleanse(st->base32, sizeof(st->base32));
}
