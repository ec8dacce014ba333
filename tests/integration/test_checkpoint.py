"""Checkpoint, signal and resume tests: every interrupted run, resumed until it
ends, must give the same bits as the run that was never interrupted (the
reference is computed in the same test run, without checkpoints)."""
import os
import shutil
import signal
import subprocess
import time
import unittest

import h5py
import numpy as np

from common import TempDir, mpirun, mpirun_cmd, read_result, write_h5

TMP = None
EXACT = ["/centroids", "/labels", "/cluster_sizes", "/history/inertia", "/history/shift",
         "/history/changed", "/history/empty"]
CHECKPOINTED = 75


def setUpModule():
    global TMP
    TMP = TempDir()


def tearDownModule():
    TMP.cleanup()


def manifold(n, d, seed):
    """Points on a 3-D manifold in d dimensions: Lloyd runs many iterations."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((3, d)) / np.sqrt(3)
    u = rng.uniform(0, 1, size=(n, 3))
    x = np.sin(2 * np.pi * u) @ basis + 0.01 * rng.standard_normal((n, d))
    return x.astype(np.float32)


def start(ranks, threads, args, env=None):
    """Start kmeans under mpirun in its own process group; stdout is a pipe."""
    return subprocess.Popen(mpirun_cmd(ranks, threads, args, env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, **(env or {})))


def wait_for_iteration(proc, it, timeout=60):
    """Read progress lines until iteration `it` is reported; returns the lines."""
    seen, t0 = [], time.time()
    for line in proc.stdout:
        seen.append(line)
        f = line.split()
        if f and f[0].isdigit() and int(f[0]) >= it:
            return seen
        if time.time() - t0 > timeout:
            break
    raise AssertionError("never saw iteration %d: %s" % (it, "".join(seen)[-500:]))


def ranks_of(proc):
    """PIDs of the kmeans processes mpirun started."""
    out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def kill_all(proc):
    """SIGKILL to the ranks and to mpirun, as a node failure: Open MPI puts each rank
    in a process group of its own, so killing mpirun's group alone leaves them running
    (and writing checkpoints). Returns once they are gone."""
    pids = ranks_of(proc)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    t0 = time.time()
    while any(os.path.exists("/proc/%d" % pid) for pid in pids) and time.time() - t0 < 30:
        time.sleep(0.05)


def finish(proc, timeout=120):
    try:
        so, se = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_all(proc)
        raise
    return proc.returncode, so, se


def ckpt_iteration(path):
    with h5py.File(path, "r") as f:
        return int(f.attrs["iteration"])


class CheckpointResume(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = write_h5(TMP("m.h5"), manifold(800000, 16, 3))
        # Lloyd: ~4 ms a pass on the 2-core Zen 5 host (268 passes), so a signal sent
        # after iteration 15 reaches a run that still has ~1 s to go. At 200,000 rows the
        # kernel had come down to ~1.3 ms a pass (0.13 s left after iteration 10) and a
        # loaded machine let the run finish first; so had auto (Hamerly) before that
        cls.args = ["-i", cls.data, "-k", "32", "--seed", "2", "--tol", "0", "--algorithm",
                    "lloyd"]
        cls.ref = TMP("ref.h5")
        rc, so, se = mpirun(2, 2, cls.args + ["-q", "-o", cls.ref])
        assert rc == 0, se
        cls.iterations = read_result(cls.ref)["attrs"]["iterations"]
        assert cls.iterations >= 60, "premise: the run must be long (%d)" % cls.iterations

    def assertSameAsReference(self, out):
        for obj in EXACT:
            p = subprocess.run(["h5diff", self.ref, out, obj], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, "%s differs: %s" % (obj, p.stdout[:300]))
        a, b = read_result(self.ref)["attrs"], read_result(out)["attrs"]
        for key in ("iterations", "stop_reason", "inertia", "tol_scale"):
            self.assertEqual(a[key], b[key], key)

    def resume_to_end(self, ckpt, out, ranks=3, threads=1):
        rc, so, se = mpirun(ranks, threads, self.args + ["-o", out, "--checkpoint", ckpt,
                                                         "--resume", "-q"])
        self.assertEqual(rc, 0, se)
        self.assertFalse(os.path.exists(ckpt), "the checkpoint is removed after success")
        self.assertSameAsReference(out)

    def interrupt(self, name, at_iteration, how):
        ckpt, out = TMP(name + "-ck.h5"), TMP(name + ".h5")
        p = start(2, 2, self.args + ["-o", out, "--checkpoint", ckpt])
        if at_iteration:
            wait_for_iteration(p, at_iteration)
        else:                                # the column titles: init is done, iteration 1 runs
            while not p.stdout.readline().lstrip().startswith("iter"):
                pass
        if how == "mpirun":
            p.send_signal(signal.SIGUSR1)    # mpirun forwards it to every rank
        else:
            pids = ranks_of(p)               # srun-style: each rank gets SIGTERM itself
            self.assertEqual(len(pids), 2)
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
        rc, so, se = finish(p)
        self.assertEqual(rc, CHECKPOINTED, se)
        self.assertIn("--resume", se)
        self.assertFalse(os.path.exists(out), "no result file for an unfinished run")
        it = ckpt_iteration(ckpt)
        self.assertGreaterEqual(it, at_iteration)
        self.assertLess(it, self.iterations)
        return ckpt, out

    def test_uninterrupted_with_checkpoints(self):
        ckpt, out = TMP("plain-ck.h5"), TMP("plain.h5")
        rc, so, se = mpirun(2, 1, self.args + ["-o", out, "--checkpoint", ckpt,
                                               "--checkpoint-every", "7"])
        self.assertEqual(rc, 0, se)
        self.assertEqual(so.count("checkpoint: iteration"), (self.iterations - 1) // 7, so)
        self.assertFalse(os.path.exists(ckpt))
        self.assertSameAsReference(out)

    def test_sigusr1_at_start(self):
        ckpt, out = self.interrupt("usr1-start", 0, "mpirun")
        self.resume_to_end(ckpt, out)

    def test_sigusr1_middle(self):
        ckpt, out = self.interrupt("usr1-mid", 15, "mpirun")
        self.resume_to_end(ckpt, out, ranks=1, threads=2)

    def test_sigterm_to_ranks_twice(self):
        ckpt, out = self.interrupt("term", 10, "ranks")
        first = ckpt_iteration(ckpt)
        # resumed, interrupted again, resumed again
        p = start(3, 1, self.args + ["-o", out, "--checkpoint", ckpt, "--resume"])
        wait_for_iteration(p, first + 5)
        for pid in ranks_of(p):
            os.kill(pid, signal.SIGTERM)
        rc, so, se = finish(p)
        self.assertEqual(rc, CHECKPOINTED, se)
        self.assertGreater(ckpt_iteration(ckpt), first)
        self.resume_to_end(ckpt, out, ranks=2, threads=2)

    def test_sigusr1_during_kmeanspp(self):
        # a signal between two k-means++ steps keeps the centroids chosen so far; --resume
        # chooses the rest (the hook raises SIGUSR1 on rank 0 before the step it names)
        ckpt, out = TMP("pp-ck.h5"), TMP("pp.h5")
        for stop_at, ranks, said in ((10, 2, None), (20, 3, "continues from the 10 of 32")):
            p = start(ranks, 1, self.args + ["-o", out, "--checkpoint", ckpt]
                      + (["--resume"] if said else []), env={"KMEANS_TEST_INIT_STOP_AT":
                                                             str(stop_at)})
            rc, so, se = finish(p)
            self.assertEqual(rc, CHECKPOINTED, se)
            self.assertIn("during k-means++ with %d of 32 centroids chosen" % stop_at, se)
            self.assertIn("--resume", se)
            if said:
                self.assertIn(said, so)
            self.assertNotIn("iter ", so)          # no iteration began
            self.assertFalse(os.path.exists(out))
            with h5py.File(ckpt, "r") as f:
                self.assertEqual(int(f.attrs["iteration"]), 0)
                self.assertEqual(int(f.attrs["init_chosen"]), stop_at)
                c = f["centroids"][()]
            self.assertTrue(np.all(c[stop_at:] == 0) and np.all(np.any(c[:stop_at], axis=1)))
        self.resume_to_end(ckpt, out, ranks=1, threads=2)

    def test_kmeanspp_saved_every_seconds(self):
        # a node failure (SIGKILL to all) during k-means++ loses at most
        # --checkpoint-seconds of it: the saved centroids are continued on --resume
        ckpt, out = TMP("pps-ck.h5"), TMP("pps.h5")
        p = start(2, 1, self.args + ["-o", out, "--checkpoint", ckpt, "--checkpoint-seconds",
                                     "0.001"])
        saves = []
        for line in p.stdout:
            if line.startswith("checkpoint: k-means++'s "):
                saves.append(int(line.split()[2]))
                if len(saves) == 8:
                    break
        kill_all(p)
        self.assertEqual(len(saves), 8, "k-means++ saved too few times")
        self.assertEqual(saves, sorted(set(saves)))
        with h5py.File(ckpt, "r") as f:
            self.assertEqual(int(f.attrs["iteration"]), 0)
            self.assertGreaterEqual(int(f.attrs["init_chosen"]), saves[-1])
            self.assertLess(int(f.attrs["init_chosen"]), 32)
        self.resume_to_end(ckpt, out, ranks=2, threads=2)

    def test_version_1_checkpoint(self):
        # written before init_chosen existed: a whole init
        ckpt, out = self.interrupt("v1", 5, "mpirun")
        with h5py.File(ckpt, "r+") as f:
            f.attrs["format_version"] = 1
            del f.attrs["init_chosen"]
        self.resume_to_end(ckpt, out)
        ckpt, out = self.interrupt("v3", 5, "mpirun")
        with h5py.File(ckpt, "r+") as f:
            f.attrs["init_chosen"] = 0
        rc, so, se = mpirun(2, 1, self.args + ["-o", out, "--checkpoint", ckpt, "--resume"])
        self.assertEqual(rc, 3, se)
        self.assertIn("init_chosen=0", se)

    def test_sigkill_during_checkpoint_write(self):
        ckpt, out = self.interrupt("kill", 10, "mpirun")
        before = ckpt_iteration(ckpt)
        with open(ckpt, "rb") as f:
            saved = f.read()
        p = start(2, 1, self.args + ["-o", out, "--checkpoint", ckpt, "--resume",
                                     "--checkpoint-every", "1"],
                  env={"KMEANS_TEST_CHECKPOINT_STALL": "60"})
        t0 = time.time()
        while not os.path.exists(ckpt + ".tmp") and time.time() - t0 < 60:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(ckpt + ".tmp"), "the write never started")
        time.sleep(0.3)                              # inside the stalled write
        kill_all(p)
        with open(ckpt, "rb") as f:
            self.assertEqual(f.read(), saved, "the previous checkpoint changed")
        self.assertEqual(ckpt_iteration(ckpt), before)
        self.resume_to_end(ckpt, out)                # the stale FILE.tmp is overwritten

    def test_full_disk(self):
        mnt = TMP("tiny")
        os.makedirs(mnt)
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt],
                           capture_output=True, text=True)
        if m.returncode != 0:
            self.skipTest("cannot mount a small tmpfs here (%s)" % m.stderr.strip())
        try:
            ckpt, out = os.path.join(mnt, "ck.h5"), TMP("full.h5")
            p = start(2, 1, self.args + ["-o", out, "--checkpoint", ckpt])
            wait_for_iteration(p, 5)
            p.send_signal(signal.SIGUSR1)
            rc, so, se = finish(p)
            self.assertEqual(rc, CHECKPOINTED, se)
            before = ckpt_iteration(ckpt)
            with open(ckpt, "rb") as f:
                saved = f.read()
            def fill():                               # the disk to the last byte
                fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                for size in (65536, 4096, 512, 1):
                    try:
                        while True:
                            os.write(fd, b"\0" * size)
                    except OSError:
                        pass
                os.close(fd)
            fill()
            # periodic checkpoints fail: warned, the run goes on; the one on a signal
            # fails: exit 4; the old checkpoint survives, no FILE.tmp is left
            p = start(2, 1, self.args + ["-o", out, "--checkpoint", ckpt, "--resume",
                                         "--checkpoint-every", "1"])
            wait_for_iteration(p, before + 5)
            p.send_signal(signal.SIGUSR1)
            rc, so, se = finish(p)
            self.assertEqual(rc, 4, se)
            self.assertIn("warning: cannot write checkpoint", se)
            self.assertIn("No space left on device", se)
            self.assertFalse(os.path.exists(ckpt + ".tmp"))
            with open(ckpt, "rb") as f:
                self.assertEqual(f.read(), saved, "the previous checkpoint changed")
            # still full: the resumed run warns at every iteration and ends normally
            rc, so, se = mpirun(2, 2, self.args + ["-o", out, "--checkpoint", ckpt, "--resume",
                                                   "--checkpoint-every", "1", "-q"])
            self.assertEqual(rc, 0, se)
            self.assertIn("No space left on device", se)
            self.assertFalse(os.path.exists(ckpt))
            self.assertSameAsReference(out)
            # k-means++'s saves too: each fails with a warning and the init goes on;
            # the one on the signal before step 20 fails: exit 4, nothing left behind
            os.remove(out)
            fill()                                    # the removed checkpoint's room too
            ck2 = os.path.join(mnt, "ck2.h5")
            p = start(2, 1, self.args + ["-o", out, "--checkpoint", ck2, "--checkpoint-seconds",
                                         "0.001"], env={"KMEANS_TEST_INIT_STOP_AT": "20"})
            rc, so, se = finish(p)
            self.assertEqual(rc, 4, se)
            self.assertGreater(se.count("warning: cannot write checkpoint"), 5, se)
            self.assertIn("No space left on device", se)
            self.assertEqual(os.listdir(mnt), ["filler"])
            self.assertFalse(os.path.exists(out))
        finally:
            subprocess.run(["umount", "-l", mnt])


class CheckpointRefusals(unittest.TestCase):
    """A checkpoint that does not belong to this run is refused, and left as it was."""

    @classmethod
    def setUpClass(cls):
        # the signal must land between iteration 3 and the end: 200,000 rows and Lloyd
        # run 70 iterations in ~0.6 s (20,000 rows ran 23 in 26 ms, and Hamerly, which
        # auto now takes at d <= 8, ended before the signal)
        cls.data = write_h5(TMP("r.h5"), manifold(200000, 6, 5))
        cls.ckpt = TMP("r-ck.h5")
        cls.args = ["-i", cls.data, "-k", "10", "--seed", "1", "--tol", "0", "--algorithm",
                    "lloyd"]
        p = start(1, 1, cls.args + ["-o", TMP("r-out.h5"), "--checkpoint", cls.ckpt])
        wait_for_iteration(p, 3)
        p.send_signal(signal.SIGUSR1)
        rc, so, se = finish(p)
        assert rc == CHECKPOINTED, se
        with open(cls.ckpt, "rb") as f:
            cls.saved = f.read()

    def refused(self, args, code, words, ckpt=None):
        ckpt = ckpt or self.ckpt
        out = TMP("refused.h5")
        rc, so, se = mpirun(2, 1, args + ["-o", out, "--checkpoint", ckpt, "--resume"])
        self.assertEqual(rc, code, se)
        lines = [l for l in se.splitlines() if l.startswith("kmeans: error")]
        self.assertEqual(len(lines), 1, se)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertFalse(os.path.exists(out))
        with open(self.ckpt, "rb") as f:
            self.assertEqual(f.read(), self.saved, "the checkpoint was touched")

    def test_other_input_file(self):
        other = TMP("r-copy.h5")
        shutil.copy(self.data, other)
        self.refused(["-i", other, "-k", "10", "--seed", "1", "--tol", "0"], 3,
                     ["made for input", "r-copy.h5"])

    def test_other_shape(self):
        sub = TMP("shape")
        os.makedirs(sub, exist_ok=True)
        path = write_h5(os.path.join(sub, "r.h5"), manifold(200001, 6, 5))
        ck = os.path.join(sub, "ck.h5")
        shutil.copy(self.ckpt, ck)
        with h5py.File(ck, "a") as f:                # the same checkpoint, pointed here
            f.attrs["input_realpath"] = os.path.realpath(path)
        rc, so, se = mpirun(1, 1, ["-i", path, "-k", "10", "--seed", "1", "--tol", "0",
                                   "-o", TMP("s.h5"), "--checkpoint", ck, "--resume"])
        self.assertEqual(rc, 3, se)
        self.assertIn("200000 x 6", se)
        self.assertIn("200001 x 6", se)

    def test_changed_contents(self):
        sub = TMP("content")
        os.makedirs(sub, exist_ok=True)
        x = manifold(200000, 6, 5)
        x[123, 4] *= 3                               # same shape and dtype, other data
        path = write_h5(os.path.join(sub, "r.h5"), x)
        ck = os.path.join(sub, "ck.h5")
        shutil.copy(self.ckpt, ck)
        with h5py.File(ck, "a") as f:
            f.attrs["input_realpath"] = os.path.realpath(path)
        rc, so, se = mpirun(2, 1, ["-i", path, "-k", "10", "--seed", "1", "--tol", "0",
                                   "-o", TMP("c.h5"), "--checkpoint", ck, "--resume"])
        self.assertEqual(rc, 3, se)
        self.assertIn("changed", se)

    def test_other_k(self):
        self.refused(["-i", self.data, "-k", "11", "--seed", "1", "--tol", "0"], 2,
                     ["-k 10", "-k 11"])

    def test_other_preprocessing(self):
        self.refused(["-i", self.data, "-k", "10", "--seed", "1", "--tol", "0", "--log1p"], 2,
                     ["preprocessing", "log1p=0", "log1p=1"])

    def test_other_seed(self):
        self.refused(["-i", self.data, "-k", "10", "--seed", "9", "--tol", "0"], 2,
                     ["--seed 1", "--seed 9"])

    def test_max_iter_below_checkpoint(self):
        self.refused(self.args + ["--max-iter", "2"], 2, ["iteration", "--max-iter 2"])

    def test_existing_checkpoint_without_resume(self):
        rc, so, se = mpirun(2, 1, self.args + ["-o", TMP("x.h5"), "--checkpoint", self.ckpt])
        self.assertEqual(rc, 2, se)
        self.assertIn("already exists", se)
        with open(self.ckpt, "rb") as f:
            self.assertEqual(f.read(), self.saved)

    def test_checkpoint_directory_missing(self):
        ck = TMP("no-such-dir/ck.h5")
        out = TMP("nodir-out.h5")
        rc, so, se = mpirun(2, 1, self.args + ["-o", out, "--checkpoint", ck])
        self.assertEqual(rc, 4, se)
        lines = [l for l in se.splitlines() if l.startswith("kmeans: error")]
        self.assertEqual(len(lines), 1, se)
        self.assertIn("does not exist", lines[0])
        self.assertFalse(os.path.exists(out))

    def test_missing_and_damaged(self):
        rc, so, se = mpirun(2, 1, self.args + ["-o", TMP("x.h5"), "--checkpoint",
                                               TMP("none.h5"), "--resume"])
        self.assertEqual(rc, 3, se)
        self.assertIn("does not exist", se)
        bad = TMP("bad-ck.h5")
        with open(bad, "wb") as f:
            f.write(self.saved[: len(self.saved) // 2])   # a torn copy
        rc, so, se = mpirun(2, 1, self.args + ["-o", TMP("x.h5"), "--checkpoint", bad,
                                               "--resume"])
        self.assertEqual(rc, 3, se)
        self.assertIn("bad-ck.h5", se)
        rc, so, se = mpirun(1, 1, self.args + ["--resume"])
        self.assertEqual(rc, 2, se)
        self.assertIn("--checkpoint", se)


if __name__ == "__main__":
    unittest.main()
