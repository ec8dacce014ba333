#!/usr/bin/python3
"""Append one scaling-study row to a CSV from kmeans' --summary-json record.

Reads the last JSON line of SUMMARY (what `kmeans --summary-json` appends), adds
the run's context (date, host, git commit, study mode, oversubscription) and
appends one row to CSV, writing the header first if the file is new. No
scraping of the human-oriented output: every number comes from the JSON.

Usage: scaling_row.py SUMMARY.json CSV --mode strong|weak [--cores N] [--commit C]
"""
import argparse
import csv
import datetime
import json
import os
import socket
import subprocess
import sys

PHASES = ["read", "init", "assign", "wait", "update", "allreduce", "write"]
COLUMNS = (["date", "host", "commit", "mode", "n", "d", "k", "dtype", "algorithm", "ranks",
            "threads",
            "cores_used", "oversubscribed", "iterations", "passes", "seconds_per_iteration"]
           + ["%s_%s" % (p, s) for p in PHASES for s in ("min", "mean", "max")]
           + ["rss_mb_min", "rss_mb_mean", "rss_mb_max", "allreduce_bytes"])


def git_commit():
    try:
        root = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def row_from(rec, mode, cores, commit):
    """One CSV row (dict) from a --summary-json record."""
    ranks, threads = int(rec["ranks"]), int(rec["threads"])
    passes = max(int(rec["passes"]), 1)
    # seconds per iteration: the loop's phases, mean over ranks (a rank that waits
    # for slower ones does so in `wait`, so assign + wait is the same wall time on
    # every rank), per assignment pass (the final E-step pass included)
    loop = sum(rec[p]["mean"] for p in ("assign", "wait", "update", "allreduce"))
    row = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": socket.gethostname(), "commit": commit, "mode": mode,
        "n": rec["n"], "d": rec["d"], "k": rec["k"], "dtype": rec.get("dtype", ""),
        "algorithm": rec.get("algorithm", "lloyd"),
        "ranks": ranks, "threads": threads, "cores_used": ranks * threads,
        "oversubscribed": int(ranks * threads > cores),
        "iterations": rec["iterations"], "passes": passes,
        "seconds_per_iteration": "%.6g" % (loop / passes),
        "rss_mb_min": rec["rss_mb"]["min"], "rss_mb_mean": rec["rss_mb"]["mean"],
        "rss_mb_max": rec["rss_mb"]["max"], "allreduce_bytes": rec["allreduce_bytes"],
    }
    for p in PHASES:
        for s in ("min", "mean", "max"):
            row["%s_%s" % (p, s)] = "%.6g" % rec[p][s]
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("summary")
    ap.add_argument("csv")
    ap.add_argument("--mode", choices=["strong", "weak"], required=True)
    ap.add_argument("--cores", type=int, default=os.cpu_count(),
                    help="cores available (rows with ranks x threads above are marked "
                         "oversubscribed) [this machine's]")
    ap.add_argument("--commit", default=None)
    a = ap.parse_args()
    with open(a.summary) as f:
        lines = [l for l in f if l.strip()]
    if not lines:
        sys.exit("scaling_row.py: %s holds no summary record" % a.summary)
    row = row_from(json.loads(lines[-1]), a.mode, a.cores, a.commit or git_commit())
    new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
    if not new:
        with open(a.csv, newline="") as f:
            header = next(csv.reader(f), [])
        if header != COLUMNS:
            sys.exit("scaling_row.py: %s has other columns (an older format?): write to a new "
                     "file" % a.csv)
    with open(a.csv, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)
    print("  ranks=%s threads=%s n=%s: %s s/iteration" % (row["ranks"], row["threads"], row["n"],
                                                        row["seconds_per_iteration"]))


if __name__ == "__main__":
    main()
