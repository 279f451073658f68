"""`assay hash` and `assay match`: hashes of images and lookups in the banks."""


from pathlib import Path
from typing import Annotated, Any

import typer

from .. import signals as signal_types
from ..config import ScanSettings
from ..errors import AssayError
from ._common import (
    DbOpt,
    JsonOpt,
    Mode,
    _Banks,
    _emit_json,
    _refuse_special,
    _special,
    app,
    err,
    out,
    plural,
)


# ---------------------------------------------------------------------------------- hash
@app.command("hash")
def hash_cmd(
    files: Annotated[list[Path], typer.Argument(help="Image or video files.")],
    mode: Annotated[Mode, typer.Option(help="fast (reduced decode) or reference (Meta's pixels).")] = Mode.fast,
    exif_transpose: Annotated[bool, typer.Option(help="Rotate per EXIF before hashing.")] = False,
    dihedral: Annotated[bool, typer.Option(help="Also the 8 rotation/flip variants.")] = False,
    all_variants: Annotated[bool, typer.Option(
        "--all-variants", help="Also the variant PDQ hashes a scan looks up (~50: mirror, borders, crops, "
        "caption band, regions).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """PDQ, MD5 and SHA-256 of image files; vPDQ (1 frame/s), MD5 and SHA-256 of videos (no matching)."""
    from ..scan.pipeline import analyze_item
    from ..scan.walk import WalkItem

    # Nothing is matched here: the variant hashes only when asked for.
    settings = ScanSettings(pdq_mode=mode.value, exif_transpose=exif_transpose, dihedral=dihedral, workers=1,
                            variants=all_variants, all_variants=all_variants)
    from ..media.analyzer import ImageHashAnalyzer

    analyzers = [ImageHashAnalyzer()]
    failed = 0
    for f in files:
        if not _special(f) and _is_video(f):
            from ..media.video import video_record

            rec = video_record(f, pdq_mode=mode.value)
        else:
            why = _special(f) or (None if f.exists() else "no such file")
            rec = analyze_item(WalkItem(f, why) if why else WalkItem(f), settings, analyzers)
        if rec.kind not in ("image", "video") and not rec.errors:
            rec.errors.append(_not_image(rec))
        failed += bool(rec.errors)
        if json_out:
            _emit_json(rec.to_json_dict())
        else:
            from ..report.terminal import print_record

            print_record(out, rec)
    if failed:
        if not json_out:
            err.print(f"[red]error:[/red] {failed} of {plural(len(files), 'file')} could not be hashed (see above)")
        raise typer.Exit(1)


def _best_per_image(found: list[Any], queries: list[Any], sources: list[str | None]) -> list[Any]:
    """The queries of one --image are one subject: each bank entry once, by its best match
    (anchored regions voting, see banks.matcher.best_per_entry)."""
    from ..banks.matcher import best_per_entry, regions_in

    def source(m: Any) -> str | None:
        return sources[m.query] if m.query is not None else None

    out = [m for m in found if source(m) is None]
    for src in dict.fromkeys(s for s in map(source, found) if s is not None):
        mine = [m for m in found if source(m) == src]
        out += best_per_entry(mine, regions_in(q for q, s in zip(queries, sources, strict=True) if s == src))
    return sorted(out, key=lambda m: -1 if m.query is None else m.query)


def _not_image(rec: Any) -> Any:
    from ..report.schema import ErrorInfo

    return ErrorInfo(stage="sniff", code="unsupported-format",
                     message=f"not an image or a video (detected: {rec.format})")


def _is_video(f: Path) -> bool:
    """A video container assay decodes, by its magic bytes."""
    from ..sniff import video_format

    try:
        with open(f, "rb") as fh:
            return video_format(fh.read(512)) is not None
    except OSError:
        return False


# --------------------------------------------------------------------------------- match
@app.command()
def match(
    pdq: Annotated[list[str] | None, typer.Option(help="PDQ hash (64 hex).")] = None,
    md5: Annotated[list[str] | None, typer.Option(help="MD5 (32 hex).")] = None,
    sha256: Annotated[list[str] | None, typer.Option(help="SHA-256 (64 hex).")] = None,
    sha1: Annotated[list[str] | None, typer.Option(help="SHA-1 (40 hex).")] = None,
    signal: Annotated[list[str] | None, typer.Option(help="TYPE:VALUE, e.g. autov2:6ce0161689.")] = None,
    image: Annotated[list[Path] | None, typer.Option(help="Hash this image, then match it.")] = None,
    video: Annotated[list[Path] | None, typer.Option(
        help="Hash this video (vPDQ, 1 frame/s), then match it: per banked video by Meta's rule, and "
             "exactly by video_md5 and sha256.")] = None,
    threshold: Annotated[int | None, typer.Option(help="PDQ distance threshold (overrides banks).")] = None,
    dihedral: Annotated[bool, typer.Option(help="With --image: match all 8 rotations/flips.")] = False,
    no_variants: Annotated[bool, typer.Option(
        "--no-variants", help="Strict: no extra queries for an --image's mirror, borders, crops or caption "
        "band, and no match through hashes banked for such variants.")] = False,
    include_low_quality: Annotated[bool, typer.Option(help="Match low-quality PDQ hashes.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Look hashes up in every enabled bank."""
    from ..banks.matcher import Query, skip_reason
    from ..report.terminal import matches_table, safe, safe_str, video_match_line

    queries: list[Query] = []
    sources: list[str | None] = []  # the image a query was computed from
    for t, values in (("pdq", pdq), ("md5", md5), ("sha256", sha256), ("sha1", sha1)):
        for v in values or []:
            queries.append(Query(t, signal_types.get(t).normalize(v)))
    for s in signal or []:
        if ":" not in s:
            raise typer.BadParameter(f"{s!r}: expected TYPE:VALUE", param_hint="--signal")
        t, v = s.split(":", 1)
        name, value = signal_types.normalize(t, v)
        queries.append(Query(name, value))
    sources += [None] * len(queries)
    banks = _Banks(db)
    if image:
        from ..media import hash_image_file

        # query variants that only banked variants of a kind can match, only if some bank has them
        try:
            kinds = banks.pdq_variant_kinds() if not no_variants else None
        except BaseException:
            banks.__exit__()
            raise
        for f in image:
            if why := _special(f):
                banks.__exit__()
                raise AssayError(f"{f}: {why}")
            h = hash_image_file(f, dihedral=dihedral, variants=not no_variants, bank_kinds=kinds)
            queries.append(Query("pdq", h.pdq, None, h.quality))
            queries.append(Query("md5", h.md5))
            queries.append(Query("sha256", h.sha256))
            for variant, value in (h.dihedral or {}).items():
                if variant != "original":
                    queries.append(Query("pdq", value, variant, h.quality))
            for variant, (value, quality) in {**(h.trimmed or {}), **(h.regions or {})}.items():
                queries.append(Query("pdq", value, variant, quality))
            sources += [str(f)] * (len(queries) - len(sources))
    videos: list[tuple[int, Any]] = []  # (position of its first query, its hashes)
    if video:
        from ..media.video import hash_video_file, to_threatexchange_json

        for f in video:
            _refuse_special(f)
            h = hash_video_file(f)
            videos.append((len(queries), h))
            queries += [Query("video_md5", h.md5), Query("sha256", h.sha256),
                        Query("vpdq", to_threatexchange_json(h.vpdq))]
            sources += [str(f)] * 3
    if not queries:
        raise typer.BadParameter("give at least one of --pdq, --md5, --sha256, --sha1, --signal, --image, --video")
    if threshold is not None and not 0 <= threshold <= 256:
        raise typer.BadParameter("threshold must be between 0 and 256")
    plain = videos[0][0] if videos else len(queries)  # queries before the videos' own
    skipped = [skip_reason(q, include_low_quality) if i < plain else None for i, q in enumerate(queries)]
    with banks:
        found = banks.lookup(queries[:plain], threshold=threshold, include_low_quality=include_low_quality,
                             variants=not no_variants) if plain else []
        found = _best_per_image(found, queries[:plain], sources[:plain])
        for base, h in videos:
            from ..report.schema import SignalValue

            for m in banks.match_subject([SignalValue(type="video_md5", value=h.md5),
                                          SignalValue(type="sha256", value=h.sha256)], h.vpdq, h.trimmed,
                                         displayed=h.displayed, mirrored=h.mirrored, turned=h.turned,
                                         threshold=threshold):
                found.append(m.model_copy(update={"query": base + (m.query if m.query is not None else 2)}))
    frames = {base + 2: h for base, h in videos}
    if json_out:
        qs: list[dict[str, Any]] = []
        for i, (q, why, src) in enumerate(zip(queries, skipped, sources, strict=True)):
            d: dict[str, Any] = {"signal_type": q.signal_type, "value": q.value, "variant": q.variant}
            if i in frames:
                d["video"] = src
                d["frames"] = len(frames[i].vpdq)
            elif src is not None:
                d[("video" if any(b <= i < b + 3 for b, _ in videos) else "image")] = src
            if q.quality is not None:
                d["quality"] = q.quality
            if why is not None:
                d["skipped"] = why
            qs.append(d)
        _emit_json({"schema": "assay.matches/1", "queries": qs,
                    "matches": [m.model_dump(mode="json", exclude_none=True) for m in found]})
        return
    labels = [(f"vpdq ({len(frames[i].vpdq)} frames)" if i in frames else f"{q.signal_type}:{q.value}")
              + (f" {q.variant}" if q.variant else "") + (f" of {src}" if src else "")
              for i, (q, src) in enumerate(zip(queries, sources, strict=True))]
    if len(queries) == 1:
        if skipped[0] is not None:
            out.line(safe_str(f"{labels[0]}: not looked up: {skipped[0]}", 1000))
        else:
            if found:
                out.print(matches_table(found))
            else:
                out.line("no match in any enabled bank")
        return
    # Several queries: each says what became of it, its matches under it.
    by_query: dict[int, list[Any]] = {}
    for m in found:
        by_query.setdefault(m.query if m.query is not None else -1, []).append(m)
    quiet: dict[str, int] = {}  # image -> variant queries with nothing to say
    for i, label in enumerate(labels):
        head = f"query #{i + 1} {label}: "
        if skipped[i] is not None and not queries[i].variant:
            out.line(safe_str(head + f"not looked up: {skipped[i]}", 1000))
        elif i in by_query and i in frames:
            n = len(by_query[i])
            out.print(safe(head + f"{n} banked video{'s' if n != 1 else ''} matched (Meta's vPDQ rule: "
                           ">= 80% of the query's frames within the distance)", 1000))
            for m in by_query[i]:
                out.print(video_match_line(m))
        elif i in by_query:
            n = len(by_query[i])
            out.line(safe_str(head + f"{n} match{'es' if n != 1 else ''}", 1000))
            out.print(matches_table(by_query[i]))
        elif queries[i].variant and sources[i] is not None:
            # An image has dozens of variant hashes (mirror, crops, regions): only those
            # that matched get a line; the rest are counted.
            quiet[sources[i]] = quiet.get(sources[i], 0) + 1
        elif i in frames:
            out.print(safe(head + "no banked video has >= 80% of these frames within distance "
                           f"{threshold if threshold is not None else 31}", 1000))
        else:
            out.line(safe_str(head + "no match in any enabled bank", 1000))
    for src, n in quiet.items():
        out.line(safe_str(f"{src}: {n} more variant hashes (mirror, borders, crops, caption, regions) looked up, "
                          "no other match", 1000))
