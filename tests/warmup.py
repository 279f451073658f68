"""Work every test session repeats on a fresh clone, done once at its start in a process
of its own (conftest.py starts it), beside collection and the first tests, on the core
they leave idle: the package byte-compiled, and numba's on-disk cache (``cache=True``,
beside the sources) filled with the kernels the tests compile, in the order the suite
first needs them: the watermark search's (provenance/_wm_kernel.py; any process that
has searched 16 MP uses it), the camera fingerprints' (camera/_kernel.py), the text
check's (text/_kernel.py), the multi-index's (banks/_mih_numba.py) and the PDQ region
weights' (media/_pdq_kernel.py). Their first
compile (~25 s of one core) no longer runs inside test_camera.py and test_index.py. The
kernels are reached through the entry points the tests use, so a changed kernel is
compiled here too; a signature this misses is compiled where it is first used, as
before. Compiled code is the same wherever it was compiled: no test result depends on
this having run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np


def camera_kernels() -> None:
    from PIL import Image

    from assay.camera import prnu

    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8) for _ in range(3)]
    fp = prnu.estimate(photos)
    decoded = np.asarray(Image.fromarray(photos[0]))  # read-only, as decoded files are
    # as taken, as decoded, cropped, and turned (portrait against a landscape sensor)
    for img in (photos[0], decoded, photos[0][10:80, 20:110], np.ascontiguousarray(photos[0].transpose(1, 0, 2))):
        prnu.detect(img, fp)


def watermark_kernel() -> None:
    from assay.provenance.watermark import block_votes

    block_votes(np.zeros((64, 64, 3), np.uint8), compiled=True)  # every block on a vote boundary


def text_kernel() -> None:
    from assay.text._kernel import maximal_matches

    def frozen(a: np.ndarray) -> np.ndarray:  # shards are read-only memory maps
        a.setflags(write=False)
        return a

    text = frozen(np.frombuffer(b"in the beginning was the word\xffand the word was", dtype=np.uint8).copy())
    sa = frozen(np.argsort([text[i:].tobytes() for i in range(len(text))]).astype(np.int32))
    q = frozen(np.frombuffer(b"the word was", dtype=np.uint8).copy())
    for max_hits in (0, 4):
        maximal_matches(text, sa, q, 8, 4, max_hits)


def index_kernels() -> None:
    from assay.banks import _mih
    from assay.banks.index import HammingIndex

    if _mih.NUMBA is None:
        return
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    ids = np.arange(len(codes), dtype=np.int64)
    for fast_table_bytes in (1 << 40, 0):  # the "filtered" and the "rows" layouts
        index = HammingIndex(bits=256, chunk_bits=16)
        index._kernel = _mih.NUMBA
        index.fast_table_bytes = fast_table_bytes
        index.add(codes[:200], ids[:200])
        index.merge()
        index.add(codes[200:], ids[200:])  # a buffer beside the main part
        index.remove(ids[:3])
        for radius in (0, 31, 64, 256):  # probes, and scans past scan_fraction
            index.search(codes[5].tobytes(), radius)  # a read-only query
            index.search_flat(codes[:8].copy(), radius)


def pdq_spans() -> None:
    from assay.media import pdq

    pdq.preload()


def bytecode() -> None:
    """Byte-compile the package once: where the environment says not to write bytecode
    (PYTHONDONTWRITEBYTECODE, as on the machine CI ran on), every process of the suite
    (server workers, CLI runs, Dask workers) compiled the modules it imports
    again (~0.1-0.3 s of CPU each); they read these files instead (checked against the
    sources' times, as usual)."""
    import compileall

    import assay

    for root in assay.__path__:
        compileall.compile_dir(root, quiet=1)


STAGES = {"watermark": watermark_kernel, "camera": camera_kernels, "text": text_kernel, "index": index_kernels,
          "pdq": pdq_spans}


def main(done: Path | None, stages: list[str]) -> None:
    """The ``stages`` named (all without names); each touches ``done/<stage>`` when it
    has ended (conftest.py waits on it)."""
    bytecode()
    if importlib.util.find_spec("numba") is None:
        return
    for name, stage in STAGES.items():
        if name in stages or not stages:
            stage()
            if done is not None:
                (done / name).touch()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None, sys.argv[2:])
