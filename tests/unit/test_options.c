/* test_options.c — command-line parsing: defaults, every option, and the
 * one-line usage errors (exit status 2) for bad values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "options.h"

#define ARGV(...) ((char *[]){"kmeans", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"kmeans", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(opt, err, ...) km_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), opt, err)

static void test_defaults(void **state)
{
    (void)state;
    km_options o;
    km_error e = {0};
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3"), KM_PARSE_RUN);
    assert_string_equal(o.input, "x.h5");
    assert_string_equal(o.dataset, "/data");
    assert_int_equal(o.k, 3);
    assert_int_equal(o.max_iter, 300);
    assert_true(o.tol == 1e-4);
    assert_int_equal(o.init, KM_INIT_KMEANSPP);
    assert_int_equal(o.seed, 0);
    assert_int_equal(o.quiet, 0);
    assert_string_equal(o.output, "");
    char buf[256];
    km_options_default_output(&o, buf, sizeof buf);
    assert_string_equal(buf, "results/x-k3.h5");
    km_options_free(&o);
}

static void test_all_options(void **state)
{
    (void)state;
    km_options o;
    km_error e = {0};
    assert_int_equal(PARSE(&o, &e, "--input", "/a/b/expr.v2.h5", "--dataset", "/grp/X",
                           "--clusters", "16", "--output", "out.h5", "--max-iter", "7",
                           "--tol", "0", "--seed", "42", "--init", "random",
                           "--chunk-rows", "1000", "-q", "--summary-json", "s.json"),
                     KM_PARSE_RUN);
    assert_string_equal(o.dataset, "/grp/X");
    assert_int_equal(o.k, 16);
    assert_string_equal(o.output, "out.h5");
    assert_int_equal(o.max_iter, 7);
    assert_true(o.tol == 0.0);
    assert_int_equal(o.seed, 42);
    assert_int_equal(o.init, KM_INIT_RANDOM);
    assert_int_equal(o.chunk_rows, 1000);
    assert_int_equal(o.quiet, 1);
    assert_string_equal(o.summary_json, "s.json");
    char buf[256];
    km_options_default_output(&o, buf, sizeof buf);
    assert_string_equal(buf, "results/expr.v2-k16.h5");
    km_options_free(&o);

    assert_int_equal(PARSE(&o, &e, "-i", "x", "--init", "first", "-k", "2"), KM_PARSE_RUN);
    assert_int_equal(o.init, KM_INIT_FIRST);
    km_options_free(&o);
    assert_int_equal(PARSE(&o, &e, "--help"), KM_PARSE_HELP);
    km_options_free(&o);
    assert_int_equal(PARSE(&o, &e, "-V"), KM_PARSE_VERSION);
    km_options_free(&o);
}

static void test_init_rows_and_file(void **state)
{
    (void)state;
    km_options o;
    km_error e = {0};
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "--init", "rows:5,0,17"), KM_PARSE_RUN);
    assert_int_equal(o.init, KM_INIT_ROWS);
    assert_int_equal(o.k, 3);                       /* implied */
    assert_int_equal(o.n_init_rows, 3);
    assert_int_equal(o.init_rows[0], 5);
    assert_int_equal(o.init_rows[1], 0);
    assert_int_equal(o.init_rows[2], 17);
    km_options_free(&o);

    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "--init", "rows:1,2", "-k", "3"),
                     KM_ERR_USAGE);                 /* disagrees with -k */
    assert_non_null(strstr(e.msg, "-k 3"));
    km_options_free(&o);
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "--init", "rows:1,1"), KM_ERR_USAGE);
    km_options_free(&o);

    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "--init", "c:/dir/init.h5:/cent"),
                     KM_PARSE_RUN);
    assert_int_equal(o.init, KM_INIT_FILE);
    assert_string_equal(o.init_file, "c:/dir/init.h5");
    assert_string_equal(o.init_dataset, "/cent");
    assert_int_equal(o.k, 0);                       /* taken from the file later */
    km_options_free(&o);
}

static void expect_usage(int argc, char **argv, const char *needle)
{
    km_options o;
    km_error e = {0};
    int rc = km_options_parse(argc, argv, &o, &e);
    if (rc != KM_ERR_USAGE || !strstr(e.msg, needle))
        fail_msg("argv[1]='%s': rc %d, message '%s', expected '%s'", argv[1], rc, e.msg, needle);
    assert_null(strchr(e.msg, '\n'));               /* one line */
    km_options_free(&o);
}
#define BAD(needle, ...) expect_usage(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), needle)

static void test_errors(void **state)
{
    (void)state;
    BAD("missing -i", "-k", "3");
    BAD("missing -k", "-i", "x.h5");
    BAD("-k/--clusters '0'", "-i", "x.h5", "-k", "0");
    BAD("-k/--clusters '-2'", "-i", "x.h5", "-k", "-2");
    BAD("-k/--clusters '3x'", "-i", "x.h5", "-k", "3x");
    BAD("-k/--clusters '99999999999'", "-i", "x.h5", "-k", "99999999999");
    BAD("--max-iter '0'", "-i", "x.h5", "-k", "2", "--max-iter", "0");
    BAD("--tol '-1'", "-i", "x.h5", "-k", "2", "--tol", "-1");
    BAD("--tol 'nan'", "-i", "x.h5", "-k", "2", "--tol", "nan");
    BAD("--seed 'abc'", "-i", "x.h5", "-k", "2", "--seed", "abc");
    BAD("--init 'kmeans'", "-i", "x.h5", "-k", "2", "--init", "kmeans");
    BAD("--chunk-rows '0'", "-i", "x.h5", "-k", "2", "--chunk-rows", "0");
    BAD("unknown option '--frobnicate'", "-i", "x.h5", "-k", "2", "--frobnicate");
    BAD("needs a value", "-i", "x.h5", "-k");
    BAD("unexpected argument 'extra'", "-i", "x.h5", "-k", "2", "extra");
    BAD("--input: value is empty", "-i", "", "-k", "2");
    BAD("--resume needs --checkpoint", "-i", "x.h5", "-k", "2", "--resume");
    BAD("--algorithm 'elkan'", "-i", "x.h5", "-k", "2", "--algorithm", "elkan");
    BAD("--checkpoint-every needs --checkpoint", "-i", "x.h5", "-k", "2",
        "--checkpoint-every", "5");
    BAD("--checkpoint-every '0'", "-i", "x.h5", "-k", "2", "--checkpoint", "c.h5",
        "--checkpoint-every", "0");
    BAD("--checkpoint-seconds '0'", "-i", "x.h5", "-k", "2", "--checkpoint", "c.h5",
        "--checkpoint-seconds", "0");
    BAD("--checkpoint-seconds 'inf'", "-i", "x.h5", "-k", "2", "--checkpoint", "c.h5",
        "--checkpoint-seconds", "inf");
}

static void test_checkpoint_options(void **state)
{
    (void)state;
    km_options o;
    km_error e = {0};
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3"), KM_PARSE_RUN);
    assert_string_equal(o.checkpoint, "");          /* off unless asked for */
    assert_true(o.checkpoint_every == 0 && o.checkpoint_seconds == 0 && !o.resume);
    km_options_free(&o);
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3", "--checkpoint", "c.h5"),
                     KM_PARSE_RUN);
    assert_true(o.checkpoint_seconds == 1800);      /* the documented default period */
    km_options_free(&o);
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3", "--checkpoint", "c.h5",
                           "--checkpoint-every", "7", "--resume"), KM_PARSE_RUN);
    assert_string_equal(o.checkpoint, "c.h5");
    assert_int_equal(o.checkpoint_every, 7);
    assert_true(o.checkpoint_seconds == 0 && o.resume == 1);
    km_options_free(&o);
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3", "--checkpoint", "c.h5",
                           "--checkpoint-seconds", "2.5"), KM_PARSE_RUN);
    assert_true(o.checkpoint_seconds == 2.5 && o.checkpoint_every == 0);
    km_options_free(&o);
}

static void test_algorithm(void **state)
{
    (void)state;
    km_options o;
    km_error e = {0};
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3"), KM_PARSE_RUN);
    assert_int_equal(o.algorithm, KM_ALG_AUTO);
    km_options_free(&o);
    char *names[] = {"lloyd", "hamerly", "yinyang", "auto"};   /* argv is not const */
    const km_algorithm want[] = {KM_ALG_LLOYD, KM_ALG_HAMERLY, KM_ALG_YINYANG, KM_ALG_AUTO};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3", "--algorithm", names[i]),
                         KM_PARSE_RUN);
        assert_int_equal(o.algorithm, want[i]);
        assert_string_equal(km_algorithm_name(o.algorithm), names[i]);
        km_options_free(&o);
    }
}

static void test_memory_and_preprocessing(void **state)
{
    (void)state;
    km_options o;
    km_error e = {0};
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3"), KM_PARSE_RUN);
    assert_int_equal(o.memory_limit, 0);   /* 0: the node decides */
    assert_int_equal(o.transpose + o.log1p + o.standardize + o.top_variance, 0);
    km_options_free(&o);
    const struct { char *arg; int64_t bytes; } ok[] = {
        {"1048576", 1048576}, {"512M", 512LL << 20}, {"2G", 2LL << 30}, {"1.5g", 3LL << 29},
        {"64KB", 64 << 10}, {"1T", 1LL << 40}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3", "--memory-limit", ok[i].arg),
                         KM_PARSE_RUN);
        assert_int_equal(o.memory_limit, ok[i].bytes);
        km_options_free(&o);
    }
    char *bad[] = {"0", "-5M", "lots", "12Q", "M", "1e300G", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e = (km_error){0};
        assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3", "--memory-limit", bad[i]),
                         KM_ERR_USAGE);
        assert_non_null(strstr(e.msg, "--memory-limit"));
        km_options_free(&o);
    }
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3", "--transpose", "--log1p",
                           "--standardize", "--top-variance", "500"), KM_PARSE_RUN);
    assert_int_equal(o.transpose + o.log1p + o.standardize, 3);
    assert_int_equal(o.top_variance, 500);
    char buf[128];
    km_options_prep_string(&o, buf, sizeof buf);
    assert_string_equal(buf, "transpose=1 log1p=1 top_variance=500 standardize=1");
    km_options_free(&o);
    assert_int_equal(PARSE(&o, &e, "-i", "x.h5", "-k", "3", "--top-variance", "0"),
                     KM_ERR_USAGE);
    km_options_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_options),
        cmocka_unit_test(test_memory_and_preprocessing),
        cmocka_unit_test(test_init_rows_and_file),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_checkpoint_options),
        cmocka_unit_test(test_algorithm),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
