"""`assay bank ...`: create, fill, inspect and export hash banks."""


import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import signals as signal_types
from ..errors import AssayError
from ._common import (
    CreateOpt,
    DbOpt,
    Fmt,
    JsonOpt,
    _emit_json,
    _esc,
    _refuse_special,
    _store,
    bank_app,
    err,
    out,
    plural,
)

BankArg = Annotated[str, typer.Argument(help="The bank's name.", show_default=False)]


# ---------------------------------------------------------------------------------- bank
class BankKind(StrEnum):
    flagged = "flagged"
    known_good = "known-good"


def _bank_dict(b: Any, stats: Any | None = None) -> dict[str, Any]:
    d = {
        "name": b.name,
        "description": b.description,
        "enabled": b.enabled,
        "pdq_threshold": b.pdq_threshold,
        "kind": b.kind,
        "created_at": _iso(b.created_at),
    }
    if stats is not None:
        d["entries"] = stats.entries
        d["signals"] = dict(stats.signals)
        d["last_added"] = _iso(stats.last_added)
    return d


def _iso(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


@bank_app.command("create")
def bank_create(
    name: BankArg,
    description: Annotated[str, typer.Option(help="What this bank holds.")] = "",
    threshold: Annotated[int | None, typer.Option(help="PDQ match threshold of this bank.")] = None,
    kind: Annotated[BankKind, typer.Option(
        help="flagged: a hit is a finding; known-good: a hash set of known files (e.g. NSRL) whose "
             "exact hits mark a file known-good and keep it out of the findings.")] = BankKind.flagged,
    db: DbOpt = None,
    create: CreateOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Create an empty bank."""
    with _store(db, create=create) as store:
        b = store.create_bank(name, description=description, pdq_threshold=threshold,
                              kind=kind.value)
    _emit_json(_bank_dict(b)) if json_out else out.print(f"created bank {_esc(b.name)}")


@bank_app.command("list")
def bank_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """List banks with their sizes."""
    from rich.table import Table


    with _store(db) as store:
        rows = [(b, store.stats(b.name)) for b in store.list_banks()]
    if json_out:
        _emit_json([_bank_dict(b, s) for b, s in rows])
        return
    if not rows:
        out.print("no banks yet: create one with `assay bank create NAME`")
        return
    t = Table()
    for c in ("bank", "kind", "enabled", "entries", "signals", "threshold", "description"):
        t.add_column(c)
    for b, s in rows:
        sig = ", ".join(f"{n:,} {k}" for k, n in sorted(s.signals.items()))
        t.add_row(_esc(b.name), b.kind, "yes" if b.enabled else "no", f"{s.entries:,}", sig,
                  str(b.pdq_threshold if b.pdq_threshold is not None else "default"), _esc(b.description or ""))
    out.print(t)


@bank_app.command("show")
def bank_show(
    name: BankArg,
    limit: Annotated[int, typer.Option(min=0, help="How many entries (and model entries) to list.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many entries.")] = 0,
    variants: Annotated[bool, typer.Option(
        "--variants", help="List every variant PDQ hash an image entry was banked with (crops, regions, "
                           "trimmed), each named; without it they are counted.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A bank's settings, its first entries and its model entries (weight fingerprints)."""
    from rich.table import Table
    from rich.text import Text

    from ..banks.fingerprints import FingerprintStore
    from ..report.terminal import safe

    with _store(db) as store:
        b = store.get_bank(name)
        s = store.stats(name)
        entries = list(store.iter_entries(name, limit=limit, offset=offset))
        models = FingerprintStore(store).list(name)
    if json_out:
        d = _bank_dict(b, s)
        d["entries_listed"] = [_entry_dict(e) for e in entries]
        d["model_entries"] = len(models)
        d["models_listed"] = [_model_dict(m) for m in models[offset:offset + limit]]
        _emit_json(d)
        return
    head = (f"bank [bold]{_esc(b.name)}[/bold] ({b.kind}, {'enabled' if b.enabled else 'disabled'}), "
            f"{plural(s.entries, 'entry', 'entries')}, {plural(len(models), 'model entry', 'model entries')}, "
            f"PDQ threshold {b.pdq_threshold if b.pdq_threshold is not None else 'default'}")
    out.print(head)
    if b.description:
        out.print(Text("description: ") + safe(b.description, 400))
    if entries:
        out.print("entries")
        for e in entries:
            _print_entry(e, variants)
    shown = models[offset:offset + limit]
    if shown:
        t = Table(title="model entries (weight fingerprints, for lineage)", title_justify="left")
        for c in ("content id", "kind", "role", "note", "added"):
            t.add_column(c)
        for m in shown:
            t.add_row(safe(m.content_id), m.kind, safe(m.role or "", 60), safe(m.note or "", 60), _when(m.created_at))
        out.print(t)
    if s.entries > offset + len(entries) or len(models) > offset + len(shown):
        out.print(f"listed from {offset + 1:,}, at most {limit:,} of each; more with --offset {offset + limit}")


def _print_entry(e: Any, variants: bool) -> None:
    """One entry as a block: its id and where it came from, then one hash a line, never
    folded (a hash copied from the terminal must be whole, whatever its width). The
    variant PDQ hashes ``bank add --image`` stores beside an image's own are named (or
    counted, without ``variants``): they are not the image's hash."""
    from rich.text import Text

    from ..banks.refs import banked_variant, variant_kind
    from ..report.terminal import safe

    line = Text("  ") + safe(e.content_id) + Text(f"  added {_when(e.added_at)}")
    if e.source:
        line += Text(" from ") + safe(e.source, 80)
    if not e.enabled:
        line += Text(" (disabled)")
    out.print(line, soft_wrap=True)
    if e.note:
        out.print(Text("    note: ") + safe(e.note, 400), soft_wrap=True)
    hidden: dict[str, int] = {}
    width = max((len(k) for k in e.signals), default=0)
    for kind, values in sorted(e.signals.items()):
        for value in ((values,) if isinstance(values, str) else values):
            named = banked_variant(e.meta, value) if kind == "pdq" else None
            if named is not None and not variants:
                hidden[variant_kind(named)] = hidden.get(variant_kind(named), 0) + 1
                continue
            text = Text(f"    {kind:<{width}}  ") + safe(value, 100_000)
            if named is not None:
                text += Text(" (variant ") + safe(named, 80) + Text(")")
            out.print(text, soft_wrap=True)
    if hidden:
        n = sum(hidden.values())
        out.print(f"    + {plural(n, 'variant PDQ hash', 'variant PDQ hashes')} "
                  f"({', '.join(f'{c} {k}' for k, c in sorted(hidden.items()))}): listed with --variants",
                  soft_wrap=True, highlight=False)


def _when(v: Any) -> str:
    return f"{v:%Y-%m-%d %H:%M} UTC" if hasattr(v, "strftime") else str(v or "")


def _model_dict(m: Any) -> dict[str, Any]:
    return {"content_id": m.content_id, "kind": m.kind, "role": m.role, "note": m.note,
            "added_at": _iso(m.created_at)}


def _entry_dict(e: Any) -> dict[str, Any]:
    return {
        "content_id": e.content_id,
        "signals": e.signals,
        "note": e.note,
        "source": e.source,
        "added_at": _iso(e.added_at),
        "enabled": e.enabled,
        "meta": e.meta,
    }


@bank_app.command("stats")
def bank_stats(name: BankArg, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Counts of entries and signals in a bank."""
    with _store(db) as store:
        b = store.get_bank(name)
        s = store.stats(name)
    if json_out:
        _emit_json(_bank_dict(b, s))
        return
    sig = ", ".join(f"{n:,} {k}" for k, n in sorted(s.signals.items())) or "no signals"
    out.print(f"{_esc(b.name)}: {plural(s.entries, 'entry', 'entries')}, {sig}"
              + (f"; last added {_when(s.last_added)}" if s.last_added else ""))


@bank_app.command("import")
def bank_import(
    name: BankArg,
    file: Path,
    fmt: Annotated[Fmt, typer.Option("--format", help="Input format (auto: by content).")] = Fmt.auto,
    signal_type: Annotated[str, typer.Option("--type", help="Signal type of a plain hash list.")] = "pdq",
    create: Annotated[bool, typer.Option(
        "--create", help="Create the bank (and the store named by --db) if they do not exist.")] = False,
    kind: Annotated[BankKind | None, typer.Option(
        help="Kind of a bank made by --create (default: known-good for NSRL, else flagged).")] = None,
    content_id: Annotated[str | None, typer.Option(
        help="vPDQ file: the video's entry id (default: the file name without its extension).")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a hash list, CSV, JSON Lines, VICS JSON, NSRL RDS v3 file, or one video's
    vPDQ hash (Meta's text lines or python-threatexchange's signal string). All or
    nothing; re-imports add nothing."""
    from ..banks.formats import (
        KNOWN_GOOD_FORMATS,
        ImportExtras,
        detect_format,
        parse_file,
        read_header,
    )
    from ..errors import BankImportError, BankNotFound

    signal_types.get(signal_type)
    _refuse_special(file)
    detected = detect_format(file) if fmt is Fmt.auto else fmt.value
    header = read_header(file) if detected == "jsonl" else None  # a bank exported by assay
    with _store(db, create=create) as store:
        try:
            bank = store.get_bank(name)
        except BankNotFound:
            if not create:
                raise
            default = BankKind.known_good if detected in KNOWN_GOOD_FORMATS else BankKind.flagged
            made = (kind.value if kind else None) or (header or {}).get("kind") or default.value
            bank = store.create_bank(name, kind=made, description=(header or {}).get("description") or "",
                                     pdq_threshold=(header or {}).get("pdq_threshold"))
        if detected in KNOWN_GOOD_FORMATS and bank.kind != "known-good":
            # Every hit in a flagged bank is a finding: NSRL there would flag operating-system files.
            raise AssayError(f"{file}: an NSRL RDS set lists known files; bank {name!r} is of kind "
                             f"{bank.kind!r}, where every hit is a finding: not imported",
                             hint="import it into a known-good bank: assay bank create NAME --kind known-good")
        if header is not None and header["kind"] != bank.kind:
            # Known files into a flagged bank become findings; flagged ones into a known-good
            # bank would clear files: neither is a mix-up to make silently.
            raise AssayError(f"{file}: exported from a {header['kind']} bank; bank {name!r} is "
                             f"{bank.kind}: not imported",
                             hint=f"import it into a bank of kind {header['kind']} (or a new one with --create)")
        extras = ImportExtras()
        if content_id is not None and detected != "vpdq":
            raise typer.BadParameter("--content-id names the video of a vPDQ file only", param_hint="--content-id")
        records = parse_file(file, None if fmt is Fmt.auto else fmt.value, signal_type=signal_type, extras=extras,
                             content_id=content_id)
        with store.transaction(f"importing {file}"):  # entries and fingerprints: all or nothing
            res = store.import_records(name, records, source=str(file))
            fingerprints = 0
            if extras.fingerprints:
                from ..banks.fingerprints import FingerprintStore

                fs = FingerprintStore(store)
                for f in extras.fingerprints:
                    try:
                        fs.add_exported(name, f["content_id"], f["data"], kind=f["kind"], role=f["role"],
                                        note=f["note"], created_at=f["created_at"])
                    except AssayError as exc:
                        raise BankImportError(str(file), [(f["line"], str(exc))]) from None
                    fingerprints += 1
    warnings: list[str] = []
    if res.degenerate:
        warnings.append(f"{res.degenerate:,} degenerate value(s) not imported (the hashes of an empty file, e.g. "
                        "MD5 d41d8cd9..., which every empty file has; AutoV1 e3b0c442, the hash of an empty "
                        "window, which every file shorter than 1 MiB has): they would match unrelated files")
    for w in warnings:
        err.print(f"[yellow]warning:[/yellow] {_esc(w)}")
    if json_out:
        _emit_json({"bank": name, "kind": bank.kind, "file": str(file), "format": detected,
                    "added_entries": res.added_entries, "added_signals": res.added_signals,
                    "fingerprints": fingerprints,
                    "duplicates": res.duplicates, "total": res.total, "degenerate": res.degenerate,
                    "warnings": warnings})
        return
    out.print(f"{_esc(str(file))} ({detected}) -> {_esc(name)} ({bank.kind}): {res.total:,} records, "
              f"{res.added_entries:,} new entries, {res.added_signals:,} new signals, "
              f"{res.duplicates:,} already present"
              + (f", {fingerprints:,} model fingerprints" if fingerprints else ""))


@bank_app.command("export")
def bank_export(
    name: BankArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    fmt: Annotated[Fmt, typer.Option("--format", help="list, csv, jsonl, or vpdq (one video, --content-id).")
                   ] = Fmt.jsonl,
    signal_type: Annotated[str | None, typer.Option("--type", help="Only this type (list format).")] = None,
    content_id: Annotated[str | None, typer.Option(
        help="--format vpdq: the video to write, in Meta's text form (frame_number,quality,hex,timestamp).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    db: DbOpt = None,
) -> None:
    """Export a bank as a hash list, CSV or JSON Lines, or one banked video's vPDQ hash."""
    from functools import partial

    from ..banks.formats import export, export_video

    if fmt is Fmt.auto:
        fmt = Fmt.jsonl
    if (fmt is Fmt.vpdq) != (content_id is not None):
        raise typer.BadParameter("--format vpdq writes one video: name it with --content-id (and only then)",
                                 param_hint="--content-id")
    if fmt in (Fmt.vics, Fmt.nsrl):
        raise typer.BadParameter(f"cannot export as {fmt.value} (list, csv, jsonl or vpdq)", param_hint="--format")
    with _store(db) as store:
        store.get_bank(name)
        write = partial(export_video, store, name, content_id) if content_id is not None else \
            partial(export, store, name, fmt.value, signal_type=signal_type)
        if output is None:
            write(out=sys.stdout)
            if content_id is None:
                _warn_lost_fingerprints(store, name, fmt)
            return
        from ..outfile import check_target

        if check_target(output, hint="leave out -o to write to stdout") and not overwrite:
            raise AssayError(f"{output}: exists; not overwriting it", hint="pass --overwrite")
        tmp = output.with_name(output.name + ".partial")
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                write(out=fh)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AssayError(f"{exc.filename or output}: cannot write the export: {exc.strerror or exc}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(output)
        if content_id is None:
            _warn_lost_fingerprints(store, name, fmt)
    err.print(f"exported {_esc(name)} to {_esc(str(output))}")


def _warn_lost_fingerprints(store: Any, name: str, fmt: Fmt) -> None:
    if fmt is Fmt.jsonl:
        return
    from ..banks.fingerprints import FingerprintStore

    n = len(FingerprintStore(store).list(name))
    if n:
        err.print(f"[yellow]warning:[/yellow] {n} model fingerprint(s) of {_esc(name)} are not in a "
                  f"{fmt.value} export; export as jsonl to keep them")


@bank_app.command("add")
def bank_add(
    name: BankArg,
    content_id: Annotated[str, typer.Option(help="Your identifier of the content.")],
    pdq: Annotated[list[str] | None, typer.Option(help="PDQ hash.")] = None,
    md5: Annotated[list[str] | None, typer.Option(help="MD5.")] = None,
    sha256: Annotated[list[str] | None, typer.Option(help="SHA-256.")] = None,
    sha1: Annotated[list[str] | None, typer.Option(help="SHA-1.")] = None,
    signal: Annotated[list[str] | None, typer.Option(help="TYPE:VALUE for other signal types.")] = None,
    image: Annotated[Path | None, typer.Option(help="Hash this image and add its hashes.")] = None,
    video: Annotated[Path | None, typer.Option(
        help="Hash this video and add it: its vPDQ frame hashes (matched per video by Meta's rule), "
             "video_md5 and sha256.")] = None,
    no_variants: Annotated[bool, typer.Option(
        "--no-variants", help="With --image: bank only its plain PDQ, not also the content inside its borders, "
        "its centred crops and its upper region.")] = False,
    note: Annotated[str | None, typer.Option(help="A note kept with the entry.")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add one entry (its hashes) to a bank."""
    sig: dict[str, list[str]] = {}
    warnings: list[str] = []
    variants: dict[str, str] = {}
    for t, values in (("pdq", pdq), ("md5", md5), ("sha256", sha256), ("sha1", sha1)):
        for v in values or []:
            sig.setdefault(t, []).append(v)
    for s in signal or []:
        if ":" not in s:
            raise typer.BadParameter(f"{s!r}: expected TYPE:VALUE", param_hint="--signal")
        t, v = s.split(":", 1)
        sig.setdefault(t, []).append(v)
    if image is not None:
        from ..banks.matcher import LOW_QUALITY
        from ..media import hash_image_file

        _refuse_special(image)
        h = hash_image_file(image, bank_variants=not no_variants)
        if h.quality < LOW_QUALITY:
            # Stored all the same (the examiner chose this image), but it is not looked up
            # by default: such an image's PDQ is mostly flat-area noise and matches loosely.
            warnings.append(f"{image}: PDQ quality {h.quality} < {LOW_QUALITY}: stored, but low-quality "
                            "hashes match loosely and scans skip such query hashes unless --include-low-quality")
        sig.setdefault("pdq", []).append(h.pdq)
        sig.setdefault("md5", []).append(h.md5)
        sig.setdefault("sha256", []).append(h.sha256)
        if not no_variants:
            # The content inside uniform borders/bars, so that a clean copy of a bordered
            # original matches too (media/trim.py), and centred crops and the upper region,
            # so that a cropped or captioned copy does (media/crops.py); low-quality ones
            # would match loosely.
            for variant, (value, quality) in {**(h.trimmed or {}), **(h.bank_regions or {})}.items():
                if "+" not in variant and quality >= LOW_QUALITY and value != h.pdq and value not in variants:
                    sig["pdq"].append(value)
                    variants[value] = variant
    meta: dict[str, Any] = {"pdq_variants": variants} if variants else {}
    if video is not None:
        from ..banks.videos import bank_record
        from ..media.video import hash_video_file

        _refuse_special(video)
        h = hash_video_file(video)
        rec = bank_record(h.vpdq, content_id, extra=[("video_md5", h.md5), ("sha256", h.sha256)],
                          trimmed=[] if no_variants else h.trimmed, displayed=[] if no_variants else h.displayed)
        for t, v in rec.signals:
            sig.setdefault(t, []).append(v)
        for k, v in (rec.meta or {}).items():
            meta[k] = {**meta[k], **v} if k == "pdq_variants" and k in meta else v
        low = len(h.vpdq) - (rec.meta or {}).get("vpdq", {}).get("frames", 0)
        if low:
            warnings.append(f"{video}: {low} of {len(h.vpdq)} sampled frames are repeats or of PDQ quality < 50: "
                            "kept in the entry's hash, not matched (Meta's rule)")
    if not sig:
        raise typer.BadParameter("give at least one hash (--pdq, --md5, --sha256, --sha1, --signal, --image, --video)")
    with _store(db) as store:
        res = store.add_entry(name, content_id, sig, note=note, source="cli", meta=meta or None)
    if res.degenerate:
        warnings.append(f"{res.degenerate} degenerate value(s) not stored (the hashes of an empty file, e.g. MD5 "
                        "d41d8cd9...; AutoV1 e3b0c442, the hash of an empty window): they would match unrelated files")
    for w in warnings:
        err.print(f"[yellow]warning:[/yellow] {_esc(w)}")
    if json_out:
        _emit_json({"bank": name, "content_id": content_id, "added_signals": res.added_signals,
                    "duplicates": res.duplicates, "degenerate": res.degenerate, "warnings": warnings})
        return
    out.print(f"{_esc(name)}: entry {_esc(content_id)}: {res.added_signals} new signals, {res.duplicates} already present")


@bank_app.command("remove")
def bank_remove(name: BankArg, content_id: str, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Remove one entry from a bank."""
    with _store(db) as store:
        removed = store.remove_entry(name, content_id)
    if json_out:
        _emit_json({"bank": name, "content_id": content_id, "removed": removed})
    elif removed:
        out.print(f"removed {_esc(content_id)} from {_esc(name)}")
    else:
        raise AssayError(f"bank {name!r} has no entry {content_id!r}")


@bank_app.command("enable")
def bank_enable(name: BankArg, db: DbOpt = None) -> None:
    """Match against this bank again."""
    with _store(db) as store:
        store.set_bank_enabled(name, True)
    out.print(f"enabled {_esc(name)}")


@bank_app.command("disable")
def bank_disable(name: BankArg, db: DbOpt = None) -> None:
    """Keep the bank but stop matching against it."""
    with _store(db) as store:
        store.set_bank_enabled(name, False)
    out.print(f"disabled {_esc(name)}")


def _threshold(value: str | None) -> Any:
    if value is None:
        return None
    if value == "default":
        return "default"
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= 256:
        raise typer.BadParameter(f"{value}: give a distance from 0 to 256, or 'default'")
    return n


@bank_app.command("set")
def bank_set(
    name: BankArg,
    threshold: Annotated[str | None, typer.Option(
        metavar="N|default", callback=_threshold,
        help="PDQ match threshold of this bank (0-256), or 'default' for the signal type's.")] = None,
    description: Annotated[str | None, typer.Option(metavar="TEXT", help="What this bank holds.")] = None,
    enabled: Annotated[bool | None, typer.Option(
        "--enable/--disable", show_default=False, help="Match against this bank, or keep it but stop.")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change a bank's threshold, description or whether it is matched against."""
    from ..banks.store import UNSET

    if threshold is None and description is None and enabled is None:
        raise typer.BadParameter("give at least one of --threshold, --description, --enable/--disable")
    t = UNSET if threshold is None else (None if threshold == "default" else threshold)
    with _store(db) as store:
        b = store.update_bank(name, description=description, pdq_threshold=t, enabled=enabled)
    if json_out:
        _emit_json(_bank_dict(b))
        return
    out.print(f"bank {_esc(b.name)}: {'enabled' if b.enabled else 'disabled'}, PDQ threshold "
              f"{b.pdq_threshold if b.pdq_threshold is not None else 'default'}"
              + (f", description: {_esc(b.description)}" if b.description else ""))


@bank_app.command("rename")
def bank_rename(
    name: BankArg,
    new_name: Annotated[str, typer.Argument(metavar="NEW", help="The bank's new name.", show_default=False)],
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Give a bank a new name (entries, fingerprints and settings stay)."""
    with _store(db) as store:
        b = store.rename_bank(name, new_name)
    if json_out:
        _emit_json(_bank_dict(b))
        return
    out.print(f"renamed bank {_esc(name)} to {_esc(b.name)}")


@bank_app.command("delete")
def bank_delete(
    name: BankArg,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: deletes the bank and all its entries.")] = False,
    db: DbOpt = None,
) -> None:
    """Delete a bank and its entries (asks for --yes)."""
    if not yes:
        raise AssayError(f"not deleting bank {name!r} without --yes", hint="export it first to keep a copy")
    with _store(db) as store:
        store.delete_bank(name)
    out.print(f"deleted {_esc(name)}")


@bank_app.command("prune-changes")
def bank_prune_changes(
    older_than_days: Annotated[float, typer.Option(
        "--older-than-days", min=0, help="Delete change records older than this many days.")] = 7.0,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete old change records (what running services follow; `assay serve` also
    prunes by itself). A service index, or an index snapshot on disk, that has not
    followed the store since then loads again from the store instead of catching up."""
    from datetime import timedelta

    with _store(db) as store:
        deleted = store.prune_changes(older_than=timedelta(days=older_than_days))
        watermark = store.changes_watermark()
    if json_out:
        _emit_json({"deleted": deleted, "pruned_through_seq": watermark})
        return
    out.print(f"deleted {deleted:,} change records older than {older_than_days:g} days"
              f" (pruned through change #{watermark:,})")


class ModelKind(StrEnum):
    checkpoint = "checkpoint"
    lora = "lora"
    base = "base"


@bank_app.command("add-model")
def bank_add_model(
    name: BankArg,
    file: Path,
    content_id: Annotated[str | None, typer.Option("--id", help="Entry id (default: the file name).")] = None,
    kind: Annotated[ModelKind, typer.Option(help="flagged checkpoint, flagged LoRA, or known base.")] = ModelKind.checkpoint,
    role: Annotated[str | None, typer.Option(help="Free text, e.g. 'flagged: trained on abuse material'.")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the entry.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing fingerprint of this entry.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a model file to a bank: its weight fingerprint (for lineage) and its file hashes."""
    from ..banks.fingerprints import add_model, base_banked, model_fingerprint
    from ..models.analyzer import analyze_model
    from ..models.hashes import hash_signals

    cid = content_id or file.name
    _refuse_special(file)
    with _store(db) as store:
        store.get_bank(name)
        report = analyze_model(file)
        if report.safety and report.safety.verdict == "dangerous":
            raise AssayError(f"{file}: refused: its pickle would run code; add it by hash with `bank add --signal`")
        fp = model_fingerprint(file, kind.value)
        rec = add_model(store, name, cid, file, kind.value, role=role, note=note, replace=replace, fingerprint=fp)
        sig: dict[str, list[str]] = {}
        if report.hashes is not None:
            for s in hash_signals(report.hashes):
                sig.setdefault(s.type, []).append(s.value)
        res = store.add_entry(name, cid, sig, note=note, source=str(file)) if sig else None
        # A flagged checkpoint without its base in the store: its copies are found, but a
        # model trained further from it reads as related (context), not as a match.
        base = base_banked(store, fp, f"{name}/{cid}") if kind == ModelKind.checkpoint else None
    if json_out:
        _emit_json({"bank": name, "content_id": cid, "kind": kind.value,
                    "fingerprint_id": rec.id,
                    "added_signals": res.added_signals if res else 0}
                   | ({"base_banked": base} if base is not None else {}))
        return
    out.print(f"{_esc(name)}: added {kind.value} {_esc(cid)} (weight fingerprint"
              + (f" and {res.added_signals} file hashes)" if res else ")"))
    if base is False:
        out.print("note: no banked base is this checkpoint's base. Copies of it (converted, quantized, renamed, "
                  "permuted) are found, but a model trained further from it is listed as related, not matched, "
                  "until its base is banked: `assay bank add-model BANK BASE_FILE --kind base`")
