/*
 * Access control: verify the bearer token in-process, check that it was
 * not revoked (in this node's copy of the deny-list), check the tenant
 * and the permission the route or the location requires, and keep the
 * identity in the request context for the content handler, the variables
 * and the upstream.
 *
 * It runs on API locations (where the route table says what each endpoint
 * needs) and on any location with "usermgmt_auth on|optional".
 */

#include "um_http.h"


#define UM_MAX_TOKEN        8192


static ngx_int_t um_access_start(um_ctx_t *ctx,
    ngx_http_usermgmt_loc_conf_t *lcf);
static ngx_int_t um_bearer(ngx_http_request_t *r, ngx_str_t *token);
static ngx_int_t um_identity_load(um_identity_t *id, json_t *claims);
static ngx_int_t um_check_revoked(um_ctx_t *ctx);
static void um_revoked_done(void *data, redisReply *reply, ngx_int_t status);
static ngx_int_t um_access_decide(um_ctx_t *ctx);
static ngx_int_t um_access_refuse(um_ctx_t *ctx, ngx_int_t rc);
static ngx_table_elt_t *um_header_in(ngx_http_request_t *r, const char *name,
    size_t len);
static ngx_int_t um_json_has(json_t *array, const char *s, size_t len);

static ngx_int_t um_variable_identity(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t um_variable_roles(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t um_variable_claim(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  um_variables[] = {

    { ngx_string("usermgmt_user_id"), NULL, um_variable_identity,
      offsetof(um_identity_t, user_id), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("usermgmt_tenant_id"), NULL, um_variable_identity,
      offsetof(um_identity_t, tenant_id), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("usermgmt_email"), NULL, um_variable_identity,
      offsetof(um_identity_t, email), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("usermgmt_session_id"), NULL, um_variable_identity,
      offsetof(um_identity_t, sid), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("usermgmt_roles"), NULL, um_variable_roles,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("usermgmt_claim_"), NULL, um_variable_claim,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_usermgmt_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    um_ctx_t                      *ctx;
    ngx_http_usermgmt_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_usermgmt_module);

    if ((lcf->content != UM_CONTENT_API && lcf->auth == UM_AUTH_OFF)
        || r != r->main)
    {
        return NGX_DECLINED;
    }

    ctx = um_ctx_get(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->access_waiting) {
        return NGX_DONE;
    }

    /* back from Redis, or the first time */
    rc = ctx->access_done ? ctx->access_rc : um_access_start(ctx, lcf);

    /*
     * The handler runs in the rewrite phase, ahead of the location's own
     * "return" and "rewrite", so that they too are protected: there
     * NGX_DECLINED goes on and NGX_DONE waits (or has finished).
     */
    if (rc == NGX_OK) {
        return NGX_DECLINED;
    }

    if (rc == NGX_AGAIN) {
        return NGX_DONE;
    }

    return rc;
}


ngx_int_t
um_access_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = um_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


ngx_int_t
um_has_role(um_ctx_t *ctx, const char *role)
{
    if (ctx->id.super_admin) {
        return 1;
    }

    return um_json_has(ctx->id.roles, role, ngx_strlen(role));
}


/*
 * "resource:action".  A super admin holds every permission; an
 * organization admin every one inside the organization, which is all but
 * the "system:" ones.
 */
ngx_int_t
um_has_permission(um_ctx_t *ctx, const char *perm)
{
    size_t       len;
    const char  *colon;
    u_char       wildcard[128];

    if (ctx->id.super_admin) {
        return 1;
    }

    len = ngx_strlen(perm);

    if (ngx_strncmp(perm, "system:", 7) != 0
        && um_json_has(ctx->id.roles, "org_admin", 9))
    {
        return 1;
    }

    if (um_json_has(ctx->id.permissions, perm, len)
        || um_json_has(ctx->id.permissions, "*", 1))
    {
        return 1;
    }

    colon = ngx_strchr(perm, ':');

    if (colon == NULL || (size_t) (colon - perm) + 3 > sizeof(wildcard)) {
        return 0;
    }

    ngx_memcpy(wildcard, perm, colon - perm + 1);
    wildcard[colon - perm + 1] = '*';

    return um_json_has(ctx->id.permissions, (char *) wildcard,
                       colon - perm + 2);
}


ngx_int_t
um_send_unauthorized(ngx_http_request_t *r, const char *description)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   value;

    /* RFC 6750: no error code when no credentials were presented */
    if (description == NULL) {
        ngx_str_set(&value, "Bearer realm=\"usermgmt\"");

    } else {
        len = sizeof("Bearer realm=\"usermgmt\", error=\"invalid_token\", "
                     "error_description=\"\"") + ngx_strlen(description);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        value.data = p;
        value.len = ngx_sprintf(p, "Bearer realm=\"usermgmt\", "
                                "error=\"invalid_token\", "
                                "error_description=\"%s\"", description)
                    - p;
    }

    if (um_header_add(r, "WWW-Authenticate", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    return um_send_error(r, NGX_HTTP_UNAUTHORIZED, UM_UNAUTHORIZED,
                         description ? description
                                     : "authentication required", NULL);
}


static ngx_int_t
um_access_start(um_ctx_t *ctx, ngx_http_usermgmt_loc_conf_t *lcf)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->r;

    if (lcf->content == UM_CONTENT_API) {
        ctx->metric = UM_METRIC_UNMATCHED;
        ctx->route_rc = um_route_match(ctx, &ctx->allow, &ctx->bad);
        ctx->routed = 1;

        /* unknown routes and public endpoints need no token */
        if (ctx->route_rc != NGX_OK
            || (ctx->route->flags & UM_ROUTE_PUBLIC))
        {
            return NGX_DECLINED;
        }
    }

    rc = ctx->verified ? ctx->verify_rc : um_access_verify(ctx);

    if (rc == NGX_DECLINED) {
        /* "optional" lets the anonymous through, unless something is
         * required of the caller */
        if (lcf->content != UM_CONTENT_API && lcf->auth == UM_AUTH_OPTIONAL
            && lcf->requires == NULL)
        {
            return NGX_DECLINED;
        }

        return um_access_refuse(ctx, um_send_unauthorized(r, NULL));
    }

    if (rc != NGX_OK) {
        return um_access_refuse(ctx,
                   um_send_unauthorized(r, ctx->verify_reason));
    }

    return um_check_revoked(ctx);
}


/*
 * Verifies the bearer token once per request (the limiter may need the
 * identity before the access phase).  NGX_OK: ctx->id is the caller.
 * NGX_DECLINED: no token.  NGX_ERROR: a bad one, ctx->verify_reason says
 * why.
 */
ngx_int_t
um_access_verify(um_ctx_t *ctx)
{
    json_t                         *claims;
    ngx_int_t                       rc;
    ngx_str_t                       token;
    const char                     *reason;
    um_jwt_verify_t                 opts;
    ngx_http_usermgmt_main_conf_t  *mcf;

    mcf = ctx->mcf;
    ctx->verified = 1;

    rc = um_bearer(ctx->r, &token);

    if (rc == NGX_DECLINED) {
        ctx->verify_rc = NGX_DECLINED;
        return NGX_DECLINED;
    }

    ctx->verify_rc = NGX_ERROR;

    if (rc != NGX_OK || mcf->jwt_keys == NULL) {
        ctx->verify_reason = "malformed authorization";
        return NGX_ERROR;
    }

    um_verify_opts(mcf, "at+jwt", &opts);

    claims = um_token_cache_get(&token, mcf->leeway);

    if (claims == NULL) {
        reason = NULL;

        if (um_jwt_verify((const char *) token.data, token.len, &opts,
                          &claims, &reason)
            != 0)
        {
            ctx->verify_reason = reason;
            return NGX_ERROR;
        }

        um_token_cache_put(&token, claims, ctx->r->connection->log);
    }

    if (um_identity_load(&ctx->id, claims) != NGX_OK) {
        ctx->verify_reason = "incomplete token";
        return NGX_ERROR;
    }

    ctx->authenticated = 1;
    ctx->verify_rc = NGX_OK;

    return NGX_OK;
}


/*
 * The checks of a token this module issued, of type typ: our keys, issuer
 * and audience, the leeway, now.
 */
void
um_verify_opts(ngx_http_usermgmt_main_conf_t *mcf, const char *typ,
    um_jwt_verify_t *opts)
{
    ngx_memzero(opts, sizeof(um_jwt_verify_t));

    opts->keys = mcf->jwt_keys->elts;
    opts->nkeys = mcf->jwt_keys->nelts;
    opts->typ = typ;
    opts->iss = (const char *) mcf->issuer.data;
    opts->aud = (const char *) mcf->audience.data;
    opts->leeway = mcf->leeway;
    opts->now = ngx_time();
    opts->max_len = UM_MAX_TOKEN;
}


/* a role the token names; unlike um_has_role() a super admin has no more */
ngx_int_t
um_has_role_exactly(um_ctx_t *ctx, const char *role)
{
    return um_json_has(ctx->id.roles, role, ngx_strlen(role));
}


/* "Authorization: Bearer <token>"; NGX_DECLINED when there is none */
static ngx_int_t
um_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char     *p, *last;
    ngx_str_t   value;

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    value = r->headers_in.authorization->value;

    if (value.len < sizeof("Bearer ")
        || ngx_strncasecmp(value.data, (u_char *) "Bearer ", 7) != 0)
    {
        return NGX_ERROR;
    }

    p = value.data + 7;
    last = value.data + value.len;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    if (p == last || (size_t) (last - p) > UM_MAX_TOKEN) {
        return NGX_ERROR;
    }

    token->data = p;
    token->len = last - p;

    return NGX_OK;
}


static ngx_int_t
um_identity_load(um_identity_t *id, json_t *claims)
{
    json_t      *v;
    ngx_str_t   *field;
    ngx_uint_t   i;

    static const struct {
        const char  *name;
        size_t       offset;
        ngx_uint_t   required;
    } strings[] = {
        { "sub", offsetof(um_identity_t, user_id), 1 },
        { "tenant_id", offsetof(um_identity_t, tenant_id), 1 },
        { "email", offsetof(um_identity_t, email), 0 },
        { "sid", offsetof(um_identity_t, sid), 1 },
        { "jti", offsetof(um_identity_t, jti), 1 },
    };

    /* the context cleanup releases the claims from here on */
    id->claims = claims;

    for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        v = json_object_get(claims, strings[i].name);
        field = (ngx_str_t *) ((u_char *) id + strings[i].offset);

        if (!json_is_string(v) || json_string_length(v) == 0) {
            if (strings[i].required) {
                return NGX_ERROR;
            }

            continue;
        }

        field->data = (u_char *) json_string_value(v);
        field->len = json_string_length(v);
    }

    id->exp = (time_t) json_integer_value(json_object_get(claims, "exp"));

    v = json_object_get(claims, "roles");
    id->roles = json_is_array(v) ? v : NULL;

    v = json_object_get(claims, "permissions");
    id->permissions = json_is_array(v) ? v : NULL;

    id->super_admin = um_json_has(id->roles, "super_admin", 11);

    return NGX_OK;
}


/*
 * Is the token, or its whole session, on the deny-list?  The node's copy
 * answers; Redis only while this worker's copy may be behind.
 */
static ngx_int_t
um_check_revoked(um_ctx_t *ctx)
{
    ngx_int_t  rc;

    /* the token's own tenant, before any X-Tenant-ID choice */
    ctx->id.token_tenant = ctx->id.tenant_id;

    rc = um_revoke_check(ctx->mcf, &ctx->id.jti, &ctx->id.sid,
                         &ctx->id.token_tenant);

    if (rc == 1) {
        return um_access_refuse(ctx,
                   um_send_unauthorized(ctx->r, "token revoked"));
    }

    if (rc == 0 || ctx->mcf->redis_client == NULL) {
        return um_access_decide(ctx);
    }

    ctx->redis = um_revoke_ask(ctx->mcf, &ctx->id.jti, &ctx->id.sid,
                               &ctx->id.token_tenant, um_revoked_done, ctx);

    if (ctx->redis == NULL) {
        /*
         * Redis is out of reach: the token is valid, short-lived, and not
         * revoked on this node, so traffic goes on; the Redis error
         * counters show the gap.
         */
        return um_access_decide(ctx);
    }

    ctx->access_waiting = 1;

    return NGX_AGAIN;
}


static void
um_revoked_done(void *data, redisReply *reply, ngx_int_t status)
{
    um_ctx_t            *ctx = data;
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->r;
    c = r->connection;
    ctx->redis = NULL;
    ctx->access_done = 1;
    ctx->access_waiting = 0;

    if (status == UM_REDIS_OK && um_revoke_answer(reply)) {
        /* refused: the request is finished, and may be gone already */
        (void) um_access_refuse(ctx, um_send_unauthorized(r, "token revoked"));

    } else {
        rc = um_access_decide(ctx);

        if (rc != NGX_DONE) {
            ctx->access_rc = rc;
            ngx_http_core_run_phases(r);
        }
    }

    ngx_http_run_posted_requests(c);
}


/* tenant and permission, once the token is known to be good */
static ngx_int_t
um_access_decide(um_ctx_t *ctx)
{
    ngx_str_t                      *tenant;
    ngx_uint_t                      i;
    um_require_t                   *req;
    ngx_table_elt_t                *h;
    ngx_http_request_t             *r;
    ngx_http_usermgmt_loc_conf_t   *lcf;
    u_char                          name[128];

    r = ctx->r;

    h = um_header_in(r, "X-Tenant-ID", sizeof("X-Tenant-ID") - 1);

    if (h != NULL) {
        tenant = &ctx->id.tenant_id;

        if (ctx->id.super_admin) {
            /* a super admin acts in the tenant it names */
            if (!um_is_uuid(h->value.data, h->value.len)) {
                return um_access_refuse(ctx,
                           um_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         UM_BAD_REQUEST,
                                         "X-Tenant-ID is not a valid UUID",
                                         NULL));
            }

            *tenant = h->value;
            ctx->tenant_chosen = 1;

        } else if (h->value.len != tenant->len
                   || ngx_strncasecmp(h->value.data, tenant->data,
                                      tenant->len) != 0)
        {
            return um_access_refuse(ctx,
                       um_send_error(r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                                     "X-Tenant-ID does not match the token",
                                     NULL));
        }
    }

    if (ctx->route != NULL && ctx->route->permission != NULL
        && !um_has_permission(ctx, ctx->route->permission))
    {
        return um_access_refuse(ctx,
                   um_send_error(r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                                 "insufficient permissions", NULL));
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_usermgmt_module);

    if (lcf->requires == NULL) {
        return NGX_OK;
    }

    req = lcf->requires->elts;

    for (i = 0; i < lcf->requires->nelts; i++) {

        if (req[i].value.len >= sizeof(name)) {
            return um_access_refuse(ctx, NGX_HTTP_FORBIDDEN);
        }

        ngx_cpystrn(name, req[i].value.data, req[i].value.len + 1);

        if (req[i].type == UM_REQUIRE_ROLE
            ? !um_has_role(ctx, (char *) name)
            : !um_has_permission(ctx, (char *) name))
        {
            return um_access_refuse(ctx,
                       um_send_error(r, NGX_HTTP_FORBIDDEN, UM_FORBIDDEN,
                                     "insufficient permissions", NULL));
        }
    }

    return NGX_OK;
}


/*
 * The refusal has been sent: finish the request here, and stop the phase
 * engine (NGX_DONE), so that nginx does not answer a second time.
 */
static ngx_int_t
um_access_refuse(um_ctx_t *ctx, ngx_int_t rc)
{
    ngx_http_finalize_request(ctx->r, rc);

    return NGX_DONE;
}


static ngx_table_elt_t *
um_header_in(ngx_http_request_t *r, const char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_int_t
um_json_has(json_t *array, const char *s, size_t len)
{
    size_t   i;
    json_t  *v;

    json_array_foreach(array, i, v) {
        if (json_is_string(v) && json_string_length(v) == len
            && ngx_strncmp(json_string_value(v), s, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
um_variable_identity(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    um_ctx_t   *ctx;
    ngx_str_t  *s;

    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);

    if (ctx == NULL || !ctx->authenticated) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) &ctx->id + data);

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = (s->len == 0);

    return NGX_OK;
}


static ngx_int_t
um_variable_roles(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char    *p;
    size_t     len, i;
    json_t    *role;
    um_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);

    if (ctx == NULL || !ctx->authenticated) {
        v->not_found = 1;
        return NGX_OK;
    }

    len = 0;

    json_array_foreach(ctx->id.roles, i, role) {
        len += json_string_length(role) + 1;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    json_array_foreach(ctx->id.roles, i, role) {
        if (json_is_string(role)) {
            if (p != v->data) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, json_string_value(role),
                           json_string_length(role));
        }
    }

    v->len = p - v->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* $usermgmt_claim_NAME: strings as they are, anything else as JSON */
static ngx_int_t
um_variable_claim(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char     *p;
    char       *dump;
    json_t     *claim;
    um_ctx_t   *ctx;
    ngx_str_t  *name = (ngx_str_t *) data;
    u_char      key[128];
    size_t      prefix;

    ctx = ngx_http_get_module_ctx(r, ngx_http_usermgmt_module);
    prefix = sizeof("usermgmt_claim_") - 1;

    if (ctx == NULL || !ctx->authenticated || name->len <= prefix
        || name->len - prefix >= sizeof(key))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_cpystrn(key, name->data + prefix, name->len - prefix + 1);

    claim = json_object_get(ctx->id.claims, (char *) key);

    if (claim == NULL || json_is_null(claim)) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (json_is_string(claim)) {
        v->data = (u_char *) json_string_value(claim);
        v->len = json_string_length(claim);

    } else {
        dump = json_dumps(claim, JSON_COMPACT | JSON_ENCODE_ANY);
        if (dump == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_strlen(dump);
        p = ngx_pnalloc(r->pool, v->len);

        if (p == NULL) {
            free(dump);
            return NGX_ERROR;
        }

        ngx_memcpy(p, dump, v->len);
        free(dump);
        v->data = p;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
