/* signals.h — a stop request from SLURM or the user. SIGUSR1 and SIGTERM (and
 * SIGINT when run from a terminal) only set a flag; the iteration loop reads it
 * at the end of an iteration and all ranks agree through the allreduce. */
#ifndef KM_SIGNALS_H
#define KM_SIGNALS_H

/* Install the handlers (only when checkpoints are on: without one a stop
 * request could save nothing, so the default actions stay). */
void km_signals_install(void);
/* The number of the first stop signal received, or 0. */
int km_signal_pending(void);
#endif
