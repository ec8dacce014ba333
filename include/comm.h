/* comm.h — the only interface to MPI collectives. Everything else calls these
 * small wrappers, so kernels never see a communicator and errors travel up as
 * return codes that km_comm_agree() turns into one decision on every rank. */
#ifndef KM_COMM_H
#define KM_COMM_H
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include "kmeans.h"

typedef struct {
    MPI_Comm world;   /* handed to parallel HDF5 for its file access only */
    int rank, size;
} km_comm;

int km_comm_init(int *argc, char ***argv, km_comm *c);
void km_comm_finalize(void);
/* Collective: if any rank has err->code set, every rank returns the error of
 * the lowest such rank (code and message). Otherwise returns 0. */
int km_comm_agree(const km_comm *c, km_error *err);
void km_comm_sum(const km_comm *c, double *buf, size_t n);      /* in place */
/* recv = the sum over ranks of send (n each): the iteration's allreduce, whose send
 * buffer keeps the rank's own totals from one pass to the next. */
void km_comm_sum_into(const km_comm *c, const double *send, double *recv, size_t n);
void km_comm_max(const km_comm *c, double *buf, size_t n);      /* in place */
int64_t km_comm_max_i64(const km_comm *c, int64_t v);
void km_comm_max_i64v(const km_comm *c, int64_t *buf, int n);   /* in place */
/* all[r * n + i] = rank r's mine[i]. */
void km_comm_allgather_u64(const km_comm *c, const uint64_t *mine, int n, uint64_t *all);
void km_comm_allgather_f64(const km_comm *c, const double *mine, int n, double *all);
void km_comm_bcast(const km_comm *c, void *buf, size_t bytes, int root);
void km_comm_barrier(const km_comm *c);
/* Collective: how many ranks share this rank's node (its memory). */
int km_comm_node_ranks(const km_comm *c);
/* Fill t->min/mean/max from every rank's t->t. */
void km_comm_timers(const km_comm *c, km_timers *t);
#endif
