/*
 * stompws_cli.c - stompws-cli: publish to and subscribe from a STOMP broker on the command line.
 *
 * This file is the command line only: flags and arguments -> struct client_options, with a
 * usage error (exit 2) naming the problem for anything it cannot use. client.c runs the session;
 * transport.c moves the bytes. See docs/CLI.md.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/admin.h"
#include "cli/client.h"
#include "cli/say.h"
#include "cli/url.h"

/* Default for --wait, in seconds. */
#define DEFAULT_WAIT_S 10

static void usage(FILE *out)
{
    fprintf(out,
            "usage: stompws-cli pub [options] URL DESTINATION [BODY]\n"
            "       stompws-cli sub [options] URL DESTINATION...\n"
            "       stompws-cli connections [--user LOGIN] URL\n"
            "       stompws-cli destinations [--prefix PREFIX] URL\n"
            "       stompws-cli kick URL ID | kick --user LOGIN URL\n"
            "\n"
            "Publish messages to a STOMP broker, or subscribe and print the messages.\n"
            "  pub  sends BODY; without it, one message per line of stdin (LF or CR LF ends a\n"
            "       line), in order. It exits once the broker has confirmed the DISCONNECT that\n"
            "       follows the last message, so everything sent was received.\n"
            "  sub  prints each message body on a line of its own, until --count, --timeout\n"
            "       or a signal.\n"
            "  connections, destinations, kick: the broker's admin API. URL: http://HOST:PORT\n"
            "       (its WebSocket or --http port) or https://HOST:PORT (its wss port, checked\n"
            "       as wss:// is: --cafile, --insecure). connections and destinations print\n"
            "       the broker's JSON; kick ends a session by the id connections lists, or\n"
            "       every session of a user. The admin key comes from $STOMPWS_ADMIN_KEY or\n"
            "       --admin-key-file FILE (first key line); --wait S bounds the request.\n"
            "\n"
            "URL:  ws://HOST[:PORT]/PATH, wss://HOST[:PORT]/PATH   STOMP over WebSocket (e.g.\n"
            "      ws://127.0.0.1:15674/ws); tcp://HOST[:PORT] (or stomp://) STOMP over TCP,\n"
            "      default port 61613; ssl://HOST[:PORT] (or stomp+ssl://) STOMP over TLS, 61614.\n"
            "\n"
            "  -H, --header NAME:VALUE  header for each SEND (pub) or SUBSCRIBE (sub); repeatable\n"
            "      --content-type TYPE  pub: content-type of the messages\n"
            "      --receipt            pub: ask a RECEIPT for each message; exit 0 only when\n"
            "                           every one has arrived\n"
            "  -n, --stdin-whole        pub: all of stdin is one message\n"
            "  -c, --count N            sub: exit 0 after N messages\n"
            "  -t, --timeout S          sub: exit 1 when no message came for S seconds\n"
            "      --ack MODE           sub: auto (default), client or client-individual; with\n"
            "                           client modes each message is acked after it is printed\n"
            "      --login USER         STOMP login\n"
            "      --passcode PASS      STOMP passcode (default: $STOMPWS_PASSCODE, which other\n"
            "                           users cannot read from the process list)\n"
            "      --host HOST          STOMP host header (default: the URL's host)\n"
            "      --stomp-version V    1.0, 1.1 or 1.2 only (default: the best of the three)\n"
            "      --heart-beat CX,CY   send heart-beats every CX ms, ask for them every CY ms\n"
            "                           (default 0,0: none)\n"
            "      --cafile FILE        trust the CA certificates in FILE (PEM) for wss:// and\n"
            "                           ssl:// (default: the system's)\n"
            "      --insecure           do not verify the broker's certificate or name (warns)\n"
            "  -w, --wait S             longest wait for the broker at each step: CONNECTED, the\n"
            "                           subscriptions, the final RECEIPT (default %d)\n"
            "  -v, --verbose            notes on stderr; sub also prints each message's headers\n"
            "                           (one per line, then an empty line) before its body\n"
            "  -q, --quiet              no notes or warnings on stderr (errors are printed)\n"
            "      --version            print the version and exit\n"
            "      --help               this text\n"
            "\n"
            "Exit status: 0 done, 1 ERROR from the broker (its message is printed), connection\n"
            "failure or timeout, 2 usage error.\n",
            DEFAULT_WAIT_S);
}

enum {
    OPT_CONTENT_TYPE = 256,
    OPT_RECEIPT,
    OPT_ACK,
    OPT_LOGIN,
    OPT_PASSCODE,
    OPT_HOST,
    OPT_STOMP_VERSION,
    OPT_HEART_BEAT,
    OPT_CAFILE,
    OPT_INSECURE,
    OPT_VERSION,
    OPT_HELP,
};

static const struct option options[] = {
    {"header", required_argument, NULL, 'H'},
    {"content-type", required_argument, NULL, OPT_CONTENT_TYPE},
    {"receipt", no_argument, NULL, OPT_RECEIPT},
    {"stdin-whole", no_argument, NULL, 'n'},
    {"count", required_argument, NULL, 'c'},
    {"timeout", required_argument, NULL, 't'},
    {"ack", required_argument, NULL, OPT_ACK},
    {"login", required_argument, NULL, OPT_LOGIN},
    {"passcode", required_argument, NULL, OPT_PASSCODE},
    {"host", required_argument, NULL, OPT_HOST},
    {"stomp-version", required_argument, NULL, OPT_STOMP_VERSION},
    {"heart-beat", required_argument, NULL, OPT_HEART_BEAT},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"wait", required_argument, NULL, 'w'},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Options that only one command takes, remembered to name them if given to the other. */
struct mode_only {
    const char *pub; /* the first pub-only option seen, NULL if none */
    const char *sub; /* the first sub-only option seen */
};

/* Seconds (fractions allowed) -> milliseconds; > 0 and small enough for an unsigned. */
static int parse_seconds(const char *flag, const char *text, unsigned *ms)
{
    char *end;
    double s = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(s) || s <= 0 || s > 4000000.0)
        return cli_usage_error(CLI_EXIT_USAGE, "%s: '%s' is not a number of seconds above 0", flag,
                               text);
    *ms = (unsigned)ceil(s * 1000.0);
    return 0;
}

static int parse_count(const char *text, unsigned long *count)
{
    char *end;
    if (text[0] < '0' || text[0] > '9')
        return cli_usage_error(CLI_EXIT_USAGE, "--count: '%s' is not a positive whole number",
                               text);
    *count = strtoul(text, &end, 10);
    if (*end != '\0' || *count == 0)
        return cli_usage_error(CLI_EXIT_USAGE, "--count: '%s' is not a positive whole number",
                               text);
    return 0;
}

static int parse_ack(const char *text, enum client_ack *ack)
{
    if (strcmp(text, "auto") == 0)
        *ack = CLIENT_ACK_AUTO;
    else if (strcmp(text, "client") == 0)
        *ack = CLIENT_ACK_CLIENT;
    else if (strcmp(text, "client-individual") == 0)
        *ack = CLIENT_ACK_CLIENT_INDIVIDUAL;
    else
        return cli_usage_error(CLI_EXIT_USAGE,
                               "--ack: '%s' is not auto, client or client-individual", text);
    return 0;
}

static int parse_version(const char *text, unsigned *versions)
{
    static const struct {
        const char *name;
        enum stomp_version version;
    } known[] = {{"1.0", STOMP_V1_0}, {"1.1", STOMP_V1_1}, {"1.2", STOMP_V1_2}};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(text, known[i].name) == 0) {
            *versions = STOMP_VERSION_BIT(known[i].version);
            return 0;
        }
    }
    return cli_usage_error(CLI_EXIT_USAGE, "--stomp-version: '%s' is not 1.0, 1.1 or 1.2", text);
}

static int parse_heart_beat(const char *text, struct client_options *o)
{
    if (stomp_heartbeat_parse(text, strlen(text), &o->heartbeat_send_ms,
                              &o->heartbeat_receive_ms) != 0)
        return cli_usage_error(
            CLI_EXIT_USAGE, "--heart-beat: '%s' is not CX,CY (two numbers of milliseconds)", text);
    return 0;
}

/* NAME:VALUE, split at the first colon; values may hold more colons. */
static int add_header(const char *text, struct client_options *o)
{
    const char *colon = strchr(text, ':');
    if (colon == NULL || colon == text)
        return cli_usage_error(CLI_EXIT_USAGE, "--header: '%s' is not NAME:VALUE", text);
    if (o->header_count == CLIENT_MAX_USER_HEADERS)
        return cli_usage_error(CLI_EXIT_USAGE, "--header: at most %d headers",
                               CLIENT_MAX_USER_HEADERS);
    o->headers[o->header_count++] =
        (struct stomp_header){text, (size_t)(colon - text), colon + 1, strlen(colon + 1)};
    return 0;
}

/* One option; pub-only and sub-only ones are noted in *only for the check after parsing. */
static int apply_option(int opt, const char *arg, struct client_options *o, struct mode_only *only)
{
    switch (opt) {
    case 'H':
        return add_header(arg, o);
    case OPT_CONTENT_TYPE:
        only->pub = only->pub ? only->pub : "--content-type";
        o->content_type = arg;
        return 0;
    case OPT_RECEIPT:
        only->pub = only->pub ? only->pub : "--receipt";
        o->receipt = true;
        return 0;
    case 'n':
        only->pub = only->pub ? only->pub : "--stdin-whole";
        o->stdin_whole = true;
        return 0;
    case 'c':
        only->sub = only->sub ? only->sub : "--count";
        return parse_count(arg, &o->count);
    case 't':
        only->sub = only->sub ? only->sub : "--timeout";
        return parse_seconds("--timeout", arg, &o->timeout_ms);
    case OPT_ACK:
        only->sub = only->sub ? only->sub : "--ack";
        return parse_ack(arg, &o->ack);
    case OPT_LOGIN:
        o->login = arg;
        return 0;
    case OPT_PASSCODE:
        o->passcode = arg;
        return 0;
    case OPT_HOST:
        o->host = arg;
        return 0;
    case OPT_STOMP_VERSION:
        return parse_version(arg, &o->versions);
    case OPT_HEART_BEAT:
        return parse_heart_beat(arg, o);
    case OPT_CAFILE:
        o->cafile = arg;
        return 0;
    case OPT_INSECURE:
        o->insecure = true;
        return 0;
    case 'w':
        return parse_seconds("--wait", arg, &o->wait_ms);
    case 'v':
        o->verbose = true;
        return 0;
    case 'q':
        o->quiet = true;
        return 0;
    default:
        return cli_usage_error(CLI_EXIT_USAGE, "unknown option");
    }
}

/* Headers stompws-cli writes itself: a -H copy would be a duplicate the broker ignores. */
static int check_headers(const struct client_options *o)
{
    static const char *const pub_own[] = {"destination", "content-length", "receipt", NULL};
    static const char *const sub_own[] = {"destination", "id", "ack", "receipt", NULL};
    const char *const *own = o->mode == CLIENT_PUB ? pub_own : sub_own;
    for (size_t i = 0; i < o->header_count; i++) {
        const struct stomp_header *h = &o->headers[i];
        for (size_t k = 0; own[k] != NULL; k++)
            if (strlen(own[k]) == h->name_len && memcmp(own[k], h->name, h->name_len) == 0)
                return cli_usage_error(CLI_EXIT_USAGE, "--header: stompws-cli sets '%s' itself",
                                       own[k]);
        if (o->content_type != NULL && h->name_len == 12 &&
            memcmp(h->name, "content-type", 12) == 0)
            return cli_usage_error(CLI_EXIT_USAGE,
                                   "--header: content-type given twice (also --content-type)");
    }
    return 0;
}

/* COMMAND URL DESTINATION... [BODY] and the options' fit with the command. */
static int parse_arguments(int argc, char **argv, struct client_options *o,
                           const struct mode_only *only)
{
    if (argc < 1)
        return cli_usage_error(CLI_EXIT_USAGE, "no command (pub or sub)");
    if (strcmp(argv[0], "pub") == 0)
        o->mode = CLIENT_PUB;
    else if (strcmp(argv[0], "sub") == 0)
        o->mode = CLIENT_SUB;
    else
        return cli_usage_error(CLI_EXIT_USAGE, "unknown command '%s' (pub or sub)", argv[0]);
    if (o->mode == CLIENT_PUB && only->sub != NULL)
        return cli_usage_error(CLI_EXIT_USAGE, "%s is for sub, not pub", only->sub);
    if (o->mode == CLIENT_SUB && only->pub != NULL)
        return cli_usage_error(CLI_EXIT_USAGE, "%s is for pub, not sub", only->pub);
    if (argc < 3)
        return cli_usage_error(CLI_EXIT_USAGE, "%s needs a URL and a DESTINATION", argv[0]);
    if (o->mode == CLIENT_PUB && argc > 4)
        return cli_usage_error(CLI_EXIT_USAGE,
                               "pub takes one DESTINATION and at most one BODY (quote it)");
    if (o->mode == CLIENT_PUB && argc == 4 && o->stdin_whole)
        return cli_usage_error(CLI_EXIT_USAGE,
                               "--stdin-whole reads the body from stdin: give no BODY");
    char err[512];
    if (url_parse(argv[1], &o->url, err, sizeof(err)) != 0)
        return cli_usage_error(CLI_EXIT_USAGE, "bad URL '%s': %s", argv[1], err);
    o->destinations = argv + 2;
    o->destination_count = o->mode == CLIENT_PUB ? 1 : (size_t)(argc - 2);
    for (size_t i = 0; i < o->destination_count; i++)
        if (o->destinations[i][0] == '\0')
            return cli_usage_error(CLI_EXIT_USAGE, "empty DESTINATION");
    o->body = o->mode == CLIENT_PUB && argc == 4 ? argv[3] : NULL;
    if (o->quiet && o->verbose)
        return cli_usage_error(CLI_EXIT_USAGE, "-q and -v contradict each other");
    if (o->insecure && o->cafile != NULL)
        return cli_usage_error(CLI_EXIT_USAGE,
                               "--insecure verifies nothing: --cafile would be ignored");
    return check_headers(o);
}

int main(int argc, char **argv)
{
    static struct client_options o;
    struct mode_only only = {NULL, NULL};
    o.versions = STOMP_VERSIONS_ALL;
    o.wait_ms = DEFAULT_WAIT_S * 1000;
    o.ack = CLIENT_ACK_AUTO;
    int opt;
    if (argc > 1 && cli_admin_command(argv[1])) /* admin API (issue #15): own options */
        return cli_admin_main(argc - 1, argv + 1);
    while ((opt = getopt_long(argc, argv, "H:nc:t:w:vq", options, NULL)) != -1) {
        if (opt == OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (opt == OPT_VERSION) {
            printf("stompws-cli %s\n", STOMPWS_VERSION);
            return 0;
        }
        if (opt == '?' || opt == ':') {
            fputs("Try 'stompws-cli --help' for more information.\n", stderr);
            return CLI_EXIT_USAGE;
        }
        if (apply_option(opt, optarg, &o, &only) != 0)
            return CLI_EXIT_USAGE;
    }
    if (parse_arguments(argc - optind, argv + optind, &o, &only) != 0)
        return CLI_EXIT_USAGE;
    if (o.passcode == NULL)
        o.passcode = getenv("STOMPWS_PASSCODE");
    /* A broker that closes while we write must give an error, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    return client_run(&o);
}
