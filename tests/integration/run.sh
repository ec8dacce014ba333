#!/bin/bash
# Integration tests: bin/kmeans under mpirun against scikit-learn references,
# the hand-computed cases, the bad-input table. Called by `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp   # no network probing in CI
export OMP_WAIT_POLICY=passive                      # oversubscribed ranks x threads
PYTHON=${PYTHON:-/usr/bin/python3}
cd tests/integration
exec "$PYTHON" -m unittest -v test_kmeans test_checkpoint test_pruned test_scaling test_tsv2h5 test_outofcore
