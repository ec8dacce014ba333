#!/usr/bin/python3
"""Write a synthetic n x d matrix to HDF5 for demos, tests and benchmarks.

Kinds:
  blobs     k Gaussian clusters (easy; converges in a few iterations)
  manifold  points on a 3-D uniform manifold embedded in d dimensions plus small
            noise: Lloyd keeps moving for tens to hundreds of iterations, so
            per-iteration timings are not cut short by convergence. Rank 3: a
            method that exploits low rank looks better on it than on real data.
  spectrum  k overlapping Gaussian groups in min(d, 100) latent dimensions whose
            scales decay as j^-0.6 (as the singular values of expression
            matrices do), rotated into d dimensions, plus noise: no low rank to
            exploit, for checking that pruning gains hold beyond the manifold.
Usage: gen_data.py OUT.h5 --n N --d D [--kind manifold] [--dtype float32] [--seed S]
"""
import argparse
import sys

import h5py
import numpy as np


def make(kind, n, d, k, seed, dtype, block=1 << 18):
    rng = np.random.default_rng(seed)
    if kind == "blobs":
        centers = rng.uniform(-10, 10, size=(k, d))
    elif kind == "spectrum":
        r = min(d, 100)
        scale = (1.0 + np.arange(r)) ** -0.6
        q, _ = np.linalg.qr(rng.standard_normal((d, r)))   # r orthonormal columns
        rot = q.T
        means = rng.standard_normal((k, r)) * scale
    else:
        basis = rng.standard_normal((3, d)) / np.sqrt(3)
    for start in range(0, n, block):
        m = min(block, n - start)
        if kind == "blobs":
            lab = rng.integers(0, k, size=m)
            x = centers[lab] + rng.standard_normal((m, d))
        elif kind == "spectrum":
            lab = rng.integers(0, k, size=m)
            z = means[lab] + 0.7 * rng.standard_normal((m, r)) * scale
            x = z @ rot + 0.05 * rng.standard_normal((m, d))
        else:
            u = rng.uniform(0, 1, size=(m, 3))
            x = np.sin(2.0 * np.pi * u) @ basis + 0.01 * rng.standard_normal((m, d))
        yield start, x.astype(dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--k", type=int, default=8, help="clusters (blobs) or groups (spectrum)")
    ap.add_argument("--kind", choices=["blobs", "manifold", "spectrum"], default="manifold")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", default="data")
    a = ap.parse_args()
    with h5py.File(a.out, "w") as f:
        ds = f.create_dataset(a.dataset, (a.n, a.d), dtype=a.dtype)
        for start, x in make(a.kind, a.n, a.d, a.k, a.seed, a.dtype):
            ds[start:start + len(x)] = x
        ds.attrs["generator"] = " ".join(sys.argv)
    print(f"wrote {a.out}:/{a.dataset} {a.n} x {a.d} {a.dtype} ({a.kind})")


if __name__ == "__main__":
    main()
