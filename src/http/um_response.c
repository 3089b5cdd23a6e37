/*
 * Every answer leaves through here: {"data": ...} on success and
 * {"error": {"code", "message", "status_code", "details"}} otherwise.
 */

#include "um_http.h"


#define UM_JSON_FLAGS  (JSON_COMPACT | JSON_REAL_PRECISION(6))


static ngx_int_t um_send_root(ngx_http_request_t *r, ngx_uint_t status,
    json_t *root);


static ngx_str_t  um_json_type = ngx_string("application/json");


ngx_int_t
um_send(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *type,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (r->header_sent) {
        return NGX_ERROR;
    }

    /* an answer given before the body was read must not leave it unread */
    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = status;

    /* nginx 1.22 has no reason phrase for this one */
    if (status == 422) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }

    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_length_n = len;

    if (r->method == NGX_HTTP_HEAD || len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* wraps JSON text that PostgreSQL (or a handler) built in {"data": ...} */
ngx_int_t
um_send_data(ngx_http_request_t *r, ngx_uint_t status, u_char *json,
    size_t len)
{
    u_char  *body, *p;

    body = ngx_pnalloc(r->pool, sizeof("{\"data\":}") - 1 + len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(body, "{\"data\":", sizeof("{\"data\":") - 1);
    p = ngx_cpymem(p, json, len);
    *p++ = '}';

    return um_send(r, status, &um_json_type, body, p - body);
}


/*
 * The one JSON value of a one-row result (PostgreSQL built it); without a
 * row, 404 with not_found, or 500 when a row was certain.
 */
ngx_int_t
um_send_row(ngx_http_request_t *r, PGresult *res, ngx_uint_t status,
    const char *not_found)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        if (not_found == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return um_send_error(r, NGX_HTTP_NOT_FOUND, UM_NOT_FOUND, not_found,
                             NULL);
    }

    return um_send_data(r, status, (u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
}


/* takes the reference to data */
ngx_int_t
um_send_json(ngx_http_request_t *r, ngx_uint_t status, json_t *data)
{
    if (data == NULL) {
        return NGX_ERROR;
    }

    return um_send_root(r, status, json_pack("{so}", "data", data));
}


/* takes the reference to details */
ngx_int_t
um_send_error(ngx_http_request_t *r, ngx_uint_t status, const char *code,
    const char *message, json_t *details)
{
    if (details == NULL) {
        details = json_array();
    }

    return um_send_root(r, status,
                        json_pack("{s{ss ss si so}}", "error",
                                  "code", code,
                                  "message", message,
                                  "status_code", (int) status,
                                  "details", details));
}


ngx_int_t
um_send_invalid(ngx_http_request_t *r, const char *field, const char *rule,
    const char *message)
{
    json_t  *details;

    details = json_pack("[{ss ss ss}]", "field", field, "rule", rule,
                        "message", message);

    return um_send_error(r, 422, UM_VALIDATION_FAILED,
                         "the request failed validation", details);
}


ngx_int_t
um_send_unavailable(ngx_http_request_t *r, const char *what,
    ngx_msec_t retry_after, json_t *details)
{
    u_char     *p;
    ngx_str_t   value;
    u_char      message[64];

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        json_decref(details);
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%M", (retry_after + 999) / 1000) - p;

    if (um_header_add(r, "Retry-After", &value) != NGX_OK) {
        json_decref(details);
        return NGX_ERROR;
    }

    if (details == NULL) {
        details = json_pack("[{ss ss}]", "dependency", what,
                            "status", "unavailable");
    }

    ngx_snprintf(message, sizeof(message) - 1, "%s is unavailable%Z", what);

    return um_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                         UM_SERVICE_UNAVAILABLE, (char *) message, details);
}


ngx_int_t
um_header_add(ngx_http_request_t *r, const char *name, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}


/* serializes and sends a document; takes the reference to root */
static ngx_int_t
um_send_root(ngx_http_request_t *r, ngx_uint_t status, json_t *root)
{
    u_char  *body;
    size_t   len;

    if (root == NULL) {
        return NGX_ERROR;
    }

    len = json_dumpb(root, NULL, 0, UM_JSON_FLAGS);

    body = ngx_pnalloc(r->pool, len);

    if (body == NULL || json_dumpb(root, (char *) body, len, UM_JSON_FLAGS)
                        != len)
    {
        json_decref(root);
        return NGX_ERROR;
    }

    json_decref(root);

    return um_send(r, status, &um_json_type, body, len);
}
