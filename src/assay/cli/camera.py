"""`assay camera ...`: enrol a camera's sensor fingerprint, match photos against it."""


from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import AssayError, BankNotFound
from ._common import (
    DbOpt,
    JsonOpt,
    _emit_json,
    _esc,
    _refuse_special,
    _store,
    app,
    err,
    out,
    plural,
)

camera_app = typer.Typer(help="Camera sensor fingerprints (PRNU): enrol a camera, match photos.",
                         no_args_is_help=True)
app.add_typer(camera_app, name="camera")

BankOpt = Annotated[str, typer.Option("--bank", help="The bank that holds the cameras.")]


@camera_app.command("enroll")
def camera_enroll(
    name: Annotated[str, typer.Argument(help="A name for the camera, e.g. its make, model and serial.")],
    files: Annotated[list[Path], typer.Argument(help="Photos taken by it, all of one size and orientation.")],
    bank: BankOpt = "cameras",
    min_images: Annotated[int, typer.Option(help="Fewest photos a fingerprint is made from.", min=1)] = 10,
    replace: Annotated[bool, typer.Option(help="Replace a camera of that name in the bank.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Estimate a camera's sensor fingerprint from its photos and keep it in a bank (made if missing)."""
    from ..camera.identify import enroll
    from ..camera.store import CameraStore

    result = enroll(files, min_images=min_images)
    with _store(db) as store:
        try:
            store.get_bank(bank)
        except BankNotFound:
            store.create_bank(bank, description="camera sensor fingerprints")
        rec = CameraStore(store).add(bank, name, result.fingerprint, result.meta, replace=replace)
    if json_out:
        _emit_json({"schema": "assay.camera-enroll/1", "bank": rec.bank, "camera": rec.name, "width": rec.width,
                    "height": rec.height, "images": rec.images, "skipped": result.skipped,
                    "exif": result.meta.get("exif", []), "stored_bytes": rec.size})
        return
    for s in result.skipped:
        err.print(f"[yellow]skipped:[/yellow] {_esc(s)}")
    out.print(_esc(f"enrolled camera {rec.name!r} in bank {rec.bank!r}: {rec.width}x{rec.height}, "
                   f"from {plural(rec.images, 'photo')}"))
    exif = result.meta.get("exif", [])
    if len(exif) > 1:
        out.print(_esc("note: the photos' EXIF names several cameras: " + "; ".join(
            " ".join(e.values()) for e in exif)))
    elif exif:
        out.print(_esc("EXIF: " + ", ".join(f"{k} {v}" for k, v in exif[0].items())))


@camera_app.command("match")
def camera_match(
    files: Annotated[list[Path], typer.Argument(help="Photos to test.")],
    camera: Annotated[str | None, typer.Option("--camera", help="Only this camera (default: every one).")] = None,
    bank: Annotated[str | None, typer.Option("--bank", help="Only the cameras of this bank.")] = None,
    threshold: Annotated[float, typer.Option(help="PCE at or above which a photo matches (at least 10: lower, unrelated photos match).", min=10.0)] = 60.0,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Peak-to-correlation energy (PCE) of each photo against the enrolled cameras, and a decision."""
    from ..camera.identify import compare
    from ..camera.photos import load_photo
    from ..camera.prnu import probe
    from ..camera.store import CameraStore

    failed = 0
    with _store(db) as store:
        cs = CameraStore(store)
        records = cs.list(bank, camera)
        if not records:
            raise AssayError("no enrolled camera" + (f" named {camera!r}" if camera else "")
                             + (f" in bank {bank!r}" if bank else ""),
                             hint="enrol one first: assay camera enroll NAME PHOTOS...")
        prints = {r.id: cs.load(r) for r in records}
    for f in files:
        try:
            _refuse_special(f)
            photo = load_photo(f)
        except AssayError as exc:
            failed += 1
            if json_out:
                _emit_json({"schema": "assay.camera-match/1", "path": str(f), "error": str(exc)})
            else:
                err.print(f"[red]error:[/red] {_esc(str(exc))}")
            continue
        pr = probe(photo.pixels)  # the photo's residual once, for every camera
        results = [compare(pr, f"{r.bank}/{r.name}", prints[r.id], threshold) for r in records]
        if json_out:
            _emit_json({"schema": "assay.camera-match/1", "path": str(f), "width": photo.width,
                        "height": photo.height, "results": [r.to_dict() for r in results]})
            continue
        out.print(f"[bold]{_esc(str(f))}[/bold]")
        for r in results:
            out.print(_esc("  " + _line(r.to_dict())))
    if failed:
        raise typer.Exit(1)


def _line(d: dict[str, Any]) -> str:
    if "not_compared" in d:
        return f"{d['camera']}: not compared: {d['not_compared']}"
    verdict = "MATCH: taken by this camera's sensor" if d["match"] else "no match"
    turn = f", turned {d['rotation']} degrees" if d["rotation"] else ""
    at = f" at row {d['peak']['row']}, column {d['peak']['column']}" if d["positions"] > 1 else ""
    return (f"{d['camera']}: PCE {d['pce']:.1f} (threshold {d['threshold']:g}) -> {verdict}{at}{turn}; "
            f"false-alarm probability {d['false_alarm']:.2g} over {d['positions']:,} positions")


@camera_app.command("list")
def camera_list(bank: Annotated[str | None, typer.Option("--bank", help="Only this bank.")] = None,
                db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Enrolled cameras: bank, name, size, photos."""
    from ..camera.store import CameraStore

    with _store(db) as store:
        records = CameraStore(store).list(bank, enabled_only=False)
    if json_out:
        _emit_json([{"bank": r.bank, "camera": r.name, "width": r.width, "height": r.height, "images": r.images,
                     "created_at": r.created_at.isoformat(), "exif": r.meta.get("exif", [])} for r in records])
        return
    if not records:
        out.print("no cameras enrolled yet: assay camera enroll NAME PHOTOS...")
        return
    from rich.table import Table
    from rich.text import Text

    t = Table()
    for c in ("bank", "camera", "size", "photos", "enrolled"):
        t.add_column(c)
    for r in records:
        t.add_row(Text(r.bank), Text(r.name), f"{r.width}x{r.height}", str(r.images), f"{r.created_at:%Y-%m-%d %H:%M}")
    out.print(t)
