#!/usr/bin/python3
"""make bench (last part): the default init, greedy k-means++, ours vs scikit-learn's.

Ours: the `init` phase of `kmeans --init kmeans++ --seed S --max-iter 1` (the
program's own clock: no MPI start-up, no reading). scikit-learn:
`sklearn.cluster.kmeans_plusplus(x, k, random_state=S)` on the same float32
matrix, under threadpool_limits(threads). Both draw 2 + ln k candidates a step
and keep the one that lowers the potential most; ours computes the potentials
exactly (the same centroids for any rank/thread layout), scikit-learn's from
BLAS distances. The runs alternate --repeat times; each time is the minimum.
Prints a table and appends one line per shape to results/bench-init.csv.
"""
import argparse
import os
import time

from benchlib import append_csv, bench_data, run_kmeans

# name: (n, d, k), from the shapes of the other benchmarks
SHAPES = {"a": (1000000, 32, 64), "b": (10000, 20000, 16), "c": (70000, 784, 64)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="a,b,c", help="comma-separated, of: a b c")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    import h5py
    from sklearn.cluster import kmeans_plusplus
    from threadpoolctl import threadpool_limits
    rows = []
    print("bench-init: greedy k-means++, %d threads, seed %d, best of %d" %
          (a.threads, a.seed, a.repeat), flush=True)
    print("%-22s %10s %14s %8s" % ("shape", "ours s", "scikit-learn s", "ratio"))
    for s in a.shapes.split(","):
        n, d, k = SHAPES[s]
        path = bench_data(n, d, "bench-init")
        with h5py.File(path, "r") as f:
            x = f["data"][()]
        ours = skl = float("inf")
        for _ in range(a.repeat):
            _, summ = run_kmeans(path, k, 1, a.threads, init="kmeans++",
                                 extra=["--seed", str(a.seed)])
            ours = min(ours, summ["init"]["max"])
            with threadpool_limits(a.threads):
                t = time.perf_counter()
                kmeans_plusplus(x, k, random_state=a.seed)
                skl = min(skl, time.perf_counter() - t)
        shape = "%s %dx%d k=%d" % (s, n, d, k)
        print("%-22s %10.3f %14.3f %8.2f" % (shape, ours, skl, ours / skl), flush=True)
        rows.append([s, n, d, k, a.threads, a.seed, "%.4f" % ours, "%.4f" % skl,
                     "%.3f" % (ours / skl)])
    path = append_csv("bench-init.csv", "shape,n,d,k,threads,seed,ours_s,sklearn_s,ratio", rows)
    print("bench-init: appended to %s" % os.path.relpath(path))


if __name__ == "__main__":
    main()
