"""Bundled demo data, generated on the spot: benign patterns only.

``assay demo`` writes a handful of synthetic images (gradients, rings, checkers,
seeded noise), near-duplicates of some of them (resized, re-encoded, brightened,
rotated), files that are not images or are broken, and a small random-weight
model file; it puts the hashes of the originals into a bank named ``demo`` in
the store, then scans the folder. Nothing here depicts anything.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance
from PIL.PngImagePlugin import PngInfo

DEMO_BANK = "demo"


@dataclass(frozen=True)
class DemoInfo:
    folder: Path
    images: int
    bank: str
    bank_entries: int


def pattern(kind: str, size: tuple[int, int] = (640, 480), seed: int = 0) -> Image.Image:
    """A benign synthetic RGB image."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "gradient":
        r, g, b = x / w, y / h, 1 - x / w
    elif kind == "rings":
        d = np.hypot(x - w * 0.4, y - h * 0.6)
        r = g = (np.sin(d / (7 + seed)) + 1) / 2
        b = (np.cos(d / 13) + 1) / 2
    elif kind == "checker":
        c = ((x // (24 + 4 * seed)).astype(int) + (y // 24).astype(int)) % 2
        r, g, b = c * 0.9, c * 0.4 + 0.3, 1 - c * 0.8
    elif kind == "waves":
        r = (np.sin(x / 31 + seed) * np.cos(y / 17) + 1) / 2
        g = (np.sin((x + y) / 45) + 1) / 2
        b = (np.cos(x / 11 - y / 23) + 1) / 2
    elif kind == "blobs":
        r = g = b = np.zeros_like(x)
        for _ in range(12):
            cx, cy, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, 120)
            m = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * rad**2))
            col = rng.uniform(0, 1, 3)
            r, g, b = r + m * col[0], g + m * col[1], b + m * col[2]
    else:  # "noise": smooth noise, upsampled from a coarse seeded grid
        coarse = rng.uniform(0, 255, (h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
        return Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.stack([r, g, b], axis=-1)
    arr = (np.clip(arr / max(float(arr.max()), 1e-6), 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _save(img: Image.Image, path: Path, fmt: str, **kw: object) -> None:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())


def _tiny_safetensors(path: Path, seed: int = 0) -> None:
    """A small random-weight file in the safetensors format with SD-like key names."""
    rng = np.random.default_rng(seed)
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": rng.standard_normal((8, 4, 3, 3)),
        "model.diffusion_model.input_blocks.0.0.bias": rng.standard_normal((8,)),
        "first_stage_model.decoder.conv_in.weight": rng.standard_normal((8, 4, 3, 3)),
    }
    header: dict[str, object] = {"__metadata__": {"ss_output_name": "demo-random-weights"}}
    blobs, offset = [], 0
    for name, arr in tensors.items():
        data = arr.astype("<f2").tobytes()
        header[name] = {"dtype": "F16", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header).encode()
    hjson += b" " * (-len(hjson) % 8)
    path.write_bytes(struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs))


def write_demo_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """Write the demo tree. Returns (bank originals, all image files written)."""
    originals_dir = folder / "bank-originals"
    images = folder / "images"
    for d in (originals_dir, images / "uploads", images / "edits", images / "other"):
        d.mkdir(parents=True, exist_ok=True)
    # Textured patterns first: flat ones (gradient, checker) get a low PDQ quality,
    # which is reported but, as in the reference tools, not matched.
    kinds = ["rings", "waves", "blobs", "noise", "gradient", "checker"]
    originals: list[Path] = []
    written: list[Path] = []
    for i, kind in enumerate(kinds):
        img = pattern(kind, seed=i)
        orig = originals_dir / f"{kind}.png"
        _save(img, orig, "PNG")
        originals.append(orig)
        if i < 4:  # four of the six are "known": their edits appear among the uploads
            edits = {
                f"{kind}-copy.png": (img, "PNG", {}),
                f"{kind}-q70.jpg": (img, "JPEG", {"quality": 70}),
                f"{kind}-small.webp": (img.resize((320, 240)), "WEBP", {"quality": 80}),
                f"{kind}-bright.jpg": (ImageEnhance.Brightness(img).enhance(1.15), "JPEG", {"quality": 90}),
                f"{kind}-rot90.png": (img.transpose(Image.Transpose.ROTATE_90), "PNG", {}),
            }
            for name, (im, fmt, kw) in edits.items():
                p = images / "edits" / name
                _save(im, p, fmt, **kw)
                written.append(p)
    # Unrelated uploads: the two unbanked families and fresh random blobs.
    for name, img in (
        ("upload-gradient.jpg", pattern("gradient", seed=4)),
        ("upload-checker.jpg", pattern("checker", seed=5)),
        ("upload-blobs-a.jpg", pattern("blobs", seed=101)),
        ("upload-blobs-b.jpg", pattern("blobs", seed=202)),
    ):
        p = images / "uploads" / name
        _save(img, p, "JPEG", quality=88)
        written.append(p)
    # An image that says it came from a generator (benign pattern, metadata only).
    meta = PngInfo()
    meta.add_text(
        "parameters",
        "a gradient test pattern\nNegative prompt: none\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
        "Seed: 1234, Size: 640x480, Model hash: 6ce0161689, Model: demo-model",
    )
    p = images / "uploads" / "generated-pattern.png"
    pattern("gradient", seed=99).save(p, "PNG", pnginfo=meta)
    written.append(p)
    # Files that are not images, or are broken: the scan records them and goes on.
    (images / "other" / "notes.txt").write_text("not an image\n")
    (images / "other" / "truncated.jpg").write_bytes((images / "uploads" / "upload-blobs-a.jpg").read_bytes()[:900])
    (images / "other" / "empty.png").write_bytes(b"")
    _tiny_safetensors(images / "other" / "random-weights.safetensors")
    return originals, written


def prepare_demo(folder: Path, db_url: str) -> DemoInfo:
    from .banks.formats import ImportRecord
    from .banks.store import Store
    from .errors import BankNotFound
    from .media import hash_image_file

    folder.mkdir(parents=True, exist_ok=True)
    originals, written = write_demo_files(folder)
    records = []
    for p in originals[:4]:
        h = hash_image_file(p)
        records.append(
            ImportRecord(
                content_id=f"demo-{p.stem}",
                signals=(("pdq", h.pdq), ("md5", h.md5), ("sha256", h.sha256)),
                note=f"demo pattern '{p.stem}' (synthetic, benign)",
            )
        )
    with Store(db_url) as store:
        try:
            store.get_bank(DEMO_BANK)
        except BankNotFound:
            store.create_bank(DEMO_BANK, description="assay demo: synthetic benign patterns")
        store.import_records(DEMO_BANK, records, source="assay demo")
        entries = store.stats(DEMO_BANK).entries
    return DemoInfo(folder, len(written), DEMO_BANK, entries)
