/*
 * cli/say.c - stompws-cli's messages on stderr (see say.h).
 */
#include "cli/say.h"

#include <stdio.h>

int cli_vsay(int code, const char *fmt, va_list ap)
{
    fputs("stompws-cli: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return code;
}

int cli_say(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vsay(code, fmt, ap);
    va_end(ap);
    return code;
}

int cli_usage_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vsay(code, fmt, ap);
    va_end(ap);
    fputs("Try 'stompws-cli --help' for more information.\n", stderr);
    return code;
}
