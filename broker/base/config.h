/*
 * config.h - every broker setting in one struct, with named defaults.
 *
 * Settings come from the built-in defaults, then an INI file (--config), then flags; the same
 * setter serves the file and `--set section.key=value`, so every key can be given either way.
 * docs/CONFIG.md lists each key; keep it in step with config_keys[] in config.c.
 */
#ifndef STOMPWS_CONFIG_H
#define STOMPWS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_ADDR_MAX 256

/* A listening address; enabled is false for "off". */
struct config_addr {
    bool enabled;
    char host[CONFIG_ADDR_MAX];
    unsigned short port;
};

enum config_outbound_frames { OUTBOUND_FRAMES_AUTO, OUTBOUND_FRAMES_TEXT, OUTBOUND_FRAMES_BINARY };

/* server.threads: the most event loops a process runs (shared_queues.c keeps their sets in a
 * 64-bit mask), and the value of "auto": one loop per CPU this process may use (cpus.h). */
#define CONFIG_THREADS_MAX  64
#define CONFIG_THREADS_AUTO 0

/* [history] policy: the most retention policies (--history flags and policy lines). */
#define CONFIG_HISTORY_MAX 32

/* One retention policy: "PATTERN=SIZE[/TTL]" (--history, [history] policy). */
struct config_history {
    char pattern[CONFIG_ADDR_MAX]; /* a /topic/ name or wildcard pattern */
    size_t size;                   /* messages kept per destination, at least 1 */
    uint64_t ttl_ms;               /* how long one is kept; 0: no time limit */
};

/* refresh.warn_s: the longest warning before a token expires (a day). */
#define CONFIG_REFRESH_WARN_MAX_S 86400
/* [presence] pattern: the most patterns tracked (--presence flags and pattern lines). */
#define CONFIG_PRESENCE_MAX 32

/* auth.workers: the most password-hashing threads (workpool.h). */
#define CONFIG_AUTH_WORKERS_MAX 64

struct config {
    /* [server] */
    struct config_addr ws;
    char ws_path[CONFIG_ADDR_MAX];
    struct config_addr tcp;
    struct config_addr wss;       /* WebSocket over TLS, off by default */
    struct config_addr stomp_tls; /* STOMP over TLS, off by default */
    struct config_addr http;      /* health and metrics only, off by default */
    /* The HTTP publish API's bearer keys ("" = API off) and the static files ("" = none). */
    char api_key_file[CONFIG_ADDR_MAX];
    char static_dir[CONFIG_ADDR_MAX];
    int log_level;
    char log_file[CONFIG_ADDR_MAX]; /* "" = stderr; reopened by name on SIGHUP */
    int log_format;                 /* enum log_format: text or json lines */
    enum config_outbound_frames outbound_frames;
    unsigned shutdown_timeout_ms;
    unsigned tcp_keepalive_ms; /* idle time before TCP keepalive probes; 0: off */
    size_t threads; /* event loops, one per thread (1..CONFIG_THREADS_MAX) or CONFIG_THREADS_AUTO;
                       config_threads() resolves it; see server/threads.h */

    /* [limits] */
    size_t connection_rate;  /* new connections per second (token bucket), 0 = unlimited */
    size_t connection_burst; /* bucket size */
    size_t max_connections;
    size_t max_connections_per_address;
    size_t publish_rate; /* SEND frames per second per connection, 0 = unlimited */
    size_t publish_burst;
    char publish_rate_action[10]; /* past publish_rate: "throttle" (stop reading until the bucket
                                     refills) or "error" (ERROR and close) */
    unsigned handshake_timeout_ms;
    unsigned connect_timeout_ms;
    size_t max_http_header_bytes;
    size_t max_ws_message;
    size_t max_frame_headers;
    size_t max_header_line;
    size_t max_header_bytes;
    size_t max_body;
    size_t max_subscriptions;
    size_t max_transactions;
    size_t max_tx_frames;
    size_t max_unacked; /* queue messages delivered and not acked, per connection */
    size_t outbound_high_water;
    size_t slow_consumer_max_drops;
    size_t history_bytes; /* every retained message of the process together (history.h) */
    size_t sse_keepalive_s; /* a comment line to each idle GET /sse reader this often (1..3600) */

    /* [heartbeat] */
    unsigned heartbeat_send_ms;
    unsigned heartbeat_receive_ms;
    unsigned heartbeat_min_ms;
    unsigned heartbeat_max_ms;

    /* [queue] */
    size_t queue_max_messages;
    size_t queue_prefetch;
    char queue_overflow[8]; /* "block" (pause the publisher) or "reject" (ERROR) */

    /* [tls] */
    char tls_cert[CONFIG_ADDR_MAX];      /* PEM certificate chain */
    char tls_key[CONFIG_ADDR_MAX];       /* PEM private key */
    char tls_client_ca[CONFIG_ADDR_MAX]; /* "" = no client certificates asked */
    char tls_ciphers[512];               /* TLS 1.2 cipher list */

    /* [auth] */
    char auth_users[CONFIG_ADDR_MAX]; /* users file (stompws passwd), "" = none */
    char auth_acl[CONFIG_ADDR_MAX];   /* per-user destination permissions, "" = all allowed */
    char auth_jwt_hs256_secret_file[CONFIG_ADDR_MAX];
    char auth_jwt_public_key[CONFIG_ADDR_MAX]; /* PEM: RS256 or ES256 */
    char auth_jwt_audience[CONFIG_ADDR_MAX];   /* "" = not checked */
    char auth_jwt_issuer[CONFIG_ADDR_MAX];     /* "" = not checked */
    char auth_anonymous[8];                    /* "auto", "on" or "off" */
    char auth_allow_origin[2048];              /* comma-separated Origins, "" = any */
    size_t auth_workers; /* threads hashing users-file passwords (0: on the event loop) */

    /* [cluster] */
    char cluster_redis[CONFIG_ADDR_MAX]; /* redis://[:password@]host:port[/db]; "" = single node */
    char cluster_node_id[64];            /* "" = random at start */
    char cluster_prefix[64];             /* Redis channel prefix */
    unsigned cluster_unsubscribe_grace_ms; /* Redis UNSUBSCRIBE waits this long after the last
                                              local subscriber leaves */
    unsigned cluster_probe_interval_ms;    /* probe of the node's own channel */
    unsigned cluster_reconnect_max_ms;     /* cap of the reconnect backoff */
    unsigned cluster_queue_visibility_ms;  /* a queue message a node stops renewing is taken
                                              over by another node after this long */
    size_t cluster_queue_buffer_bytes;     /* queue messages kept until Redis confirms them */
    /* sentinel: */
    char cluster_redis_sentinel[CONFIG_ADDR_MAX]; /* HOST:PORT[,HOST:PORT...]; "" = no Sentinel */
    char cluster_redis_master[256];               /* the master's name the sentinels monitor */
    char cluster_sentinel_password[256];          /* AUTH for the sentinels; "" = none */
    unsigned cluster_sentinel_timeout_ms;         /* bound on one sentinel's answer */
    size_t cluster_min_replicas_ack;  /* WAIT for this many replicas before a queue RECEIPT */
    unsigned cluster_wait_timeout_ms; /* WAIT's timeout */
    /* Redis Cluster: */
    char
        cluster_redis_cluster[CONFIG_ADDR_MAX]; /* seed nodes HOST:PORT[,...]; "" = not a Cluster */
    unsigned cluster_redis_cluster_refresh_ms;  /* the slot map is asked again this often */

    /* [compression]: permessage-deflate (RFC 7692) on WebSocket connections */
    bool compression_enabled;    /* offer accepted when a client makes one */
    size_t compression_min_size; /* frames shorter than this go uncompressed */
    size_t compression_level;    /* zlib level, 1..9 */

    /* [history]: retention policies in the order given; the first that matches wins */
    struct config_history history[CONFIG_HISTORY_MAX];
    size_t history_count;

    /* admin API (issue #15): its bearer keys, apart from the publish API's ("" = admin API off) */
    char admin_key_file[CONFIG_ADDR_MAX];

    /* [refresh]: token refresh on a live connection (issue #15, session/token_refresh.h) */
    size_t refresh_warn_s; /* warning this long before a token's exp (0: none; at most
                                CONFIG_REFRESH_WARN_MAX_S) */

    /* [presence]: who is subscribed to the /topic/ destinations that match a pattern
     * (broker/core/presence.h); off while presence_count is 0 */
    char presence[CONFIG_PRESENCE_MAX][CONFIG_ADDR_MAX]; /* /topic/ names or wildcard patterns */
    size_t presence_count;
    size_t presence_max_users; /* the most users one answer or snapshot lists */
    size_t presence_ttl_s;     /* cluster: a node's entries outlive it by at most this (1..3600) */
};

void config_defaults(struct config *cfg);

/*
 * Sets one key ("section.key" or section + key). Returns 0, or -1 with a message in err naming
 * the key and what was wrong.
 */
int config_set(struct config *cfg, const char *section, const char *key, const char *value,
               char *err, size_t err_len);
int config_set_dotted(struct config *cfg, const char *dotted, const char *value, char *err,
                      size_t err_len);

/*
 * Parses a retention policy "PATTERN=SIZE[/TTL]" (TTL: a number with s, m, h or d). Returns 0, or
 * -1 with a message in err naming the spec and what was wrong (a pattern outside /topic/ too).
 */
int config_parse_history(const char *spec, struct config_history *out, char *err, size_t err_len);

/* Loads an INI file; on error returns -1 with "FILE:LINE: message" in err. */
int config_load_file(struct config *cfg, const char *path, char *err, size_t err_len);

/* Parses "HOST:PORT", "[V6]:PORT" or "off". */
int config_parse_addr(const char *text, struct config_addr *out);

/* Cross-key checks after everything is loaded (e.g. min <= max). */
int config_validate(const struct config *cfg, char *err, size_t err_len);

/*
 * Writes every key with its value in INI form, section by section (for --print-config). A password
 * in cluster.redis is written as "***". Lines are not cut: one longer than a config file line may
 * be (the default tls.ciphers) does not load back from a file.
 */
void config_print(const struct config *cfg, FILE *out);

/* The node joins a cluster: cluster.redis or cluster.redis_sentinel is set. */
bool config_clustered(const struct config *cfg);

/* The event loops to run: server.threads, or for "auto" the usable CPUs up to the maximum. */
size_t config_threads(const struct config *cfg);

/* url with the password of its user:password@ part shown as "***" (as many '*' as it has
 * characters when it has fewer than 3, so the result is never longer than url): Redis URLs end
 * up in logs and in --print-config output, which must load back into the same key. */
void config_redact_url(char *out, size_t len, const char *url);

/* Mozilla's "intermediate" list for TLS 1.2 (TLS 1.3 suites are all fine and stay default;
 * tls.ciphers defaults to it). */
#define TLS_DEFAULT_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

#endif
