"""A mixed folder for scan benchmarks and tests: the shared test photos and fixtures, generated
PNG/JPEG/WebP images of the sizes generators and phones write (some with generator metadata,
camera EXIF, borders, the SDXL watermark, alpha) and a few random-weight model files.

Every image is a benign generated pattern (smooth gradients, blobs, light noise); the model
files hold random numbers with the key names of public architectures (tests/modelgen.py).
Generation is deterministic for a given ``count`` and ``seed``.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "testdata"
sys.path.insert(0, str(ROOT / "tests"))

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}

A1111 = (
    "a benign test pattern, gradients and blobs\nNegative prompt: none\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, Size: {w}x{h}, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: v1.6.0"
)
COMFY_PROMPT = '{{"3": {{"class_type": "KSampler", "inputs": {{"seed": {seed}, "steps": 20, "cfg": 7}}}}}}'


def smooth_pattern(h: int, w: int, rng: np.random.Generator, noise: float = 3.0) -> np.ndarray:
    """Photo-like benign content: a low-frequency random field, a gradient and light noise."""
    small = rng.uniform(0, 255, (max(2, h // 64), max(2, w // 64), 3)).astype(np.float32)
    field = np.asarray(Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = (x / w * 60 + y / h * 40)[..., None]
    img = field * 0.8 + grad + rng.normal(0, noise, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _copy_shared(out: Path) -> int:
    n = 0
    for sub in ("pdq", "c2pa", "genmeta", "models"):
        src = SHARED / sub
        if not src.is_dir():
            continue
        for p in sorted(src.rglob("*")):
            if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or sub == "models") and "LICENSE" not in p.name:
                dest = out / "shared" / p.relative_to(SHARED)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dest)
                n += 1
    return n


def _png(rgb: np.ndarray, texts: dict[str, str]) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", pnginfo=info, compress_level=6)
    return buf.getvalue()


def _jpeg(rgb: np.ndarray, quality: int, subsampling: int, camera: bool) -> bytes:
    buf = io.BytesIO()
    kw: dict = {}
    if camera:
        exif = Image.Exif()
        exif[0x010F] = "BenchCam"
        exif[0x0110] = "Model 1"
        exif.get_ifd(0x8769)[0x9003] = "2026:01:01 12:00:00"
        kw["exif"] = exif
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=subsampling, **kw)
    return buf.getvalue()


def _webp(rgb: np.ndarray, lossless: bool) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "WEBP", lossless=lossless, quality=80, method=0 if lossless else 4)
    return buf.getvalue()


def _models(out: Path) -> int:
    import modelgen

    d = out / "models"
    d.mkdir(parents=True, exist_ok=True)
    modelgen.write_safetensors(d / "sd15-tiny.safetensors", modelgen.sd15(1 / 16), seed=1)
    modelgen.write_safetensors(d / "sd15-tiny-fp16copy.safetensors", modelgen.sd15(1 / 16), seed=1)
    specs, alphas = modelgen.kohya_lora("sd1", rank=4)
    modelgen.write_safetensors(d / "lora.safetensors", specs, values=alphas, seed=2)
    modelgen.write_safetensors(d / "llama-tiny.safetensors", modelgen.llama(), seed=3)
    modelgen.write_torch_zip(d / "sd15-tiny.ckpt", modelgen.sd15(1 / 16), seed=4)
    return 5


def build(out: Path, count: int = 1000, seed: int = 0, watermarked: int = 4) -> int:
    """Fill ``out`` with ``count`` files (at least the shared ones and the models); returns
    how many were written."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = _copy_shared(out) + _models(out)
    gen = out / "generated"
    gen.mkdir(exist_ok=True)
    maxdct = None
    if watermarked:
        try:
            from wmref import embed, load_maxdct, published_bits

            maxdct = load_maxdct()
        except ModuleNotFoundError:
            maxdct = None
    i = 0
    while n < count:
        kind = i % 20
        s = int(rng.integers(1 << 30))
        if kind < 7:  # generator outputs: PNG, square-ish SD sizes, metadata on most
            side = (512, 768, 1024, 832)[i % 4]
            h, w = side, (side if i % 3 else 512 + 128 * (i % 4))
            rgb = smooth_pattern(h, w, rng)
            if maxdct is not None and watermarked and i % 7 == 0:
                rgb = embed(maxdct, rgb, published_bits("sdxl"))
                watermarked -= 1
            texts = {}
            if i % 5 in (0, 1, 2):
                texts["parameters"] = A1111.format(seed=s, w=w, h=h)
            elif i % 5 == 3:
                texts["prompt"] = COMFY_PROMPT.format(seed=s)
            if kind == 6:  # an RGBA output
                rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
                data = _png(rgba, texts)
            else:
                data = _png(rgb, texts)
            name = f"gen-{i:05d}.png"
        elif kind < 15:  # photos and re-shares: JPEG, mostly 4:2:0
            w, h = ((640, 480), (1024, 768), (1280, 960), (1600, 1200), (2048, 1536))[i % 5]
            rgb = smooth_pattern(h, w, rng)
            if kind == 14:  # letterboxed copy (the trim variant's case)
                pad = h // 8
                rgb[:pad] = 0
                rgb[-pad:] = 0
            data = _jpeg(rgb, (75, 85, 90, 95)[i % 4], 0 if kind == 13 else 2, camera=kind % 2 == 0)
            name = f"photo-{i:05d}.jpg"
        else:  # WebP: lossy mostly, some lossless
            side = (512, 768, 1024)[i % 3]
            rgb = smooth_pattern(side, side, rng)
            data = _webp(rgb, lossless=kind == 19)
            name = f"web-{i:05d}.webp"
        (gen / name).write_bytes(data)
        n += 1
        i += 1
    return n


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--files", type=int, default=1000)
    a = ap.parse_args()
    print(build(a.out, a.files), "files in", a.out)
