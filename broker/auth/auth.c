#include "broker/auth/auth.h"
#include "broker/base/base64.h"
#include "broker/base/dict.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Users, ACL and secret files larger than this are refused rather than read into memory. */
#define AUTH_FILE_MAX ((size_t)64 << 20)

#define PBKDF2_SCHEME    "$pbkdf2-sha256$"
#define SALT_MIN_BYTES   8
#define SALT_MAX_BYTES   AUTH_PBKDF2_SALT_MAX_BYTES
#define SIGNATURE_MAX    1024 /* RSA-8192; anything longer is not a signature we can check */
#define NUMERIC_DATE_MAX ((int64_t)1 << 53) /* the integers JSON carries exactly (RFC 7493) */

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t err_len, int code,
                                                      const char *fmt, ...)
{
    if (err != NULL && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- Files and lines ---- */

/*
 * Reads a whole file into a NUL-terminated buffer the caller frees. missing_ok: a file that does
 * not exist reads as empty (auth_passwd_update_file creates it).
 */
static int read_file(const char *path, bool missing_ok, char **out, size_t *out_len, char *err,
                     size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL && missing_ok && errno == ENOENT) {
        *out = calloc(1, 1);
        *out_len = 0;
        return *out != NULL ? 0 : fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
    }
    if (f == NULL)
        return fail(err, err_len, AUTH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    int rc = buf != NULL ? 0 : fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
    while (rc == 0) {
        if (cap - len < 2) {
            char *bigger = cap < AUTH_FILE_MAX ? realloc(buf, cap * 2) : NULL;
            if (bigger == NULL) {
                rc = cap < AUTH_FILE_MAX
                         ? fail(err, err_len, AUTH_ERR_NOMEM, "out of memory")
                         : fail(err, err_len, AUTH_ERR_IO, "%s: file too large", path);
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0 && ferror(f))
            rc = fail(err, err_len, AUTH_ERR_IO, "%s: read error: %s", path, strerror(errno));
        else if (n == 0)
            break;
    }
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* One line of a text buffer: [start, start + len), without its '\n'. */
struct line {
    const char *start;
    size_t len;
};

/* The next line from *pos; false at the end of the text. */
static bool next_line(const char *text, size_t len, size_t *pos, struct line *out)
{
    if (*pos >= len)
        return false;
    const char *start = text + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    out->start = start;
    out->len = nl != NULL ? (size_t)(nl - start) : len - *pos;
    *pos += out->len + (nl != NULL ? 1 : 0);
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* The line without leading and trailing blanks (and the '\r' of CRLF files). */
static struct line trim(struct line l)
{
    while (l.len > 0 && is_blank(l.start[0])) {
        l.start++;
        l.len--;
    }
    while (l.len > 0 && is_blank(l.start[l.len - 1]))
        l.len--;
    return l;
}

/* Blank lines and '#' comments carry nothing. */
static bool is_empty_line(struct line l)
{
    return l.len == 0 || l.start[0] == '#';
}

/*
 * Calls add(ctx, line) for each line of a users or ACL file that is not blank or a comment.
 * Returns 0, or -1 with "PATH:LINE: what add said" in err.
 */
static int parse_lines(const char *path, const char *text, size_t len,
                       int (*add)(void *ctx, struct line l, char *msg, size_t msg_len), void *ctx,
                       char *err, size_t err_len)
{
    size_t pos = 0, line_no = 0;
    struct line l;
    char msg[256];
    while (next_line(text, len, &pos, &l)) {
        line_no++;
        l = trim(l);
        if (is_empty_line(l))
            continue;
        if (add(ctx, l, msg, sizeof(msg)) != 0) {
            fail(err, err_len, AUTH_ERR_INVALID, "%s:%zu: %s", path, line_no, msg);
            return -1;
        }
    }
    return 0;
}

/* ---- Users file ---- */

bool auth_user_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len >= AUTH_USER_MAX || name[0] == '#' ||
        (len == 1 && name[0] == '*'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c == 0x7f || c == ':')
            return false;
    }
    return true;
}

/* One user's stored hash. */
struct user_entry {
    unsigned iterations;
    size_t salt_len;
    unsigned char salt[SALT_MAX_BYTES];
    unsigned char hash[AUTH_PBKDF2_HASH_BYTES];
};

struct auth_users {
    struct dict by_name;       /* owned table, owned values: name -> struct user_entry */
    unsigned decoy_iterations; /* what an unknown login costs: the first entry's iterations */
};

/* Reads "DIGITS$" at *p (advanced past the '$') within [*p, end). */
static bool parse_iterations(const char **p, const char *end, unsigned *out)
{
    unsigned long value = 0;
    const char *s = *p;
    while (s < end && *s >= '0' && *s <= '9' && s - *p < 9)
        value = value * 10 + (unsigned long)(*s++ - '0');
    if (s == *p || s == end || *s != '$' || value < AUTH_PBKDF2_MIN_ITERATIONS ||
        value > AUTH_PBKDF2_MAX_ITERATIONS)
        return false;
    *out = (unsigned)value;
    *p = s + 1;
    return true;
}

/*
 * Parses one users-file entry (trimmed, not a comment) into out and the name span. Returns 0,
 * or -1 with the reason in msg.
 */
static int parse_user_line(struct line l, struct line *name, struct user_entry *out, char *msg,
                           size_t msg_len)
{
    const char *end = l.start + l.len;
    const char *colon = memchr(l.start, ':', l.len);
    if (colon == NULL)
        return fail(msg, msg_len, -1, "expected USER%sITERATIONS$SALT$HASH", ":" PBKDF2_SCHEME);
    name->start = l.start;
    name->len = (size_t)(colon - l.start);
    if (!auth_user_name_valid(name->start, name->len))
        return fail(msg, msg_len, -1,
                    "invalid user name (1-127 bytes; no ':', blanks or "
                    "control characters; not '*' or starting with '#')");
    const char *p = colon + 1;
    size_t scheme_len = strlen(PBKDF2_SCHEME);
    if ((size_t)(end - p) < scheme_len || memcmp(p, PBKDF2_SCHEME, scheme_len) != 0)
        return fail(msg, msg_len, -1, "unsupported hash (expected %s)", PBKDF2_SCHEME);
    p += scheme_len;
    if (!parse_iterations(&p, end, &out->iterations))
        return fail(msg, msg_len, -1, "iterations must be a number from %u to %u",
                    AUTH_PBKDF2_MIN_ITERATIONS, AUTH_PBKDF2_MAX_ITERATIONS);
    const char *dollar = memchr(p, '$', (size_t)(end - p));
    long salt_len =
        dollar != NULL ? base64_decode(p, (size_t)(dollar - p), false, out->salt, sizeof(out->salt))
                       : -1;
    if (salt_len < SALT_MIN_BYTES)
        return fail(msg, msg_len, -1, "salt must be %d to %d bytes of unpadded base64",
                    SALT_MIN_BYTES, SALT_MAX_BYTES);
    out->salt_len = (size_t)salt_len;
    p = dollar + 1;
    unsigned char hash[AUTH_PBKDF2_HASH_BYTES + 1];
    if (base64_decode(p, (size_t)(end - p), false, hash, sizeof(hash)) != AUTH_PBKDF2_HASH_BYTES)
        return fail(msg, msg_len, -1, "hash must be %d bytes of unpadded base64",
                    AUTH_PBKDF2_HASH_BYTES);
    memcpy(out->hash, hash, sizeof(out->hash));
    return 0;
}

static void free_user_entries(struct dict *d)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(d, &bucket); e != NULL; e = dict_next(d, &bucket, e)) {
        OPENSSL_cleanse(e->value, sizeof(struct user_entry));
        free(e->value);
    }
    dict_reset(d);
}

void auth_users_free(struct auth_users *users)
{
    if (users == NULL)
        return;
    free_user_entries(&users->by_name);
    free(users);
}

/* Adds one entry line to users; "duplicate user" when the name is there already. */
static int add_user_line(void *ctx, struct line l, char *msg, size_t msg_len)
{
    struct auth_users *users = ctx;
    struct user_entry parsed;
    struct line name = {NULL, 0};
    if (parse_user_line(l, &name, &parsed, msg, msg_len) != 0)
        return -1;
    if (dict_get(&users->by_name, name.start, name.len) != NULL)
        return fail(msg, msg_len, -1, "duplicate user '%.*s'", (int)name.len, name.start);
    struct user_entry *e = malloc(sizeof(*e));
    if (e == NULL || dict_set(&users->by_name, name.start, name.len, e) != 0) {
        free(e);
        return fail(msg, msg_len, -1, "out of memory");
    }
    *e = parsed;
    if (users->by_name.count == 1)
        users->decoy_iterations = e->iterations;
    return 0;
}

/* Parses the text of a users file (path names it in errors). */
static struct auth_users *users_parse(const char *path, const char *text, size_t len, char *err,
                                      size_t err_len)
{
    struct auth_users *users = calloc(1, sizeof(*users));
    if (users == NULL) {
        fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
        return NULL;
    }
    dict_init(&users->by_name);
    users->decoy_iterations = AUTH_PBKDF2_DEFAULT_ITERATIONS;
    if (parse_lines(path, text, len, add_user_line, users, err, err_len) != 0) {
        auth_users_free(users);
        return NULL;
    }
    return users;
}

struct auth_users *auth_users_load(const char *path, char *err, size_t err_len)
{
    char *text;
    size_t len;
    if (read_file(path, false, &text, &len, err, err_len) != 0)
        return NULL;
    struct auth_users *users = users_parse(path, text, len, err, err_len);
    free(text);
    return users;
}

bool auth_users_check_prepare(const struct auth_users *users, const char *login, size_t login_len,
                              struct auth_password_check *check)
{
    static const unsigned char decoy_salt[AUTH_PBKDF2_SALT_BYTES];
    if (users == NULL)
        return false;
    const struct user_entry *e = NULL;
    if (login != NULL && login_len > 0 && login_len < AUTH_USER_MAX)
        e = dict_get(&users->by_name, login, login_len);
    /* An unknown login still pays for one PBKDF2 run: its timing must match a wrong password. */
    check->known = e != NULL;
    check->salt_len = e != NULL ? e->salt_len : sizeof(decoy_salt);
    memcpy(check->salt, e != NULL ? e->salt : decoy_salt, check->salt_len);
    check->iterations = e != NULL ? e->iterations : users->decoy_iterations;
    if (e != NULL)
        memcpy(check->hash, e->hash, sizeof(check->hash));
    else
        memset(check->hash, 0, sizeof(check->hash));
    return true;
}

bool auth_password_check_run(const struct auth_password_check *check, const char *passcode,
                             size_t passcode_len)
{
    if (passcode_len > INT_MAX)
        return false;
    unsigned char derived[AUTH_PBKDF2_HASH_BYTES];
    if (PKCS5_PBKDF2_HMAC(passcode != NULL ? passcode : "", (int)passcode_len, check->salt,
                          (int)check->salt_len, (int)check->iterations, EVP_sha256(),
                          sizeof(derived), derived) != 1) {
        ERR_clear_error();
        return false;
    }
    bool ok = check->known && CRYPTO_memcmp(derived, check->hash, sizeof(derived)) == 0;
    OPENSSL_cleanse(derived, sizeof(derived));
    return ok;
}

bool auth_users_verify(const struct auth_users *users, const char *login, size_t login_len,
                       const char *passcode, size_t passcode_len)
{
    struct auth_password_check check;
    if (passcode_len > INT_MAX || !auth_users_check_prepare(users, login, login_len, &check))
        return false;
    return auth_password_check_run(&check, passcode, passcode_len);
}

int auth_passwd_entry(char *out, size_t cap, const char *user, const char *password,
                      unsigned iterations)
{
    if (iterations == 0)
        iterations = AUTH_PBKDF2_DEFAULT_ITERATIONS;
    if (user == NULL || !auth_user_name_valid(user, strlen(user)) || password == NULL ||
        password[0] == '\0' || strlen(password) > INT_MAX ||
        iterations < AUTH_PBKDF2_MIN_ITERATIONS || iterations > AUTH_PBKDF2_MAX_ITERATIONS)
        return AUTH_ERR_INVALID;
    unsigned char salt[AUTH_PBKDF2_SALT_BYTES], hash[AUTH_PBKDF2_HASH_BYTES];
    if (RAND_bytes(salt, sizeof(salt)) != 1 ||
        PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof(salt), (int)iterations,
                          EVP_sha256(), sizeof(hash), hash) != 1) {
        ERR_clear_error();
        return AUTH_ERR_CRYPTO;
    }
    char salt64[4 * ((sizeof(salt) + 2) / 3) + 1], hash64[4 * ((sizeof(hash) + 2) / 3) + 1];
    base64_encode(salt, sizeof(salt), false, salt64);
    base64_encode(hash, sizeof(hash), false, hash64);
    OPENSSL_cleanse(hash, sizeof(hash));
    int n = snprintf(out, cap, "%s:%s%u$%s$%s", user, PBKDF2_SCHEME, iterations, salt64, hash64);
    return n >= 0 && (size_t)n < cap ? n : AUTH_ERR_SPACE;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Makes the rename in path's directory durable; best effort (some filesystems refuse). */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if ((size_t)snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path + 1), path) >=
             sizeof(dir))
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Replaces path with data: a 0600 temporary file next to it, fsync, rename. */
static int write_file_atomic(const char *path, const char *data, size_t len, char *err,
                             size_t err_len)
{
    size_t tmp_len = strlen(path) + sizeof(".XXXXXX");
    char *tmp = malloc(tmp_len);
    if (tmp == NULL)
        return fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
    snprintf(tmp, tmp_len, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = fail(err, err_len, AUTH_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int rc = 0;
    if (fchmod(fd, 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0)
        rc = fail(err, err_len, AUTH_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = fail(err, err_len, AUTH_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = fail(err, err_len, AUTH_ERR_IO, "%s: cannot replace: %s", path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    else
        sync_parent_dir(path);
    free(tmp);
    return rc;
}

/*
 * The new text of a users file: `text` with user's line replaced by `entry`, or with `entry`
 * appended. The caller validated `text` (users_parse), so every non-comment line is an entry.
 */
static char *users_text_with(const char *text, size_t len, const char *user, const char *entry,
                             size_t *out_len)
{
    size_t entry_len = strlen(entry), user_len = strlen(user), n = 0, pos = 0;
    char *out = malloc(len + entry_len + 2);
    if (out == NULL)
        return NULL;
    bool replaced = false;
    struct line raw;
    while (next_line(text, len, &pos, &raw)) {
        struct line l = trim(raw);
        bool mine = !replaced && !is_empty_line(l) && l.len > user_len &&
                    l.start[user_len] == ':' && memcmp(l.start, user, user_len) == 0;
        const char *src = mine ? entry : raw.start;
        size_t src_len = mine ? entry_len : raw.len;
        memcpy(out + n, src, src_len);
        n += src_len;
        out[n++] = '\n';
        replaced |= mine;
    }
    if (!replaced) {
        memcpy(out + n, entry, entry_len);
        n += entry_len;
        out[n++] = '\n';
    }
    *out_len = n;
    return out;
}

int auth_passwd_update_file(const char *path, const char *user, const char *password, char *err,
                            size_t err_len)
{
    if (user == NULL || !auth_user_name_valid(user, strlen(user)))
        return fail(err, err_len, AUTH_ERR_INVALID,
                    "invalid user name (1-127 bytes; no ':', blanks or control characters; not "
                    "'*' or starting with '#')");
    if (password == NULL || password[0] == '\0')
        return fail(err, err_len, AUTH_ERR_INVALID, "empty password");
    char *text;
    size_t len;
    int rc = read_file(path, true, &text, &len, err, err_len);
    if (rc != 0)
        return rc;
    struct auth_users *check = users_parse(path, text, len, err, err_len);
    if (check == NULL) {
        free(text);
        return AUTH_ERR_INVALID; /* err names the line; the file is left as it is */
    }
    auth_users_free(check);
    char entry[AUTH_PASSWD_ENTRY_MAX];
    rc = auth_passwd_entry(entry, sizeof(entry), user, password, 0);
    size_t out_len = 0;
    char *out = rc >= 0 ? users_text_with(text, len, user, entry, &out_len) : NULL;
    free(text);
    if (rc < 0)
        return fail(err, err_len, rc, "cannot hash the password");
    if (out == NULL)
        return fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
    rc = write_file_atomic(path, out, out_len, err, err_len);
    free(out);
    return rc;
}

/* ---- Destination patterns ---- */

/* One token of a pattern: a literal segment, or a run of adjacent "*" and "#" segments. */
struct ptoken {
    const char *text; /* literal: the segment, not NUL-terminated */
    size_t len;       /* literal: its length */
    size_t stars;     /* run: how many "*" segments (each stands for exactly one) */
    bool wildcard;    /* a run rather than a literal */
    bool hash;        /* run: holds a "#" (then it stands for `stars` or more segments) */
};

/*
 * A destination or pattern "/PREFIX/REST" with REST split on '.'. Adjacent wildcards fold into
 * one run because only their count matters: "#.*", "*.#" and "#.*.#" all mean "one or more".
 */
struct pattern {
    size_t prefix_len; /* of "/PREFIX/", both slashes included */
    size_t count;
    struct ptoken tokens[AUTH_MAX_SEGMENTS];
};

static void add_segment(struct pattern *p, const char *seg, size_t len)
{
    bool star = len == 1 && seg[0] == '*', hash = len == 1 && seg[0] == '#';
    struct ptoken *last = p->count > 0 ? &p->tokens[p->count - 1] : NULL;
    if ((star || hash) && last != NULL && last->wildcard) {
        last->stars += star;
        last->hash |= hash;
        return;
    }
    struct ptoken *t = &p->tokens[p->count++];
    *t = (struct ptoken){
        .text = seg, .len = len, .stars = star, .wildcard = star || hash, .hash = hash};
}

/*
 * The segment separator after a prefix: '.' (topic names), but '/' under /user/, whose names are
 * /user/LOGIN/queue/NAME: a login is then one segment, so a `*` in its place grants every
 * user's destination of that name, and '.' stays literal, as in a login "j.doe".
 */
static char segment_separator(const char *s, size_t prefix_len)
{
    return prefix_len == 6 && memcmp(s, "/user/", 6) == 0 ? '/' : '.';
}

/* Splits s into p; -1 when it has no "/PREFIX/" or more than AUTH_MAX_SEGMENTS segments. */
static int parse_pattern(const char *s, size_t len, struct pattern *p)
{
    const char *slash = len > 2 && s[0] == '/' ? memchr(s + 1, '/', len - 1) : NULL;
    if (slash == NULL || slash == s + 1)
        return -1;
    p->prefix_len = (size_t)(slash - s) + 1;
    p->count = 0;
    const char *end = s + len;
    char separator = segment_separator(s, p->prefix_len);
    size_t segments = 0;
    for (const char *seg = slash + 1, *dot;; seg = dot + 1) {
        dot = memchr(seg, separator, (size_t)(end - seg));
        if (segments++ == AUTH_MAX_SEGMENTS)
            return -1;
        add_segment(p, seg, (size_t)((dot != NULL ? dot : end) - seg));
        if (dot == NULL)
            return 0;
    }
}

/* Fewest segments token j of r stands for. */
static size_t min_segments(const struct pattern *r, size_t j)
{
    const struct ptoken *t = &r->tokens[j];
    if (!t->wildcard)
        return 1;
    /* A name always has at least one segment ("" splits into one empty segment), so a request
     * that is only "#" stands for one or more, like "*.#". */
    if (r->count == 1 && t->stars == 0)
        return 1;
    return t->stars;
}

/*
 * Can the run t (no "#": exactly t->stars segments) stand for the requested tokens from j on?
 * It must take whole tokens with no "#" among them adding up to exactly t->stars segments, and
 * `rest[e]` says whether the allowed tokens after t cover the requested tokens from e on.
 */
static bool fixed_run_covers(const struct ptoken *t, const struct pattern *r, size_t j,
                             const bool *rest)
{
    size_t e = j, taken = 0;
    while (e < r->count && taken < t->stars && !r->tokens[e].hash)
        taken += min_segments(r, e++);
    return taken == t->stars && rest[e];
}

static bool literal_covers(const struct ptoken *t, const struct pattern *r, size_t j,
                           const bool *rest)
{
    const struct ptoken *u = j < r->count ? &r->tokens[j] : NULL;
    return u != NULL && !u->wildcard && u->len == t->len && memcmp(u->text, t->text, t->len) == 0 &&
           rest[j + 1];
}

/*
 * Does every name r can stand for match a? Dynamic programming over (allowed token i, requested
 * token j), from the last allowed token back: covers[j] says whether a's tokens from i on cover
 * r's tokens from j on. A literal covers only the same literal (a wildcard can stand for a
 * segment that is not it); a run with "#" and k stars covers any stretch of requested tokens
 * standing for at least k segments in every case; a run of k stars covers a stretch without "#"
 * standing for exactly k. A requested run never splits over two allowed runs, as a literal
 * always lies between them. This is exact: the unit test compares it with brute force.
 */
static bool tokens_cover(const struct pattern *a, const struct pattern *r)
{
    size_t n = r->count;
    size_t at_least[AUTH_MAX_SEGMENTS + 1]; /* at_least[j]: segments r's tokens before j need */
    bool rest[AUTH_MAX_SEGMENTS + 2], covers[AUTH_MAX_SEGMENTS + 2],
        any_from[AUTH_MAX_SEGMENTS + 2];
    at_least[0] = 0;
    for (size_t j = 0; j < n; j++)
        at_least[j + 1] = at_least[j] + min_segments(r, j);
    for (size_t j = 0; j <= n; j++)
        rest[j] = j == n; /* nothing allowed is left: covers only nothing requested */
    for (size_t i = a->count; i-- > 0;) {
        const struct ptoken *t = &a->tokens[i];
        any_from[n + 1] = false;
        for (size_t j = n + 1; j-- > 0;)
            any_from[j] = rest[j] || any_from[j + 1];
        for (size_t j = 0, e = 0; j <= n; j++) {
            if (!t->wildcard) {
                covers[j] = literal_covers(t, r, j, rest);
            } else if (t->hash) {
                /* the first end e where r's tokens [j, e) need at least t->stars segments */
                if (e < j)
                    e = j;
                while (e <= n && at_least[e] - at_least[j] < t->stars)
                    e++;
                covers[j] = e <= n && any_from[e];
            } else {
                covers[j] = fixed_run_covers(t, r, j, rest);
            }
        }
        memcpy(rest, covers, (n + 1) * sizeof(rest[0]));
    }
    return rest[0];
}

static bool covers_parsed(const struct pattern *a, const char *a_text, const struct pattern *r,
                          const char *r_text)
{
    return a->prefix_len == r->prefix_len && memcmp(a_text, r_text, a->prefix_len) == 0 &&
           tokens_cover(a, r);
}

bool auth_pattern_covers(const char *allowed, size_t allowed_len, const char *requested,
                         size_t requested_len)
{
    struct pattern a, r;
    if (allowed == NULL || requested == NULL || parse_pattern(allowed, allowed_len, &a) != 0 ||
        parse_pattern(requested, requested_len, &r) != 0)
        return false;
    return covers_parsed(&a, allowed, &r, requested);
}

bool auth_pattern_valid(const char *pattern, size_t len)
{
    struct pattern p;
    if (pattern == NULL || parse_pattern(pattern, len, &p) != 0 || p.prefix_len == len)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pattern[i];
        if (c <= ' ' || c == 0x7f || ((c == '*' || c == '#') && i < p.prefix_len))
            return false;
    }
    /* '*' and '#' are wildcards only as a whole segment; "stocks*" would silently be literal. */
    for (size_t i = 0; i < p.count; i++) {
        const struct ptoken *t = &p.tokens[i];
        if (!t->wildcard &&
            (memchr(t->text, '*', t->len) != NULL || memchr(t->text, '#', t->len) != NULL))
            return false;
    }
    return true;
}

/* ---- Rules: an ACL user's lines, or a token's grants ---- */

struct rule {
    unsigned verbs; /* AUTH_READ | AUTH_WRITE */
    char *pattern;  /* owned, NUL-terminated, valid (auth_pattern_valid) */
    size_t pattern_len;
};

struct rule_list {
    struct rule *rules; /* owned array */
    size_t count, cap;
};

static int rule_list_add(struct rule_list *l, unsigned verbs, const char *pattern, size_t len)
{
    if (l->count == l->cap) {
        size_t cap = l->cap > 0 ? l->cap * 2 : 4;
        struct rule *bigger = realloc(l->rules, cap * sizeof(*bigger));
        if (bigger == NULL)
            return AUTH_ERR_NOMEM;
        l->rules = bigger;
        l->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return AUTH_ERR_NOMEM;
    memcpy(copy, pattern, len);
    copy[len] = '\0';
    l->rules[l->count++] = (struct rule){.verbs = verbs, .pattern = copy, .pattern_len = len};
    return 0;
}

static void rule_list_reset(struct rule_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->rules[i].pattern);
    free(l->rules);
    memset(l, 0, sizeof(*l));
}

/* Does a rule of l grant verb on the (parsed) requested destination? */
static bool rule_list_allows(const struct rule_list *l, enum auth_verb verb,
                             const struct pattern *req, const char *dest)
{
    struct pattern allowed;
    for (size_t i = 0; i < l->count; i++) {
        const struct rule *rule = &l->rules[i];
        if ((rule->verbs & (unsigned)verb) != 0 &&
            parse_pattern(rule->pattern, rule->pattern_len, &allowed) == 0 &&
            covers_parsed(&allowed, rule->pattern, req, dest))
            return true;
    }
    return false;
}

struct auth_grants {
    struct rule_list rules;
};

bool auth_grants_allow(const struct auth_grants *grants, enum auth_verb verb, const char *dest,
                       size_t len)
{
    struct pattern req;
    if (grants == NULL || dest == NULL || parse_pattern(dest, len, &req) != 0)
        return false;
    return rule_list_allows(&grants->rules, verb, &req, dest);
}

struct auth_acl {
    struct dict users;         /* owned table, owned values: user -> struct rule_list */
    struct rule_list everyone; /* the "*" lines */
};

void auth_acl_free(struct auth_acl *acl)
{
    if (acl == NULL)
        return;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&acl->users, &bucket); e != NULL;
         e = dict_next(&acl->users, &bucket, e)) {
        rule_list_reset(e->value);
        free(e->value);
    }
    dict_reset(&acl->users);
    rule_list_reset(&acl->everyone);
    free(acl);
}

bool auth_acl_allows(const struct auth_acl *acl, const char *user, enum auth_verb verb,
                     const char *dest, size_t len)
{
    struct pattern req;
    if (acl == NULL || dest == NULL || parse_pattern(dest, len, &req) != 0)
        return false;
    if (rule_list_allows(&acl->everyone, verb, &req, dest))
        return true;
    const struct rule_list *mine =
        user != NULL && user[0] != '\0' ? dict_get(&acl->users, user, strlen(user)) : NULL;
    return mine != NULL && rule_list_allows(mine, verb, &req, dest);
}

/* "read", "write", "read,write" (either order) -> verb bits; 0 for anything else. */
static unsigned parse_verbs(const char *s, size_t len)
{
    unsigned verbs = 0;
    const char *end = s + len;
    for (const char *word = s, *comma;; word = comma + 1) {
        comma = memchr(word, ',', (size_t)(end - word));
        size_t n = (size_t)((comma != NULL ? comma : end) - word);
        if (n == 4 && memcmp(word, "read", 4) == 0)
            verbs |= AUTH_READ;
        else if (n == 5 && memcmp(word, "write", 5) == 0)
            verbs |= AUTH_WRITE;
        else
            return 0;
        if (comma == NULL)
            return verbs;
    }
}

/* Splits a trimmed line on blanks into at most max fields; returns how many there were. */
static size_t split_fields(struct line l, struct line *fields, size_t max)
{
    size_t n = 0;
    const char *p = l.start, *end = l.start + l.len;
    while (p < end) {
        while (p < end && is_blank(*p))
            p++;
        if (p == end)
            break;
        const char *start = p;
        while (p < end && !is_blank(*p))
            p++;
        if (n < max)
            fields[n] = (struct line){start, (size_t)(p - start)};
        n++;
    }
    return n;
}

/* The rule list of an ACL user, created on first use. */
static struct rule_list *acl_rules_of(struct auth_acl *acl, struct line user)
{
    if (user.len == 1 && user.start[0] == '*')
        return &acl->everyone;
    struct rule_list *l = dict_get(&acl->users, user.start, user.len);
    if (l != NULL)
        return l;
    l = calloc(1, sizeof(*l));
    if (l == NULL || dict_set(&acl->users, user.start, user.len, l) != 0) {
        free(l);
        return NULL;
    }
    return l;
}

/* How much of a field an error message quotes. */
static int shown_len(size_t len)
{
    return len < 80 ? (int)len : 80;
}

/* Adds one "USER VERBS PATTERN" line; -1 with the reason in msg. */
static int add_acl_line(void *ctx, struct line l, char *msg, size_t msg_len)
{
    struct auth_acl *acl = ctx;
    struct line f[3];
    if (split_fields(l, f, 3) != 3)
        return fail(msg, msg_len, -1, "expected USER VERBS PATTERN");
    bool everyone = f[0].len == 1 && f[0].start[0] == '*';
    if (!everyone && !auth_user_name_valid(f[0].start, f[0].len))
        return fail(msg, msg_len, -1, "invalid user name '%.*s'", shown_len(f[0].len), f[0].start);
    unsigned verbs = parse_verbs(f[1].start, f[1].len);
    if (verbs == 0)
        return fail(msg, msg_len, -1, "unknown verbs '%.*s' (read, write or read,write)",
                    shown_len(f[1].len), f[1].start);
    if (!auth_pattern_valid(f[2].start, f[2].len))
        return fail(msg, msg_len, -1,
                    "invalid pattern '%.*s' (expected /PREFIX/SEGMENTS with '*' and '#' only as "
                    "whole segments)",
                    shown_len(f[2].len), f[2].start);
    struct rule_list *rules = acl_rules_of(acl, f[0]);
    if (rules == NULL || rule_list_add(rules, verbs, f[2].start, f[2].len) != 0)
        return fail(msg, msg_len, -1, "out of memory");
    return 0;
}

struct auth_acl *auth_acl_load(const char *path, char *err, size_t err_len)
{
    char *text;
    size_t len;
    if (read_file(path, false, &text, &len, err, err_len) != 0)
        return NULL;
    struct auth_acl *acl = calloc(1, sizeof(*acl));
    if (acl == NULL) {
        free(text);
        fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
        return NULL;
    }
    dict_init(&acl->users);
    if (parse_lines(path, text, len, add_acl_line, acl, err, err_len) != 0) {
        auth_acl_free(acl);
        acl = NULL;
    }
    free(text);
    return acl;
}

/* ---- JWT ---- */

enum jwt_alg { JWT_ALG_NONE, JWT_HS256, JWT_RS256, JWT_ES256 };

struct auth_jwt {
    unsigned char *secret; /* owned: the HS256 key; NULL = HS256 refused */
    size_t secret_len;
    EVP_PKEY *key;        /* owned: the public key; NULL = RS256 and ES256 refused */
    enum jwt_alg key_alg; /* the one alg the key verifies: JWT_RS256 or JWT_ES256 */
    char *audience;       /* owned; NULL = not checked */
    char *issuer;         /* owned; NULL = not checked */
    unsigned leeway_s;
};

void auth_jwt_config_defaults(struct auth_jwt_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->leeway_s = AUTH_JWT_DEFAULT_LEEWAY_S;
}

void auth_identity_reset(struct auth_identity *id)
{
    if (id == NULL)
        return;
    if (id->grants != NULL) {
        rule_list_reset(&id->grants->rules);
        free(id->grants);
    }
    memset(id, 0, sizeof(*id));
}

void auth_jwt_free(struct auth_jwt *jwt)
{
    if (jwt == NULL)
        return;
    if (jwt->secret != NULL) {
        OPENSSL_cleanse(jwt->secret, jwt->secret_len);
        free(jwt->secret);
    }
    EVP_PKEY_free(jwt->key);
    free(jwt->audience);
    free(jwt->issuer);
    free(jwt);
}

static int load_secret(struct auth_jwt *jwt, const char *path, char *err, size_t err_len)
{
    char *text;
    size_t len;
    int rc = read_file(path, false, &text, &len, err, err_len);
    if (rc != 0)
        return rc;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len < AUTH_JWT_MIN_SECRET)
        rc = fail(err, err_len, AUTH_ERR_INVALID,
                  "%s: HS256 secret is %zu bytes; at least %d are needed", path, len,
                  AUTH_JWT_MIN_SECRET);
    else if ((jwt->secret = malloc(len)) == NULL)
        rc = fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
    else
        memcpy(jwt->secret, text, len);
    jwt->secret_len = rc == 0 ? len : 0;
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

/* Which alg key verifies: RS256 for RSA of 2048 bits or more, ES256 for EC on P-256. */
static int key_alg(EVP_PKEY *key, const char *path, enum jwt_alg *alg, char *err, size_t err_len)
{
    if (EVP_PKEY_is_a(key, "RSA")) {
        int bits = EVP_PKEY_get_bits(key);
        *alg = JWT_RS256;
        return bits >= 2048 ? 0
                            : fail(err, err_len, AUTH_ERR_INVALID,
                                   "%s: RSA key of %d bits; RS256 needs 2048 or more", path, bits);
    }
    if (EVP_PKEY_is_a(key, "EC")) {
        char group[64] = "";
        size_t group_len = 0;
        *alg = JWT_ES256;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &group_len) == 1 &&
            strcmp(group, SN_X9_62_prime256v1) == 0)
            return 0;
        ERR_clear_error();
        return fail(err, err_len, AUTH_ERR_INVALID, "%s: EC key is not on P-256 (ES256)", path);
    }
    return fail(err, err_len, AUTH_ERR_INVALID,
                "%s: unsupported key type (RSA for RS256 or EC P-256 for ES256)", path);
}

static int load_public_key(struct auth_jwt *jwt, const char *path, char *err, size_t err_len)
{
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        int saved_errno = errno;
        int rc =
            fail(err, err_len, AUTH_ERR_IO, "%s: cannot open: %s", path, strerror(saved_errno));
        ERR_clear_error();
        return rc;
    }
    jwt->key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (jwt->key == NULL) {
        ERR_clear_error();
        return fail(err, err_len, AUTH_ERR_INVALID,
                    "%s: no PEM public key (-----BEGIN PUBLIC KEY-----)", path);
    }
    return key_alg(jwt->key, path, &jwt->key_alg, err, err_len);
}

struct auth_jwt *auth_jwt_new(const struct auth_jwt_config *cfg, char *err, size_t err_len)
{
    if (cfg == NULL || (cfg->hs256_secret_file == NULL && cfg->public_key_file == NULL)) {
        fail(err, err_len, AUTH_ERR_INVALID, "JWT needs an HS256 secret file or a public key file");
        return NULL;
    }
    struct auth_jwt *jwt = calloc(1, sizeof(*jwt));
    if (jwt == NULL) {
        fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
        return NULL;
    }
    jwt->leeway_s = cfg->leeway_s;
    int rc = 0;
    if (cfg->hs256_secret_file != NULL)
        rc = load_secret(jwt, cfg->hs256_secret_file, err, err_len);
    if (rc == 0 && cfg->public_key_file != NULL)
        rc = load_public_key(jwt, cfg->public_key_file, err, err_len);
    if (rc == 0 && ((cfg->audience != NULL && (jwt->audience = strdup(cfg->audience)) == NULL) ||
                    (cfg->issuer != NULL && (jwt->issuer = strdup(cfg->issuer)) == NULL)))
        rc = fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
    if (rc != 0) {
        auth_jwt_free(jwt);
        return NULL;
    }
    return jwt;
}

/* Decodes one base64url part into a JSON object; NULL if it is not one (or repeats a key). */
static json_t *json_part(const char *b64, size_t len)
{
    size_t cap = len / 4 * 3 + 3;
    unsigned char *raw = malloc(cap);
    long n = raw != NULL ? base64_decode(b64, len, true, raw, cap) : -1;
    json_t *value =
        n >= 0 ? json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(raw);
    if (value != NULL && !json_is_object(value)) {
        json_decref(value);
        value = NULL;
    }
    return value;
}

/* Only base64url characters and the two dots (checked cheaply before any parsing or crypto). */
static bool is_base64url(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != '.' && base64_value((unsigned char)s[i], true) < 0)
            return false;
    return true;
}

/* Copies at most 32 bytes of an untrusted string for an error message, '?' for unprintables. */
static const char *printable(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; s[n] != '\0' && n + 1 < cap && n < 32; n++)
        buf[n] = s[n] > ' ' && s[n] < 0x7f ? s[n] : '?';
    buf[n] = '\0';
    return buf;
}

/* The alg of the header, if the configuration accepts it. */
static int header_alg(const struct auth_jwt *jwt, json_t *header, enum jwt_alg *alg, char *err,
                      size_t err_len)
{
    json_t *name = json_object_get(header, "alg");
    if (!json_is_string(name))
        return fail(err, err_len, AUTH_ERR_MALFORMED, "token header has no alg");
    /* RFC 7515 section 4.1.11: extensions we do not understand must make the token invalid. */
    if (json_object_get(header, "crit") != NULL)
        return fail(err, err_len, AUTH_ERR_MALFORMED, "token header has crit extensions");
    const char *s = json_string_value(name);
    *alg = JWT_ALG_NONE;
    if (strcmp(s, "HS256") == 0 && jwt->secret != NULL)
        *alg = JWT_HS256;
    else if (strcmp(s, "RS256") == 0 && jwt->key_alg == JWT_RS256)
        *alg = JWT_RS256;
    else if (strcmp(s, "ES256") == 0 && jwt->key_alg == JWT_ES256)
        *alg = JWT_ES256;
    char shown[40];
    return *alg != JWT_ALG_NONE
               ? 0
               : fail(err, err_len, AUTH_ERR_ALG, "token algorithm '%s' is not accepted",
                      printable(s, shown, sizeof(shown)));
}

/* 1 valid, 0 invalid, -1 OpenSSL failed. */
static int verify_hs256(const struct auth_jwt *jwt, const char *data, size_t len,
                        const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, jwt->secret, jwt->secret_len,
                  (const unsigned char *)data, len, mac, sizeof(mac), &mac_len) == NULL)
        return -1;
    return sig_len == mac_len && mac_len == 32 && CRYPTO_memcmp(mac, sig, mac_len) == 0;
}

/* 1 valid, 0 invalid, -1 OpenSSL failed. sig is DER for ECDSA, PKCS#1 v1.5 for RSA. */
static int verify_with_key(EVP_PKEY *key, const char *data, size_t len, const unsigned char *sig,
                           size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -1;
    int rc = -1;
    if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL) == 1)
        rc = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)data, len) == 1;
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 section 3.4); OpenSSL wants DER. */
static int verify_es256(EVP_PKEY *key, const char *data, size_t len, const unsigned char *sig,
                        size_t sig_len)
{
    if (sig_len != 64)
        return 0;
    ECDSA_SIG *ecdsa = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    if (ecdsa == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(ecdsa, r, s) != 1) {
        ECDSA_SIG_free(ecdsa);
        BN_free(r);
        BN_free(s);
        return -1;
    }
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(ecdsa, &der);
    ECDSA_SIG_free(ecdsa);
    int rc = der_len > 0 ? verify_with_key(key, data, len, der, (size_t)der_len) : -1;
    OPENSSL_free(der);
    return rc;
}

static int verify_signature(const struct auth_jwt *jwt, enum jwt_alg alg, const char *data,
                            size_t len, const char *sig_b64, size_t sig_b64_len, char *err,
                            size_t err_len)
{
    unsigned char sig[SIGNATURE_MAX];
    long sig_len = base64_decode(sig_b64, sig_b64_len, true, sig, sizeof(sig));
    if (sig_len < 0)
        return fail(err, err_len, AUTH_ERR_MALFORMED, "token signature is not base64url");
    int rc;
    if (alg == JWT_HS256)
        rc = verify_hs256(jwt, data, len, sig, (size_t)sig_len);
    else if (alg == JWT_ES256)
        rc = verify_es256(jwt->key, data, len, sig, (size_t)sig_len);
    else
        rc = (size_t)sig_len == (size_t)EVP_PKEY_get_size(jwt->key)
                 ? verify_with_key(jwt->key, data, len, sig, (size_t)sig_len)
                 : 0;
    ERR_clear_error(); /* a refused signature leaves errors the TLS code must not see */
    if (rc < 0)
        return fail(err, err_len, AUTH_ERR_CRYPTO, "cannot check the token signature");
    return rc == 1 ? 0 : fail(err, err_len, AUTH_ERR_SIGNATURE, "bad signature");
}

/*
 * Reads a NumericDate claim, rounding a fraction towards `up` or down. Returns 1 with the value,
 * 0 when absent, -1 when not a number within +-2^53.
 */
static int numeric_date(json_t *claims, const char *name, bool up, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    if (v == NULL)
        return 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < -NUMERIC_DATE_MAX || i > NUMERIC_DATE_MAX)
            return -1;
        *out = (int64_t)i;
        return 1;
    }
    if (!json_is_real(v))
        return -1;
    double d = json_real_value(v);
    if (!(d >= (double)-NUMERIC_DATE_MAX && d <= (double)NUMERIC_DATE_MAX))
        return -1;
    int64_t t = (int64_t)d; /* towards zero */
    if (up && (double)t < d)
        t++;
    else if (!up && (double)t > d)
        t--;
    *out = t;
    return 1;
}

/* "aud" is one string or an array of strings (RFC 7519 section 4.1.3). */
static bool audience_matches(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *item;
    json_array_foreach(aud, i, item)
    {
        if (json_is_string(item) && strcmp(json_string_value(item), want) == 0)
            return true;
    }
    return false;
}

static int check_times(const struct auth_jwt *jwt, json_t *claims, int64_t now, int64_t *exp,
                       char *err, size_t err_len)
{
    int64_t nbf = 0;
    int has_exp = numeric_date(claims, "exp", false, exp);
    if (has_exp <= 0)
        return fail(err, err_len, AUTH_ERR_MALFORMED,
                    has_exp == 0 ? "token has no exp" : "token exp is not a number");
    if (*exp <= now - (int64_t)jwt->leeway_s)
        return fail(err, err_len, AUTH_ERR_EXPIRED, "token expired");
    int has_nbf = numeric_date(claims, "nbf", true, &nbf);
    if (has_nbf < 0)
        return fail(err, err_len, AUTH_ERR_MALFORMED, "token nbf is not a number");
    if (has_nbf > 0 && nbf > now + (int64_t)jwt->leeway_s)
        return fail(err, err_len, AUTH_ERR_NOT_YET_VALID, "token not valid yet (nbf)");
    return 0;
}

/* The "stomp" claim: {"read": [PATTERN...], "write": [PATTERN...]}, both optional. */
static int grants_from_claim(json_t *claim, struct auth_grants **out, char *err, size_t err_len)
{
    if (!json_is_object(claim))
        return fail(err, err_len, AUTH_ERR_MALFORMED, "token claim %s is not an object",
                    AUTH_JWT_GRANTS_CLAIM);
    struct auth_grants *grants = calloc(1, sizeof(*grants));
    if (grants == NULL)
        return fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
    *out = grants; /* owned by the identity from here: reset frees it on any error */
    const char *key;
    json_t *list;
    json_object_foreach(claim, key, list)
    {
        unsigned verb = strcmp(key, "read") == 0    ? AUTH_READ
                        : strcmp(key, "write") == 0 ? AUTH_WRITE
                                                    : 0;
        if (verb == 0 || !json_is_array(list))
            return fail(err, err_len, AUTH_ERR_MALFORMED,
                        "token claim %s must hold only \"read\" and \"write\" arrays",
                        AUTH_JWT_GRANTS_CLAIM);
        size_t i;
        json_t *p;
        json_array_foreach(list, i, p)
        {
            if (!json_is_string(p) ||
                !auth_pattern_valid(json_string_value(p), json_string_length(p)))
                return fail(err, err_len, AUTH_ERR_MALFORMED,
                            "token claim %s has an invalid destination pattern",
                            AUTH_JWT_GRANTS_CLAIM);
            if (rule_list_add(&grants->rules, verb, json_string_value(p), json_string_length(p)) !=
                0)
                return fail(err, err_len, AUTH_ERR_NOMEM, "out of memory");
        }
    }
    return 0;
}

static bool subject_valid(const char *s, size_t len)
{
    if (len == 0 || len >= AUTH_USER_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
            return false;
    return true;
}

static int check_claims(const struct auth_jwt *jwt, json_t *claims, int64_t now,
                        struct auth_identity *out, char *err, size_t err_len)
{
    int64_t exp = 0; /* set whenever check_times() returns 0; gcc -O3 cannot see through fail() */
    int rc = check_times(jwt, claims, now, &exp, err, err_len);
    if (rc != 0)
        return rc;
    if (jwt->audience != NULL && !audience_matches(json_object_get(claims, "aud"), jwt->audience))
        return fail(err, err_len, AUTH_ERR_AUDIENCE, "wrong audience");
    json_t *iss = json_object_get(claims, "iss");
    if (jwt->issuer != NULL &&
        (!json_is_string(iss) || strcmp(json_string_value(iss), jwt->issuer) != 0))
        return fail(err, err_len, AUTH_ERR_ISSUER, "wrong issuer");
    json_t *sub = json_object_get(claims, "sub");
    if (!json_is_string(sub) || !subject_valid(json_string_value(sub), json_string_length(sub)))
        return fail(err, err_len, AUTH_ERR_MALFORMED,
                    "token sub is missing, empty, longer than %d bytes or has control characters",
                    AUTH_USER_MAX - 1);
    json_t *claim = json_object_get(claims, AUTH_JWT_GRANTS_CLAIM);
    if (claim != NULL && (rc = grants_from_claim(claim, &out->grants, err, err_len)) != 0)
        return rc;
    memcpy(out->user, json_string_value(sub), json_string_length(sub) + 1);
    out->expires_at = exp;
    return 0;
}

int auth_jwt_verify(const struct auth_jwt *jwt, const char *token, size_t len, int64_t now,
                    struct auth_identity *out, char *err, size_t err_len)
{
    auth_identity_reset(out);
    if (jwt == NULL || token == NULL || len > AUTH_JWT_MAX_LEN)
        return fail(err, err_len, AUTH_ERR_MALFORMED, "token missing or too long");
    const char *end = token + len;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL)
        return fail(err, err_len, AUTH_ERR_MALFORMED, "token is not header.payload.signature");
    if (!is_base64url(token, len))
        return fail(err, err_len, AUTH_ERR_MALFORMED, "token is not base64url");
    json_t *header = json_part(token, (size_t)(dot1 - token));
    if (header == NULL)
        return fail(err, err_len, AUTH_ERR_MALFORMED,
                    "token header is not a base64url JSON object");
    enum jwt_alg alg;
    int rc = header_alg(jwt, header, &alg, err, err_len);
    json_decref(header);
    if (rc == 0)
        rc = verify_signature(jwt, alg, token, (size_t)(dot2 - token), dot2 + 1,
                              (size_t)(end - dot2 - 1), err, err_len);
    if (rc != 0)
        return rc;
    /* Only a signed payload is parsed. */
    json_t *claims = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (claims == NULL)
        return fail(err, err_len, AUTH_ERR_MALFORMED,
                    "token payload is not a base64url JSON object");
    rc = check_claims(jwt, claims, now, out, err, err_len);
    json_decref(claims);
    if (rc != 0)
        auth_identity_reset(out);
    return rc;
}

/* ---- Failed-login throttle ---- */

/* Each address hashes to a bucket of this many slots; eviction picks among them. */
#define THROTTLE_WAYS 8

struct throttle_entry {
    bool used;         /* false: a free slot */
    uint32_t failures; /* consecutive, each within the window of the last */
    int64_t last_failure_ms;
    char addr[AUTH_THROTTLE_ADDR_MAX]; /* the key, cut to AUTH_THROTTLE_ADDR_MAX - 1 bytes */
};

struct auth_throttle {
    struct throttle_entry *slots; /* owned: buckets * THROTTLE_WAYS */
    size_t buckets;
    uint64_t seed; /* random: which addresses share a bucket is not predictable */
};

struct auth_throttle *auth_throttle_new(size_t max_entries)
{
    if (max_entries == 0 || max_entries > SIZE_MAX / sizeof(struct throttle_entry) - THROTTLE_WAYS)
        return NULL;
    struct auth_throttle *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->buckets = (max_entries + THROTTLE_WAYS - 1) / THROTTLE_WAYS;
    t->slots = calloc(t->buckets * THROTTLE_WAYS, sizeof(*t->slots));
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    if (RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1) {
        ERR_clear_error();
        t->seed = (uint64_t)(uintptr_t)t; /* still works; only less unpredictable */
    }
    return t;
}

void auth_throttle_free(struct auth_throttle *t)
{
    if (t == NULL)
        return;
    free(t->slots);
    free(t);
}

/* The bucket of addr: FNV-1a over the (truncated) key, seeded, with a final mix. */
static struct throttle_entry *throttle_bucket(const struct auth_throttle *t, const char *addr)
{
    uint64_t h = 0xcbf29ce484222325u ^ t->seed;
    for (size_t i = 0; addr[i] != '\0' && i < AUTH_THROTTLE_ADDR_MAX - 1; i++) {
        h ^= (unsigned char)addr[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return &t->slots[(h % t->buckets) * THROTTLE_WAYS];
}

static bool throttle_stale(const struct throttle_entry *e, int64_t now_ms)
{
    return !e->used || now_ms - e->last_failure_ms >= AUTH_THROTTLE_WINDOW_MS;
}

static bool throttle_key_equal(const struct throttle_entry *e, const char *addr)
{
    return strncmp(e->addr, addr, AUTH_THROTTLE_ADDR_MAX - 1) == 0;
}

/* addr's entry; NULL when it has none (or only a stale one, which is freed). */
static struct throttle_entry *throttle_find(struct auth_throttle *t, const char *addr,
                                            int64_t now_ms)
{
    struct throttle_entry *b = throttle_bucket(t, addr);
    for (size_t i = 0; i < THROTTLE_WAYS; i++) {
        if (!b[i].used || !throttle_key_equal(&b[i], addr))
            continue;
        if (!throttle_stale(&b[i], now_ms))
            return &b[i];
        memset(&b[i], 0, sizeof(b[i]));
    }
    return NULL;
}

int64_t auth_throttle_delay_ms(struct auth_throttle *t, const char *addr, int64_t now_ms)
{
    const struct throttle_entry *e =
        t != NULL && addr != NULL ? throttle_find(t, addr, now_ms) : NULL;
    if (e == NULL || e->failures < AUTH_THROTTLE_FREE_FAILURES)
        return 0;
    uint32_t doublings = e->failures - AUTH_THROTTLE_FREE_FAILURES;
    int64_t delay = AUTH_THROTTLE_MAX_DELAY_MS;
    if (doublings < 20 && ((int64_t)AUTH_THROTTLE_BASE_DELAY_MS << doublings) < delay)
        delay = (int64_t)AUTH_THROTTLE_BASE_DELAY_MS << doublings;
    int64_t left = e->last_failure_ms + delay - now_ms;
    return left > 0 ? left : 0;
}

/* The slot a new address takes: a free or stale one, else the one with the oldest failure. */
static struct throttle_entry *throttle_victim(struct throttle_entry *bucket, int64_t now_ms)
{
    struct throttle_entry *oldest = &bucket[0];
    for (size_t i = 0; i < THROTTLE_WAYS; i++) {
        if (throttle_stale(&bucket[i], now_ms))
            return &bucket[i];
        if (bucket[i].last_failure_ms < oldest->last_failure_ms)
            oldest = &bucket[i];
    }
    return oldest;
}

void auth_throttle_failure(struct auth_throttle *t, const char *addr, int64_t now_ms)
{
    if (t == NULL || addr == NULL)
        return;
    struct throttle_entry *e = throttle_find(t, addr, now_ms);
    if (e == NULL) {
        e = throttle_victim(throttle_bucket(t, addr), now_ms);
        memset(e, 0, sizeof(*e));
        e->used = true;
        snprintf(e->addr, sizeof(e->addr), "%s", addr);
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    e->last_failure_ms = now_ms;
}

void auth_throttle_success(struct auth_throttle *t, const char *addr)
{
    if (t == NULL || addr == NULL)
        return;
    struct throttle_entry *b = throttle_bucket(t, addr);
    for (size_t i = 0; i < THROTTLE_WAYS; i++)
        if (b[i].used && throttle_key_equal(&b[i], addr))
            memset(&b[i], 0, sizeof(b[i]));
}

size_t auth_throttle_count(const struct auth_throttle *t, int64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; t != NULL && i < t->buckets * THROTTLE_WAYS; i++)
        n += !throttle_stale(&t->slots[i], now_ms);
    return n;
}
