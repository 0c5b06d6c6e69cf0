/*
 * auth: users file (PBKDF2), JWT (HS256/RS256/ES256), ACL and destination pattern coverage,
 * failed-login throttle. Tokens are built here with OpenSSL from keys generated once per run.
 */
#include <check.h>
#include <dirent.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/auth/auth.h"
#include "guard.h"

/* ---- Helpers ---- */

static char err[512];

/* A fresh empty file in /tmp; its path is written to path (64 bytes). */
static void temp_file(char *path)
{
    strcpy(path, "/tmp/stompws-auth-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

/* The whole file as a string the caller frees. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static size_t count_of(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- Users file ---- */

/* Lines computed independently (Python's hashlib.pbkdf2_hmac), so the format is pinned. */
#define KAT_ALICE                                                                                  \
    "alice:$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4"
#define KAT_ALICE_PASSWORD "correct horse battery staple"
#define KAT_BOB                                                                                    \
    "bob:$pbkdf2-sha256$1000$/////////////////////w$KAPvtehzr6dJAt7tLQsTylMhni5Qis4mwrt4fj2ydHg"
#define KAT_BOB_PASSWORD "p\xc3\xa4ssw\xc3\xb6rd"

static struct auth_users *load_users(const char *text)
{
    char path[64];
    temp_file(path);
    write_file(path, text);
    struct auth_users *users = auth_users_load(path, err, sizeof(err));
    unlink(path);
    return users;
}

static bool verify(const struct auth_users *users, const char *login, const char *password)
{
    return auth_users_verify(users, login, strlen(login), password, strlen(password));
}

START_TEST(test_users_known_answers)
{
    struct auth_users *users =
        load_users("# users\r\n\r\n" KAT_ALICE "\r\n  \t\n   " KAT_BOB "   \n# end");
    ck_assert_msg(users != NULL, "%s", err);
    ck_assert(verify(users, "alice", KAT_ALICE_PASSWORD));
    ck_assert(verify(users, "bob", KAT_BOB_PASSWORD));
    ck_assert(!verify(users, "alice", "correct horse battery stapl"));
    ck_assert(!verify(users, "alice", KAT_ALICE_PASSWORD " "));
    ck_assert(!verify(users, "alice", ""));
    ck_assert(!verify(users, "bob", KAT_ALICE_PASSWORD));
    ck_assert(!verify(users, "carol", KAT_ALICE_PASSWORD)); /* unknown user */
    ck_assert(!verify(users, "alic", KAT_ALICE_PASSWORD));
    ck_assert(!verify(users, "", KAT_ALICE_PASSWORD));
    /* lengths, not NULs, delimit the login and passcode */
    ck_assert(!auth_users_verify(users, "alice", 4, KAT_ALICE_PASSWORD, 28));
    ck_assert(auth_users_verify(users, "alicex", 5, KAT_ALICE_PASSWORD "x", 28));
    ck_assert(!auth_users_verify(users, "alice", 5, KAT_ALICE_PASSWORD, 27));
    ck_assert(!auth_users_verify(NULL, "alice", 5, KAT_ALICE_PASSWORD, 28));
    auth_users_free(users);

    /* the whole hash is compared: a stored hash wrong in its last byte only refuses */
    users = load_users("alice:$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$"
                       "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ8");
    ck_assert_msg(users != NULL, "%s", err);
    ck_assert(!verify(users, "alice", KAT_ALICE_PASSWORD));
    auth_users_free(users);
}
END_TEST

START_TEST(test_passwd_entry_round_trip)
{
    char a[AUTH_PASSWD_ENTRY_MAX], b[AUTH_PASSWD_ENTRY_MAX];
    int n = auth_passwd_entry(a, sizeof(a), "alice", "s3cret", 1000);
    /* user ':' "$pbkdf2-sha256$" "1000" '$' 22 salt chars '$' 43 hash chars */
    ck_assert_int_eq(n, 6 + 15 + 4 + 1 + 22 + 1 + 43);
    ck_assert_uint_eq(strlen(a), (size_t)n);
    ck_assert_int_eq(strncmp(a, "alice:$pbkdf2-sha256$1000$", 26), 0);
    ck_assert_int_eq(auth_passwd_entry(b, sizeof(b), "alice", "s3cret", 1000), n);
    ck_assert_str_ne(a, b); /* fresh salt each time */
    char text[2 * AUTH_PASSWD_ENTRY_MAX + 8];
    snprintf(text, sizeof(text), "%s\n", a);
    struct auth_users *users = load_users(text);
    ck_assert_msg(users != NULL, "%s", err);
    ck_assert(verify(users, "alice", "s3cret"));
    ck_assert(!verify(users, "alice", "s3cre"));
    ck_assert(!verify(users, "alice", "S3cret"));
    auth_users_free(users);

    /* 0 iterations: the default, and it still verifies */
    n = auth_passwd_entry(a, sizeof(a), "bob", "hunter2", 0);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(strncmp(a, "bob:$pbkdf2-sha256$210000$", 26), 0);
    users = load_users(a);
    ck_assert_msg(users != NULL, "%s", err);
    ck_assert(verify(users, "bob", "hunter2"));
    ck_assert(!verify(users, "bob", "hunter3"));
    ck_assert(!verify(users, "mallory", "hunter2"));
    auth_users_free(users);
}
END_TEST

START_TEST(test_passwd_entry_errors)
{
    static const struct {
        const char *user;
        bool valid;
    } names[] = {
        {"alice", true},    {"a*", true},        {"*a", true},    {"a#", true},
        {"\xc3\xbc", true}, {"a.b-c_d@e", true}, {"", false},     {"a b", false},
        {"a:b", false},     {"a\tb", false},     {"#a", false},   {"*", false},
        {"a\x01", false},   {"a\x7f", false},    {"a\nb", false}, {":", false},
    };
    char out[AUTH_PASSWD_ENTRY_MAX];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int n = auth_passwd_entry(out, sizeof(out), names[i].user, "pw", 1000);
        ck_assert_msg(names[i].valid ? n > 0 : n == AUTH_ERR_INVALID, "user '%s': %d",
                      names[i].user, n);
        ck_assert_int_eq(auth_user_name_valid(names[i].user, strlen(names[i].user)),
                         names[i].valid);
    }
    char longest[AUTH_USER_MAX + 1];
    memset(longest, 'u', sizeof(longest));
    longest[AUTH_USER_MAX - 1] = '\0'; /* 127 bytes: fits */
    ck_assert_int_gt(auth_passwd_entry(out, sizeof(out), longest, "pw", 1000), 0);
    longest[AUTH_USER_MAX - 1] = 'u';
    longest[AUTH_USER_MAX] = '\0'; /* 128 bytes: too long */
    ck_assert_int_eq(auth_passwd_entry(out, sizeof(out), longest, "pw", 1000), AUTH_ERR_INVALID);

    ck_assert_int_eq(auth_passwd_entry(out, sizeof(out), "alice", "", 1000), AUTH_ERR_INVALID);
    ck_assert_int_eq(auth_passwd_entry(out, sizeof(out), "alice", "pw", 999), AUTH_ERR_INVALID);
    ck_assert_int_eq(auth_passwd_entry(out, sizeof(out), "alice", "pw", 10000001),
                     AUTH_ERR_INVALID);
    ck_assert_int_eq(auth_passwd_entry(out, 40, "alice", "pw", 1000), AUTH_ERR_SPACE);
}
END_TEST

START_TEST(test_users_malformed_lines)
{
    static const struct {
        const char *text;
        const char *where; /* ":LINE: " and part of the reason */
    } cases[] = {
        {"alice\n", ":1: expected USER:$pbkdf2-sha256$"},
        {"alice:hunter2\n", ":1: unsupported hash"},
        {"# c\nalice:$pbkdf2-sha1$1000$AAECAwQFBgcICQoLDA0ODw$"
         "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4\n",
         ":2: unsupported hash"},
        {":$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4",
         ":1: invalid user name"},
        {"a "
         "b:$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4",
         ":1: invalid user name"},
        {"\n\nalice:$pbkdf2-sha256$999$AAECAwQFBgcICQoLDA0ODw$"
         "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4",
         ":3: iterations"},
        {"alice:$pbkdf2-sha256$1k$AAECAwQFBgcICQoLDA0ODw$"
         "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4",
         ":1: iterations"},
        {"alice:$pbkdf2-sha256$$AAECAwQFBgcICQoLDA0ODw$ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4",
         ":1: iterations"},
        {"alice:$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw==$"
         "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4",
         ":1: salt"}, /* padding is not part of the format */
        {"alice:$pbkdf2-sha256$1000$AAEC$ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4", ":1: salt"},
        {"alice:$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$"
         "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8c",
         ":1: hash"},
        {"alice:$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$"
         "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ4$x",
         ":1: hash"},
        {"alice:$pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$"
         "ppsXnjrdPB4KryJ6DrOqKqhkWrhv7PbKAMF1Eml8cZ5",
         ":1: hash"}, /* non-zero unused bits: not the canonical encoding */
        {KAT_ALICE "\n" KAT_BOB "\n# again\n" KAT_ALICE "\n", ":4: duplicate user 'alice'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        struct auth_users *users = load_users(cases[i].text);
        ck_assert_msg(users == NULL, "case %zu loaded", i);
        ck_assert_msg(strstr(err, cases[i].where) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                      cases[i].where);
    }
    ck_assert_ptr_null(auth_users_load("/nonexistent/users", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/users: cannot open"));
}
END_TEST

/* A fresh directory for a users file; no leftovers from the atomic write may stay in it. */
static void assert_only_file(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        ck_assert_str_eq(e->d_name, name);
        n++;
    }
    closedir(d);
    ck_assert_uint_eq(n, 1);
}

static unsigned file_mode(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_mode & 07777;
}

START_TEST(test_passwd_update_file)
{
    char dir[] = "/tmp/stompws-auth-dir-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/users", dir);
    const char *original = "# stompws users\n" KAT_BOB "\n\n# end\n";
    write_file(path, original);
    ck_assert_int_eq(chmod(path, 0644), 0);

    /* add */
    ck_assert_int_eq(auth_passwd_update_file(path, "alice", "first", err, sizeof(err)), 0);
    ck_assert_uint_eq(file_mode(path), 0600);
    char *text = slurp(path);
    ck_assert_int_eq(strncmp(text, original, strlen(original)), 0); /* kept, in place */
    ck_assert_int_eq(strncmp(text + strlen(original), "alice:$pbkdf2-sha256$210000$", 28), 0);
    free(text);
    struct auth_users *users = auth_users_load(path, err, sizeof(err));
    ck_assert_msg(users != NULL, "%s", err);
    ck_assert(verify(users, "alice", "first"));
    ck_assert(verify(users, "bob", KAT_BOB_PASSWORD));
    auth_users_free(users);

    /* replace */
    ck_assert_int_eq(chmod(path, 0640), 0);
    ck_assert_int_eq(auth_passwd_update_file(path, "alice", "second", err, sizeof(err)), 0);
    ck_assert_uint_eq(file_mode(path), 0600);
    text = slurp(path);
    ck_assert_uint_eq(count_of(text, "alice:"), 1);
    ck_assert_int_eq(strncmp(text, original, strlen(original)), 0);
    free(text);
    users = auth_users_load(path, err, sizeof(err));
    ck_assert_msg(users != NULL, "%s", err);
    ck_assert(!verify(users, "alice", "first"));
    ck_assert(verify(users, "alice", "second"));
    ck_assert(verify(users, "bob", KAT_BOB_PASSWORD));
    auth_users_free(users);

    /* a name that is a prefix of another is a different user */
    ck_assert_int_eq(auth_passwd_update_file(path, "ali", "other", err, sizeof(err)), 0);
    users = auth_users_load(path, err, sizeof(err));
    ck_assert_msg(users != NULL, "%s", err);
    ck_assert(verify(users, "alice", "second"));
    ck_assert(verify(users, "ali", "other"));
    auth_users_free(users);

    /* replacing bob keeps the comments around him and alice after him */
    ck_assert_int_eq(auth_passwd_update_file(path, "bob", "third", err, sizeof(err)), 0);
    text = slurp(path);
    ck_assert_int_eq(strncmp(text, "# stompws users\nbob:$pbkdf2-sha256$210000$", 42), 0);
    ck_assert_ptr_nonnull(strstr(text, "\n\n# end\nalice:$pbkdf2-sha256$210000$"));
    ck_assert_ptr_null(strstr(text, KAT_BOB));
    free(text);
    assert_only_file(dir, "users");

    /* refusals leave the file alone */
    text = slurp(path);
    ck_assert_int_eq(auth_passwd_update_file(path, "a b", "x", err, sizeof(err)), AUTH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "invalid user name"));
    ck_assert_int_eq(auth_passwd_update_file(path, "carol", "", err, sizeof(err)),
                     AUTH_ERR_INVALID);
    char *after = slurp(path);
    ck_assert_str_eq(text, after);
    free(text);
    free(after);
    write_file(path, "# ok\nbob:plain\n");
    ck_assert_int_eq(auth_passwd_update_file(path, "alice", "x", err, sizeof(err)),
                     AUTH_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, ":2: unsupported hash"));
    text = slurp(path);
    ck_assert_str_eq(text, "# ok\nbob:plain\n");
    free(text);
    assert_only_file(dir, "users");
    unlink(path);

    /* a missing file is created, mode 0600, with one line */
    ck_assert_int_eq(auth_passwd_update_file(path, "dave", "fourth", err, sizeof(err)), 0);
    ck_assert_uint_eq(file_mode(path), 0600);
    text = slurp(path);
    ck_assert_uint_eq(count_of(text, "\n"), 1);
    free(text);
    users = auth_users_load(path, err, sizeof(err));
    ck_assert_msg(users != NULL, "%s", err);
    ck_assert(verify(users, "dave", "fourth"));
    auth_users_free(users);
    assert_only_file(dir, "users");
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ---- JWT ---- */

#define NOW      INT64_C(1700000000)
#define AUDIENCE "stompws"
#define ISSUER   "https://auth.example"

/* 40 bytes; the file holds it with a trailing newline, as `openssl rand` writes it */
static const char secret[] = "0123456789abcdef0123456789abcdef-stompws";

static EVP_PKEY *rsa_key, *ec_key;
static char secret_path[64], rsa_pub_path[64], ec_pub_path[64];
static char rsa_pub_pem[4096]; /* the PEM bytes, for the alg-confusion attack */

static EVP_PKEY *generate_key(const char *type, const char *group, unsigned bits)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *key = NULL;
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_PKEY_keygen_init(ctx), 1);
    if (group != NULL)
        ck_assert_int_eq(EVP_PKEY_CTX_set_group_name(ctx, group), 1);
    else
        ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits), 1);
    ck_assert_int_eq(EVP_PKEY_keygen(ctx, &key), 1);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static void write_public_pem(EVP_PKEY *key, char *path)
{
    temp_file(path);
    BIO *bio = BIO_new_file(path, "w");
    ck_assert_ptr_nonnull(bio);
    ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, key), 1);
    BIO_free(bio);
}

static void jwt_setup(void)
{
    rsa_key = generate_key("RSA", NULL, 2048);
    ec_key = generate_key("EC", "P-256", 0);
    write_public_pem(rsa_key, rsa_pub_path);
    write_public_pem(ec_key, ec_pub_path);
    char *pem = slurp(rsa_pub_path);
    snprintf(rsa_pub_pem, sizeof(rsa_pub_pem), "%s", pem);
    free(pem);
    temp_file(secret_path);
    char line[64];
    snprintf(line, sizeof(line), "%s\n", secret);
    write_file(secret_path, line);
}

static void jwt_teardown(void)
{
    unlink(secret_path);
    unlink(rsa_pub_path);
    unlink(ec_pub_path);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
}

static void b64url(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        for (bits += 8; bits >= 6; bits -= 6)
            *out++ = alphabet[(acc >> (bits - 6)) & 63];
    }
    if (bits > 0)
        *out++ = alphabet[(acc << (6 - bits)) & 63];
    *out = '\0';
}

enum sign { SIGN_HS256, SIGN_RS256, SIGN_ES256, SIGN_ES256_DER, SIGN_NONE };

static size_t sign_with_key(EVP_PKEY *key, const char *data, unsigned char *sig, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = cap;
    ck_assert_int_eq(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    ck_assert_int_eq(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)data, strlen(data)), 1);
    EVP_MD_CTX_free(ctx);
    return len;
}

/* DER ECDSA-Sig-Value -> JWS r || s (32 bytes each). */
static size_t der_to_raw(unsigned char *sig, size_t len)
{
    const unsigned char *p = sig;
    ECDSA_SIG *ecdsa = d2i_ECDSA_SIG(NULL, &p, (long)len);
    ck_assert_ptr_nonnull(ecdsa);
    ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), sig, 32), 32);
    ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), sig + 32, 32), 32);
    ECDSA_SIG_free(ecdsa);
    return 64;
}

/* What happens to a signature after signing. */
enum tamper {
    INTACT,
    FLIP_LAST, /* its last byte changes (the first would not catch a short compare) */
    DROP_LAST, /* it loses its last byte */
};

/* header.payload.signature; HS256 keys with hmac_key (NULL: the configured secret). */
static char *make_token(const char *header, const char *payload, enum sign how,
                        const char *hmac_key, enum tamper tamper)
{
    static char data[8192];
    char h64[2048], p64[4096];
    b64url((const unsigned char *)header, strlen(header), h64);
    b64url((const unsigned char *)payload, strlen(payload), p64);
    snprintf(data, sizeof(data), "%s.%s", h64, p64);
    unsigned char sig[1024];
    size_t sig_len = 0;
    if (how == SIGN_HS256) {
        const char *key = hmac_key != NULL ? hmac_key : secret;
        ck_assert_ptr_nonnull(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, strlen(key),
                                        (const unsigned char *)data, strlen(data), sig, sizeof(sig),
                                        &sig_len));
    } else if (how == SIGN_RS256) {
        sig_len = sign_with_key(rsa_key, data, sig, sizeof(sig));
    } else if (how == SIGN_ES256 || how == SIGN_ES256_DER) {
        sig_len = sign_with_key(ec_key, data, sig, sizeof(sig));
        if (how == SIGN_ES256)
            sig_len = der_to_raw(sig, sig_len);
    }
    if (tamper == FLIP_LAST && sig_len > 0)
        sig[sig_len - 1] ^= 0x01;
    if (tamper == DROP_LAST && sig_len > 0)
        sig_len--;
    char s64[2048];
    b64url(sig, sig_len, s64);
    size_t len = strlen(data) + strlen(s64) + 2;
    char *token = malloc(len);
    snprintf(token, len, "%s.%s", data, s64);
    return token;
}

static struct auth_jwt *jwt_config(const char *secret_file, const char *key_file)
{
    struct auth_jwt_config cfg;
    auth_jwt_config_defaults(&cfg);
    ck_assert_uint_eq(cfg.leeway_s, 30);
    cfg.hs256_secret_file = secret_file;
    cfg.public_key_file = key_file;
    cfg.audience = AUDIENCE;
    cfg.issuer = ISSUER;
    struct auth_jwt *jwt = auth_jwt_new(&cfg, err, sizeof(err));
    ck_assert_msg(jwt != NULL, "%s", err);
    return jwt;
}

/* Verifies token with its bytes flush against an unreadable page (no NUL after it). */
static int verify_token(const struct auth_jwt *jwt, const char *token, struct auth_identity *id)
{
    struct guard g;
    const char *copy = (const char *)guard_copy(&g, token, strlen(token));
    err[0] = '\0';
    int rc = auth_jwt_verify(jwt, copy, strlen(token), NOW, id, err, sizeof(err));
    guard_release(&g);
    return rc;
}

#define GOOD_CLAIMS                                                                                \
    "{\"sub\":\"alice\",\"exp\":1700000060,\"aud\":\"" AUDIENCE "\",\"iss\":\"" ISSUER "\"}"

START_TEST(test_jwt_valid_each_alg)
{
    static const struct {
        enum sign how;
        const char *header;
        bool use_rsa; /* which public key file the broker has */
    } cases[] = {
        {SIGN_HS256, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", true},
        {SIGN_RS256, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}", true},
        {SIGN_ES256, "{\"alg\":\"ES256\"}", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct auth_jwt *jwt =
            jwt_config(secret_path, cases[i].use_rsa ? rsa_pub_path : ec_pub_path);
        char *token = make_token(cases[i].header, GOOD_CLAIMS, cases[i].how, NULL, INTACT);
        struct auth_identity id = {0};
        ck_assert_msg(verify_token(jwt, token, &id) == 0, "case %zu: %s", i, err);
        ck_assert_str_eq(id.user, "alice");
        ck_assert_int_eq(id.expires_at, 1700000060);
        ck_assert_ptr_null(id.grants);
        free(token);

        /* the same token with one signature bit changed */
        token = make_token(cases[i].header, GOOD_CLAIMS, cases[i].how, NULL, FLIP_LAST);
        ck_assert_int_eq(verify_token(jwt, token, &id), AUTH_ERR_SIGNATURE);
        ck_assert_str_eq(err, "bad signature");
        ck_assert_str_eq(id.user, "");
        free(token);

        /* the signature without its last byte */
        token = make_token(cases[i].header, GOOD_CLAIMS, cases[i].how, NULL, DROP_LAST);
        ck_assert_int_eq(verify_token(jwt, token, &id), AUTH_ERR_SIGNATURE);
        free(token);

        /* a valid signature moved onto other claims */
        char *good = make_token(cases[i].header, GOOD_CLAIMS, cases[i].how, NULL, INTACT);
        char *other = make_token(cases[i].header,
                                 "{\"sub\":\"root\",\"exp\":1700000060,\"aud\":\"" AUDIENCE
                                 "\",\"iss\":\"" ISSUER "\"}",
                                 cases[i].how, NULL, INTACT);
        char spliced[8192];
        const char *other_payload = strchr(other, '.');
        const char *good_sig = strrchr(good, '.');
        snprintf(spliced, sizeof(spliced), "%.*s%.*s%s", (int)(strchr(good, '.') - good), good,
                 (int)(strrchr(other, '.') - other_payload), other_payload, good_sig);
        ck_assert_int_eq(verify_token(jwt, spliced, &id), AUTH_ERR_SIGNATURE);
        free(good);
        free(other);
        auth_jwt_free(jwt);
    }
}
END_TEST

START_TEST(test_jwt_claims)
{
    static const struct {
        const char *payload;
        int rc;
        const char *message;
    } cases[] = {
        {GOOD_CLAIMS, 0, ""},
        /* exp: now - leeway is already too late, one second later is fine */
        {"{\"sub\":\"a\",\"exp\":1699999970,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_EXPIRED, "token expired"},
        {"{\"sub\":\"a\",\"exp\":1699999971,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}", 0, ""},
        {"{\"sub\":\"a\",\"exp\":1699999970.5,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_EXPIRED, "token expired"},
        {"{\"sub\":\"a\",\"exp\":1600000000,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_EXPIRED, "token expired"},
        {"{\"sub\":\"a\",\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}", AUTH_ERR_MALFORMED,
         "token has no exp"},
        {"{\"sub\":\"a\",\"exp\":\"1700000060\",\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_MALFORMED, "exp is not a number"},
        {"{\"sub\":\"a\",\"exp\":1e300,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_MALFORMED, "exp is not a number"},
        /* nbf */
        {"{\"sub\":\"a\",\"exp\":1700000060,\"nbf\":1700000031,\"aud\":\"stompws\",\"iss\":"
         "\"" ISSUER "\"}",
         AUTH_ERR_NOT_YET_VALID, "not valid yet"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"nbf\":1700000030,\"aud\":\"stompws\",\"iss\":"
         "\"" ISSUER "\"}",
         0, ""},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"nbf\":null,\"aud\":\"stompws\",\"iss\":\"" ISSUER
         "\"}",
         AUTH_ERR_MALFORMED, "nbf is not a number"},
        /* aud: a string or an array of strings */
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"other\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_AUDIENCE, "wrong audience"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"stompwsx\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_AUDIENCE, "wrong audience"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":[\"x\",\"y\"],\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_AUDIENCE, "wrong audience"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":[\"x\",\"stompws\"],\"iss\":\"" ISSUER "\"}", 0,
         ""},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":[],\"iss\":\"" ISSUER "\"}", AUTH_ERR_AUDIENCE,
         "wrong audience"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":{\"stompws\":1},\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_AUDIENCE, "wrong audience"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"iss\":\"" ISSUER "\"}", AUTH_ERR_AUDIENCE,
         "wrong audience"},
        /* iss */
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"https://evil\"}",
         AUTH_ERR_ISSUER, "wrong issuer"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"stompws\"}", AUTH_ERR_ISSUER, "wrong issuer"},
        /* sub */
        {"{\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}", AUTH_ERR_MALFORMED,
         "token sub"},
        {"{\"sub\":\"\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_MALFORMED, "token sub"},
        {"{\"sub\":\"a\\nb\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_MALFORMED, "token sub"},
        {"{\"sub\":7,\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_MALFORMED, "token sub"},
        /* the payload itself */
        {"[1,2]", AUTH_ERR_MALFORMED, "payload"},
        {"{\"sub\":\"a\",\"exp\":1,\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\"}",
         AUTH_ERR_MALFORMED, "payload"}, /* duplicate claims are ambiguous: refused */
        /* the grants claim */
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER
         "\",\"stomp\":[]}",
         AUTH_ERR_MALFORMED, "claim stomp"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER
         "\",\"stomp\":{\"admin\":[]}}",
         AUTH_ERR_MALFORMED, "claim stomp"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER
         "\",\"stomp\":{\"read\":\"/topic/a\"}}",
         AUTH_ERR_MALFORMED, "claim stomp"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER
         "\",\"stomp\":{\"read\":[\"/topic/a\",\"stocks.*\"]}}",
         AUTH_ERR_MALFORMED, "invalid destination pattern"},
        {"{\"sub\":\"a\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER
         "\",\"stomp\":{\"write\":[\"/topic/a\",3]}}",
         AUTH_ERR_MALFORMED, "invalid destination pattern"},
    };
    struct auth_jwt *jwt = jwt_config(secret_path, NULL);
    struct auth_identity id = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *token = make_token("{\"alg\":\"HS256\"}", cases[i].payload, SIGN_HS256, NULL, INTACT);
        int rc = verify_token(jwt, token, &id);
        ck_assert_msg(rc == cases[i].rc, "case %zu: %d (%s), expected %d", i, rc, err, cases[i].rc);
        ck_assert_msg(strstr(err, cases[i].message) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                      cases[i].message);
        if (rc != 0) {
            ck_assert_str_eq(id.user, ""); /* a refusal leaves nothing behind */
            ck_assert_ptr_null(id.grants);
        } else {
            ck_assert_str_ne(id.user, "");
        }
        free(token);
    }
    /* a 127-byte sub fits the identity, 128 bytes do not */
    char payload[512], sub[AUTH_USER_MAX + 1];
    memset(sub, 's', sizeof(sub));
    for (size_t len = AUTH_USER_MAX - 1; len <= AUTH_USER_MAX; len++) {
        snprintf(payload, sizeof(payload),
                 "{\"sub\":\"%.*s\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"%s\"}",
                 (int)len, sub, ISSUER);
        char *token = make_token("{\"alg\":\"HS256\"}", payload, SIGN_HS256, NULL, INTACT);
        ck_assert_int_eq(verify_token(jwt, token, &id),
                         len < AUTH_USER_MAX ? 0 : AUTH_ERR_MALFORMED);
        ck_assert_uint_eq(strlen(id.user), len < AUTH_USER_MAX ? len : 0);
        free(token);
    }
    auth_identity_reset(&id);
    auth_jwt_free(jwt);
}
END_TEST

START_TEST(test_jwt_algorithms_refused)
{
    static const struct {
        const char *header;
        enum sign how;
        bool rsa; /* the broker has the RSA key (else the EC key); both have the secret */
        int rc;
    } cases[] = {
        {"{\"alg\":\"none\"}", SIGN_NONE, true, AUTH_ERR_ALG},
        {"{\"alg\":\"none\",\"typ\":\"JWT\"}", SIGN_HS256, true, AUTH_ERR_ALG},
        {"{\"alg\":\"None\"}", SIGN_NONE, true, AUTH_ERR_ALG},
        {"{\"alg\":\"\"}", SIGN_NONE, true, AUTH_ERR_ALG},
        {"{\"alg\":\"HS512\"}", SIGN_HS256, true, AUTH_ERR_ALG},
        {"{\"alg\":\"hs256\"}", SIGN_HS256, true, AUTH_ERR_ALG},
        {"{\"alg\":\"PS256\"}", SIGN_RS256, true, AUTH_ERR_ALG},
        {"{\"alg\":\"ES256\"}", SIGN_ES256, true, AUTH_ERR_ALG},  /* the key is RSA */
        {"{\"alg\":\"RS256\"}", SIGN_RS256, false, AUTH_ERR_ALG}, /* the key is EC */
        {"{\"typ\":\"JWT\"}", SIGN_HS256, true, AUTH_ERR_MALFORMED},
        {"{\"alg\":256}", SIGN_HS256, true, AUTH_ERR_MALFORMED},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", SIGN_HS256, true, AUTH_ERR_MALFORMED},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", SIGN_HS256, true, AUTH_ERR_MALFORMED},
    };
    struct auth_jwt *with_rsa = jwt_config(secret_path, rsa_pub_path);
    struct auth_jwt *with_ec = jwt_config(secret_path, ec_pub_path);
    struct auth_identity id = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *token = make_token(cases[i].header, GOOD_CLAIMS, cases[i].how, NULL, INTACT);
        int rc = verify_token(cases[i].rsa ? with_rsa : with_ec, token, &id);
        ck_assert_msg(rc == cases[i].rc, "case %zu: %d (%s)", i, rc, err);
        free(token);
    }
    char *token = make_token("{\"alg\":\"none\"}", GOOD_CLAIMS, SIGN_NONE, NULL, INTACT);
    ck_assert_int_eq(verify_token(with_rsa, token, &id), AUTH_ERR_ALG);
    ck_assert_str_eq(err, "token algorithm 'none' is not accepted");
    free(token);
    auth_jwt_free(with_rsa);
    auth_jwt_free(with_ec);
}
END_TEST

START_TEST(test_jwt_alg_confusion)
{
    /* HS256 "signed" with the public key's PEM bytes, which an attacker can read */
    char *token = make_token("{\"alg\":\"HS256\"}", GOOD_CLAIMS, SIGN_HS256, rsa_pub_pem, INTACT);
    struct auth_identity id = {0};
    struct auth_jwt *rsa_only = jwt_config(NULL, rsa_pub_path);
    ck_assert_int_eq(verify_token(rsa_only, token, &id), AUTH_ERR_ALG);
    struct auth_jwt *both = jwt_config(secret_path, rsa_pub_path);
    ck_assert_int_eq(verify_token(both, token, &id), AUTH_ERR_SIGNATURE);
    ck_assert_str_eq(id.user, "");
    free(token);
    /* and an RS256 token never verifies against the HS256 secret alone */
    struct auth_jwt *secret_only = jwt_config(secret_path, NULL);
    token = make_token("{\"alg\":\"RS256\"}", GOOD_CLAIMS, SIGN_RS256, NULL, INTACT);
    ck_assert_int_eq(verify_token(secret_only, token, &id), AUTH_ERR_ALG);
    ck_assert_int_eq(verify_token(both, token, &id), 0); /* it is a valid token after all */
    auth_identity_reset(&id);
    free(token);
    auth_jwt_free(rsa_only);
    auth_jwt_free(both);
    auth_jwt_free(secret_only);
}
END_TEST

START_TEST(test_jwt_es256_der_signature_refused)
{
    struct auth_jwt *jwt = jwt_config(NULL, ec_pub_path);
    struct auth_identity id = {0};
    char *der = make_token("{\"alg\":\"ES256\"}", GOOD_CLAIMS, SIGN_ES256_DER, NULL, INTACT);
    ck_assert_int_eq(verify_token(jwt, der, &id), AUTH_ERR_SIGNATURE);
    free(der);
    char *raw = make_token("{\"alg\":\"ES256\"}", GOOD_CLAIMS, SIGN_ES256, NULL, INTACT);
    ck_assert_int_eq(verify_token(jwt, raw, &id), 0);
    ck_assert_str_eq(id.user, "alice");
    free(raw);
    auth_jwt_free(jwt);
}
END_TEST

START_TEST(test_jwt_malformed)
{
    struct auth_jwt *jwt = jwt_config(secret_path, rsa_pub_path);
    char *good = make_token("{\"alg\":\"HS256\"}", GOOD_CLAIMS, SIGN_HS256, NULL, INTACT);
    struct auth_identity id = {0};
    ck_assert_int_eq(verify_token(jwt, good, &id), 0);
    const char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    int h = (int)(dot1 - good), p = (int)(dot2 - dot1 - 1);
    char cases[12][8192];
    size_t n = 0;
    snprintf(cases[n++], 8192, "%s", "");
    snprintf(cases[n++], 8192, "%s", "abc");
    snprintf(cases[n++], 8192, "%s", "..");
    snprintf(cases[n++], 8192, "%.*s.%.*s", h, good, p, dot1 + 1);          /* two parts */
    snprintf(cases[n++], 8192, "%s.", good);                                /* four parts */
    snprintf(cases[n++], 8192, "%.*s=%s", h, good, dot1);                   /* padded header */
    snprintf(cases[n++], 8192, "%.*s+%s", h, good, dot1);                   /* not base64url */
    snprintf(cases[n++], 8192, "bm90IGpzb24%s", dot1);                      /* "not json" */
    snprintf(cases[n++], 8192, "W10%s", dot1);                              /* [] */
    snprintf(cases[n++], 8192, "%.*s.%.*s!%s", h, good, p, dot1 + 1, dot2); /* payload */
    snprintf(cases[n++], 8192, "%s=", good);                                /* padded signature */
    snprintf(cases[n++], 8192, " %s", good);
    for (size_t i = 0; i < n; i++) {
        int rc = verify_token(jwt, cases[i], &id);
        ck_assert_msg(rc == AUTH_ERR_MALFORMED, "case %zu '%s': %d (%s)", i, cases[i], rc, err);
        ck_assert_str_eq(id.user, "");
    }
    /* an empty signature is a bad one */
    char unsigned_token[8192];
    snprintf(unsigned_token, sizeof(unsigned_token), "%.*s.", (int)(dot2 - good), good);
    ck_assert_int_eq(verify_token(jwt, unsigned_token, &id), AUTH_ERR_SIGNATURE);
    /* too long to be read at all */
    char *huge = malloc(AUTH_JWT_MAX_LEN + 2);
    memset(huge, 'a', AUTH_JWT_MAX_LEN + 1);
    huge[AUTH_JWT_MAX_LEN + 1] = '\0';
    ck_assert_int_eq(verify_token(jwt, huge, &id), AUTH_ERR_MALFORMED);
    free(huge);
    free(good);
    auth_jwt_free(jwt);
}
END_TEST

START_TEST(test_jwt_grants_claim)
{
    struct auth_jwt *jwt = jwt_config(secret_path, NULL);
    struct auth_identity id = {0};
    char *token =
        make_token("{\"alg\":\"HS256\"}",
                   "{\"sub\":\"svc\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER "\","
                   "\"stomp\":{\"read\":[\"/topic/stocks.*\",\"/topic/public.#\"],"
                   "\"write\":[\"/queue/orders\"]}}",
                   SIGN_HS256, NULL, INTACT);
    ck_assert_msg(verify_token(jwt, token, &id) == 0, "%s", err);
    free(token);
    ck_assert_ptr_nonnull(id.grants);
    static const struct {
        enum auth_verb verb;
        const char *dest;
        bool allowed;
    } cases[] = {
        {AUTH_READ, "/topic/stocks.ibm", true}, {AUTH_READ, "/topic/stocks.ibm.x", false},
        {AUTH_READ, "/topic/stocks", false},    {AUTH_READ, "/topic/stocks.*", true},
        {AUTH_READ, "/topic/stocks.#", false},  {AUTH_WRITE, "/topic/stocks.ibm", false},
        {AUTH_READ, "/topic/public", true},     {AUTH_READ, "/topic/public.a.b", true},
        {AUTH_WRITE, "/queue/orders", true},    {AUTH_READ, "/queue/orders", false},
        {AUTH_WRITE, "/queue/orders.x", false}, {AUTH_WRITE, "/topic/orders", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(auth_grants_allow(id.grants, cases[i].verb, cases[i].dest,
                                        strlen(cases[i].dest)) == cases[i].allowed,
                      "case %zu: %s", i, cases[i].dest);
    ck_assert(!auth_grants_allow(NULL, AUTH_READ, "/topic/stocks.ibm", 17));

    /* an empty claim grants nothing, which is not the same as no claim (then: the ACL) */
    token = make_token("{\"alg\":\"HS256\"}",
                       "{\"sub\":\"svc\",\"exp\":1700000060,\"aud\":\"stompws\",\"iss\":\"" ISSUER
                       "\",\"stomp\":{}}",
                       SIGN_HS256, NULL, INTACT);
    ck_assert_int_eq(verify_token(jwt, token, &id), 0); /* resets the previous identity */
    ck_assert_ptr_nonnull(id.grants);
    ck_assert(!auth_grants_allow(id.grants, AUTH_READ, "/topic/stocks.ibm", 17));
    auth_identity_reset(&id);
    ck_assert_ptr_null(id.grants);
    ck_assert_str_eq(id.user, "");
    free(token);
    auth_jwt_free(jwt);
}
END_TEST

START_TEST(test_jwt_new_errors)
{
    char path[64], short_secret[64], exact_secret[64];
    temp_file(path);
    temp_file(short_secret);
    temp_file(exact_secret);
    write_file(short_secret, "0123456789abcdef0123456789abcde\n");    /* 31 bytes */
    write_file(exact_secret, "0123456789abcdef0123456789abcdef\r\n"); /* 32 bytes */
    struct auth_jwt_config cfg;
    auth_jwt_config_defaults(&cfg);
    ck_assert_ptr_null(auth_jwt_new(&cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "needs an HS256 secret file or a public key file"));
    cfg.hs256_secret_file = "/nonexistent/secret";
    ck_assert_ptr_null(auth_jwt_new(&cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/secret: cannot open"));
    cfg.hs256_secret_file = short_secret;
    ck_assert_ptr_null(auth_jwt_new(&cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "secret is 31 bytes; at least 32"));

    /* exactly 32 bytes once CR LF is dropped: tokens signed with those 32 bytes verify */
    cfg.hs256_secret_file = exact_secret;
    struct auth_jwt *jwt = auth_jwt_new(&cfg, err, sizeof(err));
    ck_assert_msg(jwt != NULL, "%s", err);
    char *token = make_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1700000060}",
                             SIGN_HS256, "0123456789abcdef0123456789abcdef", INTACT);
    struct auth_identity id = {0};
    ck_assert_int_eq(verify_token(jwt, token, &id), 0);
    free(token);
    auth_jwt_free(jwt);

    cfg.hs256_secret_file = NULL;
    static const char *bad_keys[] = {
        "not a key\n", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"};
    for (size_t i = 0; i < 2; i++) {
        write_file(path, bad_keys[i]);
        cfg.public_key_file = path;
        ck_assert_ptr_null(auth_jwt_new(&cfg, err, sizeof(err)));
        ck_assert_ptr_nonnull(strstr(err, "no PEM public key"));
    }
    /* a private key is not a public key: the broker must never need one */
    BIO *bio = BIO_new_file(path, "w");
    ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, ec_key, NULL, NULL, 0, NULL, NULL), 1);
    BIO_free(bio);
    ck_assert_ptr_null(auth_jwt_new(&cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "no PEM public key"));

    EVP_PKEY *weak = generate_key("RSA", NULL, 1024);
    unlink(path);
    write_public_pem(weak, path);
    cfg.public_key_file = path;
    ck_assert_ptr_null(auth_jwt_new(&cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "RSA key of 1024 bits"));
    unlink(path);
    EVP_PKEY_free(weak);
    EVP_PKEY *p384 = generate_key("EC", "P-384", 0);
    write_public_pem(p384, path);
    ck_assert_ptr_null(auth_jwt_new(&cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "not on P-256"));
    EVP_PKEY_free(p384);
    unlink(path);
    unlink(short_secret);
    unlink(exact_secret);
}
END_TEST

/* ---- ACL ---- */

static const char acl_text[] = "# user   verb         destination pattern\n"
                               "alice    read         /topic/stocks.*\n"
                               "alice    read,write   /queue/alice.#\n"
                               "bob\twrite\t/topic/stocks.ibm\r\n"
                               "*        read         /topic/public.#\n"
                               "\n"
                               "   # carol may read every topic\n"
                               "carol    write,read   /topic/#\n";

static struct auth_acl *load_acl(const char *text)
{
    char path[64];
    temp_file(path);
    write_file(path, text);
    struct auth_acl *acl = auth_acl_load(path, err, sizeof(err));
    unlink(path);
    return acl;
}

START_TEST(test_acl_allows)
{
    static const struct {
        const char *user;
        enum auth_verb verb;
        const char *dest;
        bool allowed;
    } cases[] = {
        {"alice", AUTH_READ, "/topic/stocks.ibm", true},
        {"alice", AUTH_READ, "/topic/stocks.ibm.nyse", false}, /* '*' is one segment */
        {"alice", AUTH_READ, "/topic/stocks", false},
        {"alice", AUTH_WRITE, "/topic/stocks.ibm", false}, /* read only */
        {"alice", AUTH_READ, "/topic/stocks.*", true},     /* SUBSCRIBE to the pattern */
        {"alice", AUTH_READ, "/topic/stocks.#", false},    /* would receive more */
        {"alice", AUTH_READ, "/queue/alice", true},        /* '#' is zero or more */
        {"alice", AUTH_WRITE, "/queue/alice.inbox.x", true},
        {"alice", AUTH_WRITE, "/queue/alicex", false},
        {"alice", AUTH_READ, "/queue/bob.inbox", false},
        {"alice", AUTH_READ, "/topic/public.news", true}, /* from the '*' line */
        {"alice", AUTH_READ, "topic/stocks.ibm", false},  /* no /PREFIX/ */
        {"bob", AUTH_WRITE, "/topic/stocks.ibm", true},
        {"bob", AUTH_READ, "/topic/stocks.ibm", false},
        {"bob", AUTH_WRITE, "/topic/stocks.msft", false},
        {"bob", AUTH_WRITE, "/topic/stocks.*", false},
        {"", AUTH_READ, "/topic/public.news", true}, /* anonymous gets '*' lines */
        {"", AUTH_READ, "/topic/public", true},
        {"", AUTH_WRITE, "/topic/public.news", false},
        {"", AUTH_READ, "/topic/stocks.ibm", false},
        {"dave", AUTH_READ, "/topic/public.#", true},
        {"dave", AUTH_READ, "/queue/alice", false}, /* default deny */
        {"carol", AUTH_READ, "/topic/anything.deep.down", true},
        {"carol", AUTH_WRITE, "/topic/#", true},
        {"carol", AUTH_READ, "/queue/anything", false},   /* prefix must match */
        {"ALICE", AUTH_READ, "/topic/stocks.ibm", false}, /* names are case-sensitive */
        {"*", AUTH_READ, "/topic/stocks.ibm", false},
    };
    struct auth_acl *acl = load_acl(acl_text);
    ck_assert_msg(acl != NULL, "%s", err);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct guard g;
        const char *dest = (const char *)guard_copy(&g, cases[i].dest, strlen(cases[i].dest));
        bool allowed =
            auth_acl_allows(acl, cases[i].user, cases[i].verb, dest, strlen(cases[i].dest));
        guard_release(&g);
        ck_assert_msg(allowed == cases[i].allowed, "case %zu: %s %d %s", i, cases[i].user,
                      cases[i].verb, cases[i].dest);
    }
    /* the length, not a NUL, ends the destination */
    ck_assert(auth_acl_allows(acl, "alice", AUTH_READ, "/topic/stocks.ibm.nyse", 17));
    ck_assert(!auth_acl_allows(NULL, "alice", AUTH_READ, "/topic/stocks.ibm", 17));
    auth_acl_free(acl);

    /* default deny: an ACL that says nothing about a user or destination refuses it */
    acl = load_acl("# nothing yet\n\n");
    ck_assert_msg(acl != NULL, "%s", err);
    ck_assert(!auth_acl_allows(acl, "alice", AUTH_READ, "/topic/a", 8));
    ck_assert(!auth_acl_allows(acl, "", AUTH_WRITE, "/topic/a", 8));
    auth_acl_free(acl);
}
END_TEST

START_TEST(test_acl_malformed_lines)
{
    static const struct {
        const char *text;
        const char *where;
    } cases[] = {
        {"alice read\n", ":1: expected USER VERBS PATTERN"},
        {"# c\n\nalice read /topic/a extra\n", ":3: expected USER VERBS PATTERN"},
        {"alice reed /topic/a\n", ":1: unknown verbs 'reed'"},
        {"alice read, /topic/a\n", ":1: unknown verbs"},
        {"alice read,write,admin /topic/a\n", ":1: unknown verbs"},
        {"alice READ /topic/a\n", ":1: unknown verbs"},
        {"alice read topic/a\n", ":1: invalid pattern 'topic/a'"},
        {"alice read /topic/stocks*\n", ":1: invalid pattern"},
        {"alice read /topic/#a\n", ":1: invalid pattern"},
        {"alice read /topic/\n", ":1: invalid pattern"},
        {"alice read //a\n", ":1: invalid pattern"},
        {"alice read /t*/a\n", ":1: invalid pattern"},
        {"alice read /topic\n", ":1: invalid pattern"},
        {"al:ice read /topic/a\n", ":1: invalid user name"},
        {"alice read /topic/a\nbad\x01user read /topic/a\n", ":2: invalid user name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        struct auth_acl *acl = load_acl(cases[i].text);
        ck_assert_msg(acl == NULL, "case %zu loaded", i);
        ck_assert_msg(strstr(err, cases[i].where) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                      cases[i].where);
    }
    ck_assert_ptr_null(auth_acl_load("/nonexistent/acl", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

START_TEST(test_pattern_valid)
{
    static const struct {
        const char *pattern;
        bool valid;
    } cases[] = {
        {"/topic/a", true},
        {"/topic/*", true},
        {"/topic/#", true},
        {"/topic/a.*.#", true},
        {"/queue/a..b", true},
        {"/exchange/amq/x", true},
        {"topic/a", false},
        {"/topic/", false},
        {"/topic", false},
        {"//a", false},
        {"/topic/a b", false},
        {"/topic/a*", false},
        {"/topic/*a.b", false},
        {"/topic/a.##", false},
        {"/t#/a", false},
        {"/topic/a\n", false},
        {"", false},
        {"/", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(auth_pattern_valid(cases[i].pattern, strlen(cases[i].pattern)) ==
                          cases[i].valid,
                      "%s", cases[i].pattern);
}
END_TEST

static bool covers(const char *allowed, const char *requested)
{
    struct guard ga, gr;
    const char *a = (const char *)guard_copy(&ga, allowed, strlen(allowed));
    const char *r = (const char *)guard_copy(&gr, requested, strlen(requested));
    bool result = auth_pattern_covers(a, strlen(allowed), r, strlen(requested));
    guard_release(&ga);
    guard_release(&gr);
    return result;
}

/* Under /user/ segments are separated by '/': `*` stands for one login, '.' is literal. */
START_TEST(test_user_patterns_split_on_slash)
{
    ck_assert(auth_pattern_valid("/user/*/queue/#", 15));
    ck_assert(!auth_pattern_valid("/user/a*/queue/x", 16));
    ck_assert(covers("/user/*/queue/#", "/user/alice/queue/updates"));
    ck_assert(covers("/user/*/queue/#", "/user/j.doe/queue/a.b"));
    ck_assert(covers("/user/*/queue/#", "/user/alice/queue/a/b"));
    ck_assert(!covers("/user/*/queue/#", "/user/alice/topic/updates"));
    ck_assert(covers("/user/*/queue/alerts", "/user/bob/queue/alerts"));
    ck_assert(!covers("/user/*/queue/alerts", "/user/bob/queue/alerts.x"));
    ck_assert(!covers("/user/*/queue/alerts", "/user/a/b/queue/alerts")); /* one login only */
    ck_assert(covers("/user/#", "/user/anyone/topic/anything"));
    ck_assert(covers("/user/bob/queue/chat", "/user/bob/queue/chat"));
    ck_assert(!covers("/user/bob/queue/chat", "/user/bobby/queue/chat"));
    ck_assert(!covers("/user/j.*/queue/x", "/user/j.doe/queue/x")); /* '.' is literal here */
    ck_assert(!covers("/topic/#", "/user/alice/topic/x"));
    /* Elsewhere '/' stays literal inside a segment, as before. */
    ck_assert(covers("/topic/#", "/topic/a/b"));
    ck_assert(!covers("/topic/a/*", "/topic/a/b"));
}
END_TEST

START_TEST(test_pattern_covers_table)
{
    static const struct {
        const char *allowed, *requested;
        bool covered;
    } cases[] = {
        /* concrete destinations */
        {"/topic/a", "/topic/a", true},
        {"/topic/a", "/topic/b", false},
        {"/topic/a", "/topic/ab", false},
        {"/topic/ab", "/topic/a", false},
        {"/topic/a.b", "/topic/a.b.c", false},
        {"/topic/a.b.c", "/topic/a.b", false},
        {"/topic/*", "/topic/a", true},
        {"/topic/*", "/topic/a.b", false},
        {"/topic/#", "/topic/a.b.c", true},
        {"/topic/#", "/topic/a/b.c", true},  /* '/' after the prefix is segment text */
        {"/topic/a.#", "/topic/a..b", true}, /* empty segments are segments */
        {"/topic/a.*", "/topic/a..b", false},
        {"/queue/alice.#", "/queue/alice", true}, /* '#' matches zero segments */
        {"/queue/alice.#", "/queue/alicex", false},
        {"/topic/#", "/topic/", true}, /* "" is one empty segment */
        /* the prefix is literal and whole */
        {"/topic/#", "/queue/a", false},
        {"/queue/#", "/topic/a", false},
        {"/topic/#", "/topicx/a", false},
        {"/topicx/#", "/topic/a", false},
        {"/topic/#", "/topic", false},
        {"/topic/#", "topic/a", false},
        {"//#", "//a", false},
        /* '*' and '#' are wildcards only as whole segments */
        {"/topic/a*", "/topic/ab", false},
        {"/topic/ab", "/topic/a*", false},
        {"/topic/a*", "/topic/a*", true},
        {"/topic/*", "/topic/a*", true},
        {"/topic/a#", "/topic/a.b", false},
        /* wildcard requests: the allowed pattern must take all they can receive */
        {"/topic/#", "/topic/#", true},
        {"/topic/stocks.#", "/topic/stocks.#", true},
        {"/topic/stocks.#", "/topic/stocks.*", true},
        {"/topic/stocks.*", "/topic/stocks.#", false},
        {"/topic/stocks.*", "/topic/stocks.*", true},
        {"/topic/stocks.ibm", "/topic/stocks.*", false},
        {"/topic/stocks.*", "/topic/*.ibm", false},
        {"/topic/*", "/topic/#", false},
        {"/topic/*.*", "/topic/*.#", false},
        {"/topic/#", "/topic/*.#", true},
        {"/topic/*.#", "/topic/#", true},   /* a name has at least one segment */
        {"/topic/*.#", "/topic/#.*", true}, /* both: one or more */
        {"/topic/#.*", "/topic/*.#", true},
        {"/topic/*.*.#", "/topic/#.*", false}, /* two or more vs one or more */
        {"/topic/#.#", "/topic/a", true},
        {"/topic/*.#.*", "/topic/a.#.a", true},   /* two or more, whatever '#' is */
        {"/topic/#.a.*.#", "/topic/a.#.b", true}, /* 'a' then something, aligned either way */
        {"/topic/#.a.#", "/topic/#.b.#", false},
        {"/topic/a.#.b", "/topic/a.b", true},
        {"/topic/a.#.b", "/topic/a.*.b", true},
        {"/topic/a.*.b", "/topic/a.#.b", false},
        {"/topic/*.*", "/topic/a.#.b", false},
        {"/topic/a.#.b.#", "/topic/a.b.#", true},
        {"/topic/#.b", "/topic/a.#", false},
        {"/topic/a.#", "/topic/#.a", false},
        {"/topic/#.a", "/topic/*.#.a", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(covers(cases[i].allowed, cases[i].requested) == cases[i].covered,
                      "case %zu: %s covers %s should be %d", i, cases[i].allowed,
                      cases[i].requested, cases[i].covered);
    ck_assert(!auth_pattern_covers(NULL, 0, "/topic/a", 8));
    ck_assert(!auth_pattern_covers("/topic/#", 8, NULL, 0));
}
END_TEST

/* Segment lists over {a, b, *, #} for the brute-force comparison. */
#define BF_MAX 4

struct seq {
    char s[BF_MAX * 2 + 2]; /* one character per segment; 'z' stands for any other name */
    size_t len;
};

static bool bf_match(const char *p, size_t pl, const char *n, size_t nl)
{
    if (pl == 0)
        return nl == 0;
    if (p[0] == '#') {
        for (size_t k = 0; k <= nl; k++)
            if (bf_match(p + 1, pl - 1, n + k, nl - k))
                return true;
        return false;
    }
    return nl > 0 && (p[0] == '*' || p[0] == n[0]) && bf_match(p + 1, pl - 1, n + 1, nl - 1);
}

/*
 * Does a match every name r stands for? Names are built with each '*' of r as 'z' (a name a
 * cannot spell) and each '#' as 0 to |a| + 1 'z's: a literal of a never matches 'z', and a run
 * of 'z's longer than |a| is absorbed by some '#' of a, so longer runs change nothing. Names
 * with no segment do not exist (a destination has at least one).
 */
static bool bf_covers(const char *a, size_t al, const char *r, size_t rl, size_t ri, char *name,
                      size_t nl)
{
    if (ri == rl)
        return nl == 0 || bf_match(a, al, name, nl);
    if (r[ri] == '#') {
        for (size_t k = 0; k <= al + 1; k++) {
            memset(name + nl, 'z', k);
            if (!bf_covers(a, al, r, rl, ri + 1, name, nl + k))
                return false;
        }
        return true;
    }
    name[nl] = r[ri] == '*' ? 'z' : r[ri];
    return bf_covers(a, al, r, rl, ri + 1, name, nl + 1);
}

/* "/topic/" and the segments joined with '.' */
static void bf_dest(const char *segs, size_t len, char *out)
{
    char *p = out + sprintf(out, "/topic/");
    for (size_t i = 0; i < len; i++) {
        if (i > 0)
            *p++ = '.';
        *p++ = segs[i];
    }
    *p = '\0';
}

START_TEST(test_pattern_covers_exhaustive)
{
    static const char alphabet[] = {'a', 'b', '*', '#'};
    static struct seq all[400];
    size_t count = 0;
    for (size_t len = 1; len <= BF_MAX; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= 4;
        for (size_t code = 0; code < total; code++) {
            struct seq *q = &all[count++];
            q->len = len;
            for (size_t i = 0, c = code; i < len; i++, c /= 4)
                q->s[i] = alphabet[c % 4];
        }
    }
    ck_assert_uint_eq(count, 4 + 16 + 64 + 256);
    size_t covered = 0;
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < count; j++) {
            char name[64], a[32], r[32];
            bool expected = bf_covers(all[i].s, all[i].len, all[j].s, all[j].len, 0, name, 0);
            bf_dest(all[i].s, all[i].len, a);
            bf_dest(all[j].s, all[j].len, r);
            bool got = auth_pattern_covers(a, strlen(a), r, strlen(r));
            /* covering too much is a security hole; too little only a refusal: both fail */
            ck_assert_msg(got == expected, "%s covers %s: got %d, brute force %d", a, r, got,
                          expected);
            covered += got;
        }
    }
    ck_assert_uint_gt(covered, 1000); /* the comparison exercised both answers */
    ck_assert_uint_lt(covered, count * count / 2);
}
END_TEST

START_TEST(test_pattern_depth_limit)
{
    char dest[2 * (AUTH_MAX_SEGMENTS + 1) + 16];
    char *p = dest + sprintf(dest, "/topic/a");
    for (size_t i = 1; i < AUTH_MAX_SEGMENTS; i++)
        p += sprintf(p, ".a");
    ck_assert(auth_pattern_covers("/topic/#", 8, dest, strlen(dest))); /* 128 segments */
    ck_assert(auth_pattern_covers(dest, strlen(dest), dest, strlen(dest)));
    sprintf(p, ".a");
    ck_assert(!auth_pattern_covers("/topic/#", 8, dest, strlen(dest))); /* 129: refused */
    ck_assert(!auth_pattern_valid(dest, strlen(dest)));
}
END_TEST

/* ---- Throttle ---- */

START_TEST(test_throttle_delays_grow_and_cap)
{
    struct auth_throttle *t = auth_throttle_new(64);
    ck_assert_ptr_nonnull(t);
    const char *addr = "192.0.2.1";
    int64_t now = 1000000;
    for (int i = 1; i < AUTH_THROTTLE_FREE_FAILURES; i++) {
        auth_throttle_failure(t, addr, now);
        ck_assert_int_eq(auth_throttle_delay_ms(t, addr, now), 0);
    }
    static const int64_t expected[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        now += 100000;
        auth_throttle_failure(t, addr, now);
        ck_assert_int_eq(auth_throttle_delay_ms(t, addr, now), expected[i]);
        /* the wait counts from the last failure */
        ck_assert_int_eq(auth_throttle_delay_ms(t, addr, now + 400), expected[i] - 400);
        ck_assert_int_eq(auth_throttle_delay_ms(t, addr, now + expected[i]), 0);
    }
    for (int i = 0; i < 100; i++)
        auth_throttle_failure(t, addr, now);
    ck_assert_int_eq(auth_throttle_delay_ms(t, addr, now), AUTH_THROTTLE_MAX_DELAY_MS);
    ck_assert_int_eq(auth_throttle_delay_ms(t, "192.0.2.2", now), 0); /* per address */
    ck_assert_uint_eq(auth_throttle_count(t, now), 1);
    auth_throttle_free(t);
}
END_TEST

START_TEST(test_throttle_success_and_window_reset)
{
    struct auth_throttle *t = auth_throttle_new(64);
    const char *addr = "2001:db8::1";
    for (int i = 0; i < AUTH_THROTTLE_FREE_FAILURES + 1; i++)
        auth_throttle_failure(t, addr, 0);
    ck_assert_int_eq(auth_throttle_delay_ms(t, addr, 0), 2000);
    auth_throttle_success(t, addr);
    ck_assert_int_eq(auth_throttle_delay_ms(t, addr, 0), 0);
    ck_assert_uint_eq(auth_throttle_count(t, 0), 0);
    auth_throttle_failure(t, addr, 1); /* counting starts over */
    ck_assert_int_eq(auth_throttle_delay_ms(t, addr, 1), 0);

    /* failures keep counting while each comes within the window of the last one */
    addr = "2001:db8::2";
    for (int i = 0; i < AUTH_THROTTLE_FREE_FAILURES; i++)
        auth_throttle_failure(t, addr, 10 + (int64_t)i * (AUTH_THROTTLE_WINDOW_MS - 1));
    int64_t last = 10 + (AUTH_THROTTLE_FREE_FAILURES - 1) * (int64_t)(AUTH_THROTTLE_WINDOW_MS - 1);
    ck_assert_int_eq(auth_throttle_delay_ms(t, addr, last), 1000);
    ck_assert_uint_eq(auth_throttle_count(t, last), 1); /* "2001:db8::1" is forgotten by now */
    /* and are forgotten a window after the last one */
    ck_assert_uint_eq(auth_throttle_count(t, last + AUTH_THROTTLE_WINDOW_MS), 0);
    ck_assert_int_eq(auth_throttle_delay_ms(t, addr, last + AUTH_THROTTLE_WINDOW_MS), 0);
    auth_throttle_failure(t, addr, last + AUTH_THROTTLE_WINDOW_MS);
    ck_assert_int_eq(auth_throttle_delay_ms(t, addr, last + AUTH_THROTTLE_WINDOW_MS), 0);
    auth_throttle_free(t);
}
END_TEST

START_TEST(test_throttle_eviction_bounded)
{
    ck_assert_ptr_null(auth_throttle_new(0));
    /* 8 slots are one bucket: a ninth address evicts the one with the oldest failure */
    struct auth_throttle *t = auth_throttle_new(8);
    char addr[32];
    for (int a = 0; a < 8; a++) {
        snprintf(addr, sizeof(addr), "10.0.0.%d", a);
        for (int i = 0; i < AUTH_THROTTLE_FREE_FAILURES; i++)
            auth_throttle_failure(t, addr, a);
    }
    ck_assert_uint_eq(auth_throttle_count(t, 10), 8);
    for (int i = 0; i < AUTH_THROTTLE_FREE_FAILURES; i++)
        auth_throttle_failure(t, "10.0.0.8", 100);
    ck_assert_uint_eq(auth_throttle_count(t, 100), 8);
    ck_assert_int_eq(auth_throttle_delay_ms(t, "10.0.0.0", 100), 0); /* evicted */
    for (int a = 1; a <= 8; a++) {
        snprintf(addr, sizeof(addr), "10.0.0.%d", a);
        ck_assert_int_gt(auth_throttle_delay_ms(t, addr, 100), 0);
    }
    auth_throttle_free(t);

    /* many addresses never grow the table past its size */
    t = auth_throttle_new(1000);
    for (int a = 0; a < 20000; a++) {
        snprintf(addr, sizeof(addr), "198.51.%d.%d", a / 256, a % 256);
        auth_throttle_failure(t, addr, a);
    }
    size_t n = auth_throttle_count(t, 20000);
    ck_assert_uint_le(n, 1000);
    ck_assert_uint_ge(n, 900); /* and it stays in use */
    for (int i = 0; i < AUTH_THROTTLE_FREE_FAILURES; i++)
        auth_throttle_failure(t, "203.0.113.9", 20000);
    ck_assert_int_eq(auth_throttle_delay_ms(t, "203.0.113.9", 20000), 1000);

    /* keys are cut at AUTH_THROTTLE_ADDR_MAX - 1 bytes: longer ones sharing those are one */
    char long_a[100], long_b[100];
    memset(long_a, 'x', 98);
    long_a[98] = 'a';
    long_a[99] = '\0';
    memcpy(long_b, long_a, sizeof(long_b));
    long_b[98] = 'b';
    for (int i = 0; i < AUTH_THROTTLE_FREE_FAILURES; i++)
        auth_throttle_failure(t, long_a, 20000);
    ck_assert_int_eq(auth_throttle_delay_ms(t, long_b, 20000), 1000);
    /* even "" is an address like any other */
    for (int i = 0; i < AUTH_THROTTLE_FREE_FAILURES; i++)
        auth_throttle_failure(t, "", 20000);
    ck_assert_int_eq(auth_throttle_delay_ms(t, "", 20000), 1000);
    auth_throttle_free(t);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *users = tcase_create("users");
    tcase_set_timeout(users, 60);
    tcase_add_test(users, test_users_known_answers);
    tcase_add_test(users, test_passwd_entry_round_trip);
    tcase_add_test(users, test_passwd_entry_errors);
    tcase_add_test(users, test_users_malformed_lines);
    tcase_add_test(users, test_passwd_update_file);
    suite_add_tcase(s, users);

    TCase *jwt = tcase_create("jwt");
    tcase_set_timeout(jwt, 60);
    tcase_add_unchecked_fixture(jwt, jwt_setup, jwt_teardown);
    tcase_add_test(jwt, test_jwt_valid_each_alg);
    tcase_add_test(jwt, test_jwt_claims);
    tcase_add_test(jwt, test_jwt_algorithms_refused);
    tcase_add_test(jwt, test_jwt_alg_confusion);
    tcase_add_test(jwt, test_jwt_es256_der_signature_refused);
    tcase_add_test(jwt, test_jwt_malformed);
    tcase_add_test(jwt, test_jwt_grants_claim);
    tcase_add_test(jwt, test_jwt_new_errors);
    suite_add_tcase(s, jwt);

    TCase *acl = tcase_create("acl");
    tcase_set_timeout(acl, 60);
    tcase_add_test(acl, test_acl_allows);
    tcase_add_test(acl, test_acl_malformed_lines);
    tcase_add_test(acl, test_pattern_valid);
    tcase_add_test(acl, test_pattern_covers_table);
    tcase_add_test(acl, test_user_patterns_split_on_slash);
    tcase_add_test(acl, test_pattern_covers_exhaustive);
    tcase_add_test(acl, test_pattern_depth_limit);
    suite_add_tcase(s, acl);

    TCase *throttle = tcase_create("throttle");
    tcase_add_test(throttle, test_throttle_delays_grow_and_cap);
    tcase_add_test(throttle, test_throttle_success_and_window_reset);
    tcase_add_test(throttle, test_throttle_eviction_bounded);
    suite_add_tcase(s, throttle);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
