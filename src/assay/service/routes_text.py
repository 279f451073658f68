"""/v1/text: passages of indexed works in a text (role ``match``), and the text index's
works (list and add: role ``curate``). The index is the folder given to ``assay serve
--text-index``; every worker maps it, and reopens it when another worker (or `assay text
add`) has added shards, so an add is seen by every worker at its next request."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ..errors import IndexUnavailable, NotFound
from .auth import Principal
from .routes_match import json_response
from .state import get_state, role
from .validation import STRICT, Line

router = APIRouter(prefix="/v1/text", tags=["text"])
MatchRole = Annotated[Principal, Depends(role("match"))]
CurateRole = Annotated[Principal, Depends(role("curate"))]
MAX_TEXT_CHARS = 1_000_000


class TextCheckRequest(BaseModel):
    model_config = STRICT
    text: str = Field(max_length=MAX_TEXT_CHARS, description="the text to check (e.g. a model's output)")
    name: Line | None = Field(default=None, max_length=1024, description="echoed back as `path`")
    min_chars: int = Field(default=50, ge=10, le=100_000, description="shortest span reported (normalised characters)")
    near: bool = Field(default=True, description="join exact spans across small edits into near-verbatim passages")


class TextSource(BaseModel):
    work: str
    start: int = Field(description="code points of the work's original text")
    end: int


class TextSpan(BaseModel):
    start: int = Field(description="code points of the checked text")
    end: int
    kind: str = Field(description="exact | near")
    similarity: float
    changed_words: int
    sources: list[TextSource]


class TextWorkCoverage(BaseModel):
    work: str
    title: str
    chars: int
    coverage: float


class TextCheckResponse(BaseModel):
    """assay.text/1 (docs/json.md)."""

    schema_: str = Field(alias="schema")
    path: str
    chars: int
    coverage: float
    coverage_exact: float
    spans: list[TextSpan]
    works: list[TextWorkCoverage]


class TextWorkIn(BaseModel):
    model_config = STRICT
    id: Line = Field(min_length=1, max_length=256)
    title: Line | None = Field(default=None, max_length=1024)
    text: str = Field(min_length=1, max_length=64 * 1024**2)


class TextAddRequest(BaseModel):
    model_config = STRICT
    works: list[TextWorkIn] = Field(min_length=1, max_length=1000)


class TextWork(BaseModel):
    work: str
    title: str
    sha256: str
    source: str
    format: str
    chars: int
    shard: str


class TextAddError(BaseModel):
    source: str
    error: str


class TextAddResponse(BaseModel):
    added: list[TextWork]
    shards: list[str]
    errors: list[TextAddError]


class TextWorksResponse(BaseModel):
    works: list[TextWork]


class _Holder:
    """This worker's open index, reopened when index.json changes."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.lock = threading.Lock()
        self.index: Any = None
        self.stamp: tuple[int, int] | None = None

    def get(self) -> Any:
        from ..text.index import TextIndex

        with unavailable_if_damaged():
            st = (self.folder / "index.json").stat()
            stamp = (st.st_mtime_ns, st.st_ino)
            with self.lock:
                if self.index is None or stamp != self.stamp:
                    index = TextIndex.open(self.folder)
                    index.works()  # every shard opened and checked here, once
                    self.index, self.stamp = index, stamp
                return self.index


@contextlib.contextmanager
def unavailable_if_damaged() -> Iterator[None]:
    """A missing or damaged index is the operator's problem: 503 index-unavailable, the
    message (which names the server's files) for admin keys and the log only."""
    from ..text.index import IndexError_

    try:
        yield
    except IndexError_ as exc:
        raise IndexUnavailable(exc.message, hint=exc.hint) from None
    except OSError as exc:
        raise IndexUnavailable(f"{exc.filename or 'text index'}: {exc.strerror or exc}") from None


_HOLDERS: dict[str, _Holder] = {}


def _holder(request: Request) -> _Holder:
    folder = get_state(request).settings.text_index
    if not folder:
        raise NotFound("this service has no text index", hint="start it with `assay serve --text-index DIR`")
    h = _HOLDERS.get(folder)
    if h is None:
        h = _HOLDERS[folder] = _Holder(folder)
    return h


@router.post("/check", response_model=TextCheckResponse, summary="Passages of indexed works in a text",
             response_model_by_alias=True)
async def text_check(body: TextCheckRequest, request: Request, principal: MatchRole) -> Response:
    """Every maximal span of at least ``min_chars`` normalised characters shared with an
    indexed work (each place it occurs), near-verbatim passages, and coverage: the
    ``assay.text/1`` object of `assay text check --json`."""
    from ..text.match import check

    holder = _holder(request)

    def run() -> dict[str, Any]:
        index = holder.get()
        with unavailable_if_damaged():  # text.npy or sa.npy damage meets a query here
            return check(index, body.text, path=body.name or "", min_chars=body.min_chars,
                         near=body.near).to_json()

    return json_response(await run_in_threadpool(run))


@router.get("/works", response_model=TextWorksResponse, summary="The works in the text index")
async def text_works(request: Request, principal: CurateRole) -> Response:
    holder = _holder(request)
    works = await run_in_threadpool(lambda: holder.get().works())
    return json_response({"works": [w.public() for w in works]})


@router.post("/works", response_model=TextAddResponse, summary="Add works to the text index")
async def text_add(body: TextAddRequest, request: Request, principal: CurateRole) -> Response:
    """Works (id, title, text) go into a new shard; an id already in the index is an error
    record and the rest is added. Audited as ``text.add``."""
    import hashlib

    from ..text.index import TextIndex
    from ..text.ingest import Work

    holder = _holder(request)
    state = get_state(request)
    works = [Work(w.id, w.title or w.id, w.text, hashlib.sha256(w.text.encode()).hexdigest(),
                  f"api:{principal.actor}", "api") for w in body.works]

    def run() -> Any:
        with unavailable_if_damaged():
            return TextIndex.open(holder.folder).add(works)

    res = await run_in_threadpool(run)
    state.audit_alone(principal, "text.add", None, added=[w.id for w in res.added], shards=res.shards,
                      errors=len(res.errors))
    return json_response({"added": [w.public() for w in res.added], "shards": res.shards, "errors": res.errors})
