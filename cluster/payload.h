/*
 * payload.h - what a node makes of bytes it reads from Redis (a message), and the envelope it
 * writes for a message it publishes.
 *
 * Topic channels (cluster/bridge.c) and queue streams (cluster/streams.c) carry the same
 * payloads: an envelope written by a node (cluster/envelope.h), or any other bytes, which are a
 * backend's raw publish (`redis-cli PUBLISH` / `XADD ... m <bytes>`) and become the body as is.
 */
#ifndef STOMPWS_PAYLOAD_H
#define STOMPWS_PAYLOAD_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stddef.h>
#include <stdint.h>

#include "broker/base/message.h"
#include "cluster/envelope.h"

/* How a payload read for one destination decodes. */
struct payload_source {
    const char *destination; /* borrowed: the destination the channel or stream stands for */
    size_t destination_len;
    const char *own_origin;               /* borrowed: skip envelopes from this node, or NULL */
    const struct envelope_limits *limits; /* borrowed */
    struct stomp_header *headers;         /* borrowed scratch: limits->max_headers entries */
};

enum payload_result {
    PAYLOAD_ENVELOPE = 0, /* *out: the message an envelope carried */
    PAYLOAD_RAW = 1,      /* *out: a raw payload as the body */
    PAYLOAD_OWN = 2,      /* an envelope from own_origin: nothing built */
    PAYLOAD_REFUSED = -1, /* *error says why: over a limit, a bad envelope, another destination */
    PAYLOAD_NOMEM = -2,
};

/* The envelope this node (origin, a NUL-terminated node id) writes for msg: its destination,
 * headers and body, all borrowed from msg. */
struct envelope payload_envelope(const char *origin, uint64_t seq, const struct message *msg);

/* Builds the message payload[0..len) stands for (refcount 1, owned by the caller) in *out. */
enum payload_result payload_decode(const struct payload_source *src, const char *payload,
                                   size_t len, struct message **out, const char **error);

#endif
