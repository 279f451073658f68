"""Chain of custody: the header that opens every scan report (who ran what, when,
where, with which banks, on which inputs) and the redaction that keeps secrets out
of it. The file records carry their own hashes and times (scan.filehash)."""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import os
import re
import socket
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import ScanSettings

if TYPE_CHECKING:
    from ..banks.store import Store

HEADER_SCHEMA = "assay.scan-header/1"
# How each bank's ``snapshot`` is computed (also in docs/json.md).
SNAPSHOT_METHOD = "sha256 of 'type<TAB>value<LF>' over the signals of enabled entries, sorted by (type, value) bytewise"

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@/\s]*@")
# Signed-URL secrets in query strings: S3/GCS presigned URLs, Azure SAS tokens.
_URL_SECRET = re.compile(r"([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature"
                         r"|X-Goog-Credential|sig|token|access_token)=)[^&\s#]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the password of any URL in it, and the signature of a signed URL,
    replaced by ``***``."""
    return _URL_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))


def now_utc() -> str:
    return datetime.now(UTC).isoformat()


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return None


def settings_dict(settings: ScanSettings) -> dict[str, Any]:
    """The scan settings as JSON, secrets redacted (the lineage store's URL)."""
    d = dataclasses.asdict(settings)
    for k, v in list(d.items()):
        if isinstance(v, Path):
            d[k] = str(v)
        elif isinstance(v, str):
            d[k] = redact(v)
        elif isinstance(v, frozenset):
            d[k] = sorted(v)
    return d


def bank_snapshot(store: Store, bank_id: int) -> str:
    """SHA-256 over a bank's enabled signals in a fixed order (SNAPSHOT_METHOD): the
    same content gives the same value in any store, SQLite or PostgreSQL."""
    import sqlalchemy as sa

    from ..banks.store import entries_table as e
    from ..banks.store import signals_table as s

    typ, val = s.c.signal_type, s.c.value
    if store.engine.dialect.name == "postgresql":  # bytewise, whatever the database's locale
        typ, val = sa.collate(typ, "C"), sa.collate(val, "C")  # type: ignore[assignment]
    q = (sa.select(s.c.signal_type, s.c.value).join(e, e.c.id == s.c.entry_id)
         .where(s.c.bank_id == bank_id, e.c.enabled).order_by(typ, val))
    h = hashlib.sha256()
    with store.connection("reading a bank for the scan header") as conn:
        for t, v in conn.execution_options(yield_per=10_000).execute(q):
            h.update(f"{t}\t{v}\n".encode())
    return h.hexdigest()


SNAPSHOT_MAX_SIGNALS = 1_000_000  # above this a bank's snapshot is not computed at each scan


def banks_used(store: Store | None) -> list[dict[str, Any]]:
    """The enabled banks a scan matches against: name, kind, entries, snapshot."""
    if store is None:
        return []
    out = []
    for b in store.list_banks():
        if not b.enabled:
            continue
        st = store.stats(b.name)
        row: dict[str, Any] = {"name": b.name, "kind": b.kind, "entries": st.enabled_entries,
                               "signals": st.signals}
        total = sum(st.signals.values())
        limit = snapshot_limit()
        if total <= limit:
            row["snapshot"] = bank_snapshot(store, b.id)
        else:
            # Hashing every signal at every scan would cost the main job ~1 s per 200,000:
            # a big bank is identified by its counts; `bank export` plus sha256sum pins it.
            row["snapshot"] = None
            row["snapshot_skipped"] = (f"{total} signals, more than the {limit} hashed at every "
                                       f"scan (ASSAY_SNAPSHOT_MAX_SIGNALS)")
        out.append(row)
    return out


def snapshot_limit() -> int:
    try:
        return int(os.environ.get("ASSAY_SNAPSHOT_MAX_SIGNALS", "") or SNAPSHOT_MAX_SIGNALS)
    except ValueError:
        return SNAPSHOT_MAX_SIGNALS


def scan_header(
    scan_id: str,
    started_at: str,
    inputs: Iterable[str | Path],
    settings: ScanSettings,
    store: Store | None,
    argv: Sequence[str] | None = None,
    own_output: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """The first line of a scan report. ``own_output``: what the scan writes and leaves
    out of the walk (``not_scanned``, absolute; the key only when there is any)."""
    inputs = list(inputs)
    own = {"not_scanned": [os.path.abspath(p) for p in own_output]} if own_output else {}
    return {
        "schema": HEADER_SCHEMA,
        "tool": "assay",
        "version": __version__,
        "scan_id": scan_id,
        "started_at": started_at,
        "host": socket.gethostname(),
        "user": _user(),
        "pid": os.getpid(),
        "argv": [redact(a) for a in (sys.argv if argv is None else argv)],
        "cwd": os.getcwd(),
        "settings": settings_dict(settings),
        "banks": banks_used(store),
        "bank_snapshot_method": SNAPSHOT_METHOD,
        "inputs": [str(p) for p in inputs],
        "inputs_absolute": [os.path.abspath(p) for p in inputs],
        **own,
    }
