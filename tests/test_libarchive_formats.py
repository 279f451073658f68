"""RAR archives and ISO 9660 images in scans (read through libarchive): RAR 4 and RAR 5
members walked as files (they were 'other': a RAR of pictures was never looked into),
encrypted members reported, damaged archives an error on the archive's record while the
scan goes on; a disc image's files likewise. RAR archives are written by tests/rargen.py
(stored members; libarchive decompresses the packed ones the same way), ISO images by
libarchive's own writer."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from assay.containers.libarchive_reader import libarchive_members
from assay.sniff import sniff_path
from rargen import member, rar, rar5

pytest.importorskip("libarchive")


def _pictures() -> list[bytes]:
    from PIL import Image

    out = []
    for seed in (1, 2, 3):
        im = Image.effect_mandelbrot((160, 120), (-2.0 + seed / 10, -1.2, 1.0, 1.2), 60 + 10 * seed).convert("RGB")
        buf = io.BytesIO()
        im.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _scan(db: str, target: Path, out: Path) -> tuple[dict[str, dict], subprocess.CompletedProcess]:
    banks = ["--db", db] if Path(db).exists() else []
    r = subprocess.run([sys.executable, "-m", "assay", *banks, "scan", str(target), "-o", str(out),
                        "--workers", "1", *([] if banks else ["--no-banks"])],
                       capture_output=True, text=True, timeout=300)
    recs = {x["path"].removeprefix(str(target.parent) + "/"): x for x in map(json.loads, out.read_text().splitlines())
            if x.get("schema") == "assay.file/1"}
    return recs, r


def _bank_known(tmp_path: Path, picture: bytes) -> str:
    """A store whose bank "flagged" holds ``picture`` as entry "k"."""
    db = str(tmp_path / "b.sqlite3")
    (tmp_path / "known.png").write_bytes(picture)
    run = [sys.executable, "-m", "assay", "--db", db]
    assert subprocess.run([*run, "bank", "create", "flagged", "--create"], capture_output=True).returncode == 0
    assert subprocess.run([*run, "bank", "add", "flagged", "--content-id", "k", "--image",
                           str(tmp_path / "known.png"), "--no-variants"], capture_output=True).returncode == 0
    return db


@pytest.mark.parametrize("writer", [rar, rar5], ids=["rar4", "rar5"])
def test_pictures_in_a_rar_are_scanned_and_matched(tmp_path: Path, writer) -> None:  # noqa: ANN001
    known, other, nested = _pictures()
    db = _bank_known(tmp_path, known)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("deep/n.png", nested)
    case = tmp_path / "case"
    case.mkdir()
    # named as a picture: what it is comes from its bytes
    writer(case / "holiday.jpg", [("photos/a.png", known), ("photos/b.png", other), ("more.zip", buf.getvalue())])
    recs, r = _scan(db, case, tmp_path / "r.jsonl")
    assert r.returncode in (0, 3) and r.stderr == "", r.stderr
    top = recs["case/holiday.jpg"]
    assert (top["kind"], top["format"]) == ("archive", "rar") and not top.get("errors")
    assert {m["content_id"] for m in recs["case/holiday.jpg!/photos/a.png"]["matches"]} == {"k"}
    assert recs["case/holiday.jpg!/photos/b.png"]["matches"] == []
    assert recs["case/holiday.jpg!/more.zip!/deep/n.png"]["kind"] == "image"
    assert "1 matched file" in r.stdout or "matched files │ 1" in r.stdout


def test_encrypted_members_are_reported_and_the_rest_read(tmp_path: Path) -> None:
    a, b, _ = _pictures()
    path = rar(tmp_path / "locked.rar", [member("secret.png", a, encrypted=True), member("open.png", b)], raw=True)
    members = list(libarchive_members(path, "rar", 100))
    assert [(m.name, m.encrypted) for m in members] == [("secret.png", True), ("open.png", False)]
    recs, r = _scan(str(tmp_path / "b.sqlite3"), path, tmp_path / "r.jsonl")
    assert r.stderr == ""
    err = recs["locked.rar!/secret.png"]["errors"][0]
    assert err["code"] == "encrypted" and "never guesses passwords" in err["message"]
    assert recs["locked.rar!/open.png"]["kind"] == "image"


def test_a_damaged_rar_is_an_error_on_its_record_and_the_scan_goes_on(tmp_path: Path) -> None:
    a, b, _ = _pictures()
    good = rar(tmp_path / "g.rar", [("a.png", a), ("b.png", b)]).read_bytes()
    case = tmp_path / "case"
    case.mkdir()
    (case / "cut.rar").write_bytes(good[: len(good) - len(b) // 2])  # the second member cut short
    bad_header = bytearray(good)
    bad_header[30] ^= 0xFF  # inside the first file header: its CRC no longer holds
    (case / "bad.rar").write_bytes(bytes(bad_header))
    (case / "after.png").write_bytes(b)
    recs, r = _scan(str(tmp_path / "b.sqlite3"), case, tmp_path / "r.jsonl")
    assert r.stderr == "" and "Traceback" not in r.stdout
    assert recs["case/after.png"]["kind"] == "image"
    for name in ("case/cut.rar", "case/bad.rar"):
        assert recs[name]["format"] == "rar"
        assert any(e["stage"] == "archive" for e in recs[name]["errors"]), recs[name]
    assert recs["case/cut.rar!/a.png"]["kind"] == "image"  # what came before the damage


def test_member_count_limit_and_sniffing(tmp_path: Path) -> None:
    path = rar5(tmp_path / "x.bin", [(f"f{i}.txt", b"x") for i in range(5)])
    assert sniff_path(path).format == "rar"
    assert sniff_path(rar(tmp_path / "y", [("a", b"a")])).format == "rar"
    from assay.containers.members import ArchiveError

    with pytest.raises(ArchiveError, match="RAR archive holds more than 3 members"):
        list(libarchive_members(path, "rar", 3))


def test_without_libarchive_the_archive_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assay.containers.members import ArchiveError

    monkeypatch.setitem(sys.modules, "libarchive", None)
    with pytest.raises(ArchiveError, match="apt install libarchive13") as e:
        list(libarchive_members(rar(tmp_path / "a.rar", [("a", b"a")]), "rar", 10))
    assert e.value.code == "unsupported-format"


def test_files_in_an_iso_image_are_scanned_and_matched(tmp_path: Path) -> None:
    import libarchive

    known, other, _ = _pictures()
    db = _bank_known(tmp_path, known)
    case = tmp_path / "case"
    case.mkdir()
    image = case / "backup.bin"
    with libarchive.file_writer(str(image), "iso9660") as iso:
        iso.add_file_from_memory("DCIM/A.PNG", len(known), known)
        iso.add_file_from_memory("DCIM/B.PNG", len(other), other)
    assert sniff_path(image).format == "iso"
    recs, r = _scan(db, case, tmp_path / "r.jsonl")
    assert r.returncode in (0, 3) and r.stderr == "", r.stderr
    assert (recs["case/backup.bin"]["kind"], recs["case/backup.bin"]["format"]) == ("archive", "iso")
    members = sorted(k for k in recs if k.startswith("case/backup.bin!/"))
    assert members == ["case/backup.bin!/DCIM/A.PNG", "case/backup.bin!/DCIM/B.PNG"]  # no root-folder record
    assert {m["content_id"] for m in recs["case/backup.bin!/DCIM/A.PNG"]["matches"]} == {"k"}
    assert recs["case/backup.bin!/DCIM/B.PNG"]["matches"] == []
