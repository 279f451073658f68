"""The checked text's second reading (assay.text.rewrite): which rewrites it undoes, what it
leaves alone, and its map back to the checked text's code points."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from assay.text.normalize import normalize
from assay.text.rewrite import second_reading


def _read(text: str) -> str | None:
    again = second_reading(text, normalize(text))
    return None if again is None else again.text


def test_letter_spacing_is_undone_where_word_gaps_are_wider() -> None:
    assert _read("I n  t h e  b e g i n n i n g  G o d") == "in the beginning god"
    assert _read("I n / t h e / b e g i n n i n g") == "in the beginning"
    assert _read("I n   t h e\nb e g i n n i n g ,   G o d") == "in the beginning god"
    assert _read("I-n t-h-e b-e-g-i-n-n-i-n-g G-o-d") == "in the beginning god"
    assert _read("I+n t+h+e b+e+g+i+n") == "in the begin"
    # punctuation written against a letter, a dash between words
    assert _read('"t h e  e a r t h.  A n d  -  s o"') == "the earth and so"
    assert _read("a well-known x-ray, a-b-c") is None
    # gaps all alike: where the words end is not written, nothing is guessed
    assert _read("i n t h e b e g i n n i n g") is None
    assert _read("a b c d e f") is None
    # a short run of single letters is ordinary text
    assert _read("I saw a  b  c then") is None


def test_digits_for_letters_are_folded_only_in_words_that_mix_them() -> None:
    assert _read("1n th3 b3g1nn1ng G0d cr34t3d") == "in the beginning god created"
    assert _read("h3ll0 w0r1d, he11o") == "hello worid hello"
    assert _read("70 53nd 7h3 l3773r5") == "to send the letters"
    # numbers, years, verse numbers and ordinals stay as written
    assert _read("In 1611, on the 4th of July, 3:16 and 21st, for $5") is None
    assert _read("a mon$ter") == "a monster"


def test_joined_words_line_numbers_bars_and_markup() -> None:
    assert _read("in_the_beginning_God") == "in the beginning god"
    assert _read("in.the.beginning.God") == "in the beginning god"
    assert _read("e.g. U.S.A. version 1.2.3") is None
    assert _read("1: In the beginning\n2: God created") == "in the beginning god created"
    assert _read("12. one line only") is None  # one numbered line: maybe a number of the text
    assert _read("12 men came\n40 days passed") is None  # numbers that do not count are text
    assert _read("x\n70 r3c31v3\n70 g1v3") == "x to receive to give"  # leetspeak, not numbering
    assert _read("1:1 In the beginning\n1:2 And the earth") == "in the beginning and the earth"
    assert _read("| in the | beginning |") == " in the beginning "
    assert _read("in the <b>beginning</b>&nbsp;God<br>created") == "in the beginning god created"


def test_symbols_between_words_and_note_marks() -> None:
    assert _read("In\U0001f44fthe\U0001f44fbeginning") == "in the beginning"
    assert _read("in \U0001f525 the \u2605 beginning \u2192 God \U0001f44d\U0001f3fd") == "in the beginning god "
    assert _read("the beginning[12] God and\u00b9\u00b2 the earth[a]") == "the beginning god and the earth"
    # letters written as symbols stay letters; a number's note stays; degrees are not a word
    assert _read("\u24b6\u24d1\u24d2 and \U0001f150, \U0001f1fa\U0001f1f8 and 1[2] x") is None


_ALPHABET = st.sampled_from(["a", "b", "A", " ", "  ", " / ", "\n", "1", "3", "0", "_", ".", "|", "@", "<b>", "</b>",
                             "&amp;", "&#44;", "12: ", "\n3. ", "é", "ß", "\u200b", ",", "-\n", "> "])


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_the_second_reading_maps_back_to_the_checked_text(text: str) -> None:
    again = second_reading(text, normalize(text))
    if again is None:
        return
    assert len(again.ostart) == len(again.oend) == len(again.text) and again.original_length == len(text)
    assert all(0 <= s < e <= len(text) for s, e in zip(again.ostart, again.oend, strict=True))
    assert again.starts is None or len(again.starts) == len(again.text)
    assert list(again.ostart) == sorted(again.ostart) and list(again.oend) == sorted(again.oend)
    # a letter or digit read comes from the same letter, its digit or a look-alike at its offset
    for ch, s, e in zip(again.text, again.ostart, again.oend, strict=True):
        if ch != " " and e - s == 1 and text[s].isascii() and text[s].isalnum():
            assert ch == text[s].lower() or text[s].isdigit(), (text, ch, text[s])


def test_gaps_all_alike_take_the_word_ends_segment_finds() -> None:
    import numpy as np

    def segment(at: list[int], covered: slice) -> object:
        def f(letters: np.ndarray, lead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            spaces = np.zeros(len(letters), dtype=bool)
            spaces[at] = True
            cov = np.zeros(len(letters), dtype=bool)
            cov[covered] = True
            return spaces, cov
        return f

    def read(text: str, seg: object) -> str | None:
        again = second_reading(text, normalize(text), segment=seg)  # type: ignore[arg-type]
        return None if again is None else again.text

    assert read("x i n t h e b e g i n n i n g y", segment([3, 6], slice(1, 15))) == "x in the beginning y"
    # letters of two bytes: the space goes before the letter whose first byte it is given
    assert normalize("λξψ").text == "λξψ"
    assert read("λ ξ ψ , λ ξ ψ", segment([6], slice(0, 12))) == "λξψ λξψ"
    # nothing found: the run stays as written
    assert read("i n t h e b e g", segment([], slice(0, 0))) is None
    # words written with no space between them get the spaces put in, each a unit of its own
    text = "x InTheBeginningGodCreatedTheHeaven y"
    again = second_reading(text, normalize(text), segment=segment([3, 6, 15, 18, 25, 28], slice(1, 34)))
    assert again is not None and again.text == "x in the beginning god created the heaven y"
    for i, ch in enumerate(again.text):
        assert again.unit_start(i)
        if ch != " ":
            assert again.oend[i] - again.ostart[i] == 1 and text[again.ostart[i]].lower() == ch
        elif again.ostart[i] == again.oend[i]:  # put in: between the letters it separates
            assert text[again.ostart[i] - 1].isalpha() and text[again.ostart[i]].isupper()


def test_text_beyond_u3000_is_not_white_space() -> None:
    # CJK and emoji are not white space to the look-outs: words joined by dots written
    # against ideographs are found (the look-outs once cut the chunk at them)
    assert _read("日本語 in.the.beginning.God 日本") == "日本語 in the beginning god 日本"
    assert _read("日本in.the.beginning") == "日本in the beginning"
