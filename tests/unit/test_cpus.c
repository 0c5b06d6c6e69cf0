/* server.threads = auto: the cgroup quota read from a fake cgroup tree, and the affinity count. */
#include <check.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/base/config.h"
#include "broker/base/cpus.h"

static char root[64];

/* Writes text to root/rel, making the directories on the way. */
static void put(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p != '\0'; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void make_root(void)
{
    strcpy(root, "/tmp/stompws-cpus-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
}

static void remove_root(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_v2_quota_rounds_up)
{
    put("app/cpu.max", "150000 100000\n"); /* 1.5 CPUs: two loops, the second half busy */
    ck_assert_uint_eq(cpus_cgroup_quota(root, "0::/app\n"), 2);
    put("app/cpu.max", "100000 100000\n");
    ck_assert_uint_eq(cpus_cgroup_quota(root, "0::/app\n"), 1);
}
END_TEST

START_TEST(test_v2_no_limit)
{
    put("app/cpu.max", "max 100000\n");
    ck_assert_uint_eq(cpus_cgroup_quota(root, "0::/app\n"), 0);
    ck_assert_uint_eq(cpus_cgroup_quota(root, "0::/missing/cgroup\n"), 0);
    ck_assert_uint_eq(cpus_cgroup_quota(root, ""), 0);
}
END_TEST

START_TEST(test_v2_parent_binds)
{
    put("kubepods/cpu.max", "300000 100000\n");
    put("kubepods/pod/cpu.max", "max 100000\n");
    put("kubepods/pod/app/cpu.max", "800000 100000\n");
    ck_assert_uint_eq(cpus_cgroup_quota(root, "0::/kubepods/pod/app\n"), 3);
}
END_TEST

START_TEST(test_v2_container_root)
{
    /* No cgroup namespace: the path names the host's cgroup, the mount is the container's. */
    put("cpu.max", "200000 100000\n");
    ck_assert_uint_eq(cpus_cgroup_quota(root, "0::/docker/0123abcd\n"), 2);
    ck_assert_uint_eq(cpus_cgroup_quota(root, "0::/\n"), 2);
}
END_TEST

START_TEST(test_v1_quota)
{
    put("cpu,cpuacct/grp/cpu.cfs_quota_us", "250000\n");
    put("cpu,cpuacct/grp/cpu.cfs_period_us", "100000\n");
    const char *self = "12:memory:/grp\n4:cpu,cpuacct:/grp\n1:name=systemd:/grp\n";
    ck_assert_uint_eq(cpus_cgroup_quota(root, self), 3);
    put("cpu,cpuacct/grp/cpu.cfs_quota_us", "-1\n");
    ck_assert_uint_eq(cpus_cgroup_quota(root, self), 0);
    /* "cpuacct" alone is not the cpu controller */
    ck_assert_uint_eq(cpus_cgroup_quota(root, "3:cpuacct:/grp\n"), 0);
}
END_TEST

START_TEST(test_usable_at_most_affinity)
{
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    size_t usable = cpus_usable();
    ck_assert_uint_ge(usable, 1);
    ck_assert_uint_le(usable, (size_t)CPU_COUNT(&set));
}
END_TEST

START_TEST(test_config_threads_auto)
{
    struct config cfg;
    config_defaults(&cfg);
    ck_assert_uint_eq(cfg.threads, CONFIG_THREADS_AUTO);
    size_t usable = cpus_usable();
    ck_assert_uint_eq(config_threads(&cfg),
                      usable < CONFIG_THREADS_MAX ? usable : CONFIG_THREADS_MAX);
    char err[256];
    ck_assert_int_eq(config_set(&cfg, "server", "threads", "3", err, sizeof(err)), 0);
    ck_assert_uint_eq(config_threads(&cfg), 3);
    ck_assert_int_eq(config_set(&cfg, "server", "threads", "auto", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.threads, CONFIG_THREADS_AUTO);
    ck_assert_int_eq(config_set(&cfg, "server", "threads", "0", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "auto or a number"));
    ck_assert_int_eq(config_set(&cfg, "server", "threads", "65", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "server.threads"));
}
END_TEST

static Suite *cpus_suite(void)
{
    Suite *s = suite_create("cpus");
    TCase *tc = tcase_create("cgroup");
    tcase_add_checked_fixture(tc, make_root, remove_root);
    tcase_add_test(tc, test_v2_quota_rounds_up);
    tcase_add_test(tc, test_v2_no_limit);
    tcase_add_test(tc, test_v2_parent_binds);
    tcase_add_test(tc, test_v2_container_root);
    tcase_add_test(tc, test_v1_quota);
    suite_add_tcase(s, tc);
    TCase *host = tcase_create("host");
    tcase_add_test(host, test_usable_at_most_affinity);
    tcase_add_test(host, test_config_threads_auto);
    suite_add_tcase(s, host);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cpus_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
