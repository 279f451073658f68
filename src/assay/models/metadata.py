"""Model metadata as structured fields: kohya training records (``ss_*``), ModelSpec,
merge recipes, ComfyUI prompts/workflows, GGUF ``general.*`` and lineage.

Text from the file is data: it is kept verbatim as strings (long values are cut to
a bound, with a warning), JSON is parsed only to read counts and names, and nothing
is ever evaluated. Malformed values become warnings, never exceptions.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..report.model import GgufInfo, MergeInfo, ModelMetadata, TrainingInfo

MAX_TEXT = 4096  # characters kept of one free-text field
MAX_JSON = 16 * 1024 * 1024  # a metadata JSON value larger than this is not parsed
TOP_TAGS = 50
MAX_LIST = 100

# Values that claim to be hashes of this file (compared by hashes.check_embedded).
EMBEDDED_HASH_KEYS = ("sshs_model_hash", "sshs_legacy_hash", "modelspec.hash_sha256")

_TRAINING_FIELDS = {
    "base_model_name": "ss_sd_model_name",
    "base_model_hash": "ss_sd_model_hash",
    "base_model_sha256": "ss_new_sd_model_hash",
    "base_model_version": "ss_base_model_version",
    "output_name": "ss_output_name",
    "comment": "ss_training_comment",
    "resolution": "ss_resolution",
    "seed": "ss_seed",
    "network_module": "ss_network_module",
    "network_dim": "ss_network_dim",
    "network_alpha": "ss_network_alpha",
    "network_args": "ss_network_args",
    "epochs": "ss_num_epochs",
    "steps": "ss_max_train_steps",
    "optimizer": "ss_optimizer",
    "learning_rate": "ss_learning_rate",
    "unet_lr": "ss_unet_lr",
    "text_encoder_lr": "ss_text_encoder_lr",
    "num_train_images": "ss_num_train_images",
}

_SURROGATE = re.compile("[\ud800-\udfff]")
_GGUF_GENERAL_SKIP = ("general.base_model.", "general.dataset.")


def parse_metadata(metadata: Mapping[str, Any], fmt: str = "safetensors") -> ModelMetadata:
    """Structure the metadata map a reader returned (safetensors ``__metadata__``,
    GGUF key/values, or a checkpoint's extra keys)."""
    out = ModelMetadata()
    used: set[str] = set()
    if any(k.startswith("ss_") for k in metadata):
        out.training = _training(metadata, out.warnings)
        used |= {k for k in metadata if k.startswith("ss_")}
    out.modelspec = {
        k.removeprefix("modelspec."): _text(v, k, out.warnings)
        for k, v in metadata.items()
        if k.startswith("modelspec.") and k != "modelspec.thumbnail"
    }
    if "modelspec.thumbnail" in metadata:
        out.modelspec["thumbnail"] = f"<embedded image, {len(str(metadata['modelspec.thumbnail']))} characters, not shown>"
    used |= {k for k in metadata if k.startswith("modelspec.")}
    out.merge = _merge(metadata, out.warnings)
    used |= {"sd_merge_recipe", "sd_merge_models"}
    _comfy(metadata, out)
    used |= {"prompt", "workflow"}
    if fmt == "gguf" or any(k.startswith("general.") for k in metadata):
        out.gguf = _gguf(metadata, out.warnings)
        used |= {k for k in metadata if k.startswith("general.")}
    if fmt == "onnx" and isinstance(metadata.get("onnx"), dict):
        out.onnx = metadata["onnx"]
        used.add("onnx")
    out.embedded_hashes = {k: str(metadata[k]) for k in EMBEDDED_HASH_KEYS if isinstance(metadata.get(k), str)}
    used |= set(EMBEDDED_HASH_KEYS)
    others = sorted(k for k in metadata if k not in used)
    out.other_keys = others[:MAX_LIST]
    if len(others) > MAX_LIST:
        out.warnings.append(f"{len(others) - MAX_LIST} more metadata keys not listed")
    # JSON headers may escape lone surrogates ("\ud800"), which no UTF-8 report can hold:
    # each becomes U+FFFD (same length, so the limits above still hold), so that
    # writing the report never fails.
    return ModelMetadata.model_validate(_no_surrogates(out.model_dump()))


def _no_surrogates(v: Any) -> Any:
    if isinstance(v, str):
        return _SURROGATE.sub("\ufffd", v)
    if isinstance(v, dict):
        return {_no_surrogates(k): _no_surrogates(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_no_surrogates(x) for x in v)
    return v


def _text(value: Any, key: str, warnings: list[str]) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)[:MAX_TEXT + 1]
    if len(s) > MAX_TEXT:
        warnings.append(f"{key}: {len(s)} characters, cut to {MAX_TEXT}")
        return s[:MAX_TEXT]
    return s


def _json(metadata: Mapping[str, Any], key: str, warnings: list[str]) -> Any:
    raw = metadata.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        return raw
    if raw.strip() in ("", "None", "null"):
        return None
    if len(raw) > MAX_JSON:
        warnings.append(f"{key}: {len(raw)} characters of JSON, too large to parse")
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        warnings.append(f"{key}: not valid JSON")
        return None


def iso_time(value: Any) -> str | None:
    """kohya writes Unix seconds (float, as text); return ISO 8601 UTC, or None."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 <= t < 32503680000:  # before year 3000; anything else is not a timestamp
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _training(metadata: Mapping[str, Any], warnings: list[str]) -> TrainingInfo:
    info = TrainingInfo()
    for attr, key in _TRAINING_FIELDS.items():
        if key in metadata and metadata[key] not in (None, "None"):
            setattr(info, attr, _text(metadata[key], key, warnings))
    if info.epochs is None and "ss_epoch" in metadata:
        info.epochs = _text(metadata["ss_epoch"], "ss_epoch", warnings)
    if info.steps is None and "ss_steps" in metadata:
        info.steps = _text(metadata["ss_steps"], "ss_steps", warnings)
    for attr, key in (("started_at", "ss_training_started_at"), ("finished_at", "ss_training_finished_at")):
        if key in metadata:
            iso = iso_time(metadata[key])
            if iso is None:
                warnings.append(f"{key}: not a Unix timestamp")
            setattr(info, attr, iso)
    tags: Counter[str] = Counter()
    freq = _json(metadata, "ss_tag_frequency", warnings)
    _add_tags(freq, tags, warnings)
    dirs = _json(metadata, "ss_dataset_dirs", warnings)
    if isinstance(dirs, dict):
        info.dataset_dirs = {str(k)[:MAX_TEXT]: _dir_info(v) for k, v in list(dirs.items())[:MAX_LIST]}
    datasets = _json(metadata, "ss_datasets", warnings)
    if isinstance(datasets, list):  # newer sd-scripts: one entry per dataset
        for ds in datasets:
            if isinstance(ds, dict):
                _add_tags(ds.get("tag_frequency"), tags, warnings)
                for sub in ds.get("subsets") or []:
                    if (isinstance(sub, dict) and isinstance(sub.get("image_dir"), str)
                            and len(info.dataset_dirs) < MAX_LIST):
                        info.dataset_dirs.setdefault(sub["image_dir"][:MAX_TEXT], _dir_info(sub))
    info.tag_count = len(tags)
    info.top_tags = sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TAGS]
    return info


def _add_tags(freq: Any, tags: Counter[str], warnings: list[str]) -> None:
    """``{dataset dir: {tag: count}}``; counts of the same tag in several dirs add up."""
    if freq is None:
        return
    if not isinstance(freq, dict):
        warnings.append("ss_tag_frequency: not a JSON object")
        return
    for per_dir in freq.values():
        if not isinstance(per_dir, dict):
            continue
        for tag, n in per_dir.items():
            if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
                tags[str(tag).strip()[:MAX_TEXT]] += n


def _dir_info(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        return {}
    keep = ("n_repeats", "img_count", "num_repeats", "image_count")
    return {k: v[k] for k in keep if isinstance(v.get(k), int | float) and not isinstance(v.get(k), bool)}


# ------------------------------------------------------------------ merges

_TOOL_MARKERS = (
    (re.compile(r"supermerger", re.I), "supermerger"),
    (re.compile(r"model[ _-]?toolkit", re.I), "model toolkit"),
    (re.compile(r"sd-meh|sd_meh", re.I), "sd-meh"),
    (re.compile(r"chattiori", re.I), "chattiori model merger"),
)


def _merge(metadata: Mapping[str, Any], warnings: list[str]) -> MergeInfo | None:
    info = MergeInfo()
    recipe = _json(metadata, "sd_merge_recipe", warnings)
    if isinstance(recipe, dict):
        info.recipe = {str(k): _scalar(v) for k, v in list(recipe.items())[:MAX_LIST]}
        kind = recipe.get("type")
        if kind == "webui":
            info.tools.append("AUTOMATIC1111 checkpoint merger")
        elif isinstance(kind, str):
            info.tools.append(kind[:100])
    models = _json(metadata, "sd_merge_models", warnings)
    if isinstance(models, dict):
        for h, m in list(models.items())[:MAX_LIST]:
            entry: dict[str, Any] = {"sha256": str(h)[:80]}
            if isinstance(m, dict):
                for k in ("name", "legacy_hash"):
                    if isinstance(m.get(k), str):
                        entry[k] = m[k][:MAX_TEXT]
                if isinstance(m.get("sd_merge_recipe"), dict):
                    entry["merged"] = True  # itself a merge
            info.models.append(entry)
    for key, value in metadata.items():
        text = f"{key}={value}" if isinstance(value, str) and len(value) < 65536 else key
        for rx, tool in _TOOL_MARKERS:
            if tool not in info.tools and rx.search(text):
                info.tools.append(tool)
    if not (info.recipe or info.models or info.tools):
        return None
    return info


def _scalar(v: Any) -> Any:
    if isinstance(v, str):
        return v[:MAX_TEXT]
    if v is None or isinstance(v, bool | int | float):
        return v
    return json.dumps(v, default=str)[:MAX_TEXT]


# ------------------------------------------------------------------ ComfyUI


def _comfy(metadata: Mapping[str, Any], out: ModelMetadata) -> None:
    nodes: set[str] = set()
    prompt = _json(metadata, "prompt", out.warnings)
    if isinstance(prompt, dict):
        out.comfyui_prompt = True
        for node in prompt.values():
            if isinstance(node, dict) and isinstance(node.get("class_type"), str):
                nodes.add(node["class_type"][:200])
    workflow = _json(metadata, "workflow", out.warnings)
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        out.comfyui_workflow = True
        for node in workflow["nodes"]:
            if isinstance(node, dict) and isinstance(node.get("type"), str):
                nodes.add(node["type"][:200])
    out.comfyui_nodes = sorted(nodes)[:MAX_LIST]
    if out.comfyui_prompt or out.comfyui_workflow:
        marker = "ComfyUI save (embedded prompt/workflow)"
        if out.merge is None:
            out.merge = MergeInfo(tools=[marker])
        else:
            out.merge.tools.append(marker)


# ------------------------------------------------------------------ GGUF


def _gguf(metadata: Mapping[str, Any], warnings: list[str]) -> GgufInfo:
    info = GgufInfo()
    for k, v in metadata.items():
        if k.startswith("general.") and not k.startswith(_GGUF_GENERAL_SKIP):
            info.general[k.removeprefix("general.")] = _gguf_value(v, k, warnings)
    count = metadata.get("general.base_model.count")
    n = count if isinstance(count, int) and not isinstance(count, bool) else 0
    for i in range(min(n, MAX_LIST)):
        prefix = f"general.base_model.{i}."
        entry = {k.removeprefix(prefix): _gguf_value(v, k, warnings) for k, v in metadata.items() if k.startswith(prefix)}
        if entry:
            info.base_models.append(entry)
    return info


def _gguf_value(v: Any, key: str, warnings: list[str]) -> Any:
    if isinstance(v, str):
        return _text(v, key, warnings)
    if isinstance(v, bool | int | float) or v is None:
        return v
    if isinstance(v, dict) and "length" in v:  # a long array the reader summarised
        return f"<array of {v.get('length')} {v.get('array_of', 'values')}>"
    if isinstance(v, list | tuple):
        if len(v) > MAX_LIST:
            return f"<array of {len(v)} values>"
        return [_gguf_value(x, key, warnings) for x in v]
    return _text(str(v), key, warnings)
