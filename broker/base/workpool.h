/*
 * workpool.h - a few worker threads for slow pure work (a PBKDF2 password hash), with the results
 * handed back to the event loop that asked.
 *
 * A pool (struct workpool) is a queue and up to `workers` threads, started on demand. A loop
 * that submits work has a mailbox (struct workpool_mailbox): an eventfd it watches, and the list
 * of its jobs that have finished. A worker runs job->run on its own thread, appends the job to
 * the mailbox it was submitted with and writes the eventfd; the loop, woken, calls
 * workpool_mailbox_drain(), which calls job->done on the loop's thread, one job at a time.
 *
 * Ownership: the submitter allocates the job and owns everything in it; the pool holds it from
 * workpool_submit() until job->done is called (or until workpool_cancel() gives it back). run
 * must touch only the job: no loop state, no refcounted object of a loop.
 *
 * No libevent here: the loop watches workpool_mailbox_fd() with its own event library.
 */
#ifndef STOMPWS_WORKPOOL_H
#define STOMPWS_WORKPOOL_H

#include <stdbool.h>
#include <stddef.h>

struct workpool;
struct workpool_mailbox;

enum workpool_job_state {
    WORKPOOL_JOB_QUEUED,  /* waiting for a worker: workpool_cancel takes it back */
    WORKPOOL_JOB_RUNNING, /* on a worker, or finished and waiting in its mailbox */
};

/* Embed it in the job's own struct (first member, or container_of). */
struct workpool_job {
    void (*run)(struct workpool_job *job);  /* on a worker thread */
    void (*done)(struct workpool_job *job); /* on the mailbox's thread, once; may free the job */
    bool cancelled; /* workpool_cancel() was called while it ran: done only frees it */
    /* The pool's own, valid while it holds the job: */
    struct workpool_job *prev, *next;
    struct workpool *pool;
    struct workpool_mailbox *mailbox;
    enum workpool_job_state state;
};

/*
 * A pool of at most `workers` threads (1 or more), none started yet: the first submits start
 * them, one per job waiting while none is idle. Each worker raises its own nice value by
 * `nice` (Linux: per thread), so that on a busy machine the event loops win the CPU over the
 * work they handed off. NULL when out of memory.
 */
struct workpool *workpool_new(size_t workers, int nice);

/*
 * Stops the workers and joins them; a job running finishes first (its mailbox gets it). Jobs
 * still queued are handed to their mailboxes unrun, with cancelled set. Every mailbox used must
 * still exist and be drained or freed afterwards.
 */
void workpool_free(struct workpool *p);

/* Threads started so far (for tests and /metrics). */
size_t workpool_threads(struct workpool *p);

/*
 * Queues job (run and done set by the caller) for a worker; the result goes to mailbox. Returns
 * 0, or -1 when no worker could be started at all or the pool is stopping (job untouched: the
 * caller still owns it and may do the work itself).
 */
int workpool_submit(struct workpool *p, struct workpool_mailbox *mailbox, struct workpool_job *job);

/*
 * The submitter gives up on job (on the mailbox's thread). Returns true when it had not started:
 * it is the caller's again at once, and done will never be called. Returns false when a worker
 * has it: done will still be called (from a later drain) with job->cancelled set, and must only
 * free what the job owns.
 */
bool workpool_cancel(struct workpool_job *job);

/* A mailbox with its eventfd; NULL when out of memory or file descriptors. */
struct workpool_mailbox *workpool_mailbox_new(void);

/*
 * Waits for the jobs submitted with it that a worker still has (cancel the others first: a
 * queued job makes this wait until a worker has run it), calling their done, then frees it.
 */
void workpool_mailbox_free(struct workpool_mailbox *m);

/* Readable when finished jobs wait: watch it for reading, then drain. */
int workpool_mailbox_fd(const struct workpool_mailbox *m);

/* Calls done for every job finished so far, in the order they finished; returns how many. */
size_t workpool_mailbox_drain(struct workpool_mailbox *m);

#endif
