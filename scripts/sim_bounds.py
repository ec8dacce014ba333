#!/usr/bin/python3
"""Simulate bound-based pruning on a matrix (numpy, float64), to count how many rows
a pass would have to read under different bound rules before building one.

Lloyd's exact trajectory from the first k rows (tol 0) gives the centroids and labels
of every pass; each rule keeps per row an upper bound on its own centroid's distance
and k lower bounds (Elkan's, one per centroid), moved by the drifts, and reads a row
when some lower bound is not above its upper bound. Results BENCH.md quotes (eleventh
step) came from:

  sim_bounds.py refresh FILE K   rows read when a row read refreshes the bounds that
                                 failed (A, what Yinyang did), those and the 1, 2, 4
                                 least (B1, B2, B4), or all (C); and centroids scored
  sim_bounds.py net FILE K       bounds moved by the sum of the drifts since they were
                                 set, against the net displacement ||c_now - c_then||
  sim_bounds.py proj FILE K      rows a projection bound settles: the span of the
                                 starting centroids, and of the previous pass's

FILE: an HDF5 file with /data, or sk:NAME for scikit-learn's bundled load_NAME.
"""
import argparse
import sys

import numpy as np


def load(path):
    if path.startswith("sk:"):
        from sklearn import datasets
        return getattr(datasets, "load_" + path[3:])().data.astype(np.float64)
    import h5py
    with h5py.File(path, "r") as f:
        return f["data"][()].astype(np.float64)


class Lloyd:
    """Lloyd from the first k rows: centroids and labels pass by pass."""

    def __init__(self, x, k):
        self.x, self.k, self.x2 = x, k, (x * x).sum(1)
        self.c = x[:k].copy()
        self.d = self.dist(self.c)
        self.lab = self.d.argmin(1)

    def dist(self, c):
        return np.sqrt(np.maximum(self.x2[:, None] - 2 * self.x @ c.T + (c * c).sum(1)[None, :],
                                  0))

    def step(self):
        """The next pass: (drifts, new distances, new labels); the old labels stay."""
        c = np.array([self.x[self.lab == j].mean(0) if (self.lab == j).any() else self.c[j]
                      for j in range(self.k)])
        drift = np.sqrt(((c - self.c) ** 2).sum(1))
        self.c = c
        self.d = self.dist(c)
        return drift, self.d, self.d.argmin(1)


def refresh(x, k, passes):
    run = Lloyd(x, k)
    n, rows = len(x), np.arange(len(x))
    rules = {"A": 0, "B1": 1, "B2": 2, "B4": 4, "C": None}
    st = {r: dict(u=run.d[rows, run.lab].copy(), L=run.d.copy(), reads=0, scored=0)
          for r in rules}
    cum = np.zeros(k)
    for p in range(1, passes):
        drift, d, new = run.step()
        cum += drift
        for r, extra in rules.items():
            s = st[r]
            s["u"] += drift[run.lab]
            lm = s["L"] - cum[None, :]          # lower bounds stored as of cum = 0
            lm[rows, run.lab] = np.inf
            idx = np.where((s["u"][:, None] >= lm).any(1))[0]
            s["reads"] += len(idx)
            ue, lmi = d[idx, run.lab[idx]], lm[idx]
            ref = np.ones_like(lmi, bool) if extra is None else lmi <= ue[:, None]
            if extra:
                least = np.argsort(lmi, 1)[:, :extra]
                ref[np.arange(len(idx))[:, None], least] = True
            ref[new[idx] != run.lab[idx]] = True    # a row that moves is examined whole
            ref[np.arange(len(idx)), run.lab[idx]] = True
            li = s["L"][idx]
            li[ref] = (d[idx] + cum[None, :])[ref]
            s["L"][idx] = li
            s["scored"] += int(ref.sum())
            s["u"][idx] = d[idx, new[idx]]
        changed = int((new != run.lab).sum())
        run.lab = new
        if not changed:
            break
    print("rule  rows read  centroids scored")
    for r in rules:
        print("%-4s %10d %17d" % (r, st[r]["reads"], st[r]["scored"]))


def net(x, k, passes):
    run = Lloyd(x, k)
    rows = np.arange(len(x))
    hist, cum = [run.c.copy()], [np.zeros(k)]
    st = {v: dict(u=run.d[rows, run.lab].copy(), l=run.d.copy(), at=np.zeros(len(x), int),
                  reads=0) for v in ("sum", "net")}
    for p in range(1, passes):
        drift, d, new = run.step()
        hist.append(run.c.copy())
        cum.append(cum[-1] + drift)
        for v, s in st.items():
            s["u"] += drift[run.lab]
            if v == "sum":
                lost = cum[p][None, :] - np.array(cum)[s["at"]]
            else:
                table = np.array([np.sqrt(((hist[p] - hist[q]) ** 2).sum(1))
                                  for q in range(p + 1)])
                lost = table[s["at"]]
            lm = s["l"] - lost
            lm[rows, run.lab] = np.inf
            idx = np.where((s["u"][:, None] >= lm).any(1))[0]
            s["reads"] += len(idx)
            s["u"][idx] = d[idx, new[idx]]
            s["l"][idx] = d[idx]
            s["at"][idx] = p
        changed = int((new != run.lab).sum())
        run.lab = new
        if not changed:
            break
    print("rows read: sum of drifts %d, net displacement %d"
          % (st["sum"]["reads"], st["net"]["reads"]))


def proj(x, k, passes):
    run = Lloyd(x, k)
    rows = np.arange(len(x))

    def settled(basis, c, lab):
        px = x @ basis
        rx = np.sqrt(np.maximum(run.x2 - (px * px).sum(1), 0))
        pc = c @ basis
        rc = np.sqrt(np.maximum((c * c).sum(1) - (pc * pc).sum(1), 0))
        pd2 = np.maximum((px * px).sum(1)[:, None] - 2 * px @ pc.T + (pc * pc).sum(1)[None, :],
                         0)
        lb = np.sqrt(pd2 + (rx[:, None] - rc[None, :]) ** 2)
        ub = np.sqrt(pd2 + (rx[:, None] + rc[None, :]) ** 2)
        ua = ub[rows, lab]
        lb[rows, lab] = np.inf
        return (ua < lb.min(1)).mean()

    start = np.linalg.qr(run.c.T)[0]
    print("pass  changed  settled: starting span  previous pass's span")
    for p in range(1, passes):
        prev = np.linalg.qr(run.c.T)[0]   # the centroids the rows were last scored on
        _, _, new = run.step()
        print("%4d %8d %23.3f %21.3f" % (p, (new != run.lab).sum(),
                                         settled(start, run.c, run.lab),
                                         settled(prev, run.c, run.lab)))
        changed = int((new != run.lab).sum())
        run.lab = new
        if not changed:
            break


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["refresh", "net", "proj"])
    ap.add_argument("file")
    ap.add_argument("k", type=int)
    ap.add_argument("--passes", type=int, default=300)
    a = ap.parse_args()
    {"refresh": refresh, "net": net, "proj": proj}[a.what](load(a.file), a.k, a.passes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
