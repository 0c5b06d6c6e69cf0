/*
 * stomp/encode.h - STOMP frame -> bytes, escaping headers per negotiated version.
 *
 * What it is for: building the bytes of frames the broker sends (CONNECTED, MESSAGE, RECEIPT,
 * ERROR) and, for tests and tools, client frames. The head (command, headers, blank line) can be
 * built apart from the body so one shared body serves every subscriber without being copied.
 *
 * What it must not do: I/O, logging, allocation. The caller owns every output buffer.
 *
 * All functions are snprintf-like: they return the number of bytes the complete output needs. When
 * that is greater than `cap`, what was written (possibly nothing) is meaningless: grow the buffer
 * to the returned size and call again. out may be NULL when cap is 0 (size query).
 *
 * Escaping: 1.2 escapes CR, LF, ':' and '\' as \r \n \c \\; 1.1 escapes LF, ':' and '\' (1.1 has
 * no \r, so CR is sent as is). 1.0 has no escapes, and CONNECT, STOMP and CONNECTED headers are
 * never escaped in any version; in those raw cases octets that would break the framing are
 * replaced: CR and LF become a space, and ':' in a header name becomes '_'.
 */
#ifndef STOMPWS_STOMP_ENCODE_H
#define STOMPWS_STOMP_ENCODE_H

#include <stdbool.h>
#include <stddef.h>

#include "stomp/frame.h"

/* Octets `s` takes once escaped for `command` in `version` (== len when nothing needs escaping). */
size_t stomp_escaped_len(enum stomp_version version, enum stomp_command command, const char *s,
                         size_t len);

/*
 * Writes "name:value\n", both escaped for `command` in `version`, at out. Returns the bytes needed
 * (see the snprintf-like rule above).
 */
size_t stomp_encode_header(char *out, size_t cap, enum stomp_version version,
                           enum stomp_command command, const char *name, size_t name_len,
                           const char *value, size_t value_len);

/*
 * Writes the frame head: command line, f's headers in order, a content-length header, and the
 * blank line. content-length (= f->body_len) is added when add_content_length is true, when f is a
 * MESSAGE or ERROR with a non-empty body, or when the body holds a NUL octet - in each case only
 * if f has no content-length header already. The body and its NUL are not written: send them
 * after the head. Returns the bytes needed (snprintf-like, see above).
 */
size_t stomp_encode_head(char *out, size_t cap, enum stomp_version version,
                         const struct stomp_frame *f, bool add_content_length);

/* Head (content-length added only where stomp_encode_head() adds it unasked) + body + NUL. */
size_t stomp_encode_frame(char *out, size_t cap, enum stomp_version version,
                          const struct stomp_frame *f);

/*
 * The ERROR frame for a failed version negotiation: a `version` header listing supported_mask
 * ("1.0,1.1,1.2"), content-type text/plain, a `message` header, and a body naming the versions.
 */
size_t stomp_encode_version_error(char *out, size_t cap, unsigned supported_mask);

#endif
