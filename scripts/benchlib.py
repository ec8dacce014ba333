"""What the benchmark scripts share: one bin/kmeans run in one MPI rank, timed,
with its --summary-json record read back."""
import json
import os
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
KMEANS = os.path.join(ROOT, "bin", "kmeans")


def run_kmeans(path, k, iters, threads, algorithm="lloyd", extra=(), keep_output=None,
               env_extra=None, init="first"):
    """Run `kmeans -i path -k k --init INIT --tol 0 --max-iter iters`; return
    (wall seconds, summary dict). keep_output: path to keep the result at (else
    it is removed). env_extra: more environment, passed to the rank."""
    js = os.path.join(ROOT, "results", ".bench-%d.json" % os.getpid())
    out = keep_output or os.path.join(ROOT, "results", ".bench-%d.h5" % os.getpid())
    if os.path.exists(js):
        os.remove(js)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **(env_extra or {}))
    forward = ["-x", "OMP_NUM_THREADS"]
    for name in env_extra or {}:
        forward += ["-x", name]
    t = time.perf_counter()
    subprocess.run(["mpirun", "-q", "-np", "1", "--bind-to", "none"] + forward +
                   [KMEANS, "-i", path, "-k", str(k), "--init", init, "--tol", "0",
                    "--max-iter", str(iters), "--algorithm", algorithm, "-q", "-o", out,
                    "--summary-json", js] + list(extra),
                   check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    with open(js) as f:
        s = json.loads(f.readline())
    os.remove(js)
    if not keep_output:
        os.remove(out)
    return wall, s


def fit_seconds(s):
    """The fit's own time in a run's summary: init and the iteration phases, without
    MPI start-up, reading or writing (the slowest rank's)."""
    return sum(s[p]["max"] for p in ("init", "assign", "wait", "update", "allreduce"))


def bench_data(n, d, who, kind="manifold"):
    """data/bench-NxD-f32.h5 from the manifold generator (seed 1), made if missing;
    other kinds of scripts/gen_data.py in data/bench-NxD-f32-KIND.h5."""
    import sys
    path = os.path.join(ROOT, "data", "bench-%dx%d-f32%s.h5"
                        % (n, d, "" if kind == "manifold" else "-" + kind))
    if not os.path.exists(path):
        print("%s: generating %s" % (who, path), flush=True)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_data.py"), path,
                        "--n", str(n), "--d", str(d), "--kind", kind, "--dtype",
                        "float32", "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    return path


def append_csv(name, header, rows):
    """Append rows (lists) to results/NAME, with header first in a new file;
    each row is prefixed with the date and host."""
    import datetime
    import platform
    path = os.path.join(ROOT, "results", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    new = not os.path.exists(path)
    if not new:   # columns added at the end since the file began: old rows get empty cells
        with open(path) as f:
            lines = f.read().splitlines()
        old = lines[0][len("date,host,"):]
        if old != header:
            if not header.startswith(old + ","):
                raise SystemExit("%s: its columns are not %s; move it aside" % (path, header))
            pad = "," * (header.count(",") - old.count(","))
            with open(path + ".tmp", "w") as f:
                f.write("date,host," + header + "\n")
                f.writelines(line + pad + "\n" for line in lines[1:])
            os.replace(path + ".tmp", path)
    now = datetime.datetime.now().isoformat(timespec="seconds")
    with open(path, "a") as f:
        if new:
            f.write("date,host," + header + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in [now, platform.node()] + list(r)) + "\n")
    return path
