/*
 * cli/url.h - the broker URLs stompws-cli accepts.
 *
 *   ws://HOST[:PORT][/PATH][?QUERY]    STOMP over WebSocket (default port 80, path /)
 *   wss://...                          the same over TLS (default port 443)
 *   tcp://HOST[:PORT], stomp://...     plain STOMP over TCP (default port 61613)
 *   ssl://HOST[:PORT], stomp+ssl://... STOMP over TLS (default port 61614)
 *
 * HOST is a name, an IPv4 address or a bracketed IPv6 address ([::1]). Schemes are
 * case-insensitive. Pure parsing: no name resolution, no I/O.
 */
#ifndef STOMPWS_CLI_URL_H
#define STOMPWS_CLI_URL_H

#include <stdbool.h>
#include <stddef.h>

#define URL_MAX_HOST   255  /* a DNS name is at most 253 characters */
#define URL_MAX_TARGET 2048 /* path and query of a ws:// URL */

/* One parsed URL. Plain value: every string is stored inside it. */
struct url {
    bool websocket;                     /* ws:// or wss:// */
    bool tls;                           /* wss://, ssl://, stomp+ssl:// */
    bool host_is_ip;                    /* host is an IPv4 or IPv6 literal (no SNI for those) */
    char host[URL_MAX_HOST + 1];        /* without IPv6 brackets: "::1", "example.com" */
    unsigned port;                      /* 1..65535, the scheme's default if none was given */
    bool port_given;                    /* the URL named the port */
    char target[URL_MAX_TARGET + 1];    /* ws only: request-target, "/" if the URL had no path */
    char host_header[URL_MAX_HOST + 9]; /* ws only: Host value, "[::1]:15674" or "example.com" */
};

/*
 * Parses text into *out. Returns 0, or -1 with a sentence in err naming the problem ("unknown
 * scheme 'http' (use ws, wss, tcp, stomp, ssl or stomp+ssl)", "port 70000 is not 1..65535").
 */
int url_parse(const char *text, struct url *out, char *err, size_t err_len);

#endif
