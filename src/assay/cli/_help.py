"""One help style for every command: readable metavars and an example in each --help.

Typer would show Python types (``<bool>``, ``<list[Path]>``); the names here are what
a user types. The examples live in one table so that a new command without one is
caught by the CLI contract test (tests/test_cli_contract.py), not by a user.
"""

from __future__ import annotations

import enum
import pathlib
from typing import Any, get_args, get_origin

from typer.core import TyperArgument, TyperOption

from . import _params

# Command path (as typed after `assay`) -> examples shown under its --help.
EXAMPLES: dict[str, list[str]] = {
    "": ["assay scan /evidence -o report.jsonl", "assay bank list", "assay model suspect.safetensors"],
    "scan": ["assay scan /evidence/folder -o report.jsonl",
             "assay scan case.zip --json -o records.jsonl --fail-on-match"],
    "hash": ["assay hash photo.jpg", "assay hash photo.jpg --mode reference --json"],
    "match": ["assay match --pdq f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
              "assay match --image photo.jpg --dihedral --json"],
    "provenance": ["assay provenance image.png", "assay provenance *.jpg --json"],
    "model": ["assay model checkpoint.safetensors", "assay model lora.safetensors --bank flagged --json"],
    "lora": ["assay lora extract suspect.safetensors --base base.safetensors -o delta.safetensors"],
    "lora extract": ["assay lora extract suspect.safetensors --base base.safetensors -o delta.safetensors"],
    "bank": ["assay bank create known --description \"known material\"", "assay bank list"],
    "bank create": ["assay bank create known --description \"known material\" --threshold 31",
                    "assay --db cases.sqlite3 bank create known --create"],
    "bank list": ["assay bank list", "assay bank list --json"],
    "bank show": ["assay bank show known", "assay bank show known --limit 100 --offset 100"],
    "bank stats": ["assay bank stats known --json"],
    "bank set": ["assay bank set known --threshold 24", "assay bank set known --description \"case 41\" --disable",
                 "assay bank set known --threshold default"],
    "bank rename": ["assay bank rename known known-2026"],
    "bank import": ["assay bank import known hashes.txt --type md5", "assay bank import known export.csv --create"],
    "bank export": ["assay bank export known -o known.jsonl", "assay bank export known --format list --type pdq"],
    "bank add": ["assay bank add known --content-id case-1 --image photo.jpg --note \"from case 41\"",
                 "assay bank add known --content-id c2 --md5 20def2ffb08bd7f8adc9d14cce39d7ee"],
    "bank remove": ["assay bank remove known case-1"],
    "bank enable": ["assay bank enable known"],
    "bank disable": ["assay bank disable known"],
    "bank delete": ["assay bank export known -o known.jsonl && assay bank delete known --yes"],
    "bank prune-changes": ["assay bank prune-changes --older-than-days 30"],
    "bank add-model": ["assay bank add-model flagged bad.safetensors --kind checkpoint --role \"flagged\"",
                       "assay bank add-model bases sd15.safetensors --kind base"],
    "report": ["assay report report.jsonl -o case.html --case-id 2026-041 --examiner \"J. Doe\""],
    "review": ["assay review report.jsonl", "assay review set 3f9c0a1b2c3d4e5f --decision confirmed --note \"same image\""],
    "review list": ["assay review list report.jsonl --open", "assay review report.jsonl --json"],
    "review set": ["assay review set 3f9c0a1b2c3d4e5f --decision false-positive --note \"different photo\""],
    "review show": ["assay review show 3f9c0a1b2c3d4e5f"],
    "signals": ["assay signals", "assay signals --json"],
    "demo": ["assay demo", "assay demo --dir /tmp/demo-data"],
    "keys": ["assay keys create --role match --name \"upload scanner\"", "assay keys list"],
    "keys create": ["assay keys create --role curate --name \"analyst one\""],
    "keys list": ["assay keys list", "assay keys list --json"],
    "keys revoke": ["assay keys revoke 3"],
    "text": ["assay text index books/ --index catalogue.idx", "assay text check output.txt --index catalogue.idx"],
    "text index": ["assay text index books/ works.jsonl --index catalogue.idx",
                   "assay text index big-corpus/ --index catalogue.idx --shard-size 1024"],
    "text add": ["assay text add new-book.epub --index catalogue.idx"],
    "text works": ["assay text works --index catalogue.idx", "assay text works --index catalogue.idx --json"],
    "text verify": ["assay text verify --index catalogue.idx", "assay text verify --index catalogue.idx --json"],
    "text check": ["assay text check output.txt --index catalogue.idx",
                   "assay text check outputs/*.txt --index catalogue.idx --json --fail-on-match --min-chars 80"],
    "exchange": ["assay exchange add ncmec-industry --type ncmec --bank ncmec",
                 "assay exchange fetch", "assay exchange list"],
    "exchange add": ["assay exchange add te --type threatexchange --bank te --privacy-group 303636684709969",
                     "assay exchange add ncmec-industry --type ncmec --bank ncmec --credentials-file ~/.ncmec",
                     "assay exchange add list1 --type file --bank known --path hashes.txt --signal-type pdq"],
    "exchange list": ["assay exchange list", "assay exchange list --json"],
    "exchange show": ["assay exchange show te", "assay exchange show te --json"],
    "exchange remove": ["assay exchange remove te"],
    "exchange enable": ["assay exchange enable te"],
    "exchange disable": ["assay exchange disable te"],
    "exchange fetch": ["assay exchange fetch", "assay exchange fetch te --json", "assay exchange fetch te --full"],
    "exchange share": ["assay exchange share te --dry-run", "assay exchange share ncmec-industry --json"],
    "camera": ["assay camera enroll \"phone A\" photos/*.jpg", "assay camera match suspect.jpg --json"],
    "camera enroll": ["assay camera enroll \"Canon EOS 80D 0123\" flat/*.jpg --bank seized",
                      "assay camera enroll phone-A photos/*.jpg --min-images 20 --replace"],
    "camera match": ["assay camera match suspect.jpg", "assay camera match *.jpg --camera phone-A --threshold 100 --json"],
    "camera list": ["assay camera list", "assay camera list --bank seized --json"],
    "serve": ["assay serve --workers 2", "assay --db postgresql://assay@db/assay serve --host 0.0.0.0 --port 8080"],
}

# Metavars of text options by parameter name; others get their name in capitals.
_TEXT = {
    "db": "PATH|URL", "pdq": "HEX", "md5": "HEX", "sha1": "HEX", "sha256": "HEX", "signal": "TYPE:VALUE",
    "content_id": "ID", "note": "TEXT", "description": "TEXT", "role": "TEXT", "signal_type": "TYPE",
    "bank": "BANK", "host": "ADDRESS", "redis_url": "URL", "snapshot_dir": "DIR", "tmp_dir": "DIR",
}


def _element(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is list else annotation


def metavar(param: Any) -> str:
    d = param.type_descriptor
    ann = _element(d.annotation)
    if getattr(param, "is_flag", False) or ann is bool:
        return ""
    if d.is_choice or (isinstance(ann, type) and issubclass(ann, enum.Enum)):
        choices = d.choices or [m.value for m in ann]
        return "|".join(str(getattr(c, "value", c)) for c in choices)
    if param.param_type_name == "argument":
        name = {"files": "FILE", "paths": "PATH", "file": "FILE", "suspect": "FILE", "sources": "SOURCE"}.get(param.name, param.name.upper())
        return name + ("..." if param.nargs != 1 else "")
    if isinstance(ann, type) and issubclass(ann, pathlib.PurePath):
        if param.name == "index":
            return "DIR"
        return "FILE" if param.name in ("output", "trust_anchors", "image") else "PATH"
    if ann is int:
        return "N"
    if ann is float:
        return "NUMBER"
    return _TEXT.get(param.name, param.name.upper())


class _Option(TyperOption):
    """An option whose plain values convert without pydantic (_params)."""

    get_runtime_param = _params.get_runtime_param


class _Argument(TyperArgument):
    """An argument shown as click shows one: ``FILE...`` in the usage line, no type column;
    plain values convert without pydantic (_params)."""

    get_runtime_param = _params.get_runtime_param

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"


def polish(cmd: Any, path: str = "") -> None:
    """Set readable metavars and the examples epilog on ``cmd`` and everything under it."""
    from typer import _click

    for p in cmd.params:
        if p.metavar is None:
            p.metavar = metavar(p)
        if type(p) is TyperArgument:
            p.__class__ = _Argument
        elif type(p) is TyperOption:
            p.__class__ = _Option
    help_opt = cmd.get_help_option(_click.Context(cmd))
    if help_opt is not None:
        help_opt.metavar = ""
        if type(help_opt) is TyperOption:
            help_opt.__class__ = _Option
    if cmd.help and not cmd.short_help:
        # the list of commands shows the first paragraph: as one line, wrapped by the table
        # (the docstring's own line breaks showed as breaks in the middle of a sentence)
        cmd.short_help = " ".join(cmd.help.split("\n\n")[0].split())
    examples = EXAMPLES.get(path)
    if examples and not cmd.epilog:
        cmd.epilog = ("Example:" if len(examples) == 1 else "Examples:") + "\n\n" + "\n\n".join(
            "  " + e for e in examples)
    subs = getattr(cmd, "commands", None)
    if not getattr(subs, "lazy", False) and subs:
        for name, sub in subs.items():
            polish(sub, f"{path} {name}".strip())
