/* The worker pool: jobs run on workers, results come back on the loop that asked (two libevent
 * loops on two threads), cancel takes a queued job back or marks a running one, and the pool and
 * mailboxes stop cleanly with work in them. */
#include <check.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "broker/base/workpool.h"

struct test_job {
    struct workpool_job work; /* first */
    pthread_t owner;          /* the thread whose mailbox should get it */
    pthread_t ran_on;
    atomic_bool *gate; /* when set: run waits until *gate is true */
    atomic_bool started;
    int *done_count; /* incremented by done, on the owner's thread */
    bool done_on_owner;
    bool cancelled_seen;
    bool free_in_done;
};

static void job_run(struct workpool_job *w)
{
    struct test_job *j = (struct test_job *)w;
    j->ran_on = pthread_self();
    atomic_store(&j->started, true);
    while (j->gate != NULL && !atomic_load(j->gate))
        usleep(1000);
}

static void job_done(struct workpool_job *w)
{
    struct test_job *j = (struct test_job *)w;
    j->done_on_owner = pthread_equal(pthread_self(), j->owner);
    j->cancelled_seen = w->cancelled;
    (*j->done_count)++;
    if (j->free_in_done)
        free(j);
}

static struct test_job *job_new(int *done_count)
{
    struct test_job *j = calloc(1, sizeof(*j));
    ck_assert_ptr_nonnull(j);
    j->work.run = job_run;
    j->work.done = job_done;
    j->owner = pthread_self();
    j->done_count = done_count;
    return j;
}

/* ---- results arrive on the loop that asked ----------------------------------------------------
 */

#define JOBS_PER_LOOP 50

struct loop {
    struct workpool *pool;
    struct workpool_mailbox *mailbox;
    struct event_base *base;
    struct test_job *jobs[JOBS_PER_LOOP];
    int done_count;
    bool all_on_owner;
    bool none_on_owner_thread; /* run never ran on the loop's own thread */
};

static void mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop *l = arg;
    (void)fd;
    (void)what;
    workpool_mailbox_drain(l->mailbox);
    if (l->done_count == JOBS_PER_LOOP)
        event_base_loopbreak(l->base);
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    l->base = event_base_new();
    l->mailbox = workpool_mailbox_new();
    struct event *ev =
        event_new(l->base, workpool_mailbox_fd(l->mailbox), EV_READ | EV_PERSIST, mailbox_cb, l);
    event_add(ev, NULL);
    for (int i = 0; i < JOBS_PER_LOOP; i++) {
        l->jobs[i] = job_new(&l->done_count);
        ck_assert_int_eq(workpool_submit(l->pool, l->mailbox, &l->jobs[i]->work), 0);
    }
    struct timeval limit = {.tv_sec = 10};
    event_base_loopexit(l->base, &limit);
    event_base_dispatch(l->base);
    l->all_on_owner = true;
    l->none_on_owner_thread = true;
    for (int i = 0; i < JOBS_PER_LOOP; i++) {
        l->all_on_owner &= l->jobs[i]->done_on_owner;
        l->none_on_owner_thread &= !pthread_equal(l->jobs[i]->ran_on, pthread_self());
        free(l->jobs[i]);
    }
    event_free(ev);
    workpool_mailbox_free(l->mailbox);
    event_base_free(l->base);
    return NULL;
}

START_TEST(test_results_return_to_their_loop)
{
    struct workpool *pool = workpool_new(3, 5);
    ck_assert_ptr_nonnull(pool);
    struct loop loops[2] = {{.pool = pool}, {.pool = pool}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, loop_main, &loops[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(loops[i].done_count, JOBS_PER_LOOP);
        ck_assert(loops[i].all_on_owner);
        ck_assert(loops[i].none_on_owner_thread);
    }
    ck_assert_uint_le(workpool_threads(pool), 3);
    ck_assert_uint_ge(workpool_threads(pool), 1);
    workpool_free(pool);
}
END_TEST

/* ---- cancel -----------------------------------------------------------------------------------
 */

START_TEST(test_cancel_queued_and_running)
{
    struct workpool *pool = workpool_new(1, 0);
    struct workpool_mailbox *m = workpool_mailbox_new();
    atomic_bool gate = false;
    int done_count = 0;
    struct test_job *running = job_new(&done_count);
    running->gate = &gate;
    struct test_job *queued = job_new(&done_count);
    struct test_job *after = job_new(&done_count);
    ck_assert_int_eq(workpool_submit(pool, m, &running->work), 0);
    while (!atomic_load(&running->started))
        usleep(1000);
    ck_assert_int_eq(workpool_submit(pool, m, &queued->work), 0);
    ck_assert_int_eq(workpool_submit(pool, m, &after->work), 0);

    /* Queued: taken back at once, never run, done never called. */
    ck_assert(workpool_cancel(&queued->work));
    /* Running: done comes later, marked cancelled. */
    ck_assert(!workpool_cancel(&running->work));
    atomic_store(&gate, true);
    while (done_count < 2) {
        workpool_mailbox_drain(m);
        usleep(1000);
    }
    ck_assert_int_eq(done_count, 2);
    ck_assert(running->cancelled_seen);
    ck_assert(!after->cancelled_seen);
    ck_assert(!atomic_load(&queued->started));
    /* Done: cancelling again is harmless and says it is the caller's. */
    ck_assert(workpool_cancel(&after->work));
    workpool_mailbox_free(m);
    workpool_free(pool);
    ck_assert_int_eq(done_count, 2);
    free(running);
    free(queued);
    free(after);
}
END_TEST

/* Freeing a mailbox waits for the job a worker has; freeing the pool hands queued jobs back. */
START_TEST(test_stop_with_work_in_flight)
{
    struct workpool *pool = workpool_new(1, 0);
    struct workpool_mailbox *m = workpool_mailbox_new();
    atomic_bool gate = false;
    int done_count = 0;
    struct test_job *slow = job_new(&done_count);
    slow->gate = &gate;
    slow->free_in_done = true;
    ck_assert_int_eq(workpool_submit(pool, m, &slow->work), 0);
    while (!atomic_load(&slow->started))
        usleep(1000);
    struct test_job *waiting = job_new(&done_count);
    waiting->free_in_done = true;
    ck_assert_int_eq(workpool_submit(pool, m, &waiting->work), 0);
    atomic_store(&gate, true);
    /* Stopping the pool: the running job finishes, the queued one (if still queued) comes back
     * unrun and cancelled. Then the mailbox hands both to done. */
    workpool_free(pool);
    workpool_mailbox_free(m);
    ck_assert_int_eq(done_count, 2);
}
END_TEST

START_TEST(test_zero_workers)
{
    ck_assert_ptr_null(workpool_new(0, 0));
}
END_TEST

static Suite *workpool_suite(void)
{
    Suite *s = suite_create("workpool");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_results_return_to_their_loop);
    tcase_add_test(tc, test_cancel_queued_and_running);
    tcase_add_test(tc, test_stop_with_work_in_flight);
    tcase_add_test(tc, test_zero_workers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(workpool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
