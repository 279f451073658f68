"""The independent Stable Diffusion watermark encoder, shared by tests and bench.

invisible-watermark's ``maxDct.py`` is loaded straight from its file, so that
the package ``__init__`` (which imports torch through RivaGAN) never runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

# The payloads as their generators publish them, written out here independently of
# assay's own constants (found with a code search of the public repositories):
# - SD 1.x: CompVis/stable-diffusion scripts/txt2img.py: wm = "StableDiffusionV1",
#   wm_encoder.set_watermark('bytes', wm.encode('utf-8'))
# - SD 2.x: Stability-AI/stablediffusion scripts/txt2img.py: wm = "SDV2", same call
# - SDXL: Stability-AI/generative-models scripts/demo/streamlit_helpers.py (copied into
#   diffusers pipelines/stable_diffusion_xl/watermark.py):
#   WATERMARK_MESSAGE = 0b101100111110110010010000011110111011000110011110 (0xB3EC907BB19E),
#   WATERMARK_BITS = [int(bit) for bit in bin(WATERMARK_MESSAGE)[2:]], set_watermark("bits", ...)
# invisible-watermark's 'bytes' mode turns bytes into bits with np.unpackbits (most
# significant bit first); its 'bits' mode takes the list as it is.
PUBLISHED_BYTES = {"sd1": b"StableDiffusionV1", "sd2": b"SDV2"}
SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110


def published_bits(name: str) -> tuple[int, ...]:
    """The bit sequence a generator embeds, derived the way its own script does."""
    if name == "sdxl":
        return tuple(int(bit) for bit in bin(SDXL_MESSAGE)[2:])
    return tuple(int(b) for b in np.unpackbits(np.frombuffer(PUBLISHED_BYTES[name], dtype=np.uint8)))


def load_maxdct() -> ModuleType:
    spec = importlib.util.find_spec("imwatermark")
    if not spec or not spec.submodule_search_locations:
        raise ModuleNotFoundError("invisible-watermark is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "maxDct.py"
    mspec = importlib.util.spec_from_file_location("_imwatermark_maxdct", path)
    assert mspec and mspec.loader
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def pattern(h: int, w: int, seed: int) -> np.ndarray:
    """A benign generated RGB pattern: gradients plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + 2 * y) % 256], -1) + rng.normal(0, 20, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def embed(maxdct: ModuleType, rgb: np.ndarray, bits: tuple[int, ...]) -> np.ndarray:
    """Mark an RGB image the way the SD reference scripts do (BGR in, BGR out)."""
    out = maxdct.EmbedMaxDct(list(bits), wmLen=len(bits)).encode(np.ascontiguousarray(rgb[:, :, ::-1]))
    return np.ascontiguousarray(out[:, :, ::-1])
