/* report.h — what rank 0 tells the user: progress lines, the per-phase timing
 * table (min / mean / max over ranks), the summary line, and a JSON record. */
#ifndef KM_REPORT_H
#define KM_REPORT_H
#include <stdio.h>
#include "data.h"
#include "kmeans.h"

/* What is run and the memory plan: printed before the rows are read. */
void km_report_header(FILE *out, const km_options *opt, const km_data *D, int k,
                      km_algorithm alg, int ranks, int threads);
/* The iteration table's column titles. */
void km_report_columns(FILE *out);
void km_report_iteration(FILE *out, int iter, double inertia, double shift, int64_t changed,
                         int empty, double skipped, double seconds);
void km_report_timing(FILE *out, const km_timers *t, const km_result *res);
void km_report_summary(FILE *out, const km_options *opt, const km_block *blk, int k,
                       const km_result *res, const km_timers *t, const char *output);
/* Append one JSON line describing the run; returns 0 or -1 (errno set). */
int km_report_json(const char *path, const km_options *opt, const km_data *D, int k,
                   const km_result *res, const km_timers *t, int ranks, int threads,
                   const char *output);
#endif
