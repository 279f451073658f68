"""/v1/reviews (role ``curate``): examiners' decisions on matches, the service face of
:mod:`assay.review` (the CLI's ``assay review``). A decision and its audit row commit in
one transaction; the reviewer is the calling key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from .. import review as rv
from ..errors import InvalidReview, NotFound
from ..review.ids import file_key, match_id
from .auth import Principal
from .routes_match import json_response
from .state import get_state, role
from .validation import STRICT, Line, Text

router = APIRouter(prefix="/v1", tags=["reviews"])
CurateRole = Annotated[Principal, Depends(role("curate"))]
Decision = Literal["confirmed", "false-positive", "needs-review"]
RecordId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="16 hex digits")]


class MatchIn(BaseModel):
    """A match as a scan report holds it: the file (its SHA-256, path, scan) and the bank
    entry that matched. The record id is computed from it as assay review does."""

    model_config = STRICT
    path: Line = Field(min_length=1, max_length=4096)
    bank: Line = Field(min_length=1, max_length=64)
    content_id: Line = Field(min_length=1, max_length=512)
    signal_type: Line = Field(min_length=1, max_length=32)
    value: Line = Field(min_length=1, max_length=4096)
    file_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    scan_id: Line | None = Field(default=None, max_length=64)
    distance: int | None = Field(default=None, ge=0, le=256)
    strength: Literal["exact", "short-hash", "perceptual", "named-by-metadata", "lineage"] | None = None


class ReviewIn(BaseModel):
    model_config = STRICT | {"json_schema_extra": {"anyOf": [{"required": ["record_id"]}, {"required": ["match"]}]}}
    record_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$",
                                  description="a match already known to the store")
    match: MatchIn | None = Field(default=None, description="or the match itself (registered if new)")
    decision: Decision
    note: Text | None = Field(default=None, max_length=4096)


class ReviewOut(BaseModel):
    record_id: str
    path: str
    bank: str
    content_id: str
    signal_type: str
    value: str
    file_sha256: str | None
    scan_id: str | None
    distance: int | None
    strength: str | None
    decision: Decision | None
    note: str | None
    reviewer: str | None
    decided_at: str | None
    history: list[dict[str, Any]] | None = None


class ReviewPage(BaseModel):
    reviews: list[ReviewOut]
    next_offset: int | None


def _item(m: MatchIn) -> rv.ReviewItem:
    rec = {"path": m.path, "signals": [{"type": "sha256", "value": m.file_sha256}] if m.file_sha256 else []}
    key = file_key(rec, m.scan_id)
    return rv.ReviewItem(record_id=match_id(key, m.model_dump()), path=m.path, bank=m.bank,
                         content_id=m.content_id, signal_type=m.signal_type, value=m.value,
                         file_sha256=m.file_sha256, scan_id=m.scan_id, distance=m.distance, strength=m.strength)


@router.post("/reviews", response_model=ReviewOut, summary="Record a decision on a match (with an audit row)")
def review_set(request: Request, who: CurateRole, body: ReviewIn) -> Response:
    state = get_state(request)
    target: str | rv.ReviewItem
    if body.match is not None:
        target = _item(body.match)
        if body.record_id is not None and body.record_id != target.record_id:
            raise InvalidReview(f"record_id {body.record_id} is not the id of that match ({target.record_id})",
                                hint="send one of record_id or match, or both agreeing")
    elif body.record_id is not None:
        target = body.record_id
    else:
        raise InvalidReview("send the match's record_id or the match itself")
    item = rv.decide(state.store, target, body.decision, reviewer=who.actor, note=body.note, key_id=who.key_id)
    return json_response(item.to_json_dict())


@router.get("/reviews", response_model=ReviewPage, summary="Review decisions, most recent first")
def review_list(
    request: Request, _: CurateRole,
    bank: Annotated[str | None, Query(max_length=64)] = None,
    decision: Decision | None = None,
    include_open: Annotated[bool, Query(description="also matches registered without a decision")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
) -> Response:
    state = get_state(request)
    items = rv.list_reviews(state.store, bank=bank, decision=decision, decided=None if include_open else True,
                            limit=limit + 1, offset=offset)
    more = len(items) > limit
    return json_response({"reviews": [i.to_json_dict() for i in items[:limit]],
                          "next_offset": offset + limit if more else None})


@router.get("/reviews/{record_id}", response_model=ReviewOut, summary="One match's decision and its history")
def review_get(request: Request, _: CurateRole, record_id: RecordId) -> Response:
    state = get_state(request)
    item = rv.get(state.store, record_id)
    if item is None:
        raise NotFound(f"no match with record id {record_id}", hint="POST /v1/reviews with the match first")
    return json_response({**item.to_json_dict(), "history": rv.history(state.store, record_id)})
