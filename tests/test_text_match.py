"""Exact spans: the suffix-array matcher against a brute-force matcher on random small
corpora (no span shorter than the minimum, none missed, every span verified in the
original texts at the reported offsets), shards, and the index's own guarantees."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.text.index import TextIndex
from assay.text.ingest import SourceError, Work
from assay.text.match import check, exact_matches
from assay.text.normalize import Normalized, normalize

# Few distinct tokens, so that random texts share many passages; some normalise
# specially (case, ß, ligatures, quotes, dashes, hyphenation, white space, marks).
TOKENS = ["the ", "cat ", "sat ", "on ", "mat", ". ", "The ", "CAT ", "  ", "\n", "-\n", "ß", "ss",
          "ﬁ", "fi", "\u201cq\u201d", '"q"', "\u2014", "-", "é", "e\u0301", "\u00ad", "x", "y", "z", "ab"]
piece = st.lists(st.sampled_from(TOKENS), min_size=0, max_size=30).map("".join)


def _work(i: int, text: str) -> Work:
    return Work(f"w{i}", f"Work {i}", text, f"{i:064x}", f"w{i}.txt", "text")


def brute_force(query: Normalized, works: dict[str, Normalized], min_chars: int) -> set[tuple[int, int, str, int]]:
    """Every maximal common substring of at least min_chars, trimmed to whole units on
    both sides, of white space at its ends and to whole words of the work, by comparing
    every pair of positions."""
    q = query.text
    found = set()
    for wid, wn in works.items():
        w = wn.text
        for i in range(len(q)):
            for j in range(len(w)):
                if q[i] != w[j] or (i > 0 and j > 0 and q[i - 1] == w[j - 1]):
                    continue
                n = 0
                while i + n < len(q) and j + n < len(w) and q[i + n] == w[j + n]:
                    n += 1
                a, b, e = i, j, i + n
                while a < e and (not query.unit_start(a) or not wn.unit_start(b)):
                    a, b = a + 1, b + 1
                while e > a and (not query.unit_start(e) or not wn.unit_start(b + e - a)):
                    e -= 1
                while a < e and q[a] == " ":
                    a, b = a + 1, b + 1
                while e > a and q[e - 1] == " ":
                    e -= 1
                # cut back to whole words of the work (a word of up to 40 characters)
                if b > 0 and w[b - 1] != " " and (sp := q.find(" ", a, min(e, a + 40))) >= 0:
                    a, b = sp + 1, b + sp + 1 - a
                if b + e - a < len(w) and w[b + e - a] != " " and (sp := q.rfind(" ", max(a, e - 40), e)) >= 0:
                    e = sp
                if e - a >= min_chars:
                    found.add((a, e, wid, b))
    return found


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(works=st.lists(piece, min_size=1, max_size=5), query_parts=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 200),
       st.integers(0, 60), piece), max_size=5), min_chars=st.integers(1, 14), shard_bytes=st.sampled_from([1, 40, 1 << 20]))
def test_exact_spans_equal_brute_force(works: list[str], query_parts: list[tuple[int, int, int, str]],
                                       min_chars: int, shard_bytes: int) -> None:
    works = [w for w in works if normalize(w).text] or ["the cat sat"]
    # the query: pieces copied from the works, with random text between them
    query = ""
    for wi, start, length, filler in query_parts:
        src = works[wi % len(works)]
        query += src[start % (len(src) + 1):][:length] + filler
    with tempfile.TemporaryDirectory() as d:
        ix = TextIndex.create(Path(d) / "ix")
        res = ix.add([_work(i, t) for i, t in enumerate(works)], shard_bytes=shard_bytes)
        assert not res.errors
        ix = TextIndex.open(Path(d) / "ix")
        qnorm, found = exact_matches(ix, query, min_chars)
        got = {(a, e, s.work, s.norm_start) for a, e, s in found}
        assert len(got) == len(found), "a match reported twice"
        originals = {f"w{i}": t for i, t in enumerate(works)}
        expected = brute_force(normalize(query), {k: normalize(v) for k, v in originals.items()}, min_chars)
        assert got == expected
        for a, e, s in found:
            assert e - a >= min_chars
            qs, qe = qnorm.norm.original_span(a, e)
            # verified against the original texts at the reported offsets
            assert normalize(originals[s.work][s.start:s.end]).text == qnorm.norm.text[a:e]
            assert normalize(query[qs:qe]).text == qnorm.norm.text[a:e]
        # the public result agrees: every span verified, coverage within bounds
        result = check(ix, query, min_chars=min_chars, near=False)
        for sp in result.spans:
            assert sp.end - sp.start >= 1 and sp.kind == "exact"
            for s in sp.sources:
                assert normalize(originals[s.work][s.start:s.end]).text == normalize(query[sp.start:sp.end]).text
        assert 0.0 <= result.coverage_exact == result.coverage <= 1.0


def test_a_passage_in_several_works_and_several_times_lists_every_place(tmp_path: Path) -> None:
    passage = "It is a truth universally acknowledged, that a single reader in possession of a good index"
    works = [_work(0, f"Opening. {passage}. Middle. {passage}! End."), _work(1, f"{passage}"),
             _work(2, "Nothing of the kind is written in this one, not a single word of it.")]
    ix = TextIndex.create(tmp_path / "ix")
    ix.add(works, shard_bytes=150)  # several shards
    assert len(ix.manifest["shards"]) >= 2
    query = f"The model wrote: {passage.upper()} and stopped."
    res = check(TextIndex.open(tmp_path / "ix"), query, min_chars=50, near=False)
    places = {(s.work, s.start, s.end) for sp in res.spans for s in sp.sources}
    assert ("w1", 0, len(passage)) in places
    w0 = works[0].text
    starts = [i for i in range(len(w0)) if w0.startswith(passage, i)]
    assert len(starts) == 2
    for i in starts:
        assert any(w == "w0" and s <= i and e >= i + len(passage) for w, s, e in places)
    assert not any(w == "w2" for w, _, _ in places)
    longest = res.longest
    assert longest is not None
    # punctuation is not matched: "wrote: IT IS" meets "Middle. It is" in its last letter,
    # but a span starts on a word of the work: never "e: IT IS ..." from "Middle. It is"
    assert all(query[sp.start:sp.end].lower() == passage.lower() for sp in res.spans), \
        [query[sp.start:sp.end] for sp in res.spans]
    assert res.works[0].coverage >= len(passage) / len(query)


def test_repetition_and_counting_found_in_a_work_are_not_reproduction(tmp_path: Path) -> None:
    """A run of one word, a rule of dashes, zeros, a list of numbers or a table of
    chapters is in many works and in many texts nobody copied: none is a passage found
    (each was reported, as a span or hundreds of them, before); a real sentence beside
    them still is."""
    prose = ("It is a truth universally acknowledged, that a single reader in possession of a good "
             "index must be in want of a catalogue.")
    toc = "\n".join(f"CHAPTER {r}." for r in "I II III IV V VI VII VIII IX X XI XII XIII XIV XV XVI XVII XVIII".split())
    numbers = " ".join(str(i) for i in range(1, 120))
    junk = "the " * 80 + "\n" + "-" * 200 + "\n" + "a a a a " * 30 + "\n" + "0" * 200
    ix = TextIndex.create(tmp_path / "ix")
    ix.add([_work(0, f"{toc}\n\nSome opening words of the book.\n{junk}\n{numbers}\n{prose}\nThe end.")])
    ix = TextIndex.open(tmp_path / "ix")
    other = "A model wrote this about engines, oceans and tigers, nothing copied at all. "
    for text in (other + junk + other, other + numbers + other, other + toc.replace("\n", " ") + other):
        for near in (True, False):
            res = check(ix, text, min_chars=50, near=near)
            assert res.spans == [] and res.coverage == 0.0 and res.works == [], text[75:120]
    text = other + junk + prose + other
    res = check(ix, text, min_chars=50)
    assert [text[sp.start:sp.end] for sp in res.spans] == [prose.rstrip(".")]


def test_shorter_than_the_minimum_is_not_reported(tmp_path: Path) -> None:
    ix = TextIndex.create(tmp_path / "ix")
    ix.add([_work(0, "abcdefghij klmnopqrst uvwxyz 0123456789 and more words follow here")])
    ix = TextIndex.open(tmp_path / "ix")
    query = "xx abcdefghij klmnopqrst uvwxyz yy"  # 28 shared characters between the spaces
    assert check(ix, query, min_chars=29, near=False).spans == []
    (span,) = check(ix, query, min_chars=28, near=False).spans
    assert query[span.start:span.end] == "abcdefghij klmnopqrst uvwxyz"


def test_texts_shorter_than_the_minimum_but_longer_than_a_piece(tmp_path: Path) -> None:
    ix = TextIndex.create(tmp_path / "ix")
    ix.add([_work(0, "abcdefghij klmnopqrst uvwxyz 0123456789 and more words follow here")])
    ix = TextIndex.open(tmp_path / "ix")
    for text in ("abcdefghij klmnopqrst uvwxyz 0123456789", "short", ""):
        res = check(ix, text, min_chars=50)  # near-verbatim pieces are 25: a text of 25-49 has some
        assert res.spans == [] and res.coverage == 0.0


def test_empty_index_and_empty_text(tmp_path: Path) -> None:
    ix = TextIndex.create(tmp_path / "ix")
    assert ix.works() == []
    res = check(ix, "anything at all, long enough to be checked against nothing in particular")
    assert res.spans == [] and res.coverage == 0.0 and res.works == []
    assert check(ix, "").to_json()["chars"] == 0


def test_add_keeps_the_index_valid_and_refuses_duplicate_ids(tmp_path: Path) -> None:
    ix = TextIndex.create(tmp_path / "ix")
    r1 = ix.add([_work(0, "first work text " * 5), SourceError("bad.pdf", "unreadable PDF")])
    assert [w.id for w in r1.added] == ["w0"] and r1.errors == [{"source": "bad.pdf", "error": "unreadable PDF"}]
    r2 = ix.add([_work(0, "another text with the same id"), _work(1, "second work text " * 5)])
    assert [w.id for w in r2.added] == ["w1"]
    assert "already in the index" in r2.errors[0]["error"]
    again = TextIndex.open(tmp_path / "ix")
    assert [w.id for w in again.works()] == ["w0", "w1"]
    assert json.loads((tmp_path / "ix" / "index.json").read_text())["shards"] == ["000001", "000002"]
    assert not [p for p in (tmp_path / "ix").iterdir() if p.name.startswith(".building")]


def test_not_an_index(tmp_path: Path) -> None:
    from assay.errors import AssayError

    with pytest.raises(AssayError, match="no text index"):
        TextIndex.open(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("x")
    with pytest.raises(AssayError, match="not a text index"):
        TextIndex.create(tmp_path / "x")


def test_a_span_starts_and_ends_on_words_of_the_work(tmp_path: Path) -> None:
    """The last letters of a word before a passage in the work ("darkness. And God") met
    the last letters of the checked text's word ("it is -- And God"): the span was
    reported from "s -- And God", its place in the work a letter inside "darkness"; and
    a passage ending "...the light day" was reported from "twilight daybreak". Spans now
    start and end on whole words of the work, both offsets moved alike."""
    verse = "and God called the light Day, and the darkness he called Night, and the evening was"
    work = f"He divided the light from the darkness. {verse} the first day of the twilight daybreak."
    ix = TextIndex.create(tmp_path / "ix")
    ix.add([_work(0, work)])
    ix = TextIndex.open(tmp_path / "ix")
    query = f"Sure, here it is -- {verse.replace(',', '')} the first day of the light day ok"
    res = check(ix, query, min_chars=30)
    assert [sp.kind for sp in res.spans] == ["exact"], res.spans
    sp = res.spans[0]
    assert query[sp.start:sp.end] == f"{verse.replace(',', '')} the first day of the"
    (src,) = sp.sources
    assert work[src.start:src.end] == f"{verse} the first day of the"
    assert src.start == work.index(verse)


def test_a_refrain_inside_a_verbatim_passage_is_not_counted_again(tmp_path: Path) -> None:
    """A sentence the work repeats with one word changed ("...were the first day", "...the
    second day") is found nearly at every other place when the checked text copies one
    place verbatim: each was a "near-verbatim passage" more. Inside a passage found
    verbatim in the same work they are left out; a near place in another work stays."""
    refrain = "And the evening and the morning were the {} day, and God saw the work that was made"
    days = ["first", "second", "third", "fourth", "fifth"]
    filler = " Then other words of the story follow here, each verse unlike the rest of them. "
    work = filler.join(refrain.format(d) for d in days)
    other = "A different book. " + refrain.format("sixth") + " The end of it."
    ix = TextIndex.create(tmp_path / "ix")
    ix.add([_work(0, work), _work(1, other)])
    ix = TextIndex.open(tmp_path / "ix")
    copied = refrain.format("first") + filler.rstrip()
    res = check(ix, f"The model wrote: {copied} and no more.", min_chars=40)
    in_w0 = [sp for sp in res.spans if any(s.work == "w0" for s in sp.sources)]
    assert len(in_w0) == 1 and in_w0[0].kind == "exact" and len(in_w0[0].sources) == 1, in_w0
    assert in_w0[0].sources[0].start == 0  # the first day's verse, the one copied
    # the other places of the refrain in w0 are not passages more; w1's place still is
    in_w1 = [sp for sp in res.spans if any(s.work == "w1" for s in sp.sources)]
    assert in_w1 and all({s.work for s in sp.sources} == {"w1"} for sp in in_w1)
