/*
 * The route table: the one place that says which endpoints exist, who may
 * call them, and which handler answers.  The matcher below it compares the
 * decoded URI segment by segment; "{name}" matches one segment, and a name
 * ending in "id" must be a UUID.
 */

#include "um_http.h"
#include "um_validate.h"
#include "api/um_api.h"


#define GET     NGX_HTTP_GET
#define POST    NGX_HTTP_POST
#define PUT     NGX_HTTP_PUT
#define PATCH   NGX_HTTP_PATCH
#define DELETE  NGX_HTTP_DELETE

#define PUBLIC  UM_ROUTE_PUBLIC
#define BODY    UM_ROUTE_BODY
#define OPTIONAL_BODY  UM_ROUTE_OPTIONAL_BODY


const um_route_t  um_routes[] = {

    /* authentication */
    { POST, ngx_string("/api/v1/auth/register"),
      um_auth_register, NULL, PUBLIC|BODY },
    { POST, ngx_string("/api/v1/auth/login"),
      um_auth_login, NULL, PUBLIC|BODY },
    { POST, ngx_string("/api/v1/auth/refresh"),
      um_auth_refresh, NULL, PUBLIC|BODY },
    { POST, ngx_string("/api/v1/auth/logout"),
      um_auth_logout, NULL, BODY|OPTIONAL_BODY },
    { POST, ngx_string("/api/v1/auth/change-password"),
      um_auth_change_password, NULL, BODY },

    /* two-factor authentication (um_mfa.c) */
    { POST, ngx_string("/api/v1/auth/mfa/verify"),
      um_mfa_login, NULL, PUBLIC|BODY },
    { POST, ngx_string("/api/v1/users/2fa/enable"),
      um_mfa_enable, NULL, BODY|OPTIONAL_BODY },
    { POST, ngx_string("/api/v1/user/auth/mfa/setup"),
      um_mfa_setup, NULL, BODY|OPTIONAL_BODY },
    { POST, ngx_string("/api/v1/users/2fa/verify"),
      um_mfa_verify, NULL, BODY },
    { POST, ngx_string("/api/v1/users/2fa/disable"),
      um_mfa_disable, NULL, BODY },
    { POST, ngx_string("/api/v1/users/2fa/backup-codes"),
      um_mfa_new_codes, NULL, BODY },
    { GET, ngx_string("/api/v1/users/2fa/status"),
      um_mfa_status, NULL, 0 },

    /* the caller's own account */
    { GET, ngx_string("/api/v1/users/me"),
      um_users_me, NULL, 0 },
    { PUT, ngx_string("/api/v1/users/me"),
      um_users_update_me, NULL, BODY },
    { PUT, ngx_string("/api/v1/users/password"),
      um_auth_change_password, NULL, BODY },

    /* users */
    { GET, ngx_string("/api/v1/users/{id}"),
      um_users_get, NULL, 0 },

    /* users: administration; NULL where oneself will do too */
    { POST, ngx_string("/api/v1/users"),
      um_users_create, "users:create", BODY },
    { GET, ngx_string("/api/v1/users"),
      um_users_list, "users:read", 0 },
    { GET, ngx_string("/api/v1/users/search"),
      um_users_search, "users:read", 0 },
    { PUT, ngx_string("/api/v1/users/{id}"),
      um_users_update, NULL, BODY },
    { DELETE, ngx_string("/api/v1/users/{id}"),
      um_users_delete, "users:delete", 0 },
    { POST, ngx_string("/api/v1/users/{id}/reactivate"),
      um_users_reactivate, "users:update", 0 },
    { PUT, ngx_string("/api/v1/users/{id}/status"),
      um_users_status, "users:update", BODY },
    { GET, ngx_string("/api/v1/users/{id}/permissions"),
      um_users_permissions, NULL, 0 },
    { PUT, ngx_string("/api/v1/users/{id}/permissions"),
      um_users_permissions_replace, "users:manage_permissions", BODY },
    { POST, ngx_string("/api/v1/users/{id}/permissions"),
      um_users_permissions_add, "users:manage_permissions", BODY },
    { POST, ngx_string("/api/v1/users/{id}/roles"),
      um_users_roles_add, "roles:assign", BODY },
    { DELETE, ngx_string("/api/v1/users/{id}/roles"),
      um_users_roles_remove, "roles:assign", BODY },

    /*
     * account security flows (um_account.c); the sends take no fields,
     * but read the body anyway: limits keyed by account run only after
     * a body, and they belong with those of the other sends
     */
    { POST, ngx_string("/api/v1/users/password/reset/request"),
      um_account_reset_request, NULL, PUBLIC|BODY },
    { POST, ngx_string("/api/v1/users/password/reset/confirm"),
      um_account_reset_confirm, NULL, PUBLIC|BODY },
    { POST, ngx_string("/api/v1/users/verify-email"),
      um_account_verify_email, NULL, PUBLIC|BODY },
    { POST, ngx_string("/api/v1/users/verify-email/resend"),
      um_account_verify_email_resend, NULL, BODY|OPTIONAL_BODY },
    { POST, ngx_string("/api/v1/users/verify-phone"),
      um_account_verify_phone, NULL, BODY },
    { POST, ngx_string("/api/v1/users/verify-phone/send"),
      um_account_verify_phone_send, NULL, BODY|OPTIONAL_BODY },
    { POST, ngx_string("/api/v1/users/kyc/request"),
      um_account_kyc_request, NULL, BODY },
    { GET, ngx_string("/api/v1/users/kyc/status"),
      um_account_kyc_status, NULL, 0 },

    /* organizations */
    { GET, ngx_string("/api/v1/organizations/lookup"),
      um_organizations_lookup, NULL, PUBLIC },
    { POST, ngx_string("/api/v1/organizations"),
      um_organizations_create, "system:admin", BODY },
    { GET, ngx_string("/api/v1/organizations"),
      um_organizations_list, "system:admin", 0 },
    { GET, ngx_string("/api/v1/organizations/my/info"),
      um_organizations_my_info, NULL, 0 },
    { GET, ngx_string("/api/v1/organizations/{id}"),
      um_organizations_get, NULL, 0 },
    { PUT, ngx_string("/api/v1/organizations/{id}"),
      um_organizations_update, "organizations:update", BODY },
    { DELETE, ngx_string("/api/v1/organizations/{id}"),
      um_organizations_delete, "system:admin", 0 },

    /* locations */
    { POST, ngx_string("/api/v1/locations"),
      um_locations_create, "locations:create", BODY },
    { GET, ngx_string("/api/v1/locations"),
      um_locations_list, "locations:read", 0 },
    { GET, ngx_string("/api/v1/locations/{id}"),
      um_locations_get, "locations:read", 0 },
    { PUT, ngx_string("/api/v1/locations/{id}"),
      um_locations_update, "locations:update", BODY },
    { DELETE, ngx_string("/api/v1/locations/{id}"),
      um_locations_delete, "locations:delete", 0 },
    { POST, ngx_string("/api/v1/locations/assign"),
      um_locations_assign, "locations:assign", BODY },
    { GET, ngx_string("/api/v1/locations/user/{user_id}"),
      um_locations_of_user, NULL, 0 },
    { DELETE,
      ngx_string("/api/v1/locations/user/{user_id}/location/{location_id}"),
      um_locations_unassign, "locations:assign", 0 },
    { GET, ngx_string("/api/v1/locations/{id}/users"),
      um_locations_users, "locations:read", 0 },

    /* roles, per organization (um_roles.c) */
    { POST, ngx_string("/api/v1/roles"),
      um_roles_create, "roles:create", BODY },
    { GET, ngx_string("/api/v1/roles"),
      um_roles_list, "roles:read", 0 },
    { GET, ngx_string("/api/v1/roles/{id}"),
      um_roles_get, "roles:read", 0 },
    { PUT, ngx_string("/api/v1/roles/{id}"),
      um_roles_update, "roles:update", BODY },
    { DELETE, ngx_string("/api/v1/roles/{id}"),
      um_roles_delete, "roles:delete", 0 },
    { POST, ngx_string("/api/v1/roles/{id}/permissions"),
      um_roles_permissions_add, "roles:update", BODY },
    { DELETE, ngx_string("/api/v1/roles/{id}/permissions"),
      um_roles_permissions_remove, "roles:update", BODY },

    /* permissions, global; every built-in role reads them
     * (um_permissions.c) */
    { POST, ngx_string("/api/v1/permissions"),
      um_permissions_create, "system:admin", BODY },
    { GET, ngx_string("/api/v1/permissions"),
      um_permissions_list, "permissions:read", 0 },
    { GET, ngx_string("/api/v1/permissions/grouped"),
      um_permissions_grouped, "permissions:read", 0 },
    { GET, ngx_string("/api/v1/permissions/{id}"),
      um_permissions_get, "permissions:read", 0 },
    { PUT, ngx_string("/api/v1/permissions/{id}"),
      um_permissions_update, "system:admin", BODY },
    { DELETE, ngx_string("/api/v1/permissions/{id}"),
      um_permissions_delete, "system:admin", 0 },

    /* audit trail; activity: oneself, or audit:read (checked there) */
    { GET, ngx_string("/api/v1/audit/logs"),
      um_audit_logs, "audit:read", 0 },
    { GET, ngx_string("/api/v1/audit/user/{id}/activity"),
      um_audit_user_activity, NULL, 0 },
    { GET, ngx_string("/api/v1/audit/organization/{id}/stats"),
      um_audit_organization_stats, "audit:read", 0 },
    { GET, ngx_string("/api/v1/audit/export"),
      um_audit_export, "audit:export", 0 },
};

const ngx_uint_t  um_nroutes = sizeof(um_routes) / sizeof(um_routes[0]);


#undef GET
#undef POST
#undef PUT
#undef PATCH
#undef DELETE
#undef PUBLIC
#undef BODY
#undef OPTIONAL_BODY


typedef struct {
    ngx_uint_t   method;
    const char  *name;
} um_method_name_t;


static um_method_name_t  um_method_names[] = {
    { NGX_HTTP_GET, "GET" },
    { NGX_HTTP_HEAD, "HEAD" },
    { NGX_HTTP_POST, "POST" },
    { NGX_HTTP_PUT, "PUT" },
    { NGX_HTTP_PATCH, "PATCH" },
    { NGX_HTTP_DELETE, "DELETE" },
    { 0, NULL }
};


static ngx_int_t um_route_path(const um_route_t *route, ngx_str_t *uri,
    ngx_str_t *args, ngx_uint_t *nargs, ngx_uint_t *literal);


/*
 * NGX_OK: ctx->route and ctx->args are set.  NGX_DECLINED: no such path.
 * NGX_HTTP_NOT_ALLOWED: the path exists for other methods, listed in allow.
 * NGX_HTTP_BAD_REQUEST: a path parameter is malformed, explained in bad.
 */
ngx_int_t
um_route_match(um_ctx_t *ctx, ngx_str_t *allow, ngx_str_t *bad)
{
    u_char              *p;
    ngx_str_t            uri, args[UM_MAX_PATH_ARGS], name;
    ngx_uint_t           i, j, n, literal, best_literal, top, methods,
                         method;
    const um_route_t    *best;
    ngx_http_request_t  *r;

    r = ctx->r;
    uri = r->uri;

    /* "/api/v1/users/" is "/api/v1/users" */
    while (uri.len > 1 && uri.data[uri.len - 1] == '/') {
        uri.len--;
    }

    method = (r->method == NGX_HTTP_HEAD) ? NGX_HTTP_GET : r->method;

    best = NULL;
    best_literal = 0;
    top = 0;
    methods = 0;

    /*
     * The path is the most specific template it matches: PUT on
     * "/organizations/lookup" is a method the lookup lacks (405), not an
     * organization whose id is "lookup" (400).
     */
    for (i = 0; i < um_nroutes; i++) {

        if (um_route_path(&um_routes[i], &uri, args, &n, &literal) != NGX_OK) {
            continue;
        }

        if (literal > top) {
            top = literal;
            methods = 0;

        } else if (literal < top) {
            continue;
        }

        if (!(um_routes[i].method & method)) {
            methods |= um_routes[i].method;
            continue;
        }

        if (best == NULL || literal > best_literal) {
            best = &um_routes[i];
            best_literal = literal;
            ctx->nargs = n;
            ngx_memcpy(ctx->args, args, n * sizeof(ngx_str_t));
        }
    }

    if (best != NULL && best_literal < top) {
        best = NULL;
    }

    if (best == NULL) {

        if (methods == 0) {
            return NGX_DECLINED;
        }

        p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PUT, PATCH, DELETE"));
        if (p == NULL) {
            return NGX_DECLINED;
        }

        allow->data = p;

        if (methods & NGX_HTTP_GET) {
            methods |= NGX_HTTP_HEAD;
        }

        for (j = 0; um_method_names[j].name; j++) {
            if (methods & um_method_names[j].method) {
                if (p != allow->data) {
                    p = ngx_cpymem(p, ", ", 2);
                }

                p = ngx_cpymem(p, um_method_names[j].name,
                               ngx_strlen(um_method_names[j].name));
            }
        }

        allow->len = p - allow->data;

        return NGX_HTTP_NOT_ALLOWED;
    }

    ctx->route = best;
    ctx->metric = best - um_routes;

    /* placeholders named "...id" carry UUIDs */
    n = 0;
    p = best->path.data;

    for (i = 0; i < best->path.len; i++) {
        if (p[i] != '{') {
            continue;
        }

        for (j = i + 1; j < best->path.len && p[j] != '}'; j++) {
            /* void */
        }

        name.data = &p[i + 1];
        name.len = j - i - 1;

        if (name.len >= 2
            && ngx_strncmp(name.data + name.len - 2, "id", 2) == 0
            && !um_is_uuid(ctx->args[n].data, ctx->args[n].len))
        {
            bad->data = ngx_pnalloc(r->pool, name.len + 32);
            if (bad->data == NULL) {
                return NGX_DECLINED;
            }

            bad->len = ngx_sprintf(bad->data, "\"%V\" is not a valid UUID%Z",
                                   &name) - bad->data - 1;

            return NGX_HTTP_BAD_REQUEST;
        }

        n++;
    }

    return NGX_OK;
}


/* the method and the path template a metric slot counts */
void
um_route_label(ngx_uint_t slot, ngx_str_t *method, ngx_str_t *path)
{
    ngx_uint_t  j;

    ngx_str_set(method, "GET");

    if (slot < um_nroutes) {
        *path = um_routes[slot].path;

        for (j = 0; um_method_names[j].name; j++) {
            if (um_routes[slot].method & um_method_names[j].method) {
                method->data = (u_char *) um_method_names[j].name;
                method->len = ngx_strlen(um_method_names[j].name);
                break;
            }
        }

        return;
    }

    /* system locations are named by what they do: their paths vary */
    switch (slot - um_nroutes) {
    case 0:
        ngx_str_set(path, "health");
        break;
    case 1:
        ngx_str_set(path, "ready");
        break;
    case 2:
        ngx_str_set(path, "metrics");
        break;
    case 3:
        ngx_str_set(path, "unmatched");
        break;
    case 4:
        ngx_str_set(path, "protected");
        break;
    default:
        ngx_str_set(path, "jwks");
        break;
    }
}


static ngx_int_t
um_route_path(const um_route_t *route, ngx_str_t *uri, ngx_str_t *args,
    ngx_uint_t *nargs, ngx_uint_t *literal)
{
    u_char  *t, *tend, *u, *uend, *seg;

    t = route->path.data;
    tend = t + route->path.len;
    u = uri->data;
    uend = u + uri->len;

    *nargs = 0;
    *literal = 0;

    while (t < tend && u < uend) {

        if (*t == '{') {
            while (t < tend && *t != '}') {
                t++;
            }

            t++;

            seg = u;

            while (u < uend && *u != '/') {
                u++;
            }

            if (u == seg || *nargs == UM_MAX_PATH_ARGS) {
                return NGX_DECLINED;
            }

            args[*nargs].data = seg;
            args[*nargs].len = u - seg;
            (*nargs)++;

            continue;
        }

        if (*t != *u) {
            return NGX_DECLINED;
        }

        (*literal)++;
        t++;
        u++;
    }

    return (t == tend && u == uend) ? NGX_OK : NGX_DECLINED;
}
