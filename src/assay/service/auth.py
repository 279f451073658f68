"""API keys and roles.

A key is ``assay_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored; the key itself is shown once, when created. Roles are ordered: ``match``
(hash and look up) < ``curate`` (bank edits, imports) < ``admin`` (keys, audit log);
a key may do what its role and every lower role may.

Each worker caches verified keys for a few seconds, so a lookup costs no database
round trip, a revoked key stops working within ``key_cache_seconds``, and lookups
keep being authorised from the cache while the database is unreachable.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from ..errors import AssayError, Forbidden, NotFound, StoreError, Unauthorized
from .settings import ROLES
from .tables import api_keys

KEY_PREFIX = "assay_"
_KEY_SHAPE = re.compile(r"assay_[A-Za-z0-9_-]{43}")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    role: str
    prefix: str
    rate_limit: float | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key, or the anonymous caller when that is configured."""

    key_id: int | None
    name: str
    role: str
    rate_limit: float | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}:{self.name}" if self.key_id is not None else "anonymous"


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _row(r: sa.Row) -> ApiKey:
    return ApiKey(int(r.id), r.name, r.role, r.prefix, r.rate_limit, r.created_at, r.revoked_at)


@contextmanager
def _begin(bind: sa.Engine | sa.Connection) -> Iterator[sa.Connection]:
    """A transaction of its own on an engine; the caller's, on a connection."""
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


def create_key(engine: sa.Engine | sa.Connection, name: str, role: str,
               rate_limit: float | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns (its record, the key itself, to show once). On a
    connection, the key is part of the caller's transaction."""
    if role not in ROLES:
        raise AssayError(f"invalid role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AssayError(f"invalid key name {name!r}: 1-128 characters, no control characters")
    if rate_limit is not None and not (rate_limit > 0):
        raise AssayError(f"invalid rate limit {rate_limit!r}: a positive number of requests/s")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with _begin(engine) as conn:
        new_id = conn.execute(
            api_keys.insert().values(
                name=name, role=role, key_hash=hash_key(key), prefix=key[:12],
                rate_limit=rate_limit, created_at=_now(), revoked_at=None,
            ).returning(api_keys.c.id)
        ).scalar_one()
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == new_id)).one()
    return _row(row), key


def list_keys(engine: sa.Engine, include_revoked: bool = True) -> list[ApiKey]:
    q = sa.select(api_keys).order_by(api_keys.c.id)
    if not include_revoked:
        q = q.where(api_keys.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(q)]


def revoke_key(engine: sa.Engine | sa.Connection, key_id: int) -> ApiKey:
    with _begin(engine) as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFound(f"no API key with id {key_id}", hint="list keys with `assay keys list`")
        if row.revoked_at is None:
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=_now()))
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()
    return _row(row)


class KeyVerifier:
    """Turns the key of a request into a Principal, with a short per-worker cache."""

    def __init__(self, engine: sa.Engine, ttl: float, anonymous_role: str | None) -> None:
        self._engine = engine
        self._ttl = ttl
        self._anonymous = Principal(None, "anonymous", anonymous_role) if anonymous_role else None
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str | None) -> Principal | None:
        """The verdict for ``key`` when it needs no database round trip (no key, a
        malformed key, or a fresh cache entry), else None: the caller then runs
        ``principal`` off the event loop."""
        if not key or not _KEY_SHAPE.fullmatch(key):
            return self.principal(key)  # answered (or refused) without the database
        cached = self._cache.get(hash_key(key))
        if cached is None or time.monotonic() - cached[1] >= self._ttl:
            return None
        if cached[0] is None:
            raise Unauthorized("unknown or revoked API key")
        return cached[0]

    def principal(self, key: str | None) -> Principal:
        if not key:
            if self._anonymous is not None:
                return self._anonymous
            raise Unauthorized(
                "no API key given", hint="send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        if not _KEY_SHAPE.fullmatch(key):
            raise Unauthorized("malformed API key", hint="keys look like assay_ followed by 43 characters")
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < self._ttl:
            found = cached[0]
        else:
            try:
                found = self._fetch(digest)
            except StoreError:
                if cached is None:
                    raise
                found = cached[0]  # database unreachable: trust what we verified last
            with self._lock:
                if len(self._cache) > 100_000:  # bounded: unknown keys are cached too
                    self._cache.clear()
                self._cache[digest] = (found, now)
        if found is None:
            raise Unauthorized("unknown or revoked API key")
        return found

    def _fetch(self, digest: str) -> Principal | None:
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    sa.select(api_keys).where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
                ).first()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"checking an API key failed: {_reason(exc)}", hint="the database is unreachable") from None
        if row is None:
            return None
        return Principal(int(row.id), row.name, row.role, row.rate_limit)


def require_role(principal: Principal, needed: str) -> None:
    if not role_allows(principal.role, needed):
        raise Forbidden(
            f"the {principal.role!r} role may not do this (needs {needed!r})",
            hint="ask an admin for a key with that role",
        )


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
