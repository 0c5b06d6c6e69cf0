/*
 * admin_path.h - the admin API's request line (issue #15): which route a method and path name,
 * the path parameter (a connection id or a login) percent-decoded, and the query's filter; and
 * the form of the cluster-wide connection ids ("NODE-N").
 *
 * Pure functions over the bytes they are handed, so that a fuzz harness
 * (tests/fuzz/fuzz_admin_path.c) and a unit suite (tests/unit/test_admin_path.c) call them
 * directly. What it must not do: allocate, read a socket, or know the broker.
 */
#ifndef STOMPWS_ADMIN_PATH_H
#define STOMPWS_ADMIN_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest decoded path parameter or filter value, in bytes. */
#define ADMIN_ARG_MAX 256
/* Longest node name in a connection id (cluster.node_id and its ".i" loop suffix fit). */
#define ADMIN_NODE_MAX 64
/* Room for "NODE-N" and its NUL. */
#define ADMIN_CONN_ID_MAX (ADMIN_NODE_MAX + 1 + 20 + 1)

enum admin_route {
    ADMIN_LIST_CONNECTIONS = 1, /* GET /api/connections[?user=U] */
    ADMIN_KICK_CONNECTION,      /* DELETE /api/connections/ID */
    ADMIN_LIST_DESTINATIONS,    /* GET /api/destinations[?prefix=P] */
    ADMIN_KICK_USER,            /* POST /api/users/LOGIN/disconnect */
};

enum admin_path_error {
    ADMIN_PATH_NOT_FOUND = -1,  /* 404: under an admin prefix, but no route */
    ADMIN_PATH_BAD_METHOD = -2, /* 405: the route exists, not with this method */
    ADMIN_PATH_BAD_ARG = -3,    /* 400: the path parameter does not decode or is not allowed */
    ADMIN_PATH_BAD_QUERY = -4,  /* 400: an unknown, repeated, undecodable or bad parameter */
};

/* What a request line asks for. arg and filter are NUL-terminated copies, decoded. */
struct admin_request_line {
    enum admin_route route;
    char arg[ADMIN_ARG_MAX + 1]; /* ID or LOGIN; "" for the list routes */
    size_t arg_len;
    char filter[ADMIN_ARG_MAX + 1]; /* the user= or prefix= value; "" when none */
    size_t filter_len;
    bool has_filter;
    const char *allow; /* after ADMIN_PATH_BAD_METHOD: the method the route takes (static) */
    const char *error; /* after an error: why, static text */
};

/* True when path (up to '?') belongs to the admin API: /api/connections, /api/destinations,
 * /api/users, or anything under them. */
bool admin_path_claims(const char *path, size_t len);

/*
 * Parses method, path and query (query_len 0 and query NULL when there is none) into out.
 * Returns 0 or an enum admin_path_error, with out->error saying why. Reads exactly the bytes
 * given: none needs a NUL.
 */
int admin_path_parse(const char *method, size_t method_len, const char *path, size_t path_len,
                     const char *query, size_t query_len, struct admin_request_line *out);

/* "NODE-N" into out (ADMIN_CONN_ID_MAX bytes); the length, or 0 when node is too long. */
size_t admin_conn_id_format(char *out, const char *node, uint64_t n);

/*
 * Splits a connection id at its last '-': node (NUL-terminated, ADMIN_NODE_MAX + 1 bytes) and
 * the number after it (decimal digits only, no leading zero, fits 64 bits). The node is printable
 * ASCII without spaces, as cluster.node_id is. 0, or -1 when id is not of that form.
 */
int admin_conn_id_parse(const char *id, size_t len, char *node, uint64_t *n);

#endif
