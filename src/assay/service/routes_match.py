"""/v1 hashing, lookups and analysis of uploads (role ``match``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from .. import signals as signal_types
from ..banks.matcher import Query as SignalQuery
from ..errors import AssayError, InputError, TooLarge, UnsupportedFormat
from ..media.hashes import ImageHashes
from ..report.schema import Match, SignalValue, VideoInfo
from ..sniff import HEAD_BYTES, sniff_bytes
from . import metrics
from .auth import Principal
from .errors import assay_error_dict
from .state import ServiceState, get_state, role, spool_body
from .uploads import run_hash, run_provenance
from .validation import STRICT, Line, Threshold

router = APIRouter(prefix="/v1", tags=["matching"])
MatchRole = Annotated[Principal, Depends(role("match"))]


class ImageFacts(BaseModel):
    format: str
    width: int
    height: int
    quality: int
    low_quality: bool
    # /v1/match: the variant PDQ hashes looked up (mirror, borders, crops, caption band,
    # regions, as scan does); ``signals`` lists those that matched
    variant_hashes: int | None = None


class HashResponse(BaseModel):
    signals: list[SignalValue]
    image: ImageFacts | None = Field(default=None, description="an image upload")
    video: VideoInfo | None = Field(default=None, description="a video upload: its vPDQ frames")


class LookupResponse(BaseModel):
    matches: list[Match]


class MatchResponse(BaseModel):
    signals: list[SignalValue]
    image: ImageFacts | None = Field(default=None, description="an image upload")
    video: VideoInfo | None = Field(default=None, description="a video upload: its vPDQ frames")
    matches: list[Match]


class BatchSignal(BaseModel):
    model_config = STRICT
    id: Line | None = Field(default=None, max_length=256, description="echoed back, to pair answers with questions")
    type: str = Field(max_length=32)
    value: str = Field(max_length=256)


class BatchRequest(BaseModel):
    model_config = STRICT
    signals: list[BatchSignal] = Field(max_length=100_000)
    threshold: Threshold | None = None
    include_low_quality: bool = False


class BatchItem(BaseModel):
    id: str | None = None
    matches: list[Match] | None = None
    error: dict[str, Any] | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem]


# Dihedral variants of a PDQ hash without its image: PDQ's bits are signs of a 16x16
# DCT against the median. Transposing the image transposes the DCT (exact); flipping
# it negates the odd rows or columns of coefficients, which flips those bits only if
# the median is ~0 (approximate: 0-20 bits off on photos, measured against
# pdqhash.compute_dihedral). (transpose, flip odd rows, flip odd columns) per variant:
_DIHEDRAL_OPS: dict[str, tuple[bool, bool, bool]] = {
    "rot90": (True, True, False), "rot180": (False, True, True), "rot270": (True, False, True),
    "flipx": (False, True, False), "flipy": (False, False, True), "flipplus": (True, False, False),
    "flipminus": (True, True, True),
}


def pdq_dihedral_from_hash(value: str) -> dict[str, str]:
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(value), np.uint8)).reshape(16, 16)
    out = {}
    for name, (transpose, rows, cols) in _DIHEDRAL_OPS.items():
        m = bits.T.copy() if transpose else bits.copy()
        if rows:
            m[1::2, :] ^= 1
        if cols:
            m[:, 1::2] ^= 1
        out[name] = np.packbits(m.reshape(-1)).tobytes().hex()
    return out


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


async def lookup_queries(state: ServiceState, queries: list[SignalQuery], threshold: int | None,
                         include_low_quality: bool) -> list[Match]:
    """From memory when possible; a first hit on an uncached entry reads the database
    on a thread, so the event loop never waits on it."""
    return await state.index.lookup_many(queries, threshold, include_low_quality)


def match_dicts(matches: list[Match]) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", exclude_none=True) for m in matches]


class LookupParams(BaseModel):
    """The query string of ``GET /v1/lookup``."""

    signal_type: str = Field(max_length=32, description="pdq, md5, sha256, autov2, ...")
    value: str = Field(max_length=256, description="the hash, hexadecimal")
    threshold: int | None = Field(
        default=None, ge=0, le=256,
        description="Hamming distance limit for PDQ; default: each bank's own (else 31)")
    include_low_quality: bool = False
    dihedral: bool = Field(default=False, description=(
        "PDQ only: also match the 7 rotations/flips, derived from the hash (approximate for "
        "rotations by 90/180 and flips; exact when the image is uploaded to /v1/match)"))


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop,
             "description": prop.get("description", "")} for name, prop in schema["properties"].items()]


def parse_query(request: Request, model: type[BaseModel]) -> Any:
    """Validate the query string in one pydantic call. FastAPI's per-parameter
    resolution re-inspects every annotation on every request: on the hottest route
    that was a quarter of the time of a lookup. Errors keep FastAPI's shape."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]) from None


@router.get("/lookup", response_model=LookupResponse, summary="Look up one hash in every enabled bank",
            openapi_extra={"parameters": _query_parameters(LookupParams)})
async def lookup(request: Request, _: MatchRole) -> Response:
    params: LookupParams = parse_query(request, LookupParams)
    state = get_state(request)
    name, canonical = signal_types.normalize(params.signal_type, params.value)
    queries = [SignalQuery(name, canonical)]
    if params.dihedral and signal_types.get(name).name == "pdq":
        queries += [SignalQuery(name, v, variant) for variant, v in pdq_dihedral_from_hash(canonical).items()]
    matches = await lookup_queries(state, queries, params.threshold, params.include_low_quality)
    return json_response({"matches": match_dicts(matches)})


@router.post("/lookup/batch", response_model=BatchResponse,
             summary="Look up many hashes in one request; a bad signal fails only its own item")
async def lookup_batch(request: Request, _: MatchRole, body: BatchRequest) -> Response:
    state = get_state(request)
    if len(body.signals) > state.settings.max_batch:
        raise TooLarge("request body",
                       f"{len(body.signals)} signals exceed the batch limit of {state.settings.max_batch}")
    errors: dict[int, dict[str, Any]] = {}
    queries: list[SignalQuery] = []
    for i, s in enumerate(body.signals):
        try:
            name, canonical = signal_types.normalize(s.type, s.value)
        except AssayError as exc:
            errors[i] = assay_error_dict(exc, request.state.request_id)["error"]
            continue
        queries.append(SignalQuery(name, canonical, variant=str(i)))  # variant carries the position
    matches = await lookup_queries(state, queries, body.threshold, body.include_low_quality)
    found: dict[int, list[dict[str, Any]]] = {}
    for m in matches:
        found.setdefault(int(m.query_variant or 0), []).append(
            m.model_dump(mode="json", exclude_none=True, exclude={"query_variant"}))
    results = [{"id": s.id, "error": errors[i]} if i in errors else {"id": s.id, "matches": found.get(i, [])}
               for i, s in enumerate(body.signals)]
    return json_response({"results": results})


async def read_upload(state: ServiceState, file: UploadFile) -> bytes:
    # Starlette spooled the part to a temporary file (in memory only up to 1 MiB) and
    # the body limit middleware capped its size; images are decoded from memory.
    limit = state.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(upload_name(file), f"exceeds the upload limit of {limit} bytes")
    if not data:
        raise UnsupportedFormat(upload_name(file), "the uploaded file is empty")
    metrics.UPLOAD_BYTES.observe(len(data))
    return data


async def is_video_upload(file: UploadFile) -> bool:
    """A video container assay decodes, by the upload's first bytes."""
    from ..sniff import video_format

    head = await file.read(512)
    await file.seek(0)
    return video_format(head) is not None


async def hash_video_upload(request: Request, state: ServiceState, file: UploadFile) -> Any:
    """vPDQ of an uploaded video: the part is copied to a temporary file of this worker
    (never past the upload limit), hashed within the heavy-decode budget, then deleted;
    errors name the upload, never the temporary file."""
    import os

    from .uploads import run_video_hash

    name = upload_name(file)
    limit = state.settings.max_upload_bytes
    fd, path = state.tmp.new(".video")
    try:
        size = 0
        with os.fdopen(fd, "wb") as fh:
            while chunk := await file.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(name, f"exceeds the upload limit of {limit} bytes")
                fh.write(chunk)
        if size == 0:
            raise UnsupportedFormat(name, "the uploaded file is empty")
        metrics.UPLOAD_BYTES.observe(size)
        return await run_video_hash(request, path, name)
    finally:
        path.unlink(missing_ok=True)


def video_signal_values(h: Any) -> list[SignalValue]:
    return [SignalValue(type="video_md5", value=h.md5), SignalValue(type="sha256", value=h.sha256)]


def video_facts(h: Any) -> dict[str, Any]:
    from ..media.video import video_info

    return video_info(h).model_dump(mode="json")


def signal_values(h: ImageHashes) -> list[SignalValue]:
    out = [SignalValue(type="pdq", value=h.pdq, quality=h.quality, mode=h.pdq_mode)]
    for variant, value in (h.dihedral or {}).items():
        if variant != "original":
            out.append(SignalValue(type="pdq", value=value, quality=h.quality, variant=variant, mode=h.pdq_mode))
    out.append(SignalValue(type="md5", value=h.md5))
    out.append(SignalValue(type="sha256", value=h.sha256))
    # the query variants (hashed only for an upload that is matched): as scan's record
    for variant, (value, quality) in {**(h.trimmed or {}), **(h.regions or {})}.items():
        out.append(SignalValue(type="pdq", value=value, quality=quality, variant=variant, mode=h.pdq_mode))
    return out


def image_facts(h: ImageHashes) -> dict[str, Any]:
    return {"format": h.format, "width": h.width, "height": h.height, "quality": h.quality,
            "low_quality": h.low_quality}


def upload_name(file: UploadFile) -> str:
    # A client-chosen name is not content, but keep it short and on one line.
    name = (file.filename or "upload").replace("\n", " ").replace("\r", " ")[:200]
    return name or "upload"


@router.post("/hash", response_model=HashResponse,
             summary="Hash an uploaded image (PDQ, MD5, SHA-256) or video (vPDQ, video_md5, SHA-256)")
async def hash_upload(
    request: Request,
    _: MatchRole,
    file: Annotated[UploadFile, File(description="the image or video (MP4, MOV, AVI, Matroska/WebM)")],
    dihedral: Annotated[bool, Form(description="also hash the 7 rotations and flips (images)")] = False,
) -> Response:
    state = get_state(request)
    if await is_video_upload(file):
        v = await hash_video_upload(request, state, file)
        return json_response({"signals": [s.model_dump(exclude_none=True) for s in video_signal_values(v)],
                              "video": video_facts(v)})
    data = await read_upload(state, file)
    h = await run_hash(request, data, upload_name(file), dihedral)
    return json_response({"signals": [s.model_dump(exclude_none=True) for s in signal_values(h)],
                          "image": image_facts(h)})


@router.post("/match", response_model=MatchResponse,
             summary="Hash an uploaded image or video and look it up (a video per banked video, Meta's vPDQ rule)")
async def hash_and_lookup(
    request: Request,
    _: MatchRole,
    file: Annotated[UploadFile, File(description="the image or video (MP4, MOV, AVI, Matroska/WebM)")],
    dihedral: Annotated[bool, Form(description="also match the 7 rotations and flips (images)")] = False,
    threshold: Annotated[int | None, Form(ge=0, le=256)] = None,
    include_low_quality: Annotated[bool, Form()] = False,
) -> Response:
    from ..banks.matcher import best_per_entry, keep_matched_variants, regions_in

    state = get_state(request)
    if await is_video_upload(file):
        v = await hash_video_upload(request, state, file)
        sigs = video_signal_values(v)
        matches = await state.index.match_video(sigs, v.vpdq, threshold, v.trimmed, v.displayed, v.mirrored,
                                                v.turned)
        return json_response({"signals": [s.model_dump(exclude_none=True) for s in sigs],
                              "video": video_facts(v), "matches": match_dicts(matches)})
    data = await read_upload(state, file)
    # The same query variants as scan (mirror, borders, crops, caption band, regions), and
    # the same rules: each bank entry once, by its best match; regions vote.
    h = await run_hash(request, data, upload_name(file), dihedral, variants=True)
    sigs = signal_values(h)
    queries = [SignalQuery(s.type, s.value, s.variant, s.quality) for s in sigs]
    matches = best_per_entry(await lookup_queries(state, queries, threshold, include_low_quality),
                             regions_in(queries))
    sigs, computed = keep_matched_variants(sigs, matches)  # the variant hashes that matched
    facts = image_facts(h) | ({"variant_hashes": computed} if computed else {})
    return json_response({"signals": [s.model_dump(exclude_none=True) for s in sigs],
                          "image": facts, "matches": match_dicts(matches)})


@router.post("/analyze/provenance",
             summary="Provenance evidence of an uploaded image (C2PA, generator metadata, watermarks)")
async def analyze_provenance_upload(
    request: Request,
    _: MatchRole,
    file: Annotated[UploadFile, File(description="the image")],
) -> Response:
    state = get_state(request)
    data = await read_upload(state, file)
    name = upload_name(file)
    sniffed = sniff_bytes(data[:HEAD_BYTES], len(data))
    if sniffed.kind != "image":
        raise UnsupportedFormat(name, f"not an image (looks like {sniffed.format})")
    anchors = Path(state.settings.trust_anchors) if state.settings.trust_anchors else None
    report = await run_provenance(request, data, name, sniffed.format, anchors)
    return json_response(report.model_dump(mode="json", exclude_none=True))


@router.post("/analyze/model",
             summary="Analyse a model file sent as the raw request body (safetensors, pickle, GGUF, ...)")
async def analyze_model_upload(request: Request, _: MatchRole) -> Response:
    from ..models.analyzer import analyze_model

    state = get_state(request)
    path, size = await spool_body(request, state, state.settings.max_model_bytes)
    try:
        if size == 0:
            raise UnsupportedFormat("request body", "empty body; send the model file as the body")
        report = await run_in_threadpool(analyze_model, path)
    except AssayError as exc:
        exc.message = exc.message.replace(str(path), "request body")  # our path, not theirs
        if isinstance(exc, InputError):
            exc.path = "request body"
        raise
    finally:
        path.unlink(missing_ok=True)
    out = report.model_dump(mode="json", exclude_none=True)
    return json_response(_scrub(out, str(path)))


def _scrub(obj: Any, tmp: str) -> Any:
    # The temporary path is ours, not the client's: never echo it.
    if isinstance(obj, str):
        return obj.replace(tmp, "request body")
    if isinstance(obj, list):
        return [_scrub(v, tmp) for v in obj]
    if isinstance(obj, dict):
        return {k: _scrub(v, tmp) for k, v in obj.items()}
    return obj
