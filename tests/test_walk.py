"""Walking inputs: symlink loops, special files, model folders, missing paths."""

from __future__ import annotations

import os
from pathlib import Path

from assay.scan.walk import walk


def _paths(items) -> list[str]:
    return [str(i.path) for i in items if i.problem is None and i.link_target is None]


def test_walk_finds_files_in_order_and_once(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b" / "c.txt").write_text("c")
    items = list(walk([tmp_path, tmp_path / "a.txt"]))  # a.txt given twice
    assert _paths(items) == [str(tmp_path / "a.txt"), str(tmp_path / "b" / "c.txt")]


def test_hard_links_and_inputs_in_folders_are_walked_once(tmp_path: Path) -> None:
    # The walk remembers only files that can be reached twice (hard links, several
    # inputs, followed links): single-link files of one folder cost it no memory.
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    os.link(d / "a.txt", d / "sub" / "hard.txt")
    (d / "b.txt").write_text("b")
    assert _paths(walk([d])) == [str(d / "a.txt"), str(d / "b.txt")]
    # an input named after its folder, and before it
    assert _paths(walk([d, d / "b.txt"])) == [str(d / "a.txt"), str(d / "b.txt")]
    assert _paths(walk([d / "b.txt", d])) == [str(d / "b.txt"), str(d / "a.txt")]


def test_symlink_loop_terminates_and_visits_each_dir_once(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.txt").write_text("x")
    os.symlink(tmp_path, d / "loop")  # d/loop -> tmp_path -> d -> ...
    os.symlink(d, d / "self")
    items = list(walk([tmp_path], follow_symlinks=True))
    assert _paths(items) == [str(d / "x.txt")]
    # not following (the default), each link is one item naming its target
    items = list(walk([tmp_path]))
    assert _paths(items) == [str(d / "x.txt")]
    assert {str(i.path): i.link_target for i in items if i.link_target} == {
        str(d / "loop"): str(tmp_path), str(d / "self"): str(d)}


def test_broken_symlink_and_missing_path_are_reported(tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    items = list(walk([tmp_path, tmp_path / "missing.jpg"], follow_symlinks=True))
    problems = {str(i.path): i.problem for i in items if i.problem}
    assert str(tmp_path / "dangling") in problems
    assert "cannot access" in problems[str(tmp_path / "missing.jpg")]
    missing = [i for i in items if i.path == tmp_path / "missing.jpg"]
    assert missing[0].is_input
    # not followed, a dangling link is reported as a link with its target
    items = list(walk([tmp_path]))
    assert [(i.path, i.link_target, i.problem) for i in items] == [
        (tmp_path / "dangling", str(tmp_path / "nowhere"), None)]


def test_fifo_is_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "f.txt").write_text("f")
    items = list(walk([tmp_path]))
    assert _paths(items) == [str(tmp_path / "f.txt")]
    # never opened, but in the inventory: an examiner sees it was there
    assert [(str(i.path), i.problem) for i in items if i.problem] == [
        (str(tmp_path / "pipe"), "not a regular file but a pipe (FIFO): never opened")]
    items = list(walk([tmp_path / "pipe"]))
    assert items[0].problem == "not a regular file but a pipe (FIFO): never opened"  # as inside a folder


def test_diffusers_folder_is_a_subject_and_its_files_are_walked_too(tmp_path: Path) -> None:
    m = tmp_path / "model"
    (m / "unet").mkdir(parents=True)
    (m / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (m / "unet" / "config.json").write_text("{}")
    (m / "unet" / "hidden.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "other.txt").write_text("o")
    assert sorted(_paths(walk([tmp_path]))) == sorted([
        str(m), str(m / "model_index.json"), str(m / "unet" / "config.json"),
        str(m / "unet" / "hidden.jpg"), str(tmp_path / "other.txt")])


# -- unreadable folders and files, missing inputs, links (issue 11) -------------------------

import json  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from assay.cli import app  # noqa: E402

runner = CliRunner()


def _scan(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["scan", "--no-banks", "--workers", "1", *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def _lock(monkeypatch: pytest.MonkeyPatch, locked: Path) -> None:
    """What a folder without read and search permission looks like to a non-root
    process (the tests run as root, where chmod 000 changes nothing): listing it
    and looking up any name in it fail with EACCES."""
    real_scandir, real_stat = os.scandir, os.stat

    def scandir(path: object = ".") -> object:
        if Path(os.fsdecode(path)) == locked:  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    def fake_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if isinstance(path, str | os.PathLike) and Path(os.fsdecode(path)).parent == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", fake_stat)


def test_unreadable_folder_is_an_error_record_and_the_scan_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = tmp_path / "ev"
    (ev / "locked").mkdir(parents=True)
    (ev / "locked" / "secret.txt").write_text("s")
    (ev / "a.txt").write_text("a")
    (ev / "z.txt").write_text("z")
    _lock(monkeypatch, ev / "locked")
    code, out, _ = _scan(str(ev), "--json")
    assert code == 0, out
    recs = [json.loads(line) for line in out.splitlines()]
    by_path = {r["path"]: r for r in recs if "path" in r}
    locked = by_path[str(ev / "locked")]
    assert locked["kind"] == "error"
    assert locked["errors"][0]["message"] == "cannot list folder: Permission denied"
    assert by_path[str(ev / "a.txt")]["kind"] == "other" and by_path[str(ev / "z.txt")]["kind"] == "other"
    assert recs[-1]["files"] == 3 and recs[-1]["files_with_errors"] == 1

    report = tmp_path / "r.jsonl"
    code, out, errtext = _scan(str(ev), "-o", str(report))
    assert code == 0 and "Traceback" not in out + errtext
    assert "│ errors        │ 1 file (1 unreadable); see the report" in out


def test_unreadable_file_is_an_error_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.bin").write_bytes(b"abc")
    (ev / "b.bin").write_bytes(b"def")
    real_open = Path.open

    def fake_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "a.bin":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", fake_open)
    code, out, _ = _scan(str(ev), "--json")
    assert code == 0
    by_path = {r["path"]: r for r in map(json.loads, out.splitlines()) if "path" in r}
    assert by_path[str(ev / "a.bin")]["errors"] == [
        {"stage": "read", "code": "bad-input", "message": "cannot read: Permission denied"}]
    assert by_path[str(ev / "b.bin")]["kind"] == "other"


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any folder")
def test_really_unreadable_folder(tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "x.txt").write_text("x")
    (tmp_path / "locked").chmod(0)
    try:
        items = list(walk([tmp_path]))
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [(i.path, i.problem) for i in items] == [(tmp_path / "locked", "cannot list folder: Permission denied")]


def test_missing_input_is_an_error_record_and_exit_1_when_nothing_was_scanned(tmp_path: Path) -> None:
    missing = tmp_path / "nosuchdir"
    code, out, errtext = _scan(str(missing), "--json")
    assert code == 1
    recs = [json.loads(line) for line in out.splitlines()][1:]  # after the scan header
    assert recs[0]["path"] == str(missing) and recs[0]["kind"] == "error"
    assert recs[0]["errors"][0]["message"] == "cannot access: No such file or directory"
    assert recs[-1]["unreadable_inputs"] == [str(missing)]
    assert f"nothing was scanned: cannot read {missing}" in errtext.replace("\n", "")

    (tmp_path / "ok.txt").write_text("ok")
    code, out, _ = _scan(str(missing), str(tmp_path / "ok.txt"), "--json")
    assert code == 0  # something was scanned; the missing input is an error record
    assert [json.loads(line).get("kind") for line in out.splitlines()][1:3] == ["error", "other"]


def test_links_are_reported_not_followed_unless_asked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.txt").write_text("not in the case")
    case = tmp_path / "case"
    case.mkdir()
    (case / "own.txt").write_text("in the case")
    os.symlink(outside, case / "to-dir")
    os.symlink(outside / "elsewhere.txt", case / "to-file")
    code, out, _ = _scan(str(case), "--json")
    assert code == 0
    recs = [json.loads(line) for line in out.splitlines()]
    by_path = {r["path"]: r for r in recs if "path" in r}
    assert set(by_path) == {str(case / "own.txt"), str(case / "to-dir"), str(case / "to-file")}
    assert by_path[str(case / "to-dir")] == {
        "schema": "assay.file/1", "path": str(case / "to-dir"), "kind": "link", "format": "symlink",
        "signals": [], "matches": [], "errors": [], "link_target": str(outside)}
    assert by_path[str(case / "to-file")]["link_target"] == str(outside / "elsewhere.txt")
    assert recs[-1]["links"] == 2

    code, out, _ = _scan(str(case), "--json", "--follow-symlinks")
    paths = {json.loads(line).get("path") for line in out.splitlines()} - {None}
    # followed: the outside file is scanned, once (by inode) though two links lead to it
    assert paths == {str(case / "own.txt"), str(case / "to-file")}
    assert not any(json.loads(line).get("kind") == "link" for line in out.splitlines())

    code, out, _ = _scan(str(case), "-o", str(tmp_path / "r.jsonl"))
    assert code == 0
    assert "│ links         │ 2 symbolic links, not followed (--follow-symlinks)" in out


def test_skipped_files_and_folders_are_left_out_by_inode(tmp_path: Path) -> None:
    """The scan's own output (a report being written, a Dask --out folder) is never walked,
    whatever name reaches it; a missing path to skip is no error."""
    d = tmp_path / "d"
    (d / "out").mkdir(parents=True)
    (d / "out" / "part-000000.jsonl").write_text("{}")
    (d / "a.txt").write_text("a")
    (d / "report.jsonl.partial").write_text("{}")
    os.link(d / "report.jsonl.partial", d / "again.jsonl")  # another name for the same file
    skip = [d / "report.jsonl.partial", d / "out", tmp_path / "no-such-file"]
    assert _paths(walk([d], skip=skip)) == [str(d / "a.txt")]
    assert _paths(walk([d / "out", d], skip=skip)) == [str(d / "a.txt")]
    assert len(_paths(walk([d]))) == 3  # nothing skipped unless asked (the hard link once)


@pytest.mark.parametrize("marker", ["model_index.json", "adapter_config.json"])
def test_a_model_folder_marker_does_not_hide_the_files_beside_it(tmp_path: Path, marker: str) -> None:
    """An empty model_index.json (or adapter_config.json) made a folder one "model"
    subject whose files were never walked: a known picture and a banked weight file put
    beside it were never hashed, so never matched."""
    from PIL import Image

    db = str(tmp_path / "b.sqlite3")
    case = tmp_path / "case" / "pipeline"
    (case / "unet").mkdir(parents=True)
    (case / marker).write_text("")
    rng = __import__("numpy").random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype="uint8")).save(case / "unet" / "x.png")
    weights = case / "unet" / "diffusion_pytorch_model.bin"
    weights.write_bytes(b"not really weights")
    import hashlib

    run = runner.invoke
    assert run(app, ["--db", db, "bank", "create", "known", "--create"]).exit_code == 0
    assert run(app, ["--db", db, "bank", "add", "known", "--content-id", "pic",
                     "--image", str(case / "unet" / "x.png"), "--no-variants"]).exit_code == 0
    assert run(app, ["--db", db, "bank", "add", "known", "--content-id", "w",
                     "--sha256", hashlib.sha256(weights.read_bytes()).hexdigest()]).exit_code == 0
    out = tmp_path / "r.jsonl"
    res = run(app, ["--db", db, "scan", str(tmp_path / "case"), "-o", str(out), "--workers", "1"])
    assert res.exit_code in (0, 1), res.stdout
    recs = {r["path"]: r for r in map(json.loads, out.read_text().splitlines()) if r.get("schema") == "assay.file/1"}
    assert {m["content_id"] for m in recs[str(case / "unet" / "x.png")]["matches"]} == {"pic"}
    assert {m["content_id"] for m in recs[str(weights)]["matches"]} == {"w"}
    assert str(case) in recs  # the folder is still a model subject of its own
