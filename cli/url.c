/*
 * cli/url.c - broker URL parsing for stompws-cli (see url.h).
 */
#include "cli/url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct scheme {
    const char *name;
    bool websocket;
    bool tls;
    unsigned default_port;
};

/* WebSocket ports are RFC 6455's; 61613 is STOMP's usual port, 61614 its usual TLS port. */
static const struct scheme schemes[] = {
    {"ws", true, false, 80},           /* STOMP over WebSocket */
    {"wss", true, true, 443},          /* ... over TLS */
    {"tcp", false, false, 61613},      /* plain STOMP over TCP */
    {"stomp", false, false, 61613},    /* the same */
    {"ssl", false, true, 61614},       /* STOMP over TLS */
    {"stomp+ssl", false, true, 61614}, /* the same */
};

static const struct scheme *find_scheme(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strlen(schemes[i].name) == len && strncasecmp(schemes[i].name, name, len) == 0)
            return &schemes[i];
    return NULL;
}

/* Visible ASCII only: the target goes on the request line as it is. */
static bool target_valid(const char *p)
{
    for (; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F || *p == '#')
            return false;
    return true;
}

/* Digits only, 1..65535. */
static bool parse_port(const char *p, size_t len, unsigned *port)
{
    unsigned v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *port = v;
    return v >= 1 && v <= 65535;
}

/* A host name: letters, digits, '-', '.', '_' (the characters DNS names and /etc/hosts use). */
static bool name_valid(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_';
        if (!ok)
            return false;
    }
    return len > 0;
}

/* Splits "host[:port]" or "[v6][:port]" into out->host and out->port. */
static int parse_authority(const char *a, size_t len, struct url *out, char *err, size_t err_len)
{
    const char *host = a, *colon;
    size_t host_len;
    if (len > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL) {
            snprintf(err, err_len, "unterminated '[' in the host");
            return -1;
        }
        host = a + 1;
        host_len = (size_t)(close - host);
        colon = close + 1 < a + len ? close + 1 : NULL;
        if (colon != NULL && *colon != ':') {
            snprintf(err, err_len, "unexpected characters after ']' in the host");
            return -1;
        }
    } else {
        colon = memchr(a, ':', len);
        host_len = colon != NULL ? (size_t)(colon - a) : len;
    }
    if (host_len == 0 || host_len > URL_MAX_HOST) {
        snprintf(err, err_len, host_len == 0 ? "no host" : "host name too long");
        return -1;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    if (colon != NULL) {
        if (!parse_port(colon + 1, (size_t)(a + len - colon - 1), &out->port)) {
            snprintf(err, err_len, "port '%.*s' is not a number in 1..65535",
                     (int)(a + len - colon - 1), colon + 1);
            return -1;
        }
        out->port_given = true;
    }
    return 0;
}

/* IP literal or a plausible name; brackets are required for (and only for) IPv6. */
static int check_host(struct url *out, bool bracketed, char *err, size_t err_len)
{
    unsigned char addr[16];
    if (bracketed) {
        out->host_is_ip = inet_pton(AF_INET6, out->host, addr) == 1;
        if (!out->host_is_ip) {
            snprintf(err, err_len, "'[%s]' is not an IPv6 address", out->host);
            return -1;
        }
        return 0;
    }
    out->host_is_ip = inet_pton(AF_INET, out->host, addr) == 1;
    if (!out->host_is_ip && !name_valid(out->host, strlen(out->host))) {
        snprintf(err, err_len, "'%s' is not a host name (IPv6 addresses go in brackets)",
                 out->host);
        return -1;
    }
    return 0;
}

/* Target and Host header of a ws:// URL; rest is what follows the authority ("" or "/..."). */
static int websocket_parts(const char *rest, const struct scheme *s, struct url *out, char *err,
                           size_t err_len)
{
    const char *target = *rest != '\0' ? rest : "/";
    if (*target == '?') {
        snprintf(err, err_len, "a query needs a path before it (/ws?...)");
        return -1;
    }
    if (!target_valid(target) || strlen(target) > URL_MAX_TARGET) {
        snprintf(err, err_len, "the path must be visible ASCII without '#', at most %d bytes",
                 URL_MAX_TARGET);
        return -1;
    }
    snprintf(out->target, sizeof(out->target), "%s", target);
    const char *open = out->host_is_ip && strchr(out->host, ':') != NULL ? "[" : "";
    const char *close = *open != '\0' ? "]" : "";
    if (out->port == s->default_port)
        snprintf(out->host_header, sizeof(out->host_header), "%s%s%s", open, out->host, close);
    else
        snprintf(out->host_header, sizeof(out->host_header), "%s%s%s:%u", open, out->host, close,
                 out->port);
    return 0;
}

int url_parse(const char *text, struct url *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    const char *sep = strstr(text, "://");
    if (sep == NULL) {
        snprintf(err, err_len, "'%s' is not a URL (ws://HOST:PORT/PATH, tcp://HOST:PORT, ...)",
                 text);
        return -1;
    }
    const struct scheme *s = find_scheme(text, (size_t)(sep - text));
    if (s == NULL) {
        snprintf(err, err_len, "unknown scheme '%.*s' (use ws, wss, tcp, stomp, ssl or stomp+ssl)",
                 (int)(sep - text), text);
        return -1;
    }
    out->websocket = s->websocket;
    out->tls = s->tls;
    out->port = s->default_port;
    const char *authority = sep + 3;
    size_t len = strcspn(authority, "/?#");
    if (memchr(authority, '@', len) != NULL) {
        snprintf(err, err_len, "credentials in the URL are not supported (use --login)");
        return -1;
    }
    if (parse_authority(authority, len, out, err, err_len) != 0 ||
        check_host(out, authority[0] == '[', err, err_len) != 0)
        return -1;
    const char *rest = authority + len;
    if (s->websocket)
        return websocket_parts(rest, s, out, err, err_len);
    if (*rest != '\0' && strcmp(rest, "/") != 0) {
        snprintf(err, err_len, "a %s:// URL has no path ('%s')", s->name, rest);
        return -1;
    }
    return 0;
}
