#include "cluster/payload.h"

#include <string.h>

static bool same(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

enum payload_result payload_decode(const struct payload_source *src, const char *payload,
                                   size_t len, struct message **out, const char **error)
{
    *out = NULL;
    *error = NULL;
    if (!envelope_has_magic(payload, len)) {
        if (len > src->limits->max_body) {
            *error = "raw payload over limits.max_body";
            return PAYLOAD_REFUSED;
        }
        *out = message_new(src->destination, src->destination_len, NULL, 0, payload, len);
        return *out != NULL ? PAYLOAD_RAW : PAYLOAD_NOMEM;
    }
    struct envelope env;
    int rc =
        envelope_decode(payload, len, src->limits, src->headers, src->limits->max_headers, &env);
    if (rc != 0) {
        *error = envelope_strerror(rc);
        return PAYLOAD_REFUSED;
    }
    if (src->own_origin != NULL &&
        same(env.origin, env.origin_len, src->own_origin, strlen(src->own_origin)))
        return PAYLOAD_OWN;
    if (!same(env.destination, env.destination_len, src->destination, src->destination_len)) {
        *error = "envelope destination differs from the channel or stream";
        return PAYLOAD_REFUSED;
    }
    *out = message_new(env.destination, env.destination_len, env.headers, env.header_count,
                       env.body, env.body_len);
    return *out != NULL ? PAYLOAD_ENVELOPE : PAYLOAD_NOMEM;
}

struct envelope payload_envelope(const char *origin, uint64_t seq, const struct message *msg)
{
    return (struct envelope){
        .origin = origin,
        .origin_len = strlen(origin),
        .seq = seq,
        .destination = msg->destination,
        .destination_len = msg->destination_len,
        .headers = msg->headers,
        .header_count = msg->header_count,
        .body = msg->body,
        .body_len = msg->body_len,
    };
}
