"""Normalisation for text matching, and its map back to original code points."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from assay.text.normalize import normalize


def _orig(text: str, a: int, b: int) -> str:
    n = normalize(text)
    s, e = n.original_span(a, b)
    return text[s:e]


def test_case_folding_expands_sharp_s_and_maps_both_characters_to_one() -> None:
    n = normalize("Die Straße.")
    assert n.text == "die strasse."
    i = n.text.index("ss")
    assert n.original_span(i, i + 2) == (8, 9)  # "ß" in the original
    assert n.original_span(i, i + 1) == (8, 9)
    assert not n.unit_start(i + 1) and n.unit_start(i)
    assert _orig("Die Straße.", 4, 11) == "Straße"


def test_nfkc_expansions_ligatures_fractions_fullwidth() -> None:
    text = "ﬁne ½ ＡＢＣ ①"
    n = normalize(text)
    assert n.text == "fine 1⁄2 abc 1"
    assert n.original_span(0, 2) == (0, 1)  # "fi" <- "ﬁ"
    assert _orig(text, n.text.index("1⁄2"), n.text.index("1⁄2") + 3) == "½"
    assert _orig(text, n.text.index("abc"), n.text.index("abc") + 3) == "ＡＢＣ"


def test_combining_marks_compose_with_their_base() -> None:
    decomposed = "cafe\u0301 au lait"
    assert normalize(decomposed).text == normalize("café au lait").text == "café au lait"
    n = normalize(decomposed)
    assert n.original_span(3, 4) == (3, 5)  # "é" <- "e" + U+0301
    assert n.original_span(0, 5) == (0, 6)


def test_curly_quotes_and_dashes_unified() -> None:
    text = "\u201cHe said \u2018no\u2019\u2014twice\u201d \u2013 and left"
    n = normalize(text)
    assert n.text == "\"he said 'no'-twice\" - and left"
    assert len(n.text) == len(text)
    assert n.original_span(0, len(n.text)) == (0, len(text))


def test_whitespace_runs_collapse_and_map_to_the_whole_run() -> None:
    text = "one  \t two\r\n\r\nthree"
    n = normalize(text)
    assert n.text == "one two three"
    assert n.original_span(3, 4) == (3, 7)
    assert n.original_span(7, 8) == (10, 14)
    assert _orig(text, 0, len(n.text)) == text


def test_line_end_hyphenation_joins_words() -> None:
    text = "a remark-\nable fact, a well-known one, and a dash -\nhere"
    n = normalize(text)
    assert "remarkable" in n.text
    assert "well-known" in n.text  # not at a line end: kept
    assert "dash - here" in n.text  # not between word characters: kept
    i = n.text.index("remarkable")
    assert _orig(text, i, i + len("remarkable")) == "remark-\nable"
    assert _orig(text, i, i + len("remark")) == "remark"


def test_format_characters_dropped() -> None:
    text = "in\u00adcred\u200bible\ufeff"
    n = normalize(text)
    assert n.text == "incredible"
    assert n.original_span(0, len(n.text)) == (0, len(text) - 1)


def test_outside_the_basic_plane() -> None:
    text = "emoji \U0001f600 and 𝐁𝐨𝐥𝐝"
    n = normalize(text)
    assert n.text == "emoji \U0001f600 and bold"
    i = n.text.index("bold")
    assert _orig(text, i, i + 4) == "𝐁𝐨𝐥𝐝"


def test_empty_and_blank() -> None:
    assert normalize("").text == ""
    n = normalize(" \n\t ")
    assert n.text == " " and n.original_span(0, 1) == (0, 4)


_ALPHABET = st.sampled_from(list("abcAB ,.-") + ["\n", "\r\n", "  ", "ß", "ﬁ", "é", "e\u0301", "\u00ad",
                                                   "\u201c", "\u2014", "-\n", "½", "\U0001f600", "İ"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join), st.data())
def test_offset_map_points_back_to_text_that_normalises_the_same(text: str, data: st.DataObject) -> None:
    n = normalize(text)
    assert len(n.ostart) == len(n.oend) == len(n.text)
    assert all(0 <= s < e <= len(text) for s, e in zip(n.ostart, n.oend, strict=True))
    assert list(n.ostart) == sorted(n.ostart) and list(n.oend) == sorted(n.oend)
    if not n.text:
        return
    # any span of whole units maps to original text that normalises to that span
    starts = [i for i in range(len(n.text)) if n.unit_start(i)]
    a = data.draw(st.sampled_from(starts))
    ends = [j for j in range(a + 1, len(n.text) + 1) if n.unit_start(j)]
    b = data.draw(st.sampled_from(ends))
    s, e = n.original_span(a, b)
    assert normalize(text[s:e]).text == n.text[a:b], (text, a, b, text[s:e])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_normalising_twice_changes_nothing(text: str) -> None:
    n = normalize(text)
    assert normalize(n.text).text == n.text
