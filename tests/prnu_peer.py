"""prnu-python's PCE, as its functions behave (observed by running them; no code of it copied),
computed from assay's residuals and fingerprints: what bench/compare_prnu.py and
tests/test_prnu_reference.py use to show that the two tools' residuals and fingerprints agree,
and that their PCE values differ by the definition of the PCE only."""

from __future__ import annotations

import numpy as np

from assay.camera import prnu


def pce_as_prnu_python(fp: prnu.Fingerprint, im: np.ndarray, w: np.ndarray) -> float:
    """assay's residual and fingerprint, with the PCE defined as prnu-python's functions
    behave (observed, not copied): the surface correlates the residual with K x intensity
    (assay: residual x intensity with K), laid out so that the aligned peak sits at the last
    row and column; the block of rows and columns [peak - 2, peak + 2) is zeroed with
    Python's slice rules (at the last row and column, 3 x 3 values, none across the wrap)
    and the energy is the mean over the whole surface. Only to show where the figures
    differ: the two PCE definitions, not the residuals or fingerprints."""
    xc = prnu._correlate(fp.k * prnu._gray(im.astype(np.float32)), prnu.Fingerprint(w, 0))
    cc = xc[::-1, ::-1].astype(np.float64)
    y, x = np.unravel_index(int(np.argmax(cc)), cc.shape)
    peak = float(cc[y, x])
    z = cc.copy()
    z[y - 2:y + 2, x - 2:x + 2] = 0
    return peak * peak / float(np.mean(z * z)) * float(np.sign(peak))
