"""Configured exchanges in the store: the ``exchanges`` table (migration 0008) and the
reads and writes of its rows. Settings are plain JSON; credentials are never stored
here (see :mod:`assay.exchanges.credentials`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import sqlalchemy as sa

from ..errors import ExchangeError, InvalidBankInput, NotFound

if TYPE_CHECKING:
    from ..banks.store import Store

metadata = sa.MetaData()
exchanges_table = sa.Table(
    "exchanges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("bank_id", sa.Integer, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("checkpoint", sa.Text, nullable=True),
    sa.Column("checkpoint_at", sa.DateTime, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("last_started_at", sa.DateTime, nullable=True),
    sa.Column("last_finished_at", sa.DateTime, nullable=True),
    sa.Column("last_success_at", sa.DateTime, nullable=True),
    sa.Column("last_status", sa.String(16), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_counts", sa.Text, nullable=True),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_until", sa.DateTime, nullable=True),
)

#: assay's names of the programmes, and the python-threatexchange API each one uses.
TYPES: Final = ("ncmec", "stopncii", "threatexchange", "tat", "file")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Settings each type accepts (every one optional unless listed in _REQUIRED).
_COMMON = ("base_url", "credentials_file")
SETTINGS: Final = {
    "ncmec": ("environment", "only_esp_ids", *_COMMON),
    "stopncii": _COMMON,
    "threatexchange": ("privacy_group", *_COMMON),
    "tat": _COMMON,
    "file": ("path", "signal_type"),
}
_REQUIRED: Final = {"threatexchange": ("privacy_group",), "file": ("path",)}


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str
    bank: str | None  # None: the bank was deleted since
    bank_id: int
    settings: dict[str, Any]
    enabled: bool
    checkpoint: str | None  # the programme's checkpoint, JSON
    checkpoint_at: datetime | None
    created_at: datetime
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_success_at: datetime | None
    last_status: str | None
    last_error: str | None
    last_counts: dict[str, Any] | None
    lease_owner: str | None
    lease_until: datetime | None

    def to_json_dict(self) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return v.isoformat() if v is not None else None

        return {
            "name": self.name, "type": self.type, "bank": self.bank, "enabled": self.enabled,
            "settings": dict(self.settings), "checkpoint": json.loads(self.checkpoint) if self.checkpoint else None,
            "checkpoint_at": iso(self.checkpoint_at), "created_at": iso(self.created_at),
            "last_started_at": iso(self.last_started_at), "last_finished_at": iso(self.last_finished_at),
            "last_success_at": iso(self.last_success_at), "last_status": self.last_status,
            "last_error": self.last_error, "last_counts": self.last_counts,
        }


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v


def check_settings(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise the settings of an exchange of type ``kind``."""
    if kind not in TYPES:
        raise InvalidBankInput(f"unknown exchange type {kind!r} (known: {', '.join(TYPES)})")
    allowed = SETTINGS[kind]
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if value is None or value == () or value == []:
            continue
        if key not in allowed:
            raise InvalidBankInput(f"setting {key!r} does not apply to a {kind} exchange "
                                   f"(it takes: {', '.join(allowed) or 'none'})")
        out[key] = value
    for key in _REQUIRED.get(kind, ()):
        if key not in out:
            raise InvalidBankInput(f"a {kind} exchange needs --{key.replace('_', '-')}")
    if "privacy_group" in out:
        try:
            out["privacy_group"] = int(out["privacy_group"])
        except (TypeError, ValueError):
            raise InvalidBankInput(f"privacy_group must be a number, not {out['privacy_group']!r}") from None
    if "only_esp_ids" in out:
        try:
            out["only_esp_ids"] = sorted({int(i) for i in out["only_esp_ids"]})
        except (TypeError, ValueError):
            raise InvalidBankInput("only_esp_ids must be numbers") from None
    if "environment" in out:
        from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment

        names = [e.name for e in NCMECEnvironment]
        if out["environment"] not in names:
            raise InvalidBankInput(f"unknown NCMEC environment {out['environment']!r} (known: {', '.join(names)})")
    if "base_url" in out:
        out["base_url"] = check_base_url(str(out["base_url"]))
    for key in ("credentials_file", "path"):
        if key in out:
            from pathlib import Path

            out[key] = str(Path(str(out[key])).expanduser().absolute())
    if "signal_type" in out:
        from .. import signals as signal_types

        out["signal_type"] = signal_types.get(str(out["signal_type"])).name
    return out


def check_base_url(url: str) -> str:
    """A programme's endpoint override (its test server, a mirror, a loopback server in
    tests). Credentials go with every request, so plain http is accepted for loopback
    hosts only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidBankInput(f"base_url {url!r} is not an http(s) URL")
    if parts.username or parts.password or parts.query:
        raise InvalidBankInput("base_url must not carry credentials or a query; "
                               "give credentials through the environment or a credentials file")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise InvalidBankInput(f"base_url {url!r}: plain http would send credentials in the clear; use https")
    return url.rstrip("/")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidBankInput(f"invalid exchange name {name!r}: use 1-64 characters among letters, digits, "
                               "'_', '.', '-', starting with a letter or digit")
    return name


def _row_to_exchange(row: sa.Row[Any], bank: str | None) -> Exchange:
    return Exchange(
        name=row.name, type=row.type, bank=bank, bank_id=int(row.bank_id),
        settings=json.loads(row.settings), enabled=bool(row.enabled), checkpoint=row.checkpoint,
        checkpoint_at=_utc(row.checkpoint_at), created_at=_utc(row.created_at),  # type: ignore[arg-type]
        last_started_at=_utc(row.last_started_at), last_finished_at=_utc(row.last_finished_at),
        last_success_at=_utc(row.last_success_at), last_status=row.last_status, last_error=row.last_error,
        last_counts=json.loads(row.last_counts) if row.last_counts else None,
        lease_owner=row.lease_owner, lease_until=_utc(row.lease_until),
    )


def _select() -> sa.Select[Any]:
    from ..banks.store import banks_table

    x, b = exchanges_table, banks_table
    return sa.select(x, b.c.name.label("bank_name")).select_from(x.outerjoin(b, b.c.id == x.c.bank_id))


def add(store: Store, name: str, kind: str, bank: str, settings: dict[str, Any], *, enabled: bool = True) -> Exchange:
    check_name(name)
    clean = check_settings(kind, settings)
    t = now()
    with store.transaction(f"adding exchange {name!r}") as conn:
        bank_id = store.get_bank(bank).id
        if conn.execute(sa.select(exchanges_table.c.id).where(exchanges_table.c.name == name)).first():
            raise ExchangeError(f"an exchange named {name!r} already exists",
                                hint="pick another name, or `assay exchange remove` it first")
        conn.execute(exchanges_table.insert().values(
            name=name, type=kind, bank_id=bank_id, settings=json.dumps(clean, sort_keys=True),
            enabled=enabled, created_at=t, updated_at=t))
    return get(store, name)


def get(store: Store, name: str) -> Exchange:
    with store.connection("reading an exchange") as conn:
        row = conn.execute(_select().where(exchanges_table.c.name == name)).first()
        if row is None:
            known = conn.execute(sa.select(exchanges_table.c.name).order_by(exchanges_table.c.name)).scalars().all()
            raise NotFound(f"no exchange named {name!r}",
                           hint=f"known exchanges: {', '.join(known)}" if known
                           else "none configured yet; add one with `assay exchange add`")
    return _row_to_exchange(row, row.bank_name)


def fetched_items(store: Store, x: Exchange) -> int:
    """How many entries of its bank this exchange's fetches brought (and still hold)."""
    from ..banks.store import entries_table as e

    with store.connection("counting an exchange's entries") as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(e).where(
            e.c.bank_id == x.bank_id, e.c.source == f"exchange:{x.name}")).scalar_one())


def list_all(store: Store) -> list[Exchange]:
    with store.connection("listing exchanges") as conn:
        rows = conn.execute(_select().order_by(exchanges_table.c.name)).all()
    return [_row_to_exchange(r, r.bank_name) for r in rows]


def remove(store: Store, name: str) -> None:
    get(store, name)
    with store.transaction(f"removing exchange {name!r}") as conn:
        conn.execute(exchanges_table.delete().where(exchanges_table.c.name == name))


def set_enabled(store: Store, name: str, enabled: bool) -> Exchange:
    get(store, name)
    with store.transaction(f"updating exchange {name!r}") as conn:
        conn.execute(exchanges_table.update().where(exchanges_table.c.name == name)
                     .values(enabled=enabled, updated_at=now()))
    return get(store, name)


def reset_checkpoint(store: Store, name: str) -> None:
    """Forget the checkpoint: the next fetch starts from the beginning."""
    with store.transaction(f"resetting exchange {name!r}") as conn:
        conn.execute(exchanges_table.update().where(exchanges_table.c.name == name)
                     .values(checkpoint=None, checkpoint_at=None, updated_at=now()))


# -- the lease: one fetcher of an exchange at a time, across processes and hosts ----------
def claim(store: Store, name: str, owner: str, ttl: timedelta) -> bool:
    """Take (or extend) the lease of an exchange; False if another owner holds it. One
    conditional UPDATE, atomic on SQLite and PostgreSQL alike."""
    t = now()
    x = exchanges_table
    with store.transaction(f"leasing exchange {name!r}") as conn:
        n = conn.execute(x.update().where(
            x.c.name == name,
            sa.or_(x.c.lease_owner.is_(None), x.c.lease_until.is_(None), x.c.lease_until < t, x.c.lease_owner == owner),
        ).values(lease_owner=owner[:128], lease_until=t + ttl)).rowcount
    return bool(n)


def take_over_dead(store: Store, name: str, owner: str, ttl: timedelta) -> bool:
    """Take the lease from a holder on this host whose process is gone (a fetch killed
    with -9 leaves its lease behind; waiting for it to expire would stall the exchange)."""
    import os
    import socket

    x = exchanges_table
    with store.connection("reading an exchange lease") as conn:
        held = conn.execute(sa.select(x.c.lease_owner).where(x.c.name == name)).scalar()
    if not held:
        return claim(store, name, owner, ttl)
    host, _, rest = held.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
        return False  # alive
    except ProcessLookupError:
        pass
    except PermissionError:
        return False  # alive, another user's
    with store.transaction(f"leasing exchange {name!r}") as conn:
        n = conn.execute(x.update().where(x.c.name == name, x.c.lease_owner == held)
                         .values(lease_owner=owner[:128], lease_until=now() + ttl)).rowcount
    return bool(n)


def release(store: Store, name: str, owner: str) -> None:
    x = exchanges_table
    with store.transaction(f"releasing exchange {name!r}") as conn:
        conn.execute(x.update().where(x.c.name == name, x.c.lease_owner == owner[:128])
                     .values(lease_owner=None, lease_until=None))


def record_start(store: Store, name: str) -> None:
    with store.transaction(f"starting a fetch of exchange {name!r}") as conn:
        conn.execute(exchanges_table.update().where(exchanges_table.c.name == name)
                     .values(last_started_at=now(), last_status="running"))


def record_end(store: Store, name: str, *, status: str, error: str | None, counts: dict[str, Any],
               conn: sa.Connection | None = None) -> None:
    t = now()
    values: dict[str, Any] = {"last_finished_at": t, "last_status": status, "last_error": error,
                              "last_counts": json.dumps(counts, sort_keys=True)}
    if status == "ok":
        values["last_success_at"] = t
    stmt = exchanges_table.update().where(exchanges_table.c.name == name).values(**values)
    if conn is not None:
        conn.execute(stmt)
        return
    with store.transaction(f"recording a fetch of exchange {name!r}") as c:
        c.execute(stmt)
