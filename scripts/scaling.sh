#!/bin/bash
# scaling.sh — a strong or weak scaling study on this machine with mpirun.
#
#   scripts/scaling.sh [--mode strong|weak] [--n N] [--d D] [--k K]
#                      [--ranks "1 2 4"] [--threads "1 2"] [--iters N] [--repeat R]
#                      [--csv FILE] [--data DIR] [--cores C] [--launcher mpirun|srun]
#                      [--algorithm lloyd|hamerly|auto]
#
#   strong  the same n x d matrix for every ranks x threads      (--n: total rows)
#   weak    n = --n rows per rank, so the matrix grows with ranks (--n: rows per rank)
#
# Every run does the same work: --init first, --tol 0, --max-iter N, --algorithm
# (lloyd unless given: the same work every iteration), on points of a
# 3-D manifold (scripts/gen_data.py) on which Lloyd keeps moving. Each run appends
# one row to the CSV (scripts/scaling_row.py, from kmeans --summary-json): date,
# host, commit, n, d, k, ranks, threads, seconds per iteration, per-phase
# min/mean/max over ranks, peak RSS per rank. Configurations with more
# ranks x threads than --cores are run too and marked oversubscribed.
# Then: scripts/plot_scaling.py CSV  (speedup, efficiency, Amdahl fit, phases).
#
# --launcher srun runs each configuration as a job step inside a SLURM allocation
# (srun -n R -c T --exact; see jobs/strong-scaling.sbatch, jobs/weak-scaling.sbatch);
# mpirun (the default) runs on this machine. Threads float within the cores of
# their rank (OMP_PROC_BIND=false unless set): Open MPI is told --bind-to none.
#
# Defaults: --mode strong --n 1000000 --d 32 --k 64 --ranks "1 2" --threads "1 2"
#           --iters 20 --repeat 1 --csv results/scaling-<mode>.csv --data data/scaling
set -euo pipefail
cd "$(dirname "$0")/.."
mode=strong n=1000000 d=32 k=64 ranks="1 2" threads="1 2" iters=20 repeat=1
csv= data=data/scaling cores=$(nproc) launcher=mpirun algorithm=lloyd
PYTHON=${PYTHON:-/usr/bin/python3}
MPIRUN=${MPIRUN:-mpirun}
while [ $# -gt 0 ]; do
    case $1 in
    --mode) mode=$2 ;;
    --n) n=$2 ;;
    --d) d=$2 ;;
    --k) k=$2 ;;
    --ranks) ranks=$2 ;;
    --threads) threads=$2 ;;
    --iters) iters=$2 ;;
    --repeat) repeat=$2 ;;
    --csv) csv=$2 ;;
    --data) data=$2 ;;
    --cores) cores=$2 ;;
    --launcher) launcher=$2 ;;
    --algorithm) algorithm=$2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "scaling.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift 2 || { echo "scaling.sh: option '$1' needs a value" >&2; exit 2; }
done
case $mode in strong|weak) ;; *) echo "scaling.sh: --mode must be strong or weak" >&2; exit 2 ;; esac
case $launcher in mpirun|srun) ;; *) echo "scaling.sh: --launcher must be mpirun or srun" >&2; exit 2 ;; esac
export OMP_PROC_BIND=${OMP_PROC_BIND:-false}
csv=${csv:-results/scaling-$mode.csv}
[ -x bin/kmeans ] || make -s bin/kmeans
mkdir -p "$data" "$(dirname "$csv")"
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

dataset() {   # the input for $1 rows, generated once
    local f=$data/manifold-$1x$d.h5
    if [ ! -s "$f" ]; then
        echo "scaling.sh: generating $f" >&2
        "$PYTHON" scripts/gen_data.py "$f.part" --n "$1" --d "$d" --kind manifold --seed 1 >/dev/null
        mv "$f.part" "$f"
    fi
    echo "$f"
}

echo "scaling.sh: $mode scaling, d=$d k=$k, $iters iterations, ranks {$ranks} x threads {$threads}, $cores cores -> $csv"
for r in $ranks; do
    rows=$n
    [ "$mode" = weak ] && rows=$((n * r))
    input=$(dataset "$rows")
    for t in $threads; do
        for rep in $(seq "$repeat"); do
            rm -f "$tmp/summary.json"
            if [ "$launcher" = srun ]; then
                launch=(env OMP_NUM_THREADS="$t" srun -n "$r" -c "$t" --exact)
            else
                launch=("$MPIRUN" -q -np "$r" --oversubscribe --bind-to none
                        -x OMP_NUM_THREADS="$t" -x OMP_PROC_BIND)
            fi
            "${launch[@]}" bin/kmeans -i "$input" -k "$k" --init first --tol 0 --algorithm "$algorithm" \
                --max-iter "$iters" -q -o "$tmp/out.h5" --summary-json "$tmp/summary.json" \
                > "$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
            "$PYTHON" scripts/scaling_row.py "$tmp/summary.json" "$csv" --mode "$mode" \
                --cores "$cores"
        done
    done
done
