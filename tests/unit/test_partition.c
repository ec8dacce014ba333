/* test_partition.c — row blocks cover 0..n-1 exactly once, in rank order,
 * balanced to within one row, for any n and rank count (incl. ranks > n). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "partition.h"

static void check(int64_t n, int p)
{
    int64_t next = 0, maxrows = 0, minrows = INT64_MAX;
    for (int r = 0; r < p; r++) {
        int64_t first, rows;
        km_partition(n, p, r, &first, &rows);
        assert_true(rows >= 0);
        assert_int_equal(first, next);          /* contiguous, in rank order */
        next = first + rows;
        maxrows = rows > maxrows ? rows : maxrows;
        minrows = rows < minrows ? rows : minrows;
        for (int64_t i = first; i < first + rows; i += rows > 7 ? rows / 7 : 1)
            assert_int_equal(km_partition_owner(n, p, i), r);
        if (rows) {
            assert_int_equal(km_partition_owner(n, p, first), r);
            assert_int_equal(km_partition_owner(n, p, first + rows - 1), r);
        }
    }
    assert_int_equal(next, n);                  /* covers everything */
    assert_true(maxrows - minrows <= 1);        /* balanced */
    assert_int_equal(km_partition_max_rows(n, p), maxrows);
}

static void test_small(void **state)
{
    (void)state;
    for (int64_t n = 0; n <= 40; n++)
        for (int p = 1; p <= 9; p++)
            check(n, p);
}

static void test_hand_cases(void **state)
{
    (void)state;
    int64_t first, rows;
    km_partition(10, 3, 0, &first, &rows);   /* 4 + 3 + 3 */
    assert_int_equal(first, 0);
    assert_int_equal(rows, 4);
    km_partition(10, 3, 2, &first, &rows);
    assert_int_equal(first, 7);
    assert_int_equal(rows, 3);
    km_partition(2, 3, 2, &first, &rows);    /* a rank with no rows */
    assert_int_equal(rows, 0);
    assert_int_equal(first, 2);
}

static void test_large(void **state)
{
    (void)state;
    check(((int64_t)1 << 40) + 12345, 1000);       /* beyond 32-bit rows */
    check(3000000000LL, 7);
    check(5, 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests_name("partition", tests, NULL, NULL);
}
