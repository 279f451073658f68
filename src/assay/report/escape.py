"""Untrusted text (file names, metadata, messages naming them) made safe to print."""

from __future__ import annotations

__all__ = ["shown"]

# What a terminal would act on or hide rather than show: control characters (ESC starts
# colour, cursor and title sequences; a newline breaks the line-per-record layout), format
# characters (bidirectional overrides reorder what follows: 'x\u202egpj.exe' reads as
# 'xexe.jpg'), line and paragraph separators, the lone surrogates of a name that is not
# UTF-8 (which a strict terminal cannot even encode), private-use and unassigned code points.
HIDDEN = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def shown(text: object, *, tab: bool = False) -> str:
    """``text`` on one line with every character in HIDDEN written as its escape (\\x1b,
    \\u202e, \\udcff): what the user sees is what is there. ``tab`` keeps tabs as they are."""
    s = str(text)
    if s.isascii() and s.isprintable():
        return s
    import unicodedata

    out = []
    for ch in s:
        if (tab and ch == "\t") or unicodedata.category(ch) not in HIDDEN:
            out.append(ch)
        elif (code := ord(ch)) < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)
