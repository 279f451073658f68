"""What one worker holds (store, live index, keys, limits, jobs) and the FastAPI
dependencies that hand it to routes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from ..banks.store import Store
from ..errors import AssayError, TooLarge
from .auth import KeyVerifier, Principal, require_role
from .jobs import Job, Jobs
from .matching import LiveIndex
from .ratelimit import TokenBuckets
from .settings import Settings
from .tables import audit_log


@dataclass
class ServiceState:
    settings: Settings
    store: Store
    index: LiveIndex
    keys: KeyVerifier
    buckets: TokenBuckets
    jobs: Jobs
    tmp_dir: Path

    def audit(self, principal: Principal | None, action: str, bank: str | None, **detail: Any) -> None:
        """Record a bank write. Runs after the write committed: if the database went away
        in between, the write stands and the failure is logged (never silently lost)."""
        try:
            with self.store.engine.begin() as conn:
                conn.execute(audit_log.insert().values(
                    at=datetime.now(UTC).replace(tzinfo=None),
                    key_id=principal.key_id if principal else None,
                    actor=principal.actor if principal else "service",
                    action=action, bank=bank,
                    detail=json.dumps(detail, sort_keys=True, default=str)))
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
        principal = Principal(key_id, actor.split(":", 2)[-1], "curate") if key_id is not None else None
        self.audit(principal, "import", job.bank, job=job.id, status=job.status,
                   result=job.result, error=(job.error or {}).get("code"))
        self.index.poke()


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
        key = _key_from(request)
        principal = state.keys.cached(key)
        if principal is None:
            principal = await run_in_threadpool(state.keys.principal, key)
        request.state.key_id = principal.key_id
        require_role(principal, needed)
        workers = state.settings.workers
        rate = (principal.rate_limit or state.settings.rate_limit) / workers
        state.buckets.check(principal.key_id, rate, 1.0)
        return principal

    return dependency


async def spool_body(request: Request, state: ServiceState, limit: int, suffix: str = "") -> tuple[Path, int]:
    """Stream the raw request body to a temporary file (never whole in memory)."""
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=state.tmp_dir)
    path = Path(name)
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


def make_tmp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="assay-service-"))


def remove_tmp_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
