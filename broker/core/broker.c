#include "broker/core/broker.h"

#include <event2/event.h>
#include <time.h>

const char *limit_name(enum limit_kind kind)
{
    static const char *const names[LIMIT_COUNT] = {
        [LIMIT_CONNECTION_RATE] = "limits.connection_rate",
        [LIMIT_MAX_CONNECTIONS] = "limits.max_connections",
        [LIMIT_CONNECTIONS_PER_ADDRESS] = "limits.max_connections_per_address",
        [LIMIT_HANDSHAKE_TIMEOUT] = "limits.handshake_timeout_ms",
        [LIMIT_CONNECT_TIMEOUT] = "limits.connect_timeout_ms",
        [LIMIT_HTTP_HEADER_BYTES] = "limits.max_http_header_bytes",
        [LIMIT_WS_MESSAGE] = "limits.max_ws_message",
        [LIMIT_STOMP_FRAME] = "limits.max_frame_headers|max_header_line|max_header_bytes|max_body",
        [LIMIT_SUBSCRIPTIONS] = "limits.max_subscriptions",
        [LIMIT_TRANSACTIONS] = "limits.max_transactions",
        [LIMIT_TX_FRAMES] = "limits.max_tx_frames",
        [LIMIT_UNACKED] = "limits.max_unacked",
        [LIMIT_PUBLISH_RATE] = "limits.publish_rate",
        [LIMIT_QUEUE_MESSAGES] = "queue.max_messages",
        [LIMIT_SLOW_CONSUMER] = "limits.slow_consumer_max_drops",
        [LIMIT_HEARTBEAT] = "heartbeat",
        [LIMIT_CLUSTER_QUEUE_BUFFER] = "cluster.queue_buffer_bytes",
        [LIMIT_HISTORY_BYTES] = "limits.history_bytes",
    };
    return names[kind];
}

const uint64_t broker_lag_bucket_us[BROKER_LAG_BUCKETS] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};

uint64_t broker_now_ms(const struct broker *b)
{
    (void)b;
    /* Monotonic: wall-clock steps must not fire timeouts or fill buckets. Coarse (a few ms of
     * resolution, no syscall, far cheaper): it is read once per delivery, and every use here
     * (timeouts, heart-beats, rate buckets) is in milliseconds anyway. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t broker_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void broker_finish_shutdown(struct broker *b)
{
    if (b->fanout.ops != NULL && !b->fanout.ops->flushed(b->fanout.ctx)) {
        const struct timeval again = {.tv_sec = 0, .tv_usec = 20000};
        event_add(b->reap_event, &again);
        return;
    }
    event_base_loopexit(b->base, NULL);
}
