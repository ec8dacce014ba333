#!/usr/bin/python3
"""make bench-pruned: time to convergence, exact pruning vs Lloyd vs scikit-learn.

For each case (issue 8's shapes; float32 points on a 3-D manifold embedded in d
dimensions, scripts/gen_data.py, so Lloyd runs many iterations), every method starts
from the first k rows, tol 0, at most --max-iter iterations, with the same thread
count: hpc-kmeans --algorithm lloyd / hamerly / yinyang (one MPI rank) and
scikit-learn's KMeans(algorithm="lloyd") and ("elkan"). The time is the whole fit
(ours: the program's own phases without reading and writing the file; sklearn:
fit() on the array already in memory). Checks that our three runs end with the
same labels and iteration count, and prints the ratios the issue asks for. Appends
one line per case to results/bench-pruned.csv. With --repeats R every method runs R
times, the rounds interleaved (ours, then scikit-learn's, R times over), and each
keeps its least time: on a shared host whose speed drifts from minute to minute
(scikit-learn's Elkan took 6.4-10.2 s on case c within an hour here), one run each
compares the moments they happened to meet as much as the methods.

Usage: bench_pruned.py [--cases a,b,c,d] [--max-iter 300] [--threads N] [--repeats R]
  a: 1,000,000 x 32, k = 64      b: 70,000 x 784, k = 256
  c: 10,000 x 20,000, k = 16     d: 2,000,000 x 3, k = 512
"""
import argparse
import datetime
import os
import platform
import time

from benchlib import bench_data, fit_seconds, run_kmeans

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CASES = {"a": (1_000_000, 32, 64), "b": (70_000, 784, 256), "c": (10_000, 20_000, 16),
         "d": (2_000_000, 3, 512)}
OURS = ["lloyd", "hamerly", "yinyang"]


def ours(path, k, alg, max_iter, threads):
    out = os.path.join(ROOT, "results", ".bench-pruned-%s.h5" % alg)
    _, s = run_kmeans(path, k, max_iter, threads, algorithm=alg, keep_output=out)
    secs = fit_seconds(s)
    return secs, s, out


def sklearn_fit(x, k, alg, max_iter):
    from sklearn.cluster import KMeans
    t = time.perf_counter()
    km = KMeans(n_clusters=k, init=x[:k], n_init=1, tol=0.0, max_iter=max_iter,
                algorithm=alg).fit(x)
    return time.perf_counter() - t, km


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="a,b,c,d")
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS",
                                                                      os.cpu_count())))
    ap.add_argument("--no-sklearn", action="store_true", help="ours only")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs of each method, interleaved; the least time is kept")
    a = ap.parse_args()
    if a.repeats < 1:
        ap.error("argument --repeats: %d: must be at least 1" % a.repeats)
    bad = [c for c in a.cases.split(",") if c not in CASES]
    if bad:
        ap.error("argument --cases: %s: not one of %s" % (",".join(bad), ",".join(CASES)))
    os.environ["OMP_NUM_THREADS"] = str(a.threads)      # before numpy/sklearn load
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    import h5py
    import numpy as np
    import sklearn

    os.makedirs(os.path.join(ROOT, "data"), exist_ok=True)
    csv = os.path.join(ROOT, "results", "bench-pruned.csv")
    for case in a.cases.split(","):
        n, d, k = CASES[case]
        path = bench_data(n, d, "bench-pruned")
        print("bench-pruned %s: %d x %d float32, k=%d, init first, tol 0, max %d iterations, "
              "%d threads" % (case, n, d, k, a.max_iter, a.threads), flush=True)
        t, labels, iters = {}, {}, {}
        x = None
        same = True
        for r in range(a.repeats):
            tag = "" if a.repeats == 1 else "  (run %d of %d)" % (r + 1, a.repeats)
            for alg in OURS:
                secs, s, out = ours(path, k, alg, a.max_iter, a.threads)
                t[alg] = min(secs, t.get(alg, secs))
                with h5py.File(out, "r") as f:
                    lab = f["labels"][()]
                os.remove(out)
                if alg in labels:   # every run of every method: the same answer
                    same = (same and np.array_equal(labels[alg], lab)
                            and iters[alg] == s["iterations"])
                labels[alg], iters[alg] = lab, s["iterations"]
                print("  hpc-kmeans %-8s %9.2f s  %4d iterations%s"
                      % (alg, secs, iters[alg], tag), flush=True)
            if not a.no_sklearn:
                if x is None:
                    with h5py.File(path, "r") as f:
                        x = f["data"][()]
                for alg in ("lloyd", "elkan"):
                    secs, km = sklearn_fit(x, k, alg, a.max_iter)
                    t["sk-" + alg] = min(secs, t.get("sk-" + alg, secs))
                    print("  scikit-learn %-6s %9.2f s  %4d iterations%s"
                          % (alg, secs, km.n_iter_, tag), flush=True)
        del x
        same = same and all(np.array_equal(labels["lloyd"], labels[g])
                            and iters[g] == iters["lloyd"] for g in OURS[1:])
        if a.repeats > 1:
            print("  least of %d: %s" % (a.repeats, ", ".join(
                "%s %.2f s" % (g, t[g]) for g in OURS + (["sk-lloyd", "sk-elkan"]
                                                        if not a.no_sklearn else []))))
        best = min(OURS[1:], key=lambda g: t[g])
        print("  best pruned: %s, %.2fx faster than our Lloyd%s; results identical: %s"
              % (best, t["lloyd"] / t[best],
                 "" if a.no_sklearn else ", %.2fx faster than scikit-learn Elkan"
                 % (t["sk-elkan"] / t[best]), "yes" if same else "NO"), flush=True)
        new = not os.path.exists(csv)
        with open(csv, "a") as f:
            if new:
                f.write("date,host,case,n,d,k,threads,max_iter,iterations,lloyd_s,hamerly_s,"
                        "yinyang_s,sklearn_lloyd_s,sklearn_elkan_s,identical,sklearn_version,"
                        "repeats\n")
            f.write(",".join(str(v) for v in [
                datetime.datetime.now().isoformat(timespec="seconds"), platform.node(), case,
                n, d, k, a.threads, a.max_iter, iters["lloyd"], "%.3f" % t["lloyd"],
                "%.3f" % t["hamerly"], "%.3f" % t["yinyang"],
                "%.3f" % t.get("sk-lloyd", float("nan")),
                "%.3f" % t.get("sk-elkan", float("nan")), int(same), sklearn.__version__,
                a.repeats]) + "\n")
    print("bench-pruned: appended to results/bench-pruned.csv")


if __name__ == "__main__":
    main()
