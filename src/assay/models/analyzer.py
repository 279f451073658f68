"""The model analyzer: safety, architecture, hashes (one read) and metadata of a model file.

A file whose pickles are dangerous is not opened further: its report carries the
scanner's findings and the file's hashes (reading bytes runs nothing), and no tensor
is rebuilt or read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from ..config import Limits
from ..errors import UnsafeInput
from ..report.model import ArchReport, ModelReport, build_model_report, safety_from_pickles
from ..report.schema import FileRecord
from ..scan.analyzer import Subject
from ..sniff import sniff_path
from .arch import identify, identify_components
from .formats import ModelFile, open_model
from .hashes import check_embedded, compute_hashes, hash_signals
from .metadata import parse_metadata

MAX_SCALAR_READS = 10_000  # LoRA alphas: one per module; more is not a real adapter


def analyze_model(
    path: str | Path,
    *,
    limits: Limits | None = None,
    progress: Callable[[int], None] | None = None,
) -> ModelReport:
    """Open, check and describe one model file or folder. Raises an
    :class:`assay.errors.InputError` subclass if the file cannot be read at all."""
    p = Path(path)
    try:
        mf = open_model(p, limits=limits or Limits())
    except UnsafeInput as exc:
        return _refused(p, exc, progress)
    with mf:
        return _describe(p, mf, progress)


def _refused(path: Path, exc: UnsafeInput, progress: Callable[[int], None] | None) -> ModelReport:
    sniffed = sniff_path(path).format if path.is_file() else "folder"
    fmt = sniffed
    if sniffed == "zip":
        from .formats import model_archive_kind

        kind = model_archive_kind(path)
        fmt = {"torch": "torch-zip", "keras": "keras", "npz": "npz", "skops": "skops"}.get(kind or "", "zip-pickles")
    safety = safety_from_pickles(exc.details, fmt)
    if safety.verdict != "dangerous":  # the refusal itself is the evidence
        safety = safety.model_copy(update={"verdict": "dangerous"})
    hashes = compute_hashes(path, progress=progress) if path.is_file() else None
    return build_model_report(
        None,
        hashes,
        None,
        None,
        fmt=fmt,
        safety=safety,
        warnings=[f"not analysed further: {exc.reason}"],
    )


def _describe(path: Path, mf: ModelFile, progress: Callable[[int], None] | None) -> ModelReport:
    warnings: list[str] = []
    safety = safety_from_pickles(mf.pickles, mf.format)
    dangerous = safety.verdict == "dangerous"
    hashes = None
    if path.is_file():
        data_offset = mf.data_offset if mf.format == "safetensors" else None
        hashes = compute_hashes(path, data_offset, progress=progress)
    else:
        warnings.append("a folder has no single-file hashes; hash its component files one by one")
    if mf.components and mf.format in ("diffusers", "peft"):
        arch = _identify_folder(mf, dangerous)
    else:
        from .formats.quantized import quantized_view

        # layers a quantizer packed (GPTQ, AWQ, bitsandbytes) identified by the weights they stand for
        tensors, packed = quantized_view(mf.tensors, mf.array, mf.metadata)
        arch = identify(tensors, mf.metadata, scalar=None if dangerous else _scalar_reader(mf))
        if packed:
            kinds = sorted({tensors[k].dtype for k in packed})
            arch.reasons.append(f"{len(packed)} linear layers stored quantized ({', '.join(kinds)}): counted "
                                "and compared as the float weights they stand for")
    metadata = parse_metadata(mf.metadata, mf.format)
    checks = check_embedded(mf.metadata, hashes) if hashes is not None else []
    return build_model_report(
        mf, hashes, arch, metadata, safety=safety, hash_checks=checks, warnings=warnings
    )


def _identify_folder(mf: ModelFile, dangerous: bool) -> ArchReport:
    # Variants of a component ("unet[diffusion_pytorch_model.fp16.safetensors]") repeat it.
    primary = {n: c for n, c in mf.components.items() if "[" not in n}
    arch = identify_components({n: (c.tensors, c.metadata) for n, c in primary.items()})
    if arch.lora is not None and not dangerous and "adapter" in primary:
        arch = identify(primary["adapter"].tensors, {}, scalar=_scalar_reader(primary["adapter"]))
    config = mf.metadata.get("adapter_config")
    if arch.lora is not None and isinstance(config, dict):
        alpha, rank = config.get("lora_alpha"), config.get("r")
        if not arch.lora.alphas and isinstance(alpha, int | float):
            arch.lora.alphas = {f"{alpha:g} (adapter_config.json)": arch.lora.modules}
        base = config.get("base_model_name_or_path")
        if isinstance(base, str):
            arch.reasons.append(f"adapter_config.json names the base {base[:200]!r} (a claim, not checked)")
        if isinstance(rank, int) and arch.lora.ranks and rank not in arch.lora.ranks:
            arch.reasons.append(f"adapter_config.json says rank {rank}, the tensors say {sorted(arch.lora.ranks)}")
    index = mf.metadata.get("model_index")
    if isinstance(index, dict) and isinstance(index.get("_class_name"), str):
        arch.reasons.append(f"model_index.json names the pipeline {index['_class_name'][:100]!r} (a claim)")
    return arch


def _scalar_reader(mf: ModelFile) -> Callable[[str], float | None]:
    reads = 0

    def read(name: str) -> float | None:
        nonlocal reads
        info = mf.tensors.get(name)
        if info is None or info.numel != 1 or reads >= MAX_SCALAR_READS:
            return None
        reads += 1
        try:
            return float(mf.array(name, convert=True).reshape(-1)[0])
        except Exception:  # an unreadable alpha is reported as absent, not fatal
            return None

    return read


class ModelAnalyzer:
    """Scan-pipeline face of :func:`analyze_model`: fills ``record.model`` and adds one
    signal per hash kind so that banks of flagged models match by any of them."""

    name: ClassVar[str] = "model"
    kinds: ClassVar[frozenset[str]] = frozenset({"model"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        report = analyze_model(subject.path, limits=subject.settings.limits)
        record.model = report
        if report.hashes is not None:
            record.signals.extend(hash_signals(report.hashes))

