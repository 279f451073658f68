"""Routes of Meta's Hasher-Matcher-Actioner (OpenMediaMatch) for hashing and matching,
with HMA's parameters and answer shapes (see docs/service.md for what is and is not
covered): ``/status``, ``/m/lookup`` (GET and POST), ``/m/index/status``,
``/m/compare`` and ``/h/hash``. The curation routes (``/c/*``) are in
routes_curation. They need a key with the ``match`` role like the /v1 routes, unless
anonymous matching is configured; ``/status`` needs none.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import Field

from .. import signals as signal_types
from ..banks.matcher import Query as SignalQuery
from ..errors import InputError, UnknownSignalType
from ..media.hashes import LOW_QUALITY, ImageHashes
from ..report.schema import Match
from .auth import Principal
from .routes_match import json_response, lookup_queries, read_upload, upload_name
from .state import ServiceState, get_state, role
from .uploads import run_hash
from .validation import LINE_KEYS, Line

router = APIRouter(tags=["hma-compatible"])
MatchRole = Annotated[Principal, Depends(role("match"))]

BanksParam = Annotated[str | None, Query(max_length=4096, description="comma-separated bank names to search")]
TypesParam = Annotated[str | None, Query(max_length=256, description="comma-separated signal types (default: pdq)")]
# Accepted for HMA clients, without effect: assay has no coin-flip sampling of banks.
SeedParam = Annotated[str | None, Query(max_length=256, description="ignored (HMA's coin-flip seed)")]
BypassParam = Annotated[bool, Query(description="ignored (HMA's coin-flip bypass)")]
PHOTO_DEFAULT = ("pdq",)  # what HMA hashes a photo into
VIDEO_DEFAULT = ("vpdq", "video_md5")  # and a video into (its enabled video signal types)
# A vPDQ signal string in a query string: ~75 characters a second of video. Servers cap
# the request line too; a longer video is looked up by POST with the file.
VPDQ_SIGNAL_MAX = 16 * 1024  # ~200 frames; `assay serve` lets h11 read 256 KiB of request line
# A hash or vPDQ text is printable ASCII (and line ends): percent-encoded at most 3 bytes a
# character, so a signal of VPDQ_SIGNAL_MAX stays within what the HTTP server reads of a
# request line (httptools refuses ~64 KiB with a plain-text 400, before the app sees it;
# a non-ASCII character can take 12 bytes encoded).
SIGNAL_PATTERN = r"^[\t\n\r\x20-\x7e]*$"


# -- health ----------------------------------------------------------------------------
@router.get("/status", response_class=PlainTextResponse,
            responses={503: {"description": "INDEX-NOT-LOADED or INDEX-STALE (plain text)",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}},
            summary="HMA health: 200 I-AM-ALIVE, or 503 INDEX-NOT-LOADED / INDEX-STALE")
async def status(request: Request) -> PlainTextResponse:
    # HMA's semantics, for load balancers configured for HMA. /ready stays the readiness
    # check with details; /status/live is liveness only.
    state = get_state(request)
    if not state.index.loaded:
        return PlainTextResponse("INDEX-NOT-LOADED", 503)
    limit = state.settings.index_stale_seconds
    if limit > 0 and time.monotonic() - state.index.last_ok > limit:
        return PlainTextResponse("INDEX-STALE", 503)
    return PlainTextResponse("I-AM-ALIVE")


@router.get("/status/live", response_class=PlainTextResponse, summary="Liveness: 200 I-AM-ALIVE")
async def status_live() -> PlainTextResponse:
    return PlainTextResponse("I-AM-ALIVE")


# -- matching --------------------------------------------------------------------------
def bank_filter(raw: str | None) -> set[str] | None:
    if not raw:
        return None
    return {b.strip() for b in raw.split(",") if b.strip()}


def by_bank(matches: list[Match], banks: set[str] | None) -> dict[str, list[dict[str, Any]]]:
    """HMA's answer: bank name -> [{bank_content_id (integer), distance (string)}], hits
    in known-good banks left out;
    ``content_id`` (the bank's own id) alongside. A banked video's distance is HMA's
    vPDQ form, "query%[compared%]" (python-threatexchange's VPDQSimilarityInfo), with
    both shares as numbers alongside."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in matches:
        if banks is not None and m.bank not in banks:
            continue
        if m.bank_kind == "known-good":
            # A hit in a known-good bank (e.g. NSRL) is never a finding (as in a scan); HMA's
            # answer has no field to say so, and its pipelines act on every bank listed.
            continue
        item: dict[str, Any] = {"bank_content_id": m.entry_id, "content_id": m.content_id,
                                "distance": str(m.distance)}
        if m.video is not None:
            v = m.video
            cp = v.compared_match_percent
            item["distance"] = f"{v.query_match_percent:.0f}%[{cp:.0f}%]" if cp is not None else \
                f"{v.query_match_percent:.0f}%[?]"
            item["query_match_percent"] = v.query_match_percent
            item["compared_match_percent"] = cp
        out.setdefault(m.bank, []).append(item)
    return out


def refuse_url(url: str | None) -> None:
    if url is not None:
        raise InputError("url", "assay never fetches URLs for a client (no server-side request forgery)",
                         hint="hash the content yourself and send signal_type and signal, or upload it")


@router.get("/m/lookup", summary="HMA lookup of one hash: {bank name: [{bank_content_id, content_id, distance}]}")
async def hma_lookup(
    request: Request,
    _: MatchRole,
    signal_type: Annotated[str, Query(max_length=32)],
    signal: Annotated[str, Query(max_length=VPDQ_SIGNAL_MAX, pattern=SIGNAL_PATTERN, description=(
        "the hash; for vpdq python-threatexchange's signal string (a JSON list of "
        "\"hex,quality,timestamp\"), longer ones by POST with the video"))],
    banks: BanksParam = None,
    url: Annotated[str | None, Query(max_length=4096, description="refused: assay never fetches URLs")] = None,
    seed: SeedParam = None,
    bypass_coinflip: BypassParam = False,
) -> Response:
    refuse_url(url)
    matches = await _lookup_signal(get_state(request), signal_type, signal)
    return json_response(by_bank(matches, bank_filter(banks)))


async def _lookup_signal(state: ServiceState, signal_type: str, signal: str) -> list[Match]:
    if signal_types.get(signal_type).name == "vpdq":
        from ..media.video import parse_signal

        return await state.index.match_video([], parse_signal(signal, "signal"), None)
    if len(signal) > 256:
        raise InputError("signal", f"{len(signal)} characters: not a {signal_type} hash")
    name, value = signal_types.normalize(signal_type, signal)
    return await lookup_queries(state, [SignalQuery(name, value)], None, False)


@router.get("/m/raw_lookup", summary="HMA raw lookup of one hash: {matches: [bank_content_id]}, or with "
                                     "include_distance {matches: [{bank_content_id, distance}]}")
async def hma_raw_lookup(
    request: Request,
    _: MatchRole,
    signal_type: Annotated[str, Query(max_length=32)],
    signal: Annotated[str, Query(max_length=VPDQ_SIGNAL_MAX, pattern=SIGNAL_PATTERN,
                                 description="the hash, as on GET /m/lookup")],
    banks: BanksParam = None,
    include_distance: Annotated[bool, Query(description="hits as {bank_content_id, distance}")] = False,
) -> Response:
    # HMA's list of the index's hits, without banks. Unlike HMA's (which skips the check),
    # disabled banks and entries are not in it: assay's index does not hold them.
    found = by_bank(await _lookup_signal(get_state(request), signal_type, signal), bank_filter(banks))
    hits = [h for bank_hits in found.values() for h in bank_hits]
    if include_distance:
        return json_response({"matches": [{"bank_content_id": h["bank_content_id"], "distance": h["distance"]}
                                          for h in hits]})
    return json_response({"matches": [h["bank_content_id"] for h in hits]})


def photo_types(raw: str | None, content: str = "image") -> list[str]:
    """The signal types asked for with ``types=`` (HMA), among those a photo (or a video:
    ``content="video"``) is hashed into."""
    if raw is None:
        return list(PHOTO_DEFAULT if content == "image" else VIDEO_DEFAULT)
    available = [st.name for st in signal_types.all_types() if content in st.applies_to]
    what = "photos" if content == "image" else "videos"
    out: list[str] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        name = signal_types.get(part).name
        if name not in available:
            raise UnknownSignalType(f"signal type {name!r} is not computed for {what}",
                                    hint=f"use one of {', '.join(available)}")
        if name not in out:
            out.append(name)
    if not out:
        raise InputError("types", "empty signal type selection", hint=f"e.g. types={available[0]}")
    return out


async def one_upload(request: Request) -> tuple[str, UploadFile]:
    """HMA takes exactly one file per request, in a field named by its content type
    (``photo`` or ``video``): (that name, the file)."""
    form = await request.form()
    files = [(k, v) for k, v in form.multi_items() if not isinstance(v, str)]
    if len(files) != 1 or files[0][0] not in ("photo", "video"):
        raise InputError("request body", f"{len(files)} files uploaded; send exactly one, as the 'photo' "
                                          "or the 'video' field")
    return files[0][0], files[0][1]  # type: ignore[return-value]


# The two file fields, read from the form by one_upload (each optional, one of them sent).
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {
        "photo": {"type": "string", "format": "binary", "description": "an image (HMA's field name)"},
        "video": {"type": "string", "format": "binary",
                  "description": "a video: MP4, MOV, AVI, Matroska/WebM (HMA's field name)"},
    }}}}}}


def video_signal_of(h: Any, name: str) -> str:
    from ..media.video import to_threatexchange_json

    if name == "vpdq":
        return to_threatexchange_json(h.vpdq)
    if name == "video_md5":
        return str(h.md5)
    raise UnknownSignalType(f"signal type {name!r} is not computed for videos")


async def hash_photo(request: Request, state: ServiceState, photo: UploadFile, variants: bool = False) -> ImageHashes:
    """``variants``: also the query variants of a scan (for a lookup; a hash route answers
    the plain hash)."""
    data = await read_upload(state, photo)
    return await run_hash(request, data, upload_name(photo), False, variants=variants)


def signal_of(h: ImageHashes, name: str) -> str:
    value = getattr(h, name, None)
    if not isinstance(value, str):
        raise UnknownSignalType(f"signal type {name!r} is not computed for photos")
    return value


def hma_signal_of(h: ImageHashes, name: str) -> str:
    """What HMA answers for one type of a photo: as python-threatexchange's
    ``PdqSignal.hash_from_bytes``, a PDQ of quality below 50 is "" (no hash). Its bits
    say little about the picture (a flat grey and a flat blue image are 31 bits apart), so
    a client that looked it up with GET /m/lookup, or banked it, would match other
    pictures; HMA's clients know "" as "nothing to match"."""
    if name == "pdq" and h.quality < LOW_QUALITY:
        return ""
    return signal_of(h, name)


@router.post("/h/hash", summary="HMA hash of one uploaded photo or video: {signal type: signal} "
                                "(default: pdq; vpdq and video_md5 for a video)", openapi_extra=UPLOAD_BODY)
async def hma_hash(
    request: Request,
    _: MatchRole,
    types: TypesParam = None,
) -> Response:
    state = get_state(request)
    field, photo = await one_upload(request)
    if field == "video":
        from .routes_match import hash_video_upload

        wanted = photo_types(types, "video")
        v = await hash_video_upload(request, state, photo)
        return json_response({name: video_signal_of(v, name) for name in wanted})
    wanted = photo_types(types)
    h = await hash_photo(request, state, photo)
    return json_response({name: hma_signal_of(h, name) for name in wanted})


@router.post("/m/lookup", summary="HMA lookup of one uploaded photo or video: {signal type: {bank name: [matches]}}",
             openapi_extra=UPLOAD_BODY)
async def hma_lookup_upload(
    request: Request,
    _: MatchRole,
    types: TypesParam = None,
    banks: BanksParam = None,
    seed: SeedParam = None,
    bypass_coinflip: BypassParam = False,
) -> Response:
    from ..banks.matcher import best_per_entry, regions_in

    state = get_state(request)
    field, photo = await one_upload(request)
    if field == "video":
        from ..report.schema import SignalValue
        from .routes_match import hash_video_upload

        wanted = photo_types(types, "video")
        v = await hash_video_upload(request, state, photo)
        sigs = [SignalValue(type="video_md5", value=v.md5)] if "video_md5" in wanted else []
        found = await state.index.match_video(sigs, v.vpdq if "vpdq" in wanted else [], None,
                                              v.trimmed if "vpdq" in wanted else [],
                                              v.displayed if "vpdq" in wanted else [],
                                              v.mirrored if "vpdq" in wanted else [],
                                              v.turned if "vpdq" in wanted else None)
        return json_response({name: by_bank([m for m in found if m.signal_type == name], bank_filter(banks))
                              for name in wanted})
    wanted = photo_types(types)
    h = await hash_photo(request, state, photo, variants="pdq" in wanted)
    # PDQ carries its quality: a low-quality hash is not matched (as on /v1/match).
    queries = [SignalQuery(name, signal_of(h, name), None, h.quality if name == "pdq" else None) for name in wanted]
    if "pdq" in wanted:  # and the query variants of a scan, under "pdq" (as on /v1/match)
        queries += [SignalQuery("pdq", v, variant, q) for variant, (v, q) in {**(h.trimmed or {}),
                                                                            **(h.regions or {})}.items()]
    matches = best_per_entry(await lookup_queries(state, queries, None, False), regions_in(queries))
    wanted_banks = bank_filter(banks)
    asked = [q.signal_type for q in queries]
    return json_response({name: by_bank([m for m in matches if m.query is not None and asked[m.query] == name],
                                        wanted_banks)
                          for name in wanted})


@router.get("/m/index/status", summary="HMA index status: {signal type: {present, built_to, size}}")
async def hma_index_status(
    request: Request,
    _: MatchRole,
    signal_type: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    state = get_state(request)
    names = [signal_types.get(signal_type).name] if signal_type is not None else \
        [st.name for st in signal_types.all_types()]
    sizes = await run_in_threadpool(state.index.sizes)
    loaded = state.index.loaded
    # built_to: when this worker's index last caught up with the store (unix seconds).
    built_to = int(time.time() - (time.monotonic() - state.index.last_ok)) if loaded else -1
    return json_response({n: {"present": loaded, "built_to": built_to, "size": sizes.get(n, 0)} for n in names})


ComparePair = Annotated[list[Line], Field(min_length=2, max_length=2)]
# Two videos' frames compared pairwise (Meta's brute-force rule): an hour at 1 frame/s each.
VPDQ_COMPARE_MAX_FRAMES = 3600


def _compare_vpdq(left: str, right: str) -> list[Any]:
    """HMA's vPDQ comparison (python-threatexchange's VPDQSignal.compare_hash): Meta's
    rule on the two signal strings, ``[match, {query_match_percent, compared_match_percent}]``."""
    from ..media.video import match, parse_signal, prepare

    a, b = parse_signal(left, "the first vpdq signal"), parse_signal(right, "the second vpdq signal")
    if max(len(prepare(a)), len(prepare(b))) > VPDQ_COMPARE_MAX_FRAMES:
        raise InputError("vpdq", f"more than {VPDQ_COMPARE_MAX_FRAMES} frames to compare",
                         hint="match videos against banks with /m/lookup")
    m = match(a, b)
    return [m.is_match, {"query_match_percent": m.query_match_percent,
                         "compared_match_percent": m.compared_match_percent}]


@router.post("/m/compare", summary="HMA compare: {signal type: [a, b]} -> {signal type: [match, {distance}]} "
                                   "(vpdq: [match, {query_match_percent, compared_match_percent}])")
async def hma_compare(
    _: MatchRole,
    body: Annotated[dict[Line, ComparePair], Body(max_length=16, json_schema_extra=LINE_KEYS,
                                                  description="signal type -> two hashes")],
) -> Response:
    out: dict[str, Any] = {}
    for name, (left, right) in body.items():
        st = signal_types.get(name)
        if st.name == "vpdq":  # two signal strings (each a JSON list of "hex,quality,timestamp")
            out[name] = await run_in_threadpool(_compare_vpdq, left, right)
            continue
        a, b = st.normalize(left), st.normalize(right)
        if st.match == "hamming":
            distance = (int(a, 16) ^ int(b, 16)).bit_count()
            out[name] = [distance <= st.default_threshold, {"distance": distance}]
        else:  # exact types have no distance between different values
            out[name] = [a == b, {"distance": 0} if a == b else {}]
    return json_response(out)
