/*
 * cli/client.c - the STOMP session of stompws-cli (see client.h).
 *
 * States: CONNECTING (until CONNECTED) -> SUBSCRIBING (sub: until every SUBSCRIBE's RECEIPT)
 * -> RUNNING (pub: sending; sub: printing) -> DISCONNECTING (DISCONNECT sent, waiting for its
 * RECEIPT) -> CLOSING (the transport says goodbye) -> DONE. The broker handles a connection's
 * frames in order, so the DISCONNECT's RECEIPT means every SEND and ACK before it was handled:
 * that is how pub knows nothing was lost without asking a receipt per message.
 */
#include "cli/client.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "cli/say.h"
#include "cli/transport.h"
#include "stomp/encode.h"
#include "stomp/parser.h"
#include "ws/handshake.h"

/* Bytes read from stdin per step. */
#define STDIN_CHUNK 65536
/* Headers we add to a frame ourselves (CONNECT has the most), plus the user's -H ones. */
#define MAX_FRAME_HEADERS (8 + CLIENT_MAX_USER_HEADERS)

enum client_state {
    C_CONNECTING,
    C_SUBSCRIBING,
    C_RUNNING,
    C_DISCONNECTING,
    C_CLOSING,
    C_DONE,
};

struct client {
    const struct client_options *o; /* borrowed: the caller's */
    struct event_base *base;        /* owned */
    struct transport *transport;    /* owned */
    struct stomp_parser *parser;    /* owned: the broker's frames */
    enum stomp_version version;     /* negotiated; 1.2 until CONNECTED */
    enum client_state state;
    int exit_code;    /* returned by client_run() */
    bool interrupted; /* SIGINT/SIGTERM seen */

    struct event *deadline;   /* owned: wait_ms for CONNECTED, subscriptions, receipts */
    struct event *idle;       /* owned: sub --timeout; NULL without one */
    struct event *beat;       /* owned: our heart-beats; armed only when we send them */
    struct event *beat_check; /* owned: the broker's; armed only when they are promised */
    struct event *signals[2]; /* owned: SIGINT, SIGTERM */
    unsigned beat_expect_ms;  /* the broker's promised interval */
    bool heard;               /* bytes from the broker since the last beat_check tick */
    unsigned silent_ticks;    /* beat_check ticks in a row without a byte */

    struct event *stdin_event; /* owned: pub reading a pipe or tty; NULL for files */
    struct event *stdin_step;  /* owned: pub reading a file, one chunk per activation */
    struct evbuffer *input;    /* owned: stdin bytes not published yet */
    bool stdin_paused;         /* output over the high-water mark: not reading */
    bool input_done;           /* the BODY, or all of stdin, is published */
    unsigned long long lines;  /* stdin lines read (for messages) */

    unsigned long long sent;     /* SEND frames written */
    unsigned long long receipts; /* RECEIPTs for them (--receipt) */
    size_t subscribed;           /* SUBSCRIBE receipts seen */
    unsigned long long received; /* MESSAGE frames printed */
    char *head;                  /* owned: encode buffer for frame heads */
    size_t head_cap;
};

/* ---- diagnostics ---- */

/* Ends the run: the loop stops and client_run() returns code. */
static void done(struct client *c, int code)
{
    if (c->state == C_DONE)
        return;
    c->state = C_DONE;
    c->exit_code = code;
    event_base_loopbreak(c->base);
}

static void fail(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct client *c, const char *fmt, ...)
{
    if (c->state == C_DONE)
        return;
    va_list ap;
    va_start(ap, fmt);
    cli_vsay(CLI_EXIT_FAILURE, fmt, ap);
    va_end(ap);
    done(c, CLI_EXIT_FAILURE);
}

static void arm(struct event *ev, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* ---- frames out ---- */

static void header(struct stomp_header *h, size_t *n, const char *name, const char *value)
{
    h[*n] = (struct stomp_header){name, strlen(name), value, strlen(value)};
    (*n)++;
}

static void user_headers(const struct client *c, struct stomp_header *h, size_t *n)
{
    for (size_t i = 0; i < c->o->header_count; i++)
        h[(*n)++] = c->o->headers[i];
}

/* Encodes the head (content-length added for SEND) and hands head and body to the transport. */
static void send_frame(struct client *c, enum stomp_command command, struct stomp_header *h,
                       size_t n, const char *body, size_t body_len)
{
    struct stomp_frame f = {command, h, n, body, body_len};
    bool with_length = command == STOMP_CMD_SEND;
    size_t need = stomp_encode_head(c->head, c->head_cap, c->version, &f, with_length);
    if (need > c->head_cap) {
        char *grown = realloc(c->head, need);
        if (grown == NULL) {
            fail(c, "out of memory");
            return;
        }
        c->head = grown;
        c->head_cap = need;
        stomp_encode_head(c->head, c->head_cap, c->version, &f, with_length);
    }
    transport_send_frame(c->transport, c->head, need, body, body_len);
}

static void send_connect(struct client *c)
{
    struct stomp_header h[MAX_FRAME_HEADERS];
    size_t n = 0;
    char versions[16], beats[32];
    stomp_versions_list(versions, sizeof(versions), c->o->versions);
    header(h, &n, "accept-version", versions);
    header(h, &n, "host", c->o->host != NULL ? c->o->host : c->o->url.host);
    if (c->o->login != NULL)
        header(h, &n, "login", c->o->login);
    if (c->o->passcode != NULL)
        header(h, &n, "passcode", c->o->passcode);
    if (c->o->heartbeat_send_ms != 0 || c->o->heartbeat_receive_ms != 0) {
        snprintf(beats, sizeof(beats), "%u,%u", c->o->heartbeat_send_ms,
                 c->o->heartbeat_receive_ms);
        header(h, &n, "heart-beat", beats);
    }
    send_frame(c, STOMP_CMD_CONNECT, h, n, NULL, 0);
}

/* DISCONNECT with a receipt: its RECEIPT means the broker handled everything before it. */
static void disconnect(struct client *c)
{
    if (c->state >= C_DISCONNECTING)
        return;
    struct stomp_header h[1];
    size_t n = 0;
    header(h, &n, "receipt", "disconnect");
    send_frame(c, STOMP_CMD_DISCONNECT, h, n, NULL, 0);
    c->state = C_DISCONNECTING;
    if (c->stdin_event != NULL)
        event_del(c->stdin_event);
    arm(c->deadline, c->o->wait_ms);
}

/* ---- pub ---- */

static void publish(struct client *c, const char *body, size_t len)
{
    struct stomp_header h[MAX_FRAME_HEADERS];
    size_t n = 0;
    char receipt[32];
    header(h, &n, "destination", c->o->destinations[0]);
    if (c->o->content_type != NULL)
        header(h, &n, "content-type", c->o->content_type);
    if (c->o->receipt) {
        snprintf(receipt, sizeof(receipt), "send-%llu", c->sent + 1);
        header(h, &n, "receipt", receipt);
    }
    user_headers(c, h, &n);
    send_frame(c, STOMP_CMD_SEND, h, n, body, len);
    c->sent++;
}

/* Publishes every complete line in c->input (without its LF, or CR LF). */
static int publish_lines(struct client *c)
{
    for (;;) {
        size_t eol_len = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(c->input, NULL, &eol_len, EVBUFFER_EOL_LF);
        if (eol.pos < 0)
            break;
        size_t len = (size_t)eol.pos;
        if (len > CLIENT_MAX_BODY) {
            fail(c, "stdin: line %llu is longer than %u bytes, the most one message may carry",
                 c->lines + 1, CLIENT_MAX_BODY);
            return -1;
        }
        const char *line = (const char *)evbuffer_pullup(c->input, (ev_ssize_t)(len + eol_len));
        c->lines++;
        publish(c, line, len > 0 && line[len - 1] == '\r' ? len - 1 : len);
        evbuffer_drain(c->input, len + eol_len);
    }
    if (evbuffer_get_length(c->input) > CLIENT_MAX_BODY) {
        fail(c, "stdin: line %llu is longer than %u bytes, the most one message may carry",
             c->lines + 1, CLIENT_MAX_BODY);
        return -1;
    }
    return 0;
}

/* EOF on stdin: the last line without an LF, or all of stdin with -n, is the last message. */
static void publish_rest(struct client *c)
{
    size_t len = evbuffer_get_length(c->input);
    const char *rest = (const char *)evbuffer_pullup(c->input, -1);
    if (c->o->stdin_whole || len > 0)
        publish(c, rest, !c->o->stdin_whole && len > 0 && rest[len - 1] == '\r' ? len - 1 : len);
    evbuffer_drain(c->input, len);
    c->input_done = true;
    disconnect(c);
}

/* Reads one chunk of stdin and publishes what it completes; pauses when output backs up. */
static void read_stdin(struct client *c)
{
    int n = evbuffer_read(c->input, STDIN_FILENO, STDIN_CHUNK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n < 0) {
        fail(c, "cannot read stdin: %s", strerror(errno));
        return;
    }
    if (c->o->stdin_whole && evbuffer_get_length(c->input) > CLIENT_MAX_BODY) {
        fail(c, "stdin is longer than %u bytes, the most one message may carry", CLIENT_MAX_BODY);
        return;
    }
    if (!c->o->stdin_whole && publish_lines(c) != 0)
        return;
    if (n == 0) {
        publish_rest(c);
        return;
    }
    if (transport_pending(c->transport) > TRANSPORT_HIGH_WATER) {
        c->stdin_paused = true;
        if (c->stdin_event != NULL)
            event_del(c->stdin_event);
        return;
    }
    if (c->stdin_step != NULL)
        event_active(c->stdin_step, EV_READ, 0);
}

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    if (c->state == C_RUNNING)
        read_stdin(c);
}

static void on_drain(void *arg)
{
    struct client *c = arg;
    if (!c->stdin_paused || c->state != C_RUNNING)
        return;
    c->stdin_paused = false;
    if (c->stdin_event != NULL)
        event_add(c->stdin_event, NULL);
    else
        event_active(c->stdin_step, EV_READ, 0);
}

/*
 * Pipes, sockets and terminals are polled; files (and /dev/null) cannot be, and never block,
 * so they are read one chunk per loop turn instead.
 */
static int start_stdin(struct client *c)
{
    struct stat st;
    bool pollable = fstat(STDIN_FILENO, &st) == 0 &&
                    (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDIN_FILENO));
    c->input = evbuffer_new();
    if (pollable)
        c->stdin_event = event_new(c->base, STDIN_FILENO, EV_READ | EV_PERSIST, stdin_cb, c);
    else
        c->stdin_step = event_new(c->base, -1, 0, stdin_cb, c);
    if (c->input == NULL || (c->stdin_event == NULL && c->stdin_step == NULL))
        return -1;
    if (pollable)
        event_add(c->stdin_event, NULL);
    else
        event_active(c->stdin_step, EV_READ, 0);
    return 0;
}

static void start_pub(struct client *c)
{
    c->state = C_RUNNING;
    evtimer_del(c->deadline);
    if (c->o->body != NULL) {
        publish(c, c->o->body, strlen(c->o->body));
        c->input_done = true;
        disconnect(c);
    } else if (start_stdin(c) != 0) {
        fail(c, "out of memory");
    }
}

/* ---- sub ---- */

static const char *ack_name(enum client_ack ack)
{
    switch (ack) {
    case CLIENT_ACK_CLIENT:
        return "client";
    case CLIENT_ACK_CLIENT_INDIVIDUAL:
        return "client-individual";
    default:
        return "auto";
    }
}

static bool has_user_header(const struct client *c, const char *name)
{
    for (size_t i = 0; i < c->o->header_count; i++)
        if (c->o->headers[i].name_len == strlen(name) &&
            memcmp(c->o->headers[i].name, name, c->o->headers[i].name_len) == 0)
            return true;
    return false;
}

static void start_sub(struct client *c)
{
    c->state = C_SUBSCRIBING;
    arm(c->deadline, c->o->wait_ms);
    for (size_t i = 0; i < c->o->destination_count; i++) {
        struct stomp_header h[MAX_FRAME_HEADERS];
        size_t n = 0;
        char id[32], receipt[32], prefetch[32];
        snprintf(id, sizeof(id), "sub-%zu", i);
        snprintf(receipt, sizeof(receipt), "subscribe-%zu", i);
        header(h, &n, "id", id);
        header(h, &n, "destination", c->o->destinations[i]);
        header(h, &n, "ack", ack_name(c->o->ack));
        header(h, &n, "receipt", receipt);
        /* At most --count unacked queue messages at a time (unless -H says otherwise): the
         * rest stay with the broker for other consumers. */
        if (c->o->count != 0 && c->o->ack != CLIENT_ACK_AUTO &&
            !has_user_header(c, "prefetch-count")) {
            snprintf(prefetch, sizeof(prefetch), "%lu", c->o->count);
            header(h, &n, "prefetch-count", prefetch);
        }
        user_headers(c, h, &n);
        send_frame(c, STOMP_CMD_SUBSCRIBE, h, n, NULL, 0);
    }
}

static void subscribed(struct client *c)
{
    if (++c->subscribed < c->o->destination_count)
        return;
    if (c->state == C_SUBSCRIBING)
        c->state = C_RUNNING;
    evtimer_del(c->deadline);
    if (!c->o->quiet)
        for (size_t i = 0; i < c->o->destination_count; i++)
            cli_say(0, "subscribed to %s", c->o->destinations[i]);
}

/* One header line for -v output: control characters shown as escapes, so one line each. */
static void print_escaped(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\r')
            fputs("\\r", stdout);
        else if (ch < 0x20 || ch == 0x7F)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
}

/* Prints a MESSAGE (headers first with -v) and flushes: it is out before it is acked. */
static int print_message(struct client *c, const struct stomp_frame *f)
{
    if (c->o->verbose) {
        for (size_t i = 0; i < f->header_count; i++) {
            print_escaped(f->headers[i].name, f->headers[i].name_len);
            putchar(':');
            print_escaped(f->headers[i].value, f->headers[i].value_len);
            putchar('\n');
        }
        putchar('\n');
    }
    fwrite(f->body, 1, f->body_len, stdout);
    putchar('\n');
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fail(c, "cannot write to stdout: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ACK per version: 1.2 by the ack header, 1.1 by message-id and subscription, 1.0 message-id. */
static void ack(struct client *c, const struct stomp_frame *f)
{
    const struct stomp_header *id = stomp_frame_header(f, "ack");
    const struct stomp_header *message_id = stomp_frame_header(f, "message-id");
    const struct stomp_header *sub = stomp_frame_header(f, "subscription");
    struct stomp_header h[2];
    size_t n = 0;
    if (c->version == STOMP_V1_2 && id != NULL) {
        h[n++] = (struct stomp_header){"id", 2, id->value, id->value_len};
    } else if (c->version != STOMP_V1_2 && message_id != NULL) {
        h[n++] = (struct stomp_header){"message-id", 10, message_id->value, message_id->value_len};
        if (c->version == STOMP_V1_1 && sub != NULL)
            h[n++] = (struct stomp_header){"subscription", 12, sub->value, sub->value_len};
    } else {
        fail(c, "a MESSAGE without %s: cannot acknowledge it",
             c->version == STOMP_V1_2 ? "an ack header" : "a message-id header");
        return;
    }
    send_frame(c, STOMP_CMD_ACK, h, n, NULL, 0);
}

static void on_message(struct client *c, const struct stomp_frame *f)
{
    if (c->o->mode != CLIENT_SUB || (c->state != C_SUBSCRIBING && c->state != C_RUNNING))
        return; /* after --count is reached: left unacked, the broker redelivers it */
    if (print_message(c, f) != 0)
        return;
    if (c->o->ack != CLIENT_ACK_AUTO)
        ack(c, f);
    c->received++;
    if (c->idle != NULL)
        arm(c->idle, c->o->timeout_ms);
    if (c->o->count != 0 && c->received >= c->o->count)
        disconnect(c);
}

/* ---- frames in ---- */

static void start_heartbeats(struct client *c, const struct stomp_frame *f)
{
    const struct stomp_header *hb = stomp_frame_header(f, "heart-beat");
    unsigned sx = 0, sy = 0, broker_sends, broker_expects;
    if (hb != NULL)
        stomp_heartbeat_parse(hb->value, hb->value_len, &sx, &sy);
    /* The spec's arithmetic is written from the broker's side: swap to get ours. */
    stomp_heartbeat_negotiate(c->o->heartbeat_send_ms, c->o->heartbeat_receive_ms, sx, sy,
                              &broker_sends, &broker_expects);
    if (broker_expects != 0)
        arm(c->beat, broker_expects);
    c->beat_expect_ms = broker_sends;
    if (broker_sends != 0)
        arm(c->beat_check, broker_sends);
}

static void on_connected(struct client *c, const struct stomp_frame *f)
{
    const struct stomp_header *v = stomp_frame_header(f, "version");
    int version = v != NULL ? stomp_negotiate_version(v->value, v->value_len, c->o->versions)
                            : (c->o->versions & STOMP_VERSION_BIT(STOMP_V1_0) ? STOMP_V1_0 : -1);
    if (version < 0) {
        fail(c, "the broker chose STOMP %.*s, which was not offered",
             v != NULL ? (int)v->value_len : 3, v != NULL ? v->value : "1.0");
        return;
    }
    c->version = (enum stomp_version)version;
    stomp_parser_set_version(c->parser, c->version);
    start_heartbeats(c, f);
    if (c->o->verbose) {
        const struct stomp_header *server = stomp_frame_header(f, "server");
        cli_say(0, "connected (STOMP %s%s%.*s)", stomp_version_name(c->version),
                server != NULL ? ", server " : "", server != NULL ? (int)server->value_len : 0,
                server != NULL ? server->value : "");
    }
    if (c->o->mode == CLIENT_PUB)
        start_pub(c);
    else
        start_sub(c);
}

static void on_receipt(struct client *c, const struct stomp_frame *f)
{
    const struct stomp_header *id = stomp_frame_header(f, "receipt-id");
    if (id == NULL)
        return;
    if (id->value_len > 10 && memcmp(id->value, "subscribe-", 10) == 0) {
        subscribed(c);
    } else if (id->value_len > 5 && memcmp(id->value, "send-", 5) == 0) {
        c->receipts++;
    } else if (stomp_header_is(id, "disconnect") && c->state == C_DISCONNECTING) {
        if (c->o->receipt && c->receipts != c->sent) {
            fail(c, "the broker confirmed %llu of %llu messages", c->receipts, c->sent);
            return;
        }
        if (c->o->verbose && c->o->mode == CLIENT_PUB && c->o->receipt)
            cli_say(0, "published %llu message%s, each confirmed by a RECEIPT", c->sent,
                    c->sent == 1 ? "" : "s");
        else if (c->o->verbose && c->o->mode == CLIENT_PUB)
            cli_say(0, "published %llu message%s", c->sent, c->sent == 1 ? "" : "s");
        c->state = C_CLOSING;
        evtimer_del(c->deadline);
        transport_shutdown(c->transport);
    }
}

static void on_error_frame(struct client *c, const struct stomp_frame *f)
{
    const struct stomp_header *message = stomp_frame_header(f, "message");
    if (c->state == C_DONE)
        return;
    if (message != NULL)
        fail(c, "ERROR from the broker: %.*s", (int)message->value_len, message->value);
    else
        fail(c, "ERROR from the broker (no message header)");
    if (c->o->verbose && f->body_len > 0)
        fprintf(stderr, "%.*s\n", (int)f->body_len, f->body);
}

static void on_frame(struct client *c, const struct stomp_frame *f)
{
    switch (f->command) {
    case STOMP_CMD_CONNECTED:
        if (c->state == C_CONNECTING)
            on_connected(c, f);
        break;
    case STOMP_CMD_MESSAGE:
        on_message(c, f);
        break;
    case STOMP_CMD_RECEIPT:
        on_receipt(c, f);
        break;
    case STOMP_CMD_ERROR:
        on_error_frame(c, f);
        break;
    default:
        fail(c, "the broker sent a %s frame", stomp_command_name(f->command));
        break;
    }
}

/* ---- transport callbacks ---- */

static void on_open(void *arg)
{
    send_connect(arg);
}

static void on_data(void *arg, const char *data, size_t len)
{
    struct client *c = arg;
    c->heard = true;
    while (len > 0 && c->state != C_DONE) {
        struct stomp_frame f;
        enum stomp_event ev;
        ssize_t n = stomp_parser_feed(c->parser, data, len, &f, &ev);
        if (n < 0) {
            fail(c, "bad STOMP from the broker: %s", stomp_parser_error_message(c->parser));
            return;
        }
        data += n;
        len -= (size_t)n;
        if (ev == STOMP_EVENT_FRAME)
            on_frame(c, &f);
    }
}

static void on_close(void *arg, const char *why)
{
    struct client *c = arg;
    if (c->state == C_CLOSING && c->interrupted && c->o->mode == CLIENT_PUB && !c->input_done)
        fail(c, "interrupted: the rest of stdin was not published");
    else if (c->state == C_CLOSING)
        done(c, 0);
    else
        fail(c, "%s", why != NULL ? why : "the connection was closed");
}

/* ---- timers and signals ---- */

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    double s = c->o->wait_ms / 1000.0;
    switch (c->state) {
    case C_CONNECTING:
        fail(c, "no CONNECTED from the broker within %g s", s);
        break;
    case C_SUBSCRIBING:
        fail(c, "the broker did not confirm the subscription within %g s", s);
        break;
    default:
        fail(c, "no RECEIPT for DISCONNECT from the broker within %g s", s);
        break;
    }
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    fail(c, "no message within %g s", c->o->timeout_ms / 1000.0);
}

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    transport_send_heartbeat(c->transport);
}

/* The broker is given twice its promised interval, as stompws gives its clients. */
static void beat_check_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    c->silent_ticks = c->heard ? 0 : c->silent_ticks + 1;
    c->heard = false;
    if (c->silent_ticks >= 2)
        fail(c, "nothing from the broker for %u ms (heart-beats were promised every %u ms)",
             2 * c->beat_expect_ms, c->beat_expect_ms);
}

/* First signal: DISCONNECT politely; a second one, or one before CONNECTED, ends at once. */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct client *c = arg;
    if (c->interrupted || c->state == C_CONNECTING || c->state >= C_DISCONNECTING) {
        fail(c, "interrupted");
        return;
    }
    c->interrupted = true;
    disconnect(c);
}

/* ---- run ---- */

static int setup(struct client *c)
{
    struct stomp_limits limits;
    stomp_limits_default(&limits);
    limits.max_body = CLIENT_MAX_BODY;
    c->base = event_base_new();
    c->parser = stomp_parser_new(&limits);
    if (c->base == NULL || c->parser == NULL)
        return -1;
    c->deadline = evtimer_new(c->base, deadline_cb, c);
    /* A beat goes out every interval whatever else is written: simple, and never late. */
    c->beat = event_new(c->base, -1, EV_PERSIST, beat_cb, c);
    c->beat_check = event_new(c->base, -1, EV_PERSIST, beat_check_cb, c);
    c->signals[0] = evsignal_new(c->base, SIGINT, signal_cb, c);
    c->signals[1] = evsignal_new(c->base, SIGTERM, signal_cb, c);
    if (c->o->timeout_ms != 0)
        c->idle = evtimer_new(c->base, idle_cb, c);
    if (c->deadline == NULL || c->beat == NULL || c->beat_check == NULL || c->signals[0] == NULL ||
        c->signals[1] == NULL || (c->o->timeout_ms && c->idle == NULL))
        return -1;
    event_add(c->signals[0], NULL);
    event_add(c->signals[1], NULL);
    return 0;
}

static void teardown(struct client *c)
{
    transport_free(c->transport);
    stomp_parser_free(c->parser);
    struct event *events[] = {c->deadline,   c->idle,       c->beat,        c->beat_check,
                              c->signals[0], c->signals[1], c->stdin_event, c->stdin_step};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        if (events[i] != NULL)
            event_free(events[i]);
    if (c->input != NULL)
        evbuffer_free(c->input);
    free(c->head);
    if (c->base == NULL)
        return;
    /* A freed TLS bufferevent is finalized by the loop: let it run once, or it leaks. */
    event_base_loop(c->base, EVLOOP_NONBLOCK);
    event_base_free(c->base);
}

int client_run(const struct client_options *o)
{
    struct client c = {.o = o, .version = STOMP_V1_2, .state = C_CONNECTING};
    char err[512] = "out of memory";
    struct transport_options topts = {
        .cafile = o->cafile,
        .insecure = o->insecure,
        .subprotocols = (o->versions & STOMP_VERSION_BIT(STOMP_V1_2)
                             ? WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V12_STOMP)
                             : 0) |
                        (o->versions & STOMP_VERSION_BIT(STOMP_V1_1)
                             ? WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V11_STOMP)
                             : 0) |
                        (o->versions & STOMP_VERSION_BIT(STOMP_V1_0)
                             ? WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V10_STOMP)
                             : 0),
        .max_message = CLIENT_MAX_BODY + STOMP_DEFAULT_MAX_HEADER_BYTES + 1,
    };
    struct transport_callbacks cb = {on_open, on_data, on_drain, on_close};
    if (o->insecure && !o->quiet && o->url.tls)
        cli_say(0,
                "WARNING: --insecure: the broker's certificate is NOT verified; anyone on the path "
                "can read and change this connection");
    if (setup(&c) != 0 ||
        (c.transport = transport_new(c.base, &o->url, &topts, &cb, &c, err, sizeof(err))) == NULL) {
        cli_say(0, "%s", err);
        teardown(&c);
        return 1;
    }
    arm(c.deadline, o->wait_ms);
    if (c.idle != NULL)
        arm(c.idle, o->timeout_ms);
    if (c.state != C_DONE)
        event_base_dispatch(c.base);
    teardown(&c);
    return c.exit_code;
}
