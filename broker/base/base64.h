/*
 * base64.h - unpadded base64 (RFC 4648 section 4 alphabet) and base64url (section 5).
 *
 * For what the broker reads and writes itself: passcode hashes in the users file, JWT parts,
 * the resume token of GET /sse. Decoding is strict: one encoding per value (no padding, no
 * stray bits), so a value compares equal only to itself. Pure functions: no allocation, no I/O.
 */
#ifndef STOMPWS_BASE64_H
#define STOMPWS_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* The 6-bit value of c in the alphabet (url: base64url), or -1. */
int base64_value(unsigned char c, bool url);

/*
 * Decodes len characters into out. Returns the byte count, or -1 for a character outside the
 * alphabet (padding included), a length no encoding has, non-zero unused bits, or more than
 * cap bytes.
 */
long base64_decode(const char *in, size_t len, bool url, unsigned char *out, size_t cap);

/* Encodes len bytes into out, NUL-terminated (room for (len + 2) / 3 * 4 + 1 bytes); returns
 * the characters written, the NUL not counted. */
size_t base64_encode(const unsigned char *in, size_t len, bool url, char *out);

#endif
