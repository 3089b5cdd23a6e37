/*
 * Level-triggered registration is used on purpose: libpq and hiredis read a
 * bounded amount per call, and a level-triggered read event fires again while
 * bytes remain, so no drain loop is needed and no byte can be stranded.
 */

#include "um_fd.h"


ngx_connection_t *
um_fd_attach(ngx_socket_t fd, ngx_log_t *log, void *data,
    ngx_event_handler_pt handler)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        return NULL;
    }

    c->data = data;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = handler;
    c->write->handler = handler;

    /* the socket is connected or connecting; there is nothing to accept */
    c->write->ready = 0;
    c->read->ready = 0;

    return c;
}


void
um_fd_detach(ngx_connection_t *c, ngx_uint_t fd_closed)
{
    ngx_uint_t  flags;

    if (c == NULL) {
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /*
     * When the library has already closed the descriptor the kernel dropped
     * it from epoll; otherwise remove it explicitly, because the library may
     * keep it open a little longer than this connection lives.
     */
    flags = fd_closed ? NGX_CLOSE_EVENT : 0;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    ngx_free_connection(c);

    /* the library owns the descriptor */
    c->fd = (ngx_socket_t) -1;
}


ngx_int_t
um_fd_want_read(ngx_connection_t *c, ngx_uint_t on)
{
    if (on && !c->read->active) {
        return ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }

    if (!on && c->read->active) {
        return ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    return NGX_OK;
}


ngx_int_t
um_fd_want_write(ngx_connection_t *c, ngx_uint_t on)
{
    if (on && !c->write->active) {
        return ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    if (!on && c->write->active) {
        return ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    return NGX_OK;
}
