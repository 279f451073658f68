"""Image decoding (format whitelist, decompression-bomb limits) and hashing:
PDQ in a fast and a reference mode, MD5 and SHA-256 of the file bytes."""

from __future__ import annotations

from .hashes import ImageHashes, PdqMode, hash_image_bytes, hash_image_file
from .pdq import DIHEDRAL_NAMES, array_to_hex, hamming, hex_to_array, hex_to_bytes, pdq_hex

__all__ = [
    "DIHEDRAL_NAMES",
    "ImageHashes",
    "PdqMode",
    "array_to_hex",
    "hamming",
    "hash_image_bytes",
    "hash_image_file",
    "hex_to_array",
    "hex_to_bytes",
    "pdq_hex",
]
