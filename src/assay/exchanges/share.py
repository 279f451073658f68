"""Sharing review decisions back to the programme an entry came from, where the
programme takes feedback: ThreatExchange (reactions on the descriptor: HELPFUL for a
confirmed match, DISAGREE_WITH_TAGS for a false positive, the reaction the library
reads back as a negative opinion) and NCMEC (upvote / downvote of the fingerprint,
with the programme's negative reason when it offers exactly one). StopNCII, TAT and
files take none through the library: nothing is sent for them.

Decisions come from :mod:`assay.review` (``confirmed`` and ``false-positive``;
``needs-review`` is not a verdict and is never sent). Each sent decision is an
audit_log row (action ``exchange.share``), so a decision is sent once; a changed
decision is sent again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..banks.store import Store
from ..errors import AssayError, ExchangeError
from . import config as cfg
from .adapters import adapter
from .credentials import find as find_credentials
from .credentials import redact, secrets_of

SHARED_DECISIONS = ("confirmed", "false-positive")
_TE_REACTION = {"confirmed": "HELPFUL", "false-positive": "DISAGREE_WITH_TAGS"}
_NCMEC_FINGERPRINT = {"pdq": "pdq", "md5": "md5", "sha1": "sha1", "video_md5": "md5"}


@dataclass
class ShareResult:
    exchange: str
    dry_run: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        return {"exchange": self.exchange, "dry_run": self.dry_run, "items": self.items, "failed": self.failed}


def _already_sent(store: Store, name: str) -> set[tuple[str, str]]:
    from ..service.tables import audit_log

    sent: set[tuple[str, str]] = set()
    with store.connection("reading shared decisions") as conn:
        for (detail,) in conn.execute(sa.select(audit_log.c.detail).where(
                audit_log.c.action == "exchange.share", audit_log.c.actor == f"exchange:{name}"[:128])):
            d = json.loads(detail)
            if d.get("status") == "sent":
                sent.add((d.get("record_id"), d.get("decision")))
    return sent


def pending(store: Store, name: str) -> list[tuple[Any, Any]]:
    """(review item, bank entry or None) of decided matches on this exchange's entries
    whose current decision was not sent yet."""
    from .. import review

    ex = cfg.get(store, name)
    if ex.bank is None:
        return []
    prefix = f"{ex.name}:"
    sent = _already_sent(store, name)
    out = []
    offset = 0
    while True:
        batch = review.list_reviews(store, bank=ex.bank, decided=True, limit=1000, offset=offset)
        for item in batch:
            if (item.decision in SHARED_DECISIONS and item.content_id.startswith(prefix)
                    and (item.record_id, item.decision) not in sent):
                out.append((item, store.get_entry(ex.bank, item.content_id)))
        if len(batch) < 1000:
            return out
        offset += 1000


def share(store: Store, name: str, *, dry_run: bool = False) -> ShareResult:
    ex = cfg.get(store, name)
    ad = adapter(ex.type)
    result = ShareResult(ex.name, dry_run)
    todo = pending(store, name)
    if not todo:
        return result
    if not ad.shares:
        for item, _entry in todo:
            result.items.append({"record_id": item.record_id, "content_id": item.content_id,
                                 "decision": item.decision, "feedback": "-",
                                 "status": f"not sent: {ex.type} takes no feedback through the library"})
        return result
    secrets: list[str] = []
    api = None
    if not dry_run:
        creds, _ = find_credentials(ex.name, ex.type, ex.settings)
        secrets = secrets_of(creds)
        api = ad.build(ex, creds)
    for item, entry in todo:
        row = {"record_id": item.record_id, "content_id": item.content_id, "decision": item.decision}
        if entry is None:
            result.items.append({**row, "feedback": "-", "status": "not sent: the entry is no longer in the bank"})
            continue
        meta = entry.meta or {}
        try:
            feedback, send = _plan(ex.type, item, meta, api)
        except ExchangeError as exc:
            result.items.append({**row, "feedback": "-", "status": f"not sent: {exc.message}"})
            continue
        if dry_run:
            result.items.append({**row, "feedback": feedback, "status": "dry run: not sent"})
            continue
        try:
            send()
            status = "sent"
        except Exception as exc:  # the programme refused or could not be reached
            result.failed += 1
            why = " ".join(str(exc).split()) or type(exc).__name__
            status = "failed: " + redact(why[:300], secrets)
        result.items.append({**row, "feedback": feedback, "status": status})
        _audit(store, ex, {**row, "feedback": feedback, "status": "sent" if status == "sent" else "failed",
                           "error": None if status == "sent" else status})
    return result


def _plan(kind: str, item: Any, meta: dict[str, Any], api: Any) -> tuple[str, Any]:
    if kind == "threatexchange":
        descriptors = [o.get("descriptor") for o in meta.get("opinions") or []
                       if isinstance(o, dict) and isinstance(o.get("descriptor"), int) and o["descriptor"] > 0]
        if not descriptors:
            raise ExchangeError("no ThreatExchange descriptor recorded for this entry")
        reaction = _TE_REACTION[item.decision]
        desc = descriptors[0]

        def send_te() -> None:
            _, err, body = api.client.react_to_threat_descriptor(desc, reaction)
            if err is not None or (isinstance(body, dict) and body.get("error")):
                raise ExchangeError(f"ThreatExchange refused the reaction: {(body or {}).get('error')}")

        return f"{reaction} on descriptor {desc}", send_te
    if kind == "ncmec":
        from threatexchange.exchanges.clients.ncmec.hash_api import FeedbackType, FingerprintType

        fp = _NCMEC_FINGERPRINT.get(item.signal_type)
        if fp is None or "entry_id" not in meta or "member_id" not in meta:
            raise ExchangeError(f"NCMEC takes no feedback on {item.signal_type} values from this entry")
        vote = FeedbackType.upvote if item.decision == "confirmed" else FeedbackType.downvote

        def send_ncmec() -> None:
            from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment

            client = api.get_client(NCMECEnvironment[api.collab.environment.name])
            client.submit_feedback(int(meta["member_id"]), str(meta["entry_id"]), FingerprintType[fp], vote)

        return f"{vote.value} {fp.upper()} of entry {meta['entry_id']}", send_ncmec
    raise ExchangeError(f"{kind} takes no feedback")


def _audit(store: Store, ex: cfg.Exchange, detail: dict[str, Any]) -> None:
    from ..service.tables import audit_log

    try:
        with store.transaction(f"recording feedback to exchange {ex.name!r}") as conn:
            conn.execute(audit_log.insert().values(
                at=cfg.now(), key_id=None, actor=f"exchange:{ex.name}"[:128], action="exchange.share",
                bank=(ex.bank or "")[:64] or None, detail=json.dumps(detail, sort_keys=True)))
    except AssayError:
        raise
