"""Writes tests/data/joblib_*.joblib with the real joblib (assay has no joblib): run
outside the project venv, once per joblib version named in tests/data/README.md.

    python tests/data/make_joblib_fixtures.py tests/data

Each file is joblib.dump of arrays of several layouts followed by MARKER, a string the
tests replace (same length) to put something after the arrays."""

import sys
from pathlib import Path

import joblib
import numpy as np

MARKER = "assay-joblib-marker-" + "x" * 20  # 40 characters

out = Path(sys.argv[1])
arrays = [
    np.arange(10, dtype=np.float64),
    np.asfortranarray(np.arange(6, dtype=np.float16).reshape(2, 3)),
    np.array(["ab", "cde"], dtype="U3"),
    np.array(["2020-01-01"], dtype="datetime64[ns]"),
    np.zeros(2, dtype=[("a", "f4"), ("b", "i8", (2,))]),
    np.array([1, "a", None], dtype=object),
    np.array(7.0),
]
version = joblib.__version__.replace(".", "_")
for protocol in (2, 4):
    joblib.dump([*arrays, MARKER], out / f"joblib_{version}_p{protocol}.joblib", protocol=protocol)
