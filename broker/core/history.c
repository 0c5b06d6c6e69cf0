#include "broker/core/history.h"
#include "broker/core/destination.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct history_stream;

/* One retained copy: in its stream (oldest to newest) and in the store (oldest to newest). */
struct history_entry {
    struct history_entry *older, *newer; /* links in the stream (not owned) */
    struct history_entry *prev, *next;   /* links in the store's list (not owned) */
    struct history_stream *stream;       /* borrowed: the stream that owns the entry */
    uint64_t offset;
    uint64_t published_ms; /* wall clock */
    size_t bytes;          /* what it counts against limits.history_bytes */
    struct message *msg;   /* owned: the store's copy, or a reference when not shared */
};

/* One destination's stream. Kept for the process's life: its next offset must not restart. */
struct history_stream {
    const struct history_policy *policy;   /* borrowed: the store's */
    struct history_entry *oldest, *newest; /* owned entries */
    size_t count;
    uint64_t next_offset; /* the offset the next message gets, from 1 */
    uint64_t dropped_ms;  /* publish time of the newest copy dropped (evicted or expired) */
    bool dropped;         /* some copy was dropped */
    size_t name_len;
    char name[];
};

struct history {
    pthread_mutex_t lock;            /* guards everything below but policies and epoch */
    struct history_policy *policies; /* owned: policy_count of them, never changed */
    size_t policy_count;
    uint64_t epoch;
    /* Several loops publish and replay through it: each gets copies, since a message's
     * reference count belongs to one loop. One loop's store keeps and hands out references. */
    bool shared;
    size_t max_bytes;
    size_t bytes, messages;
    struct dict streams;                   /* owned values: name -> struct history_stream */
    struct history_entry *oldest, *newest; /* every entry, in publish order */
};

/*
 * A random non-zero epoch of 32 bits (8 hex digits in every MESSAGE: each byte of a header line
 * is paid once per delivery). It only has to differ from the last one; two starts draw the same
 * with odds of one in four billion. The clock and the process when there is no entropy yet.
 */
static uint64_t new_epoch(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint32_t)((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid());
    }
    return v != 0 ? v : 1;
}

struct history *history_new(const struct config *cfg, bool shared)
{
    struct history *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->shared = shared;
    h->policies = calloc(cfg->history_count + 1, sizeof(*h->policies));
    if (h->policies == NULL) {
        free(h);
        return NULL;
    }
    for (size_t i = 0; i < cfg->history_count; i++) {
        struct history_policy *p = &h->policies[i];
        const struct config_history *c = &cfg->history[i];
        memcpy(p->pattern, c->pattern, sizeof(p->pattern));
        p->pattern_len = strlen(p->pattern);
        p->wildcard = destination_is_wildcard(p->pattern, p->pattern_len);
        p->size = c->size;
        p->ttl_ms = c->ttl_ms;
    }
    h->policy_count = cfg->history_count;
    h->epoch = new_epoch();
    h->max_bytes = cfg->history_bytes;
    dict_init(&h->streams);
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

void history_free(struct history *h)
{
    if (h == NULL)
        return;
    for (struct history_entry *e = h->oldest, *next; e != NULL; e = next) {
        next = e->next;
        message_unref(e->msg);
        free(e);
    }
    size_t bucket;
    for (struct dict_entry *e = dict_first(&h->streams, &bucket); e != NULL;
         e = dict_next(&h->streams, &bucket, e))
        free(e->value);
    dict_reset(&h->streams);
    pthread_mutex_destroy(&h->lock);
    free(h->policies);
    free(h);
}

uint64_t history_epoch(const struct history *h)
{
    return h->epoch;
}

bool history_has_policies(const struct history *h)
{
    return h != NULL && h->policy_count > 0;
}

const struct history_policy *history_policy_for(const struct history *h, const char *name,
                                                size_t len)
{
    for (size_t i = 0; i < h->policy_count; i++) {
        const struct history_policy *p = &h->policies[i];
        bool match = p->wildcard ? destination_matches(p->pattern, p->pattern_len, name, len)
                                 : p->pattern_len == len && memcmp(p->pattern, name, len) == 0;
        if (match)
            return destination_is_wildcard(name, len) ? NULL : p;
    }
    return NULL;
}

/* ---- the rings ---------------------------------------------------------------------------- */

/* What a copy counts against limits.history_bytes: the entry and the message's allocation. */
static size_t entry_bytes(const struct message *msg)
{
    size_t n = sizeof(struct history_entry) + sizeof(struct message) + msg->destination_len +
               msg->body_len + 2;
    for (size_t i = 0; i < msg->header_count; i++)
        n += sizeof(struct stomp_header) + msg->headers[i].name_len + msg->headers[i].value_len + 2;
    return n;
}

/* Drops the oldest entry of its stream (which is e). */
static void drop_entry(struct history *h, struct history_entry *e)
{
    struct history_stream *s = e->stream;
    s->oldest = e->newer;
    if (s->oldest != NULL)
        s->oldest->older = NULL;
    else
        s->newest = NULL;
    s->count--;
    s->dropped = true;
    s->dropped_ms = e->published_ms;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        h->oldest = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        h->newest = e->prev;
    h->bytes -= e->bytes;
    h->messages--;
    message_unref(e->msg);
    free(e);
}

/* Drops a stream's copies older than its policy's TTL. */
static void expire(struct history *h, struct history_stream *s, uint64_t now_ms)
{
    uint64_t ttl = s->policy->ttl_ms;
    while (ttl != 0 && s->oldest != NULL && now_ms >= s->oldest->published_ms &&
           now_ms - s->oldest->published_ms >= ttl)
        drop_entry(h, s->oldest);
}

static struct history_stream *stream_for(struct history *h, const struct history_policy *p,
                                         const char *name, size_t len)
{
    struct history_stream *s = dict_get(&h->streams, name, len);
    if (s != NULL)
        return s;
    s = calloc(1, sizeof(*s) + len + 1);
    if (s == NULL)
        return NULL;
    s->policy = p;
    s->next_offset = 1;
    memcpy(s->name, name, len);
    s->name_len = len;
    if (dict_set(&h->streams, name, len, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void link_entry(struct history *h, struct history_stream *s, struct history_entry *e)
{
    e->stream = s;
    e->older = s->newest;
    if (s->newest != NULL)
        s->newest->newer = e;
    else
        s->oldest = e;
    s->newest = e;
    s->count++;
    e->prev = h->newest;
    if (h->newest != NULL)
        h->newest->next = e;
    else
        h->oldest = e;
    h->newest = e;
    h->bytes += e->bytes;
    h->messages++;
}

int history_append(struct history *h, const struct history_policy *p, struct message *msg,
                   uint64_t now_ms, void (*locked)(void *arg, struct message *msg), void *arg,
                   size_t *evicted)
{
    *evicted = 0;
    struct history_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -1;
    pthread_mutex_lock(&h->lock);
    struct history_stream *s = stream_for(h, p, msg->destination, msg->destination_len);
    if (s == NULL) {
        pthread_mutex_unlock(&h->lock);
        free(e);
        return -1;
    }
    msg->stream_offset = s->next_offset;
    msg->stream_epoch = h->epoch;
    if ((e->msg = h->shared ? message_clone(msg) : message_ref(msg)) == NULL) {
        msg->stream_offset = msg->stream_epoch = 0;
        pthread_mutex_unlock(&h->lock);
        free(e);
        return -1;
    }
    s->next_offset++;
    e->offset = msg->stream_offset;
    e->published_ms = now_ms;
    e->bytes = entry_bytes(msg);
    expire(h, s, now_ms);
    while (s->count >= p->size)
        drop_entry(h, s->oldest);
    while (h->oldest != NULL && h->bytes + e->bytes > h->max_bytes) {
        drop_entry(h, h->oldest);
        (*evicted)++;
    }
    if (e->bytes <= h->max_bytes) {
        link_entry(h, s, e);
    } else { /* bigger than the whole budget: offset given, nothing kept */
        s->dropped = true;
        s->dropped_ms = now_ms;
        (*evicted)++;
        message_unref(e->msg);
        free(e);
    }
    if (locked != NULL)
        locked(arg, msg);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

/* ---- SUBSCRIBE headers -------------------------------------------------------------------- */

/* Decimal digits only, no sign or space, no overflow. */
static bool parse_decimal(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_hex(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 16)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

static bool is_word(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(s, word, len) == 0;
}

static bool has_lead(const char *s, size_t len, const char *lead)
{
    return len >= strlen(lead) && memcmp(s, lead, strlen(lead)) == 0;
}

int history_parse_request(const char *offset, size_t offset_len, const char *epoch,
                          size_t epoch_len, struct history_request *out)
{
    memset(out, 0, sizeof(*out));
    out->from = HISTORY_NEXT;
    if (offset != NULL) {
        size_t lo = strlen("offset="), lt = strlen("timestamp=");
        if (is_word(offset, offset_len, "next"))
            out->from = HISTORY_NEXT;
        else if (is_word(offset, offset_len, "last"))
            out->from = HISTORY_LAST;
        else if (is_word(offset, offset_len, "first"))
            out->from = HISTORY_FIRST;
        else if (has_lead(offset, offset_len, "offset=") &&
                 parse_decimal(offset + lo, offset_len - lo, &out->value))
            out->from = HISTORY_OFFSET;
        else if (has_lead(offset, offset_len, "timestamp=") &&
                 parse_decimal(offset + lt, offset_len - lt, &out->value) &&
                 out->value <= UINT64_MAX / 1000)
            out->from = HISTORY_TIMESTAMP;
        else
            return HISTORY_HEADER_BAD_OFFSET;
    }
    if (epoch != NULL) {
        if (!parse_hex(epoch, epoch_len, &out->epoch))
            return HISTORY_HEADER_BAD_EPOCH;
        out->has_epoch = true;
    }
    return HISTORY_HEADER_OK;
}

/* ---- replay ------------------------------------------------------------------------------- */

static int replay_push(const struct history *h, struct history_replay *r, struct message *stored)
{
    if (r->count == r->cap) {
        size_t cap = r->cap != 0 ? r->cap * 2 : 16;
        struct message **grown = realloc(r->msgs, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        r->msgs = grown;
        r->cap = cap;
    }
    struct message *copy = h->shared ? message_clone(stored) : message_ref(stored);
    if (copy == NULL)
        return -1;
    r->msgs[r->count++] = copy;
    return 0;
}

static int set_mark(struct history_replay *r, const struct history_stream *s, uint64_t epoch)
{
    struct history_mark *mark = malloc(sizeof(*mark));
    if (mark == NULL)
        return -1;
    mark->offset = s->next_offset - 1;
    mark->epoch = epoch;
    free(dict_get(&r->marks, s->name, s->name_len));
    if (dict_set(&r->marks, s->name, s->name_len, mark) != 0) {
        free(mark);
        return -1;
    }
    return 0;
}

/* Where the replay of s starts, and whether everything from the requested position on is
 * still there. The epoch is checked by the caller. */
static const struct history_entry *replay_start(const struct history_stream *s,
                                                const struct history_request *req, bool *recovered)
{
    uint64_t first_kept = s->oldest != NULL ? s->oldest->offset : s->next_offset;
    const struct history_entry *e = s->oldest;
    switch (req->from) {
    case HISTORY_LAST:
        *recovered = true;
        return s->newest;
    case HISTORY_FIRST: /* the position asked for is the stream's start */
        *recovered = first_kept == 1;
        return e;
    case HISTORY_OFFSET: {
        uint64_t want = req->value > 0 ? req->value : 1;
        *recovered = want >= first_kept && want <= s->next_offset;
        while (e != NULL && e->offset < want)
            e = e->newer;
        return e;
    }
    case HISTORY_TIMESTAMP: {
        uint64_t since_ms = req->value * 1000;
        *recovered = !s->dropped || s->dropped_ms < since_ms;
        while (e != NULL && e->published_ms < since_ms)
            e = e->newer;
        return e;
    }
    case HISTORY_NEXT:
        break;
    }
    *recovered = true;
    return NULL;
}

/* The copies of one stream the request asks for, and its mark. */
static int replay_stream(struct history *h, struct history_stream *s,
                         const struct history_request *req, uint64_t now_ms,
                         struct history_replay *out)
{
    expire(h, s, now_ms);
    bool epoch_ok = !req->has_epoch || req->epoch == h->epoch;
    struct history_request asked = *req;
    if (!epoch_ok && asked.from == HISTORY_OFFSET) /* another history's offset: all is new */
        asked.from = HISTORY_FIRST;
    bool recovered;
    const struct history_entry *e = replay_start(s, &asked, &recovered);
    out->recovered = out->recovered && recovered && epoch_ok;
    for (; e != NULL; e = e->newer)
        if (replay_push(h, out, e->msg) != 0)
            return -1;
    return set_mark(out, s, h->epoch);
}

static int replay_locked(struct history *h, const char *name, size_t len, bool wildcard,
                         const struct history_request *req, uint64_t now_ms,
                         struct history_replay *out)
{
    if (!wildcard) {
        const struct history_policy *p = history_policy_for(h, name, len);
        if (p == NULL) { /* nothing is retained here: nothing can be recovered */
            out->recovered = false;
            return 0;
        }
        struct history_stream *s = dict_get(&h->streams, name, len);
        if (s != NULL)
            return replay_stream(h, s, req, now_ms, out);
        /* Nothing published since the start: only a position past 1 (or another epoch) was
         * missed. */
        bool epoch_ok = !req->has_epoch || req->epoch == h->epoch;
        out->recovered = epoch_ok && (req->from != HISTORY_OFFSET || req->value <= 1);
        return 0;
    }
    out->recovered = h->policy_count > 0;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&h->streams, &bucket); e != NULL;
         e = dict_next(&h->streams, &bucket, e)) {
        struct history_stream *s = e->value;
        if (destination_matches(name, len, s->name, s->name_len) &&
            replay_stream(h, s, req, now_ms, out) != 0)
            return -1;
    }
    return 0;
}

int history_replay(struct history *h, const char *name, size_t len, bool wildcard,
                   const struct history_request *req, uint64_t now_ms, struct history_replay *out)
{
    memset(out, 0, sizeof(*out));
    dict_init(&out->marks);
    out->recovered = true;
    if (h == NULL) {
        out->recovered = false;
        return 0;
    }
    pthread_mutex_lock(&h->lock);
    int rc = replay_locked(h, name, len, wildcard, req, now_ms, out);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void history_replay_reset(struct history_replay *r)
{
    for (size_t i = 0; i < r->count; i++)
        message_unref(r->msgs[i]);
    free(r->msgs);
    r->msgs = NULL;
    r->count = r->cap = 0;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&r->marks, &bucket); e != NULL;
         e = dict_next(&r->marks, &bucket, e))
        free(e->value);
    dict_reset(&r->marks);
}

/* ---- marks -------------------------------------------------------------------------------- */

bool history_marks_pass(struct dict **marks, const struct message *msg)
{
    if (*marks == NULL || msg->stream_offset == 0)
        return true;
    const struct history_mark *mark = dict_get(*marks, msg->destination, msg->destination_len);
    if (mark == NULL)
        return true;
    if (msg->stream_epoch == mark->epoch && msg->stream_offset <= mark->offset)
        return false;
    free(dict_remove(*marks, msg->destination, msg->destination_len));
    if ((*marks)->count == 0) {
        history_marks_free(*marks);
        *marks = NULL;
    }
    return true;
}

void history_marks_free(struct dict *marks)
{
    if (marks == NULL)
        return;
    size_t bucket;
    for (struct dict_entry *e = dict_first(marks, &bucket); e != NULL;
         e = dict_next(marks, &bucket, e))
        free(e->value);
    dict_reset(marks);
    free(marks);
}

void history_stats(struct history *h, struct history_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    out->destinations = h->streams.count;
    out->messages = h->messages;
    out->bytes = h->bytes;
    pthread_mutex_unlock(&h->lock);
}
