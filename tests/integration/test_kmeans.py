"""Integration tests of bin/kmeans: results against scikit-learn's float64 Lloyd
and hand-computed cases for 1-3 MPI ranks x 1-2 OpenMP threads, the output file
layout, and the bad-input table. Run by tests/integration/run.sh (make test)."""
import glob
import os
import subprocess
import sys
import unittest

import h5py
import numpy as np
from sklearn import datasets

sys.path.insert(0, os.path.dirname(__file__))
from common import CONFIGS, TempDir, mpirun, read_result, ref_lloyd, write_h5  # noqa: E402

TMP = None


def setUpModule():
    global TMP
    TMP = TempDir()


def tearDownModule():
    TMP.cleanup()


class Run:
    """One kmeans run that must succeed; its result file read back."""

    def __init__(self, tc, ranks, threads, args, out):
        rc, so, se = mpirun(ranks, threads, args + ["-o", out])
        tc.assertEqual(rc, 0, "kmeans %s failed (%d ranks, %d threads): %s" %
                       (" ".join(args), ranks, threads, se))
        self.stdout, self.stderr = so, se
        self.res = read_result(out)
        self.labels = self.res["labels"]
        self.inertia = float(self.res["attrs"]["inertia"])
        self.iterations = int(self.res["attrs"]["iterations"])


class AgainstSklearn(unittest.TestCase):
    """--init first, tol 0: the same labels, inertia and n_iter_ as sklearn."""

    def compare(self, name, x, k, extra=(), ref_x=None, init_args=None, ref_init=None,
                configs=CONFIGS, max_iter=300, tol=0.0):
        path = write_h5(TMP(name + ".h5"), x)
        rx = np.asarray(x if ref_x is None else ref_x, dtype=np.float64)
        init = rx[:k] if ref_init is None else ref_init
        ref = ref_lloyd(rx, init, max_iter=max_iter, tol=tol)
        runs = []
        for ranks, threads in configs:
            args = ["-i", path, "-q", "--tol", repr(tol), "--max-iter", str(max_iter)]
            args += init_args if init_args else ["-k", str(k), "--init", "first"]
            r = Run(self, ranks, threads, args + list(extra),
                    TMP("%s-%d-%d.h5" % (name, ranks, threads)))
            what = "%s, %d ranks x %d threads" % (name, ranks, threads)
            np.testing.assert_array_equal(r.labels, ref.labels_, err_msg=what)
            self.assertLessEqual(abs(r.inertia - ref.inertia_), 1e-6 * ref.inertia_, what)
            self.assertEqual(r.iterations, ref.n_iter_, what)
            np.testing.assert_allclose(r.res["centroids"], ref.cluster_centers_,
                                       rtol=1e-9, atol=1e-9 * np.abs(rx).max(), err_msg=what)
            np.testing.assert_array_equal(r.res["cluster_sizes"],
                                          np.bincount(ref.labels_, minlength=k), what)
            self.assertEqual(len(r.res["history"]["inertia"]), r.iterations, what)
            self.assertEqual(r.res["attrs"]["ranks"], ranks)
            self.assertEqual(r.res["attrs"]["threads"], threads)
            runs.append(r)
        for r in runs[1:]:   # every layout agrees (bitwise equality is --reproducible's job)
            np.testing.assert_array_equal(r.labels, runs[0].labels)
            self.assertLessEqual(abs(r.inertia - runs[0].inertia), 1e-12 * runs[0].inertia)
        return ref, runs

    def test_iris(self):
        self.compare("iris", datasets.load_iris().data, 3)

    def test_wine(self):
        self.compare("wine", datasets.load_wine().data, 3)

    def test_breast_cancer(self):
        self.compare("breast_cancer", datasets.load_breast_cancer().data, 2)

    def test_digits(self):
        self.compare("digits", datasets.load_digits().data, 10)

    def test_float32_input(self):
        x = datasets.load_breast_cancer().data.astype(np.float32)
        ref, runs = self.compare("bc32", x, 2, configs=[(1, 2), (2, 1)])
        self.assertEqual(runs[0].res["attrs"]["input_dtype"], "float32")

    def test_integer_input_converted(self):
        x = (datasets.load_iris().data * 10).astype(np.int32)
        ref, runs = self.compare("iris_int", x, 3, configs=[(2, 2)])
        self.assertIn("int32", runs[0].res["attrs"]["input_dtype"])

    def test_init_rows(self):
        x = datasets.load_wine().data
        rows = [5, 70, 140]
        self.compare("wine_rows", x, 3, init_args=["--init", "rows:" + ",".join(map(str, rows))],
                     ref_init=x[rows], configs=[(1, 1), (3, 2)])

    def test_init_file(self):
        x = datasets.load_digits().data
        rng = np.random.default_rng(3)      # perturbed rows: no cluster starts empty
        c = x[rng.choice(len(x), 12, replace=False)] + rng.uniform(-1, 1, size=(12, x.shape[1]))
        with h5py.File(TMP("digits_init.h5"), "w") as f:
            f.create_dataset("seeds/c", data=c)
        self.compare("digits_file", x, 12, init_args=["--init", TMP("digits_init.h5") + ":/seeds/c"],
                     ref_init=c, configs=[(2, 2), (3, 1)])

    def test_max_iter_stop(self):
        ref, runs = self.compare("iris_max2", datasets.load_iris().data, 3, max_iter=2,
                                 configs=[(2, 1)])
        self.assertEqual(runs[0].res["attrs"]["stop_reason"], "max-iter")

    def test_tol_stop(self):
        x = datasets.load_digits().data
        ref, runs = self.compare("digits_tol", x, 10, tol=1e-2, configs=[(2, 2)])
        self.assertEqual(runs[0].res["attrs"]["stop_reason"], "tol")
        # the shift recorded is sum ||c_new - c_old||^2 / mean feature variance
        shift = runs[0].res["history"]["shift"]
        self.assertLessEqual(shift[-1], 1e-2)
        self.assertGreater(shift[-2], 1e-2)


class HandComputed(unittest.TestCase):
    def test_empty_cluster_reseeded_from_farthest_point(self):
        # 1-D points 0 1 10 11 12; centroids 0.5, 100, 11. Cluster 1 gets no point;
        # the farthest points from their centroids are rows 2 and 4 (distance 1),
        # the tie goes to the lower row, so cluster 1 restarts at 10. Then
        # 0,1 | 10 | 11,12 is stable: inertia 4 * 0.25 = 1 (to float64 rounding: the
        # inertia comes from the clusters' exact moments, README).
        x = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]])
        path = write_h5(TMP("empty.h5"), x)
        with h5py.File(TMP("empty_init.h5"), "w") as f:
            f["c"] = np.array([[0.5], [100.0], [11.0]])
        for ranks, threads in CONFIGS:
            r = Run(self, ranks, threads, ["-i", path, "--init", TMP("empty_init.h5") + ":/c",
                                           "--tol", "0"], TMP("empty-out.h5"))
            np.testing.assert_array_equal(r.labels, [0, 0, 1, 2, 2])
            np.testing.assert_allclose(r.res["centroids"][:, 0], [0.5, 10.0, 11.5])
            self.assertAlmostEqual(r.inertia, 1.0, delta=1e-14)
            self.assertEqual(r.res["history"]["empty"][0], 1)
            self.assertFalse(np.isnan(r.res["centroids"]).any())

    def test_more_ranks_than_rows(self):
        x = np.array([[1.0, 2.0], [5.0, 6.0]])
        path = write_h5(TMP("two.h5"), x)
        r = Run(self, 3, 2, ["-i", path, "-k", "2", "--init", "first"], TMP("two-out.h5"))
        np.testing.assert_array_equal(r.labels, [0, 1])
        self.assertEqual(r.inertia, 0.0)
        np.testing.assert_array_equal(r.res["centroids"], x)

    def test_k1_is_the_mean(self):
        x = np.random.default_rng(0).standard_normal((1001, 17))
        path = write_h5(TMP("k1.h5"), x)
        r = Run(self, 3, 1, ["-i", path, "-k", "1"], TMP("k1-out.h5"))
        np.testing.assert_allclose(r.res["centroids"][0], x.mean(axis=0), rtol=1e-12, atol=1e-14)
        self.assertAlmostEqual(r.inertia, ((x - x.mean(0)) ** 2).sum(), delta=1e-9 * r.inertia)
        self.assertEqual(r.iterations, 2)   # the pass that moves c, then one with no change


class SeededInit(unittest.TestCase):
    """kmeans++ and random: the same result for every ranks x threads layout."""

    def check(self, init):
        x = np.random.default_rng(5).standard_normal((2003, 5)).astype(np.float32)
        path = write_h5(TMP("seeded.h5"), x)
        results = {}
        for seed in (1, 2):
            runs = [Run(self, r, t, ["-i", path, "-k", "9", "--init", init, "--seed", str(seed),
                                     "--tol", "0"], TMP("seeded-out.h5")) for r, t in CONFIGS]
            for r in runs[1:]:
                np.testing.assert_array_equal(r.labels, runs[0].labels)
                np.testing.assert_allclose(r.res["centroids"], runs[0].res["centroids"],
                                           rtol=1e-12, atol=1e-12)
            results[seed] = runs[0]
        self.assertFalse(np.array_equal(results[1].res["centroids"], results[2].res["centroids"]),
                         "--seed changes nothing")
        return results

    def test_kmeanspp(self):
        res = self.check("kmeans++")
        self.assertEqual(res[1].res["attrs"]["init"], "kmeans++")

    def test_random(self):
        self.check("random")

    def test_kmeanspp_wide_rows(self):
        # d >= 1024: each step keeps the distances of the rows its candidates lower, and
        # the chosen one's update reads no row; every layout, and streamed (the update
        # then reads no chunk), must choose the same centroids
        rng = np.random.default_rng(14)
        x = (rng.standard_normal((12, 1100))[rng.integers(0, 12, 2000)]
             + 0.5 * rng.standard_normal((2000, 1100))).astype(np.float32)
        path = write_h5(TMP("seeded-wide.h5"), x)
        args = ["-i", path, "-k", "12", "--seed", "4", "--max-iter", "1"]
        runs = [Run(self, r, t, args, TMP("seeded-wide-out.h5"))
                for r, t in [(1, 1), (2, 2), (3, 1)]]
        runs.append(Run(self, 2, 1, args + ["--memory-limit", "4M"], TMP("seeded-wide-out.h5")))
        self.assertIn("streamed", runs[-1].stdout)
        for r in runs[1:]:
            np.testing.assert_array_equal(r.res["centroids"], runs[0].res["centroids"])
            np.testing.assert_array_equal(r.labels, runs[0].labels)

    def test_kmeanspp_quality(self):
        # well-separated blobs: k-means++ must find them (random starts often do not)
        rng = np.random.default_rng(11)
        centers = rng.uniform(-100, 100, size=(8, 3))
        x = np.repeat(centers, 50, axis=0) + rng.standard_normal((400, 3)) * 0.1
        path = write_h5(TMP("blobs.h5"), x)
        r = Run(self, 2, 2, ["-i", path, "-k", "8", "--seed", "3"], TMP("blobs-out.h5"))
        self.assertLess(r.inertia, 400 * 3 * 0.01 * 1.5)


class Reproducible(unittest.TestCase):
    """Bit-for-bit the same output for every ranks x threads x chunk size."""

    def test_bitwise_identical(self):
        rng = np.random.default_rng(9)
        n, d = 30011, 6
        # magnitudes from 1e-3 to 1e9 per element: float64 sums depend on their order
        x = rng.standard_normal((n, d)) * 10.0 ** rng.integers(-3, 10, size=(n, d))
        x[:, 0] += 1e6 * rng.integers(0, 4, size=n)          # some cluster structure
        col = x[:, 1]
        plain = {float(sum(col)), float(sum(col[::-1])), float(sum(sorted(col, key=abs)))}
        self.assertGreater(len(plain), 1, "premise: plain sums differ by order")
        path = write_h5(TMP("repro.h5"), x)
        outs = []
        for ranks in (1, 2, 3, 4):
            for threads in (1, 2):
                for chunk in ("64", "1000"):
                    out = TMP("repro-%d-%d-%s.h5" % (ranks, threads, chunk))
                    Run(self, ranks, threads, ["-i", path, "-k", "7", "--seed", "5", "--tol",
                                               "0", "--max-iter", "40", "-q", "--chunk-rows",
                                               chunk], out)
                    outs.append(out)
        ref = outs[0]
        objects = ["/centroids", "/labels", "/cluster_sizes", "/history/inertia",
                   "/history/shift", "/history/changed", "/history/empty"]
        ref_attrs = read_result(ref)["attrs"]
        for out in outs[1:]:
            for obj in objects:
                p = subprocess.run(["h5diff", ref, out, obj], capture_output=True, text=True)
                self.assertEqual(p.returncode, 0, "%s %s differs from %s: %s"
                                 % (out, obj, ref, p.stdout[:300]))
            attrs = read_result(out)["attrs"]
            for key, v in ref_attrs.items():
                if key not in ("ranks", "threads", "memory_limit"):   # per rank: node / ranks
                    self.assertEqual(attrs[key], v, "%s attribute %s" % (out, key))


class SharedTotals(unittest.TestCase):
    """The threads adding their moves into one shared copy of the k x d totals (taken
    when their own copies would outgrow the data; KMEANS_TEST_SHARED_TOTALS forces
    it): the same bits as each thread summing its own, for every strategy."""
    EXACT = ["/centroids", "/labels", "/cluster_sizes", "/history/inertia",
             "/history/shift", "/history/changed", "/history/empty"]
    SAID = "threads add into one copy of the k x d cluster totals"

    def same(self, ref, out):
        for obj in self.EXACT:
            p = subprocess.run(["h5diff", ref, out, obj], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, "%s %s differs from %s: %s"
                             % (out, obj, ref, p.stdout[:300]))

    def test_forced_for_every_strategy(self):
        rng = np.random.default_rng(4)
        centers = rng.uniform(-5, 5, size=(10, 24))
        x = centers[rng.integers(0, 10, size=4000)] + rng.standard_normal((4000, 24)) * 2.5
        path = write_h5(TMP("shared.h5"), x)
        args = ["-i", path, "-k", "10", "--init", "first", "--tol", "0", "--max-iter", "40"]
        ref = TMP("shared-ref.h5")
        rc, so, se = mpirun(1, 2, args + ["--algorithm", "lloyd", "-o", ref])
        self.assertEqual(rc, 0, se)
        self.assertNotIn(self.SAID, so)
        self.assertGreater(int(read_result(ref)["attrs"]["iterations"]), 10)   # moves late too
        force = {"KMEANS_TEST_SHARED_TOTALS": "1"}
        for alg in ("lloyd", "hamerly", "yinyang"):
            for ranks, extra in ((1, []), (2, []), (2, ["--memory-limit", "200K"])):
                out = TMP("shared-%s-%d-%d.h5" % (alg, ranks, len(extra)))
                rc, so, se = mpirun(ranks, 2, args + ["--algorithm", alg, "-o", out] + extra,
                                    env=force)
                self.assertEqual(rc, 0, se)
                self.assertIn(self.SAID, so)
                self.assertEqual("streamed" in so, bool(extra), so)
                self.same(ref, out)

    def test_chosen_when_the_copies_outgrow_the_data(self):
        # 8 threads x 400 x 1000 totals x 24 bytes = 77 MB against 4.8 MB of rows
        rng = np.random.default_rng(5)
        x = rng.standard_normal((600, 1000))
        path = write_h5(TMP("wide.h5"), x)
        args = ["-i", path, "-k", "400", "--init", "first", "--tol", "0", "--max-iter", "4"]
        one, many = TMP("wide-1.h5"), TMP("wide-8.h5")
        rc, so, se = mpirun(1, 1, args + ["-o", one])
        self.assertEqual(rc, 0, se)
        self.assertNotIn(self.SAID, so)
        rc, so, se = mpirun(1, 8, args + ["-o", many])
        self.assertEqual(rc, 0, se)
        self.assertIn("the 8 " + self.SAID, so)
        self.same(one, many)


class OutputAndReporting(unittest.TestCase):
    def test_layout_and_progress(self):
        x = datasets.load_iris().data
        path = write_h5(TMP("iris_io.h5"), x.astype(np.float32), name="grp/X")
        os.makedirs(TMP("cwd"), exist_ok=True)
        rc, so, se = mpirun(2, 1, ["-i", path, "--dataset", "/grp/X", "-k", "3", "--seed", "4"],
                            cwd=TMP("cwd"))
        self.assertEqual(rc, 0, se)
        out = TMP("cwd/results/iris_io-k3.h5")             # the default output name
        self.assertTrue(os.path.exists(out))
        self.assertEqual(glob.glob(TMP("cwd/results/*tmp*")), [])
        res = read_result(out)
        a = res["attrs"]
        for key in ("input", "dataset", "n", "d", "k", "init", "seed", "algorithm", "tol",
                    "iterations", "converged", "stop_reason", "inertia", "ranks", "threads",
                    "version", "max_iter"):
            self.assertIn(key, a)
        self.assertEqual((a["n"], a["d"], a["k"], a["dataset"]), (150, 4, 3, "/grp/X"))
        self.assertEqual(res["centroids"].shape, (3, 4))
        self.assertEqual(res["labels"].dtype, np.int32)
        self.assertEqual(res["labels"].shape, (150,))
        for phase in ("read", "init", "assign", "wait", "update", "allreduce", "write"):
            t = res["timing"][phase]
            self.assertTrue(t[0] <= t[1] <= t[2], phase)
        it = int(a["iterations"])
        progress = [l for l in so.splitlines() if l.strip().split(" ")[0].isdigit()]
        self.assertEqual(len(progress), it)
        self.assertIn("stop=%s" % a["stop_reason"], so.splitlines()[-1])
        for phase in ("read", "assign", "allreduce", "write"):
            self.assertRegex(so, r"(?m)^%s\s" % phase)
        # inertia recomputed from the file's centroids and labels
        c = res["centroids"][res["labels"]]
        ref = ((x.astype(np.float32).astype(np.float64) - c) ** 2).sum()
        self.assertAlmostEqual(float(a["inertia"]), ref, delta=1e-9 * ref)
        rc, so, se = mpirun(1, 1, ["-i", path, "--dataset", "/grp/X", "-k", "3", "-q", "-o",
                                   TMP("q.h5")])
        self.assertEqual(rc, 0, se)
        self.assertEqual(len(so.strip().splitlines()), 1)    # only the summary line

    def test_init_progress(self):
        # every KMEANS_TEST_PROGRESS_SECONDS (10 s by default) k-means++ says how far it
        # got: before the iteration table, counts rising, never the last; -q says nothing
        rng = np.random.default_rng(6)
        path = write_h5(TMP("pp_progress.h5"), rng.standard_normal((20000, 4)))
        args = ["-i", path, "-k", "40", "--seed", "3", "--max-iter", "3"]
        env = {"KMEANS_TEST_PROGRESS_SECONDS": "0"}
        rc, so, se = mpirun(2, 1, args + ["-o", TMP("pp1.h5")], env=env)
        self.assertEqual(rc, 0, se)
        lines = so.splitlines()
        said = [i for i, l in enumerate(lines) if l.startswith("init: k-means++ chose ")]
        counts = [int(lines[i].split()[3]) for i in said]
        self.assertEqual(counts, list(range(2, 40)), so)
        self.assertTrue(all("of 40 centroids" in lines[i] and "s to go" in lines[i]
                            for i in said), so)
        table = [i for i, l in enumerate(lines) if l.split()[:2] == ["iter", "inertia"]]
        memory = [i for i, l in enumerate(lines) if l.startswith("memory:")]
        self.assertEqual(len(table), 1, so)
        self.assertLess(memory[-1], said[0])   # the plan is said before the read and init
        self.assertLess(said[-1], table[0])
        rc, so, se = mpirun(2, 1, args + ["-q", "-o", TMP("pp2.h5")], env=env)
        self.assertEqual(rc, 0, se)
        self.assertNotIn("init:", so)
        np.testing.assert_array_equal(read_result(TMP("pp1.h5"))["centroids"],
                                      read_result(TMP("pp2.h5"))["centroids"])

    def test_help_and_version(self):
        rc, so, se = mpirun(1, 1, ["--help"])
        self.assertEqual(rc, 0)
        for word in ("--input", "--dataset", "--output", "--clusters", "--init", "--seed",
                     "--max-iter", "--tol", "--quiet", "--version", "Exit status", "Example"):
            self.assertIn(word, so)
        rc, so, se = mpirun(1, 1, ["--version"])
        self.assertEqual(rc, 0)
        self.assertRegex(so, r"^kmeans .*\d+\.\d+\.\d+")


class BadInput(unittest.TestCase):
    """Each bad input: exit code, one line naming the culprit, nothing left behind,
    and an existing output file untouched."""

    @classmethod
    def setUpClass(cls):
        d = TMP("bad")
        os.makedirs(d, exist_ok=True)
        cls.d = d
        rng = np.random.default_rng(1)
        good = rng.standard_normal((50, 3))
        write_h5(os.path.join(d, "good.h5"), good)
        nan = good.copy()
        nan[37, 2] = np.nan
        write_h5(os.path.join(d, "nan.h5"), nan)
        inf = good.astype(np.float32)
        inf[41, 0] = -np.inf
        write_h5(os.path.join(d, "inf.h5"), inf)
        with h5py.File(os.path.join(d, "shapes.h5"), "w") as f:
            f["one_d"] = np.arange(10.0)
            f["three_d"] = np.zeros((2, 3, 4))
            f["strings"] = np.array([b"a", b"b"] * 3).reshape(3, 2)
            f.create_dataset("empty", shape=(0, 3), dtype="f8")
            f.create_group("grp")
            f["init_bad_d"] = np.zeros((2, 4))
            f["init_nan"] = np.array([[0, 0, 0], [np.nan, 1, 1]])
            f["complex"] = np.zeros((3, 2), dtype=np.complex128)
        with open(os.path.join(d, "text.h5"), "w") as f:
            f.write("not an HDF5 file\n")
        huge = good.copy()
        huge[:, 1] *= 1e200    # finite, but every squared distance overflows
        write_h5(os.path.join(d, "huge.h5"), huge)

    def bad(self, args, code, needles, ranks=2):
        d = self.d
        out = os.path.join(d, "out.h5")
        with open(out, "w") as f:
            f.write("precious")
        args = [a.replace("@", d + "/") for a in args]
        if "-o" not in args:
            args = args + ["-o", out]
        rc, so, se = mpirun(ranks, 1, args, timeout=60)
        what = " ".join(args)
        self.assertEqual(rc, code, "%s: exit %d, stderr %r" % (what, rc, se))
        lines = [l for l in se.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "%s: stderr %r" % (what, se))
        self.assertTrue(lines[0].startswith("kmeans: error: "), lines[0])
        for n in needles:
            self.assertIn(n.replace("@", d + "/"), lines[0], what)
        with open(out) as f:
            self.assertEqual(f.read(), "precious", what)
        self.assertEqual(glob.glob(os.path.join(d, "*tmp*")), [], what)

    def test_missing_file(self):
        self.bad(["-i", "@nope.h5", "-k", "2"], 3, ["@nope.h5"])

    def test_not_hdf5(self):
        self.bad(["-i", "@text.h5", "-k", "2"], 3, ["@text.h5", "HDF5"])

    def test_missing_dataset(self):
        self.bad(["-i", "@good.h5", "--dataset", "/nope", "-k", "2"], 3, ["/nope", "@good.h5"])
        self.bad(["-i", "@good.h5", "--dataset", "/grp/x", "-k", "2"], 3, ["/grp"])

    def test_not_a_dataset(self):
        self.bad(["-i", "@shapes.h5", "--dataset", "/grp", "-k", "2"], 3, ["/grp"])

    def test_not_2d(self):
        self.bad(["-i", "@shapes.h5", "--dataset", "/one_d", "-k", "2"], 3, ["/one_d", "2-D"])
        self.bad(["-i", "@shapes.h5", "--dataset", "/three_d", "-k", "2"], 3, ["/three_d", "2-D"])

    def test_non_numeric(self):
        self.bad(["-i", "@shapes.h5", "--dataset", "/strings", "-k", "2"], 3, ["/strings"])
        self.bad(["-i", "@shapes.h5", "--dataset", "/complex", "-k", "2"], 3, ["/complex"])

    def test_values_too_large(self):
        self.bad(["-i", "@huge.h5", "-k", "2"], 3, ["@huge.h5", "column 1", "overflow"])

    def test_empty(self):
        self.bad(["-i", "@shapes.h5", "--dataset", "/empty", "-k", "2"], 3, ["/empty"])

    def test_nan_names_row(self):
        for ranks in (1, 3):                # row 37 lives on the last rank of 3
            self.bad(["-i", "@nan.h5", "-k", "2"], 3, ["row 37", "@nan.h5"], ranks=ranks)

    def test_inf_names_row(self):
        self.bad(["-i", "@inf.h5", "-k", "2"], 3, ["row 41"], ranks=3)

    def test_bad_k(self):
        self.bad(["-i", "@good.h5", "-k", "0"], 2, ["-k"])
        self.bad(["-i", "@good.h5", "-k", "51"], 2, ["51", "50"])

    def test_unwritable_output(self):
        self.bad(["-i", "@good.h5", "-k", "2", "-o", "/nonexistent-dir/out.h5"], 4,
                 ["/nonexistent-dir/out.h5"])
        self.bad(["-i", "@good.h5", "-k", "2", "-o", self.d], 4, [self.d])

    def test_unknown_option(self):
        self.bad(["-i", "@good.h5", "-k", "2", "--frobnicate"], 2, ["--frobnicate"])

    def test_bad_init(self):
        self.bad(["-i", "@good.h5", "--init", "rows:3,50"], 2, ["row 50"])
        self.bad(["-i", "@good.h5", "--init", "@shapes.h5:/init_bad_d"], 3, ["/init_bad_d"])
        self.bad(["-i", "@good.h5", "--init", "@shapes.h5:/init_nan"], 3, ["/init_nan"])
        self.bad(["-i", "@good.h5", "--init", "@nope.h5:/c"], 3, ["@nope.h5"])


if __name__ == "__main__":
    unittest.main()
