/*
 * cli/say.c - stompws-cli's messages on stderr (see say.h).
 */
#include "cli/say.h"

#include <stdio.h>

/* The message on its line, then the line after it (NULL: none); returns code. */
static int say_then(int code, const char *after, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static int say_then(int code, const char *after, const char *fmt, va_list ap)
{
    fputs("stompws-cli: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (after != NULL)
        fputs(after, stderr);
    return code;
}

int cli_vsay(int code, const char *fmt, va_list ap)
{
    return say_then(code, NULL, fmt, ap);
}

int cli_say(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say_then(code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

int cli_usage_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say_then(code, "Try 'stompws-cli --help' for more information.\n", fmt, ap);
    va_end(ap);
    return code;
}
