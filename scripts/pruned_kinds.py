#!/usr/bin/python3
"""Do the pruned algorithms' gains hold beyond the rank-3 manifold?

Issue 8's four shapes, scaled down (a 300,000 x 32, k = 64; b 20,000 x 784, k = 256;
c 5,000 x 20,000, k = 16; d 500,000 x 3, k = 512), each from scripts/gen_data.py's
'manifold' (what make bench-pruned uses) and 'spectrum' (overlapping groups in 100
latent dimensions with decaying scales) kinds: our Lloyd, Hamerly, Yinyang and auto
to convergence (init first, tol 0, at most 300 iterations, one rank), the program's
own fit seconds. Prints one line per case and data kind.

Usage: pruned_kinds.py [--cases a,b,c,d] [--threads N]
"""
import argparse
import os

from benchlib import bench_data, fit_seconds, run_kmeans

CASES = {"a": (300_000, 32, 64), "b": (20_000, 784, 256), "c": (5_000, 20_000, 16),
         "d": (500_000, 3, 512)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="a,b,c,d")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    for case in a.cases.split(","):
        n, d, k = CASES[case]
        for kind in ("manifold", "spectrum"):
            path = bench_data(n, d, "pruned-kinds", kind)
            t = {}
            for alg in ("lloyd", "hamerly", "yinyang", "auto"):
                _, s = run_kmeans(path, k, 300, a.threads, algorithm=alg)
                t[alg] = (fit_seconds(s), s["iterations"])
            best = min(("hamerly", "yinyang"), key=lambda g: t[g][0])
            print("%s %-8s %dx%d k=%d: lloyd %.2f s (%d iterations), hamerly %.2f, "
                  "yinyang %.2f, auto %.2f; best %.2fx lloyd, auto %.2fx"
                  % (case, kind, n, d, k, t["lloyd"][0], t["lloyd"][1], t["hamerly"][0],
                     t["yinyang"][0], t["auto"][0], t["lloyd"][0] / t[best][0],
                     t["lloyd"][0] / t["auto"][0]), flush=True)


if __name__ == "__main__":
    main()
