"""A damaged text index: every damage ends in an error naming the file and the reason,
or in the result the intact index gives; never a traceback, a crash of the process,
a wrong offset or a passage silently gone.

The cases are mutation recipes (tests/test_input_mutations.apply) of the files of the
index ``build`` makes, found by fuzzing each file of it; the sweep replays a few
hundred more drawn from ``random.Random(n).random()`` alone.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assay.text.index import IndexError_, TextIndex
from assay.text.ingest import Work
from assay.text.match import check
from assay.text.normalize import normalize
from test_input_mutations import Recipe, apply, mutations
from textgen import prose

# made-up words, and characters that normalise to several (ß -> ss, ﬁ -> fi) or whose
# runs become one (white space): offset maps with units, text with multi-byte characters
_UNITS = [("tas", "taß"), ("fi", "ﬁ"), (". ", ".  \n\n"), ("mol", "mól")]


def _work_text(i: int) -> str:
    text = prose(random.Random(i), 5000 + 2500 * i)
    for a, b in _UNITS:
        text = text.replace(a, b)
    return text


WORKS = {f"w{i}": _work_text(i) for i in range(3)}


def build(folder: Path) -> TextIndex:
    """Three works in two shards, each work's text from its own seeded generator."""
    ix = TextIndex.create(folder)
    res = ix.add([Work(w, f"Work {w}", t, f"{i:064x}", f"{w}.txt", "text") for i, (w, t) in enumerate(WORKS.items())],
                 shard_bytes=14000)
    assert res.shards == ["000001", "000002"] and not res.errors
    return TextIndex.open(folder)


def queries() -> list[str]:
    """Original prose around passages of every work (one verbatim, one with a letter changed)."""
    out = []
    for i, text in enumerate(WORKS.values()):
        for j, a in enumerate((700, 2300, 4100)):
            rng = random.Random(1000 + 10 * i + j)  # not the generator of a work
            later = text[a + 300:a + 400]
            out.append(prose(rng, 200) + text[a:a + 120 + 40 * j] + " " + prose(rng, 90) + " "
                       + later[:50] + "x" + later[51:])
    return out


def results(ix: TextIndex) -> list[Any]:
    return [check(ix, q).to_json() for q in queries()] + [[w.public() for w in ix.works()]]


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    folder = tmp_path_factory.mktemp("seed") / "ix"
    ix = build(folder)
    intact = results(ix)
    assert sum(len(r["spans"]) for r in intact[:-1]) >= 9  # every query finds its passages
    return folder, intact


def damaged_copy(tmp_path: Path, seed: Path, name: str, ops: Recipe, *, checksums: bool = True) -> Path:
    folder = tmp_path / "ix"
    shutil.copytree(seed, folder)
    path = folder / name
    path.write_bytes(apply(path.read_bytes(), ops))
    if not checksums:  # an index written before shard.json existed
        for p in folder.glob("shards/*/shard.json"):
            p.unlink()
    return folder


def error_or_intact(folder: Path, intact: list[Any]) -> str | None:
    """The error's message, or None when the results are those of the intact index."""
    try:
        got = results(TextIndex.open(folder))
    except IndexError_ as exc:
        assert str(folder) in exc.message and "\n" not in exc.message
        return exc.message
    assert got == intact, "a damaged index gave other results than the intact one, without an error"
    return None


# Each broke the old reader: a segmentation fault (suffix array entries pointing outside
# the text, read without bounds checks), a traceback (a KeyError from index.json; numpy's
# header parser raising tokenize.TokenError; int32 overflow from a block count; an empty
# offset map; UTF-8 errors decoding a damaged passage), or other results than the intact
# index with no error at all: offsets moved by a changed digit of works.json or a changed
# offset map row or block count, passages gone after a few flipped suffix array bits.
@pytest.mark.parametrize(("name", "ops"), [
    # (the sa.npy positions moved to entries on the queries' search paths when the
    # normalised text changed with format 2: punctuation dropped)
    ("shards/000001/sa.npy", [("set", 45377, 1, 0, ">"), ("flip", 48617, 7)]),
    ("shards/000001/sa.npy", [("dup", 31901, 27, 5)]),
    ("shards/000001/sa.npy", [("flip", 10407, 1), ("flip", 24493, 7), ("flip", 16287, 6)]),
    ("index.json", [("flip", 38, 0)]),
    ("shards/000001/works.json", [("flip", 375, 4)]),  # a work's sha256
    ("shards/000001/works.json", [("set", 544, 1, ord("4"), "<")]),  # "char_start": 5084
    ("shards/000001/works.json", [("del", 556, 15)]),
    ("shards/000002/works.json", [("flip", 51, 6)]),
    ("shards/000001/chars.npy", [("flip", 66, 0)]),
    ("shards/000001/chars.npy", [("flip", 140, 0)]),
    ("shards/000001/chars.npy", [("flip", 131, 5)]),
    ("shards/000001/segs.npy", [("flip", 1116, 6)]),
    ("shards/000001/text.npy", [("flip", 9571, 7)]),
])
def test_damaged_index_file_is_an_error_naming_it(tmp_path: Path, seed: tuple[Path, list[Any]], name: str,
                                                  ops: Recipe) -> None:
    folder = damaged_copy(tmp_path, seed[0], name, ops)
    msg = error_or_intact(folder, seed[1])
    assert msg is not None and f"{name}: damaged text index file (" in msg, msg


@pytest.mark.parametrize(("name", "ops", "named"), [
    # without checksums the structure still tells: positions that do not follow each
    # other, a header numpy cannot parse, a block count that disagrees with the text
    ("shards/000001/works.json", [("flip", 483, 0)], "works.json"),  # "shard": "000011"
    ("shards/000001/works.json", [("set", 544, 1, ord("4"), "<")], "works.json"),  # "char_start": 5084
    ("shards/000001/works.json", [("del", 556, 15)], "works.json"),
    ("shards/000001/chars.npy", [("flip", 66, 0)], "chars.npy"),
    ("shards/000001/chars.npy", [("flip", 140, 0)], "chars.npy"),
    ("shards/000001/sa.npy", [("set", 45377, 1, 0, ">"), ("flip", 48617, 7)], "sa.npy"),
    ("shards/000001/text.npy", [("flip", 9571, 7)], "text.npy"),
])
def test_index_without_checksums_is_checked_for_structure(tmp_path: Path, seed: tuple[Path, list[Any]],
                                                          name: str, ops: Recipe, named: str) -> None:
    folder = damaged_copy(tmp_path, seed[0], name, ops, checksums=False)
    msg = error_or_intact(folder, seed[1])
    assert msg is not None and ": damaged text index file (" in msg and named in msg, msg


def _npy_data(data: bytes) -> int:
    """Where the array of a version 1 .npy file starts."""
    assert data[:8] == b"\x93NUMPY\x01\x00"
    return 10 + int.from_bytes(data[8:10], "little")


@pytest.mark.parametrize(("checksums", "reason"), [
    (True, r"bytes 0-4,096 differ from what was indexed \(CRC-32 of the block\)"),
    (False, r"the characters of bytes 0-4,096 disagree with chars.npy"),  # a shard without blocks.npy
])
def test_text_byte_that_stops_being_a_character_never_moves_an_offset(
        tmp_path: Path, seed: tuple[Path, list[Any]], checksums: bool, reason: str) -> None:
    # text.npy is not hashed on open. A space made 0xA0 (a UTF-8 continuation byte)
    # before a passage, in the same 4 KiB block, moved every offset after it by one.
    folder, intact = seed
    text = (folder / "shards/000001/text.npy").read_bytes()
    header = _npy_data(text)
    passage = text.index(normalize(WORKS["w0"][700:760]).text.encode()) - header
    space = text.rindex(b" ", header + (passage // 4096) * 4096, header + passage)
    bad = damaged_copy(tmp_path, folder, "shards/000001/text.npy", [("flip", space, 7)], checksums=checksums)
    with pytest.raises(IndexError_, match=r"text.npy: damaged text index file \(" + reason):
        results(TextIndex.open(bad))


def test_changed_letter_never_shortens_a_passage(tmp_path: Path, seed: tuple[Path, list[Any]]) -> None:
    # A letter of a quoted passage changed into another in text.npy (valid UTF-8, same
    # characters): the passage came out shorter, or as "near-verbatim, 1 changed word",
    # a change the checked text never made. The blocks the passage spans, and the byte
    # where its match stopped, are checked against their CRC-32 first.
    folder, intact = seed
    text = (folder / "shards/000001/text.npy").read_bytes()
    at = text.index(normalize(WORKS["w0"][700:760]).text.encode()) + 30
    assert 0x61 <= text[at] <= 0x7A
    bad = damaged_copy(tmp_path, folder, "shards/000001/text.npy", [("flip", at, 0 if text[at] != 0x7A else 1)])
    with pytest.raises(IndexError_, match=r"text.npy: damaged text index file \(bytes .* differ from what was indexed"):
        results(TextIndex.open(bad))


def test_shard_names_in_index_json_are_shard_numbers(tmp_path: Path, seed: tuple[Path, list[Any]]) -> None:
    folder = tmp_path / "ix"
    shutil.copytree(seed[0], folder)
    manifest = json.loads((folder / "index.json").read_text())
    for shards in (["../../elsewhere"], ["000001", "000001"], "000001", [1]):
        (folder / "index.json").write_text(json.dumps({**manifest, "shards": shards}))
        with pytest.raises(IndexError_, match="index.json: damaged text index file"):
            TextIndex.open(folder)


def test_verify_hashes_what_opening_does_not(tmp_path: Path, seed: tuple[Path, list[Any]]) -> None:
    folder = damaged_copy(tmp_path, seed[0], "shards/000002/text.npy", [("flip", 5000, 1)])
    assert TextIndex(seed[0], json.loads((seed[0] / "index.json").read_text())).verify() == []
    (problem,) = TextIndex.open(folder).verify()
    assert problem.startswith(f"{folder}/shards/000002/text.npy: damaged text index file (its content differs")


def test_cli_names_the_damaged_file(tmp_path: Path, seed: tuple[Path, list[Any]]) -> None:
    folder = damaged_copy(tmp_path, seed[0], "shards/000001/works.json", [("flip", 378, 4)])
    q = tmp_path / "q.txt"
    q.write_text(queries()[0], encoding="utf-8")
    assay = [sys.executable, "-m", "assay"]
    for args in (["text", "check", str(q), "--index", str(folder)], ["text", "verify", "--index", str(folder)],
                 ["text", "works", "--index", str(folder)], ["scan", str(q), "--text-index", str(folder), "--no-banks"]):
        res = subprocess.run(assay + args, capture_output=True, text=True, timeout=300)
        assert res.returncode == 1 and "Traceback" not in res.stderr, (args, res.stderr)
        assert f"{folder}/shards/000001/works.json: damaged text index file" in " ".join(res.stderr.split()), \
            (args, res.stderr)
    res = subprocess.run(assay + ["text", "verify", "--index", str(seed[0])], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "every file as it was written" in res.stdout


def _within(span: dict[str, Any], spans: list[dict[str, Any]]) -> bool:
    """Whether ``span`` lies inside one of ``spans``, in the checked text and in a work
    (at the same distance from its start, for an exact span)."""
    for whole in spans:
        if whole["start"] <= span["start"] and span["end"] <= whole["end"]:
            for s in span["sources"]:
                for w in whole["sources"]:
                    if s["work"] != w["work"] or not (w["start"] <= s["start"] and s["end"] <= w["end"]):
                        continue
                    if span["kind"] == "near" or s["start"] - w["start"] == span["start"] - whole["start"]:
                        return True
    return False


@pytest.mark.parametrize("name", ["index.json", "shards/000001/works.json", "shards/000001/shard.json",
                                  "shards/000001/chars.npy", "shards/000001/segs.npy", "shards/000001/sa.npy",
                                  "shards/000001/text.npy", "shards/000002/text.npy"])
def test_fuzzed_index_files(tmp_path: Path, seed: tuple[Path, list[Any]], name: str) -> None:
    folder, intact = seed
    data = (folder / name).read_bytes()
    for i, mutant in enumerate(mutations(data, 60)):
        copy = tmp_path / str(i)
        shutil.copytree(folder, copy)
        (copy / name).write_bytes(mutant)
        if name.endswith("text.npy"):
            # text.npy is hashed by verify only: damage may shorten what is found (a
            # changed character) but never moves an offset or adds a passage
            try:
                got = results(TextIndex.open(copy))
            except IndexError_ as exc:
                assert str(copy) in exc.message
            else:
                for found, whole in zip(got[:-1], intact[:-1], strict=True):
                    assert all(_within(span, whole["spans"]) for span in found["spans"]), (i, found)
        else:
            error_or_intact(copy, intact)
        shutil.rmtree(copy)


def test_service_answers_503_and_names_no_server_file(tmp_path: Path, seed: tuple[Path, list[Any]]) -> None:
    # A damaged index answered 400 (the caller's fault) with the undocumented code
    # "text-index" and the server's path to the index in the message, to any caller.
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from assay.service import Settings, create_app
    from assay.service.app import open_store
    from assay.service.auth import create_key
    from assay.service.errors import CODES

    folder = damaged_copy(tmp_path, seed[0], "shards/000001/works.json", [("flip", 375, 4)])
    settings = Settings(db=str(tmp_path / "s.db"), text_index=str(folder), access_log=False)
    store = open_store(settings)
    keys = {r: create_key(store.engine, f"{r}-key", r)[1] for r in ("match", "admin")}
    store.close()
    with TestClient(create_app(settings)) as c:
        for role in ("match", "admin"):
            r = c.post("/v1/text/check", json={"text": queries()[0]}, headers={"X-API-Key": keys[role]})
            err = r.json()["error"]
            assert r.status_code == 503 and err["code"] == "index-unavailable" and err["code"] in CODES, r.text
            assert (str(tmp_path) in r.text) == (role == "admin"), r.text
