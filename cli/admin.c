#include "cli/admin.h"
#include "cli/say.h"
#include "cli/url.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define DEFAULT_WAIT_MS  10000
#define ADMIN_KEY_MAX    1024
#define ADMIN_ANSWER_MAX (16 * 1024 * 1024) /* a listing of many connections is long */

/* What one admin command asks for. Strings are borrowed from argv or environ. */
struct admin_options {
    const char *command; /* connections, destinations or kick */
    const char *user;    /* --user */
    const char *prefix;  /* --prefix */
    const char *url;
    const char *id;       /* kick: the connection id */
    const char *key_file; /* --admin-key-file; NULL: $STOMPWS_ADMIN_KEY */
    const char *cafile;   /* https: --cafile; NULL: the system's CA certificates */
    bool insecure;        /* https: --insecure, no verification */
    unsigned wait_ms;
    bool quiet;
};

/* One connection to the broker: the socket, and its TLS session for https://. */
struct channel {
    int fd;
    SSL_CTX *ctx; /* owned; NULL for http:// */
    SSL *ssl;     /* owned; NULL for http:// */
};

bool cli_admin_command(const char *argv0)
{
    return strcmp(argv0, "connections") == 0 || strcmp(argv0, "destinations") == 0 ||
           strcmp(argv0, "kick") == 0;
}

/* ---- the request ---------------------------------------------------------------------------- */

/* Appends text percent-encoded (all but RFC 3986 unreserved characters) to out. */
static bool append_encoded(char *out, size_t cap, const char *text)
{
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL;
        int w =
            plain ? snprintf(out + n, cap - n, "%c", *p) : snprintf(out + n, cap - n, "%%%02X", *p);
        if (w < 0 || (size_t)w >= cap - n)
            return false;
        n += (size_t)w;
    }
    return true;
}

/* The method and target of the command's request. */
static bool request_line(const struct admin_options *o, const char **method, char *target,
                         size_t cap)
{
    target[0] = '\0';
    if (strcmp(o->command, "connections") == 0) {
        *method = "GET";
        snprintf(target, cap, "/api/connections%s", o->user != NULL ? "?user=" : "");
        return o->user == NULL || append_encoded(target, cap, o->user);
    }
    if (strcmp(o->command, "destinations") == 0) {
        *method = "GET";
        snprintf(target, cap, "/api/destinations%s", o->prefix != NULL ? "?prefix=" : "");
        return o->prefix == NULL || append_encoded(target, cap, o->prefix);
    }
    *method = o->user != NULL ? "POST" : "DELETE";
    snprintf(target, cap, "%s", o->user != NULL ? "/api/users/" : "/api/connections/");
    if (!append_encoded(target, cap, o->user != NULL ? o->user : o->id))
        return false;
    size_t n = strlen(target);
    return o->user == NULL || snprintf(target + n, cap - n, "/disconnect") < (int)(cap - n);
}

/* The first line of the key file that is not blank or a '#' comment, trimmed. */
static int read_key(const struct admin_options *o, char key[ADMIN_KEY_MAX])
{
    if (o->key_file == NULL) {
        const char *env = getenv("STOMPWS_ADMIN_KEY");
        if (env == NULL || env[0] == '\0' || strlen(env) >= ADMIN_KEY_MAX)
            return cli_usage_error(CLI_EXIT_USAGE,
                                   "no admin key: set STOMPWS_ADMIN_KEY or give --admin-key-file");
        snprintf(key, ADMIN_KEY_MAX, "%s", env);
        return 0;
    }
    FILE *f = fopen(o->key_file, "r");
    if (f == NULL)
        return cli_say(CLI_EXIT_FAILURE, "--admin-key-file %s: %s", o->key_file, strerror(errno));
    char line[ADMIN_KEY_MAX];
    int rc = 1;
    while (rc != 0 && fgets(line, sizeof(line), f) != NULL) {
        char *p = line + strspn(line, " \t");
        p[strcspn(p, " \t\r\n")] = '\0';
        if (p[0] != '\0' && p[0] != '#') {
            snprintf(key, ADMIN_KEY_MAX, "%s", p);
            rc = 0;
        }
    }
    fclose(f);
    return rc == 0 ? 0
                   : cli_say(CLI_EXIT_FAILURE, "--admin-key-file %s: no key in it", o->key_file);
}

/* ---- one HTTP exchange ------------------------------------------------------------------------
 */

static int connect_to(const struct url *u, unsigned wait_ms)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", u->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(u->host, port, &hints, &res);
    if (rc != 0) {
        cli_say(CLI_EXIT_FAILURE, "%s: %s", u->host, gai_strerror(rc));
        return -1;
    }
    struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
    int fd = -1;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        cli_say(CLI_EXIT_FAILURE, "cannot connect to %s:%u: %s", u->host, u->port, strerror(errno));
    return fd;
}

static ssize_t channel_write(struct channel *ch, const char *p, size_t len)
{
    if (ch->ssl == NULL)
        return write(ch->fd, p, len);
    int n = SSL_write(ch->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    return n > 0 ? n : -1;
}

/* Bytes read, 0 at the end (a TLS close_notify or the socket's), -1 on an error or timeout. */
static ssize_t channel_read(struct channel *ch, char *p, size_t len)
{
    if (ch->ssl == NULL)
        return read(ch->fd, p, len);
    int n = SSL_read(ch->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int why = SSL_get_error(ch->ssl, n);
    return why == SSL_ERROR_ZERO_RETURN || (why == SSL_ERROR_SYSCALL && errno == 0) ? 0 : -1;
}

static bool write_all(struct channel *ch, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = channel_write(ch, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads until the broker closes (every answer closes); NULL on a timeout or error. */
static char *read_all(struct channel *ch, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf != NULL) {
        if (n == cap) {
            char *grown = cap < ADMIN_ANSWER_MAX ? realloc(buf, cap * 2 + 1) : NULL;
            if (grown == NULL)
                break;
            buf = grown;
            cap *= 2;
        }
        ssize_t got = channel_read(ch, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        if (got == 0) {
            buf[n] = '\0';
            *len = n;
            return buf;
        }
        n += (size_t)got;
    }
    free(buf);
    return NULL;
}

/* The TLS session over ch->fd for https://, verified against the URL's name or address unless
 * --insecure. 0, or 1 after printing why. */
static int start_tls(struct channel *ch, const struct url *u, const struct admin_options *o)
{
    ch->ctx = SSL_CTX_new(TLS_client_method());
    if (ch->ctx == NULL)
        return cli_say(CLI_EXIT_FAILURE, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ch->ctx, TLS1_2_VERSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* The broker may close without close_notify; report() checks the body's Content-Length. */
    SSL_CTX_set_options(ch->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_verify(ch->ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    int ok = o->cafile != NULL ? SSL_CTX_load_verify_locations(ch->ctx, o->cafile, NULL)
                               : SSL_CTX_set_default_verify_paths(ch->ctx);
    if (ok != 1)
        return cli_say(CLI_EXIT_FAILURE, "cannot load CA certificates from %s",
                       o->cafile != NULL ? o->cafile : "the system store");
    ch->ssl = SSL_new(ch->ctx);
    if (ch->ssl == NULL || SSL_set_fd(ch->ssl, ch->fd) != 1)
        return cli_say(CLI_EXIT_FAILURE, "cannot create a TLS session");
    if (!u->host_is_ip)
        SSL_set_tlsext_host_name(ch->ssl, u->host); /* SNI is for names only (RFC 6066) */
    if (!o->insecure) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ch->ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = u->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, u->host)
                           : SSL_set1_host(ch->ssl, u->host);
        if (ok != 1)
            return cli_say(CLI_EXIT_FAILURE, "cannot verify the name %s", u->host);
    }
    if (SSL_connect(ch->ssl) == 1)
        return 0;
    long verify = SSL_get_verify_result(ch->ssl);
    if (verify != X509_V_OK)
        return cli_say(CLI_EXIT_FAILURE, "TLS: certificate verification failed: %s",
                       X509_verify_cert_error_string(verify));
    unsigned long code = ERR_get_error();
    const char *why = code != 0 ? ERR_reason_error_string(code) : NULL;
    return cli_say(CLI_EXIT_FAILURE, "TLS handshake with %s:%u failed: %s", u->host, u->port,
                   why != NULL ? why : "the connection closed");
}

static void channel_close(struct channel *ch)
{
    SSL_free(ch->ssl);
    SSL_CTX_free(ch->ctx);
    if (ch->fd >= 0)
        close(ch->fd);
}

/* Prints the answer: the body to stdout on success, the broker's error to stderr otherwise. */
static int report(const struct admin_options *o, const char *answer)
{
    int status = 0;
    const char *body = strstr(answer, "\r\n\r\n");
    if (sscanf(answer, "HTTP/1.%*d %d", &status) != 1 || body == NULL)
        return cli_say(CLI_EXIT_FAILURE, "not an HTTP answer from %s", o->url);
    body += 4;
    const char *length = strcasestr(answer, "\r\ncontent-length:");
    if (length == NULL || length > body || strtoul(length + 17, NULL, 10) != strlen(body))
        return cli_say(CLI_EXIT_FAILURE, "a cut answer from %s", o->url);
    if (status < 200 || status > 299) {
        size_t body_len = strlen(body);
        if (body_len > 0 && body[body_len - 1] == '\n') /* cli_say ends the line */
            body_len--;
        return cli_say(CLI_EXIT_FAILURE, "%s: %d %.*s", o->command, status, (int)body_len, body);
    }
    if (status == 204 && !o->quiet)
        printf("disconnected %s\n", o->id);
    else if (status != 204)
        fputs(body, stdout);
    if (strstr(body, "\"partial\":true") != NULL && !o->quiet)
        cli_say(0, "warning: partial answer: some loop or node did not answer");
    return 0;
}

static int run(const struct admin_options *o)
{
    char text[URL_MAX_TARGET + 16], err[256], key[ADMIN_KEY_MAX], target[2048];
    struct url u;
    const char *rest = strstr(o->url, "://");
    bool https = strncasecmp(o->url, "https://", 8) == 0 || strncasecmp(o->url, "wss://", 6) == 0;
    bool http = strncasecmp(o->url, "http://", 7) == 0 || strncasecmp(o->url, "ws://", 5) == 0;
    snprintf(text, sizeof(text), "%s%s", https ? "wss" : "ws", rest != NULL ? rest : "");
    if (rest == NULL || !(http || https) || url_parse(text, &u, err, sizeof(err)) != 0)
        return cli_usage_error(
            CLI_EXIT_USAGE, "bad URL '%s': expected http://HOST:PORT or https://HOST:PORT", o->url);
    if (!https && (o->cafile != NULL || o->insecure))
        return cli_usage_error(CLI_EXIT_USAGE, "--cafile and --insecure are for https:// URLs");
    if (o->cafile != NULL && o->insecure)
        return cli_usage_error(CLI_EXIT_USAGE,
                               "--insecure verifies nothing: --cafile would be ignored");
    const char *method;
    if (!request_line(o, &method, target, sizeof(target)))
        return cli_usage_error(CLI_EXIT_USAGE, "%s: argument too long", o->command);
    int rc = read_key(o, key);
    if (rc != 0)
        return rc;
    struct channel ch = {.fd = connect_to(&u, o->wait_ms)};
    if (ch.fd < 0)
        return 1;
    if (https && start_tls(&ch, &u, o) != 0) {
        channel_close(&ch);
        return 1;
    }
    char *request = NULL;
    int len = asprintf(&request,
                       "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                       "Content-Length: 0\r\nConnection: close\r\n\r\n",
                       method, target, u.host_header, key);
    size_t answer_len = 0;
    char *answer =
        len > 0 && write_all(&ch, request, (size_t)len) ? read_all(&ch, &answer_len) : NULL;
    channel_close(&ch);
    free(request);
    rc = answer != NULL ? report(o, answer)
                        : cli_say(CLI_EXIT_FAILURE, "no answer from %s within --wait: %s", o->url,
                                  strerror(errno));
    free(answer);
    return rc;
}

/* ---- the command line ------------------------------------------------------------------------ */

static int parse_wait(const char *text, unsigned *ms)
{
    char *end;
    double s = strtod(text, &end);
    if (end == text || *end != '\0' || !(s > 0 && s <= 4000000.0))
        return cli_usage_error(CLI_EXIT_USAGE, "--wait: '%s' is not a number of seconds above 0",
                               text);
    *ms = (unsigned)(s * 1000.0 + 0.999);
    return 0;
}

int cli_admin_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"user", required_argument, NULL, 'u'},
        {"prefix", required_argument, NULL, 'p'},
        {"admin-key-file", required_argument, NULL, 'k'},
        {"wait", required_argument, NULL, 'w'},
        {"quiet", no_argument, NULL, 'q'},
        {"cafile", required_argument, NULL, 'c'},
        {"insecure", no_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    struct admin_options o = {.command = argv[0], .wait_ms = DEFAULT_WAIT_MS};
    signal(SIGPIPE, SIG_IGN); /* a broker that closes while we write is an error, not a kill */
    bool kick = strcmp(o.command, "kick") == 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "w:q", options, NULL)) != -1) {
        if (opt == 'u' && strcmp(o.command, "destinations") != 0)
            o.user = optarg;
        else if (opt == 'p' && strcmp(o.command, "destinations") == 0)
            o.prefix = optarg;
        else if (opt == 'k')
            o.key_file = optarg;
        else if (opt == 'w' && parse_wait(optarg, &o.wait_ms) != 0)
            return CLI_EXIT_USAGE;
        else if (opt == 'q')
            o.quiet = true;
        else if (opt == 'c')
            o.cafile = optarg;
        else if (opt == 'i')
            o.insecure = true;
        else if (opt != 'w')
            return cli_usage_error(CLI_EXIT_USAGE, "%s: option not taken by this command",
                                   o.command);
    }
    int left = argc - optind;
    if (left < 1)
        return cli_usage_error(CLI_EXIT_USAGE, "%s needs the broker's URL", o.command);
    o.url = argv[optind];
    if (kick && (o.user != NULL ? left != 1 : left != 2))
        return cli_usage_error(CLI_EXIT_USAGE, "kick takes URL ID, or --user LOGIN URL");
    if (!kick && left != 1)
        return cli_usage_error(CLI_EXIT_USAGE, "%s takes one URL", o.command);
    o.id = kick && o.user == NULL ? argv[optind + 1] : NULL;
    if ((o.id != NULL && o.id[0] == '\0') || (o.user != NULL && o.user[0] == '\0'))
        return cli_usage_error(CLI_EXIT_USAGE, "%s: empty ID or LOGIN", o.command);
    return run(&o);
}
