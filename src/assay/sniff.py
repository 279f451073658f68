"""What is this file? Decided by magic bytes, never by extension alone."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 64

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "image" | "model" | "other"
    format: str  # "jpeg", "png", ..., "safetensors", "zip", "pickle", "gguf", "unknown"


def sniff_bytes(head: bytes, size: int | None = None) -> Sniffed:
    """Classify from the first bytes of a file (at least 16 for most formats)."""
    h = head
    if h.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpeg")
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png")
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "gif")
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return Sniffed("image", "webp")
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image", "tiff")
    if h[:2] == b"BM" and len(h) >= 18:
        dib = struct.unpack_from("<I", h, 14)[0]
        if dib in (12, 40, 52, 56, 64, 108, 124):
            return Sniffed("image", "bmp")
    if h[4:8] == b"ftyp":
        brand = h[8:12]
        if brand in _AVIF_BRANDS:
            return Sniffed("image", "avif")
        if brand in _HEIF_BRANDS:
            return Sniffed("image", "heif")
    if h[:4] == b"GGUF":
        return Sniffed("model", "gguf")
    if h[:4] == b"PK\x03\x04" or h[:4] == b"PK\x05\x06":
        # Zip: a PyTorch checkpoint or TorchScript archive, or any other zip;
        # the model readers look inside and decide.
        return Sniffed("model", "zip")
    if len(h) >= 10 and _looks_like_safetensors(h, size):
        return Sniffed("model", "safetensors")
    if len(h) >= 2 and h[0] == 0x80 and 2 <= h[1] <= 5:
        return Sniffed("model", "pickle")
    # Legacy torch.save: magic number pickled with protocol 2.
    if h[:2] == b"\x80\x02":
        return Sniffed("model", "pickle")
    return Sniffed("other", "unknown")


def _looks_like_safetensors(h: bytes, size: int | None) -> bool:
    (n,) = struct.unpack_from("<Q", h, 0)
    if n < 2 or n > 100 * 1024**2:
        return False
    if size is not None and 8 + n > size:
        return False
    return h[8:9] == b"{"


_TRANSFORMERS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                         "pytorch_model.bin.index.json")


def _has_transformers_weights(path: Path) -> bool:
    """A Hugging Face model folder: config.json beside model weights (one file or shards)."""
    return any((path / name).is_file() for name in _TRANSFORMERS_WEIGHTS)


def sniff_path(path: Path) -> Sniffed:
    """Classify a file or folder. Folders are models only when they look like one
    (diffusers ``model_index.json``, a PEFT ``adapter_config.json``, or a Hugging Face
    ``config.json`` beside model weights)."""
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return Sniffed("model", "diffusers")
        if (path / "adapter_config.json").is_file():
            return Sniffed("model", "peft")
        if (path / "config.json").is_file() and _has_transformers_weights(path):
            return Sniffed("model", "transformers")
        return Sniffed("other", "directory")
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    return sniff_bytes(head, path.stat().st_size)
