"""Fetching an exchange into its bank: incremental, one transaction per page.

Each page the library's ``fetch_iter`` yields is applied together with its checkpoint
in ONE store transaction: the bank never holds half a page, and a fetch killed at any
point leaves the bank as of the last committed page with the checkpoint that follows
it, so the next fetch resumes there. Applying a page is idempotent (entries are keyed
by the programme's own keys), so a page fetched twice adds nothing twice.

A page that cannot be used (the programme's answer does not parse, a record has the
wrong shape) stops the fetch with an error naming the exchange and the page; nothing
of that page is applied. Rate limits (429) and server errors are retried from the last
committed checkpoint a few times, waiting as the programme asks (``Retry-After``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from ..banks.store import ImportRecord, Store, entries_table, signals_table
from ..errors import AssayError, ExchangeError
from . import config as cfg
from .adapters import Adapter, Item, PageCounts, adapter, checked, supported_signal_types
from .credentials import find as find_credentials
from .credentials import redact, redacting, secrets_of

log = logging.getLogger("assay.exchanges")
LEASE = timedelta(minutes=10)
_IN = 500


@dataclass
class FetchResult:
    exchange: str
    bank: str
    status: str = "ok"  # ok | error
    pages: int = 0
    records: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    signals_added: int = 0
    invalid: int = 0
    retries: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    removed_reasons: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    seconds: float = 0.0

    def counts(self) -> dict[str, Any]:
        return {"pages": self.pages, "records": self.records, "added": self.added, "updated": self.updated,
                "removed": self.removed, "unchanged": self.unchanged, "signals_added": self.signals_added,
                "invalid": self.invalid, "retries": self.retries, "skipped": dict(self.skipped),
                "removed_reasons": dict(self.removed_reasons)}

    def to_json_dict(self) -> dict[str, Any]:
        return {"exchange": self.exchange, "bank": self.bank, "status": self.status, **self.counts(),
                "error": self.error, "seconds": round(self.seconds, 3)}


def encode_checkpoint(checkpoint: Any) -> str:
    """The library's checkpoint dataclass as JSON (never pickle)."""
    if not dataclasses.is_dataclass(checkpoint):
        raise ExchangeError(f"checkpoint of type {type(checkpoint).__name__} is not a dataclass")
    return json.dumps(dataclasses.asdict(checkpoint), sort_keys=True)


def decode_checkpoint(cls: type, text: str) -> Any:
    import dacite

    try:
        return dacite.from_dict(cls, json.loads(text), config=dacite.Config(check_types=True))
    except (ValueError, TypeError, dacite.DaciteError) as exc:
        raise ExchangeError(f"the stored checkpoint is not a valid {cls.__name__}: {exc}",
                            hint="`assay exchange fetch NAME --full` starts again from the beginning") from None


class LeaseHeld(ExchangeError):
    """Another process is fetching this exchange."""

    code = "exchange-busy"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _classify(exc: BaseException) -> _Transient | None:
    """A rate limit, server error or network failure (retry later), or None (a bad answer)."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code == 429 or code >= 500:
            after = exc.response.headers.get("Retry-After", "")
            try:
                wait = float(after)
            except ValueError:
                wait = 0.0
            return _Transient(f"HTTP {code}" + (" (rate limited)" if code == 429 else ""), wait)
        return None
    if isinstance(exc, requests.exceptions.RetryError):
        return _Transient(f"gave up after the library's retries: {exc}", 0.0)
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return _Transient(f"network error: {exc}", 0.0)
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc) if str(exc) else type(exc).__name__
    if isinstance(exc, AssertionError | KeyError | TypeError | AttributeError | IndexError):
        text = f"malformed answer ({type(exc).__name__}: {text})"
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


def fetch(store: Store, name: str, *, full: bool = False, retries: int = 3, max_wait: float = 60.0,
          max_pages: int | None = None, progress: Callable[[FetchResult], None] | None = None,
          sleep: Callable[[float], None] = time.sleep, owner: str | None = None,
          on_commit: Callable[[FetchResult], None] | None = None,
          on_done: Callable[[FetchResult], None] | None = None) -> FetchResult:
    """Fetch one exchange into its bank. Raises ExchangeError (after recording it in the
    exchange's status and the audit log) if the fetch failed; the pages committed before
    the failure stay. ``on_done`` sees the result of every fetch that ran, failed or not
    (the service's metrics)."""
    ex = cfg.get(store, name)
    if ex.bank is None:
        raise ExchangeError(f"exchange {name!r}: its bank was deleted",
                            hint="remove the exchange and add it again with an existing bank")
    ad = adapter(ex.type)
    result = FetchResult(ex.name, ex.bank)
    secrets: list[str] = []
    owner = owner or _owner()
    if not cfg.claim(store, name, owner, LEASE) and not cfg.take_over_dead(store, name, owner, LEASE):
        current = cfg.get(store, name)
        raise LeaseHeld(f"exchange {name!r} is being fetched by {current.lease_owner} "
                            f"(lease until {current.lease_until:%Y-%m-%d %H:%M:%S} UTC)",
                            hint="wait for that fetch to finish")
    started = time.perf_counter()
    try:
        creds = None
        if ex.type != "file":
            creds, _where = find_credentials(ex.name, ex.type, ex.settings)
            secrets = secrets_of(creds)
        if full:
            cfg.reset_checkpoint(store, name)
        cfg.record_start(store, name)
        api = ad.build(ex, creds)
        attempt = 0
        while True:
            try:
                with redacting(secrets):
                    _run(store, ex, ad, api, result, owner, max_pages, progress, on_commit)
                break
            except _PageError as exc:
                transient = _classify(exc.cause)
                if transient is None or attempt >= retries:
                    raise
                attempt += 1
                result.retries += 1
                wait = transient.retry_after if transient.retry_after > 0 else 0.5 * 2 ** (attempt - 1)
                wait = min(wait, max_wait)
                log.warning("exchange %s: page %d: %s; retrying from the last checkpoint in %.1f s",
                            ex.name, exc.page, redact(str(transient), secrets), wait)
                sleep(wait)
    except BaseException as exc:
        result.status = "error"
        result.seconds = time.perf_counter() - started
        if isinstance(exc, _PageError):
            msg = (f"exchange {ex.name!r} ({ex.type}): page {exc.page} failed: {_reason(exc.cause)}; "
                   f"nothing of that page was applied, the bank holds the {result.pages} page(s) before it")
        elif isinstance(exc, AssayError):
            msg = str(exc)
        elif isinstance(exc, KeyboardInterrupt | SystemExit):
            msg = f"exchange {ex.name!r}: fetch interrupted after {result.pages} page(s)"
        else:
            msg = f"exchange {ex.name!r} ({ex.type}): {_reason(exc)}"
        msg = redact(msg, secrets)
        result.error = msg
        _finish(store, ex, result)
        if on_done is not None:
            on_done(result)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        hint = "the next fetch resumes from the last committed page" if isinstance(exc, _PageError) else None
        raise ExchangeError(msg, hint=hint) from None
    finally:
        try:
            cfg.release(store, name, owner)
        except AssayError:
            pass
    result.seconds = time.perf_counter() - started
    _finish(store, ex, result)
    if on_done is not None:
        on_done(result)
    return result


def _finish(store: Store, ex: cfg.Exchange, result: FetchResult) -> None:
    from ..service.tables import audit_log

    try:
        with store.transaction(f"recording a fetch of exchange {ex.name!r}") as conn:
            cfg.record_end(store, ex.name, status=result.status, error=result.error, counts=result.counts(),
                           conn=conn)
            conn.execute(audit_log.insert().values(
                at=cfg.now(), key_id=None, actor=f"exchange:{ex.name}"[:128], action="exchange.fetch",
                bank=(ex.bank or "")[:64] or None,
                detail=json.dumps({"exchange": ex.name, "type": ex.type, "status": result.status,
                                   "error": result.error, **result.counts()}, sort_keys=True)))
    except AssayError as exc:
        log.error("exchange %s: could not record the fetch's outcome: %s", ex.name, exc)


class _PageError(Exception):
    def __init__(self, page: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.page = page
        self.cause = cause


def _run(store: Store, ex: cfg.Exchange, ad: Adapter, api: Any, result: FetchResult, owner: str,
         max_pages: int | None, progress: Callable[[FetchResult], None] | None,
         on_commit: Callable[[FetchResult], None] | None) -> None:
    cp_cls = ad.checkpoint_cls()
    stored = cfg.get(store, ex.name).checkpoint
    checkpoint = decode_checkpoint(cp_cls, stored) if stored else None
    if checkpoint is not None and checkpoint.is_stale():
        checkpoint = None  # the programme no longer keeps what we would resume from
    it = api.fetch_iter(supported_signal_types(), checkpoint)
    page = result.pages
    while max_pages is None or page < max_pages:
        page += 1
        try:
            delta = next(it)
        except StopIteration:
            return
        except Exception as exc:
            raise _PageError(page, exc) from exc
        try:
            counts = PageCounts()
            items = [checked(ad.convert(ex, k, v, counts), counts) for k, v in delta.updates.items()]
            cp_text = encode_checkpoint(delta.checkpoint) if delta.checkpoint is not None else None
        except AssayError as exc:
            raise _PageError(page, exc) from exc
        except Exception as exc:  # a record of the wrong shape: the page is refused whole
            raise _PageError(page, exc) from exc
        _apply(store, ex, ad, items, cp_text, result, owner)
        result.pages = page
        result.records += len(items)
        result.invalid += counts.invalid
        result.skipped.update(counts.skipped)
        if on_commit is not None:
            on_commit(result)
        if progress is not None:
            progress(result)


def _apply(store: Store, ex: cfg.Exchange, ad: Adapter, items: list[Item], cp_text: str | None,
           result: FetchResult, owner: str) -> None:
    """One page and its checkpoint, in one transaction."""
    bank = ex.bank
    assert bank is not None
    source = f"exchange:{ex.name}"
    by_cid: dict[str, Item] = {}
    for it in items:
        by_cid[it.content_id] = it  # a key twice in a page: the later update wins
    added = updated = removed = unchanged = 0
    reasons: Counter[str] = Counter()
    with store.transaction(f"applying a page of exchange {ex.name!r}") as conn:
        bank_id = store.get_bank(bank).id
        existing = _existing(conn, bank_id, list(by_cid))
        records: list[ImportRecord] = []
        for cid, it in by_cid.items():
            have = existing.get(cid)
            if it.signals is None or not it.signals:
                if have is not None:
                    store.remove_entry(bank, cid)
                    removed += 1
                    reasons[it.reason or "no-signal"] += 1
                continue
            if have is not None:
                if have == (sorted(it.signals), it.meta or None):
                    unchanged += 1
                    continue
                store.remove_entry(bank, cid)
                updated += 1
            else:
                added += 1
            records.append(ImportRecord(cid, tuple(it.signals), None, it.meta or None))
        if records:
            res = store.import_records(bank, records, source)
            result.signals_added += res.added_signals
        if ad.snapshot:
            keep = set(by_cid)
            stale = [c for c in conn.execute(
                sa.select(entries_table.c.content_id).where(entries_table.c.bank_id == bank_id,
                                                            entries_table.c.source == source)).scalars()
                     if c not in keep]
            for cid in stale:
                store.remove_entry(bank, cid)
            removed += len(stale)
            reasons["absent"] += len(stale)
        x = cfg.exchanges_table
        n = conn.execute(x.update().where(x.c.name == ex.name, x.c.lease_owner == owner[:128]).values(
            checkpoint=cp_text, checkpoint_at=cfg.now(), lease_until=cfg.now() + LEASE)).rowcount
        if not n:  # our lease ran out and someone else took it: do not apply behind its back
            raise ExchangeError(f"exchange {ex.name!r}: lost the fetch lease to another process; page not applied")
    result.added += added
    result.updated += updated
    result.removed += removed
    result.unchanged += unchanged
    result.removed_reasons.update(reasons)


def _existing(conn: sa.Connection, bank_id: int, cids: list[str]) -> dict[str, tuple[list[tuple[str, str]], Any]]:
    """content id -> (sorted signals, meta) of the entries of these ids already in the bank."""
    e, s = entries_table, signals_table
    rows: dict[int, tuple[str, Any]] = {}
    for i in range(0, len(cids), _IN):
        for eid, cid, meta in conn.execute(sa.select(e.c.id, e.c.content_id, e.c.meta)
                                           .where(e.c.bank_id == bank_id, e.c.content_id.in_(cids[i:i + _IN]))):
            rows[int(eid)] = (cid, json.loads(meta) if isinstance(meta, str) else meta)
    sigs: dict[int, list[tuple[str, str]]] = {eid: [] for eid in rows}
    ids = list(rows)
    for i in range(0, len(ids), _IN):
        for eid, st, val in conn.execute(sa.select(s.c.entry_id, s.c.signal_type, s.c.value)
                                         .where(s.c.entry_id.in_(ids[i:i + _IN]))):
            sigs[int(eid)].append((st, val))
    return {cid: (sorted(sigs[eid]), meta or None) for eid, (cid, meta) in rows.items()}


def fetch_due(store: Store, *, interval: float, owner: str | None = None,
              sleep: Callable[[float], None] = time.sleep,
              on_commit: Callable[[FetchResult], None] | None = None,
              on_done: Callable[[FetchResult], None] | None = None) -> list[FetchResult]:
    """Fetch every enabled exchange whose last fetch finished more than ``interval``
    seconds ago (or never ran), each only if its lease can be had: what the service's
    scheduler runs. Failures are recorded in each exchange's status, not raised."""
    done: list[FetchResult] = []
    now = cfg.now()
    for ex in cfg.list_all(store):
        if not ex.enabled or ex.bank is None:
            continue
        last = ex.last_finished_at
        if last is not None and (now - last.replace(tzinfo=None)).total_seconds() < interval:
            continue
        try:
            done.append(fetch(store, ex.name, owner=owner, sleep=sleep, max_wait=10.0, on_commit=on_commit,
                              on_done=on_done))
        except LeaseHeld:
            continue  # another worker took it between our read and our claim
        except ExchangeError as exc:
            log.warning("%s", exc)
    return done
