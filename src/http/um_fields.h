/*
 * Declarative checks of JSON request bodies.  An endpoint lists its fields;
 * um_fields_check() refuses unknown fields, wrong types and bad values with
 * one 422 answer whose details name every offending field.
 */

#ifndef _UM_FIELDS_H_INCLUDED_
#define _UM_FIELDS_H_INCLUDED_

#include "um_http.h"


#define UM_F_TEXT       1       /* any text up to max code points */
#define UM_F_EMAIL      2
#define UM_F_NAME       3       /* a personal name, up to max */
#define UM_F_PHONE      4       /* E.164 */
#define UM_F_SLUG       5
#define UM_F_UUID       6
#define UM_F_PASSWORD   7       /* text; the policy is checked apart */
#define UM_F_USERNAME   8       /* 3..50 of [A-Za-z0-9._-] */
#define UM_F_URL        9       /* http(s) URL up to max */
#define UM_F_DATE       10      /* YYYY-MM-DD */
#define UM_F_BOOL       11
#define UM_F_INT        12      /* 0..max */
#define UM_F_OBJECT     13      /* any JSON object */
#define UM_F_ADDRESS    14      /* street, city, state, postal_code,
                                   country */
#define UM_F_UUIDS      15      /* array of UUIDs, 1..max */
#define UM_F_STRINGS    16      /* array of texts, 0..max */
#define UM_F_NUMBER     17      /* a number from -max to max */

#define UM_REQUIRED     0x01
#define UM_NULLABLE     0x02


typedef struct {
    const char     *name;
    ngx_uint_t      type;
    ngx_uint_t      flags;
    size_t          max;
} um_field_t;


/*
 * NGX_OK when the body passes.  Otherwise the 422 answer has been sent and
 * ctx->rc holds what the handler returns.
 */
ngx_int_t um_fields_check(um_ctx_t *ctx, const um_field_t *fields);

/* a string field of the checked body, or NULL when absent or null */
const char *um_field_str(um_ctx_t *ctx, const char *name);


#endif /* _UM_FIELDS_H_INCLUDED_ */
