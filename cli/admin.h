/*
 * cli/admin.h - stompws-cli's admin commands (issue #15): connections, destinations and kick,
 * over the broker's admin API (docs/API.md "Admin API").
 *
 *   stompws-cli connections [--user LOGIN] URL
 *   stompws-cli destinations [--prefix PREFIX] URL
 *   stompws-cli kick URL ID
 *   stompws-cli kick --user LOGIN URL
 *
 * URL is the broker's HTTP address: http://HOST:PORT (the WebSocket port or the --http one;
 * ws:// is taken as http:// to the same host and port), or https://HOST:PORT (the wss port;
 * wss:// likewise), verified as pub and sub verify (--cafile, --insecure). The admin key comes
 * from $STOMPWS_ADMIN_KEY or --admin-key-file FILE, never from the command line, where other
 * users would read it in the process list. One HTTP/1.1 request, blocking, bounded by --wait.
 *
 * What it must not do: depend on broker/ (the layers) or parse the JSON it prints: the broker's
 * answer goes to stdout as it came, for jq and scripts.
 */
#ifndef STOMPWS_CLI_ADMIN_H
#define STOMPWS_CLI_ADMIN_H

#include <stdbool.h>

/* True when argv0 names an admin command. */
bool cli_admin_command(const char *argv0);

/* Runs the admin command argv[0] with its own options. Returns the exit status: 0 done, 1 the
 * broker refused or could not be reached (printed), 2 usage error. */
int cli_admin_main(int argc, char **argv);

#endif
