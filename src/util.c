/* util.c — small shared helpers: the error record, exit statuses, the clock,
 * and the growable per-iteration history. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "kmeans.h"

const char *const km_phase_names[KM_T_COUNT] = {
    "read", "init", "assign", "wait", "update", "allreduce", "write"
};

int km_fail(km_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int km_fail_first(km_error *first, const km_error *e)
{
#pragma omp critical(km_fail_first)
    if (!first->code)
        *first = *e;
    return e->code;
}

int km_exit_status(int code)
{
    switch (code) {
    case KM_OK: return 0;
    case KM_ERR_USAGE: return 2;
    case KM_ERR_INPUT: return 3;
    case KM_ERR_OUTPUT: return 4;
    case KM_ERR_MEMORY: return 5;
    default: return 6;
    }
}

const char *km_algorithm_name(km_algorithm a)
{
    return a == KM_ALG_YINYANG ? "yinyang" : a == KM_ALG_HAMERLY ? "hamerly"
           : a == KM_ALG_LLOYD ? "lloyd" : "auto";
}

const char *km_stop_name(km_stop_reason r)
{
    switch (r) {
    case KM_STOP_NO_CHANGE: return "no-change";
    case KM_STOP_TOL: return "tol";
    case KM_STOP_MAX_ITER: return "max-iter";
    case KM_STOP_SIGNAL: return "signal";
    default: return "none";
    }
}

double km_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int grow(void **p, size_t elem, int cap)
{
    void *q = realloc(*p, elem * (size_t)cap);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

int km_history_push(km_history *h, double inertia, double shift, int64_t changed,
                    int32_t empty, double seconds, double skipped, km_error *err)
{
    if (h->len == h->cap) {
        int cap = h->cap ? 2 * h->cap : 64;
        if (grow((void **)&h->inertia, sizeof(double), cap) ||
            grow((void **)&h->shift, sizeof(double), cap) ||
            grow((void **)&h->changed, sizeof(int64_t), cap) ||
            grow((void **)&h->empty, sizeof(int32_t), cap) ||
            grow((void **)&h->seconds, sizeof(double), cap) ||
            grow((void **)&h->skipped, sizeof(double), cap))
            return km_fail(err, KM_ERR_MEMORY, "out of memory growing the iteration history");
        h->cap = cap;
    }
    h->inertia[h->len] = inertia;
    h->shift[h->len] = shift;
    h->changed[h->len] = changed;
    h->empty[h->len] = empty;
    h->seconds[h->len] = seconds;
    h->skipped[h->len] = skipped;
    h->len++;
    return 0;
}

void km_history_free(km_history *h)
{
    free(h->inertia);
    free(h->shift);
    free(h->changed);
    free(h->empty);
    free(h->seconds);
    free(h->skipped);
    *h = (km_history){0};
}

const char *km_bytes_str(double bytes, char *buf, size_t len)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}
