/*
 * Work that would hold the event loop (password hashing, RSA signing, QR
 * rendering) runs in an nginx thread pool; its continuation runs back on
 * the event loop.
 */

#ifndef _UM_THREAD_H_INCLUDED_
#define _UM_THREAD_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_thread_pool.h>


/* runs in a pool thread: may touch only the memory it was handed */
typedef void (*um_thread_work_pt)(void *data);

/* runs on the event loop when the work is done */
typedef void (*um_thread_done_pt)(void *data);


ngx_int_t um_thread_run(ngx_thread_pool_t *tp, ngx_pool_t *pool,
    ngx_log_t *log, um_thread_work_pt work, um_thread_done_pt done,
    void *data);


#endif /* _UM_THREAD_H_INCLUDED_ */
