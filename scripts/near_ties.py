#!/usr/bin/python3
"""How many rows the fast kernel must recheck with exact distances.

The kernel trusts its argmin only where the runner-up's score is more than
8 coef (||x||^2 + cmax^2) above the best (kernels_tmpl.h), coef = 1.25 ((2 e + 8)
2^-24 + ...) for float32, where e is the number of terms whose rounding the
bound charges: d when one 256-wide d-block holds the row, or 256 + the number of
d-blocks where each block is summed in float32 and the blocks in float64.
Computes, in float64 with numpy on the file's rows and a result's /centroids,
the fraction of rows within that margin of their runner-up for both charges.

Usage: near_ties.py DATA.h5 RESULT.h5   (DATA's /data in float32)
"""
import sys

import h5py
import numpy as np


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip())
    x = h5py.File(sys.argv[1], "r")["data"][:].astype(np.float64)
    c = h5py.File(sys.argv[2], "r")["centroids"][:]
    d, u = x.shape[1], 2.0 ** -24
    xn = (x * x).sum(1)
    dist = xn[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    dist.sort(1)
    gap = dist[:, 1] - dist[:, 0]
    cmax2 = (c * c).sum(1).max()
    for name, e in (("whole d in float32", d), ("d-blocks in float64", 256 + -(-d // 256))):
        lim = 8 * 1.25 * ((2 * e + 8) * u) * (xn + cmax2)
        print("%-20s e = %5d: %5.1f %% of the rows within the margin of their runner-up"
              % (name, e, 100 * (gap < lim).mean()))


if __name__ == "__main__":
    main()
