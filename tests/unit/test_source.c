/* Unit tests of source.c: the transpose, the preprocessing and the chunk spans,
 * each against a direct computation of what it must give. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include "source.h"

static void test_transpose(void **state)
{
    (void)state;
    const int64_t shapes[][2] = {{1, 1}, {5, 7}, {33, 70}, {64, 64}, {100, 3}, {2, 129}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t r = shapes[s][0], c = shapes[s][1];
        float *in = malloc(sizeof(float) * r * c), *out = malloc(sizeof(float) * r * c);
        double *ind = malloc(sizeof(double) * r * c), *outd = malloc(sizeof(double) * r * c);
        for (int64_t i = 0; i < r * c; i++) {
            in[i] = (float)i;
            ind[i] = (double)i + 0.5;
        }
        for (int par = 0; par < 2; par++) {
            km_transpose(in, r, c, 4, out, par);
            km_transpose(ind, r, c, 8, outd, par);
            for (int64_t i = 0; i < r; i++)
                for (int64_t j = 0; j < c; j++) {
                    assert_true(out[j * r + i] == in[i * c + j]);
                    assert_true(outd[j * r + i] == ind[i * c + j]);
                }
        }
        free(in);
        free(out);
        free(ind);
        free(outd);
    }
}

static void test_prep(void **state)
{
    (void)state;
    enum { R = 6, DIN = 5, DOUT = 3 };
    double x[R * DIN], v[R * DIN];
    float xf[R * DIN];
    for (int i = 0; i < R * DIN; i++)
        v[i] = x[i] = xf[i] = (float)((i * 7) % 11);
    const int keep[DOUT] = {0, 2, 4};
    const double mean[DOUT] = {1.0, 2.0, 0.5}, scale[DOUT] = {0.5, 0.0, 2.0};
    km_prep p = {.log1p = 1, .d_in = DIN, .d_out = DOUT, .keep = keep, .mean = mean,
                 .scale = scale};
    km_prep_apply(&p, x, R, KM_F64, 1);   /* in place: rows shrink from 5 to 3 */
    km_prep_apply(&p, xf, R, KM_F32, 0);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < DOUT; j++) {
            double want = (log1p(v[i * DIN + keep[j]]) / log(2.0) - mean[j]) * scale[j];
            if (scale[j] == 0)
                want = 0;   /* a constant feature */
            assert_true(x[i * DOUT + j] == want);
            assert_true(xf[i * DOUT + j] == (float)want);
        }
    km_prep id = {.d_in = DIN, .d_out = DIN};
    assert_true(km_prep_is_identity(&id));
    assert_false(km_prep_is_identity(&p));
}

static void test_spans(void **state)
{
    (void)state;
    /* 23 rows whose chunks of 5 end where (phase + row) % 5 == 0 */
    km_source s = {.rows = 23, .chunk_rows = 5, .phase = 3};
    const int64_t want[] = {2, 5, 5, 5, 5, 1};
    int64_t f = 0, n, k = 0;
    for (; (n = km_source_span(&s, f)) > 0; f += n, k++)
        assert_int_equal(n, want[k]);
    assert_int_equal(k, 6);
    assert_int_equal(f, 23);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_prep),
        cmocka_unit_test(test_spans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
