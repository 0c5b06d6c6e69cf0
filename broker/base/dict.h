/*
 * dict.h - a string-keyed hash table (separate chaining, power-of-two buckets, grows at load 1).
 *
 * Used for destinations, subscriptions by id, transactions by name. Keys are copied and owned by
 * the table; values are borrowed pointers the caller owns. The hash is seeded at start-up so a
 * client cannot pick destination names that collide on every node.
 */
#ifndef STOMPWS_DICT_H
#define STOMPWS_DICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dict_entry {
    struct dict_entry *next; /* owned: chain */
    void *value;             /* borrowed */
    uint64_t hash;
    size_t key_len;
    char key[]; /* NUL-terminated copy */
};

struct dict {
    struct dict_entry **buckets; /* owned */
    size_t bucket_count;         /* power of two, or 0 before the first insert */
    size_t count;
};

void dict_seed(uint64_t seed);
void dict_init(struct dict *d);
/* Frees the table and its keys, not the values. */
void dict_reset(struct dict *d);

void *dict_get(const struct dict *d, const char *key, size_t key_len);
/* Inserts or replaces; returns 0, or -1 when out of memory. */
int dict_set(struct dict *d, const char *key, size_t key_len, void *value);
/* Removes the key; returns its value or NULL when absent. */
void *dict_remove(struct dict *d, const char *key, size_t key_len);

/* Iteration: for (e = dict_first(d, &i); e; e = dict_next(d, &i, e)). Do not modify meanwhile. */
struct dict_entry *dict_first(const struct dict *d, size_t *bucket);
struct dict_entry *dict_next(const struct dict *d, size_t *bucket, struct dict_entry *e);

#endif
