"""IPTC digital source type and generator names in XMP and EXIF.

Two things a file can declare about itself without a signature:

* the IPTC ``DigitalSourceType`` (XMP ``Iptc4xmpExt:DigitalSourceType``, the same
  controlled vocabulary C2PA actions use), e.g. ``trainedAlgorithmicMedia``;
* the software that wrote it (XMP ``xmp:CreatorTool``, ``tiff:Software``,
  ``Iptc4xmpExt:AISystemUsed``, history ``stEvt:softwareAgent``; EXIF Software),
  which for many generators names the generator.

Both are trivially editable, so they are never stronger than "moderate".

XMP is untrusted XML: instead of an XML parser (entity expansion, external
entities, deep nesting) the packet is scanned with bounded regular expressions
for the few properties read here. Nothing is expanded except the five predefined
XML entities and numeric character references.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InputError
from ..report.provenance import Claim, Evidence

if TYPE_CHECKING:
    from .context import ImageContext

IPTC_DST_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
MAX_XMP_SCAN = 4 * 1024 * 1024  # real packets are a few KiB; padding rarely beyond 64 KiB


@dataclass(frozen=True)
class SourceType:
    term: str  # e.g. "trainedAlgorithmicMedia"
    claim: Claim
    label: str  # the IPTC definition, shortened

    @property
    def uri(self) -> str:
        return IPTC_DST_PREFIX + self.term


_VOCAB: dict[str, tuple[Claim, str]] = {
    # Made by generative AI, or containing generative-AI parts.
    "trainedAlgorithmicMedia": ("ai-generated", "created by a trained model (generative AI)"),
    "compositeWithTrainedAlgorithmicMedia": (
        "ai-edited",
        "composite that includes generative-AI elements (e.g. inpainting, generative fill)",
    ),
    # "Synthetic" covers both trained and purely algorithmic media: not proof of AI.
    "compositeSynthetic": ("edited", "composite that includes synthetic elements"),
    "algorithmicMedia": (
        "unknown",
        "created purely by an algorithm, not from training data (e.g. a procedural pattern)",
    ),
    "dataDrivenMedia": ("unknown", "a representation of data (e.g. a chart)"),
    # Captured by a camera or scanner.
    "digitalCapture": ("camera-captured", "original digital capture of a real scene"),
    "computationalCapture": (
        "camera-captured",
        "digital capture processed computationally (e.g. smartphone HDR)",
    ),
    "negativeFilm": ("camera-captured", "digitised from a film negative"),
    "positiveFilm": ("camera-captured", "digitised from a film positive"),
    "print": ("unknown", "digitised from a print"),
    # Human edits of captured material.
    "humanEdits": ("edited", "captured media edited by a person"),
    "minorHumanEdits": ("edited", "captured media with minor human edits"),
    "algorithmicallyEnhanced": ("edited", "captured media enhanced by an algorithm"),
    "compositeCapture": ("edited", "composite of several captures"),
    "composite": ("edited", "composite of several elements"),
    # Made by a person with software, or recorded from a screen.
    "digitalCreation": ("unknown", "created by a person with software (no capture, no AI)"),
    "digitalArt": ("unknown", "created by a person with software (retired term)"),
    "softwareImage": ("unknown", "created by software (retired term)"),
    "screenCapture": ("unknown", "a screen capture"),
    "virtualRecording": ("unknown", "a recording of a virtual event"),
}


def digital_source_type(value: str) -> SourceType | None:
    """Interpret a DigitalSourceType value: full IPTC URI or bare term."""
    v = value.strip()
    if "/" in v:
        v = v.rstrip("/").rsplit("/", 1)[-1]
    for term, (claim, label) in _VOCAB.items():
        if term.lower() == v.lower():
            return SourceType(term, claim, label)
    return None


# Known generators, matched case-insensitively against software names. The first
# match wins, so more specific names come first. Patterns are anchored on word
# boundaries so that e.g. a person called Leonardo is not a generator.
_GENERATOR_PATTERNS: tuple[tuple[str, str], ...] = (
        # "Firefly" alone is also a FLIR camera line and other products: only
        # Adobe's name, or the bare product name as the whole value.
        ("Adobe Firefly", r"\badobe firefly\b|^\s*firefly(\s+image)?(\s+[\d.]+)?\s*$"),
        # before OpenAI's image names: "OpenAI Sora" is the video generator
        ("OpenAI Sora", r"\bopenai\s+sora\b|^\s*sora(\s+[\d.]+)?\s*$"),
        ("OpenAI DALL-E / ChatGPT", r"\bdall[\s\-_·]?e\b|\bopenai\b|\bchatgpt\b|\bgpt-?image\b"),
        ("Midjourney", r"\bmidjourney\b"),
        ("NovelAI", r"\bnovel\s?ai\b"),
        ("ComfyUI", r"\bcomfy\s?ui\b"),
        ("InvokeAI", r"\binvoke\s?ai\b"),
        ("Fooocus", r"\bfooocus\b"),
        ("Draw Things", r"\bdraw\s?things\b"),
        ("Easy Diffusion", r"\beasy\s?diffusion\b"),
        ("AUTOMATIC1111 web UI", r"\bautomatic1111\b|\bstable-diffusion-webui\b"),
        (
            "Stable Diffusion",
            r"\bstable[\s\-_]?diffusion\b|\bsdxl\b|\bdreamstudio\b|\bstability\s?ai\b",
        ),
        ("Leonardo.Ai", r"\bleonardo[\s.]?ai\b"),
        ("Ideogram", r"\bideogram\b"),
        # "imagen" is Spanish for "image": only Google's model names.
        (
            "Google Imagen / Gemini",
            r"\bgoogle\s+imagen\b|^\s*imagen\s*[1-9]\b|\bgemini\b(?!\s*photos)|\bmade with google ai\b",
        ),
        (
            "Microsoft Designer / Bing Image Creator",
            r"\bbing image creator\b|\bmicrosoft designer\b",
        ),
        ("Meta AI", r"\bimagine with meta\b|\bmeta ai\b"),
        ("FLUX (Black Forest Labs)", r"\bblack forest labs\b|^\s*flux(\.1)?\b"),
        ("xAI Grok", r"\bgrok\b"),
        ("Runway", r"\brunway\s?(ml|gen-?\d)\b"),
        ("Playground", r"\bplayground\s?(ai|v\d)\b"),
        # video generators
        ("Google Veo", r"\bgoogle\s+veo\b|^\s*veo\s*[1-9](\.\d)?\b"),
        ("Kling", r"\bkling\s?(ai|[\d.]+)\b"),
        ("Pika", r"\bpika\s?(labs|art|[\d.]+)\b"),
        ("Luma Dream Machine", r"\bdream machine\b|\bluma\s?(ai|labs)\b"),
)


@functools.cache
def _generators() -> tuple[tuple[str, re.Pattern[str]], ...]:
    # compiled on first use: ~30 patterns are a few ms that `assay hash` never needs
    return tuple((name, re.compile(rx, re.IGNORECASE)) for name, rx in _GENERATOR_PATTERNS)


def known_generator(text: str | None) -> str | None:
    """The generator a software name belongs to, or None."""
    if not text:
        return None
    t = text[:512]
    for name, rx in _generators():
        if rx.search(t):
            return name
    return None


# -- bounded XMP scan ------------------------------------------------------------

_ENTITY = re.compile(r"&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|(lt|gt|amp|quot|apos));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _unescape(s: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(3):
            return _NAMED[m.group(3)]
        code = int(m.group(1)) if m.group(1) else int(m.group(2), 16)
        return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"

    return _ENTITY.sub(one, s).strip()


def _prop_pattern(local: str) -> re.Pattern[str]:
    # The pattern starts with the property's local name, a literal the regex
    # engine scans for quickly, so padding or junk costs one pass, not a match
    # attempt at every whitespace. Namespace prefixes vary per packet and are
    # checked by the caller from the character before the match.
    return re.compile(
        local
        + r"(?:\s*=\s*\"([^\"<]{0,2048})\""  # attribute, double quotes
        + r"|\s*=\s*'([^'<]{0,2048})'"  # attribute, single quotes
        + r"|\b[^>]{0,512}?rdf:resource\s*=\s*[\"']([^\"'<]{0,2048})[\"']"  # resource element
        # element text; <rdf:Alt>/<rdf:Seq>/<rdf:Bag> wrap it in <rdf:li>
        + r"|(?:\s[^>]{0,512})?>\s*(?:<rdf:(?:Alt|Seq|Bag)>\s*<rdf:li[^>]{0,256}>)?([^<]{1,2048})<)"
    )


def _matches(rx: re.Pattern[str], text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for m in rx.finditer(text):
        before = text[m.start() - 1] if m.start() else ""
        if before not in (":", "<") and not before.isspace():
            continue  # part of a longer name, e.g. "MySoftware"
        if m.group(4) is not None:
            lt = text.rfind("<", max(0, m.start() - 64), m.start())
            if lt < 0 or text[lt + 1 : lt + 2] == "/":
                continue  # a closing tag: what follows is not its value
        value = next(g for g in m.groups() if g is not None)
        out.append((m.start(), _unescape(value)))
        if len(out) >= 256:
            break
    return out


_PROPS = {
    "digital_source_type": "DigitalSourceType",
    "creator_tool": "CreatorTool",
    "software": "Software",
    "ai_system": "AISystemUsed",
    "software_agent": "softwareAgent",
    "credit": "Credit",
}


@functools.cache
def _props() -> dict[str, re.Pattern[str]]:
    # compiled when a packet is read (most images carry none)
    return {name: _prop_pattern(local) for name, local in _PROPS.items()}


@dataclass
class XmpFacts:
    """Values of the properties read here, in packet order, de-duplicated."""

    digital_source_type: list[str] = field(default_factory=list)
    creator_tool: list[str] = field(default_factory=list)
    software: list[str] = field(default_factory=list)
    ai_system: list[str] = field(default_factory=list)
    software_agent: list[str] = field(default_factory=list)
    credit: list[str] = field(default_factory=list)
    # The same properties of the documents it was made from, described inside it
    # (Photoshop's xmpMM:Pantry of placed smart objects, xmpMM:Ingredients ...):
    # (property, value) in packet order.
    components: list[tuple[str, str]] = field(default_factory=list)
    capped: bool = False  # the packet was longer than MAX_XMP_SCAN


def scan_xmp(packet: bytes) -> XmpFacts:
    """Read the provenance properties of an XMP packet without an XML parser."""
    facts = XmpFacts(capped=len(packet) > MAX_XMP_SCAN)
    text = packet[:MAX_XMP_SCAN].decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    nested = _component_spans(text)
    for name, rx in _props().items():
        values: list[str] = getattr(facts, name)
        for at, v in _matches(rx, text):
            if not v:
                continue
            if any(a <= at < b for a, b in nested):
                if (name, v) not in facts.components and len(facts.components) < 32:
                    facts.components.append((name, v))
            elif v not in values and len(values) < 32:
                values.append(v)
    return facts


# XMP properties that describe OTHER documents inside this one: what they declare is
# about a component (a placed smart object, an ingredient), not about this file.
_COMPONENT_OPEN = re.compile(r"<([A-Za-z][\w.-]{0,40}):(Pantry|Ingredients|DerivedFrom|Manifest)\b")


def _component_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    # closing tags already looked for to the end in vain: not searched again (a packet of
    # empty <a:Pantry/> elements made every one search the rest of the text: quadratic)
    absent: set[str] = set()
    while len(spans) < 64:
        m = _COMPONENT_OPEN.search(text, pos)
        if m is None:
            break
        closing = f"</{m.group(1)}:{m.group(2)}>"
        close = -1 if closing in absent else text.find(closing, m.end())
        if close < 0:
            absent.add(closing)
            tag_end = text.find(">", m.end())
            if tag_end > 0 and text[tag_end - 1] == "/":
                pos = tag_end  # an empty element, nothing inside
                continue
            close = len(text)  # unclosed: everything after it is the component's
        spans.append((m.start(), close))
        pos = close
    return spans


# -- evidence --------------------------------------------------------------------


def source_type_evidence(values: list[str], where: str, source: str = "iptc") -> list[Evidence]:
    """Evidence for declared IPTC digital source types (unsigned: at most moderate)."""
    out: list[Evidence] = []
    for v in values:
        st = digital_source_type(v)
        if st is None:
            continue
        # A declared AI source is self-incriminating and rarely forged; a declared
        # camera capture is exactly what a forger would write, so it stays weak.
        strength = "moderate" if st.claim in ("ai-generated", "ai-edited") else "weak"
        out.append(
            Evidence(
                source=source,
                claim=st.claim,
                strength=strength,  # type: ignore[arg-type]
                summary=(
                    f"Its {where} declares the IPTC digital source type {st.term} "
                    f"({st.label}); the declaration is unsigned and editable."
                ),
                facts={"digital_source_type": st.uri, "term": st.term, "where": where},
            )
        )
    return out


# Fields that name the tool which made the file, versus fields that name a tool
# used somewhere along the way (an edit history entry, a credit line): the latter
# shows AI was involved, not that it made the whole image.
_MAKER_FIELDS = {"CreatorTool", "Software", "AISystemUsed"}


def generator_name_evidence(field_name: str, value: str, where: str) -> Evidence | None:
    gen = known_generator(value)
    if gen is None:
        return None
    made = field_name in _MAKER_FIELDS
    # A credit line names the people and agencies to credit, in free text: "Gemini
    # Studios", "Flux Photography", "Dream Machine Productions" read as generator names,
    # so a name there is a hint (weak), never a headline of its own.
    credit = field_name.endswith("Credit")
    if credit:
        tail = f": it may name {gen}, or a person or agency whose name looks like it."
    else:
        tail = "." if made else ": AI was used in making or editing it."
    return Evidence(
        source={"XMP": "xmp", "PNG text": "png-text"}.get(where, "exif"),
        claim="ai-generated" if made else "ai-edited",
        strength="weak" if credit else "moderate",
        summary=f"Its {where} {field_name} names the generator {gen} ({value[:120]!r}){tail}",
        facts={"field": f"{where} {field_name}", "value": value[:512], "generator": gen},
    )


_FIELD_LABELS = {
    "creator_tool": "CreatorTool",
    "software": "Software",
    "ai_system": "AISystemUsed",
    "software_agent": "history softwareAgent",
    "credit": "Credit",
}


def xmp_evidence(packet: bytes) -> list[Evidence]:
    """Evidence from one XMP packet."""
    facts = scan_xmp(packet)
    out = source_type_evidence(facts.digital_source_type, "XMP")
    seen: set[str] = set()
    for attr, label in _FIELD_LABELS.items():
        for value in getattr(facts, attr):
            ev = generator_name_evidence(label, value, "XMP")
            if ev is not None and ev.facts["generator"] not in seen:
                seen.add(ev.facts["generator"])
                out.append(ev)
    out.extend(_component_evidence(facts, seen))
    return _as_composite(out)


def embedded_image_evidence(packet: bytes, image: str, artwork: bool = False) -> list[Evidence]:
    """Evidence from the XMP of an image embedded in a document, video or audio file (a
    figure in a PDF, cover art): about that image, so at most "includes generative-AI
    material" (AI-edited); for artwork (audio, video) only a fact, since the sound or
    frames are not the image."""
    facts = scan_xmp(packet)
    own = [(name, v) for name in _PROPS for v in getattr(facts, name)]
    found = _component_evidence(
        XmpFacts(components=own + facts.components), set(),
        what=f"An image embedded in it (its {image} XMP)",
    )
    if artwork:
        found = [
            Evidence(source="embedded-image", claim="unknown", strength="weak",
                     summary=e.summary.replace("the file includes generative-AI material",
                                               "of its artwork, not of the sound or frames"),
                     facts=e.facts)
            for e in found
        ]  # fmt: skip
    return found


def _as_composite(found: list[Evidence]) -> list[Evidence]:
    """When the file's own XMP declares it a composite with generative-AI parts (and not
    wholly generated), a generator named in its metadata made a part of it: AI-edited."""
    own = [e for e in found if e.source == "iptc" and e.facts.get("where") == "XMP"]
    if not any(e.claim == "ai-edited" for e in own) or any(e.claim == "ai-generated" for e in own):
        return found
    return [
        Evidence(source=e.source, claim="ai-edited", strength=e.strength,
                 summary=e.summary.rstrip(".") + "; its XMP declares the file a composite with "
                 "generative-AI parts, so that generator made a part of it.", facts=e.facts)
        if e.source in ("xmp", "exif", "png-text") and e.claim == "ai-generated" else e
        for e in found
    ]  # fmt: skip


def _component_evidence(facts: XmpFacts, seen: set[str],
                        what: str = "A document placed in it (its XMP describes it: a smart "
                                    "object or ingredient)") -> list[Evidence]:  # fmt: skip
    """A component made with generative AI makes the file AI-edited (a composite that
    includes it), never AI-generated; other components' declarations say nothing of it."""
    out: list[Evidence] = []
    terms: set[str] = set()
    for name, value in facts.components:
        if name == "digital_source_type":
            st = digital_source_type(value)
            if st is None or st.claim not in ("ai-generated", "ai-edited") or st.term in terms:
                continue
            terms.add(st.term)
            out.append(Evidence(
                source="iptc", claim="ai-edited", strength="moderate",
                summary=(f"{what} declares the IPTC digital source type {st.term}: the file "
                         "includes generative-AI material; the declaration is unsigned and editable."),
                facts={"digital_source_type": st.uri, "term": st.term, "where": "XMP component"},
            ))  # fmt: skip
        elif name in _FIELD_LABELS:
            ev = generator_name_evidence(f"component {_FIELD_LABELS[name]}", value, "XMP")
            if ev is not None and ev.facts["generator"] not in seen:
                seen.add(ev.facts["generator"])
                out.append(ev)
    return out


def evidence(ctx: ImageContext) -> list[Evidence]:
    """XMP digital source type and generator names, plus EXIF Software and PNG's own
    'Software' text keyword."""
    from .context import TAG_SOFTWARE

    out: list[Evidence] = []
    packet = ctx.xmp()
    if packet:
        out.extend(xmp_evidence(packet))
    try:
        software = ctx.exif().get(TAG_SOFTWARE)
    except InputError:
        software = None  # the camera source reports the broken EXIF; keep the XMP findings
    if isinstance(software, str):
        ev = generator_name_evidence("Software", software, "EXIF")
        named = {e.facts.get("generator") for e in out}
        if ev is not None and ev.facts["generator"] not in named:
            out.append(ev)
    if ctx.format == "png":
        # A PNG keyword of its own (exiftool's PNG:Software), beside any EXIF chunk. The
        # analyzer drops it when a generator source read the chunk as part of its record.
        chunk = next((c for c in ctx.png_text_chunks() if c.key == "Software"), None)
        ev = generator_name_evidence("Software", chunk.text, "PNG text") if chunk else None
        named = {e.facts.get("generator") for e in out}
        if chunk is not None and ev is not None and ev.facts["generator"] not in named:
            ev.facts["locations"] = [f"png:{chunk.chunk_type}:Software"]
            out.append(ev)
    return _as_composite(out)
