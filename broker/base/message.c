#include "broker/base/message.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "stomp/encode.h"
#include "ws/utf8.h"

/* Atomic: every event loop (server.threads) creates messages and ids must stay unique in the
 * process. Relaxed: only uniqueness matters, not order between loops. */
static _Atomic uint64_t next_seq = 1;

uint64_t message_count(void)
{
    return atomic_load_explicit(&next_seq, memory_order_relaxed) - 1;
}

/*
 * What makes message-ids unique beyond this process: 48 random bits drawn once per process, in
 * hex. A restart or another node draws new ones, so "m-<run>-<seq>" never repeats where
 * clients de-duplicate by id (the counter alone restarted at 1 in every process).
 */
static char run_id[13];
static pthread_once_t run_id_once = PTHREAD_ONCE_INIT;

static void make_run_id(void)
{
    uint8_t rnd[6];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* No entropy (a very early boot): the clock and the process still differ per run. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t v =
            (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
        memcpy(rnd, &v, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(run_id + 2 * i, 3, "%02x", rnd[i]);
}

const char *message_run_id(void)
{
    pthread_once(&run_id_once, make_run_id);
    return run_id;
}

/* Headers the broker sets itself or that only concern the SEND frame. x-stream-* are the
 * broker's (stream offset and epoch): a client must not forge them. */
static bool header_passed_on(const struct stomp_header *h)
{
    if (h->name_len >= 9 && memcmp(h->name, "x-stream-", 9) == 0)
        return false;
    static const char *const dropped[] = {
        "destination", "receipt",      "transaction", "content-length",
        "message-id",  "subscription", "ack",         "redelivered"};
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        if (h->name_len == strlen(dropped[i]) && memcmp(h->name, dropped[i], h->name_len) == 0)
            return false;
    return true;
}

static bool headers_utf8(const struct stomp_header *headers, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!ws_utf8_valid((const uint8_t *)headers[i].name, headers[i].name_len) ||
            !ws_utf8_valid((const uint8_t *)headers[i].value, headers[i].value_len))
            return false;
    return true;
}

/* Copies s into the arena at *cursor and returns the copy. */
static char *arena_copy(char **cursor, const char *s, size_t len)
{
    char *copy = *cursor;
    memcpy(copy, s, len);
    copy[len] = '\0';
    *cursor += len + 1;
    return copy;
}

struct message *message_new(const char *destination, size_t destination_len,
                            const struct stomp_header *headers, size_t header_count,
                            const char *body, size_t body_len)
{
    size_t strings = destination_len + 1 + body_len + 1;
    for (size_t i = 0; i < header_count; i++)
        strings += headers[i].name_len + headers[i].value_len + 2;
    struct message *msg =
        malloc(sizeof(*msg) + header_count * sizeof(struct stomp_header) + strings);
    if (msg == NULL)
        return NULL;
    memset(msg, 0, sizeof(*msg));
    msg->refcount = 1;
    msg->seq = atomic_fetch_add_explicit(&next_seq, 1, memory_order_relaxed);
    snprintf(msg->id, sizeof(msg->id), "m-%s-%llu", message_run_id(), (unsigned long long)msg->seq);
    msg->headers = (struct stomp_header *)(msg + 1);
    char *cursor = (char *)(msg->headers + header_count);
    msg->body = arena_copy(&cursor, body, body_len); /* first: keeps the big copy aligned */
    msg->body_len = body_len;
    msg->destination = arena_copy(&cursor, destination, destination_len);
    msg->destination_len = destination_len;
    for (size_t i = 0; i < header_count; i++) {
        struct stomp_header *h = &msg->headers[i];
        h->name = arena_copy(&cursor, headers[i].name, headers[i].name_len);
        h->name_len = headers[i].name_len;
        h->value = arena_copy(&cursor, headers[i].value, headers[i].value_len);
        h->value_len = headers[i].value_len;
    }
    msg->header_count = header_count;
    msg->utf8 = ws_utf8_valid((const uint8_t *)body, body_len) &&
                ws_utf8_valid((const uint8_t *)destination, destination_len) &&
                headers_utf8(msg->headers, header_count);
    return msg;
}

struct message *message_from_send(const struct stomp_frame *send, const char *destination,
                                  size_t destination_len, const char *reply_to)
{
    struct stomp_header *kept = malloc((send->header_count + 1) * sizeof(*kept));
    if (kept == NULL)
        return NULL;
    size_t count = 0;
    for (size_t i = 0; i < send->header_count; i++) {
        const struct stomp_header *h = &send->headers[i];
        if (!header_passed_on(h) || stomp_frame_header_n(send, h->name, h->name_len) != h)
            continue; /* repeated headers: the first wins, later ones are not passed on */
        kept[count] = *h;
        if (reply_to != NULL && h->name_len == 8 && memcmp(h->name, "reply-to", 8) == 0) {
            kept[count].value = reply_to;
            kept[count].value_len = strlen(reply_to);
        }
        count++;
    }
    struct message *msg =
        message_new(destination, destination_len, kept, count, send->body, send->body_len);
    free(kept);
    return msg;
}

struct message *message_clone(const struct message *msg)
{
    struct message *copy = message_new(msg->destination, msg->destination_len, msg->headers,
                                       msg->header_count, msg->body, msg->body_len);
    if (copy == NULL)
        return NULL;
    /* The same message everywhere: subscribers on every loop see one message-id. */
    copy->seq = msg->seq;
    memcpy(copy->id, msg->id, sizeof(copy->id));
    memcpy(copy->stream_id, msg->stream_id, sizeof(copy->stream_id));
    copy->stream_offset = msg->stream_offset;
    copy->stream_epoch = msg->stream_epoch;
    return copy;
}

struct message *message_ref(struct message *msg)
{
    msg->refcount++;
    return msg;
}

void message_unref(struct message *msg)
{
    if (msg == NULL || --msg->refcount > 0)
        return;
    for (int i = 0; i < 3; i++) {
        free(msg->encoded[i]);
        free(msg->deflated[i][0]);
        free(msg->deflated[i][1]);
    }
    for (int i = 0; i < 2; i++)
        free(msg->sse_data[i]);
    free(msg);
}

/* Writes the shared header lines into out (when not NULL); returns their length. */
static size_t encode_head(const struct message *msg, enum stomp_version v, char *out, size_t cap,
                          size_t *tail)
{
    size_t used = stomp_encode_header(out, cap, v, STOMP_CMD_MESSAGE, "destination", 11,
                                      msg->destination, msg->destination_len);
    *tail = used;
    /* message-id is the broker's own ASCII ("m-<run id>-N"): nothing to escape */
    char line[MESSAGE_ID_MAX + 48];
    int n = snprintf(line, sizeof(line), "message-id:%s\n", msg->id);
    if (out != NULL)
        memcpy(out + used, line, (size_t)n);
    used += (size_t)n;
    if (msg->stream_offset != 0) { /* the broker's own digits: nothing to escape */
        n = snprintf(line, sizeof(line), "x-stream-offset:%llu\nx-stream-epoch:%08llx\n",
                     (unsigned long long)msg->stream_offset, (unsigned long long)msg->stream_epoch);
        if (out != NULL)
            memcpy(out + used, line, (size_t)n);
        used += (size_t)n;
    }
    for (size_t i = 0; i < msg->header_count; i++) {
        const struct stomp_header *h = &msg->headers[i];
        used +=
            stomp_encode_header(out != NULL ? out + used : NULL, out != NULL ? cap - used : 0, v,
                                STOMP_CMD_MESSAGE, h->name, h->name_len, h->value, h->value_len);
    }
    n = snprintf(line, sizeof(line), "content-length:%zu\n\n", msg->body_len);
    if (out != NULL)
        memcpy(out + used, line, (size_t)n);
    return used + (size_t)n;
}

const char *message_encoded_head(struct message *msg, enum stomp_version v, size_t *len,
                                 size_t *tail)
{
    int slot = (int)v - (int)STOMP_V1_0;
    if (msg->encoded[slot] == NULL) {
        size_t need = encode_head(msg, v, NULL, 0, tail);
        char *out = malloc(need + 1);
        if (out == NULL)
            return NULL;
        msg->encoded_len[slot] = encode_head(msg, v, out, need + 1, &msg->encoded_tail[slot]);
        msg->encoded[slot] = out;
    }
    *len = msg->encoded_len[slot];
    *tail = msg->encoded_tail[slot];
    return msg->encoded[slot];
}
