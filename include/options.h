/* options.h — command-line parsing and validation (no MPI, no HDF5). */
#ifndef KM_OPTIONS_H
#define KM_OPTIONS_H
#include <stdio.h>
#include "kmeans.h"

enum { KM_PARSE_RUN = 0, KM_PARSE_HELP = 1, KM_PARSE_VERSION = 2 };

/* Fill *opt from argv. Returns KM_PARSE_RUN/HELP/VERSION, or KM_ERR_USAGE with
 * a one-line message in *err. Call km_options_free() in every case. */
int km_options_parse(int argc, char **argv, km_options *opt, km_error *err);
void km_options_free(km_options *opt);
void km_options_help(FILE *out);
/* The preprocessing options as one line, for checkpoints to compare. */
void km_options_prep_string(const km_options *opt, char *buf, size_t len);
/* The default output name results/<input basename without extension>-k<K>.h5. */
void km_options_default_output(const km_options *opt, char *buf, size_t len);
#endif
