"""Photos for sensor fingerprints: pixels as the sensor laid them out (no EXIF rotation),
under the same limits as every image assay decodes, with the facts an enrolment keeps."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Limits
from ..errors import InputError

TAG_MAKE, TAG_MODEL, EXIF_IFD, TAG_BODY_SERIAL = 0x010F, 0x0110, 0x8769, 0xA431


@dataclass
class Photo:
    path: str
    pixels: np.ndarray  # (H, W, 3) uint8, as stored
    sha256: str
    width: int
    height: int
    camera: dict[str, str]  # EXIF make, model, serial where present

    def facts(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "width": self.width, "height": self.height}


def load_photo(path: Path, limits: Limits | None = None) -> Photo:
    from ..media.decode import open_image, reference_pixels

    limits = limits or Limits()
    try:
        if path.stat().st_size > limits.max_image_bytes:
            raise InputError(path, f"larger than the image limit of {limits.max_image_bytes} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    opened = open_image(data, str(path), limits)
    pixels, _ = reference_pixels(opened, exif_transpose=False)
    camera: dict[str, str] = {}
    try:
        exif = opened.image.getexif()
        for key, tag in (("make", TAG_MAKE), ("model", TAG_MODEL)):
            v = exif.get(tag)
            if isinstance(v, str) and v.strip("\x00 "):
                camera[key] = v.strip("\x00 ")
        serial = exif.get_ifd(EXIF_IFD).get(TAG_BODY_SERIAL)
        if isinstance(serial, str) and serial.strip("\x00 "):
            camera["serial"] = serial.strip("\x00 ")
    except Exception:  # noqa: S110 - EXIF is a courtesy here; the pixels decide
        pass
    return Photo(str(path), pixels, hashlib.sha256(data).hexdigest(), opened.width, opened.height, camera)
