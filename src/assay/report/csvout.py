"""CSV export of a scan report (``assay report REPORT.jsonl --format csv -o DIR``): one
file per table an examiner opens in a spreadsheet: case.csv (the case header and the
integrity check), matches.csv, ai_evidence.csv, models.csv, case_links.csv, errors.csv,
inventory.csv (and, when the report has them, text_spans.csv: a row per reproduced text
passage and place in an indexed work, offsets in code points of the original texts, end
exclusive; and text_findings.csv for other text records).

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some,
tab or carriage return) as a formula, and a file name or a prompt in a report is
attacker-controlled: every such text cell is written with a leading ``'`` (OWASP's
advice), so it shows as text. Numbers are written as numbers. UTF-8 with a byte-order
mark, which Excel needs to read UTF-8.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import AssayError
from ..review.ids import file_key, match_id
from .reader import Report, file_signals
from .textspans import span_rows, text_part

_FORMULA = ("=", "+", "-", "@", "\t", "\r")

TABLES: dict[str, list[str]] = {
    "case": ["field", "value"],
    "matches": ["record_id", "path", "bank", "content_id", "signal_type", "value", "distance", "strength",
                "query_variant", "note", "decision", "reviewer", "decided_at", "review_note", "file_sha256"],
    "ai_evidence": ["path", "verdict", "source", "claim", "strength", "summary", "facts_json"],
    "models": ["path", "format", "family", "variant", "kind", "safety", "safety_findings", "lineage",
               "sha256", "autov2", "autov3", "blake3"],
    "case_links": ["path", "linked_path", "role", "named_as", "hash_type", "value", "strength", "candidates"],
    "errors": ["path", "stage", "code", "message"],
    "inventory": ["path", "kind", "format", "size", "md5", "sha1", "sha256", "mtime", "ctime", "atime",
                  "times_source", "member_of", "matches", "known_good", "verdict", "errors"],
    "text_findings": ["schema", "path", "record_json"],
    "text_spans": ["path", "output_chars", "coverage", "coverage_exact", "start", "end", "length", "kind",
                   "similarity", "changed_words", "work", "title", "work_start", "work_end", "work_coverage"],
}
OPTIONAL = ("case", "text_findings", "text_spans")


def cell(value: Any) -> Any:
    """A value as a safe spreadsheet cell: numbers stay numbers; text that a spreadsheet
    would read as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    s = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + s if s.startswith(_FORMULA) else s


class _Out:
    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / f"{name}.csv"
        self.tmp = folder / f"{name}.csv.partial"
        # a file name that is not UTF-8 (lone surrogates) is written as its \udcXX escapes
        self.fh = open(self.tmp, "w", encoding="utf-8-sig", errors="backslashreplace",  # noqa: SIM115
                       newline="")  # (closed in close())
        self.w = csv.writer(self.fh)
        self.w.writerow(TABLES[name])
        self.rows = 0

    def row(self, values: list[Any]) -> None:
        self.w.writerow([cell(v) for v in values])
        self.rows += 1

    def close(self, keep: bool) -> None:
        self.fh.close()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_csv(report_path: str | Path, folder: str | Path, *, decisions: Mapping[str, Mapping[str, Any]] | None,
              overwrite: bool = False, title: str | None = None, case_id: str | None = None,
              examiner: str | None = None) -> dict[str, Any]:
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise AssayError(f"{folder}: is a file; CSV export writes a folder of files")
    folder.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        taken = [n for n in TABLES if (folder / f"{n}.csv").exists()]
        if taken:
            raise AssayError(f"{folder / (taken[0] + '.csv')}: already exists; not overwriting it",
                             hint="choose another folder or pass --overwrite")
    report = Report(report_path)
    with report.fields():
        return _write(report, folder, decisions, title, case_id, examiner)


def _write(report: Report, folder: Path, decisions: Mapping[str, Mapping[str, Any]] | None, title: str | None,
           case_id: str | None, examiner: str | None) -> dict[str, Any]:
    outs = {n: _Out(folder, n) for n in TABLES if n not in OPTIONAL}
    text: _Out | None = None
    spans: _Out | None = None
    checked = reproduced = 0
    ok = False
    counts = {"matches": 0, "ai": 0, "models": 0, "errors": 0, "reviewed": 0}
    try:
        scan_id: str | None = None
        for kind, obj in report.lines():
            if kind == "header":
                scan_id = obj.get("scan_id")
                continue
            tp = text_part(kind, obj) if kind in ("file", "other") else None
            if tp is not None:
                checked += 1
                if spans is None:
                    spans = _Out(folder, "text_spans")
                before = spans.rows
                for r in span_rows(*tp):
                    spans.row([r.path, r.output_chars, r.coverage, r.coverage_exact, r.start, r.end, r.length,
                               r.kind, r.similarity, r.changed_words, r.work, r.title, r.work_start, r.work_end,
                               r.work_coverage])
                reproduced += spans.rows > before
            if kind == "other" and tp is None:
                if text is None:
                    text = _Out(folder, "text_findings")
                text.row([obj.get("schema"), obj.get("path") or obj.get("source"), obj])
            elif kind == "file":
                _file(outs, obj, scan_id, decisions, counts)
        case = _Out(folder, "case")
        h = report.header or {}
        side = report.sidecar
        rows: list[tuple[str, Any]] = [
            ("title", title), ("case_id", case_id), ("examiner", examiner),
            ("report", str(report.path)), ("report_sha256", report.sha256),
            ("integrity", side.status if side else None), ("integrity_detail", side.text if side else None),
            ("tool", f"{h.get('tool', '')} {h.get('version', '')}".strip() or None),
            ("scan_id", h.get("scan_id")), ("started_at", h.get("started_at")),
            ("ended_at", (report.summary or {}).get("ended_at")), ("host", h.get("host")), ("user", h.get("user")),
            ("argv", " ".join(str(a) for a in h.get("argv") or []) or None), ("cwd", h.get("cwd")),
            ("inputs", "; ".join(str(x) for x in h.get("inputs_absolute") or h.get("inputs") or []) or None),
        ]
        for b in h.get("banks") or []:
            if isinstance(b, Mapping):
                rows.append((f"bank {b.get('name')}", f"{b.get('kind')}, {b.get('entries')} entries, "
                                                        f"snapshot {b.get('snapshot')}"))
        rows.append(("files", report.files))
        for k, v in rows:
            case.row([k, v])
        outs["case"] = case
        ok = True
    finally:
        for o in outs.values():
            o.close(ok)
        for extra in (text, spans):
            if extra is not None:
                extra.close(ok)
    written = [str(o.path) for o in outs.values()] + [str(x.path) for x in (text, spans) if x is not None]
    return {"files": report.files, "matches": counts["matches"], "reviewed": counts["reviewed"],
            "ai_evidence": counts["ai"], "model_files": counts["models"], "files_with_errors": counts["errors"],
            "text_records": text.rows if text is not None else 0,
            "text_checked": checked, "text_reproduced": reproduced, "text_span_rows": spans.rows if spans is not None else 0,
            "integrity": report.sidecar.status if report.sidecar else None, "report_sha256": report.sha256,
            "written": written}


def _file(outs: dict[str, _Out], rec: Mapping[str, Any], scan_id: str | None,
          decisions: Mapping[str, Mapping[str, Any]] | None, counts: dict[str, int]) -> None:
    path = rec.get("path")
    sig = file_signals(rec)
    matches = [m for m in rec.get("matches") or () if isinstance(m, Mapping)]
    key = file_key(rec, scan_id)
    for m in matches:
        rid = match_id(key, m)
        d = (decisions or {}).get(rid) or {}
        counts["matches"] += 1
        counts["reviewed"] += bool(d)
        outs["matches"].row([rid, path, m.get("bank"), m.get("content_id"), m.get("signal_type"), m.get("value"),
                             m.get("distance", 0), m.get("strength"), m.get("query_variant"), m.get("note"),
                             d.get("decision"), d.get("reviewer"), d.get("decided_at"), d.get("note"),
                             sig.get("sha256")])
    prov = rec.get("provenance") if isinstance(rec.get("provenance"), Mapping) else None
    verdict = (prov or {}).get("verdict")
    if prov:
        ev = [e for e in prov.get("evidence") or () if isinstance(e, Mapping)]
        if str(verdict or "").lower().startswith("ai-") or any(str(e.get("claim", "")).startswith("ai-") for e in ev):
            counts["ai"] += 1
            for e in ev:
                outs["ai_evidence"].row([path, verdict, e.get("source"), e.get("claim"), e.get("strength"),
                                         e.get("summary"), e.get("facts") or {}])
    model = rec.get("model") if isinstance(rec.get("model"), Mapping) else None
    if model:
        counts["models"] += 1
        safety = model.get("safety") if isinstance(model.get("safety"), Mapping) else {}
        arch = model.get("arch") if isinstance(model.get("arch"), Mapping) else {}
        hashes = model.get("hashes") if isinstance(model.get("hashes"), Mapping) else {}
        findings = "; ".join(f"{f.get('source')}: {f.get('verdict')} ({', '.join(map(str, f.get('globals') or []))})"
                             for f in (safety or {}).get("findings") or () if isinstance(f, Mapping))
        outs["models"].row([path, model.get("format"), (arch or {}).get("family"), (arch or {}).get("variant"),
                            (arch or {}).get("kind"), (safety or {}).get("verdict"), findings,
                            "; ".join(map(str, model.get("lineage_explanations") or [])),
                            (hashes or {}).get("sha256"), (hashes or {}).get("autov2"),
                            (hashes or {}).get("autov3"), (hashes or {}).get("blake3")])
    for lk in rec.get("case_links") or ():
        if isinstance(lk, Mapping):
            outs["case_links"].row([path, lk.get("path"), lk.get("role"), lk.get("named_as"), lk.get("hash_type"),
                                    lk.get("value"), lk.get("strength"), lk.get("candidates")])
    errors = [e for e in rec.get("errors") or () if isinstance(e, Mapping)]
    if errors:
        counts["errors"] += 1
    for e in errors:
        outs["errors"].row([path, e.get("stage"), e.get("code"), e.get("message")])
    times = rec.get("times") if isinstance(rec.get("times"), Mapping) else {}
    size = rec.get("size")
    outs["inventory"].row([path, rec.get("kind"), rec.get("format"), size if isinstance(size, int) else None,
                           sig.get("md5"), sig.get("sha1"), sig.get("sha256"), (times or {}).get("mtime"),
                           (times or {}).get("ctime"), (times or {}).get("atime"), (times or {}).get("source"),
                           rec.get("member_of"), len(matches), bool(rec.get("known_good")), verdict, len(errors)])
