#!/usr/bin/python3
"""make bench: seconds per Lloyd iteration, ours vs scikit-learn, measured now.

Same data (n x d float32, the 'manifold' generator: Lloyd keeps moving, so no run
stops early), same init (the first k rows), tol 0, the same thread count for
both (OMP_NUM_THREADS, default: all cores, in one MPI rank). Each side runs
twice, with I1 and I2 iterations; (t2 - t1) / (I2 - I1) is the cost of one
iteration with start-up, reading and writing cancelled out. This machine may be
shared or virtual, so the runs alternate ours / scikit-learn --repeat times and each
time is the minimum over the repeats.
Prints a table and appends one line per run to results/bench.csv.
"""
import argparse
import datetime
import os
import platform
import time

from benchlib import bench_data, run_kmeans

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ours(path, k, iters, threads):
    wall, s = run_kmeans(path, k, iters, threads)
    assert s["iterations"] == iters, s
    return wall, s


def sklearn_fit(x, k, iters):
    from sklearn.cluster import KMeans
    t = time.perf_counter()
    km = KMeans(n_clusters=k, init=x[:k], n_init=1, tol=0.0, max_iter=iters,
                algorithm="lloyd").fit(x)
    wall = time.perf_counter() - t
    assert km.n_iter_ == iters, km.n_iter_
    return wall, km


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--iters", type=int, nargs=2, default=[5, 25], metavar=("I1", "I2"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS",
                                                                      os.cpu_count())))
    a = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(a.threads)      # before numpy/sklearn load
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    import h5py
    import sklearn

    os.makedirs(os.path.join(ROOT, "data"), exist_ok=True)
    os.makedirs(os.path.join(ROOT, "results"), exist_ok=True)
    path = bench_data(a.n, a.d, "bench")
    with h5py.File(path, "r") as f:
        x = f["data"][()]
    i1, i2 = a.iters
    print("bench: %d x %d float32, k=%d, init first, tol 0, %d threads, iterations %d and %d"
          % (a.n, a.d, a.k, a.threads, i1, i2), flush=True)

    o1 = o2 = s1 = s2w = float("inf")
    for _ in range(a.repeat):
        o1 = min(o1, ours(path, a.k, i1, a.threads)[0])
        t, s2 = ours(path, a.k, i2, a.threads)
        o2 = min(o2, t)
        s1 = min(s1, sklearn_fit(x, a.k, i1)[0])
        t, km = sklearn_fit(x, a.k, i2)
        s2w = min(s2w, t)
    ours_it = (o2 - o1) / (i2 - i1)
    skl_it = (s2w - s1) / (i2 - i1)
    rel = abs(s2["inertia"] - km.inertia_) / km.inertia_
    gterms = 1.0 * a.n * a.k * a.d / ours_it / 1e9     # (x_ij - c_j)^2 terms per second

    print("%-28s %12s %12s" % ("", "s/iteration", "ratio"))
    print("%-28s %12.4f %12.2f" % ("hpc-kmeans lloyd", ours_it, ours_it / skl_it))
    print("%-28s %12.4f %12.2f" % ("scikit-learn %s lloyd" % sklearn.__version__, skl_it, 1.0))
    print("ours: assign %.4f s/iter (%.1f G point-centroid-feature terms/s), "
          "inertia after %d iterations differs from sklearn's by %.1e relative"
          % (s2["assign"]["mean"] / i2, gterms, i2, rel))
    line = ",".join(str(v) for v in [
        datetime.datetime.now().isoformat(timespec="seconds"), platform.node(),
        '"%s"' % cpu_name(), a.n, a.d, a.k, a.threads, i1, i2, a.repeat, "%.5f" % ours_it,
        "%.5f" % skl_it, "%.3f" % (ours_it / skl_it), sklearn.__version__])
    csv = os.path.join(ROOT, "results", "bench.csv")
    new = not os.path.exists(csv)
    with open(csv, "a") as f:
        if new:
            f.write("date,host,cpu,n,d,k,threads,iters1,iters2,repeat,ours_s_per_iter,"
                    "sklearn_s_per_iter,ratio,sklearn_version\n")
        f.write(line + "\n")
    print("bench: appended to results/bench.csv")


if __name__ == "__main__":
    main()
