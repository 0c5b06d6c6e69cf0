/*
 * main.c - the stompws command line: flags and config file -> struct config -> broker.
 */
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "broker/auth/auth.h"
#include "server/loop.h"
#include "broker/base/config.h"
#include "broker/http/routes.h"
#include "broker/base/log.h"
#include "server/threads.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: stompws [options]\n"
        "\n"
        "A STOMP 1.0/1.1/1.2 message broker for browsers (WebSocket) and backends (TCP).\n"
        "\n"
        "  --ws HOST:PORT        WebSocket listener (default 127.0.0.1:15674; off to disable)\n"
        "  --ws-path PATH        WebSocket path (default /ws; other paths get 404)\n"
        "  --tcp HOST:PORT       plain STOMP over TCP (default 127.0.0.1:61613; off to disable)\n"
        "  --http HOST:PORT      plain HTTP listener: /healthz, /readyz, /metrics, the API\n"
        "                        and static files (default off; the ws port serves them\n"
        "                        too on paths other than --ws-path)\n"
        "  --api-key-file FILE   turn on the HTTP publish API (POST /api/publish) for the\n"
        "                        bearer keys in FILE, one per line (see docs/API.md)\n"
        "  --admin-key-file FILE turn on the admin API (/api/connections, /api/destinations,\n"
        "                        /api/users/LOGIN/disconnect) for the bearer keys in FILE\n"
        "  --static DIR          serve the files in DIR over HTTP on paths not taken by\n"
        "                        the routes above (default off)\n"
        "  --wss HOST:PORT       WebSocket over TLS listener (default off; needs --tls-cert/key)\n"
        "  --stomp-tls HOST:PORT STOMP over TLS listener (default off)\n"
        "  --tls-cert FILE       PEM certificate chain for wss and stomp-tls\n"
        "  --tls-key FILE        PEM private key\n"
        "  --tls-client-ca FILE  require client certificates signed by this CA on stomp-tls\n"
        "  --users FILE          users file (login/passcode); write entries with\n"
        "                        'stompws passwd FILE USER' (password read from stdin)\n"
        "  --acl FILE            per-user read/write permissions on destinations\n"
        "  --jwt-hs256-secret-file FILE   accept HS256 tokens signed with this secret\n"
        "  --jwt-public-key FILE accept RS256/ES256 tokens verified with this PEM key\n"
        "  --allow-origin ORIGIN allowed browser Origin (repeatable; none given = any)\n"
        "  --anonymous on|off    let clients in without credentials (default: on unless\n"
        "                        a users file or JWT key is configured)\n");
    /* two pieces: C11 compilers need not take a string literal over 4095 bytes */
    fputs(
        "  --redis URL           join a cluster through Redis: redis://[:password@]host:port[/db]\n"
        "  --redis-sentinel HOST:PORT[,HOST:PORT...]  find the Redis master through these\n"
        "                        sentinels and follow its failovers (with --redis-master;\n"
        "                        --redis then only gives the master's password and db)\n"
        "  --redis-master NAME   the master's name the sentinels monitor\n"
        "  --redis-cluster HOST:PORT[,HOST:PORT...]  join through a Redis Cluster: these\n"
        "                        seed nodes give the slot map (--redis then only gives the\n"
        "                        password)\n"
        "  --node-id ID          this node's id in the cluster (default: random at start)\n"
        "  --config FILE         INI config file (see docs/CONFIG.md); flags override it\n"
        "  --set SECTION.KEY=V   set any config key, e.g. --set limits.max_body=4m\n"
        "  --threads N           event loops, one per thread, sharing the listening ports\n"
        "                        (SO_REUSEPORT); auto or 1..64, default auto: one\n"
        "                        per CPU this process may use (server.threads)\n"
        "  --history PATTERN=SIZE[/TTL]  keep the last SIZE messages (for at most TTL: s, m,\n"
        "                        h, d) of each /topic/ destination matching PATTERN, for\n"
        "                        x-stream-offset subscriptions (repeatable; first match wins)\n"
        "  --presence PATTERN    track who is subscribed to the /topic/ destinations matching\n"
        "                        PATTERN: join/leave events on /presence/topic/NAME and\n"
        "                        GET /api/presence (repeatable; default off)\n"
        "  --log-level LEVEL     debug, info, warn or error (default info)\n"
        "  --log-file FILE       append log lines to FILE (default: stderr); reopened on SIGHUP\n"
        "  --log-format FORMAT   text or json (one JSON object per line); default text\n"
        "  --check-config        check the configuration and load every file it names (TLS,\n"
        "                        users, ACL, JWT keys) without starting; prints 'configuration\n"
        "                        ok' (exit 0) or the error (exit 2: a bad setting, 1: a file\n"
        "                        that does not load or a bad Redis URL)\n"
        "  --print-config        print the effective configuration (every key) and exit\n"
        "  --version             print the version and exit\n"
        "  --help                this text\n"
        "\n"
        "Port 0 picks a free port; the broker prints 'listening ws HOST:PORT' for each\n"
        "listener at start-up. SIGINT/SIGTERM: clients are told and the broker exits.\n",
        out);
}

enum {
    OPT_WS = 256,
    OPT_WS_PATH,
    OPT_TCP,
    OPT_CONFIG,
    OPT_SET,
    OPT_LOG_LEVEL,
    OPT_VERSION,
    OPT_REDIS,
    OPT_REDIS_SENTINEL,
    OPT_REDIS_MASTER,
    OPT_REDIS_CLUSTER,
    OPT_NODE_ID,
    OPT_WSS,
    OPT_STOMP_TLS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CLIENT_CA,
    OPT_USERS,
    OPT_ACL,
    OPT_JWT_SECRET,
    OPT_JWT_KEY,
    OPT_ALLOW_ORIGIN,
    OPT_ANONYMOUS,
    OPT_HTTP,
    OPT_API_KEY_FILE,
    OPT_STATIC,
    OPT_LOG_FILE,
    OPT_LOG_FORMAT,
    OPT_CHECK_CONFIG,
    OPT_PRINT_CONFIG,
    OPT_THREADS,
    OPT_HISTORY,
    OPT_ADMIN_KEY_FILE, /* admin API (issue #15) */
    OPT_PRESENCE,
};

static const struct option options[] = {
    {"ws", required_argument, NULL, OPT_WS},
    {"ws-path", required_argument, NULL, OPT_WS_PATH},
    {"tcp", required_argument, NULL, OPT_TCP},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"set", required_argument, NULL, OPT_SET},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-sentinel", required_argument, NULL, OPT_REDIS_SENTINEL},
    {"redis-master", required_argument, NULL, OPT_REDIS_MASTER},
    {"redis-cluster", required_argument, NULL, OPT_REDIS_CLUSTER},
    {"node-id", required_argument, NULL, OPT_NODE_ID},
    {"wss", required_argument, NULL, OPT_WSS},
    {"stomp-tls", required_argument, NULL, OPT_STOMP_TLS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
    {"users", required_argument, NULL, OPT_USERS},
    {"acl", required_argument, NULL, OPT_ACL},
    {"jwt-hs256-secret-file", required_argument, NULL, OPT_JWT_SECRET},
    {"jwt-public-key", required_argument, NULL, OPT_JWT_KEY},
    {"allow-origin", required_argument, NULL, OPT_ALLOW_ORIGIN},
    {"anonymous", required_argument, NULL, OPT_ANONYMOUS},
    {"http", required_argument, NULL, OPT_HTTP},
    {"api-key-file", required_argument, NULL, OPT_API_KEY_FILE},
    {"static", required_argument, NULL, OPT_STATIC},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"history", required_argument, NULL, OPT_HISTORY},
    {"admin-key-file", required_argument, NULL, OPT_ADMIN_KEY_FILE},
    {"presence", required_argument, NULL, OPT_PRESENCE},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* --allow-origin is repeatable: the first one replaces the file's list, later ones add to it. */
static int add_origin(struct config *cfg, const char *origin, char *err, size_t err_len)
{
    static bool seen;
    char list[sizeof(cfg->auth_allow_origin)];
    int n = seen ? snprintf(list, sizeof(list), "%s,%s", cfg->auth_allow_origin, origin)
                 : snprintf(list, sizeof(list), "%s", origin);
    seen = true;
    if (n < 0 || (size_t)n >= sizeof(list)) {
        snprintf(err, err_len, "--allow-origin: too many origins");
        return -1;
    }
    return config_set(cfg, "auth", "allow_origin", list, err, err_len);
}

/* Applies one flag; returns 0, or -1 with err filled. */
static int apply_flag(struct config *cfg, int opt, const char *arg, char *err, size_t err_len)
{
    switch (opt) {
    case OPT_USERS:
        return config_set(cfg, "auth", "users", arg, err, err_len);
    case OPT_ACL:
        return config_set(cfg, "auth", "acl", arg, err, err_len);
    case OPT_JWT_SECRET:
        return config_set(cfg, "auth", "jwt_hs256_secret_file", arg, err, err_len);
    case OPT_JWT_KEY:
        return config_set(cfg, "auth", "jwt_public_key", arg, err, err_len);
    case OPT_ALLOW_ORIGIN:
        return add_origin(cfg, arg, err, err_len);
    case OPT_ANONYMOUS:
        return config_set(cfg, "auth", "anonymous", arg, err, err_len);
    case OPT_WS:
        return config_set(cfg, "server", "ws", arg, err, err_len);
    case OPT_WS_PATH:
        return config_set(cfg, "server", "ws_path", arg, err, err_len);
    case OPT_TCP:
        return config_set(cfg, "server", "tcp", arg, err, err_len);
    case OPT_LOG_LEVEL:
        return config_set(cfg, "server", "log_level", arg, err, err_len);
    case OPT_ADMIN_KEY_FILE:
        return config_set(cfg, "server", "admin_key_file", arg, err, err_len);
    case OPT_HISTORY:
        return config_set(cfg, "history", "policy", arg, err, err_len);
    case OPT_PRESENCE:
        return config_set(cfg, "presence", "pattern", arg, err, err_len);
    case OPT_THREADS:
        return config_set(cfg, "server", "threads", arg, err, err_len);
    case OPT_LOG_FILE:
        return config_set(cfg, "server", "log_file", arg, err, err_len);
    case OPT_LOG_FORMAT:
        return config_set(cfg, "server", "log_format", arg, err, err_len);
    case OPT_REDIS:
        return config_set(cfg, "cluster", "redis", arg, err, err_len);
    case OPT_REDIS_SENTINEL:
        return config_set(cfg, "cluster", "redis_sentinel", arg, err, err_len);
    case OPT_REDIS_MASTER:
        return config_set(cfg, "cluster", "redis_master", arg, err, err_len);
    case OPT_REDIS_CLUSTER:
        return config_set(cfg, "cluster", "redis_cluster", arg, err, err_len);
    case OPT_NODE_ID:
        return config_set(cfg, "cluster", "node_id", arg, err, err_len);
    case OPT_WSS:
        return config_set(cfg, "server", "wss", arg, err, err_len);
    case OPT_HTTP:
        return config_set(cfg, "server", "http", arg, err, err_len);
    case OPT_API_KEY_FILE:
        return config_set(cfg, "server", "api_key_file", arg, err, err_len);
    case OPT_STATIC:
        return config_set(cfg, "server", "static_dir", arg, err, err_len);
    case OPT_STOMP_TLS:
        return config_set(cfg, "server", "stomp_tls", arg, err, err_len);
    case OPT_TLS_CERT:
        return config_set(cfg, "tls", "cert", arg, err, err_len);
    case OPT_TLS_KEY:
        return config_set(cfg, "tls", "key", arg, err, err_len);
    case OPT_TLS_CLIENT_CA:
        return config_set(cfg, "tls", "client_ca", arg, err, err_len);
    case OPT_SET: {
        const char *eq = strchr(arg, '=');
        if (eq == NULL) {
            snprintf(err, err_len, "--set expects SECTION.KEY=VALUE, got '%s'", arg);
            return -1;
        }
        char key[128];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - arg), arg);
        return config_set_dotted(cfg, key, eq + 1, err, err_len);
    }
    default:
        return 0;
    }
}

/* What to do once the configuration is loaded: run, or only check and/or print it. */
struct run_mode {
    bool check_config;
    bool print_config;
};

/* Defaults, then --config, then the other flags in order. Returns 0, 1 (exit 0), or -1. */
static int load_config(int argc, char **argv, struct config *cfg, struct run_mode *mode)
{
    config_defaults(cfg);
    char err[512];
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == OPT_VERSION) {
            printf("stompws %s\n", STOMPWS_VERSION);
            return 1;
        }
        if (opt == '?') {
            usage(stderr);
            return -1;
        }
        if (opt == OPT_CHECK_CONFIG)
            mode->check_config = true;
        if (opt == OPT_PRINT_CONFIG)
            mode->print_config = true;
        if (opt == OPT_CONFIG && config_load_file(cfg, optarg, err, sizeof(err)) != 0) {
            fprintf(stderr, "stompws: %s\n", err);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "stompws: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (apply_flag(cfg, opt, optarg, err, sizeof(err)) != 0) {
            fprintf(stderr, "stompws: %s\n", err);
            return -1;
        }
    }
    if (config_validate(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "stompws: %s\n", err);
        return -1;
    }
    return 0;
}

/* stompws passwd FILE USER: adds or replaces USER in the users file, password from stdin. */
static int passwd_command(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: stompws passwd FILE USER   (the password is read from stdin)\n");
        return 2;
    }
    char password[1024];
    if (fgets(password, sizeof(password), stdin) == NULL) {
        fprintf(stderr, "stompws passwd: no password on stdin\n");
        return 2;
    }
    password[strcspn(password, "\r\n")] = '\0';
    char err[512];
    int rc = auth_passwd_update_file(argv[2], argv[3], password, err, sizeof(err));
    OPENSSL_cleanse(password, sizeof(password));
    if (rc != 0) {
        fprintf(stderr, "stompws passwd: %s\n", err);
        return 1;
    }
    return 0;
}

/*
 * --check-config and --print-config: what start-up would load, without binding a port or
 * opening the log file. Exits as start-up would: 1 when a file the configuration names does not
 * load (the settings themselves were checked by load_config, which exits 2).
 */
static int check_and_print(const struct config *cfg, const struct run_mode *mode)
{
    char err[512];
    if (mode->check_config) {
        if ((cfg->log_file[0] != '\0' && log_check_file(cfg->log_file, err, sizeof(err)) != 0) ||
            broker_check_config(cfg, err, sizeof(err)) != 0 ||
            http_check_config(cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "stompws: %s\n", err);
            return 1;
        }
    }
    if (mode->print_config)
        config_print(cfg, stdout);
    if (mode->check_config)
        printf("configuration ok\n");
    return 0;
}

/*
 * Keeps glibc from giving the top of the heap back to the kernel after every write. A loop that
 * writes out all it has at each turn frees its output chains at once; with glibc's default trim
 * threshold (128 KiB until a large block is freed) the freed top goes back with brk() and the
 * next turn faults it in again, a page fault per chain: GET /sse fan-out ran at a fifth of its
 * speed in that regime, and WebSocket fan-out fell into it on a loaded CPU
 * (docs/PERFORMANCE.md, "Server-Sent Events fan-out"). The values are the ceilings glibc's own
 * dynamic rule reaches (64-bit): up to 64 MiB of free heap top is kept for reuse, and blocks of
 * up to 32 MiB (message bodies up to 32 times the default limits.max_body) come from the heap, not
 * from mmap().
 */
static void tune_allocator(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
#endif
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
        return passwd_command(argc, argv);
    struct config cfg;
    struct run_mode mode = {0};
    int rc = load_config(argc, argv, &cfg, &mode);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (mode.check_config || mode.print_config)
        return check_and_print(&cfg, &mode);
    log_set_level((enum log_level)cfg.log_level);
    log_set_format((enum log_format)cfg.log_format);
    char err[512];
    if (log_open(cfg.log_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "stompws: %s\n", err);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    tune_allocator();
    cfg.threads = config_threads(&cfg); /* "auto" becomes a count once, before any loop starts */
    if (cfg.threads > 1) {
        int code = loops_main(&cfg);
        log_info(0, "stopped");
        log_close();
        return code;
    }

    struct broker *b = broker_new(&cfg);
    if (b == NULL) {
        log_close();
        return 1;
    }
    log_info(0, "stompws %s ready", STOMPWS_VERSION);
    int code = broker_run(b);
    broker_free(b);
    log_info(0, "stopped");
    log_close();
    return code;
}
