"""Camera traces: EXIF camera fields, MakerNote, thumbnail, JPEG quantisation tables.

All of this is weak evidence and labelled so: EXIF is copied by editors, kept by
img2img pipelines and written by anyone with exiftool. It says "the file carries
the traces a camera leaves", never "this is a camera original".

Two traps are avoided: ComfyUI's WebP/AVIF savers put their workflow JSON into
EXIF Make/Model, and some generators write their own name there; neither is a
camera.
"""

from __future__ import annotations

import functools
import struct
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..report.provenance import Evidence
from .xmp import known_generator

if TYPE_CHECKING:
    from .context import ImageContext

TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_SOFTWARE = 0x0131
TAG_DATETIME_ORIGINAL = 0x9003
TAG_MAKERNOTE = 0x927C
TAG_BODY_SERIAL = 0xA431
TAG_LENS_MAKE = 0xA433
TAG_LENS_MODEL = 0xA434
TAG_LENS_SERIAL = 0xA435

# JPEG Annex K tables (natural order), which IJG libjpeg scales by quality and
# which libjpeg-turbo, Pillow, OpenCV, GIMP and most web services inherit.
IJG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
IJG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
)  # fmt: skip

# Editors whose name in EXIF Software means the file was re-saved by one.
_EDITORS = (
    "photoshop", "lightroom", "gimp", "capture one", "snapseed", "affinity", "pixelmator",
    "darktable", "rawtherapee", "luminar", "paint.net", "picasa", "acdsee", "dxo",
    "camera raw", "photos", "canva", "fotor", "picsart",
)  # fmt: skip


def ijg_table(base: tuple[int, ...], quality: int) -> tuple[int, ...]:
    """The table libjpeg's jpeg_set_quality() writes (with force_baseline)."""
    q = min(max(quality, 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return tuple(min(max((v * scale + 50) // 100, 1), 255) for v in base)


@functools.cache
def _ijg() -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """libjpeg's (luma, chroma) tables for every quality: built when a JPEG's tables are
    classified, not by every import (13,000 values, ~10 ms)."""
    return {q: (ijg_table(IJG_LUMA, q), ijg_table(IJG_CHROMA, q)) for q in range(1, 101)}


def classify_quant_tables(tables: dict[int, list[int]]) -> dict[str, Any]:
    """Encoder family and quality from JPEG quantisation tables (natural order).

    ``family`` is "ijg" when the tables are exactly libjpeg's for one quality
    (software encoders), else "non-ijg" (camera firmware, Adobe, mozjpeg and other
    encoders with their own tables); ``quality`` is the exact IJG quality or the
    closest one by squared error of the luma table.
    """
    luma = tuple(tables.get(0, ()))
    chroma = tuple(tables[1]) if 1 in tables else None
    if len(luma) != 64 or (chroma is not None and len(chroma) != 64):
        return {"family": "unreadable", "tables": len(tables)}
    ijg = _ijg()
    for q, (lt, ct) in ijg.items():
        if luma == lt and (chroma is None or chroma == ct):
            return {"family": "ijg", "quality": q, "tables": len(tables)}
    best = min(ijg, key=lambda q: sum((a - b) ** 2 for a, b in zip(luma, ijg[q][0], strict=True)))
    return {"family": "non-ijg", "closest_ijg_quality": best, "tables": len(tables)}


def _thumbnail_present(raw: bytes | None) -> bool:
    """Does the EXIF block have an IFD1 (where the embedded thumbnail lives)?"""
    if not raw or len(raw) < 8 or raw[:2] not in (b"II", b"MM"):
        return False
    o = "<" if raw[:2] == b"II" else ">"
    (ifd0,) = struct.unpack_from(o + "I", raw, 4)
    if ifd0 + 2 > len(raw):
        return False
    (count,) = struct.unpack_from(o + "H", raw, ifd0)
    nxt = ifd0 + 2 + 12 * count
    if nxt + 4 > len(raw):
        return False
    (ifd1,) = struct.unpack_from(o + "I", raw, nxt)
    return 8 <= ifd1 < len(raw) - 2


def _text(v: object) -> str | None:
    if isinstance(v, bytes):
        v = v.decode("latin-1")
    if not isinstance(v, str):
        return None
    v = v.strip().strip("\x00").strip()
    return v[:200] or None


def _is_placeholder(v: str | None) -> bool:
    return v is None or v.upper() in ("N/A", "NONE", "UNKNOWN", "0", "-")


def camera_facts(ctx: ImageContext) -> dict[str, Any]:
    """EXIF camera fields, or {} when there are none. Never includes pixels."""
    from .context import is_comfyui_exif_value

    tags = ctx.exif()
    make, model = _text(tags.get(TAG_MAKE)), _text(tags.get(TAG_MODEL))
    if is_comfyui_exif_value(tags.get(TAG_MAKE)) or is_comfyui_exif_value(tags.get(TAG_MODEL)):
        return {"not_a_camera": "EXIF Make/Model hold a ComfyUI workflow"}
    if any(v is not None and v.startswith(("{", "[")) for v in (make, model)):
        # StableSwarmUI before 0.5.8 wrote its parameters' JSON into Model: no camera does
        return {"not_a_camera": "EXIF Make/Model hold JSON data, not a camera's name"}
    for v in (make, model):
        gen = known_generator(v)
        if gen:
            return {"not_a_camera": f"EXIF Make/Model name the generator {gen}"}
    facts: dict[str, Any] = {}
    if make:
        facts["make"] = make
    if model:
        facts["model"] = model
    lens = _text(tags.get(TAG_LENS_MODEL))
    if not _is_placeholder(lens):
        facts["lens"] = lens
    if not _is_placeholder(_text(tags.get(TAG_BODY_SERIAL))):
        facts["serial_number_present"] = True  # presence only: a serial identifies a person
    dto = _text(tags.get(TAG_DATETIME_ORIGINAL))
    if dto:
        facts["datetime_original"] = dto
    if ctx.gps_present():
        facts["gps_present"] = True  # presence only: coordinates locate a person
    # Present even when its value was too long to load (None): presence is the trace.
    if TAG_MAKERNOTE in tags and tags[TAG_MAKERNOTE] not in (b"", ()):
        facts["makernote_present"] = True
    if facts and _thumbnail_present(ctx.exif_bytes()):
        facts["thumbnail_present"] = True
    return facts


def jpeg_table_facts(ctx: ImageContext) -> dict[str, Any] | None:
    if ctx.format != "jpeg":
        return None
    tables = getattr(ctx.pil(), "quantization", None)
    if not tables:
        return None
    return classify_quant_tables(dict(tables))


def evidence(ctx: ImageContext) -> list[Evidence]:
    """Weak camera-trace, editor and JPEG-encoder evidence."""
    out: list[Evidence] = []
    cam = camera_facts(ctx)
    try:
        tables = jpeg_table_facts(ctx)
    except InputError:
        tables = None  # pixels undecodable: the other sources report that
    if cam and "not_a_camera" not in cam and ("make" in cam or "model" in cam):
        traces = [
            label
            for key, label in (
                ("datetime_original", "capture time"),
                ("lens", "lens"),
                ("serial_number_present", "body serial number"),
                ("gps_present", "GPS data"),
                ("makernote_present", "maker note"),
                ("thumbnail_present", "embedded thumbnail"),
            )
            if key in cam
        ]
        name = " ".join(x for x in (cam.get("make"), cam.get("model")) if x)
        if tables:
            cam["jpeg_tables"] = tables
        out.append(
            Evidence(
                source="camera",
                claim="camera-captured",
                strength="weak",
                summary=(
                    f"Its EXIF names the camera {name!r}"
                    + (f" with {', '.join(traces)}" if traces else "")
                    + "; EXIF is editable and kept by editors and img2img tools, so this is "
                    "a weak trace, not proof of a camera original."
                ),
                facts=cam,
            )
        )
    elif tables:
        if tables["family"] == "ijg":
            what = f"the standard IJG/libjpeg tables at quality {tables['quality']}, typical of software encoders"
        elif tables["family"] == "non-ijg":
            what = "not the standard IJG/libjpeg tables (cameras, Adobe and some other encoders use their own)"
        else:
            what = "unreadable"
        out.append(
            Evidence(
                source="jpeg-tables",
                claim="unknown",
                strength="weak",
                summary=f"Its JPEG quantisation tables are {what}.",
                facts=tables,
            )
        )
    software = _text(ctx.exif().get(TAG_SOFTWARE))
    if software and not known_generator(software):
        low = software.lower()
        if any(e in low for e in _EDITORS):
            out.append(
                Evidence(
                    source="exif",
                    claim="edited",
                    strength="weak",
                    summary=f"Its EXIF Software names the editor {software!r}: the file was saved by an editor.",
                    facts={"field": "EXIF Software", "value": software},
                )
            )
    return out
