"""Routes of Meta's Hasher-Matcher-Actioner (OpenMediaMatch) that upload pipelines
call today, with the same parameters and answer shapes (see docs/service.md for what
is and is not covered). They need a key with the ``match`` role like the /v1 routes,
unless anonymous matching is configured.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from .. import signals as signal_types
from ..banks.matcher import Query as SignalQuery
from .auth import Principal
from .routes_match import hash_bytes, json_response, lookup_queries, read_upload, upload_name
from .state import get_state, role

router = APIRouter(tags=["hma-compatible"])
MatchRole = Annotated[Principal, Depends(role("match"))]


@router.get("/status", response_class=PlainTextResponse, summary="Liveness (HMA: I-AM-ALIVE)")
async def status() -> PlainTextResponse:
    # Liveness only: the process answers. Readiness (index, database) is /ready.
    return PlainTextResponse("I-AM-ALIVE")


@router.get("/m/lookup", summary="HMA lookup: {bank name: [{bank_content_id, distance}]}")
async def hma_lookup(
    request: Request,
    _: MatchRole,
    signal_type: Annotated[str, Query(max_length=32)],
    signal: Annotated[str, Query(max_length=256)],
) -> Response:
    state = get_state(request)
    name, value = signal_types.normalize(signal_type, signal)
    matches = await lookup_queries(state, [SignalQuery(name, value)], None, False)
    out: dict[str, list[dict[str, object]]] = {}
    for m in matches:
        # HMA's content ids are integers; ours are the bank's own content ids.
        out.setdefault(m.bank, []).append({"bank_content_id": m.content_id, "distance": m.distance})
    return json_response(out)


@router.post("/h/hash", summary="HMA hash of an uploaded photo: {\"pdq\": HEX}")
async def hma_hash(
    request: Request,
    _: MatchRole,
    photo: Annotated[UploadFile, File(description="the image (HMA's field name)")],
) -> Response:
    state = get_state(request)
    data = await read_upload(state, photo)
    h = await run_in_threadpool(hash_bytes, data, upload_name(photo), False)
    return json_response({"pdq": h.pdq})
