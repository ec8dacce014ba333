/* comm.c — every MPI collective of the program lives here: initialisation,
 * error agreement, the per-iteration allreduce, small gathers and broadcasts,
 * and the min/mean/max of the phase timers. MPI failures are fatal (MPI's
 * default handler aborts all ranks), so these wrappers return nothing. */
#include <limits.h>
#include <string.h>
#include "comm.h"

#define KM_MPI_CHUNK (1 << 28)   /* elements per call: MPI counts are int */

int km_comm_init(int *argc, char ***argv, km_comm *c)
{
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    c->world = MPI_COMM_WORLD;
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    return 0;
}

void km_comm_finalize(void)
{
    MPI_Finalize();
}

int km_comm_agree(const km_comm *c, km_error *err)
{
    int mine = err->code ? c->rank : c->size, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->world);
    if (first == c->size)
        return 0;
    MPI_Bcast(err, (int)sizeof *err, MPI_BYTE, first, c->world);
    return err->code;
}

/* recv = op over ranks of send (NULL: recv in place), in calls of KM_MPI_CHUNK. */
static void allreduce(const km_comm *c, const void *send, void *buf, size_t n, MPI_Datatype t,
                      size_t esize, MPI_Op op)
{
    for (size_t off = 0; off < n; off += KM_MPI_CHUNK) {
        int cnt = (int)(n - off < KM_MPI_CHUNK ? n - off : KM_MPI_CHUNK);
        MPI_Allreduce(send ? (const char *)send + off * esize : MPI_IN_PLACE,
                      (char *)buf + off * esize, cnt, t, op, c->world);
    }
}

void km_comm_sum(const km_comm *c, double *buf, size_t n)
{
    allreduce(c, NULL, buf, n, MPI_DOUBLE, sizeof(double), MPI_SUM);
}

void km_comm_sum_into(const km_comm *c, const double *send, double *recv, size_t n)
{
    allreduce(c, send, recv, n, MPI_DOUBLE, sizeof(double), MPI_SUM);
}

void km_comm_max(const km_comm *c, double *buf, size_t n)
{
    allreduce(c, NULL, buf, n, MPI_DOUBLE, sizeof(double), MPI_MAX);
}

int64_t km_comm_max_i64(const km_comm *c, int64_t v)
{
    allreduce(c, NULL, &v, 1, MPI_INT64_T, sizeof v, MPI_MAX);
    return v;
}

void km_comm_max_i64v(const km_comm *c, int64_t *buf, int n)
{
    allreduce(c, NULL, buf, (size_t)n, MPI_INT64_T, sizeof *buf, MPI_MAX);
}

void km_comm_allgather_u64(const km_comm *c, const uint64_t *mine, int n, uint64_t *all)
{
    MPI_Allgather(mine, n, MPI_UINT64_T, all, n, MPI_UINT64_T, c->world);
}

void km_comm_allgather_f64(const km_comm *c, const double *mine, int n, double *all)
{
    MPI_Allgather(mine, n, MPI_DOUBLE, all, n, MPI_DOUBLE, c->world);
}

void km_comm_bcast(const km_comm *c, void *buf, size_t bytes, int root)
{
    for (size_t off = 0; off < bytes; off += KM_MPI_CHUNK) {
        int cnt = (int)(bytes - off < KM_MPI_CHUNK ? bytes - off : KM_MPI_CHUNK);
        MPI_Bcast((char *)buf + off, cnt, MPI_BYTE, root, c->world);
    }
}

void km_comm_barrier(const km_comm *c)
{
    MPI_Barrier(c->world);
}

void km_comm_timers(const km_comm *c, km_timers *t)
{
    MPI_Allreduce(t->t, t->min, KM_T_COUNT, MPI_DOUBLE, MPI_MIN, c->world);
    MPI_Allreduce(t->t, t->max, KM_T_COUNT, MPI_DOUBLE, MPI_MAX, c->world);
    MPI_Allreduce(t->t, t->mean, KM_T_COUNT, MPI_DOUBLE, MPI_SUM, c->world);
    for (int i = 0; i < KM_T_COUNT; i++)
        t->mean[i] /= c->size;
}

int km_comm_node_ranks(const km_comm *c)
{
    MPI_Comm node;
    int size = 1;
    if (MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node)
        == MPI_SUCCESS) {
        MPI_Comm_size(node, &size);
        MPI_Comm_free(&node);
    }
    return size;
}
