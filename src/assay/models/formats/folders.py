"""Model folders: diffusers pipelines, PEFT adapters and Hugging Face model folders.

A diffusers pipeline is a folder with ``model_index.json`` naming its components
(``unet``, ``vae``, ``text_encoder`` ...), each a sub-folder with ``config.json`` and
weights: one file (``diffusion_pytorch_model.safetensors``, ``model.safetensors``,
``pytorch_model.bin``; ``model.onnx`` in an ONNX pipeline as Optimum exports it), variants of it (``...fp16.safetensors``, ``...non_ema...``),
or shards listed by an ``*.index.json`` ``weight_map``. A PEFT adapter is a folder
with ``adapter_config.json`` and ``adapter_model.safetensors`` (or ``.bin``). A Hugging
Face model folder has ``config.json`` and ``model.safetensors`` (or shards behind
``model.safetensors.index.json``, or the ``pytorch_model`` equivalents).

Each weights file is opened with the single-file readers (so pickles are scanned
and dangerous ones refused). The folder's ModelFile lists every tensor of each
component's primary weights as ``"component/name"``; other variants are opened as
extra components named ``"component[file name]"``.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...config import Limits
from ...errors import DecodeError, InputError, UnsupportedFormat
from . import MAX_CONFIG_BYTES, ModelFile, TensorInfo

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx")
_SHARD = re.compile(r"-\d{1,6}-of-\d{1,6}(?=\.)")
_INDEX = re.compile(r"^(?P<stem>[^.]+)(?:\.(?P<v1>[\w-]+))?\.(?P<ext>safetensors|bin)\.index"
                    r"(?:\.(?P<v2>[\w-]+))?\.json$")
_SINGLE = re.compile(r"^(?P<stem>[^.]+)(?:\.(?P<variant>[\w-]+))?\.(?P<ext>safetensors|bin|pt|pth|ckpt|onnx)$")
_COMPONENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_SHARDS = 10_000


def read_json(path: Path, what: str) -> Any:
    """A small JSON file (configs, indexes), bounded and with a clear error."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise DecodeError(path, f"{what} is {size} bytes (limit {MAX_CONFIG_BYTES})")
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise InputError(path, f"cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(path, f"{what} is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise DecodeError(path, f"{what} is not valid JSON: {exc.msg} at {exc.pos}") from exc
    except (RecursionError, ValueError) as exc:
        raise DecodeError(path, f"{what} is not valid JSON: {type(exc).__name__}") from exc


def open_folder(path: Path, kind: str, *, limits: Limits = Limits()) -> ModelFile:  # noqa: B008
    if kind == "diffusers":
        return _open_diffusers(Path(path), limits)
    if kind == "peft":
        return _open_peft(Path(path), limits)
    if kind == "transformers":
        return _open_transformers(Path(path), limits)
    raise UnsupportedFormat(path, f"unknown model folder kind {kind!r}")


def _open_diffusers(path: Path, limits: Limits) -> ModelFile:
    index = read_json(path / "model_index.json", "model_index.json")
    if not isinstance(index, dict):
        raise DecodeError(path / "model_index.json", "model_index.json is not a JSON object")
    names = [
        k for k, v in index.items()
        if not k.startswith("_") and isinstance(v, list) and _COMPONENT_NAME.match(k)
    ]
    metadata: dict[str, Any] = {"model_index": index, "configs": {}, "weights": {}, "missing": []}
    folder = ModelFile(path=path, format="diffusers", metadata=metadata)
    try:
        for name in names:
            sub = path / name
            if not sub.is_dir():
                if index[name] and index[name][0] is not None:
                    metadata["missing"].append(name)
                continue
            for cfg in ("config.json", "scheduler_config.json", "preprocessor_config.json"):
                if (sub / cfg).is_file():
                    metadata["configs"][name] = read_json(sub / cfg, f"{name}/{cfg}")
                    break
            _add_component(folder, name, sub, limits)
    except BaseException:
        folder.close()
        raise
    return folder


def _open_peft(path: Path, limits: Limits) -> ModelFile:
    config = read_json(path / "adapter_config.json", "adapter_config.json")
    if not isinstance(config, dict):
        raise DecodeError(path / "adapter_config.json", "adapter_config.json is not a JSON object")
    folder = ModelFile(path=path, format="peft",
                       metadata={"adapter_config": config, "weights": {}})
    try:
        _add_component(folder, "adapter", path, limits, stems=("adapter_model",))
    except BaseException:
        folder.close()
        raise
    if "adapter" not in folder.components:
        raise DecodeError(path, "PEFT adapter folder has no adapter_model.safetensors or .bin")
    return folder


def _open_transformers(path: Path, limits: Limits) -> ModelFile:
    """A Hugging Face model folder: config.json and one weights file or a sharded index.
    The tensors keep their own names (no component prefix): it is one model."""
    config = read_json(path / "config.json", "config.json")
    if not isinstance(config, dict):
        raise DecodeError(path / "config.json", "config.json is not a JSON object")
    variants = _find_variants(path, ("model", "pytorch_model"))
    if not variants:
        raise DecodeError(path, "model folder has config.json but no model.safetensors, "
                          "pytorch_model.bin or sharded index")
    templates = _chat_template_report(path)
    _variant, files = variants[0]
    mf = _open_weights(path, files, limits)
    if templates.findings:
        mf.pickles = [*mf.pickles, templates]
    mf.path = path
    mf.format = "transformers"
    mf.metadata = {**mf.metadata, "config": config,
                   "weights": {"model": [{"variant": v, "files": [p.name for p in fs]} for v, fs in variants]}}
    # How a quantizer packed the weights (GPTQModel's checkpoint_format, AutoAWQ's version)
    # when it says so beside config.json rather than in it.
    for name in ("quantize_config.json", "quant_config.json"):
        if (path / name).is_file():
            qc = read_json(path / name, name)
            if isinstance(qc, dict):
                mf.metadata["quantize_config"] = qc
                break
    return mf


def _chat_template_report(path: Path) -> Any:
    """Findings for the chat templates of a Hugging Face folder (tokenizer_config.json,
    chat_template.json, chat_template.jinja); refused (UnsafeInput) when one is dangerous."""
    from ...errors import UnsafeInput
    from ..chat_templates import template_findings, templates_in_tokenizer_config
    from ..pickles import PickleReport

    report = PickleReport(where=str(path))
    for name in ("tokenizer_config.json", "chat_template.json"):
        if (path / name).is_file():
            for key, template in templates_in_tokenizer_config(read_json(path / name, name)):
                for f in template_findings(template, f"{name}:{key}"):
                    report.add(f)
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        try:
            if jinja.stat().st_size <= MAX_CONFIG_BYTES:
                for f in template_findings(jinja.read_bytes().decode("utf-8", "replace"),
                                           "chat_template.jinja"):  # fmt: skip
                    report.add(f)
        except OSError as exc:
            raise InputError(jinja, f"cannot read: {exc.strerror or exc}") from exc
    if report.verdict == "dangerous":
        raise UnsafeInput(path, report.findings[0].reason, details=[report])
    return report


def _add_component(
    folder: ModelFile, name: str, sub: Path, limits: Limits,
    stems: tuple[str, ...] = ("diffusion_pytorch_model", "model", "pytorch_model"),
) -> None:
    """Open every weights variant in ``sub``; the preferred one feeds the tensors."""
    variants = _find_variants(sub, stems)
    if not variants:
        return
    folder.metadata["weights"][name] = [
        {"variant": v, "files": [p.name for p in files]} for v, files in variants
    ]
    for i, (_variant, files) in enumerate(variants):
        key = name if i == 0 else f"{name}[{files[0].name}]"
        comp = _open_weights(sub, files, limits)
        folder.components[key] = comp
        if i == 0:
            for tname, info in comp.tensors.items():
                full = f"{name}/{tname}"
                folder.tensors[full] = replace(info, name=full)
            folder.pickles.extend(comp.pickles)


def _find_variants(sub: Path, stems: tuple[str, ...]) -> list[tuple[str | None, list[Path]]]:
    """(variant, files) in order of preference: no variant before fp16/non_ema,
    safetensors before pickles, single files before shards."""
    found: list[tuple[tuple[int, int, int], str | None, list[Path]]] = []
    try:
        entries = sorted(p for p in sub.iterdir() if p.is_file())
    except OSError as exc:
        raise InputError(sub, f"cannot list folder: {exc.strerror or exc}") from exc
    for p in entries:
        m = _INDEX.match(p.name)
        if m and m["stem"] in stems:
            variant = m["v1"] or m["v2"]
            shards = _shards_of(p)
            found.append(((variant is not None, m["ext"] != "safetensors", 1), variant, [p, *shards]))
            continue
        m = _SINGLE.match(p.name)
        if m and m["stem"] in stems and not _SHARD.search(p.name):
            variant = m["variant"]
            found.append(((variant is not None, m["ext"] != "safetensors", 0), variant, [p]))
    found.sort(key=lambda t: (t[0], str(t[1])))
    return [(v, files) for _, v, files in found]


def _shards_of(index_path: Path) -> list[Path]:
    index = read_json(index_path, index_path.name)
    wm = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wm, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in wm.items()
    ):
        raise DecodeError(index_path, "sharded index has no weight_map of strings")
    files: list[Path] = []
    for fname in dict.fromkeys(wm.values()):
        # Shards live next to their index; a path in weight_map could point anywhere.
        if "/" in fname or "\\" in fname or fname in (".", "..") or not fname:
            raise DecodeError(index_path, f"weight_map names a file outside its folder: {fname[:80]!r}")
        files.append(index_path.parent / fname)
    if len(files) > MAX_SHARDS:
        raise DecodeError(index_path, f"weight_map lists {len(files)} shards (limit {MAX_SHARDS})")
    return files


def _open_weights(sub: Path, files: list[Path], limits: Limits) -> ModelFile:
    from . import open_model

    if len(files) == 1 and not files[0].name.endswith(".json"):
        return open_model(files[0], limits=limits)
    index_path, shards = files[0], files[1:]
    index = read_json(index_path, index_path.name)
    weight_map: dict[str, str] = index["weight_map"]
    comp = ModelFile(path=index_path, format="sharded",
                     metadata={"index": {k: v for k, v in index.items() if k != "weight_map"}})
    try:
        for shard in shards:
            if not shard.is_file():
                raise DecodeError(index_path, f"shard {shard.name!r} listed in weight_map is missing")
            part = open_model(shard, limits=limits)
            comp.components[shard.name] = part
            comp.pickles.extend(part.pickles)
        tensors: dict[str, TensorInfo] = {}
        for tname, fname in weight_map.items():
            info = comp.components[fname].tensors.get(tname)
            if info is None:
                raise DecodeError(index_path, f"tensor {tname!r} is not in its shard {fname!r}")
            tensors[tname] = info
        extra = [
            f"{s}:{t}" for s, part in comp.components.items() for t in part.tensors
            if weight_map.get(t) != s
        ]
        if extra:
            comp.metadata["unlisted_tensors"] = extra[:100]
        comp.tensors = tensors
    except BaseException:
        comp.close()
        raise
    return comp
