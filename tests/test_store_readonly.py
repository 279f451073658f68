"""A bank store on media that cannot be written (a write-blocked drive, a read-only share
or container volume): read, never written. SQLite refused such a file in WAL mode
("unable to open database file") unless its -wal and -shm files were beside it, so an
examiner could not scan against a case's bank from read-only media.

The media are made read-only for real: a read-only bind mount where this process may mount
(root on Linux: permission bits do not stop root), else file and directory modes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.banks.matcher import Matcher, Query
from assay.banks.store import Store
from assay.cli import app
from assay.errors import StoreError

MD5 = "33d9a49e6f9a0c732182afa3e89ea841"
MD5_IN_LOG = "8bbbaa9540800e378beadc8bbef7bb32"


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(source folder to fill, the same folder seen read-only), the view unwritable."""
    src, view = tmp_path / "src", tmp_path / "view"
    src.mkdir()
    if os.geteuid() == 0:
        view.mkdir()
        mounted = subprocess.run(["mount", "--bind", str(src), str(view)], capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("root without mount: media cannot be made read-only here")
        try:
            yield src, view
        finally:
            subprocess.run(["umount", str(view)], check=False)
        return
    yield src, src


def _seal(src: Path, view: Path) -> None:
    if view == src:
        for f in src.iterdir():
            f.chmod(0o444)
        src.chmod(0o555)
    else:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
    assert not os.access(view, os.W_OK)


def _bank(db: Path) -> None:
    with Store(str(db)) as store:
        store.create_bank("known")
        store.add_entry("known", "c1", {"md5": [MD5]})


def test_a_store_on_read_only_media_is_read(read_only: tuple[Path, Path]) -> None:
    src, view = read_only
    _bank(src / "bank.db")
    assert not Path(f"{src / 'bank.db'}-wal").exists()  # closed cleanly: every row in the file
    _seal(src, view)
    db = view / "bank.db"
    with Store(str(db), create=False) as store:
        assert [m.content_id for m in Matcher(store).lookup([Query("md5", MD5)])] == ["c1"]
        with pytest.raises(StoreError, match="read-only"):
            store.add_entry("known", "c2", {"md5": [MD5_IN_LOG]})
    runner = CliRunner()
    res = runner.invoke(app, ["--db", str(db), "match", "--md5", MD5], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "c1" in res.stdout, res.output
    res = runner.invoke(app, ["--db", str(db), "bank", "add", "known", "--content-id", "c2", "--md5", MD5_IN_LOG])
    assert res.exit_code == 1 and "read-only" in res.stderr and "Traceback" not in res.output
    assert sorted(p.name for p in view.iterdir()) == ["bank.db"]  # nothing written beside it


def _with_log(src: Path) -> sqlite3.Connection:
    """A store whose last rows are still in its write-ahead log (the writer still open),
    copied with its -wal and -shm files, as a live store is imaged."""
    work = src.parent / "live"
    work.mkdir()
    _bank(work / "bank.db")
    conn = sqlite3.connect(work / "bank.db")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    with Store(str(work / "bank.db")) as store:
        store.add_entry("known", "c2", {"md5": [MD5_IN_LOG]})
        assert Path(f"{work / 'bank.db'}-wal").stat().st_size > 0
        for name in ("bank.db", "bank.db-wal", "bank.db-shm"):
            shutil.copyfile(work / name, src / name)
    return conn


def test_rows_in_a_copied_write_ahead_log_are_read(read_only: tuple[Path, Path]) -> None:
    src, view = read_only
    _with_log(src).close()
    _seal(src, view)
    with Store(str(view / "bank.db"), create=False) as store:
        found = Matcher(store).lookup([Query("md5", MD5), Query("md5", MD5_IN_LOG)])
        assert sorted(m.content_id for m in found) == ["c1", "c2"]


def test_a_log_without_its_index_is_refused_not_left_out(read_only: tuple[Path, Path]) -> None:
    src, view = read_only
    _with_log(src).close()
    (src / "bank.db-shm").unlink()
    _seal(src, view)
    with pytest.raises(StoreError, match="write-ahead log") as err:
        Store(str(view / "bank.db"), create=False)
    assert "bank.db-wal" in str(err.value)


def test_a_read_only_store_whose_name_holds_uri_characters(read_only: tuple[Path, Path]) -> None:
    """The read-only store is opened through an SQLite URI: a '?', '#' or '%' in its path
    is part of the name (unquoted, 'case #4?.db' opened 'case ')."""
    src, view = read_only
    _bank(src / "case #4? 100%.db")
    _seal(src, view)
    with Store(str(view / "case #4? 100%.db"), create=False) as store:
        assert [m.content_id for m in Matcher(store).lookup([Query("md5", MD5)])] == ["c1"]
    assert sorted(p.name for p in view.iterdir()) == ["case #4? 100%.db"]
