/*
 * cli/client.h - the STOMP side of stompws-cli: one session that publishes or subscribes.
 *
 * What it is for: CONNECT, then either SEND each message (from the command line or stdin, in
 * order, with flow control) or SUBSCRIBE and print each MESSAGE (acking it after it is printed),
 * then DISCONNECT with a receipt so nothing sent is lost when the connection closes. It owns the
 * event loop for the length of client_run() and every timer (connect and receipt deadlines,
 * --timeout, heart-beats).
 *
 * What it must not do: parse the command line (stompws_cli.c does) or know how bytes travel
 * (transport.c does). It prints only MESSAGE output to stdout and diagnostics to stderr.
 */
#ifndef STOMPWS_CLI_CLIENT_H
#define STOMPWS_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/url.h"
#include "stomp/frame.h"

/* The largest message body stompws-cli sends (a stdin line, or all of stdin) or receives. */
#define CLIENT_MAX_BODY (64u * 1024 * 1024)
/* -H headers on one frame; with ours it stays under the broker's default of 64 headers. */
#define CLIENT_MAX_USER_HEADERS 32

enum client_mode {
    CLIENT_PUB,
    CLIENT_SUB,
};

enum client_ack {
    CLIENT_ACK_AUTO,
    CLIENT_ACK_CLIENT,
    CLIENT_ACK_CLIENT_INDIVIDUAL,
};

/* Everything one run needs; filled by stompws_cli.c. Strings are borrowed from argv/environ. */
struct client_options {
    enum client_mode mode;
    struct url url;
    char *const *destinations; /* borrowed: destination_count entries (pub: exactly one) */
    size_t destination_count;
    const char *body; /* pub: the BODY argument; NULL to read stdin */
    bool stdin_whole; /* pub: all of stdin is one message (else one message per line) */
    struct stomp_header headers[CLIENT_MAX_USER_HEADERS]; /* -H, in order; borrowed strings */
    size_t header_count;
    const char *content_type;      /* pub: NULL for none */
    bool receipt;                  /* pub: a RECEIPT for every SEND */
    const char *login;             /* NULL: no login header */
    const char *passcode;          /* NULL: no passcode header */
    const char *host;              /* STOMP host header; NULL: the URL's host */
    unsigned versions;             /* STOMP_VERSION_BIT()s to accept */
    unsigned heartbeat_send_ms;    /* cx: how often we can send heart-beats (0: never) */
    unsigned heartbeat_receive_ms; /* cy: how often we want them (0: never) */
    bool quiet;                    /* no notes or warnings on stderr (errors still) */
    bool verbose;                  /* notes on stderr; sub prints each MESSAGE's headers */
    unsigned long count;           /* sub: exit after this many messages (0: never) */
    unsigned timeout_ms;           /* sub: exit 1 after this long without a message (0: never) */
    enum client_ack ack;           /* sub */
    const char *cafile;            /* TLS: CA certificates (NULL: the system's) */
    bool insecure;                 /* TLS: no verification */
    unsigned wait_ms;              /* longest wait for the broker at each step */
};

/* Runs one session to its end. Returns the exit status: 0 success, 1 failure (printed). */
int client_run(const struct client_options *opts);

#endif
