"""The CLI contract matrix (issue 12, item 9): every command and subcommand, found by
walking the Typer app (a new command fails here until it has a case), readable and
--json, on an empty store and on one holding image hashes, model hashes, weight
fingerprints and an API key: the exit status, never a traceback, and JSON that the
published schemas (docs/schemas/) accept. Each case runs on its own copy of the
store, in process, so the matrix stays fast."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

import lineage_eval as ev
import modelgen
from assay.cli import app
from assay.demo import pattern

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = {p.name: json.loads(p.read_text()) for p in (ROOT / "docs" / "schemas").glob("*.schema.json")}
REGISTRY = referencing.Registry().with_resources(
    (name, referencing.Resource.from_contents(s)) for name, s in SCHEMAS.items())
MD5 = "20def2ffb08bd7f8adc9d14cce39d7ee"
runner = CliRunner()

# Command -> cases. A case: arguments (placeholders in braces), the exit status on the
# empty store and on the full one, and the schema of its --json output (None: the
# command has no --json). Objects that carry "schema" are checked against that schema.
E, F = "empty", "full"
CASES: dict[str, list[tuple[list[str], dict[str, int], str | None]]] = {
    "scan": [(["scan", "{case}", "-o", "{tmp}/r.jsonl", "--workers", "1"], {E: 0, F: 0}, "assay.file-1")],
    "hash": [(["hash", "{img}"], {E: 0, F: 0}, "assay.file-1"),
             (["hash", "{txt}"], {E: 1, F: 1}, "assay.file-1")],
    "match": [(["match", "--image", "{img}"], {E: 0, F: 0}, "assay.matches-1"),
              (["match", "--md5", MD5, "--signal", "autov2:0123456789"], {E: 0, F: 0}, "assay.matches-1"),
              (["match", "--pdq", "xyz"], {E: 2, F: 2}, "assay.matches-1")],
    "provenance": [(["provenance", "{img}"], {E: 0, F: 0}, "assay.provenance-1"),
                   (["provenance", "{txt}"], {E: 1, F: 1}, "assay.provenance-1")],
    "model": [(["model", "{model}"], {E: 0, F: 0}, "assay.model-1"),
              (["model", "{txt}"], {E: 1, F: 1}, "assay.model-1")],
    "signals": [(["signals"], {E: 0, F: 0}, "signals")],
    "demo": [(["demo", "--dir", "{tmp}/demo"], {E: 0, F: 0}, None)],
    "serve": [],  # blocks by design: only --help and bad usage here; run for real in test_service_cli
    "bank create": [(["bank", "create", "new"], {E: 0, F: 0}, "bank"),
                    (["bank", "create", "known"], {E: 0, F: 1}, "bank")],
    "bank list": [(["bank", "list"], {E: 0, F: 0}, "bank-list")],
    "bank show": [(["bank", "show", "known"], {E: 1, F: 0}, "bank-show")],
    "bank stats": [(["bank", "stats", "known"], {E: 1, F: 0}, "bank-stats")],
    "bank import": [(["bank", "import", "known", "{list}", "--type", "md5", "--create"], {E: 0, F: 0}, "bank-import"),
                    (["bank", "import", "known", "{txt}", "--type", "sha1024"], {E: 2, F: 2}, "bank-import")],
    "bank export": [(["bank", "export", "known"], {E: 1, F: 0}, None),
                    (["bank", "export", "known", "-o", "{tmp}/x.jsonl"], {E: 1, F: 0}, None)],
    "bank add": [(["bank", "add", "known", "--content-id", "c9", "--md5", MD5], {E: 1, F: 0}, "bank-add")],
    "bank remove": [(["bank", "remove", "known", "image-1"], {E: 1, F: 0}, "bank-remove")],
    "bank enable": [(["bank", "enable", "known"], {E: 1, F: 0}, None)],
    "bank disable": [(["bank", "disable", "known"], {E: 1, F: 0}, None)],
    "bank set": [(["bank", "set", "known", "--threshold", "20", "--disable"], {E: 1, F: 0}, "bank"),
                 (["bank", "set", "known", "--threshold", "999"], {E: 2, F: 2}, "bank")],
    "bank rename": [(["bank", "rename", "known", "renamed"], {E: 1, F: 0}, "bank")],
    "bank delete": [(["bank", "delete", "known", "--yes"], {E: 1, F: 0}, None),
                    (["bank", "delete", "known"], {E: 1, F: 1}, None)],
    "bank prune-changes": [(["bank", "prune-changes"], {E: 0, F: 0}, "bank-prune-changes")],
    "bank add-model": [(["bank", "add-model", "known", "{model}", "--id", "m2"], {E: 1, F: 0}, "bank-add-model"),
                       (["bank", "add-model", "known", "{model}", "--id", "m1"], {E: 1, F: 1}, "bank-add-model")],
    "lora extract": [(["lora", "extract", "{tuned}", "--base", "{model}", "-o", "{tmp}/d.safetensors"],
                      {E: 0, F: 0}, None)],
    "text index": [(["text", "index", "{works}", "--index", "{tmp}/new-index"], {E: 0, F: 0}, "text-index"),
                   (["text", "index", "{works}", "{txt}.missing", "--index", "{tmp}/new-index"], {E: 1, F: 1}, "text-index"),
                   (["text", "index", "{works}", "--index", "{tindex}"], {E: 1, F: 1}, "text-index")],
    "text add": [(["text", "add", "{more_works}", "--index", "{tcopy}"], {E: 0, F: 0}, "text-index"),
                 (["text", "add", "{works}", "--index", "{tcopy}"], {E: 1, F: 1}, "text-index"),
                 (["text", "add", "{more_works}", "--index", "{tmp}/none"], {E: 1, F: 1}, "text-index")],
    "text works": [(["text", "works", "--index", "{tindex}"], {E: 0, F: 0}, "text-works"),
                   (["text", "works", "--index", "{tempty}"], {E: 0, F: 0}, "text-works")],
    "text verify": [(["text", "verify", "--index", "{tindex}"], {E: 0, F: 0}, "text-verify"),
                    (["text", "verify", "--index", "{tempty}"], {E: 0, F: 0}, "text-verify"),
                    (["text", "verify", "--index", "{tmp}/none"], {E: 1, F: 1}, "text-verify")],
    "text check": [(["text", "check", "{output}", "--index", "{tindex}"], {E: 0, F: 0}, "assay.text-1"),
                   (["text", "check", "{output}", "--index", "{tindex}", "--fail-on-match"], {E: 3, F: 3}, "assay.text-1"),
                   (["text", "check", "{txt}", "--index", "{tempty}", "--fail-on-match"], {E: 0, F: 0}, "assay.text-1"),
                   (["text", "check", "{output}", "{txt}.missing", "--index", "{tindex}"], {E: 1, F: 1}, "assay.text-1"),
                   (["text", "check", "{output}", "--index", "{tmp}/none"], {E: 1, F: 1}, "assay.text-1"),
                   (["text", "check", "{output}", "--index", "{tindex}", "--min-chars", "3"], {E: 2, F: 2}, "assay.text-1")],
    "exchange add": [(["exchange", "add", "feed2", "--type", "file", "--bank", "known", "--path", "{list}",
                       "--signal-type", "md5"], {E: 1, F: 0}, "exchange"),
                     (["exchange", "add", "feed3", "--type", "threatexchange", "--bank", "known"], {E: 1, F: 1},
                      "exchange")],
    "exchange list": [(["exchange", "list"], {E: 0, F: 0}, "exchange-list")],
    "exchange show": [(["exchange", "show", "feed"], {E: 1, F: 0}, "exchange")],
    "exchange remove": [(["exchange", "remove", "feed"], {E: 1, F: 0}, "exchange-remove")],
    "exchange enable": [(["exchange", "enable", "feed"], {E: 1, F: 0}, None)],
    "exchange disable": [(["exchange", "disable", "feed"], {E: 1, F: 0}, None)],
    "exchange fetch": [(["exchange", "fetch", "feed"], {E: 1, F: 0}, "exchange-fetch"),
                       (["exchange", "fetch"], {E: 0, F: 0}, "exchange-fetch-all")],
    "exchange share": [(["exchange", "share", "feed", "--dry-run"], {E: 1, F: 0}, "exchange-share")],
    "keys create": [(["keys", "create", "--role", "match", "--name", "scanner"], {E: 0, F: 0}, None),
                    (["keys", "create", "--role", "boss", "--name", "x"], {E: 2, F: 2}, None)],
    "keys list": [(["keys", "list"], {E: 0, F: 0}, "keys-list")],
    "camera enroll": [(["camera", "enroll", "cam2", "{img}", "--min-images", "1"], {E: 0, F: 0},
                       "assay.camera-enroll-1"),
                      (["camera", "enroll", "cam3", "{txt}", "--min-images", "1"], {E: 1, F: 1},
                       "assay.camera-enroll-1")],
    "camera match": [(["camera", "match", "{img}"], {E: 1, F: 0}, "assay.camera-match-1"),
                     (["camera", "match", "{txt}"], {E: 1, F: 1}, "assay.camera-match-1")],
    "camera list": [(["camera", "list"], {E: 0, F: 0}, "camera-list")],
    "keys revoke": [(["keys", "revoke", "1"], {E: 1, F: 0}, None)],
    "report": [(["report", "{report}", "-o", "{tmp}/case.html"], {E: 0, F: 0}, "report-written"),
               (["report", "{txt}", "-o", "{tmp}/bad.html"], {E: 1, F: 1}, "report-written"),
               (["report", "{report}", "--format", "csv", "-o", "{tmp}/csv"], {E: 0, F: 0}, "report-written"),
               (["report", "{report}", "--format", "case", "-o", "{tmp}/c.jsonld"], {E: 0, F: 0}, "report-written")],
    "review list": [(["review", "list", "{report}"], {E: 0, F: 0}, "review-list"),
                    (["review", "{report}"], {E: 0, F: 0}, "review-list")],
    "review set": [(["review", "set", "0123456789abcdef", "--decision", "confirmed"], {E: 1, F: 1}, "review"),
                   (["review", "set", "0123456789abcdef", "--decision", "maybe"], {E: 2, F: 2}, "review")],
    "review show": [(["review", "show", "0123456789abcdef"], {E: 1, F: 1}, "review")],
}


def _commands() -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(cmd: Any, path: str) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, f"{path} {name}".strip())
        else:
            found[path] = cmd

    walk(typer.main.get_command(app), "")
    return found


COMMANDS = _commands()


def _invoke(args: list[str]) -> Any:
    res = runner.invoke(app, args, env={"COLUMNS": "120"})
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    assert "Traceback" not in res.output, (args, res.output)
    return res


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("contract")
    case = d / "case"
    case.mkdir()
    pattern("rings", seed=1).save(case / "a.png")
    (case / "notes.txt").write_text("hello")
    specs = modelgen.sd15(1 / 16, dt="F32")
    base = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 3)
    shape = {k: ("F32", v.shape) for k, v in base.items()}
    model = modelgen.write_safetensors(d / "m.safetensors", shape, values=base)
    tuned = modelgen.write_safetensors(d / "tuned.safetensors", shape, values=ev.fine_tune(base, 0.01, 5))
    lst = d / "list.txt"
    lst.write_text(MD5 + "\n")
    report = d / "report.jsonl"
    res = _invoke(["scan", str(case), "--no-banks", "-o", str(report), "--workers", "1"])
    assert res.exit_code == 0, res.output
    # text works (generated prose), an output quoting one, and indexes: full and empty
    works = d / "works"
    works.mkdir()
    (works / "tale.txt").write_text("Once upon a time a lighthouse keeper counted the ships that passed "
                                    "her rock, and wrote each name in a green ledger before supper.\n")
    (works / "more.jsonl").write_text('{"id": "song", "title": "A Song", "text": "Sing of the river '
                                      'that runs to the sea and never once looks back at the hills."}\n')
    more = d / "more"
    more.mkdir()
    (more / "essay.md").write_text("# Essay\n\nOn the keeping of ledgers by people who live alone on rocks.\n")
    output = d / "output.txt"
    output.write_text("The model said: once upon a time a lighthouse keeper counted the ships that passed "
                      "her rock, and then it stopped.\n")
    assert _invoke(["text", "index", str(works), "--index", str(d / "tindex")]).exit_code == 0
    assert _invoke(["text", "index", str(more), "--index", str(d / "tempty")]).exit_code == 0
    shutil.rmtree(d / "tempty" / "shards")
    (d / "tempty" / "index.json").write_text('{"format": "assay.text-index/2", "shards": []}')
    return {"case": case, "img": case / "a.png", "txt": case / "notes.txt", "model": model, "tuned": tuned,
            "list": lst, "report": report, "works": works, "more_works": more, "output": output,
            "tindex": d / "tindex", "tempty": d / "tempty"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, files: dict[str, Path]) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("stores")
    empty, full = d / "empty.sqlite3", d / "full.sqlite3"
    assert _invoke(["--db", str(empty), "--create", "bank", "list"]).exit_code == 0
    for args in (["bank", "create", "known", "--create"],
                 ["bank", "add", "known", "--content-id", "image-1", "--image", str(files["img"])],
                 ["bank", "add-model", "known", str(files["model"]), "--id", "m1", "--kind", "checkpoint"],
                 ["keys", "create", "--role", "curate", "--name", "analyst"],
                 ["camera", "enroll", "cam1", str(files["img"]), "--min-images", "1"],
                 ["exchange", "add", "feed", "--type", "file", "--bank", "known", "--path", str(files["list"]),
                  "--signal-type", "md5"]):
        res = _invoke(["--db", str(full), *args])
        assert res.exit_code == 0, (args, res.output)
    return {E: empty, F: full}


def test_every_command_has_cases() -> None:
    missing = sorted(set(COMMANDS) - set(CASES))
    assert not missing, f"add these commands to the contract matrix: {missing}"
    assert not set(CASES) - set(COMMANDS), "cases for commands that no longer exist"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_help_has_an_example_and_readable_metavars(path: str) -> None:
    res = _invoke([*path.split(), "--help"])
    assert res.exit_code == 0
    assert "Example" in res.stdout and "assay " + path in res.stdout.split("Example", 1)[1]
    for python in ("<bool>", "<str>", "<int>", "<list", "<path>", "<float>", "{"):
        assert python not in res.stdout.split("Example", 1)[0], (path, python)
    res = _invoke([*path.split(), "--no-such-option"])
    assert res.exit_code == 2 and "No such option" in res.output


def _validate(obj: Any, schema_name: str) -> None:
    name = f"{obj['schema'].replace('/', '-')}.schema.json" if isinstance(obj, dict) and "schema" in obj \
        else f"{schema_name}.schema.json"
    assert name in SCHEMAS, f"no published schema {name}"
    jsonschema.Draft202012Validator(SCHEMAS[name], registry=REGISTRY).validate(obj)


MATRIX = [(path, i, store, js) for path, cases in sorted(CASES.items()) for i, case in enumerate(cases)
          for store in (E, F) for js in ((False, True) if case[2] else (False,))]


@pytest.mark.parametrize(("path", "i", "store", "json_out"), MATRIX,
                         ids=[f"{p}-{i}-{s}-{'json' if j else 'text'}" for p, i, s, j in MATRIX])
def test_contract(path: str, i: int, store: str, json_out: bool, files: dict[str, Path],
                  stores: dict[str, Path], tmp_path: Path) -> None:
    args, codes, schema = CASES[path][i]
    db = tmp_path / "store.sqlite3"
    shutil.copy(stores[store], db)
    places = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path), "tcopy": str(tmp_path / "tcopy")}
    if any("{tcopy}" in a for a in args):
        shutil.copytree(files["tindex"], tmp_path / "tcopy")
    argv = ["--db", str(db), *(a.format(**places) for a in args), *(["--json"] if json_out else [])]
    res = _invoke(argv)
    assert res.exit_code == codes[store], (argv, res.output)
    if res.exit_code == 1:  # says why: on stderr, and with --json also in the output
        assert "error:" in res.stderr or json_out and '"error' in res.stdout, (argv, res.output)
    elif res.exit_code == 2:
        assert res.stderr.strip(), argv
    if json_out:
        lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
        if res.exit_code == 0 or any(ln.startswith("{") for ln in lines):
            assert lines, argv
        for ln in lines:
            _validate(json.loads(ln), schema)
    elif res.exit_code == 0 and path not in ("bank export",):
        assert not res.stdout.lstrip().startswith(("{", "[{")), "readable output is not JSON"
