"""Scaling-study tools: a tiny study end to end (CSV columns, plot, table), the
Amdahl fit against synthetic timings with a known serial fraction, and the
communication model against hand-computed values."""
import csv
import math
import os
import random
import subprocess
import sys
import unittest

from common import ROOT, TempDir

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import plot_scaling  # noqa: E402
import project_scaling  # noqa: E402
import scaling_row  # noqa: E402

PY = "/usr/bin/python3"


class TinyStudy(unittest.TestCase):
    def test_strong_and_weak_study(self):
        tmp = TempDir()
        try:
            for mode in ("strong", "weak"):
                out = tmp("%s.csv" % mode)
                p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "scaling.sh"),
                                    "--mode", mode, "--n", "6000", "--d", "5", "--k", "4",
                                    "--ranks", "1 2 3", "--threads", "1", "--iters", "4",
                                    "--cores", "2", "--csv", out, "--data", tmp("data")],
                                   capture_output=True, text=True, timeout=300)
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(out, newline="") as f:
                    rows = list(csv.DictReader(f))
                self.assertEqual(list(rows[0].keys()), scaling_row.COLUMNS)
                self.assertEqual([int(r["ranks"]) for r in rows], [1, 2, 3])
                self.assertEqual([int(r["oversubscribed"]) for r in rows], [0, 0, 1])
                want_n = [6000] * 3 if mode == "strong" else [6000, 12000, 18000]
                self.assertEqual([int(r["n"]) for r in rows], want_n)
                for r in rows:
                    self.assertEqual(int(r["iterations"]), 4)
                    self.assertEqual(int(r["passes"]), 5)       # + the final E-step
                    self.assertGreater(float(r["seconds_per_iteration"]), 0)
                    self.assertGreater(float(r["rss_mb_max"]), 1)
                    self.assertEqual(int(r["allreduce_bytes"]),
                                     project_scaling.allreduce_bytes(4, 5, int(r["ranks"])))
                    for ph in plot_scaling.PHASES:
                        lo, mid, hi = (float(r["%s_%s" % (ph, s)]) for s in ("min", "mean", "max"))
                        self.assertTrue(0 <= lo <= mid <= hi, (ph, lo, mid, hi))
                p = subprocess.run([PY, os.path.join(ROOT, "scripts", "plot_scaling.py"), out],
                                   capture_output=True, text=True, timeout=120)
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(tmp("%s.png" % mode), "rb") as f:
                    self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
                with open(tmp("%s.md" % mode)) as f:
                    md = f.read()
                self.assertIn("%s scaling" % mode, md)
                self.assertEqual(md.count("oversubscribed |"), 1, md)
        finally:
            tmp.cleanup()


class AmdahlFit(unittest.TestCase):
    def test_recovers_known_serial_fraction(self):
        for f in (0.0, 0.03, 0.2, 0.6):
            p = [1, 2, 4, 8, 16, 64]
            t = [10.0 * (f + (1 - f) / q) for q in p]
            self.assertAlmostEqual(plot_scaling.amdahl_fit(p, t), f, places=12)

    def test_noisy_timings(self):
        rng = random.Random(4)
        p = [1, 2, 3, 4, 6, 8, 12, 16]
        t = [5.0 * (0.08 + 0.92 / q) * (1 + rng.uniform(-0.01, 0.01)) for q in p]
        self.assertLess(abs(plot_scaling.amdahl_fit(p, t) - 0.08), 0.01)

    def test_needs_a_single_core_run(self):
        self.assertIsNone(plot_scaling.amdahl_fit([2, 4], [1.0, 0.6]))


class CommunicationModel(unittest.TestCase):
    def test_limbs_follow_fixed_h(self):
        # 52 - ceil(log2(P + 1)) bits per limb carry 126-bit totals, plus one limb
        self.assertEqual(project_scaling.limbs(1), 4)       # 51 bits: ceil(126/51) + 1
        self.assertEqual(project_scaling.limbs(1023), 4)    # 42 bits: ceil(126/42) + 1
        self.assertEqual(project_scaling.limbs(1024), 5)    # 41 bits: ceil(126/41) + 1
        self.assertEqual(project_scaling.limbs(2**20), 6)   # 31 bits

    def test_hand_computed_projection(self):
        k, d = 64, 32
        m = 8 * ((k * d + k) * 4 + 2 * k + 2 + 3)
        self.assertEqual(project_scaling.allreduce_bytes(k, d, 8), m)
        a, b, g = 2e-6, 1e-10, 2e-10
        want = 2 * 3 * a + 2 * (7 / 8) * m * b + (7 / 8) * m * g
        self.assertAlmostEqual(project_scaling.allreduce_seconds(m, 8, a, b, g), want, places=15)
        self.assertEqual(project_scaling.allreduce_seconds(m, 1, a, b, g), 0.0)
        res = project_scaling.project(10**6, d, k, 1, 1e9, a, b, g, False, [1, 8])
        self.assertAlmostEqual(res[0]["compute"], 10**6 * k * d / 1e9)
        self.assertAlmostEqual(res[1]["compute"], 10**6 * k * d / 8e9)
        self.assertAlmostEqual(res[1]["eff"], res[0]["total"] / (8 * res[1]["total"]))
        weak = project_scaling.project(10**6, d, k, 1, 1e9, a, b, g, True, [1, 8])
        self.assertAlmostEqual(weak[1]["compute"], weak[0]["compute"])   # flat work per rank
        self.assertTrue(math.isclose(weak[1]["eff"], weak[0]["total"] / weak[1]["total"]))


if __name__ == "__main__":
    unittest.main()
