/*
 * cli/transport.h - one connection to a broker carrying STOMP bytes: TCP, TLS, WebSocket.
 *
 * What it is for: hiding how STOMP bytes travel. The caller sends whole STOMP frames and gets the
 * broker's bytes back as a stream, whatever the URL: plain TCP, TLS (SNI, chain and hostname
 * verification through OpenSSL bufferevents), or a WebSocket over either (upgrade request with a
 * random key, the 101 checked by ws/handshake, masked frames out, one WebSocket message per
 * STOMP frame, pings answered, the close handshake).
 *
 * What it must not do: know STOMP beyond "a frame ends with NUL", print anything, or free itself
 * from inside a callback. Callbacks run from the event loop; transport_free() is for after it.
 */
#ifndef STOMPWS_CLI_TRANSPORT_H
#define STOMPWS_CLI_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "cli/url.h"

struct transport_options {
    const char *cafile;        /* PEM CA certificates to trust; NULL: the system's store */
    bool insecure;             /* skip certificate and hostname verification */
    unsigned subprotocols;     /* ws: WS_SUBPROTOCOL_BIT()s to offer */
    size_t max_message;        /* ws: largest inbound WebSocket message */
    const char *extra_headers; /* ws: NULL or HTTP header lines, each ending in CRLF */
};

struct transport_callbacks {
    /* The connection is ready for STOMP (TCP connected, TLS and WebSocket handshakes done). */
    void (*on_open)(void *arg);
    /* Bytes from the broker, in order, split anywhere. */
    void (*on_data)(void *arg, const char *data, size_t len);
    /* Output fell below the low-water mark after having been above it (flow control). */
    void (*on_drain)(void *arg);
    /*
     * The connection is over: why is NULL after a transport_shutdown() that completed, else a
     * sentence ("connection refused", "certificate verify failed: ..."). Called once; no
     * callback follows it.
     */
    void (*on_close)(void *arg, const char *why);
};

/* Bytes of pending output past which the caller should stop producing (see on_drain). */
#define TRANSPORT_HIGH_WATER (1024 * 1024)

struct transport;

/*
 * Resolves url's host (blocking, like any command-line client), then starts connecting to each
 * address in turn. NULL with a sentence in err when nothing can be started (unknown host, bad
 * CA file); later failures arrive through on_close. cb and arg are kept; opts is copied.
 */
struct transport *transport_new(struct event_base *base, const struct url *url,
                                const struct transport_options *opts,
                                const struct transport_callbacks *cb, void *arg, char *err,
                                size_t err_len);

/* Queues one STOMP frame: head, body and the terminating NUL (one WebSocket message). */
void transport_send_frame(struct transport *t, const char *head, size_t head_len, const char *body,
                          size_t body_len);

/* Queues a STOMP heart-beat (one EOL). */
void transport_send_heartbeat(struct transport *t);

/* Output bytes not yet handed to the kernel. */
size_t transport_pending(const struct transport *t);

/*
 * Ends the connection politely: a WebSocket sends its close frame (1000); then the transport
 * waits, bounded, for the broker to close and reports on_close(arg, NULL).
 */
void transport_shutdown(struct transport *t);

/* Frees everything; never from inside one of its callbacks. NULL is a no-op. */
void transport_free(struct transport *t);

#endif
