/* kmeans.h — the public types shared by every module of hpc-kmeans.
 * Options, the local row block, the model (centroids), per-iteration history,
 * and the error convention: functions return 0 or a negative km_code and fill
 * a km_error; only main.c turns an error into an exit status. */
#ifndef KMEANS_H
#define KMEANS_H

#include <stddef.h>
#include <stdint.h>

#define KM_VERSION "0.1.0"

/* Error codes (negative) and the exit status each maps to (documented in --help). */
typedef enum {
    KM_OK = 0,
    KM_ERR_USAGE = -2,    /* bad option or option value          -> exit 2 */
    KM_ERR_INPUT = -3,    /* input file, dataset or data content  -> exit 3 */
    KM_ERR_OUTPUT = -4,   /* output path cannot be written        -> exit 4 */
    KM_ERR_MEMORY = -5,   /* allocation failed                    -> exit 5 */
    KM_ERR_INTERNAL = -6  /* MPI/HDF5 failure or a bug            -> exit 6 */
} km_code;

/* Exit status of a run that stopped on SIGUSR1/SIGTERM/SIGINT after writing its
 * checkpoint: "not finished, resubmit with --resume" (sysexits' EX_TEMPFAIL). */
#define KM_EXIT_CHECKPOINTED 75

typedef struct {
    int code;       /* 0 or a km_code */
    char msg[512];  /* one line, no trailing newline */
} km_error;

/* Record an error and return its code, so callers can `return km_fail(...)`. */
int km_fail(km_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int km_exit_status(int code);
/* From threads: e into *first unless an error is there already (the first
 * kept); returns e->code. */
int km_fail_first(km_error *first, const km_error *e);

typedef enum { KM_F32 = 0, KM_F64 = 1 } km_precision;

typedef enum { KM_ALG_AUTO = 0, KM_ALG_LLOYD, KM_ALG_HAMERLY, KM_ALG_YINYANG } km_algorithm;
const char *km_algorithm_name(km_algorithm a);

typedef enum {
    KM_INIT_KMEANSPP = 0,
    KM_INIT_FIRST,
    KM_INIT_RANDOM,
    KM_INIT_ROWS,
    KM_INIT_FILE
} km_init_kind;

typedef struct {
    char input[4096];
    char dataset[1024];
    char output[4096];        /* empty: results/<input-name>-k<K>.h5 */
    int k;                    /* 0: not given (taken from --init rows/file) */
    int max_iter;
    double tol;
    uint64_t seed;
    km_init_kind init;
    char init_spec[4096];     /* the --init argument as given */
    int64_t *init_rows;       /* KM_INIT_ROWS: global row indices (owned) */
    int n_init_rows;
    char init_file[4096];     /* KM_INIT_FILE */
    char init_dataset[1024];
    int64_t chunk_rows;       /* rows per chunk of the iteration; 0 = auto */
    int quiet;
    char summary_json[4096];  /* append one JSON line per run; empty = none */
    char checkpoint[4096];    /* checkpoint file; empty = no checkpoints */
    int checkpoint_every;     /* iterations between checkpoints; 0 = not by count */
    double checkpoint_seconds;/* seconds between checkpoints; 0 = not by time */
    int resume;               /* continue from the checkpoint */
    km_algorithm algorithm;   /* iteration strategy (auto: chosen in fit.c) */
    int64_t memory_limit;     /* bytes per rank; 0 = what the node can hold (data.c) */
    int transpose;            /* the dataset is d x n (features x points) */
    int log1p;                /* x -> log2(x + 1) */
    int standardize;          /* per-feature z-score with the global mean and variance */
    int top_variance;         /* keep the G most variable features; 0 = all */
} km_options;

/* The rows this rank owns: rows [first, first+rows) of the n x d dataset. */
typedef struct {
    int64_t n;
    int d;
    int64_t first;
    int64_t rows;
    km_precision prec;
    void *data;               /* rows x d, row-major, float or double */
    char dtype_note[128];     /* e.g. "float32", "int64 converted to float64" */
    int filtered;             /* the dataset's chunks are compressed (or otherwise
                                 filtered): km_read_block reads it in bounded rounds */
} km_block;

/* Centroids in float64 (the master copy; kernels get a prepared copy). */
typedef struct {
    int k;
    int d;
    double *centroids;        /* k x d */
    int64_t *sizes;           /* k */
} km_model;

typedef struct {
    int len, cap;
    double *inertia;          /* inertia of the assignment made this iteration */
    double *shift;            /* sum of squared centroid moves / mean feature variance */
    int64_t *changed;         /* labels changed this iteration */
    int32_t *empty;           /* clusters re-seeded this iteration */
    double *seconds;          /* wall time of the iteration (rank 0) */
    double *skipped;          /* fraction of the n x k distances the pass did not compute */
} km_history;

/* Timed phases, in the order reports print them. */
/* wait: load imbalance, the time a rank spends at the barrier before the
 * iteration's allreduce for slower ranks to finish their pass; allreduce is then
 * the communication alone. */
enum { KM_T_READ, KM_T_INIT, KM_T_ASSIGN, KM_T_WAIT, KM_T_UPDATE, KM_T_ALLREDUCE, KM_T_WRITE,
       KM_T_COUNT };
extern const char *const km_phase_names[KM_T_COUNT];

typedef struct {
    double t[KM_T_COUNT];                    /* this rank's seconds per phase */
    double min[KM_T_COUNT], mean[KM_T_COUNT], max[KM_T_COUNT]; /* over ranks */
} km_timers;

typedef enum {
    KM_STOP_NONE = 0,
    KM_STOP_NO_CHANGE,        /* no label changed in the last iteration */
    KM_STOP_TOL,              /* centroid shift <= tol */
    KM_STOP_MAX_ITER,
    KM_STOP_SIGNAL            /* interrupted: checkpoint written, not finished */
} km_stop_reason;
const char *km_stop_name(km_stop_reason r);

typedef struct {
    int iterations;
    km_stop_reason stop;
    double inertia;
    double mean_variance;     /* mean per-feature variance of the data (tol scale) */
    km_history hist;
    int iterations_run;       /* iterations done by this process (fewer after --resume) */
    int passes;               /* assignment passes by this process (+1 final E-step,
                                 +1 label rebuild on --resume) */
    int64_t allreduce_bytes;  /* bytes each rank contributes to an iteration's allreduce */
    double rss_mb[3];         /* peak resident memory per rank: min, mean, max (MB) */
    km_algorithm algorithm;   /* the strategy that ran (never auto) */
} km_result;

double km_now(void);          /* monotonic wall clock, seconds */
/* "1.5 GiB", "300.0 KiB": bytes for people, written into buf. */
const char *km_bytes_str(double bytes, char *buf, size_t len);
int km_history_push(km_history *h, double inertia, double shift, int64_t changed,
                    int32_t empty, double seconds, double skipped, km_error *err);
void km_history_free(km_history *h);

#endif
