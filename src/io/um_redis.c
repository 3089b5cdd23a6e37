/*
 * hiredis calls every reply callback exactly once: with the reply, or with
 * NULL when the connection goes away.  A command therefore lives in a small
 * heap block that the callback frees; the caller holds only a handle whose
 * handler it can clear, so a reply arriving after its request has gone
 * touches nothing of that request.
 */

#include "um_redis.h"
#include "um_fd.h"
#include "um_backoff.h"




struct um_redis_s {
    um_redis_conf_t     *conf;
    um_redis_stats_t    *stats;
    ngx_log_t           *log;

    redisAsyncContext   *ac;
    ngx_connection_t    *c;
    ngx_event_t          connect_timer;
    unsigned             connected:1;
    unsigned             writing:1;     /* inside redisAsyncHandleWrite */

    um_backoff_t        backoff;        /* before a new connection */
};


struct um_redis_cmd_s {
    um_redis_t          *rd;
    um_redis_handler_pt  handler;
    void                *data;
    ngx_event_t          timer;
    unsigned             subscription:1;
};


static ngx_int_t um_redis_connect(um_redis_t *rd);
static void um_redis_drop(um_redis_t *rd);
static void um_redis_on_connect(const redisAsyncContext *ac, int status);
static void um_redis_disconnected(const redisAsyncContext *ac, int status);
static void um_redis_connect_timeout(ngx_event_t *ev);
static void um_redis_event_handler(ngx_event_t *ev);
static void um_redis_reply(redisAsyncContext *ac, void *r, void *privdata);
static void um_redis_cmd_timeout(ngx_event_t *ev);

static void um_redis_add_read(void *data);
static void um_redis_del_read(void *data);
static void um_redis_add_write(void *data);
static void um_redis_del_write(void *data);
static void um_redis_cleanup(void *data);


um_redis_t *
um_redis_create(um_redis_conf_t *conf, um_redis_stats_t *stats,
    ngx_log_t *log)
{
    um_redis_t  *rd;

    rd = ngx_calloc(sizeof(um_redis_t), log);
    if (rd == NULL) {
        return NULL;
    }

    rd->conf = conf;
    rd->stats = stats;
    rd->log = log;

    rd->connect_timer.handler = um_redis_connect_timeout;
    rd->connect_timer.data = rd;
    rd->connect_timer.log = log;
    rd->connect_timer.cancelable = 1;

    um_backoff_reset(&rd->backoff);

    (void) um_redis_connect(rd);

    return rd;
}


void
um_redis_destroy(um_redis_t *rd)
{
    if (rd == NULL) {
        return;
    }

    um_redis_drop(rd);
    ngx_free(rd);
}


um_redis_cmd_t *
um_redis_send(um_redis_t *rd, um_redis_handler_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen)
{
    um_redis_cmd_t  *cmd;

    if (rd->ac == NULL) {
        if (um_backoff_waiting(&rd->backoff)
            || um_redis_connect(rd) != NGX_OK)
        {
            return NULL;
        }
    }

    cmd = ngx_calloc(sizeof(um_redis_cmd_t), rd->log);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->rd = rd;
    cmd->handler = handler;
    cmd->data = data;

    /* commands sent while connecting wait in hiredis's output buffer */
    if (redisAsyncCommandArgv(rd->ac, um_redis_reply, cmd, argc, argv,
                              argvlen)
        != REDIS_OK)
    {
        ngx_free(cmd);
        rd->stats->errors++;
        return NULL;
    }

    cmd->timer.handler = um_redis_cmd_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = rd->log;
    ngx_add_timer(&cmd->timer, rd->conf->timeout);

    rd->stats->commands++;

    return cmd;
}


void
um_redis_cancel(um_redis_cmd_t *cmd)
{
    /* the block itself is freed when hiredis hands it back */
    cmd->handler = NULL;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }
}


ngx_int_t
um_redis_subscribe(um_redis_t *rd, const char *channel,
    um_redis_handler_pt handler, void *data)
{
    um_redis_cmd_t  *cmd;
    const char      *argv[2];

    if (rd->ac == NULL) {
        if (um_backoff_waiting(&rd->backoff)
            || um_redis_connect(rd) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    cmd = ngx_calloc(sizeof(um_redis_cmd_t), rd->log);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->rd = rd;
    cmd->handler = handler;
    cmd->data = data;
    cmd->subscription = 1;

    argv[0] = "SUBSCRIBE";
    argv[1] = channel;

    /* hiredis keeps this callback for every message of the channel */
    if (redisAsyncCommandArgv(rd->ac, um_redis_reply, cmd, 2, argv, NULL)
        != REDIS_OK)
    {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_uint_t
um_redis_connected(um_redis_t *rd)
{
    return rd->ac != NULL && rd->connected;
}


ngx_msec_t
um_redis_retry_after(um_redis_t *rd)
{
    return um_backoff_retry_after(&rd->backoff);
}


char *
um_redis_parse_addr(ngx_str_t *addr, um_redis_conf_t *conf)
{
    u_char     *colon;
    ngx_int_t   port;
    in_addr_t   inaddr;
    u_char      ip[INET6_ADDRSTRLEN + 1];
    struct in6_addr  in6;

    if (addr->len > 5 && ngx_strncmp(addr->data, "unix:", 5) == 0) {
        conf->unix_path.data = addr->data + 5;
        conf->unix_path.len = addr->len - 5;

        if (conf->unix_path.data[0] != '/') {
            return "needs an absolute unix socket path";
        }

        return NULL;
    }

    colon = ngx_strlchr(addr->data, addr->data + addr->len, ':');

    /* "[::1]:6379" */
    if (addr->len && addr->data[0] == '[') {
        colon = ngx_strlchr(addr->data, addr->data + addr->len, ']');

        if (colon == NULL || colon + 1 >= addr->data + addr->len
            || colon[1] != ':')
        {
            return "needs \"[IPv6]:port\"";
        }

        conf->host.data = addr->data + 1;
        conf->host.len = colon - addr->data - 1;
        colon++;

    } else {
        if (colon == NULL) {
            return "needs \"address:port\" or \"unix:/path\"";
        }

        conf->host.data = addr->data;
        conf->host.len = colon - addr->data;
    }

    port = ngx_atoi(colon + 1, addr->data + addr->len - colon - 1);
    if (port < 1 || port > 65535) {
        return "has an invalid port";
    }

    conf->port = (in_port_t) port;

    if (conf->host.len == 0 || conf->host.len > INET6_ADDRSTRLEN) {
        return "needs an IP address";
    }

    ngx_memcpy(ip, conf->host.data, conf->host.len);
    ip[conf->host.len] = '\0';

    /* hiredis resolves names with blocking calls: addresses only */
    inaddr = ngx_inet_addr(ip, conf->host.len);

    if (inaddr == INADDR_NONE
        && inet_pton(AF_INET6, (char *) ip, &in6) != 1)
    {
        return "needs an IP address, not a host name "
               "(a name lookup would block the worker)";
    }

    return NULL;
}


static ngx_int_t
um_redis_connect(um_redis_t *rd)
{
    u_char              host[INET6_ADDRSTRLEN + 1];
    u_char              path[NGX_MAX_PATH];
    redisAsyncContext  *ac;

    if (rd->conf->unix_path.len) {
        ngx_cpystrn(path, rd->conf->unix_path.data,
                    ngx_min(rd->conf->unix_path.len + 1, NGX_MAX_PATH));
        ac = redisAsyncConnectUnix((char *) path);

    } else {
        ngx_cpystrn(host, rd->conf->host.data, rd->conf->host.len + 1);
        ac = redisAsyncConnect((char *) host, rd->conf->port);
    }

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "usermgmt: redis connect failed: %s",
                      ac ? ac->errstr : "out of memory");

        if (ac != NULL) {
            redisAsyncFree(ac);
        }

        rd->stats->errors++;
        um_backoff_failed(&rd->backoff);
        return NGX_ERROR;
    }

    rd->c = um_fd_attach(ac->c.fd, rd->log, rd, um_redis_event_handler);
    if (rd->c == NULL) {
        redisAsyncFree(ac);
        um_backoff_failed(&rd->backoff);
        return NGX_ERROR;
    }

    rd->ac = ac;
    rd->connected = 0;
    ac->data = rd;
    ac->ev.data = rd;
    ac->ev.addRead = um_redis_add_read;
    ac->ev.delRead = um_redis_del_read;
    ac->ev.addWrite = um_redis_add_write;
    ac->ev.delWrite = um_redis_del_write;
    ac->ev.cleanup = um_redis_cleanup;

    redisAsyncSetConnectCallback(ac, um_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, um_redis_disconnected);

    rd->stats->connects++;

    /* the socket turns writable when the connection is made (or refused) */
    if (um_fd_want_write(rd->c, 1) != NGX_OK
        || um_fd_want_read(rd->c, 1) != NGX_OK)
    {
        um_redis_drop(rd);
        return NGX_ERROR;
    }

    ngx_add_timer(&rd->connect_timer, rd->conf->connect_timeout);

    return NGX_OK;
}


/* closes the connection; hiredis fails every pending command */
static void
um_redis_drop(um_redis_t *rd)
{
    redisAsyncContext  *ac;

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    ac = rd->ac;

    if (ac == NULL) {
        return;
    }

    rd->ac = NULL;
    rd->connected = 0;
    rd->stats->connected = 0;

    ac->onDisconnect = NULL;
    redisAsyncFree(ac);
}


static void
um_redis_on_connect(const redisAsyncContext *ac, int status)
{
    um_redis_t  *rd;

    rd = ac->data;

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "usermgmt: redis connect failed: %s", ac->errstr);
        rd->ac = NULL;
        rd->connected = 0;
        rd->stats->errors++;
        um_backoff_failed(&rd->backoff);
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, rd->log, 0,
                   "usermgmt: redis connected");

    rd->connected = 1;
    rd->stats->connected = 1;
    um_backoff_reset(&rd->backoff);
}


static void
um_redis_disconnected(const redisAsyncContext *ac, int status)
{
    um_redis_t  *rd;

    rd = ac->data;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "usermgmt: redis connection lost: %s", ac->errstr);
        rd->stats->errors++;
        um_backoff_failed(&rd->backoff);
    }

    /* hiredis frees the context after this callback */
    rd->ac = NULL;
    rd->connected = 0;
    rd->stats->connected = 0;
}


static void
um_redis_connect_timeout(ngx_event_t *ev)
{
    um_redis_t  *rd;

    rd = ev->data;

    ngx_log_error(NGX_LOG_ERR, rd->log, 0, "usermgmt: redis connect timed out");

    rd->stats->timeouts++;
    rd->stats->errors++;
    um_backoff_failed(&rd->backoff);
    um_redis_drop(rd);
}


static void
um_redis_event_handler(ngx_event_t *ev)
{
    um_redis_t  *rd;
    ngx_connection_t  *c;

    c = ev->data;
    rd = c->data;

    if (rd->ac == NULL) {
        return;
    }

    /* either call may free the context (and detach c): touch neither after */
    if (ev->write) {
        rd->writing = 1;
        redisAsyncHandleWrite(rd->ac);
        rd->writing = 0;

    } else {
        redisAsyncHandleRead(rd->ac);
    }
}


static void
um_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    um_redis_cmd_t       *cmd;
    um_redis_handler_pt   handler;

    cmd = privdata;

    if (cmd->subscription && r != NULL) {
        /* one more message; the block lives until the channel closes */
        if (cmd->handler != NULL) {
            cmd->handler(cmd->data, r, UM_REDIS_OK);
        }

        return;
    }

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    handler = cmd->handler;

    if (r == NULL) {
        cmd->rd->stats->errors++;
    }

    if (handler != NULL) {
        handler(cmd->data, r, r ? UM_REDIS_OK : UM_REDIS_UNAVAILABLE);
    }

    ngx_free(cmd);
}


static void
um_redis_cmd_timeout(ngx_event_t *ev)
{
    um_redis_t           *rd;
    um_redis_cmd_t       *cmd;
    um_redis_handler_pt   handler;

    cmd = ev->data;
    rd = cmd->rd;

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "usermgmt: redis command timed out after %M ms",
                  rd->conf->timeout);

    handler = cmd->handler;
    cmd->handler = NULL;
    rd->stats->timeouts++;

    if (handler != NULL) {
        handler(cmd->data, NULL, UM_REDIS_TIMEOUT);
    }

    /*
     * A server that misses a deadline is treated as gone: dropping the
     * connection fails the commands queued behind this one at once instead
     * of letting each wait for its own deadline.  This frees cmd.
     */
    um_backoff_failed(&rd->backoff);
    um_redis_drop(rd);
}


static void
um_redis_add_read(void *data)
{
    um_redis_t  *rd = data;

    (void) um_fd_want_read(rd->c, 1);
}


static void
um_redis_del_read(void *data)
{
    um_redis_t  *rd = data;

    (void) um_fd_want_read(rd->c, 0);
}


/*
 * On a connected socket, commands are written once the events of this
 * turn of the loop are handled (a posted event): all the commands of the
 * turn in one write, and no write event to arm and disarm.  The socket is
 * watched for writing only while connecting, or when a write stopped
 * short because its buffer was full.
 */
static void
um_redis_add_write(void *data)
{
    um_redis_t  *rd = data;

    if (rd->connected && !rd->writing) {
        if (!rd->c->write->posted) {
            ngx_post_event(rd->c->write, &ngx_posted_events);
        }

        return;
    }

    (void) um_fd_want_write(rd->c, 1);
}


static void
um_redis_del_write(void *data)
{
    um_redis_t  *rd = data;

    (void) um_fd_want_write(rd->c, 0);
}


static void
um_redis_cleanup(void *data)
{
    um_redis_t  *rd = data;

    /* hiredis closes the descriptor right after this */
    um_fd_detach(rd->c, 0);
    rd->c = NULL;
}
