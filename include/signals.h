/* signals.h — a stop request from SLURM or the user. SIGUSR1 and SIGTERM (and
 * SIGINT when run from a terminal) only set a flag; the iteration loop reads it
 * at the end of an iteration and all ranks agree through the allreduce. */
#ifndef KM_SIGNALS_H
#define KM_SIGNALS_H

/* Install the handlers. Called first thing in main, so a signal that comes
 * while MPI starts or the data is read is not lost (SLURM may signal early). */
void km_signals_install(void);
/* Give the signals back their default actions (a run without --checkpoint can
 * save nothing, so it dies as usual); a signal already received is re-raised. */
void km_signals_release(void);
/* The number of the first stop signal received, or 0. */
int km_signal_pending(void);
#endif
