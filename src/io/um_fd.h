/*
 * Wrapping a socket owned by a client library (libpq, hiredis) in an nginx
 * connection so that the event loop drives it.  The library keeps the file
 * descriptor: nginx never closes it.
 */

#ifndef _UM_FD_H_INCLUDED_
#define _UM_FD_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


ngx_connection_t *um_fd_attach(ngx_socket_t fd, ngx_log_t *log, void *data,
    ngx_event_handler_pt handler);
void um_fd_detach(ngx_connection_t *c, ngx_uint_t fd_closed);
ngx_int_t um_fd_want_read(ngx_connection_t *c, ngx_uint_t on);
ngx_int_t um_fd_want_write(ngx_connection_t *c, ngx_uint_t on);


#endif /* _UM_FD_H_INCLUDED_ */
