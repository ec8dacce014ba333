/* fit.h — the Lloyd outer loop: assign (strategy) -> allreduce -> update ->
 * empty clusters -> stop rules, with the per-iteration history and timers. */
#ifndef KM_FIT_H
#define KM_FIT_H
#include <stdio.h>
#include "checkpoint.h"
#include "comm.h"
#include "data.h"
#include "kmeans.h"

/* --algorithm auto (see --help; measured in results/BENCH.md): Yinyang for very
 * wide rows and not too many centroids (d >= KM_AUTO_YINYANG_D, k x d >=
 * KM_AUTO_YINYANG_KD and k <= KM_AUTO_YINYANG_MAX_K), else Hamerly from k x d >=
 * KM_AUTO_HAMERLY_KD, or from k >= 2 when d <=
 * KM_AUTO_HAMERLY_LOW_D, else Lloyd. Below k x d = 128 Hamerly measured 1.5-4x
 * faster than Lloyd at d = 3 (k = 2 to 43), but at d = 16 from 20 % faster (k = 2)
 * to 6 % slower (k = 4) (Zen 3, one thread each, side by side). */
#define KM_AUTO_HAMERLY_KD 128
#define KM_AUTO_HAMERLY_LOW_D 8
/* Fit seconds, 100 iterations at most, Hamerly / Yinyang (eighteenth step, Zen 5
 * class, 2 threads): d = 784, k = 16, 64, 256: 0.18 / 0.28, 0.47 / 0.76, 0.81 /
 * 1.46; d = 2048: 0.22 / 0.21, 0.76 / 0.90, 1.02 / 1.35; d = 4096: 0.30 / 0.20,
 * 0.65 / 0.43, k = 128 1.05 / 0.83, k = 256 1.14 / 1.19; d = 20,000: 0.77 / 0.54,
 * 1.56 / 1.26, k = 128 2.81 / 2.72, k = 256 4.07 / 5.96. */
#define KM_AUTO_YINYANG_D 4096
#define KM_AUTO_YINYANG_KD 16384
#define KM_AUTO_YINYANG_MAX_K 128
/* The strategy a run uses: opt->algorithm, or auto's choice for k clusters in d. */
km_algorithm km_choose_algorithm(const km_options *opt, int k, int d);

/* Collective, over D's rows (data.c: loaded, with its column maxima and tol
 * scale). res->algorithm says which strategy to run. m->centroids holds the initial centroids on entry and the final
 * ones on return; labels (blk->rows) and m->sizes are filled. resume: the
 * checkpoint to continue from, or NULL. With opt->checkpoint, checkpoints are
 * written as the options say, and a stop signal ends the run after a
 * checkpoint with res->stop = KM_STOP_SIGNAL. progress: where rank 0 prints one
 * line per iteration, or NULL. */
int km_fit(const km_comm *c, const km_options *opt, km_data *D, km_model *m, int32_t *labels,
           const km_ckpt *resume, km_result *res, km_timers *tm, FILE *progress,
           km_error *err);
#endif
