"""A scan decodes each image once: provenance's pixel checks (watermark, stealth data)
use the image the hashing step decoded, and report exactly what they report on their own."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assay.config import ScanSettings
from assay.media.hashes import hash_image_file
from assay.provenance.analyzer import analyze_provenance
from assay.provenance.context import ImageContext
from assay.report.schema import FileRecord
from assay.scan.run import run_scan
from test_novelai import INFOTEXT
from wmref import embed, load_maxdct, pattern, published_bits


def _save(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _stealth(arr: np.ndarray, magic: str) -> np.ndarray:
    out = arr.copy()
    _embed_stealth(out, magic, gzip.compress(INFOTEXT.encode()))
    return out


def _embed_stealth(arr: np.ndarray, magic: str, payload: bytes) -> None:
    # test_novelai's writer walks the columns of its own fixed height; this one any height's
    stream = magic.encode() + (len(payload) * 8).to_bytes(4, "big") + payload
    bits = [(byte >> (7 - i)) & 1 for byte in stream for i in range(8)]
    channels = [3] if magic.startswith("stealth_png") else [0, 1, 2]
    h = arr.shape[0]
    for n, bit in enumerate(bits):
        pixel, ch = divmod(n, len(channels))
        x, y = divmod(pixel, h)
        arr[y, x, channels[ch]] = (int(arr[y, x, channels[ch]]) & 0xFE) | bit


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    maxdct = load_maxdct()
    root = tmp_path_factory.mktemp("decode-once")
    marked = embed(maxdct, pattern(512, 512, 1), published_bits("sdxl"))
    rgba = np.dstack([marked, np.full((512, 512), 255, np.uint8)])
    files = {
        "marked.png": _save(marked, "PNG"),
        "marked-rgba-stealth.png": _save(_stealth(rgba, "stealth_pngcomp"), "PNG"),
        "stealth.webp": _save(_stealth(pattern(300, 300, 2), "stealth_rgbcomp"), "WEBP", lossless=True, exact=True),
        "lossy.webp": _save(pattern(300, 300, 3), "WEBP", quality=80),
        "small444.jpg": _save(embed(maxdct, pattern(400, 400, 4), published_bits("sd1")), "JPEG",
                              quality=95, subsampling=0),
        "big444.jpg": _save(embed(maxdct, pattern(768, 1024, 5), published_bits("sdxl")), "JPEG",
                            quality=95, subsampling=0),
        "photo420.jpg": _save(pattern(600, 800, 6), "JPEG", quality=85),
        "grey.png": _save(pattern(300, 300, 7)[:, :, 0], "PNG"),
        "bitmap.bmp": _save(pattern(300, 300, 8), "BMP"),
    }
    p = Image.fromarray(pattern(300, 300, 9)).convert("P", palette=Image.Palette.ADAPTIVE)
    buf = io.BytesIO()
    p.save(buf, "PNG")
    files["palette.png"] = buf.getvalue()
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def test_provenance_in_a_scan_equals_provenance_on_its_own(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = ImageContext._open_pil

    def counting_open(self: ImageContext) -> object:
        opened.append(self.path.name)
        return real_open(self)

    monkeypatch.setattr(ImageContext, "_open_pil", counting_open)
    records: dict[str, FileRecord] = {}
    run_scan([folder], ScanSettings(workers=1), None, lambda r: records.__setitem__(Path(r.path).name, r))
    # Provenance opened only the images hashing did not decode at full size: the large
    # JPEGs (decoded by libjpeg at reduced scale for PDQ). Everything else was shared.
    assert sorted(opened) == ["big444.jpg", "photo420.jpg"]
    monkeypatch.setattr(ImageContext, "_open_pil", real_open)
    assert len(records) == 10
    for name, rec in records.items():
        path = folder / name
        alone = analyze_provenance(path, path.read_bytes(), rec.format or "")
        assert rec.provenance is not None and not rec.errors, name
        assert rec.provenance.model_dump() == alone.model_dump(), name
        pdq = next(s for s in rec.signals if s.type == "pdq" and s.variant is None)
        assert pdq.value == hash_image_file(path).pdq
    # the comparison covers pixel evidence that was actually found
    sources = {n: {e.source for e in r.provenance.evidence} for n, r in records.items() if r.provenance}
    assert "watermark" in sources["marked.png"] and "watermark" in sources["marked-rgba-stealth.png"]
    assert "watermark" in sources["small444.jpg"] and "watermark" in sources["big444.jpg"]
    located = {n: [loc for e in r.provenance.evidence for loc in e.facts.get("locations", [])]
               for n, r in records.items() if r.provenance}
    assert located["marked-rgba-stealth.png"] == ["stealth:alpha"]
    assert located["stealth.webp"] == ["stealth:rgb"]
