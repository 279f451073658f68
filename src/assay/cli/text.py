"""`assay text ...`: index protected works, check texts for passages that reproduce them."""


from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import JsonOpt, _emit_json, _esc, _refuse_special, app, err, out, plural

text_app = typer.Typer(help="Which passages of a text reproduce indexed works (verbatim or nearly).",
                       no_args_is_help=True)
app.add_typer(text_app, name="text")

IndexOpt = Annotated[Path, typer.Option("--index", help="The text index folder.", show_default=False)]
SourcesArg = Annotated[list[Path], typer.Argument(
    help="Works: .txt/.md, .html, .epub, .pdf, .jsonl (one work per line: id, title, text), or folders of them.",
    show_default=False)]


def _add(sources: list[Path], index: Path, shard_mb: int, json_out: bool, *, create: bool) -> None:
    from ..text.index import TextIndex
    from ..text.ingest import read_sources

    ix = TextIndex.create(index) if create else TextIndex.open(index)
    if create and ix.manifest["shards"]:
        from ..text.index import IndexError_

        raise IndexError_(f"{index} already holds a text index",
                          hint="add works to it with `assay text add SOURCE... --index DIR`")
    show = err.is_terminal and not json_out
    res = ix.add(read_sources(sources), shard_bytes=shard_mb * 1024 * 1024,
                 progress=(lambda m: err.print(_esc(m))) if show else None)
    if json_out:
        _emit_json({"index": str(index), "added": [w.public() for w in res.added],
                    "shards": res.shards, "errors": res.errors})
    else:
        chars = sum(w.chars for w in res.added)
        out.print(f"{_esc(str(index))}: added {plural(len(res.added), 'work')} ({chars:,} characters)"
                  + (f" in {plural(len(res.shards), 'new shard')}" if res.shards else ""))
        for w in res.added[:50]:
            out.print(f"  {_esc(w.id)}  {_esc(w.title)}  {w.chars:,} chars  sha256 {w.sha256[:16]}…")
        if len(res.added) > 50:
            out.print(f"  ... and {len(res.added) - 50:,} more (`assay text works --index {_esc(str(index))}`)")
    for e in res.errors:
        err.print(f"[red]error:[/red] {_esc(e['source'])}: {_esc(e['error'])}")
    if res.errors:
        if not json_out:
            err.print(f"[red]error:[/red] {plural(len(res.errors), 'source')} not added (see above); "
                      "the index holds everything else")
        raise typer.Exit(1)


ShardOpt = Annotated[int, typer.Option(
    "--shard-size", help="Largest shard, in MiB of normalised text (at most 2047: 32-bit offsets).",
    min=1, max=2047)]


@text_app.command("index")
def text_index(sources: SourcesArg, index: IndexOpt, shard_size: ShardOpt = 1024,
               json_out: JsonOpt = False) -> None:
    """Make a new text index of works (each work: id, title, SHA-256 of its source)."""
    _add(sources, index, shard_size, json_out, create=True)


@text_app.command("add")
def text_add(sources: SourcesArg, index: IndexOpt, shard_size: ShardOpt = 1024,
             json_out: JsonOpt = False) -> None:
    """Add works to an existing text index (in new shards; the old ones stay as they are)."""
    _add(sources, index, shard_size, json_out, create=False)


@text_app.command("works")
def text_works(index: IndexOpt, json_out: JsonOpt = False) -> None:
    """List the works in a text index."""
    from ..text.index import TextIndex

    ix = TextIndex.open(index)
    works = ix.works()
    if json_out:
        _emit_json([w.public() for w in works])
        return
    if not works:
        out.print(f"{_esc(str(index))}: no works yet (add some with `assay text add SOURCE... --index DIR`)")
        return
    from rich.table import Table

    t = Table(title=f"{plural(len(works), 'work')} in {plural(len(ix.manifest['shards']), 'shard')}",
              title_justify="left")
    for c in ("work", "title", "chars", "format", "sha256", "source"):
        t.add_column(c)
    for w in works:
        t.add_row(_esc(w.id), _esc(w.title), f"{w.chars:,}", w.format, w.sha256[:16] + "…", _esc(w.source))
    out.print(t)


@text_app.command("verify")
def text_verify(index: IndexOpt, json_out: JsonOpt = False) -> None:
    """Check every file of a text index against the size and SHA-256 recorded when it was
    written (reads the whole index once; opening a shard checks only its small files)."""
    from ..text.index import TextIndex

    ix = TextIndex.open(index)
    problems = ix.verify()
    if json_out:
        _emit_json({"index": str(index), "shards": len(ix.manifest["shards"]), "ok": not problems,
                    "problems": problems})
    elif not problems:
        out.print(f"{_esc(str(index))}: {plural(len(ix.manifest['shards']), 'shard')}, every file as it was written")
    for p in problems if not json_out else []:
        err.print(f"[red]error:[/red] {_esc(p)}")
    if problems:
        raise typer.Exit(1)


@text_app.command("check")
def text_check(
    files: Annotated[list[Path], typer.Argument(help="Texts to check (UTF-8), e.g. model outputs.")],
    index: IndexOpt,
    min_chars: Annotated[int, typer.Option(
        "--min-chars", help="Shortest span reported, in normalised characters.", min=10)] = 50,
    near: Annotated[bool, typer.Option(help="Join exact spans separated by small edits into near-verbatim passages.")] = True,
    fail_on_match: Annotated[bool, typer.Option(help="Exit with status 3 if any passage was found.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Which passages of each text reproduce indexed works, where (code points of the
    text and of the work's original), and what share of the text they make up."""
    from ..text.index import TextIndex
    from ..text.match import check, is_markup, read_checked

    ix = TextIndex.open(index)
    failed = found = 0
    for f in files:
        try:
            _refuse_special(f)
            text = read_checked(f)
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
            failed += 1
            msg = str(exc)
            if json_out:
                _emit_json({"schema": "assay.text/1", "path": str(f), "error": msg})
            else:
                err.print(f"[red]error:[/red] {_esc(msg)}")
            continue
        res = check(ix, text, path=str(f), min_chars=min_chars, near=near, markup=is_markup(f))
        found += bool(res.spans)
        if json_out:
            _emit_json(res.to_json())
        else:
            print_result(res, text, ix)
    if failed:
        raise typer.Exit(1)
    if fail_on_match and found:
        raise typer.Exit(3)


def _excerpt(s: str, width: int = 100) -> str:
    s = " ".join(s.split())
    return s if len(s) <= width else s[: width // 2 - 2] + " … " + s[-(width // 2 - 2):]


def print_result(res: Any, text: str, ix: Any) -> None:
    """The readable report of one checked text."""
    head = f"[bold]{_esc(res.path)}[/bold]: {res.chars:,} characters"
    if not res.spans:
        n = len(ix.works())
        out.print(head + f"; no passage of {res.min_chars}+ characters from any of {plural(n, 'indexed work')}")
        return
    exact = sum(1 for s in res.spans if s.kind == "exact")
    out.print(head + f"; {res.coverage:.1%} inside passages found in indexed works "
              f"({res.coverage_exact:.1%} verbatim); {plural(exact, 'exact span')}, "
              f"{plural(len(res.spans) - exact, 'near-verbatim passage')}")
    longest = res.longest
    if longest is not None:
        out.print(f"longest: {longest.end - longest.start:,} characters at {longest.start:,}-{longest.end:,}")
    titles = {w.work: w.title for w in res.works}
    for sp in res.spans:
        what = "exact" if sp.kind == "exact" else f"near  similarity {sp.similarity:.2f}, {plural(sp.changed_words, 'changed word')}"
        out.print(f"\n  [{sp.start:,}-{sp.end:,}] {sp.end - sp.start:,} chars, {what}")
        out.print(f"    \"{_esc(_excerpt(text[sp.start:sp.end]))}\"")
        for s in sp.sources[:5]:
            out.print(f"    in {_esc(s.work)} ({_esc(titles.get(s.work, s.work))}) at {s.start:,}-{s.end:,}")
        if len(sp.sources) > 5:
            out.print(f"    ... and {len(sp.sources) - 5:,} more places (--json lists all)")
    out.print("\n  works by coverage:")
    for w in res.works:
        out.print(f"    {w.coverage:6.1%}  {w.chars:,} chars  {_esc(w.work)} ({_esc(w.title)})")
