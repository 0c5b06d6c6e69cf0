/*
 * cpus.h - how many CPUs this process may use, for `server.threads = auto`.
 *
 * The count is the smaller of the CPU affinity mask (taskset, cpusets) and the cgroup CPU quota
 * (Docker's --cpus, Kubernetes limits), rounded up: a loop per CPU the scheduler will actually
 * give us, not per CPU the machine has. Each call reads /proc and /sys: main() asks once at
 * start (and --print-config once more); it must not be called on a hot path.
 */
#ifndef STOMPWS_CPUS_H
#define STOMPWS_CPUS_H

#include <stddef.h>

/* The CPUs this process may use, at least 1. */
size_t cpus_usable(void);

/*
 * The cgroup CPU quota in whole CPUs (rounded up), or 0 when there is none. cgroup_root is where
 * the cgroup file systems are mounted ("/sys/fs/cgroup"), self_cgroup the text of
 * /proc/self/cgroup. Reads cgroup v2's cpu.max, walking up to the root (a parent's limit binds
 * too), or cgroup v1's cpu.cfs_quota_us / cpu.cfs_period_us.
 */
size_t cpus_cgroup_quota(const char *cgroup_root, const char *self_cgroup);

#endif
