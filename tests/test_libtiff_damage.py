"""TIFFs that libtiff decodes only in part, and library chatter kept off the terminal.

libtiff reports a damaged strip (a bad fax code word, data past the end of the file) to an
error handler that prints on stderr; Pillow then either fails with "decoder error -2" or,
for some codecs, returns the image with what libtiff filled in. assay keeps libtiff's
errors (sniff.quiet_pillow): a decode Pillow completed despite a pixel error is refused (a
hash of it would be a hash of pixels that are not in the file), a failed one names
libtiff's reason, and nothing of libtiff's, Pillow's logger or Pillow's warnings reaches
the terminal. The files are generated: a fax-compressed pattern with one byte flipped,
found by trying positions in order (deterministic).
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assay.errors import DecodeError
from assay.media.hashes import hash_image_bytes
from assay.sniff import damaged_pixels, quiet_pillow


def _fax(tiffinfo: dict[int, str] | None = None) -> bytes:
    y, x = np.mgrid[0:192, 0:256]
    on = (((x // 16) + (y // 12)) % 2 == 0) | ((x - 128) ** 2 + (y - 96) ** 2 < 60**2)
    im = Image.fromarray((on * 255).astype("uint8")).convert("1")
    out = io.BytesIO()
    im.save(out, "TIFF", compression="group4", tiffinfo=tiffinfo or {})
    return out.getvalue()


def _ifd_entry(data: bytes, tag: int) -> int:
    """Offset of ``tag``'s 12-byte entry in the first IFD of a little-endian TIFF."""
    assert data[:2] == b"II"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, at)[0] == tag:
            return at
    raise AssertionError(f"no tag {tag}")


def _pillow_loads(data: bytes) -> tuple[bool, list[str]]:
    with quiet_pillow() as libtiff:
        try:
            Image.open(io.BytesIO(data)).load()
            loaded = True
        except Exception:
            loaded = False
    return loaded, list(libtiff)


@functools.cache
def cases() -> dict[str, bytes]:
    good = _fax()
    start = struct.unpack_from("<I", good, _ifd_entry(good, 273) + 8)[0]  # StripOffsets
    length = struct.unpack_from("<I", good, _ifd_entry(good, 279) + 8)[0]  # StripByteCounts
    damaged = None
    for pos in range(start + length // 4, start + length):
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        loaded, libtiff = _pillow_loads(bytes(bad))
        if loaded and damaged_pixels(libtiff):
            damaged = bytes(bad)
            break
    assert damaged is not None, "no byte flip gave a fax strip Pillow loads with libtiff errors"
    past_end = bytearray(good)
    struct.pack_into("<I", past_end, _ifd_entry(good, 279) + 8, length + 5000)
    # A private tag of a type libtiff does not know (0): libtiff reports an error reading
    # the directory, skips the tag, and decodes every pixel.
    tagged = _fax({65000: "private"})
    odd_tag = bytearray(tagged)
    struct.pack_into("<H", odd_tag, _ifd_entry(tagged, 65000) + 2, 0)
    plain = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(plain, "TIFF")
    # SamplesPerPixel 65535: Pillow logs "More samples per pixel than can be decoded"
    spp = bytearray(plain.getvalue())
    struct.pack_into("<H", spp, _ifd_entry(bytes(spp), 277) + 8, 65535)
    # BitsPerSample's count far past the file: Pillow warns "Tag data larger than file"
    big_tag = bytearray(plain.getvalue())
    struct.pack_into("<I", big_tag, _ifd_entry(bytes(big_tag), 258) + 4, 100_000)
    return {"good": good, "damaged": damaged, "past-end": bytes(past_end), "odd-tag": bytes(odd_tag),
            "samples": bytes(spp), "big-tag": bytes(big_tag)}


def test_a_strip_libtiff_could_not_decode_is_not_hashed() -> None:
    data = cases()["damaged"]
    assert Image.open(io.BytesIO(data)).load() is not None  # Pillow alone returns an image
    with pytest.raises(DecodeError) as err:
        hash_image_bytes(data, path="fax.tif")
    assert "fax.tif: cannot decode tiff image: damaged image data (libtiff: Fax4Decode: " in str(err.value)
    assert hash_image_bytes(cases()["good"], path="fax.tif").pdq  # the intact file hashes


def test_a_failed_decode_names_libtiffs_reason() -> None:
    with pytest.raises(DecodeError) as err:
        hash_image_bytes(cases()["past-end"], path="cut.tif")
    # was "cannot decode tiff image: decoder error -2" and nothing else
    assert "decoder error -2 (libtiff: TIFFFillStrip: Read error on strip 0" in str(err.value)


def test_a_directory_error_with_every_pixel_decoded_is_hashed() -> None:
    """Only errors about pixel data refuse a decode: a tag libtiff skips does not."""
    loaded, libtiff = _pillow_loads(cases()["odd-tag"])
    assert loaded and libtiff and damaged_pixels(libtiff) is None
    assert "TIFFFetchNormalTag: " in libtiff[0]
    assert hash_image_bytes(cases()["odd-tag"]).pdq == hash_image_bytes(cases()["good"]).pdq


@pytest.mark.parametrize(("message", "pixels"), [
    ("Fax4Decode: Bad code word at line 27 of strip 0 (x 0)", True),
    ("LZWDecode: Corrupted LZW table at scanline 3", True),
    ("TIFFFillStrip: Read error on strip 0; got 12 bytes, expected 1012", True),
    ("TIFFReadEncodedTile: Read error at row 4294967295, col 0, tile 3", True),
    ("_tiffReadProc: Invalid Read at loc 4873, eof: 286", True),
    ("TIFFReadDirectory: Incorrect count for \"StripByteCounts\"; tag ignored", False),
    ("TIFFFetchNormalTag: Defined set_get_field_type of custom tag 65000 (Tag 65000) is "
     "TIFF_SETGET_UNDEFINED and thus tag is not read from file", False),
    ("WEBP compression support is not configured", False),
])
def test_which_libtiff_errors_mean_missing_pixels(message: str, pixels: bool) -> None:
    assert (damaged_pixels(["TIFFFetchNormalTag: skipped", message]) == message) is pixels


def test_nested_blocks_both_hear_libtiff() -> None:
    with quiet_pillow() as outer:
        with quiet_pillow() as inner:
            _pillow_loads(cases()["damaged"])
        assert inner and damaged_pixels(inner)
    assert damaged_pixels(outer) == damaged_pixels(inner)
    _pillow_loads(cases()["damaged"])  # outside any block: dropped, nothing printed


def _assay(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from assay.cli import main; sys.argv[0] = 'assay'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


def test_nothing_of_libtiff_or_pillow_reaches_the_terminal(tmp_path: Path) -> None:
    folder = tmp_path / "tiffs"
    folder.mkdir()
    for name, data in cases().items():
        (folder / f"{name}.tif").write_bytes(data)
    scan = _assay("--db", str(tmp_path / "store.db"), "scan", str(folder), "--no-banks",
                  "-o", str(tmp_path / "report.jsonl"))
    assert scan.returncode == 0, scan.stderr
    assert scan.stderr == ""  # libtiff printed ~20 lines here, Pillow's logger and warnings more
    records = {Path(r["path"]).stem: r for line in (tmp_path / "report.jsonl").read_text().splitlines()
               if (r := json.loads(line)).get("path", "").endswith(".tif")}
    errors = {k: [e["message"] for e in r["errors"]] for k, r in records.items()}
    assert any("damaged image data (libtiff: Fax4Decode: " in m for m in errors["damaged"])
    assert not errors["good"] and not errors["odd-tag"]
    assert any("libtiff: TIFFFillStrip" in m for m in errors["past-end"])
    one = _assay("hash", *(str(folder / f"{n}.tif") for n in ("damaged", "past-end", "samples", "big-tag")))
    assert one.returncode == 1
    # only assay's own summary line: each file's error is on stdout with its record
    assert len(one.stderr.strip().splitlines()) == 1 and one.stderr.startswith("error: "), one.stderr
    assert "Fax4Decode" in one.stdout
