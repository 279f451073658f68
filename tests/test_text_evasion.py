"""The rewrites someone uses to hide a copied passage from `assay text check`: each is
applied to two passages planted in original prose, and the passages must still be found
(readable output and --json) at offsets into the output file as written, in the right
work at the right place; and none of the rules that catch them may add a span (texts in
other scripts, unrelated works). The texts are written for these tests."""

from __future__ import annotations

import json
import random
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.text.normalize import normalize

runner = CliRunner()

KEEPER = ("The keeper of the northern light wrote in her ledger, every evening before supper, the "
          "names of the ships that passed her rock; and in the winter, when the ice came down from "
          "the north and few captains dared the strait, she wrote instead of the gulls, the weather, "
          "and the letters she meant to send to her sister in the town across the water.\n\n"
          "Her sister never answered. The letters went out with the supply boat each spring, tied "
          "with blue string, and the boatman - a silent man called Orrin - carried them up the hill "
          "to the post office himself, or so he said; whether they were ever delivered, nobody knew.\n")
MILLER = ("A miller on the western river kept three cats, a lame horse and a book of accounts in "
          "which he wrote nothing but the price of flour; travellers who stopped at his door were "
          "given bread and told, without being asked, that the river had been higher in his father's time.\n")
MAYAK = ("Старый смотритель маяка каждый вечер записывал в зелёную книгу названия кораблей, "
         "которые проходили мимо его скалы. Зимой книга худела, потому что редкий капитан решался "
         "идти проливом, когда с севера спускался лёд.\n")
PHAROS = ("Ο φύλακας του φάρου έγραφε κάθε βράδυ στο πράσινο βιβλίο τα ονόματα των πλοίων που "
          "περνούσαν από τον βράχο του, και τον χειμώνα έγραφε για τους γλάρους και τον καιρό.\n")
WORKS = {"keeper": KEEPER, "miller": MILLER, "mayak": MAYAK, "pharos": PHAROS}
PROSE = ["Sure! Here is a short summary of the story you asked about, with a few quotations.",
         "That is the part most readers remember, although the ending is quieter than it sounds.",
         "I hope this helps with your essay; let me know if you want the themes in a table."]
# two passages of the keeper (the second over a paragraph break), one of the miller
PASSAGES = [("keeper", KEEPER.index("The keeper"), KEEPER.index(" she wrote instead")),
            ("keeper", KEEPER.index("the letters she meant"), KEEPER.index(" or so he said")),
            ("miller", MILLER.index("a book of accounts"), MILLER.index(" travellers"))]

CYRILLIC = dict(zip("aeopcxyisjhABEHKMOPCTX", "аеорсхуіѕјһАВЕНКМОРСТХ", strict=True))
GREEK = dict(zip("oivuABEIKMOPTXYZ", "οινυΑΒΕΙΚΜΟΡΤΧΥΖ", strict=True))


def _swap(table: dict[str, str]) -> Callable[[str, random.Random], str]:
    return lambda s, rng: "".join(table.get(c, c) if rng.random() < 0.6 else c for c in s)


def _between_letters(chars: str) -> Callable[[str, random.Random], str]:
    def f(s: str, rng: random.Random) -> str:
        return "".join(c + (rng.choice(chars) if c.isalpha() and rng.random() < 0.5 else "") for c in s)
    return f


def _wrap_hyphenated(s: str, rng: random.Random) -> str:
    lines, line = [], ""
    for w in s.split():
        if len(line) + len(w) > 50 and len(w) > 5:
            lines.append(f"{line} {w[:3]}-")
            line = w[3:]
        else:
            line = f"{line} {w}" if line else w
    return "\n".join([*lines, line])


def _emphasis(s: str, rng: random.Random) -> str:
    return re.sub(r"\b\w{5,}\b", lambda m: rng.choice(["*{}*", "**{}**", "_{}_"]).format(m.group()), s)


# evasion -> (rewrite of a passage, encoding of the output file); each was missed before
EVASIONS: dict[str, Callable[[str, random.Random], str]] = {
    "cyrillic look-alikes": _swap(CYRILLIC),
    "greek look-alikes": _swap(GREEK),
    "small capitals": lambda s, rng: s.translate(str.maketrans("abdeghijklmnoprtuy", "ᴀʙᴅᴇɢʜɪᴊᴋʟᴍɴᴏᴘʀᴛᴜʏ")),
    "combining dots": lambda s, rng: "".join(c + "\u0307" if c.isalpha() else c for c in s),
    "strike-through marks": lambda s, rng: "".join(c + "\u0336" if c != " " else c for c in s),
    "grapheme joiners and variation selectors": _between_letters("\u034f\ufe0f\ufe00\U000e0041\u180b"),
    "hangul fillers": _between_letters("\u3164\u115f\uffa0"),
    "punctuation removed": lambda s, rng: re.sub(r"[^\w\s]", "", s),
    "punctuation changed": lambda s, rng: s.translate(str.maketrans({",": ";", ";": ".", ".": "!", "-": "--", "'": "’"})),
    "markdown emphasis": _emphasis,
    "quoted e-mail lines": lambda s, rng: "\n".join("> " + ln for ln in textwrap.wrap(s, 50)),
    "quoted and hyphenated": lambda s, rng: _wrap_hyphenated(s, rng).replace("\n", "\n> > "),
    "everything at once": lambda s, rng: _swap(CYRILLIC)(_between_letters("\u200b\u034f")(re.sub(
        r"[,;.]", "", s), rng), rng).replace(" ", "\u00a0"),
}


def _index(tmp_path: Path) -> Path:
    works = tmp_path / "works"
    works.mkdir()
    for name, text in WORKS.items():
        (works / f"{name}.txt").write_text(text, encoding="utf-8")
    res = runner.invoke(app, ["text", "index", str(works), "--index", str(tmp_path / "ix")])
    assert res.exit_code == 0, res.output
    return tmp_path / "ix"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _index(tmp_path_factory.mktemp("evasion"))


def _output(rewrite: Callable[[str, random.Random], str]) -> tuple[str, list[tuple[int, int, str, int, int]]]:
    rng = random.Random(3)
    text, planted = PROSE[0] + "\n\n", []
    for (work, a, b), prose in zip(PASSAGES, PROSE[1:] + [""], strict=True):
        passage = rewrite(WORKS[work][a:b], rng)
        planted.append((len(text), len(text) + len(passage), work, a, b))
        text += passage + "\n\n" + prose + "\n\n"
    return text, planted


def _check(index: Path, out: Path, *extra: str) -> tuple[dict, str]:
    res = runner.invoke(app, ["text", "check", str(out), "--index", str(index), "--json", *extra])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    readable = runner.invoke(app, ["text", "check", str(out), "--index", str(index)], env={"COLUMNS": "200"})
    assert readable.exit_code == 0 and "Traceback" not in readable.output, readable.output
    return json.loads(res.stdout), readable.stdout


def _blank(text: str, a: int, b: int) -> bool:
    """Whether text[a:b] normalises to nothing but white space, in its context."""
    n = normalize(text)
    return all(ch == " " for ch, o in zip(n.text, n.ostart, strict=True) if a <= o < b)


def _assert_found(obj: dict, readable: str, text: str, planted: list[tuple[int, int, str, int, int]]) -> None:
    for s, e, work, a, b in planted:
        (sp,) = [sp for sp in obj["spans"] if sp["start"] < e and sp["end"] > s and sp["kind"] == "exact"]
        # the whole passage but for characters that normalise to nothing at its ends
        assert _blank(text, s, sp["start"]) and _blank(text, sp["end"], e), (text[s:sp["start"]], text[sp["end"]:e])
        (src,) = sp["sources"]
        assert src["work"] == work and a <= src["start"] and src["end"] <= b
        assert _blank(WORKS[work], a, src["start"]) and _blank(WORKS[work], src["end"], b)
    # the offsets are those of the output file as written, and of the work's original
        assert normalize(text[sp["start"]:sp["end"]]).text == normalize(WORKS[work][src["start"]:src["end"]]).text
        assert f"in {work} ({work}) at {src['start']:,}-{src['end']:,}" in readable
        assert f"[{sp['start']:,}-{sp['end']:,}]" in readable
    # nothing outside the passages, nothing from the works in other scripts
    for sp in obj["spans"]:
        assert any(sp["start"] < e and sp["end"] > s for s, e, *_ in planted), sp
        assert {x["work"] for x in sp["sources"]} <= {"keeper", "miller"}


@pytest.mark.parametrize("name", list(EVASIONS))
def test_an_evasion_still_finds_the_passages_at_offsets_of_the_file(index: Path, tmp_path: Path, name: str) -> None:
    text, planted = _output(EVASIONS[name])
    out = tmp_path / "out.txt"
    out.write_bytes(text.encode("utf-8"))
    obj, readable = _check(index, out)
    _assert_found(obj, readable, text, planted)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_evasions_in_a_utf16_file_with_crlf(index: Path, tmp_path: Path, encoding: str) -> None:
    lf, planted_lf = _output(lambda s, rng: EVASIONS["quoted e-mail lines"](_swap(GREEK)(s, rng), rng))
    text = lf.replace("\n", "\r\n")
    planted = [(s + lf[:s].count("\n"), e + lf[:e].count("\n"), *rest) for s, e, *rest in planted_lf]
    out = tmp_path / "out.txt"
    out.write_bytes(text.encode(encoding))
    obj, readable = _check(index, out)
    _assert_found(obj, readable, text, planted)


def test_other_scripts_match_themselves_and_nothing_else(index: Path, tmp_path: Path) -> None:
    # Russian and Greek texts are found in the Russian and Greek works, whatever their case,
    # and never in an English work, although most of their letters now have Latin look-alikes.
    # As usually written in capitals: Russian "Ё" as "Е", Greek without accents.
    import unicodedata

    out = tmp_path / "out.txt"
    ru = MAYAK[:MAYAK.index(" Зимой")]
    el = PHAROS[:PHAROS.index(", και")]
    caps = "".join(c for c in unicodedata.normalize("NFD", el.upper()) if not unicodedata.combining(c))
    text = f"Вот отрывок: {ru.upper().replace('Ё', 'Е')}\n\nΚαι ένα άλλο: {caps}\n\n{PROSE[2]}"
    out.write_text(text, encoding="utf-8")
    obj, _ = _check(index, out)
    got = sorted((sp["kind"], [x["work"] for x in sp["sources"]]) for sp in obj["spans"])
    assert got == [("exact", ["mayak"]), ("exact", ["pharos"])]
    for sp in obj["spans"]:
        (src,) = sp["sources"]
        work = WORKS[src["work"]]
        assert text[sp["start"]:sp["end"]] != work[src["start"]:src["end"]]
        assert normalize(text[sp["start"]:sp["end"]]).text == normalize(work[src["start"]:src["end"]]).text
        assert src["start"] == 0 and src["end"] >= len(ru if src["work"] == "mayak" else el) - 1
    # English prose written wholly in look-alike letters of another script is still English:
    # it matches the English work only where it copies it, and prose of its own matches nothing
    fake = _swap(CYRILLIC)(PROSE[1] + " " + PROSE[2], random.Random(1))
    out.write_text(fake, encoding="utf-8")
    obj, _ = _check(index, out, "--min-chars", "20")
    assert obj["spans"] == []


def test_an_index_of_the_old_normalisation_is_refused(index: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(index, old)
    manifest = json.loads((old / "index.json").read_text())
    (old / "index.json").write_text(json.dumps({**manifest, "format": "assay.text-index/1"}))
    out = tmp_path / "out.txt"
    out.write_text(KEEPER[:300], encoding="utf-8")
    for args in (["text", "check", str(out), "--index", str(old)], ["text", "works", "--index", str(old)],
                 ["text", "add", str(out), "--index", str(old)]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and "Traceback" not in res.output, (args, res.output)
        msg = " ".join(res.stderr.split())
        assert "format assay.text-index/1" in msg and "rebuild it from its sources" in msg, msg


def _html(s: str, rng: random.Random) -> str:
    s = re.sub(r"\b\w{4,}\b", lambda m: rng.choice(["<b>{}</b>", "<em>{}</em>", "<span class=x>{}</span>", "{}"])
               .format(m.group()), s)
    return s.replace(",", "&#44;").replace(" the ", " the&nbsp;").replace("\n\n", "</p>\n<p>")


def test_an_html_output_is_read_without_its_markup_at_offsets_of_the_file(index: Path, tmp_path: Path) -> None:
    # tags around words, references for commas and spaces: the passages are found in the
    # .html file at offsets of the file as written (a plain .txt with the same content is text)
    text, planted = _output(_html)
    page = f"<!DOCTYPE html>\n<html><head><title>Answer</title><style>p {{margin: 0}}</style></head><body>\n{text}</body></html>"
    shift = page.index(text)
    planted = [(s + shift, e + shift, *rest) for s, e, *rest in planted]
    out = tmp_path / "answer.html"
    out.write_text(page, encoding="utf-8")
    obj, readable = _check(index, out)
    n = normalize(page, markup=True)
    for s, e, work, a, b in planted:
        (sp,) = [sp for sp in obj["spans"] if sp["start"] < e and sp["end"] > s and sp["kind"] == "exact"]
        assert all(ch == " " for ch, o in zip(n.text, n.ostart, strict=True) if s <= o < sp["start"] or sp["end"] <= o < e)
        (src,) = sp["sources"]
        assert src["work"] == work and _blank(WORKS[work], a, src["start"]) and _blank(WORKS[work], src["end"], b)
        assert normalize(page[sp["start"]:sp["end"]], markup=True).text == normalize(WORKS[work][src["start"]:src["end"]]).text
        assert f"in {work} ({work}) at {src['start']:,}-{src['end']:,}" in readable
    assert len(obj["spans"]) == len(planted)
    # the same page saved as text: found by the second reading (markup undone), at the same offsets
    txt = tmp_path / "answer.txt"
    txt.write_text(page, encoding="utf-8")
    obj_txt, _ = _check(index, txt)
    assert [(sp["start"], sp["end"], sp["sources"]) for sp in obj_txt["spans"]] == \
        [(sp["start"], sp["end"], sp["sources"]) for sp in obj["spans"]]


# Rewrites the shared normalisation cannot undo without merging words or numbers in every
# text; the checked text's second reading (assay.text.rewrite) undoes them. Each was missed
# before it.
def _letter_spaced(sep: str) -> Callable[[str, random.Random], str]:
    return lambda s, rng: sep.join(" ".join(w) for w in s.split(" "))


def _leet(s: str, rng: random.Random) -> str:
    table = str.maketrans("eaoitsEAOITS", "340175340175")
    return re.sub(r"\w{2,}", lambda m: m.group().translate(table), s)


def _numbered(fmt: str) -> Callable[[str, random.Random], str]:
    return lambda s, rng: "\n".join(fmt.format(i + 1, line) for i, line in enumerate(textwrap.wrap(s, 50)))


def _html_in_text(s: str, rng: random.Random) -> str:
    return re.sub(r"\b(\w{5,})\b", r"<b>\1</b>", s).replace(",", "&#44;").replace(". ", ".<br>").replace(" the ", " the&nbsp;")


SECOND_READING: dict[str, Callable[[str, random.Random], str]] = {
    "letter-spaced, words by two spaces": _letter_spaced("  "),
    "letter-spaced, words by three spaces and line breaks":
        lambda s, rng: "\n".join(_letter_spaced("   ")(ln, rng) for ln in textwrap.wrap(s, 30)),
    "letter-spaced, words by slashes": _letter_spaced(" / "),
    "letters joined by hyphens, words by spaces": lambda s, rng: " ".join("-".join(w) for w in s.split(" ")),
    "letters joined by plus signs, words by spaces": lambda s, rng: " ".join("+".join(w) for w in s.split(" ")),
    "letter-spaced, every gap alike": _letter_spaced(" "),
    "letter-spaced, every gap alike, wrapped":
        lambda s, rng: "\n".join(_letter_spaced(" ")(ln, rng) for ln in textwrap.wrap(s, 30)),
    "letter-spaced, words by bars": _letter_spaced(" | "),
    "spaces removed": lambda s, rng: s.replace(" ", ""),
    "camel case": lambda s, rng: "".join(w[:1].upper() + w[1:] for w in s.split(" ")),
    "leetspeak": _leet,
    "leetspeak, letter-spaced": lambda s, rng: _letter_spaced("  ")(_leet(s, rng), rng),
    "line numbers": _numbered("{}: {}"),
    "numbered list": _numbered("{}. {}"),
    "cat -n": _numbered("{:6d}\t{}"),
    "words joined by underscores": lambda s, rng: s.replace(" ", "_"),
    "words joined by dots": lambda s, rng: s.replace(" ", "."),
    "html in a text file": _html_in_text,
    "emoji between words": lambda s, rng: "\U0001f44f".join(s.split(" ")),
    "stars, arrows and emoji sprinkled": lambda s, rng: re.sub(
        r"(\w{5,})", lambda m: m.group() + rng.choice([" \u2605", " \u2192", "\U0001f525", " \U0001f44d\U0001f3fd"]), s),
    "note marks": lambda s, rng: re.sub(r"(\w{6,})", lambda m: m.group() + rng.choice(["[1]", "[23]", "\u00b9", "\u00b2\u00b3"]), s),
    "table bars": lambda s, rng: "\n".join(f"| {ln} |" for ln in textwrap.wrap(s, 50)),
}


def _second_reading_found(obj: dict, index: Path, text: str, planted: list[tuple[int, int, str, int, int]]) -> None:
    from assay.text.index import TextIndex
    from assay.text.match import _segmenter
    from assay.text.rewrite import second_reading

    again = second_reading(text, normalize(text), segment=_segmenter(TextIndex.open(index), 50))
    assert again is not None
    for s, e, work, a, b in planted:
        (sp,) = [sp for sp in obj["spans"] if sp["start"] < e and sp["end"] > s and sp["kind"] == "exact"]
        # the whole passage but for what reads as nothing (or a line number) at its ends
        assert all(ch == " " for ch, o in zip(again.text, again.ostart, strict=True)
                   if s <= o < sp["start"] or sp["end"] <= o < e), (text[s:sp["start"]], text[sp["end"]:e])
        (src,) = sp["sources"]
        assert src["work"] == work
        assert _blank(WORKS[work], a, src["start"]) and _blank(WORKS[work], src["end"], b)
        # the work's offsets slice its original text exactly: normalised, that slice is what
        # the second reading of the output reads over the span
        read = "".join(ch for ch, o in zip(again.text, again.ostart, strict=True) if sp["start"] <= o < sp["end"])
        assert read.strip() == normalize(WORKS[work][src["start"]:src["end"]]).text
    for sp in obj["spans"]:
        assert any(sp["start"] < e and sp["end"] > s for s, e, *_ in planted), sp
        assert {x["work"] for x in sp["sources"]} <= {"keeper", "miller"}


@pytest.mark.parametrize("name", list(SECOND_READING))
def test_a_rewrite_undone_by_the_second_reading_finds_the_passages(index: Path, tmp_path: Path, name: str) -> None:
    text, planted = _output(SECOND_READING[name])
    out = tmp_path / "out.txt"
    out.write_bytes(text.encode("utf-8"))
    obj, readable = _check(index, out)
    _second_reading_found(obj, index, text, planted)
    for sp in obj["spans"]:
        assert f"[{sp['start']:,}-{sp['end']:,}]" in readable


@pytest.mark.parametrize("name", list(SECOND_READING))
def test_the_second_reading_adds_no_span_to_unrelated_text(index: Path, tmp_path: Path, name: str) -> None:
    # prose of its own, rewritten the same way, and texts the rewrites' patterns meet in
    # ordinary outputs (numbers, versions, code, lists), against works they share words with
    rng = random.Random(7)
    own = " ".join(PROSE) + " The keeper said the ships were late; the miller kept the accounts of the river."
    text = (SECOND_READING[name](own, rng) + "\n\n1. the north\n2. the water\n3. the town\n"
            "Version 1.2.3 of os.path.join_all was released in 1611 by U.S.A. staff: 4th of July, mp3, sha256.\n"
            "a b c d e f g h\n| x | y |\n<p>the letters &amp; the sister</p>\n")
    out = tmp_path / "out.txt"
    out.write_text(text, encoding="utf-8")
    obj, _ = _check(index, out, "--min-chars", "30")
    assert obj["spans"] == []
