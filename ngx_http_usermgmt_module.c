/*
 * usermgmt: a user-management service inside nginx.
 *
 * This file is the map: the directives, the configuration they build, the
 * phase handlers they install, and the per-worker connection caches made
 * when a worker starts.  A request then goes through src/http/ (body,
 * router, answers, metrics) to an endpoint in src/api/, which reaches
 * PostgreSQL and Redis through src/io/.
 */

#include "ngx_http_usermgmt.h"
#include "http/um_http.h"
#include "auth/um_sealed.h"
#include "auth/um_totp.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>


static void *ngx_http_usermgmt_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_usermgmt_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_usermgmt_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_usermgmt_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_usermgmt_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_usermgmt_init_process(ngx_cycle_t *cycle);
static void ngx_http_usermgmt_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_usermgmt_postgres(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_usermgmt_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_usermgmt_content(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_usermgmt_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_usermgmt_require(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_usermgmt_mfa_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_usermgmt_cleanup_mfa_key(void *data);
static char *ngx_http_usermgmt_argon2(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_usermgmt_preconfiguration(ngx_conf_t *cf);
static void ngx_http_usermgmt_cleanup_keys(void *data);
static void ngx_http_usermgmt_cleanup_blocklist(void *data);


static ngx_conf_enum_t  ngx_http_usermgmt_auth_modes[] = {
    { ngx_string("off"), UM_AUTH_OFF },
    { ngx_string("on"), UM_AUTH_ON },
    { ngx_string("optional"), UM_AUTH_OPTIONAL },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_usermgmt_commands[] = {

    { ngx_string("usermgmt_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_usermgmt_postgres,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("usermgmt_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_usermgmt_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("usermgmt_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_usermgmt_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      UM_CONTENT_API,
      NULL },

    { ngx_string("usermgmt_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_usermgmt_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      UM_CONTENT_HEALTH,
      NULL },

    { ngx_string("usermgmt_ready"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_usermgmt_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      UM_CONTENT_READY,
      NULL },

    { ngx_string("usermgmt_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_usermgmt_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      UM_CONTENT_METRICS,
      NULL },

    { ngx_string("usermgmt_jwks"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_usermgmt_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      UM_CONTENT_JWKS,
      NULL },

    { ngx_string("usermgmt_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_loc_conf_t, auth),
      &ngx_http_usermgmt_auth_modes },

    { ngx_string("usermgmt_require"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_usermgmt_require,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("usermgmt_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_usermgmt_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("usermgmt_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_usermgmt_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("usermgmt_user_delete"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_loc_conf_t, user_delete),
      NULL },

    { ngx_string("usermgmt_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_usermgmt_jwt_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("usermgmt_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, issuer),
      NULL },

    { ngx_string("usermgmt_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, audience),
      NULL },

    { ngx_string("usermgmt_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, leeway),
      NULL },

    { ngx_string("usermgmt_access_token_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, access_ttl),
      NULL },

    { ngx_string("usermgmt_refresh_token_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, refresh_ttl),
      NULL },

    { ngx_string("usermgmt_argon2"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE3,
      ngx_http_usermgmt_argon2,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("usermgmt_password_min_length"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, password_min),
      NULL },

    { ngx_string("usermgmt_password_blocklist"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, blocklist_path),
      NULL },

    { ngx_string("usermgmt_login_max_failures"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, max_failures),
      NULL },

    { ngx_string("usermgmt_login_lockout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, lockout),
      NULL },

    { ngx_string("usermgmt_login_ip_max_failures"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, ip_max_failures),
      NULL },

    { ngx_string("usermgmt_mfa_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_usermgmt_mfa_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("usermgmt_mfa_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, mfa_issuer),
      NULL },

    { ngx_string("usermgmt_mfa_challenge_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, mfa_ttl),
      NULL },

    { ngx_string("usermgmt_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_usermgmt_main_conf_t, thread_pool_name),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_usermgmt_module_ctx = {
    ngx_http_usermgmt_preconfiguration,    /* preconfiguration */
    ngx_http_usermgmt_postconfiguration,   /* postconfiguration */

    ngx_http_usermgmt_create_main_conf,    /* create main configuration */
    ngx_http_usermgmt_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_usermgmt_create_loc_conf,     /* create location configuration */
    ngx_http_usermgmt_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_usermgmt_module = {
    NGX_MODULE_V1,
    &ngx_http_usermgmt_module_ctx,         /* module context */
    ngx_http_usermgmt_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_usermgmt_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_usermgmt_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_usermgmt_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_usermgmt_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_usermgmt_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->pg.conninfo = { 0, NULL };
     *     mcf->redis.host = { 0, NULL };
     *     mcf->pg_pool = NULL;
     *     mcf->redis_client = NULL;
     */

    mcf->pg.max = NGX_CONF_UNSET_UINT;
    mcf->pg.queue = NGX_CONF_UNSET_UINT;
    mcf->pg.timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.connect_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.queue_timeout = NGX_CONF_UNSET_MSEC;

    mcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    mcf->redis.connect_timeout = NGX_CONF_UNSET_MSEC;

    mcf->leeway = NGX_CONF_UNSET;
    mcf->access_ttl = NGX_CONF_UNSET;
    mcf->refresh_ttl = NGX_CONF_UNSET;
    mcf->password_min = NGX_CONF_UNSET_UINT;
    mcf->max_failures = NGX_CONF_UNSET_UINT;
    mcf->lockout = NGX_CONF_UNSET;
    mcf->ip_max_failures = NGX_CONF_UNSET_UINT;
    mcf->mfa_ttl = NGX_CONF_UNSET;

    return mcf;
}


static char *
ngx_http_usermgmt_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    char                 err[256];
    u_char               random[32], *path;
    um_jwt_key_t        *key;
    ngx_pool_cleanup_t  *cln;

    ngx_conf_init_uint_value(mcf->pg.max, 16);
    ngx_conf_init_uint_value(mcf->pg.queue, 256);
    ngx_conf_init_msec_value(mcf->pg.timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg.connect_timeout, 2000);
    ngx_conf_init_msec_value(mcf->pg.queue_timeout, 1000);

    ngx_conf_init_msec_value(mcf->redis.timeout, 50);
    ngx_conf_init_msec_value(mcf->redis.connect_timeout, 1000);

    if (mcf->issuer.data == NULL) {
        ngx_str_set(&mcf->issuer, UM_SERVICE);
    }

    if (mcf->audience.data == NULL) {
        ngx_str_set(&mcf->audience, UM_SERVICE);
    }

    ngx_conf_init_value(mcf->leeway, 60);
    ngx_conf_init_value(mcf->access_ttl, 900);
    ngx_conf_init_value(mcf->refresh_ttl, 30 * 86400);

    ngx_conf_init_uint_value(mcf->password_min, 8);
    ngx_conf_init_uint_value(mcf->max_failures, 5);
    ngx_conf_init_value(mcf->lockout, 900);
    ngx_conf_init_uint_value(mcf->ip_max_failures, 50);

    if (mcf->mfa_issuer.data == NULL) {
        ngx_str_set(&mcf->mfa_issuer, UM_SERVICE);
    }

    ngx_conf_init_value(mcf->mfa_ttl, 300);

    if (mcf->argon2.m_kib == 0) {
        /* OWASP Password Storage Cheat Sheet */
        mcf->argon2.m_kib = 19456;
        mcf->argon2.t = 2;
        mcf->argon2.p = 1;
    }

    if (mcf->access_ttl < 1 || mcf->refresh_ttl < 1 || mcf->lockout < 1
        || mcf->max_failures < 1 || mcf->mfa_ttl < 1)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "usermgmt token lifetimes, the lockout time and "
                           "\"usermgmt_login_max_failures\" must be "
                           "positive");
        return NGX_CONF_ERROR;
    }

    if (mcf->password_min < 1 || mcf->password_min > 128) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"usermgmt_password_min_length\" must be "
                           "between 1 and 128");
        return NGX_CONF_ERROR;
    }

    if (mcf->needs_keys) {
        if (mcf->jwt_keys == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "usermgmt needs a signing key: add "
                               "\"usermgmt_jwt_key\" to the http block");
            return NGX_CONF_ERROR;
        }

        key = mcf->jwt_keys->elts;

        if (!key[0].can_sign) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the first \"usermgmt_jwt_key\" signs tokens "
                               "and must be a secret or a private key");
            return NGX_CONF_ERROR;
        }
    }

    /* Debian's cracklib word list holds the common passwords */
    if (mcf->blocklist_path.data == NULL) {
        ngx_str_set(&mcf->blocklist_path, "/usr/share/dict/cracklib-small");

        if (ngx_file_info(mcf->blocklist_path.data, (ngx_file_info_t *) err)
            == NGX_FILE_ERROR)
        {
            ngx_str_set(&mcf->blocklist_path, "off");
        }
    }

    if (ngx_strcmp(mcf->blocklist_path.data, "off") != 0) {
        if (ngx_conf_full_name(cf->cycle, &mcf->blocklist_path, 0)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        path = mcf->blocklist_path.data;

        mcf->blocklist = um_pw_blocklist_load((char *) path, err,
                                              sizeof(err));
        if (mcf->blocklist == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"usermgmt_password_blocklist\": %s", err);
            return NGX_CONF_ERROR;
        }

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_usermgmt_cleanup_blocklist;
        cln->data = mcf->blocklist;
    }

    /*
     * A hash of a password nobody knows: unknown accounts are checked
     * against it, so they take as long to refuse as known ones.
     */
    if (RAND_bytes(random, sizeof(random)) != 1
        || um_password_hash((char *) random, sizeof(random), &mcf->argon2,
                            mcf->dummy_hash, sizeof(mcf->dummy_hash))
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "usermgmt: cannot compute a password hash");
        return NGX_CONF_ERROR;
    }

    mcf->thread_pool = ngx_thread_pool_add(cf,
                           mcf->thread_pool_name.data
                           ? &mcf->thread_pool_name : NULL);
    if (mcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_usermgmt_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_usermgmt_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_usermgmt_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->content = NGX_CONF_UNSET_UINT;
    lcf->max_body = NGX_CONF_UNSET;
    lcf->auth = NGX_CONF_UNSET_UINT;
    lcf->requires = NGX_CONF_UNSET_PTR;
    lcf->limits = NGX_CONF_UNSET_PTR;
    lcf->user_delete = NGX_CONF_UNSET;

    return lcf;
}


static char *
ngx_http_usermgmt_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_usermgmt_loc_conf_t  *prev = parent;
    ngx_http_usermgmt_loc_conf_t  *conf = child;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_usermgmt_main_conf_t  *mcf;

    /* a content handler belongs to its own location, it is not inherited */
    if (conf->content == NGX_CONF_UNSET_UINT) {
        conf->content = UM_CONTENT_NONE;
    }

    ngx_conf_merge_off_value(conf->max_body, prev->max_body, NGX_CONF_UNSET);
    ngx_conf_merge_value(conf->user_delete, prev->user_delete, 1);
    ngx_conf_merge_ptr_value(conf->requires, prev->requires, NULL);

    /* a requirement needs someone to meet it */
    ngx_conf_merge_uint_value(conf->auth, prev->auth,
                              conf->requires ? UM_AUTH_ON : UM_AUTH_OFF);

    if (conf->auth != UM_AUTH_OFF) {
        mcf = ngx_http_conf_get_module_main_conf(cf,
                                                 ngx_http_usermgmt_module);

        if (mcf->jwt_keys == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"usermgmt_auth\" needs a key: add "
                               "\"usermgmt_jwt_key\" to the http block");
            return NGX_CONF_ERROR;
        }
    }

    if (conf->limits == NGX_CONF_UNSET_PTR) {
        conf->limits = (prev->limits == NGX_CONF_UNSET_PTR) ? NULL
                                                             : prev->limits;
        conf->limit_after_body = prev->limit_after_body;
        conf->limit_file = prev->limit_file;
        conf->limit_line = prev->limit_line;
    }

    if (conf->limit_after_body && conf->content != UM_CONTENT_API) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"usermgmt_limit\" with a key=account zone needs a "
                      "\"usermgmt_api\" location in %V:%ui",
                      &conf->limit_file, conf->limit_line);
        return NGX_CONF_ERROR;
    }

    if (conf->content != UM_CONTENT_API) {
        return NGX_CONF_OK;
    }

    /*
     * The API answers an oversized body with its own JSON error, so it
     * takes the size limit over from the core module (whose answer is an
     * HTML page) and keeps accepted bodies in memory, never in a file that
     * would have to be read back with blocking calls.
     */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->max_body == NGX_CONF_UNSET) {
        conf->max_body = clcf->client_max_body_size;
    }

    if (conf->max_body == 0 || conf->max_body > 8 * 1024 * 1024) {
        conf->max_body = 8 * 1024 * 1024;
    }

    clcf->client_max_body_size = 0;

    /* room for the chunked framing of a body of the largest size */
    if ((off_t) clcf->client_body_buffer_size
        < conf->max_body + conf->max_body / 4 + 4096)
    {
        clcf->client_body_buffer_size = (size_t) (conf->max_body
                                                  + conf->max_body / 4
                                                  + 4096);
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_usermgmt_preconfiguration(ngx_conf_t *cf)
{
    return um_access_add_variables(cf);
}


static ngx_int_t
ngx_http_usermgmt_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_usermgmt_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_usermgmt_module);

    if (um_metrics_add_zone(cf, mcf) != NGX_OK
        || um_revoke_add_zone(cf, mcf) != NGX_OK
        || um_limit_add_zone(cf, mcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = um_metrics_log_handler;

    /*
     * Limits, then the token, at the start of the rewrite phase: before
     * the location's "return" and "rewrite" (nginx runs a phase's handlers
     * in the reverse order of their registration, and a dynamic module's
     * ahead of the built-in ones).
     */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_usermgmt_access_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_usermgmt_limit_handler;

    return um_request_body_filter_init();
}


static ngx_int_t
ngx_http_usermgmt_init_process(ngx_cycle_t *cycle)
{
    um_pg_stats_t                  *pg_stats;
    um_redis_stats_t               *redis_stats;
    ngx_http_usermgmt_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_usermgmt_module);

    if (mcf == NULL) {
        return NGX_OK;
    }

    if (um_totp_init() != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "usermgmt: liboath could not be initialised");
        return NGX_ERROR;
    }

    if (um_metrics_attach_worker(mcf, &pg_stats, &redis_stats) != NGX_OK) {
        return NGX_ERROR;
    }

    if (mcf->pg_set) {
        mcf->pg_pool = um_pg_pool_create(&mcf->pg, pg_stats, cycle->log);
        if (mcf->pg_pool == NULL) {
            return NGX_ERROR;
        }
    }

    if (mcf->redis_set) {
        mcf->redis_client = um_redis_create(&mcf->redis, redis_stats,
                                            cycle->log);
        if (mcf->redis_client == NULL) {
            return NGX_ERROR;
        }
    }

    return um_revoke_init_worker(mcf, cycle->log);
}


static void
ngx_http_usermgmt_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_usermgmt_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_usermgmt_module);

    if (mcf == NULL) {
        return;
    }

    um_pg_pool_destroy(mcf->pg_pool);
    mcf->pg_pool = NULL;

    um_revoke_exit_worker();
    um_token_cache_free();

    um_redis_destroy(mcf->redis_client);
    mcf->redis_client = NULL;

    um_metrics_detach_worker(mcf);
}


/* "name=value" parameters of a directive, by table */
typedef struct {
    const char   *name;         /* with its '=' */
    ngx_uint_t    msec;         /* a time, else a number */
    size_t        offset;
    ngx_int_t     min;
    ngx_int_t     max;
} ngx_http_usermgmt_param_t;


static ngx_http_usermgmt_param_t  ngx_http_usermgmt_pg_params[] = {
    { "max=", 0, offsetof(um_pg_conf_t, max), 1, 1024 },
    { "queue=", 0, offsetof(um_pg_conf_t, queue), 0, 65536 },
    { "timeout=", 1, offsetof(um_pg_conf_t, timeout), 1, 0 },
    { "connect_timeout=", 1, offsetof(um_pg_conf_t, connect_timeout), 1, 0 },
    { "queue_timeout=", 1, offsetof(um_pg_conf_t, queue_timeout), 1, 0 },
    { NULL, 0, 0, 0, 0 }
};


static ngx_http_usermgmt_param_t  ngx_http_usermgmt_redis_params[] = {
    { "timeout=", 1, offsetof(um_redis_conf_t, timeout), 1, 0 },
    { "connect_timeout=", 1, offsetof(um_redis_conf_t, connect_timeout),
      1, 0 },
    { NULL, 0, 0, 0, 0 }
};


static char *
ngx_http_usermgmt_params(ngx_conf_t *cf, ngx_command_t *cmd, ngx_uint_t first,
    ngx_http_usermgmt_param_t *params, void *base)
{
    size_t                      len;
    ngx_int_t                   n;
    ngx_str_t                  *value, s;
    ngx_msec_t                  ms;
    ngx_uint_t                  i;
    ngx_http_usermgmt_param_t  *p;

    value = cf->args->elts;

    for (i = first; i < cf->args->nelts; i++) {

        for (p = params; p->name; p++) {
            len = ngx_strlen(p->name);

            if (value[i].len > len
                && ngx_strncmp(value[i].data, p->name, len) == 0)
            {
                break;
            }
        }

        if (p->name == NULL) {
            goto invalid;
        }

        s.data = value[i].data + len;
        s.len = value[i].len - len;

        if (p->msec) {
            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            *(ngx_msec_t *) ((u_char *) base + p->offset) = ms;
            continue;
        }

        n = ngx_atoi(s.data, s.len);
        if (n < p->min || n > p->max) {
            goto invalid;
        }

        *(ngx_uint_t *) ((u_char *) base + p->offset) = n;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid parameter \"%V\"",
                       &cmd->name, &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * usermgmt_postgres "conninfo" [max=N] [queue=N] [timeout=T]
 *                   [connect_timeout=T] [queue_timeout=T];
 */
static char *
ngx_http_usermgmt_postgres(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    char       *err;
    ngx_str_t  *value;

    if (mcf->pg_set) {
        return "is duplicate";
    }

    value = cf->args->elts;
    mcf->pg.conninfo = value[1];

    err = um_pg_check_conninfo(&value[1], cf->pool);
    if (err != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s",
                           &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    mcf->pg_set = 1;

    return ngx_http_usermgmt_params(cf, cmd, 2, ngx_http_usermgmt_pg_params,
                                    &mcf->pg);
}


/* usermgmt_redis address:port | unix:/path [timeout=T] [connect_timeout=T]; */
static char *
ngx_http_usermgmt_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    char       *err;
    ngx_str_t  *value;

    if (mcf->redis_set) {
        return "is duplicate";
    }

    value = cf->args->elts;

    err = um_redis_parse_addr(&value[1], &mcf->redis);
    if (err != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": \"%V\" %s",
                           &cmd->name, &value[1], err);
        return NGX_CONF_ERROR;
    }

    mcf->redis_set = 1;

    return ngx_http_usermgmt_params(cf, cmd, 2,
                                    ngx_http_usermgmt_redis_params,
                                    &mcf->redis);
}


/* usermgmt_api; usermgmt_health; usermgmt_ready; usermgmt_metrics; */
static char *
ngx_http_usermgmt_content(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_loc_conf_t  *lcf = conf;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_usermgmt_main_conf_t  *mcf;

    if (lcf->content != NGX_CONF_UNSET_UINT) {
        return "is duplicate: a location has one usermgmt content directive";
    }

    lcf->content = cmd->offset;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_usermgmt_module);

    if (lcf->content == UM_CONTENT_API || lcf->content == UM_CONTENT_JWKS) {
        mcf->needs_keys = 1;
    }

    if ((lcf->content == UM_CONTENT_API || lcf->content == UM_CONTENT_READY)
        && !mcf->pg_set)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs \"usermgmt_postgres\" earlier in "
                           "the http block", &cmd->name);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_usermgmt_content_handler;

    return NGX_CONF_OK;
}


/* usermgmt_mfa_key FILE; 32 random bytes (raw or hex) sealing TOTP secrets */
static char *
ngx_http_usermgmt_mfa_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    ngx_str_t           *value, file;
    const char          *err;
    ngx_pool_cleanup_t  *cln;

    if (mcf->mfa_key_set) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (um_sealed_key_load((char *) file.data, mcf->mfa_key, &err) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": \"%V\": %s",
                           &cmd->name, &file, err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_usermgmt_cleanup_mfa_key;
    cln->data = mcf->mfa_key;

    mcf->mfa_key_set = 1;

    return NGX_CONF_OK;
}


static void
ngx_http_usermgmt_cleanup_mfa_key(void *data)
{
    OPENSSL_cleanse(data, UM_SEALED_KEY_LEN);
}


/* usermgmt_jwt_key hs256|hs384|hs512|rs256|es256|eddsa FILE [kid=ID]; */
static char *
ngx_http_usermgmt_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    char                 err[512];
    ngx_str_t           *value, file;
    ngx_uint_t           i;
    um_jwt_key_t        *key, *keys;
    const char          *kid;
    ngx_pool_cleanup_t  *cln;

    value = cf->args->elts;
    kid = NULL;

    if (cf->args->nelts == 4) {
        if (ngx_strncmp(value[3].data, "kid=", 4) != 0 || value[3].len < 5
            || value[3].len > 68)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": invalid parameter \"%V\"",
                               &cmd->name, &value[3]);
            return NGX_CONF_ERROR;
        }

        kid = (const char *) value[3].data + 4;
    }

    if (mcf->jwt_keys == NULL) {
        mcf->jwt_keys = ngx_array_create(cf->pool, 4, sizeof(um_jwt_key_t));
        if (mcf->jwt_keys == NULL) {
            return NGX_CONF_ERROR;
        }

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_usermgmt_cleanup_keys;
        cln->data = mcf->jwt_keys;
    }

    file = value[2];

    if (ngx_conf_full_name(cf->cycle, &file, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    key = ngx_array_push(mcf->jwt_keys);
    if (key == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(key, sizeof(um_jwt_key_t));

    if (um_jwt_key_load(key, (char *) value[1].data, (char *) file.data, kid,
                        err, sizeof(err))
        != 0)
    {
        mcf->jwt_keys->nelts--;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s",
                           &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    keys = mcf->jwt_keys->elts;

    for (i = 0; i + 1 < mcf->jwt_keys->nelts; i++) {
        if (ngx_strcmp(keys[i].kid, key->kid) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": duplicate kid \"%s\"",
                               &cmd->name, key->kid);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* usermgmt_require role=NAME | permission=RESOURCE:ACTION; */
static char *
ngx_http_usermgmt_require(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_loc_conf_t  *lcf = conf;

    ngx_str_t     *value;
    um_require_t  *req;

    value = cf->args->elts;

    if (lcf->requires == NGX_CONF_UNSET_PTR) {
        lcf->requires = ngx_array_create(cf->pool, 2, sizeof(um_require_t));
        if (lcf->requires == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    req = ngx_array_push(lcf->requires);
    if (req == NULL) {
        return NGX_CONF_ERROR;
    }

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "role=", 5) == 0) {
        req->type = UM_REQUIRE_ROLE;
        req->value.data = value[1].data + 5;
        req->value.len = value[1].len - 5;

    } else if (value[1].len > 11
               && ngx_strncmp(value[1].data, "permission=", 11) == 0)
    {
        req->type = UM_REQUIRE_PERMISSION;
        req->value.data = value[1].data + 11;
        req->value.len = value[1].len - 11;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": expected \"role=NAME\" or "
                           "\"permission=NAME\", not \"%V\"",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    if (req->value.len > 100) {
        return "has a name longer than 100 characters";
    }

    return NGX_CONF_OK;
}


/* usermgmt_argon2 m=19456 t=2 p=1;  (memory in KiB) */
static char *
ngx_http_usermgmt_argon2(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len < 3 || value[i].data[1] != '=') {
            goto invalid;
        }

        n = ngx_atoi(value[i].data + 2, value[i].len - 2);

        switch (value[i].data[0]) {

        case 'm':
            /* the bounds um_password_verify() accepts */
            if (n < 8192 || n > 1024 * 1024) {
                goto invalid;
            }

            mcf->argon2.m_kib = n;
            break;

        case 't':
            if (n < 1 || n > 64) {
                goto invalid;
            }

            mcf->argon2.t = n;
            break;

        case 'p':
            if (n < 1 || n > 64) {
                goto invalid;
            }

            mcf->argon2.p = n;
            break;

        default:
            goto invalid;
        }
    }

    if (mcf->argon2.m_kib == 0 || mcf->argon2.t == 0 || mcf->argon2.p == 0) {
        return "needs m=, t= and p=";
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid parameter \"%V\"",
                       &cmd->name, &value[i]);
    return NGX_CONF_ERROR;
}


static void
ngx_http_usermgmt_cleanup_keys(void *data)
{
    ngx_array_t  *keys = data;

    ngx_uint_t     i;
    um_jwt_key_t  *key;

    key = keys->elts;

    for (i = 0; i < keys->nelts; i++) {
        um_jwt_key_free(&key[i]);
    }
}


static void
ngx_http_usermgmt_cleanup_blocklist(void *data)
{
    um_pw_blocklist_free(data);
}
