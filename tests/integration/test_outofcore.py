"""Issue 7: out-of-core streaming, transposed layouts, preprocessing.

- A matrix 4x larger than --memory-limit, streamed, gives the same bits as the
  in-memory run: 1 and 2 ranks, contiguous and chunked+gzip, points in rows and
  in columns (--transpose), every strategy, with checkpoints.
- --log1p / --top-variance / --standardize against numpy's own transform of the
  same matrix followed by scikit-learn's Lloyd from the same first centroids.
- Bad values of the new options, and data --log1p cannot take, are refused.
"""
import os
import subprocess
import sys
import unittest

import h5py
import numpy as np

from common import ROOT, TempDir, mpirun, read_result, ref_lloyd

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import plan_check  # noqa: E402

TMP = None
N, D, K = 12000, 24, 8
LIMIT = "280K"   # the float32 matrix is 1,152,000 bytes: over 4x the limit


def setUpModule():
    global TMP
    TMP = TempDir()
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(K, D)) * 0.5    # overlapping: tens of iterations
    x = (centres[rng.integers(0, K, N)] + rng.normal(size=(N, D))).astype(np.float32)
    with h5py.File(TMP("m.h5"), "w") as f:
        f["rows"] = x
        f.create_dataset("rows_gz", data=x, chunks=(280, D), compression="gzip")
        f["cols"] = x.T.copy()
        f.create_dataset("cols_gz", data=x.T.copy(), chunks=(8, 280), compression="gzip")   # ranks start mid-chunk
    # five times the rows, so that the pruned strategies' bounds fit a limit below
    # every rank's share of the matrix for 1-3 ranks
    big = (centres[rng.integers(0, K, 5 * N)] + rng.normal(size=(5 * N, D))).astype(np.float32)
    with h5py.File(TMP("big.h5"), "w") as f:
        f["rows"] = big
    # counts-like expression matrix for the preprocessing tests (float64)
    lam = rng.gamma(0.7, 30.0, size=(5, 60))
    y = rng.poisson(lam[rng.integers(0, 5, 2000)]).astype(np.float64)
    y[:, 3] = 5.0    # a constant feature
    with h5py.File(TMP("expr.h5"), "w") as f:
        f["x"] = y
        f.create_dataset("xt", data=y.T.copy(), chunks=(60, 64), compression="gzip")


def tearDownModule():
    TMP.cleanup()


def kmeans(ranks, args, threads=1):
    return mpirun(ranks, threads, args, timeout=180)


def assert_same(test, a, b):
    for obj in ("/centroids", "/labels", "/cluster_sizes", "/history/inertia",
                "/history/changed", "/history/shift"):
        p = subprocess.run(["h5diff", a, b, obj], capture_output=True, text=True)
        test.assertEqual(p.returncode, 0, "%s %s differs from %s: %s" % (b, obj, a, p.stdout[:300]))


class Streaming(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = TMP("ref.h5")
        rc, out, err = kmeans(1, ["-i", TMP("m.h5"), "--dataset", "/rows", "-k", str(K),
                                  "--seed", "3", "--tol", "0", "-o", cls.ref])
        assert rc == 0, err
        assert "memory: in core" in out, out
        cls.iterations = read_result(cls.ref)["attrs"]["iterations"]

    def test_reference_runs_long_enough(self):
        self.assertGreaterEqual(self.iterations, 8)   # else streaming is barely exercised

    def test_layouts_and_ranks(self):
        for dset in ("rows", "rows_gz", "cols", "cols_gz"):
            for ranks in (1, 2):
                with self.subTest(dataset=dset, ranks=ranks):
                    out = TMP("s-%s-%d.h5" % (dset, ranks))
                    args = ["-i", TMP("m.h5"), "--dataset", "/" + dset, "-k", str(K),
                            "--seed", "3", "--tol", "0", "-o", out, "--memory-limit", LIMIT]
                    if dset.startswith("cols"):
                        args.append("--transpose")
                    rc, so, err = kmeans(ranks, args, threads=2 if ranks == 1 else 1)
                    self.assertEqual(rc, 0, err)
                    self.assertIn("memory: streamed", so)
                    assert_same(self, self.ref, out)
                    self.assertEqual(read_result(out)["attrs"]["streamed"], 1)

    def test_uneven_blocks_transposed(self):
        # 3001 points on 3 ranks (1001, 1000, 1000 columns), in core and streamed, plain
        # and gzip: the same number of collective reads on every rank (a rank's own
        # column count once set it, and 3 ranks hung in the in-core read)
        sub = h5py.File(TMP("m.h5"), "r")["cols"][:, :3001]
        with h5py.File(TMP("uneven.h5"), "w") as f:
            f["cols"] = sub
            f.create_dataset("cols_gz", data=sub, chunks=(8, 100), compression="gzip")
        for dset in ("cols", "cols_gz"):
            base = ["-i", TMP("uneven.h5"), "--dataset", "/" + dset, "--transpose", "-k",
                    str(K), "--seed", "3", "--tol", "0"]
            ref = TMP("uneven-%s-1.h5" % dset)
            rc, so, err = kmeans(1, base + ["-o", ref])
            self.assertEqual(rc, 0, err)
            for extra, how in (([], "in core"), (["--memory-limit", "160K"], "streamed")):
                with self.subTest(dataset=dset, memory=how):
                    out = TMP("uneven-%s-3-%s.h5" % (dset, how[:2]))
                    rc, so, err = kmeans(3, base + ["-o", out] + extra)
                    self.assertEqual(rc, 0, err)
                    self.assertIn("memory: " + how, so)
                    assert_same(self, ref, out)

    def test_reading_blocks_directly(self):
        # a contiguous float32 dataset in rows: each thread reads the blocks it
        # takes from the file into its own buffer; Hamerly and Yinyang read only
        # the rows their bounds leave in doubt (runs of them when they are few)
        base = ["-i", TMP("big.h5"), "--dataset", "/rows", "-k", str(K), "--seed", "3",
                "--tol", "0"]
        ref = TMP("big-ref.h5")
        rc, so, err = kmeans(1, base + ["-o", ref, "--algorithm", "lloyd"])
        self.assertEqual(rc, 0, err)
        self.assertIn("memory: in core", so)
        for alg in ("lloyd", "hamerly", "yinyang"):
            for ranks, threads in ((1, 1), (1, 2), (2, 1), (3, 2)):
                with self.subTest(algorithm=alg, ranks=ranks, threads=threads):
                    out = TMP("d-%s-%d-%d.h5" % (alg, ranks, threads))
                    limit = "3M" if ranks == 1 else "1500K"   # under a rank's 5.8 / 2.9 / 1.9 MB
                    rc, so, err = kmeans(ranks, base + ["-o", out, "--memory-limit", limit,
                                                        "--algorithm", alg], threads=threads)
                    self.assertEqual(rc, 0, err)
                    self.assertIn("memory: streamed", so)
                    self.assertNotIn("note:", so)   # no fallback to another algorithm
                    assert_same(self, ref, out)
                    if alg != "lloyd":   # the bounds pruned, with the reads
                        with h5py.File(out, "r") as f:
                            self.assertGreater(f["history/skipped"][-1], 0.5)

    def test_pruned_strategies_and_checkpoints(self):
        for alg in ("hamerly", "yinyang"):
            with self.subTest(algorithm=alg):
                out, ck = TMP("p-%s.h5" % alg), TMP("p-%s.ckpt" % alg)
                rc, so, err = kmeans(2, ["-i", TMP("m.h5"), "--dataset", "/rows_gz", "-k", str(K),
                                         "--seed", "3", "--tol", "0", "-o", out,
                                         "--memory-limit", "400K", "--algorithm", alg,
                                         "--checkpoint", ck, "--checkpoint-every", "3"])
                self.assertEqual(rc, 0, err)
                self.assertIn("memory: streamed", so)
                self.assertIn("checkpoint: iteration 3", so)
                assert_same(self, self.ref, out)

    def test_yinyang_takes_fewer_groups(self):
        # k = 40: 4 groups advised; the limit leaves room for 2, then for none
        base = ["-i", TMP("m.h5"), "--dataset", "/rows", "-k", "40", "--seed", "3",
                "--tol", "0", "--max-iter", "10"]
        ref = TMP("y-ref.h5")
        self.assertEqual(kmeans(1, base + ["-o", ref, "--algorithm", "lloyd"])[0], 0)
        for limit, words in (("760K", "yinyang with 2 groups of centroids instead of 4"),
                             ("400K", "yinyang's bounds do not fit --memory-limit; using")):
            out = TMP("y-%s.h5" % limit)
            rc, so, err = kmeans(1, base + ["-o", out, "--algorithm", "yinyang",
                                            "--memory-limit", limit])
            self.assertEqual(rc, 0, err)
            self.assertIn("note: " + words, so)
            assert_same(self, ref, out)

    def test_init_from_rows_streamed(self):
        # --init first/random fetch rows one by one from the stream
        for init in ("first", "random"):
            a, b = TMP("i-%s-a.h5" % init), TMP("i-%s-b.h5" % init)
            base = ["-i", TMP("m.h5"), "--dataset", "/cols_gz", "--transpose", "-k", str(K),
                    "--init", init, "--seed", "5", "--max-iter", "6"]
            self.assertEqual(kmeans(1, base + ["-o", a])[0], 0)
            self.assertEqual(kmeans(2, base + ["-o", b, "--memory-limit", LIMIT])[0], 0)
            assert_same(self, a, b)

    def test_limit_too_small(self):
        rc, out, err = kmeans(1, ["-i", TMP("m.h5"), "--dataset", "/rows", "-k", str(K),
                                  "--memory-limit", "20K", "-o", TMP("never.h5")])
        self.assertEqual(rc, 2)
        self.assertIn("--memory-limit 20.0 KiB is too small for '/rows'", err)
        self.assertEqual(len(err.strip().splitlines()), 1)


class MemoryPlan(unittest.TestCase):
    """The plan a run prints and records (--summary-json planned_bytes: what a rank's
    data, chunks, bounds and totals may take) against what the rank used: its peak
    resident memory above that of the same run on 64 rows of the same matrix (which
    holds MPI, HDF5, OpenMP and the binary, none of them in the plan) stays within
    the plan (scripts/plan_check.py), in core and streamed, for every strategy and both inits, and on 3 ranks,
    where one rank aggregates MPI-IO's collective read (h5io.h: 32 MiB over the plan
    before the buffer was bounded), and for gzip-compressed matrices in rows and in
    columns (read in bounded rounds: twice the data before); in core, where the plan
    is the data plus small terms, it is not far above either. An allocation the plan
    forgets, or counts twice, of a few MB or more fails it."""
    SLACK_MB = 2.0   # allocator rounding, page tables, the result being written

    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(11)
        centres = rng.normal(size=(16, 1100))
        for name, n, d in (("narrow", 300000, 32), ("wide", 12000, 1100)):
            x = (centres[rng.integers(0, 16, n), :d] + rng.normal(size=(n, d))).astype(
                np.float32)
            with h5py.File(TMP("plan-%s.h5" % name), "w") as f:
                f["x"] = x
                if name == "narrow":   # compressed, in rows and in columns
                    f.create_dataset("gz", data=x, chunks=(4096, 32), compression="gzip")
                    f.create_dataset("gzt", data=x.T.copy(), chunks=(32, 4096),
                                     compression="gzip")
            with h5py.File(TMP("plan-%s-64.h5" % name), "w") as f:
                f["x"] = x[:64]
                f["gz"] = x[:64]
                f["gzt"] = x[:64].T.copy()

    def check(self, ranks, threads, name, args, streamed):
        if "--dataset" not in args:
            args = args + ["--dataset", "/x"]
        args = ["-k", "16", "--max-iter", "3"] + args
        m = plan_check.measure(lambda r, t, a: kmeans(r, a, threads=t), ranks, threads,
                               TMP("plan-%s.h5" % name), TMP("plan-%s-64.h5" % name), args,
                               TMP.path)
        what = "%s %s (%d ranks x %d threads)" % (name, " ".join(args), ranks, threads)
        self.assertEqual(m["streamed"], streamed, what)
        used, planned = m["used"], m["planned"]
        self.assertLessEqual(used, planned * 1.02 + self.SLACK_MB,
                             "%s: %.1f MiB used above the baseline, %.1f planned"
                             % (what, used, planned))
        # streamed, the chunks are sized to the limit; compressed, the plan holds a bound
        # on its rounds' transient chunks: there only a ceiling
        if not streamed and not any(a.startswith("/gz") for a in args):
            self.assertLessEqual(planned, 1.25 * used + 4, "%s: %.1f MiB planned, %.1f used"
                                 % (what, planned, used))

    def test_in_core(self):
        for ranks, threads, name, args in (
                (1, 1, "narrow", ["--algorithm", "lloyd", "--init", "first"]),
                (1, 2, "narrow", ["--algorithm", "hamerly", "--init", "first"]),
                (1, 2, "narrow", ["--algorithm", "yinyang", "--init", "first"]),
                (2, 2, "narrow", ["--algorithm", "lloyd"]),                  # k-means++
                (3, 1, "narrow", ["--algorithm", "lloyd", "--init", "first"]),   # MPI-IO
                (1, 2, "wide", ["--algorithm", "yinyang"]),                  # keeps its E
                (1, 2, "narrow", ["--dataset", "/gz", "--init", "first"]),   # decompressed
                (3, 1, "narrow", ["--dataset", "/gz", "--init", "first"]),
                (3, 1, "narrow", ["--dataset", "/gzt", "--transpose", "--init", "first"])):
            self.check(ranks, threads, name, args, False)

    def test_streamed(self):
        for ranks, threads, name, args in (
                (1, 2, "narrow", ["--algorithm", "lloyd", "--memory-limit", "12M"]),
                (1, 2, "narrow", ["--algorithm", "yinyang", "--memory-limit", "20M"]),
                (2, 1, "narrow", ["--algorithm", "hamerly", "--memory-limit", "10M"]),
                (1, 2, "wide", ["--algorithm", "lloyd", "--memory-limit", "12M"])):
            self.check(ranks, threads, name, args, True)


def numpy_prep(y, log1p, top, standardize):
    """The documented transform, written independently of the program."""
    z = np.log1p(y) / np.log(2.0) if log1p else y.copy()
    keep = np.arange(z.shape[1])
    if top:
        var = z.var(axis=0)
        order = np.argsort(-var, kind="stable")     # ties: lower column first
        keep = np.sort(order[:top])
        z = z[:, keep]
    mean, sd = z.mean(axis=0), z.std(axis=0)
    if standardize:
        z = np.where(sd > 0, (z - mean) / np.where(sd > 0, sd, 1), 0.0)
    return z, keep, mean, sd


class Preprocessing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with h5py.File(TMP("expr.h5"), "r") as f:
            cls.y = f["x"][()]

    def check(self, flags, log1p, top, standardize):
        k = 5
        out = TMP("pp-%s.h5" % "".join(f.strip("-")[:3] for f in flags))
        rc, so, err = kmeans(1, ["-i", TMP("expr.h5"), "--dataset", "/x", "-k", str(k),
                                 "--init", "first", "--tol", "0", "-o", out] + flags,
                             threads=2)   # in place with two threads: no row overtakes
        self.assertEqual(rc, 0, err)
        z, keep, mean, sd = numpy_prep(self.y, log1p, top, standardize)
        ref = ref_lloyd(z, z[:k])
        res = read_result(out)
        np.testing.assert_array_equal(res["labels"], ref.labels_)
        np.testing.assert_allclose(res["centroids"], ref.cluster_centers_, rtol=1e-9, atol=1e-9)
        with h5py.File(out, "r") as f:
            g = f["preprocessing"]
            np.testing.assert_array_equal(g["feature_index"][()], keep)
            self.assertEqual(g.attrs["top_variance"], top)
            self.assertEqual(g.attrs["features_in_file"], self.y.shape[1])
            if standardize:
                np.testing.assert_allclose(g["feature_mean"][()], mean, rtol=1e-12)
                scale = np.where(sd > 0, 1 / np.where(sd > 0, sd, 1), 0)
                np.testing.assert_allclose(g["feature_scale"][()], scale, rtol=1e-12)
        return out

    def test_log1p(self):
        self.check(["--log1p"], True, 0, False)

    def test_top_variance(self):
        self.check(["--log1p", "--top-variance", "12"], True, 12, False)

    def test_standardize_with_constant_feature(self):
        self.check(["--standardize"], False, 0, True)

    def test_all_three_in_and_out_of_core(self):
        flags = ["--log1p", "--top-variance", "20", "--standardize"]
        a = self.check(flags, True, 20, True)
        for ranks in (1, 2):   # genes x samples, gzip-chunked, streamed: the same bits
            b = TMP("pp-stream-%d.h5" % ranks)
            rc, so, err = kmeans(ranks, ["-i", TMP("expr.h5"), "--dataset", "/xt", "--transpose",
                                         "-k", "5", "--init", "first", "--tol", "0", "-o", b,
                                         "--memory-limit", "240K"] + flags)
            self.assertEqual(rc, 0, err)
            self.assertIn("memory: streamed", so)
            assert_same(self, a, b)
        # points in rows, contiguous: Lloyd's direct block reads preprocess each block
        b = TMP("pp-stream-rows.h5")
        rc, so, err = kmeans(1, ["-i", TMP("expr.h5"), "--dataset", "/x", "-k", "5", "--init",
                                 "first", "--tol", "0", "-o", b, "--memory-limit", "240K",
                                 "--algorithm", "lloyd"] + flags, threads=2)
        self.assertEqual(rc, 0, err)
        self.assertIn("memory: streamed", so)
        assert_same(self, a, b)


class Refusals(unittest.TestCase):
    def run_bad(self, args, code, text):
        rc, out, err = kmeans(1, args)
        self.assertEqual(rc, code, err)
        self.assertIn(text, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_bad_limit(self):
        self.run_bad(["-i", TMP("m.h5"), "-k", "2", "--memory-limit", "lots"], 2,
                     "--memory-limit 'lots'")

    def test_top_variance_too_large(self):
        self.run_bad(["-i", TMP("expr.h5"), "--dataset", "/x", "-k", "2", "--top-variance",
                      "61"], 2, "--top-variance 61: '/x' in")

    def test_damaged_chunk(self):
        # a gzip chunk of the second rank's rows overwritten: streamed or not,
        # every rank stops with the same one-line error, and no output appears
        x = np.random.default_rng(3).normal(size=(4000, 16)).astype(np.float32)
        path = TMP("damaged.h5")
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=x, chunks=(250, 16), compression="gzip")
        with h5py.File(path, "r") as f:
            info = f["data"].id.get_chunk_info(12)     # rows 3000-3249
        with open(path, "r+b") as f:
            f.seek(info.byte_offset + 8)
            f.write(b"\xff" * 64)
        for limit in ([], ["--memory-limit", "150K"]):
            out = TMP("damaged-out.h5")
            rc, so, err = kmeans(2, ["-i", path, "-k", "3", "-o", out] + limit)
            self.assertEqual(rc, 3, err)
            lines = [l for l in err.splitlines() if l.startswith("kmeans: error")]
            self.assertEqual(len(lines), 1, err)
            self.assertIn("of '/data' in '%s' failed" % path, lines[0])
            self.assertFalse(os.path.exists(out))

    def test_log1p_below_minus_one(self):
        y = np.ones((50, 4))
        y[17, 2] = -3.0
        with h5py.File(TMP("neg.h5"), "w") as f:
            f["data"] = y
        self.run_bad(["-i", TMP("neg.h5"), "-k", "2", "--log1p"], 3,
                     "row 17, column 2 is NaN or Inf after --log1p")


if __name__ == "__main__":
    unittest.main()
