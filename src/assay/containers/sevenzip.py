"""7z archives through py7zr, one member at a time.

py7zr decompresses by pushing bytes into writer objects it asks a factory for. Its
extraction runs in a helper thread; each member is written to a bounded temporary
file, and when py7zr closes it the thread waits until the walker has analysed the
member and asks for the next, so at most one member is on disk at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .members import ArchiveError, Member, unsafe_name


class _Cancelled(Exception):
    pass


class _Budget(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Counts bytes as they are decompressed; returns why to stop (a bomb), or None.
Guard = Callable[[int], "str | None"]


def sevenzip_members(path: Path, tmpdir: Path, max_members: int, member_limit: int,
                     total_limit: int, guard: Guard) -> Iterator[Member]:
    try:
        import py7zr
        from py7zr import io as p7io
    except ImportError as exc:  # pragma: no cover - py7zr is a dependency
        raise ArchiveError("7z support needs the py7zr package", code="unsupported-format") from exc

    try:
        fp = open(path, "rb")
    except OSError as exc:
        raise ArchiveError(f"cannot read: {exc.strerror or exc}", code="bad-input") from exc
    with fp:
        try:
            # py7zr's own cap is a backstop for members that are decompressed but not
            # handed to us (skipped ones in a solid block); ours counts as bytes arrive.
            szf = py7zr.SevenZipFile(fp, mode="r", max_extract_size=total_limit)
        except py7zr.PasswordRequired as exc:
            raise ArchiveError("7z archive with encrypted headers: not decrypted (assay never guesses "
                               "passwords)", code="encrypted") from exc
        except Exception as exc:  # py7zr raises many types on hostile headers
            raise ArchiveError(f"not a readable 7z archive: {type(exc).__name__}: {exc}") from exc
        with szf:
            try:
                infos = szf.list()
                encrypted = szf.needs_password()
            except Exception as exc:
                raise ArchiveError(f"not a readable 7z archive: {type(exc).__name__}: {exc}") from exc
            if len(infos) > max_members:
                raise ArchiveError(f"7z archive lists {len(infos)} members (limit {max_members}); not read",
                                   code="too-large")
            targets: list[Any] = []
            for info in infos:
                m = Member(name=info.filename, size=info.uncompressed)
                if info.is_directory:
                    m.kind = "dir"
                    yield m
                elif encrypted:
                    m.encrypted = True
                    yield m
                elif unsafe_name(info.filename) is not None:
                    m.problem = "py7zr refuses to read a member with this name; member not read"
                    yield m
                elif info.uncompressed is not None and info.uncompressed > member_limit:
                    yield m  # the walker reports it as too large before reading anything
                else:
                    targets.append(info)
            if targets:
                yield from _extract(szf, p7io, targets, tmpdir, member_limit, guard)


def _extract(szf: Any, p7io: Any, targets: list[Any], tmpdir: Path, member_limit: int,
             guard: Guard) -> Iterator[Member]:
    infos = {i.filename: i for i in targets}
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    resume = threading.Semaphore(0)
    state = {"cancelled": False, "n": 0}

    class Writer(p7io.Py7zIO):  # type: ignore[misc,name-defined]
        def __init__(self, fname: str) -> None:
            state["n"] += 1
            self.name = fname
            self.path = tmpdir / f"7z-{state['n']}"
            self.f = open(self.path, "wb")
            self.written = 0
            self.overflow = False

        def write(self, s: bytes | bytearray) -> int:
            if state["cancelled"]:
                raise _Cancelled()
            stop = guard(len(s))  # before writing: a bomb never reaches the disk
            if stop is not None:
                raise _Budget(stop)
            if self.written + len(s) > member_limit:
                self.overflow = True
            else:
                self.f.write(s)
            self.written += len(s)
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            pass

        def size(self) -> int:
            return self.written

        def close(self) -> None:
            if self.f.closed:
                return
            self.f.close()
            handoff.put(("member", self))
            resume.acquire()
            if state["cancelled"]:
                raise _Cancelled()

    class Factory(p7io.WriterFactory):  # type: ignore[misc,name-defined]
        def create(self, filename: str) -> Any:
            return Writer(filename)

    def run() -> None:
        try:
            szf.extract(targets=list(infos), factory=Factory())
            handoff.put(("done", None))
        except _Cancelled:
            handoff.put(("done", None))
        except _Budget as exc:
            handoff.put(("error", ArchiveError(exc.reason, code="archive-bomb")))
        except Exception as exc:
            if type(exc).__name__ == "DecompressionBombError":  # py7zr's backstop cap
                handoff.put(("error", ArchiveError(f"{exc} (archive bomb?); the rest not read",
                                                   code="archive-bomb")))
            else:
                handoff.put(("error", ArchiveError(f"corrupt 7z data: {type(exc).__name__}: {exc}")))

    worker = threading.Thread(target=run, name="assay-7z", daemon=True)
    worker.start()
    try:
        while True:
            what, obj = handoff.get()
            if what == "done":
                return
            if what == "error":
                raise obj
            info = infos.get(obj.name)
            m = Member(name=obj.name, size=obj.written, local_path=obj.path, overflowed=obj.overflow)
            if info is not None and info.is_symlink:
                m.kind = "link"
                m.link_target = obj.path.read_bytes()[:4096].decode("utf-8", "replace")
                m.local_path = None
                obj.path.unlink(missing_ok=True)
            try:
                yield m
            finally:
                resume.release()
    finally:
        state["cancelled"] = True
        resume.release()
        # drain so that a writer blocked on put() can finish; then the thread ends
        while worker.is_alive():
            try:
                handoff.get(timeout=0.05)
            except queue.Empty:
                pass
            resume.release()
        worker.join()
