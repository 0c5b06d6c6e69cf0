/*
 * url.h - percent-decoding (RFC 3986, section 2.1) of URL paths and query values, with the form
 * encoding's '+' for a space in query strings: the one decoder behind every HTTP surface of the
 * broker (static paths, POST /api/publish, GET /sse, the admin and presence routes).
 *
 * What it must not do: allocate, write past the caller's room, or pass through what it cannot
 * decode: a '%' without two hex digits after it is an error. What a decoded value may hold
 * (control octets, '/', UTF-8) is each caller's rule.
 */
#ifndef STOMPWS_URL_H
#define STOMPWS_URL_H

#include <stdbool.h>
#include <stddef.h>

enum url_decode_error {
    URL_BAD_ESCAPE = -1, /* '%' not followed by two hex digits */
    URL_TOO_LONG = -2,   /* the decoded value does not fit in cap bytes */
};

/* The value of one hex digit (either case), or -1. */
int url_hex_value(char ch);

/* Decodes src[0..len) into out (at most cap bytes, no NUL added); plus_is_space: '+' is a space
 * (query values). Returns the decoded length, or an enum url_decode_error. */
long url_decode(const char *src, size_t len, bool plus_is_space, char *out, size_t cap);

#endif
