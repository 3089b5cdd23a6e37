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

      ngx_null_command
};


static ngx_http_module_t  ngx_http_usermgmt_module_ctx = {
    NULL,                                  /* preconfiguration */
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

    return mcf;
}


static char *
ngx_http_usermgmt_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    ngx_conf_init_uint_value(mcf->pg.max, 16);
    ngx_conf_init_uint_value(mcf->pg.queue, 256);
    ngx_conf_init_msec_value(mcf->pg.timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg.connect_timeout, 2000);
    ngx_conf_init_msec_value(mcf->pg.queue_timeout, 1000);

    ngx_conf_init_msec_value(mcf->redis.timeout, 50);
    ngx_conf_init_msec_value(mcf->redis.connect_timeout, 1000);

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

    return lcf;
}


static char *
ngx_http_usermgmt_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_usermgmt_loc_conf_t  *prev = parent;
    ngx_http_usermgmt_loc_conf_t  *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    /* a content handler belongs to its own location, it is not inherited */
    if (conf->content == NGX_CONF_UNSET_UINT) {
        conf->content = UM_CONTENT_NONE;
    }

    ngx_conf_merge_off_value(conf->max_body, prev->max_body, NGX_CONF_UNSET);

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

    if ((off_t) clcf->client_body_buffer_size < conf->max_body) {
        clcf->client_body_buffer_size = (size_t) conf->max_body;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_usermgmt_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_usermgmt_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_usermgmt_module);

    if (um_metrics_add_zone(cf, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = um_metrics_log_handler;

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

    return NGX_OK;
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

    um_redis_destroy(mcf->redis_client);
    mcf->redis_client = NULL;

    um_metrics_detach_worker(mcf);
}


/*
 * usermgmt_postgres "conninfo" [max=N] [queue=N] [timeout=T]
 *                   [connect_timeout=T] [queue_timeout=T];
 */
static char *
ngx_http_usermgmt_postgres(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    char        *err;
    ngx_str_t   *value, s;
    ngx_int_t    n;
    ngx_msec_t   ms, *target;
    ngx_uint_t   i;

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

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max=", 4) == 0
            || ngx_strncmp(value[i].data, "queue=", 6) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            n = ngx_atoi(s.data, s.len);

            if (value[i].data[0] == 'm') {
                if (n < 1 || n > 1024) {
                    goto invalid;
                }

                mcf->pg.max = n;

            } else {
                if (n < 0 || n > 65536) {
                    goto invalid;
                }

                mcf->pg.queue = n;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            target = &mcf->pg.timeout;

        } else if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            target = &mcf->pg.connect_timeout;

        } else if (ngx_strncmp(value[i].data, "queue_timeout=", 14) == 0) {
            target = &mcf->pg.queue_timeout;

        } else {
            goto invalid;
        }

        s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
        s.len = value[i].data + value[i].len - s.data;

        ms = ngx_parse_time(&s, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            goto invalid;
        }

        *target = ms;
    }

    mcf->pg_set = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid parameter \"%V\"",
                       &cmd->name, &value[i]);
    return NGX_CONF_ERROR;
}


/* usermgmt_redis address:port | unix:/path [timeout=T] [connect_timeout=T]; */
static char *
ngx_http_usermgmt_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_usermgmt_main_conf_t  *mcf = conf;

    char        *err;
    ngx_str_t   *value, s;
    ngx_msec_t   ms, *target;
    ngx_uint_t   i;

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

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            target = &mcf->redis.timeout;

        } else if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            target = &mcf->redis.connect_timeout;

        } else {
            goto invalid;
        }

        s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
        s.len = value[i].data + value[i].len - s.data;

        ms = ngx_parse_time(&s, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            goto invalid;
        }

        *target = ms;
    }

    mcf->redis_set = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": invalid parameter \"%V\"",
                       &cmd->name, &value[i]);
    return NGX_CONF_ERROR;
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
