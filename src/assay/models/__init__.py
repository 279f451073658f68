"""Model files: safe readers, malicious-pickle detection, and (in sibling modules)
architecture, community hashes, metadata and lineage.

Read a model with :func:`open_model`; it never executes anything in the file.
Check a file's pickles with :func:`scan_file` (every pickle, verdict per pickle).
"""

from __future__ import annotations

from .formats import DTYPES, ModelFile, TensorInfo, is_model_archive, open_model
from .pickles import PickleFinding, PickleReport, classify_global, scan_file, scan_pickle_bytes

__all__ = [
    "DTYPES",
    "ModelFile",
    "PickleFinding",
    "PickleReport",
    "TensorInfo",
    "classify_global",
    "is_model_archive",
    "open_model",
    "scan_file",
    "scan_pickle_bytes",
]
