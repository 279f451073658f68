"""`assay signals`, `assay demo`, and the service commands (`serve`, `keys`)."""


from pathlib import Path
from typing import Annotated

import typer

from .. import signals as signal_types
from ._common import DbOpt, JsonOpt, Mode, _db_url, _emit_json, _esc, app, out


# ------------------------------------------------------------------------------- signals
@app.command("signals")
def signals_cmd(json_out: JsonOpt = False) -> None:
    """The signal (hash) types banks can hold."""
    from rich.table import Table

    types = signal_types.all_types()
    if json_out:
        _emit_json([{"name": t.name, "description": t.description, "hex_len": t.hex_len,
                     "match": t.match, "default_threshold": t.default_threshold} for t in types])
        return
    t = Table()
    for c in ("type", "match", "digits", "description"):
        t.add_column(c)
    for st in types:
        t.add_row(st.name, st.match + (f" <= {st.default_threshold}" if st.match == "hamming" else ""),
                  str(st.hex_len), st.description)
    out.print(t)


# ---------------------------------------------------------------------------------- demo
@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Where to write the demo images.")] = Path("demo-data"),
    db: DbOpt = None,
) -> None:
    """Generate benign demo images and a demo bank, then scan them."""
    from ..demo import prepare_demo
    from ..errors import AssayError

    if folder.exists() and not folder.is_dir():
        raise AssayError(f"{folder}: is a file; the demo writes a folder there (nothing was written)",
                         hint="choose another --dir")
    report = folder / "report.jsonl"
    if (report.exists() or report.is_symlink()) and not _demo_report(report, folder):
        # `assay demo --dir .` where `assay scan ... -o report.jsonl` wrote a real report
        raise AssayError(f"{report}: a report that the demo did not write; not replacing it (nothing was written)",
                         hint="choose another --dir, e.g. --dir demo-data")
    try:
        info = prepare_demo(folder, _db_url(db))
    except OSError as exc:
        raise AssayError(f"{exc.filename or folder}: cannot write the demo files: {exc.strerror or exc}",
                         hint="choose another --dir") from None
    out.print(f"demo: {info.images} generated images in {_esc(str(folder))}; bank "
              f"[bold]{info.bank}[/bold] holds {info.bank_entries} of their hashes")
    report = folder / "report.jsonl"
    from .scan import scan

    scan([folder / "images"], output=report, overwrite=True, json_out=False, db=db,
         mode=Mode.fast, exif_transpose=False, dihedral=True, no_variants=False, threshold=None,
         include_low_quality=False, workers=0, provenance=True, models=True,
         trust_anchors=None, no_banks=False, fail_on_match=False)


def _demo_report(report: Path, folder: Path) -> bool:
    """Is ``report`` one that `assay demo` wrote (its scan header's input is the demo's
    images folder and its command line `demo`)? Anything else is the user's."""
    import json
    import os

    try:
        with open(report, "rb") as fh:
            header = json.loads(fh.readline(1 << 20))
        inputs_absolute = header.get("inputs_absolute") or []
        return (header.get("schema") == "assay.scan-header/1" and "demo" in (header.get("argv") or [])
                and [os.path.realpath(p) for p in inputs_absolute] == [os.path.realpath(folder / "images")])
    except (OSError, ValueError, AttributeError, TypeError):
        return False


# --------------------------------------------------------------------------------- serve
def _register_service() -> None:
    from ..service.cli import keys_app, serve

    app.add_typer(keys_app, name="keys")
    app.command("serve")(serve)


_register_service()

