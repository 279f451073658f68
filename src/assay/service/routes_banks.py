"""/v1 bank curation (role ``curate``): banks, entries, bulk imports and their jobs.

Every write and its audit row commit in one transaction (both or neither), then the
write is applied to this worker's index, so it is matchable at once here (other
workers follow within ``refresh_interval``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ..banks.store import UNSET, Bank, Entry
from ..errors import InvalidBankInput, NotFound
from .auth import Principal
from .jobs import Job
from .routes_match import json_response
from .state import ServiceState, get_state, role, spool_body
from .validation import LINE_KEYS, STRICT, BankName, JsonObject, Line, Text, Threshold

router = APIRouter(prefix="/v1", tags=["banks"])
CurateRole = Annotated[Principal, Depends(role("curate"))]


class BankCreate(BaseModel):
    model_config = STRICT
    name: BankName = Field(description="letters, digits, '_', '.', '-'; first a letter or digit")
    description: Text = Field(default="", max_length=4096)
    pdq_threshold: Threshold | None = None


class BankUpdate(BaseModel):
    model_config = STRICT
    description: Text | None = Field(default=None, max_length=4096)
    pdq_threshold: Threshold | None = Field(default=None, description="null clears it (if sent)")
    enabled: bool | None = None


class BankOut(BaseModel):
    name: str
    description: str
    enabled: bool
    pdq_threshold: int | None
    created_at: str
    updated_at: str
    entries: int | None = None
    signals: dict[str, int] | None = None


class BankList(BaseModel):
    banks: list[BankOut]


class EntryIn(BaseModel):
    model_config = STRICT
    content_id: Line = Field(min_length=1, max_length=512)
    signals: dict[Line, Line | list[Line]] = Field(
        max_length=64, json_schema_extra=LINE_KEYS, description="signal type -> value or list of values "
        "(at most max_entry_signals values per entry, default 256)")
    note: Text | None = Field(default=None, max_length=4096)
    meta: JsonObject | None = None


class EntryOut(BaseModel):
    bank: str
    content_id: str
    note: str | None
    enabled: bool
    added_at: str
    signals: dict[str, list[str]]
    meta: dict[str, Any] | None = None


class EntryPage(BaseModel):
    entries: list[EntryOut]
    next_offset: int | None


class AddResult(BaseModel):
    added_entries: int
    added_signals: int
    duplicates: int
    total: int


class JobOut(BaseModel):
    id: str
    kind: str
    bank: str
    status: Literal["queued", "running", "done", "failed"]
    created_at: str
    updated_at: str
    owner: str
    bytes: int
    records: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None


def bank_dict(b: Bank, stats: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": b.name, "description": b.description, "enabled": b.enabled,
        "pdq_threshold": b.pdq_threshold, "created_at": b.created_at.isoformat(),
        "updated_at": b.updated_at.isoformat(),
    }
    if stats is not None:
        out["entries"] = stats.entries
        out["signals"] = stats.signals
    return out


def entry_dict(e: Entry) -> dict[str, Any]:
    return {"bank": e.bank, "content_id": e.content_id, "note": e.note, "enabled": e.enabled,
            "added_at": e.added_at.isoformat(), "signals": {k: list(v) for k, v in e.signals.items()},
            "meta": e.meta}


@router.post("/banks", status_code=201, response_model=BankOut, summary="Create a bank")
def create_bank(request: Request, who: CurateRole, body: BankCreate) -> Response:
    state = get_state(request)
    bank = state.audited_write(
        who, "bank.create", body.name,
        lambda: state.store.create_bank(body.name, body.description, body.pdq_threshold),
        description=body.description, pdq_threshold=body.pdq_threshold)
    return json_response(bank_dict(bank), 201)


@router.get("/banks", response_model=BankList, summary="List banks")
def list_banks(request: Request, _: CurateRole) -> Response:
    state = get_state(request)
    return json_response({"banks": [bank_dict(b) for b in state.store.list_banks()]})


@router.get("/banks/{name}", response_model=BankOut, summary="A bank with its counts")
def get_bank(request: Request, _: CurateRole, name: str) -> Response:
    state = get_state(request)
    bank = state.store.get_bank(name)
    return json_response(bank_dict(bank, state.store.stats(name)))


@router.patch("/banks/{name}", response_model=BankOut, summary="Change description, threshold or enabled state")
def update_bank(request: Request, who: CurateRole, name: str, body: BankUpdate) -> Response:
    state = get_state(request)
    sent = body.model_fields_set
    threshold: Any = body.pdq_threshold if "pdq_threshold" in sent else UNSET

    def apply() -> Bank:
        if body.enabled is not None:
            state.store.set_bank_enabled(name, body.enabled)
        return state.store.update_bank(name, description=body.description, pdq_threshold=threshold)

    # Both changes and the audit row: one transaction.
    bank = state.audited_write(who, "bank.update", name, apply, **{k: getattr(body, k) for k in sorted(sent)})
    return json_response(bank_dict(bank))


def _set_enabled(request: Request, who: Principal, name: str, enabled: bool) -> Response:
    state = get_state(request)

    def apply() -> Bank:
        state.store.set_bank_enabled(name, enabled)
        return state.store.get_bank(name)

    bank = state.audited_write(who, "bank.enable" if enabled else "bank.disable", name, apply)
    return json_response(bank_dict(bank))


@router.post("/banks/{name}/enable", response_model=BankOut, summary="Enable a bank for matching")
def enable_bank(request: Request, who: CurateRole, name: str) -> Response:
    return _set_enabled(request, who, name, True)


@router.post("/banks/{name}/disable", response_model=BankOut, summary="Disable a bank (kept, not matched)")
def disable_bank(request: Request, who: CurateRole, name: str) -> Response:
    return _set_enabled(request, who, name, False)


@router.delete("/banks/{name}", status_code=204, summary="Delete a bank and its entries")
def delete_bank(request: Request, who: CurateRole, name: str) -> Response:
    state = get_state(request)
    state.audited_write(who, "bank.delete", name, lambda: state.store.delete_bank(name))
    return Response(status_code=204)


@router.get("/banks/{name}/entries", response_model=EntryPage, summary="Entries of a bank, by content id, a page at a time")
def list_entries(
    request: Request, _: CurateRole, name: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
) -> Response:
    state = get_state(request)
    state.store.get_bank(name)  # 404 for a missing bank rather than an empty page
    entries = list(state.store.iter_entries(name, limit=limit + 1, offset=offset))
    more = len(entries) > limit
    return json_response({"entries": [entry_dict(e) for e in entries[:limit]],
                          "next_offset": offset + limit if more else None})


def count_values(signals: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, list) else 1 for v in signals.values())


def check_signal_cap(state: ServiceState, bank: str, content_id: str, new: int) -> None:
    """Refuse an entry that would hold more than ``max_entry_signals`` values. Run
    inside the write's transaction: writers take turns, so the count is exact."""
    cap = state.settings.max_entry_signals
    if new > cap:
        raise InvalidBankInput(f"entry {content_id!r} would have {new} signals; the limit is {cap} per entry")
    entry = state.store.get_entry(bank, content_id)
    have = sum(len(v) for v in entry.signals.values()) if entry is not None else 0
    if have + new > cap:
        raise InvalidBankInput(f"entry {content_id!r} has {have} signals; {new} more would exceed "
                               f"the limit of {cap} per entry")


@router.post("/banks/{name}/entries", status_code=201, response_model=AddResult,
             summary="Add an entry (or new signals to an existing one)")
def add_entry(request: Request, who: CurateRole, name: str, body: EntryIn) -> Response:
    state = get_state(request)

    def add() -> Any:
        check_signal_cap(state, name, body.content_id, count_values(body.signals))
        return state.store.add_entry(name, body.content_id, body.signals, note=body.note,
                                     source=f"api:{who.actor}"[:4096], meta=body.meta)

    res = state.audited_write(who, "entry.add", name, add,
                              lambda r: {"added_signals": r.added_signals}, content_id=body.content_id)
    return json_response({"added_entries": res.added_entries, "added_signals": res.added_signals,
                          "duplicates": res.duplicates, "total": res.total}, 201)


@router.get("/banks/{name}/entries/{content_id:path}", response_model=EntryOut, summary="One entry")
def get_entry(request: Request, _: CurateRole, name: str, content_id: str) -> Response:
    state = get_state(request)
    entry = state.store.get_entry(name, content_id)
    if entry is None:
        raise NotFound(f"bank {name!r} has no entry {content_id!r}")
    return json_response(entry_dict(entry))


@router.delete("/banks/{name}/entries/{content_id:path}", status_code=204, summary="Remove an entry")
def remove_entry(request: Request, who: CurateRole, name: str, content_id: str) -> Response:
    state = get_state(request)

    def remove() -> None:
        if not state.store.remove_entry(name, content_id):
            raise NotFound(f"bank {name!r} has no entry {content_id!r}")  # nothing to audit

    state.audited_write(who, "entry.remove", name, remove, content_id=content_id)
    return Response(status_code=204)


@router.post(
    "/banks/{name}/import", status_code=202, response_model=JobOut,
    summary="Bulk import: the body is a plain list of hashes, CSV or JSON Lines (streamed)",
    description="All or nothing, in one transaction; idempotent. Poll the returned job "
                "(Location header) for progress and the result.",
)
async def import_entries(
    request: Request, who: CurateRole, name: str,
    format: Annotated[Literal["list", "csv", "jsonl"] | None, Query(description="default: detected")] = None,
    signal_type: Annotated[str, Query(max_length=32, description="type of values that do not name one")] = "pdq",
) -> Response:
    from .. import signals as signal_types

    state = get_state(request)
    signal_types.get(signal_type)
    await run_in_threadpool(state.store.get_bank, name)  # 404 before reading a large body
    path, size = await spool_body(request, state, state.settings.max_import_bytes, ".import")
    try:
        job = await run_in_threadpool(state.jobs.create, name, size, who.key_id)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    state.jobs.start_import(job, path, format, signal_type, f"api:{who.actor}:{job.id}", who.key_id, who.actor)
    resp = json_response(job_dict(job), 202)
    resp.headers["Location"] = f"/v1/jobs/{job.id}"
    return resp


def job_dict(job: Job) -> dict[str, Any]:
    return job.to_dict()


@router.get("/jobs/{job_id}", response_model=JobOut, summary="State of an import job")
def get_job(request: Request, _: CurateRole, job_id: Annotated[str, "job id"]) -> Response:
    state = get_state(request)
    if len(job_id) > 32 or not job_id.isalnum():
        raise NotFound(f"no job with id {job_id!r}")
    return json_response(job_dict(state.jobs.get(job_id)))
