#include "broker/base/workpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * One mutex guards the queue and the workers' bookkeeping; each mailbox has its own for its
 * finished list. Lock order: the pool's, then a mailbox's (workpool_cancel); a worker takes a
 * mailbox's lock without the pool's.
 */
struct workpool {
    pthread_mutex_t mu;
    pthread_cond_t wake;              /* a job was queued, or stopping */
    struct workpool_job *head, *tail; /* queued jobs, oldest first */
    size_t max_workers;
    int nice;       /* added to each worker's nice value */
    size_t started; /* threads[0..started) are running */
    size_t idle;    /* workers waiting on wake */
    size_t pending; /* queued jobs no idle worker has been woken for yet */
    bool stopping;
    pthread_t *threads; /* owned: max_workers of them */
};

struct workpool_mailbox {
    pthread_mutex_t mu;
    pthread_cond_t settled;           /* a job arrived (workpool_mailbox_free waits for it) */
    struct workpool_job *head, *tail; /* finished jobs, oldest first */
    size_t in_flight;                 /* submitted and neither drained nor taken back */
    int efd;                          /* owned: eventfd */
};

/* ---- mailbox ----------------------------------------------------------------------------------
 */

struct workpool_mailbox *workpool_mailbox_new(void)
{
    struct workpool_mailbox *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->efd < 0) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->settled, NULL);
    return m;
}

int workpool_mailbox_fd(const struct workpool_mailbox *m)
{
    return m->efd;
}

/* A worker hands a finished (or unrun) job to its mailbox and wakes the loop. */
static void deliver(struct workpool_job *job)
{
    struct workpool_mailbox *m = job->mailbox;
    pthread_mutex_lock(&m->mu);
    bool was_empty = m->head == NULL;
    job->next = NULL;
    if (m->tail != NULL)
        m->tail->next = job;
    else
        m->head = job;
    m->tail = job;
    /* Under the lock: once it is released, workpool_mailbox_free may free m. */
    if (was_empty) { /* else the loop has a wake-up coming for the jobs before this one */
        uint64_t one = 1;
        ssize_t n;
        do
            n = write(m->efd, &one, sizeof(one));
        while (n < 0 && errno == EINTR);
    }
    pthread_cond_broadcast(&m->settled);
    pthread_mutex_unlock(&m->mu);
}

/* Takes every finished job, oldest first, and counts them out of in_flight. Locked by caller. */
static struct workpool_job *take_finished(struct workpool_mailbox *m)
{
    struct workpool_job *list = m->head;
    for (struct workpool_job *j = list; j != NULL; j = j->next)
        m->in_flight--;
    m->head = m->tail = NULL;
    return list;
}

static size_t call_done(struct workpool_job *list)
{
    size_t count = 0;
    while (list != NULL) {
        struct workpool_job *next = list->next; /* done may free the job */
        list->pool = NULL;
        list->mailbox = NULL;
        list->done(list);
        list = next;
        count++;
    }
    return count;
}

size_t workpool_mailbox_drain(struct workpool_mailbox *m)
{
    uint64_t count;
    /* Read before taking: a job delivered after the take writes again and wakes us once more. */
    while (read(m->efd, &count, sizeof(count)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&m->mu);
    struct workpool_job *list = take_finished(m);
    pthread_mutex_unlock(&m->mu);
    return call_done(list);
}

void workpool_mailbox_free(struct workpool_mailbox *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        struct workpool_job *list = take_finished(m);
        if (list != NULL) {
            pthread_mutex_unlock(&m->mu);
            call_done(list);
            pthread_mutex_lock(&m->mu);
            continue;
        }
        if (m->in_flight == 0)
            break;
        pthread_cond_wait(&m->settled, &m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    pthread_cond_destroy(&m->settled);
    pthread_mutex_destroy(&m->mu);
    close(m->efd);
    free(m);
}

/* ---- pool -------------------------------------------------------------------------------------
 */

static void unlink_queued(struct workpool *p, struct workpool_job *job)
{
    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        p->head = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    else
        p->tail = job->prev;
    job->prev = job->next = NULL;
}

static void *worker_main(void *arg)
{
    struct workpool *p = arg;
    /* Linux: a thread's own nice value (its tid as the "process"); best effort. */
    if (p->nice != 0) {
        id_t self = (id_t)gettid();
        errno = 0;
        int now = getpriority(PRIO_PROCESS, self);
        if (errno == 0)
            setpriority(PRIO_PROCESS, self, now + p->nice);
    }
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->head == NULL) {
            p->idle++;
            pthread_cond_wait(&p->wake, &p->mu);
            p->idle--;
        }
        if (p->stopping)
            break;
        struct workpool_job *job = p->head;
        unlink_queued(p, job);
        if (p->pending > 0)
            p->pending--;
        job->state = WORKPOOL_JOB_RUNNING;
        pthread_mutex_unlock(&p->mu);
        job->run(job);
        deliver(job);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct workpool *workpool_new(size_t workers, int nice)
{
    if (workers == 0)
        return NULL;
    struct workpool *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->threads = calloc(workers, sizeof(*p->threads))) == NULL) {
        free(p);
        return NULL;
    }
    p->max_workers = workers;
    p->nice = nice;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    return p;
}

/* One more worker, every signal blocked (the loops' signal events take them). Locked by caller. */
static int start_worker(struct workpool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->threads[p->started], NULL, worker_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -1;
    p->started++;
    return 0;
}

size_t workpool_threads(struct workpool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->started;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int workpool_submit(struct workpool *p, struct workpool_mailbox *mailbox, struct workpool_job *job)
{
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    /* A worker for this job: an idle one not yet claimed by an earlier job, or a new one. */
    if (p->idle <= p->pending && p->started < p->max_workers && start_worker(p) != 0 &&
        p->started == 0) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    job->pool = p;
    job->mailbox = mailbox;
    job->cancelled = false;
    job->state = WORKPOOL_JOB_QUEUED;
    job->next = NULL;
    job->prev = p->tail;
    if (p->tail != NULL)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    p->pending++;
    pthread_mutex_lock(&mailbox->mu);
    mailbox->in_flight++;
    pthread_mutex_unlock(&mailbox->mu);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

bool workpool_cancel(struct workpool_job *job)
{
    struct workpool *p = job->pool;
    if (p == NULL)
        return true; /* not submitted, or already done */
    pthread_mutex_lock(&p->mu);
    bool queued = job->state == WORKPOOL_JOB_QUEUED;
    if (queued) {
        unlink_queued(p, job);
        if (p->pending > 0)
            p->pending--;
        struct workpool_mailbox *m = job->mailbox;
        pthread_mutex_lock(&m->mu);
        m->in_flight--;
        pthread_cond_broadcast(&m->settled);
        pthread_mutex_unlock(&m->mu);
        job->pool = NULL;
        job->mailbox = NULL;
    } else {
        job->cancelled = true; /* read by done, on this same thread */
    }
    pthread_mutex_unlock(&p->mu);
    return queued;
}

void workpool_free(struct workpool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    /* Left in the queue: back to their mailboxes, unrun. */
    while (p->head != NULL) {
        struct workpool_job *job = p->head;
        unlink_queued(p, job);
        job->cancelled = true;
        job->state = WORKPOOL_JOB_RUNNING;
        deliver(job);
    }
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
