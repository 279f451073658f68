"""The model report: the model section of a file record (model-file forensics), how it
is assembled from what the readers found, and its plain-text rendering. One home for
the concept: the schema, ``build_model_report`` and ``explain_model`` live here.

Every field is evidence read or computed from the file; text taken from the file
(metadata, names) is kept verbatim as data and escaped only when rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._record import ConfigDict, Field, Record

if TYPE_CHECKING:
    from rich.text import Text

Confidence = Literal["certain", "likely", "unknown"]


class _Part(Record):
    model_config = ConfigDict(extra="forbid")


class LoraInfo(_Part):
    """An adapter file: what it patches and how big its updates are."""

    format: str  # "kohya", "peft", "diffusers-legacy", "loha", "lokr", "mixed"
    dora: bool = False
    ranks: dict[int, int] = Field(default_factory=dict)  # rank -> number of modules
    alphas: dict[str, int] = Field(default_factory=dict)  # alpha (as text) -> modules
    modules: int = 0
    targets: dict[str, int] = Field(default_factory=dict)  # component -> modules
    target_kinds: dict[str, int] = Field(default_factory=dict)  # e.g. attn2.to_k -> modules
    base_family: str = "unknown"
    base_confidence: Confidence = "unknown"


class LlmInfo(_Part):
    architecture: str  # "llama", "qwen2", "gemma", "bert", or GGUF general.architecture
    hidden_size: int | None = None
    layers: int | None = None
    vocab_size: int | None = None
    attention_heads: int | None = None
    kv_heads: int | None = None
    context_length: int | None = None


class ArchReport(_Part):
    """What the weights say the model is, with the facts that say so."""

    family: str = "unknown"  # e.g. "stable-diffusion-1", "flux-1", "lora", "llm"
    variant: str | None = None  # e.g. "inpainting", "refiner", "dev", "schnell"
    kind: str = "unknown"  # "checkpoint", "diffusion-model", "lora", "vae", "text-encoder", "llm"
    confidence: Confidence = "unknown"
    facts: int = 0  # independent shape/key facts that agree on the family
    layout: str | None = None  # "ldm", "diffusers", "comfy", "bfl", "gguf", "hf"
    components: list[str] = Field(default_factory=list)
    ema: bool = False
    prediction: str = "not detectable from weights"
    context_dim: int | None = None
    in_channels: int | None = None
    dtypes: dict[str, int] = Field(default_factory=dict)  # dtype -> tensors
    params_by_dtype: dict[str, int] = Field(default_factory=dict)
    params: dict[str, int] = Field(default_factory=dict)  # component -> parameters
    total_params: int = 0
    tensors: int = 0
    lora: LoraInfo | None = None
    llm: LlmInfo | None = None
    reasons: list[str] = Field(default_factory=list)


class ModelHashes(_Part):
    """Community and cryptographic hashes, all computed from the file's bytes."""

    size: int
    sha256: str
    autov1: str  # sha256 of 64 KiB at offset 1 MiB, first 8 hex (A1111 "old" model hash)
    # Set when the file is too short for AutoV1's window (< 1 MiB + 64 KiB): the value
    # hashes no bytes or only the file's tail, and is then never matched nor banked.
    autov1_degenerate: str | None = None
    autov2: str  # sha256 of the whole file, first 10 hex
    autov3: str | None = None  # sha256 of the safetensors data section, first 12 hex
    data_sha256: str | None = None  # the full data-section sha256 (kohya sshs_model_hash)
    data_offset: int | None = None
    blake3: str
    crc32: str  # zlib.crc32 as big-endian hex (how zlib and most tools print it)
    crc32_civitai: str  # the same 4 bytes reversed (little-endian), as Civitai shows it
    md5: str
    sha1: str | None = None  # for chain of custody and hash sets (NSRL, Project VIC)


class HashCheck(_Part):
    """An embedded hash compared with the value recomputed from the file."""

    key: str
    embedded: str
    recomputed: str | None
    status: Literal["match", "mismatch", "not-comparable"]
    covers: str  # what the embedded value is supposed to hash


class TrainingInfo(_Part):
    """kohya sd-scripts training metadata (``ss_*``)."""

    base_model_name: str | None = None
    base_model_hash: str | None = None  # ss_sd_model_hash: AutoV1 of the base
    base_model_sha256: str | None = None  # ss_new_sd_model_hash
    base_model_version: str | None = None
    output_name: str | None = None
    comment: str | None = None
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None
    resolution: str | None = None
    seed: str | None = None
    network_module: str | None = None
    network_dim: str | None = None
    network_alpha: str | None = None
    network_args: str | None = None
    epochs: str | None = None
    steps: str | None = None
    optimizer: str | None = None
    learning_rate: str | None = None
    unet_lr: str | None = None
    text_encoder_lr: str | None = None
    num_train_images: str | None = None
    dataset_dirs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tag_count: int = 0  # distinct training tags
    top_tags: list[tuple[str, int]] = Field(default_factory=list)  # most frequent first


class MergeInfo(_Part):
    tools: list[str] = Field(default_factory=list)
    recipe: dict[str, Any] | None = None
    models: list[dict[str, Any]] = Field(default_factory=list)


class GgufInfo(_Part):
    general: dict[str, Any] = Field(default_factory=dict)
    base_models: list[dict[str, Any]] = Field(default_factory=list)


class ModelMetadata(_Part):
    training: TrainingInfo | None = None
    modelspec: dict[str, str] = Field(default_factory=dict)
    merge: MergeInfo | None = None
    comfyui_prompt: bool = False
    comfyui_workflow: bool = False
    comfyui_nodes: list[str] = Field(default_factory=list)  # node class types, sorted
    gguf: GgufInfo | None = None
    # ONNX: IR and opset versions, producer, operator counts, external data files, custom
    # operators, generated weight names given back their parameter names (formats/onnx.py)
    onnx: dict[str, Any] | None = None
    embedded_hashes: dict[str, str] = Field(default_factory=dict)
    other_keys: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class SafetyFinding(_Part):
    """One pickle's safety verdict as the pickle scanner reported it."""

    source: str  # e.g. "archive/data.pkl"
    verdict: str  # the scanner's verdict ("safe", "suspicious", "dangerous", ...)
    globals: list[str] = Field(default_factory=list)
    offsets: list[int] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class SafetyInfo(_Part):
    verdict: str  # the worst verdict over all pickles; "no-code" for pure tensor formats
    findings: list[SafetyFinding] = Field(default_factory=list)


class ModelReport(Record):
    model_config = ConfigDict(extra="forbid")

    format: str
    details: dict[str, Any] = Field(default_factory=dict)
    size: int | None = None
    tensor_count: int | None = None
    data_offset: int | None = None
    safety: SafetyInfo | None = None
    arch: ArchReport | None = None
    hashes: ModelHashes | None = None
    hash_checks: list[HashCheck] = Field(default_factory=list)
    metadata: ModelMetadata | None = None
    warnings: list[str] = Field(default_factory=list)
    # Lineage against the fingerprint banks (same weights, derived, merge, LoRA, low-rank),
    # as assay.models.lineage.LineageReport.to_dict gives it; None when not compared
    # (no fingerprint in any enabled bank, --no-banks, or a refused file).
    lineage: dict[str, Any] | None = None
    lineage_explanations: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------ assembly

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
        verdict = "no-code" if fmt in ("safetensors", "gguf", "onnx") else "safe"
    else:
        verdict = max((f.verdict for f in findings), key=lambda v: _RANK.get(v, 1))
    return SafetyInfo(verdict=verdict, findings=findings)


def _finding_text(f: Mapping[str, Any]) -> str:
    name = f.get("global_name") or "(container)"
    if f.get("opcode") in ("config", "graph"):  # Keras config / TensorFlow graph: no offset
        return f"{f.get('severity')}: {name}: {f.get('reason')}"
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
        notes.insert(0, f"DANGEROUS: this file would run code if loaded with {_loader(fmt)}")
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


# Formats whose code is named in a config or graph, not in a pickle (no offsets).
_CONFIG_FORMATS = frozenset({"keras", "keras-h5", "hdf5", "tf-savedmodel", "onnx", "skops"})


def _loader(fmt: str) -> str:
    """What would run the file's code, as the user would load it."""
    if fmt in ("keras", "keras-h5", "hdf5"):
        return "Keras/TensorFlow"
    if fmt == "tf-savedmodel":
        return "TensorFlow"
    if fmt == "onnx":
        return "onnx.load or ONNX Runtime"
    if fmt in ("npy", "npz"):
        return "numpy.load(allow_pickle=True)"
    if fmt == "skops":
        return "skops.io.load"
    return "pickle/torch.load"


def _counts(values: Mapping[Any, int]) -> str:
    """``{4: 120, 8: 2}`` as ``4 (120 modules), 8 (2 modules)``: no Python reprs in text."""
    return ", ".join(f"{clean(k, 40)} ({n} module{'s' if n != 1 else ''})" for k, n in values.items())


def explain_model(report: ModelReport, path: str | None = None) -> str:
    """A readable multi-line account of the report (plain text, already escaped)."""
    lines: list[str] = []
    add = lines.append
    head = f"{clean(path, 400)}: " if path else ""
    add(f"{head}{report.format} model" + (f", {report.size:,} bytes" if report.size is not None else ""))
    s = report.safety
    if s is not None:
        if s.verdict == "dangerous":
            add(f"!! SAFETY: DANGEROUS — do not load this file with {_loader(report.format)}")
        else:
            add(f"safety: {s.verdict}" + (" (no executable content in this format)" if s.verdict == "no-code" else ""))
        for f in s.findings:
            if f.verdict != "safe":
                add(f"  {clean(f.source)}: {f.verdict}")
                for g in f.globals:
                    add(f"    global {clean(g)}")
                for t in f.details.get("findings", [])[:10]:
                    add(f"    {clean(t, 300)}")
                if f.offsets and report.format not in _CONFIG_FORMATS:
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
                f"ranks {_counts(lo.ranks)}, alphas {_counts(lo.alphas) or 'not stored'}"
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
        add(f"  AutoV1  {h.autov1}"
            + (f"  (degenerate, never matched: {h.autov1_degenerate})" if h.autov1_degenerate else ""))
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
    if report.lineage_explanations:
        add("lineage (from weight fingerprints):")
        for line in report.lineage_explanations:
            add(f"  {clean(line, 1000)}")
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
            add(f"  dataset dir {clean(d, 120)}: " + clean(", ".join(f"{k} {v}" for k, v in info.items()), 300))
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
    if md.onnx is not None:
        _explain_onnx(md.onnx, add)
    if md.other_keys:
        add("other metadata keys: " + clean(", ".join(md.other_keys), 400))


def _explain_onnx(o: Mapping[str, Any], add: Callable[[str], None]) -> None:
    producer = " ".join(clean(o[k], 80) for k in ("producer_name", "producer_version") if o.get(k))
    opsets = o.get("opsets") or {}
    add("ONNX: " + ", ".join(x for x in (
        f"IR {o['ir_version']}" if o.get("ir_version") is not None else "",
        "opsets " + ", ".join(f"{clean(d, 60)} {v}" for d, v in list(opsets.items())[:10]) if opsets else "",
        f"made by {producer}" if producer else "",
    ) if x))
    ops = o.get("ops") or {}
    add(f"  {o.get('nodes', 0):,} nodes" + (": " + clean(", ".join(f"{k} {n}" for k, n in list(ops.items())[:12]), 400) if ops else "")
        + (f" and {len(ops) - 12} more kinds" if len(ops) > 12 else ""))
    for key, label in (("custom_ops", "operators outside the standard domains"), ("external_data", "weights in"),
                       ("functions", "model functions")):
        if o.get(key):
            add(f"  {label}: " + clean(", ".join(o[key]), 400))
    if o.get("renamed"):
        add(f"  {len(o['renamed'])} weight(s) with exporter-generated names listed under the parameter "
            "names their nodes give (MatMul weights transposed back)")
    for why, n in (o.get("not_read") or {}).items():
        add(f"  not read: {n} {clean(why, 80)}")
    for w in (o.get("warnings") or [])[:10]:
        add(f"  warning: {clean(w, 300)}")
    if o.get("doc_string"):
        add("  doc string: " + clean(o["doc_string"], 200))


def explain_model_text(report: ModelReport, path: str | None = None) -> Text:
    """The explanation as a Rich Text: printed verbatim, never parsed as markup."""
    from rich.text import Text

    return Text(explain_model(report, path))
