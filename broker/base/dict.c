#include "broker/base/dict.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_seed = 0x9e3779b97f4a7c15ULL;

void dict_seed(uint64_t seed)
{
    hash_seed = seed | 1;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Seeded word-at-a-time hash; every input byte is mixed with the secret seed. */
static uint64_t hash_key(const char *key, size_t len)
{
    uint64_t h = hash_seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, key, 8);
        h = mix(h ^ w) + 0x2545f4914f6cdd1dULL;
        key += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, key, len);
    return mix(h ^ tail ^ hash_seed);
}

void dict_init(struct dict *d)
{
    d->buckets = NULL;
    d->bucket_count = 0;
    d->count = 0;
}

void dict_reset(struct dict *d)
{
    for (size_t i = 0; i < d->bucket_count; i++) {
        struct dict_entry *e = d->buckets[i];
        while (e != NULL) {
            struct dict_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(d->buckets);
    dict_init(d);
}

static struct dict_entry **find_slot(const struct dict *d, const char *key, size_t key_len,
                                     uint64_t hash)
{
    struct dict_entry **slot = &d->buckets[hash & (d->bucket_count - 1)];
    while (*slot != NULL) {
        struct dict_entry *e = *slot;
        if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return slot;
        slot = &e->next;
    }
    return slot;
}

void *dict_get(const struct dict *d, const char *key, size_t key_len)
{
    if (d->count == 0)
        return NULL;
    struct dict_entry *e = *find_slot(d, key, key_len, hash_key(key, key_len));
    return e != NULL ? e->value : NULL;
}

static int grow(struct dict *d)
{
    size_t new_count = d->bucket_count ? d->bucket_count * 2 : 16;
    struct dict_entry **buckets = calloc(new_count, sizeof(*buckets));
    if (buckets == NULL)
        return -1;
    for (size_t i = 0; i < d->bucket_count; i++) {
        struct dict_entry *e = d->buckets[i];
        while (e != NULL) {
            struct dict_entry *next = e->next;
            struct dict_entry **head = &buckets[e->hash & (new_count - 1)];
            e->next = *head;
            *head = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = buckets;
    d->bucket_count = new_count;
    return 0;
}

int dict_set(struct dict *d, const char *key, size_t key_len, void *value)
{
    if (d->count >= d->bucket_count && grow(d) != 0)
        return -1;
    uint64_t hash = hash_key(key, key_len);
    struct dict_entry **slot = find_slot(d, key, key_len, hash);
    if (*slot != NULL) {
        (*slot)->value = value;
        return 0;
    }
    struct dict_entry *e = malloc(sizeof(*e) + key_len + 1);
    if (e == NULL)
        return -1;
    e->next = NULL;
    e->value = value;
    e->hash = hash;
    e->key_len = key_len;
    memcpy(e->key, key, key_len);
    e->key[key_len] = '\0';
    *slot = e;
    d->count++;
    return 0;
}

void *dict_remove(struct dict *d, const char *key, size_t key_len)
{
    if (d->count == 0)
        return NULL;
    struct dict_entry **slot = find_slot(d, key, key_len, hash_key(key, key_len));
    struct dict_entry *e = *slot;
    if (e == NULL)
        return NULL;
    void *value = e->value;
    *slot = e->next;
    free(e);
    d->count--;
    return value;
}

struct dict_entry *dict_first(const struct dict *d, size_t *bucket)
{
    for (*bucket = 0; *bucket < d->bucket_count; (*bucket)++)
        if (d->buckets[*bucket] != NULL)
            return d->buckets[*bucket];
    return NULL;
}

struct dict_entry *dict_next(const struct dict *d, size_t *bucket, struct dict_entry *e)
{
    if (e->next != NULL)
        return e->next;
    for ((*bucket)++; *bucket < d->bucket_count; (*bucket)++)
        if (d->buckets[*bucket] != NULL)
            return d->buckets[*bucket];
    return NULL;
}
