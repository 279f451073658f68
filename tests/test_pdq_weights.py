"""PDQ's resampling weights for regions (media/pdq.py): the support-only, bincount form
gives the dense form's values bit for bit, so every region hash stays what it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assay.media import pdq


def _dense_span(start: float, length: float, block: int, n_reduced: int) -> tuple[np.ndarray, np.ndarray]:
    """The span's weights the plain way: the dense 64 x n tent of the cut-out span, each
    virtual pixel spread over the original pixels it overlaps with np.add.at, binned into
    reduced cells, then the band around each row's non-zero cells."""
    n = max(1, round(length))
    virtual = pdq._axis_weights(n, 1, n)
    step = length / n
    lo = start + step * np.arange(n)
    j0 = np.floor(lo).astype(np.int64)
    first = int(j0[0])
    last = min(int(np.ceil(start + length)), n_reduced * block) - 1
    nzv = virtual != 0
    a = nzv.argmax(axis=1)
    lv = int((n - nzv[:, ::-1].argmax(axis=1) - a).max())
    vi = a[:, None] + np.arange(lv)[None, :]
    inside = vi < n
    vi = np.minimum(vi, n - 1)
    vals = np.where(inside, np.take_along_axis(virtual, vi, axis=1), 0.0)
    kmax = int(np.ceil(step))
    c0 = j0[a] - first
    lc = int((j0[vi].max(axis=1) - j0[a]).max()) + kmax + 1
    local_w = np.zeros((64, lc))
    rows = np.broadcast_to(np.arange(64)[:, None], vi.shape)
    for k in range(kmax + 1):
        j = j0 + k
        share = (np.minimum(lo + step, j + 1) - np.maximum(lo, j)).clip(0) / step
        ok = inside & (share[vi] > 0) & (j[vi] <= last)
        np.add.at(local_w, (rows[ok], (j[vi] - first - c0[:, None])[ok]), (vals * share[vi])[ok])
    cell0 = first // block
    width = (last // block) - cell0 + 1
    g = first + c0[:, None] + np.arange(lc)[None, :]
    cells = g // block - cell0
    binned = np.zeros((64, width))
    valid = g <= last
    np.add.at(binned, (np.broadcast_to(np.arange(64)[:, None], g.shape)[valid], cells[valid]), local_w[valid])
    nz = binned != 0
    lo_i = nz.argmax(axis=1)
    hi_i = width - 1 - nz[:, ::-1].argmax(axis=1)
    span = int((hi_i - lo_i).max()) + 1
    local = np.minimum(lo_i, width - span)[:, None] + np.arange(span)[None, :]
    return np.minimum(cell0 + local, n_reduced - 1), np.take_along_axis(binned, local, axis=1).astype(np.float32)


def _dense_rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    virtual = pdq._axis_weights(n, 1, n)
    nz = virtual != 0
    a = nz.argmax(axis=1)
    lv = int((n - nz[:, ::-1].argmax(axis=1) - a).max())
    vi = a[:, None] + np.arange(lv)[None, :]
    return a, np.where(vi < n, np.take_along_axis(virtual, np.minimum(vi, n - 1), axis=1), 0.0)


@pytest.mark.parametrize("n", [1, 2, 5, 63, 64, 65, 127, 128, 129, 255, 256, 333, 1000, 1023, 4032, 12345])
def test_tent_rows_equal_the_dense_weights(n: int) -> None:
    a, vals = pdq._tent_rows.__wrapped__(n)
    da, dvals = _dense_rows(n)
    assert np.array_equal(a, da)
    assert vals.shape == dvals.shape and np.array_equal(vals, dvals)


def test_span_weights_equal_the_dense_form_bit_for_bit() -> None:
    rng = np.random.default_rng(19)
    checked = 0
    for _ in range(120):
        width = int(rng.integers(20, 2000))
        block = int(rng.choice([1, 2, 3, 4, 8]))
        n_reduced = -(-width // block)
        length = round(float(rng.uniform(5, width)) * 64) / 64
        start = round(float(rng.uniform(0, width - length)) * 64) / 64
        if start + length > width:
            continue
        d_index, d_band = _dense_span(start, length, block, n_reduced)
        for compiled in (False, True):  # numpy's form and the compiled one (_pdq_kernel)
            index, band = pdq._axis_band_span.__wrapped__(start, length, block, n_reduced, compiled=compiled)
            assert np.array_equal(index, d_index), (width, block, start, length, compiled)
            assert band.dtype == d_band.dtype and np.array_equal(band, d_band), (width, block, start, length, compiled)
        checked += 1
    assert checked > 100


def test_both_forms_of_the_span_weights_agree_bit_for_bit() -> None:
    """The compiled span weights are numpy's, to the bit, on spans as crops make them: edges
    at 1/64 pixel anywhere, spans reaching the image's last (partial) reduced pixel, at every
    block size, short and long."""
    rng = np.random.default_rng(23)
    for _ in range(1500):
        block = int(rng.choice([1, 2, 3, 4, 5, 8]))
        n_reduced = int(rng.integers(30, 700))
        width = n_reduced * block - int(rng.integers(0, block))
        length = round(float(rng.uniform(16, width)) * 64) / 64
        start = width - length if rng.random() < 0.2 else round(float(rng.uniform(0, width - length)) * 64) / 64
        a = pdq._axis_band_span.__wrapped__(start, length, block, n_reduced, compiled=False)
        b = pdq._axis_band_span.__wrapped__(start, length, block, n_reduced, compiled=True)
        assert np.array_equal(a[0], b[0]) and a[0].dtype == b[0].dtype, (start, length, block, n_reduced)
        assert b[1].dtype == np.float32 and np.array_equal(a[1].view(np.uint32), b[1].view(np.uint32))


def test_region_variants_are_the_same_with_either_form(testdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variant of an image (anchored regions, crops, captions, borders) hashes the
    same whichever form of the span weights a process uses."""
    from assay.media.hashes import hash_image_bytes

    files = sorted((testdata / "pdq").rglob("*.jp*g"))[::8] + sorted((testdata / "pdq").rglob("*.png"))[:3]
    with_regions = 0
    for path in files:
        got = []
        for after in (10**12, 0):  # numpy all along; compiled from the first span
            monkeypatch.setattr(pdq, "COMPILED_AFTER", after)
            pdq._axis_band_span.cache_clear()
            got.append(hash_image_bytes(path.read_bytes(), path=str(path), variants=True, bank_variants=True))
        assert got[0] == got[1], path
        with_regions += bool(got[0].regions and got[0].bank_regions)
    assert with_regions >= 6


def test_a_few_regions_do_not_load_numba() -> None:
    """numba's import costs a process ~0.4 s: a one-image query hashes its regions with numpy."""
    code = ("import sys; import numpy as np; from assay.media import pdq\n"
            "luma = np.random.default_rng(1).uniform(0, 255, (200, 300)).astype(np.float32)\n"
            "boxes = [(t, 1600 - t, l, 2400 - l) for t in (0, 33.5, 100.25) for l in (0, 51.75, 200)]\n"
            "pdq.fast_pdq_boxes(luma, (2400, 1600), (8, 8), boxes)\n"
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_region_hash_of_the_whole_image_is_the_image_hash() -> None:
    # The span path and the whole-image path build their weights differently; on the whole
    # image at block 1 they describe the same filter, and must give the same hash.
    rng = np.random.default_rng(5)
    luma = rng.uniform(0, 255, (97, 131)).astype(np.float32)
    whole = pdq.fast_pdq(luma, (131, 97))
    [box] = pdq.fast_pdq_boxes(luma, (131, 97), (1, 1), [(0, 97, 0, 131)])
    assert pdq.hamming(whole.hex, box.hex) <= 2 and box.quality == whole.quality
