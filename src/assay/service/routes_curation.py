"""HMA's curation routes (``/c/*``) mapped onto assay's banks, for HMA's scripts and
clients: banks (list, get, create, update, delete), content added by upload or by
signals, read and removed by HMA's integer content id, signal and content types.

Roles: bank and content routes need ``curate``; the signal and content type lists
need ``match``. Writes are audited in the same transaction, as on /v1. What differs
from HMA (no partial ``enabled_ratio``, no renaming, content ids) is in docs/service.md.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

from .. import signals as signal_types
from ..banks.store import Bank, Entry
from ..errors import BankNotFound, InputError, InvalidBankInput, InvalidSignal, NotFound
from ..media.hashes import LOW_QUALITY
from .auth import Principal
from .routes_banks import check_signal_cap
from .routes_compat import (
    UPLOAD_BODY,
    TypesParam,
    hash_photo,
    one_upload,
    photo_types,
    refuse_url,
    signal_of,
    video_signal_of,
)
from .routes_match import json_response
from .state import ServiceState, get_state, role
from .validation import LINE_KEYS, STRICT, BankName, JsonObject, Line, Text

router = APIRouter(prefix="/c", tags=["hma-compatible"])
CurateRole = Annotated[Principal, Depends(role("curate"))]
MatchRole = Annotated[Principal, Depends(role("match"))]
BankPath = Annotated[str, Path(max_length=256, description="bank name")]
ContentPath = Annotated[int, Path(ge=1, le=2**62, description="HMA content id: the entry's integer id")]


class HmaBankCreate(BaseModel):
    model_config = STRICT
    name: BankName
    enabled_ratio: float | None = Field(default=None, ge=0, le=1, description="0 or 1 (no partial matching)")
    enabled: bool | None = None


class HmaBankUpdate(BaseModel):
    model_config = STRICT
    name: BankName | None = Field(default=None, description="the bank's own name (renaming is not supported)")
    enabled_ratio: float | None = Field(default=None, ge=0, le=1, description="0 or 1 (no partial matching)")
    enabled: bool | None = None


class HmaMetadata(BaseModel):
    """HMA's content metadata; ``content_id`` becomes the entry's content id, the rest
    its meta. ``collab`` is dropped, as HMA does on input."""

    model_config = STRICT
    content_id: Line | None = Field(default=None, min_length=1, max_length=512)
    content_uri: Line | None = Field(default=None, max_length=4096)
    json_: JsonObject | None = Field(default=None, alias="json")
    collab: Any = None


def bank_config(b: Bank) -> dict[str, Any]:
    return {"name": b.name, "matching_enabled_ratio": 1.0 if b.enabled else 0.0}


def _enabled(ratio: float | None, enabled: bool | None) -> bool | None:
    if ratio is not None:
        if ratio not in (0.0, 1.0):
            raise InvalidBankInput(f"enabled_ratio {ratio} is not supported: assay matches a bank fully (1) "
                                   "or not at all (0)", hint="send 0, 1 or 'enabled'")
        return ratio == 1.0
    return enabled


@router.get("/banks", summary="HMA: list banks [{name, matching_enabled_ratio}]")
def hma_banks(request: Request, _: CurateRole) -> Response:
    return json_response([bank_config(b) for b in get_state(request).store.list_banks()])


@router.get("/bank/{bank_name}", summary="HMA: one bank {name, matching_enabled_ratio}")
def hma_bank(request: Request, _: CurateRole, bank_name: BankPath) -> Response:
    return json_response(bank_config(get_state(request).store.get_bank(bank_name)))


@router.post("/banks", status_code=201, summary="HMA: create a bank")
def hma_bank_create(request: Request, who: CurateRole, body: HmaBankCreate) -> Response:
    state = get_state(request)
    enabled = _enabled(body.enabled_ratio, body.enabled)

    def create() -> Bank:
        bank = state.store.create_bank(body.name)
        if enabled is False:
            state.store.set_bank_enabled(body.name, False)
            bank = state.store.get_bank(body.name)
        return bank

    bank = state.audited_write(who, "bank.create", body.name, create, enabled=enabled is not False)
    return json_response(bank_config(bank), 201)


@router.put("/bank/{bank_name}", summary="HMA: update a bank (enabled or enabled_ratio 0/1)")
def hma_bank_update(request: Request, who: CurateRole, bank_name: BankPath, body: HmaBankUpdate) -> Response:
    state = get_state(request)
    if body.name is not None and body.name != bank_name:
        raise InvalidBankInput("renaming a bank is not supported", hint="create a new bank and import into it")
    enabled = _enabled(body.enabled_ratio, body.enabled)

    def update() -> Bank:
        if enabled is not None:
            state.store.set_bank_enabled(bank_name, enabled)
        return state.store.get_bank(bank_name)

    bank = state.audited_write(who, "bank.update", bank_name, update,
                               **({"enabled": enabled} if enabled is not None else {}))
    return json_response(bank_config(bank))


@router.delete("/bank/{bank_name}", summary="HMA: delete a bank (a missing bank is no error, as in HMA)")
def hma_bank_delete(request: Request, who: CurateRole, bank_name: BankPath) -> Response:
    state = get_state(request)
    try:
        state.audited_write(who, "bank.delete", bank_name, lambda: state.store.delete_bank(bank_name))
    except BankNotFound:
        pass  # nothing deleted, nothing audited
    return json_response({"message": "Done"})


def content_dict(e: Entry, bank: Bank, include_signals: bool, include_metadata: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": e.id, "disable_until_ts": 1 if e.enabled else 0,  # HMA's ENABLED / DISABLED
        "original_media_uri": None, "bank": bank_config(bank),
    }
    if include_signals:  # HMA has one value per type: the first one; a video's vpdq whole
        out["signals"] = {t: v[0] for t, v in e.signals.items() if v}
        vpdq = _vpdq_signal(e.meta)
        if vpdq is not None:
            out["signals"]["vpdq"] = vpdq
    if include_metadata:
        # a banked video's frame list is assay's own (the vpdq signal above), not the user's
        meta = {k: v for k, v in (e.meta or {}).items() if k not in ("vpdq", "pdq_variants")}
        md: dict[str, Any] = {"content_id": e.content_id}
        if set(meta) <= {"content_uri", "json"}:
            md.update({k: v for k, v in meta.items() if v is not None})
        else:  # meta written through /v1: all of it is the user's JSON
            md["json"] = meta
        out["metadata"] = md
    if e.note is not None:
        out["note"] = e.note
    return out


def _vpdq_signal(meta: Any) -> str | None:
    """A banked video's vPDQ as python-threatexchange's signal string, from its entry meta."""
    from ..banks.videos import entry_text
    from ..media.video import loads, to_threatexchange_json

    text = entry_text(meta)
    return to_threatexchange_json(loads(text)) if text is not None else None


def _entry(state: ServiceState, bank_name: str, content_id: int) -> tuple[Bank, Entry]:
    bank = state.store.get_bank(bank_name)
    entry = state.store.get_entry_by_id(bank_name, content_id)
    if entry is None:
        raise NotFound(f"bank {bank_name!r} has no content {content_id}")
    return bank, entry


@router.get("/bank/{bank_name}/content/{content_id}", summary="HMA: one content item of a bank")
def hma_content(
    request: Request, _: CurateRole, bank_name: BankPath, content_id: ContentPath,
    include_signals: Annotated[bool, Query()] = False,
    include_metadata: Annotated[bool, Query()] = True,
) -> Response:
    bank, entry = _entry(get_state(request), bank_name, content_id)
    return json_response(content_dict(entry, bank, include_signals, include_metadata))


class HmaContentUpdate(BaseModel):
    model_config = STRICT
    disable_until_ts: int | None = Field(default=None, ge=0, le=1, description=(
        "1 enables the content, 0 disables it (HMA's ENABLED / DISABLED; disabling until a "
        "time is not supported)"))
    note: Text | None = Field(default=None, max_length=4096, description='the note; "" clears it')


@router.put("/bank/{bank_name}/content/{content_id}",
            summary="HMA: enable or disable a content item (disable_until_ts 1 / 0) or set its note; the content")
def hma_content_update(request: Request, who: CurateRole, bank_name: BankPath, content_id: ContentPath,
                       body: HmaContentUpdate) -> Response:
    # A content that keeps matching wrongly is disabled here by HMA clients: it leaves
    # every worker's index (as a disabled bank's entries do) and can be enabled again.
    state = get_state(request)
    bank, entry = _entry(state, bank_name, content_id)
    enabled = None if body.disable_until_ts is None else body.disable_until_ts == 1
    note_set = "note" in body.model_fields_set

    def update() -> None:
        if enabled is not None:
            state.store.set_entry_enabled(bank_name, entry.content_id, enabled)
        if note_set:
            state.store.set_entry_note(bank_name, entry.content_id, body.note or None)

    detail: dict[str, Any] = {"content_id": entry.content_id}
    if enabled is not None:
        detail["enabled"] = enabled
    if note_set:
        detail["note"] = "cleared" if not body.note else "set"
    if enabled is not None or note_set:
        state.audited_write(who, "entry.update", bank_name, update, **detail)
    bank, entry = _entry(state, bank_name, content_id)
    return json_response(content_dict(entry, bank, False, True))


@router.delete("/bank/{bank_name}/content/{content_id}", summary="HMA: remove a content item {deleted: n}")
def hma_content_delete(request: Request, who: CurateRole, bank_name: BankPath, content_id: ContentPath) -> Response:
    state = get_state(request)
    state.store.get_bank(bank_name)  # 404 for a missing bank
    entry = state.store.get_entry_by_id(bank_name, content_id)
    if entry is None:
        return json_response({"deleted": 0})

    def remove() -> bool:
        return state.store.remove_entry(bank_name, entry.content_id)

    removed = state.audited_write(who, "entry.remove", bank_name, remove, content_id=entry.content_id)
    return json_response({"deleted": int(removed)})


MAX_SAME_CONTENT = 1000  # contents of one bank under one content id (HMA adds, each its own)


def _new_content_id(state: ServiceState, bank_name: str, content_id: str) -> str:
    """HMA makes a new content for every add, also of a hash (or a content id) already in
    the bank: removing one of them leaves the others matching. The first is ``content_id``,
    the next ``content_id#2``, ``#3`` ... (an add merged into the first made removing "the
    second" remove the only one: the hash stopped matching)."""
    if state.store.get_entry(bank_name, content_id) is None:
        return content_id
    for n in range(2, MAX_SAME_CONTENT + 1):
        if state.store.get_entry(bank_name, candidate := f"{content_id}#{n}") is None:
            return candidate
    raise InvalidBankInput(f"bank {bank_name!r} already holds {MAX_SAME_CONTENT} contents of {content_id[:80]!r}",
                           hint="remove some, or add a note to one of them")


def _add(state: ServiceState, who: Principal, bank_name: str, content_id: str, signals: dict[str, str],
         note: str | None, meta: dict[str, Any] | None, stored: dict[str, list[str]] | None = None) -> Response:
    """Add a new entry (see _new_content_id); ``signals`` are answered (HMA's one string
    per type), ``stored`` (when a video's vPDQ is one value per frame hash) are written
    instead."""
    written: dict[str, Any] = stored if stored is not None else signals
    content_id = _new_content_id(state, bank_name, content_id)

    def add() -> Entry:
        check_signal_cap(state, bank_name, content_id, sum(len(v) if isinstance(v, list) else 1
                                                            for v in written.values()))
        state.store.add_entry(bank_name, content_id, written, note=note, source=f"api:{who.actor}"[:4096],
                              meta=meta)
        entry = state.store.get_entry(bank_name, content_id)
        assert entry is not None  # written just now, in this transaction
        return entry

    entry = state.audited_write(who, "entry.add", bank_name, add, content_id=content_id)
    return json_response({"id": entry.id, "signals": signals})


def _video_entry(features: Any, content_id: str, extra: list[tuple[str, str]],
                 meta: dict[str, Any] | None, trimmed: Any = (),
                 displayed: Any = ()) -> tuple[dict[str, list[str]], dict[str, Any] | None]:
    """(signals to store, meta) of a banked video: one vpdq value per kept frame hash and the
    whole hash in the meta (banks/videos.py), as ``bank add --video`` writes it."""
    from ..banks.videos import bank_record

    rec = bank_record(features, content_id, extra=extra, trimmed=trimmed, displayed=displayed)
    stored: dict[str, list[str]] = {}
    for t, v in rec.signals:
        stored.setdefault(t, []).append(v)
    return stored, ({**(meta or {}), **(rec.meta or {})} or None)


def _metadata(raw: str | None) -> HmaMetadata | None:
    if raw is None:
        return None
    try:
        return HmaMetadata.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        reason = "not JSON" if isinstance(exc, orjson.JSONDecodeError) else \
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise InputError("metadata", f"invalid metadata: {reason}",
                         hint="a JSON object with content_id, content_uri and json, all optional") from None


async def no_url(
    url: Annotated[str | None, Query(max_length=4096, description="refused: assay never fetches URLs")] = None,
) -> None:
    # A dependency, so that a URL-only request hears why before "photo is missing".
    refuse_url(url)


_CONTENT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {
        **UPLOAD_BODY["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"],
        "metadata": {"type": "string", "maxLength": 70_000, "description": "JSON: content_id, content_uri, json"},
        "note": {"type": "string", "maxLength": 4096},
    }}}}}}


@router.post("/bank/{bank_name}/content",
             summary="HMA: add one uploaded photo or video to a bank {id, signals} (content id: metadata's, "
                     "else the file's SHA-256)", openapi_extra=_CONTENT_BODY)
async def hma_content_add(
    request: Request, who: CurateRole, bank_name: BankPath,
    _: Annotated[None, Depends(no_url)],
    metadata: Annotated[str | None, Form(max_length=70_000, description="JSON: content_id, content_uri, json",
                                         include_in_schema=False)] = None,
    note: Annotated[str | None, Form(max_length=4096, include_in_schema=False)] = None,
    types: TypesParam = None,
) -> Response:
    from fastapi.concurrency import run_in_threadpool

    state = get_state(request)
    field, upload = await one_upload(request)
    wanted = photo_types(types, "video" if field == "video" else "image")
    md = _metadata(metadata)
    if note is not None:
        note = _text_field("note", note)
    await run_in_threadpool(state.store.get_bank, bank_name)  # 404 before hashing
    meta = None
    if md is not None and (md.content_uri is not None or md.json_ is not None):
        meta = {k: v for k, v in (("content_uri", md.content_uri), ("json", md.json_)) if v is not None}
    given = md.content_id if md is not None and md.content_id else None
    if field == "video":
        from .routes_match import hash_video_upload

        v = await hash_video_upload(request, state, upload)
        signals = {name: video_signal_of(v, name) for name in wanted}
        content_id = given or v.sha256
        extra = [("video_md5", v.md5)] if "video_md5" in wanted else []
        stored, meta = _video_entry(v.vpdq if "vpdq" in wanted else [], content_id, extra, meta,
                                    v.trimmed if "vpdq" in wanted else [], v.displayed if "vpdq" in wanted else [])
        return await run_in_threadpool(_add, state, who, bank_name, content_id, signals, note or None, meta, stored)
    h = await hash_photo(request, state, upload)
    if "pdq" in wanted and h.quality < LOW_QUALITY:
        # HMA refuses it too (its hasher gives no PDQ below quality 50): banked, such a hash
        # would match unrelated flat pictures looked up by their hash (GET /m/lookup).
        err = InvalidSignal("pdq", h.pdq, f"PDQ quality {h.quality} < {LOW_QUALITY}: too little detail to bank "
                                         "(a flat or nearly blank picture); not added")
        err.hint = "bank its exact hashes instead (types=md5,sha256)"
        raise err
    signals = {name: signal_of(h, name) for name in wanted}
    content_id = given or h.sha256
    return await run_in_threadpool(_add, state, who, bank_name, content_id, signals, note or None, meta)


def _text_field(name: str, value: str) -> str:
    class _T(BaseModel):
        v: Text

    try:
        return _T(v=value).v
    except ValidationError:
        raise InputError(name, "control characters other than tab and newline are not allowed") from None


SignalBody = Annotated[dict[Line, Line], Field(min_length=1, max_length=16, json_schema_extra=LINE_KEYS)]


@router.post("/bank/{bank_name}/signal",
             summary="HMA: add signals to a bank {type: value, note?} -> {id, signals} (content id: the first value)")
def hma_signal_add(request: Request, who: CurateRole, bank_name: BankPath, body: SignalBody) -> Response:
    state = get_state(request)
    data = dict(body)
    note = data.pop("note", None)
    if not data:
        raise InvalidBankInput("no signals given", hint='e.g. {"pdq": "<64 hex digits>"}')
    signals: dict[str, str] = {}
    vpdq = None
    for name, value in data.items():
        if signal_types.get(name).name == "vpdq":
            # a whole video: python-threatexchange's signal string (or Meta's text lines)
            from ..media.video import parse_signal, to_threatexchange_json

            vpdq = parse_signal(value, "vpdq")
            signals["vpdq"] = to_threatexchange_json(vpdq)
            continue
        canonical_name, canonical = signal_types.normalize(name, value)
        signals[canonical_name] = canonical
    state.store.get_bank(bank_name)  # 404 before anything else
    note = _text_field("note", note) if note else None
    if vpdq is not None:
        import hashlib

        # the same vPDQ added again is another content (_new_content_id)
        content_id = signals.get("video_md5") or \
            "vpdq-" + hashlib.sha256(signals["vpdq"].encode()).hexdigest()[:32]
        stored, meta = _video_entry(vpdq, content_id, [(t, v) for t, v in signals.items() if t != "vpdq"], None)
        return _add(state, who, bank_name, content_id, signals, note, meta, stored)
    # the content id is the first value; the same value added again is another content
    content_id = next(iter(signals.values()))
    return _add(state, who, bank_name, content_id, signals, note, None)


@router.get("/signal_type", summary="HMA: signal types [{name, enabled_ratio}]")
def hma_signal_types(_: MatchRole) -> Response:
    return json_response([{"name": st.name, "enabled_ratio": 1.0} for st in signal_types.all_types()])


@router.get("/content_type", summary="HMA: content types [{name, enabled}]")
def hma_content_types(_: MatchRole) -> Response:
    return json_response([{"name": "photo", "enabled": True}, {"name": "video", "enabled": True}])
