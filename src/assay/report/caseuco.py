"""CASE/UCO export of a scan report (``assay report REPORT.jsonl --format case -o case.jsonld``).

CASE (Cyber-investigation Analysis Standard Expression) on UCO 1.x, as JSON-LD:
- every file of the report is an ``observable:File`` with an ``observable:FileFacet``
  (name, path, size, modification time) and an ``observable:ContentDataFacet`` whose
  ``types:Hash`` nodes carry its MD5, SHA-1 and SHA-256;
- the scan is an ``investigation:InvestigativeAction`` (start and end time, the files as
  its objects, the report file and the findings as its results) whose instrument is a
  ``tool:Tool`` (assay and its version) and whose performer is the user who ran it;
  with ``--case-id`` an ``investigation:Investigation`` holds the action;
- findings (bank matches with their review decisions, AI-generation evidence, model
  safety and lineage, case links, errors) are ``core:Annotation`` nodes on the files
  they concern, each with a plain statement and a tag.

Node ids are UUIDs derived from the scan id and the record (the same report gives the
same graph); the graph is written node by node, so a report of any size is exported in
bounded memory.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .. import __version__
from ..review.ids import file_key, match_id
from .jsonl import escape_surrogates
from .reader import Report
from .textspans import pct, span_rows, text_part

CONTEXT = {
    "kb": "urn:assay:",
    "core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
    "observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "vocabulary": "https://ontology.unifiedcyberontology.org/uco/vocabulary/",
    "investigation": "https://ontology.caseontology.org/case/investigation/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
# UCO's HashNameVocab names of the custody hashes every file record carries.
HASHES = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}


def _dt(value: object) -> dict[str, str] | None:
    return {"@type": "xsd:dateTime", "@value": str(value)} if value else None


def _int(value: int) -> dict[str, Any]:
    return {"@type": "xsd:integer", "@value": value}


def _ref(iri: str) -> dict[str, str]:
    return {"@id": iri}


class _Ids:
    def __init__(self, scan_id: str | None, report_sha256: str) -> None:
        self.ns = uuid.uuid5(uuid.NAMESPACE_URL, f"assay:scan:{scan_id or report_sha256}")

    def __call__(self, kind: str, *parts: object) -> str:
        name = kind + chr(0) + chr(0).join(map(str, parts))
        # a file name that is not UTF-8 (lone surrogates) counts by its \udcXX escapes
        return f"kb:{kind}-{uuid.uuid5(self.ns, name.encode('utf-8', 'backslashreplace').decode())}"


class _Graph:
    """Writes ``{"@context": ..., "@graph": [node, ...]}`` a node at a time."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.first = True
        fh.write('{"@context":' + json.dumps(CONTEXT) + ',"@graph":[\n')

    def node(self, obj: dict[str, Any]) -> None:
        clean = {k: v for k, v in obj.items() if v not in (None, [], "")}
        self.fh.write(("" if self.first else ",\n") + escape_surrogates(json.dumps(clean, ensure_ascii=False)))
        self.first = False

    def close(self) -> None:
        self.fh.write("\n]}\n")


def _annotation(g: _Graph, ids: _Ids, tag: str, about: list[str], statement: str, *key: object) -> str:
    iri = ids("annotation", tag, *about, *key, statement)
    g.node({"@id": iri, "@type": "core:Annotation", "core:tag": tag, "core:statement": statement,
            "core:object": [_ref(x) for x in about]})
    return iri


def _file_node(g: _Graph, ids: _Ids, rec: Mapping[str, Any]) -> str:
    path = str(rec.get("path"))
    iri = ids("file", path)
    hashes = []
    for s in rec.get("signals") or ():
        if isinstance(s, Mapping) and s.get("type") in HASHES and s.get("mode") is None:
            hashes.append({"@id": ids("hash", path, s["type"]), "@type": "types:Hash",
                           "types:hashMethod": HASHES[s["type"]],
                           "types:hashValue": {"@type": "xsd:hexBinary", "@value": str(s.get("value")).upper()}})
    times = rec.get("times") if isinstance(rec.get("times"), Mapping) else {}
    size = rec.get("size") if isinstance(rec.get("size"), int) else None
    mtime = (times or {}).get("mtime")
    # a zip member's stored time has no zone: not an xsd:dateTime a court can place
    facet = {"@id": ids("file-facet", path), "@type": "observable:FileFacet",
             "observable:fileName": os.path.basename(path.rsplit("!/", 1)[-1]) or path,
             "observable:filePath": path,
             "observable:sizeInBytes": _int(size) if size is not None else None,
             "observable:modifiedTime": _dt(mtime) if mtime and ("+" in mtime or mtime.endswith("Z")) else None}
    facets = [facet]
    if hashes:
        facets.append({"@id": ids("content-facet", path), "@type": "observable:ContentDataFacet",
                       "observable:hash": hashes,
                       "observable:sizeInBytes": _int(size) if size is not None else None})
    g.node({"@id": iri, "@type": "observable:File", "core:hasFacet": facets})
    return iri


def _findings(g: _Graph, ids: _Ids, rec: Mapping[str, Any], iri: str, scan_id: str | None,
              decisions: Mapping[str, Mapping[str, Any]] | None) -> Iterator[str]:
    key = file_key(rec, scan_id)
    for m in rec.get("matches") or ():
        if not isinstance(m, Mapping):
            continue
        rid = match_id(key, m)
        text = (f"matched bank {m.get('bank')!r} entry {m.get('content_id')!r} by {m.get('signal_type')} "
                f"{m.get('value')} (strength {m.get('strength')}, distance {m.get('distance', 0)}; record id {rid})")
        d = (decisions or {}).get(rid)
        if d:
            text += (f"; review: {d.get('decision')} by {d.get('reviewer')} at {d.get('decided_at')}"
                     + (f": {d.get('note')}" if d.get("note") else ""))
        yield _annotation(g, ids, "assay:match", [iri], text, rid)
    prov = rec.get("provenance") if isinstance(rec.get("provenance"), Mapping) else None
    if prov:
        ev = [e for e in prov.get("evidence") or () if isinstance(e, Mapping)]
        if str(prov.get("verdict") or "").lower().startswith("ai-") or any(
                str(e.get("claim", "")).startswith("ai-") for e in ev):
            yield _annotation(g, ids, "assay:provenance-verdict", [iri], f"verdict: {prov.get('verdict')}")
            for i, e in enumerate(ev):
                yield _annotation(g, ids, "assay:provenance-evidence", [iri],
                                  f"[{e.get('strength')}] {e.get('claim')} ({e.get('source')}): {e.get('summary')}", i)
    model = rec.get("model") if isinstance(rec.get("model"), Mapping) else None
    if model:
        safety = model.get("safety") if isinstance(model.get("safety"), Mapping) else None
        if safety:
            text = f"model file safety: {safety.get('verdict')}"
            globs = sorted({str(x) for f in safety.get("findings") or () if isinstance(f, Mapping)
                            for x in f.get("globals") or []})
            if globs:
                text += f" (imports: {', '.join(globs[:50])})"
            yield _annotation(g, ids, "assay:model-safety", [iri], text)
        for i, line in enumerate(model.get("lineage_explanations") or []):
            yield _annotation(g, ids, "assay:model-lineage", [iri], str(line), i)
    for lk in rec.get("case_links") or ():
        if isinstance(lk, Mapping) and lk.get("strength") == "lineage":
            # model-to-model (scan --model-links): once per pair, from the containing side
            rel, other = str(lk.get("role") or ""), str(lk.get("path"))
            if rel.endswith("-into") or (rel in ("same-weights", "derived", "related") and other < str(rec.get("path"))):
                continue
            yield _annotation(g, ids, "assay:model-link", [iri, ids("file", other)],
                              f"model file {rec.get('path')} {rel} {other}"
                              + (f" ({lk.get('value')})" if lk.get("value") not in (None, "", rel) else "")
                              + (f": {lk.get('explanation')}" if lk.get("explanation") else ""))
    if rec.get("kind") != "model":
        for lk in rec.get("case_links") or ():
            if isinstance(lk, Mapping):
                other = ids("file", str(lk.get("path")))
                yield _annotation(g, ids, "assay:case-link", [iri, other],
                                  f"image {rec.get('path')} names {lk.get('role') or 'model'} "
                                  f"{lk.get('named_as') or ''} by {lk.get('hash_type')} {lk.get('value')} "
                                  f"({lk.get('strength')}), which model file {lk.get('path')} has")
    tp = text_part("file", rec)
    for i, r in enumerate(span_rows(*tp) if tp else ()):
        sim = f", similarity {r.similarity:.2f}" if r.similarity is not None and r.kind != "verbatim" else ""
        if r.changed_words:
            sim += f", {r.changed_words} changed words"
        yield _annotation(g, ids, "assay:text-reproduction", [iri],
                          f"{r.kind} passage of {r.length} characters at code points {r.start}-{r.end} "
                          f"(end exclusive) of {r.path} is in work {r.work!r} ({r.title}) at code points "
                          f"{r.work_start}-{r.work_end}{sim}; {pct(r.work_coverage)} of the file's "
                          f"{r.output_chars} characters are in this work's passages, {pct(r.coverage)} in "
                          f"passages of any indexed work", i)
    for i, e in enumerate(rec.get("errors") or ()):
        if isinstance(e, Mapping):
            yield _annotation(g, ids, "assay:error", [iri], f"{e.get('stage')} {e.get('code')}: {e.get('message')}", i)


def write_case(report_path: str | Path, out: str | Path, *, decisions: Mapping[str, Mapping[str, Any]] | None,
               case_id: str | None = None, examiner: str | None = None, title: str | None = None) -> dict[str, Any]:
    report = Report(report_path)
    with report.fields():
        return _write(report, out, decisions, case_id, examiner, title)


def _write(report: Report, out: str | Path, decisions: Mapping[str, Mapping[str, Any]] | None,
           case_id: str | None, examiner: str | None, title: str | None) -> dict[str, Any]:
    target = Path(out)
    tmp = target.with_name(target.name + ".partial")
    counts = {"matches": 0, "annotations": 0}
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            g = _Graph(fh)
            files: list[str] = []
            results: list[str] = []
            header: Mapping[str, Any] = {}
            ids: _Ids | None = None
            others: list[Mapping[str, Any]] = []
            for kind, obj in report.lines():
                if kind == "header":
                    header = obj
                if ids is None:  # the header is the first line when there is one
                    ids = _Ids(header.get("scan_id"), str(report.path))
                if kind == "file":
                    iri = _file_node(g, ids, obj)
                    files.append(iri)
                    for a in _findings(g, ids, obj, iri, header.get("scan_id"), decisions):
                        results.append(a)
                    counts["matches"] += len(obj.get("matches") or [])
                elif kind == "other":  # e.g. assay.text/1: kept whole, as a statement on the scan
                    others.append(obj)
            if ids is None:
                ids = _Ids(None, str(report.path))
            action = ids("action", header.get("scan_id") or report.sha256)
            for i, obj in enumerate(others):
                results.append(_annotation(g, ids, str(obj.get("schema")), [action],
                                           json.dumps(obj, ensure_ascii=False), i))
            text_records = len(others)
            counts["annotations"] = len(results)
            tool = ids("tool", "assay", header.get("version") or __version__)
            g.node({"@id": tool, "@type": "tool:Tool", "core:name": "assay",
                    "tool:version": str(header.get("version") or __version__), "tool:toolType": "forensic analysis"})
            performer = None
            if header.get("user"):
                performer = ids("identity", header["user"], header.get("host"))
                g.node({"@id": performer, "@type": "identity:Identity",
                        "core:name": f"{header['user']}@{header.get('host')}"})
            report_iri = ids("report", report.sha256)
            g.node({"@id": report_iri, "@type": "observable:File", "core:hasFacet": [
                {"@id": ids("report-facet", report.sha256), "@type": "observable:FileFacet",
                 "observable:fileName": report.path.name, "observable:filePath": str(report.path),
                 "observable:sizeInBytes": _int(report.path.stat().st_size)},
                {"@id": ids("report-content", report.sha256), "@type": "observable:ContentDataFacet",
                 "observable:hash": [{"@id": ids("report-hash", report.sha256), "@type": "types:Hash",
                                      "types:hashMethod": "SHA256",
                                      "types:hashValue": {"@type": "xsd:hexBinary",
                                                          "@value": str(report.sha256).upper()}}]}]})
            side = report.sidecar
            results.append(_annotation(g, ids, "assay:integrity", [report_iri], side.text if side else "not checked"))
            argv = " ".join(str(a) for a in header.get("argv") or [])
            g.node({"@id": action, "@type": "investigation:InvestigativeAction",
                    "core:name": f"assay scan {header.get('scan_id') or ''}".strip(),
                    "core:description": argv or None,
                    "action:startTime": _dt(header.get("started_at")),
                    "action:endTime": _dt((report.summary or {}).get("ended_at")),
                    "action:instrument": _ref(tool),
                    "action:performer": _ref(performer) if performer else None,
                    "action:object": [_ref(f) for f in files],
                    "action:result": [_ref(report_iri), *(_ref(r) for r in results)]})
            if case_id:
                g.node({"@id": ids("investigation", case_id), "@type": "investigation:Investigation",
                        "core:name": case_id, "core:description": title or None,
                        "core:object": [_ref(action)]})
                if examiner:
                    results.append(_annotation(g, ids, "assay:examiner", [action], f"examiner: {examiner}"))
            g.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"files": report.files, "matches": counts["matches"], "annotations": counts["annotations"],
            "text_records": text_records, "integrity": report.sidecar.status if report.sidecar else None,
            "report_sha256": report.sha256, "bytes": target.stat().st_size}
