"""Review of matches: an examiner's decision on each match of a scan report (confirmed,
false positive, needs review), who made it, when and why, kept in the bank store.

This is the library behind ``assay review`` and ``/v1/reviews``, and the place other
code reads decisions from (the case report renderers; sharing decisions back to hash
programmes). A match is identified by its record id (:mod:`assay.review.ids`): the same
file matching the same bank entry has the same id in every scan. Every decision is
also written to the store's audit log (action ``review.set``) in the same transaction,
with the previous decision, so the history of a match can be read back.

``register`` records the matches of a report as open items (decision ``None``), so that
a decision can later be given by id alone; it never changes a decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

from ..errors import InvalidReview, NotFound
from .ids import file_key, is_record_id, match_id

if TYPE_CHECKING:
    from ..banks.store import Store

__all__ = ["DECISIONS", "InvalidReview", "ReviewItem", "all_decisions", "decide", "decisions_for", "get",
           "history", "item_from_match", "list_reviews", "register", "report_items"]

DECISIONS: Final = ("confirmed", "false-positive", "needs-review")

metadata = sa.MetaData()
reviews_table = sa.Table(
    "reviews",
    metadata,
    sa.Column("record_id", sa.String(16), primary_key=True),
    sa.Column("file_sha256", sa.String(64), nullable=True),  # NULL: a record without one
    sa.Column("path", sa.Text, nullable=False),  # where the file was when first reviewed
    sa.Column("scan_id", sa.String(64), nullable=True),
    sa.Column("bank", sa.String(64), nullable=False),
    sa.Column("content_id", sa.Text, nullable=False),
    sa.Column("signal_type", sa.String(32), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("distance", sa.Integer, nullable=True),
    sa.Column("strength", sa.String(32), nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),  # NULL: registered, not decided
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("reviewer", sa.String(128), nullable=True),
    sa.Column("decided_at", sa.DateTime, nullable=True),
    sa.Column("registered_at", sa.DateTime, nullable=False),
    sa.Index("ix_reviews_bank_decision", "bank", "decision"),
)


@dataclass(frozen=True)
class ReviewItem:
    """One match of a report, with its decision once there is one."""

    record_id: str
    path: str
    bank: str
    content_id: str
    signal_type: str
    value: str
    file_sha256: str | None = None
    scan_id: str | None = None
    distance: int | None = None
    strength: str | None = None
    decision: str | None = None
    note: str | None = None
    reviewer: str | None = None
    decided_at: str | None = None
    # how the match was made (mirror, inverted, crop-0.8 ...): read from the report, not stored
    query_variant: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["query_variant"] is None:
            del d["query_variant"]
        return d


def item_from_match(rec: Mapping[str, Any], m: Mapping[str, Any], scan_id: str | None) -> ReviewItem:
    key = file_key(rec, scan_id)
    dist = m.get("distance")
    return ReviewItem(record_id=match_id(key, m), path=str(rec.get("path")), bank=str(m.get("bank")),
                      content_id=str(m.get("content_id")), signal_type=str(m.get("signal_type")),
                      value=str(m.get("value")), file_sha256=None if key.startswith("path:") else key,
                      scan_id=scan_id, distance=dist if isinstance(dist, int) else None,
                      strength=str(m["strength"]) if m.get("strength") else None,
                      query_variant=str(m["query_variant"]) if m.get("query_variant") else None)


def report_items(report: str | Path) -> Iterator[ReviewItem]:
    """The matches of a scan report, in report order (known-good hits are not findings
    and are not reviewed)."""
    from ..report.reader import Report

    scan_id: str | None = None
    rep = Report(report)
    for kind, obj in rep.lines():
        with rep.fields():
            if kind == "header":
                scan_id = obj.get("scan_id")
                scan_id = scan_id if isinstance(scan_id, str) else None
            elif kind == "file":
                items = [item_from_match(obj, m, scan_id) for m in obj.get("matches") or () if isinstance(m, Mapping)]
        if kind == "file":
            yield from items


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(dt: datetime | None) -> str | None:
    return dt.replace(tzinfo=UTC).isoformat() if dt is not None else None


def _item(row: sa.Row[Any]) -> ReviewItem:
    return ReviewItem(record_id=row.record_id, path=row.path, bank=row.bank, content_id=row.content_id,
                      signal_type=row.signal_type, value=row.value, file_sha256=row.file_sha256,
                      scan_id=row.scan_id, distance=row.distance, strength=row.strength,
                      decision=row.decision, note=row.note, reviewer=row.reviewer,
                      decided_at=_iso(row.decided_at))


def _values(item: ReviewItem) -> dict[str, Any]:
    # a file name that is not UTF-8 (lone surrogates) is kept by its \udcXX escapes: the
    # database holds UTF-8 text
    path = item.path.encode("utf-8", "backslashreplace").decode()
    return {"record_id": item.record_id, "file_sha256": item.file_sha256, "path": path[:4096],
            "scan_id": item.scan_id, "bank": item.bank[:64], "content_id": item.content_id,
            "signal_type": item.signal_type[:32], "value": item.value, "distance": item.distance,
            "strength": item.strength}


def register(store: Store, items: Iterable[ReviewItem]) -> int:
    """Record matches as open review items (those not in the store yet); returns how many
    were new. Existing items and their decisions are left as they are."""
    items = list({i.record_id: i for i in items}.values())
    if not items:
        return 0
    new = 0
    with store.transaction("registering matches for review") as conn:
        known: set[str] = set()
        ids = [i.record_id for i in items]
        for k in range(0, len(ids), 500):
            known.update(conn.execute(sa.select(reviews_table.c.record_id)
                                      .where(reviews_table.c.record_id.in_(ids[k:k + 500]))).scalars())
        rows = [{**_values(i), "registered_at": _now()} for i in items if i.record_id not in known]
        for k in range(0, len(rows), 500):
            conn.execute(reviews_table.insert(), rows[k:k + 500])
        new = len(rows)
    return new


def get(store: Store, record_id: str) -> ReviewItem | None:
    with store.connection("reading a review") as conn:
        row = conn.execute(sa.select(reviews_table).where(reviews_table.c.record_id == record_id)).first()
    return _item(row) if row is not None else None


def decisions_for(store: Store, record_ids: Sequence[str]) -> dict[str, ReviewItem]:
    """The decided items among ``record_ids`` (for the report renderers)."""
    out: dict[str, ReviewItem] = {}
    ids = list(dict.fromkeys(record_ids))
    with store.connection("reading review decisions") as conn:
        for k in range(0, len(ids), 500):
            q = sa.select(reviews_table).where(reviews_table.c.record_id.in_(ids[k:k + 500]),
                                               reviews_table.c.decision.is_not(None))
            for row in conn.execute(q):
                out[row.record_id] = _item(row)
    return out


def all_decisions(store: Store) -> dict[str, ReviewItem]:
    """Every decided item (a report of any size looks its matches up in this)."""
    with store.connection("reading review decisions") as conn:
        rows = conn.execute(sa.select(reviews_table).where(reviews_table.c.decision.is_not(None)))
        return {row.record_id: _item(row) for row in rows}


def list_reviews(store: Store, *, bank: str | None = None, decision: str | None = None,
                 decided: bool | None = True, limit: int = 100, offset: int = 0) -> list[ReviewItem]:
    """Review items, most recently decided first; ``decided=None`` includes open items."""
    q = sa.select(reviews_table)
    if bank is not None:
        q = q.where(reviews_table.c.bank == bank)
    if decision is not None:
        _check_decision(decision)
        q = q.where(reviews_table.c.decision == decision)
    elif decided is True:
        q = q.where(reviews_table.c.decision.is_not(None))
    elif decided is False:
        q = q.where(reviews_table.c.decision.is_(None))
    q = q.order_by(reviews_table.c.decided_at.desc(), reviews_table.c.record_id).limit(limit).offset(offset)
    with store.connection("listing reviews") as conn:
        return [_item(r) for r in conn.execute(q)]


def _check_decision(decision: str) -> None:
    if decision not in DECISIONS:
        raise InvalidReview(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")


def _check_text(what: str, value: str | None, limit: int) -> None:
    if value is None:
        return
    if len(value) > limit:
        raise InvalidReview(f"{what} is longer than {limit} characters")
    if any((ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in value):
        raise InvalidReview(f"{what} holds control characters (only tab and newline are allowed)")


def decide(store: Store, record: str | ReviewItem, decision: str, *, reviewer: str,
           note: str | None = None, key_id: int | None = None) -> ReviewItem:
    """Set the decision on a match (by record id, or an item from a report, registered
    if new) and write the audit row, in one transaction."""
    _check_decision(decision)
    _check_text("note", note, 4096)
    _check_text("reviewer", reviewer, 128)
    if not reviewer or "\n" in reviewer or "\t" in reviewer:
        raise InvalidReview("reviewer must be one line of text")
    rid = record.record_id if isinstance(record, ReviewItem) else record
    if not is_record_id(rid):
        raise InvalidReview(f"{rid!r} is not a record id (16 hex digits, as `assay review REPORT` lists them)")
    at = _now()
    with store.transaction(f"recording the review of {rid}") as conn:
        row = conn.execute(sa.select(reviews_table).where(reviews_table.c.record_id == rid)).first()
        if row is None:
            if not isinstance(record, ReviewItem):
                raise NotFound(f"no match with record id {rid} in this store",
                               hint="list the report first (`assay review REPORT.jsonl`) or name it with --report")
            conn.execute(reviews_table.insert().values(**_values(record), registered_at=at))
            previous = None
            item = record
        else:
            previous = row.decision
            item = _item(row)
        conn.execute(reviews_table.update().where(reviews_table.c.record_id == rid).values(
            decision=decision, note=note, reviewer=reviewer, decided_at=at))
        _audit(conn, key_id, reviewer, item.bank, {
            "record_id": rid, "decision": decision, "previous": previous, "note": note,
            "content_id": item.content_id, "signal_type": item.signal_type, "value": item.value,
            "file_sha256": item.file_sha256, "path": _values(item)["path"], "scan_id": item.scan_id})
    return ReviewItem(**{**asdict(item), "decision": decision, "note": note, "reviewer": reviewer,
                         "decided_at": _iso(at)})


def _audit(conn: sa.Connection, key_id: int | None, actor: str, bank: str, detail: Mapping[str, Any]) -> None:
    """The audit row of a decision, in the service's audit log (the same table and JSON
    form as assay.service.state.insert_audit), inside the decision's transaction."""
    from ..service.tables import audit_log

    conn.execute(audit_log.insert().values(at=_now(), key_id=key_id, actor=actor[:128], action="review.set",
                                           bank=bank[:64], detail=json.dumps(dict(detail), sort_keys=True)))


def history(store: Store, record_id: str) -> list[dict[str, Any]]:
    """Every decision on a match, oldest first, from the audit log."""
    from ..service.tables import audit_log

    q = (sa.select(audit_log).where(audit_log.c.action == "review.set")
         .where(audit_log.c.detail.like(f'%"record_id": "{record_id}"%')).order_by(audit_log.c.id))
    out = []
    with store.connection("reading the review history") as conn:
        for row in conn.execute(q):
            detail = json.loads(row.detail)
            if detail.get("record_id") != record_id:
                continue
            out.append({"at": _iso(row.at), "actor": row.actor, "decision": detail.get("decision"),
                        "previous": detail.get("previous"), "note": detail.get("note")})
    return out
