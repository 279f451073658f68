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
    assert n.text == "die strasse"
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
    # and diacritics of Latin letters are dropped: "cafe" matches too
    assert normalize(decomposed).text == normalize("café au lait").text == normalize("cafe au lait").text \
        == "cafe au lait"
    n = normalize(decomposed)
    assert n.original_span(3, 4) == (3, 5)  # "é" <- "e" + U+0301
    assert n.original_span(0, 5) == (0, 6)


def test_punctuation_dropped_dashes_and_slashes_are_spaces() -> None:
    text = "\u201cHe said \u2018no\u2019\u2014twice\u201d \u2013 and left; Naomi's and/or (it)."
    n = normalize(text)
    assert n.text == "he said no twice and left naomis and or it"
    assert n.text == normalize('"He said no -- twice" - and left, Naomis and or it').text
    i = n.text.index("left")
    assert _orig(text, 0, i + 4) == text[1:text.index("left") + 4]  # no span starts on a dropped quote


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
    assert "well known" in n.text  # not at a line end: a space
    assert "dash here" in n.text  # not between word characters: a space
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
                                                   "\u201c", "\u2014", "-\n", "½", "\U0001f600", "İ",
                                                   # look-alikes, invisibles, marks, quote markers
                                                   "а", "В", "Η", "ᴀ", "\u034f", "\ufe0f", "\U000e0041", "\u3164",
                                                   "\u0307", "\u0336", "क", "\u093c", "\u093f", ">", "\n> ", "> ",
                                                   "'", "*", "/", "\u200b"])


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


def test_look_alike_letters_of_other_scripts_are_the_latin_letter() -> None:
    # Unicode TR39 confusables: Cyrillic, Greek, Cherokee, small capitals, fancy-text letters
    latin = normalize("The Book of Ruth, a Psalm").text
    for fake in ("Тhе Вооk оf Ruth, а Рsаlm",  # Cyrillic Т е В о а Р
                 "Τhe Βοοk οf Ruth, a Ρsalm",  # Greek Τ Β ο Ρ
                 "ᴛʜᴇ ʙᴏᴏᴋ ᴏꜰ ʀᴜᴛʜ, ᴀ ᴘsᴀʟᴍ",  # small capitals
                 "\U0001f1f9he Book of Ruth, a Psalm",  # a regional indicator letter
                 "ＴＨＥ 𝐁𝐨𝐨𝐤 𝓸𝓯 Ruth, a Psalm"):  # fullwidth, mathematical (NFKC)
        n = normalize(fake)
        assert n.text == latin, fake
        assert n.original_span(0, len(n.text)) == (0, len(fake))


def test_other_scripts_keep_matching_themselves_in_any_case() -> None:
    # look-alikes are keyed by the case-folded letter: Cyrillic "в" is "b" like "В", so
    # Russian in capitals still matches Russian in small letters
    for a, b in (("Вот маяк и ВЕТЕР", "ВОТ МАЯК И ветер"), ("Αθήνα και ΘΕΣΣΑΛΟΝΙΚΗ", "ΑΘΗΝΑ ΚΑΙ θεσσαλονίκη"),
                 ("Ёлка и ель", "елка и ЕЛЬ")):
        assert normalize(a).text == normalize(b).text, (a, b)
    # letters without a Latin look-alike stay as they are
    assert normalize("жизнь").text == "жизhb"  # н is h (as Н looks like H), ь looks like b
    assert normalize("Жизнь").text == normalize("ЖИЗНЬ").text
    assert not normalize("смотритель маяка").text.isascii()


def test_invisible_characters_are_dropped() -> None:
    # default-ignorable code points: grapheme joiner, variation selectors, tags, Hangul
    # fillers, Mongolian variation selectors, bidi controls
    for mark in ("\u034f", "\ufe0f", "\ufe00", "\U000e0041", "\U000e0100", "\u3164", "\u115f", "\uffa0", "\u180b",
                 "\u202e", "\u2066", "\u200e", "\u2060", "\u200d"):
        text = f"in{mark}cred{mark}ible"
        n = normalize(text)
        assert n.text == "incredible", (mark, n.text)
        assert n.original_span(0, 2) == (0, 2) and n.original_span(2, 10) == (3, len(text))


def test_combining_marks_on_latin_dropped_script_marks_kept() -> None:
    for text in ("c\u0307a\u0307t\u0307", "c\u0336a\u0336t\u0336", "ça\u0323t\u0301\u0308\u0301", "c\u20dd\u0307at"):
        n = normalize(text)
        assert n.text == "cat", text
        assert n.original_span(0, 3) == (0, len(text))
    # Devanagari: a nukta and vowel signs are letters' parts, kept; a stray dot above is dropped
    assert normalize("\u0915\u093c\u093f").text == "\u0915\u093c\u093f"
    assert normalize("\u0915\u0307\u093f").text == "\u0915\u093f"


def test_quote_markers_at_line_starts_dropped() -> None:
    text = "the keeper wrote\n> in her green ledger\n> > every name,\n>  and a > b"
    n = normalize(text)
    assert n.text == "the keeper wrote in her green ledger every name and a > b"
    i = n.text.index("in her")
    assert _orig(text, i, i + len("in her green")) == "in her green"
    assert normalize("> at the start").text == "> at the start"  # not after a line break: kept
    assert normalize("wrap-\n> ped").text == "wrapped"


def test_markup_of_an_html_file_is_not_text() -> None:
    text = ("<p>The <b>keeper</b> of the <i>nor</i>thern light&nbsp;wrote&#44; &amp; "
            "&#x442;&eacute;a</p><br/>next<script>var x = 'keeper';</script><!-- note -->end")
    n = normalize(text, markup=True)
    assert n.text == " the keeper of the northern light wrote tea nextend"  # as a browser shows it
    i = n.text.index("keeper")
    assert text[slice(*n.original_span(i, i + 6))] == "keeper"
    i = n.text.index("northern")
    assert text[slice(*n.original_span(i, i + 8))] == "nor</i>thern"
    i = n.text.index("tea")
    assert text[slice(*n.original_span(i, i + 3))] == "&#x442;&eacute;a"  # a reference is one unit
    # without markup=True the same text is text (a plain-text output that shows tags)
    assert "<b>keeper< b>" in normalize(text).text
    # references to characters outside ASCII in an ASCII page (its table is of bytes)
    assert normalize("a &copy; &#1078;&#x436; &#0; b", markup=True).text == "a © жж \ufffd b"
    # a "<" that starts no tag, an unknown reference: text
    assert normalize("a < b &bogus; c", markup=True).text == "a < b bogus c"


_MARKUP_ALPHABET = st.sampled_from(["a", "b", "B", " ", "\n", "é", "e\u0301", "<b>", "</b>", "<p>", "<br/>",
                                    "&amp;", "&eacute;", "&#1072;", "&#1078;", "&copy;", "&nbsp;", "<!-- x -->", "<", ">", "&",
                                    "<script>s</script>", ",", "\u200b", "\n> "])


@settings(max_examples=300, deadline=None)
@given(st.lists(_MARKUP_ALPHABET, max_size=30).map("".join), st.data())
def test_markup_offset_map_points_back_to_text_that_normalises_the_same(text: str, data: st.DataObject) -> None:
    n = normalize(text, markup=True)
    assert list(n.ostart) == sorted(n.ostart) and list(n.oend) == sorted(n.oend)
    if not n.text.strip():
        return
    starts = [i for i in range(len(n.text)) if n.unit_start(i) and n.text[i] != " "]
    a = data.draw(st.sampled_from(starts))
    ends = [j for j in range(a + 1, len(n.text) + 1) if n.unit_start(j) and n.text[j - 1] != " "]
    b = data.draw(st.sampled_from(ends))
    s, e = n.original_span(a, b)
    assert normalize(text[s:e], markup=True).text == n.text[a:b], (text, a, b, text[s:e])
