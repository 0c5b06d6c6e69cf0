/*
 * cli/say.h - how stompws-cli speaks on stderr: every line starts "stompws-cli: ", and a usage
 * error ends with where to look for help.
 *
 * Each printer returns the exit code it is given, so a caller can end with
 * `return cli_say(1, "...")`. Output only: nothing here exits or keeps state.
 */
#ifndef STOMPWS_CLI_SAY_H
#define STOMPWS_CLI_SAY_H

#include <stdarg.h>

#define CLI_EXIT_FAILURE 1 /* the broker refused, could not be reached, or timed out */
#define CLI_EXIT_USAGE   2 /* the command line cannot be used */

/* "stompws-cli: MESSAGE\n" on stderr; returns code. */
int cli_say(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_vsay(int code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* cli_say, then the line that points to --help; returns code. */
int cli_usage_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
