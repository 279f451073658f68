"""The model report: one typed record per model file, and a plain-text explanation.

``build_model_report`` assembles what the readers, the pickle scanner, ``arch``,
``hashes`` and ``metadata`` found. ``explain_model`` renders it for a terminal;
every string that came from the file goes through ``clean`` (control characters
escaped, length bounded), and ``explain_model_text`` wraps the result in a Rich
``Text`` so that brackets in metadata are never read as Rich markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from rich.text import Text

from ..report.model import (
    ArchReport,
    HashCheck,
    ModelHashes,
    ModelMetadata,
    ModelReport,
    SafetyFinding,
    SafetyInfo,
)

_RANK = {"safe": 0, "no-code": 0, "suspicious": 1, "dangerous": 2}


def safety_from_pickles(reports: Iterable[Any], fmt: str) -> SafetyInfo:
    """Summarise the pickle scanner's reports (objects with ``verdict``, ``where``,
    ``findings``); a format without pickles is "no-code"."""
    findings: list[SafetyFinding] = []
    for r in reports:
        raw = asdict(r) if is_dataclass(r) and not isinstance(r, type) else dict(getattr(r, "__dict__", {}))
        bad = [f for f in raw.get("findings", []) if isinstance(f, Mapping)]
        findings.append(
            SafetyFinding(
                source=str(raw.get("where", getattr(r, "where", "?"))),
                verdict=str(getattr(r, "verdict", raw.get("verdict", "unknown"))),
                globals=sorted({str(f.get("global_name")) for f in bad if f.get("global_name")}),
                offsets=[int(f["offset"]) for f in bad if isinstance(f.get("offset"), int)],
                details={
                    k: raw[k]
                    for k in ("protocol", "error")
                    if raw.get(k) is not None
                }
                | ({"findings": [_finding_text(f) for f in bad[:50]]} if bad else {}),
            )
        )
    if not findings:
        verdict = "no-code" if fmt in ("safetensors", "gguf") else "safe"
    else:
        verdict = max((f.verdict for f in findings), key=lambda v: _RANK.get(v, 1))
    return SafetyInfo(verdict=verdict, findings=findings)


def _finding_text(f: Mapping[str, Any]) -> str:
    name = f.get("global_name") or "(container)"
    return f"{f.get('severity')}: {name} via {f.get('opcode')} at offset {f.get('offset')}: {f.get('reason')}"


def build_model_report(
    model_file: Any | None,
    hashes: ModelHashes | None,
    arch: ArchReport | None,
    metadata: ModelMetadata | None,
    *,
    fmt: str | None = None,
    safety: SafetyInfo | None = None,
    hash_checks: list[HashCheck] | None = None,
    warnings: list[str] | None = None,
) -> ModelReport:
    """Assemble the report. ``model_file`` is an opened ``ModelFile`` (None when the
    file was refused, e.g. a dangerous pickle; then pass ``fmt`` and ``safety``)."""
    fmt = fmt or (getattr(model_file, "format", None) if model_file is not None else None) or "unknown"
    if safety is None and model_file is not None:
        safety = safety_from_pickles(getattr(model_file, "pickles", []) or [], fmt)
    notes = list(warnings or [])
    if metadata is not None:
        notes += metadata.warnings
    for c in hash_checks or []:
        if c.status == "mismatch":
            notes.append(f"embedded {c.key} does not match the file: it claims {c.embedded}, the file gives {c.recomputed}")
    if safety is not None and safety.verdict == "dangerous":
        notes.insert(0, "DANGEROUS: a pickle in this file would run code if loaded with pickle or torch.load")
    return ModelReport(
        format=fmt,
        size=hashes.size if hashes else None,
        tensor_count=len(model_file.tensors) if model_file is not None else None,
        data_offset=getattr(model_file, "data_offset", None) if model_file is not None else None,
        safety=safety,
        arch=arch,
        hashes=hashes,
        hash_checks=list(hash_checks or []),
        metadata=metadata,
        warnings=notes,
    )


# ------------------------------------------------------------------ rendering


def clean(value: Any, limit: int = 200) -> str:
    """Untrusted text for display: control characters escaped, bounded length."""
    s = str(value)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}" for ch in s)


def _params(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def explain_model(report: ModelReport, path: str | None = None) -> str:
    """A readable multi-line account of the report (plain text, already escaped)."""
    lines: list[str] = []
    add = lines.append
    head = f"{clean(path, 400)}: " if path else ""
    add(f"{head}{report.format} model" + (f", {report.size:,} bytes" if report.size is not None else ""))
    s = report.safety
    if s is not None:
        if s.verdict == "dangerous":
            add("!! SAFETY: DANGEROUS — do not load this file with pickle/torch.load")
        else:
            add(f"safety: {s.verdict}" + (" (no executable content in this format)" if s.verdict == "no-code" else ""))
        for f in s.findings:
            if f.verdict != "safe":
                add(f"  {clean(f.source)}: {f.verdict}")
                for g in f.globals:
                    add(f"    global {clean(g)}")
                for t in f.details.get("findings", [])[:10]:
                    add(f"    {clean(t, 300)}")
                if f.offsets:
                    add(f"    at pickle offsets {', '.join(str(o) for o in f.offsets[:20])}")
    a = report.arch
    if a is not None:
        fam = a.family + (f" ({a.variant})" if a.variant else "")
        add(f"architecture: {fam} — {a.confidence}" + (f", {a.kind}" if a.kind != "unknown" else ""))
        if a.layout:
            add(f"  layout: {a.layout}")
        for r in a.reasons:
            add(f"  why: {clean(r, 300)}")
        if a.components:
            add("  components: " + ", ".join(f"{c} {_params(a.params.get(c, 0))}" for c in a.components))
        add(f"  parameters: {_params(a.total_params)} in {a.tensors} tensors")
        if a.dtypes:
            add("  dtypes: " + ", ".join(f"{clean(k, 20)} x{v}" for k, v in a.dtypes.items()))
        add(f"  prediction: {a.prediction}")
        if a.ema:
            add("  EMA weights present")
        if a.lora is not None:
            lo = a.lora
            add(
                f"  adapter: {lo.format}{' + DoRA' if lo.dora else ''}, {lo.modules} modules, "
                f"ranks {dict(lo.ranks)}, alphas {dict(lo.alphas) or 'not stored'}"
            )
            add(f"  fits base: {lo.base_family} ({lo.base_confidence})")
            add("  targets: " + ", ".join(f"{clean(k, 40)} {v}" for k, v in lo.targets.items()))
        if a.llm is not None:
            m = a.llm
            add(
                f"  language model: {clean(m.architecture, 40)}, hidden {m.hidden_size}, "
                f"{m.layers} layers, vocabulary {m.vocab_size}"
                + (f", context {m.context_length}" if m.context_length else "")
            )
    h = report.hashes
    if h is not None:
        add("hashes (computed from the file):")
        add(f"  AutoV1  {h.autov1}")
        add(f"  AutoV2  {h.autov2}")
        if h.autov3:
            add(f"  AutoV3  {h.autov3}  (data section from byte {h.data_offset}: {h.data_sha256})")
        add(f"  SHA256  {h.sha256}")
        add(f"  BLAKE3  {h.blake3}")
        add(f"  CRC32   {h.crc32} (zlib, big-endian)  {h.crc32_civitai} (as Civitai shows it)")
        add(f"  MD5     {h.md5}")
    for c in report.hash_checks:
        add(f"  embedded {c.key}: {clean(c.embedded, 80)} -> {c.status}")
    md = report.metadata
    if md is not None:
        _explain_metadata(md, add)
    for w in report.warnings:
        add(f"warning: {clean(w, 300)}")
    return "\n".join(lines)


def _explain_metadata(md: ModelMetadata, add: Any) -> None:
    t = md.training
    if t is not None:
        add("training (kohya ss_* metadata, as written by the trainer):")
        for label, value in (
            ("base model", t.base_model_name),
            ("base model hash", t.base_model_hash),
            ("base model sha256", t.base_model_sha256),
            ("base version", t.base_model_version),
            ("output name", t.output_name),
            ("started", t.started_at),
            ("finished", t.finished_at),
            ("resolution", t.resolution),
            ("seed", t.seed),
            ("network", " ".join(x for x in (t.network_module, t.network_dim and f"dim {t.network_dim}", t.network_alpha and f"alpha {t.network_alpha}") if x)),
            ("epochs", t.epochs),
            ("steps", t.steps),
            ("optimizer", t.optimizer),
            ("learning rate", t.learning_rate),
            ("images", t.num_train_images),
            ("comment", t.comment),
        ):
            if value:
                add(f"  {label}: {clean(value)}")
        for d, info in list(t.dataset_dirs.items())[:20]:
            add(f"  dataset dir {clean(d, 120)}: {info}")
        if t.top_tags:
            tags = ", ".join(f"{clean(k, 60)} ({n})" for k, n in t.top_tags[:20])
            add(f"  top tags of {t.tag_count}: {tags}")
    if md.modelspec:
        add("modelspec:")
        for k, v in list(md.modelspec.items())[:30]:
            add(f"  {clean(k, 60)}: {clean(v)}")
    if md.merge is not None:
        add("merge:")
        if md.merge.tools:
            add("  tools: " + ", ".join(clean(x, 80) for x in md.merge.tools))
        if md.merge.recipe:
            add("  recipe: " + clean(", ".join(f"{k}={v}" for k, v in md.merge.recipe.items()), 400))
        for m in md.merge.models[:20]:
            add("  model: " + clean(", ".join(f"{k}={v}" for k, v in m.items()), 300))
    if md.comfyui_prompt or md.comfyui_workflow:
        add("ComfyUI " + " and ".join(x for x, on in (("prompt", md.comfyui_prompt), ("workflow", md.comfyui_workflow)) if on) + " embedded")
        if md.comfyui_nodes:
            add("  nodes: " + clean(", ".join(md.comfyui_nodes), 400))
    if md.gguf is not None:
        add("GGUF general:")
        for k, v in list(md.gguf.general.items())[:30]:
            add(f"  {clean(k, 60)}: {clean(v)}")
        for i, b in enumerate(md.gguf.base_models):
            add(f"  base model {i}: " + clean(", ".join(f"{k}={v}" for k, v in b.items()), 300))
    if md.other_keys:
        add("other metadata keys: " + clean(", ".join(md.other_keys), 400))


def explain_model_text(report: ModelReport, path: str | None = None) -> Text:
    """The explanation as a Rich Text: printed verbatim, never parsed as markup."""
    return Text(explain_model(report, path))
