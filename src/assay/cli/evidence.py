"""`assay provenance`, `assay model` and `assay lora`: evidence about one file at a time."""


from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import AssayError
from ._common import (
    DbOpt,
    JsonOpt,
    _Banks,
    _camera_bank,
    _check_anchors,
    _check_store_named,
    _emit_json,
    _esc,
    _refuse_special,
    _shown,
    app,
    err,
    out,
)


# ---------------------------------------------------------------------------- provenance
@app.command()
def provenance(
    files: Annotated[list[Path], typer.Argument(help="Images, PDF/SVG documents, audio or video files.")],
    trust_anchors: Annotated[Path | None, typer.Option(help="PEM bundle of C2PA trust anchors (default: $ASSAY_C2PA_TRUST_ANCHORS, else the bundled C2PA trust list).")] = None,
    facts: Annotated[bool, typer.Option(help="List the extracted facts under each evidence.")] = True,
    db: DbOpt = None,
    cameras: Annotated[bool, typer.Option(
        help="Compare images with the store's enrolled camera fingerprints (assay camera) of their size.")] = True,
    camera_threshold: Annotated[float, typer.Option(
        help="PCE at or above which a camera fingerprint match is evidence (at least 10).", min=10.0)] = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Provenance evidence (C2PA, IPTC, generator metadata, watermarks, camera traces, camera sensor
    fingerprints) and a cautious verdict.

    Images get every check; documents, audio and video (no pixels) get C2PA and XMP only."""
    from ..config import Limits
    from ..provenance.analyzer import (
        IMAGE_FORMATS,
        analyze_media_provenance,
        analyze_provenance,
        explain,
    )
    from ..sniff import sniff_path

    _check_anchors(trust_anchors)
    limits = Limits()
    failed = 0
    bank = _camera_bank(db, camera_threshold) if cameras else None
    for f in files:
        result: dict[str, Any] = {"schema": "assay.provenance/1", "path": str(f)}
        try:
            _refuse_special(f)
            kind = sniff_path(f)
            if kind.kind not in ("image", "document", "video", "audio"):
                raise AssayError(
                    f"{f}: not an image, document, audio or video file (detected: {kind.kind} {kind.format})"
                )
            if kind.format not in IMAGE_FORMATS:
                report = analyze_media_provenance(f, kind.format, trust_anchors=trust_anchors)
            else:
                if f.stat().st_size > limits.max_image_bytes:
                    raise AssayError(f"{f}: larger than the image limit of {limits.max_image_bytes} bytes")
                report = analyze_provenance(f, f.read_bytes(), kind.format, trust_anchors=trust_anchors,
                                            cameras=bank)
        except (AssayError, OSError) as exc:
            failed += 1
            msg = str(exc) if isinstance(exc, AssayError) else f"{f}: {exc.strerror or exc}"
            if json_out:
                _emit_json({**result, "error": msg})
            else:
                err.print(f"[red]error:[/red] {_esc(msg)}")
            continue
        if json_out:
            _emit_json({**result, **report.model_dump(mode="json", exclude_none=True)})
        else:
            out.line((_shown(str(f)), "bold"))
            out.line(explain(report, facts=facts))
            out.line()
    if failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------------- model
@app.command()
def model(
    files: Annotated[list[Path], typer.Argument(help="Model files or diffusers/PEFT folders.")],
    bank: Annotated[
        list[str] | None,
        typer.Option("--bank", help="Lineage against these banks' model fingerprints (default: all enabled)."),
    ] = None,
    db: DbOpt = None,
    no_banks: Annotated[bool, typer.Option("--no-banks", help="No hash matching, no lineage.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Model files, opened without executing them: safety, architecture, hashes, metadata, bank matches, lineage."""
    from ..models.analyzer import analyze_model
    from ..models.hashes import hash_signals
    from ..report.model import explain_model
    from ..report.terminal import matches_table

    _check_store_named(None if no_banks else db)
    failed = 0
    # Opened on first need: a file that cannot be read never waits for the store.
    with _Banks(db) as banks:
        for f in files:
            result: dict[str, Any] = {"schema": "assay.model/1", "path": str(f)}
            try:
                if not f.exists():
                    raise AssayError(f"{f}: no such file or folder")
                _refuse_special(f)
                report = analyze_model(f)
            except AssayError as exc:
                failed += 1
                if json_out:
                    _emit_json({**result, "error": str(exc)})
                else:
                    err.print(f"[red]error:[/red] {_esc(str(exc))}")
                continue
            found = []
            compared = False
            if not no_banks:
                if report.hashes is not None:
                    found = banks.match_signals(hash_signals(report.hashes))
                if not (report.safety and report.safety.verdict == "dangerous"):
                    compared = _lineage(banks, f, report, bank)
            if json_out:
                _emit_json({**result, **report.model_dump(mode="json", exclude_none=True),
                            "matches": [m.model_dump(mode="json", exclude_none=True) for m in found]})
                continue
            out.line(explain_model(report, str(f)))
            if not no_banks and not compared:
                out.line("lineage: not compared (no enabled bank holds a weight fingerprint)")
            if found:
                out.print(matches_table(found, title="bank matches"))
            elif not no_banks:
                out.line("bank matches: none of its hashes is in an enabled bank")
            out.line()
    if failed:
        raise typer.Exit(1)


def _lineage(access: Any, path: Path, report: Any, banks: list[str] | None) -> bool:
    """Compare the file's weights with the banks' fingerprints; False if no bank has any."""
    # Whether there is anything to compare with, and whether a file has weights at all,
    # are both known without the store's database layer or the fingerprint code.
    if access.fingerprint_count(banks or None) == 0:
        return False
    if report.tensor_count == 0 and path.is_file():
        from ..errors import InputError
        from ..models.names import NO_WEIGHTS

        report.lineage_explanations = [f"not compared: {InputError(path, NO_WEIGHTS)}"]
        return True
    from ..banks.fingerprints import FingerprintStore
    from ..models.alignment import query_file

    fs = FingerprintStore(access.store())
    index = fs.index(banks or None)
    if len(index) == 0:
        return False
    try:
        result = query_file(fs, path, banks or None, index=index)
    except AssayError as exc:  # e.g. a pickle of plain values: the report stands, lineage says why not
        report.lineage_explanations = [f"not compared: {exc}"]
        return True
    report.lineage = result.to_dict()
    report.lineage_explanations = result.explanations()
    return True


lora_app = typer.Typer(help="LoRA tools.", no_args_is_help=True)
app.add_typer(lora_app, name="lora")


@lora_app.command("extract")
def lora_extract(
    suspect: Path,
    base: Annotated[Path, typer.Option("--base", help="The base model the suspect was derived from.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the kohya-format LoRA.")],
    energy: Annotated[float, typer.Option(help="Share of each delta's energy to keep (chooses the rank).")] = 0.9,
    max_rank: Annotated[int, typer.Option(help="Upper bound on the rank per module.")] = 128,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Write the low-rank difference SUSPECT - BASE as a kohya LoRA, so it can be banked."""
    from ..models.lora_extract import extract

    if not 0 < energy <= 1:
        raise typer.BadParameter("energy must be in (0, 1]")
    rep = extract(suspect, base, output, energy=energy, max_rank=max_rank, overwrite=overwrite)
    out.print("\n".join(_esc(line) for line in rep.explanation().split("\n")))
