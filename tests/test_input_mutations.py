"""Mutated model and text sources: each ends in a result or in an error naming the
file, never in another exception, a hang or a stopped run.

The regression cases are the mutation recipes (edits of a benign file this test
builds) that broke a reader when they were found by fuzzing; the sweeps apply a few
hundred more, drawn from ``random.Random(n).random()`` alone, whose output Python
keeps the same across versions.
"""

from __future__ import annotations

import random
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assay.errors import InputError
from assay.models import open_model
from assay.models.analyzer import analyze_model
from assay.models.formats import keras
from assay.text.ingest import SourceError, Work, read_sources
from test_model_file_findings import _h5_model, saved_model
from test_text_ingest import PARA, make_epub, make_pdf

Recipe = list[tuple[Any, ...]]


def apply(data: bytes, ops: Recipe) -> bytes:
    """``cut`` at n; ``flip`` bit b of byte i; ``set`` w bytes at i to v (``<`` or ``>``);
    ``dup`` the n bytes at i k more times; ``del`` n bytes at i."""
    b = bytearray(data)
    for op in ops:
        if op[0] == "cut":
            b = b[: op[1]]
        elif op[0] == "flip" and op[1] < len(b):
            b[op[1]] ^= 1 << op[2]
        elif op[0] == "set":
            _, pos, w, v, order = op
            b[pos : pos + w] = v.to_bytes(w, "little" if order == "<" else "big")
        elif op[0] == "dup":
            _, pos, n, times = op
            b[pos:pos] = bytes(b[pos : pos + n]) * times
        elif op[0] == "del":
            del b[op[1] : op[1] + op[2]]
    return bytes(b)


def mutations(data: bytes, count: int) -> list[bytes]:
    """``count`` deterministic mutants: truncations, bit flips, length-like fields set to
    0 / all ones / 2^31-1, duplicated and deleted runs."""
    out = []
    values = [0, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFF, 0x80, 0xFFFF]
    for n in range(count):
        r = random.Random(n).random

        def pick(k: int, r: Any = r) -> int:
            return int(r() * k)

        ops: Recipe = []
        if r() < 0.15:
            ops.append(("cut", pick(len(data))))
        else:
            for _ in range(1 + pick(3)):
                pos, kind = pick(len(data)), r()
                if kind < 0.4:
                    ops.append(("flip", pos, pick(8)))
                elif kind < 0.8:
                    w = (1, 2, 4, 8)[pick(4)]
                    ops.append(("set", pos, w, values[pick(5)] & ((1 << 8 * w) - 1), "<>"[pick(2)]))
                elif kind < 0.9:
                    ops.append(("dup", pos, 1 + pick(32), 1 + pick(8)))
                else:
                    ops.append(("del", pos, 1 + pick(32)))
        out.append(apply(data, ops))
    return out


def model_or_input_error(path: Path, *, tensors: bool = True) -> None:
    try:
        analyze_model(path)
        if tensors:
            with open_model(path) as m:
                for name in m.tensors:
                    m.array(name)
    except InputError as exc:
        assert exc.path == str(path) and exc.reason and "\n" not in exc.reason


def works_or_source_errors(path: Path) -> None:
    for item in read_sources([path]):
        assert isinstance(item, Work | SourceError)
        if isinstance(item, SourceError):
            assert item.source == str(path) and item.error


# ---------------------------------------------------------------------- HDF5 (Keras .h5)
@pytest.fixture(scope="module")
def h5_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _h5_model(tmp_path_factory.mktemp("h5") / "m.h5", lambda_layer=False).read_bytes()


@pytest.mark.parametrize("ops", [
    [("flip", 1061, 0)],  # libhdf5 RuntimeError while visiting (address overflow)
    [("flip", 6785, 5)],  # RuntimeError: bad heap free list
    [("set", 7211, 8, 0, ">")],  # KeyError from h5py opening a dataset
    [("flip", 6062, 3), ("set", 1607, 4, 0xFFFFFFFF, "<")],  # a dataset name that is not UTF-8
])
def test_corrupt_h5_is_a_decode_error_naming_the_file(tmp_path: Path, h5_seed: bytes, ops: Recipe) -> None:
    path = tmp_path / "m.h5"
    path.write_bytes(apply(h5_seed, ops))
    model_or_input_error(path, tensors=False)  # one read of the file: each costs a process


def test_h5_that_hangs_the_hdf5_library_is_refused_within_the_time_limit(
    tmp_path: Path, h5_seed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This object header makes libhdf5 loop forever reading the root attributes: before
    # the reader ran in a child process, it stopped a scan for good.
    path = tmp_path / "m.h5"
    path.write_bytes(apply(h5_seed, [("dup", 4079, 24, 13), ("flip", 7900, 4), ("del", 2110, 41)]))
    monkeypatch.setattr(keras, "H5_TIMEOUT_S", 1.0)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            open_model(path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert outcome, "reading the file did not end"
    exc = outcome[0]
    assert isinstance(exc, InputError) and exc.path == str(path), exc
    assert "HDF5" in exc.reason


def test_good_h5_still_reads_through_the_child_process(tmp_path: Path, h5_seed: bytes) -> None:
    path = tmp_path / "m.h5"
    path.write_bytes(h5_seed)
    with open_model(path) as m:
        assert m.format == "keras-h5" and m.metadata["keras_keras_version"] == "2.15.0"
        assert np.array_equal(m.array("model_weights/dense/kernel"), np.arange(6, dtype=np.float32).reshape(3, 2))


# ------------------------------------------------------------------ EPUB and PDF sources
@pytest.fixture(scope="module")
def epub_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("epub") / "e.epub"
    return make_epub(path, [("One", "First chapter " + PARA), ("Two", "Second")]).read_bytes()


@pytest.fixture(scope="module")
def pdf_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_pdf(tmp_path_factory.mktemp("pdf") / "d.pdf", [PARA[:80], PARA[80:160]]).read_bytes()


@pytest.mark.parametrize(("ops", "reason"), [
    ([("flip", 739, 2)], "BadZipFile"),  # Bad CRC-32 for a member
    ([("flip", 98, 1)], "BadZipFile"),  # a local header naming another member
    ([("set", 1456, 8, 0xFFFFFFFFFFFFFFFF, ">")], "EOFError"),  # member data cut short
])
def test_corrupt_epub_members_are_source_errors(tmp_path: Path, epub_seed: bytes, ops: Recipe,
                                                reason: str) -> None:
    path = tmp_path / "e.epub"
    path.write_bytes(apply(epub_seed, ops))
    (err,) = list(read_sources([path]))
    assert isinstance(err, SourceError) and err.source == str(path)
    assert "unreadable" in err.error and reason in err.error


def test_pdf_over_a_pypdf_limit_is_a_source_error(tmp_path: Path, pdf_seed: bytes) -> None:
    # pypdf's LimitReachedError is no PdfReadError: it ended `assay text index`.
    path = tmp_path / "d.pdf"
    path.write_bytes(apply(pdf_seed, [("flip", 366, 5), ("dup", 723, 30, 14), ("flip", 745, 7)]))
    (err,) = list(read_sources([path]))
    assert isinstance(err, SourceError) and err.source == str(path)
    assert "unreadable PDF (LimitReachedError" in err.error


def test_fuzzed_epubs(tmp_path: Path, epub_seed: bytes) -> None:
    for i, data in enumerate(mutations(epub_seed, 300)):
        path = tmp_path / f"{i}.epub"
        path.write_bytes(data)
        works_or_source_errors(path)


def test_fuzzed_pdfs(tmp_path: Path, pdf_seed: bytes) -> None:
    for i, data in enumerate(mutations(pdf_seed, 200)):
        path = tmp_path / f"{i}.pdf"
        path.write_bytes(data)
        works_or_source_errors(path)


# ------------------------------------------------------------ numpy files and SavedModels
def _npz(path: Path, compressed: bool) -> bytes:
    (np.savez_compressed if compressed else np.savez)(path, x=np.arange(6, dtype=np.int16), y=np.ones((2, 2)))
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["npy", "npz", "npz-deflated", "saved_model"])
def test_fuzzed_numpy_files_and_saved_models(tmp_path: Path, kind: str) -> None:
    if kind == "npy":
        np.save(tmp_path / "seed.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
        seed, name = (tmp_path / "seed.npy").read_bytes(), "a.npy"
    elif kind.startswith("npz"):
        seed, name = _npz(tmp_path / "seed.npz", kind == "npz-deflated"), "a.npz"
    else:
        seed, name = saved_model(["Placeholder", "MatMul", "SaveV2"], ["Identity", "ReadFile"]), "saved_model.pb"
    for i, data in enumerate(mutations(seed, 150)):
        d = tmp_path / str(i)
        d.mkdir()
        (d / name).write_bytes(data)
        model_or_input_error(d / name)


# ------------------------------------------------------------------------ zip members
def test_zip_member_failing_its_crc_or_local_header_is_a_member_error(tmp_path: Path) -> None:
    # zipfile's BadZipFile is no OSError: it ended the archive's walk as an internal error
    # ("please report this as a bug") and the members after it were never read.
    from assay.config import ScanSettings
    from assay.scan.run import run_scan

    payload = {"a.txt": b"first member " * 8, "b.txt": b"second member " * 8, "c.txt": b"third member " * 8}
    seed = tmp_path / "seed.zip"
    with zipfile.ZipFile(seed, "w", zipfile.ZIP_STORED) as z:
        for name, data in payload.items():
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    data = seed.read_bytes()
    seed.unlink()
    crc = data.index(b"first member") + 3  # stored data: a flip only the CRC check sees
    header = data.index(b"PK\x03\x04", 1)  # b.txt's local header signature
    (tmp_path / "crc.zip").write_bytes(apply(data, [("flip", crc, 0)]))
    (tmp_path / "header.zip").write_bytes(apply(data, [("flip", header + 1, 0)]))
    recs: list[Any] = []
    run_scan([tmp_path], ScanSettings(workers=1), None, recs.append)
    got = {r.path: r for r in recs}
    for archive, broken in (("crc.zip", "a.txt"), ("header.zip", "b.txt")):
        assert not got[f"{tmp_path}/{archive}"].errors
        for name in payload:
            errors = got[f"{tmp_path}/{archive}!/{name}"].errors
            if name == broken:
                assert [e.code for e in errors] == ["decode-error"] and "corrupt member data" in errors[0].message
            else:
                assert not errors, (archive, name, errors)


# ------------------------------------------------------------------- Pillow's warnings
def test_damaged_tiff_metadata_warns_nobody(tmp_path: Path) -> None:
    # Pillow warns "Corrupt EXIF data" / "Tag data larger than file" on opening such files:
    # printed on the terminal of every scan that met one, between the progress lines.
    import warnings

    from PIL import Image

    from assay.provenance.analyzer import analyze_provenance

    path = tmp_path / "t.tif"
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0131] = "Stable Diffusion"
    pixels = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, exif=exif, compression="tiff_lzw")
    data = path.read_bytes()
    cut = data[: len(data) // 8]  # the IFD Pillow wrote after the strips is gone
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        report = analyze_provenance(path, cut, "tiff")
    assert not [str(w.message) for w in seen if "PIL" in w.filename]
    assert report.errors  # the damage is still reported, in the report


def test_epub_spine_repeating_a_chapter_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One highly compressed chapter named again and again by the spine was inflated and
    # kept once per mention: memory without bound from a small file.
    from assay.text import ingest

    monkeypatch.setattr(ingest, "MAX_EPUB_BYTES", 100_000, raising=False)
    path = tmp_path / "bomb.epub"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/container.xml", '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                   '<rootfiles><rootfile full-path="c.opf"/></rootfiles></container>')
        z.writestr("c.opf", '<package xmlns="http://www.idpf.org/2007/opf"><manifest>'
                   '<item id="a" href="a.xhtml"/></manifest><spine>' + '<itemref idref="a"/>' * 200
                   + "</spine></package>")
        z.writestr("a.xhtml", "<html><body><p>" + "words " * 2000 + "</p></body></html>")
    assert path.stat().st_size < 5000
    (err,) = list(read_sources([path]))
    assert isinstance(err, SourceError) and err.source == str(path)
    assert "compression bomb" in err.error


def test_npy_dimension_of_thousands_of_digits_is_a_malformed_header(tmp_path: Path) -> None:
    # int() refuses more than 4,300 digits with a ValueError, which escaped open_model.
    import struct

    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"9" * 5000 + b",), }\n"
    path = tmp_path / "h.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(64))
    with pytest.raises(InputError, match="malformed .npy header") as exc:
        open_model(path)
    assert exc.value.path == str(path)
    model_or_input_error(path)


@pytest.mark.parametrize("line", [
    '{"id": ' + "9" * 5000 + ', "text": "a work"}',  # int() refuses over 4,300 digits: ValueError
    "[" * 100_000,  # json's recursion: RecursionError
])
def test_jsonl_line_json_cannot_take_is_that_lines_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text(line + '\n{"id": "ok", "text": "the next work"}\n')
    err, work = list(read_sources([path]))
    assert isinstance(err, SourceError) and err.source == f"{path}:1" and err.error.startswith("not JSON")
    assert isinstance(work, Work) and work.id == "ok"


# ---------------------------------------------------------------------- VICS JSON banks
@pytest.mark.parametrize("value", ["9" * 5000, "[" * 50_000])
def test_vics_value_json_cannot_take_is_invalid_bank_input(value: str) -> None:
    # An integer of over 4,300 digits (ValueError) or nesting thousands deep
    # (RecursionError) ended `assay bank import` with a traceback.
    import io

    from assay.banks.hashsets import parse_vics
    from assay.errors import InvalidBankInput

    body = '{"value": [{"Media": [{"MD5": "d41d8cd98f00b204e9800998ecf8427e", "Category": ' + value + "}]}]}"
    with pytest.raises(InvalidBankInput, match="VICS JSON holds a value json cannot read"):
        list(parse_vics(io.BytesIO(body.encode()), "v.json", []))


def test_mp4_whose_sample_description_is_cut_or_damaged_is_a_decode_error(tmp_path: Path) -> None:
    """An MP4 cut or overwritten just before its sample description ('stsd') opens with a
    video stream but no decoder; it used to end `assay hash` in an AttributeError."""
    from assay.media.video import hash_video_file
    from videogen import make_video

    data = make_video(tmp_path / "seed.mp4", seed=1, seconds=1.5, fps=10).read_bytes()
    stsd = data.find(b"stsd")
    assert stsd > 0
    for ops in ([("cut", stsd - 10)], [("cut", stsd - 20)], [("set", stsd - 69, 2, 255, "<")]):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(apply(data, ops))
        with pytest.raises(InputError, match="bad.mp4") as err:
            hash_video_file(bad)
        assert "no decoder" in str(err.value) or "video" in str(err.value)
