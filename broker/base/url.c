#include "broker/base/url.h"

int url_hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        return (ch | 0x20) - 'a' + 10;
    return -1;
}

long url_decode(const char *src, size_t len, bool plus_is_space, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '%') {
            int hi = len - i > 2 ? url_hex_value(src[i + 1]) : -1;
            int lo = hi >= 0 ? url_hex_value(src[i + 2]) : -1;
            if (lo < 0)
                return URL_BAD_ESCAPE;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (n == cap)
            return URL_TOO_LONG;
        out[n++] = ch;
    }
    return (long)n;
}
