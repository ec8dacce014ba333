"""Helpers for the integration tests: run bin/kmeans under mpirun, read results."""
import os
import subprocess
import tempfile

import h5py
import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KMEANS = os.path.join(ROOT, "bin", "kmeans")
CONFIGS = [(r, t) for r in (1, 2, 3) for t in (1, 2)]     # ranks x OMP threads


def mpirun_cmd(ranks, threads, args, env=None):
    """The mpirun command line for kmeans args, forwarding env's names to the ranks
    (run it with env added to the environment)."""
    cmd = ["mpirun", "-q", "-np", str(ranks), "--oversubscribe", "--bind-to", "none",
           "-x", "OMP_NUM_THREADS=%d" % threads, "-x", "OMP_WAIT_POLICY"]
    for key in env or {}:
        cmd += ["-x", key]
    return cmd + [KMEANS] + args


def mpirun(ranks, threads, args, timeout=120, cwd=None, env=None):
    """Run kmeans (env: more environment for the ranks); return (exit code, stdout,
    stderr). A hang fails the test."""
    p = subprocess.run(mpirun_cmd(ranks, threads, args, env), capture_output=True, text=True,
                       timeout=timeout, cwd=cwd, env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def write_h5(path, x, name="data"):
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=x)
    return path


def read_result(path):
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in ("centroids", "labels", "cluster_sizes")}
        out["history"] = {k: f["history"][k][()] for k in f["history"]}
        out["timing"] = {k: f["timing"][k][()] for k in f["timing"]}
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v)
                        for k, v in f.attrs.items()}
    return out


class TempDir:
    def __init__(self):
        self._td = tempfile.TemporaryDirectory(prefix="kmtest-")
        self.path = self._td.name

    def __call__(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        self._td.cleanup()


def ref_lloyd(x, init, max_iter=300, tol=0.0):
    """scikit-learn's float64 Lloyd from the given centroids."""
    from sklearn.cluster import KMeans
    km = KMeans(n_clusters=len(init), init=init, n_init=1, tol=tol, max_iter=max_iter,
                algorithm="lloyd").fit(np.asarray(x, dtype=np.float64))
    return km
