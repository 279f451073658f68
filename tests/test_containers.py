"""Archives in `scan`: members walked as files (issue 11, item 1)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

import py7zr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import modelgen
from assay.cli import app
from assay.config import Limits, ScanSettings
from assay.containers import is_model_zip, walk_archive
from assay.demo import pattern
from assay.report.schema import FileRecord
from assay.scan.run import run_scan
from assay.sniff import sniff_bytes, sniff_path

runner = CliRunner()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where assay's temporary files go during the test: must be empty afterwards."""
    d = tmp_path / "private-tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.fixture
def images(tmp_path: Path) -> dict[str, bytes]:
    src = tmp_path / "src"
    src.mkdir()
    pattern("rings", seed=1).save(src / "a.jpg", quality=80)
    pattern("blobs", seed=2).save(src / "b.png")
    return {"a.jpg": (src / "a.jpg").read_bytes(), "b.png": (src / "b.png").read_bytes()}


def _scan(inputs: list[Path], *, workers: int = 1, limits: Limits | None = None) -> tuple[list[FileRecord], object]:
    recs: list[FileRecord] = []
    s = ScanSettings(workers=workers, provenance=True, models=True, limits=limits or Limits())
    summary = run_scan(inputs, s, None, recs.append)
    return recs, summary


def _by_path(recs: list[FileRecord]) -> dict[str, FileRecord]:
    return {r.path: r for r in recs}


def _sig(rec: FileRecord) -> dict[str, str]:
    return {s.type: s.value for s in rec.signals if s.variant is None}


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return path


def _7z(path: Path, members: dict[str, bytes], **kw: object) -> Path:
    with py7zr.SevenZipFile(path, "w", **kw) as s:  # type: ignore[arg-type]
        for name, data in members.items():
            s.writestr(data, name)
    return path


def _errors(rec: FileRecord) -> list[tuple[str, str]]:
    return [(e.code, e.message) for e in rec.errors]


# -- members are files ---------------------------------------------------------------------


def test_zip_of_images_is_walked_with_the_same_analyzers_as_files(
    tmp_path: Path, images: dict[str, bytes], private_tmp: Path
) -> None:
    case = tmp_path / "case"
    case.mkdir()
    _zip(case / "case.zip", {"dir/a.jpg": images["a.jpg"], "b.png": images["b.png"], "dir/": b""})
    (case / "a.jpg").write_bytes(images["a.jpg"])  # the same image on disk, for comparison
    before = sorted(p.name for p in case.iterdir())
    recs, summary = _scan([case])
    got = _by_path(recs)
    member = got[f"{case}/case.zip!/dir/a.jpg"]
    on_disk = got[f"{case}/a.jpg"]
    assert member.kind == "image" and member.format == "jpeg" and member.member_of == f"{case}/case.zip"
    # hashes (PDQ included), image facts and provenance are those of the file itself
    assert _sig(member) == _sig(on_disk) and {"pdq", "md5", "sha256"} <= set(_sig(member))
    assert member.image == on_disk.image and member.provenance == on_disk.provenance
    assert member.size == len(images["a.jpg"]) and member.errors == []
    assert got[f"{case}/case.zip!/b.png"].format == "png"
    archive = got[f"{case}/case.zip"]
    assert archive.kind == "archive" and archive.format == "zip" and archive.errors == []
    assert {"md5", "sha256"} <= set(_sig(archive))  # a banked archive matches as a file
    assert len(recs) == 4  # no record for the folder entry
    assert summary.archives == 1 and summary.archive_members == 2  # type: ignore[attr-defined]
    assert sorted(p.name for p in case.iterdir()) == before  # nothing extracted next to the evidence
    assert list(private_tmp.iterdir()) == []  # temporary copies removed


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tar.bz2", "tar.xz", "7z"])
def test_tar_and_7z_members_are_walked(tmp_path: Path, images: dict[str, bytes], private_tmp: Path,
                                       kind: str) -> None:
    p = tmp_path / f"case.{kind}"
    members = {"x/a.jpg": images["a.jpg"], "b.png": images["b.png"]}
    if kind == "7z":
        _7z(p, members)
    else:
        _tar(p, members, "w" if kind == "tar" else "w:" + kind.split(".")[1])
    recs, _ = _scan([p])
    got = _by_path(recs)
    assert got[f"{p}!/x/a.jpg"].kind == "image" and got[f"{p}!/b.png"].kind == "image"
    assert got[f"{p}!/x/a.jpg"].member_of == str(p)
    assert got[str(p)].kind == "archive" and got[str(p)].errors == []
    assert list(private_tmp.iterdir()) == []


def test_single_compressed_file_is_one_member(tmp_path: Path, images: dict[str, bytes]) -> None:
    for name, opener in (("a.jpg.gz", gzip.compress), ("a.jpg.bz2", bz2.compress), ("a.jpg.xz", lzma.compress)):
        (tmp_path / name).write_bytes(opener(images["a.jpg"]))
    recs, _ = _scan([tmp_path])
    got = _by_path(recs)
    for name in ("a.jpg.gz", "a.jpg.bz2", "a.jpg.xz"):
        assert got[f"{tmp_path}/{name}!/a.jpg"].kind == "image", name


def test_sniffing_archives_by_magic() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        ti = tarfile.TarInfo("x.txt")
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"x"))
    assert sniff_bytes(buf.getvalue()[:512]) .kind == "archive"
    assert sniff_bytes(buf.getvalue()[:512]).format == "tar"
    v7 = io.BytesIO()
    with tarfile.open(fileobj=v7, mode="w", format=tarfile.GNU_FORMAT) as t:
        t.addfile(ti, io.BytesIO(b"x"))
    head = bytearray(v7.getvalue()[:512])
    head[257:265] = b"\x00" * 8  # no magic: an old v7 header, recognised by its checksum
    head[148:156] = b"%06o\x00 " % (sum(head[:148]) + 256 + sum(head[156:]))
    assert sniff_bytes(bytes(head)).format == "tar"
    head[100] ^= 0x01  # a wrong checksum is not a tar
    assert sniff_bytes(bytes(head)).format == "unknown"
    assert sniff_bytes(gzip.compress(b"x")).format == "gzip"
    assert sniff_bytes(bz2.compress(b"x")).format == "bzip2"
    assert sniff_bytes(lzma.compress(b"x")).format == "xz"
    assert sniff_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24) == sniff_bytes(b"7z\xbc\xaf\x27\x1c" + b"\x01" * 26)
    assert sniff_bytes(b"7z\xbc\xaf\x27\x1c" + b"\x00" * 26).kind == "archive"
    assert sniff_bytes(b"BZh9 not bzip2 at all").format == "unknown"


# -- model archives stay one model file -----------------------------------------------------


def test_torch_and_keras_zips_stay_one_model_file(tmp_path: Path, images: dict[str, bytes]) -> None:
    torch_zip = modelgen.write_torch_zip(tmp_path / "m.pt", {"w": ("F32", (4, 4)), "b": ("F32", (4,))})
    assert is_model_zip(torch_zip) and sniff_path(torch_zip).kind == "model"
    keras = _zip(tmp_path / "m.keras", {"config.json": b"{}", "metadata.json": b"{}",
                                        "model.weights.h5": b"\x89HDF\r\n\x1a\n"})
    assert is_model_zip(keras) and sniff_path(keras).kind == "model"
    # a model's names added to a case zip do not hide the case's files
    with zipfile.ZipFile(torch_zip) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    disguised = _zip(tmp_path / "disguised.zip", {**parts, "archive/photo.jpg": images["a.jpg"]})
    assert not is_model_zip(disguised)
    recs, _ = _scan([torch_zip, disguised])
    got = _by_path(recs)
    assert got[str(torch_zip)].kind == "model" and got[str(torch_zip)].model is not None
    assert got[str(torch_zip)].model.arch is not None  # opened as a checkpoint
    assert not any(r.member_of == str(torch_zip) for r in recs)
    assert got[f"{disguised}!/archive/photo.jpg"].kind == "image"
    assert got[f"{disguised}!/archive/data.pkl"].kind == "model"  # the pickle is scanned as a member


# -- nesting and bombs ---------------------------------------------------------------------


def test_nested_archives_are_walked_to_the_depth_limit(tmp_path: Path, images: dict[str, bytes],
                                                       private_tmp: Path) -> None:
    inner = _zip(tmp_path / "l3.zip", {"deep.jpg": images["a.jpg"]})
    mid = _tar(tmp_path / "l2.tar", {"l3.zip": inner.read_bytes(), "mid.png": images["b.png"]})
    outer = _zip(tmp_path / "case.zip", {"l2.tar": mid.read_bytes()})
    recs, _ = _scan([outer])
    got = _by_path(recs)
    assert got[f"{outer}!/l2.tar!/l3.zip!/deep.jpg"].kind == "image"
    assert got[f"{outer}!/l2.tar!/l3.zip!/deep.jpg"].member_of == f"{outer}!/l2.tar!/l3.zip"

    recs, _ = _scan([outer], limits=Limits(max_archive_depth=2))
    got = _by_path(recs)
    assert f"{outer}!/l2.tar!/mid.png" in got
    deep = got[f"{outer}!/l2.tar!/l3.zip"]
    assert deep.kind == "archive" and _errors(deep) == [
        ("too-deep", "archive nested 3 deep (limit 2); members not read")]
    assert not any(p.startswith(f"{outer}!/l2.tar!/l3.zip!/") for p in got)
    assert list(private_tmp.iterdir()) == []


def test_member_count_and_total_bytes_limits_end_the_archive_not_the_scan(
    tmp_path: Path, private_tmp: Path
) -> None:
    case = tmp_path / "case"
    case.mkdir()
    _zip(case / "many.zip", {f"f{i}.txt": b"x" * 100 for i in range(6)})
    (case / "zz-after.txt").write_text("still scanned")
    recs, summary = _scan([case], limits=Limits(max_archive_members=3))
    got = _by_path(recs)
    assert _errors(got[f"{case}/many.zip"]) == [
        ("too-large", "zip archive lists 6 members (limit 3); not read")]
    assert got[f"{case}/zz-after.txt"].kind == "other"

    recs, _ = _scan([case], limits=Limits(max_archive_bytes=250))
    got = _by_path(recs)
    assert [p for p in got if "!/" in p] == [f"{case}/many.zip!/f0.txt", f"{case}/many.zip!/f1.txt"]
    code, msg = _errors(got[f"{case}/many.zip"])[0]
    assert code == "archive-bomb" and "'f2.txt' would take the uncompressed total over 250 bytes" in msg
    assert got[f"{case}/zz-after.txt"].kind == "other"
    assert list(private_tmp.iterdir()) == []


def test_compression_bombs_are_error_records(tmp_path: Path, private_tmp: Path) -> None:
    zeros = b"\x00" * (40 * 1024 * 1024)  # deflates ~1000:1, over the default 200:1 and 32 MiB floor
    case = tmp_path / "case"
    case.mkdir()
    _zip(case / "bomb.zip", {"zeros.bin": zeros, "ok.txt": b"fine"})
    (case / "bomb.tar.gz").write_bytes(gzip.compress(_tar_bytes({"zeros.bin": zeros, "late.txt": b"x"}), 9))
    recs, summary = _scan([case])
    got = _by_path(recs)
    bomb = got[f"{case}/bomb.zip!/zeros.bin"]
    assert bomb.kind == "error" and bomb.errors[0].code == "archive-bomb"
    assert "compression bomb; not read" in bomb.errors[0].message
    assert got[f"{case}/bomb.zip!/ok.txt"].kind == "other"  # the zip's other members go on
    # a compressed tar stream: the ratio of everything read so far to the archive's size
    tgz = got[f"{case}/bomb.tar.gz"]
    assert [e.code for e in tgz.errors] == ["archive-bomb"] and "a compression bomb" in tgz.errors[0].message
    assert f"{case}/bomb.tar.gz!/late.txt" not in got
    assert summary.with_errors == 2  # type: ignore[attr-defined]
    assert list(private_tmp.iterdir()) == []


def test_7z_bomb_stops_before_reaching_the_disk(tmp_path: Path, private_tmp: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    zeros = b"\x00" * (40 * 1024 * 1024)
    p = _7z(tmp_path / "bomb.7z", {"ok.txt": b"first", "zeros.bin": zeros, "z.txt": b"last"})
    written: list[int] = []
    real_open = open

    def spy_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        f = real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]
        if "w" in mode and str(file).startswith(str(private_tmp)):
            w = f.write

            def counted(b: bytes) -> int:
                written.append(len(b))
                return w(b)

            f.write = counted  # type: ignore[method-assign]
        return f

    import assay.containers.sevenzip as sz

    monkeypatch.setattr(sz, "open", spy_open, raising=False)
    recs, _ = _scan([p])
    got = _by_path(recs)
    assert got[f"{p}!/ok.txt"].kind == "other"
    assert [e.code for e in got[str(p)].errors] == ["archive-bomb"]
    assert "a compression bomb" in got[str(p)].errors[0].message
    assert f"{p}!/z.txt" not in got and f"{p}!/zeros.bin" not in got
    assert sum(written) <= 32 * 1024 * 1024 + 1024 * 1024  # stopped at the ratio floor, not 40 MiB
    assert list(private_tmp.iterdir()) == []


def test_members_get_the_file_limits(tmp_path: Path) -> None:
    p = _zip(tmp_path / "big.zip", {"big.bin": b"x" * 5000, "small.bin": b"y" * 10, "empty.bin": b""})
    t = _tar(tmp_path / "big.tar.gz", {"big.bin": b"x" * 5000}, "w:gz")  # the tar.gz itself is small
    recs, _ = _scan([p, t], limits=Limits(max_file_bytes=4096))
    got = _by_path(recs)
    assert [e.code for e in got[f"{p}!/big.bin"].errors] == ["too-large"]
    assert "over the file limit of 4096" in got[f"{p}!/big.bin"].errors[0].message
    assert [e.code for e in got[f"{t}!/big.bin"].errors] == ["too-large"]
    assert got[f"{p}!/small.bin"].kind == "other"
    assert [e.code for e in got[f"{p}!/empty.bin"].errors] == ["empty"]  # as an empty file on disk


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


# -- encryption, unsafe names, links, corruption -----------------------------------------------


def _flag_encrypted(data: bytes) -> bytes:
    b = bytearray(data)
    b[6] |= 1  # local header general-purpose flags
    cd = b.find(b"PK\x01\x02")
    b[cd + 8] |= 1  # central directory copy
    return bytes(b)


def test_encrypted_members_are_reported_not_guessed(tmp_path: Path, images: dict[str, bytes]) -> None:
    z = tmp_path / "secret.zip"
    z.write_bytes(_flag_encrypted(_zip(tmp_path / "plain.zip", {"a.jpg": images["a.jpg"]}).read_bytes()))
    (tmp_path / "plain.zip").unlink()
    s7 = _7z(tmp_path / "secret.7z", {"a.jpg": images["a.jpg"]}, password="pw")
    h7 = _7z(tmp_path / "headers.7z", {"a.jpg": images["a.jpg"]}, password="pw", header_encryption=True)
    recs, _ = _scan([tmp_path])
    got = _by_path(recs)
    msg = "encrypted member: not decrypted (assay never guesses passwords)"
    assert _errors(got[f"{z}!/a.jpg"]) == [("encrypted", msg)]
    assert got[f"{z}!/a.jpg"].kind == "error"
    assert _errors(got[f"{s7}!/a.jpg"]) == [("encrypted", msg)]
    assert [e.code for e in got[str(h7)].errors] == ["encrypted"]
    assert "encrypted headers" in got[str(h7)].errors[0].message


def test_zip_slip_names_are_reported_as_stored_and_nothing_is_written_outside(
    tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = tmp_path / "case"
    case.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    names = {"../../evil.txt": b"a", "/etc/evil2.txt": b"b", "C:\\evil3.txt": b"c", "ok/../../evil4.txt": b"d",
             "ctl\x1b[31m.txt": b"e"}
    _zip(case / "slip.zip", names)
    _tar(case / "slip.tar", {"../evil5.txt": b"f"})
    recs, _ = _scan([case])
    got = _by_path(recs)
    for name in names:
        rec = got[f"{case}/slip.zip!/{name}"]
        assert rec.kind == "other" and [e.code for e in rec.errors] == ["unsafe-name"], name
    assert "zip slip" in got[f"{case}/slip.zip!/../../evil.txt"].errors[0].message
    assert got[f"{case}/slip.zip!//etc/evil2.txt"].errors[0].message == "member name is an absolute path"
    assert got[f"{case}/slip.tar!/../evil5.txt"].errors[0].code == "unsafe-name"
    assert sorted(p.name for p in case.iterdir()) == ["slip.tar", "slip.zip"]
    assert list(work.iterdir()) == [] and list(private_tmp.iterdir()) == []
    assert not any(p.name.startswith("evil") for p in tmp_path.rglob("*"))
    # JSON escapes the control characters as stored
    line = json.dumps(got[f"{case}/slip.zip!/ctl\x1b[31m.txt"].to_json_dict())
    assert "\\u001b[31m" in line


def test_links_in_archives_are_reported_with_their_target(tmp_path: Path) -> None:
    t = tmp_path / "links.tar"
    with tarfile.open(t, "w") as tf:
        ti = tarfile.TarInfo("to-passwd")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "/etc/passwd"
        tf.addfile(ti)
    z = tmp_path / "links.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zi = zipfile.ZipInfo("up")
        zi.external_attr = (0o120777 << 16)
        zf.writestr(zi, "../../outside")
    recs, _ = _scan([t, z])
    got = _by_path(recs)
    assert got[f"{t}!/to-passwd"].kind == "link" and got[f"{t}!/to-passwd"].link_target == "/etc/passwd"
    assert got[f"{z}!/up"].kind == "link" and got[f"{z}!/up"].link_target == "../../outside"


def test_links_that_lead_out_of_the_archive_are_flagged(tmp_path: Path) -> None:
    # ModelAudit's zip/tar cases (symlink outside the extraction root, to a critical path):
    # extracting such a link, then a member written through it, writes outside the folder.
    t = tmp_path / "links.tar"
    with tarfile.open(t, "w") as tf:
        for name, target, kind in [("to-passwd", "/etc/passwd", tarfile.SYMTYPE),
                                   ("a/up", "../../outside", tarfile.SYMTYPE),
                                   ("a/b/sibling", "../c/file", tarfile.SYMTYPE),   # stays inside
                                   ("a/hard", "../x", tarfile.LNKTYPE),  # hard: from the root
                                   ("a/hard-ok", "a/b/file", tarfile.LNKTYPE)]:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = target
            tf.addfile(ti)
    z = tmp_path / "links.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, target in [("up", "../../outside"), ("dir/ok", "../model.bin"), ("win", "C:\\x")]:
            zi = zipfile.ZipInfo(name)
            zi.external_attr = (0o120777 << 16)
            zf.writestr(zi, target)
    recs, _ = _scan([t, z])
    got = {p: [e.code for e in r.errors] for p, r in _by_path(recs).items()}
    flagged = {p for p, codes in got.items() if "unsafe-link" in codes}
    assert flagged == {f"{t}!/to-passwd", f"{t}!/a/up", f"{t}!/a/hard", f"{z}!/up", f"{z}!/win"}
    msg = next(e.message for e in _by_path(recs)[f"{t}!/to-passwd"].errors)
    assert msg == "link target '/etc/passwd' is an absolute path outside the archive"


def test_corrupt_archives_are_errors_naming_the_archive(tmp_path: Path, images: dict[str, bytes]) -> None:
    good = _zip(tmp_path / "g.zip", {"a.jpg": images["a.jpg"], "b.png": images["b.png"]}).read_bytes()
    (tmp_path / "cut.zip").write_bytes(good[: len(good) // 2])
    tgz = gzip.compress(_tar_bytes({"a.jpg": images["a.jpg"], "b.png": images["b.png"]}))
    (tmp_path / "cut.tar.gz").write_bytes(tgz[: len(tgz) * 3 // 4])
    bad = bytearray(good)
    bad[60:70] = b"\xff" * 10  # corrupt the first member's deflate data, not the directory
    (tmp_path / "bad-member.zip").write_bytes(bytes(bad))
    (tmp_path / "g.zip").unlink()
    recs, _ = _scan([tmp_path])
    got = _by_path(recs)
    assert got[f"{tmp_path}/cut.zip"].errors[0].code == "decode-error"
    assert "not a readable zip archive" in got[f"{tmp_path}/cut.zip"].errors[0].message
    cut = got[f"{tmp_path}/cut.tar.gz"]
    assert cut.errors and cut.errors[0].stage == "archive"
    assert got[f"{tmp_path}/bad-member.zip!/a.jpg"].errors[0].code == "decode-error"
    assert got[f"{tmp_path}/bad-member.zip!/b.png"].kind == "image"  # zip members are independent


# -- through the CLI: matching, summary, workers ------------------------------------------------


def test_members_match_banks_and_read_well(tmp_path: Path, images: dict[str, bytes]) -> None:
    db = str(tmp_path / "b.sqlite3")
    case = tmp_path / "case"
    case.mkdir()
    _zip(case / "case.zip", {"dir/a.jpg": images["a.jpg"], "b.png": images["b.png"], "c.txt": b"c"})
    (case / "loose.txt").write_text("loose")
    import hashlib

    hashes = tmp_path / "h.txt"
    hashes.write_text("signal_type,value,content_id,note\nmd5," + hashlib.md5(images["a.jpg"]).hexdigest() + ",c1,\n")
    assert runner.invoke(app, ["--db", db, "bank", "create", "known", "--create"]).exit_code == 0
    res = runner.invoke(app, ["--db", db, "bank", "import", "known", str(hashes)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["--db", db, "scan", str(case), "-o", str(tmp_path / "r.jsonl"), "--fail-on-match",
                              "--workers", "2"])
    assert res.exit_code == 3, res.output
    out = res.stdout
    assert "│ archives      │ 3 files in 1 archive" in out
    assert f"match: {case}/case.zip!/dir/a.jpg" in out
    recs = {r["path"]: r for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())
            if r["schema"] == "assay.file/1"}
    assert recs[f"{case}/case.zip!/dir/a.jpg"]["matches"][0]["bank"] == "known"
    assert recs[f"{case}/case.zip!/dir/a.jpg"]["member_of"] == f"{case}/case.zip"
    assert len(recs) == 5


def test_two_workers_give_the_same_records_as_one(tmp_path: Path, images: dict[str, bytes],
                                                  private_tmp: Path) -> None:
    case = tmp_path / "case"
    case.mkdir()
    _zip(case / "a.zip", {f"{i}.jpg": images["a.jpg"] for i in range(3)})
    _tar(case / "b.tar", {"x.png": images["b.png"]})
    (case / "c.txt").write_text("c")
    one, _ = _scan([case], workers=1)
    two, _ = _scan([case], workers=2)

    def norm(recs: list[FileRecord]) -> list[dict]:
        # the first scan's reads may move the access times the second one records
        return sorted(({**r.to_json_dict(), "times": None} for r in recs), key=lambda d: d["path"])

    assert norm(one) == norm(two) and len(one) == 7
    assert list(private_tmp.iterdir()) == []  # member copies and spools removed


# -- fuzz -----------------------------------------------------------------------------------


def _seed_archives() -> list[tuple[str, bytes]]:
    members = {"d/a.txt": b"hello " * 50, "b.bin": bytes(range(256)) * 4, "c/": b""}
    out = []
    for name, build in (("s.zip", lambda p: _zip(p, members)), ("s.tar", lambda p: _tar(p, members)),
                        ("s.tar.gz", lambda p: _tar(p, members, "w:gz")),
                        ("s.tar.xz", lambda p: _tar(p, members, "w:xz")),
                        ("s.7z", lambda p: _7z(p, {k: v for k, v in members.items() if v}))):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / name
            build(p)
            out.append((name, p.read_bytes()))
    return out


SEEDS = _seed_archives()


def _analyze_as_file(path: Path) -> FileRecord:
    from assay.scan.pipeline import analyze_item
    from assay.scan.walk import WalkItem

    return analyze_item(WalkItem(path), ScanSettings(workers=1, provenance=False, models=False), [])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(range(len(SEEDS))),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzzed_archives_never_raise_and_clean_up(seed: int, edits: list[tuple[int, int]], cut: int | None) -> None:
    name, data = SEEDS[seed]
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    if cut is not None:
        b = b[: cut % (len(b) + 1)]
    with tempfile.TemporaryDirectory() as d:
        evidence = Path(d) / "ev"
        evidence.mkdir()
        private = Path(d) / "tmp"
        private.mkdir()
        p = evidence / name
        p.write_bytes(bytes(b))
        old = tempfile.tempdir
        tempfile.tempdir = str(private)
        try:
            rec = _analyze_as_file(p)
            if rec.kind != "archive":
                return  # mutated out of being an archive: the plain file path covers it
            recs = list(walk_archive(p, rec, _analyze_as_file,
                                     Limits(max_archive_bytes=10**6, max_ratio_floor=10**5)))
        finally:
            tempfile.tempdir = old
        assert recs[-1] is rec  # the archive's own record comes last
        for r in recs[:-1]:
            assert r.path.startswith(f"{p}!/") and r.member_of is not None
            assert r.member_of.startswith(str(p))
            for e in r.errors:
                assert e.message  # a reason, with the record naming archive and member
        assert all(e.stage in ("archive", "read", "file-hash") for r in recs for e in r.errors)
        assert list(private.iterdir()) == []
        assert sorted(os.listdir(evidence)) == [name]


# -- streaming: one member on disk at a time, records spooled, not collected ------------------


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "7z"])
def test_one_member_at_a_time_on_disk(tmp_path: Path, private_tmp: Path, kind: str) -> None:
    members = {f"m{i}.txt": f"member {i}".encode() * 100 for i in range(8)}
    p = tmp_path / f"case.{kind}"
    if kind == "zip":
        _zip(p, members)
    elif kind == "7z":
        _7z(p, members)
    else:
        _tar(p, members, "w:gz")
    on_disk: list[int] = []

    def analyze(path: Path) -> FileRecord:
        on_disk.append(sum(len(files) for _, _, files in os.walk(private_tmp)))
        return _analyze_as_file(path)

    rec = _analyze_as_file(p)
    recs = list(walk_archive(p, rec, analyze, Limits()))
    assert len(recs) == 9 and len(on_disk) == 8
    assert max(on_disk) == 1  # the member being analysed, nothing else
    assert list(private_tmp.iterdir()) == []


def test_a_worker_spools_an_archives_records_and_the_parent_removes_the_spool(
    tmp_path: Path, private_tmp: Path
) -> None:
    from assay.scan import pipeline
    from assay.scan.walk import WalkItem

    p = _zip(tmp_path / "case.zip", {f"{i}.txt": b"x" * i for i in range(1, 6)})
    pipeline._init_worker(ScanSettings(workers=2, provenance=False, models=False), pipeline.default_analyzers)
    result = pipeline._work(WalkItem(p))
    assert isinstance(result, pipeline._Spool) and result.count == 6
    spool = Path(result.path)
    assert spool.parent == private_tmp and len(spool.read_text().splitlines()) == 6
    recs = list(pipeline._unspool(result))
    assert [r.path for r in recs][-1] == str(p) and len(recs) == 6
    assert not spool.exists()
    (tmp_path / "plain.txt").write_text("plain")
    single = pipeline._work(WalkItem(tmp_path / "plain.txt"))  # not an archive: no spool
    assert isinstance(single, FileRecord) and list(private_tmp.iterdir()) == []


def test_zip_names_are_read_once_and_again_when_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sniffing and opening a model zip ask for its member names several times: the central
    directory is read once, and read again when the file at that path is another one."""
    import zipfile as zf

    from assay.models import formats

    path = tmp_path / "m.pt"
    with zf.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("m/version", b"3\n")
    reads = []
    real = zf.ZipFile.infolist
    monkeypatch.setattr(zf.ZipFile, "infolist", lambda self: reads.append(1) or real(self))
    assert formats.model_archive_kind(path) == "torch"
    assert is_model_zip(path)
    assert formats.model_archive_kind(path) == "torch"
    assert len(reads) == 1
    with zf.ZipFile(path, "w") as z:  # another file at the same path: an archive of photos
        z.writestr("a.jpg", b"not really")
    assert formats.model_archive_kind(path) is None and not is_model_zip(path)
    path.write_bytes(b"PK\x03\x04 damaged")
    assert formats.zip_member_names(path) is None and formats.model_archive_kind(path) is None
    assert len(reads) == 2
