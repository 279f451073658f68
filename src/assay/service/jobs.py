"""Bulk-import jobs: the body was streamed to a temporary file; a thread of the worker
that received it parses and imports it in ONE transaction (all or nothing), while the
job row in the database shows progress to any worker that is asked.

A worker that dies mid-import takes its transaction with it (the database rolls it
back). Its job is then reported (and recorded) as failed, nothing imported: at once
when asked on the same machine (the owner pid is gone), else once its heartbeat is
older than ``stale_seconds``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..banks.formats import parse_file
from ..banks.store import ImportRecord, Store
from ..errors import AssayError, BankImportError, NotFound, StoreError
from .errors import public_error_dict
from .tables import jobs

OWNER = f"{socket.gethostname()}:{os.getpid()}"
_HEARTBEAT = 0.5


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    bank: str
    status: str
    created_at: datetime
    updated_at: datetime
    owner: str
    bytes: int
    records: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "bank": self.bank, "status": self.status,
            "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
            "owner": self.owner, "bytes": self.bytes, "records": self.records,
            "result": self.result, "error": self.error,
        }


# (connection of the import's transaction, job, result counts, key id, actor)
AuditImport = Callable[[sa.Connection, Job, dict[str, Any], int | None, str], None]


def _iso(dt: datetime) -> str:
    return dt.replace(tzinfo=UTC).isoformat()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _job(r: sa.Row) -> Job:
    return Job(r.id, r.kind, r.bank, r.status, r.created_at, r.updated_at, r.owner, int(r.bytes),
               int(r.records), json.loads(r.result) if r.result else None,
               json.loads(r.error) if r.error else None)


def _db(action: str) -> Callable[..., Any]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except sa.exc.SQLAlchemyError as exc:
                orig = getattr(exc, "orig", None) or exc
                raise StoreError(f"{action} failed: {str(orig).strip().splitlines()[0]}",
                                 hint="the database is unreachable") from None
        return inner
    return wrap


class Jobs:
    def __init__(self, store: Store, stale_seconds: float,
                 on_done: Callable[[Job, int | None, str], None] | None = None,
                 on_commit: Callable[[], None] | None = None,
                 audit: AuditImport | None = None) -> None:
        self.store = store
        self.engine = store.engine
        self.stale = stale_seconds
        self.on_done = on_done
        self.on_commit = on_commit  # before "done" is visible: the import is matchable here
        # Writes the audit row of a successful import inside the import's transaction:
        # if it fails, nothing is imported.
        self.audit = audit
        self._threads: list[threading.Thread] = []

    @_db("creating an import job")
    def create(self, bank: str, nbytes: int, key_id: int | None) -> Job:
        now = _now()
        job_id = uuid.uuid4().hex
        with self.store.writer.begin() as conn:
            conn.execute(jobs.insert().values(
                id=job_id, kind="import", bank=bank, status="queued", created_at=now, updated_at=now,
                owner=OWNER, key_id=key_id, bytes=nbytes, records=0, result=None, error=None))
        return self.get(job_id)

    @_db("reading a job")
    def get(self, job_id: str) -> Job:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job with id {job_id!r}")
        job = _job(row)
        if job.status in ("queued", "running") and self._owner_gone(job):
            self._finish(job.id, "failed", error={
                "code": "interrupted",
                "message": "the worker running this import stopped; nothing was imported",
                "hint": "submit the import again",
            }, only_if_active=True)
            return self.get(job_id)
        return job

    def _owner_gone(self, job: Job) -> bool:
        host, _, pid = job.owner.rpartition(":")
        if host == socket.gethostname() and pid.isdigit():
            # Same machine: ask the OS. (A heartbeat can stall behind SQLite's single
            # writer lock while a long import holds it.)
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return True
            except OSError:
                pass
            else:
                return False
        return _now() - job.updated_at > timedelta(seconds=self.stale)

    def _update(self, job_id: str, **values: Any) -> None:
        values["updated_at"] = _now()
        with self.store.writer.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def _finish(self, job_id: str, status: str, *, result: dict[str, Any] | None = None,
                error: dict[str, Any] | None = None, only_if_active: bool = False) -> None:
        q = jobs.update().where(jobs.c.id == job_id)
        if only_if_active:
            q = q.where(jobs.c.status.in_(("queued", "running")))
        with self.store.writer.begin() as conn:
            conn.execute(q.values(status=status, updated_at=_now(),
                                  result=json.dumps(result) if result else None,
                                  error=json.dumps(error) if error else None))

    def start_import(self, job: Job, path: Path, fmt: str | None, signal_type: str, source: str,
                     key_id: int | None, actor: str) -> None:
        t = threading.Thread(target=self._run_import, name=f"assay-import-{job.id}", daemon=True,
                             args=(job, path, fmt, signal_type, source, key_id, actor))
        self._threads.append(t)
        t.start()

    def _run_import(self, job: Job, path: Path, fmt: str | None, signal_type: str, source: str,
                    key_id: int | None, actor: str) -> None:
        stop = threading.Event()
        progress = [0]

        def heartbeat() -> None:
            # A separate thread: the import's own connection is busy inside its
            # transaction, and a job must show life even during the final INSERTs.
            while not stop.wait(_HEARTBEAT):
                try:
                    self._update(job.id, records=progress[0])
                except Exception:  # noqa: S110 - a missed heartbeat is harmless
                    pass

        def counted(records: Iterator[ImportRecord]) -> Iterator[ImportRecord]:
            for r in records:
                progress[0] += 1
                yield r

        beat = threading.Thread(target=heartbeat, daemon=True)
        final: Job | None = None
        try:
            self._update(job.id, status="running")
            beat.start()
            records = parse_file(path, fmt, signal_type)  # type: ignore[arg-type]
            with self.store.transaction(f"importing into bank {job.bank!r}") as conn:
                result = self.store.import_records(job.bank, counted(records), source)
                res = {"added_entries": result.added_entries, "added_signals": result.added_signals,
                       "duplicates": result.duplicates, "total": result.total}
                if self.audit is not None:
                    self.audit(conn, job, res, key_id, actor)
            stop.set()
            beat.join()
            if self.on_commit is not None:
                self.on_commit()
            self._update(job.id, records=progress[0])
            self._finish(job.id, "done", result=res)
        except AssayError as exc:
            stop.set()
            # Job answers go to curate keys: no store location (docs/service.md, "Errors").
            pub = public_error_dict(exc, None, self.store.url_for_display)["error"]
            err: dict[str, Any] = {"code": pub["code"], "message": _public(pub["message"], path), "hint": pub["hint"]}
            if isinstance(exc, BankImportError):
                err["problems"] = [{"line": n, "reason": r} for n, r in exc.problems]
            self._try_finish(job.id, err)
        except sa.exc.SQLAlchemyError as exc:  # the job's own bookkeeping lost the database
            stop.set()
            self._try_finish(job.id, {"code": "store-error", "message": f"import failed: {type(exc).__name__}",
                                      "hint": "the database was unreachable; nothing was imported"})
        except Exception as exc:  # a bug: the job must still end, and say so
            stop.set()
            self._try_finish(job.id, {"code": "internal", "message": f"import failed: {type(exc).__name__}"})
        finally:
            stop.set()
            path.unlink(missing_ok=True)
        try:
            final = self.get(job.id)
        except AssayError:
            return
        if self.on_done is not None:
            self.on_done(final, key_id, actor)

    def _try_finish(self, job_id: str, err: dict[str, Any]) -> None:
        for _ in range(20):  # the database may be briefly away; the job must not stay "running"
            try:
                self._finish(job_id, "failed", error=err)
                return
            except Exception:
                time.sleep(0.5)


def _public(message: str, path: Path) -> str:
    # The temporary file's path means nothing to the client.
    return message.replace(str(path), "request body")
