"""Text reproduction rows for the case report, CSV and CASE/UCO exports: one row per
reproduced span of a checked text and per place in an indexed work where it occurs.

The rows come from the ``text`` part of file records (``assay scan --text-index``) or
from whole ``assay.text/1`` records. Offsets are Unicode code points of the ORIGINAL
texts, end exclusive: ``output[start:end]`` in the checked file and
``work[start:end]`` in the work as ingested, so a reader can open both at those places.
The passage itself is not copied into the report (records hold offsets, not content);
every value is untrusted and the renderers escape it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

KIND = {"exact": "verbatim", "near": "near-verbatim"}


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


@dataclass
class SpanRow:
    path: str
    output_chars: int | None
    coverage: float | None  # share of the output inside any span (all works)
    coverage_exact: float | None
    start: int | None  # code points of the output
    end: int | None
    kind: str  # "verbatim" | "near-verbatim" | the record's own word
    similarity: float | None
    changed_words: int | None
    work: str
    title: str
    work_start: int | None  # code points of the work's original text
    work_end: int | None
    work_coverage: float | None  # share of the output inside this work's spans

    @property
    def length(self) -> int | None:
        return self.end - self.start if self.start is not None and self.end is not None else None


def text_part(kind: str, obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """(path, assay.text/1-shaped result) of a report line, or None when it has none."""
    if kind == "file":
        t = obj.get("text")
        return (str(obj.get("path") or ""), t) if isinstance(t, Mapping) else None
    spans = obj.get("spans")
    if (kind == "other" and obj.get("schema") == "assay.text/1" and isinstance(spans, list)
            and all(isinstance(sp, Mapping) and isinstance(sp.get("sources"), list) for sp in spans)):
        return str(obj.get("path") or ""), obj
    return None  # a record of another shape is shown as it is, by the generic section


def span_rows(path: str, t: Mapping[str, Any]) -> Iterator[SpanRow]:
    """A row per span and source, in the record's order (output offsets)."""
    works = {str(w.get("work")): w for w in t.get("works") or () if isinstance(w, Mapping)}
    for sp in t.get("spans") or ():
        if not isinstance(sp, Mapping):
            continue
        sources = [s for s in sp.get("sources") or () if isinstance(s, Mapping)] or [{}]
        for src in sources:
            wid = "" if src.get("work") is None else str(src.get("work"))
            w = works.get(wid) or {}
            yield SpanRow(
                path=path, output_chars=_int(t.get("chars")), coverage=_num(t.get("coverage")),
                coverage_exact=_num(t.get("coverage_exact")), start=_int(sp.get("start")), end=_int(sp.get("end")),
                kind=KIND.get(str(sp.get("kind")), str(sp.get("kind") or "unknown")),
                similarity=_num(sp.get("similarity")), changed_words=_int(sp.get("changed_words")),
                work=wid, title="" if w.get("title") is None else str(w.get("title")),
                work_start=_int(src.get("start")), work_end=_int(src.get("end")),
                work_coverage=_num(w.get("coverage")))


def pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:.1f} %"


def offsets(a: int | None, b: int | None) -> str:
    return "" if a is None or b is None else f"{a:,}-{b:,}"
