#!/bin/bash
# side_by_side.sh — compare two builds of bin/kmeans on a noisy machine.
#
#   scripts/side_by_side.sh BIN_A BIN_B REPEATS -- KMEANS_ARGS...
#
# Runs A and B at the same time, one OpenMP thread each, each pinned to its own
# core (taskset), then again with the cores swapped, REPEATS times. Both see the
# same moment of the host, so a VM whose speed drifts by 20 % between runs (as
# this project's test VMs do) still gives a ratio good to a few percent. Prints
# each pair's fit seconds (the program's phases, without reading and writing)
# and B / A. Needs 2 cores. A_ARGS / B_ARGS (environment) add arguments to one
# side only. Examples: a build before and after a change; two algorithms:
#   scripts/side_by_side.sh /tmp/old-kmeans bin/kmeans 2 -- \
#       -i data/bench-1000000x32-f32.h5 -k 64 --init first --tol 0 --algorithm hamerly
#   A_ARGS="--algorithm lloyd" B_ARGS="--algorithm hamerly" scripts/side_by_side.sh \
#       bin/kmeans bin/kmeans 1 -- -i data/bench-2000000x3-f32.h5 -k 16 --init first --tol 0
set -euo pipefail
if [ $# -lt 4 ] || [ "$4" != "--" ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
A=$1 B=$2 REPEATS=$3
shift 4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fit() {
    /usr/bin/python3 -c 'import json, sys
s = json.loads(open(sys.argv[1]).readline())
print("%.3f" % sum(s[p]["max"] for p in ("init", "assign", "wait", "update", "allreduce")))' "$1"
}
for r in $(seq "$REPEATS"); do
    for core_a in 0 1; do
        core_b=$((1 - core_a))
        rm -f "$TMP"/a.json "$TMP"/b.json
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=1 taskset -c "$core_a" "$A" "$@" ${A_ARGS:-} -q -o "$TMP/a.h5" \
            --summary-json "$TMP/a.json" >/dev/null &
        pa=$!
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=1 taskset -c "$core_b" "$B" "$@" ${B_ARGS:-} -q -o "$TMP/b.h5" \
            --summary-json "$TMP/b.json" >/dev/null &
        pb=$!
        wait "$pa"
        wait "$pb"
        a=$(fit "$TMP/a.json")
        b=$(fit "$TMP/b.json")
        echo "A $a s (core $core_a)  B $b s (core $core_b)  B/A $(/usr/bin/python3 -c \
            "print('%.3f' % ($b / $a))")"
    done
done
