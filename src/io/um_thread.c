#include "um_thread.h"

#if (NGX_LINUX)
#include <sys/resource.h>
#include <sys/syscall.h>
#endif


typedef struct {
    um_thread_work_pt   work;
    um_thread_done_pt   done;
    void               *data;
} um_thread_job_t;


static void um_thread_handler(void *data, ngx_log_t *log);
static void um_thread_event_handler(ngx_event_t *ev);


ngx_int_t
um_thread_run(ngx_thread_pool_t *tp, ngx_pool_t *pool, ngx_log_t *log,
    um_thread_work_pt work, um_thread_done_pt done, void *data)
{
    um_thread_job_t    *job;
    ngx_thread_task_t  *task;

    task = ngx_thread_task_alloc(pool, sizeof(um_thread_job_t));
    if (task == NULL) {
        return NGX_ERROR;
    }

    job = task->ctx;
    job->work = work;
    job->done = done;
    job->data = data;

    task->handler = um_thread_handler;
    task->event.handler = um_thread_event_handler;
    task->event.data = job;
    task->event.log = log;

    return ngx_thread_task_post(tp, task);
}


static void
um_thread_handler(void *data, ngx_log_t *log)
{
    um_thread_job_t  *job = data;

#if (NGX_LINUX)
    static __thread ngx_uint_t  niced;

    /*
     * The work sent here is CPU-heavy and can wait a little; the event
     * loop cannot.  With fewer cores than busy threads, a lower priority
     * keeps the scheduler giving the workers' event loops their turn.
     */
    if (!niced) {
        (void) setpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid), 10);
        niced = 1;
    }
#endif

    job->work(job->data);
}


static void
um_thread_event_handler(ngx_event_t *ev)
{
    um_thread_job_t  *job = ev->data;

    job->done(job->data);
}
