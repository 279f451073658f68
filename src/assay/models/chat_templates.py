"""Chat templates shipped with a model: Jinja code that a loader renders.

GGUF keeps one in ``tokenizer.chat_template`` (and named ones in
``tokenizer.chat_template.<name>``), a Hugging Face folder in ``tokenizer_config.json``'s
``chat_template`` (a string or a list of ``{"name", "template"}``) or in
``chat_template.jinja`` / ``chat_template.json``. A loader that renders the template
without Jinja's sandbox runs whatever it reaches: llama-cpp-python before 0.2.72 did
(CVE-2024-34359), from any GGUF file. Reaching code from a template means walking
Python's object graph through dunder attributes (``''.__class__.__mro__``,
``cycler.__init__.__globals__``, ``__builtins__['__import__']``); no chat template
formats messages with them. They are looked for inside Jinja tags, after the string
escapes a template can hide them behind (``'\\x5f\\x5fglobals\\x5f\\x5f'``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .pickles import PickleFinding

__all__ = ["template_findings", "templates_in_tokenizer_config"]

MAX_TEMPLATE_CHARS = 1_000_000
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})|\\([0-7]{1,3})")
# The attribute walks of template injection: to a class, its bases and subclasses, a
# function's globals, the builtins, the import machinery, an object's raw attributes.
_GADGETS = re.compile(
    r"__(?:class|mro|base|bases|subclasses|globals|builtins|import|init|getattribute|dict|code"
    r"|func|self|module|loader|spec|reduce|reduce_ex|closure|getitem)__"
)


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        hexa = m.group(1) or m.group(2) or m.group(3)
        code = int(hexa, 16) if hexa else int(m.group(4), 8)
        return chr(code) if code < 0x110000 else m.group(0)

    return _ESCAPE.sub(one, text)


def _tags(text: str) -> Iterator[str]:
    """The ``{{ ... }}`` and ``{% ... %}`` tags of a template, left to right, as the lazy
    regular expression ``{{.*?}}|{%.*?%}`` finds them, in linear time: an opening that
    finds no closing means no later opening of its kind can, so that kind is searched no
    more. The expression retried its search from every opening: 40,000 characters of "{{"
    took 5.5 s, 1,000,000 about an hour."""
    kinds = {"{{": "}}", "{%": "%}"}
    pos = 0
    while kinds:
        starts = [(i, o) for o in kinds if (i := text.find(o, pos)) >= 0]
        if not starts:
            return
        i, opening = min(starts)
        end = text.find(kinds[opening], i + 2)
        if end < 0:
            del kinds[opening]
            continue
        yield text[i:end + 2]
        pos = end + 2


def template_findings(template: object, where: str) -> list[PickleFinding]:
    """Findings for one chat template (empty for a template that only formats text)."""
    if not isinstance(template, str) or not template:
        return []
    text = template[:MAX_TEMPLATE_CHARS]
    found: dict[str, None] = {}
    for tag in _tags(text):
        for m in _GADGETS.finditer(_unescape(tag)):
            found[m.group(0)] = None
    if not found:
        if len(template) > MAX_TEMPLATE_CHARS:  # padding must not hide what follows it
            return [PickleFinding(
                "suspicious", f"chat_template({where})", "jinja", 0,
                f"chat template {where!r} holds {len(template):,} characters; its first "
                f"{MAX_TEMPLATE_CHARS:,} reach nothing dangerous, the rest was not checked",
            )]
        return []
    names = ", ".join(list(found)[:8])
    return [PickleFinding(
        "dangerous", f"chat_template({where})", "jinja", 0,
        f"chat template {where!r} walks to interpreter internals ({names}): a loader that renders "
        "it without Jinja's sandbox runs code (llama-cpp-python before 0.2.72, CVE-2024-34359)",
    )]


def templates_in_tokenizer_config(config: Any) -> list[tuple[str, object]]:
    """(name, template) pairs of a tokenizer_config.json or chat_template.json."""
    if not isinstance(config, dict):
        return []
    value = config.get("chat_template")
    if isinstance(value, str):
        return [("chat_template", value)]
    out: list[tuple[str, object]] = []
    if isinstance(value, list):
        for i, item in enumerate(value[:100]):
            if isinstance(item, dict):
                out.append((f"chat_template[{str(item.get('name', i))[:60]}]", item.get("template")))
    return out
