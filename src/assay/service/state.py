"""What one worker holds (store, live index, keys, limits, jobs) and the FastAPI
dependencies that hand it to routes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from ..banks.store import Store
from ..errors import AssayError, TooLarge
from .auth import KeyVerifier, Principal, require_role
from .jobs import Job, Jobs
from .matching import LiveIndex
from .penalty import RefusalPenalties
from .ratelimit import RateLimiter
from .settings import Settings
from .tables import audit_log
from .tmpfiles import TmpFiles

if TYPE_CHECKING:
    from ..config import Limits
    from .uploads import HeavyDecoder, UploadGate

T = TypeVar("T")


def insert_audit(conn: sa.Connection, principal: Principal | None, action: str, bank: str | None,
                 detail: Mapping[str, Any]) -> None:
    """Write one audit row on ``conn``, inside the caller's transaction."""
    conn.execute(audit_log.insert().values(
        at=datetime.now(UTC).replace(tzinfo=None),
        key_id=principal.key_id if principal else None,
        actor=principal.actor if principal else "service",
        action=action, bank=bank,
        detail=json.dumps(dict(detail), sort_keys=True, default=str)))


@dataclass
class ServiceState:
    settings: Settings
    store: Store
    index: LiveIndex
    keys: KeyVerifier
    limiter: RateLimiter
    penalties: RefusalPenalties
    jobs: Jobs
    tmp: TmpFiles
    uploads: UploadGate  # heavy image decodes in flight (uploads.py)
    decoder: HeavyDecoder  # where heavy decodes run (uploads.py)
    image_limits: Limits  # the pixel budget of uploads

    def audited_write(self, principal: Principal, action: str, bank: str | None, write: Callable[[], T],
                      detail: Callable[[T], Mapping[str, Any]] | None = None, **fixed: Any) -> T:
        """Run a bank write and insert its audit row in ONE transaction: both commit or
        neither does (a failed audit insert is a 503 and the bank is unchanged). Then
        apply the write to this worker's index."""
        with self.store.transaction(f"{action} ({bank or '-'})") as conn:
            result = write()
            insert_audit(conn, principal, action, bank, {**fixed, **(detail(result) if detail else {})})
        self.refresh_index()  # read-your-writes on this worker; the others follow within 1 s
        return result

    def audit_import(self, conn: sa.Connection, job: Job, result: Mapping[str, Any], key_id: int | None,
                     actor: str) -> None:
        """The audit row of a successful import, inside the import's own transaction."""
        insert_audit(conn, _job_principal(key_id, actor), "import", job.bank,
                     {"job": job.id, "status": "done", "result": dict(result), "error": None})

    def audit_alone(self, principal: Principal | None, action: str, bank: str | None, **detail: Any) -> None:
        """Record something that wrote nothing to the banks (a failed import): its own
        transaction; if that fails too, the loss is logged."""
        try:
            with self.store.writer.begin() as conn:
                insert_audit(conn, principal, action, bank, detail)
        except sa.exc.SQLAlchemyError as exc:
            logging.getLogger("assay.service.audit").error(
                "audit record lost: %s %s %s by %s (%s)", action, bank, detail,
                principal.actor if principal else "service", type(exc).__name__)

    def refresh_index(self) -> None:
        """Apply committed writes to this worker's index now (read-your-writes here)."""
        try:
            self.index.refresh()
        except AssayError:
            self.index.poke()

    def on_job_done(self, job: Job, key_id: int | None, actor: str) -> None:
        # A successful import was audited in its own transaction (audit_import).
        if job.status != "done":
            self.audit_alone(_job_principal(key_id, actor), "import", job.bank, job=job.id,
                             status=job.status, result=job.result, error=(job.error or {}).get("code"))
        self.index.poke()


def _job_principal(key_id: int | None, actor: str) -> Principal | None:
    return Principal(key_id, actor.split(":", 2)[-1], "curate") if key_id is not None else None


def get_state(request: Request) -> ServiceState:
    return request.app.state.assay  # type: ignore[no-any-return]


def _key_from(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
    return request.headers.get("x-api-key")


def role(needed: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: authenticate, check the role, charge the key's rate limit."""

    # Async so that FastAPI does not hop to its thread pool on every request (a sync
    # dependency costs a thread handoff, most of a cached lookup's time); only a key
    # missing from the cache is verified against the database, on a thread.
    async def dependency(request: Request) -> Principal:
        state = get_state(request)
        # Verified already when the request may carry a body (guard.AuthFirstMiddleware).
        principal = getattr(request.state, "principal", None)
        if principal is None:
            key = _key_from(request)
            principal = state.keys.cached(key)
            if principal is None:
                principal = await run_in_threadpool(state.keys.principal, key)
        request.state.key_id = principal.key_id
        request.state.role = principal.role  # what error answers may disclose
        require_role(principal, needed)
        if not getattr(request.state, "charged", False):  # else charged before the body was read
            await state.limiter.check(principal.key_id, principal.rate_limit or state.settings.rate_limit)
        return principal

    dependency.assay_role = needed  # type: ignore[attr-defined]  # read by the OpenAPI document
    return dependency


async def spool_body(request: Request, state: ServiceState, limit: int, suffix: str = "") -> tuple[Path, int]:
    """Stream the raw request body to a temporary file (never whole in memory)."""
    fd, path = state.tmp.new(suffix)
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge("request body", f"exceeds the limit of {limit} bytes")
                fh.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size
