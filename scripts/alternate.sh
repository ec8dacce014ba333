#!/bin/bash
# alternate.sh — compare builds of bin/kmeans at full thread count on a noisy machine.
#
#   scripts/alternate.sh ROUNDS BIN_A [BIN_B ...] -- KMEANS_ARGS...
#
# Runs each build in turn, one MPI rank with OMP_NUM_THREADS (default 2) threads,
# ROUNDS times over, so a host whose speed drifts from minute to minute slows
# every build alike. Prints each build's fit seconds (the program's phases
# without reading and writing: scripts/benchlib.fit_seconds) in run order,
# their minimum and median. Where side_by_side.sh runs two builds at once on one
# core each, this measures what threads share: parallel regions, the memory bus.
# OMP_WAIT_POLICY is passed through as set (unset: the OpenMP runtime's default).
# With ITERS=A-B (A <= B), the mean seconds of iterations A to B (history/seconds)
# in place of the fit's: the cost of an iteration, without init and the first
# passes (the run must reach B: --tol 0 --max-iter B or more).
# Example, a build before and after a change:
#   scripts/alternate.sh 5 /tmp/old-kmeans bin/kmeans -- \
#       -i data/bench-1000000x32-f32.h5 -k 64 --init first --tol 0 --algorithm hamerly
#   ITERS=4-13 scripts/alternate.sh 5 /tmp/old-kmeans bin/kmeans -- \
#       -i data/bench-4000000x16-f32.h5 -k 4 --init first --tol 0 --max-iter 13
set -euo pipefail
ROUNDS=${1:-}
shift || true
BINS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    BINS+=("$1")
    shift
done
ITERS=${ITERS:-}
ITERS_OK=1   # empty, or A-B with 1 <= A <= B
if [ -n "$ITERS" ]; then
    [[ "$ITERS" =~ ^([1-9][0-9]*)-([1-9][0-9]*)$ ]] \
        && ((BASH_REMATCH[1] <= BASH_REMATCH[2])) || ITERS_OK=0
fi
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || [ ${#BINS[@]} -eq 0 ] || [ $# -eq 0 ] \
        || [ $ITERS_OK -eq 0 ]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
for ((r = 1; r <= ROUNDS; r++)); do
    for ((b = 0; b < ${#BINS[@]}; b++)); do
        rm -f "$TMP/s.json"
        if ! "${BINS[$b]}" "$@" -q -o "$TMP/out.h5" --summary-json "$TMP/s.json" \
                >"$TMP/log" 2>&1; then
            echo "alternate.sh: ${BINS[$b]} failed:" >&2
            cat "$TMP/log" >&2
            exit 1
        fi
        if [ -n "$ITERS" ]; then
            $PY -c 'import sys, h5py
a, b = (int(v) for v in sys.argv[2].split("-"))
with h5py.File(sys.argv[1], "r") as f:
    s = f["history/seconds"][a - 1:b]
if len(s) != b - a + 1:
    sys.exit("alternate.sh: ITERS=%s: the run did not reach iteration %d "
             "(pass --tol 0 --max-iter %d)" % (sys.argv[2], b, b))
print("%.5f" % s.mean())' "$TMP/out.h5" "$ITERS" >>"$TMP/t$b"
        else
            $PY -c 'import json, sys
sys.path.insert(0, sys.argv[2])
from benchlib import fit_seconds
print("%.4f" % fit_seconds(json.load(open(sys.argv[1]))))' "$TMP/s.json" "$HERE" >>"$TMP/t$b"
        fi
    done
done
for ((b = 0; b < ${#BINS[@]}; b++)); do
    $PY -c 'import statistics, sys
t = [float(v) for v in open(sys.argv[2]).read().split()]
what = "s an iteration, iterations " + sys.argv[3] if sys.argv[3] else "s (fit)"
f = "%.5f" if sys.argv[3] else "%.3f"
print(("%s: min " + f + " median " + f + " %s (%s)")
      % (sys.argv[1], min(t), statistics.median(t), what, " ".join(f % v for v in t)))' \
        "${BINS[$b]}" "$TMP/t$b" "$ITERS"
done
