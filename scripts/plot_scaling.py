#!/usr/bin/python3
"""Plot and tabulate a scaling study (the CSV of scripts/scaling.sh).

For each problem (n, d, k, dtype, mode) in the CSV:
  * speedup T(1 core) / T(p) against p = ranks x threads, with the ideal line and the
    Amdahl fit T(p) = T(1) (f + (1 - f) / p) (least squares on the runs that are not
    oversubscribed; f is the serial fraction);
  * parallel efficiency speedup / p (weak scaling, where the rows per rank are fixed:
    T(1 rank) / T(P ranks) at the same thread count; its "speedup" is P times that);
  * a stacked per-phase breakdown (read / init / assign / update / allreduce / write,
    mean seconds over ranks) per configuration, as the seeds' profiling tables.
Writes PREFIX.png and PREFIX.md (the table as Markdown) next to the CSV unless --out.
Repeated configurations are reduced to their median.

Usage: plot_scaling.py CSV [--out PREFIX] [--title TEXT]
"""
import argparse
import csv
import os
import statistics
import sys

PHASES = ["read", "init", "assign", "wait", "update", "allreduce", "write"]


def amdahl_fit(p, t):
    """Serial fraction f of T(p) = T1 (f + (1 - f)/p), T1 = t at p = 1.

    Least squares of y = T(p)/T1 - 1/p = f (1 - 1/p) over the points with p > 1;
    returns f clipped to [0, 1] (None without a point at p = 1 and one above)."""
    t1 = [ti for pi, ti in zip(p, t) if pi == 1]
    pts = [(1 - 1 / pi, ti / t1[0] - 1 / pi) for pi, ti in zip(p, t) if pi > 1] if t1 else []
    sxx = sum(x * x for x, _ in pts)
    if not pts or sxx == 0:
        return None
    f = sum(x * y for x, y in pts) / sxx
    return min(max(f, 0.0), 1.0)


def amdahl_speedup(f, p):
    return 1.0 / (f + (1.0 - f) / p)


def load(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        sys.exit("plot_scaling.py: %s has no rows" % path)
    groups = {}
    for r in rows:
        key = (r["mode"], int(r["n"]) if r["mode"] == "strong" else int(r["n"]) // int(r["ranks"]),
               int(r["d"]), int(r["k"]), r["dtype"])
        conf = (int(r["ranks"]), int(r["threads"]))
        groups.setdefault(key, {}).setdefault(conf, []).append(r)
    return groups


def summarise(confs):
    """One record per (ranks, threads): medians of the repeats."""
    out = []
    for (ranks, threads), rs in sorted(confs.items(), key=lambda c: (c[0][0] * c[0][1], c[0])):
        med = lambda col: statistics.median(float(r[col]) for r in rs)  # noqa: E731
        rec = {"ranks": ranks, "threads": threads, "p": ranks * threads,
               "over": any(int(r["oversubscribed"]) for r in rs), "runs": len(rs),
               "t": med("seconds_per_iteration"), "passes": med("passes"),
               "n": int(rs[0]["n"]), "rss": med("rss_mb_max")}
        for ph in PHASES:
            rec[ph] = med(ph + "_mean")
        out.append(rec)
    return out


def analyse(mode, recs):
    """Speedup and efficiency. Strong: against the 1-rank 1-thread run, efficiency =
    speedup / cores. Weak: against the 1-rank run with the same thread count (the work
    per rank is fixed, so the ideal time is flat), efficiency = T(1 rank) / T(P ranks)."""
    t1 = next((r["t"] for r in recs if r["p"] == 1), None)
    for r in recs:
        if mode == "weak":
            base = next((b["t"] for b in recs if b["ranks"] == 1 and b["threads"] == r["threads"]),
                        None)
            r["speedup"] = r["ranks"] * base / r["t"] if base else float("nan")
            r["eff"] = base / r["t"] if base else float("nan")
        else:
            r["speedup"] = t1 / r["t"] if t1 else float("nan")
            r["eff"] = r["speedup"] / r["p"] if t1 else float("nan")
        loop = r["assign"] + r["wait"] + r["update"] + r["allreduce"]
        r["ar_share"] = (r["allreduce"] / loop) if loop > 0 else float("nan")
        r["wait_share"] = (r["wait"] / loop) if loop > 0 else float("nan")
    fit = [r for r in recs if not r["over"]]
    return amdahl_fit([r["p"] for r in fit], [r["t"] for r in fit]) if mode == "strong" else None


def markdown(key, recs, f):
    mode, n, d, k, dtype = key
    size = "n = %d" % n if mode == "strong" else "%d rows per rank" % n
    head = (["ranks", "threads", "cores", "s/iteration", "speedup", "efficiency",
             "allreduce share", "wait share"] + ["%s s" % ph for ph in PHASES] + ["peak RSS/rank MB", "note"])
    lines = ["### %s scaling: %s, d = %d, k = %d, %s" % (mode, size, d, k, dtype), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in recs:
        note = "oversubscribed" if r["over"] else ""
        if r["runs"] > 1:
            note = (note + "; " if note else "") + "median of %d" % r["runs"]
        lines.append("| %d | %d | %d | %.4g | %.2f | %.0f%% | %.2f%% | %.2f%% | %s | %.0f | %s |" % (
            r["ranks"], r["threads"], r["p"], r["t"], r["speedup"], 100 * r["eff"],
            100 * r["ar_share"], 100 * r["wait_share"], " | ".join("%.3g" % r[ph] for ph in PHASES), r["rss"], note))
    if f is not None:
        lines += ["", "Amdahl fit (runs not oversubscribed): serial fraction f = %.4f, "
                  "so at most %.0fx speedup on any number of cores." % (
                      f, 1 / f if f > 0 else float("inf"))]
    lines += ["", "Phases are seconds summed over the run, mean over ranks. allreduce share: "
              "the allreduce (communication alone: a barrier before it takes the load "
              "imbalance, shown as wait) over the iteration loop (assign + wait + update + "
              "allreduce)."]
    return "\n".join(lines) + "\n"


def plot(groups_out, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = len(groups_out)
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4.2 * rows), squeeze=False)
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
    for ax, (key, recs, f) in zip(axes, groups_out):
        mode, n, d, k, dtype = key
        label = "%s: %s d=%d k=%d" % (mode, ("n=%d" % n) if mode == "strong"
                                      else "%d rows/rank" % n, d, k)
        ps = [r["p"] for r in recs]
        pmax = max(ps)
        ok = [r for r in recs if not r["over"]]
        over = [r for r in recs if r["over"]]
        ax[0].plot([1, pmax], [1, pmax] if mode == "strong" else [1, 1], "k--", lw=1,
                   label="ideal")
        ax[0].plot([r["p"] for r in ok], [r["speedup"] if mode == "strong" else r["eff"]
                                          for r in ok], "o", color=colors[0], label="measured")
        if over:
            ax[0].plot([r["p"] for r in over], [r["speedup"] if mode == "strong" else r["eff"]
                                                for r in over], "x", color=colors[3],
                       label="oversubscribed")
        if f is not None:
            grid = [1 + i * (pmax - 1) / 50 for i in range(51)]
            ax[0].plot(grid, [amdahl_speedup(f, p) for p in grid], "-", color=colors[1],
                       label="Amdahl f=%.3f" % f)
        ax[0].set_xlabel("cores (ranks x threads)")
        ax[0].set_ylabel("speedup" if mode == "strong" else "T(1)/T(p)")
        ax[0].set_title(label)
        ax[0].legend(fontsize=8)
        ax[1].axhline(100, color="k", ls="--", lw=1)
        ax[1].bar(range(len(recs)), [100 * r["eff"] for r in recs],
                  color=[colors[3] if r["over"] else colors[0] for r in recs])
        ax[1].set_xticks(range(len(recs)))
        ax[1].set_xticklabels(["%dx%d" % (r["ranks"], r["threads"]) for r in recs])
        ax[1].set_xlabel("ranks x threads")
        ax[1].set_ylabel("parallel efficiency %")
        bottom = [0.0] * len(recs)
        for i, ph in enumerate(PHASES):
            vals = [r[ph] for r in recs]
            ax[2].bar(range(len(recs)), vals, bottom=bottom, color=colors[i], label=ph)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax[2].set_xticks(range(len(recs)))
        ax[2].set_xticklabels(["%dx%d" % (r["ranks"], r["threads"]) for r in recs])
        ax[2].set_xlabel("ranks x threads")
        ax[2].set_ylabel("seconds (mean over ranks)")
        ax[2].set_title("phases, %d passes" % int(recs[0]["passes"]))
        ax[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--out", help="output prefix [CSV without .csv]")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    prefix = a.out or os.path.splitext(a.csv)[0]
    out, md = [], []
    for key, confs in sorted(load(a.csv).items()):
        recs = summarise(confs)
        f = analyse(key[0], recs)
        out.append((key, recs, f))
        md.append(markdown(key, recs, f))
    with open(prefix + ".md", "w") as fh:
        fh.write("\n".join(md))
    plot(out, prefix + ".png", a.title)
    sys.stdout.write("\n".join(md))
    print("\nplot_scaling.py: wrote %s.png and %s.md" % (prefix, prefix))


if __name__ == "__main__":
    main()
