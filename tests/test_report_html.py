"""`assay report REPORT.jsonl -o case.html` (issue 16, item 2): one self-contained page
with the case header, integrity check, findings and inventory; every record string
escaped; one inline script, allowed by hash in a strict Content-Security-Policy; data
as inert JSON; bad report files refused with the file and line."""

from __future__ import annotations

import base64
import hashlib
import html
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

import casegen
from assay.report.html import css_string, json_for_script, show
from assay.review.ids import file_key, match_id


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> casegen.Case:
    return casegen.build(tmp_path_factory.mktemp("html"))


class Page(HTMLParser):
    """The elements, attributes and script bodies of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = tag
            if tag == "script":
                self.scripts.append((dict(attrs), ""))

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            a, body = self.scripts[-1]
            self.scripts[-1] = (a, body + data)
        elif self._in == "style":
            self.styles.append(data)
        else:
            self.text.append(data)


def _render(case: casegen.Case, tmp: Path, *extra: str, report: Path | None = None) -> tuple[str, object]:
    out = tmp / "case.html"
    res = casegen.invoke("--db", case.db, "report", str(report or case.report), "-o", str(out), *extra)
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    return out.read_text(encoding="utf-8"), res


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_page_is_self_contained_and_only_its_own_script_can_run(case: casegen.Case, tmp_path: Path) -> None:
    page_html, _ = _render(case, tmp_path, "--case-id", "C-41 <b>", "--examiner", "J. Doe")
    p = Page()
    p.feed(page_html)
    # exactly two script elements: inert JSON data and the page's code
    assert [a.get("type") for a, _ in p.scripts] == ["application/json", None]
    assert all("src" not in a for a, _ in p.scripts)
    csp = [a["content"] for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1
    policy = dict((d.split(" ", 1) + [""])[:2] for d in (x.strip() for x in csp[0].split(";")))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'none'"
    assert policy["script-src"] == _sha(p.scripts[1][1])  # only the page's own script, by hash
    assert len(p.styles) == 1 and policy["style-src"] == _sha(p.styles[0])
    assert "unsafe-inline" not in csp[0] and "unsafe-eval" not in csp[0]
    # nothing that loads or navigates: no links to records, no inline handlers or styles
    for tag, attrs in p.tags:
        assert tag not in ("img", "iframe", "object", "embed", "link", "base", "form", "svg"), tag
        for name, value in attrs.items():
            assert not name.startswith("on") and name != "style", (tag, name)
            if name in ("href", "src", "action", "formaction"):
                assert value and value.startswith("#"), (tag, name, value)
    assert "http://" not in page_html and "https://" not in page_html and "url(" not in page_html


def test_hostile_strings_are_text(case: casegen.Case, tmp_path: Path) -> None:
    page_html, _ = _render(case, tmp_path)
    p = Page()
    p.feed(page_html)
    text = "".join(p.text)
    # each hostile string appears as text, unchanged but for the direction override shown escaped
    assert casegen.XSS_NAME in text and casegen.JS_URL_NAME in text and casegen.CONTENT_ID in text
    assert "invoice\\u202egnp.exe" in text and "\u202e" not in page_html
    assert "<script>window.__pwned=3</script>" in text  # the prompt, as evidence text
    assert "<img src=x" not in page_html and "<script>window" not in page_html
    data = json.loads(p.scripts[0][1])
    assert "<" not in p.scripts[0][1] and data["header"]["scan_id"]


def test_case_header_findings_and_inventory(case: casegen.Case, tmp_path: Path) -> None:
    page_html, res = _render(case, tmp_path, "--title", "Exhibit 7", "--case-id", "C-41", "--examiner", "J. Doe")
    lines = [json.loads(x) for x in case.report.read_text().splitlines()]
    head, files = lines[0], [x for x in lines if x.get("schema") == "assay.file/1"]
    p = Page()
    p.feed(page_html)
    text = " ".join(p.text)
    for needle in ("Exhibit 7", "C-41", "J. Doe", head["scan_id"], head["host"], head["started_at"],
                   lines[-1]["ended_at"], "the report's SHA-256 matches its sidecar",
                   hashlib.sha256(case.report.read_bytes()).hexdigest()):
        assert needle in text, needle
    assert "known (flagged, 2 entries): snapshot " + head["banks"][0]["snapshot"] in text
    # every file in the inventory with its custody hashes
    inv = page_html.split('id="t-inventory"', 1)[1]
    assert inv.count("<tr>") == len(files) + 1  # the header row too
    for rec in files:
        sha = next(s["value"] for s in rec["signals"] if s["type"] == "sha256" and "mode" not in s)
        assert sha in inv
    # the matches, each with its stable record id
    matched = [(r, m) for r in files for m in r.get("matches", [])]
    assert {m["content_id"] for _, m in matched} == {casegen.CONTENT_ID, "photo-1"}
    for r, m in matched:
        assert f'id="m-{match_id(file_key(r), m)}"' in page_html
    assert "not reviewed" in page_html or "review store not read" in page_html
    # the model files with the malicious pickle's verdict, AI evidence with its prompt, errors
    models = page_html.split('id="t-models"', 1)[1].split("</table>", 1)[0]
    assert "evil.pkl" in models and "dangerous" in models and "os.system" in models
    ai = page_html.split('id="t-ai"', 1)[1].split("</table>", 1)[0]
    assert "gen-0.png" in ai and "gen-1.png" in ai and "photo.png" not in ai
    assert "broken.png" in page_html.split('id="t-errors"', 1)[1]
    out = res.output  # type: ignore[attr-defined]
    assert "wrote " in out and f"{len(files)} files" in out and f"{len(matched)} matches" in out
    assert "matches its sidecar" in out


def test_integrity_mismatch_and_missing_sidecar_are_shown(case: casegen.Case, tmp_path: Path) -> None:
    changed = tmp_path / "changed.jsonl"
    changed.write_bytes(case.report.read_bytes().replace(b'"kind":"other"', b'"kind":"OTHER"', 1))
    (tmp_path / "changed.jsonl.sha256").write_text(
        (case.report.parent / (case.report.name + ".sha256")).read_text().replace("report.jsonl", "changed.jsonl"))
    page_html, res = _render(case, tmp_path, report=changed)
    assert "MISMATCH" in page_html and "changed after the scan" in page_html
    assert "does not match its sidecar" in res.output  # type: ignore[attr-defined]
    (tmp_path / "changed.jsonl.sha256").unlink()
    page_html, _ = _render(case, tmp_path, "--overwrite", report=changed)
    assert "no sidecar changed.jsonl.sha256" in page_html


def test_text_and_unknown_records_are_rendered_generically(case: casegen.Case, tmp_path: Path) -> None:
    r = tmp_path / "with-text.jsonl"
    lines = case.report.read_text().splitlines()
    text_rec = {"schema": "assay.text/1", "path": "out/<answer>.txt",
                "spans": [{"work": "Moby <Dick>", "start": 10, "end": 250, "chars": 240}]}
    r.write_text("\n".join([*lines[:-1], json.dumps(text_rec), lines[-1]]) + "\n")
    page_html, _ = _render(case, tmp_path, report=r)
    sec = page_html.split('id="t-text"', 1)[1].split("</table>", 1)[0]
    assert "assay.text/1" in sec and "out/&lt;answer&gt;.txt" in sec and "Moby &lt;Dick&gt;" in sec


def test_empty_scan_renders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    report = tmp_path / "r.jsonl"
    res = casegen.invoke("--db", str(tmp_path / "s.db"), "--create", "scan", str(tmp_path / "empty"),
                         "-o", str(report))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    res = casegen.invoke("report", str(report), "-o", str(tmp_path / "e.html"))
    assert res.exit_code == 0 and "0 files, 0 matches" in res.output  # type: ignore[attr-defined]
    page_html = (tmp_path / "e.html").read_text()
    assert page_html.count("None in this report.") >= 5 and "matches its sidecar" in page_html


@pytest.mark.parametrize(("content", "where", "why"), [
    ("", "bad.jsonl", "empty file"),
    ('{"schema":"assay.scan-header/1"}\n{"schema":"assay.file/1","path":"a"}\nnot json\n', "bad.jsonl:3", "not JSON"),
    ('{"bank":"known","kind":"flagged"}\n', "bad.jsonl:1", "not an assay scan report record"),
    ('[1,2]\n', "bad.jsonl:1", "not a report record"),
    ('{"schema":"assay.file/1"}\n', "bad.jsonl:1", "without a \"path\""),
    ('{"schema":"assay.file/9","path":"a"}\n', "bad.jsonl:1", "another version of assay"),
])
def test_bad_report_files_name_the_file_and_line(tmp_path: Path, content: str, where: str, why: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    res = casegen.invoke("report", str(bad), "-o", str(tmp_path / "x.html"))
    assert res.exit_code == 1  # type: ignore[attr-defined]
    assert where in res.output and why in res.output, res.output  # type: ignore[attr-defined]
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x.html.partial").exists()


def test_refuses_to_overwrite_or_to_read_a_folder(case: casegen.Case, tmp_path: Path) -> None:
    out = tmp_path / "keep.html"
    out.write_text("mine")
    res = casegen.invoke("report", str(case.report), "-o", str(out))
    assert res.exit_code == 1 and "not overwriting" in res.output and out.read_text() == "mine"  # type: ignore[attr-defined]
    res = casegen.invoke("report", str(tmp_path), "-o", str(tmp_path / "y.html"))
    assert res.exit_code == 1 and "is a folder" in res.output  # type: ignore[attr-defined]
    res = casegen.invoke("report", str(case.report), "-o", str(case.report))
    assert res.exit_code == 1 and "scan report itself" in res.output  # type: ignore[attr-defined]


def test_escaping_helpers() -> None:
    assert show('<a href="javascript:x">') == "&lt;a href=&quot;javascript:x&quot;&gt;"
    assert show("a\u202eb\x1b[2J") == "a\\u202eb\\x1b[2J"
    s = json_for_script({"k": "</script><!--\u2028&"})
    assert "<" not in s and ">" not in s and "&" not in s and json.loads(s) == {"k": "</script><!--\u2028&"}
    css = css_string('x"}body{display:none}\\')
    assert css.startswith('"') and css.endswith('"') and '"' not in css[1:-1] and "{" not in css
    assert html.unescape(show("&amp;")) == "&amp;"


def test_case_links_sections(tmp_path: Path) -> None:
    """Per model file the images made with it and the LoRAs applied; per image the files
    that made it; named models not present (the generated case of test_case_links)."""
    from test_case_links import build_case

    root = tmp_path / "case"
    build_case(root)
    report = tmp_path / "r.jsonl"
    res = casegen.invoke("scan", str(root), "--no-banks", "-o", str(report), "--workers", "1")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    line = next(x for x in lines if x.get("schema") == "assay.case-links/1")
    image_links = [(r["path"], lk["path"]) for r in lines if r.get("schema") == "assay.file/1"
                   and r["kind"] != "model" for lk in r.get("case_links", [])]
    assert image_links and line["models"] and line["not_present"]
    out = tmp_path / "c.html"
    assert casegen.invoke("report", str(report), "-o", str(out)).exit_code == 0  # type: ignore[attr-defined]
    page = out.read_text()
    sec = page.split('id="t-image-links"', 1)[1].split("</table>", 1)[0]
    assert sec.count("<tr>") == len(image_links) + 1
    models = page.split('id="t-case-links"', 1)[1].split("</table>", 1)[0]
    for m in line["models"]:
        row = next(r for r in models.split("<tr>") if r.startswith(f"<td>{html.escape(m['path'])}</td>"))
        assert f'data-v="{m["image_count"]}"' in row
        for lora in m.get("loras_applied", []):
            assert html.escape(lora) in row
    absent = page.split('id="t-not-present"', 1)[1].split("</table>", 1)[0]
    assert absent.count("<tr>") == len(line["not_present"]) + 1


def test_match_rows_have_unique_ids_when_one_file_is_at_two_paths(tmp_path: Path) -> None:
    """The same file at two paths gives its matches the same record id (one review decision
    covers both copies): the page had two rows with one HTML id, id="m-RID" twice."""
    db = str(tmp_path / "b.sqlite3")
    case = tmp_path / "case"
    case.mkdir()
    data = b"a known file, copied\n" * 8
    for name in ("a.bin", "copy-of-a.bin"):
        (case / name).write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    assert casegen.invoke("--db", db, "bank", "create", "known", "--create").exit_code == 0  # type: ignore[attr-defined]
    assert casegen.invoke("--db", db, "bank", "add", "known", "--content-id", "k", "--md5", md5).exit_code == 0  # type: ignore[attr-defined]
    report = tmp_path / "r.jsonl"
    casegen.invoke("--db", db, "scan", str(case), "-o", str(report), "--workers", "1")
    page_html, _ = _render(casegen.Case(case, db, report, case / "a.bin"), tmp_path, report=report)
    p = Page()
    p.feed(page_html)
    ids = [a["id"] for _, a in p.tags if (a.get("id") or "").startswith("m-")]
    assert len(ids) == 2 and len(set(ids)) == 2, ids
    assert ids[1] == ids[0] + "-2"
