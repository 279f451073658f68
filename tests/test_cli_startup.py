"""Start-up (issue 12, item 8): each command imports only what it needs. Checked by
the modules a real `assay` process has loaded when it exits, never by timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assay.demo import pattern

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "20def2ffb08bd7f8adc9d14cce39d7ee"
CODE = (
    "import atexit, json, os, sys\n"
    "where = os.environ['ASSAY_TEST_MODULES']\n"
    "atexit.register(lambda: open(where, 'w').write(json.dumps(sorted(sys.modules))))\n"
    "sys.argv[0] = 'assay'\n"
    "from assay.cli import main\n"
    "main()\n"
)
SERVICE = {"fastapi", "uvicorn", "alembic"}


def _modules(tmp: Path, *args: str) -> tuple[int, set[str]]:
    where = tmp / "modules.json"
    env = {**os.environ, "ASSAY_TEST_MODULES": str(where)}
    res = subprocess.run([sys.executable, "-c", CODE, *args], env=env, capture_output=True, text=True)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, set(json.loads(where.read_text()))


def _top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("startup")
    img = d / "a.png"
    pattern("rings", seed=1).save(img)
    (d / "notes.txt").write_text("hello")
    db = d / "banks.sqlite3"
    from assay.banks.store import Store
    from assay.media import hash_image_file

    h = hash_image_file(img)
    with Store(str(db)) as store:  # a store that holds banks, as users have
        store.create_bank("known")
        store.add_entry("known", "c1", {"pdq": [PDQ], "md5": [MD5]})
        store.add_entry("known", "img", {"pdq": [h.pdq], "md5": [h.md5]})
    return {"img": img, "txt": d / "notes.txt", "db": db, "dir": d}


def test_help_loads_no_heavy_library(tmp_path: Path) -> None:
    code, mods = _modules(tmp_path, "--help")
    assert code == 0
    assert not _top(mods) & {"numpy", "numba", "sqlalchemy", "pydantic", "PIL", *SERVICE}


def test_a_commands_help_loads_only_that_command(tmp_path: Path) -> None:
    """Typer converts option values with pydantic; assay's own conversion (cli/_params.py)
    does not, and each command's module is imported only when it is used."""
    for cmd, own in (("hash", "lookup"), ("match", "lookup"), ("provenance", "evidence"),
                     ("model", "evidence"), ("bank", "banks"), ("signals", "misc")):
        code, mods = _modules(tmp_path, cmd, "--help")
        assert code == 0, cmd
        assert not _top(mods) & {"numpy", "numba", "sqlalchemy", "pydantic", "PIL", "c2pa", *SERVICE}, cmd
        loaded = {m.rsplit(".", 1)[1] for m in mods if m.startswith("assay.cli.") and not m.startswith("assay.cli._")}
        assert loaded == {own}, cmd


def test_every_command_is_in_the_lazy_table() -> None:
    """Commands are imported by name (cli/_common.COMMANDS): one registered by a module
    but missing there would cost every `assay --help` the import of all commands."""
    import importlib
    import pkgutil

    import assay.cli as cli
    from assay.cli._common import COMMANDS, _registered

    for m in pkgutil.iter_modules(cli.__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"assay.cli.{m.name}")
    assert set(_registered()) == set(COMMANDS)
    for name, module in COMMANDS.items():  # each in the module that registers it
        info = _registered()[name]
        fn = getattr(info, "callback", None) or info.typer_instance.registered_commands[0].callback
        assert fn.__module__.rsplit(".", 1)[-1] in (module, "cli"), (name, fn.__module__)


def test_python_m_assay_is_the_command(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "assay", "signals", "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "pdq" in {t["name"] for t in json.loads(res.stdout)}


def test_hash_and_provenance_never_load_the_database_or_numba(tmp_path: Path, case: dict[str, Path]) -> None:
    for cmd in ("hash", "provenance"):
        code, mods = _modules(tmp_path, "--db", str(case["db"]), cmd, str(case["img"]))
        assert code == 0, cmd
        assert not _top(mods) & {"numba", "sqlalchemy", "psycopg", *SERVICE}, cmd
        assert "rich.progress" not in mods


def test_match_reads_an_sqlite_store_without_sqlalchemy(tmp_path: Path, case: dict[str, Path]) -> None:
    """One-file lookups go through the standard library's sqlite3 (banks/reader.py); an
    exact hash needs no numpy either."""
    for query in (["--md5", MD5], ["--pdq", PDQ]):
        code, mods = _modules(tmp_path, "--db", str(case["db"]), "match", *query)
        assert code == 0, query
        assert "sqlite3" in _top(mods)  # it did look in the store
        assert not _top(mods) & {"sqlalchemy", "numba", "llvmlite", *SERVICE}, query
        assert ("numpy" in _top(mods)) == (query[0] == "--pdq"), query


def test_model_on_a_small_file_loads_no_database_layer(tmp_path: Path, case: dict[str, Path]) -> None:
    model = case["dir"] / "tiny.safetensors"
    header = b'{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}'
    model.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    code, mods = _modules(tmp_path, "--db", str(case["db"]), "model", str(model))
    assert code == 0
    assert "sqlite3" in _top(mods)  # its hashes were looked up
    assert not _top(mods) & {"sqlalchemy", "numpy", "numba", "llvmlite", "PIL", "c2pa", *SERVICE}


def test_model_opens_the_store_only_for_a_readable_model(tmp_path: Path, case: dict[str, Path]) -> None:
    code, mods = _modules(tmp_path, "--db", str(case["db"]), "model", str(case["txt"]))
    assert code == 1
    assert not _top(mods) & {"sqlalchemy", "numba", *SERVICE}
    code, mods = _modules(tmp_path, "--db", str(case["dir"] / "typo.sqlite3"), "model", str(case["txt"]))
    assert code == 2  # a missing store is still refused first, without the database layer
    assert "sqlalchemy" not in _top(mods)


def test_a_scan_against_a_small_bank_compiles_nothing(tmp_path: Path, case: dict[str, Path]) -> None:
    """The first scan after install must not wait for numba to compile its kernels:
    small banks are served by the numpy kernels."""
    folder = tmp_path / "scan"
    folder.mkdir()
    pattern("rings", seed=1).save(folder / "a.png")
    code, mods = _modules(tmp_path, "--db", str(case["db"]), "scan", str(folder), "-o", str(tmp_path / "r.jsonl"),
                          "--workers", "1")
    assert code == 0
    assert not _top(mods) & {"numba", "llvmlite"}
    rec = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[1])  # after the header
    assert {(m["content_id"], m["signal_type"]) for m in rec["matches"]} == {("img", "pdq"), ("img", "md5")}


def test_one_file_commands_load_neither_pydantic_nor_rich(tmp_path: Path, case: dict[str, Path]) -> None:
    """Records are plain Python (report/_record.py) and text written to a file or pipe is
    written without Rich; Rich comes in for a matches table or a terminal. A PNG without a
    Content Credential never loads the C2PA SDK (the gate)."""
    img = tmp_path / "other.png"
    pattern("rings", seed=3).save(img)
    model = case["dir"] / "tiny2.safetensors"
    header = b'{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}'
    model.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    for args in (["hash", str(img)], ["hash", "--json", str(img)], ["provenance", str(img)],
                 ["provenance", "--json", str(img)], ["match", "--md5", "0" * 32], ["model", str(model)],
                 ["model", "--json", str(model)]):
        code, mods = _modules(tmp_path, "--db", str(case["db"]), *args)
        assert code == 0, args
        assert not _top(mods) & {"pydantic", "rich", "c2pa"}, args
    code, mods = _modules(tmp_path, "--db", str(case["db"]), "match", "--md5", MD5)  # banked: a table
    assert code == 0 and "rich" in _top(mods)


def test_plain_lines_are_what_rich_writes(tmp_path: Path) -> None:
    """Off a terminal, the text the plain path writes is what Rich's console wrote there."""
    import io

    from rich.console import Console

    from assay.cli._common import _Console
    from assay.report.schema import ErrorInfo, FileRecord, Match, SignalValue
    from assay.report.terminal import print_record

    rec = FileRecord(path="dir/a [b]\tc\x1b.png", kind="image", format="png",
                     signals=[SignalValue(type="pdq", value="ab" * 32, quality=12, variant="rot90", mode="fast"),
                              SignalValue(type="md5", value="cd" * 16)],
                     known_good=[Match(bank="nsrl :smile: [x]", content_id="1", signal_type="md5", value="cd" * 16,
                                       strength="exact", bank_kind="known-good")],
                     errors=[ErrorInfo(stage="read", code="bad", message="line\nbreak [red]x[/red]\ttab")])
    rich_out = io.StringIO()
    print_record(_Rich(Console(file=rich_out, highlight=False, soft_wrap=True)), rec)
    plain = _Console()
    buf = io.StringIO()
    original = sys.stdout
    sys.stdout = buf
    try:
        print_record(plain, rec)
    finally:
        sys.stdout = original
    assert buf.getvalue() == rich_out.getvalue()
    assert "[b]" in buf.getvalue() and "\\x1b" in buf.getvalue()


class _Rich:
    """A Rich console with the plain console's ``line``, for the comparison above."""

    def __init__(self, console: object) -> None:
        self.console = console

    def print(self, *a: object, **kw: object) -> None:
        self.console.print(*a, **kw)  # type: ignore[attr-defined]

    def line(self, *parts: object) -> None:
        from rich.text import Text

        self.console.print(Text.assemble(*parts))  # type: ignore[attr-defined]


def test_hash_loads_no_worker_pool_video_or_pickle_code(tmp_path: Path, case: dict[str, Path]) -> None:
    """`assay hash photo.png` starts no workers, decodes no video and reads no pickle: the
    process pool (multiprocessing, sockets), the video module, the pickle opcode tables and,
    with --db named, the platform directory lookup stay unloaded."""
    for args in (["hash", str(case["img"])], ["hash", "--json", str(case["img"])]):
        code, mods = _modules(tmp_path, "--db", str(case["db"]), *args)
        assert code == 0, args
        assert not _top(mods) & {"multiprocessing", "socket", "platformdirs"}, args
        assert not mods & {"assay.media.video", "assay.pickleops"}, args
        assert "importlib.metadata" not in mods, args  # no entry-point or distribution scanning
    code, mods = _modules(tmp_path, "--db", str(case["db"]), "provenance", "--json", str(case["img"]))
    assert code == 0 and not mods & {"importlib.metadata", "importlib.resources", "multiprocessing"}
    code, mods = _modules(tmp_path, "--db", str(case["db"]), "hash", "--json", str(case["img"]))
    assert "assay.report.terminal" not in mods  # JSON needs no text renderer


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_an_image_loads_only_its_own_pillow_plugin(tmp_path: Path, case: dict[str, Path], fmt: str) -> None:
    """A format Pillow had not loaded made it import every plugin it has (Image.init),
    EPS (Ghostscript) among them; assay loads the one the file's bytes name first."""
    img = tmp_path / f"a.{fmt.lower()}"
    pattern("rings", seed=1).save(img, fmt)
    plugin = {"WEBP": "PIL.WebPImagePlugin", "TIFF": "PIL.TiffImagePlugin"}[fmt]
    for cmd in ("hash", "provenance"):
        code, mods = _modules(tmp_path, "--db", str(case["db"]), cmd, "--json", str(img))
        assert code == 0, cmd
        assert plugin in mods, cmd
        assert not mods & {"PIL.EpsImagePlugin", "PIL.PsdImagePlugin", "PIL.PdfImagePlugin"}, cmd


def test_a_scan_of_plain_files_loads_no_pixel_code_in_the_parent(tmp_path: Path) -> None:
    """The first record of a folder of plain files waits for nothing the files do not need:
    the scan's parent (walk, pool, records, case links) imports neither numpy nor Pillow."""
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.txt").write_text(f"line {i}\n")
    code, mods = _modules(tmp_path, "scan", str(folder), "--no-banks", "-o", str(tmp_path / "r.jsonl"),
                          "--workers", "2")
    assert code == 0
    assert not _top(mods) & {"numpy", "PIL", "c2pa"}
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 5  # header, 3 files, summary
