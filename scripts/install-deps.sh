#!/bin/bash
# install-deps.sh — install what hpc-kmeans needs to build, test and benchmark.
# Debian/Ubuntu as root: apt-get installs the packages below (only missing ones).
# Installing slurm-wlm/munge starts no service here: tests/slurm starts its own
# daemons in a temporary directory and stops them.
# Elsewhere (clusters): load the site's modules instead, e.g.
#     module load openmpi hdf5/parallel    (then: make HDF5_CFLAGS=... HDF5_LIBS=...)
set -euo pipefail

PKGS=(build-essential pkg-config make
      libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools libcmocka-dev
      python3-numpy python3-h5py python3-sklearn libopenblas0-pthread
      python3-matplotlib  # scaling plots (scripts/plot_scaling.py)
      python3-faiss       # the FAISS column of make bench (scripts/bench_kernel.py)
      slurm-wlm munge)    # a throw-away local SLURM for tests/slurm (no daemons are started)

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps.sh: not a Debian/Ubuntu system; install Open MPI, parallel HDF5," \
         "cmocka and python3 numpy/h5py/scikit-learn yourself (on a cluster:" \
         "module load openmpi hdf5)" >&2
    exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps.sh: all packages present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing packages: ${missing[*]}; run as root or:" \
         "sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
