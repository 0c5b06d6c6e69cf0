#include "broker/base/cpus.h"

#include <limits.h>
#include <sched.h> /* sched_getaffinity, CPU_COUNT: _GNU_SOURCE comes from meson.build */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CGROUP_ROOT "/sys/fs/cgroup"

/* Reads a small file whole into buf, NUL-terminated; -1 when it can't be read. */
static int read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

/* ceil(quota / period) CPUs; 0 for "no limit" (-1 or "max") and for nonsense. */
static size_t quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    return (size_t)((quota + period - 1) / period);
}

/* The tighter of two limits, where 0 means none. */
static size_t tighter(size_t a, size_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* cgroup v2: cpu.max holds "QUOTA PERIOD", or "max PERIOD" without a limit. */
static size_t v2_limit_at(const char *dir)
{
    char path[PATH_MAX + 16], text[64];
    long long quota, period;
    snprintf(path, sizeof(path), "%s/cpu.max", dir);
    if (read_text(path, text, sizeof(text)) != 0 || sscanf(text, "%lld %lld", &quota, &period) != 2)
        return 0;
    return quota_cpus(quota, period);
}

/* cgroup v1: the quota and the period sit in two files; a quota of -1 means no limit. */
static size_t v1_limit_at(const char *dir)
{
    char path[PATH_MAX + 32], text[64];
    long long quota, period;
    snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
    if (read_text(path, text, sizeof(text)) != 0 || sscanf(text, "%lld", &quota) != 1)
        return 0;
    snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
    if (read_text(path, text, sizeof(text)) != 0 || sscanf(text, "%lld", &period) != 1)
        return 0;
    return quota_cpus(quota, period);
}

/*
 * The tightest limit from mount/path up to mount itself: a parent's quota binds its children.
 * Inside a container without its own cgroup namespace, path names a host cgroup that does not
 * exist under the container's mount; walking up still reaches the mount, which is the container's.
 */
static size_t walk_up(const char *mount, const char *path, size_t (*limit_at)(const char *dir))
{
    char dir[PATH_MAX];
    size_t mount_len = strlen(mount);
    int n = snprintf(dir, sizeof(dir), "%s%s", mount, path);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return 0;
    size_t limit = 0;
    for (;;) {
        limit = tighter(limit, limit_at(dir));
        char *slash = strrchr(dir, '/');
        if (slash == NULL || (size_t)(slash - dir) < mount_len)
            return limit;
        *slash = '\0';
    }
}

/* Whether a v1 line's controller list ("cpu,cpuacct") names the cpu controller. */
static bool names_cpu_controller(const char *list, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t item = strcspn(list + i, ",:");
        if (item == 3 && memcmp(list + i, "cpu", 3) == 0)
            return true;
        i += item + 1;
    }
    return false;
}

/* One /proc/self/cgroup line, "ID:CONTROLLERS:PATH": the limit it leads to, 0 for none. */
static size_t line_quota(const char *cgroup_root, const char *line, size_t len)
{
    const char *c1 = memchr(line, ':', len);
    const char *c2 = c1 != NULL ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
    if (c2 == NULL)
        return 0;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%.*s", (int)(len - (size_t)(c2 + 1 - line)), c2 + 1);
    if (n < 0 || (size_t)n >= sizeof(path) || path[0] != '/')
        return 0;
    size_t controllers_len = (size_t)(c2 - c1 - 1);
    char mount[PATH_MAX];
    if (controllers_len == 0) { /* "0::/path": the unified (v2) hierarchy */
        return walk_up(cgroup_root, path, v2_limit_at);
    }
    if (!names_cpu_controller(c1 + 1, controllers_len))
        return 0;
    snprintf(mount, sizeof(mount), "%s/%.*s", cgroup_root, (int)controllers_len, c1 + 1);
    size_t limit = walk_up(mount, path, v1_limit_at);
    if (limit == 0) { /* some systems mount it as "cpu" only, or link one name to the other */
        snprintf(mount, sizeof(mount), "%s/cpu", cgroup_root);
        limit = walk_up(mount, path, v1_limit_at);
    }
    return limit;
}

size_t cpus_cgroup_quota(const char *cgroup_root, const char *self_cgroup)
{
    size_t limit = 0;
    for (const char *line = self_cgroup; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        limit = tighter(limit, line_quota(cgroup_root, line, len));
        line += len;
        if (*line == '\n')
            line++;
    }
    return limit;
}

size_t cpus_usable(void)
{
    size_t cpus = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        cpus = (size_t)CPU_COUNT(&set);
    if (cpus == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        cpus = online > 0 ? (size_t)online : 1;
    }
    char self_cgroup[4096];
    if (read_text("/proc/self/cgroup", self_cgroup, sizeof(self_cgroup)) == 0)
        cpus = tighter(cpus, cpus_cgroup_quota(CGROUP_ROOT, self_cgroup));
    return cpus;
}
