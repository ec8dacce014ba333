"""scripts/tsv2h5: round trips of small tables (tab, comma, gzip, both orientations)
against the values written here, the result clustered by bin/kmeans, and malformed
tables refused with the line and column, leaving no output behind."""
import gzip
import os
import subprocess
import unittest

import h5py
import numpy as np

from common import ROOT, TempDir, mpirun

TSV2H5 = os.path.join(ROOT, "scripts", "tsv2h5")
TMP = None


def setUpModule():
    global TMP
    TMP = TempDir()


def tearDownModule():
    TMP.cleanup()


def run(*args):
    p = subprocess.run([TSV2H5] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def write_table(path, corner, cols, rows, values, sep="\t"):
    text = sep.join([corner] + cols) + "\n"
    for name, v in zip(rows, values):
        text += sep.join([name] + [repr(float(x)) for x in v]) + "\n"
    if path.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        with open(path, "w") as f:
            f.write(text)


class RoundTrip(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(3)
        self.genes = ["TP53", "BRCA1", "MYC", "EGFR", "ACTB"]
        self.samples = ["S-%d" % i for i in range(7)]
        self.x = rng.gamma(2.0, 3.0, size=(5, 7)).round(3)          # genes x samples

    def check(self, out, data, samples, features):
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f["data"][()], data.astype(np.float32))
            self.assertEqual([s.decode() for s in f["sample_names"][()]], samples)
            self.assertEqual([s.decode() for s in f["feature_names"][()]], features)
            self.assertIsNotNone(f["data"].chunks)
            self.assertEqual(f["data"].compression, "gzip")

    def test_genes_by_samples_tab_and_gzip(self):
        for name in ("expr.tsv", "expr.tsv.gz"):
            path, out = TMP(name), TMP(name + ".h5")
            write_table(path, "gene_id", self.samples, self.genes, self.x)
            rc, so, se = run(path, out)
            self.assertEqual(rc, 0, se)
            self.check(out, self.x.T, self.samples, self.genes)     # samples become rows

    def test_samples_by_genes_comma(self):
        path, out = TMP("expr.csv"), TMP("expr-csv.h5")
        write_table(path, "", self.genes, self.samples, self.x.T, sep=",")
        rc, so, se = run(path, out, "--rows", "samples")
        self.assertEqual(rc, 0, se)
        self.check(out, self.x.T, self.samples, self.genes)

    def test_many_batches_and_chunks(self):
        # 150 lines (3 worker batches of 64, the last short) of 9,000 values: the
        # output's 1 MiB chunks hold 29 rows, so 150 samples make 6 chunks, the last
        # one partial; a blank line inside must not shift any line number. The same
        # values and bits with one job as with two.
        rng = np.random.default_rng(5)
        x = rng.gamma(2.0, 3.0, size=(150, 9000)).round(2)               # samples x genes
        genes = ["g%d" % j for j in range(9000)]
        samples = ["s%d" % i for i in range(150)]
        path = TMP("wide.tsv")
        write_table(path, "", genes, samples, x)
        with open(path) as f:
            lines = f.readlines()
        lines.insert(70, "\n")
        with open(path, "w") as f:
            f.writelines(lines)
        outs = []
        for jobs in ("1", "2"):
            out = TMP("wide-%s.h5" % jobs)
            rc, so, se = run(path, out, "--rows", "samples", "--jobs", jobs)
            self.assertEqual(rc, 0, se)
            self.check(out, x, samples, genes)
            with h5py.File(out, "r") as f:
                self.assertEqual(f["data"].chunks, (29, 9000))
                self.assertTrue(f["data"].shuffle)
            outs.append(out)
        p = subprocess.run(["h5diff", outs[0], outs[1]], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_kmeans_reads_it(self):
        path, out = TMP("blobs.tsv"), TMP("blobs.h5")
        rng = np.random.default_rng(1)
        x = np.vstack([rng.normal(0, 0.1, (20, 4)), rng.normal(5, 0.1, (20, 4))])
        write_table(path, "id", ["f%d" % j for j in range(4)], ["s%d" % i for i in range(40)],
                    x)
        rc, so, se = run(path, out, "--rows", "samples")
        self.assertEqual(rc, 0, se)
        rc, so, se = mpirun(2, 1, ["-i", out, "-k", "2", "-q", "-o", TMP("blobs-k2.h5")])
        self.assertEqual(rc, 0, se)
        with h5py.File(TMP("blobs-k2.h5"), "r") as f:
            lab = f["labels"][()]
        self.assertEqual(len(set(lab[:20])), 1)
        self.assertEqual(len(set(lab[20:])), 1)
        self.assertNotEqual(lab[0], lab[20])


class Refusals(unittest.TestCase):
    def refused(self, text, words, name="bad.tsv"):
        path, out = TMP(name), TMP(name + ".h5")
        with open(path, "w") as f:
            f.write(text)
        rc, so, se = run(path, out)
        self.assertEqual(rc, 3, se)
        lines = se.strip().splitlines()
        self.assertEqual(len(lines), 1, se)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".tmp"))

    def test_ragged_row(self):
        self.refused("g\ta\tb\tc\nx\t1\t2\t3\ny\t1\t2\n", ["line 3", "2 values", "3 columns"])

    def test_long_row(self):
        self.refused("g\ta\tb\nx\t1\t2\t3\n", ["line 2", "3 values", "2 columns"])

    def test_non_numeric_cell(self):
        self.refused("g\ta\tb\tc\nx\t1\t2\t3\ny\t1\tNA?\t3\n", ["line 3", "column 3", "'b'",
                                                               "'NA?'"])

    def test_bad_cell_in_a_later_batch(self):
        # line 200 is in the fourth batch of 64 lines, parsed by another process than
        # the first; line 250 is also bad, but 200 comes first
        rows = ["r%d\t%d\t%d" % (i, i, 2 * i) for i in range(300)]
        rows[198] = "r198\t1\toops"
        rows[248] = "r248\t1"
        self.refused("g\ta\tb\n" + "\n".join(rows) + "\n", ["line 200", "column 3", "'oops'"])

    def test_damaged_gzip_and_not_utf8(self):
        # the text is read by the main process while workers parse: its errors must
        # still end the import with one line naming the file, and no output
        text = "g\ta\tb\n" + "".join("r%d\t%d\t%d\n" % (i, i, i) for i in range(3000))
        packed = gzip.compress(text.encode())
        body = text.encode()
        at = body.index(b"r2000\t")
        for name, raw, words in (("cut.tsv.gz", packed[:len(packed) // 2], ["damaged gzip"]),
                                 ("latin.tsv", body[:at] + b"\xe9" + body[at:], ["UTF-8"])):
            path, out = TMP(name), TMP(name + ".h5")
            with open(path, "wb") as f:
                f.write(raw)
            rc, so, se = run(path, out)
            self.assertEqual(rc, 3, se)
            self.assertEqual(len(se.strip().splitlines()), 1, se)
            for w in words + [path]:
                self.assertIn(w, se)
            self.assertFalse(os.path.exists(out))
            self.assertFalse(os.path.exists(out + ".tmp"))

    def test_empty_and_header_only(self):
        self.refused("", ["empty"], name="empty.tsv")
        self.refused("g\ta\tb\n", ["no data rows"], name="header.tsv")

    def test_unwritable_output(self):
        path = TMP("ok.tsv")
        with open(path, "w") as f:
            f.write("g\ta\tb\nx\t1\t2\n")
        out = TMP("no-such-dir/ok.h5")
        rc, so, se = run(path, out)
        self.assertEqual(rc, 4, se)
        self.assertEqual(len(se.strip().splitlines()), 1, se)
        self.assertIn("cannot write", se)
        self.assertFalse(os.path.exists(TMP("no-such-dir")))

    def test_bad_jobs(self):
        path, out = TMP("jobs.tsv"), TMP("jobs.h5")
        with open(path, "w") as f:
            f.write("g\ta\tb\nx\t1\t2\n")
        for v in ("0", "-2", "two"):
            rc, so, se = run(path, out, "--jobs", v)
            self.assertEqual(rc, 2, se)
            self.assertIn("--jobs", se.strip().splitlines()[-1])
            self.assertFalse(os.path.exists(out))

    def test_missing_file(self):
        rc, so, se = run(TMP("nope.tsv"), TMP("nope.h5"))
        self.assertEqual(rc, 3)
        self.assertIn("nope.tsv", se)


if __name__ == "__main__":
    unittest.main()
