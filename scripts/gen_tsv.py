#!/usr/bin/python3
"""Write an expression-like table (genes x samples, tab-separated) for trying and
timing scripts/tsv2h5: a header row of sample IDs, then one line per gene, its ID
and gamma-distributed values with 3 decimals.

Usage: gen_tsv.py OUT.tsv [--genes 20000] [--samples 11000] [--seed 0]
"""
import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--genes", type=int, default=20000)
    ap.add_argument("--samples", type=int, default=11000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    fmt = "\t".join(["%.3f"] * a.samples)
    with open(a.out, "w") as f:
        f.write("gene\t" + "\t".join("TCGA-%05d" % j for j in range(a.samples)) + "\n")
        for s in range(0, a.genes, 500):
            x = rng.gamma(2.0, 50.0, size=(min(500, a.genes - s), a.samples))
            f.write("\n".join("G%05d\t" % (s + i) + fmt % tuple(row)
                              for i, row in enumerate(x)) + "\n")


if __name__ == "__main__":
    main()
