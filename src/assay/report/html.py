"""The case report as one self-contained HTML file (``assay report REPORT.jsonl -o case.html``).

What an examiner hands over: the chain-of-custody header, the report's integrity check
against its sidecar, a summary, the findings (matches with their review decisions,
AI-generation evidence, model files, case links, text reproduction findings), errors
and the full inventory with hashes. Hashes, evidence and paths only: no pixels, no
external resources, nothing fetched.

Every string from a record is untrusted (paths, prompts and metadata come from the
evidence): it is rendered server-side, HTML-escaped, with invisible and direction
controls (U+202E ...) shown as ``\\u202e`` escapes, never inside an attribute that a
browser would act on (no links, no inline styles, no event handlers). The page's one
script and one style sheet are allowed by hash in a strict Content-Security-Policy,
so a string that got through would still not run. The header and summary ride along
as JSON in an inert ``<script type="application/json">`` with ``<``, ``>`` and ``&``
escaped. Rows are written as the report is read (one pass, bounded memory apart from
the HTML itself).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..review.ids import file_key, match_id
from .provenance import fact_lines, safe_text
from .reader import Report, file_signals
from .textspans import offsets, pct, span_rows, text_part

# Decision per match id: {"decision", "note", "reviewer", "decided_at"}.
Decisions = Mapping[str, Mapping[str, Any]]


def show(value: object, limit: int = 2000) -> str:
    """An untrusted value as escaped HTML text, invisible controls shown as escapes."""
    s = value if isinstance(value, str) else ("" if value is None else str(value))
    if s.isalnum():  # hashes, ids, words: nothing to escape (and the common case)
        return s if len(s) <= limit else s[:limit] + "…"
    if len(s) > limit:
        s = s[:limit] + "…"
    if not s.isprintable():
        s = safe_text(s)
    return html.escape(s, quote=True)


def _lines(lines: Iterable[str]) -> str:
    return "<br>".join(html.escape(x, quote=True) for x in lines)


def json_for_script(obj: Any) -> str:
    """JSON that cannot end its ``<script type="application/json">`` element early."""
    return (json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def css_string(text: str) -> str:
    """``text`` as a CSS string literal (for the printed page headers)."""
    out = ['"']
    for ch in text[:200]:
        out.append(ch if ch.isalnum() or ch in " .,:;_-()/#" else f"\\{ord(ch):06x}")
    out.append('"')
    return "".join(out)


def _size(n: object) -> str:
    if not isinstance(n, int):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return ""


STRENGTH = {"exact": "exact", "short-hash": "weak: short hash, can collide",
            "perceptual": "perceptual (near-duplicate)",
            "named-by-metadata": "named by metadata (a claim, not the file's bytes)",
            "lineage": "lineage (weights)"}
DECISION = {"confirmed": "confirmed", "false-positive": "false positive", "needs-review": "needs review"}


@dataclass
class Section:
    key: str
    title: str
    columns: list[tuple[str, str]]  # (label, type: "text" | "num" | "filter")
    intro: str = ""
    rows: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, cells: list[str], attrs: str = "") -> None:
        self.count += 1
        self.rows.append(f"<tr{attrs}>" + "".join(cells) + "</tr>")


def td(text: str, sort: object | None = None, cls: str | None = None) -> str:
    """A cell of already escaped ``text``; ``sort`` the value sorting uses (numbers)."""
    a = f' data-v="{html.escape(str(sort), quote=True)}"' if sort is not None else ""
    c = f' class="{cls}"' if cls else ""
    return f"<td{a}{c}>{text}</td>"


@dataclass
class Options:
    title: str = "assay case report"
    case_id: str | None = None
    examiner: str | None = None
    decisions: Decisions | None = None  # None: no review store was read
    decisions_source: str | None = None  # e.g. the store's URL (password redacted)


class HtmlBuilder:
    """Collects the sections' rows in one pass over a report, then writes the page."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.counts: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.row_ids: Counter[str] = Counter()  # a record id twice (one file at two paths): ids kept unique
        self.matches = Section("matches", "Matches", [
            ("record id", "text"), ("file", "text"), ("bank", "filter"), ("content id", "text"),
            ("signal", "filter"), ("bank value", "text"), ("distance", "num"), ("strength", "filter"),
            ("variant", "text"), ("review decision", "filter"), ("reviewed by, when, note", "text")],
            "Every hit in a flagged bank. Strength says what a match is worth: a short hash can "
            "collide by chance and a hash named by metadata is a claim the file makes; confirm "
            "those with a full hash.")
        self.ai = Section("ai", "AI-generation evidence", [
            ("file", "text"), ("verdict", "filter"), ("source", "filter"), ("claim", "filter"),
            ("strength", "filter"), ("evidence", "text")],
            "One row per evidence item of files whose evidence points to AI generation or AI "
            "editing, strongest first. Evidence, not a probability; absence of evidence is not "
            "proof of a camera original.")
        self.models = Section("models", "Model files", [
            ("file", "text"), ("format", "filter"), ("architecture", "text"), ("safety", "filter"),
            ("safety findings", "text"), ("lineage", "text"), ("hashes", "text")],
            "Model files opened without executing anything: pickle safety verdict and findings, "
            "architecture, lineage against the banks' weight fingerprints, community hashes.")
        self.image_links = Section("image-links", "Images tied to model files of this case", [
            ("image", "text"), ("model file", "text"), ("role", "filter"), ("named as", "text"),
            ("hash", "text"), ("strength", "filter"), ("model files sharing the value", "num")],
            "Links made by a hash that the image's generator metadata names and that a model file "
            "of this scan has. Names alone never link.")
        self.text_spans = Section("text-reproduction", "Text reproduction", [
            ("file", "text"), ("share of the file reproduced", "num"), ("in file at", "num"),
            ("length", "num"), ("kind", "filter"), ("similarity, changed words", "text"),
            ("work", "filter"), ("title", "text"), ("in work at", "num"),
            ("share of the file from this work", "num")],
            "Passages of checked text files (e.g. model outputs) found in the indexed works, one row per "
            "passage and place in a work. Offsets are Unicode code points of the original texts, start "
            "inclusive, end exclusive: open the file and the work at those places to read the passage "
            "(the passage itself is not copied into this report). Verbatim: the same text after "
            "normalisation (case, Unicode forms, quotes, dashes, whitespace); near-verbatim: verbatim "
            "pieces of one work in order with small edits between them. The share counts the file's "
            "characters inside any passage; it says how much of the file reproduces indexed text, "
            "not who wrote it or whether the use is lawful.")
        self.text = Section("text", "Other text analysis records", [
            ("record", "filter"), ("file", "text"), ("findings", "text")],
            "Records of text analyses this version of the report renderer does not know by field, "
            "shown as they are.")
        self.errors = Section("errors", "Errors", [
            ("file", "text"), ("stage", "filter"), ("code", "filter"), ("message", "text")],
            "Files that could not be read, or read only in part. One bad file never stops a scan.")
        self.inventory = Section("inventory", "File inventory", [
            ("file", "text"), ("kind", "filter"), ("format", "filter"), ("size", "num"),
            ("MD5", "text"), ("SHA-1", "text"), ("SHA-256", "text"), ("modified (UTC)", "text"),
            ("findings", "filter")],
            "Every file record of the report with its custody hashes and file-system "
            "modification time (archive members: the time stored in the archive).")
        self.links_line: Mapping[str, Any] | None = None
        self.decided = 0

    # -- one record ----------------------------------------------------------------
    def add(self, kind: str, obj: Mapping[str, Any], scan_id: str | None) -> None:
        if kind == "file":
            self._file(obj, scan_id)
        elif kind == "links":
            self.links_line = obj
        elif kind == "other" and (tp := text_part(kind, obj)):
            self._text(show(tp[0]), tp[1])
        elif kind == "other":
            rest = {k: v for k, v in obj.items() if k not in ("schema", "path")}
            self.text.add([td(show(obj.get("schema"))), td(show(obj.get("path") or obj.get("source") or "")),
                           td(_lines(fact_lines(rest, "")), cls="facts")])

    def _file(self, rec: Mapping[str, Any], scan_id: str | None) -> None:
        path = show(rec.get("path"))
        kind = str(rec.get("kind") or "other")
        self.kinds[kind] += 1
        flags: list[str] = []
        matches = [m for m in rec.get("matches") or () if isinstance(m, Mapping)]
        if matches:
            flags.append("matched")
            self.counts["matched_files"] += 1
            key = file_key(rec, scan_id)
            for m in matches:
                self._match(path, key, m)
        if rec.get("known_good"):
            flags.append("known-good")
            self.counts["known_good"] += 1
        prov = rec.get("provenance")
        if isinstance(prov, Mapping) and self._ai(path, prov):
            flags.append("AI evidence")
        model = rec.get("model")
        if isinstance(model, Mapping):
            if self._model(path, rec, model):
                flags.append("dangerous model")
        tp = text_part("file", rec)
        if tp and self._text(path, tp[1]):
            flags.append("text reproduction")
        for lk in rec.get("case_links") or ():
            if isinstance(lk, Mapping) and kind != "model":
                self.image_links.add([
                    td(path), td(show(lk.get("path"))), td(show(lk.get("role") or "model")),
                    td(show(lk.get("named_as") or "")),
                    td(show(f"{lk.get('hash_type')} {lk.get('value')}"), cls="hash"),
                    td(show(lk.get("strength"))), td(show(lk.get("candidates") or ""), lk.get("candidates") or 0)])
        errors = [e for e in rec.get("errors") or () if isinstance(e, Mapping)]
        if errors:
            flags.append("errors")
            self.counts["files_with_errors"] += 1
            for e in errors:
                self.errors.add([td(path), td(show(e.get("stage"))), td(show(e.get("code"))),
                                 td(show(e.get("message")))])
        sig = file_signals(rec)
        times = rec.get("times") if isinstance(rec.get("times"), Mapping) else {}
        size = rec.get("size")
        self.inventory.add([
            td(path), td(show(kind)), td(show(rec.get("format") or "")),
            td(_size(size), size if isinstance(size, int) else -1),
            td(show(sig.get("md5", "")), cls="hash"), td(show(sig.get("sha1", "")), cls="hash"),
            td(show(sig.get("sha256", "")), cls="hash"), td(show((times or {}).get("mtime") or "")),
            td(show(", ".join(flags) or "none"))])

    def _text(self, path: str, t: Mapping[str, Any]) -> bool:
        """Rows of one checked text; True when a passage was found."""
        self.counts["text_checked"] += 1
        found = False
        for r in span_rows(path, t):
            if not found:
                found = True
                self.counts["text_reproduced"] += 1
            sim = "" if r.similarity is None else f"{r.similarity:.2f}"
            if r.changed_words:
                sim += f", {r.changed_words:,} changed word{'s' if r.changed_words != 1 else ''}"
            chars = f" of {r.output_chars:,} characters" if r.output_chars is not None else ""
            self.text_spans.add([
                td(path), td(show(pct(r.coverage) + chars), r.coverage if r.coverage is not None else -1),
                td(show(offsets(r.start, r.end)), r.start if r.start is not None else -1),
                td(show("" if r.length is None else f"{r.length:,}"), r.length if r.length is not None else -1),
                td(show(r.kind)), td(show(sim)), td(show(r.work)), td(show(r.title)),
                td(show(offsets(r.work_start, r.work_end)), r.work_start if r.work_start is not None else -1),
                td(show(pct(r.work_coverage)), r.work_coverage if r.work_coverage is not None else -1)])
        return found

    def _match(self, path: str, key: str, m: Mapping[str, Any]) -> None:
        rid = match_id(key, m)
        strength = str(m.get("strength") or "")
        d = (self.opts.decisions or {}).get(rid)
        if d:
            self.decided += 1
            decision = show(DECISION.get(str(d.get("decision")), d.get("decision")))
            who = show(f"{d.get('reviewer') or 'unknown'}, {d.get('decided_at') or ''}"
                       + (f": {d.get('note')}" if d.get("note") else ""))
        else:
            decision = "not reviewed" if self.opts.decisions is not None else "review store not read"
            who = ""
        self.counts["matches"] += 1
        self.matches.add([
            td(rid, cls="hash"), td(path), td(show(m.get("bank"))), td(show(m.get("content_id"))),
            td(show(m.get("signal_type"))), td(show(m.get("value")), cls="hash"),
            td(show(m.get("distance", 0)), m.get("distance", 0)),
            td(show(STRENGTH.get(strength, strength)), cls="weak" if strength == "short-hash" else None),
            td(show(m.get("query_variant") or "")), td(decision), td(who)], f' id="{self._row_id(rid)}"')

    def _row_id(self, rid: str) -> str:
        """The match row's HTML id, ``m-RID``; the same record id again (the same file's
        match at another path: one review decision covers both) is ``m-RID-2`` ..."""
        self.row_ids[rid] += 1
        n = self.row_ids[rid]
        return f"m-{rid}" if n == 1 else f"m-{rid}-{n}"

    def _ai(self, path: str, prov: Mapping[str, Any]) -> bool:
        verdict = str(prov.get("verdict") or "")
        evidence = [e for e in prov.get("evidence") or () if isinstance(e, Mapping)]
        if not (verdict.lower().startswith("ai-")
                or any(str(e.get("claim", "")).startswith("ai-") for e in evidence)):
            return False
        self.counts["ai"] += 1
        for e in evidence:
            facts = e.get("facts") if isinstance(e.get("facts"), Mapping) else {}
            text = _lines([safe_text(str(e.get("summary") or ""))[:4000], *fact_lines(dict(facts or {}), "  ")])
            self.ai.add([td(path), td(show(verdict)), td(show(e.get("source"))), td(show(e.get("claim"))),
                         td(show(e.get("strength"))), td(text, cls="facts")])
        return True

    def _model(self, path: str, rec: Mapping[str, Any], model: Mapping[str, Any]) -> bool:
        self.counts["models"] += 1
        safety = model.get("safety") if isinstance(model.get("safety"), Mapping) else {}
        verdict = str((safety or {}).get("verdict") or "not checked")
        dangerous = verdict == "dangerous"
        if dangerous:
            self.counts["dangerous"] += 1
        findings = []
        for f in (safety or {}).get("findings") or ():
            if isinstance(f, Mapping):
                g = ", ".join(str(x) for x in (f.get("globals") or [])[:20])
                findings.append(f"{f.get('source')}: {f.get('verdict')}" + (f" ({g})" if g else ""))
        arch = model.get("arch") if isinstance(model.get("arch"), Mapping) else {}
        arch_text = " ".join(str(x) for x in ((arch or {}).get("family"), (arch or {}).get("variant"),
                                              (arch or {}).get("kind")) if x and x != "unknown")
        lineage = [str(x) for x in model.get("lineage_explanations") or []]
        lineage += [f"{m.get('bank')}/{m.get('content_id')}: {m.get('note') or 'lineage'}"
                    for m in rec.get("matches") or () if isinstance(m, Mapping) and m.get("strength") == "lineage"
                    and not lineage]
        hashes = model.get("hashes") if isinstance(model.get("hashes"), Mapping) else {}
        htext = [f"{k} {v}" for k, v in (hashes or {}).items()
                 if k in ("sha256", "autov1", "autov2", "autov3", "blake3", "crc32") and v]
        self.models.add([
            td(path), td(show(model.get("format"))), td(show(arch_text or "unknown")),
            td(show(verdict), cls="bad" if dangerous else None),
            td(_lines(safe_text(x) for x in findings[:50]), cls="facts"),
            td(_lines(safe_text(x) for x in lineage[:50]), cls="facts"),
            td(_lines(safe_text(x) for x in htext), cls="hash")])
        return dangerous

    # -- the page --------------------------------------------------------------------
    def write(self, fh: Any, report: Report) -> None:
        header = report.header or {}
        summary = report.summary
        o = self.opts
        generated = datetime.now(UTC).isoformat(timespec="seconds")
        page_head = " · ".join(x for x in (o.title, f"case {o.case_id}" if o.case_id else "",
                                           f"scan {header.get('scan_id')}" if header.get("scan_id") else "") if x)
        css = CSS + PRINT_CSS.replace("@@HEAD@@", css_string(page_head)).replace(
            "@@FOOT@@", css_string(f"assay {__version__} · report SHA-256 {report.sha256 or ''}"))
        sections = [self.matches, self.ai, self.models, self.image_links, self.text_spans, self.text, self.errors,
                    self.inventory]
        data = {"schema": "assay.case-report/1", "generated_at": generated, "assay_version": __version__,
                "title": o.title, "case_id": o.case_id, "examiner": o.examiner,
                "report": {"path": str(report.path), "sha256": report.sha256,
                           "sidecar": report.sidecar.to_json_dict() if report.sidecar else None},
                "header": report.header, "summary": summary, "case_links": self.links_line,
                "sections": {s.key: s.count for s in sections}}
        w = fh.write
        w("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n")
        w(f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
          f"script-src '{_sha(JS)}'; style-src '{_sha(css)}'; img-src 'none'; font-src 'none'; "
          f"connect-src 'none'; media-src 'none'; object-src 'none'; frame-src 'none'; "
          f"form-action 'none'; base-uri 'none'\">\n")
        w('<meta name="referrer" content="no-referrer">\n<meta name="viewport" content="width=device-width">\n')
        w(f"<title>{show(o.title)}{' · ' + show(o.case_id) if o.case_id else ''}</title>\n")
        w(f"<style>{css}</style>\n</head><body>\n")
        w(f'<header class="top"><h1>{show(o.title)}</h1>'
          '<div class="tools global"><label>Search every table <input type="search" id="q" '
          'autocomplete="off" placeholder="path, hash, bank, prompt..."></label></div></header>\n')
        w("<nav><ul>" + "".join(f'<li><a href="#{s.key}">{html.escape(s.title)} ({s.count:,})</a></li>'
                                 for s in sections if s.count or s.key in ("matches", "inventory"))
          + (f'<li><a href="#case-links">Case links ({len((self.links_line or {}).get("models") or []):,} '
             f"model files)</a></li>" if self.links_line else "") + "</ul></nav>\n<main>\n")
        self._write_case(w, report, generated)
        self._write_summary(w, report)
        for s in sections[:3]:
            self._write_section(w, s)
        if self.links_line:
            self._write_links(w)
        for s in sections[3:]:
            if s.key == "text" and not s.count:
                continue
            if s.key == "text-reproduction" and not self.counts["text_checked"]:
                continue
            self._write_section(w, s)
        w("</main>\n")
        w(f'<script type="application/json" id="case-data">{json_for_script(data)}</script>\n')
        w(f"<script>{JS}</script>\n</body></html>\n")

    def _write_case(self, w: Callable[[str], Any], report: Report, generated: str) -> None:
        h = report.header or {}
        o = self.opts
        rows: list[tuple[str, str]] = []
        if o.case_id:
            rows.append(("case id", show(o.case_id)))
        if o.examiner:
            rows.append(("examiner", show(o.examiner)))
        side = report.sidecar
        cls = "ok" if side and side.status == "match" else "bad"
        rows.append(("report file", show(report.path.name) + f' <span class="hash">SHA-256 {show(report.sha256)}</span>'))
        rows.append(("integrity", f'<span class="{cls}">{show(side.text if side else "not checked")}</span>'))
        if not report.header:
            rows.append(("chain of custody", '<span class="bad">the report has no scan header '
                                             "(assay.scan-header/1): written by an older assay</span>"))
        else:
            rows.append(("tool", show(f"{h.get('tool', 'assay')} {h.get('version', '')}")))
            rows.append(("scan id", show(h.get("scan_id"))))
            ended = (report.summary or {}).get("ended_at")
            rows.append(("scan started (UTC)", show(h.get("started_at"))))
            rows.append(("scan ended (UTC)", show(ended) if ended else
                         '<span class="bad">no summary line: the scan did not finish; the report is partial</span>'))
            rows.append(("host", show(h.get("host"))))
            rows.append(("user", show(h.get("user") or "unknown")))
            rows.append(("command line", '<code>' + show(" ".join(str(a) for a in h.get("argv") or [])) + "</code>"))
            rows.append(("working folder", show(h.get("cwd"))))
            inputs = h.get("inputs_absolute") or h.get("inputs") or []
            rows.append(("inputs", _lines(safe_text(str(x)) for x in inputs) or "none"))
            banks = []
            for b in h.get("banks") or []:
                if isinstance(b, Mapping):
                    snap = b.get("snapshot") or f"not computed: {b.get('snapshot_skipped') or 'unknown'}"
                    banks.append(f"{b.get('name')} ({b.get('kind')}, {b.get('entries')} entries): snapshot {snap}")
            rows.append(("banks", _lines(safe_text(x) for x in banks) or "no bank enabled: nothing was matched"))
            if h.get("bank_snapshot_method"):
                rows.append(("snapshot method", show(h.get("bank_snapshot_method"))))
            settings = h.get("settings")
            if isinstance(settings, Mapping):
                rows.append(("settings", show(", ".join(f"{k}={v}" for k, v in settings.items()))))
        rows.append(("case report", show(f"made {generated} by assay {__version__}")))
        if o.decisions is None:
            rows.append(("review decisions", "not shown: no review store was read"))
        else:
            rows.append(("review decisions", show(f"from {o.decisions_source or 'the store'}")))
        w('<section id="case"><h2>Case</h2><table class="kv">'
          + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table></section>\n")

    def _write_summary(self, w: Callable[[str], Any], report: Report) -> None:
        s = report.summary or {}
        c = self.counts
        kinds = ", ".join(f"{n:,} {show(k)}" for k, n in self.kinds.most_common())
        rows = [("files", f"{report.files:,}" + (f" ({kinds})" if kinds else "")),
                ("matched files", f"{c['matched_files']:,} ({c['matches']:,} matches"
                 + (f"; {self.decided:,} reviewed" if self.opts.decisions is not None else "") + ")"),
                ("by bank", show(", ".join(f"{k}: {v}" for k, v in (s.get("matches_by_bank") or {}).items())) or "none"),
                ("known-good files", f"{c['known_good']:,} (in a known-good hash set; not findings)"),
                ("AI-generation evidence", f"{c['ai']:,} files"),
                ("model files", f"{c['models']:,} ({c['dangerous']:,} dangerous)"),
                ("files with errors", f"{c['files_with_errors']:,}")]
        if self.links_line:
            lk = self.links_line
            rows.append(("case links", show(f"{lk.get('links', 0)} links, {lk.get('images_linked', 0)} images "
                                            f"linked to {lk.get('model_files_linked', 0)} model files; "
                                            f"{len(lk.get('not_present') or [])} named models not present")))
        if self.counts["text_checked"]:
            rows.append(("text reproduction", f"{c['text_reproduced']:,} of {c['text_checked']:,} checked text "
                         f"files reproduce passages of indexed works ({self.text_spans.count:,} passage rows)"))
        if self.text.count:
            rows.append(("other text records", f"{self.text.count:,} records"))
        if s.get("files") is not None and s.get("files") != report.files:
            rows.append(("note", f'<span class="bad">the summary line counts {int(s["files"]):,} files but the '
                                 f"report holds {report.files:,} file records</span>"))
        if s.get("seconds") is not None:
            rows.append(("scan time", show(f"{s.get('seconds')} s")))
        w('<section id="summary"><h2>Summary</h2><table class="kv">'
          + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table></section>\n")

    def _write_links(self, w: Callable[[str], Any]) -> None:
        lk = self.links_line or {}
        sec = Section("case-links", "Case links: model files and the images made with them", [
            ("model file", "text"), ("used as", "filter"), ("images", "num"), ("images made with it", "text"),
            ("LoRAs applied with it", "text")],
            "Per model file of this scan, the images whose generator metadata names one of its "
            "hashes, and the LoRAs those images name with it.")
        for m in lk.get("models") or []:
            if not isinstance(m, Mapping):
                continue
            images = [safe_text(str(x)) for x in m.get("images") or []]
            more = int(m.get("image_count") or 0) - len(images)
            sec.add([td(show(m.get("path"))), td(show("/".join(str(r) for r in m.get("roles") or []))),
                     td(f"{int(m.get('image_count') or 0):,}", m.get("image_count") or 0),
                     td(_lines(images + ([f"... and {more:,} more"] if more > 0 else [])), cls="facts"),
                     td(_lines(safe_text(str(x)) for x in m.get("loras_applied") or []), cls="facts")])
        self._write_section(w, sec)
        absent = Section("not-present", "Models named but not present", [
            ("role", "filter"), ("named as", "text"), ("hash", "text"), ("strength", "filter"),
            ("images naming it", "num"), ("bank matches", "text")],
            "Hashes named by images' metadata that no model file of this scan has: files to look for.")
        for n in lk.get("not_present") or []:
            if isinstance(n, Mapping):
                absent.add([td(show(n.get("role") or "model")),
                            td(show(", ".join(str(x) for x in n.get("named_as") or []) or "no name given")),
                            td(show(f"{n.get('hash_type')} {n.get('value')}"), cls="hash"),
                            td(show(n.get("strength"))),
                            td(f"{int(n.get('image_count') or 0):,}", n.get("image_count") or 0),
                            td(show(", ".join(str(x) for x in n.get("bank_matches") or [])))])
        if absent.count:
            self._write_section(w, absent)
        if "model_links" in lk:
            ml = Section("model-links", "Model files related by their weights", [
                ("model file", "text"), ("relation", "filter"), ("other model file", "text"), ("value", "text"),
                ("explanation", "text")],
                "Lineage between the model files of this scan (scan --model-links), with the other files "
                "standing in for a bank: same weights converted, derived (a fine-tune or other changed copy; "
                "weights cannot tell which came first), related (one a fine-tune of the other, or both "
                "fine-tunes of one base: without that base the two cannot be told apart), a merge including another file, a checkpoint "
                "containing a LoRA.")
            for m in lk.get("model_links") or []:
                if isinstance(m, Mapping):
                    ml.add([td(show(m.get("a"))), td(show(m.get("relation"))), td(show(m.get("b"))),
                            td(show(m.get("value") or "")), td(show(m.get("explanation") or ""), cls="facts")])
            self._write_section(w, ml)

    def _write_section(self, w: Callable[[str], Any], s: Section) -> None:
        w(f'<section id="{s.key}"><h2>{html.escape(s.title)} <span class="n">({s.count:,})</span></h2>\n')
        if s.intro:
            w(f'<p class="intro">{html.escape(s.intro)}</p>\n')
        if not s.count:
            w('<p class="none">None in this report.</p></section>\n')
            return
        w(f'<div class="tools"><label>Filter <input type="search" class="filter" data-table="t-{s.key}" '
          f'autocomplete="off"></label> <span class="shown" data-table="t-{s.key}"></span></div>\n')
        w(f'<table class="data" id="t-{s.key}"><thead><tr>')
        for label, typ in s.columns:
            w(f'<th data-type="{typ}"><button type="button">{html.escape(label)}</button></th>')
        w("</tr></thead><tbody>\n")
        for i in range(0, len(s.rows), 2000):
            w("\n".join(s.rows[i:i + 2000]))
            w("\n")
        w("</tbody></table></section>\n")
        s.rows = []


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def render_html(report_path: str | Path, out: str | Path, opts: Options,
                on_record: Callable[[], None] | None = None) -> dict[str, Any]:
    """Read ``report_path`` and write the case report to ``out`` (via ``out.partial``,
    renamed when complete). Returns counts for the command's summary."""
    report = Report(report_path)
    with report.fields():
        return _render(report, out, opts, on_record)


def _render(report: Report, out: str | Path, opts: Options, on_record: Callable[[], None] | None) -> dict[str, Any]:
    b = HtmlBuilder(opts)
    scan_id: str | None = None
    for kind, obj in report.lines():
        if kind == "header":
            scan_id = obj.get("scan_id")
        b.add(kind, obj, scan_id)
        if on_record:
            on_record()
    target = Path(out)
    tmp = target.with_name(target.name + ".partial")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            b.write(fh, report)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"files": report.files, "matches": b.counts["matches"], "reviewed": b.decided,
            "ai_evidence": b.counts["ai"], "model_files": b.counts["models"],
            "files_with_errors": b.counts["files_with_errors"], "text_records": b.text.count,
            "text_checked": b.counts["text_checked"], "text_reproduced": b.counts["text_reproduced"],
            "text_span_rows": b.text_spans.count,
            "integrity": report.sidecar.status if report.sidecar else None,
            "report_sha256": report.sha256, "bytes": target.stat().st_size}


CSS = """
:root{--fg:#111;--mut:#555;--line:#ccc;--bad:#a00;--ok:#060;--weak:#8a5a00}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0;padding:0 1rem 2rem}
header.top{display:flex;flex-wrap:wrap;align-items:baseline;gap:1rem;border-bottom:2px solid var(--fg)}
h1{font-size:1.5rem;margin:.6rem 0}
h2{font-size:1.15rem;margin:1.6rem 0 .3rem;border-bottom:1px solid var(--line)}
nav ul{list-style:none;padding:0;margin:.5rem 0;display:flex;flex-wrap:wrap;gap:.3rem 1rem}
nav a{color:#0645ad}
.intro,.none{color:var(--mut);margin:.2rem 0 .5rem;max-width:60rem}
table{border-collapse:collapse;width:100%}
table.kv th{text-align:left;vertical-align:top;width:12rem;padding:.15rem .5rem .15rem 0;font-weight:600}
table.kv td{padding:.15rem 0;overflow-wrap:anywhere}
table.data{table-layout:fixed;font-size:12.5px}
table.data th{position:sticky;top:0;background:#eee;text-align:left;border-bottom:1px solid #999;padding:0}
table.data th button{all:unset;display:block;width:100%;padding:.25rem .3rem;cursor:pointer;font-weight:600;overflow-wrap:anywhere}
table.data th[aria-sort=ascending] button::after{content:" \\25B2"}
table.data th[aria-sort=descending] button::after{content:" \\25BC"}
table.data td{vertical-align:top;padding:.2rem .3rem;border-bottom:1px solid #e4e4e4;overflow-wrap:anywhere;word-break:break-word}
td.hash,span.hash,code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:11.5px;word-break:break-all}
td.facts{white-space:pre-wrap;font-size:12px}
.bad{color:var(--bad);font-weight:600}.ok{color:var(--ok);font-weight:600}.weak{color:var(--weak)}
.tools{margin:.3rem 0}.tools input{font:inherit;padding:.15rem .3rem;min-width:16rem}
.shown{color:var(--mut);margin-left:.6rem}
tr[hidden]{display:none}
section{content-visibility:auto;contain-intrinsic-size:auto 600px}
"""

PRINT_CSS = """
@page{size:A4 landscape;margin:16mm 10mm 14mm;
@top-left{content:@@HEAD@@;font:9pt sans-serif}
@bottom-left{content:@@FOOT@@;font:7pt sans-serif}
@bottom-right{content:"page " counter(page) " of " counter(pages);font:8pt sans-serif}}
@media print{
body{font-size:9.5pt;padding:0}
.tools,nav{display:none}
section{content-visibility:visible}
table.data{font-size:8pt}
table.data th{position:static}
thead{display:table-header-group}
tr{break-inside:avoid}
h2{break-after:avoid}
td.hash,span.hash,code{font-size:7.5pt}
}
"""

# The page's only script: sort, filter and search over the server-rendered rows. It
# reads text with textContent and writes only text and the hidden flag: nothing it
# touches can become markup.
JS = r"""
(function(){"use strict";
var data=JSON.parse(document.getElementById("case-data").textContent);
var tables=[].slice.call(document.querySelectorAll("table.data"));
var state=new Map();
function norm(s){return (s||"").toLowerCase();}
function rowText(r){if(r._t===undefined){r._t=norm(r.textContent);}return r._t;}
function cellVal(r,i,num){var c=r.cells[i];if(!c){return num?-Infinity:"";}
 var v=c.getAttribute("data-v");if(v===null){v=c.textContent;}
 if(num){var n=parseFloat(v);return isNaN(n)?-Infinity:n;}return norm(v);}
function selOk(st,r){for(var k in st.sel){if(st.sel[k]!==""&&(r.cells[k]?r.cells[k].textContent:"")!==st.sel[k]){return false;}}return true;}
function apply(t){var st=state.get(t);var q=norm(st.q),g=norm(globalQ.value);var n=0;
 for(var i=0;i<st.rows.length;i++){var r=st.rows[i];var txt=(q||g)?rowText(r):"";
  var ok=(!q||txt.indexOf(q)>=0)&&(!g||txt.indexOf(g)>=0)&&selOk(st,r);
  if(r.hidden===ok){r.hidden=!ok;}if(ok){n++;}}
 if(st.shown){st.shown.textContent=(n===st.rows.length)?(n.toLocaleString()+" rows"):(n.toLocaleString()+" of "+st.rows.length.toLocaleString()+" rows shown");}}
function sortBy(t,i){var st=state.get(t);var th=t.tHead.rows[0].cells[i];
 var num=th.getAttribute("data-type")==="num";var dir=(st.col===i&&st.dir===1)?-1:1;st.col=i;st.dir=dir;
 var keyed=st.rows.map(function(r,k){return [cellVal(r,i,num),k,r];});
 keyed.sort(function(a,b){return a[0]<b[0]?-dir:a[0]>b[0]?dir:a[1]-b[1];});
 st.rows=keyed.map(function(x){return x[2];});
 var frag=document.createDocumentFragment();st.rows.forEach(function(r){frag.appendChild(r);});
 t.tBodies[0].appendChild(frag);
 [].forEach.call(t.tHead.rows[0].cells,function(c,k){if(k===i){c.setAttribute("aria-sort",dir===1?"ascending":"descending");}else{c.removeAttribute("aria-sort");}});}
var globalQ=document.getElementById("q");
function addSelect(t,st,th,i){var seen=new Map();
 for(var k=0;k<st.rows.length;k++){var c=st.rows[k].cells[i];var v=c?c.textContent:"";seen.set(v,(seen.get(v)||0)+1);if(seen.size>100){return;}}
 if(seen.size<2||!st.shown){return;}var sel=document.createElement("select");sel.className="colfilter";
 sel.setAttribute("aria-label","filter by "+th.textContent);var all=document.createElement("option");all.value="";
 all.textContent="any "+th.textContent;sel.appendChild(all);
 Array.from(seen.keys()).sort().forEach(function(v){var o=document.createElement("option");o.value=v;o.textContent=v+" ("+seen.get(v)+")";sel.appendChild(o);});
 sel.addEventListener("change",function(){st.sel[i]=sel.value;apply(t);});st.shown.parentNode.insertBefore(sel,st.shown);}
tables.forEach(function(t){var st={rows:[].slice.call(t.tBodies[0].rows),q:"",col:-1,dir:1,sel:{},
  shown:document.querySelector('.shown[data-table="'+t.id+'"]')};state.set(t,st);
 [].forEach.call(t.tHead.rows[0].cells,function(th,i){th.querySelector("button").addEventListener("click",function(){sortBy(t,i);});
  if(th.getAttribute("data-type")==="filter"){addSelect(t,st,th,i);}});
 if(st.shown){st.shown.textContent=st.rows.length.toLocaleString()+" rows";}});
[].forEach.call(document.querySelectorAll("input.filter"),function(inp){var t=document.getElementById(inp.getAttribute("data-table"));
 if(!t){return;}inp.addEventListener("input",function(){state.get(t).q=inp.value;apply(t);});});
if(globalQ){globalQ.addEventListener("input",function(){tables.forEach(apply);});}
document.documentElement.setAttribute("data-ready",String(Object.keys(data.sections||{}).length));
})();
"""
