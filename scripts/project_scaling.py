#!/usr/bin/python3
"""Project strong and weak scaling of hpc-kmeans to many ranks, before you spend
the allocation.

One Lloyd iteration on P ranks of c cores each costs
    T(P) = n k d / (P c R)  +  T_allreduce(P, m)
where R is the kernel rate per core (point-centroid-feature terms per second,
measured: the best run in a scaling CSV of scripts/scaling.sh that was not
oversubscribed) and m the bytes of the one MPI_Allreduce per iteration. hpc-kmeans
sums exactly in fixed point, so m is not 8 (k d + k) bytes but
    m = 8 ((k d + 1) L + k + 2 + 3),   L = ceil(126 / (52 - ceil(log2(P + 1)))) + 1
integer-valued limbs (include/fixed.h: L = 4 up to 1023 ranks, then 5 below 2^20).
The allreduce follows the latency-bandwidth model of Rabenseifner's algorithm
(reduce-scatter + allgather), what MPI libraries use for long vectors:
    T_allreduce = 2 log2(P) alpha + 2 (P - 1)/P m beta + (P - 1)/P m gamma
alpha: latency per message, beta: seconds per byte on the network, gamma:
seconds per byte of the reduction arithmetic. The defaults (alpha 3 us, beta
1/12 GB/s, gamma 1/4 GB/s) are those of an InfiniBand HDR cluster; measure yours
with osu_latency / osu_bw and pass them. The measured allreduce of the CSV (shared
memory, one node) is printed beside the model for P = 2.

Strong: n fixed. Weak: n = --n rows per rank times P.
Usage: project_scaling.py --n N --d D --k K [--cores-per-rank C] [--csv CSV]
                          [--rate R] [--alpha S] [--beta S] [--gamma S] [--weak]
"""
import argparse
import csv
import math
import sys


def limbs(ranks):
    lg = 0
    while (1 << lg) < ranks + 1:
        lg += 1
    bits = 52 - lg
    return (126 + bits - 1) // bits + 1


def allreduce_bytes(k, d, ranks):
    """Bytes each rank contributes to an iteration's allreduce (fit.c + fixed.h)."""
    # (sums + per-cluster squared norms) in limbs; counts, changed, distances, the
    # rows moved per cluster; the 3 flags of fit.c
    return 8 * ((k * d + k) * limbs(ranks) + 2 * k + 2 + 3)


def allreduce_seconds(m, ranks, alpha, beta, gamma):
    if ranks == 1:
        return 0.0
    frac = (ranks - 1) / ranks
    return 2 * math.log2(ranks) * alpha + 2 * frac * m * beta + frac * m * gamma


def measured_rate(path):
    """(terms per second per core, best row, allreduce rows) from a scaling CSV."""
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh)]
    best, rate = None, 0.0
    for r in rows:
        if int(r["oversubscribed"]):
            continue
        cores = int(r["ranks"]) * int(r["threads"])
        per_pass = float(r["assign_mean"]) / max(float(r["passes"]), 1)
        if per_pass <= 0:
            continue
        rr = int(r["n"]) * int(r["k"]) * int(r["d"]) / per_pass / cores
        if rr > rate:
            best, rate = r, rr
    if best is None:
        sys.exit("project_scaling.py: no usable run in %s" % path)
    return rate, best, [r for r in rows if int(r["ranks"]) > 1 and not int(r["oversubscribed"])]


def project(n, d, k, cores, rate, alpha, beta, gamma, weak, ranks_list):
    out = []
    for p in ranks_list:
        rows = n * p if weak else n
        comp = rows * k * d / (p * cores * rate)
        m = allreduce_bytes(k, d, p)
        ar = allreduce_seconds(m, p, alpha, beta, gamma)
        out.append({"P": p, "rows": rows, "compute": comp, "allreduce": ar,
                    "total": comp + ar, "bytes": m})
    t1 = out[0]["total"]
    for r in out:
        r["eff"] = (t1 / r["total"]) if weak else (t1 / (r["P"] * r["total"]))
        r["share"] = r["allreduce"] / r["total"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="rows (weak: rows per rank)")
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--cores-per-rank", type=int, default=1)
    ap.add_argument("--csv", default="results/scaling-strong.csv",
                    help="measured runs giving the kernel rate [%(default)s]")
    ap.add_argument("--rate", type=float, help="kernel rate per core, terms/s (else from --csv)")
    ap.add_argument("--alpha", type=float, default=3e-6)
    ap.add_argument("--beta", type=float, default=1 / 12e9)
    ap.add_argument("--gamma", type=float, default=1 / 4e9)
    ap.add_argument("--weak", action="store_true")
    ap.add_argument("--max-ranks", type=int, default=1024)
    a = ap.parse_args()
    if a.rate:
        rate = a.rate
        print("kernel rate: %.3g terms/s per core (given)" % rate)
    else:
        rate, best, multi = measured_rate(a.csv)
        print("kernel rate: %.3g terms/s per core, measured in %s (n=%s d=%s k=%s, %s ranks x "
              "%s threads)" % (rate, a.csv, best["n"], best["d"], best["k"], best["ranks"],
                               best["threads"]))
        for r in multi[:3]:
            m = int(r["allreduce_bytes"])
            meas = float(r["allreduce_mean"]) / max(float(r["passes"]), 1)
            print("  measured allreduce, %s ranks, %d bytes: %.1f us (shared memory); model "
                  "with the network below: %.1f us" % (
                      r["ranks"], m, 1e6 * meas,
                      1e6 * allreduce_seconds(m, int(r["ranks"]), a.alpha, a.beta, a.gamma)))
    ranks = [1 << i for i in range(0, 31) if (1 << i) <= a.max_ranks]
    res = project(a.n, a.d, a.k, a.cores_per_rank, rate, a.alpha, a.beta, a.gamma, a.weak, ranks)
    mode = "weak (%d rows per rank)" % a.n if a.weak else "strong (n = %d)" % a.n
    print("%s scaling, d=%d k=%d, %d core(s) per rank; alpha=%.3g s beta=%.3g s/B gamma=%.3g s/B"
          % (mode, a.d, a.k, a.cores_per_rank, a.alpha, a.beta, a.gamma))
    print()
    print("| ranks | s/iteration | compute s | allreduce s | allreduce bytes | allreduce share "
          "| efficiency |")
    print("|---|---|---|---|---|---|---|")
    for r in res:
        print("| %d | %.4g | %.4g | %.3g | %d | %.1f%% | %.0f%% |" % (
            r["P"], r["total"], r["compute"], r["allreduce"], r["bytes"], 100 * r["share"],
            100 * r["eff"]))
    over10 = next((r["P"] for r in res if r["share"] > 0.10), None)
    dominate = next((r["P"] for r in res if r["allreduce"] > r["compute"]), None)
    print()
    print("allreduce above 10%% of an iteration from %s; above the compute from %s." % (
        "%d ranks" % over10 if over10 else "no rank count up to %d" % ranks[-1],
        "%d ranks" % dominate if dominate else "no rank count up to %d" % ranks[-1]))


if __name__ == "__main__":
    main()
