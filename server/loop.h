/*
 * loop.h - builds, runs and frees one event loop (a struct broker): the whole broker with
 * server.threads = 1, one of the loops of the process otherwise (threads.h).
 *
 * The composition root of a loop: it loads auth and TLS, opens the listeners, starts the HTTP
 * API, picks the fan-out backend (none, the threads', or Redis's: the only place that knows
 * which runs), fills in the router's delivery ops and the connections' handler, and handles
 * signals, reloads, the lag tick and the drain at shutdown.
 */
#ifndef STOMPWS_LOOP_H
#define STOMPWS_LOOP_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stddef.h>

#include "broker/core/broker.h"

struct shared_queues;

/* The passcode hashing workers run at this much lower priority than the event loops: on a busy
 * machine a login waits a little longer rather than every connected client. */
#define AUTH_WORKERS_NICE 10

/* What the loops of one process share (server.threads > 1); all borrowed from threads.c. */
struct loop_peers {
    struct inboxes *inboxes;     /* one per loop: everything that crosses loops */
    struct shared_queues *store; /* the /queue/ store; NULL when the loops are cluster nodes */
    struct metrics_board *board; /* every loop's /metrics figures */
    struct workpool *auth_pool;  /* the passcode hashing workers; NULL: auth.workers = 0 */
    struct history *history;     /* retained topic messages; NULL when no policy is set */
    struct presence *presence;   /* presence: the users table; NULL when presence is off */
};

/* Creates the loop, binds the listeners and prints "listening KIND HOST:PORT" lines. */
struct broker *broker_new(const struct config *cfg);
/*
 * Loop `index` of a process whose loops share peers: listeners bound with SO_REUSEPORT, printed
 * by loop 0 only; signals handled by loop 0 only; topics, reply queues and /queue/ names cross
 * loops.
 */
struct broker *broker_new_in(const struct config *cfg, const struct loop_peers *peers,
                             size_t index);
/* Runs until shutdown has drained; returns the process exit code. */
int broker_run(struct broker *b);
/* Frees the connections (their sessions), then the backend, the router and the rest. */
void broker_free(struct broker *b);

/* Stops accepting, tells every client why, and ends the loop once they are gone (or on timeout). */
void broker_shutdown(struct broker *b, const char *reason);

/* SIGHUP: rebuilds the TLS contexts from the certificate files (open connections keep theirs)
 * and reloads the users file, ACL, JWT keys and API keys; what fails to load keeps its old
 * version. */
void broker_reload(struct broker *b);

/*
 * --check-config: loads what broker_new() would load from cfg (users file, ACL, JWT keys, TLS
 * certificates and keys, the Redis URL) and frees it again, without binding or connecting.
 * Returns 0, or -1 with err naming what failed.
 */
int broker_check_config(const struct config *cfg, char *err, size_t err_len);

#endif
