#include "um_fields.h"
#include "um_validate.h"


static const char *um_field_value_error(const um_field_t *f, json_t *v,
    const char **rule);
static ngx_uint_t um_is_username(const u_char *p, size_t len);
static ngx_uint_t um_is_url(const u_char *p, size_t len);
static ngx_uint_t um_is_date(const u_char *p, size_t len);


static const um_field_t  um_address_fields[] = {
    { "street", UM_F_TEXT, UM_NULLABLE, 200 },
    { "city", UM_F_TEXT, UM_NULLABLE, 100 },
    { "state", UM_F_TEXT, UM_NULLABLE, 100 },
    { "postal_code", UM_F_TEXT, UM_NULLABLE, 20 },
    { "country", UM_F_TEXT, UM_NULLABLE, 100 },
    { NULL, 0, 0, 0 }
};


ngx_int_t
um_fields_check(um_ctx_t *ctx, const um_field_t *fields)
{
    json_t            *details, *v;
    const char        *key, *msg, *rule;
    const um_field_t  *f;

    details = json_array();
    if (details == NULL) {
        ctx->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_ERROR;
    }

    json_object_foreach(ctx->body, key, v) {

        for (f = fields; f->name; f++) {
            if (ngx_strcmp(f->name, key) == 0) {
                break;
            }
        }

        if (f->name == NULL) {
            json_array_append_new(details,
                json_pack("{ss ss ss}", "field", key, "rule", "unknown",
                          "message", "this field is not accepted here"));
            continue;
        }

        if (json_is_null(v)) {
            if (!(f->flags & UM_NULLABLE)) {
                json_array_append_new(details,
                    json_pack("{ss ss ss}", "field", key, "rule", "type",
                              "message", "must not be null"));
            }

            continue;
        }

        msg = um_field_value_error(f, v, &rule);

        if (msg != NULL) {
            json_array_append_new(details,
                json_pack("{ss ss ss}", "field", key, "rule", rule,
                          "message", msg));
        }
    }

    for (f = fields; f->name; f++) {
        if ((f->flags & UM_REQUIRED)
            && (v = json_object_get(ctx->body, f->name)) == NULL)
        {
            json_array_append_new(details,
                json_pack("{ss ss ss}", "field", f->name, "rule", "required",
                          "message", "this field is required"));
        }
    }

    if (json_array_size(details) == 0) {
        json_decref(details);
        return NGX_OK;
    }

    ctx->rc = um_send_error(ctx->r, 422, UM_VALIDATION_FAILED,
                            "the request failed validation", details);

    return NGX_DECLINED;
}


const char *
um_field_str(um_ctx_t *ctx, const char *name)
{
    json_t  *v;

    v = json_object_get(ctx->body, name);

    return json_is_string(v) ? json_string_value(v) : NULL;
}


static const char *
um_field_value_error(const um_field_t *f, json_t *v, const char **rule)
{
    size_t         len, i, n;
    json_t        *item;
    const char    *key, *msg;
    const u_char  *s;
    const um_field_t  *af;

    *rule = "type";

    switch (f->type) {

    case UM_F_BOOL:
        return json_is_boolean(v) ? NULL : "must be true or false";

    case UM_F_INT:
        if (!json_is_integer(v)) {
            return "must be an integer";
        }

        *rule = "range";

        return (json_integer_value(v) < 0
                || (f->max && (size_t) json_integer_value(v) > f->max))
               ? "is out of range" : NULL;

    case UM_F_NUMBER:
        if (!json_is_number(v)) {
            return "must be a number";
        }

        *rule = "range";

        return (json_number_value(v) < -(double) f->max
                || json_number_value(v) > (double) f->max)
               ? "is out of range" : NULL;

    case UM_F_OBJECT:
        if (!json_is_object(v)) {
            return "must be an object";
        }

        *rule = "max_length";

        return json_object_size(v) > 100 ? "has too many keys" : NULL;

    case UM_F_ADDRESS:
        if (!json_is_object(v)) {
            return "must be an object";
        }

        json_object_foreach(v, key, item) {
            for (af = um_address_fields; af->name; af++) {
                if (ngx_strcmp(af->name, key) == 0) {
                    break;
                }
            }

            if (af->name == NULL) {
                *rule = "unknown";
                return "has a key other than street, city, state, "
                       "postal_code and country";
            }

            if (!json_is_null(item)) {
                msg = um_field_value_error(af, item, rule);
                if (msg != NULL) {
                    return msg;
                }
            }
        }

        return NULL;

    case UM_F_UUIDS:
    case UM_F_STRINGS:
        if (!json_is_array(v)) {
            return "must be an array";
        }

        n = json_array_size(v);
        *rule = "max_length";

        if (n > (f->max ? f->max : 100)) {
            return "has too many items";
        }

        if (f->type == UM_F_UUIDS && n == 0) {
            *rule = "required";
            return "must not be empty";
        }

        json_array_foreach(v, i, item) {
            *rule = "type";

            if (!json_is_string(item)) {
                return "must hold strings";
            }

            s = (const u_char *) json_string_value(item);
            len = json_string_length(item);
            *rule = "format";

            if (f->type == UM_F_UUIDS ? !um_is_uuid(s, len)
                                      : !um_is_text(s, len) || len > 200)
            {
                return f->type == UM_F_UUIDS ? "must hold UUIDs"
                                             : "must hold short texts";
            }
        }

        return NULL;
    }

    /* the rest are strings */

    if (!json_is_string(v)) {
        return "must be a string";
    }

    s = (const u_char *) json_string_value(v);
    len = json_string_length(v);

    *rule = "format";

    if (!um_is_text(s, len)) {
        return "must be valid UTF-8 text";
    }

    switch (f->type) {

    case UM_F_EMAIL:
        return um_is_email(s, len) ? NULL : "must be a valid email address";

    case UM_F_NAME:
        if (len == 0) {
            *rule = "min_length";
            return "must not be empty";
        }

        if (um_text_length(s, len) > f->max) {
            *rule = "max_length";
            return "is too long";
        }

        return um_is_name(s, len, f->max)
               ? NULL : "may hold letters, spaces, hyphens and apostrophes";

    case UM_F_PHONE:
        return um_is_e164(s, len)
               ? NULL : "must be in E.164 format, e.g. +1234567890";

    case UM_F_SLUG:
        return um_is_slug(s, len)
               ? NULL : "must be 1 to 50 lower-case letters, digits, "
                        "'-' or '_'";

    case UM_F_UUID:
        return um_is_uuid(s, len) ? NULL : "must be a UUID";

    case UM_F_USERNAME:
        return um_is_username(s, len)
               ? NULL : "must be 3 to 50 letters, digits, '.', '_' or '-'";

    case UM_F_URL:
        if (len > f->max) {
            *rule = "max_length";
            return "is too long";
        }

        return um_is_url(s, len) ? NULL : "must be an http(s) URL";

    case UM_F_DATE:
        return um_is_date(s, len) ? NULL : "must be a date as YYYY-MM-DD";

    case UM_F_PASSWORD:
        *rule = "max_length";
        return len > 1024 ? "is too long" : NULL;

    default: /* UM_F_TEXT */
        if (f->max && um_text_length(s, len) > f->max) {
            *rule = "max_length";
            return "is too long";
        }

        return NULL;
    }
}


static ngx_uint_t
um_is_username(const u_char *p, size_t len)
{
    size_t  i;

    if (len < 3 || len > 50) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!(isalnum(p[i]) || p[i] == '.' || p[i] == '_' || p[i] == '-')) {
            return 0;
        }
    }

    /* an "@" never appears, so a username is never taken for an email */
    return 1;
}


static ngx_uint_t
um_is_url(const u_char *p, size_t len)
{
    size_t  i, start;

    if (len > 8 && ngx_strncasecmp((u_char *) p, (u_char *) "https://", 8)
                   == 0)
    {
        start = 8;

    } else if (len > 7
               && ngx_strncasecmp((u_char *) p, (u_char *) "http://", 7) == 0)
    {
        start = 7;

    } else {
        return 0;
    }

    for (i = start; i < len; i++) {
        if (p[i] <= ' ' || p[i] == '"' || p[i] == '<' || p[i] == '>'
            || p[i] == '\\' || p[i] == 0x7f)
        {
            return 0;
        }
    }

    return p[start] != '/';
}


static ngx_uint_t
um_is_date(const u_char *p, size_t len)
{
    ngx_uint_t  y, m, d, i;
    static const ngx_uint_t  mdays[] = {
        31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (len != 10 || p[4] != '-' || p[7] != '-') {
        return 0;
    }

    for (i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && !isdigit(p[i])) {
            return 0;
        }
    }

    y = ngx_atoi((u_char *) p, 4);
    m = ngx_atoi((u_char *) p + 5, 2);
    d = ngx_atoi((u_char *) p + 8, 2);

    if (y < 1900 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) {
        return 0;
    }

    /* 29 February of a common year */
    if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    {
        return 0;
    }

    return 1;
}
