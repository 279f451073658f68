"""`assay text`: readable and JSON output on an empty and a full index, exit statuses,
offsets a reader can find in the original files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from assay.cli import app

runner = CliRunner()

TALE = ("Once upon a time a lighthouse keeper counted the ships that passed her rock,\n"
        "and wrote each name in a green ledger before supper. In winter the ledger\n"
        "grew thin, for few captains dared the strait when the ice came down from the north.\n")


def _run(*args: str) -> object:
    res = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert "Traceback" not in res.output
    return res


def _index(tmp_path: Path) -> Path:
    works = tmp_path / "works"
    works.mkdir()
    (works / "tale.txt").write_text(TALE, encoding="utf-8")
    (works / "songs.jsonl").write_text(json.dumps({"id": "song-1", "title": "River Song", "text":
                                                   "Sing of the river that runs to the sea and never once looks back at the hills."}) + "\n")
    res = _run("text", "index", str(works), "--index", str(tmp_path / "ix"))
    assert res.exit_code == 0, res.output
    assert "added 2 works" in res.stdout
    return tmp_path / "ix"


def test_check_readable_output_cites_offsets_in_the_original(tmp_path: Path) -> None:
    ix = _index(tmp_path)
    out = tmp_path / "out.txt"
    quoted = "a lighthouse keeper counted the ships that passed her rock, and wrote each name"
    out.write_text(f"Model: Sure! Here it is. {quoted.upper()} -- that is how it starts.", encoding="utf-8")
    res = _run("text", "check", str(out), "--index", str(ix))
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "1 exact span" in text and "verbatim" in text
    assert f"in tale (tale) at {TALE.index('a lighthouse')}-" in text
    # the offsets printed are where a reader finds the passage in the original work
    start, end = (int(x.replace(",", "")) for x in text.split("in tale (tale) at ", 1)[1].split()[0].split("-"))
    assert " ".join(TALE[start:end].split()).lower() == quoted.lower()
    assert "works by coverage" in text and "River Song" not in text
    js = json.loads(_run("text", "check", str(out), "--index", str(ix), "--json").stdout)
    sp = js["spans"][0]
    assert out.read_text()[sp["start"]:sp["end"]].lower() == quoted.lower()
    assert sp["sources"] == [{"work": "tale", "start": start, "end": end}]
    assert js["works"][0]["work"] == "tale" and 0 < js["coverage"] == js["coverage_exact"] < 1


def test_check_with_nothing_found_and_an_empty_index(tmp_path: Path) -> None:
    ix = _index(tmp_path)
    out = tmp_path / "out.txt"
    out.write_text("A completely original sentence about gardens, kettles and the price of bread in May.")
    res = _run("text", "check", str(out), "--index", str(ix), "--fail-on-match")
    assert res.exit_code == 0
    assert "no passage of 50+ characters from any of 2 indexed works" in res.stdout
    (tmp_path / "empty").mkdir()
    from assay.text.index import TextIndex

    TextIndex.create(tmp_path / "empty")
    res = _run("text", "works", "--index", str(tmp_path / "empty"))
    assert res.exit_code == 0 and "no works yet" in res.stdout
    res = _run("text", "check", str(out), "--index", str(tmp_path / "empty"))
    assert "from any of 0 indexed works" in res.stdout


def test_fail_on_match_and_bad_files(tmp_path: Path) -> None:
    ix = _index(tmp_path)
    good = tmp_path / "good.txt"
    good.write_text("sing of the river that runs to the sea and never once looks back at the hills!")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9, not utf-8 \x80")  # (a file starting FF FE is UTF-16 by its mark)
    res = _run("text", "check", str(good), "--index", str(ix), "--fail-on-match")
    assert res.exit_code == 3 and "song-1 (River Song)" in res.stdout
    res = _run("text", "check", str(bad), str(good), "--index", str(ix))
    assert res.exit_code == 1
    assert f"{bad}: not UTF-8 text" in res.stderr and "song-1" in res.stdout  # the good file still checked
    res = _run("text", "check", str(good), "--index", str(tmp_path / "nowhere"))
    assert res.exit_code == 1 and "no text index at" in res.stderr


def test_index_refuses_to_overwrite_and_add_reports_bad_sources(tmp_path: Path) -> None:
    ix = _index(tmp_path)
    res = _run("text", "index", str(tmp_path / "works"), "--index", str(ix))
    assert res.exit_code == 1 and "already holds a text index" in res.stderr
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "new.md").write_text("# New\n\nA new work about the making of green ledgers by hand.\n")
    (extra / "broken.jsonl").write_text('{"id": "x"}\n')
    res = _run("text", "add", str(extra), "--index", str(ix), "--json")
    assert res.exit_code == 1
    obj = json.loads(res.stdout)
    assert [w["work"] for w in obj["added"]] == ["new"]
    assert obj["errors"][0]["source"].endswith("broken.jsonl:1")
    works = json.loads(_run("text", "works", "--index", str(ix), "--json").stdout)
    assert sorted(w["work"] for w in works) == ["new", "song-1", "tale"]
    readable = _run("text", "works", "--index", str(ix)).stdout
    assert "3 works in 2 shards" in readable and "River Song" in readable
