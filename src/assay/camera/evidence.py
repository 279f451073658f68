"""Camera fingerprints as provenance evidence (``assay provenance``, ``assay scan``).

When a store holds enrolled cameras, each image whose size is that of a fingerprint, as
taken or turned a quarter (width and height swapped), is compared with it: the PCE of the
photo's residual against the fingerprint in the turns of that size (0 and 180 degrees, or
90 and 270), with no translation search. A PCE at or above the threshold is a
``camera-fingerprint`` evidence item of strength ``strong``: the photo's pixels carry that
sensor's pattern. Below it, one ``unknown`` item says which cameras were compared and that
this says nothing either way (a processed or resized photo loses the pattern): never "not
taken by this camera".

Not searched here (``assay camera match`` searches them): crops (a photo smaller than the
fingerprint), which would cost one full-size correlation per position set and camera on
every image of a scan. Resized photos are not searched anywhere.

A store without cameras costs nothing: callers ask :func:`camera_count` once (one SQL
count) and pass no bank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..report.provenance import Evidence
from .prnu import DEFAULT_THRESHOLD, Fingerprint, detect, probe

if TYPE_CHECKING:
    from ..banks.store import Store
    from .store import CameraRecord

SOURCE = "camera-fingerprint"
MAX_LISTED = 20  # cameras named in a below-threshold item (the count is always given)


@dataclass
class CameraBank:
    """The enrolled cameras of a store's enabled banks, fingerprints read on first need
    (a scan of photos of other sizes never reads one)."""

    records: list[CameraRecord]
    load: Any  # CameraRecord -> Fingerprint
    threshold: float = DEFAULT_THRESHOLD
    _prints: dict[int, Fingerprint] = field(default_factory=dict, repr=False)

    @classmethod
    def from_store(cls, store: Store, threshold: float = DEFAULT_THRESHOLD) -> CameraBank | None:
        from .store import CameraStore

        cs = CameraStore(store)
        records = cs.list()
        return cls(records, cs.load, threshold) if records else None

    @classmethod
    def open(cls, url: str, threshold: float = DEFAULT_THRESHOLD) -> CameraBank | None:
        """The cameras of the store at ``url`` (read once; the store is closed again)."""
        from ..banks.store import Store

        store = Store(url)
        try:
            bank = cls.from_store(store, threshold)
            if bank is not None:  # read them now: the store closes
                for r in bank.records:
                    bank.fingerprint(r)
            return bank
        finally:
            store.close()

    def candidates(self, width: int, height: int) -> list[CameraRecord]:
        """Cameras whose fingerprint has this photo's size, as taken or turned a quarter."""
        return [r for r in self.records if (r.height, r.width) in ((height, width), (width, height))]

    def fingerprint(self, rec: CameraRecord) -> Fingerprint:
        fp = self._prints.get(rec.id)
        if fp is None:
            fp = self._prints[rec.id] = self.load(rec)
        return fp


def evidence(pixels: np.ndarray, bank: CameraBank) -> list[Evidence]:
    """Evidence of a photo (H, W, 3 or 4 uint8 as stored, no EXIF rotation) against the
    bank's cameras of its size; [] when none has its size."""
    h, w = pixels.shape[:2]
    cams = bank.candidates(w, h)
    if not cams:
        return []
    rgb = pixels[..., :3] if pixels.ndim == 3 else pixels
    pr = probe(rgb)
    matched: list[Evidence] = []
    below: list[dict[str, Any]] = []
    for rec in cams:
        det = detect(pr, bank.fingerprint(rec), translations=False)
        if det is None:  # cannot happen for a candidate; nothing to say if it did
            continue
        label = f"{rec.bank}/{rec.name}"
        facts: dict[str, Any] = {
            "camera": rec.name, "bank": rec.bank, "pce": round(det.pce, 1), "threshold": bank.threshold,
            "rotation": det.rotation, "false_alarm": det.false_alarm(), "fingerprint_images": rec.images,
        }
        exif = rec.meta.get("exif") or []
        if len(exif) == 1:
            facts["enrolled_exif"] = exif[0]
        if det.pce >= bank.threshold:
            turn = f", turned {det.rotation} degrees" if det.rotation else ""
            matched.append(Evidence(
                source=SOURCE, claim="camera-captured", strength="strong",
                summary=(f"the photo carries the sensor fingerprint of camera {label!s} (PCE {det.pce:.1f}, "
                         f"threshold {bank.threshold:g}{turn}; false-alarm probability {det.false_alarm():.2g}): "
                         "strong evidence that this camera took it"),
                facts=facts))
        else:
            below.append({"camera": rec.name, "bank": rec.bank, "pce": round(det.pce, 1)})
    if below and not matched:
        top = max(below, key=lambda d: d["pce"])
        n = len(below)
        what = f"{n} enrolled camera{'s' if n != 1 else ''} of its size"
        matched.append(Evidence(
            source=SOURCE, claim="unknown", strength="weak",
            summary=(f"compared with the sensor fingerprints of {what}: no PCE reached the threshold "
                     f"{bank.threshold:g} (highest {top['pce']:.1f}, {top['bank']}/{top['camera']}); "
                     "a PCE below the threshold says nothing either way (processing, resizing or "
                     "re-encoding weakens the pattern)"),
            facts={"threshold": bank.threshold, "compared": n,
                   "cameras": sorted(below, key=lambda d: -d["pce"])[:MAX_LISTED]}))
    return matched
