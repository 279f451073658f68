"""Temporary upload files: in the service's own directory, named by the pid of the
worker that writes them, and removed when a worker starts if their writer is gone
(dead pid, or a pid reused by a newer process). A worker killed with SIGKILL in the
middle of an upload leaves nothing behind once the supervisor has replaced it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assay.service.app import open_store
from assay.service.auth import create_key
from assay.service.settings import Settings
from assay.service.tmpfiles import TmpFiles, process_start_time
from service_helpers import running


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _touch(path: Path, age: float = 0.0) -> Path:
    path.write_bytes(b"x")
    if age:
        t = time.time() - age
        os.utime(path, (t, t))
    return path


def test_start_up_removes_files_of_gone_writers_only(tmp_path: Path) -> None:
    d = tmp_path / "service-tmp"
    d.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _touch(d / f"upload-{_dead_pid()}-abc.import")
        mine = _touch(d / f"upload-{os.getpid()}-def")
        live_other = _touch(d / f"upload-{sleeper.pid}-ghi.import")
        not_ours = _touch(d / "notes.txt")
        malformed = _touch(d / "upload-x-1")
        # Our pid, written long before this process started: a previous owner of the pid.
        reused = _touch(d / f"upload-{os.getpid()}-jkl", age=10 * 86400)
        tmp = TmpFiles(d)
        removed = set(tmp.remove_stale())
        expected = {dead}
        if process_start_time(os.getpid()) is not None:  # Linux: pid reuse is detected
            expected.add(reused)
        assert removed == expected
        for p in (mine, live_other, not_ours, malformed):
            assert p.exists()
        assert not dead.exists()
        # New files carry this worker's pid; at shutdown it removes its own, only.
        fd, new = tmp.new(".import")
        os.close(fd)
        assert new.parent == d and new.name.startswith(f"upload-{os.getpid()}-") and new.suffix == ".import"
        tmp.remove_own()
        assert not new.exists() and not mine.exists()
        assert live_other.exists() and not_ours.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_directory_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "a" / "service-tmp"
    TmpFiles(d)
    assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700
    assert Settings(tmp_dir=str(d)).tmp_path == d
    monkeypatch.setenv("ASSAY_DATA_DIR", str(tmp_path / "data"))
    assert Settings().tmp_path == tmp_path / "data" / "service-tmp"


def _stalled_import(port: int, key: str) -> socket.socket:
    """An import whose client sends the headers and part of the body, then nothing."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall((f"POST /v1/banks/b/import HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
               f"Content-Length: 10000000\r\n\r\n").encode() + b"0" * 64 + b"\n" * 200_000)
    return s


def _files(d: Path) -> dict[Path, int]:
    return {p: int(p.name.split("-")[1]) for p in d.glob("upload-*")}


@pytest.mark.slow
def test_worker_killed_mid_upload_leaves_no_file(tmp_path: Path) -> None:
    db = str(tmp_path / "store.db")
    store = open_store(Settings(db=db))
    try:
        _, key = create_key(store.engine, "curator", "curate")
        store.create_bank("b")
    finally:
        store.close()
    tmp_dir = tmp_path / "data" / "service-tmp"  # running() sets ASSAY_DATA_DIR=tmp_path/data
    with running(db, 2, tmp_path, ASSAY_SERVICE_BODY_TIMEOUT="120") as srv:
        conns = []
        try:
            deadline = time.monotonic() + 30
            while len(set(_files(tmp_dir).values())) < 2 and len(conns) < 12:
                conns.append(_stalled_import(srv.port, key))
                while len(_files(tmp_dir)) < len(conns):  # each upload has its file
                    assert time.monotonic() < deadline, srv.output()
                    time.sleep(0.05)
            files = _files(tmp_dir)
            victim = next(iter(files.values()))
            assert victim != srv.proc.pid
            os.kill(victim, signal.SIGKILL)
            # The supervisor starts a new worker, which removes the dead one's files.
            deadline = time.monotonic() + 60
            while any(pid == victim for pid in _files(tmp_dir).values()):
                assert time.monotonic() < deadline, f"stale files stayed: {srv.output()}"
                time.sleep(0.1)
            for path, pid in files.items():  # the other worker's uploads in flight are untouched
                assert path.exists() == (pid != victim)
        finally:
            for s in conns:
                s.close()
        # Closed by the client: each surviving upload removes its own file.
        deadline = time.monotonic() + 30
        while _files(tmp_dir):
            assert time.monotonic() < deadline, _files(tmp_dir)
            time.sleep(0.1)
