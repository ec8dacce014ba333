#!/bin/bash
# demo.sh — build, generate a default dataset and cluster it with 2 MPI ranks.
#   data/demo.h5: 200,000 x 16 float32, points near a 3-D manifold, plus noise (scripts/gen_data.py)
#   result:       results/demo-k16.h5 (h5ls -r results/demo-k16.h5)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
make -s
[ -f data/demo.h5 ] || "$PYTHON" scripts/gen_data.py data/demo.h5 --n 200000 --d 16 \
    --kind manifold --dtype float32 --seed 42
if [ "$(id -u)" -eq 0 ]; then   # Open MPI refuses root unless told
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
set -x
mpirun -q -np 2 --bind-to none bin/kmeans -i data/demo.h5 -k 16 --seed 1
