"""The service's pixel budget counts the finer decode a border is placed on (issue #23).

hash_image_bytes decodes a bordered image a second time, finer (decode.fine_luma); an
upload light by its reduced decode alone must become heavy when that decode would make
it so, and hash exactly as scan does either way."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageOps

from assay.media import decode
from assay.media.hashes import DEFAULT_LIMITS, hash_image_bytes
from assay.service.decoder import HeavyDecoder
from assay.service.uploads import UploadGate, hash_within_budget
from test_crops import _photo_like as _photo


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def uploads() -> dict[str, bytes]:
    return {"plain": _jpeg(_photo(900, 1200, seed=3)),
            "bordered": _jpeg(ImageOps.expand(_photo(780, 1080, seed=3), border=60, fill=(255, 255, 255)))}


def _hash(gate: UploadGate, data: bytes, variants: bool = True):  # noqa: ANN202
    return hash_within_budget(gate, HeavyDecoder("thread", 1), DEFAULT_LIMITS, "k", data, "u.jpg",
                              dihedral=False, variants=variants)


def test_fine_pixels_is_what_fine_luma_decodes(uploads: dict[str, bytes]) -> None:
    data = uploads["bordered"]
    opened = decode.open_image(data, "u.jpg", DEFAULT_LIMITS)
    reduced, _ = decode.reduced_luma(opened)
    assert reduced.block[0] > 1 and decode.decode_pixels(opened) == reduced.luma.size
    fine = decode.fine_luma(data, decode.open_image(data, "u.jpg", DEFAULT_LIMITS), reduced, DEFAULT_LIMITS)
    assert decode.fine_pixels(opened) == fine.luma.size == 1200 * 900
    with pytest.raises(decode.FineOverBudget):
        decode.fine_luma(data, opened, reduced, DEFAULT_LIMITS, fine_budget=fine.luma.size - 1)
    # a small image is decoded in full once: no finer decode to count
    small = decode.open_image(_jpeg(_photo(300, 400, seed=1)), "s.jpg", DEFAULT_LIMITS)
    assert decode.fine_pixels(small) == 0


def test_bordered_upload_is_heavy_when_its_finer_decode_would_make_it(uploads: dict[str, bytes]) -> None:
    data = uploads["bordered"]
    reduced = decode.decode_pixels(decode.open_image(data, "u.jpg", DEFAULT_LIMITS))
    gate = UploadGate(worker_pixels=64_000_000, heavy_from=100_000, per_key=2)
    assert reduced < gate.heavy_from  # light by its reduced decode alone
    got = _hash(gate, data)
    assert got.trimmed, "the border must be found for this test to mean anything"
    s = gate.counters()
    assert s["admitted_heavy"] == 1 and s["heavy_after_border"] == 1
    assert s["largest_admitted_pixels"] == reduced + 1200 * 900 and s["in_flight_pixels"] == 0
    # the same hashes as scan computes
    want = hash_image_bytes(data, path="u.jpg", variants=True)
    assert (got.pdq, got.trimmed, got.regions) == (want.pdq, want.trimmed, want.regions)


def test_unbordered_upload_stays_light_and_a_plain_hash_counts_no_finer_decode(
        uploads: dict[str, bytes]) -> None:
    gate = UploadGate(worker_pixels=64_000_000, heavy_from=100_000, per_key=2)
    got = _hash(gate, uploads["plain"])
    assert not got.trimmed
    _hash(gate, uploads["bordered"], variants=False)  # /v1/hash: no variants, no finer decode
    s = gate.counters()
    assert s["admitted_heavy"] == 0 and s["heavy_after_border"] == 0


def test_heavy_upload_counts_both_decodes(uploads: dict[str, bytes]) -> None:
    data = uploads["bordered"]
    reduced = decode.decode_pixels(decode.open_image(data, "u.jpg", DEFAULT_LIMITS))
    gate = UploadGate(worker_pixels=64_000_000, heavy_from=1, per_key=2)
    _hash(gate, data)
    s = gate.counters()
    assert s["admitted_heavy"] == 1 and s["heavy_after_border"] == 0
    assert s["largest_admitted_pixels"] == reduced + 1200 * 900


def test_finer_decode_over_a_full_worker_is_refused_busy(uploads: dict[str, bytes]) -> None:
    """A worker already decoding up to its budget refuses the border's finer decode."""
    from assay.errors import Busy

    gate = UploadGate(worker_pixels=1_000_000, heavy_from=100_000, per_key=2)
    with gate.held("other", 500_000):
        with pytest.raises(Busy):
            _hash(gate, uploads["bordered"])
    assert gate.counters()["refused_busy"] == 1
