/*
 * bench/bench_conn.h - one STOMP client connection of the load generator, WebSocket or TCP.
 *
 * What it is for: many thousands of cheap client connections on one libevent loop. A connection
 * binds its socket to a loopback source address (so one generator is not limited by the ephemeral
 * ports of one address), connects without blocking, upgrades to a WebSocket when the target is
 * ws:// (request and 101 check by ws/handshake, masked frames out, server frames decoded by
 * ws/frame, pings answered), sends CONNECT and reports CONNECTED, then hands over every frame the
 * broker sends (stomp/parser). Frames out are queued in an evbuffer and written when the socket
 * takes them; the owner is told when the queue is short again, which is how saturating
 * publishers keep a bounded number of bytes outstanding.
 *
 * Reads go through one buffer shared by every connection of the process (the decoders keep what
 * they must), so an idle connection costs its struct, two events, an empty evbuffer and a parser.
 *
 * What it must not do: know scenarios or statistics, print, or touch anything but its socket.
 * Masking keys come from a fast generator, not a cryptographic one: a load generator on loopback
 * has no cache to poison (RFC 6455 section 10.3), and RAND_bytes per frame would be the hot spot.
 */
#ifndef STOMPWS_BENCH_CONN_H
#define STOMPWS_BENCH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "stomp/frame.h"

#define BENCH_HOST_MAX   300
#define BENCH_TARGET_MAX 2056 /* a URL's path and query (2048) and its NUL */

/* Where and how every connection of a run connects. Filled once; read-only afterwards. */
struct bench_target {
    struct sockaddr_storage addr; /* the broker's address */
    socklen_t addr_len;
    bool websocket;                   /* ws:// (else STOMP over TCP) */
    bool bind_source;                 /* addr is in 127.0.0.0/8: spread source addresses */
    char host_header[BENCH_HOST_MAX]; /* ws: Host header, "127.0.0.1:15674" */
    char target[BENCH_TARGET_MAX];    /* ws: request-target, "/ws" */
    const char *stomp_host;           /* borrowed: CONNECT's host header ("/") */
    const char *login;                /* borrowed: NULL for none */
    const char *passcode;             /* borrowed: NULL for none */
    size_t max_message;               /* largest inbound WebSocket message / STOMP body */
    bool deflate; /* ws: offer permessage-deflate (RFC 7692) and inflate what comes compressed */
};

struct bench_conn;

struct bench_conn_callbacks {
    /* CONNECTED arrived: the connection is ready for STOMP frames. */
    void (*on_connected)(struct bench_conn *c, void *arg);
    /* Any other frame but ERROR (MESSAGE, RECEIPT), valid only during the call. */
    void (*on_frame)(struct bench_conn *c, const struct stomp_frame *f, void *arg);
    /* With bench_conn_want_write(): the socket is writable and fewer than low_water bytes wait. */
    void (*on_writable)(struct bench_conn *c, void *arg);
    /*
     * The connection failed or ended (connect error, refused upgrade, ERROR frame, close by the
     * broker): why names it. The connection frees itself after this returns; forget it.
     */
    void (*on_close)(struct bench_conn *c, const char *why, void *arg);
};

/*
 * The k-th loopback source address: 127.0.0.1, 127.0.0.2, ... skipping host parts ending in
 * .0 and .255, within 127.0.0.0/8 (k wraps after about 16 million).
 */
void bench_source_address(unsigned k, struct sockaddr_in *out);

/*
 * Starts connecting: socket, bind to source (when not NULL), non-blocking connect. NULL with a
 * sentence in err when the socket cannot even be created ("socket: Too many open files");
 * anything later is reported through on_close. cb is copied; target and arg are borrowed.
 */
/* This process's totals over all its connections: bytes read from sockets, messages that
 * arrived compressed. */
uint64_t bench_conn_bytes_read(void);
uint64_t bench_conn_compressed_messages(void);

struct bench_conn *bench_conn_open(struct event_base *base, const struct bench_target *target,
                                   const struct sockaddr_in *source,
                                   const struct bench_conn_callbacks *cb, void *arg, char *err,
                                   size_t err_len);

/* Frees the connection without calling on_close (safe inside its callbacks). NULL is a no-op. */
void bench_conn_close(struct bench_conn *c);

/* Queues one STOMP frame (encoded for STOMP 1.2; one WebSocket message). */
void bench_conn_send_frame(struct bench_conn *c, const struct stomp_frame *f);

/*
 * Zero-copy sending for publishers: reserves len contiguous payload bytes for one STOMP frame
 * (head, body, NUL) in the output queue and returns them; the caller fills all len bytes and
 * calls bench_conn_frame_end() before anything else is sent. NULL when out of memory.
 */
char *bench_conn_frame_begin(struct bench_conn *c, size_t len);
void bench_conn_frame_end(struct bench_conn *c, char *payload, size_t len);

/* Writes what the socket takes now; the rest goes when it becomes writable. */
void bench_conn_flush(struct bench_conn *c);

/* Bytes queued and not yet taken by the kernel. */
size_t bench_conn_pending(const struct bench_conn *c);

/*
 * Caps the kernel's send buffer at about bytes (SO_SNDBUF; Linux doubles it), so a saturating
 * publisher's bytes wait in its own bounded queue rather than in megabytes of socket buffer.
 */
void bench_conn_limit_sndbuf(struct bench_conn *c, size_t bytes);

/* Asks for on_writable each time the socket is writable and fewer than low_water bytes wait. */
void bench_conn_want_write(struct bench_conn *c, bool on, size_t low_water);

#endif
