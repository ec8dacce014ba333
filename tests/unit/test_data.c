/* Unit tests of data.c's cgroup reading: fake /proc/self/cgroup files and
 * cgroup trees (v1 and v2) in a temporary directory, limits set by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "data.h"

static char root[256];

static void put(const char *rel, const char *text)
{
    char path[1024], dir[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = strchr(path + strlen(root) + 1, '/'); p; p = strchr(p + 1, '/')) {
        snprintf(dir, sizeof dir, "%.*s", (int)(p - path), path);
        mkdir(dir, 0700);
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static double limit(const char *self)
{
    char path[512];
    snprintf(path, sizeof path, "%s/self", root);
    put("self", self);
    return km_cgroup_limit(path, root);
}

static void test_cgroup_limits(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/kmtest-cgroup-XXXXXX");
    assert_non_null(mkdtemp(root));
    /* v1: the job's limit is tighter than the root's; the step is unlimited */
    put("memory/memory.limit_in_bytes", "2147483648\n");
    put("memory/job/memory.limit_in_bytes", "1073741824\n");
    put("memory/job/step/memory.limit_in_bytes", "9223372036854771712\n");
    assert_true(limit("5:cpu,cpuacct:/\n4:memory:/job/step\n0::/\n") == 1073741824.0);
    /* v2: "max" means none; an ancestor's limit still applies */
    put("a/memory.max", "500000000\n");
    put("a/b/memory.max", "max\n");
    assert_true(limit("0::/a/b\n") == 500000000.0);
    /* nothing set, or no such file: 0 */
    assert_true(limit("0::/nowhere\n") == 0.0);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-file", root);
    assert_true(km_cgroup_limit(missing, root) == 0.0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cgroup_limits)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
