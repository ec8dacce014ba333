#!/usr/bin/python3
"""What a run's memory plan said against what a rank used.

Runs bin/kmeans on FILE and on its first 64 points (a copy in a temporary file:
MPI, HDF5, OpenMP and the binary, which the plan does not count), with the same
arguments, and prints the peak resident memory of the first above the second's
(max over ranks minus min over ranks, MiB) against the plan (--summary-json
planned_bytes, MiB), whether it streamed, and its read phase. BENCH.md's memory
figures (eleventh step) and test_outofcore.py's MemoryPlan use it.

Usage: plan_check.py FILE [--dataset /data] [--transpose] [--ranks R] [--threads T]
                     [-- KMEANS_ARGS...]      (default: -k 16 --max-iter 3)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def mpirun(ranks, threads, args):
    """(exit code, stdout, stderr) of bin/kmeans under mpirun."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS=str(threads))
    p = subprocess.run(["mpirun", "-q", "-np", str(ranks), "--oversubscribe", "--bind-to",
                        "none", "-x", "OMP_NUM_THREADS", os.path.join(ROOT, "bin", "kmeans")]
                       + args, capture_output=True, text=True, env=env, timeout=600)
    return p.returncode, p.stdout, p.stderr


def summary(run, ranks, threads, path, args, tmp):
    js = os.path.join(tmp, "plan-%d.json" % len(os.listdir(tmp)))
    rc, out, err = run(ranks, threads, ["-i", path, "-q", "-o", os.path.join(tmp, "out.h5"),
                                        "--summary-json", js] + args)
    if rc != 0:
        raise RuntimeError("kmeans %s failed: %s" % (" ".join(args), err.strip()))
    with open(js) as f:
        return json.loads(f.readline())


def measure(run, ranks, threads, path, small, args, tmp):
    """The run of path against that of small (the same matrix, 64 points): MiB used
    above the baseline, MiB planned, streamed, read seconds."""
    base = summary(run, ranks, threads, small, args, tmp)
    full = summary(run, ranks, threads, path, args, tmp)
    return {"used": full["rss_mb"]["max"] - base["rss_mb"]["min"],
            "planned": full["planned_bytes"] / 2.0 ** 20,
            "streamed": full["streamed"], "read": full["read"]["max"]}


def main():
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1:] if "--" in argv else ["-k", "16", "--max-iter", "3"]
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--dataset", default="/data")
    ap.add_argument("--transpose", action="store_true")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import h5py
    with tempfile.TemporaryDirectory(prefix="plan-check-") as tmp:
        small = os.path.join(tmp, "small.h5")
        with h5py.File(a.file, "r") as f, h5py.File(small, "w") as g:
            ds = f[a.dataset]
            g[a.dataset] = ds[:, :64] if a.transpose else ds[:64]
        args = ["--dataset", a.dataset] + (["--transpose"] if a.transpose else []) + rest
        m = measure(mpirun, a.ranks, a.threads, a.file, small, args, tmp)
    print("%s %s, %d ranks x %d threads: %.1f MiB used above the 64-point run, %.1f planned, "
          "%s, read %.2f s" % (a.file, " ".join(args), a.ranks, a.threads, m["used"],
                               m["planned"], "streamed" if m["streamed"] else "in core",
                               m["read"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
