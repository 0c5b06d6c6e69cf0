#include "broker/base/base64.h"

#include <limits.h>

int base64_value(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

long base64_decode(const char *in, size_t len, bool url, unsigned char *out, size_t cap)
{
    if (len % 4 == 1)
        return -1;
    unsigned acc = 0, bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = base64_value((unsigned char)in[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 && n <= LONG_MAX ? (long)n : -1;
}

size_t base64_encode(const unsigned char *in, size_t len, bool url, char *out)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char web[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *alphabet = url ? web : std;
    char *start = out;
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        *out++ = alphabet[(acc << (6 - bits)) & 63];
    *out = '\0';
    return (size_t)(out - start);
}
